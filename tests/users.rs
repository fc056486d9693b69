//! RFC 6121 behaviour of the user actor, over real sockets: the roster (§2) with pushes to
//! interested resources and versioning, subscriptions (§3), presence broadcast, probes,
//! directed presence and unavailable presence on any disconnect (§4), bare-JID routing
//! (§8.5), offline messages (XEP-0160, stamped per XEP-0203) and message carbons (XEP-0280).
//! The last test is about load: a presence flood from a 1000-contact roster must not stall an
//! unrelated conversation.
//!
//! Waiting for something uses the testkit's 10 s bound; asserting that something does *not*
//! arrive uses a barrier: a round trip (a ping to the session, a roster get to the user's
//! actor, a ping to another user's account) that the unwanted stanza would have had to come
//! before, so that the check is about the rule and not about timing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_proto::ns;
use parley_storage::{RosterItem as StoredItem, Subscription};
use parley_testkit::im::{
    body, carbon_inner, carbon_kind, chat, error_condition, is_presence_from, is_push_for,
    is_roster_push, next_id, parse_utc_stamp, presence, presence_type, push_item, roster_get_iq,
    roster_item, roster_set_iq, unix_now, Roster, RosterItem, ROSTER_VER_FEATURE,
};
use parley_testkit::{poll_until, Client, Received, TestServer};
use parley_xml::Element;

// ----- helpers -------------------------------------------------------------------------------

fn bare(user: &str) -> String {
    format!("{user}@localhost")
}

fn full(user: &str, resource: &str) -> String {
    format!("{user}@localhost/{resource}")
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server.c2s(), user, Some(resource)).await
}

/// Logs in, requests the roster (so the resource is interested, RFC 6121 §2.1.6) and sends
/// initial presence (available, RFC 6121 §4.2).
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = login(server, user, resource).await;
    c.roster().await.expect("roster get");
    c.available().await;
    c.sync().await.expect("sync after initial presence");
    c
}

/// Closes the stream and reads until the server has closed the connection.
async fn hang_up(c: &mut Client) {
    c.send_raw("</stream:stream>").await.expect("send close");
    loop {
        match c.recv().await.expect("reading until EOF") {
            Received::Eof => return,
            Received::Close | Received::Element(_) | Received::Header(_) => {}
        }
    }
}

fn condition(el: &Element) -> String {
    error_condition(el).unwrap_or_else(|| panic!("expected a stanza error, got {el}"))
}

fn assert_result(reply: &Element) {
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "expected a result, got {reply}"
    );
}

/// The item of a roster push, checking the push's envelope (RFC 6121 §2.1.6: no `from`, or
/// the user's bare JID; a `ver` since the server versions rosters, §2.6.3).
fn pushed(push: &Element, owner: &str) -> RosterItem {
    let from = push.attr("from");
    assert!(
        from.is_none() || from == Some(bare(owner).as_str()),
        "RFC 6121 §2.1.6: a push comes from the user's bare JID or the server itself: {push}"
    );
    let query = push.get_child("query", ns::ROSTER).expect("query");
    assert!(
        query.attr("ver").is_some(),
        "RFC 6121 §2.6.3: pushes carry ver: {push}"
    );
    let items: Vec<_> = query.children().collect();
    assert_eq!(items.len(), 1, "RFC 6121 §2.1.6: one item per push: {push}");
    push_item(push).expect("item")
}

fn push_ver(push: &Element) -> String {
    push.get_child("query", ns::ROSTER)
        .and_then(|q| q.attr("ver"))
        .expect("push ver")
        .to_owned()
}

