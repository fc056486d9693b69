//! Account data over real sockets. Private XML storage (XEP-0049): store and read back
//! (from another session of the account, and after a restart of the server), replace, an
//! empty answer for nothing stored, reserved namespaces refused, another account's storage
//! forbidden, the per-account bound on namespaces. vCard-temp (XEP-0054): set by the
//! owner, read by anyone from the owner's bare JID. Last activity (XEP-0012): the
//! server's uptime, an account's time since its last resource left, for contacts only.

use parley_proto::ns;
use parley_testkit::im::error_condition;
use parley_testkit::{Client, TestServer};
use parley_xml::Element;

const PRIVATE: &str = "jabber:iq:private";

fn private_iq(id: &str, ty: &str, to: Option<&str>, children: Vec<Element>) -> Element {
    let mut query = Element::new("query", PRIVATE);
    for c in children {
        query.push_child(c);
    }
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", id)
        .with_child(query);
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq
}

fn prefs(nick: &str) -> Element {
    Element::new("prefs", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

async fn ask(c: &mut Client, iq: &Element) -> Element {
    c.iq(iq).await.unwrap_or_else(|e| panic!("{e}"))
}

fn stored_nick(reply: &Element) -> Option<String> {
    reply
        .get_child("query", PRIVATE)?
        .get_child("prefs", "exodus:prefs")?
        .get_child("defaultnick", "exodus:prefs")
        .map(|n| n.text())
}

/// XEP-0049 §2: a stored element comes back, from another session of the account too,
/// and after the server restarts; a second store replaces it; nothing stored is answered
/// with the empty element asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0049_2_stored_elements_come_back_replaced_and_survive_a_restart() {
    let server = TestServer::start(|_| {});
    let mut a = Client::login(server.c2s(), "alice", Some("a")).await;
    let empty = ask(
        &mut a,
        &private_iq(
            "g0",
            "get",
            None,
            vec![Element::new("prefs", "exodus:prefs")],
        ),
    )
    .await;
    assert_eq!(empty.attr("type"), Some("result"), "{empty}");
    let q = empty.get_child("query", PRIVATE).expect("query");
    assert!(q.get_child("prefs", "exodus:prefs").is_some(), "{empty}");
    assert_eq!(stored_nick(&empty), None);

    let set = ask(
        &mut a,
        &private_iq("s1", "set", None, vec![prefs("Hamlet")]),
    )
    .await;
    assert_eq!(set.attr("type"), Some("result"), "{set}");
    let mut b = Client::login(server.c2s(), "alice", Some("b")).await;
    let got = ask(
        &mut b,
        &private_iq(
            "g1",
            "get",
            Some("alice@localhost"),
            vec![Element::new("prefs", "exodus:prefs")],
        ),
    )
    .await;
    assert_eq!(stored_nick(&got).as_deref(), Some("Hamlet"), "{got}");
    ask(
        &mut b,
        &private_iq("s2", "set", None, vec![prefs("Ophelia")]),
    )
    .await;
    drop((a, b));

    let server = server.restart();
    let mut c = Client::login(server.c2s(), "alice", Some("c")).await;
    let got = ask(
        &mut c,
        &private_iq(
            "g2",
            "get",
            None,
            vec![Element::new("prefs", "exodus:prefs")],
        ),
    )
    .await;
    assert_eq!(stored_nick(&got).as_deref(), Some("Ophelia"), "{got}");
}

/// XEP-0049 §3: reserved namespaces are `not-acceptable`; another account's storage is
/// `forbidden`; `[quotas] private_namespaces` bounds what one account keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0049_3_reserved_namespaces_other_accounts_and_the_bound_are_refused() {
    let server = TestServer::start(|c| c.quotas.private_namespaces = 1);
    let mut a = Client::login(server.c2s(), "alice", Some("a")).await;
    let reserved = ask(
        &mut a,
        &private_iq(
            "r1",
            "set",
            None,
            vec![Element::new("query", "jabber:iq:roster")],
        ),
    )
    .await;
    assert_eq!(
        error_condition(&reserved).as_deref(),
        Some("not-acceptable"),
        "{reserved}"
    );
    let other = ask(
        &mut a,
        &private_iq(
            "o1",
            "get",
            Some("bob@localhost"),
            vec![Element::new("prefs", "exodus:prefs")],
        ),
    )
    .await;
    assert_eq!(
        error_condition(&other).as_deref(),
        Some("forbidden"),
        "{other}"
    );
    ask(
        &mut a,
        &private_iq("s1", "set", None, vec![prefs("Hamlet")]),
    )
    .await;
    // Replacing the one namespace fits; a second namespace does not.
    let again = ask(
        &mut a,
        &private_iq("s2", "set", None, vec![prefs("Yorick")]),
    )
    .await;
    assert_eq!(again.attr("type"), Some("result"), "{again}");
    let full = ask(
        &mut a,
        &private_iq(
            "s3",
            "set",
            None,
            vec![Element::new("storage", "storage:bookmarks")],
        ),
    )
    .await;
    assert_eq!(
        error_condition(&full).as_deref(),
        Some("resource-constraint"),
        "{full}"
    );
}

fn vcard_iq(id: &str, ty: &str, to: Option<&str>, card: Element) -> Element {
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", id)
        .with_child(card);
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq
}

fn card(full_name: &str) -> Element {
    Element::new("vCard", "vcard-temp")
        .with_child(Element::new("FN", "vcard-temp").with_text(full_name))
        .with_child(Element::new("NICKNAME", "vcard-temp").with_text("ali"))
}

fn full_name(reply: &Element) -> Option<String> {
    reply
        .get_child("vCard", "vcard-temp")?
        .get_child("FN", "vcard-temp")
        .map(|f| f.text())
}

