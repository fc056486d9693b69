//! Streams over real TCP and TLS sockets: RFC 6120 §4 (stream headers, byte-stream framing,
//! closing, stream errors), §11 (restricted XML, entity attacks), §13.9.4 (resource limits)
//! and XEP-0478 (stream limits advertisement).
//!
//! Every test starts its own in-process server, so the tests run in parallel without sharing
//! state. Most attacks are sent after a full login, where a clean stanza of the same shape is
//! accepted, so that the error can only come from the rule under test.

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::{Client, Received, TestServer, WriteMode};
use parley_xml::Element;

/// A client stream header for `to`, written out so that tests can vary any part of it.
fn header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{to}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>"
    )
}

/// Sends `bytes` as the very first thing on a new connection. Checks that the server answers
/// with its own header before the error (RFC 6120 §4.9.1.2) and returns the condition (the
/// testkit also checks `</stream:stream>` and the end of the connection, §4.9.1.1).
async fn error_for_opening(server: &TestServer, bytes: impl AsRef<[u8]>) -> String {
    let mut c = Client::connect(server.c2s()).await;
    // The server may close while a long payload is still being written.
    let _ = c.send_raw(bytes).await;
    match c.recv().await.expect("server header") {
        Received::Header(h) => assert_eq!(h.ns, ns::STREAM, "the server's header comes first"),
        other => panic!("expected the server's stream header first, got {other:?}"),
    }
    c.expect_stream_error().await.expect("stream error")
}

/// Opens a stream (no TLS yet), then sends `bytes`; returns the stream error condition.
async fn error_in_open_stream(server: &TestServer, bytes: impl AsRef<[u8]>) -> String {
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    // The server may close while a long payload is still being written.
    let _ = c.send_raw(bytes).await;
    c.expect_stream_error().await.expect("stream error")
}

/// Logs `user` in, then sends `bytes`; returns the stream error condition.
async fn error_after_login(server: &TestServer, user: &str, bytes: impl AsRef<[u8]>) -> String {
    let mut c = Client::login(server.c2s(), user, Some("attack")).await;
    let _ = c.send_raw(bytes).await;
    c.expect_stream_error().await.expect("stream error")
}

/// Sends `payload` (the inside of a message to the client's own full JID) and returns the
/// message as the server delivers it back.
async fn echo(c: &mut Client, id: &str, payload: &str) -> Element {
    let jid = c.jid.clone().expect("bound");
    let stanza = format!("<message to='{jid}' id='{id}' type='chat'>{payload}</message>");
    c.send_raw(stanza).await.expect("send");
    c.recv_until(|el| el.is("message", ns::CLIENT) && el.attr("id") == Some(id))
        .await
        .expect("message delivered back")
}

fn ping(id: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_child(Element::new("ping", ns::PING))
}

