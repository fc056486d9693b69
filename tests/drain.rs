//! Drain and rolling restarts against real processes (a real etcd and PostgreSQL): a node
//! drained through the CLI (the admin API) or SIGTERM turns not-ready, refuses new
//! connections, asks its clients to move (RFC 6120 §4.9.3.19 `<see-other-host/>`, RFC 7395
//! §3.6.1 `see-other-uri`), keeps the sessions that hibernated (XEP-0198 §5) until its drain
//! timeout, and exits with status 0. A single node's drain is the plain shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parley_proto::ns;
use parley_testkit::cluster::{add_users, wait_members, ClusterNode, Extra};
use parley_testkit::{shared_etcd, shared_pg, Client, Received, TestServer};
use parley_xml::{Element, Limits};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Where the drained node sends its TCP clients (the load balancer, in production).
const REDIRECT: &str = "lb.example.org:5222";
/// Where it sends its WebSocket clients.
const REDIRECT_WS: &str = "wss://lb.example.org/xmpp-websocket";

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    parley_testkit::poll_until(what, within, || done().then_some(()));
}

/// Nodes `ids` of one new cluster, each redirecting drained clients, with `drain_timeout_s`.
fn cluster(ids: &[&str], drain_timeout_s: u64) -> Vec<ClusterNode> {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob", "carol"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("d");
    let extra = Extra {
        c2s: format!("redirect_host = \"{REDIRECT}\""),
        cluster: format!("drain_timeout_s = {drain_timeout_s}"),
        http: format!("redirect_ws_uri = \"{REDIRECT_WS}\""),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = ids
        .iter()
        .map(|id| ClusterNode::start_with(id, &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, nodes.len());
    nodes
}

/// The stream error that ends a stream: its condition and the condition element's text
/// (`<see-other-host>` carries the address, RFC 6120 §4.9.3.19).
async fn stream_error(c: &mut Client) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv_within(left).await {
            Ok(Some(Received::Element(el))) if el.is("error", ns::STREAM) => {
                let cond = el
                    .children()
                    .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
                    .expect("a condition");
                return (cond.name().to_owned(), cond.text());
            }
            Ok(Some(Received::Element(_) | Received::Header(_))) => {}
            other => panic!("expected a stream error, got {other:?}"),
        }
    }
}

/// XEP-0198 §3 and §5: enables Stream Management with resumption.
async fn enable_resumption(c: &mut Client) {
    c.send(&Element::new("enable", ns::SM).with_attr("resume", "true"))
        .await;
    let enabled = c
        .recv_until(|el| el.ns() == ns::SM && el.name() != "r")
        .await
        .expect("an answer to <enable/>");
    assert!(enabled.is("enabled", ns::SM), "{enabled}");
    assert_eq!(enabled.attr("resume"), Some("true"), "{enabled}");
}

