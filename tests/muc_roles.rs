//! Multi-user chat (XEP-0045) roles in raw XML against a real server: voice in a moderated
//! room (§8.3–§8.4) and voice requests (§7.13, §8.6), subject rights (§8.1), anonymity
//! changes (§10.2.1), and removals from members-only rooms (§9.4: 321, 322).

#[path = "muc/common.rs"]
mod common;
use common::*;

/// §8.3–§8.4 and §10.2 (moderated room): a visitor cannot speak (`forbidden`) until a
/// moderator grants voice, and loses it again when revoked; §8.1: only a moderator changes
/// the subject unless the room allows it, and everyone gets the new subject; §4.1 / status
/// 100 and 172: a room made non-anonymous says so, and shows real JIDs to everyone.
#[actix_rt::test]
async fn xep0045_8_3_voice_in_a_moderated_room_subject_and_anonymity() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "moderated").await;
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_moderatedroom", "1")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let me = join(&mut bob, &r, "Bob").await;
    assert_eq!(
        item(&me).and_then(|i| i.attr("role")),
        Some("visitor"),
        "{me}"
    );
    bob.send(&groupchat(&r, "may I?")).await;
    let err = bob
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(error_condition(&err).as_deref(), Some("forbidden"));

    // §8.3: voice granted; everyone sees the new role.
    let voice = Element::new("item", ADMIN)
        .with_attr("nick", "Bob")
        .with_attr("role", "participant");
    let reply = alice.iq(&admin_set(&r, voice)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    // (alice's iq call drops what comes before its answer: Bob's own copy is looked at.)
    let seen = bob
        .expect_match("Bob as participant", |el| {
            el.name() == "presence"
                && el.attr("from").is_some_and(|f| f.ends_with("/Bob"))
                && item(el).and_then(|i| i.attr("role")) == Some("participant")
        })
        .await
        .unwrap();
    assert!(seen.has_child("x", USER));
    bob.send(&groupchat(&r, "thank you")).await;
    groupchat_from(&mut alice, &format!("{r}/Bob"), "thank you").await;

    // §8.1: a participant may not change the subject here; the moderator may.
    let subject = |text: &str| {
        Element::new("message", CLIENT)
            .with_attr("to", r.as_str())
            .with_attr("type", "groupchat")
            .with_child(Element::new("subject", CLIENT).with_text(text))
    };
    bob.send(&subject("mine")).await;
    let err = bob
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(error_condition(&err).as_deref(), Some("forbidden"));
    alice.send(&subject("agenda")).await;
    let got = bob
        .expect_match("the new subject", |el| {
            el.get_child("subject", CLIENT)
                .map(Element::text)
                .as_deref()
                == Some("agenda")
        })
        .await
        .unwrap();
    assert_eq!(got.attr("from"), Some(format!("{r}/Alice").as_str()));

    // §8.4: voice revoked.
    let revoke = Element::new("item", ADMIN)
        .with_attr("nick", "Bob")
        .with_attr("role", "visitor");
    let reply = alice.iq(&admin_set(&r, revoke)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    bob.expect_match("Bob as visitor again", |el| {
        el.name() == "presence"
            && el.attr("from").is_some_and(|f| f.ends_with("/Bob"))
            && item(el).and_then(|i| i.attr("role")) == Some("visitor")
    })
    .await
    .unwrap();

    // §10.2.1: made non-anonymous: 104 and 172 to occupants, and Bob (not a moderator)
    // now sees Alice's real JID.
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_whois", "anyone")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let note = bob
        .expect_match("status 104", |el| {
            el.name() == "message" && codes(el).contains(&104)
        })
        .await
        .unwrap();
    assert!(codes(&note).contains(&172), "{note}");
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    let me = join(&mut carol, &r, "Carol").await;
    assert!(codes(&me).contains(&100), "§7.2.3 non-anonymous: {me}");
    let alice_seen = carol
        .stashed()
        .find(|el| el.attr("from") == Some(&format!("{r}/Alice")))
        .cloned()
        .unwrap();
    assert_eq!(
        item(&alice_seen).and_then(|i| i.attr("jid")),
        Some("alice@localhost/a")
    );
}

/// §9.4 and §10.2: a members-only room removes an occupant whose membership is revoked
/// (321), and a room turned members-only removes every non-member (322).
#[actix_rt::test]
async fn xep0045_9_4_members_only_removals_321_and_322() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    let r = open_room(&mut alice, "club2").await;
    let member = Element::new("item", ADMIN)
        .with_attr("jid", "bob@localhost")
        .with_attr("affiliation", "member");
    let reply = alice.iq(&admin_set(&r, member)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    join(&mut bob, &r, "Bob").await;
    join(&mut carol, &r, "Carol").await;
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_membersonly", "1")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let out = carol
        .expect_presence_from(&format!("{r}/Carol"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&out).contains(&322), "{out}");
    let none = Element::new("item", ADMIN)
        .with_attr("jid", "bob@localhost")
        .with_attr("affiliation", "none");
    let reply = alice.iq(&admin_set(&r, none)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let out = bob
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&out).contains(&321), "{out}");
}

/// §7.13 and §8.6: a visitor in a moderated room asks for voice with a `muc#request` form;
/// each moderator gets the request as a form naming the visitor, and the approval grants
/// the participant role. A participant's request is refused.
#[actix_rt::test]
async fn xep0045_7_13_voice_requests_reach_moderators_and_approval_grants_voice() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "voices").await;
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_moderatedroom", "1")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    join(&mut bob, &r, "Bob").await;
    let form = |fields: &[(&str, &str)]| {
        let mut x = Element::new("x", DATA)
            .with_attr("type", "submit")
            .with_child(
                Element::new("field", DATA)
                    .with_attr("var", "FORM_TYPE")
                    .with_child(
                        Element::new("value", DATA)
                            .with_text("http://jabber.org/protocol/muc#request"),
                    ),
            );
        for (var, value) in fields {
            x.push_child(
                Element::new("field", DATA)
                    .with_attr("var", *var)
                    .with_child(Element::new("value", DATA).with_text(*value)),
            );
        }
        Element::new("message", CLIENT)
            .with_attr("to", r.as_str())
            .with_child(x)
    };
    bob.send(&form(&[("muc#role", "participant")])).await;
    let request = alice
        .expect_match("a voice request", |el| {
            el.name() == "message" && el.has_child("x", DATA) && el.attr("from") == Some(r.as_str())
        })
        .await
        .unwrap();
    let fields: Vec<(String, String)> = request
        .get_child("x", DATA)
        .unwrap()
        .children()
        .filter_map(|f| {
            Some((
                f.attr("var")?.to_owned(),
                f.get_child("value", DATA)
                    .map(Element::text)
                    .unwrap_or_default(),
            ))
        })
        .collect();
    assert!(
        fields.contains(&("muc#roomnick".into(), "Bob".into())),
        "{request}"
    );
    assert!(
        fields.contains(&("muc#jid".into(), "bob@localhost".into())),
        "{request}"
    );
    alice
        .send(&form(&[
            ("muc#role", "participant"),
            ("muc#roomnick", "Bob"),
            ("muc#request_allow", "true"),
        ]))
        .await;
    bob.expect_match("voice granted", |el| {
        el.name() == "presence"
            && el.attr("from") == Some(&format!("{r}/Bob"))
            && item(el).and_then(|i| i.attr("role")) == Some("participant")
    })
    .await
    .unwrap();
    bob.send(&form(&[("muc#role", "participant")])).await;
    let err = bob
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(error_condition(&err).as_deref(), Some("not-acceptable"));
}