fn chat(to: &str, id: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", id)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// The server still works: a fresh full login succeeds and two clients exchange a message.
async fn assert_server_alive(server: &TestServer) {
    let mut alice = Client::login(server.c2s(), "alice", Some("after")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("after")).await;
    alice
        .send(&chat("bob@localhost/after", "alive-1", "still here"))
        .await;
    let got = bob
        .recv_until(|el| el.is("message", ns::CLIENT))
        .await
        .expect("bob gets alice's message");
    assert_eq!(got.attr("from"), Some("alice@localhost/after"));
    assert_eq!(
        got.get_child("body", ns::CLIENT)
            .map(|b| b.text())
            .as_deref(),
        Some("still here")
    );
}

// ----- RFC 6120 §4.2: a stream is a byte stream ---------------------------------------------

/// Everything observable about one complete session, for comparing how the server behaves
/// under different cuts of the same client bytes.
async fn login_transcript(server: &TestServer, mode: WriteMode) -> Vec<String> {
    let mut t = Vec::new();
    let mut c = Client::connect(server.c2s()).await;
    c.set_write_mode(mode);
    t.push(c.open().await.expect("open").to_string());
    c.starttls().await.expect("starttls");
    t.push(c.open().await.expect("open after TLS").to_string());
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("SCRAM-SHA-256");
    t.push(c.open().await.expect("open after SASL").to_string());
    let jid = c.bind(Some("bytes")).await.expect("bind");
    t.push(jid.clone());
    t.push(c.iq(&ping("ping-1")).await.expect("pong").to_string());
    // Multi-byte UTF-8 and escaped markup, so that cuts fall inside characters and references.
    c.send(&chat(&jid, "m-1", "héllo <&> wörld ✓ 𝄞")).await;
    let mut echoed = c
        .recv_until(|el| el.is("message", ns::CLIENT))
        .await
        .expect("message to self");
    // Archived (XEP-0313) with a random id: the one part that differs between runs.
    let sid = echoed.remove_child("stanza-id", parley_proto::mam::SID);
    assert!(sid.is_some(), "{echoed}");
    t.push(echoed.to_string());
    c.send_raw("</stream:stream>").await.expect("close");
    t.push(format!("{:?}", c.recv().await.expect("close answer")));
    t.push(format!("{:?}", c.recv().await.expect("end of connection")));
    t
}

/// RFC 6120 §4.2: the stream is a byte stream; a client writing one byte at a time (one
/// write and flush per byte, TCP_NODELAY) gets exactly the same session as one that writes
/// whole elements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_2_login_one_byte_per_write_behaves_identically() {
    let server = TestServer::start(|_| {});
    let whole = login_transcript(&server, WriteMode::Whole).await;
    assert_eq!(whole.last().map(String::as_str), Some("Eof"), "{whole:?}");
    assert!(whole[0].contains("starttls"), "{whole:?}");
    assert!(whole[3].ends_with("/bytes"), "{whole:?}");
    let bytewise = login_transcript(&server, WriteMode::Bytewise).await;
    assert_eq!(bytewise, whole);
}

/// RFC 6120 §4.2: cutting the client's bytes at pseudo-random points (several seeds) does
/// not change anything the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_2_login_cut_at_random_points_behaves_identically() {
    let server = TestServer::start(|_| {});
    let whole = login_transcript(&server, WriteMode::Whole).await;
    for seed in [1, 0x5eed, 0xdead_beef_u64] {
        let cut = login_transcript(&server, WriteMode::RandomCuts { seed, max_chunk: 9 }).await;
        assert_eq!(cut, whole, "seed {seed:#x}");
    }
}

fn is_random_id(id: &str) -> bool {
    let hex = id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let b64 = id.len() >= 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    hex || b64
}

/// RFC 6120 §4.7.3 (id: unique, with at least 128 bits of randomness per §13.10), §4.7.2
/// (from: the served domain), §4.7.5 (version 1.0), §4.8 (namespaces) for the server's
/// stream header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_7_server_header_has_random_id_from_and_version() {
    let server = TestServer::start(|_| {});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(server.c2s()).await;
        c.send_header().await;
        let Received::Header(h) = c.recv().await.expect("header") else {
            panic!("expected the server's stream header");
        };
        assert_eq!(h.name, "stream");
        assert_eq!(h.ns, ns::STREAM);
        assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
        assert_eq!(h.attr("from"), Some("localhost"));
        assert_eq!(h.attr("version"), Some("1.0"));
        let id = h.attr("id").expect("stream id").to_owned();
        assert!(is_random_id(&id), "id {id:?} carries less than 128 bits");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "stream ids must differ between connections");
}

// ----- RFC 6120 §4.4: closing ----------------------------------------------------------------

