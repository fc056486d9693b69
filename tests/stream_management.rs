//! XEP-0198 Stream Management (`urn:xmpp:sm:3`) over real sockets against a real server: the
//! stream feature (§2), enabling (§3), acks in both directions and their counting rules (§4),
//! resumption and its failures (§5, §6), what becomes of a session nobody resumes (its
//! unacknowledged stanzas go offline, its iqs are answered with errors), the bound on what a
//! hibernating session keeps, dead-peer detection with XEP-0199 pings, the admin API's view of
//! a hibernating session, the same over WebSocket (RFC 7395), and a real client library
//! (slixmpp's xep_0198 plugin) resuming after its connection was cut.
//!
//! Counting: in these tests each client knows exactly which stanzas the server sends it after
//! `<enabled/>`, and the `h` it reports is written down from that, so that a wrong count on
//! either side shows up as a wrong number, not as a flaky wait. Tests that count turn the
//! server's own ack requests off (huge `sm_ack_every` and `sm_ack_delay_ms`) unless they are
//! about them.
//!
//! The 32-bit wraparound of `h` (§4) cannot be reached by traffic in a test; it is covered by
//! the unit tests of the counter in `parley_proto::sm`. Here only its edge is checked: an ack
//! of 2^32 - 1 with nothing sent is too high, not a wrapped zero.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parley::config::Config;
use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_storage::{RosterItem, Subscription};
use parley_testkit::im::{body, chat, error_condition, next_id, parse_utc_stamp, unix_now};
use parley_testkit::sm::{self, NS as SM};
use parley_testkit::{Client, ClientError, Received, TestServer, TIMEOUT};
use parley_xml::{Element, Limits};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

// ----- helpers -------------------------------------------------------------------------------

const ADMIN_TOKEN: &str = "sm-admin-token-0123456789abcdef";

fn bare(user: &str) -> String {
    format!("{user}@localhost")
}

