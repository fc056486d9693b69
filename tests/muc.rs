//! Multi-user chat (XEP-0045) in raw XML against a real server: each test names the
//! section whose rule it checks. Joining and creating, the status codes of every
//! presence, groupchat with stanza and occupant ids, history, private messages,
//! invitations, roles and affiliations, configuration, the room archive, self-ping and
//! discovery. The operator's side and the limits are in `muc_ops.rs`.

#[path = "muc/common.rs"]
mod common;
use common::*;

/// §10.1.1–§10.1.2 and §7.2.3: a join creates a locked room (201), which others cannot
/// enter until the owner accepts a configuration; then presences flow both ways with their
/// roles, the newcomer's own last with 110, and the empty subject ends the join (§7.2.15).
#[actix_rt::test]
async fn xep0045_10_1_a_join_creates_a_locked_room_until_configured() {
    let server = TestServer::start(|_| {});
    let r = room("lobby");
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let me = join(&mut alice, &r, "Alice").await;
    let c = codes(&me);
    assert!(c.contains(&110) && c.contains(&201), "{me}");
    let it = item(&me).unwrap();
    assert_eq!(
        (it.attr("affiliation"), it.attr("role")),
        (Some("owner"), Some("moderator"))
    );
    assert!(
        me.has_child("occupant-id", "urn:xmpp:occupant-id:0"),
        "XEP-0421: {me}"
    );
    alice
        .expect_match("the empty subject", |el| {
            el.name() == "message"
                && el
                    .get_child("subject", CLIENT)
                    .is_some_and(|s| s.text().is_empty())
        })
        .await
        .unwrap();

    bob.send(&join_presence(&r, "Bob")).await;
    assert_eq!(
        join_error(&mut bob, &r, "Bob").await,
        "item-not-found",
        "§10.1.2: locked"
    );

    instant(&mut alice, &r).await;
    let me = join(&mut bob, &r, "Bob").await;
    let it = item(&me).unwrap();
    assert_eq!(
        (it.attr("affiliation"), it.attr("role")),
        (Some("none"), Some("participant"))
    );
    assert!(!codes(&me).contains(&201));
    // §7.2.3: Bob got Alice's presence before his own (it was stashed on the way).
    assert!(bob
        .stashed()
        .any(|el| el.name() == "presence" && el.attr("from") == Some(&format!("{r}/Alice"))));
    // §7.2.4: semi-anonymous, so Bob (a participant) does not see Alice's JID; Alice, a
    // moderator, sees Bob's.
    let bob_seen = alice
        .expect_presence_from(&format!("{r}/Bob"), "available")
        .await
        .unwrap();
    assert_eq!(
        item(&bob_seen).and_then(|i| i.attr("jid")),
        Some("bob@localhost/b")
    );
    let alice_seen = bob
        .stashed()
        .find(|el| el.attr("from") == Some(&format!("{r}/Alice")))
        .cloned()
        .unwrap();
    assert_eq!(
        item(&alice_seen).and_then(|i| i.attr("jid")),
        None,
        "{alice_seen}"
    );
}

/// §7.4, XEP-0359, XEP-0421: a groupchat message reaches every occupant (its sender too)
/// from the sender's occupant JID, with the room's stanza-id and the sender's occupant-id;
/// an occupant-id the sender forged is removed. §7.2.9: a nick in use is a conflict.
#[actix_rt::test]
async fn xep0045_7_4_groupchat_is_relayed_with_the_rooms_ids() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "ids").await;
    join(&mut bob, &r, "Bob").await;

    let mut forged = groupchat(&r, "hello");
    forged.push_child(
        Element::new("occupant-id", "urn:xmpp:occupant-id:0").with_attr("id", "forged"),
    );
    bob.send(&forged).await;
    let at_alice = groupchat_from(&mut alice, &format!("{r}/Bob"), "hello").await;
    let at_bob = groupchat_from(&mut bob, &format!("{r}/Bob"), "hello").await;
    let sid = |el: &Element| {
        el.children()
            .find(|c| c.is("stanza-id", "urn:xmpp:sid:0") && c.attr("by") == Some(r.as_str()))
            .and_then(|c| c.attr("id"))
            .map(str::to_owned)
    };
    assert!(sid(&at_alice).is_some(), "{at_alice}");
    assert_eq!(sid(&at_alice), sid(&at_bob), "one id for every copy");
    let oids: Vec<_> = at_alice
        .children()
        .filter(|c| c.name() == "occupant-id")
        .map(|c| c.attr("id").unwrap().to_owned())
        .collect();
    assert_eq!(oids.len(), 1, "{at_alice}");
    assert_ne!(oids[0], "forged");

    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    carol.send(&join_presence(&r, "Bob")).await;
    assert_eq!(
        join_error(&mut carol, &r, "Bob").await,
        "conflict",
        "§7.2.9"
    );
    // §7.4: a non-occupant may not speak.
    carol.send(&groupchat(&r, "intruder")).await;
    let err = carol
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(error_condition(&err).as_deref(), Some("not-acceptable"));
}