/// Waits for a roster push for `jid` whose subscription is `sub`, skipping intermediate
/// pushes (a roster removal can pass through two states).
async fn expect_push_state(c: &mut Client, jid: &str, sub: &str) -> RosterItem {
    let jid_owned = jid.to_owned();
    let sub_owned = sub.to_owned();
    let push = c
        .expect_match(
            &format!("a roster push {jid} subscription={sub}"),
            move |el| {
                push_item(el).is_some_and(|i| i.jid == jid_owned && i.subscription == sub_owned)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.ack_push(&push).await;
    push_item(&push).expect("item")
}

/// Mutual subscription (`both` on both sides) between two users, through the wire
/// (RFC 6121 §3.1), on setup connections that are closed again afterwards.
async fn befriend(server: &TestServer, a: &str, b: &str) {
    let mut ca = online(server, a, "setup").await;
    let mut cb = online(server, b, "setup").await;
    ca.subscribe(&bare(b)).await;
    cb.expect_presence_from(&bare(a), "subscribe")
        .await
        .unwrap_or_else(|e| panic!("befriend: {e}"));
    cb.approve(&bare(a)).await;
    expect_push_state(&mut ca, &bare(b), "to").await;
    cb.subscribe(&bare(a)).await;
    ca.expect_presence_from(&bare(b), "subscribe")
        .await
        .unwrap_or_else(|e| panic!("befriend: {e}"));
    ca.approve(&bare(b)).await;
    expect_push_state(&mut ca, &bare(b), "both").await;
    expect_push_state(&mut cb, &bare(a), "both").await;
    hang_up(&mut ca).await;
    hang_up(&mut cb).await;
}

/// Sends `iq` and returns the reply.
async fn ask(c: &mut Client, iq: &Element) -> Element {
    c.iq(iq).await.unwrap_or_else(|e| panic!("{e}"))
}

fn messages(els: &[Element]) -> Vec<&Element> {
    els.iter().filter(|e| e.is("message", ns::CLIENT)).collect()
}

fn ok<T>(r: Result<T, parley_testkit::ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

// ----- RFC 6121 §2: the roster -----------------------------------------------------------------

/// RFC 6121 §2.1.6 (and §2.3.2): a roster set is pushed to every *interested* resource — one
/// that requested the roster — including the one that sent it, and never to a resource that
/// did not request the roster, even an available one. Requesting the roster later makes the
/// resource interested from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_push_reaches_interested_resources_only_rfc6121_2_1_6() {
    let server = TestServer::start(|_| {});
    let mut a = login(&server, "alice", "a").await;
    ok(a.roster().await);
    a.available().await;
    // Interested but never available: interest is about the roster request alone.
    let mut b = login(&server, "alice", "b").await;
    ok(b.roster().await);
    // Available but not interested.
    let mut c = login(&server, "alice", "c").await;
    c.available().await;
    ok(c.sync().await);

    let push_a = ok(a
        .roster_set_and_push(roster_item(&bare("bob"), Some("Bob"), &["Friends"]))
        .await);
    let push_b = ok(b.expect_roster_push(&bare("bob")).await);
    for push in [&push_a, &push_b] {
        let item = pushed(push, "alice");
        assert_eq!(item.jid, bare("bob"));
        assert_eq!(item.name.as_deref(), Some("Bob"));
        assert_eq!(item.subscription, "none");
        assert_eq!(item.ask, None);
        assert_eq!(item.groups, ["Friends"]);
    }
    assert_eq!(
        push_ver(&push_a),
        push_ver(&push_b),
        "one change, one version"
    );
    for (push, res) in [(&push_a, "a"), (&push_b, "b")] {
        if let Some(to) = push.attr("to") {
            assert_eq!(to, full("alice", res), "{push}");
        }
    }
    // a and b have their pushes, sent in the step that would have handed c's session one.
    ok(c.expect_none_before_ping("roster push", is_roster_push)
        .await);

    // c asks for the roster: from now on it is interested.
    let roster = ok(c.roster().await);
    assert_eq!(
        roster.item(&bare("bob")).and_then(|i| i.name.as_deref()),
        Some("Bob")
    );
    let push_b2 = ok(b
        .roster_set_and_push(roster_item(&bare("bob"), Some("Robert"), &[]))
        .await);
    for client in [&mut a, &mut c] {
        let push = ok(client.expect_roster_push(&bare("bob")).await);
        let item = pushed(&push, "alice");
        assert_eq!(item.name.as_deref(), Some("Robert"));
        assert!(item.groups.is_empty(), "{push}");
        assert_eq!(push_ver(&push), push_ver(&push_b2));
    }
    assert_ne!(
        push_ver(&push_a),
        push_ver(&push_b2),
        "each change has its own version"
    );
}

/// RFC 6121 §2.2 (get), §2.3 (add), §2.4 (update: the item is replaced exactly as given), §2.5
/// (remove: a push with `subscription='remove'`), §2.5.3 (removing an absent item is
/// item-not-found). A roster get addressed to the user's own bare JID is the same as one
/// without `to` (RFC 6120 §10.3.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_get_add_update_remove_rfc6121_2_2_to_2_5() {
    let server = TestServer::start(|_| {});
    let mut a = login(&server, "alice", "a").await;
    let empty = ok(a.roster().await);
    assert!(empty.items.is_empty(), "{empty:?}");

    ok(
        a.roster_set_and_push(roster_item(&bare("bob"), Some("Bob"), &["Friends", "Work"]))
            .await,
    );
    let roster = ok(a.roster().await);
    let bob = roster.item(&bare("bob")).expect("bob added");
    assert_eq!(bob.name.as_deref(), Some("Bob"));
    assert_eq!(bob.subscription, "none");
    assert_eq!(bob.ask, None);
    let groups: HashSet<_> = bob.groups.iter().map(String::as_str).collect();
    assert_eq!(groups, HashSet::from(["Friends", "Work"]));

    // §2.4.1: atomic update — the handle and a group are dropped because they are absent.
    let push = ok(a
        .roster_set_and_push(roster_item(&bare("bob"), None, &["Work"]))
        .await);
    let item = pushed(&push, "alice");
    assert_eq!(item.name, None, "{push}");
    assert_eq!(item.groups, ["Work"]);
    ok(
        a.roster_set_and_push(roster_item(&bare("carol"), Some("Carol"), &[]))
            .await,
    );

    // The same get, addressed to the own bare JID.
    let mut own = roster_get_iq(&next_id("own"), None);
    own.set_attr("to", bare("alice"));
    let reply = ask(&mut a, &own).await;
    assert_result(&reply);
    let roster = Roster::from_iq(&reply).expect("query");
    assert_eq!(roster.items.len(), 2, "{reply}");
    assert_eq!(roster.item(&bare("bob")).expect("bob").groups, ["Work"]);
    assert_eq!(roster.item(&bare("bob")).expect("bob").name, None);

    // §2.5.2: remove.
    let id = next_id("remove");
    let remove = roster_set_iq(
        &id,
        vec![Element::new("item", ns::ROSTER)
            .with_attr("jid", bare("bob"))
            .with_attr("subscription", "remove")],
    );
    a.send(&remove).await;
    let jid = bare("bob");
    let found = ok(a
        .expect_each(
            "remove result and push",
            vec![
                Box::new(|el: &Element| el.attr("id") == Some(id.as_str())),
                Box::new(|el: &Element| is_push_for(el, &jid)),
            ],
        )
        .await);
    assert_result(&found[0]);
    assert_eq!(pushed(&found[1], "alice").subscription, "remove");
    let roster = ok(a.roster().await);
    assert_eq!(roster.item(&bare("bob")), None, "{roster:?}");
    assert!(roster.item(&bare("carol")).is_some());

    // §2.5.3: removing what is not there.
    let reply = ok(a.roster_remove(&bare("bob")).await);
    assert_eq!(condition(&reply), "item-not-found");
}

/// RFC 6121 §2.6 roster versioning: the stream features advertise it (§2.6.1); a get with
/// the current version gets an empty result and nothing else; with an older version, an
/// empty result followed by one push per change since, in order (removals included); with
/// an unknown version (garbage, or ahead of the server) or `ver=''`, the full roster with the
/// current version (§2.6.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_versioning_rfc6121_2_6() {
    let server = TestServer::start(|_| {});
    let mut a = Client::authed(server.c2s(), "alice").await;
    let features = a.features.clone().expect("features");
    assert!(
        features.get_child("ver", ROSTER_VER_FEATURE).is_some(),
        "RFC 6121 §2.6.1: <ver xmlns='{ROSTER_VER_FEATURE}'/> in {features}"
    );
    a.bind(Some("a")).await.expect("bind");

    let reply = ok(a.roster_get(Some("")).await);
    assert_result(&reply);
    let v0 = Roster::from_iq(&reply)
        .and_then(|r| r.ver)
        .unwrap_or_else(|| panic!("RFC 6121 §2.6.3: the full roster carries ver: {reply}"));
    let v1 = push_ver(&ok(a
        .roster_set_and_push(roster_item(&bare("carol"), None, &[]))
        .await));
    let v2 = push_ver(&ok(a
        .roster_set_and_push(roster_item(&bare("bob"), None, &[]))
        .await));
    assert!(v0 != v1 && v1 != v2 && v0 != v2, "{v0} {v1} {v2}");

    // The current version: nothing to send.
    let mut b = login(&server, "alice", "b").await;
    let (reply, before) = ok(b.iq_collect(&roster_get_iq("cur", Some(&v2))).await);
    assert_result(&reply);
    assert!(
        reply.get_child("query", ns::ROSTER).is_none(),
        "RFC 6121 §2.6.3: an up-to-date cache gets an empty result: {reply}"
    );
    assert!(before.iter().all(|e| !is_roster_push(e)), "{before:?}");
    ok(
        b.expect_none_before_user_sync("roster push", is_roster_push)
            .await,
    );

    // An older version: the result, then the changes since, as pushes.
    let replay = |since: &str, expected: Vec<(String, String, String)>| {
        let server = &server;
        let since = since.to_owned();
        async move {
            let mut c = login(server, "alice", &next_id("replay")).await;
            let (reply, before) = ok(c.iq_collect(&roster_get_iq("old", Some(&since))).await);
            assert_result(&reply);
            assert!(
                reply.get_child("query", ns::ROSTER).is_none(),
                "RFC 6121 §2.6.3 (pushes variant): empty result for ver={since}: {reply}"
            );
            assert!(
                before.iter().all(|e| !is_roster_push(e)),
                "pushes before the result: {before:?}"
            );
            for (jid, sub, ver) in expected {
                let push = ok(c
                    .expect_match(&format!("replayed push for {jid}"), is_roster_push)
                    .await);
                let item = pushed(&push, "alice");
                assert_eq!(
                    (item.jid.as_str(), item.subscription.as_str()),
                    (jid.as_str(), sub.as_str()),
                    "replay since {since}, in order: {push}"
                );
                assert_eq!(push_ver(&push), ver, "{push}");
                c.ack_push(&push).await;
            }
            ok(
                c.expect_none_before_user_sync("more roster pushes", is_roster_push)
                    .await,
            );
        }
    };
    replay(&v1, vec![(bare("bob"), "none".into(), v2.clone())]).await;
    replay(
        &v0,
        vec![
            (bare("carol"), "none".into(), v1.clone()),
            (bare("bob"), "none".into(), v2.clone()),
        ],
    )
    .await;
    // A removal is a change too.
    let reply = ok(a.roster_remove(&bare("carol")).await);
    assert_result(&reply);
    let v3 = push_ver(&ok(a.expect_roster_push(&bare("carol")).await));
    replay(&v2, vec![(bare("carol"), "remove".into(), v3.clone())]).await;

    // Unknown versions and the empty version: the full roster.
    for ver in ["bogus", "999999999", ""] {
        let mut d = login(&server, "alice", &next_id("full")).await;
        let reply = ok(d.roster_get(Some(ver)).await);
        assert_result(&reply);
        let roster = Roster::from_iq(&reply)
            .unwrap_or_else(|| panic!("ver={ver:?}: expected the full roster, got {reply}"));
        assert_eq!(
            roster.ver.as_deref(),
            Some(v3.as_str()),
            "ver={ver:?}: {reply}"
        );
        let jids: Vec<_> = roster.items.iter().map(|i| i.jid.as_str()).collect();
        assert_eq!(jids, [bare("bob")], "ver={ver:?}");
    }
}