/// RFC 6120 §4.4: the client's `</stream:stream>` is answered with `</stream:stream>` and the
/// connection is closed, both before authentication and in an established session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_4_client_close_is_answered_with_close() {
    let server = TestServer::start(|_| {});
    let mut pre = Client::connect(server.c2s()).await;
    pre.open().await.expect("open");
    pre.send_raw("</stream:stream>").await.expect("close");
    assert!(matches!(pre.recv().await.expect("close"), Received::Close));
    assert!(matches!(pre.recv().await.expect("eof"), Received::Eof));

    let mut c = Client::login(server.c2s(), "alice", Some("closing")).await;
    c.send_raw("</stream:stream>").await.expect("close");
    match c.recv().await.expect("answer") {
        Received::Close => {}
        other => panic!("expected </stream:stream>, got {other:?}"),
    }
    assert!(matches!(c.recv().await.expect("eof"), Received::Eof));
}

/// RFC 6120 §4.6.1: whitespace between stanzas (keepalives) is accepted and ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_6_1_whitespace_keepalives_are_accepted() {
    let server = TestServer::start(|_| {});
    let mut c = Client::login(server.c2s(), "alice", Some("ka")).await;
    for ws in [" ", "\n", "\r\n\t  ", "\n\n\n"] {
        c.send_raw(ws).await.expect("keepalive");
        // Each keepalive is read on its own: the server answers a ping only after it has
        // read the keepalive sent before it.
        c.sync().await.expect("ping after a keepalive");
    }
    let pong = c.iq(&ping("ka-1")).await.expect("pong after keepalives");
    assert_eq!(pong.attr("type"), Some("result"));
    // Whitespace inside one write, between and around stanzas.
    let mut both = b" \n".to_vec();
    both.extend(ping("ka-2").to_bytes_in(Some(ns::CLIENT)));
    both.extend(b"\n \t\n");
    both.extend(ping("ka-3").to_bytes_in(Some(ns::CLIENT)));
    both.extend(b"  ");
    c.send_raw(both).await.expect("send");
    for id in ["ka-2", "ka-3"] {
        let pong = c
            .recv_until(|el| el.attr("id") == Some(id))
            .await
            .expect("pong");
        assert_eq!(pong.attr("type"), Some("result"), "{pong}");
    }
}

// ----- RFC 6120 §4.9.3: stream error conditions ----------------------------------------------

/// RFC 6120 §4.9.3.10: a stream element in the wrong namespace is `<invalid-namespace/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_10_invalid_namespace_wrong_stream_namespace() {
    let server = TestServer::start(|_| {});
    let cond = error_for_opening(
        &server,
        "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://example.com/not-streams'>",
    )
    .await;
    assert_eq!(cond, "invalid-namespace");
}

/// RFC 6120 §4.9.3.10, §4.8.2: a client stream whose content namespace is `jabber:server`
/// is `<invalid-namespace/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_10_invalid_namespace_content_namespace_jabber_server() {
    let server = TestServer::start(|_| {});
    let cond = error_for_opening(
        &server,
        "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(cond, "invalid-namespace");
}

/// RFC 6120 §4.9.3.25, §4.7.5: version 2.0, and a header without a version (which means
/// 0.9), are `<unsupported-version/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_25_unsupported_version() {
    let server = TestServer::start(|_| {});
    let v2 = error_for_opening(
        &server,
        "<stream:stream to='localhost' version='2.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(v2, "unsupported-version");
    let none = error_for_opening(
        &server,
        "<stream:stream to='localhost' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(none, "unsupported-version");
}

/// RFC 6120 §4.9.3.6, §4.7.2: a `to` the server does not serve, and a missing `to`, are
/// `<host-unknown/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_6_host_unknown() {
    let server = TestServer::start(|_| {});
    let unknown = error_for_opening(&server, header("example.org")).await;
    assert_eq!(unknown, "host-unknown");
    let missing = error_for_opening(
        &server,
        "<stream:stream version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(missing, "host-unknown");
}

/// RFC 6120 §4.9.3.13: mismatched tags are `<not-well-formed/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_13_not_well_formed_mismatched_tags() {
    let server = TestServer::start(|_| {});
    let cond = error_after_login(
        &server,
        "alice",
        "<message to='bob@localhost'><body>hi</message></body>",
    )
    .await;
    assert_eq!(cond, "not-well-formed");
}

