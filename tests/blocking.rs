//! XEP-0191 Blocking Command over real sockets: the list (§3.2), blocking with its pushes and
//! the unavailable presence it implies (§3.3), unblocking one, some or all (§3.4), stanzas
//! from a blocked address — sent to a full JID or a bare one — refused or dropped (§3.5),
//! stanzas to one refused with `<blocked/>` (§3.6), and the list kept across sessions.
//!
//! "Nothing arrives" is checked after a barrier: a round trip (a ping to the session, a roster
//! get to the user's actor) that the unwanted stanza would have had to come before.

use parley_proto::ns;
use parley_testkit::im::{chat, error_condition, is_blocking_push as is_push, next_id};
use parley_testkit::{Client, TestServer};
use parley_xml::Element;

fn bare(user: &str) -> String {
    format!("{user}@localhost")
}

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = Client::login(server.c2s(), user, Some(resource)).await;
    c.roster().await.expect("roster get");
    c.available().await;
    c.sync().await.expect("sync");
    c
}

fn iq(ty: &str, payload: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", next_id("blk"))
        .with_child(payload)
}

/// Makes `a` and `b` subscribed to each other, both online.
async fn befriend(a: &mut Client, an: &str, b: &mut Client, bn: &str) {
    a.subscribe(&bare(bn)).await;
    b.expect_presence_from(&bare(an), "subscribe")
        .await
        .unwrap();
    b.approve(&bare(an)).await;
    b.subscribe(&bare(an)).await;
    a.expect_presence_from(&bare(bn), "subscribe")
        .await
        .unwrap();
    a.approve(&bare(bn)).await;
    a.expect_presence_from(&format!("{}/b", bare(bn)), "available")
        .await
        .unwrap();
    b.expect_presence_from(&format!("{}/a", bare(an)), "available")
        .await
        .unwrap();
}

/// §3.1: the server says it supports the protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_3_1_the_server_advertises_blocking() {
    let server = TestServer::start(|_| {});
    let mut alice = online(&server, "alice", "a").await;
    let info = alice
        .request(&iq("get", Element::new("query", ns::DISCO_INFO)).with_attr("to", "localhost"))
        .await
        .unwrap();
    let query = info.get_child("query", ns::DISCO_INFO).expect("query");
    assert!(
        query
            .children()
            .any(|f| f.attr("var") == Some(ns::BLOCKING)),
        "{info}"
    );
}

/// §3.2–§3.4: the list starts empty, a block adds (normalized) items and is pushed to the
/// resources that asked for the list — only those —, unblocking some and then all empties
/// it, and bad requests get their errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_3_2_to_3_4_the_list_its_pushes_and_errors() {
    let server = TestServer::start(|_| {});
    let mut a = online(&server, "alice", "a").await;
    let mut other = online(&server, "alice", "other").await;
    let mut quiet = online(&server, "alice", "quiet").await;
    assert!(a.blocklist().await.is_empty());
    assert!(other.blocklist().await.is_empty());

    let reply = a.block(&["Romeo@Example.NET", "example.org"]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    for c in [&mut a, &mut other] {
        let push = c
            .expect_match("a <block/> push", |el| is_push(el, "block"))
            .await
            .unwrap();
        assert_eq!(push.attr("from"), Some("alice@localhost"), "{push}");
    }
    // The pushes to the others came from one step of the user's actor, which had handed
    // quiet's session its copy (if any) before: a ping now comes back after it.
    quiet.sync().await.unwrap();
    quiet
        .expect_none_yet("a push (never asked for the list)", |el| {
            is_push(el, "block")
        })
        .await
        .unwrap();
    assert_eq!(
        a.blocklist().await,
        ["example.org", "romeo@example.net"],
        "sorted and normalized"
    );

    let reply = a.unblock(&["example.org", "nobody@example.com"]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    other
        .expect_match("an <unblock/> push", |el| is_push(el, "unblock"))
        .await
        .unwrap();
    assert_eq!(a.blocklist().await, ["romeo@example.net"]);
    a.block(&["juliet@example.com/balcony"]).await;
    let reply = a.unblock(&[]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let all = other
        .expect_match("an <unblock/> of everything", |el| {
            is_push(el, "unblock")
                && el
                    .get_child("unblock", ns::BLOCKING)
                    .is_some_and(|u| u.children().next().is_none())
        })
        .await;
    assert!(all.is_ok(), "{all:?}");
    assert!(a.blocklist().await.is_empty());

    // §3.3: a block needs items; a bad JID is jid-malformed.
    let err = a.block(&[]).await;
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("bad-request"),
        "{err}"
    );
    let err = a.block(&["a@b@c"]).await;
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("jid-malformed"),
        "{err}"
    );
    assert!(a.blocklist().await.is_empty());
}

