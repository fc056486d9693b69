//! The real `parley` binary on loopback ports, for RSS measured from /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Parley {
    child: Child,
    pub http: SocketAddr,
    dir: tempfile::TempDir,
}

impl Parley {
    /// Starts `parley serve` with `http_extra` in its `[http]` section; waits until ready.
    pub fn start(http_extra: &str) -> Parley {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let port = parley_testkit::free_port;
        let (c2s, tls, http, admin) = (port(), port(), port(), port());
        let config = dir.path().join("parley.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = [\"localhost\"]\ndata_dir = '{}'\nworkers = 2\n\n\
                 [c2s]\nlisten = [\"127.0.0.1:{c2s}\"]\ndirect_tls = [\"127.0.0.1:{tls}\"]\n\n\
                 [http]\nlisten = \"127.0.0.1:{http}\"\n{http_extra}\n\
                 [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
                 [limits]\nmax_connections_per_ip = 100000\nconnection_rate_per_ip = 100000\n\
                 connection_burst_per_ip = 100000\n\n\
                 [log]\nlevel = \"warn\"\n",
                data.display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(parley_testkit::parley_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start parley");
        let server = Parley {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            dir,
        };
        let admin = SocketAddr::from(([127, 0, 0, 1], admin));
        parley_testkit::poll_until("parley ready", Duration::from_secs(60), || {
            parley_testkit::cluster::http_get(admin, "/ready", None)
                .filter(|(status, _)| *status == 200)
        });
        server
    }

    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc status"))
    }

    /// Resets the peak RSS (VmHWM) to the current RSS and returns that, in bytes.
    pub fn reset_peak_rss(&self) -> u64 {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("reset VmHWM (/proc/<pid>/clear_refs)");
        self.status_kb("VmRSS:") * 1024
    }

    /// Peak RSS since the last reset, bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kb("VmHWM:") * 1024
    }
}

impl Drop for Parley {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("server.log"));
            eprintln!("--- server log ---\n{}", log.unwrap_or_default());
        }
    }
}

/// A new BOSH session's SID.
pub fn create_session(http: SocketAddr, rid: u64) -> String {
    let answer = KeepAlive::new(http).post("/http-bind", &super::create_body(rid));
    let start = answer
        .find(" sid='")
        .unwrap_or_else(|| panic!("no sid: {answer}"))
        + 6;
    let len = answer[start..].find('\'').expect("sid ends");
    answer[start..start + len].to_owned()
}

/// An HTTP/1.1 connection kept alive across requests.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            reader: BufReader::new(TcpStream::connect(addr).expect("connect")),
        }
    }

    /// POSTs `body`; the answer's body (the status must be 200).
    pub fn post(&mut self, path: &str, body: &str) -> String {
        write!(
            self.reader.get_mut(),
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut status = String::new();
        self.reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().expect("length");
                }
            }
        }
        let mut out = vec![0; length];
        self.reader.read_exact(&mut out).expect("body");
        String::from_utf8(out).expect("UTF-8")
    }
}
