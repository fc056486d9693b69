//! Federation (RFC 6120 server-to-server with XEP-0220 dialback) over real sockets between
//! real servers: two Parley servers with their own domains and static routes, and a test
//! playing a hostile server. Covers the streams both ways (STARTTLS, dialback, piggybacked
//! verification), messages, presence subscriptions and roster state across domains, iq
//! across domains, bounces for an unreachable domain, the admin API's view of server
//! streams, and each refusal an incoming stream can earn.

use std::net::SocketAddr;

use parley_proto::{dialback, ns};
use parley_testkit::im::{chat, error_condition, next_id, presence};
use parley_testkit::s2s::{self, FakeAuthority};
use parley_testkit::{free_port, Client, ClientError, TestServer};
use parley_xml::Element;

const B: &str = "b.example";
const ADMIN_TOKEN: &str = "s2s-admin-token-0123456789abcdef";

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Two servers that federate: `localhost` (alice, bob, carol) and `b.example` (dave,
/// erin), each with a static route to the other's s2s port, TLS required (the default).
fn pair() -> (TestServer, TestServer) {
    let (pa, pb) = (free_port(), free_port());
    let a = TestServer::start(|c| {
        c.s2s.listen = vec![loopback(pa)];
        c.s2s.routes.insert(B.into(), format!("127.0.0.1:{pb}"));
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    let b = TestServer::start(|c| {
        c.server.hosts = vec![B.into()];
        c.s2s.listen = vec![loopback(pb)];
        c.s2s
            .routes
            .insert("localhost".into(), format!("127.0.0.1:{pa}"));
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    for user in ["dave", "erin"] {
        b.add_user_at(user, B, "password");
    }
    (a, b)
}

async fn dave(b: &TestServer) -> Client {
    let mut c = Client::login_at(b.c2s(), B, "dave", Some("laptop")).await;
    c.available().await;
    c
}

/// The server streams an admin sees on a node.
fn s2s_records(server: &TestServer) -> Vec<serde_json::Value> {
    let admin = server.handle.admin.expect("admin endpoint");
    let (_, text) =
        parley_testkit::cluster::http_get(admin, "/api/v1/sessions", Some(ADMIN_TOKEN)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("s2s")))
        .cloned()
        .collect()
}

/// RFC 6120 §10.4 and XEP-0220 §2: a message to another domain opens a stream to it
/// (STARTTLS, then dialback: the receiving server asks ours, over a stream of its own, to
/// verify the key) and is delivered with its `from` intact; the answer comes back over the
/// stream the other server opened. Both servers list both streams as authenticated by
/// dialback and encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_10_4_messages_cross_domains_both_ways_over_dialback_streams() {
    let (a, b) = pair();
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    let mut dave = dave(&b).await;

    alice.send(&chat("dave@b.example", "chat", "hello b")).await;
    let got = ok(dave.expect_message_body("hello b").await);
    assert_eq!(got.attr("from"), Some("alice@localhost/phone"));
    assert_eq!(got.attr("to"), Some("dave@b.example"));

    dave.send(&chat("alice@localhost/phone", "chat", "hello a"))
        .await;
    let back = ok(alice.expect_message_body("hello a").await);
    assert_eq!(back.attr("from"), Some("dave@b.example/laptop"));

    // A burst on the established stream arrives whole and in order.
    for i in 0..50 {
        alice
            .send(&chat("dave@b.example", "chat", &format!("n{i}")))
            .await;
    }
    for i in 0..50 {
        ok(dave.expect_message_body(&format!("n{i}")).await);
    }

    for (server, local, remote) in [(&a, "localhost", B), (&b, B, "localhost")] {
        let streams = s2s_records(server);
        let find = |dir: &str| {
            streams
                .iter()
                .find(|r| r["direction"] == dir)
                .unwrap_or_else(|| panic!("no {dir} stream on {local}: {streams:?}"))
                .clone()
        };
        let (out, inc) = (find("out"), find("in"));
        assert_eq!(out["type"], "s2s", "{out}");
        assert_eq!(out["from_host"], local, "{out}");
        assert_eq!(out["to_host"], remote, "{out}");
        assert_eq!(out["auth"], "dialback", "{out}");
        assert_eq!(out["secure"], true, "{out}");
        assert_eq!(out["ip"], "127.0.0.1", "the address dialed: {out}");
        assert_eq!(inc["type"], "s2s", "{inc}");
        assert_eq!(inc["from_host"], remote, "{inc}");
        assert_eq!(inc["secure"], true, "{inc}");
        // /metrics counts both streams as type="s2s".
        let admin = server.handle.admin.unwrap();
        let (_, metrics) = parley_testkit::cluster::http_get(admin, "/metrics", None).unwrap();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("parley_sessions{") && l.contains("type=\"s2s\""))
            .unwrap_or_else(|| panic!("no s2s gauge in {metrics}"));
        assert!(line.ends_with(" 2"), "{line}");
    }
}

/// RFC 6121 §3.1 across domains: a subscription request reaches the contact on the other
/// server, the approval comes back as a roster push with `subscription='to'` and the
/// contact's presence; the reverse subscription makes it `both` on each side, and the
/// rosters say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_3_1_presence_subscriptions_work_across_domains_both_ways() {
    let (a, b) = pair();
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    ok(alice.roster().await);
    alice.available().await;
    let mut dave = dave(&b).await;
    ok(dave.roster().await);

    alice.subscribe("dave@b.example").await;
    // §3.1.2: the pending request is pushed to alice at once (ask='subscribe').
    let push = ok(alice.expect_roster_push("dave@b.example").await);
    let item = parley_testkit::im::push_item(&push).unwrap();
    assert_eq!(
        (item.subscription.as_str(), item.ask.as_deref()),
        ("none", Some("subscribe")),
        "{push}"
    );
    ok(dave
        .expect_presence_from("alice@localhost", "subscribe")
        .await);
    dave.approve("alice@localhost").await;
    // §3.1.6: the approval from the other server makes it 'to'.
    let push = ok(alice.expect_roster_push("dave@b.example").await);
    let item = parley_testkit::im::push_item(&push).unwrap();
    assert_eq!(item.subscription, "to", "{push}");
    ok(alice
        .expect_presence_from("dave@b.example/laptop", "available")
        .await);

    dave.subscribe("alice@localhost").await;
    ok(alice
        .expect_presence_from("dave@b.example", "subscribe")
        .await);
    alice.approve("dave@b.example").await;
    ok(dave
        .expect_presence_from("alice@localhost/phone", "available")
        .await);

    let roster_a = ok(alice.roster().await);
    assert_eq!(
        roster_a.item("dave@b.example").unwrap().subscription,
        "both"
    );
    let roster_b = ok(dave.roster().await);
    assert_eq!(
        roster_b.item("alice@localhost").unwrap().subscription,
        "both"
    );

    // Presence updates follow the subscription: dave goes away, alice sees it.
    dave.send(&presence().with_child(Element::new("show", ns::CLIENT).with_text("away")))
        .await;
    let away = ok(alice
        .expect_presence_from("dave@b.example/laptop", "available")
        .await);
    assert_eq!(
        away.get_child("show", ns::CLIENT).map(|s| s.text()),
        Some("away".into())
    );
}

/// XEP-0199 §4.2 and RFC 6120 §8.2.3 across domains: a ping to the other server is
/// answered by it, and an iq to a full JID there reaches the client, whose result comes
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0199_iq_requests_and_results_cross_domains() {
    let (a, b) = pair();
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    let id = next_id("ping");
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id.as_str())
        .with_attr("to", B)
        .with_child(Element::new("ping", "urn:xmpp:ping"));
    let reply = ok(alice.iq(&ping).await);
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert_eq!(reply.attr("from"), Some(B));

    let id = next_id("version");
    let query = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id.as_str())
        .with_attr("to", "dave@b.example/laptop")
        .with_child(Element::new("query", "jabber:iq:version"));
    alice.send(&query).await;
    let asked = ok(dave
        .expect_match("the version query", |el| el.attr("id") == Some(id.as_str()))
        .await);
    assert_eq!(asked.attr("from"), Some("alice@localhost/phone"));
    let answer = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", id.as_str())
        .with_attr("to", "alice@localhost/phone");
    dave.send(&answer).await;
    let got = ok(alice
        .expect_match("the version result", |el| {
            el.attr("id") == Some(id.as_str())
        })
        .await);
    assert_eq!(got.attr("type"), Some("result"));
    assert_eq!(got.attr("from"), Some("dave@b.example/laptop"));

    // RFC 6121 §8.5.2.2.1 on the other side: an unknown account there is answered by its
    // server with service-unavailable.
    alice
        .send(&chat("nobody@b.example", "chat", "anyone?"))
        .await;
    let bounce = ok(alice
        .expect_match("an error from nobody@b.example", |el| {
            el.attr("from") == Some("nobody@b.example") && el.attr("type") == Some("error")
        })
        .await);
    assert_eq!(
        error_condition(&bounce).as_deref(),
        Some("service-unavailable")
    );
}

