//! Personal eventing over real sockets (XEP-0163 on XEP-0060, XEP-0223, XEP-0115): publish
//! with auto-create, notifications to the owner's and contacts' resources that want the
//! node (their capabilities asked once by disco#info and checked), the last published item
//! when a contact comes online, the access models for items and notifications,
//! publish-options preconditions, retract, configure, delete, the account's disco, the
//! per-account node bound, items surviving a restart, and a contact on another node.

use parley_proto::pubsub::{NS, NS_ERRORS, NS_EVENT, NS_OWNER};
use parley_proto::{caps, ns};
use parley_storage::{RosterItem, Subscription};
use parley_testkit::cluster::{add_users, befriend_at, ClusterNode};
use parley_testkit::im::{error_condition, next_id};
use parley_testkit::{shared_etcd, shared_pg, Client, TestServer};
use parley_xml::Element;

const DATA: &str = "jabber:x:data";
const TUNE: &str = "http://jabber.org/protocol/tune";

fn ok<T>(r: Result<T, parley_testkit::ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn item(jid: &str, subscription: Subscription) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription,
        ask: false,
        groups: Vec::new(),
    }
}

/// A client's disco#info: the nodes it wants notifications for (`name` tells clients
/// apart, so that each hash is asked of its own client).
fn client_info(name: &str, notify: &[&str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "client")
            .with_attr("type", "pc")
            .with_attr("name", name),
    );
    q.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO));
    for n in notify {
        q.push_child(
            Element::new("feature", ns::DISCO_INFO).with_attr("var", format!("{n}+notify")),
        );
    }
    q
}

/// Available presence announcing `info`'s capabilities (XEP-0115 §4).
async fn available_with_caps(c: &mut Client, info: &Element, to: Option<&str>) {
    let mut p = Element::new("presence", ns::CLIENT).with_child(
        Element::new("c", caps::NS)
            .with_attr("hash", "sha-1")
            .with_attr("node", "https://pep-test.example")
            .with_attr("ver", caps::ver(info)),
    );
    if let Some(to) = to {
        p.set_attr("to", to);
    }
    c.send(&p).await;
}

fn is_caps_query(el: &Element) -> bool {
    el.is("iq", ns::CLIENT)
        && el.attr("type") == Some("get")
        && el
            .get_child("query", ns::DISCO_INFO)
            .is_some_and(|q| q.attr("node").is_some())
}

async fn answer(c: &mut Client, q: &Element, info: &Element) {
    let node = q
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .attr("node")
        .unwrap();
    assert_eq!(
        node,
        format!("https://pep-test.example#{}", caps::ver(info)),
        "{q}"
    );
    let mut answer = info.clone();
    answer.set_attr("node", node);
    let reply = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", q.attr("id").unwrap())
        .with_attr("to", q.attr("from").unwrap())
        .with_child(answer);
    c.send(&reply).await;
}

/// Answers the server's disco#info about our capabilities (XEP-0115 §6.2).
async fn answer_caps_query(c: &mut Client, info: &Element) {
    let q = ok(c
        .expect_match("a disco#info for our caps", is_caps_query)
        .await);
    answer(c, &q, info).await;
}

fn publish(node: &str, id: &str, payload: Element, options: &[(&str, &str)]) -> Element {
    let mut ps = Element::new("pubsub", NS).with_child(
        Element::new("publish", NS)
            .with_attr("node", node)
            .with_child(
                Element::new("item", NS)
                    .with_attr("id", id)
                    .with_child(payload),
            ),
    );
    if !options.is_empty() {
        let mut x = Element::new("x", DATA)
            .with_attr("type", "submit")
            .with_child(
                Element::new("field", DATA)
                    .with_attr("var", "FORM_TYPE")
                    .with_child(
                        Element::new("value", DATA)
                            .with_text(parley_proto::pubsub::PUBLISH_OPTIONS),
                    ),
            );
        for (var, value) in options {
            x.push_child(
                Element::new("field", DATA)
                    .with_attr("var", *var)
                    .with_child(Element::new("value", DATA).with_text(*value)),
            );
        }
        ps.push_child(Element::new("publish-options", NS).with_child(x));
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("pub"))
        .with_child(ps)
}