/// §7.6 nick change (303 with the new nick, then presence under it), §7.14 leaving (110 to
/// the leaver, unavailable to the others), and §7.5 private messages between occupants.
#[actix_rt::test]
async fn xep0045_7_6_nick_changes_private_messages_and_leaving() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "nicks").await;
    join(&mut bob, &r, "Bob").await;
    alice
        .expect_presence_from(&format!("{r}/Bob"), "available")
        .await
        .unwrap();

    bob.send(&Element::new("presence", CLIENT).with_attr("to", format!("{r}/Robert")))
        .await;
    let gone = alice
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&gone).contains(&303), "{gone}");
    assert_eq!(item(&gone).and_then(|i| i.attr("nick")), Some("Robert"));
    alice
        .expect_presence_from(&format!("{r}/Robert"), "available")
        .await
        .unwrap();
    let own = bob
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&own).contains(&110) && codes(&own).contains(&303));
    self_presence(&mut bob, &r, "Robert").await;

    // §7.5: a private message, from the sender's occupant JID.
    alice
        .send(
            &Element::new("message", CLIENT)
                .with_attr("to", format!("{r}/Robert"))
                .with_attr("type", "chat")
                .with_child(Element::new("body", CLIENT).with_text("psst")),
        )
        .await;
    let pm = bob.expect_message_body("psst").await.unwrap();
    assert_eq!(pm.attr("from"), Some(format!("{r}/Alice").as_str()));
    assert!(pm.has_child("x", USER));
    // groupchat to one occupant is a bad request.
    alice
        .send(&groupchat(&format!("{r}/Robert"), "wrong"))
        .await;
    let err = alice
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(error_condition(&err).as_deref(), Some("bad-request"));

    bob.send(
        &Element::new("presence", CLIENT)
            .with_attr("to", format!("{r}/Robert"))
            .with_attr("type", "unavailable"),
    )
    .await;
    let left = bob
        .expect_presence_from(&format!("{r}/Robert"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&left).contains(&110), "§7.14: {left}");
    alice
        .expect_presence_from(&format!("{r}/Robert"), "unavailable")
        .await
        .unwrap();
}