/// RFC 6120 §8.3.3.15: a domain whose server cannot be reached bounces what was sent to it
/// with `remote-server-not-found`, each stanza once; the route is gone afterwards, so the
/// next stanza tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_8_3_3_15_an_unreachable_domain_bounces_remote_server_not_found() {
    // A port nobody listens on.
    let closed = free_port();
    let a = TestServer::start(|c| {
        c.s2s.listen = vec![loopback(free_port())];
        c.s2s
            .routes
            .insert("gone.example".into(), format!("127.0.0.1:{closed}"));
    });
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    for round in 0..2 {
        let ids: Vec<String> = (0..3).map(|i| format!("gone-{round}-{i}")).collect();
        for id in &ids {
            alice
                .send(&chat("x@gone.example", "chat", "hello?").with_attr("id", id.as_str()))
                .await;
        }
        for id in &ids {
            let err = ok(alice
                .expect_match("the bounce", |el| {
                    el.attr("id") == Some(id.as_str()) && el.attr("type") == Some("error")
                })
                .await);
            assert_eq!(
                error_condition(&err).as_deref(),
                Some("remote-server-not-found"),
                "{err}"
            );
            assert_eq!(err.attr("from"), Some("x@gone.example"));
        }
    }
}

/// A server where a test plays `evil.example`: no TLS, so the test can speak raw XML, and
/// a static route to the test's fake authority for `evil.example`.
async fn hostile(verdict: &'static str) -> (TestServer, FakeAuthority) {
    let authority = FakeAuthority::start("evil.example", verdict).await;
    let route = authority.addr.to_string();
    let server = TestServer::start(move |c| {
        c.s2s.listen = vec![loopback(free_port())];
        c.s2s.require_encryption = false;
        c.s2s.routes.insert("evil.example".into(), route);
    });
    (server, authority)
}