fn metric(node: &ClusterNode, sample: &str) -> Option<u64> {
    let (_, text) = node.api("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|v| v.trim().parse().ok())
}

fn sessions(node: &ClusterNode) -> Vec<serde_json::Value> {
    let (status, body) = node.api("/api/v1/sessions");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["sessions"].as_array().unwrap().clone()
}

/// A drain started by `parley node drain` (`POST /api/v1/nodes/{id}/drain`): readiness is
/// false at once; bound clients are told `<see-other-host>` naming `[c2s] redirect_host`
/// (RFC 6120 §4.9.3.19); a new TCP connection is refused with the same redirect, right after
/// our stream header, and a WebSocket upgrade with 503; a session with resumption enabled
/// (XEP-0198 §5) hibernates on the draining node, which stays a member serving it until
/// `[cluster] drain_timeout_s` (a SIGTERM meanwhile joins the drain, as after Kubernetes'
/// preStop hook), then leaves the cluster and exits with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_19_a_drained_node_redirects_keeps_hibernating_sessions_then_exits() {
    const DRAIN_TIMEOUT: u64 = 6;
    let mut nodes = cluster(&["n1", "n2"], DRAIN_TIMEOUT);
    let mut plain = Client::login(nodes[0].c2s, "alice", Some("plain")).await;
    plain.available().await;
    let mut resumable = Client::login(nodes[0].c2s, "bob", Some("phone")).await;
    enable_resumption(&mut resumable).await;
    resumable.available().await;
    resumable.sync().await.expect("sync");
    plain.sync().await.expect("sync");

    // Only the node asked drains itself; another member is named, an unknown one is not.
    let (status, body) = nodes[0].post("/api/v1/nodes/n2/drain");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("n2"), "{body}");
    assert_eq!(nodes[0].post("/api/v1/nodes/nobody/drain").0, 404);
    assert_eq!(
        parley_testkit::cluster::http_get(nodes[0].admin, "/ready", None).map(|r| r.0),
        Some(200)
    );

    let said = nodes[0].cli(&["node", "drain"]);
    let drain_started = Instant::now();
    assert!(said.contains("node n1 is draining"), "{said}");
    // At once: the load balancer must stop sending clients before any is asked to move.
    assert_eq!(
        parley_testkit::cluster::http_get(nodes[0].admin, "/ready", None).map(|r| r.0),
        Some(503)
    );
    // Kubernetes sends SIGTERM once the preStop drain command returns: it joins the drain
    // instead of cutting it short (checked below: n1 still waits for its drain timeout).
    nodes[0].signal_term();

    assert_eq!(
        stream_error(&mut plain).await,
        ("see-other-host".to_owned(), REDIRECT.to_owned())
    );
    assert_eq!(
        stream_error(&mut resumable).await,
        ("see-other-host".to_owned(), REDIRECT.to_owned())
    );
    // The client goes away to reconnect elsewhere; its session waits here for the resume.
    drop(resumable);

    // New clients are turned away at once, with the same redirect.
    let mut late = Client::connect(nodes[0].c2s).await;
    assert_eq!(
        stream_error(&mut late).await,
        ("see-other-host".to_owned(), REDIRECT.to_owned())
    );
    let mut req = format!("ws://{}/xmpp-websocket", nodes[0].http)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("a WebSocket upgrade during a drain must be refused: {other:?}"),
    }

    // bob's session hibernates on n1, which keeps running for it.
    wait_for(
        "bob's session hibernating on n1",
        Duration::from_secs(5),
        || {
            sessions(&nodes[0])
                .iter()
                .any(|s| s["jid"] == "bob@localhost/phone" && s["status"] == "hibernating")
        },
    );
    assert_eq!(
        metric(&nodes[0], "parley_sm_hibernating_sessions{node=\"n1\"}"),
        Some(1)
    );
    assert_eq!(metric(&nodes[0], "parley_draining{node=\"n1\"}"), Some(1));
    assert_eq!(
        metric(&nodes[0], "parley_drains_total{node=\"n1\"}"),
        Some(1)
    );
    assert_eq!(
        metric(
            &nodes[0],
            "parley_refusals_total{node=\"n1\",reason=\"draining\"}"
        ),
        Some(2)
    );
    assert!(
        nodes[0].running(),
        "n1 must wait for its hibernating session"
    );
    let (_, members) = nodes[1].api("/api/v1/nodes");
    assert!(
        members.contains("\"n1\""),
        "n1 is still a member: {members}"
    );

    // Nobody resumes bob's session: the drain timeout ends it, and n1 exits cleanly.
    let status = nodes[0].wait_exit(Duration::from_secs(DRAIN_TIMEOUT + 20));
    let took = drain_started.elapsed();
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        nodes[0].log()
    );
    assert!(
        took >= Duration::from_secs(DRAIN_TIMEOUT) - Duration::from_millis(500),
        "n1 exited after {took:?}, before its drain timeout, with a session hibernating"
    );
    // It left the cluster with its keys (lease revoked), not by expiry.
    wait_for("n2 sees n1 leave", Duration::from_secs(5), || {
        !nodes[1].api("/api/v1/nodes").1.contains("\"n1\"")
    });
    assert!(sessions(&nodes[1]).is_empty());
}

