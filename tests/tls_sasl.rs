//! TLS and SASL over real sockets: RFC 6120 §5 (STARTTLS), §6 (SASL), XEP-0368 (direct TLS),
//! SCRAM (RFC 5802, RFC 7677) with channel binding (RFC 5929 tls-server-end-point, RFC 9266
//! tls-exporter) and XEP-0440 (channel-binding type capability).
//!
//! Every test starts its own in-process server, so the tests run in parallel.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use parley_proto::ns;
use parley_proto::sasl::{ChannelBindingType, Mechanism, SaslFailure, ScramClient, ScramHash};
use parley_testkit::{Client, ClientError, Received, TestServer};
use parley_xml::Element;

fn mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", ns::SASL)
        .map(|m| {
            m.children()
                .filter(|c| c.is("mechanism", ns::SASL))
                .map(|c| c.text())
                .collect()
        })
        .unwrap_or_default()
}

fn cb_types(features: &Element) -> Vec<String> {
    features
        .get_child("sasl-channel-binding", ns::SASL_CB)
        .map(|cb| {
            cb.children()
                .filter_map(|c| c.attr("type").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Connects, negotiates STARTTLS and opens the encrypted stream; returns its features.
async fn tls_client(server: &TestServer) -> (Client, Element) {
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    c.starttls().await.expect("starttls");
    let features = c.open().await.expect("open after TLS");
    (c, features)
}

/// Restarts the stream after SASL success, binds and checks the session works (a ping).
async fn finish_login(c: &mut Client, resource: &str) -> String {
    let features = c.open().await.expect("open after SASL");
    assert!(features.has_child("bind", ns::BIND), "{features}");
    let jid = c.bind(Some(resource)).await.expect("bind");
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "ping-after-login")
        .with_child(Element::new("ping", ns::PING));
    let pong = c.iq(&ping).await.expect("pong");
    assert_eq!(pong.attr("type"), Some("result"), "{pong}");
    jid
}

fn sasl_failure(result: Result<(), ClientError>) -> (SaslFailure, Option<String>) {
    match result {
        Err(ClientError::Sasl(f, text)) => (f, text),
        other => panic!("expected a SASL failure, got {other:?}"),
    }
}

fn auth_element(mechanism: &str, payload: &[u8]) -> Element {
    Element::new("auth", ns::SASL)
        .with_attr("mechanism", mechanism)
        .with_text(B64.encode(payload))
}

fn response_element(payload: &[u8]) -> Element {
    Element::new("response", ns::SASL).with_text(B64.encode(payload))
}

/// Reads a SASL element and returns its name and decoded payload.
async fn sasl_answer(c: &mut Client) -> (String, Vec<u8>) {
    let el = c.recv_element().await.expect("SASL answer");
    assert_eq!(el.ns(), ns::SASL, "{el}");
    let data = B64.decode(el.text().trim()).expect("base64");
    (el.name().to_owned(), data)
}

/// The `s=` (decoded) and `i=` of a SCRAM server-first message.
fn salt_and_iterations(server_first: &[u8]) -> (Vec<u8>, u32) {
    let text = std::str::from_utf8(server_first).expect("UTF-8 server-first");
    let mut salt = None;
    let mut iterations = None;
    for part in text.split(',') {
        if let Some(s) = part.strip_prefix("s=") {
            salt = Some(B64.decode(s).expect("base64 salt"));
        } else if let Some(i) = part.strip_prefix("i=") {
            iterations = Some(i.parse().expect("numeric i="));
        }
    }
    (salt.expect("s="), iterations.expect("i="))
}

/// Sends a SCRAM client-first for `user` and returns the server-first.
async fn scram_server_first(c: &mut Client, scram: &mut ScramClient) -> Vec<u8> {
    c.send(&auth_element(
        scram.mechanism().name(),
        &scram.client_first(),
    ))
    .await;
    let (name, data) = sasl_answer(c).await;
    assert_eq!(name, "challenge");
    data
}

// ----- RFC 6120 §5: STARTTLS -----------------------------------------------------------------

/// RFC 6120 §5.3.1, §5.4.1: with encryption required (the default), the pre-TLS features
/// offer STARTTLS, marked `<required/>`, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_3_1_pre_tls_features_offer_only_required_starttls() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect(server.c2s()).await;
    let features = c.open().await.expect("open");
    let children: Vec<&Element> = features.children().collect();
    assert_eq!(children.len(), 1, "only STARTTLS is offered: {features}");
    assert!(children[0].is("starttls", ns::TLS), "{features}");
    assert!(children[0].has_child("required", ns::TLS), "{features}");
}

/// RFC 6120 §6.4.1 (encryption-required, §6.5.4): `<auth/>` before TLS is refused with
/// `<encryption-required/>`, and the stream stays open for STARTTLS and a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_5_4_auth_before_tls_is_encryption_required() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    let (failure, _) = sasl_failure(c.auth(Mechanism::Plain, "alice", "password").await);
    assert_eq!(failure, SaslFailure::EncryptionRequired);
    c.starttls().await.expect("starttls after the refusal");
    c.open().await.expect("open after TLS");
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("auth over TLS");
    finish_login(&mut c, "after-refusal").await;
}

/// RFC 6120 §5.3.1: where TLS is mandatory-to-negotiate, a stanza before TLS is a
/// `<policy-violation/>` stream error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_3_1_stanza_before_required_tls_is_policy_violation() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    c.send(
        &Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost")
            .with_child(Element::new("body", ns::CLIENT).with_text("plaintext")),
    )
    .await;
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "policy-violation"
    );
}

