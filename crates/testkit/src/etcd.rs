//! A real single-member etcd for tests (Debian's `etcd-server`), on free loopback ports
//! in a temporary directory, under the same watchdog as [`crate::PgServer`].
//!
//! Tests of cluster behaviour across etcd outages [`EtcdServer::stop`] and
//! [`EtcdServer::restart`] it on the same data and ports. [`EtcdServer::http`] speaks
//! HTTP/1.1 to the v3 JSON gateway with nothing but a TCP socket, so that these tests
//! need no etcd client of their own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pg::{remove_when_test_exits, Watched};

/// How long etcd may take to report itself healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The etcd binary on `PATH` or where Debian puts it.
fn etcd_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("etcd"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    match on_path.or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file())) {
        Some(path) => path,
        None => panic!("etcd not found on PATH: install etcd-server (tests/run does)"),
    }
}

/// A running etcd, killed on drop.
#[derive(Debug)]
pub struct EtcdServer {
    /// `http://127.0.0.1:PORT`, the client URL.
    pub endpoint: String,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
    /// `None` while stopped.
    process: Option<Watched>,
    dir: TempDir,
}

impl EtcdServer {
    /// Starts etcd on two free loopback ports (client and peer) and waits until it is
    /// healthy. Panics with an install hint if etcd is not installed.
    pub fn start() -> EtcdServer {
        let binary = etcd_binary();
        let dir = tempfile::Builder::new()
            .prefix("parley-etcd-")
            .tempdir()
            .expect("temp dir for etcd");
        remove_when_test_exits(dir.path());
        let (client_port, peer_port) = (crate::free_port(), crate::free_port());
        let mut server = EtcdServer {
            endpoint: format!("http://127.0.0.1:{client_port}"),
            client_port,
            peer_port,
            binary,
            process: None,
            dir,
        };
        server.restart();
        server
    }

    /// Kills etcd (as a crash would); its data stays for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop("KILL");
        }
    }

    /// Starts etcd again on the same data directory and ports, stopping it first if it
    /// runs, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let args: Vec<String> = [
            "--name",
            "default",
            "--data-dir",
            &self.dir.path().join("data").display().to_string(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("default={peer}"),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let log = self.dir.path().join("etcd.log");
        let mut process = Watched::spawn(self.dir.path(), log, "KILL", &self.binary, &args);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let healthy = self
                .http("GET", "/health", "")
                .is_ok_and(|(status, body)| status == 200 && body.contains("true"));
            if healthy {
                break;
            }
            if process.exited() || Instant::now() > deadline {
                panic!("etcd did not become healthy:\n{}", process.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
    }

    /// Whether etcd is running (not [`EtcdServer::stop`]ped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// `host:port` of the client URL.
    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The data directory's parent.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One HTTP/1.1 request to the client URL (`body` sent as JSON when not empty):
    /// the status code and the body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(self.client_addr())?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.client_addr(),
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        parse_response(&response)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Status and body of an HTTP/1.1 response, undoing chunked transfer encoding (which
/// the gateway uses for its JSON).
fn parse_response(response: &[u8]) -> std::io::Result<(u16, String)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status code"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_owned()));
    }
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| invalid("truncated chunk"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            return Ok((status, decoded));
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| invalid("truncated chunk"))?;
        decoded.push_str(chunk);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// One etcd for the whole test binary, started on first use; tests keep apart by key
/// prefix. The watchdog kills it when the binary exits.
pub fn shared_etcd() -> &'static EtcdServer {
    static SHARED: OnceLock<EtcdServer> = OnceLock::new();
    SHARED.get_or_init(EtcdServer::start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9112 §7.1: chunked bodies are reassembled from their sized chunks.
    #[test]
    fn rfc9112_7_1_chunked_body_is_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, "Wikipedia ".into()));
    }

    #[test]
    fn plain_body_and_status_are_returned() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(parse_response(raw).unwrap(), (404, "no".into()));
        assert!(parse_response(b"garbage").is_err());
    }
}