/// RFC 6120 §4.9.3.22, §11.6: bytes that are not UTF-8 are `<unsupported-encoding/>`
/// ("improperly encoded the stream"), in a stanza and in the stream header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_22_unsupported_encoding_bad_utf8() {
    let server = TestServer::start(|_| {});
    let mut stanza = b"<message to='bob@localhost'><body>caf".to_vec();
    stanza.extend_from_slice(&[0xC3, 0x28, 0xFF, 0xFE]);
    stanza.extend_from_slice(b"</body></message>");
    assert_eq!(
        error_after_login(&server, "alice", &stanza).await,
        "unsupported-encoding"
    );
    let mut head = b"<stream:stream to='local".to_vec();
    head.extend_from_slice(&[0xFF, 0x80]);
    head.extend_from_slice(
        b"' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    assert_eq!(
        error_for_opening(&server, &head).await,
        "unsupported-encoding"
    );
}

/// RFC 6120 §11.1, §4.9.3.18: comments are `<restricted-xml/>`, at stream level and inside
/// a stanza.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_restricted_xml_comment() {
    let server = TestServer::start(|_| {});
    assert_eq!(
        error_in_open_stream(&server, "<!-- hello -->").await,
        "restricted-xml"
    );
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost'><!-- hi --><body>x</body></message>"
        )
        .await,
        "restricted-xml"
    );
}

/// RFC 6120 §11.1, §4.9.3.18: processing instructions are `<restricted-xml/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_restricted_xml_processing_instruction() {
    let server = TestServer::start(|_| {});
    assert_eq!(
        error_in_open_stream(&server, "<?evil instruction?>").await,
        "restricted-xml"
    );
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost'><body>x<?pi data?></body></message>"
        )
        .await,
        "restricted-xml"
    );
}

/// RFC 6120 §11.1, §4.9.3.18: a DTD (`<!DOCTYPE>`) is `<restricted-xml/>`, before the
/// header and inside the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_restricted_xml_doctype() {
    let server = TestServer::start(|_| {});
    let before = format!(
        "<?xml version='1.0'?><!DOCTYPE stream:stream SYSTEM 'http://example.com/x.dtd'>{}",
        header("localhost")
    );
    assert_eq!(error_for_opening(&server, before).await, "restricted-xml");
    assert_eq!(
        error_in_open_stream(&server, "<!DOCTYPE message [<!ELEMENT message ANY>]>").await,
        "restricted-xml"
    );
}

/// RFC 6120 §11.1, §4.9.3.18: an entity reference other than the five predefined ones is
/// `<restricted-xml/>`, in text and in an attribute value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_restricted_xml_entity_references() {
    let server = TestServer::start(|_| {});
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost'><body>a &foo; b</body></message>"
        )
        .await,
        "restricted-xml"
    );
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost' id='&foo;'><body>x</body></message>"
        )
        .await,
        "restricted-xml"
    );
}

/// RFC 6120 §11.1: the predefined entities and character references are fine, so the
/// restricted-xml checks above are about the entities and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_predefined_entities_and_character_references_are_accepted() {
    let server = TestServer::start(|_| {});
    let mut c = Client::login(server.c2s(), "alice", Some("ents")).await;
    let got = echo(
        &mut c,
        "e-1",
        "<body>&lt;&gt;&amp;&apos;&quot; &#65;&#x42;</body><x xmlns='urn:test' v='&amp;&#x43;'/>",
    )
    .await;
    assert_eq!(
        got.get_child("body", ns::CLIENT)
            .map(|b| b.text())
            .as_deref(),
        Some("<>&'\" AB")
    );
    assert_eq!(
        got.get_child("x", "urn:test").and_then(|x| x.attr("v")),
        Some("&C")
    );
}