/// RFC 6120 §5.4: STARTTLS, a new stream, SASL and bind: a complete login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_4_starttls_then_login_works() {
    let server = TestServer::start(|_| {});
    let (mut c, features) = tls_client(&server).await;
    assert!(!features.has_child("starttls", ns::TLS), "{features}");
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("auth");
    let jid = finish_login(&mut c, "tls").await;
    assert_eq!(jid, "alice@localhost/tls");
}

/// RFC 6120 §5.4.3.3 (and the STARTTLS command injection class, CVE-2011-0411): bytes sent
/// right behind `<starttls/>`, before the handshake, are discarded: the login afterwards
/// works and the injected message never reaches its recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_4_3_3_bytes_injected_after_starttls_are_discarded() {
    let server = TestServer::start(|_| {});
    let mut bob = Client::login(server.c2s(), "bob", Some("victim")).await;
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.expect("open");
    let injected = Element::new("message", ns::CLIENT)
        .with_attr("to", "bob@localhost/victim")
        .with_attr("type", "chat")
        .with_attr("id", "injected")
        .with_child(Element::new("body", ns::CLIENT).with_text("injected"));
    c.starttls_pipelined(injected.to_bytes_in(Some(ns::CLIENT)))
        .await
        .expect("starttls with injected bytes");
    c.open().await.expect("open after TLS");
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("auth");
    finish_login(&mut c, "injector").await;
    c.send(
        &Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost/victim")
            .with_attr("type", "chat")
            .with_attr("id", "real")
            .with_child(Element::new("body", ns::CLIENT).with_text("real")),
    )
    .await;
    let first = bob
        .recv_until(|el| el.is("message", ns::CLIENT))
        .await
        .expect("bob gets a message");
    assert_eq!(
        first.attr("id"),
        Some("real"),
        "the injected message was processed: {first}"
    );
}

// ----- require_encryption = false ------------------------------------------------------------

/// RFC 6120 §5.3.1, §6.3.3: without mandatory TLS, plain-TCP features offer optional
/// STARTTLS and SCRAM + PLAIN (no -PLUS: there is no channel to bind), and PLAIN works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_3_1_optional_tls_offers_sasl_over_plain_tcp() {
    let server = TestServer::start(|cfg| cfg.c2s.require_encryption = false);
    let mut c = Client::connect(server.c2s()).await;
    let features = c.open().await.expect("open");
    let starttls = features
        .get_child("starttls", ns::TLS)
        .expect("starttls offered");
    assert!(!starttls.has_child("required", ns::TLS), "{features}");
    assert_eq!(
        mechanisms(&features),
        ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "OAUTHBEARER"],
        "{features}"
    );
    assert!(cb_types(&features).is_empty(), "{features}");
    c.auth(Mechanism::Plain, "alice", "password")
        .await
        .expect("PLAIN over plain TCP");
    finish_login(&mut c, "plain").await;
}

