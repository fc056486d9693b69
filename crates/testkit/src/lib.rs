//! Test helpers: an in-process Parley on ephemeral ports, a raw XML client, multi-process
//! cluster nodes, and (re-exported from `parley-testkit-services`) real PostgreSQL, etcd
//! and HAProxy on loopback.
//!
//! The client speaks XMPP byte by byte over real TCP and TLS sockets, so that tests can
//! send exactly the bytes a rule is about (a cut header, a DTD, a wrong namespace) and read
//! exactly what the server answers. Never a dependency of a non-test crate.

mod barrier;
mod client;
pub mod cluster;
pub mod component;
pub mod im;
pub mod process;
pub mod s2s;
mod server;
pub mod sm;

mod bin;
pub use bin::{parley_binary, workspace_root};
pub use client::{Client, ClientError, Received, WriteMode};
// The services that need no server live in `parley-testkit-services`, so that tests of
// lower crates can use them without compiling Parley; every test sees them here too.
pub use parley_testkit_services::{
    free_port, http_get, http_request, poll_until, poll_until_reporting, shared_etcd, shared_pg,
    DnsRecord, Dnsmasq, DomainPki, Ejabberd, EtcdServer, EtcdTlsFiles, Haproxy, PgServer, Prosody,
    ETCD_PASSWORD, ETCD_USER,
};
pub use server::TestServer;

/// How long a test waits for any single thing the server should send.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One JSON request to an admin endpoint with the bearer `token` (`body` may be empty):
/// the status and the JSON answer (`Null` when the answer is not JSON).
pub fn admin_json(
    addr: std::net::SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the admin endpoint");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write the request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the answer");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
