//! External components (XEP-0114, the Jabber Component Protocol) over real sockets against
//! a real server: the handshake (§3) and its refusals, the routing of a component's domain
//! both ways, the rules on what a component may send, one connection per domain, the
//! server's service discovery (XEP-0030) listing components, the admin API's view of a
//! component's session, bounds on hostile input, and a real component library (slixmpp's
//! ComponentXMPP) answering a real client.

use std::time::Duration;

use parley::config::Config;
use parley_proto::ns;
use parley_testkit::component;
use parley_testkit::im::{body, chat, error_condition};
use parley_testkit::{Client, ClientError, Received, TestServer};
use parley_xml::Element;

const BOT: &str = "bot.localhost";
const SECRET: &str = "component-secret-0123456789";
const ADMIN_TOKEN: &str = "component-admin-token-0123456789";

fn with_component(cfg: &mut Config) {
    cfg.component.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.component.secrets.insert(BOT.into(), SECRET.into());
    cfg.admin.token = Some(ADMIN_TOKEN.into());
}

fn server() -> TestServer {
    TestServer::start(with_component)
}

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Waits for the message with `text` in `c`'s stream (a component's: in its namespace).
async fn component_message(c: &mut Client, text: &str) -> Element {
    ok(component::message(c, text).await)
}

/// The stream error a component's connection ends with.
async fn stream_error(c: &mut Client) -> String {
    ok(c.expect_stream_error().await)
}

/// XEP-0114 §3: with the domain's secret the handshake is answered `<handshake/>`; then a
/// user's message to any JID of the domain reaches the component (in its namespace, from
/// the user's full JID), and the component's answer from its domain reaches the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_3_a_component_with_its_secret_serves_its_domain_both_ways() {
    let server = server();
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    alice
        .send(&chat("echo@bot.localhost", "chat", "hello"))
        .await;
    let got = component_message(&mut bot, "hello").await;
    assert_eq!(
        got.ns(),
        ns::COMPONENT,
        "in the component's namespace: {got}"
    );
    assert_eq!(got.attr("from"), Some("alice@localhost/phone"));
    assert_eq!(got.attr("to"), Some("echo@bot.localhost"));

    bot.send(
        &chat("alice@localhost/phone", "chat", "hello back")
            .with_attr("from", "echo@bot.localhost"),
    )
    .await;
    let answer = ok(alice.expect_message_body("hello back").await);
    assert_eq!(answer.attr("from"), Some("echo@bot.localhost"));
    // To the bare JID too (RFC 6121 §8.5.2.1.1: the user's available resource).
    bot.send(&chat("alice@localhost", "chat", "to the account").with_attr("from", BOT))
        .await;
    ok(alice.expect_message_body("to the account").await);
    // The session's counters (the admin API): the component sent two stanzas and got one.
    let admin = server.handle.admin.expect("admin endpoint");
    let (_, text) =
        parley_testkit::cluster::http_get(admin, "/api/v1/sessions", Some(ADMIN_TOKEN)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let record = json["sessions"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["host"] == BOT))
        .unwrap_or_else(|| panic!("no component in {json}"));
    assert_eq!(record["stanzas_in"], 2, "{record}");
    assert_eq!(record["stanzas_out"], 1, "{record}");
    // /metrics counts it as a component, not as a client.
    let (_, metrics) = parley_testkit::cluster::http_get(admin, "/metrics", None).unwrap();
    let gauge = |ty: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("parley_sessions{") && l.contains(&format!("type=\"{ty}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(gauge("component").as_deref(), Some("1"), "{metrics}");
    assert_eq!(gauge("c2s").as_deref(), Some("1"), "alice alone: {metrics}");
}

/// XEP-0114 §3: a handshake that does not prove the secret ends the stream with
/// `<not-authorized/>`, and the domain stays unserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_3_a_wrong_secret_is_not_authorized() {
    let server = server();
    let (mut c, answer) = component::handshake(server.component(), BOT, "not-the-secret").await;
    match answer {
        Ok(el) => assert!(
            el.is("error", ns::STREAM) && el.children().any(|c| c.name() == "not-authorized"),
            "{el}"
        ),
        Err(e) => panic!("{e}"),
    }
    assert!(matches!(
        ok(c.recv().await),
        Received::Close | Received::Eof
    ));
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.send(&chat(BOT, "chat", "anyone?")).await;
    let err = ok(alice
        .expect_match("the error", |el| el.attr("type") == Some("error"))
        .await);
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("service-unavailable")
    );
}