/// Opens a stream as `evil.example` and gets it accepted (the fake authority says yes).
async fn accepted(server: &TestServer) -> Client {
    let (mut c, id, features) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    assert!(
        features
            .get_child("dialback", dialback::FEATURE_NS)
            .is_some(),
        "XEP-0220 §2.1: dialback is offered: {features}"
    );
    assert!(!id.is_empty(), "RFC 6120 §4.7.3: the stream has an id");
    let answer = ok(s2s::dialback(&mut c, "evil.example", "localhost", "any-key").await);
    assert!(answer.is("result", dialback::NS), "{answer}");
    assert_eq!(answer.attr("type"), Some("valid"), "{answer}");
    c
}

/// XEP-0220 §2.1.2–§2.2: the receiving server checks the key with the authority, over its
/// own stream to it, naming this stream's id; a yes authenticates the domain, and a message
/// from it reaches the local user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0220_2_2_the_key_is_checked_with_the_authority_for_this_stream() {
    let (server, authority) = hostile("valid").await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    let (mut c, id, _) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    let answer = ok(s2s::dialback(&mut c, "evil.example", "localhost", "the-key").await);
    assert_eq!(answer.attr("type"), Some("valid"), "{answer}");
    let checks = authority.checks.lock().clone();
    let check = checks.first().expect("the authority was asked");
    assert_eq!(check.attr("id"), Some(id.as_str()));
    assert_eq!(check.attr("from"), Some("localhost"));
    assert_eq!(check.attr("to"), Some("evil.example"));
    assert_eq!(check.text(), "the-key");

    c.send_raw("<message from='mallet@evil.example/x' to='alice@localhost' type='chat'><body>from afar</body></message>")
        .await
        .unwrap();
    let got = ok(alice.expect_message_body("from afar").await);
    assert_eq!(got.attr("from"), Some("mallet@evil.example/x"));
}

