//! Private XML storage (XEP-0049) over real sockets: store and read back (from another
//! session of the account, and after a restart of the server), replace, an empty answer for
//! nothing stored, reserved namespaces refused, another account's storage forbidden, and
//! the per-account bound on namespaces.

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