/// §8.2 kick (307, with actor and reason), §9.1 ban (301, then the banned user cannot
/// enter: §7.2.8 forbidden), and §8.2: a participant may not kick.
#[actix_rt::test]
async fn xep0045_8_2_kick_and_9_1_ban() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    let r = open_room(&mut alice, "discipline").await;
    join(&mut bob, &r, "Bob").await;
    join(&mut carol, &r, "Carol").await;

    // A participant cannot kick.
    let reply = carol
        .iq(&admin_set(
            &r,
            Element::new("item", ADMIN)
                .with_attr("nick", "Bob")
                .with_attr("role", "none"),
        ))
        .await
        .unwrap();
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("not-allowed"),
        "{reply}"
    );

    let kick = Element::new("item", ADMIN)
        .with_attr("nick", "Bob")
        .with_attr("role", "none")
        .with_child(Element::new("reason", ADMIN).with_text("calm down"));
    let reply = alice.iq(&admin_set(&r, kick)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let out = bob
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    let c = codes(&out);
    assert!(c.contains(&307) && c.contains(&110), "{out}");
    let it = item(&out).unwrap();
    assert_eq!(
        it.get_child("actor", USER).and_then(|a| a.attr("nick")),
        Some("Alice")
    );
    assert_eq!(
        it.get_child("reason", USER).map(Element::text).as_deref(),
        Some("calm down")
    );
    let seen = carol
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&seen).contains(&307));

    let ban = Element::new("item", ADMIN)
        .with_attr("jid", "carol@localhost")
        .with_attr("affiliation", "outcast");
    let reply = alice.iq(&admin_set(&r, ban)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let out = carol
        .expect_presence_from(&format!("{r}/Carol"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&out).contains(&301), "{out}");
    assert_eq!(
        item(&out).and_then(|i| i.attr("affiliation")),
        Some("outcast")
    );
    carol.send(&join_presence(&r, "Carol")).await;
    assert_eq!(
        join_error(&mut carol, &r, "Carol").await,
        "forbidden",
        "§7.2.8"
    );

    // §9.5: the ban list.
    let list = Element::new("iq", CLIENT)
        .with_attr("type", "get")
        .with_attr("id", next_id("list"))
        .with_attr("to", r.as_str())
        .with_child(
            Element::new("query", ADMIN)
                .with_child(Element::new("item", ADMIN).with_attr("affiliation", "outcast")),
        );
    let reply = alice.iq(&list).await.unwrap();
    let jids: Vec<_> = reply
        .get_child("query", ADMIN)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid"))
        .collect();
    assert_eq!(jids, ["carol@localhost"]);
}

/// §7.2.6 password-protected and §7.2.7 members-only rooms, §10.2 the configuration that
/// makes them (with status 104 to occupants), and §7.8.2: an owner's invitation into a
/// members-only room makes the invitee a member, carrying the password.
#[actix_rt::test]
async fn xep0045_7_2_6_passwords_members_only_and_invitations() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "club").await;
    let reply = configure(
        &mut alice,
        &r,
        &[
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "sesame"),
        ],
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let note = alice
        .expect_match("status 104", |el| {
            el.name() == "message" && codes(el).contains(&104)
        })
        .await
        .unwrap();
    assert_eq!(note.attr("from"), Some(r.as_str()));

    bob.available().await;
    bob.send(&join_presence(&r, "Bob")).await;
    assert_eq!(
        join_error(&mut bob, &r, "Bob").await,
        "registration-required",
        "§7.2.7"
    );

    let invite = Element::new("message", CLIENT)
        .with_attr("to", r.as_str())
        .with_child(
            Element::new("x", USER).with_child(
                Element::new("invite", USER)
                    .with_attr("to", "bob@localhost")
                    .with_child(Element::new("reason", USER).with_text("join us")),
            ),
        );
    alice.send(&invite).await;
    let got = bob
        .expect_match("an invitation", |el| {
            el.name() == "message"
                && el
                    .get_child("x", USER)
                    .is_some_and(|x| x.get_child("invite", USER).is_some())
        })
        .await
        .unwrap();
    let x = got.get_child("x", USER).unwrap();
    assert_eq!(got.attr("from"), Some(r.as_str()));
    assert_eq!(
        x.get_child("invite", USER).unwrap().attr("from"),
        Some("alice@localhost")
    );
    assert_eq!(
        x.get_child("password", USER).map(Element::text).as_deref(),
        Some("sesame")
    );

    bob.send(&join_presence(&r, "Bob")).await;
    assert_eq!(
        join_error(&mut bob, &r, "Bob").await,
        "not-authorized",
        "§7.2.6: no password"
    );
    let mut with_password = join_presence(&r, "Bob");
    with_password
        .get_child_mut("x", MUC)
        .unwrap()
        .push_child(Element::new("password", MUC).with_text("sesame"));
    bob.send(&with_password).await;
    let me = self_presence(&mut bob, &r, "Bob").await;
    assert_eq!(
        item(&me).and_then(|i| i.attr("affiliation")),
        Some("member")
    );
}