fn full(user: &str, resource: &str) -> String {
    format!("{user}@localhost/{resource}")
}

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The server asks for no acks by itself during the test (it would after 5 stanzas or 2 s
/// by default), so that what a client receives is exactly what the test caused.
fn no_server_acks(cfg: &mut Config) {
    cfg.c2s.sm_ack_every = 400;
    cfg.c2s.sm_ack_delay_ms = 60_000;
}

/// A message with a body and an id.
fn numbered(to: &str, text: &str) -> Element {
    chat(to, "chat", text).with_attr("id", format!("m-{text}"))
}

fn ping(id: &str, to: Option<&str>) -> Element {
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_child(Element::new("ping", ns::PING));
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq
}

/// The empty result a client owes for the iq request `req`.
fn result_for(req: &Element) -> Element {
    let mut res = Element::new("iq", ns::CLIENT).with_attr("type", "result");
    if let Some(id) = req.attr("id") {
        res.set_attr("id", id);
    }
    if let Some(from) = req.attr("from") {
        res.set_attr("to", from);
    }
    res
}

fn is_message(el: &Element) -> bool {
    el.is("message", ns::CLIENT)
}

/// A stanza in the sense of §4 (what `h` counts), as opposed to a nonza.
fn is_stanza(el: &Element) -> bool {
    el.ns() == ns::CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

/// A XEP-0199 ping from the server (`from` absent or the domain) to the client.
fn is_server_ping(el: &Element) -> bool {
    el.is("iq", ns::CLIENT)
        && el.attr("type") == Some("get")
        && el.has_child("ping", ns::PING)
        && matches!(el.attr("from"), None | Some("localhost"))
}

fn is_presence(el: &Element, from: &str, ty: &str) -> bool {
    el.is("presence", ns::CLIENT)
        && el.attr("from") == Some(from)
        && el.attr("type").unwrap_or("available") == ty
}

/// The bodies of the next `n` messages, oldest first (others are stashed).
async fn next_bodies(c: &mut Client, n: usize) -> Vec<String> {
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        bodies.push(body(&ok(c.expect_match("a message", is_message).await)));
    }
    bodies
}

/// Sends `el` and asserts that the answer is `<failed/>` with the stanza error `condition`
/// (§6); returns the `<failed/>`.
async fn expect_failed(c: &mut Client, el: &Element, condition: &str) -> Element {
    let answer = ok(c.sm_send_for_answer(el).await);
    assert!(
        sm::is(&answer, "failed"),
        "XEP-0198 §6: expected <failed/> for {el}, got {answer}"
    );
    assert_eq!(
        sm::failed_condition(&answer).as_deref(),
        Some(condition),
        "XEP-0198 §6: the condition of {answer}"
    );
    answer
}

/// Sends `<resume/>` and asserts `<resumed previd=… h=…/>` with the given `h`.
async fn expect_resumed(c: &mut Client, previd: &str, client_h: u32, server_h: u32) {
    let answer = ok(c.sm_send_for_answer(&sm::resume(previd, client_h)).await);
    assert!(
        sm::is(&answer, "resumed"),
        "XEP-0198 §5: expected <resumed/>, got {answer}"
    );
    assert_eq!(answer.attr("previd"), Some(previd), "{answer}");
    assert_eq!(
        sm::h(&answer),
        Some(server_h),
        "XEP-0198 §5: <resumed/> carries the stanzas the server handled: {answer}"
    );
}

/// Asserts a XEP-0203 delay from the server's domain, stamped no earlier than `not_before`
/// (unix seconds; stamps may be truncated to the second) and not in the future.
fn assert_delayed(msg: &Element, not_before: f64) {
    let delay = msg
        .get_child("delay", ns::DELAY)
        .unwrap_or_else(|| panic!("XEP-0160 §3: an offline message carries <delay/>: {msg}"));
    assert_eq!(delay.attr("from"), Some("localhost"), "{msg}");
    let stamp = delay.attr("stamp").unwrap_or_default();
    let t = parse_utc_stamp(stamp).unwrap_or_else(|| panic!("XEP-0082 UTC stamp: {stamp:?}"));
    assert!(
        t >= not_before.floor() - 1.0 && t <= unix_now() + 1.0,
        "stamp {stamp} outside the test"
    );
}

/// Alice and Bob see each other's presence (`both`), provisioned in storage before either
/// logs in.
fn befriend_alice_and_bob(server: &TestServer) {
    for (owner, contact) in [("alice", "bob"), ("bob", "alice")] {
        server.put_roster(
            owner,
            &[RosterItem {
                jid: bare(contact),
                name: None,
                subscription: Subscription::Both,
                ask: false,
                groups: Vec::new(),
            }],
        );
    }
}

/// The set-up of the tests of what becomes of a session nobody resumes: alice and bob are
/// contacts and online; alice enables resumption, sends bob one stanza (so the server's `h`
/// is 1), gets messages "1" and "2" without acknowledging them, and her connection is cut.
/// Returns bob's client and alice's SM id.
async fn alice_handles_two_then_drops(server: &TestServer) -> (Client, String) {
    befriend_alice_and_bob(server);
    let phone = full("alice", "phone");
    let bob = full("bob", "b");
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    b.available().await;
    ok(b.expect_match("bob's own presence", |el| {
        is_presence(el, &bob, "available")
    })
    .await);
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    a.available().await;
    ok(b.expect_match("alice's presence", |el| {
        is_presence(el, &phone, "available")
    })
    .await);
    let id = ok(a.sm_enable_resumable().await);
    // One stanza from the client: the h a late resume is told.
    a.send(&chat(&bob, "chat", "from phone")).await;
    ok(b.expect_message_body("from phone").await);
    for text in ["1", "2"] {
        b.send(&numbered(&phone, text)).await;
    }
    assert_eq!(next_bodies(&mut a, 2).await, ["1", "2"]);
    a.abort();
    (b, id)
}

/// A JSON GET on the admin API.
fn admin_get(admin: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, text) = parley_testkit::cluster::http_get(admin, path, Some(ADMIN_TOKEN))
        .unwrap_or_else(|| panic!("no answer from the admin API for {path}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Waits until the admin API lists the session of `jid` with `status`: the event that shows
/// the server has noticed a cut connection (or a dead peer) and is holding the session for
/// resumption. Returns the record.
fn wait_for_status(admin: SocketAddr, jid: &str, status: &str) -> serde_json::Value {
    parley_testkit::poll_until(
        &format!("the admin API listing {jid} as {status}"),
        TIMEOUT,
        || {
            let (code, json) = admin_get(
                admin,
                &format!("/api/v1/sessions?status={status}&limit=1000"),
            );
            assert_ne!(
                code, 400,
                "the admin API does not know the status {status}: {json}"
            );
            json["sessions"]
                .as_array()
                .and_then(|l| l.iter().find(|r| r["jid"] == jid))
                .cloned()
        },
    )
}

/// Reads until the connection ends (a stream error, `</stream:stream>` or EOF, all fine):
/// for connections the server is expected to drop.
async fn expect_connection_end(c: &mut Client, what: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_within(left).await {
            Ok(Some(Received::Eof | Received::Close)) | Err(ClientError::Io(_)) => return,
            Ok(Some(Received::Element(el))) if el.is("error", ns::STREAM) => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the connection is still open after {TIMEOUT:?}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

// ----- §2: the stream feature ----------------------------------------------------------------

/// XEP-0198 §2: `<sm xmlns='urn:xmpp:sm:3'/>` is offered in the features after SASL and the
/// stream restart (where binding is offered too), and not before authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_feature_is_offered_after_authentication_only_xep0198_2() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect(server.c2s()).await;
    let features = ok(c.open().await);
    assert!(!sm::offered(&features), "before TLS: {features}");
    ok(c.starttls().await);
    let features = ok(c.open().await);
    assert!(!sm::offered(&features), "before SASL: {features}");
    ok(c.auth(Mechanism::ScramSha256, "alice", "password").await);
    let features = ok(c.open().await);
    assert!(
        features.has_child("bind", ns::BIND),
        "after SASL: {features}"
    );
    assert!(
        sm::offered(&features),
        "XEP-0198 §2: <sm/> after SASL: {features}"
    );
}

/// XEP-0198 §2 and §6 with `stream_management = false`: no `<sm/>` feature, and an
/// `<enable/>` is answered with `<failed/>` carrying `<feature-not-implemented/>` (RFC 6120
/// §8.3.3.3: the feature is not implemented here) without ending the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_off_is_not_offered_and_enable_fails_xep0198_2() {
    let server = TestServer::start(|cfg| cfg.c2s.stream_management = false);
    let mut c = Client::authed(server.c2s(), "alice").await;
    let features = c.features.clone().expect("features");
    assert!(!sm::offered(&features), "SM is off: {features}");
    c.bind(Some("a")).await.expect("bind");
    expect_failed(&mut c, &sm::enable(true), "feature-not-implemented").await;
    ok(c.sync().await);
}

// ----- §3: enabling --------------------------------------------------------------------------

/// XEP-0198 §3: `<enable resume='true' max='60'/>` after binding is answered with
/// `<enabled id=… resume='true' max='60'/>`; the id is not empty and differs between
/// sessions (of one user and of two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_with_resume_returns_an_id_and_the_asked_max_xep0198_3() {
    let server = TestServer::start(no_server_acks);
    let mut ids = Vec::new();
    for (user, resource) in [("alice", "one"), ("alice", "two"), ("bob", "one")] {
        let mut c = Client::login(server.c2s(), user, Some(resource)).await;
        let enabled = ok(c.sm_send_for_answer(&sm::enable_with_max(60)).await);
        assert!(sm::is(&enabled, "enabled"), "{enabled}");
        assert!(
            matches!(enabled.attr("resume"), Some("true" | "1")),
            "XEP-0198 §3: resume='true' when resumption is granted: {enabled}"
        );
        assert_eq!(enabled.attr("max"), Some("60"), "{enabled}");
        let id = enabled.attr("id").unwrap_or_default().to_owned();
        assert!(
            !id.is_empty(),
            "XEP-0198 §3: an id to resume with: {enabled}"
        );
        ids.push(id);
        ok(c.sync().await);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every session has its own id: {ids:?}");
}

/// XEP-0198 §3 (`max` is the client's preference; the server decides): a `max` above
/// `max_resume_timeout_s` is lowered to it, and without a `max` the server's own
/// `resume_timeout_s` applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_max_is_capped_by_the_server_xep0198_3() {
    let server = TestServer::start(|cfg| {
        no_server_acks(cfg);
        cfg.c2s.resume_timeout_s = 50;
        cfg.c2s.max_resume_timeout_s = 100;
    });
    let mut c = Client::login(server.c2s(), "alice", Some("big")).await;
    let enabled = ok(c.sm_send_for_answer(&sm::enable_with_max(100_000)).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    assert_eq!(
        enabled.attr("max"),
        Some("100"),
        "capped at max_resume_timeout_s: {enabled}"
    );
    let mut c = Client::login(server.c2s(), "alice", Some("none")).await;
    let enabled = ok(c.sm_enable(true).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    assert_eq!(
        enabled.attr("max"),
        Some("50"),
        "resume_timeout_s when the client names no max: {enabled}"
    );
}

/// XEP-0198 §3: `<enable/>` without `resume` turns acks on but grants no resumption:
/// `<enabled/>` carries no id and no `resume='true'`, and `<r/>` is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_without_resume_has_no_id_xep0198_3() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
    let enabled = ok(c.sm_enable(false).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    assert_eq!(enabled.attr("id"), None, "{enabled}");
    assert!(
        !matches!(enabled.attr("resume"), Some("true" | "1")),
        "{enabled}"
    );
    assert_eq!(ok(c.sm_server_count().await), 0);
}

/// XEP-0198 §3: "the client MUST NOT attempt to enable stream management until after it has
/// completed resource binding"; a server answers an early `<enable/>` with
/// `<failed><unexpected-request/></failed>` and the stream goes on: binding and enabling
/// afterwards work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_before_bind_is_unexpected_request_xep0198_3() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::authed(server.c2s(), "alice").await;
    expect_failed(&mut c, &sm::enable(true), "unexpected-request").await;
    let jid = c
        .bind(Some("late"))
        .await
        .expect("bind after the failed enable");
    assert_eq!(jid, full("alice", "late"));
    ok(c.sm_enable_resumable().await);
}

/// XEP-0198 §3: enabling twice on one stream is `<failed><unexpected-request/></failed>`;
/// Stream Management stays on with its counters untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_enable_is_unexpected_request_xep0198_3() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
    ok(c.sm_enable_resumable().await);
    ok(c.sync().await);
    expect_failed(&mut c, &sm::enable(true), "unexpected-request").await;
    assert_eq!(
        ok(c.sm_server_count().await),
        1,
        "the ping before the second enable is still counted"
    );
}

// ----- §4: acks ------------------------------------------------------------------------------

/// XEP-0198 §4: `<r/>` is answered with `<a h/>` counting the stanzas the server handled
/// since `<enabled/>` (iqs and messages alike; nothing from before enabling, and no nonzas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_is_answered_with_the_handled_count_xep0198_4() {
    let server = TestServer::start(no_server_acks);
    let me = full("alice", "a");
    let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
    // Not counted: before <enable/>.
    ok(c.sync().await);
    ok(c.sm_enable(false).await);
    assert_eq!(ok(c.sm_server_count().await), 0, "nothing since <enabled/>");
    for _ in 0..3 {
        ok(c.sync().await);
    }
    for i in 1..=2 {
        c.send(&numbered(&me, &i.to_string())).await;
    }
    assert_eq!(next_bodies(&mut c, 2).await, ["1", "2"]);
    assert_eq!(
        ok(c.sm_server_count().await),
        5,
        "three pings and two messages; the <r/> before is no stanza"
    );
}

/// XEP-0198 §4: the server asks for an ack (`<r/>`) once `sm_ack_every` stanzas are
/// unacknowledged — right after the third one here — and counts again from the client's
/// `<a/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_an_ack_after_ack_every_stanzas_xep0198_4() {
    let server = TestServer::start(|cfg| {
        cfg.c2s.sm_ack_every = 3;
        cfg.c2s.sm_ack_delay_ms = 60_000;
    });
    let alice = full("alice", "a");
    let mut a = Client::login(server.c2s(), "alice", Some("a")).await;
    ok(a.sm_enable(false).await);
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;

    for round in [["1", "2", "3"], ["4", "5", "6"]] {
        for text in round {
            b.send(&numbered(&alice, text)).await;
        }
        let (_, before) = ok(a
            .expect_match_with_skipped("the server's <r/>", |el| sm::is(el, "r"))
            .await);
        a.clear_stash();
        let bodies: Vec<String> = before
            .iter()
            .filter(|el| is_message(el))
            .map(body)
            .collect();
        assert_eq!(
            bodies, round,
            "XEP-0198 §4: <r/> right after the third: {before:?}"
        );
        assert_eq!(
            before.iter().filter(|el| is_stanza(el)).count(),
            3,
            "{before:?}"
        );
        let h: u32 = round[2].parse().expect("number");
        a.send(&sm::ack(h)).await;
        // The server has applied the ack when it answers this (it reads in order).
        assert_eq!(ok(a.sm_server_count().await), 0);
    }
}

