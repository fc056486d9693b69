//! Client-to-server behaviour after authentication, over real sockets: resource binding
//! (RFC 6120 §7), stanza addressing and routing (RFC 6120 §8, RFC 6121 §8.5), the iqs the
//! server answers itself (XEP-0199, XEP-0030, XEP-0092) and resource exhaustion by a client
//! that stops reading (RFC 6120 §13.9).

use std::time::{Duration, Instant};

use parley::config::ResourceConflict;
use parley_proto::ns;
use parley_proto::stanza_error::StanzaError;
use parley_testkit::{Client, Received, TestServer};
use parley_xml::Element;

// ----- helpers -------------------------------------------------------------------------------

/// A client that has authenticated as `user` (STARTTLS, SCRAM-SHA-256) but not bound yet.
async fn authed(server: &TestServer, user: &str) -> Client {
    Client::authed(server.c2s(), user).await
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server.c2s(), user, Some(resource)).await
}

fn iq(ty: &str, id: &str, to: Option<&str>, payload: Element) -> Element {
    let mut el = Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", id)
        .with_child(payload);
    if let Some(to) = to {
        el.set_attr("to", to);
    }
    el
}

fn ping(id: &str, to: Option<&str>) -> Element {
    iq("get", id, to, Element::new("ping", ns::PING))
}

fn message(to: &str, ty: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", ty)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

fn presence(priority: i8) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_child(Element::new("priority", ns::CLIENT).with_text(priority.to_string()))
}

fn body(el: &Element) -> String {
    el.get_child("body", ns::CLIENT)
        .map(|b| b.text())
        .unwrap_or_default()
}

/// The defined condition of a stanza error reply, e.g. `service-unavailable`.
fn condition(el: &Element) -> String {
    assert_eq!(
        el.attr("type"),
        Some("error"),
        "expected an error reply, got {el}"
    );
    StanzaError::from_element(el)
        .unwrap_or_else(|| panic!("no stanza error condition in {el}"))
        .condition
        .as_str()
        .to_owned()
}

/// Sends `iq` and returns the reply with its id.
async fn ask(c: &mut Client, iq: &Element) -> Element {
    c.iq(iq).await.expect("iq reply")
}

/// The next stanza that is not presence (presence broadcasts between one user's resources
/// may arrive at any time and are not what these tests are about).
async fn next_non_presence(c: &mut Client) -> Element {
    c.recv_until(|el| el.name() != "presence")
        .await
        .expect("a stanza")
}

async fn next_message(c: &mut Client) -> Element {
    c.recv_until(|el| el.name() == "message")
        .await
        .expect("a message")
}

/// Round-trips a ping, so that everything the client sent before has been processed by the
/// server (a session handles its client's stanzas in order).
async fn sync(c: &mut Client, id: &str) {
    let reply = ask(c, &ping(id, None)).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
}

/// Sends a ping and asserts that the very next non-presence stanza is its result: whatever was
/// sent before got no reply at all.
async fn assert_no_reply_before_ping(c: &mut Client, id: &str) {
    c.send(&ping(id, None)).await;
    let next = next_non_presence(c).await;
    assert!(
        next.is("iq", ns::CLIENT)
            && next.attr("id") == Some(id)
            && next.attr("type") == Some("result"),
        "expected only the ping result, got {next}"
    );
}

/// Binds with the given resource and returns the `<iq type='error'/>` the server refused with.
async fn bind_error(c: &mut Client, resource: &str) -> Element {
    match c.bind(Some(resource)).await {
        Ok(jid) => panic!("bind of {resource:?} should fail, got {jid}"),
        Err(reply) => reply,
    }
}

/// Closes the stream and reads until the server has closed the connection (stanzas still in
/// flight are skipped). The server unbinds the resource before it answers the close.
async fn hang_up(c: &mut Client) {
    c.send_raw("</stream:stream>").await.expect("send close");
    loop {
        match c.recv().await.expect("reading until EOF") {
            Received::Eof => return,
            Received::Close | Received::Element(_) | Received::Header(_) => {}
        }
    }
}

/// RSS of this process (the server runs in-process) in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

// ----- RFC 6120 §7: resource binding ---------------------------------------------------------

/// RFC 6120 §7.7.2.1: the requested resource is bound and the full JID is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_requested_resource_rfc6120_7_6() {
    let server = TestServer::start(|_| {});
    let mut c = authed(&server, "alice").await;
    assert_eq!(
        c.bind(Some("res")).await.expect("bind"),
        "alice@localhost/res"
    );
    sync(&mut c, "after-bind").await;
}

/// RFC 6120 §7.6: without a requested resource the server generates one, unique per account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_server_generated_resource_is_unique_rfc6120_7_6() {
    let server = TestServer::start(|_| {});
    let mut a = authed(&server, "alice").await;
    let mut b = authed(&server, "alice").await;
    let ja = a.bind(None).await.expect("bind a");
    let jb = b.bind(None).await.expect("bind b");
    for j in [&ja, &jb] {
        let resource = j
            .strip_prefix("alice@localhost/")
            .expect("alice's full JID");
        assert!(!resource.is_empty(), "{j}");
    }
    assert_ne!(ja, jb, "two generated resources must differ");
    // Both are live: each one is reachable on its own full JID.
    a.send(&message(&jb, "chat", "to b")).await;
    assert_eq!(body(&next_message(&mut b).await), "to b");
}

