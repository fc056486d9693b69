//! Test helpers that need no Parley server: real PostgreSQL and etcd (plain or TLS with
//! client certificates and a login) started on loopback under watchdogs that stop them with
//! the test process, HAProxy in front of test nodes, dnsmasq serving given DNS records, real
//! Prosody and ejabberd servers (federation peers), a real S3-compatible object store
//! (s3s-fs), ports handed out once per process, a minimal HTTP GET, and one bounded poll
//! (`poll_until`) for conditions only a request can show.
//!
//! Split from `parley-testkit` so that tests of a lower crate (storage against PostgreSQL,
//! the etcd registry) build without compiling the server. Never a dependency of a non-test
//! crate; `parley-testkit` re-exports the rest of it (tests take the S3 store from here).

mod dns;
mod ejabberd;
mod etcd;
mod etcd_tls;
mod haproxy;
mod http;
mod pg;
mod poll;
mod ports;
mod prosody;
mod s3;

pub use dns::{DnsRecord, Dnsmasq};
pub use ejabberd::Ejabberd;
pub use etcd::{shared_etcd, EtcdServer};
pub use etcd_tls::{DomainPki, EtcdTlsFiles, ETCD_PASSWORD, ETCD_USER};
pub use haproxy::Haproxy;
pub use http::{http_get, http_request};
pub use pg::{shared_pg, PgServer};
pub use poll::{poll_until, poll_until_reporting};
pub use ports::free_port;
pub use prosody::Prosody;
pub use s3::{shared_s3, S3Server, S3S_FS_VERSION, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY};