/// XEP-0198 §4: the server also asks for an ack `sm_ack_delay_ms` after the first
/// unacknowledged stanza, however few there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_an_ack_after_the_delay_xep0198_4() {
    let server = TestServer::start(|cfg| {
        cfg.c2s.sm_ack_every = 400;
        cfg.c2s.sm_ack_delay_ms = 200;
    });
    let alice = full("alice", "a");
    let mut a = Client::login(server.c2s(), "alice", Some("a")).await;
    ok(a.sm_enable(false).await);
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    b.send(&numbered(&alice, "lonely")).await;
    let (_, before) = ok(a
        .expect_match_with_skipped("the server's delayed <r/>", |el| sm::is(el, "r"))
        .await);
    a.clear_stash();
    let bodies: Vec<String> = before
        .iter()
        .filter(|el| is_message(el))
        .map(body)
        .collect();
    assert_eq!(bodies, ["lonely"], "{before:?}");
    a.send(&sm::ack(1)).await;
    assert_eq!(ok(a.sm_server_count().await), 0);
}

/// XEP-0198 §4: an `<a/>` acknowledging more stanzas than the server sent ends the stream
/// with `<undefined-condition/>`, the text the XEP gives (naming both counts) and
/// `<handled-count-too-high h=… send-count=…/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_above_the_sent_count_is_a_stream_error_xep0198_4() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
    ok(c.sm_enable(false).await);
    // One stanza to the client: the ping's result.
    ok(c.sync().await);
    c.send(&sm::ack(3)).await;
    let error = ok(c.expect_stream_error_element().await);
    assert!(
        error.has_child("undefined-condition", ns::STREAM_ERRORS),
        "{error}"
    );
    let app = error
        .get_child("handled-count-too-high", SM)
        .unwrap_or_else(|| panic!("XEP-0198 §4: <handled-count-too-high/> in {error}"));
    assert_eq!(app.attr("h"), Some("3"), "{error}");
    assert_eq!(app.attr("send-count"), Some("1"), "{error}");
    let text = error
        .get_child("text", ns::STREAM_ERRORS)
        .map(|t| t.text())
        .unwrap_or_default();
    assert!(
        text.contains('3') && text.contains('1'),
        "the text names both counts: {text:?}"
    );
}