// ----- XEP-0368: direct TLS ------------------------------------------------------------------

/// XEP-0368: on the direct-TLS port, the features offer no STARTTLS (TLS is already up) but
/// the SASL mechanisms, -PLUS included; a login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0368_direct_tls_login() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect_tls(server.direct_tls()).await;
    let features = c.open().await.expect("open");
    assert!(!features.has_child("starttls", ns::TLS), "{features}");
    assert!(
        mechanisms(&features).contains(&"SCRAM-SHA-256-PLUS".to_owned()),
        "{features}"
    );
    c.auth(Mechanism::ScramSha256Plus, "alice", "password")
        .await
        .expect("SCRAM-SHA-256-PLUS over direct TLS");
    let jid = finish_login(&mut c, "direct").await;
    assert_eq!(jid, "alice@localhost/direct");
}

// ----- RFC 6120 §6: SASL mechanisms ----------------------------------------------------------

/// RFC 6120 §6.4.1, XEP-0440: after TLS the features list the -PLUS mechanisms first, then
/// SCRAM, PLAIN and OAUTHBEARER (RFC 7628, for tokens), and advertise both channel-binding
/// types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0440_tls_features_list_mechanisms_and_both_binding_types() {
    let server = TestServer::start(|_| {});
    let (_c, features) = tls_client(&server).await;
    assert_eq!(
        mechanisms(&features),
        [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
            "OAUTHBEARER"
        ],
        "{features}"
    );
    let mut types = cb_types(&features);
    types.sort();
    assert_eq!(
        types,
        ["tls-exporter", "tls-server-end-point"],
        "{features}"
    );
}

async fn login_with(mechanism: Mechanism, cb: ChannelBindingType) {
    let server = TestServer::start(|_| {});
    let (mut c, _) = tls_client(&server).await;
    // The testkit checks the server signature in <success/>, so a server that skipped the
    // proof would fail here too.
    c.auth_with(mechanism, "alice", "password", cb)
        .await
        .unwrap_or_else(|e| panic!("{mechanism} ({cb}): {e}"));
    finish_login(&mut c, "mech").await;
}

/// RFC 5802 / RFC 6120 §6: SCRAM-SHA-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5802_scram_sha_1_login() {
    login_with(Mechanism::ScramSha1, ChannelBindingType::TlsExporter).await;
}

/// RFC 7677: SCRAM-SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7677_scram_sha_256_login() {
    login_with(Mechanism::ScramSha256, ChannelBindingType::TlsExporter).await;
}

/// RFC 5802 §6, RFC 9266: SCRAM-SHA-1-PLUS with tls-exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9266_scram_sha_1_plus_tls_exporter_login() {
    login_with(Mechanism::ScramSha1Plus, ChannelBindingType::TlsExporter).await;
}

/// RFC 7677, RFC 9266: SCRAM-SHA-256-PLUS with tls-exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9266_scram_sha_256_plus_tls_exporter_login() {
    login_with(Mechanism::ScramSha256Plus, ChannelBindingType::TlsExporter).await;
}

/// RFC 5929 §4: SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with tls-server-end-point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5929_scram_plus_tls_server_end_point_login() {
    login_with(
        Mechanism::ScramSha256Plus,
        ChannelBindingType::TlsServerEndPoint,
    )
    .await;
    login_with(
        Mechanism::ScramSha1Plus,
        ChannelBindingType::TlsServerEndPoint,
    )
    .await;
}

/// RFC 4616 / RFC 6120 §6: PLAIN over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4616_plain_over_tls_login() {
    login_with(Mechanism::Plain, ChannelBindingType::TlsExporter).await;
}