/// XEP-0054 §3.1-§3.3: a user stores her vCard and reads it back; others read it from her
/// bare JID (answered by her server, from that JID); an account without one gives an empty
/// vCard, one that does not exist `service-unavailable`; only the owner writes it, and it
/// cannot be reached as private storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0054_3_vcards_are_set_by_their_owner_and_read_by_anyone() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let set = ask(
        &mut alice,
        &vcard_iq("v1", "set", None, card("Alice Liddell")),
    )
    .await;
    assert_eq!(set.attr("type"), Some("result"), "{set}");
    let own = ask(
        &mut alice,
        &vcard_iq("v2", "get", None, Element::new("vCard", "vcard-temp")),
    )
    .await;
    assert_eq!(full_name(&own).as_deref(), Some("Alice Liddell"), "{own}");

    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let hers = ask(
        &mut bob,
        &vcard_iq(
            "v3",
            "get",
            Some("alice@localhost"),
            Element::new("vCard", "vcard-temp"),
        ),
    )
    .await;
    assert_eq!(hers.attr("from"), Some("alice@localhost"), "{hers}");
    assert_eq!(full_name(&hers).as_deref(), Some("Alice Liddell"), "{hers}");
    let none = ask(
        &mut bob,
        &vcard_iq(
            "v4",
            "get",
            Some("carol@localhost"),
            Element::new("vCard", "vcard-temp"),
        ),
    )
    .await;
    assert_eq!(none.attr("type"), Some("result"), "{none}");
    assert!(none.get_child("vCard", "vcard-temp").is_some(), "{none}");
    assert_eq!(full_name(&none), None);
    let nobody = ask(
        &mut bob,
        &vcard_iq(
            "v5",
            "get",
            Some("nobody@localhost"),
            Element::new("vCard", "vcard-temp"),
        ),
    )
    .await;
    assert_eq!(
        error_condition(&nobody).as_deref(),
        Some("service-unavailable"),
        "{nobody}"
    );
    let forged = ask(
        &mut bob,
        &vcard_iq("v6", "set", Some("alice@localhost"), card("Mallory")),
    )
    .await;
    assert_eq!(
        error_condition(&forged).as_deref(),
        Some("forbidden"),
        "{forged}"
    );
    let sneaky = ask(&mut alice, &private_iq("v7", "set", None, vec![card("x")])).await;
    assert_eq!(
        error_condition(&sneaky).as_deref(),
        Some("not-acceptable"),
        "{sneaky}"
    );
    let still = ask(
        &mut bob,
        &vcard_iq(
            "v8",
            "get",
            Some("alice@localhost"),
            Element::new("vCard", "vcard-temp"),
        ),
    )
    .await;
    assert_eq!(
        full_name(&still).as_deref(),
        Some("Alice Liddell"),
        "{still}"
    );
}

fn last_iq(id: &str, to: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_attr("to", to)
        .with_child(Element::new("query", "jabber:iq:last"))
}

fn seconds(reply: &Element) -> Option<i64> {
    reply
        .get_child("query", "jabber:iq:last")?
        .attr("seconds")?
        .parse()
        .ok()
}

/// XEP-0012 §4-§5: the server's last activity is its uptime; an account's is `0` while it
/// is online and, once its last resource left, the time since then with the status it left
/// with, both told only to a contact allowed to see its presence (others: `forbidden`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0012_last_activity_of_the_server_and_of_an_account() {
    use parley_storage::{RosterItem, Subscription};
    let server = TestServer::start(|_| {});
    let both = |jid: &str| RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription: Subscription::Both,
        ask: false,
        groups: Vec::new(),
    };
    server.put_roster("alice", &[both("bob@localhost")]);
    server.put_roster("bob", &[both("alice@localhost")]);
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let up = ask(&mut bob, &last_iq("l0", "localhost")).await;
    assert!(seconds(&up).is_some_and(|s| s >= 0), "{up}");

    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    alice.available().await;
    // Bob sees her come online: her user actor has handled her presence.
    bob.expect_presence_from("alice@localhost/a", "available")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let online = ask(&mut bob, &last_iq("l1", "alice@localhost")).await;
    assert_eq!(seconds(&online), Some(0), "{online}");
    alice
        .send(
            &Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_child(Element::new("status", ns::CLIENT).with_text("gone fishing")),
        )
        .await;
    ok_presence_gone(&mut bob).await;
    let gone = ask(&mut bob, &last_iq("l2", "alice@localhost")).await;
    let query = gone.get_child("query", "jabber:iq:last").expect("query");
    assert!(
        seconds(&gone).is_some_and(|s| (0..5).contains(&s)),
        "{gone}"
    );
    assert_eq!(query.text(), "gone fishing");

    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    let stranger = ask(&mut carol, &last_iq("l3", "alice@localhost")).await;
    assert_eq!(
        error_condition(&stranger).as_deref(),
        Some("forbidden"),
        "{stranger}"
    );

    // Kept in storage: after a restart, a fresh user actor still knows.
    drop((alice, bob, carol));
    let server = server.restart();
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let later = ask(&mut bob, &last_iq("l4", "alice@localhost")).await;
    assert!(seconds(&later).is_some_and(|s| s >= 0), "{later}");
    assert_eq!(
        later
            .get_child("query", "jabber:iq:last")
            .map(|q| q.text())
            .as_deref(),
        Some("gone fishing"),
        "{later}"
    );
}

/// Waits until bob has seen alice go unavailable: her user actor has recorded it.
async fn ok_presence_gone(bob: &mut Client) {
    bob.expect_presence_from("alice@localhost/a", "unavailable")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