/// XEP-0198 §4 (`h` is an xs:unsignedInt): `h='x'` or a missing `h` is a stream error, and
/// only for that stream: the server goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_h_is_a_stream_error_xep0198_4() {
    let server = TestServer::start(no_server_acks);
    for bad in [
        "<a xmlns='urn:xmpp:sm:3' h='x'/>",
        "<a xmlns='urn:xmpp:sm:3'/>",
        "<a xmlns='urn:xmpp:sm:3' h='-1'/>",
    ] {
        let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
        ok(c.sm_enable(false).await);
        c.send_raw(bad).await.expect("send");
        let condition = c
            .expect_stream_error()
            .await
            .unwrap_or_else(|e| panic!("{bad}: expected a stream error: {e}"));
        assert!(
            [
                "undefined-condition",
                "bad-format",
                "invalid-xml",
                "policy-violation"
            ]
            .contains(&condition.as_str()),
            "{bad}: {condition}"
        );
    }
    let mut other = Client::login(server.c2s(), "bob", Some("b")).await;
    ok(other.sync().await);
}

/// XEP-0198 §4: `h` counts modulo 2^32, so an ack of 2^32 - 1 right after `<enabled/>`
/// (nothing sent) is not a wrapped "-1 = nothing" but too high. (The wraparound itself is
/// covered by the unit tests of `parley_proto::sm`: 2^32 stanzas are out of a test's reach.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_of_2_pow_32_minus_1_with_nothing_sent_is_too_high_xep0198_4() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::login(server.c2s(), "alice", Some("a")).await;
    ok(c.sm_enable(false).await);
    c.send(&sm::ack(u32::MAX)).await;
    let error = ok(c.expect_stream_error_element().await);
    assert!(
        error.has_child("undefined-condition", ns::STREAM_ERRORS),
        "{error}"
    );
    let app = error
        .get_child("handled-count-too-high", SM)
        .unwrap_or_else(|| panic!("{error}"));
    assert_eq!(app.attr("h"), Some("4294967295"), "{error}");
    assert_eq!(app.attr("send-count"), Some("0"), "{error}");
}

// ----- §5: resumption ------------------------------------------------------------------------

