//! Floods before authentication against a real `parley` process, measured as the growth of
//! its resident memory (VmRSS in /proc/<pid>/status): SASL `<auth/>` over TCP without
//! reading, RFC 7395 `<open/>` over WebSocket without reading, and BOSH restarts. Each flood
//! may go on for 10 s but ends as soon as the server has closed the connection; the server
//! must close it (the per-connection counts) and stay under 8 MiB of growth (the bounded
//! outbox and the input pause).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use parley_testkit::{free_port, parley_binary, poll_until};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The growth allowed for one flooding connection.
const MAX_GROWTH_KIB: u64 = 8 * 1024;
/// How long a flood may go on.
const FLOOD_FOR: Duration = Duration::from_secs(10);

/// A `parley serve` process on loopback ports, with plain-TCP SASL allowed.
struct Parley {
    child: Child,
    c2s: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Parley {
    fn start() -> Parley {
        let dir = tempfile::tempdir().unwrap();
        let [c2s, http, admin] = [0; 3].map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let config = dir.path().join("parley.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = [\"localhost\"]\ndata_dir = '{}'\nworkers = 2\n\n\
                 [c2s]\nlisten = [\"{c2s}\"]\ndirect_tls = []\nrequire_encryption = false\n\n\
                 [http]\nlisten = \"{http}\"\n\n[admin]\nlisten = \"{admin}\"\n\n\
                 [sasl]\nscram_iterations = 4096\n\n[log]\nlevel = \"warn\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(parley_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start parley serve");
        let p = Parley {
            child,
            c2s,
            http,
            log,
            _dir: dir,
        };
        poll_until("parley is ready", Duration::from_secs(30), || {
            parley_testkit::cluster::http_get(admin, "/ready", None)
                .filter(|(status, _)| *status == 200)
        });
        p
    }

    /// VmRSS of the server process, KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Parley {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `chunk` over and over, never reading, until a write fails (the server closed the
/// connection) or the flood time is over. Returns whether the server closed it, and the
/// bytes written.
async fn flood_tcp(addr: SocketAddr, first: &[u8], chunk: &[u8]) -> (bool, usize) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(first).await.unwrap();
    let deadline = Instant::now() + FLOOD_FOR;
    let mut sent = 0;
    loop {
        match tokio::time::timeout_at(deadline, s.write_all(chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => return (true, sent),
            Err(_) => return (false, sent),
        }
    }
}

fn report(what: &str, before: u64, after: u64, sent: &str) {
    eprintln!(
        "{what}: {sent} sent; server VmRSS {before} KiB -> {after} KiB (+{} KiB)",
        after.saturating_sub(before)
    );
}

/// RFC 6120 §6.4: a client that floods `<auth/>` without reading is closed after
/// `c2s.max_sasl_attempts`, and the server's memory does not follow the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_auth_flood_without_reading_is_closed_and_bounded() {
    let server = Parley::start();
    let header = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
                   xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    // Warm up: one connection through the same code paths, so that lazily allocated
    // per-thread state is not counted as growth.
    let auth = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>";
    let _ = flood_tcp(server.c2s, header, &auth.repeat(10)).await;
    let before = server.rss_kib();
    let (closed, sent) = flood_tcp(server.c2s, header, &auth.repeat(800)).await;
    let after = server.rss_kib();
    report(
        "SASL <auth/> flood",
        before,
        after,
        &format!("{sent} bytes"),
    );
    assert!(
        closed,
        "the server did not close the flooding connection within {FLOOD_FOR:?}"
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "VmRSS grew from {before} KiB to {after} KiB\n{}",
        server.log()
    );
}

/// RFC 7395 §3.3: a WebSocket client that floods `<open/>` without reading is closed after
/// `c2s.max_stream_opens`, and the server's memory does not follow the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_open_flood_over_websocket_without_reading_is_closed_and_bounded() {
    let server = Parley::start();
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    let flood = |frames: usize| {
        let http = server.http;
        async move {
            let mut req = format!("ws://{http}/xmpp-websocket")
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let deadline = Instant::now() + FLOOD_FOR;
            let mut sent = 0;
            while sent < frames {
                match tokio::time::timeout_at(deadline, ws.send(Message::text(open))).await {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(_)) => return (true, sent * open.len()),
                    Err(_) => return (false, sent * open.len()),
                }
            }
            (false, sent * open.len())
        }
    };
    let _ = flood(20).await;
    let before = server.rss_kib();
    let (closed, sent) = flood(usize::MAX).await;
    let after = server.rss_kib();
    report(
        "WebSocket <open/> flood",
        before,
        after,
        &format!("{sent} bytes"),
    );
    assert!(
        closed,
        "the server did not close the flooding WebSocket within {FLOOD_FOR:?}"
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "VmRSS grew from {before} KiB to {after} KiB\n{}",
        server.log()
    );
}

/// One HTTP request to /http-bind; the answer's body.
async fn post(http: SocketAddr, body: String) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n").unwrap().1.to_owned()
    })
    .await
    .unwrap()
}

/// XEP-0206 §5: restart requests (`xmpp:restart='true'`) reopen the stream; a client that
/// repeats them is closed after `c2s.max_stream_opens` (`<policy-violation/>`), and the
/// server's memory does not follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0206_restart_flood_over_bosh_is_closed_and_bounded() {
    let server = Parley::start();
    let flood = || async {
        let created = post(
            server.http,
            "<body xmlns='http://jabber.org/protocol/httpbind' to='localhost' rid='1000' \
             wait='5' hold='1' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
                .to_owned(),
        )
        .await;
        let sid = created
            .split("sid='")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .expect("a sid")
            .to_owned();
        let deadline = Instant::now() + FLOOD_FOR;
        let mut restarts = 0;
        while Instant::now() < deadline {
            restarts += 1;
            let answer = post(
                server.http,
                format!(
                    "<body xmlns='http://jabber.org/protocol/httpbind' sid='{sid}' rid='{}' \
                     to='localhost' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>",
                    1000 + restarts
                ),
            )
            .await;
            if answer.contains("type='terminate'") {
                return (Some(answer), restarts);
            }
        }
        (None, restarts)
    };
    let _ = flood().await;
    let before = server.rss_kib();
    let (ended, restarts) = flood().await;
    let after = server.rss_kib();
    report(
        "BOSH restart flood",
        before,
        after,
        &format!("{restarts} restarts"),
    );
    let ended = ended.expect("the server did not end the flooding BOSH session");
    assert!(ended.contains("policy-violation"), "{ended}");
    assert!(restarts <= 10, "{restarts} restarts before the end");
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "VmRSS grew from {before} KiB to {after} KiB\n{}",
        server.log()
    );
}