/// RFC 6120 §4.9.3.2: an undeclared namespace prefix is `<bad-namespace-prefix/>`, on an
/// element and on an attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_2_bad_namespace_prefix() {
    let server = TestServer::start(|_| {});
    assert_eq!(
        error_after_login(&server, "alice", "<foo:message to='bob@localhost'/>").await,
        "bad-namespace-prefix"
    );
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost'><body>x</body><q:x/></message>"
        )
        .await,
        "bad-namespace-prefix"
    );
    assert_eq!(
        error_after_login(
            &server,
            "alice",
            "<message to='bob@localhost' q:attr='1'><body>x</body></message>"
        )
        .await,
        "bad-namespace-prefix"
    );
}

/// RFC 6120 §4.9.3.14, §13.9.4: a stanza larger than `max_stanza_bytes` is
/// `<policy-violation/>`, also while it is still arriving; one below the limit is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_13_9_4_policy_violation_oversize_stanza() {
    let server = TestServer::start(|cfg| cfg.c2s.max_stanza_bytes = 10_000);
    let mut c = Client::login(server.c2s(), "alice", Some("big")).await;
    let fits = "a".repeat(9_000);
    let got = echo(&mut c, "fits", &format!("<body>{fits}</body>")).await;
    assert_eq!(
        got.get_child("body", ns::CLIENT).map(|b| b.text()),
        Some(fits)
    );

    let big = format!(
        "<message to='bob@localhost'><body>{}</body></message>",
        "a".repeat(12_000)
    );
    assert_eq!(
        error_after_login(&server, "alice", big).await,
        "policy-violation"
    );
    // Never completed: the server must not wait for the end before refusing it.
    let endless = format!("<message to='bob@localhost'><body>{}", "a".repeat(20_000));
    assert_eq!(
        error_after_login(&server, "alice", endless).await,
        "policy-violation"
    );
}

fn nested(depth: usize) -> String {
    // The message is depth 1; `depth - 1` nested children follow.
    let inner = depth - 1;
    format!(
        "{}{}",
        "<a xmlns='urn:test'>".repeat(inner),
        "</a>".repeat(inner)
    )
}

/// RFC 6120 §13.9.4, §4.9.3.14: nesting deeper than `max_depth` is `<policy-violation/>`;
/// exactly `max_depth` is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_13_9_4_policy_violation_too_deep() {
    let server = TestServer::start(|cfg| cfg.c2s.max_depth = 10);
    let mut c = Client::login(server.c2s(), "alice", Some("deep")).await;
    let got = echo(&mut c, "deep-ok", &nested(10)).await;
    assert!(got.get_child("a", "urn:test").is_some(), "{got}");
    let too_deep = format!("<message to='bob@localhost'>{}</message>", nested(11));
    assert_eq!(
        error_after_login(&server, "alice", too_deep).await,
        "policy-violation"
    );
}

fn attrs(n: usize) -> String {
    // The namespace declaration counts as one attribute.
    let mut s = String::from("<x xmlns='urn:test'");
    for i in 1..n {
        s.push_str(&format!(" a{i}='{i}'"));
    }
    s.push_str("/>");
    s
}

/// RFC 6120 §13.9.4, §4.9.3.14: more attributes on one element than `max_attributes` is
/// `<policy-violation/>`; exactly `max_attributes` is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_13_9_4_policy_violation_too_many_attributes() {
    let server = TestServer::start(|cfg| cfg.c2s.max_attributes = 10);
    let mut c = Client::login(server.c2s(), "alice", Some("attrs")).await;
    let got = echo(&mut c, "attrs-ok", &attrs(10)).await;
    assert_eq!(
        got.get_child("x", "urn:test").and_then(|x| x.attr("a9")),
        Some("9")
    );
    let too_many = format!("<message to='bob@localhost'>{}</message>", attrs(11));
    assert_eq!(
        error_after_login(&server, "alice", too_many).await,
        "policy-violation"
    );
}