/// XEP-0198 §5: a resumable session whose connection is cut keeps its full JID and queues
/// what arrives: the sender gets no error and the user's other resource sees no unavailable
/// presence. On a new connection, after SASL and without binding, `<resume previd h/>` is
/// answered with `<resumed previd h/>` (h: the client's stanzas the server handled), and
/// exactly the stanzas past the client's `h` follow, in order, once — including those past
/// an earlier `<a/>` that the resume's `h` covers. The resumed session has the old full JID
/// and both counters go on from where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_resends_unacked_stanzas_once_in_order_xep0198_5() {
    let server = TestServer::start(no_server_acks);
    let phone = full("alice", "phone");
    let desk = full("alice", "desk");
    let bob = full("bob", "b");

    let mut d = Client::login(server.c2s(), "alice", Some("desk")).await;
    d.available().await;
    ok(d.expect_match("desk's own presence", |el| {
        is_presence(el, &desk, "available")
    })
    .await);
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    a.available().await;
    ok(a.expect_each(
        "phone's own presence and desk's",
        vec![
            Box::new(|el: &Element| is_presence(el, &phone, "available")),
            Box::new(|el: &Element| is_presence(el, &desk, "available")),
        ],
    )
    .await);
    ok(d.expect_match("phone's presence", |el| {
        is_presence(el, &phone, "available")
    })
    .await);
    let id = ok(a.sm_enable_resumable().await);

    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    // Two stanzas from the client after <enabled/>: the h of <resumed/>.
    for text in ["from a 1", "from a 2"] {
        a.send(&chat(&bob, "chat", text)).await;
        ok(b.expect_message_body(text).await);
    }
    for i in 1..=3 {
        b.send(&numbered(&phone, &i.to_string())).await;
    }
    assert_eq!(next_bodies(&mut a, 3).await, ["1", "2", "3"]);
    // Acknowledge only the first; the ack is applied when <r/> is answered.
    a.send(&sm::ack(1)).await;
    assert_eq!(ok(a.sm_server_count().await), 2);
    a.abort();

    for i in 4..=5 {
        b.send(&numbered(&phone, &i.to_string())).await;
    }
    b.send(&ping("while-away", Some(&phone))).await;

    let mut a = Client::authed(server.c2s(), "alice").await;
    assert!(a.features.as_ref().is_some_and(sm::offered), "XEP-0198 §2");
    // The client says it handled two stanzas (more than its <a h='1'/>, less than it got):
    // 1 and 2 are not sent again, 3 is.
    expect_resumed(&mut a, &id, 2, 2).await;
    let (request, before) = ok(a
        .expect_match_with_skipped("bob's ping, queued while away", |el| {
            el.attr("id") == Some("while-away")
        })
        .await);
    a.clear_stash();
    let resent: Vec<String> = before
        .iter()
        .filter(|el| is_message(el))
        .map(body)
        .collect();
    assert_eq!(
        resent,
        ["3", "4", "5"],
        "XEP-0198 §5: what follows the client's h, in order, once: {before:?}"
    );
    assert_eq!(
        before.iter().filter(|el| is_stanza(el)).count(),
        3,
        "{before:?}"
    );
    assert_eq!(
        request.attr("to"),
        Some(phone.as_str()),
        "the same full JID: {request}"
    );
    a.send(&result_for(&request)).await;
    let reply = ok(b
        .expect_match("alice's answer to the ping", |el| {
            el.attr("id") == Some("while-away")
        })
        .await);
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert_eq!(reply.attr("from"), Some(phone.as_str()), "{reply}");
    ok(
        b.expect_none_yet("an error for a message to the hibernating session", |el| {
            el.attr("type") == Some("error")
        })
        .await,
    );

    // Both counters go on. The client has handled 2 + 4 stanzas, 7 with the ping's result
    // next; the server has handled 2 + the ping's result + the ping.
    ok(a.sync().await);
    ok(a.expect_none_yet("a stanza sent twice", is_message).await);
    a.send(&sm::ack(7)).await;
    assert_eq!(ok(a.sm_server_count().await), 4);

    // Desk saw no unavailable from phone: it would have come before this update, through
    // the same user actor.
    a.send(
        &Element::new("presence", ns::CLIENT)
            .with_child(Element::new("status", ns::CLIENT).with_text("back")),
    )
    .await;
    ok(d.expect_match("phone's presence update", |el| {
        is_presence(el, &phone, "available") && el.has_child("status", ns::CLIENT)
    })
    .await);
    ok(d.expect_none_yet("unavailable presence from phone", |el| {
        is_presence(el, &phone, "unavailable")
    })
    .await);
}

/// XEP-0198 §5: resuming an id the server does not know is `<failed/>` with
/// `<item-not-found/>`; the stream stays open and the client can bind instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_an_unknown_id_is_item_not_found_xep0198_5() {
    let server = TestServer::start(no_server_acks);
    let mut c = Client::authed(server.c2s(), "alice").await;
    expect_failed(&mut c, &sm::resume("bogus", 0), "item-not-found").await;
    let jid = c
        .bind(Some("fresh"))
        .await
        .expect("bind after the failed resume");
    assert_eq!(jid, full("alice", "fresh"));
    ok(c.sync().await);
}

/// XEP-0198 §5 (and §7, security: "the server MUST verify that the resuming entity is the
/// same as the one that created the session"): another user presenting alice's id gets the
/// same `<failed><item-not-found/></failed>` as for an unknown id — no `h` that would tell
/// the id exists — and alice can still resume afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_another_users_session_is_item_not_found_xep0198_5() {
    let server = TestServer::start(no_server_acks);
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    a.abort();

    let mut thief = Client::authed(server.c2s(), "bob").await;
    let failed = expect_failed(&mut thief, &sm::resume(&id, 0), "item-not-found").await;
    assert_eq!(
        failed.attr("h"),
        None,
        "nothing about alice's session: {failed}"
    );
    let jid = thief.bind(Some("b")).await.expect("bind");
    assert_eq!(jid, full("bob", "b"));

    let mut a = Client::authed(server.c2s(), "alice").await;
    expect_resumed(&mut a, &id, 0, 0).await;
    let pong = ok(a.request(&ping(&next_id("after"), None)).await);
    assert_eq!(
        pong.attr("to"),
        Some(full("alice", "phone").as_str()),
        "{pong}"
    );
}