/// XEP-0114 §3 with RFC 6120 §4.9.3.6: a header for a domain with no component configured
/// is `<host-unknown/>`; one without `to` is `<improper-addressing/>`; a client's stream
/// on the component port is `<invalid-namespace/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_3_an_unknown_domain_or_a_wrong_stream_is_refused() {
    let server = server();
    let (mut c, _) = component::open(server.component(), "other.localhost").await;
    assert_eq!(stream_error(&mut c).await, "host-unknown");

    let mut c = Client::connect(server.component()).await;
    c.send_raw(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await
    .unwrap();
    assert_eq!(stream_error(&mut c).await, "improper-addressing");

    let mut c = Client::connect(server.component()).await;
    c.host = BOT.into();
    c.send_header().await;
    assert_eq!(stream_error(&mut c).await, "invalid-namespace");
}

/// XEP-0114 §3: nothing but the handshake is accepted first: a stanza is `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_3_a_stanza_before_the_handshake_is_not_authorized() {
    let server = server();
    let (mut c, _) = component::open(server.component(), BOT).await;
    c.send(&chat("alice@localhost", "chat", "sneaky").with_attr("from", BOT))
        .await;
    assert_eq!(stream_error(&mut c).await, "not-authorized");
}

/// RFC 6120 §4.9.3.9 and §4.9.3.7 on a component stream (as Prosody's `mod_component`): a
/// stanza whose `from` is not in the component's domain is `<invalid-from/>`, one without a
/// `to` is `<improper-addressing/>`; the spoofed stanza reaches nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_a_component_may_only_send_from_its_domain_and_to_someone() {
    let server = server();
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    bot.send(&chat("alice@localhost/phone", "chat", "spoofed").with_attr("from", "bob@localhost"))
        .await;
    assert_eq!(stream_error(&mut bot).await, "invalid-from");
    ok(alice
        .expect_none_before_ping("the spoofed message", |el| body(el) == "spoofed")
        .await);

    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    bot.send(&Element::new("message", ns::CLIENT).with_attr("from", BOT))
        .await;
    assert_eq!(stream_error(&mut bot).await, "improper-addressing");
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    bot.send(&chat("alice@localhost/phone", "chat", "no from"))
        .await;
    assert_eq!(stream_error(&mut bot).await, "invalid-from");
}

/// One connection per component domain (as Prosody): a second handshake for a served
/// domain is `<conflict/>`, and the first connection keeps the domain. When it goes, the
/// domain is `service-unavailable` again, and a new connection takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_one_connection_per_domain() {
    let server = server();
    let mut first = component::connect(server.component(), BOT, SECRET).await;
    let (mut second, answer) = component::handshake(server.component(), BOT, SECRET).await;
    let el = ok(answer);
    assert!(
        el.is("error", ns::STREAM) && el.children().any(|c| c.name() == "conflict"),
        "{el}"
    );
    assert!(matches!(
        ok(second.recv().await),
        Received::Close | Received::Eof
    ));
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.send(&chat(BOT, "chat", "to the first")).await;
    component_message(&mut first, "to the first").await;

    first
        .send_raw("</stream:stream>")
        .await
        .expect("close the stream");
    assert!(matches!(
        ok(first.recv().await),
        Received::Close | Received::Eof
    ));
    // The domain is free once the server has closed its side: a new connection takes it.
    let mut third = component::connect(server.component(), BOT, SECRET).await;
    alice.send(&chat(BOT, "chat", "to the third")).await;
    component_message(&mut third, "to the third").await;
    drop(third);
}

/// A component's domain with no component connected answers `service-unavailable` (as
/// Prosody does for a configured component that is not connected), never
/// `remote-server-not-found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_a_domain_without_its_component_is_service_unavailable() {
    let server = server();
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "p1")
        .with_attr("to", "x@bot.localhost")
        .with_child(Element::new("ping", ns::PING));
    let reply = ok(alice.iq(&iq).await);
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("service-unavailable"),
        "{reply}"
    );
}