/// RFC 6120 §7.7.2.1 / RFC 7622 §3.4 (RFC 3920 resourceprep as the jid crate 0.12 applies it):
/// the resource is NFKC-normalized — fullwidth letters become ASCII, Ⅸ becomes "IX" — and case
/// is kept (resourceprep does no case folding). The bound JID carries the normalized form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_applies_resourceprep_rfc6120_7_7_2_1() {
    let server = TestServer::start(|_| {});
    let mut c = authed(&server, "alice").await;
    let jid = c.bind(Some("Ｈｏｍｅ\u{2168}")).await.expect("bind");
    assert_eq!(jid, "alice@localhost/HomeIX");
    // The normalized full JID is the one that routes.
    let mut bob = login(&server, "bob", "b").await;
    bob.send(&message("alice@localhost/HomeIX", "chat", "normalized"))
        .await;
    let got = next_message(&mut c).await;
    assert_eq!(body(&got), "normalized");
    assert_eq!(got.attr("to"), Some("alice@localhost/HomeIX"));
}

/// RFC 6120 §7.7.2.1: a resource that fails resourceprep is refused with bad-request, and the
/// client may try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_invalid_resource_is_bad_request_rfc6120_7_7_2_1() {
    let server = TestServer::start(|_| {});
    let mut c = authed(&server, "alice").await;
    // U+E000 is private use, prohibited by resourceprep (RFC 3920 Appendix B, table C.3).
    let reply = bind_error(&mut c, "bad\u{E000}").await;
    assert_eq!(condition(&reply), "bad-request");
    // Longer than the 1023 bytes a resource may have (RFC 7622 §3.4).
    let reply = bind_error(&mut c, &"r".repeat(1024)).await;
    assert_eq!(condition(&reply), "bad-request");
    assert_eq!(
        c.bind(Some("ok")).await.expect("retry"),
        "alice@localhost/ok"
    );
}

/// RFC 6120 §7.7.2.2 (kick_old, the default): the old session gets the stream error
/// `<conflict/>`, the new one is bound and receives what is sent to the full JID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_kick_old_rfc6120_7_7_2_2() {
    let server = TestServer::start(|_| {});
    let mut old = login(&server, "alice", "res").await;
    let mut new = authed(&server, "alice").await;
    assert_eq!(
        new.bind(Some("res")).await.expect("bind"),
        "alice@localhost/res"
    );
    assert_eq!(
        old.expect_stream_error().await.expect("stream error"),
        "conflict"
    );
    let mut bob = login(&server, "bob", "b").await;
    bob.send(&message("alice@localhost/res", "chat", "for the new one"))
        .await;
    let got = next_message(&mut new).await;
    assert_eq!(body(&got), "for the new one");
    assert_eq!(got.attr("from"), Some("bob@localhost/b"));
}

/// RFC 6120 §7.7.2.2 (kick_new): the second bind gets `<conflict/>` and the first session
/// keeps its resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_kick_new_rfc6120_7_7_2_2() {
    let server = TestServer::start(|c| c.c2s.resource_conflict = ResourceConflict::KickNew);
    let mut first = login(&server, "alice", "res").await;
    let mut second = authed(&server, "alice").await;
    let reply = bind_error(&mut second, "res").await;
    assert_eq!(condition(&reply), "conflict");
    // The refused client is still authenticated and may bind something else.
    assert_eq!(
        second.bind(Some("other")).await.expect("bind"),
        "alice@localhost/other"
    );
    sync(&mut first, "still-alive").await;
    let mut bob = login(&server, "bob", "b").await;
    bob.send(&message("alice@localhost/res", "chat", "for the first one"))
        .await;
    assert_eq!(body(&next_message(&mut first).await), "for the first one");
}

/// RFC 6120 §7.7.2.2 (random): the second session gets a different, server-generated
/// resource; both stay bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_random_rfc6120_7_7_2_2() {
    let server = TestServer::start(|c| c.c2s.resource_conflict = ResourceConflict::Random);
    let mut first = login(&server, "alice", "res").await;
    let mut second = authed(&server, "alice").await;
    let jid = second.bind(Some("res")).await.expect("bind");
    assert_ne!(jid, "alice@localhost/res");
    assert!(jid.starts_with("alice@localhost/"), "{jid}");
    sync(&mut first, "first").await;
    let mut bob = login(&server, "bob", "b").await;
    bob.send(&message(&jid, "chat", "for the second")).await;
    bob.send(&message("alice@localhost/res", "chat", "for the first"))
        .await;
    assert_eq!(body(&next_message(&mut second).await), "for the second");
    assert_eq!(body(&next_message(&mut first).await), "for the first");
}

/// RFC 3921 §3 (legacy session establishment, still sent by old clients after binding, and
/// before it by some): the server answers with an empty result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_session_iq_gets_result_rfc3921_3() {
    let server = TestServer::start(|_| {});
    let session = || Element::new("session", ns::SESSION);
    let mut c = login(&server, "alice", "a").await;
    let reply = ask(&mut c, &iq("set", "sess-1", None, session())).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let reply = ask(&mut c, &iq("set", "sess-2", Some("localhost"), session())).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");

    let mut early = authed(&server, "bob").await;
    let reply = ask(&mut early, &iq("set", "sess-3", None, session())).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert_eq!(
        early.bind(Some("b")).await.expect("bind"),
        "bob@localhost/b"
    );
}