/// XEP-0198 §5 (the server "MAY" end a session nobody resumed within `max`) with RFC 6121
/// §4.5.2 and XEP-0160: after `resume_timeout_s` the hibernating session ends: contacts get
/// its unavailable presence, an iq queued for it is answered with `<service-unavailable/>`,
/// a late `<resume/>` fails with `<item-not-found/>` and the server's `h`, and the messages
/// it never acknowledged are stored offline and delivered, with XEP-0203 delay stamps, at
/// the user's next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresumed_session_times_out_and_its_messages_go_offline_xep0198_5() {
    let server = TestServer::start(|cfg| {
        no_server_acks(cfg);
        cfg.c2s.resume_timeout_s = 1;
    });
    let started = unix_now();
    let phone = full("alice", "phone");
    let bob = full("bob", "b");
    let (mut b, id) = alice_handles_two_then_drops(&server).await;
    b.send(&ping("to-sleeper", Some(&phone))).await;

    ok(
        b.expect_match("alice's unavailable presence after the timeout", |el| {
            is_presence(el, &phone, "unavailable")
        })
        .await,
    );
    let reply = ok(b
        .expect_match("the error for the queued ping", |el| {
            el.attr("id") == Some("to-sleeper")
        })
        .await);
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("service-unavailable"),
        "{reply}"
    );

    // Too late: item-not-found, with the count the server had handled so that the client
    // knows what to send again (§5).
    let mut late = Client::authed(server.c2s(), "alice").await;
    let failed = expect_failed(&mut late, &sm::resume(&id, 2), "item-not-found").await;
    assert_eq!(sm::h(&failed), Some(1), "{failed}");
    drop(late);

    let mut a = Client::login(server.c2s(), "alice", Some("laptop")).await;
    a.available().await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(ok(a.expect_match("an offline message", is_message).await));
    }
    let bodies: Vec<String> = got.iter().map(body).collect();
    assert_eq!(bodies, ["1", "2"], "in order");
    for msg in &got {
        assert_eq!(msg.attr("from"), Some(bob.as_str()), "{msg}");
        assert_delayed(msg, started);
    }
    ok(
        a.expect_none_before_user_sync("a message delivered twice", is_message)
            .await,
    );
}

/// XEP-0198 §5, a race: a resume that reaches the hibernating session in the same instant
/// as its timeout (the fault point `sm-timeout-at-take` hands the actor the timer first,
/// which no outside client could line up). Exactly one of the two wins: the session ends
/// (bob sees alice's resource leave once, her unacknowledged messages go offline once),
/// and the resume fails with `<item-not-found/>` and the server's `h`. The resuming
/// connection gets nothing of the old session, and the client binds afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_meeting_the_timeout_has_one_winner_xep0198_5() {
    use parley_session::faults::{Fault, Faults};
    let server = TestServer::start(|cfg| {
        no_server_acks(cfg);
        cfg.admin.token = Some(ADMIN_TOKEN.into());
        cfg.faults = Faults::of(&[Fault::TimeoutAtTake]);
    });
    let admin = server.handle.admin.expect("admin endpoint");
    let started = unix_now();
    let phone = full("alice", "phone");
    let (mut b, id) = alice_handles_two_then_drops(&server).await;
    wait_for_status(admin, &phone, "hibernating");

    let mut late = Client::authed(server.c2s(), "alice").await;
    let failed = expect_failed(&mut late, &sm::resume(&id, 0), "item-not-found").await;
    assert_eq!(
        sm::h(&failed),
        Some(1),
        "the timeout won: the late resume learns the server's h: {failed}"
    );
    ok(
        b.expect_match("alice's unavailable presence: the session ended", |el| {
            is_presence(el, &phone, "unavailable")
        })
        .await,
    );
    wait_for_status(admin, &phone, "abandoned");

    // The same connection binds afresh and gets the two messages once, from offline storage.
    assert!(
        late.bind(Some("phone")).await.is_ok(),
        "the client binds afresh"
    );
    late.available().await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(ok(late
            .expect_match("an offline message", is_message)
            .await));
    }
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    for msg in &got {
        assert_delayed(msg, started);
    }
    ok(late
        .expect_none_before_user_sync("a message delivered twice", is_message)
        .await);
    ok(
        b.expect_none_before_ping("a second unavailable presence", |el| {
            is_presence(el, &phone, "unavailable")
        })
        .await,
    );
}

/// XEP-0198 §5 with RFC 6120 §7.7.2.2: when the client binds the same resource on a new
/// connection instead of resuming, the new session replaces the hibernating one and gets
/// the stanzas the old one never had acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_the_same_resource_takes_over_unacked_stanzas_xep0198_5() {
    let server = TestServer::start(no_server_acks);
    let phone = full("alice", "phone");
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    ok(a.sm_enable_resumable().await);
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    for text in ["1", "2"] {
        b.send(&numbered(&phone, text)).await;
    }
    assert_eq!(next_bodies(&mut a, 2).await, ["1", "2"]);
    a.abort();

    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    assert_eq!(a.jid.as_deref(), Some(phone.as_str()));
    assert_eq!(next_bodies(&mut a, 2).await, ["1", "2"]);
    ok(
        b.expect_none_before_ping("an error for the taken-over messages", |el| {
            el.attr("type") == Some("error")
        })
        .await,
    );
}

/// XEP-0198 §5 ("the server SHOULD NOT keep more than it can"): with `sm_max_queue = 3`, a
/// hibernating session keeps three unacknowledged stanzas and refuses the rest with an error
/// to the sender; a resume then gets exactly the three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernating_queue_is_bounded_xep0198_5() {
    hibernating_queue_keeps_three(|cfg| cfg.c2s.sm_max_queue = 3, "").await;
}

/// The same bound in bytes (`sm_max_queue_bytes`): three messages of about 1 KiB fit in
/// 5,500 bytes as the server counts them (about 1.5 KB each), a fourth does not, whatever
/// the stanza count allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernating_queue_is_bounded_in_bytes_xep0198_5() {
    let padding = "x".repeat(1000);
    hibernating_queue_keeps_three(|cfg| cfg.c2s.sm_max_queue_bytes = 5500, &padding).await;
}

