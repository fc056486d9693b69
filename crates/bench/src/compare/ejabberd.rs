//! Running ejabberd 23.01 (Debian) beside Parley: a config of our own under a temporary
//! directory, start/stop through `ejabberdctl`, and accounts and rosters through
//! `mod_http_api` on loopback (registering 20,000 users one `ejabberdctl` process at a time
//! would take an hour).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where and how ejabberd runs for a benchmark.
#[derive(Debug, Clone)]
pub struct Ejabberd {
    /// Config, spool and logs live here (owned by the `ejabberd` user).
    pub dir: PathBuf,
    /// c2s port on 127.0.0.1.
    pub c2s_port: u16,
    /// HTTP API port on 127.0.0.1.
    pub api_port: u16,
    /// Erlang node name.
    pub node: String,
}

/// Whether the Debian package is installed.
pub fn installed() -> bool {
    Path::new("/usr/sbin/ejabberdctl").exists()
}

impl Ejabberd {
    /// The same settings as the other servers: plain TCP allowed (STARTTLS offered, not
    /// required, with a self-signed certificate for localhost written by [`Self::start`]),
    /// no shapers, SCRAM storage (ejabberd derives SCRAM-SHA-1 with 4096 iterations), local
    /// Mnesia storage.
    pub fn config(&self) -> String {
        format!(
            r#"hosts:
  - localhost
loglevel: warning
certfiles:
  - "{pem}"
auth_method: internal
auth_password_format: scram
shaper: {{}}
max_fsm_queue: 100000
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    starttls: true
    starttls_required: false
    backlog: 4096
  -
    port: {api}
    ip: "127.0.0.1"
    module: ejabberd_http
    backlog: 1024
    request_handlers:
      /api: mod_http_api
acl:
  loopback:
    ip:
      - 127.0.0.0/8
api_permissions:
  "loopback access":
    from:
      - ejabberd_ctl
      - mod_http_api
    who:
      - acl: loopback
    what: "*"
access_rules:
  c2s:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_carboncopy: {{}}
  mod_offline: {{}}
  mod_admin_extra: {{}}
"#,
            c2s = self.c2s_port,
            api = self.api_port,
            pem = self.pem().display(),
        )
    }

    /// The certificate and key file (PEM, both in one, as ejabberd reads them).
    pub fn pem(&self) -> PathBuf {
        self.dir.join("localhost.pem")
    }

    fn ctl(&self, args: &[&str]) -> io::Result<std::process::Output> {
        self.ctl_on(None, args)
    }