// ----- RFC 6120 §8.1.2.1: from ---------------------------------------------------------------

/// RFC 6120 §8.1.2.1: the server stamps `from` with the sender's full JID, whether the client
/// left it out or gave its bare JID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_is_stamped_with_full_jid_rfc6120_8_1_2_1() {
    let server = TestServer::start(|_| {});
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    alice
        .send(&message("bob@localhost/b", "chat", "no from"))
        .await;
    alice
        .send(&message("bob@localhost/b", "chat", "bare from").with_attr("from", "alice@localhost"))
        .await;
    alice
        .send(
            &message("bob@localhost/b", "chat", "full from").with_attr("from", "alice@localhost/a"),
        )
        .await;
    for expected in ["no from", "bare from", "full from"] {
        let got = next_message(&mut bob).await;
        assert_eq!(body(&got), expected);
        assert_eq!(got.attr("from"), Some("alice@localhost/a"), "{got}");
        assert_eq!(got.attr("to"), Some("bob@localhost/b"), "{got}");
    }
}

/// RFC 6120 §8.1.2.1 / §4.9.3.9: a `from` naming another entity is a stream error
/// `<invalid-from/>`, and the stanza is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_from_is_invalid_from_rfc6120_8_1_2_1() {
    let server = TestServer::start(|_| {});
    let mut bob = login(&server, "bob", "b").await;
    for forged in ["carol@localhost/c", "alice@localhost/other", "localhost"] {
        let mut alice = login(&server, "alice", "a").await;
        alice
            .send(&message("bob@localhost/b", "chat", "forged").with_attr("from", forged))
            .await;
        assert_eq!(
            alice.expect_stream_error().await.expect("stream error"),
            "invalid-from",
            "from={forged}"
        );
    }
    // None of the forged messages reached bob: the next thing he gets is this one.
    let mut carol = login(&server, "carol", "c").await;
    carol
        .send(&message("bob@localhost/b", "chat", "genuine"))
        .await;
    let got = next_message(&mut bob).await;
    assert_eq!(body(&got), "genuine");
    assert_eq!(got.attr("from"), Some("carol@localhost/c"));
}

// ----- RFC 6120 §8.2 / RFC 6121 §8.5.3: between full JIDs ------------------------------------

/// RFC 6121 §8.5.3.1: a message to a connected full JID is delivered to that resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_between_full_jids_rfc6121_8_5_3_1() {
    let server = TestServer::start(|_| {});
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    alice
        .send(&message("bob@localhost/b", "chat", "hi bob"))
        .await;
    let got = next_message(&mut bob).await;
    assert_eq!(
        (body(&got).as_str(), got.attr("from")),
        ("hi bob", Some("alice@localhost/a"))
    );
    bob.send(&message("alice@localhost/a", "chat", "hi alice"))
        .await;
    let got = next_message(&mut alice).await;
    assert_eq!(
        (body(&got).as_str(), got.attr("from")),
        ("hi alice", Some("bob@localhost/b"))
    );
}

/// RFC 6120 §8.2.3 / RFC 6121 §8.5.3.1: an iq request to a full JID reaches that client, and
/// its result travels back to the requester.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_between_full_jids_rfc6120_8_2_3() {
    let server = TestServer::start(|_| {});
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let request = iq(
        "get",
        "q1",
        Some("bob@localhost/b"),
        Element::new("query", "urn:example:test"),
    );
    alice.send(&request).await;
    let got = bob.recv_until(|el| el.name() == "iq").await.expect("iq");
    assert_eq!(got.attr("type"), Some("get"));
    assert_eq!(got.attr("id"), Some("q1"));
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
    assert!(got.has_child("query", "urn:example:test"), "{got}");
    let result = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", "q1")
        .with_attr("to", "alice@localhost/a")
        .with_child(Element::new("query", "urn:example:test"));
    bob.send(&result).await;
    let reply = alice
        .recv_until(|el| el.name() == "iq")
        .await
        .expect("iq result");
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("id"), Some("q1"));
    assert_eq!(reply.attr("from"), Some("bob@localhost/b"));
    assert!(reply.has_child("query", "urn:example:test"), "{reply}");
}

// ----- iqs the server answers ----------------------------------------------------------------

/// XEP-0199 §4.2 (client-to-server ping) and RFC 6120 §10.3.3 (the server answers for the
/// account's bare JID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_server_and_own_bare_jid_xep0199() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    for (id, to) in [
        ("p1", Some("localhost")),
        ("p2", Some("alice@localhost")),
        ("p3", None),
    ] {
        let reply = ask(&mut c, &ping(id, to)).await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply}");
        assert_eq!(reply.attr("to"), Some("alice@localhost/a"), "{reply}");
        assert_eq!(reply.attr("from"), to, "{reply}");
    }
}

fn disco_info(id: &str, to: &str) -> Element {
    iq("get", id, Some(to), Element::new("query", ns::DISCO_INFO))
}