/// Five numbered messages (each with `padding` in a `<subject/>`) to a hibernating session
/// whose queue keeps three: 4 and 5 are refused to the sender, 1 to 3 come on resume.
async fn hibernating_queue_keeps_three(bound: impl FnOnce(&mut Config), padding: &str) {
    let server = TestServer::start(|cfg| {
        cfg.admin.token = Some(ADMIN_TOKEN.into());
        cfg.c2s.sm_ack_every = 1;
        cfg.c2s.sm_ack_delay_ms = 60_000;
        bound(cfg);
    });
    let admin = server.handle.admin.expect("admin endpoint");
    let phone = full("alice", "phone");
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    a.abort();
    wait_for_status(admin, &phone, "hibernating");

    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    for i in 1..=5 {
        let mut msg = numbered(&phone, &i.to_string());
        if !padding.is_empty() {
            msg.push_child(Element::new("subject", ns::CLIENT).with_text(padding));
        }
        b.send(&msg).await;
    }
    for refused in ["m-4", "m-5"] {
        let err = ok(b
            .expect_match(&format!("the error for {refused}"), |el| {
                el.attr("id") == Some(refused)
            })
            .await);
        let condition = error_condition(&err).unwrap_or_default();
        assert!(
            ["recipient-unavailable", "resource-constraint"].contains(&condition.as_str()),
            "{err}"
        );
    }
    // The first three were accepted: their errors would have come first.
    ok(b.expect_none_yet("an error for a kept message", |el| {
        matches!(el.attr("id"), Some("m-1" | "m-2" | "m-3"))
    })
    .await);

    let mut a = Client::authed(server.c2s(), "alice").await;
    expect_resumed(&mut a, &id, 0, 0).await;
    assert_eq!(next_bodies(&mut a, 3).await, ["1", "2", "3"]);
    // Acknowledged, so that the ping's result fits in the queue.
    a.send(&sm::ack(3)).await;
    ok(a.expect_none_before_ping("a refused message", is_message)
        .await);
}

// ----- XEP-0199: dead peers ------------------------------------------------------------------

/// XEP-0199 §4.2 (server-to-client ping) as dead-peer detection: a bound client silent for
/// `ping_interval_s` is pinged; answering keeps the session (it is pinged again after the
/// next silence, and still routes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_pinged_and_answering_keeps_it_xep0199_4_2() {
    let server = TestServer::start(|cfg| {
        cfg.c2s.ping_interval_s = 1;
        cfg.c2s.ping_timeout_s = 1;
    });
    let me = full("alice", "quiet");
    let mut c = Client::login(server.c2s(), "alice", Some("quiet")).await;
    let mut seen = Vec::new();
    for round in 1..=2 {
        let ping = ok(c
            .expect_match(&format!("server ping {round}"), is_server_ping)
            .await);
        assert_eq!(ping.attr("to"), Some(me.as_str()), "{ping}");
        let id = ping.attr("id").unwrap_or_default().to_owned();
        assert!(!seen.contains(&id), "a new ping each time: {ping}");
        seen.push(id);
        c.send(&result_for(&ping)).await;
    }
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    b.send(&chat(&me, "chat", "still there?")).await;
    ok(c.expect_message_body("still there?").await);
}

/// XEP-0199 §4.2 without Stream Management: a client that reads but does not answer the
/// server's ping within `ping_timeout_s` is treated as gone: its connection ends and the
/// user's other resource gets its unavailable presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_ping_ends_the_session_xep0199_4_2() {
    let server = TestServer::start(|cfg| {
        cfg.c2s.ping_interval_s = 1;
        cfg.c2s.ping_timeout_s = 1;
    });
    let mute = full("alice", "mute");
    let mut w = Client::login(server.c2s(), "alice", Some("watch")).await;
    w.available().await;
    let mut m = Client::login(server.c2s(), "alice", Some("mute")).await;
    m.available().await;
    // The watcher is pinged too: it answers, so that only the mute one goes.
    let watch = async {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match ok(w.recv_within(left).await) {
                Some(Received::Element(el)) if is_server_ping(&el) => {
                    w.send(&result_for(&el)).await;
                }
                Some(Received::Element(el)) if is_presence(&el, &mute, "unavailable") => break,
                Some(Received::Element(_)) => {}
                other => panic!("waiting for mute's unavailable presence: {other:?}"),
            }
        }
    };
    let silence = async {
        ok(m.expect_match("the server's ping", is_server_ping).await);
        expect_connection_end(&mut m, "a client that does not answer pings").await;
    };
    tokio::join!(watch, silence);
}

/// XEP-0198 §5 with XEP-0199: a resumable session whose client stops answering (neither the
/// XEP-0199 ping nor, under Stream Management, an `<r/>`) is treated as a cut connection: it
/// hibernates, a new connection resumes it while the old socket is still open on the client
/// side, and the old connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_ping_hibernates_a_resumable_session_xep0198_5() {
    let server = TestServer::start(|cfg| {
        no_server_acks(cfg);
        cfg.admin.token = Some(ADMIN_TOKEN.into());
        cfg.c2s.ping_interval_s = 1;
        cfg.c2s.ping_timeout_s = 1;
    });
    let admin = server.handle.admin.expect("admin endpoint");
    let phone = full("alice", "phone");
    let mut old = Client::login(server.c2s(), "alice", Some("phone")).await;
    let id = ok(old.sm_enable_resumable().await);
    // Under Stream Management the server may probe with <r/> instead of a ping iq.
    let probe = ok(old
        .expect_match("the server's ping or <r/>", |el| {
            is_server_ping(el) || sm::is(el, "r")
        })
        .await);
    let handled = u32::from(is_stanza(&probe));
    wait_for_status(admin, &phone, "hibernating");

    let mut a = Client::authed(server.c2s(), "alice").await;
    expect_resumed(&mut a, &id, handled, 0).await;
    expect_connection_end(&mut old, "the dead connection").await;
    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    b.send(&chat(&phone, "chat", "after the resume")).await;
    ok(a.expect_message_body("after the resume").await);
}

// ----- the admin API -------------------------------------------------------------------------