/// RFC 6121 §2.3.3: a roster set with zero or two items, an item without a JID or with an
/// invalid one, or duplicate groups is bad-request; an empty group name is not-acceptable;
/// none of them changes the roster or pushes anything. A roster set for another user's
/// roster is forbidden, and another user's roster cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_roster_sets_are_refused_rfc6121_2_3_3() {
    let server = TestServer::start(|_| {});
    let mut a = login(&server, "alice", "a").await;
    ok(a.roster().await);
    let item = |jid: &str| roster_item(jid, None, &[]);
    let cases: Vec<(&str, Vec<Element>, &[&str])> = vec![
        ("no item", vec![], &["bad-request"]),
        (
            "two items",
            vec![item(&bare("bob")), item(&bare("carol"))],
            &["bad-request"],
        ),
        (
            "item without jid",
            vec![Element::new("item", ns::ROSTER).with_attr("name", "x")],
            &["bad-request"],
        ),
        // RFC 6121 leaves the condition for an unparseable JID open; the spec says
        // bad-request, RFC 6120 §8.3.3.8 would allow jid-malformed.
        (
            "invalid jid",
            vec![item("@localhost")],
            &["bad-request", "jid-malformed"],
        ),
        (
            "duplicate group",
            vec![roster_item(&bare("bob"), None, &["G", "G"])],
            &["bad-request"],
        ),
        (
            "empty group",
            vec![roster_item(&bare("bob"), None, &[""])],
            &["not-acceptable"],
        ),
    ];
    for (what, items, expected) in cases {
        let reply = ask(&mut a, &roster_set_iq(&next_id("bad"), items)).await;
        let cond = condition(&reply);
        assert!(
            expected.contains(&cond.as_str()),
            "{what}: expected {expected:?}, got {reply}"
        );
    }
    ok(
        a.expect_none_before_user_sync("roster push", is_roster_push)
            .await,
    );
    let roster = ok(a.roster().await);
    assert!(roster.items.is_empty(), "{roster:?}");

    // Someone else's roster.
    let mut set = roster_set_iq(&next_id("other"), vec![item(&bare("carol"))]);
    set.set_attr("to", bare("bob"));
    let reply = ask(&mut a, &set).await;
    assert_eq!(condition(&reply), "forbidden", "RFC 6121 §2.3.3: {reply}");
    let mut get = roster_get_iq(&next_id("other"), None);
    get.set_attr("to", bare("bob"));
    let reply = ask(&mut a, &get).await;
    // The spec says forbidden; RFC 6121 only requires that the roster is not revealed.
    let cond = condition(&reply);
    assert!(
        matches!(cond.as_str(), "forbidden" | "service-unavailable"),
        "{reply}"
    );
    assert!(
        Roster::from_iq(&reply).is_none_or(|r| r.items.is_empty()),
        "{reply}"
    );
    let mut bob = login(&server, "bob", "b").await;
    let roster = ok(bob.roster().await);
    assert!(
        roster.items.is_empty(),
        "bob's roster was changed: {roster:?}"
    );
}

/// RFC 6121 §2.3.3 with RFC 6120 §8.3.3.10: adding an item beyond the server's roster size
/// limit (`[roster] max_items`) is not-allowed; updating an existing item at the limit is
/// not an addition, and removing one makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_size_limit_is_not_allowed_rfc6121_2_3_3() {
    let server = TestServer::start(|c| c.roster.max_items = 3);
    let mut a = login(&server, "alice", "a").await;
    ok(a.roster().await);
    for u in ["u1", "u2", "u3"] {
        ok(a.roster_set_and_push(roster_item(&bare(u), None, &[]))
            .await);
    }
    let reply = ok(a.roster_set(roster_item(&bare("u4"), None, &[])).await);
    assert_eq!(condition(&reply), "not-allowed", "{reply}");
    ok(
        a.expect_none_before_user_sync("roster push", |el| is_push_for(el, &bare("u4")))
            .await,
    );
    let push = ok(a
        .roster_set_and_push(roster_item(&bare("u1"), Some("renamed"), &[]))
        .await);
    assert_eq!(pushed(&push, "alice").name.as_deref(), Some("renamed"));
    assert_result(&ok(a.roster_remove(&bare("u2")).await));
    ok(a.roster_set_and_push(roster_item(&bare("u4"), None, &[]))
        .await);
    let roster = ok(a.roster().await);
    let mut jids: Vec<_> = roster.items.iter().map(|i| i.jid.clone()).collect();
    jids.sort();
    assert_eq!(jids, [bare("u1"), bare("u3"), bare("u4")]);
}

// ----- RFC 6121 §8.5: bare-JID routing through the user actor -------------------------------

/// Logs `user/resource` in with initial presence at `priority`.
async fn at_priority(server: &TestServer, user: &str, resource: &str, priority: i8) -> Client {
    let mut c = login(server, user, resource).await;
    c.available_with_priority(priority).await;
    ok(c.sync().await);
    c
}

/// RFC 6121 §8.5.2.1.1: chat and normal messages to the bare JID go to the available resource
/// of highest non-negative priority, headlines to every non-negative one; a priority change by
/// a presence update (§4.4) and an explicit unavailable (§4.5) move the target; with only a
/// negative-priority resource left the message is handled as with no available resource
/// (§8.5.2.2.1): stored offline (XEP-0160), never delivered to the negative one, not bounced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_jid_messages_follow_priorities_rfc6121_8_5_2_1_1() {
    let server = TestServer::start(|_| {});
    let mut five = at_priority(&server, "bob", "five", 5).await;
    let mut one = at_priority(&server, "bob", "one", 1).await;
    let mut neg = at_priority(&server, "bob", "neg", -1).await;
    let mut alice = login(&server, "alice", "a").await;
    let to = bare("bob");

    alice.send(&chat(&to, "chat", "c1")).await;
    alice.send(&chat(&to, "normal", "n1")).await;
    alice.send(&chat(&to, "headline", "h1")).await;
    for text in ["c1", "n1", "h1"] {
        let got = ok(five.expect_message_body(text).await);
        assert_eq!(got.attr("from"), Some(full("alice", "a").as_str()));
    }
    // Messages from one sender stay in order: "one" would have seen c1 or n1 before h1.
    let first = ok(one
        .expect_match("a message", |el| el.name() == "message")
        .await);
    assert_eq!(body(&first), "h1", "{first}");
    // The user actor dispatched h1 to every target in one step: by now a copy for "neg"
    // would be on its way.
    ok(neg
        .expect_none_before_ping("a message for negative priority", |el| {
            el.name() == "message"
        })
        .await);

    // "one" raises its priority above "five" (RFC 6121 §4.4). "five" seeing the update means
    // the user actor has it.
    one.send(&presence().with_child(Element::new("priority", ns::CLIENT).with_text("10")))
        .await;
    ok(five
        .expect_match("one's priority update", |el| {
            is_presence_from(el, &full("bob", "one"), "available")
                && el
                    .get_child("priority", ns::CLIENT)
                    .is_some_and(|p| p.text() == "10")
        })
        .await);
    alice.send(&chat(&to, "chat", "c2")).await;
    ok(one.expect_message_body("c2").await);
    // One step of bob's actor delivered c2 to one: a copy for five would be ahead of a ping.
    ok(five
        .expect_none_before_ping("c2 at lower priority", |el| el.name() == "message")
        .await);

    // Explicit unavailable while staying connected (RFC 6121 §4.5).
    one.send(&presence().with_attr("type", "unavailable")).await;
    ok(five
        .expect_presence_from(&full("bob", "one"), "unavailable")
        .await);
    alice.send(&chat(&to, "chat", "c3")).await;
    ok(five.expect_message_body("c3").await);
    ok(one
        .expect_none_before_ping("c3 while unavailable", |el| el.name() == "message")
        .await);

    // Only the negative-priority resource is left available.
    five.send(&presence().with_attr("type", "unavailable"))
        .await;
    ok(neg
        .expect_presence_from(&full("bob", "five"), "unavailable")
        .await);
    alice.send(&chat(&to, "chat", "c4")).await;
    // Bob's actor answers alice's ping after handling c4, and would have bounced it or
    // handed it to neg's session first.
    ok(alice.sync_via(&to).await);
    ok(alice
        .expect_none_yet("a bounce", |el| el.attr("type") == Some("error"))
        .await);
    ok(neg
        .expect_none_before_ping("the message", |el| el.name() == "message")
        .await);
    let mut fresh = login(&server, "bob", "fresh").await;
    fresh.available().await;
    let got = ok(fresh.expect_message_body("c4").await);
    assert!(
        got.get_child("delay", ns::DELAY).is_some(),
        "XEP-0160 delivery carries a XEP-0203 delay: {got}"
    );
}

/// RFC 6121 §8.5.3.2.1: a message to a full JID whose resource has just gone is handled as if
/// sent to the bare JID: it reaches the other available resource, and once none is left it is
/// stored offline (XEP-0160) and delivered at the next initial presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_gone_resource_falls_back_then_goes_offline_rfc6121_8_5_3_2_1() {
    let server = TestServer::start(|_| {});
    let mut gone = at_priority(&server, "bob", "gone", 0).await;
    let mut other = at_priority(&server, "bob", "other", 0).await;
    let mut alice = login(&server, "alice", "a").await;
    ok(gone
        .expect_presence_from(&full("bob", "other"), "available")
        .await);
    hang_up(&mut gone).await;
    ok(other
        .expect_presence_from(&full("bob", "gone"), "unavailable")
        .await);

    alice
        .send(&chat(&full("bob", "gone"), "chat", "where are you"))
        .await;
    let got = ok(other.expect_message_body("where are you").await);
    assert_eq!(got.attr("from"), Some(full("alice", "a").as_str()));

    hang_up(&mut other).await;
    alice
        .send(&chat(&full("bob", "gone"), "chat", "later"))
        .await;
    // With no session for bob/gone the message went to bob's actor, which answers this ping
    // after handling it (and would have bounced it first).
    ok(alice.sync_via(&bare("bob")).await);
    ok(alice
        .expect_none_yet("a bounce", |el| el.attr("type") == Some("error"))
        .await);
    let mut back = login(&server, "bob", "back").await;
    back.available().await;
    let got = ok(back.expect_message_body("later").await);
    assert_eq!(got.attr("from"), Some(full("alice", "a").as_str()));
    assert!(got.get_child("delay", ns::DELAY).is_some(), "{got}");
}