/// RFC 5802 §6: -PLUS with channel-binding data that does not match this TLS connection is
/// `<not-authorized/>`, for both binding types, although the password is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5802_6_plus_with_wrong_binding_data_is_not_authorized() {
    let server = TestServer::start(|_| {});
    for ty in [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ] {
        let (mut c, _) = tls_client(&server).await;
        let mut real = c.binding(ty).expect("binding data");
        real[0] ^= 0xff;
        let mut scram = ScramClient::new(
            ScramHash::Sha256,
            "alice",
            "password",
            Some((ty, real)),
            true,
        );
        assert_eq!(scram.mechanism(), Mechanism::ScramSha256Plus);
        let server_first = scram_server_first(&mut c, &mut scram).await;
        let last = scram.client_final(&server_first).expect("client-final");
        c.send(&response_element(&last)).await;
        let el = c.recv_element().await.expect("answer");
        let (failure, _) = SaslFailure::from_element(&el)
            .unwrap_or_else(|| panic!("{ty}: expected <failure/>, got {el}"));
        assert_eq!(failure, SaslFailure::NotAuthorized, "{ty}");
    }
}

// ----- RFC 6120 §6.4.5, RFC 5802 §9: failures that reveal nothing ---------------------------

/// One failed attempt on a fresh TLS connection.
async fn failed_attempt(
    server: &TestServer,
    mechanism: Mechanism,
    user: &str,
    pw: &str,
) -> (SaslFailure, Option<String>) {
    let (mut c, _) = tls_client(server).await;
    sasl_failure(c.auth(mechanism, user, pw).await)
}

/// RFC 6120 §6.4.5, RFC 5802 §9: a wrong password, an unknown user and a user name that
/// cannot exist fail identically (`<not-authorized/>`, same text) with PLAIN and SCRAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_4_5_wrong_password_and_unknown_user_fail_identically() {
    let server = TestServer::start(|_| {});
    for mechanism in [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
    ] {
        let wrong_pw = failed_attempt(&server, mechanism, "alice", "wrong").await;
        let unknown = failed_attempt(&server, mechanism, "nobody", "password").await;
        // Not even a valid localpart (nodeprep forbids '@' and spaces): still the same.
        let invalid = failed_attempt(&server, mechanism, "no body@x", "password").await;
        assert_eq!(wrong_pw.0, SaslFailure::NotAuthorized, "{mechanism}");
        assert_eq!(unknown, wrong_pw, "{mechanism}");
        assert_eq!(invalid, wrong_pw, "{mechanism}");
    }
}

/// The salt and iteration count the server offers `user` for SCRAM-SHA-256.
async fn server_first_of(server: &TestServer, user: &str) -> (Vec<u8>, u32) {
    let (mut c, _) = tls_client(server).await;
    let mut scram = ScramClient::new(ScramHash::Sha256, user, "password", None, true);
    let server_first = scram_server_first(&mut c, &mut scram).await;
    salt_and_iterations(&server_first)
}

/// RFC 5802 §9 (user enumeration): the SCRAM server-first for an unknown user carries a
/// salt that is stable across attempts and shaped like a real one (base64 of 16 bytes), and
/// the same iteration count as a real user (4096 in the test server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5802_9_unknown_user_server_first_looks_real() {
    let server = TestServer::start(|_| {});
    let (real_salt, real_i) = server_first_of(&server, "alice").await;
    let (ghost_salt_1, ghost_i) = server_first_of(&server, "nobody").await;
    let (ghost_salt_2, _) = server_first_of(&server, "nobody").await;
    assert_eq!(real_salt.len(), 16);
    assert_eq!(real_i, 4096);
    assert_eq!(ghost_salt_1.len(), real_salt.len());
    assert_eq!(ghost_salt_1, ghost_salt_2, "a fake salt must be stable");
    assert_ne!(ghost_salt_1, real_salt);
    assert_eq!(ghost_i, real_i);
    let (other_ghost, _) = server_first_of(&server, "someone-else").await;
    assert_ne!(other_ghost, ghost_salt_1, "fake salts differ per user name");
}