/// XEP-0220 §2.1.3 and the rule: a key the authority calls invalid is answered
/// `type='invalid'` and the stream ends with `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0220_2_1_3_a_bad_dialback_key_is_not_authorized() {
    let (server, _authority) = hostile("invalid").await;
    let (mut c, _, _) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    let answer = ok(s2s::dialback(&mut c, "evil.example", "localhost", "forged").await);
    assert_eq!(answer.attr("type"), Some("invalid"), "{answer}");
    assert_eq!(ok(c.expect_stream_error().await), "not-authorized");
}

/// RFC 6120 §4.9.3.9: a stanza whose `from` is outside the domain the stream proved ends
/// the stream with `<invalid-from/>`, and it is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_9_a_spoofed_from_is_invalid_from() {
    let (server, _authority) = hostile("valid").await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    let mut c = accepted(&server).await;
    c.send_raw("<message from='boss@b.example' to='alice@localhost' type='chat'><body>spoofed</body></message>")
        .await
        .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "invalid-from");
    // The spoofed message never arrives: had it been routed, it would have come before the
    // close, so before this honest one (which then finds it stashed).
    let mut c = accepted(&server).await;
    c.send_raw("<message from='mallet@evil.example' to='alice@localhost' type='chat'><body>honest</body></message>")
        .await
        .unwrap();
    let got = ok(alice.expect_message_body("honest").await);
    assert_eq!(got.attr("from"), Some("mallet@evil.example"));
    assert!(
        alice
            .stashed()
            .all(|el| parley_testkit::im::body(el) != "spoofed"),
        "the spoofed message was delivered"
    );
}

/// RFC 6120 §4.9.3.6: a stanza to a domain this server does not serve is `<host-unknown/>`;
/// so is a stream header addressed to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_6_a_to_we_do_not_serve_is_host_unknown() {
    let (server, _authority) = hostile("valid").await;
    let mut c = accepted(&server).await;
    c.send_raw("<message from='mallet@evil.example' to='someone@elsewhere.example'><body>x</body></message>")
        .await
        .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "host-unknown");

    let mut c = Client::connect(server.s2s()).await;
    c.send_raw(s2s::header("evil.example", "elsewhere.example", None))
        .await
        .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "host-unknown");
}

/// RFC 6120 §4.9.3.12 (and XEP-0220 §2.1): a stanza before the stream proved any domain is
/// `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_12_a_stanza_before_dialback_is_not_authorized() {
    let (server, _authority) = hostile("valid").await;
    let (mut c, _, _) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    c.send_raw("<message from='mallet@evil.example' to='alice@localhost'><body>x</body></message>")
        .await
        .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "not-authorized");
}

/// RFC 6120 §13.12 and `[s2s] max_stanza_bytes`: an oversize stanza from a server ends its
/// stream with `<policy-violation/>`, as a client's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_13_12_an_oversize_stanza_from_a_server_is_refused() {
    let authority = FakeAuthority::start("evil.example", "valid").await;
    let route = authority.addr.to_string();
    let server = TestServer::start(move |c| {
        c.s2s.listen = vec![loopback(free_port())];
        c.s2s.require_encryption = false;
        c.s2s.max_stanza_bytes = 10_000;
        c.s2s.routes.insert("evil.example".into(), route);
    });
    let mut c = accepted(&server).await;
    let big = "x".repeat(20_000);
    c.send_raw(format!(
        "<message from='mallet@evil.example' to='alice@localhost'><body>{big}</body></message>"
    ))
    .await
    .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "policy-violation");
}

