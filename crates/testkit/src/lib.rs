//! Test helpers: an in-process Parley on ephemeral ports, and a raw XML client.
//!
//! The client speaks XMPP byte by byte over real TCP and TLS sockets, so that tests can
//! send exactly the bytes a rule is about (a cut header, a DTD, a wrong namespace) and read
//! exactly what the server answers. Never a dependency of a non-test crate.

mod client;
pub mod im;
mod server;

pub use client::{Client, ClientError, Received, WriteMode};
pub use server::TestServer;

/// How long a test waits for any single thing the server should send.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