fn identities(reply: &Element) -> Vec<(String, String)> {
    let query = reply.get_child("query", ns::DISCO_INFO).expect("query");
    query
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|c| {
            (
                c.attr("category").unwrap_or_default().to_owned(),
                c.attr("type").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn features(reply: &Element) -> Vec<String> {
    let query = reply.get_child("query", ns::DISCO_INFO).expect("query");
    query
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect()
}

/// XEP-0030 §3.1: the server's identity is server/im and its features include XEP-0199 ping
/// and disco#info itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_info_server_xep0030_3_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let reply = ask(&mut c, &disco_info("d1", "localhost")).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert!(
        identities(&reply).contains(&("server".into(), "im".into())),
        "{reply}"
    );
    let features = features(&reply);
    for f in [ns::PING, ns::DISCO_INFO] {
        assert!(features.iter().any(|x| x == f), "{f} missing in {reply}");
    }
}

/// XEP-0030 §3.1 with RFC 6120 §10.3.3: the server answers disco#info for the user's own
/// account, whose identity is account/registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_info_own_account_xep0030_3_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let reply = ask(&mut c, &disco_info("d2", "alice@localhost")).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert!(
        identities(&reply).contains(&("account".into(), "registered".into())),
        "{reply}"
    );
    assert!(
        !identities(&reply).contains(&("server".into(), "im".into())),
        "{reply}"
    );
}

/// XEP-0030 §4.1: disco#items to the server is answered with a (possibly empty) item list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_items_server_xep0030_4_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let request = iq(
        "get",
        "i1",
        Some("localhost"),
        Element::new("query", ns::DISCO_ITEMS),
    );
    let reply = ask(&mut c, &request).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    assert!(reply.has_child("query", ns::DISCO_ITEMS), "{reply}");
}

/// XEP-0092 §2: the server reports its name and version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_version_xep0092_2() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let request = iq(
        "get",
        "v1",
        Some("localhost"),
        Element::new("query", ns::VERSION),
    );
    let reply = ask(&mut c, &request).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let query = reply.get_child("query", ns::VERSION).expect("query");
    assert_eq!(
        query
            .get_child("name", ns::VERSION)
            .map(|n| n.text())
            .as_deref(),
        Some("Parley")
    );
    let version = query.get_child("version", ns::VERSION).map(|v| v.text());
    assert!(version.is_some_and(|v| !v.is_empty()), "{reply}");
}

/// XEP-0030 §3.2 / §7: a node the entity does not have is item-not-found, for info and items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_unknown_node_is_item_not_found_xep0030_7() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    for (id, namespace) in [("n1", ns::DISCO_INFO), ("n2", ns::DISCO_ITEMS)] {
        let query = Element::new("query", namespace).with_attr("node", "no-such-node");
        let reply = ask(&mut c, &iq("get", id, Some("localhost"), query)).await;
        assert_eq!(condition(&reply), "item-not-found", "{namespace}");
    }
}

// ----- RFC 6120 §8.2.3 / §8.3: iq errors -----------------------------------------------------

/// RFC 6120 §8.4: a request whose payload namespace the server does not know is
/// service-unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_iq_payload_is_service_unavailable_rfc6120_8_4() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let request = iq(
        "get",
        "u1",
        Some("localhost"),
        Element::new("query", "urn:example:nothing"),
    );
    let reply = ask(&mut c, &request).await;
    assert_eq!(condition(&reply), "service-unavailable");
    assert_eq!(reply.attr("from"), Some("localhost"));
}

/// RFC 6120 §8.3.3.5: a known namespace with an iq type it does not support
/// (disco#info with `set`) is feature-not-implemented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_info_set_is_feature_not_implemented_rfc6120_8_3_3_5() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let request = iq(
        "set",
        "s1",
        Some("localhost"),
        Element::new("query", ns::DISCO_INFO),
    );
    let reply = ask(&mut c, &request).await;
    assert_eq!(condition(&reply), "feature-not-implemented");
}

/// RFC 6120 §8.2.3 rule 6: an iq get or set carries exactly one payload; two is bad-request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_with_two_payloads_is_bad_request_rfc6120_8_2_3() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let request = ping("two", Some("localhost")).with_child(Element::new("ping", ns::PING));
    let reply = ask(&mut c, &request).await;
    assert_eq!(condition(&reply), "bad-request");
}

/// RFC 6120 §8.2.3 rule 5 and §8.3.1: an iq result or error addressed to the server gets no
/// reply at all — in particular never an error in answer to an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_result_and_error_to_server_get_no_reply_rfc6120_8_3_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let result = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", "stray-result")
        .with_attr("to", "localhost");
    c.send(&result).await;
    let error = Element::new("iq", ns::CLIENT)
        .with_attr("type", "error")
        .with_attr("id", "stray-error")
        .with_attr("to", "localhost")
        .with_child(
            Element::new("error", ns::CLIENT)
                .with_attr("type", "cancel")
                .with_child(Element::new("service-unavailable", ns::STANZA_ERRORS)),
        );
    c.send(&error).await;
    // The same, addressed to the own account.
    c.send(&result.clone().with_attr("to", "alice@localhost"))
        .await;
    c.send(&error.clone().with_attr("to", "alice@localhost"))
        .await;
    assert_no_reply_before_ping(&mut c, "after-stray").await;
}

