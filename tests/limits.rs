//! Connection limits (issue 10), in-process over real sockets: connections per address and
//! their rate, the node-wide session cap, the same limiter for c2s TCP, WebSocket and BOSH,
//! SASL `<auth/>` and stream headers counted per connection, and the read rate as
//! back-pressure. Floods measured on a real `parley` process are in `floods.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parley_proto::ns;
use parley_testkit::{Client, Received, TestServer};
use parley_xml::Element;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
const AUTH: &str = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>";

/// A connection whose stream is open (its session exists and holds a permit).
async fn opened(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    c.open().await.expect("stream features");
    c
}

/// The stream error a new connection gets (its header sent first, as a client does).
async fn refused(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr).await;
    c.send_header().await;
    c.expect_stream_error().await.expect("a stream error")
}

/// A WebSocket upgrade: Ok, or the HTTP status that refused it.
async fn ws_connect(
    http: SocketAddr,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket connect: {e}"),
    }
}

/// A BOSH session creation request; the HTTP status and body.
async fn bosh_create(http: SocketAddr) -> (u16, String, Option<String>) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let body = "<body xmlns='http://jabber.org/protocol/httpbind' to='localhost' rid='100' \
                    wait='5' hold='1' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>";
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, payload) = out.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let retry_after = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
            .map(|l| l[12..].trim().to_owned());
        (status, payload.to_owned(), retry_after)
    })
    .await
    .unwrap()
}

/// RFC 6120 §4.9.3.14: past `limits.max_connections_per_ip` a connection gets
/// `<policy-violation/>`; a session that ends gives its place back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_14_connections_per_address_are_limited_and_given_back() {
    let server = TestServer::start(|c| c.limits.max_connections_per_ip = 2);
    let mut a = opened(server.c2s()).await;
    let _b = opened(server.c2s()).await;
    assert_eq!(refused(server.c2s()).await, "policy-violation");
    // Direct TLS counts against the same limit (closed without a handshake).
    let mut tls = tokio::net::TcpStream::connect(server.direct_tls())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut tls, &mut buf)
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "a refused direct-TLS connection is closed at once");
    // When a session ends, its place is free again.
    a.send_raw("</stream:stream>").await.unwrap();
    a.expect_eof().await.unwrap();
    drop(a);
    let c2s = server.c2s();
    parley_testkit::poll_until(
        "a new connection is admitted",
        Duration::from_secs(10),
        || admitted(c2s).then_some(()),
    );
}

/// Whether a new connection gets stream features (rather than a refusal).
fn admitted(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen);
        if text.contains("features") {
            return true;
        }
        if text.contains("policy-violation") {
            return false;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// RFC 6120 §4.9.3.14: new connections from one address are limited by a token bucket
/// (`limits.connection_rate_per_ip`, `connection_burst_per_ip`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_14_new_connections_per_address_are_rate_limited() {
    let server = TestServer::start(|c| {
        c.limits.connection_rate_per_ip = 1;
        c.limits.connection_burst_per_ip = 2;
    });
    let _a = opened(server.c2s()).await;
    let _b = opened(server.c2s()).await;
    assert_eq!(refused(server.c2s()).await, "policy-violation");
}

/// RFC 6120 §4.9.3.17: past `limits.max_sessions` the node is full: `<resource-constraint/>`
/// on c2s, HTTP 503 with Retry-After for WebSocket and BOSH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_17_a_full_node_answers_resource_constraint_and_503() {
    let server = TestServer::start(|c| c.limits.max_sessions = 1);
    let http = server.handle.http.unwrap();
    let _a = opened(server.c2s()).await;
    assert_eq!(refused(server.c2s()).await, "resource-constraint");
    assert_eq!(ws_connect(http).await.err(), Some(503));
    let (status, body, retry) = bosh_create(http).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "Retry-After");
}

