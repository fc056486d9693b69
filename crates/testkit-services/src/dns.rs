//! A real DNS server for tests: Debian's `dnsmasq` on a loopback port, authoritative for the
//! records a test gives it and nothing else (no upstream, no /etc/hosts), stopped on drop.
//! Names must be under `.test` (RFC 2606), which it answers alone: NXDOMAIN for the rest.
//! Server-to-server resolution (SRV, A) is tested against it rather than a mock.

use std::net::SocketAddr;
use std::time::Duration;

/// One record the server answers.
#[derive(Debug, Clone)]
pub enum DnsRecord {
    /// `name` (e.g. `_xmpp-server._tcp.example.test`) → `target:port`, with its priority
    /// and weight; no target: the service is explicitly not offered (`.`).
    Srv {
        /// The owner name.
        name: String,
        /// Target host and port; None for `.`.
        target: Option<(String, u16)>,
        /// RFC 2782 priority.
        priority: u16,
        /// RFC 2782 weight.
        weight: u16,
    },
    /// `name` → an IPv4 address.
    A {
        /// The owner name.
        name: String,
        /// Its address.
        ip: std::net::Ipv4Addr,
    },
}

/// A running dnsmasq.
pub struct Dnsmasq {
    child: std::process::Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records`; returns once it accepts TCP queries.
    pub fn start(records: &[DnsRecord]) -> Dnsmasq {
        Dnsmasq::start_zone("test", records)
    }

    /// [`Dnsmasq::start`] authoritative for the names under `zone` instead of `.test`:
    /// Prosody's resolver (libunbound) answers `.test` itself, so a test that Prosody
    /// resolves in uses `example` (RFC 2606 too).
    pub fn start_zone(zone: &str, records: &[DnsRecord]) -> Dnsmasq {
        let port = crate::free_port();
        let mut cmd = std::process::Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
        ])
        .arg(format!("--local=/{zone}/"))
        .arg(format!("--port={port}"));
        for r in records {
            cmd.arg(match r {
                DnsRecord::Srv {
                    name,
                    target: Some((host, p)),
                    priority,
                    weight,
                } => format!("--srv-host={name},{host},{p},{priority},{weight}"),
                DnsRecord::Srv {
                    name, target: None, ..
                } => format!("--srv-host={name}"),
                DnsRecord::A { name, ip } => format!("--host-record={name},{ip}"),
            });
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base; tests/run installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        crate::poll_until("dnsmasq listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
        Dnsmasq { child, addr }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