/// RFC 6120 §8.3.1: a message error to a full JID that does not exist is dropped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_error_to_missing_full_jid_gets_no_reply_rfc6120_8_3_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let err = Element::new("message", ns::CLIENT)
        .with_attr("type", "error")
        .with_attr("to", "bob@localhost/gone")
        .with_child(
            Element::new("error", ns::CLIENT)
                .with_attr("type", "cancel")
                .with_child(Element::new("item-not-found", ns::STANZA_ERRORS)),
        );
    c.send(&err).await;
    // And to an unknown domain, and to the bare JID of an account that is offline.
    c.send(&err.clone().with_attr("to", "someone@example.org/x"))
        .await;
    c.send(&err.clone().with_attr("to", "bob@localhost")).await;
    assert_no_reply_before_ping(&mut c, "after-error").await;
}

/// RFC 6121 §8.5.3.2.1 (iq): an iq request to a full JID with no session is
/// service-unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_to_missing_full_jid_is_service_unavailable_rfc6121_8_5_3_2_1() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let reply = ask(&mut c, &ping("m1", Some("bob@localhost/nowhere"))).await;
    assert_eq!(condition(&reply), "service-unavailable");
    assert_eq!(reply.attr("from"), Some("bob@localhost/nowhere"));
}

/// RFC 6120 §8.3.3.13 / §10.4.3: a domain the server cannot reach (no s2s) is
/// remote-server-not-found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_to_unknown_domain_is_remote_server_not_found_rfc6120_10_4_3() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let reply = ask(&mut c, &ping("r1", Some("someone@example.org/x"))).await;
    assert_eq!(condition(&reply), "remote-server-not-found");
    let reply = ask(&mut c, &ping("r2", Some("example.org"))).await;
    assert_eq!(condition(&reply), "remote-server-not-found");
}

/// RFC 6120 §8.3.3.8: a `to` that is not a valid JID is jid-malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_to_is_jid_malformed_rfc6120_8_3_3_8() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    for (id, to) in [
        ("j1", "@localhost"),
        ("j2", "bob@localhost/"),
        ("j3", "bob@"),
    ] {
        let reply = ask(&mut c, &ping(id, Some(to))).await;
        assert_eq!(condition(&reply), "jid-malformed", "to={to}");
    }
    c.send(&message("@localhost", "chat", "x")).await;
    let reply = next_non_presence(&mut c).await;
    assert!(reply.is("message", ns::CLIENT), "{reply}");
    assert_eq!(condition(&reply), "jid-malformed");
}

/// RFC 6120 §4.9.3.23: a top-level element other than message, presence or iq after binding
/// is the stream error unsupported-stanza-type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_top_level_element_rfc6120_4_9_3_23() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    c.send_raw("<foo/>").await.expect("send");
    assert_eq!(
        c.expect_stream_error().await.expect("stream error"),
        "unsupported-stanza-type"
    );
}

// ----- RFC 6121 §8.5.2: bare JID routing ----------------------------------------------------

/// Logs `bob/resource` in with initial presence at `priority`, and waits until the server has
/// recorded it.
async fn bob_at(server: &TestServer, resource: &str, priority: i8) -> Client {
    let mut c = login(server, "bob", resource).await;
    c.send(&presence(priority)).await;
    sync(&mut c, "presence-done").await;
    c
}

/// RFC 6121 §8.5.2.1.1: a chat message to the bare JID goes to the available resource with
/// the highest non-negative priority only; a headline goes to every non-negative one; with
/// only a negative-priority resource left, a chat message is handled as if no resource were
/// available (§8.5.2.2.1) — with offline storage disabled here, it bounces
/// service-unavailable — and a headline is dropped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_jid_message_follows_priorities_rfc6121_8_5_2_1_1() {
    let server = TestServer::start(|c| c.offline.max_per_user = 0);
    let mut high = bob_at(&server, "five", 5).await;
    let mut low = bob_at(&server, "one", 1).await;
    let mut neg = bob_at(&server, "neg", -1).await;
    let mut alice = login(&server, "alice", "a").await;

    alice
        .send(&message("bob@localhost", "chat", "chat-1"))
        .await;
    alice
        .send(&message("bob@localhost", "headline", "headline-1"))
        .await;
    alice
        .send(&message("bob@localhost/neg", "chat", "direct-to-neg"))
        .await;

    let got = next_message(&mut high).await;
    assert_eq!(body(&got), "chat-1");
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
    assert_eq!(body(&next_message(&mut high).await), "headline-1");
    // Messages from one sender arrive in order, so "one" would have seen chat-1 first.
    assert_eq!(body(&next_message(&mut low).await), "headline-1");
    // And "neg" saw neither: the first thing it gets is the message to its full JID.
    assert_eq!(body(&next_message(&mut neg).await), "direct-to-neg");

    // Only the negative-priority resource left.
    hang_up(&mut high).await;
    hang_up(&mut low).await;
    alice
        .send(&message("bob@localhost", "chat", "chat-2"))
        .await;
    let bounce = next_non_presence(&mut alice).await;
    assert!(bounce.is("message", ns::CLIENT), "{bounce}");
    assert_eq!(condition(&bounce), "service-unavailable");
    assert_eq!(body(&bounce), "chat-2", "the bounce carries the original");
    alice
        .send(&message("bob@localhost", "headline", "headline-2"))
        .await;
    assert_no_reply_before_ping(&mut alice, "after-headline").await;
    alice
        .send(&message("bob@localhost/neg", "chat", "direct-again"))
        .await;
    assert_eq!(body(&next_message(&mut neg).await), "direct-again");
}