/// SIGTERM drains too: a TCP client gets `<see-other-host>` (RFC 6120 §4.9.3.19), a
/// WebSocket client `<close see-other-uri=…/>` (RFC 7395 §3.6.1) from `[http]
/// redirect_ws_uri`; neither resumes, so the node is empty at once and exits with status 0
/// long before its drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_3_6_1_sigterm_moves_tcp_and_websocket_clients_and_exits_once_empty() {
    const DRAIN_TIMEOUT: u64 = 60;
    let mut nodes = cluster(&["s1"], DRAIN_TIMEOUT);
    let node = &mut nodes[0];
    let mut tcp = Client::login(node.c2s, "alice", Some("desk")).await;
    tcp.available().await;
    tcp.sync().await.expect("sync");
    let mut ws = websocket_login(node.http, "carol", "web").await;

    let started = Instant::now();
    node.signal_term();
    assert_eq!(
        stream_error(&mut tcp).await,
        ("see-other-host".to_owned(), REDIRECT.to_owned())
    );
    let close = loop {
        let el = ws_next(&mut ws).await;
        if el.is("close", ns::FRAMING) {
            break el;
        }
    };
    assert_eq!(close.attr("see-other-uri"), Some(REDIRECT_WS), "{close}");
    let _ = ws.close(None).await;
    let status = node.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}:\n{}", node.log());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(DRAIN_TIMEOUT / 2),
        "an empty node exits at once, not after its drain timeout: {took:?}"
    );
}

/// A single node (no `[cluster]`) has nowhere to send clients or hand sessions to: its
/// drain is the plain shutdown, `<system-shutdown/>` (RFC 6120 §4.9.3.21) for everyone, and
/// a session with resumption enabled ends instead of hibernating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_21_a_single_node_drain_is_a_shutdown() {
    let server = TestServer::start(|c| c.c2s.redirect_host = REDIRECT.to_owned());
    let mut c = Client::login(server.c2s(), "alice", Some("phone")).await;
    enable_resumption(&mut c).await;
    c.available().await;
    c.sync().await.expect("sync");
    assert!(server.handle.drain(), "the first drain starts");
    assert!(!server.handle.drain(), "a second one joins it");
    assert_eq!(stream_error(&mut c).await.0, "system-shutdown");
    drop(c);
    let router = server.handle.router.clone();
    wait_for(
        "no session left, none hibernating",
        Duration::from_secs(10),
        || router.session_count() == 0,
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_send(ws: &mut Ws, xml: &str) {
    ws.send(Message::text(xml)).await.expect("send");
}

/// The next element (RFC 7395 §3.3.1: one per message).
async fn ws_next(ws: &mut Ws) -> Element {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s")
            .expect("the WebSocket is open")
            .expect("no protocol error");
        match msg {
            Message::Text(text) => {
                return Element::parse(text.as_bytes(), &Limits::default())
                    .unwrap_or_else(|e| panic!("not one element: {text}: {e}"))
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Logs in over WebSocket with PLAIN (loopback counts as encrypted) and binds `resource`.
async fn websocket_login(http: SocketAddr, user: &str, resource: &str) -> Ws {
    use base64::Engine as _;
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket upgrade");
    const OPEN: &str =
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    ws_send(&mut ws, OPEN).await;
    assert!(ws_next(&mut ws).await.is("open", ns::FRAMING));
    assert!(ws_next(&mut ws).await.is("features", ns::STREAM));
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0password"));
    ws_send(
        &mut ws,
        &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"),
    )
    .await;
    let success = ws_next(&mut ws).await;
    assert!(success.is("success", ns::SASL), "{success}");
    ws_send(&mut ws, OPEN).await;
    assert!(ws_next(&mut ws).await.is("open", ns::FRAMING));
    assert!(ws_next(&mut ws).await.is("features", ns::STREAM));
    ws_send(
        &mut ws,
        &format!(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ),
    )
    .await;
    let bound = ws_next(&mut ws).await;
    assert_eq!(bound.attr("type"), Some("result"), "{bound}");
    ws
}
