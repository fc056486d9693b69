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
use std::time::Duration;

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
    /// `http://127.0.0.1:PORT` (`https://` for [`EtcdServer::start_secure`]), the client URL.
    pub endpoint: String,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
    /// `None` while stopped.
    process: Option<Watched>,
    dir: TempDir,
    /// TLS flags for etcd ([`EtcdServer::start_secure`]).
    tls_args: Vec<String>,
    /// The gateway client's TLS (client certificate), once etcd speaks only TLS.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Whether gateway requests log in as [`crate::etcd_tls::ETCD_USER`] first.
    login: bool,
    /// The files nodes use to reach a secure etcd.
    files: Option<crate::etcd_tls::EtcdTlsFiles>,
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
            tls_args: Vec::new(),
            tls: None,
            login: false,
            files: None,
        };
        server.restart();
        server
    }

    /// Starts etcd as production should run it: TLS on the client URL, client
    /// certificates required (`--client-cert-auth`, CA from rcgen) and auth enabled with
    /// user [`crate::etcd_tls::ETCD_USER`]. [`EtcdServer::tls_files`] has what a node
    /// needs; [`EtcdServer::http`] keeps working (over TLS, logged in).
    pub fn start_secure() -> EtcdServer {
        let mut server = EtcdServer::start();
        crate::etcd_tls::enable_auth(&server);
        let setup = crate::etcd_tls::make_certs(server.dir.path());
        server.tls_args = setup.args;
        server.tls = Some(setup.client);
        server.files = Some(setup.files);
        server.login = true;
        server.endpoint = format!("https://127.0.0.1:{}", server.client_port);
        server.restart();
        server
    }

    /// The CA, certificates and password files of a [`EtcdServer::start_secure`] etcd.
    pub fn tls_files(&self) -> &crate::etcd_tls::EtcdTlsFiles {
        self.files
            .as_ref()
            .expect("tls_files: etcd was not started with start_secure")
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
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
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
        .chain(self.tls_args.iter().cloned())
        .collect();
        let log = self.dir.path().join("etcd.log");
        let mut process = Watched::spawn(self.dir.path(), log, "KILL", &self.binary, &args);
        // etcd announces health only through /health, so it is asked until it says yes.
        let report = process.log_reader();
        crate::poll_until_reporting(
            "etcd healthy",
            START_TIMEOUT,
            || {
                let healthy = self
                    .http("GET", "/health", "")
                    .is_ok_and(|(status, body)| status == 200 && body.contains("true"));
                if !healthy && process.exited() {
                    panic!("etcd exited on start:\n{}", process.log());
                }
                healthy.then_some(())
            },
            report,
        );
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
    ///
    /// On a [`EtcdServer::start_secure`] etcd this goes over TLS with the test client
    /// certificate and logs in first (except for `/health`).
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let token = match self.login && path != "/health" && path != "/v3/auth/authenticate" {
            false => String::new(),
            true => {
                let (status, answer) = self.http(
                    "POST",
                    "/v3/auth/authenticate",
                    &format!(
                        r#"{{"name":"{}","password":"{}"}}"#,
                        crate::etcd_tls::ETCD_USER,
                        crate::etcd_tls::ETCD_PASSWORD
                    ),
                )?;
                let token = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["token"].as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        std::io::Error::other(format!("etcd login failed ({status}): {answer}"))
                    })?;
                format!("Authorization: {token}\r\n")
            }
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             {token}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.client_addr(),
            body.len()
        );
        let response = match &self.tls {
            Some(tls) => {
                crate::etcd_tls::tls_exchange(tls, &self.client_addr(), request.as_bytes())?
            }
            None => {
                let mut stream = TcpStream::connect(self.client_addr())?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                stream.write_all(request.as_bytes())?;
                let mut response = Vec::new();
                stream.read_to_end(&mut response)?;
                response
            }
        };
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