/// One limiter for every transport: WebSocket connections and BOSH sessions count with c2s
/// connections; a refused upgrade or session creation is HTTP 429 (XEP-0124 §17.2 body with
/// `policy-violation` for BOSH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_bosh_and_c2s_share_the_per_address_limit() {
    let server = TestServer::start(|c| c.limits.max_connections_per_ip = 2);
    let http = server.handle.http.unwrap();
    let mut ws = ws_connect(http).await.expect("first WebSocket");
    ws.send(Message::text(OPEN)).await.unwrap();
    // The session exists once it answers (its permit is held from before the upgrade).
    let _ = ws.next().await.expect("open answered");
    let (status, body, _) = bosh_create(http).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ws_connect(http).await.err(), Some(429));
    let (status, body, retry) = bosh_create(http).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("condition='policy-violation'"), "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(refused(server.c2s()).await, "policy-violation");
}

/// Every `<auth/>` counts (`c2s.max_sasl_attempts`), not only failures: an `<auth/>` without
/// an initial response earns an empty challenge (RFC 6120 §6.4.2), never a failure, so only
/// counting elements bounds it. One more than allowed: `<policy-violation/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_auth_elements_are_counted_per_connection() {
    let server = TestServer::start(|c| c.c2s.require_encryption = false);
    let mut c = opened(server.c2s()).await;
    c.send_raw(AUTH.repeat(6)).await.unwrap();
    let mut challenges = 0;
    let condition = loop {
        match c.recv().await.expect("server output") {
            Received::Element(el) if el.is("challenge", ns::SASL) => challenges += 1,
            Received::Element(el) if el.is("error", ns::STREAM) => {
                break el
                    .children()
                    .find(|e| e.ns() == ns::STREAM_ERRORS && e.name() != "text")
                    .map(|e| e.name().to_owned())
                    .unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(challenges, 5);
    assert_eq!(condition, "policy-violation");
}

/// RFC 7395 §3.3: `<open/>` (re)opens the stream; past `c2s.max_stream_opens` the stream is
/// closed with `<policy-violation/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_3_3_open_elements_are_counted_per_connection() {
    let server = TestServer::start(|c| c.c2s.max_stream_opens = 3);
    let mut ws = ws_connect(server.handle.http.unwrap()).await.unwrap();
    for _ in 0..4 {
        ws.send(Message::text(OPEN)).await.unwrap();
    }
    let (mut opens, mut error) = (0, None);
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let el = Element::parse(text.as_bytes(), &Default::default()).unwrap();
        if el.is("open", ns::FRAMING) {
            opens += 1;
        } else if el.is("error", ns::STREAM) {
            error = Some(el);
        } else if el.is("close", ns::FRAMING) {
            break;
        }
    }
    assert_eq!(opens, 3);
    let error = error.expect("a stream error before <close/>");
    assert!(
        error.has_child("policy-violation", ns::STREAM_ERRORS),
        "{error}"
    );
}

/// Past `limits.read_bytes_per_s` (after the burst) the session stops reading until tokens
/// refill: it is slowed down, not disconnected, and a timer wakes it (every ping is answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_read_rate_a_session_waits_and_is_not_disconnected() {
    let server = TestServer::start(|c| {
        c.c2s.max_stanza_bytes = 10_000;
        c.limits.read_burst_bytes = 10_000;
        c.limits.read_bytes_per_s = 8192;
    });
    let admin = server.handle.admin.unwrap();
    let throttled = || {
        parley_testkit::cluster::http_get(admin, "/metrics", None)
            .unwrap()
            .1
            .lines()
            .find(|l| l.starts_with("parley_reads_throttled_total{"))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap()
    };
    let before = throttled();
    let mut c = Client::login(server.c2s(), "alice", Some("r")).await;
    // About 24 KiB of pings in one go: well past the burst.
    let pings: String = (0..300)
        .map(|i| {
            format!("<iq type='get' id='p{i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        })
        .collect();
    assert!(pings.len() > 20_000);
    c.send_raw(&pings).await.unwrap();
    for i in 0..300 {
        let el = c.recv_element().await.expect("every ping is answered");
        assert_eq!(el.attr("id"), Some(format!("p{i}").as_str()), "{el}");
        assert_eq!(el.attr("type"), Some("result"), "{el}");
    }
    assert!(throttled() > before, "the session was throttled");
}