    /// Runs `ejabberdctl` as the `ejabberd` user, optionally pinned to one CPU (the VM it
    /// starts inherits the affinity).
    fn ctl_on(&self, cpu: Option<u32>, args: &[&str]) -> io::Result<std::process::Output> {
        let dir = self.dir.display();
        let cmd = format!(
            "ulimit -n 20000; ejabberdctl --config-dir {dir} --config {dir}/ejabberd.yml --spool {dir}/db --logs {dir}/logs --node {} {}",
            self.node,
            args.join(" ")
        );
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "su"]);
                c
            }
            None => Command::new("su"),
        };
        command
            .args(["ejabberd", "-s", "/bin/sh", "-c", &cmd])
            .output()
    }

    /// Writes the config into a fresh directory and starts the node; waits for the c2s port.
    pub fn start(&self) -> io::Result<()> {
        self.start_on(None, true)
    }

    /// Starts the already provisioned node again, pinned to CPU 0.
    pub fn start_pinned(&self) -> io::Result<()> {
        self.start_on(Some(0), false)
    }

    fn start_on(&self, cpu: Option<u32>, fresh: bool) -> io::Result<()> {
        if !fresh {
            let out = self.ctl_on(cpu, &["start"])?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "ejabberdctl start: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            return self.wait_listening();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(self.dir.join("db"))?;
        std::fs::create_dir_all(self.dir.join("logs"))?;
        std::fs::write(self.dir.join("ejabberd.yml"), self.config())?;
        // Not Debian's /etc/ejabberd/ejabberd.pem (whatever key the package's postinst
        // made): a certificate of our own, like Prosody's, is the same kind for every
        // server (ECDSA P-256, as Parley generates for itself).
        let (key, crt) = (
            self.dir.join("localhost.key"),
            self.dir.join("localhost.crt"),
        );
        super::servers::self_signed_cert(&key, &crt)?;
        let mut pem = std::fs::read(&crt)?;
        pem.extend(std::fs::read(&key)?);
        std::fs::write(self.pem(), pem)?;
        if Path::new("/etc/ejabberd/inetrc").exists() {
            std::fs::copy("/etc/ejabberd/inetrc", self.dir.join("inetrc"))?;
        }
        let owner = Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&self.dir)
            .status()?;
        if !owner.success() {
            return Err(io::Error::other("chown of the ejabberd directory failed"));
        }
        let out = self.ctl_on(cpu, &["start"])?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "ejabberdctl start: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        self.wait_listening()
    }

    fn wait_listening(&self) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.c2s_port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "ejabberd did not listen on {addr} within 60 s; see {}/logs",
                    self.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The pid of the Erlang VM (`beam.smp`) for CPU and RSS sampling.
    pub fn pid(&self) -> Option<u32> {
        let out = Command::new("pgrep")
            .args(["-f", &format!("beam.smp.*-sname {}", self.node)])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the node.
    pub fn stop(&self) {
        let _ = self.ctl(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    /// Calls one `mod_http_api` command with a JSON body, over a kept-alive connection.
    fn call(&self, conn: &mut Option<TcpStream>, command: &str, body: &str) -> io::Result<String> {
        for attempt in 0..2 {
            if conn.is_none() {
                let s = TcpStream::connect(("127.0.0.1", self.api_port))?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                *conn = Some(s);
            }
            let s = conn.as_mut().expect("connected");
            let request = format!(
                "POST /api/{command} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            match s
                .write_all(request.as_bytes())
                .and_then(|()| read_response(s))
            {
                Ok((status, text)) if (200..300).contains(&status) => return Ok(text),
                Ok((status, text)) => {
                    return Err(io::Error::other(format!(
                        "{command}: HTTP {status}: {text}"
                    )))
                }
                Err(e) if attempt == 0 => {
                    *conn = None;
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("unreachable"))
    }

    /// Registers `users` (password `password`) with `workers` parallel connections.
    pub fn register(&self, users: &[String], password: &str, workers: usize) -> io::Result<()> {
        let chunk = users.len().div_ceil(workers.max(1)).max(1);
        std::thread::scope(|scope| -> io::Result<()> {
            let handles: Vec<_> = users
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || -> io::Result<()> {
                        let mut conn = None;
                        for u in part {
                            let body = format!(
                                "{{\"user\":\"{u}\",\"host\":\"localhost\",\"password\":\"{password}\"}}"
                            );
                            self.call(&mut conn, "register", &body)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| io::Error::other("register thread panicked"))??;
            }
            Ok(())
        })
    }

    /// Adds a mutual (`both`) roster item between `owner` and each contact, on both sides.
    pub fn befriend(&self, owner: &str, contacts: &[String]) -> io::Result<()> {
        let mut conn = None;
        for c in contacts {
            for (local, other) in [(owner, c.as_str()), (c.as_str(), owner)] {
                let body = format!(
                    "{{\"localuser\":\"{local}\",\"localhost\":\"localhost\",\"user\":\"{other}\",\"host\":\"localhost\",\"nick\":\"{other}\",\"group\":\"bench\",\"subs\":\"both\"}}"
                );
                self.call(&mut conn, "add_rosteritem", &body)?;
            }
        }
        Ok(())
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body.
fn read_response(s: &mut TcpStream) -> io::Result<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::Error::other("connection closed mid-body"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return Ok((status, body));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_our_ports_and_no_shaper() {
        let e = Ejabberd {
            dir: "/tmp/x".into(),
            c2s_port: 45222,
            api_port: 45280,
            node: "ejb@localhost".into(),
        };
        let c = e.config();
        assert!(c.contains("port: 45222"));
        assert!(c.contains("port: 45280"));
        assert!(c.contains("shaper: {}"));
        assert!(c.contains("auth_password_format: scram"));
        assert!(c.contains("  - \"/tmp/x/localhost.pem\""));
        assert!(c.contains("starttls_required: false"));
    }
}