// ----- RFC 6120 §11.1, §13.9.4: entity expansion attacks -------------------------------------

/// The classic "billion laughs" DTD: ten levels of ten-fold expansion.
fn billion_laughs_dtd() -> String {
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol0 'lol'>");
    for i in 1..10 {
        let body = format!("&lol{};", i - 1).repeat(10);
        dtd.push_str(&format!("<!ENTITY lol{i} '{body}'>"));
    }
    dtd.push_str("]>");
    dtd
}

/// One big entity referenced many times (expansion grows with the product).
fn quadratic_blowup_dtd_and_use() -> (String, String) {
    let dtd = format!("<!DOCTYPE kaboom [<!ENTITY a '{}'>]>", "a".repeat(50_000));
    let body = format!(
        "<message to='bob@localhost'><body>{}</body></message>",
        "&a;".repeat(5_000)
    );
    (dtd, body)
}

/// RFC 6120 §11.1, §13.9.4: "billion laughs" before the header and inside the stream is
/// `<restricted-xml/>` (the entities are never expanded), and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_billion_laughs_is_restricted_xml_and_server_survives() {
    let server = TestServer::start(|_| {});
    let use_it = "<message to='bob@localhost'><body>&lol9;</body></message>";
    let before = format!(
        "<?xml version='1.0'?>{}{}{use_it}",
        billion_laughs_dtd(),
        header("localhost")
    );
    assert_eq!(error_for_opening(&server, before).await, "restricted-xml");
    let inside = format!("{}{use_it}", billion_laughs_dtd());
    assert_eq!(
        error_after_login(&server, "carol", inside).await,
        "restricted-xml"
    );
    assert_server_alive(&server).await;
}

/// RFC 6120 §11.1, §13.9.4: the quadratic blowup (one large entity referenced thousands of
/// times) before the header and inside the stream is `<restricted-xml/>`, and the server
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_11_1_quadratic_blowup_is_restricted_xml_and_server_survives() {
    let server = TestServer::start(|_| {});
    let (dtd, use_it) = quadratic_blowup_dtd_and_use();
    let before = format!("<?xml version='1.0'?>{dtd}{}{use_it}", header("localhost"));
    assert_eq!(error_for_opening(&server, before).await, "restricted-xml");
    assert_eq!(
        error_after_login(&server, "carol", format!("{dtd}{use_it}")).await,
        "restricted-xml"
    );
    // Without the DTD the references are undeclared entities, refused the same way.
    assert_eq!(
        error_after_login(&server, "carol", use_it).await,
        "restricted-xml"
    );
    assert_server_alive(&server).await;
}

// ----- XEP-0478: stream limits advertisement -------------------------------------------------

fn advertised_max_bytes(features: &Element) -> Option<String> {
    features
        .get_child("limits", ns::STREAM_LIMITS)
        .and_then(|l| l.get_child("max-bytes", ns::STREAM_LIMITS))
        .map(|m| m.text())
}

/// XEP-0478 §2: the features before authentication (after TLS) and after it advertise
/// `<limits><max-bytes/>` with the configured `max_stanza_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0478_features_advertise_configured_max_bytes() {
    let server = TestServer::start(|cfg| cfg.c2s.max_stanza_bytes = 12_345);
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    c.starttls().await.expect("starttls");
    let pre_auth = c.open().await.expect("open after TLS");
    assert_eq!(
        advertised_max_bytes(&pre_auth).as_deref(),
        Some("12345"),
        "{pre_auth}"
    );
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("auth");
    let post_auth = c.open().await.expect("open after SASL");
    assert!(post_auth.has_child("bind", ns::BIND), "{post_auth}");
    assert_eq!(
        advertised_max_bytes(&post_auth).as_deref(),
        Some("12345"),
        "{post_auth}"
    );
}