fn tune(title: &str) -> Element {
    Element::new("tune", TUNE).with_child(Element::new("title", TUNE).with_text(title))
}

fn items_iq(to: &str, node: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", next_id("items"))
        .with_attr("to", to)
        .with_child(
            Element::new("pubsub", NS)
                .with_child(Element::new("items", NS).with_attr("node", node)),
        )
}

fn owner_iq(ty: &str, op: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", next_id("owner"))
        .with_child(Element::new("pubsub", NS_OWNER).with_child(op))
}

/// The event of a headline from `from` about `node`; capability queries that come first
/// (from any account's service) are answered with `info`.
async fn expect_event(c: &mut Client, info: &Element, from: &str, node: &str) -> Element {
    loop {
        let el = ok(c
            .expect_match(
                &format!("a PEP event from {from} about {node} or a caps query"),
                |el| {
                    is_caps_query(el)
                        || (el.is("message", ns::CLIENT)
                            && el.attr("from") == Some(from)
                            && el.get_child("event", NS_EVENT).is_some_and(|e| {
                                e.children().any(|c| c.attr("node") == Some(node))
                            }))
                },
            )
            .await);
        if !is_caps_query(&el) {
            return el;
        }
        answer(c, &el, info).await;
    }
}

fn titles(event_or_result: &Element) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(el: &Element, out: &mut Vec<String>) {
        if el.is("title", TUNE) {
            out.push(el.text());
        }
        for c in el.children() {
            walk(c, out);
        }
    }
    walk(event_or_result, &mut out);
    out
}

fn app_error(reply: &Element) -> Option<String> {
    reply
        .get_child("error", ns::CLIENT)?
        .children()
        .find(|c| c.ns() == NS_ERRORS)
        .map(|c| c.name().to_owned())
}

/// XEP-0163 §4-§5, XEP-0115 §6: a publish auto-creates the node and notifies the owner's
/// resources and the contacts allowed (presence access: `from`/`both`) that want the node,
/// their capabilities asked by disco#info and checked; a stranger who wants it too gets
/// nothing; a contact coming online gets the last item, with its delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0163_notifications_follow_caps_and_access_and_the_last_item_waits() {
    let server = TestServer::start(|_| {});
    server.put_roster("alice", &[item("bob@localhost", Subscription::Both)]);
    server.put_roster("bob", &[item("alice@localhost", Subscription::Both)]);
    let alice_wants = client_info("alice's client", &[TUNE]);
    let wants = client_info("bob's client", &[TUNE]);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    available_with_caps(&mut alice, &alice_wants, None).await;
    answer_caps_query(&mut alice, &alice_wants).await;

    let r = ok(alice
        .iq(&publish(TUNE, "current", tune("Yesterday"), &[]))
        .await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let pubd = r
        .get_child("pubsub", NS)
        .and_then(|p| p.get_child("publish", NS))
        .expect("publish");
    assert_eq!(
        pubd.get_child("item", NS).unwrap().attr("id"),
        Some("current")
    );
    let own = expect_event(&mut alice, &alice_wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&own), ["Yesterday"]);

    // Bob comes online: alice's service asks his client what its hash means, then sends
    // the last item (§4.3.3), with its time.
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    available_with_caps(&mut bob, &wants, None).await;
    let last = expect_event(&mut bob, &wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&last), ["Yesterday"]);
    assert!(last.get_child("delay", ns::DELAY).is_some(), "{last}");
    // A stranger with the same interest, known to alice's service by directed presence.
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    available_with_caps(&mut carol, &wants, Some("alice@localhost")).await;

    ok(alice
        .iq(&publish(TUNE, "current", tune("Let It Be"), &[]))
        .await);
    let ev = expect_event(&mut bob, &wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&ev), ["Let It Be"]);
    assert_eq!(ev.attr("type"), Some("headline"));
    assert!(
        ev.get_child("delay", ns::DELAY).is_none(),
        "a live event: {ev}"
    );
    let own = expect_event(&mut alice, &alice_wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&own), ["Let It Be"]);
    // Carol: nothing (alice's service sent everything before bob's copy; an iq round trip
    // with the server shows carol's queue holds no event).
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "barrier")
        .with_child(Element::new("ping", ns::PING));
    let (_, before) = ok(carol.iq_collect(&ping).await);
    assert!(
        before
            .iter()
            .all(|el| el.get_child("event", NS_EVENT).is_none()),
        "{before:?}"
    );

    // Bob leaves; alice publishes again; bob's next login gets that last item.
    drop(bob);
    ok(alice
        .iq(&publish(TUNE, "current", tune("Come Together"), &[]))
        .await);
    let mut bob = Client::login(server.c2s(), "bob", Some("b2")).await;
    available_with_caps(&mut bob, &wants, None).await;
    let last = expect_event(&mut bob, &wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&last), ["Come Together"]);
}