/// RFC 6121 §8.5.1 (as the spec chooses): a message or an iq to an account that does not exist
/// is service-unavailable; presence to it is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanzas_to_missing_accounts_rfc6121_8_5_1() {
    let server = TestServer::start(|_| {});
    let mut a = login(&server, "alice", "a").await;
    for to in [bare("nobody"), full("nobody", "x")] {
        a.send(&chat(&to, "chat", "hello?")).await;
        let bounce = ok(a
            .expect_match("the bounce", |el| el.is("message", ns::CLIENT))
            .await);
        assert_eq!(
            condition(&bounce),
            "service-unavailable",
            "to={to}: {bounce}"
        );
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("ping"))
            .with_attr("to", to.as_str())
            .with_child(Element::new("ping", ns::PING));
        let reply = ask(&mut a, &iq).await;
        assert_eq!(condition(&reply), "service-unavailable", "to={to}: {reply}");
        a.send_presence_to(&to, None).await;
    }
    // Directed presence leaves through alice's actor (answering her roster get after
    // handing it on); the ping to nobody follows it there, so an answer would come first.
    ok(a.sync().await);
    ok(a.sync_user().await);
    ok(a.sync_via(&bare("nobody")).await);
    ok(a.expect_none_yet("an answer to presence", |_| true).await);
}

// ----- RFC 6121 §3 and §4: subscriptions and presence ------------------------------------------

/// RFC 6121 §3.1: the full subscription handshake in both directions, with the pushes of
/// §3.1.2, §3.1.5 and §3.1.6 on both sides and the contact's current presence sent on approval
/// (§3.1.5); then, on fresh logins, initial presence is broadcast to the contact (§4.2.2) and
/// the probe sent on the newcomer's behalf is answered with the contact's presence (§4.3.2):
/// each side sees the other. Probes are the server's business and never reach a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_handshake_then_presence_exchange_rfc6121_3_1_4_2_4_3() {
    let server = TestServer::start(|_| {});
    let mut a = online(&server, "alice", "a").await;
    let mut b = online(&server, "bob", "b").await;
    let (alice, bob) = (bare("alice"), bare("bob"));

    // alice asks (§3.1.1); her item shows the pending request (§3.1.2).
    a.subscribe(&bob).await;
    let item = expect_push_state(&mut a, &bob, "none").await;
    assert_eq!(item.ask.as_deref(), Some("subscribe"), "RFC 6121 §3.1.2");
    let req = ok(b.expect_presence_from(&alice, "subscribe").await);
    assert!(req.attr("to").is_some_and(|t| t.starts_with(&bob)), "{req}");

    // bob approves (§3.1.4).
    b.approve(&alice).await;
    let item = expect_push_state(&mut b, &alice, "from").await;
    assert_eq!(item.ask, None);
    let item = expect_push_state(&mut a, &bob, "to").await;
    assert_eq!(item.ask, None, "RFC 6121 §3.1.6: approval clears ask");
    ok(a.expect_presence_from(&bob, "subscribed").await);
    ok(a.expect_presence_from(&full("bob", "b"), "available").await);

    // And back.
    b.subscribe(&alice).await;
    let item = expect_push_state(&mut b, &alice, "from").await;
    assert_eq!(item.ask.as_deref(), Some("subscribe"), "RFC 6121 §3.1.2");
    ok(a.expect_presence_from(&bob, "subscribe").await);
    a.approve(&bob).await;
    expect_push_state(&mut a, &bob, "both").await;
    expect_push_state(&mut b, &alice, "both").await;
    ok(b.expect_presence_from(&alice, "subscribed").await);
    ok(b.expect_presence_from(&full("alice", "a"), "available")
        .await);

    for (c, contact) in [(&mut a, &bob), (&mut b, &alice)] {
        let roster = ok(c.roster().await);
        let item = roster.item(contact).expect("contact on the roster");
        assert_eq!(item.subscription, "both");
        assert_eq!(item.ask, None);
    }
    hang_up(&mut a).await;
    hang_up(&mut b).await;

    // Fresh connections: bob comes first, alice second.
    let mut b2 = login(&server, "bob", "b2").await;
    b2.available().await;
    ok(b2.sync().await);
    let mut a2 = login(&server, "alice", "a2").await;
    a2.available().await;
    // §4.2.2: alice's initial presence is broadcast to bob.
    ok(b2
        .expect_presence_from(&full("alice", "a2"), "available")
        .await);
    // §4.3.2: the probe sent on alice's behalf is answered with bob's presence.
    ok(a2
        .expect_presence_from(&full("bob", "b2"), "available")
        .await);
    // Each saw the other's presence, sent in the steps that would have leaked a probe to it:
    // a ping comes back after such a probe.
    for c in [&mut b2, &mut a2] {
        ok(
            c.expect_none_before_ping("a probe", |el| presence_type(el) == "probe")
                .await,
        );
    }

    // §4.4.2: an update is broadcast, and it probes nobody: bob's presence is not sent again.
    a2.clear_stash();
    a2.send(&presence().with_child(Element::new("show", ns::CLIENT).with_text("away")))
        .await;
    let update = ok(b2
        .expect_presence_from(&full("alice", "a2"), "available")
        .await);
    assert!(update.get_child("show", ns::CLIENT).is_some(), "{update}");
    // A probe would have gone to bob's actor in the step b2 saw; that actor answers this ping
    // to bob's account after it, and after sending a2 its presence.
    ok(a2.sync_via(&bare("bob")).await);
    ok(a2
        .expect_none_yet("bob's presence again", |el| {
            is_presence_from(el, &full("bob", "b2"), "available")
        })
        .await);
}

/// RFC 6121 §4.3.1-§4.3.2: the first available resource's probes go out from the bare JID
/// (so that the answers pass the user's actor, where the PEP service learns who is online,
/// XEP-0163 §4.3.3); a second resource's go out from its full JID, so it gets the contact's
/// presence and the first resource does not get it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_resource_is_probed_for_alone_rfc6121_4_3() {
    let server = TestServer::start(|_| {});
    befriend(&server, "alice", "bob").await;
    let mut b = login(&server, "bob", "b").await;
    b.available().await;
    ok(b.sync().await);
    let mut a1 = login(&server, "alice", "a1").await;
    a1.available().await;
    ok(a1
        .expect_presence_from(&full("bob", "b"), "available")
        .await);
    let mut a2 = login(&server, "alice", "a2").await;
    a2.available().await;
    ok(a2
        .expect_presence_from(&full("bob", "b"), "available")
        .await);
    // The answer to a bare-JID probe would have reached a1 along with a2's; bob's actor
    // answers this ping after such a probe.
    a1.clear_stash();
    ok(a1.sync_via(&bare("bob")).await);
    ok(a1
        .expect_none_yet("bob's presence again", |el| {
            is_presence_from(el, &full("bob", "b"), "available")
        })
        .await);
}

/// RFC 6121 §4.2.2: a resource's initial presence goes to the user's other available
/// resources, and (as the spec has it, RFC 6121 being silent) the newly available resource is
/// told the presence of the user's other available resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_resources_exchange_presence_rfc6121_4_2_2() {
    let server = TestServer::start(|_| {});
    let mut a1 = login(&server, "alice", "a1").await;
    a1.available().await;
    ok(a1.sync().await);
    let mut a2 = login(&server, "alice", "a2").await;
    a2.available().await;
    ok(a1
        .expect_presence_from(&full("alice", "a2"), "available")
        .await);
    ok(a2
        .expect_presence_from(&full("alice", "a1"), "available")
        .await);
}