/// RFC 6120 §5.3.1 with `[s2s] require_encryption` (the default): STARTTLS is offered as
/// required, dialback is not offered before it, and anything but `<starttls/>` ends the
/// stream with `<policy-violation/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_3_1_tls_comes_first_on_an_incoming_server_stream() {
    let server = TestServer::start(|c| c.s2s.listen = vec![loopback(free_port())]);
    let (mut c, _, features) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    let starttls = features
        .get_child("starttls", ns::TLS)
        .expect("STARTTLS offered");
    assert!(
        starttls.get_child("required", ns::TLS).is_some(),
        "{features}"
    );
    assert!(
        features
            .get_child("dialback", dialback::FEATURE_NS)
            .is_none(),
        "{features}"
    );
    let answer = s2s::dialback(&mut c, "evil.example", "localhost", "k").await;
    match answer {
        Ok(el) => assert!(
            el.is("error", ns::STREAM) && el.children().any(|c| c.name() == "policy-violation"),
            "{el}"
        ),
        Err(e) => panic!("{e}"),
    }
}

/// The admin API closes a server stream by its id (`DELETE /api/v1/sessions/{id}`, as for
/// any session), its record ends as revoked, and the next stanza to that domain opens a
/// new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_closes_a_server_stream_and_federation_goes_on() {
    let (a, b) = pair();
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    alice.send(&chat("dave@b.example", "chat", "first")).await;
    ok(dave.expect_message_body("first").await);
    let out = s2s_records(&a)
        .into_iter()
        .find(|r| r["direction"] == "out")
        .expect("an outgoing stream");
    let id = out["session"].as_str().unwrap().to_owned();
    let admin = a.handle.admin.unwrap();
    // `parley sessions list` names server streams by their hosts.
    let config = a.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    )
    .unwrap();
    let listed = std::process::Command::new(parley_testkit::parley_binary())
        .arg("--config")
        .arg(&config)
        .args(["sessions", "list"])
        .output()
        .expect("run parley");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for hosts in ["localhost->b.example ", "b.example->localhost "] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(hosts) && l.split_whitespace().nth(3) == Some("s2s")),
            "{hosts} in {listed}"
        );
    }
    let (status, body) = parley_testkit::cluster::http_request(
        admin,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    parley_testkit::poll_until(
        "the closed stream leaves the list",
        std::time::Duration::from_secs(10),
        || (!s2s_records(&a).iter().any(|r| r["session"] == id.as_str())).then_some(()),
    );
    alice.send(&chat("dave@b.example", "chat", "second")).await;
    ok(dave.expect_message_body("second").await);
}

/// `[s2s] idle_timeout_s`: a stream that carried nothing for that long is closed, and the
/// next stanza opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stream_is_closed_and_reopened_when_needed() {
    let (pa, pb) = (free_port(), free_port());
    let a = TestServer::start(|c| {
        c.s2s.listen = vec![loopback(pa)];
        c.s2s.routes.insert(B.into(), format!("127.0.0.1:{pb}"));
        c.s2s.idle_timeout_s = 1;
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    let b = TestServer::start(|c| {
        c.server.hosts = vec![B.into()];
        c.s2s.listen = vec![loopback(pb)];
        c.s2s
            .routes
            .insert("localhost".into(), format!("127.0.0.1:{pa}"));
    });
    b.add_user_at("dave", B, "password");
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    alice.send(&chat("dave@b.example", "chat", "before")).await;
    ok(dave.expect_message_body("before").await);
    parley_testkit::poll_until(
        "the idle outgoing stream is closed",
        std::time::Duration::from_secs(10),
        || (!s2s_records(&a).iter().any(|r| r["direction"] == "out")).then_some(()),
    );
    alice.send(&chat("dave@b.example", "chat", "after")).await;
    ok(dave.expect_message_body("after").await);
}

/// `[s2s] queue_stanzas` and `connect_timeout_s` against a server that accepts the
/// connection and never answers: past the queue bound a stanza bounces at once with
/// `resource-constraint`; the queued ones bounce with `remote-server-timeout` (RFC 6120
/// §8.3.3.16) when the stream is not up in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_8_3_3_16_a_silent_server_times_out_and_the_queue_is_bounded() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = silent.local_addr().unwrap().to_string();
    // Accepts and holds connections without a word.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let a = TestServer::start(move |c| {
        c.s2s.listen = vec![loopback(free_port())];
        c.s2s.routes.insert("silent.example".into(), route);
        c.s2s.queue_stanzas = 2;
        c.s2s.connect_timeout_s = 1;
    });
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    for i in 0..3 {
        alice
            .send(&chat("x@silent.example", "chat", "hi").with_attr("id", format!("q{i}")))
            .await;
    }
    let condition_of = |el: &Element| error_condition(el).unwrap_or_default();
    let third = ok(alice
        .expect_match("the bounce past the bound", |el| {
            el.attr("id") == Some("q2")
        })
        .await);
    assert_eq!(condition_of(&third), "resource-constraint", "{third}");
    for id in ["q0", "q1"] {
        let err = ok(alice
            .expect_match("a timeout bounce", |el| el.attr("id") == Some(id))
            .await);
        assert_eq!(condition_of(&err), "remote-server-timeout", "{err}");
    }
    held.abort();
}