/// XEP-0060 §6.5 and §4.5 with XEP-0223: items by access model (presence, open,
/// whitelist), publish-options creating a node and then refusing a publish whose
/// preconditions the node does not meet, configure, retract with its notification, delete,
/// the owner-only operations, and the account's disco#info identity `pubsub/pep`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0060_access_models_publish_options_and_owner_operations() {
    let server = TestServer::start(|_| {});
    server.put_roster("alice", &[item("bob@localhost", Subscription::From)]);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    ok(alice.iq(&publish(TUNE, "t", tune("presence"), &[])).await);
    let got = ok(bob.iq(&items_iq("alice@localhost", TUNE)).await);
    assert_eq!(titles(&got), ["presence"], "{got}");
    let refused = ok(carol.iq(&items_iq("alice@localhost", TUNE)).await);
    assert_eq!(error_condition(&refused).as_deref(), Some("not-authorized"));
    assert_eq!(
        app_error(&refused).as_deref(),
        Some("presence-subscription-required")
    );

    // An open node (OMEMO bundles are published so).
    let bundle = "eu.siacs.conversations.axolotl.bundles:1";
    let r = ok(alice
        .iq(&publish(
            bundle,
            "current",
            tune("open"),
            &[("pubsub#access_model", "open")],
        ))
        .await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    assert_eq!(
        titles(&ok(carol.iq(&items_iq("alice@localhost", bundle)).await)),
        ["open"]
    );
    // The same node asked to be a whitelist: precondition not met (XEP-0223 §4.4).
    let r = ok(alice
        .iq(&publish(
            bundle,
            "current",
            tune("x"),
            &[("pubsub#access_model", "whitelist")],
        ))
        .await);
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"), "{r}");
    assert_eq!(app_error(&r).as_deref(), Some("precondition-not-met"));
    // A whitelist node (bookmarks): only the owner reads it.
    let bookmarks = "urn:xmpp:bookmarks:1";
    ok(alice
        .iq(&publish(
            bookmarks,
            "room@conference.localhost",
            Element::new("conference", bookmarks).with_attr("autojoin", "true"),
            &[
                ("pubsub#access_model", "whitelist"),
                ("pubsub#max_items", "max"),
                ("pubsub#send_last_published_item", "never"),
            ],
        ))
        .await);
    let own = ok(alice.iq(&items_iq("alice@localhost", bookmarks)).await);
    assert_eq!(own.attr("type"), Some("result"), "{own}");
    let denied = ok(bob.iq(&items_iq("alice@localhost", bookmarks)).await);
    assert_eq!(error_condition(&denied).as_deref(), Some("not-allowed"));
    // Configure shows what publish-options made.
    let conf = ok(alice
        .iq(&owner_iq(
            "get",
            Element::new("configure", NS_OWNER).with_attr("node", bookmarks),
        ))
        .await);
    let form = conf
        .get_child("pubsub", NS_OWNER)
        .and_then(|p| p.get_child("configure", NS_OWNER))
        .and_then(|c| c.get_child("x", DATA))
        .expect("form");
    let value = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", DATA))
            .map(|v| v.text())
    };
    assert_eq!(value("pubsub#access_model").as_deref(), Some("whitelist"));
    assert_eq!(
        value("pubsub#send_last_published_item").as_deref(),
        Some("never")
    );

    // Only the owner publishes, configures or deletes.
    let r = ok(bob
        .iq(&publish(TUNE, "x", tune("bob"), &[]).with_attr("to", "alice@localhost"))
        .await);
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{r}");
    // Retract and delete.
    let retract = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", "retract")
        .with_child(
            Element::new("pubsub", NS).with_child(
                Element::new("retract", NS)
                    .with_attr("node", TUNE)
                    .with_child(Element::new("item", NS).with_attr("id", "t")),
            ),
        );
    assert_eq!(ok(alice.iq(&retract).await).attr("type"), Some("result"));
    let empty = ok(bob.iq(&items_iq("alice@localhost", TUNE)).await);
    assert!(titles(&empty).is_empty(), "{empty}");
    let del = ok(alice
        .iq(&owner_iq(
            "set",
            Element::new("delete", NS_OWNER).with_attr("node", TUNE),
        ))
        .await);
    assert_eq!(del.attr("type"), Some("result"), "{del}");
    let gone = ok(bob.iq(&items_iq("alice@localhost", TUNE)).await);
    assert_eq!(error_condition(&gone).as_deref(), Some("item-not-found"));

    // XEP-0163 §6.1: the account is a PEP service.
    let info = ok(alice
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "disco")
            .with_attr("to", "alice@localhost")
            .with_child(Element::new("query", ns::DISCO_INFO)))
        .await);
    let q = info.get_child("query", ns::DISCO_INFO).unwrap();
    assert!(
        q.children().any(|i| i.is("identity", ns::DISCO_INFO)
            && i.attr("category") == Some("pubsub")
            && i.attr("type") == Some("pep")),
        "{info}"
    );
}