/// RFC 6121 §4.2.2: "The user's server MUST also broadcast initial presence from the user's
/// newly available resource to all of the user's available resources, including the resource
/// that generated the presence notification in the first place (i.e., an entity is implicitly
/// subscribed to its own presence)." — the sender gets its own initial presence back, alone or
/// beside another resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_presence_is_echoed_to_its_sender_rfc6121_4_2_2() {
    let server = TestServer::start(|_| {});
    let mut a1 = login(&server, "alice", "a1").await;
    a1.available().await;
    let mut a2 = login(&server, "alice", "a2").await;
    a2.available().await;
    let (a1_full, a2_full) = (full("alice", "a1"), full("alice", "a2"));
    let (r1, r2) = tokio::join!(
        a1.expect_presence_from(&a1_full, "available"),
        a2.expect_presence_from(&a2_full, "available"),
    );
    let failures: Vec<String> = [("a1", r1), ("a2", r2)]
        .into_iter()
        .filter_map(|(res, r)| r.err().map(|e| format!("alice/{res}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// RFC 6121 §3.1.3: a subscription request from a user the contact already lets see its
/// presence (`from`/`both` on the contact's side) is answered by the contact's server with
/// subscribed, without bothering the contact; the answer completes the user's pending request
/// (§3.1.6). With `both` on both sides, a repeated request changes nothing and reaches no one
/// (Appendix A.2.1, A.3.1). §3.1.6 (with §3.4: pre-approval is not advertised): a subscribed
/// that answers no pending request is ignored on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_subscription_stanzas_rfc6121_3_1_3_3_1_6() {
    let server = TestServer::start(|_| {});
    // Out of sync, as after a lost roster: bob lets alice see him, alice's roster is empty.
    server.put_roster(
        "bob",
        &[StoredItem {
            jid: bare("alice"),
            name: None,
            subscription: Subscription::From,
            ask: false,
            groups: vec![],
        }],
    );
    let mut b = online(&server, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    let mut a = online(&server, "alice", "a").await;

    a.subscribe(&bare("bob")).await;
    let item = expect_push_state(&mut a, &bare("bob"), "to").await;
    assert_eq!(item.ask, None, "{item:?}");
    ok(a.expect_presence_from(&bare("bob"), "subscribed").await);
    // Bob's actor answered in the step that would have shown b the request.
    ok(
        b.expect_none_before_user_sync("alice's request", |el| presence_type(el) == "subscribe")
            .await,
    );
    let roster = ok(b.roster().await);
    assert_eq!(
        roster.item(&bare("alice")).map(|i| i.subscription.as_str()),
        Some("from"),
        "{roster:?}"
    );

    // Mutual, then the same request again.
    b.subscribe(&bare("alice")).await;
    ok(a.expect_presence_from(&bare("bob"), "subscribe").await);
    a.approve(&bare("bob")).await;
    expect_push_state(&mut a, &bare("bob"), "both").await;
    expect_push_state(&mut b, &bare("alice"), "both").await;
    b.clear_stash();
    a.subscribe(&bare("bob")).await;
    // Alice's actor has handed the request on (or dropped it) when it answers her, and bob's
    // actor then answers b after handling it.
    ok(a.sync_user().await);
    ok(
        b.expect_none_before_user_sync("alice's request", |el| presence_type(el) == "subscribe")
            .await,
    );
    let roster = ok(a.roster().await);
    let item = roster.item(&bare("bob")).expect("bob");
    assert_eq!(
        (item.subscription.as_str(), item.ask.as_deref()),
        ("both", None)
    );

    // carol approves a request alice never made.
    carol.approve(&bare("alice")).await;
    // Carol's actor has handed the approval on when it answers her; alice's then answers a
    // after handling it.
    ok(carol.sync_user().await);
    ok(
        a.expect_none_before_user_sync("carol's unsolicited subscribed", |el| {
            el.attr("from").is_some_and(|f| f.starts_with("carol@"))
                || is_push_for(el, &bare("carol"))
        })
        .await,
    );
    ok(carol
        .expect_none_yet("a push", |el| is_push_for(el, &bare("alice")))
        .await);
    let roster = ok(a.roster().await);
    assert_eq!(roster.item(&bare("carol")), None, "{roster:?}");
}

/// RFC 6121 §3.1.3: a subscription request to a contact with no available resource is kept
/// and delivered when the contact next sends initial presence — not before, also across a
/// server restart (the request is persisted) — and no longer once it has been answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_subscription_delivered_at_next_login_rfc6121_3_1_3() {
    let server = TestServer::start(|_| {});
    // bob has been online before, so his user actor may still be around without resources.
    let mut b0 = online(&server, "bob", "b0").await;
    hang_up(&mut b0).await;

    let mut a = online(&server, "alice", "a").await;
    a.subscribe(&bare("bob")).await;
    let item = expect_push_state(&mut a, &bare("bob"), "none").await;
    assert_eq!(item.ask.as_deref(), Some("subscribe"));
    hang_up(&mut a).await;

    // The request reaches bob's actor after alice's push; wait until it is on disk, so that
    // the restart tests persistence and not a race with the write.
    poll_until(
        "RFC 6121 §3.1.3: the request for offline bob stored",
        Duration::from_secs(10),
        || {
            let pending = server
                .with_storage(|s| async move { s.pending_in("bob", "localhost").await })
                .expect("pending_in");
            (!pending.is_empty()).then_some(())
        },
    );
    let server = server.restart();
    let mut b = login(&server, "bob", "b").await;
    // The roster get went through bob's actor after the session attached: a request shown
    // before initial presence would have come first.
    ok(b.roster().await);
    ok(
        b.expect_none_yet("the request before initial presence", |el| {
            presence_type(el) == "subscribe"
        })
        .await,
    );
    b.available().await;
    let req = ok(b.expect_presence_from(&bare("alice"), "subscribe").await);
    assert_eq!(req.attr("from"), Some(bare("alice").as_str()));

    let mut a = online(&server, "alice", "a").await;
    b.approve(&bare("alice")).await;
    expect_push_state(&mut a, &bare("bob"), "to").await;
    ok(a.expect_presence_from(&bare("bob"), "subscribed").await);
    hang_up(&mut b).await;

    // Answered: not delivered again.
    let mut b2 = login(&server, "bob", "b2").await;
    b2.available().await;
    ok(b2
        .expect_none_before_user_sync("the answered request", |el| {
            presence_type(el) == "subscribe"
        })
        .await);
}

/// RFC 6121 §3.1.3 with a shutdown in the middle: a subscription request that is still being
/// written when the server is told to stop is not lost (shutdown waits for the user actors'
/// storage work before the worker threads stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_subscription_survives_an_immediate_restart_rfc6121_3_1_3() {
    let server = TestServer::start(|_| {});
    let mut a = online(&server, "alice", "a").await;
    a.subscribe(&bare("bob")).await;
    expect_push_state(&mut a, &bare("bob"), "none").await;
    hang_up(&mut a).await;
    // No waiting for the write: stop at once.
    let server = server.restart();
    let mut b = login(&server, "bob", "b").await;
    b.available().await;
    let req = ok(b.expect_presence_from(&bare("alice"), "subscribe").await);
    assert_eq!(req.attr("from"), Some(bare("alice").as_str()));
}

/// RFC 6121 §4.5.2 (a session that ends without unavailable presence: the server broadcasts
/// it on the user's behalf) and RFC 6120 §4.4 (a stream that dies without a close): dropping
/// the TCP connection, with a FIN or with a reset, sends unavailable presence from the gone
/// resource to the contacts and to the user's other available resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnect_broadcasts_unavailable_rfc6121_4_5_2() {
    let server = TestServer::start(|_| {});
    befriend(&server, "alice", "bob").await;
    let mut b = online(&server, "bob", "b").await;
    let a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    ok(b.expect_presence_from(&full("alice", "a1"), "available")
        .await);
    ok(b.expect_presence_from(&full("alice", "a2"), "available")
        .await);

    // FIN, no </stream:stream>.
    drop(a1);
    ok(b.expect_presence_from(&full("alice", "a1"), "unavailable")
        .await);
    ok(a2
        .expect_presence_from(&full("alice", "a1"), "unavailable")
        .await);

    // RST.
    let a3 = online(&server, "alice", "a3").await;
    ok(b.expect_presence_from(&full("alice", "a3"), "available")
        .await);
    ok(a2
        .expect_presence_from(&full("alice", "a3"), "available")
        .await);
    a3.abort();
    ok(b.expect_presence_from(&full("alice", "a3"), "unavailable")
        .await);
    ok(a2
        .expect_presence_from(&full("alice", "a3"), "unavailable")
        .await);
}

