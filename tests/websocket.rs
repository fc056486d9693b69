//! XMPP over WebSocket (RFC 7395) on the HTTP listener, with a real WebSocket client
//! (tokio-tungstenite): the subprotocol and Origin checks of the upgrade, `<open/>` and
//! `<close/>` framing, one element per message, SASL and binding, chat with a TCP client, the
//! stanza limit, and connection discovery (XEP-0156).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use parley_proto::ns;
use parley_testkit::im::chat;
use parley_testkit::{Client, TestServer};
use parley_xml::{Element, Limits};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/// Upgrades with the given subprotocol and Origin; Err(status) when refused.
async fn connect(
    http: SocketAddr,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, u16> {
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            assert_eq!(
                resp.headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok()),
                Some("xmpp"),
                "RFC 7395 §3.1: the server selects the xmpp subprotocol"
            );
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket connect: {e}"),
    }
}

/// The next text message, parsed: every message is exactly one element (RFC 7395 §3.3.1).
async fn next(ws: &mut Ws) -> Element {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the WebSocket is open")
            .expect("no protocol error");
        match msg {
            Message::Text(text) => {
                return Element::parse(text.as_bytes(), &Limits::default())
                    .unwrap_or_else(|e| panic!("not exactly one element: {text}: {e}"))
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, xml: &str) {
    ws.send(Message::text(xml)).await.expect("send");
}

/// Opens the stream and returns the features.
async fn open(ws: &mut Ws) -> Element {
    send(ws, OPEN).await;
    let open = next(ws).await;
    assert!(open.is("open", ns::FRAMING), "RFC 7395 §3.3.2: {open}");
    assert_eq!(open.attr("version"), Some("1.0"));
    assert_eq!(open.attr("from"), Some("localhost"));
    assert!(open.attr("id").is_some());
    let features = next(ws).await;
    assert!(features.is("features", ns::STREAM), "{features}");
    features
}

/// Logs in with PLAIN (the listener is on loopback, so it counts as encrypted) and binds.
async fn login(ws: &mut Ws, user: &str, resource: &str) -> String {
    let features = open(ws).await;
    let mechs: Vec<String> = features
        .get_child("mechanisms", ns::SASL)
        .expect("SASL offered: loopback counts as encrypted ([http] consider_secure)")
        .children()
        .map(|m| m.text())
        .collect();
    assert!(mechs.iter().any(|m| m == "PLAIN"), "{mechs:?}");
    assert!(
        !features.has_child("starttls", ns::TLS),
        "no STARTTLS on WebSocket (RFC 7395 §3.2)"
    );
    let creds = base64::engine::general_purpose::STANDARD.format_plain(user);
    send(
        ws,
        &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"),
    )
    .await;
    let success = next(ws).await;
    assert!(success.is("success", ns::SASL), "{success}");
    // RFC 7395 §3.5: the client opens again after SASL.
    let features = open(ws).await;
    assert!(features.has_child("bind", ns::BIND), "{features}");
    send(
        ws,
        &format!(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ),
    )
    .await;
    let bound = next(ws).await;
    assert_eq!(bound.attr("type"), Some("result"), "{bound}");
    assert_eq!(
        bound.ns(),
        ns::CLIENT,
        "stanzas carry jabber:client (RFC 7395 §3.4)"
    );
    bound
        .get_child("bind", ns::BIND)
        .and_then(|b| b.get_child("jid", ns::BIND))
        .map(|j| j.text())
        .expect("bound JID")
}

trait PlainCreds {
    fn format_plain(&self, user: &str) -> String;
}

impl PlainCreds for base64::engine::GeneralPurpose {
    fn format_plain(&self, user: &str) -> String {
        self.encode(format!("\0{user}\0password"))
    }
}

/// RFC 7395 §3.1: a client that does not offer the `xmpp` subprotocol is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_3_1_the_xmpp_subprotocol_is_required() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.expect("HTTP listener");
    assert_eq!(connect(http, None, None).await.err(), Some(400));
    assert_eq!(
        connect(http, Some("chat, mqtt"), None).await.err(),
        Some(400)
    );
    assert!(connect(http, Some("chat, xmpp"), None).await.is_ok());
}

/// Browsers send an Origin: only the configured ones may connect ([http] origins); native
/// clients send none and are always allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_connect() {
    let server = TestServer::start(|c| c.http.origins = vec!["https://chat.example.org".into()]);
    let http = server.handle.http.unwrap();
    assert_eq!(
        connect(http, Some("xmpp"), Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(
        connect(http, Some("xmpp"), Some("https://chat.example.org"))
            .await
            .is_ok()
    );
    assert!(connect(http, Some("xmpp"), None).await.is_ok());
    // With no origins configured, no browser page may connect.
    let closed = TestServer::start(|_| {});
    assert_eq!(
        connect(
            closed.handle.http.unwrap(),
            Some("xmpp"),
            Some("https://chat.example.org")
        )
        .await
        .err(),
        Some(403)
    );
}

/// RFC 7395 §3.3–§3.6: a WebSocket session is a session like any other: it authenticates,
/// binds, chats with a TCP client both ways, and closes with `<close/>` answered by
/// `<close/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_websocket_session_chats_with_a_tcp_client() {
    const ADMIN: &str = "ws-admin-token-0123456789abcdef";
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let mut ws = connect(server.handle.http.unwrap(), Some("xmpp"), None)
        .await
        .unwrap();
    let jid = login(&mut ws, "alice", "web").await;
    assert_eq!(jid, "alice@localhost/web");
    let mut bob = Client::login(server.c2s(), "bob", Some("tcp")).await;

    send(
        &mut ws,
        "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>from the web</body></message>",
    )
    .await;
    let got = bob.expect_message_body("from the web").await.unwrap();
    assert_eq!(got.attr("from"), Some("alice@localhost/web"));
    // The admin API names the session's transport (issue 17).
    let (_, list) = parley_testkit::admin_json(
        server.handle.admin.unwrap(),
        ADMIN,
        "GET",
        "/api/v1/users/alice@localhost/sessions",
        "",
    );
    assert_eq!(list["sessions"][0]["transport"], "websocket", "{list}");

    bob.send(&chat("alice@localhost/web", "chat", "from tcp"))
        .await;
    let msg = next(&mut ws).await;
    assert!(msg.is("message", ns::CLIENT), "{msg}");
    assert_eq!(
        msg.get_child("body", ns::CLIENT).map(|b| b.text()),
        Some("from tcp".to_owned())
    );

    send(
        &mut ws,
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
    )
    .await;
    let close = next(&mut ws).await;
    assert!(close.is("close", ns::FRAMING), "RFC 7395 §3.6: {close}");
}

/// The stanza limit is the same as on TCP (RFC 6120 §13.12, XEP-0478): a larger element
/// ends the stream with `<policy-violation/>`, then `<close/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_limit_applies_to_websocket() {
    let server = TestServer::start(|c| c.c2s.max_stanza_bytes = 10_000);
    let mut ws = connect(server.handle.http.unwrap(), Some("xmpp"), None)
        .await
        .unwrap();
    login(&mut ws, "alice", "big").await;
    let big = "z".repeat(10_500);
    send(
        &mut ws,
        &format!("<message xmlns='jabber:client' to='bob@localhost'><body>{big}</body></message>"),
    )
    .await;
    let error = next(&mut ws).await;
    assert!(error.is("error", ns::STREAM), "{error}");
    assert!(
        error.has_child("policy-violation", ns::STREAM_ERRORS),
        "{error}"
    );
    let close = next(&mut ws).await;
    assert!(close.is("close", ns::FRAMING), "{close}");
}

/// XEP-0156 §3: host-meta in both forms names the WebSocket endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0156_host_meta_names_the_websocket_endpoint() {
    let server = TestServer::start(|c| c.http.public_url = Some("https://chat.example.org".into()));
    let http = server.handle.http.unwrap();
    let (status, body) =
        parley_testkit::cluster::http_get(http, "/.well-known/host-meta.json", None)
            .expect("answer");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let links = json["links"].as_array().unwrap();
    assert!(links
        .iter()
        .any(|l| l["rel"] == "urn:xmpp:alt-connections:websocket"
            && l["href"] == "wss://chat.example.org/xmpp-websocket"));
    let (status, body) =
        parley_testkit::cluster::http_get(http, "/.well-known/host-meta", None).unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("href='wss://chat.example.org/xmpp-websocket'"),
        "{body}"
    );
}