/// Bounds and durability: past `[pep] max_nodes` a new node is `resource-constraint`;
/// a node keeps `max_items`; items survive a restart of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_nodes_are_bounded_and_items_survive_a_restart() {
    let server = TestServer::start(|c| {
        c.pep.max_nodes = 2;
    });
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    for (i, node) in ["n1", "n2"].iter().enumerate() {
        let r = ok(alice
            .iq(&publish(
                node,
                "x",
                tune(&format!("{i}")),
                &[("pubsub#max_items", "2")],
            ))
            .await);
        assert_eq!(r.attr("type"), Some("result"), "{r}");
    }
    let r = ok(alice.iq(&publish("n3", "x", tune("3"), &[])).await);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("resource-constraint"),
        "{r}"
    );
    for t in ["a", "b", "c"] {
        ok(alice.iq(&publish("n1", t, tune(t), &[])).await);
    }
    drop(alice);
    let server = server.restart();
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let got = ok(alice.iq(&items_iq("alice@localhost", "n1")).await);
    assert_eq!(titles(&got), ["b", "c"], "{got}");
}

/// XEP-0163 in a cluster (two nodes, real etcd and PostgreSQL): the owner on one node, a
/// contact on the other; the contact is notified and reads the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0163_a_contact_on_another_node_is_notified() {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    befriend_at(&db, "alice", "bob");
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("pep");
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, ""))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let wants = client_info("bob's client", &[TUNE]);
    let mut alice = Client::login(nodes[0].c2s, "alice", Some("n1")).await;
    alice.available().await;
    let mut bob = Client::login(nodes[1].c2s, "bob", Some("n2")).await;
    available_with_caps(&mut bob, &wants, None).await;
    // Published before bob's caps are known: he gets it as the last item, then live.
    ok(alice.iq(&publish(TUNE, "t", tune("first"), &[])).await);
    let last = expect_event(&mut bob, &wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&last), ["first"]);
    ok(alice.iq(&publish(TUNE, "t", tune("across"), &[])).await);
    let ev = expect_event(&mut bob, &wants, "alice@localhost", TUNE).await;
    assert_eq!(titles(&ev), ["across"]);
    let got = ok(bob.iq(&items_iq("alice@localhost", TUNE)).await);
    assert_eq!(titles(&got), ["across"]);
}

fn private(ty: &str, child: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", next_id("private"))
        .with_child(Element::new("query", "jabber:iq:private").with_child(child))
}