/// RFC 6121 §4.6.2: directed presence to an entity without a subscription is delivered and
/// remembered; when the sender goes away — by disconnecting, or by broadcasting unavailable
/// presence — that entity gets unavailable presence too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directed_presence_gets_unavailable_on_disconnect_rfc6121_4_6() {
    let server = TestServer::start(|_| {});
    let mut carol = online(&server, "carol", "c").await;
    let mut a = online(&server, "alice", "a").await;
    a.send_presence_to(&full("carol", "c"), None).await;
    ok(carol
        .expect_presence_from(&full("alice", "a"), "available")
        .await);
    drop(a);
    ok(carol
        .expect_presence_from(&full("alice", "a"), "unavailable")
        .await);

    // Directed to the bare JID, then an explicit unavailable broadcast.
    let mut a2 = online(&server, "alice", "a2").await;
    a2.send_presence_to(&bare("carol"), None).await;
    ok(carol
        .expect_presence_from(&full("alice", "a2"), "available")
        .await);
    a2.send(&presence().with_attr("type", "unavailable")).await;
    ok(carol
        .expect_presence_from(&full("alice", "a2"), "unavailable")
        .await);
}

/// RFC 6121 §3.3 (the user unsubscribes from the contact's presence) and §3.2 (the user
/// cancels the contact's subscription to the user's presence), starting from `both`: each
/// step pushes the new state on both sides, delivers the stanza to the contact, and sends
/// unavailable presence to whoever stops receiving presence (§3.2.2, §3.3.3). Afterwards
/// presence updates no longer cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_unsubscribed_rfc6121_3_2_3_3() {
    let server = TestServer::start(|_| {});
    befriend(&server, "alice", "bob").await;
    let mut b = online(&server, "bob", "b").await;
    let mut a = online(&server, "alice", "a").await;
    ok(b.expect_presence_from(&full("alice", "a"), "available")
        .await);
    ok(a.expect_presence_from(&full("bob", "b"), "available").await);
    let (alice, bob) = (bare("alice"), bare("bob"));

    // §3.3: alice no longer wants bob's presence.
    a.send_presence_to(&bob, Some("unsubscribe")).await;
    expect_push_state(&mut a, &bob, "from").await;
    expect_push_state(&mut b, &alice, "to").await;
    ok(b.expect_presence_from(&alice, "unsubscribe").await);
    ok(a.expect_presence_from(&full("bob", "b"), "unavailable")
        .await);

    // §3.2: alice stops bob from receiving hers.
    a.send_presence_to(&bob, Some("unsubscribed")).await;
    expect_push_state(&mut a, &bob, "none").await;
    expect_push_state(&mut b, &alice, "none").await;
    ok(b.expect_presence_from(&alice, "unsubscribed").await);
    ok(b.expect_presence_from(&full("alice", "a"), "unavailable")
        .await);

    // No subscription left: updates stay home.
    a.send(&presence().with_child(Element::new("status", ns::CLIENT).with_text("away")))
        .await;
    b.send(&presence().with_child(Element::new("status", ns::CLIENT).with_text("busy")))
        .await;
    // Each actor has handled its user's update when it answers the roster get; the other
    // side's roster get comes after anything that update sent it.
    ok(a.sync_user().await);
    ok(b.sync_user().await);
    ok(a.sync_user().await);
    ok(b.expect_none_yet("alice's presence", |el| {
        el.attr("from").is_some_and(|f| f.starts_with(&alice))
    })
    .await);
    ok(a.expect_none_yet("bob's presence", |el| {
        el.attr("from").is_some_and(|f| f.starts_with(&bob))
    })
    .await);
    for (c, contact) in [(&mut a, &bob), (&mut b, &alice)] {
        let roster = ok(c.roster().await);
        let item = roster.item(contact).expect("item stays");
        assert_eq!(
            (item.subscription.as_str(), item.ask.as_deref()),
            ("none", None)
        );
    }
}

/// RFC 6121 §2.5.2: removing a contact with a `both` subscription pushes the removal and sends
/// the contact unsubscribe and unsubscribed, which cancel both directions on the contact's
/// side (its item ends at `none`, §3.2.3 / §3.3.3), with unavailable presence each way.
/// Removing a contact without a subscription sends it nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_remove_cancels_subscriptions_rfc6121_2_5_2() {
    let server = TestServer::start(|_| {});
    befriend(&server, "alice", "bob").await;
    let mut b = online(&server, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    let mut a = online(&server, "alice", "a").await;
    ok(
        a.roster_set_and_push(roster_item(&bare("carol"), None, &[]))
            .await,
    );
    ok(b.expect_presence_from(&full("alice", "a"), "available")
        .await);
    ok(a.expect_presence_from(&full("bob", "b"), "available").await);
    let (alice, bob) = (bare("alice"), bare("bob"));

    let reply = ok(a.roster_remove(&bob).await);
    assert_result(&reply);
    let item = expect_push_state(&mut a, &bob, "remove").await;
    assert_eq!(item.jid, bob);
    let got = ok(b
        .expect_each(
            "unsubscribe and unsubscribed from alice",
            vec![
                Box::new(|el: &Element| is_presence_from(el, &alice, "unsubscribe")),
                Box::new(|el: &Element| is_presence_from(el, &alice, "unsubscribed")),
            ],
        )
        .await);
    assert_eq!(got.len(), 2);
    expect_push_state(&mut b, &alice, "none").await;
    ok(b.expect_presence_from(&full("alice", "a"), "unavailable")
        .await);
    ok(a.expect_presence_from(&full("bob", "b"), "unavailable")
        .await);
    let roster = ok(a.roster().await);
    assert_eq!(roster.item(&bob), None);

    // Alice's actor answered in the step that would have sent carol something.
    assert_result(&ok(a.roster_remove(&bare("carol")).await));
    ok(carol
        .expect_none_before_user_sync("anything from alice", |el| {
            el.attr("from").is_some_and(|f| f.starts_with(&alice))
        })
        .await);
}

// ----- XEP-0160 / XEP-0203: offline messages ---------------------------------------------------

/// Checks a XEP-0203 delay: from the server's domain, stamp in RFC 3339 UTC (XEP-0082), not
/// in the future and not before `not_before` (unix seconds).
fn check_delay(msg: &Element, not_before: f64) {
    let delay = msg
        .get_child("delay", ns::DELAY)
        .unwrap_or_else(|| panic!("XEP-0160 §3: no XEP-0203 <delay/> on {msg}"));
    assert_eq!(delay.attr("from"), Some("localhost"), "{msg}");
    let stamp = delay.attr("stamp").expect("stamp");
    let t = parse_utc_stamp(stamp)
        .unwrap_or_else(|| panic!("XEP-0203 §4: stamp {stamp:?} is not XEP-0082 UTC"));
    let now = unix_now();
    assert!(
        t <= now + 0.001,
        "stamp {stamp} is in the future (now {now})"
    );
    // Stamps may be truncated to whole seconds.
    assert!(
        t >= not_before.floor() - 1.0,
        "stamp {stamp} predates the test"
    );
}

/// XEP-0160 §3 with RFC 6121 §8.5.2.2.1: chat and normal messages with a body for a user with
/// no available resource are stored and delivered, in order, after the next initial presence
/// (not before it), each with a XEP-0203 delay stamp; headlines and messages without a body
/// are not stored; and delivered messages are not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_in_order_with_delay_xep0160_xep0203() {
    let server = TestServer::start(|_| {});
    let started = unix_now();
    let mut a = login(&server, "alice", "a").await;
    let bob = bare("bob");
    a.send(&chat(&bob, "chat", "off-1")).await;
    a.send(&chat(&bob, "normal", "off-2")).await;
    a.send(&chat(&bob, "headline", "not stored: headline"))
        .await;
    a.send(
        &Element::new("message", ns::CLIENT)
            .with_attr("to", bob.as_str())
            .with_attr("type", "chat")
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            )),
    )
    .await;
    a.send(&chat(&bob, "chat", "off-3")).await;
    a.send(&chat(&full("bob", "nowhere"), "chat", "off-4"))
        .await;
    // Bob's actor answers this ping after handling (and, wrongly, bouncing) all of them.
    ok(a.sync_via(&bob).await);
    ok(
        a.expect_none_yet("a bounce", |el| el.attr("type") == Some("error"))
            .await,
    );

    let mut b = login(&server, "bob", "b").await;
    ok(
        b.expect_none_before_user_sync("messages before initial presence", |el| {
            el.name() == "message"
        })
        .await,
    );
    b.available().await;
    let mut got = Vec::new();
    while got.len() < 4 {
        let msg = ok(b
            .expect_match("an offline message", |el| el.name() == "message")
            .await);
        got.push(msg);
    }
    let bodies: Vec<_> = got.iter().map(body).collect();
    assert_eq!(bodies, ["off-1", "off-2", "off-3", "off-4"], "in order");
    for msg in &got {
        assert_eq!(msg.attr("from"), Some(full("alice", "a").as_str()), "{msg}");
        check_delay(msg, started);
    }
    // Stored messages go out in one step, before bob's actor answers this.
    ok(b.sync_user().await);
    let rest = ok(b.collect_within(Duration::ZERO).await);
    assert!(
        messages(&rest).is_empty(),
        "not stored, yet delivered: {rest:?}"
    );

    let mut b2 = login(&server, "bob", "b2").await;
    b2.available().await;
    ok(b2
        .expect_none_before_user_sync("a second delivery", |el| el.name() == "message")
        .await);
}