/// Two federating servers with certificates from one CA, both requiring valid certificates
/// (dialback refused): `localhost` and `b.example`.
fn certified_pair(pki: &parley_testkit::DomainPki) -> (TestServer, TestServer) {
    let (pa, pb) = (free_port(), free_port());
    let (ca, leaf_a, leaf_b) = (pki.ca.clone(), pki.leaves[0].clone(), pki.leaves[1].clone());
    let ca_b = ca.clone();
    let a = TestServer::start(move |c| {
        c.tls.cert = Some(leaf_a.0);
        c.tls.key = Some(leaf_a.1);
        c.s2s.listen = vec![loopback(pa)];
        c.s2s.routes.insert(B.into(), format!("127.0.0.1:{pb}"));
        c.s2s.ca_file = Some(ca);
        c.s2s.require_valid_certificates = true;
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    let b = TestServer::start(move |c| {
        c.server.hosts = vec![B.into()];
        c.tls.cert = Some(leaf_b.0);
        c.tls.key = Some(leaf_b.1);
        c.s2s.listen = vec![loopback(pb)];
        c.s2s
            .routes
            .insert("localhost".into(), format!("127.0.0.1:{pa}"));
        c.s2s.ca_file = Some(ca_b);
        c.s2s.require_valid_certificates = true;
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    b.add_user_at("dave", B, "password");
    (a, b)
}

/// XEP-0178 §2: servers whose certificates are valid for their domains authenticate each
/// stream with SASL EXTERNAL. Both servers here refuse dialback
/// (`require_valid_certificates`), so the messages that cross prove EXTERNAL did it both
/// ways, and every stream says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0178_2_servers_with_valid_certificates_authenticate_with_sasl_external() {
    let pki = parley_testkit::DomainPki::new(&["localhost", B]);
    let (a, b) = certified_pair(&pki);
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    alice
        .send(&chat("dave@b.example", "chat", "certified"))
        .await;
    ok(dave.expect_message_body("certified").await);
    dave.send(&chat("alice@localhost/phone", "chat", "certified too"))
        .await;
    ok(alice.expect_message_body("certified too").await);
    for server in [&a, &b] {
        let streams = s2s_records(server);
        assert_eq!(streams.len(), 2, "{streams:?}");
        for r in &streams {
            assert_eq!(r["auth"], "EXTERNAL", "{r}");
            assert_eq!(r["type"], "s2s", "{r}");
        }
    }
}

/// `[s2s] require_valid_certificates` against a server with a self-signed certificate:
/// our TLS check refuses it, and the message bounces with `remote-server-not-found`; its
/// stream to us is refused dialback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0178_a_self_signed_peer_is_refused_where_valid_certificates_are_required() {
    let pki = parley_testkit::DomainPki::new(&["localhost"]);
    let (pa, pb) = (free_port(), free_port());
    let (ca, leaf) = (pki.ca.clone(), pki.leaves[0].clone());
    let a = TestServer::start(move |c| {
        c.tls.cert = Some(leaf.0);
        c.tls.key = Some(leaf.1);
        c.s2s.listen = vec![loopback(pa)];
        c.s2s.routes.insert(B.into(), format!("127.0.0.1:{pb}"));
        c.s2s.ca_file = Some(ca);
        c.s2s.require_valid_certificates = true;
    });
    let b = TestServer::start(|c| {
        c.server.hosts = vec![B.into()];
        c.s2s.listen = vec![loopback(pb)];
        c.s2s
            .routes
            .insert("localhost".into(), format!("127.0.0.1:{pa}"));
    });
    b.add_user_at("dave", B, "password");
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    alice
        .send(&chat("dave@b.example", "chat", "to a self-signed server").with_attr("id", "ss1"))
        .await;
    let err = ok(alice
        .expect_match("the bounce", |el| el.attr("id") == Some("ss1"))
        .await);
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );
    // The other way, b.example's dialback is refused: its message bounces back to dave.
    dave.send(&chat("alice@localhost", "chat", "from self-signed").with_attr("id", "ss2"))
        .await;
    let err = ok(dave
        .expect_match("the bounce", |el| el.attr("id") == Some("ss2"))
        .await);
    assert_eq!(err.attr("type"), Some("error"), "{err}");
}

/// RFC 6121 across domains, beyond subscriptions: a message from another domain to a user
/// with no session is stored and delivered at login (XEP-0160); at login the user's server
/// probes the contact's domain for presence (§4.3); carbons (XEP-0280) copy a remote
/// message to the user's other resource; and a blocked remote contact's message is refused
/// with `service-unavailable` and never shown (XEP-0191 §3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_offline_probes_carbons_and_blocking_work_across_domains() {
    let (a, b) = pair();
    // A mutual subscription first.
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    ok(alice.roster().await);
    alice.available().await;
    let mut dave = dave(&b).await;
    ok(dave.roster().await);
    alice.subscribe("dave@b.example").await;
    ok(dave
        .expect_presence_from("alice@localhost", "subscribe")
        .await);
    dave.approve("alice@localhost").await;
    dave.subscribe("alice@localhost").await;
    ok(alice
        .expect_presence_from("dave@b.example", "subscribe")
        .await);
    alice.approve("dave@b.example").await;
    ok(dave
        .expect_presence_from("alice@localhost/phone", "available")
        .await);

    // Offline storage: alice leaves; dave's message waits for her.
    drop(alice);
    ok(dave
        .expect_presence_from("alice@localhost/phone", "unavailable")
        .await);
    dave.send(&chat("alice@localhost", "chat", "while you were away"))
        .await;
    // Probes: alice comes back and learns dave's presence from his server.
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    ok(alice.carbons(true).await);
    alice.available().await;
    let stored = ok(alice.expect_message_body("while you were away").await);
    assert_eq!(stored.attr("from"), Some("dave@b.example/laptop"));
    ok(alice
        .expect_presence_from("dave@b.example/laptop", "available")
        .await);

    // Carbons: a second resource of alice's gets a copy of dave's message to the first.
    let mut tablet = Client::login(a.c2s(), "alice", Some("tablet")).await;
    ok(tablet.carbons(true).await);
    tablet.available().await;
    dave.send(&chat("alice@localhost/phone", "chat", "to your phone"))
        .await;
    ok(alice.expect_message_body("to your phone").await);
    let copy = ok(tablet
        .expect_match("a received carbon", |el| {
            parley_testkit::im::carbon_kind(el) == Some("received")
        })
        .await);
    let inner = parley_testkit::im::carbon_inner(&copy).expect("forwarded message");
    assert_eq!(inner.attr("from"), Some("dave@b.example/laptop"), "{copy}");

    // Blocking: alice blocks dave; his next message is refused and never reaches her.
    alice.block(&["dave@b.example"]).await;
    assert_eq!(
        dave.refused_chat("alice@localhost/phone", "blocked?").await,
        "service-unavailable"
    );
    // Refused too (waited for, so that the unblock below cannot overtake it).
    assert_eq!(
        dave.refused_chat("alice@localhost/phone", "still blocked")
            .await,
        "service-unavailable"
    );
    alice.unblock(&["dave@b.example"]).await;
    dave.send(&chat("alice@localhost/phone", "chat", "unblocked"))
        .await;
    ok(alice.expect_message_body("unblocked").await);
    assert!(
        alice.stashed().all(|el| !matches!(
            parley_testkit::im::body(el).as_str(),
            "blocked?" | "still blocked"
        )),
        "a blocked message was shown"
    );
}