/// RFC 6120 §6.4.5: after `max_auth_attempts` failures the stream is closed with
/// `<not-authorized/>`; with fewer, the client may still log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_4_5_too_many_failures_is_stream_error_not_authorized() {
    let server = TestServer::start(|cfg| cfg.c2s.max_auth_attempts = 3);
    let (mut c, _) = tls_client(&server).await;
    for attempt in 1..=3 {
        let (failure, _) = sasl_failure(c.auth(Mechanism::ScramSha256, "alice", "wrong").await);
        assert_eq!(failure, SaslFailure::NotAuthorized, "attempt {attempt}");
    }
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "not-authorized"
    );

    let (mut c, _) = tls_client(&server).await;
    for _ in 1..=2 {
        sasl_failure(c.auth(Mechanism::Plain, "alice", "wrong").await);
    }
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("the third attempt may still succeed");
    finish_login(&mut c, "third-time").await;
}

/// RFC 6120 §6.4.5 and issue 17: refusals before any credential is checked — an unoffered
/// mechanism, an unoffered channel-binding type (`tls-unique`, undefined on TLS 1.3, RFC
/// 9266), SCRAM's `y` flag while -PLUS is offered (RFC 5802 §6) — do not use up
/// `max_auth_attempts`: after three of them and a wrong password the client still logs in on
/// the same connection. The unoffered binding type is named in the failure's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_4_5_refusals_before_a_credential_check_are_not_failed_attempts() {
    let server = TestServer::start(|cfg| {
        cfg.c2s.max_auth_attempts = 2;
        cfg.c2s.max_sasl_attempts = 6;
    });
    let (mut c, _) = tls_client(&server).await;
    c.send(&auth_element(
        "SCRAM-SHA-256-PLUS",
        b"p=tls-unique,,n=alice,r=abcdefgh",
    ))
    .await;
    let failure = c.recv_element().await.expect("failure");
    assert_eq!(failure.name(), "failure", "{failure}");
    let text = failure.get_child("text", ns::SASL).map(|t| t.text());
    assert!(
        text.as_deref().is_some_and(|t| t.contains("tls-unique")),
        "{failure}"
    );
    c.send(&auth_element("DIGEST-MD5", b"")).await;
    let failure = c.recv_element().await.expect("failure");
    assert!(
        failure.has_child("invalid-mechanism", ns::SASL),
        "{failure}"
    );
    c.send(&auth_element("SCRAM-SHA-256", b"y,,n=alice,r=abcdefgh"))
        .await;
    let failure = c.recv_element().await.expect("failure");
    assert!(failure.has_child("not-authorized", ns::SASL), "{failure}");
    // One real failed attempt of the two allowed.
    sasl_failure(c.auth(Mechanism::ScramSha256, "alice", "wrong").await);
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("refusals did not use up max_auth_attempts");
    finish_login(&mut c, "after-refusals").await;

    // Every <auth/> still counts against max_sasl_attempts: the seventh is a policy violation.
    let (mut c, _) = tls_client(&server).await;
    for _ in 0..6 {
        c.send(&auth_element("DIGEST-MD5", b"")).await;
        let failure = c.recv_element().await.expect("failure");
        assert!(
            failure.has_child("invalid-mechanism", ns::SASL),
            "{failure}"
        );
    }
    c.send(&auth_element("DIGEST-MD5", b"")).await;
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "policy-violation"
    );
}