/// XEP-0160 §5 (storage limits) with RFC 6121 §8.5.2.2.1: past `[offline] max_per_user` the
/// sender gets service-unavailable and the message is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_cap_bounces_service_unavailable_xep0160() {
    let server = TestServer::start(|c| c.offline.max_per_user = 3);
    let mut a = login(&server, "alice", "a").await;
    for i in 1..=3 {
        a.send(&chat(&bare("bob"), "chat", &format!("kept-{i}")))
            .await;
    }
    ok(a.sync_via(&bare("bob")).await);
    ok(
        a.expect_none_yet("a bounce", |el| el.attr("type") == Some("error"))
            .await,
    );
    a.send(&chat(&bare("bob"), "chat", "over")).await;
    let bounce = ok(a
        .expect_match("the bounce", |el| el.is("message", ns::CLIENT))
        .await);
    assert_eq!(condition(&bounce), "service-unavailable", "{bounce}");
    assert_eq!(bounce.attr("from"), Some(bare("bob").as_str()), "{bounce}");

    let mut b = login(&server, "bob", "b").await;
    b.available().await;
    for i in 1..=3 {
        ok(b.expect_message_body(&format!("kept-{i}")).await);
    }
    ok(
        b.expect_none_before_ping("the refused message", |el| body(el) == "over")
            .await,
    );
}

// ----- XEP-0280: message carbons ---------------------------------------------------------------

fn private(mut msg: Element) -> Element {
    msg.push_child(Element::new("private", ns::CARBONS));
    msg.push_child(Element::new("no-copy", ns::HINTS));
    msg
}

/// Checks a carbon for `owner/res`: from the bare JID, to the resource, of `kind`, wrapping
/// the original with its from, to and body.
fn check_carbon(el: &Element, kind: &str, res: &str, from: &str, to: &str, text: &str) {
    assert_eq!(carbon_kind(el), Some(kind), "{el}");
    assert_eq!(
        el.attr("from"),
        Some(bare("alice").as_str()),
        "XEP-0280 §11: {el}"
    );
    assert_eq!(el.attr("to"), Some(full("alice", res).as_str()), "{el}");
    let inner = carbon_inner(el).unwrap_or_else(|| panic!("no forwarded message in {el}"));
    assert_eq!(inner.attr("from"), Some(from), "{el}");
    assert_eq!(inner.attr("to"), Some(to), "{el}");
    assert_eq!(body(inner), text, "{el}");
}

/// XEP-0280: the server advertises carbons (§3); with carbons enabled (§4, also addressed to
/// the own bare JID) on A and B, a chat to A is copied to B as `<received/>` (§6) and a chat
/// sent by A is copied to B as `<sent/>` (§7); a message to the bare JID that B receives
/// itself is not copied to it again; `<private/>` (§8) and headlines (§6: only chat, or
/// normal with a body) are not copied; a resource without carbons (C) never gets copies;
/// after disable (§5) B gets nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_carbons_xep0280() {
    let server = TestServer::start(|_| {});
    let mut a = online(&server, "alice", "A").await;
    let mut b = online(&server, "alice", "B").await;
    let mut c = online(&server, "alice", "C").await;
    let mut bob = online(&server, "bob", "bob").await;

    let info = ask(
        &mut a,
        &Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("disco"))
            .with_attr("to", "localhost")
            .with_child(Element::new("query", ns::DISCO_INFO)),
    )
    .await;
    assert!(
        info.get_child("query", ns::DISCO_INFO).is_some_and(|q| q
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some(ns::CARBONS))),
        "XEP-0280 §3: {info}"
    );
    assert_result(&ok(a.carbons(true).await));
    let mut enable = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("enable"))
        .with_attr("to", bare("alice"))
        .with_child(Element::new("enable", ns::CARBONS));
    assert_result(&ask(&mut b, &enable).await);

    let (a_full, bob_full) = (full("alice", "A"), full("bob", "bob"));
    // §6: received.
    bob.send(&chat(&a_full, "chat", "r1")).await;
    ok(a.expect_message_body("r1").await);
    let carbon = ok(b
        .expect_match("a received carbon", |el| carbon_kind(el).is_some())
        .await);
    check_carbon(&carbon, "received", "B", &bob_full, &a_full, "r1");
    // §7: sent.
    a.send(&chat(&bob_full, "chat", "s1")).await;
    ok(bob.expect_message_body("s1").await);
    let carbon = ok(b
        .expect_match("a sent carbon", |el| carbon_kind(el).is_some())
        .await);
    check_carbon(&carbon, "sent", "B", &a_full, &bob_full, "s1");

    // To the bare JID: A, B and C share priority 0, so each gets the original, and B no copy.
    bob.send(&chat(&bare("alice"), "chat", "to-all")).await;
    ok(a.expect_message_body("to-all").await);
    for client in [&mut b, &mut c] {
        let (_, before) = ok(client
            .expect_match_with_skipped("to-all", |el| body(el) == "to-all")
            .await);
        assert!(messages(&before).is_empty(), "{before:?}");
    }

    // §8: private; and a headline, which is not eligible.
    bob.send(&private(chat(&a_full, "chat", "p1"))).await;
    ok(a.expect_message_body("p1").await);
    a.send(&private(chat(&bob_full, "chat", "p2"))).await;
    ok(bob.expect_message_body("p2").await);
    bob.send(&chat(&a_full, "headline", "hl")).await;
    ok(a.expect_message_body("hl").await);
    // Copies come from alice's actor, asked by the session that took each message before
    // it was seen; B's roster get reaches that actor after those requests.
    ok(b.sync_user().await);
    let seen = ok(b.collect_within(Duration::ZERO).await);
    assert!(
        messages(&seen).is_empty(),
        "B got copies it should not: {seen:?}"
    );

    // §5: disable.
    enable = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("disable"))
        .with_child(Element::new("disable", ns::CARBONS));
    assert_result(&ask(&mut b, &enable).await);
    bob.send(&chat(&a_full, "chat", "r2")).await;
    ok(a.expect_message_body("r2").await);
    a.send(&chat(&bob_full, "chat", "s2")).await;
    ok(bob.expect_message_body("s2").await);
    ok(b.sync_user().await);
    let seen = ok(b.collect_within(Duration::ZERO).await);
    assert!(
        messages(&seen).is_empty(),
        "B got copies after disable: {seen:?}"
    );

    // C never enabled carbons: it only ever got the bare-JID message.
    ok(c.sync_user().await);
    let seen = ok(c.collect_within(Duration::ZERO).await);
    assert!(messages(&seen).is_empty(), "C got {seen:?}");
}

// ----- load: a presence flood must not stall others ------------------------------------------

