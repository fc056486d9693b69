//! HAProxy (Debian's `haproxy`) in front of test nodes: the plain load balancer the cluster
//! is meant to sit behind, round-robin with no stickiness, health-checking `/ready`.

use std::net::SocketAddr;
use std::time::Duration;

/// HAProxy in front of the nodes, round-robin, health-checking each node's `/ready`; ready
/// once its stats page shows every server UP.
pub struct Haproxy {
    child: std::process::Child,
    /// The frontend clients connect to.
    pub addr: SocketAddr,
    stats: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// `mode` is "tcp" (c2s) or "http" (BOSH, WebSocket); `servers` are (name, address,
    /// admin address for the health check).
    pub fn start(mode: &str, servers: &[(&str, SocketAddr, SocketAddr)]) -> Haproxy {
        Haproxy::start_with(mode, servers, "")
    }

    /// [`Haproxy::start`] with `options` added to every server line (e.g. `send-proxy-v2`,
    /// the PROXY protocol).
    pub fn start_with(
        mode: &str,
        servers: &[(&str, SocketAddr, SocketAddr)],
        options: &str,
    ) -> Haproxy {
        let (lb_port, stats_port) = (crate::free_port(), crate::free_port());
        let mut cfg = format!(
            "global\n  maxconn 1000\ndefaults\n  mode {mode}\n  timeout connect 5s\n  \
             timeout client 90s\n  timeout server 90s\n  timeout tunnel 1h\n\
             frontend front\n  bind 127.0.0.1:{lb_port}\n  default_backend nodes\n\
             backend nodes\n  balance roundrobin\n  option httpchk GET /ready\n"
        );
        if mode == "http" {
            cfg.push_str("  option http-server-close\n");
        }
        for (name, addr, admin) in servers {
            cfg.push_str(&format!(
                "  server {name} {addr} check port {} inter 200ms rise 1 {options}\n",
                admin.port()
            ));
        }
        cfg.push_str(&format!(
            "frontend stats\n  mode http\n  bind 127.0.0.1:{stats_port}\n  stats enable\n  \
             stats uri /stats\n"
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("haproxy.cfg"), cfg).unwrap();
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.path().join("haproxy.cfg"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy (Debian package haproxy; tests/run installs it)");
        let haproxy = Haproxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], lb_port)),
            stats: SocketAddr::from(([127, 0, 0, 1], stats_port)),
            _dir: dir,
        };
        // Clients come once every node is seen UP (a node is used only then).
        let stats = haproxy.stats;
        crate::poll_until(
            &format!("HAProxy sees all {} nodes UP", servers.len()),
            Duration::from_secs(15),
            || {
                let up = crate::http_get(stats, "/stats;csv", None)
                    .map(|(_, csv)| {
                        csv.lines()
                            .filter(|l| l.starts_with("nodes,") && !l.starts_with("nodes,BACKEND"))
                            .filter(|l| l.split(',').nth(17) == Some("UP"))
                            .count()
                    })
                    .unwrap_or(0);
                (up == servers.len()).then_some(())
            },
        );
        haproxy
    }
}

impl Haproxy {
    /// Per backend server: how many connections (in http mode with server-close, requests)
    /// HAProxy has sent it so far (the stats CSV's `stot`).
    pub fn sent_to_servers(&self) -> Vec<(String, u64)> {
        let csv = crate::http_get(self.stats, "/stats;csv", None)
            .map(|(_, csv)| csv)
            .unwrap_or_default();
        csv.lines()
            .filter(|l| l.starts_with("nodes,") && !l.starts_with("nodes,BACKEND"))
            .filter_map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                Some((cols.get(1)?.to_string(), cols.get(7)?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