/// RFC 6120 §4.9.3.4 (connection-timeout), §13.9.4: an unauthenticated connection that
/// stays idle longer than `auth_timeout_s` is closed with `<connection-timeout/>`; an
/// authenticated one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_4_idle_unauthenticated_connection_times_out() {
    let server = TestServer::start(|cfg| cfg.c2s.auth_timeout_s = 1);
    let mut authed = Client::login(server.c2s(), "alice", Some("patient")).await;
    let started = Instant::now();
    let mut idle = Client::connect(server.c2s()).await;
    idle.open().await.expect("open");
    assert_eq!(
        idle.expect_stream_error().await.expect("stream error"),
        "connection-timeout"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    // `authed` connected before `idle`, so its own (disarmed) timer is already past due:
    // had it fired, the ping below would meet a closed stream.
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "still-there")
        .with_child(Element::new("ping", ns::PING));
    let pong = authed
        .iq(&ping)
        .await
        .expect("authenticated session survives");
    assert_eq!(pong.attr("type"), Some("result"));
}

/// RFC 6120 §6 (stanzas need an authenticated stream), §4.9.3.19: a stanza after TLS but
/// before SASL is a `<not-authorized/>` stream error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_9_3_19_stanza_before_auth_is_not_authorized() {
    let server = TestServer::start(|_| {});
    let (mut c, _) = tls_client(&server).await;
    c.send(
        &Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost")
            .with_child(Element::new("body", ns::CLIENT).with_text("too early")),
    )
    .await;
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "not-authorized"
    );
}

/// RFC 6120 §7.1, §4.9.3.19: a stanza after SASL but before a resource is bound is a
/// `<not-authorized/>` stream error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_7_1_stanza_before_bind_is_not_authorized() {
    let server = TestServer::start(|_| {});
    let (mut c, _) = tls_client(&server).await;
    c.auth(Mechanism::ScramSha256, "alice", "password")
        .await
        .expect("auth");
    let features = c.open().await.expect("open after SASL");
    assert!(features.has_child("bind", ns::BIND));
    c.send(
        &Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost")
            .with_child(Element::new("body", ns::CLIENT).with_text("unbound")),
    )
    .await;
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "not-authorized"
    );
}

// ----- RFC 6120 §6.4.6: stream restart with pipelined bytes ----------------------------------

fn client_header() -> &'static str {
    "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams'>"
}

/// After a pipelined restart: `<success/>`, the new header and the post-SASL features.
async fn expect_success_then_fresh_stream(c: &mut Client) {
    let (name, _) = sasl_answer(c).await;
    assert_eq!(name, "success");
    c.restart_parser();
    match c.recv().await.expect("header") {
        Received::Header(h) => assert_eq!(h.ns, ns::STREAM),
        other => panic!("expected the restarted stream's header, got {other:?}"),
    }
    let features = c.recv_element().await.expect("features");
    assert!(features.is("features", ns::STREAM), "{features}");
    assert!(features.has_child("bind", ns::BIND), "{features}");
    let jid = c.bind(Some("pipelined")).await.expect("bind");
    assert_eq!(jid, "alice@localhost/pipelined");
}

/// RFC 6120 §6.4.6: a client that sends the restarted stream header in the same write as its
/// final SCRAM response still gets its features (the parser keeps pipelined bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_4_6_header_pipelined_with_final_scram_response() {
    let server = TestServer::start(|_| {});
    let (mut c, _) = tls_client(&server).await;
    let mut scram = ScramClient::new(ScramHash::Sha256, "alice", "password", None, true);
    let server_first = scram_server_first(&mut c, &mut scram).await;
    let last = scram.client_final(&server_first).expect("client-final");
    let mut bytes = response_element(&last).to_bytes_in(Some(ns::CLIENT));
    bytes.extend_from_slice(client_header().as_bytes());
    c.send_raw(bytes).await.expect("send");
    expect_success_then_fresh_stream(&mut c).await;
}

/// RFC 6120 §6.4.6: the same with PLAIN, whose single `<auth/>` carries the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_4_6_header_pipelined_with_plain_auth() {
    let server = TestServer::start(|_| {});
    let (mut c, _) = tls_client(&server).await;
    let mut bytes = auth_element("PLAIN", b"\0alice\0password").to_bytes_in(Some(ns::CLIENT));
    bytes.extend_from_slice(client_header().as_bytes());
    c.send_raw(bytes).await.expect("send");
    expect_success_then_fresh_stream(&mut c).await;
}
