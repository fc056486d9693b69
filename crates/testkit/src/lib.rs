//! Test helpers: an in-process Parley on ephemeral ports, a raw XML client, and real
//! PostgreSQL and etcd servers on loopback.
//!
//! The client speaks XMPP byte by byte over real TCP and TLS sockets, so that tests can
//! send exactly the bytes a rule is about (a cut header, a DTD, a wrong namespace) and read
//! exactly what the server answers. Never a dependency of a non-test crate.

mod client;
pub mod cluster;
mod etcd;
mod etcd_tls;
mod haproxy;
pub mod im;
mod pg;
mod poll;
mod ports;
mod server;

mod bin;
pub use bin::{parley_binary, workspace_root};
pub use client::{Client, ClientError, Received, WriteMode};
pub use etcd::{shared_etcd, EtcdServer};
pub use etcd_tls::{EtcdTlsFiles, ETCD_PASSWORD, ETCD_USER};
pub use haproxy::Haproxy;
pub use pg::{shared_pg, PgServer};
pub use poll::poll_until;
pub use ports::free_port;
pub use server::TestServer;

/// How long a test waits for any single thing the server should send.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