/// §3.3 and §3.5: bob, blocked by alice, learns that she went unavailable; his messages to
/// her full and bare JID come back as service-unavailable and never reach her, his iq is
/// refused, his presence dropped. §3.6: hers to him are refused with `<blocked/>`. §3.4:
/// unblocked, he sees her presence again and they chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_3_5_and_3_6_a_blocked_contact_neither_reaches_nor_is_reached() {
    let server = TestServer::start(|_| {});
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    befriend(&mut alice, "alice", &mut bob, "bob").await;

    alice.block(&["bob@localhost"]).await;
    alice.clear_stash();
    bob.expect_presence_from("alice@localhost/a", "unavailable")
        .await
        .expect("§3.3: unavailable presence to the blocked contact");

    for to in ["alice@localhost/a", "alice@localhost"] {
        assert_eq!(
            bob.refused_chat(to, "let me in").await,
            "service-unavailable"
        );
    }
    let ping = iq("get", Element::new("ping", ns::PING)).with_attr("to", "alice@localhost/a");
    let err = bob.request(&ping).await.unwrap();
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("service-unavailable"),
        "{err}"
    );
    bob.send(&Element::new("presence", ns::CLIENT).with_attr("to", "alice@localhost/a"))
        .await;
    // Directed presence goes through bob's actor: once it answered bob's roster get it has
    // handed the presence on, and alice's roster get then comes back after it.
    bob.sync_user().await.unwrap();
    alice.sync_user().await.unwrap();
    alice
        .expect_none_yet("anything from bob", |el| {
            el.attr("from").is_some_and(|f| f.starts_with("bob@"))
        })
        .await
        .unwrap();

    let mut out = chat("bob@localhost/b", "chat", "hello?");
    out.set_attr("id", "out-1");
    alice.send(&out).await;
    let err = alice
        .expect_match("the error for a message to a blocked address", |el| {
            el.attr("id") == Some("out-1")
        })
        .await
        .unwrap();
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("not-acceptable"),
        "{err}"
    );
    let e = err.get_child("error", ns::CLIENT).unwrap();
    assert!(e.has_child("blocked", ns::BLOCKING_ERRORS), "{err}");
    assert_eq!(e.attr("type"), Some("cancel"));

    alice.unblock(&["bob@localhost"]).await;
    bob.expect_presence_from("alice@localhost/a", "available")
        .await
        .expect("§3.4: current presence after unblocking");
    bob.send(&chat("alice@localhost/a", "chat", "friends again"))
        .await;
    alice.expect_message_body("friends again").await.unwrap();
}

/// The list lives in storage and every new session enforces it from its first stanza: a
/// resource bound after the block refuses a blocked sender's message to its full JID (which
/// never passes the user actor), and a domain item covers everyone at the domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_outlives_sessions_and_new_sessions_enforce_it() {
    let server = TestServer::start(|_| {});
    let mut first = online(&server, "alice", "first").await;
    first.block(&["carol@localhost"]).await;
    drop(first);

    let mut later = online(&server, "alice", "later").await;
    let mut carol = online(&server, "carol", "c").await;
    assert_eq!(later.blocklist().await, ["carol@localhost"]);
    assert_eq!(
        carol
            .refused_chat("alice@localhost/later", "remember me?")
            .await,
        "service-unavailable"
    );

    // A domain item (XEP-0016 §2.1 matching).
    later.unblock(&[]).await;
    later.block(&["localhost"]).await;
    let mut bob = online(&server, "bob", "b").await;
    assert_eq!(
        bob.refused_chat("alice@localhost/later", "me neither?")
            .await,
        "service-unavailable"
    );
}