/// RFC 6121 §8.5.2.1.1: resources sharing the highest priority all get a chat message, and
/// a resource without initial presence gets nothing sent to the bare JID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_jid_message_ties_and_unavailable_resources_rfc6121_8_5_2_1_1() {
    let server = TestServer::start(|_| {});
    let mut x = bob_at(&server, "x", 2).await;
    let mut y = bob_at(&server, "y", 2).await;
    let mut silent = login(&server, "bob", "silent").await;
    let mut alice = login(&server, "alice", "a").await;
    alice.send(&message("bob@localhost", "normal", "tie")).await;
    alice
        .send(&message("bob@localhost/silent", "chat", "marker"))
        .await;
    assert_eq!(body(&next_message(&mut x).await), "tie");
    assert_eq!(body(&next_message(&mut y).await), "tie");
    assert_eq!(body(&next_message(&mut silent).await), "marker");
}

/// RFC 6121 §8.5.3.2.1: a message to a full JID whose resource has just disconnected is
/// handled as if sent to the bare JID: it reaches another available resource, and once none
/// is left it goes where §8.5.2.2.1 sends it — with offline storage disabled here, back to
/// the sender as service-unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_gone_resource_falls_back_to_bare_jid_rfc6121_8_5_3_2_1() {
    let server = TestServer::start(|c| c.offline.max_per_user = 0);
    let mut gone = bob_at(&server, "gone", 0).await;
    let mut other = bob_at(&server, "other", 0).await;
    let mut alice = login(&server, "alice", "a").await;
    hang_up(&mut gone).await;

    alice
        .send(&message("bob@localhost/gone", "chat", "where are you"))
        .await;
    let got = next_message(&mut other).await;
    assert_eq!(body(&got), "where are you");
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));

    hang_up(&mut other).await;
    alice
        .send(&message("bob@localhost/gone", "chat", "anyone"))
        .await;
    let bounce = next_non_presence(&mut alice).await;
    assert!(bounce.is("message", ns::CLIENT), "{bounce}");
    assert_eq!(condition(&bounce), "service-unavailable");
    assert_eq!(bounce.attr("from"), Some("bob@localhost/gone"));
}

// ----- RFC 6120 §13.9: a client that stops reading --------------------------------------------