/// RFC 6121 §4.2.2 and §4.3.2 at scale, and the user actor's isolation: user X with 1000
/// contacts (`both`; 200 online on real connections, 800 existing accounts that never log
/// in) sends initial presence, which fans out to 1000 contacts and probes 1000, then five
/// presence updates, each fanning out again. Every online contact gets X's presence and every
/// update in order, X gets every online contact's presence, and meanwhile an unrelated pair of
/// users keeps chatting through the bare-JID path with every message arriving well within
/// 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_flood_does_not_stall_other_users_rfc6121_4_2_2() {
    const CONTACTS: usize = 1000;
    const ONLINE: usize = 200;
    const BOUND: Duration = Duration::from_secs(2);
    const UPDATES: usize = 5;
    let server = TestServer::start(|c| c.roster.max_items = CONTACTS);
    let names: Vec<String> = (0..CONTACTS).map(|i| format!("c{i:04}")).collect();
    let x = "xavier".to_owned();
    let setup = Instant::now();
    let mut loginable: Vec<String> = names[..ONLINE].to_vec();
    loginable.push(x.clone());
    server.add_users(&loginable, "password");
    server.add_placeholder_users(&names[ONLINE..]);
    let both = |jid: String| StoredItem {
        jid,
        name: None,
        subscription: Subscription::Both,
        ask: false,
        groups: vec!["flood".to_owned()],
    };
    let x_items: Vec<StoredItem> = names.iter().map(|n| both(bare(n))).collect();
    server.put_roster(&x, &x_items);
    for n in &names[..ONLINE] {
        server.put_roster(n, &[both(bare(&x))]);
    }
    eprintln!("flood: provisioned in {:?}", setup.elapsed());

    // The online contacts log in and send initial presence (X is offline).
    let login_start = Instant::now();
    let mut contacts = Vec::with_capacity(ONLINE);
    for chunk in names[..ONLINE].chunks(10) {
        let mut set = tokio::task::JoinSet::new();
        for n in chunk {
            let addr = server.c2s();
            let n = n.clone();
            set.spawn(async move {
                let mut c = Client::login(addr, &n, Some("r")).await;
                c.available().await;
                c.sync().await.expect("sync");
                c
            });
        }
        while let Some(c) = set.join_next().await {
            contacts.push(c.expect("contact login"));
        }
    }
    eprintln!(
        "flood: {ONLINE} contacts online in {:?}",
        login_start.elapsed()
    );

    // The unrelated pair.
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    bob.available().await;
    ok(bob.sync().await);
    let epoch = Instant::now();
    // How many chat messages bob has had so far, for the steps below to wait on.
    let (got_tx, mut got) = tokio::sync::watch::channel(0usize);
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::new();
        loop {
            let el = bob.recv_element().await.expect("bob reads");
            if el.name() != "message" {
                continue;
            }
            let text = body(&el);
            if text == "stop" {
                return latencies;
            }
            let sent_us: u64 = text
                .split(':')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .expect("timed body");
            let now_us = epoch.elapsed().as_micros() as u64;
            latencies.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
            let _ = got_tx.send(latencies.len());
        }
    });

    // Each contact waits for X's initial presence and then each of X's updates, in order.
    let x_full = full(&x, "x");
    let mut waiters = tokio::task::JoinSet::new();
    for mut c in contacts {
        let x_full = x_full.clone();
        waiters.spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut rounds = Vec::new();
            while rounds.len() <= UPDATES {
                let left = deadline.saturating_duration_since(Instant::now());
                match c.recv_within(left).await.expect("contact reads") {
                    Some(Received::Element(el)) if is_presence_from(&el, &x_full, "available") => {
                        rounds.push(
                            el.get_child("status", ns::CLIENT)
                                .map(|s| s.text())
                                .unwrap_or_default(),
                        );
                    }
                    Some(Received::Element(_)) => {}
                    other => panic!(
                        "a contact waited for X's presence, had {rounds:?}, and got {other:?}"
                    ),
                }
            }
            (epoch.elapsed(), rounds, c)
        });
    }

    // Chat starts before the flood and goes on until it is over.
    let flood_done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&flood_done);
    let sender = tokio::spawn(async move {
        let mut n = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let stop_after = Duration::from_secs(120);
        loop {
            tick.tick().await;
            let t = epoch.elapsed();
            alice
                .send(&chat(
                    &bare("bob"),
                    "chat",
                    &format!("{n}:{}", t.as_micros()),
                ))
                .await;
            n += 1;
            if stop.load(Ordering::Acquire) || t > stop_after {
                alice.send(&chat(&bare("bob"), "chat", "stop")).await;
                return (n, alice);
            }
        }
    });
    // The chat is flowing before the flood starts.
    tokio::time::timeout(Duration::from_secs(10), got.wait_for(|n| *n >= 20))
        .await
        .expect("chat flowing within 10 s")
        .expect("receiver alive");

    let flood_start = epoch.elapsed();
    let mut xc = login(&server, &x, "x").await;
    xc.available().await;
    let mut x_seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while x_seen.len() < ONLINE {
        let left = deadline.saturating_duration_since(Instant::now());
        match xc.recv_within(left).await.expect("X reads") {
            Some(Received::Element(el))
                if el.name() == "presence" && presence_type(&el) == "available" =>
            {
                // X's own presence comes back too (RFC 6121 §4.2.2); count contacts only.
                if let Some(from) = el.attr("from").filter(|f| !f.starts_with(x.as_str())) {
                    x_seen.insert(from.to_owned());
                }
            }
            Some(Received::Element(_)) => {}
            other => panic!(
                "X got {} of {ONLINE} contacts' presence, then {other:?}",
                x_seen.len()
            ),
        }
    }
    let x_done = epoch.elapsed() - flood_start;
    // More fan-out: presence updates (RFC 6121 §4.4.2), each to all 1000 contacts.
    for round in 1..=UPDATES {
        xc.send(
            &presence()
                .with_child(Element::new("status", ns::CLIENT).with_text(format!("round-{round}"))),
        )
        .await;
    }
    let expected_rounds: Vec<String> = std::iter::once(String::new())
        .chain((1..=UPDATES).map(|r| format!("round-{r}")))
        .collect();
    let mut last_contact = Duration::ZERO;
    // The contacts stay connected until the end: their leaving would be more presence.
    let mut still_connected = Vec::with_capacity(ONLINE);
    while let Some(done) = waiters.join_next().await {
        let (at, rounds, client) = done.expect("a contact did not get X's presence within 60 s");
        assert_eq!(
            rounds, expected_rounds,
            "X's presence, then each update, in order"
        );
        last_contact = last_contact.max(at - flood_start);
        still_connected.push(client);
    }
    let reached = still_connected.len();
    // Keep chatting for a while after the flood, then stop.
    let after = *got.borrow() + 50;
    tokio::time::timeout(Duration::from_secs(10), got.wait_for(|n| *n >= after))
        .await
        .expect("chat still flowing after the flood")
        .expect("receiver alive");
    flood_done.store(true, Ordering::Release);
    let (sent, _alice) = sender.await.expect("sender");
    let mut latencies = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .expect("bob got the stop message")
        .expect("receiver");
    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    eprintln!(
        "flood: X got {} presences in {x_done:?}; {reached} contacts got X's presence and \
         {UPDATES} updates by {last_contact:?}; chat: {} of {sent} messages, p50 {p50:?}, \
         max {max:?}",
        x_seen.len(),
        latencies.len()
    );
    assert_eq!(reached, ONLINE, "every online contact got X's presence");
    assert_eq!(x_seen.len(), ONLINE, "every probe was answered");
    assert!(
        x_seen
            .iter()
            .all(|f| f.starts_with('c') && f.ends_with("@localhost/r")),
        "{x_seen:?}"
    );
    assert_eq!(
        latencies.len() as u32,
        sent,
        "every chat message arrived (sent {sent})"
    );
    assert!(
        max < BOUND,
        "a chat message took {max:?} during the presence flood (p50 {p50:?})"
    );
}

/// RFC 6120 §10.1 (in-order processing): a presence change and a message sent right after it
/// in one write reach the contact in that order, although the broadcast takes the longer road
/// (the sender's session, its user's actor, the contact's user's actor, the contact's
/// session) and the message goes straight to the contact's session. Twenty rounds, each a
/// new `<status/>` and a numbered message: each round's presence comes before its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_is_not_overtaken_by_the_next_stanza_rfc6120_10_1() {
    // TestServer has alice and bob already.
    let server = TestServer::start(|_| {});
    let both = |jid: String| StoredItem {
        jid,
        name: None,
        subscription: Subscription::Both,
        ask: false,
        groups: vec![],
    };
    server.put_roster("alice", &[both(bare("bob"))]);
    server.put_roster("bob", &[both(bare("alice"))]);
    let mut bob = online(&server, "bob", "b").await;
    let mut alice = online(&server, "alice", "a").await;
    let from_alice = full("alice", "a");
    ok(bob
        .expect_match("alice's initial presence", |el| {
            is_presence_from(el, &from_alice, "available")
        })
        .await);
    for round in 0..20 {
        let status = Element::new("presence", ns::CLIENT)
            .with_child(Element::new("status", ns::CLIENT).with_text(format!("s{round}")));
        let message = chat(&full("bob", "b"), "chat", &format!("m{round}"));
        let mut both_at_once = status.to_bytes_in(Some(ns::CLIENT));
        both_at_once.extend(message.to_bytes_in(Some(ns::CLIENT)));
        alice.send_raw(&both_at_once).await.expect("write");
        // The first of the two that bob gets must be the presence.
        let first = ok(bob
            .expect_match("round's presence or message", |el| {
                el.attr("from") == Some(from_alice.as_str())
                    && (el.name() == "message" || el.name() == "presence")
            })
            .await);
        assert_eq!(
            first.name(),
            "presence",
            "round {round}: the message overtook the presence before it: {first}"
        );
        assert_eq!(
            first
                .get_child("status", ns::CLIENT)
                .map(|s| s.text())
                .as_deref(),
            Some(format!("s{round}").as_str())
        );
        let second = ok(bob
            .expect_match("round's message", |el| el.name() == "message")
            .await);
        assert_eq!(body(&second), format!("m{round}"));
    }
}