/// A server that opens a stream and never authenticates is closed at the authentication
/// deadline (`c2s.auth_timeout_s`) with `<connection-timeout/>`, as a slow client is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_4_a_server_that_never_authenticates_times_out() {
    let server = TestServer::start(|c| {
        c.s2s.listen = vec![loopback(free_port())];
        c.s2s.require_encryption = false;
        c.c2s.auth_timeout_s = 1;
    });
    let (mut c, _, _) = ok(s2s::open(server.s2s(), "slow.example", "localhost").await);
    assert_eq!(ok(c.expect_stream_error().await), "connection-timeout");
}

/// XEP-0368 between servers: `b.example` publishes only an `_xmpps-server` SRV record (on
/// the test's DNS server), so `localhost` finds it by SRV and connects with TLS from the
/// first byte to its direct-TLS port; the message crosses and the stream is encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0368_a_server_found_by_xmpps_srv_is_reached_with_direct_tls() {
    use parley_testkit::{DnsRecord, Dnsmasq};
    let (pa, pb, pb_tls) = (free_port(), free_port(), free_port());
    let dns = Dnsmasq::start_zone(
        "example",
        &[
            DnsRecord::Srv {
                name: format!("_xmpps-server._tcp.{B}"),
                target: Some((B.into(), pb_tls)),
                priority: 0,
                weight: 0,
            },
            DnsRecord::A {
                name: B.into(),
                ip: [127, 0, 0, 1].into(),
            },
        ],
    );
    let dns_addr = dns.addr;
    let a = TestServer::start(move |c| {
        c.s2s.listen = vec![loopback(pa)];
        c.s2s.name_servers = vec![dns_addr];
        c.admin.token = Some(ADMIN_TOKEN.into());
    });
    let b = TestServer::start(|c| {
        c.server.hosts = vec![B.into()];
        c.s2s.listen = vec![loopback(pb)];
        c.s2s.direct_tls = vec![loopback(pb_tls)];
        c.s2s
            .routes
            .insert("localhost".into(), format!("127.0.0.1:{pa}"));
    });
    b.add_user_at("dave", B, "password");
    let mut alice = Client::login(a.c2s(), "alice", Some("phone")).await;
    let mut dave = dave(&b).await;
    alice
        .send(&chat("dave@b.example", "chat", "over direct TLS"))
        .await;
    ok(dave.expect_message_body("over direct TLS").await);
    let out = s2s_records(&a)
        .into_iter()
        .find(|r| r["direction"] == "out")
        .expect("an outgoing stream");
    assert_eq!(out["secure"], true, "{out}");
    assert_eq!(out["ip"], "127.0.0.1", "{out}");
}

/// XEP-0220 §2.4 and hostile dialback: a request to be accepted for one of *our* streams
/// to a domain we do not serve is answered `type='error'` (the stream stays up); an answer
/// nobody asked for ends the stream with `<unsupported-stanza-type/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0220_2_4_misdirected_requests_and_unasked_answers() {
    let (server, _authority) = hostile("valid").await;
    let (mut c, _, _) = ok(s2s::open(server.s2s(), "evil.example", "localhost").await);
    let answer = ok(s2s::dialback(&mut c, "evil.example", "elsewhere.example", "k").await);
    assert_eq!(answer.attr("type"), Some("error"), "{answer}");
    assert!(answer.get_child("error", ns::SERVER).is_some(), "{answer}");
    c.send_raw("<db:result from='evil.example' to='localhost' type='valid'/>")
        .await
        .unwrap();
    assert_eq!(ok(c.expect_stream_error().await), "unsupported-stanza-type");
}