/// XEP-0198 §5 in the session lifecycle: the admin API lists a session waiting for its
/// client as `hibernating`, and as `active` again once it is resumed, with the address of
/// the connection it resumed on (here another loopback address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_a_hibernating_session_xep0198_5() {
    let server = TestServer::start(|cfg| {
        no_server_acks(cfg);
        cfg.admin.token = Some(ADMIN_TOKEN.into());
    });
    let admin = server.handle.admin.expect("admin endpoint");
    let phone = full("alice", "phone");
    let mut a = Client::login(server.c2s(), "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    let active = wait_for_status(admin, &phone, "active");
    a.abort();
    let sleeping = wait_for_status(admin, &phone, "hibernating");
    assert_eq!(
        sleeping["session"], active["session"],
        "one session, another status: {sleeping}"
    );
    assert_eq!(active["ip"], "127.0.0.1", "{active}");
    let mut a = Client::authed_from(server.c2s(), [127, 0, 0, 2].into(), "alice").await;
    expect_resumed(&mut a, &id, 0, 0).await;
    let awake = wait_for_status(admin, &phone, "active");
    assert_eq!(awake["session"], active["session"], "{awake}");
    assert_eq!(
        awake["ip"], "127.0.0.2",
        "the resumed connection's address: {awake}"
    );
}

// ----- RFC 7395: WebSocket -------------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(http: SocketAddr) -> Ws {
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket upgrade")
        .0
}

/// The next element (RFC 7395 §3.3.1: one per message).
async fn ws_next(ws: &mut Ws) -> Element {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the WebSocket is open")
            .expect("no WebSocket error");
        if let Message::Text(text) = msg {
            return Element::parse(text.as_bytes(), &Limits::default())
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}

async fn ws_send(ws: &mut Ws, el: &Element) {
    let xml = String::from_utf8(el.to_bytes_in(None)).expect("UTF-8");
    ws.send(Message::text(xml)).await.expect("send");
}

/// `<open/>`, answered by `<open/>` and the features, which are returned.
async fn ws_open(ws: &mut Ws) -> Element {
    ws.send(Message::text(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
    ))
    .await
    .expect("send open");
    let open = ws_next(ws).await;
    assert!(open.is("open", ns::FRAMING), "{open}");
    let features = ws_next(ws).await;
    assert!(features.is("features", ns::STREAM), "{features}");
    features
}

/// Opens, authenticates alice with PLAIN (loopback HTTP counts as secure) and opens again;
/// returns the features after SASL.
async fn ws_authed(http: SocketAddr) -> (Ws, Element) {
    use base64::Engine as _;
    let mut ws = ws_connect(http).await;
    ws_open(&mut ws).await;
    let creds = base64::engine::general_purpose::STANDARD.encode("\0alice\0password");
    ws_send(
        &mut ws,
        &Element::new("auth", ns::SASL)
            .with_attr("mechanism", "PLAIN")
            .with_text(creds),
    )
    .await;
    let success = ws_next(&mut ws).await;
    assert!(success.is("success", ns::SASL), "{success}");
    let features = ws_open(&mut ws).await;
    (ws, features)
}

/// XEP-0198 §2, §3 and §5 over RFC 7395: the features after SASL offer `<sm/>`, enabling
/// with resumption works, and after the WebSocket's TCP connection is dropped (no `<close/>`)
/// a new WebSocket resumes the session and gets what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_session_enables_and_resumes_xep0198_5() {
    let server = TestServer::start(no_server_acks);
    let http = server.handle.http.expect("HTTP listener");
    let web = full("alice", "web");

    let (mut ws, features) = ws_authed(http).await;
    assert!(
        sm::offered(&features),
        "XEP-0198 §2 over WebSocket: {features}"
    );
    ws_send(
        &mut ws,
        &Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", "bind")
            .with_child(
                Element::new("bind", ns::BIND)
                    .with_child(Element::new("resource", ns::BIND).with_text("web")),
            ),
    )
    .await;
    let bound = ws_next(&mut ws).await;
    assert_eq!(bound.attr("type"), Some("result"), "{bound}");
    ws_send(&mut ws, &sm::enable(true)).await;
    let enabled = ws_next(&mut ws).await;
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    let id = enabled.attr("id").expect("resumption id").to_owned();

    let mut b = Client::login(server.c2s(), "bob", Some("b")).await;
    b.send(&numbered(&web, "1")).await;
    let first = ws_next(&mut ws).await;
    assert_eq!(body(&first), "1", "{first}");
    // Dropped without <close/>: the TCP connection just ends.
    drop(ws);
    b.send(&numbered(&web, "2")).await;

    let (mut ws, _) = ws_authed(http).await;
    ws_send(&mut ws, &sm::resume(&id, 1)).await;
    let resumed = ws_next(&mut ws).await;
    assert!(sm::is(&resumed, "resumed"), "{resumed}");
    assert_eq!(resumed.attr("previd"), Some(id.as_str()), "{resumed}");
    let next = ws_next(&mut ws).await;
    assert!(is_message(&next), "{next}");
    assert_eq!(body(&next), "2", "only what follows h=1: {next}");
    assert_eq!(next.attr("to"), Some(web.as_str()), "{next}");
}

// ----- a real client: slixmpp ----------------------------------------------------------------

/// XEP-0198 §5 with a real client library (tests/clients/sm_resume.py): slixmpp with its
/// xep_0198 plugin enables resumption, its transport is aborted, it reconnects and resumes
/// (slixmpp fires `session_resumed`, not a new `session_start`), keeps its full JID, gets
/// the message sent while it was away (and not the one it had handled again), and chats on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_client_resumes_after_its_connection_is_cut_xep0198_5() {
    let server = TestServer::start(|_| {});
    let script = parley_testkit::workspace_root().join("tests/clients/sm_resume.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script)
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.c2s().port().to_string())
        .args(["--password", "password", "--deadline", "30"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(45), cmd.output())
        .await
        .expect("sm_resume.py stops within its deadline")
        .expect("python3 runs (tests/run installs it with slixmpp)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sm_resume.py failed:\n{text}");
    eprintln!("sm_resume.py:\n{text}");
    for line in ["ENABLED", "RESUMED alice@localhost/", "GOT while away"] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with("OK"),
        "{text}"
    );
}