/// §7.2.14: discussion history on join, newest last, delayed from the room, cut by
/// `maxstanzas`; XEP-0313 (MUC): the room archive returns the messages from the room's JID.
#[actix_rt::test]
async fn xep0045_7_2_14_history_and_the_room_archive() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let r = open_room(&mut alice, "history").await;
    for i in 0..5 {
        alice.send(&groupchat(&r, &format!("m{i}"))).await;
        groupchat_from(&mut alice, &format!("{r}/Alice"), &format!("m{i}")).await;
    }
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut p = join_presence(&r, "Bob");
    p.get_child_mut("x", MUC)
        .unwrap()
        .push_child(Element::new("history", MUC).with_attr("maxstanzas", "2"));
    bob.send(&p).await;
    self_presence(&mut bob, &r, "Bob").await;
    let subject = bob
        .expect_match("the subject", |el| {
            el.name() == "message" && el.has_child("subject", CLIENT)
        })
        .await
        .unwrap();
    assert_eq!(subject.attr("from"), Some(r.as_str()));
    let history: Vec<_> = bob
        .stashed()
        .filter(|el| el.name() == "message" && el.has_child("body", CLIENT))
        .cloned()
        .collect();
    let bodies: Vec<_> = history.iter().map(body).collect();
    assert_eq!(bodies, ["m3", "m4"], "§7.2.14");
    assert!(history.iter().all(|m| m
        .get_child("delay", "urn:xmpp:delay")
        .and_then(|d| d.attr("from"))
        == Some(r.as_str())));

    // The archive writer batches: the query may run before the last batch commits, so it
    // is asked until all five are there (an event: the writer's commit), at most TIMEOUT.
    let query = async {
        loop {
            let qid = next_id("q");
            let q = Element::new("iq", CLIENT)
                .with_attr("type", "set")
                .with_attr("id", next_id("mam"))
                .with_attr("to", r.as_str())
                .with_child(
                    Element::new("query", "urn:xmpp:mam:2").with_attr("queryid", qid.clone()),
                );
            let (reply, before) = bob.iq_collect(&q).await.unwrap();
            assert_eq!(reply.attr("type"), Some("result"), "{reply}");
            let found: Vec<Element> = before
                .into_iter()
                .filter(|el| {
                    el.get_child("result", "urn:xmpp:mam:2")
                        .and_then(|x| x.attr("queryid"))
                        == Some(qid.as_str())
                })
                .collect();
            if found.len() == 5 {
                return found;
            }
        }
    };
    let found = tokio::time::timeout(parley_testkit::TIMEOUT, query)
        .await
        .expect("the room archive holds the five messages");
    assert!(found.iter().all(|m| m.attr("from") == Some(r.as_str())));
}

/// XEP-0410: a ping to one's own occupant JID is answered by the room while joined, and
/// with not-acceptable once the occupant is gone; §6.4 the room's disco#info features,
/// §6.3 the service lists public rooms.
#[actix_rt::test]
async fn xep0410_self_ping_and_xep0045_6_discovery() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let r = open_room(&mut alice, "pingable").await;
    let ping = |to: String| {
        Element::new("iq", CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("ping"))
            .with_attr("to", to)
            .with_child(Element::new("ping", "urn:xmpp:ping"))
    };
    let reply = alice.iq(&ping(format!("{r}/Alice"))).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let reply = bob.iq(&ping(format!("{r}/Alice"))).await.unwrap();
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("not-acceptable"),
        "{reply}"
    );

    let info = Element::new("iq", CLIENT)
        .with_attr("type", "get")
        .with_attr("id", next_id("info"))
        .with_attr("to", r.as_str())
        .with_child(Element::new(
            "query",
            "http://jabber.org/protocol/disco#info",
        ));
    let reply = bob.iq(&info).await.unwrap();
    let features: Vec<_> = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var"))
        .map(str::to_owned)
        .collect();
    for f in [
        MUC,
        "muc_public",
        "muc_temporary",
        "muc_semianonymous",
        "urn:xmpp:occupant-id:0",
        "urn:xmpp:mam:2",
    ] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
    let items = Element::new("iq", CLIENT)
        .with_attr("type", "get")
        .with_attr("id", next_id("items"))
        .with_attr("to", SERVICE)
        .with_child(Element::new(
            "query",
            "http://jabber.org/protocol/disco#items",
        ));
    let reply = bob.iq(&items).await.unwrap();
    let rooms: Vec<_> = reply
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid"))
        .map(str::to_owned)
        .collect();
    assert!(rooms.contains(&r), "{rooms:?}");
}