/// XEP-0030 §4: the server's items list its components (and its own services: the chat
/// service, XEP-0045 §6.1, on by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0030_4_the_server_lists_its_components() {
    let server = server();
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "items")
        .with_attr("to", "localhost")
        .with_child(Element::new("query", ns::DISCO_ITEMS));
    let reply = ok(alice.iq(&iq).await);
    let items: Vec<&str> = reply
        .get_child("query", ns::DISCO_ITEMS)
        .map(|q| q.children().filter_map(|i| i.attr("jid")).collect())
        .unwrap_or_default();
    assert_eq!(items, [BOT, "conference.localhost"], "{reply}");
}

/// The admin API lists a connected component as a session of type `component` (Prosody's
/// `session.type`, `direction`, `from_host`, `to_host`), authenticated by `secret`, and
/// `DELETE` closes it; `GET /api/v1/hosts` shows our host (`local`) and the component's
/// domain, connected or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_is_a_session_in_the_admin_api() {
    let server = server();
    let admin = server.handle.admin.expect("admin endpoint");
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    let (status, text) =
        parley_testkit::cluster::http_get(admin, "/api/v1/sessions", Some(ADMIN_TOKEN)).unwrap();
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let record = json["sessions"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["host"] == BOT))
        .unwrap_or_else(|| panic!("no component in {json}"))
        .clone();
    assert_eq!(record["type"], "component", "{record}");
    assert_eq!(record["auth"], "secret", "{record}");
    assert_eq!(record["direction"], "in", "{record}");
    assert_eq!(record["from_host"], BOT, "{record}");
    assert_eq!(record["to_host"], "localhost", "{record}");
    // A client's record names its SASL mechanism and has no stream direction.
    let _alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let (_, text) = parley_testkit::cluster::http_get(
        admin,
        "/api/v1/users/alice@localhost/sessions",
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let alice = &json["sessions"][0];
    assert!(
        alice["auth"]
            .as_str()
            .is_some_and(|m| m.starts_with("SCRAM-SHA-")),
        "{alice}"
    );
    assert!(alice.get("direction").is_none(), "{alice}");
    // The hosts: ours (local) and the component's, connected.
    let (_, text) =
        parley_testkit::cluster::http_get(admin, "/api/v1/hosts", Some(ADMIN_TOKEN)).unwrap();
    let hosts: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        hosts["hosts"],
        serde_json::json!([
            { "host": "localhost", "type": "local" },
            { "host": BOT, "type": "component", "connected": true },
        ]),
        "{hosts}"
    );
    let id = record["session"].as_str().unwrap().to_owned();
    let (status, text) = parley_testkit::cluster::http_request(
        admin,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    assert!(status == 200 || status == 204, "{status} {text}");
    ok(bot.expect_stream_error().await);
    let (_, text) =
        parley_testkit::cluster::http_get(admin, "/api/v1/hosts", Some(ADMIN_TOKEN)).unwrap();
    let hosts: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(hosts["hosts"][1]["connected"], false, "{hosts}");
}

/// Hostile input: a component's stanza over `component.max_stanza_bytes` ends its stream
/// with `<policy-violation/>` (RFC 6120 §4.9.3.14; XEP-0478's bound), like a client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_stanza_from_a_component_is_a_policy_violation() {
    let server = TestServer::start(|cfg| {
        with_component(cfg);
        cfg.component.max_stanza_bytes = 10_000;
    });
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    let big = "x".repeat(20_000);
    bot.send(&chat("alice@localhost", "chat", &big).with_attr("from", BOT))
        .await;
    assert_eq!(stream_error(&mut bot).await, "policy-violation");
}