/// The conferences of a legacy bookmarks answer: (jid, name, autojoin, nick).
fn legacy_conferences(reply: &Element) -> Vec<(String, String, String, String)> {
    let storage = reply
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", LEGACY))
        .expect("a storage element");
    storage
        .children()
        .filter(|c| c.is("conference", LEGACY))
        .map(|c| {
            (
                c.attr("jid").unwrap_or_default().to_owned(),
                c.attr("name").unwrap_or_default().to_owned(),
                c.attr("autojoin").unwrap_or_default().to_owned(),
                c.get_child("nick", LEGACY)
                    .map(|n| n.text())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

const LEGACY: &str = "storage:bookmarks";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";

/// XEP-0411 §4-§5: a client on PEP native bookmarks (XEP-0402) and one on private XML
/// storage (XEP-0048) see the same rooms. A PEP bookmark shows in the legacy element; a
/// legacy write publishes changed rooms and retracts removed ones (the other resource, which
/// asked for notifications, is told), keeps its URLs, and reads back as written.
#[tokio::test]
async fn xep0411_legacy_and_pep_bookmarks_are_one_list() {
    let server = TestServer::start(|_| {});
    let modern_info = client_info("modern client", &[BOOKMARKS]);
    let mut modern = Client::login(server.c2s(), "alice", Some("modern")).await;
    available_with_caps(&mut modern, &modern_info, None).await;
    answer_caps_query(&mut modern, &modern_info).await;
    let mut legacy = Client::login(server.c2s(), "alice", Some("legacy")).await;
    legacy.available().await;

    // XEP-0411 §3: the account says it keeps both forms in step.
    let info = ok(legacy
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("disco"))
            .with_attr("to", "alice@localhost")
            .with_child(Element::new("query", ns::DISCO_INFO)))
        .await);
    let query = info.get_child("query", ns::DISCO_INFO).expect("disco#info");
    assert!(
        query
            .children()
            .any(|f| f.attr("var") == Some("urn:xmpp:bookmarks-conversion:0")),
        "{info}"
    );
    // Nothing yet: the legacy read gets its empty element back.
    let empty = ok(legacy
        .iq(&private("get", Element::new("storage", LEGACY)))
        .await);
    assert!(legacy_conferences(&empty).is_empty());

    let conf = Element::new("conference", BOOKMARKS)
        .with_attr("name", "Tea")
        .with_attr("autojoin", "true")
        .with_child(Element::new("nick", BOOKMARKS).with_text("alice"));
    let options = [
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
        ("pubsub#access_model", "whitelist"),
    ];
    let r = ok(modern
        .iq(&publish(BOOKMARKS, "tea@rooms.example", conf, &options))
        .await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    expect_event(&mut modern, &modern_info, "alice@localhost", BOOKMARKS).await;
    let seen = ok(legacy
        .iq(&private("get", Element::new("storage", LEGACY)))
        .await);
    assert_eq!(
        legacy_conferences(&seen),
        [(
            "tea@rooms.example".to_owned(),
            "Tea".to_owned(),
            "true".to_owned(),
            "alice".to_owned()
        )]
    );

    // The legacy client writes: tea is renamed, cake is new, a URL rides along.
    let written = Element::new("storage", LEGACY)
        .with_child(
            Element::new("conference", LEGACY)
                .with_attr("jid", "tea@rooms.example")
                .with_attr("name", "Tea time")
                .with_attr("autojoin", "true")
                .with_child(Element::new("nick", LEGACY).with_text("alice")),
        )
        .with_child(
            Element::new("conference", LEGACY)
                .with_attr("jid", "cake@rooms.example")
                .with_attr("name", "Cake")
                .with_attr("autojoin", "false"),
        )
        .with_child(
            Element::new("url", LEGACY)
                .with_attr("name", "home")
                .with_attr("url", "https://example.org/"),
        );
    let r = ok(legacy.iq(&private("set", written)).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    // The modern resource is notified of both publications, and reads both rooms.
    for _ in 0..2 {
        let msg = expect_event(&mut modern, &modern_info, "alice@localhost", BOOKMARKS).await;
        let event = msg.get_child("event", NS_EVENT).unwrap();
        let items = event.get_child("items", NS_EVENT).expect("items");
        assert!(items.has_child("item", NS_EVENT), "{event}");
    }
    let r = ok(modern.iq(&items_iq("alice@localhost", BOOKMARKS)).await);
    let items = r
        .get_child("pubsub", NS)
        .and_then(|p| p.get_child("items", NS))
        .expect("items");
    let mut ids: Vec<(String, String)> = items
        .children()
        .map(|i| {
            (
                i.attr("id").unwrap_or_default().to_owned(),
                i.get_child("conference", BOOKMARKS)
                    .and_then(|c| c.attr("name"))
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("cake@rooms.example".to_owned(), "Cake".to_owned()),
            ("tea@rooms.example".to_owned(), "Tea time".to_owned())
        ]
    );
    // Read back: both rooms, and the URL.
    let back = ok(legacy
        .iq(&private("get", Element::new("storage", LEGACY)))
        .await);
    assert_eq!(legacy_conferences(&back).len(), 2);
    let storage = back
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", LEGACY))
        .unwrap();
    assert!(storage.has_child("url", LEGACY), "{back}");

    // Removing cake in the legacy list retracts it in PEP.
    let fewer = Element::new("storage", LEGACY).with_child(
        Element::new("conference", LEGACY)
            .with_attr("jid", "tea@rooms.example")
            .with_attr("name", "Tea time")
            .with_attr("autojoin", "true")
            .with_child(Element::new("nick", LEGACY).with_text("alice")),
    );
    let r = ok(legacy.iq(&private("set", fewer)).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let msg = expect_event(&mut modern, &modern_info, "alice@localhost", BOOKMARKS).await;
    let event = msg.get_child("event", NS_EVENT).unwrap();
    let retracted = event
        .get_child("items", NS_EVENT)
        .and_then(|i| i.get_child("retract", NS_EVENT))
        .and_then(|r| r.attr("id"))
        .map(str::to_owned);
    assert_eq!(retracted.as_deref(), Some("cake@rooms.example"), "{event}");
    let r = ok(modern.iq(&items_iq("alice@localhost", BOOKMARKS)).await);
    let left: Vec<String> = r
        .get_child("pubsub", NS)
        .and_then(|p| p.get_child("items", NS))
        .unwrap()
        .children()
        .filter_map(|i| i.attr("id").map(str::to_owned))
        .collect();
    assert_eq!(left, ["tea@rooms.example"]);
    // The answers to the server's own publications never reach the legacy client: nothing
    // with their ids comes before the answer to its next request.
    let get = private("get", Element::new("storage", LEGACY));
    let get_id = get.attr("id").unwrap().to_owned();
    legacy.send(&get).await;
    loop {
        let el = ok(legacy.recv_element().await);
        let id = el.attr("id").unwrap_or_default().to_owned();
        assert!(!id.starts_with("parley-pep-sync-"), "leaked: {el}");
        if id == get_id {
            break;
        }
    }
}

const AVATAR_DATA: &str = "urn:xmpp:avatar:data";
const AVATAR_META: &str = "urn:xmpp:avatar:metadata";
const UPDATE: &str = "vcard-temp:x:update";

fn vcard_iq(ty: &str, to: Option<&str>, card: Element) -> Element {
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", next_id("vcard"))
        .with_child(card);
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq
}

fn sha1_hex(data: &[u8]) -> String {
    parley_proto::avatar::sha1_hex(data)
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The `<BINVAL/>` of the photo in a vCard answer.
fn photo_binval(reply: &Element) -> Option<String> {
    reply
        .get_child("vCard", ns::VCARD)
        .and_then(|v| v.get_child("PHOTO", ns::VCARD))
        .and_then(|p| p.get_child("BINVAL", ns::VCARD))
        .map(|b| b.text())
}

/// A vCard whose photo is `image` (PNG), with `others` before it.
fn photo_card(image: &[u8], others: Vec<Element>) -> Element {
    let mut card = Element::new("vCard", ns::VCARD);
    for o in others {
        card.push_child(o);
    }
    card.with_child(
        Element::new("PHOTO", ns::VCARD)
            .with_child(Element::new("TYPE", ns::VCARD).with_text("image/png"))
            .with_child(Element::new("BINVAL", ns::VCARD).with_text(b64(image))),
    )
}

/// Waits for a presence of alice's naming `hash` (earlier ones, without it, pass by).
async fn presence_with_hash(bob: &mut Client, hash: &str) {
    ok(bob
        .expect_match(&format!("alice's presence with hash {hash}"), |el| {
            el.is("presence", ns::CLIENT)
                && el
                    .attr("from")
                    .is_some_and(|f| f.starts_with("alice@localhost/"))
                && el
                    .get_child("x", UPDATE)
                    .and_then(|x| x.get_child("photo", UPDATE))
                    .is_some_and(|p| p.text() == hash)
        })
        .await);
}

/// The hash of alice's next presence that bob receives.
async fn next_presence_hash(bob: &mut Client) -> Option<String> {
    let p = ok(bob
        .expect_match("alice's presence", |el| {
            el.is("presence", ns::CLIENT)
                && el
                    .attr("from")
                    .is_some_and(|f| f.starts_with("alice@localhost/"))
                && el.attr("type").is_none()
        })
        .await);
    p.get_child("x", UPDATE)
        .and_then(|x| x.get_child("photo", UPDATE))
        .map(|p| p.text())
}

/// XEP-0398 §4 with XEP-0153 §3 and XEP-0084 §4: a vCard photo becomes the PEP avatar (a
/// contact that asked for metadata is notified and fetches the image); the avatar's hash
/// rides in the account's presence; a PEP avatar published later goes into the vCard and
/// the presence is sent again with its hash; the account advertises the conversion.
#[tokio::test]
async fn xep0398_vcard_and_pep_avatars_are_one_avatar() {
    let server = TestServer::start(|_| {});
    server.put_roster("alice", &[item("bob@localhost", Subscription::Both)]);
    server.put_roster("bob", &[item("alice@localhost", Subscription::Both)]);
    // bob is online first: alice's service learns of him from the answer to her probe
    // (sent from her bare JID, RFC 6121 §4.3.1), and asks his client what its hash means.
    let wants = client_info("bob's client", &[AVATAR_META]);
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    available_with_caps(&mut bob, &wants, None).await;
    answer_caps_query(&mut bob, &wants).await;
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    alice.available().await;
    assert_eq!(next_presence_hash(&mut bob).await, None, "no avatar yet");

    // A vCard-based client stores a photo.
    let first = b"\x89PNG first image".to_vec();
    let card = photo_card(
        &first,
        vec![Element::new("FN", ns::VCARD).with_text("Alice")],
    );
    let r = ok(alice.iq(&vcard_iq("set", None, card)).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let msg = expect_event(&mut bob, &wants, "alice@localhost", AVATAR_META).await;
    let info = msg
        .get_child("event", NS_EVENT)
        .and_then(|e| e.get_child("items", NS_EVENT))
        .and_then(|i| i.get_child("item", NS_EVENT))
        .and_then(|i| i.get_child("metadata", AVATAR_META))
        .and_then(|m| m.get_child("info", AVATAR_META))
        .expect("avatar info");
    assert_eq!(info.attr("id"), Some(sha1_hex(&first).as_str()));
    assert_eq!(info.attr("bytes"), Some(first.len().to_string().as_str()));
    // XEP-0153: alice's presence (she names no hash) is sent again with the avatar's.
    // (Waited for before bob's next iq, which passes over what is not its answer.)
    presence_with_hash(&mut bob, &sha1_hex(&first)).await;
    let r = ok(bob.iq(&items_iq("alice@localhost", AVATAR_DATA)).await);
    let data = r
        .get_child("pubsub", NS)
        .and_then(|p| p.get_child("items", NS))
        .and_then(|i| i.get_child("item", NS))
        .and_then(|i| i.get_child("data", AVATAR_DATA))
        .map(|d| d.text());
    assert_eq!(data, Some(b64(&first)));

    // A PEP client publishes another avatar: the vCard follows, the presence again.
    let second = b"\x89PNG second image, larger".to_vec();
    let id = sha1_hex(&second);
    let r = ok(alice
        .iq(&publish(
            AVATAR_DATA,
            &id,
            Element::new("data", AVATAR_DATA).with_text(b64(&second)),
            &[],
        ))
        .await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let meta = Element::new("metadata", AVATAR_META).with_child(
        Element::new("info", AVATAR_META)
            .with_attr("id", id.as_str())
            .with_attr("bytes", second.len().to_string())
            .with_attr("type", "image/png"),
    );
    let r = ok(alice.iq(&publish(AVATAR_META, &id, meta, &[])).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    presence_with_hash(&mut bob, &id).await;
    let r = ok(bob
        .iq(&vcard_iq(
            "get",
            Some("alice@localhost"),
            Element::new("vCard", ns::VCARD),
        ))
        .await);
    let binval = photo_binval(&r);
    assert_eq!(binval, Some(b64(&second)), "{r}");
    assert!(
        r.get_child("vCard", ns::VCARD)
            .unwrap()
            .has_child("FN", ns::VCARD),
        "the rest of the vCard stays"
    );

    // A XEP-0153 client naming its own hash is left alone.
    alice
        .send(
            &Element::new("presence", ns::CLIENT).with_child(
                Element::new("x", UPDATE)
                    .with_child(Element::new("photo", UPDATE).with_text("clientsays")),
            ),
        )
        .await;
    presence_with_hash(&mut bob, "clientsays").await;

    let info = ok(alice
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("disco"))
            .with_attr("to", "alice@localhost")
            .with_child(Element::new("query", ns::DISCO_INFO)))
        .await);
    assert!(
        info.get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attr("var") == Some("urn:xmpp:pep-vcard-conversion:0")),
        "{info}"
    );
}

/// XEP-0398 and XEP-0411 in a cluster (two `parley` nodes, a real etcd and PostgreSQL):
/// alice stores a vCard photo on one node; bob, a contact on the other, is notified of the
/// avatar, gets alice's presence with its hash and reads the photo from her vCard there;
/// alice's legacy bookmarks written on one node are read by her own client on the other as
/// PEP bookmarks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0398_and_xep0411_across_nodes() {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    befriend_at(&db, "alice", "bob");
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("avatar");
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, ""))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let wants = client_info("bob's client", &[AVATAR_META]);
    let mut bob = Client::login(nodes[1].c2s, "bob", Some("n2")).await;
    available_with_caps(&mut bob, &wants, None).await;
    answer_caps_query(&mut bob, &wants).await;
    let mut alice = Client::login(nodes[0].c2s, "alice", Some("n1")).await;
    alice.available().await;

    let image = b"\x89PNG across nodes".to_vec();
    let card = photo_card(&image, Vec::new());
    let r = ok(alice.iq(&vcard_iq("set", None, card)).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    expect_event(&mut bob, &wants, "alice@localhost", AVATAR_META).await;
    presence_with_hash(&mut bob, &sha1_hex(&image)).await;
    let r = ok(bob
        .iq(&vcard_iq(
            "get",
            Some("alice@localhost"),
            Element::new("vCard", ns::VCARD),
        ))
        .await);
    let binval = photo_binval(&r);
    assert_eq!(binval, Some(b64(&image)), "{r}");

    // Legacy bookmarks written on n1, read as PEP on n2.
    let written = Element::new("storage", LEGACY).with_child(
        Element::new("conference", LEGACY)
            .with_attr("jid", "tea@rooms.example")
            .with_attr("name", "Tea")
            .with_attr("autojoin", "true"),
    );
    let r = ok(alice.iq(&private("set", written)).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let mut alice2 = Client::login(nodes[1].c2s, "alice", Some("n2")).await;
    let r = ok(alice2.iq(&items_iq("alice@localhost", BOOKMARKS)).await);
    let ids: Vec<String> = r
        .get_child("pubsub", NS)
        .and_then(|p| p.get_child("items", NS))
        .expect("items")
        .children()
        .filter_map(|i| i.attr("id").map(str::to_owned))
        .collect();
    assert_eq!(ids, ["tea@rooms.example"]);
}