/// RFC 6120 §13.9 (denial of service: a recipient that does not read must not make the server
/// buffer without bound). With a small outbound queue, a bound client that stops reading while
/// another floods it is disconnected: its full JID stops routing (a third client's probe gets
/// service-unavailable), its connection ends, the server's memory stays bounded, and the
/// server keeps serving new logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_client_is_disconnected_rfc6120_13_9() {
    let server = TestServer::start(|c| {
        c.c2s.send_queue_stanzas = 50;
        c.c2s.send_queue_bytes = 64 * 1024;
        c.c2s.max_stanza_bytes = 16 * 1024;
    });
    let victim_jid = "bob@localhost/victim";
    let mut victim = login(&server, "bob", "victim").await;
    let mut flooder = login(&server, "alice", "flood").await;
    let mut prober = login(&server, "carol", "probe").await;
    let rss_before = rss_bytes();

    let deadline = Instant::now() + Duration::from_secs(30);
    let payload = "x".repeat(4096);
    let mut sent = 0usize;
    let mut bounced = None;
    let victim_full = jid::FullJid::new(victim_jid).unwrap();
    let victim_bound = || server.handle.router.lookup_local(&victim_full).is_some();
    // Enough data to fill the kernel's socket buffers towards the victim many times over.
    // A first bounce may come while the victim's session is only behind (its mailbox full,
    // `resource-constraint`, and it stays): the flood goes on until the server has let the
    // victim go.
    while sent < 5000 && (bounced.is_none() || victim_bound()) {
        assert!(Instant::now() < deadline, "no bounce after {sent} messages");
        for _ in 0..8 {
            flooder
                .send(&message(victim_jid, "chat", &format!("{sent} {payload}")))
                .await;
            sent += 1;
        }
        // The flooder reads its bounces as they come, so that it is not the one throttled.
        while let Some(received) = flooder
            .recv_within(Duration::ZERO)
            .await
            .expect("flooder stream")
        {
            match received {
                Received::Element(el) if el.attr("type") == Some("error") => {
                    let cond = condition(&el);
                    assert!(
                        matches!(cond.as_str(), "resource-constraint" | "service-unavailable"),
                        "unexpected bounce {cond}"
                    );
                    bounced = Some(cond);
                }
                Received::Element(_) => {}
                other => panic!("the flooder's stream ended: {other:?}"),
            }
        }
    }
    assert!(
        bounced.is_some(),
        "5000 messages of 4 KiB were all accepted for a client that reads nothing"
    );

    // The flooder keeps reading, in a task of its own: once the victim is gone, what was
    // queued for it comes back to the flooder as bounces at once (RFC 6121 §8.5.3.2, nothing
    // lost silently), up to the victim's 50 queued 4 KiB messages, and a flooder that left
    // them unread while this task waits for the prober would itself be cut off as a
    // non-reader (the small send queue applies to it too).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                match flooder
                    .recv_within(Duration::from_millis(20))
                    .await
                    .expect("flooder stream")
                {
                    None => {}
                    Some(Received::Element(el)) => {
                        assert!(!el.is("error", ns::STREAM), "the flooder was cut off: {el}")
                    }
                    Some(other) => panic!("the flooder's stream ended: {other:?}"),
                }
            }
            // The flooder is still connected and served (read to the end here too, bounces
            // may still be coming).
            flooder.send(&ping("flooder-alive", None)).await;
            loop {
                let el = flooder.recv_element().await.expect("flooder stream");
                assert!(!el.is("error", ns::STREAM), "the flooder was cut off: {el}");
                if el.attr("id") == Some("flooder-alive") && el.attr("type") == Some("result") {
                    break;
                }
            }
        })
    };

    // The victim's session goes away: a probe to its full JID is eventually refused with
    // service-unavailable. A probe that reaches the victim while it is still closing gets no
    // answer at all, so each probe is only waited for briefly before the next one goes out.
    let mut n = 0;
    'probing: loop {
        assert!(
            Instant::now() < deadline,
            "the victim is still bound after {n} probes"
        );
        n += 1;
        prober
            .send(&ping(&format!("probe-{n}"), Some(victim_jid)))
            .await;
        for _ in 0..10 {
            let Some(received) = prober
                .recv_within(Duration::from_millis(50))
                .await
                .expect("prober stream")
            else {
                continue;
            };
            let Received::Element(reply) = received else {
                panic!("the prober's stream ended: {received:?}");
            };
            assert_eq!(
                reply.attr("type"),
                Some("error"),
                "the victim answered: {reply}"
            );
            match condition(&reply).as_str() {
                "service-unavailable" => break 'probing,
                "resource-constraint" => {}
                other => panic!("unexpected probe error {other}"),
            }
        }
    }
    let rss_after = rss_bytes();
    eprintln!(
        "flood: {sent} messages sent, first bounce {bounced:?}, victim gone after {n} probes, \
         RSS {} -> {} MiB",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        rss_after < rss_before + (64 << 20),
        "RSS grew from {rss_before} to {rss_after} bytes during the flood"
    );

    // The victim's connection really ends: whatever it has in its socket buffers, then EOF.
    let mut victim_ended = false;
    while !victim_ended && Instant::now() < deadline + Duration::from_secs(30) {
        match victim.recv().await {
            Ok(Received::Eof) => victim_ended = true,
            Ok(_) => {}
            // A cut-off stanza at the end of the stream is a parse error here, and also the end.
            Err(parley_testkit::ClientError::Xml(_) | parley_testkit::ClientError::Io(_)) => {
                victim_ended = true
            }
            Err(e) => panic!("victim: {e}"),
        }
    }
    assert!(victim_ended, "the victim's connection was not closed");
    stop.store(true, std::sync::atomic::Ordering::Release);
    reader.await.expect("the flooder's reader");

    // The server still accepts and serves new sessions.
    let mut fresh = login(&server, "bob", "fresh").await;
    sync(&mut fresh, "fresh").await;
}

/// RFC 6120 §13.9's byte bound is for clients that do not read, not for bursts: a client
/// that reads gets a burst fifteen times its queue's byte bound without being disconnected
/// (the session hands queued bytes to the socket before it concludes the client is stuck).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_client_survives_bursts_beyond_its_queue_bound() {
    let server = TestServer::start(|c| {
        c.c2s.send_queue_stanzas = 1000;
        c.c2s.send_queue_bytes = 32 * 1024;
        c.c2s.max_stanza_bytes = 16 * 1024;
    });
    let mut reader = login(&server, "bob", "reader").await;
    let mut sender = login(&server, "alice", "burst").await;
    let payload = "y".repeat(8 * 1024);
    for i in 0..60 {
        sender
            .send(&message(
                "bob@localhost/reader",
                "chat",
                &format!("{i} {payload}"),
            ))
            .await;
    }
    for i in 0..60 {
        let prefix = format!("{i} ");
        let el = reader
            .expect_match(&format!("message {i}"), |el| el.is("message", ns::CLIENT))
            .await
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        let body = el
            .get_child("body", ns::CLIENT)
            .map(|b| b.text())
            .unwrap_or_default();
        assert!(body.starts_with(&prefix), "in order: {i} got {body:.10}");
    }
}

/// XEP-0202 §3-§4: the server answers `<time/>` for its domain with its UTC offset and a
/// XEP-0082 UTC time (here: within the test's own clock, to the second), and lists
/// `urn:xmpp:time` in its disco#info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_time_of_the_server_xep0202_3() {
    let server = TestServer::start(|_| {});
    let mut c = login(&server, "alice", "a").await;
    let before = parley_testkit::im::unix_now();
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "t1")
        .with_attr("to", "localhost")
        .with_child(Element::new("time", "urn:xmpp:time"));
    let reply = ask(&mut c, &iq).await;
    let after = parley_testkit::im::unix_now();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let time = reply.get_child("time", "urn:xmpp:time").expect("<time/>");
    assert_eq!(
        time.get_child("tzo", "urn:xmpp:time")
            .map(|t| t.text())
            .as_deref(),
        Some("+00:00")
    );
    let utc = time
        .get_child("utc", "urn:xmpp:time")
        .map(|t| t.text())
        .unwrap_or_default();
    let t = parley_testkit::im::parse_utc_stamp(&utc).unwrap_or_else(|| panic!("XEP-0082: {utc}"));
    assert!(
        t >= before.floor() - 1.0 && t <= after + 1.0,
        "{utc} outside the test"
    );
    let info = ask(&mut c, &disco_info("d-time", "localhost")).await;
    assert!(
        features(&info).iter().any(|f| f == "urn:xmpp:time"),
        "{info}"
    );
}