/// A real component library: slixmpp's ComponentXMPP (tests/clients/component.py) connects
/// with the secret, receives a real client's message and answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_component_answers_a_client() {
    let server = server();
    let script = parley_testkit::workspace_root().join("tests/clients/component.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script)
        .args(["--host", "127.0.0.1", "--c2s-port"])
        .arg(server.c2s().port().to_string())
        .arg("--component-port")
        .arg(server.component().port().to_string())
        .args([
            "--domain",
            BOT,
            "--secret",
            SECRET,
            "--password",
            "password",
        ])
        .args(["--deadline", "30"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(45), cmd.output())
        .await
        .expect("component.py stops within its deadline")
        .expect("python3 runs (tests/run installs it with slixmpp)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "component.py failed:\n{text}");
    for line in [
        "COMPONENT CONNECTED",
        "COMPONENT GOT hello",
        "CLIENT GOT echo: hello",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// Every session type is visible: `GET /api/v1/sessions?unbound=true` lists connections that
/// have not authenticated, as Prosody's `c2s_unauthed` and `component_unauthed`, with their
/// address; one that authenticates leaves the list (and joins the bound sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_have_not_authenticated_are_listed_on_request() {
    let server = server();
    let admin = server.handle.admin.expect("admin endpoint");
    let mut c2s = Client::connect(server.c2s()).await;
    ok(c2s.open().await);
    let (mut comp, id) = component::open(server.component(), BOT).await;
    let unbound = || {
        let (status, text) = parley_testkit::cluster::http_get(
            admin,
            "/api/v1/sessions?unbound=true",
            Some(ADMIN_TOKEN),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut types: Vec<String> = json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|r| {
                assert_eq!(r["ip"], "127.0.0.1", "{r}");
                assert_eq!(r["jid"], "", "{r}");
            })
            .map(|r| r["type"].as_str().unwrap().to_owned())
            .collect();
        types.sort();
        types
    };
    assert_eq!(unbound(), ["c2s_unauthed", "component_unauthed"]);
    // The component proves its secret on the same connection: it leaves the list.
    let proof = Element::new("handshake", ns::COMPONENT).with_text(
        parley_proto::component::handshake_digest(&id.expect("a stream id"), SECRET),
    );
    comp.send_raw(proof.to_bytes_in(Some(ns::COMPONENT)))
        .await
        .unwrap();
    let answer = ok(comp.recv_element().await);
    assert!(answer.is("handshake", ns::COMPONENT), "{answer}");
    assert_eq!(unbound(), ["c2s_unauthed"]);
}

/// RFC 6120 §4.9.1.2 on a component port: when the stream fails before the component's
/// header was answered, the server's header goes first, and it is a component's
/// (`jabber:component:accept`), not a client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_component_stream_gets_a_component_header_then_the_error() {
    let server = server();
    let mut c = Client::connect(server.component()).await;
    c.send_raw("<not-a-stream/>").await.unwrap();
    match ok(c.recv().await) {
        Received::Header(h) => assert_eq!(h.default_ns.as_deref(), Some(ns::COMPONENT), "{h:?}"),
        other => panic!("expected the server's header, got {other:?}"),
    }
    ok(c.expect_stream_error().await);
}

/// Hostile input: past `limits.max_connections_per_ip` a connection on the component port
/// is turned away before any session starts (RFC 6120 §4.9.3.14 `<policy-violation/>`), in a
/// component's stream (XEP-0114 §3: `jabber:component:accept`), which a component's parser
/// reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_refused_on_the_component_port_gets_a_component_stream() {
    let server = TestServer::start(|cfg| {
        with_component(cfg);
        cfg.limits.max_connections_per_ip = 1;
    });
    // The one place this address may hold.
    let bot = component::connect(server.component(), BOT, SECRET).await;
    let mut c = Client::connect(server.component()).await;
    match ok(c.recv().await) {
        Received::Header(h) => assert_eq!(h.default_ns.as_deref(), Some(ns::COMPONENT), "{h:?}"),
        other => panic!("expected the refusal's header, got {other:?}"),
    }
    assert_eq!(ok(c.expect_stream_error().await), "policy-violation");
    drop(bot);
}

/// The client idle limit (`c2s.idle_timeout_s`) is not a component's: a quiet component
/// keeps its connection while a quiet client's is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_idle_limit_does_not_close_a_component() {
    let server = TestServer::start(|cfg| {
        with_component(cfg);
        cfg.c2s.idle_timeout_s = 1;
    });
    let mut bot = component::connect(server.component(), BOT, SECRET).await;
    let mut idle_client = Client::login(server.c2s(), "bob", Some("idle")).await;
    // The event that shows the limit ran: the quiet client's stream ends.
    assert_eq!(
        ok(idle_client.expect_stream_error().await),
        "connection-timeout"
    );
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.send(&chat(BOT, "chat", "still there?")).await;
    component_message(&mut bot, "still there?").await;
}