/// Joining under one nick from two resources, as Prosody allows: both get the room's
/// traffic; the occupant stays while one of them remains.
#[actix_rt::test]
async fn xep0045_one_nick_from_two_resources() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut phone = Client::login(server.c2s(), "bob", Some("phone")).await;
    let mut laptop = Client::login(server.c2s(), "bob", Some("laptop")).await;
    let r = open_room(&mut alice, "multi").await;
    join(&mut phone, &r, "Bob").await;
    join(&mut laptop, &r, "Bob").await;
    alice.send(&groupchat(&r, "both?")).await;
    groupchat_from(&mut phone, &format!("{r}/Alice"), "both?").await;
    groupchat_from(&mut laptop, &format!("{r}/Alice"), "both?").await;
    phone
        .send(
            &Element::new("presence", CLIENT)
                .with_attr("to", format!("{r}/Bob"))
                .with_attr("type", "unavailable"),
        )
        .await;
    phone
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    alice.send(&groupchat(&r, "still there?")).await;
    groupchat_from(&mut laptop, &format!("{r}/Alice"), "still there?").await;
    // The phone left: it gets nothing more (the laptop's copy above came after it would).
    phone.sync().await.unwrap();
    phone
        .expect_none_yet("no groupchat after leaving", |el| {
            body(el) == "still there?"
        })
        .await
        .unwrap();
}

/// Limits: a room's occupant cap (§7.2.10 service-unavailable) and the per-occupant
/// §10.9: the owner destroys the room; occupants get unavailable with `<destroy/>` and
/// The operator's surface: `/api/v1/rooms` lists rooms with their occupants and shows one
/// room (real JIDs included), `parley room kick` kicks through it (§8.2: status 307),
/// `DELETE` destroys a room (§10.9), unknown rooms are 404, and `/metrics` counts rooms,
/// RFC 6121 §4.6.3 through the room: a client that disconnects without leaving is removed
/// (its server sends the room unavailable presence for the directed presence it had sent),
/// and the others see it go.
#[actix_rt::test]
async fn xep0045_a_disconnected_occupant_leaves() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let r = open_room(&mut alice, "drops").await;
    join(&mut bob, &r, "Bob").await;
    drop(bob);
    alice
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
}

/// Hostile input: a nick over the resourcepart bound (RFC 7622 §3.4) cannot even be
/// addressed, an admin query with more items than allowed is a bad request, and a
/// configuration form with an out-of-range value is refused whole (§10.2) — the room
/// XEP-0249 §2: a direct invitation is a message from one user to another carrying the
/// room's JID (and password); the server passes it through unchanged.
#[actix_rt::test]
async fn xep0249_direct_invitations_pass_through() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let r = open_room(&mut alice, "direct").await;
    alice
        .send(
            &Element::new("message", CLIENT)
                .with_attr("to", "bob@localhost")
                .with_child(
                    Element::new("x", "jabber:x:conference")
                        .with_attr("jid", r.as_str())
                        .with_attr("password", "pw")
                        .with_attr("reason", "come"),
                ),
        )
        .await;
    let got = bob
        .expect_match("a direct invitation", |el| {
            el.name() == "message" && el.has_child("x", "jabber:x:conference")
        })
        .await
        .unwrap();
    let x = got.get_child("x", "jabber:x:conference").unwrap();
    assert_eq!(x.attr("jid"), Some(r.as_str()));
    assert_eq!(x.attr("password"), Some("pw"));
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
}

/// RFC 6120 §10.1 through a room: a join and the messages sent right behind it (without
/// waiting for the self-presence) are handled in order, so the first message is relayed
/// and never refused as coming from a non-occupant — for an existing room and for one the
/// join creates.
#[actix_rt::test]
async fn rfc6120_10_1_a_join_and_the_messages_behind_it_stay_in_order() {
    let server = TestServer::start(|c| c.muc.lock_new_rooms = false);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let existing = open_room(&mut alice, "ordered").await;
    for (i, r) in [existing.clone(), room("fresh")].into_iter().enumerate() {
        let text = format!("right behind the join {i}");
        bob.send(&join_presence(&r, "Bob")).await;
        bob.send(&groupchat(&r, &text)).await;
        groupchat_from(&mut bob, &format!("{r}/Bob"), &text).await;
        assert!(
            !bob.stashed().any(|el| el.attr("type") == Some("error")),
            "{:?}",
            bob.stashed().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
}