/// XEP-0215 §3.1-§3.3: the configured STUN and TURN servers are listed (all, or of one
/// `type`), TURN ones with TURN REST API credentials for the asking account, valid for
/// `credential_ttl_s`; `urn:xmpp:extdisco:2` is in disco#info. Without services: no
/// feature, and the request is `service-unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_services_with_turn_credentials_xep0215_3() {
    const EXT: &str = "urn:xmpp:extdisco:2";
    let server = TestServer::start(|c| {
        c.external_services.services = vec![
            "stun:turn.example.org:3478:udp".into(),
            "turn:turn.example.org:3478:udp".into(),
        ];
        c.external_services.turn_secret = Some("turn-secret-0123456789".into());
        c.external_services.credential_ttl_s = 600;
    });
    let mut c = login(&server, "alice", "a").await;
    let ask_services = |id: &str, ty: Option<&str>| {
        let mut q = Element::new("services", EXT);
        if let Some(t) = ty {
            q.set_attr("type", t);
        }
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id)
            .with_attr("to", "localhost")
            .with_child(q)
    };
    let now = parley_testkit::im::unix_now() as i64;
    let reply = ask(&mut c, &ask_services("e1", None)).await;
    let services: Vec<&Element> = reply
        .get_child("services", EXT)
        .map(|s| s.children().collect())
        .unwrap_or_default();
    assert_eq!(services.len(), 2, "{reply}");
    assert_eq!(services[0].attr("type"), Some("stun"));
    assert_eq!(services[0].attr("username"), None, "{reply}");
    let turn = services[1];
    assert_eq!(turn.attr("host"), Some("turn.example.org"));
    assert_eq!(turn.attr("port"), Some("3478"));
    let username = turn.attr("username").expect("TURN credentials");
    let (expiry, who) = username.split_once(':').expect("expiry:jid");
    assert_eq!(who, "alice@localhost");
    let expiry: i64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "{username}");
    let (_, password) = parley_proto::extdisco::turn_credentials(
        b"turn-secret-0123456789",
        "alice@localhost",
        expiry,
    );
    assert_eq!(turn.attr("password"), Some(password.as_str()));
    let stun_only = ask(&mut c, &ask_services("e2", Some("stun"))).await;
    assert_eq!(
        stun_only
            .get_child("services", EXT)
            .map(|s| s.children().count()),
        Some(1),
        "{stun_only}"
    );
    let info = ask(&mut c, &disco_info("d-ext", "localhost")).await;
    assert!(features(&info).iter().any(|f| f == EXT), "{info}");

    let plain = TestServer::start(|_| {});
    let mut c = login(&plain, "alice", "a").await;
    let none = ask(&mut c, &ask_services("e3", None)).await;
    assert_eq!(
        parley_testkit::im::error_condition(&none).as_deref(),
        Some("service-unavailable"),
        "{none}"
    );
    let info = ask(&mut c, &disco_info("d-ext2", "localhost")).await;
    assert!(!features(&info).iter().any(|f| f == EXT), "{info}");
}

/// XEP-0115 §6.2-§6.3: once authenticated, the stream features carry the server's
/// capabilities (`<c hash='sha-1' node ver/>`); the `ver` is the §5.1 hash of the server's
/// disco#info, and disco#info for `node#ver` answers the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_capabilities_in_the_stream_features_xep0115_6_3() {
    const CAPS: &str = "http://jabber.org/protocol/caps";
    let server = TestServer::start(|_| {});
    let mut c = Client::authed(server.c2s(), "alice").await;
    let features = c.features.clone().expect("features after SASL");
    let caps = features
        .get_child("c", CAPS)
        .unwrap_or_else(|| panic!("no caps in {features}"));
    assert_eq!(caps.attr("hash"), Some("sha-1"));
    let (node, ver) = (
        caps.attr("node").unwrap(),
        caps.attr("ver").unwrap().to_owned(),
    );
    c.bind(Some("a")).await.expect("bind");
    let info = ask(&mut c, &disco_info("d-caps", "localhost")).await;
    let query = info.get_child("query", ns::DISCO_INFO).expect("query");
    assert_eq!(parley_proto::caps::ver(query), ver, "the hash of {info}");
    let by_node = disco_info("d-caps-node", "localhost");
    let mut by_node = by_node;
    let node_ver = format!("{node}#{ver}");
    if let Some(q) = by_node.get_child_mut("query", ns::DISCO_INFO) {
        q.set_attr("node", node_ver.as_str());
    }
    let answer = ask(&mut c, &by_node).await;
    let q = answer.get_child("query", ns::DISCO_INFO).expect("query");
    assert_eq!(q.attr("node"), Some(node_ver.as_str()), "{answer}");
    assert_eq!(parley_proto::caps::ver(q), ver);
}
