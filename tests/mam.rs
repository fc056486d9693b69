//! The message archive over real sockets (XEP-0313, XEP-0359, XEP-0059, XEP-0441): messages
//! archived for both local parties with the recipient's `<stanza-id/>`, forged ids removed,
//! the same id through offline storage and carbons, paging forward and backward, every
//! filter, the form, preferences, errors, the account's disco, an acknowledged message
//! already in the archive (XEP-0198), a closed stream's messages already in it, and the
//! archive answered by any node of a cluster.

use parley_proto::mam::{NS, RSM, SID};
use parley_proto::ns;
use parley_testkit::cluster::{add_users, ClusterNode};
use parley_testkit::im::{body, chat, error_condition, next_id};
use parley_testkit::{shared_etcd, shared_pg, sm, Client, Received, TestServer};
use parley_xml::Element;

const DATA: &str = "jabber:x:data";

fn ok<T>(r: Result<T, parley_testkit::ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A `<query/>` iq with form fields and an RSM `<set/>`.
fn query(fields: &[(&str, &[&str])], set: &[(&str, &str)]) -> Element {
    let mut form = Element::new("x", DATA)
        .with_attr("type", "submit")
        .with_child(
            Element::new("field", DATA)
                .with_attr("var", "FORM_TYPE")
                .with_child(Element::new("value", DATA).with_text(NS)),
        );
    for (var, values) in fields {
        let mut f = Element::new("field", DATA).with_attr("var", *var);
        for v in *values {
            f.push_child(Element::new("value", DATA).with_text(*v));
        }
        form.push_child(f);
    }
    let mut q = Element::new("query", NS)
        .with_attr("queryid", next_id("q"))
        .with_child(form);
    if !set.is_empty() {
        let mut s = Element::new("set", RSM);
        for (name, text) in set {
            s.push_child(Element::new(*name, RSM).with_text(*text));
        }
        q.push_child(s);
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("mam"))
        .with_child(q)
}

/// One archived result as the client reads it.
#[derive(Debug)]
struct Hit {
    id: String,
    body: String,
    stamp: String,
    from: String,
}

/// Runs a query; its results (checked to carry the query id and come from the archive's
/// JID) and its `<fin/>`, or the iq error.
async fn run(c: &mut Client, archive: &str, iq: &Element) -> Result<(Vec<Hit>, Element), Element> {
    let qid = iq
        .first_child()
        .unwrap()
        .attr("queryid")
        .unwrap()
        .to_owned();
    let (reply, before) = ok(c.iq_collect(iq).await);
    c.clear_stash();
    if reply.attr("type") != Some("result") {
        return Err(reply);
    }
    let mut hits = Vec::new();
    for m in before {
        let Some(result) = m.get_child("result", NS) else {
            continue;
        };
        // §4.2: from the archive's JID, with the query's id.
        assert_eq!(m.attr("from"), Some(archive), "{m}");
        assert_eq!(result.attr("queryid"), Some(qid.as_str()), "{m}");
        let fwd = result
            .get_child("forwarded", ns::FORWARD)
            .expect("forwarded");
        let msg = fwd.get_child("message", ns::CLIENT).expect("message");
        hits.push(Hit {
            id: result.attr("id").unwrap().to_owned(),
            body: body(msg),
            stamp: fwd
                .get_child("delay", ns::DELAY)
                .and_then(|d| d.attr("stamp"))
                .expect("delay stamp")
                .to_owned(),
            from: msg.attr("from").unwrap_or_default().to_owned(),
        });
    }
    let fin = reply.get_child("fin", NS).expect("fin").clone();
    Ok((hits, fin))
}

/// Waits until `c`'s own messages are archived: a session's archive query runs only after
/// its own messages are committed (read-your-writes), and the recipients' copies are
/// written in the same batches.
async fn settle(c: &mut Client, archive: &str) {
    run(c, archive, &query(&[], &[("max", "0")]))
        .await
        .expect("settled");
}

fn bodies(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.body.as_str()).collect()
}

fn rsm(fin: &Element, name: &str) -> Option<String> {
    fin.get_child("set", RSM)?
        .get_child(name, RSM)
        .map(|e| e.text())
}

fn stanza_id_by(msg: &Element, by: &str) -> Option<String> {
    msg.children()
        .find(|c| c.is("stanza-id", SID) && c.attr("by") == Some(by))
        .and_then(|c| c.attr("id"))
        .map(str::to_owned)
}

/// XEP-0313 §3-§4, XEP-0359 §3-§4, XEP-0059 §2: each message with a body is archived for
/// its sender and its recipient, the recipient's copy arriving with its archive id; chat
/// states are not archived; pages go forward and backward with `complete`, `first`,
/// `last` and `count`; forged ids never reach anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0313_both_parties_archive_page_and_stanza_ids_cannot_be_forged() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("desk")).await;
    bob.available().await;
    let mut delivered_ids = Vec::new();
    for i in 0..5 {
        let mut msg = chat("bob@localhost", "chat", &format!("m{i}"));
        if i == 0 {
            // XEP-0359 §3: an id "by" the recipient's server, planted by the sender.
            msg.push_child(
                Element::new("stanza-id", SID)
                    .with_attr("by", "bob@localhost")
                    .with_attr("id", "forged"),
            );
            msg.push_child(Element::new("origin-id", SID).with_attr("id", "origin-0"));
        }
        alice.send(&msg).await;
        let got = ok(bob.expect_message_body(&format!("m{i}")).await);
        let ids: Vec<_> = got
            .children()
            .filter(|c| c.is("stanza-id", SID))
            .map(|c| c.attr("id").unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 1, "exactly the server's id: {got}");
        assert_ne!(ids[0], "forged");
        if i == 0 {
            // The client's own origin id is kept (XEP-0359 §5).
            assert!(got.has_child("origin-id", SID), "{got}");
        }
        delivered_ids.push(stanza_id_by(&got, "bob@localhost").expect("stanza-id by bob"));
    }
    // A chat state is no content (§5.1.1).
    alice
        .send(
            &Element::new("message", ns::CLIENT)
                .with_attr("to", "bob@localhost")
                .with_attr("type", "chat")
                .with_child(Element::new(
                    "composing",
                    "http://jabber.org/protocol/chatstates",
                )),
        )
        .await;

    settle(&mut alice, "alice@localhost").await;
    // Bob's archive: the ids he was given, in order.
    let (hits, fin) = run(&mut bob, "bob@localhost", &query(&[], &[("max", "10")]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(
        hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
        delivered_ids
    );
    assert!(hits.iter().all(|h| h.from == "alice@localhost/phone"));
    assert!(hits.iter().all(|h| h.stamp.ends_with('Z')));
    assert_eq!(fin.attr("complete"), Some("true"), "{fin}");
    assert_eq!(rsm(&fin, "count").as_deref(), Some("5"));

    // Alice's archive pages: forward by two, then backward from the end.
    let (p1, fin1) = run(&mut alice, "alice@localhost", &query(&[], &[("max", "2")]))
        .await
        .unwrap();
    assert_eq!(bodies(&p1), ["m0", "m1"]);
    assert_eq!(fin1.attr("complete"), None);
    assert_eq!(rsm(&fin1, "first"), Some(p1[0].id.clone()));
    let last = rsm(&fin1, "last").unwrap();
    let (p2, _) = run(
        &mut alice,
        "alice@localhost",
        &query(&[], &[("max", "2"), ("after", &last)]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&p2), ["m2", "m3"]);
    let (p3, fin3) = run(
        &mut alice,
        "alice@localhost",
        &query(&[], &[("max", "2"), ("after", &p2[1].id)]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&p3), ["m4"]);
    assert_eq!(fin3.attr("complete"), Some("true"));
    let (back, fin_back) = run(
        &mut alice,
        "alice@localhost",
        &query(&[], &[("max", "3"), ("before", "")]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&back), ["m2", "m3", "m4"]);
    assert_eq!(fin_back.attr("complete"), None);
    let (front, fin_front) = run(
        &mut alice,
        "alice@localhost",
        &query(&[], &[("max", "3"), ("before", &back[0].id)]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&front), ["m0", "m1"]);
    assert_eq!(fin_front.attr("complete"), Some("true"));
}

/// XEP-0313 §4.1: `with`, `start`/`end`, `before-id`/`after-id` and `ids` filter; the form
/// lists them (§4.1.5); an unknown id is `item-not-found`, a bad form `bad-request`, and
/// another account's archive `forbidden`; the account's disco#info shows the features
/// (§7, XEP-0359 §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0313_4_1_filters_form_errors_and_disco() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    bob.available().await;
    carol.available().await;
    for (i, to) in ["bob", "carol", "bob", "carol"].iter().enumerate() {
        alice
            .send(&chat(&format!("{to}@localhost"), "chat", &format!("x{i}")))
            .await;
        let rx = if *to == "bob" { &mut bob } else { &mut carol };
        ok(rx.expect_message_body(&format!("x{i}")).await);
    }
    let archive = "alice@localhost";
    let (with_bob, fin) = run(
        &mut alice,
        archive,
        &query(&[("with", &["bob@localhost"])], &[]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&with_bob), ["x0", "x2"]);
    assert_eq!(rsm(&fin, "count").as_deref(), Some("2"));
    let (all, _) = run(&mut alice, archive, &query(&[], &[])).await.unwrap();
    assert_eq!(all.len(), 4);
    // Time: from the third message's stamp on.
    let (since, _) = run(
        &mut alice,
        archive,
        &query(&[("start", &[&all[2].stamp])], &[]),
    )
    .await
    .unwrap();
    assert!(bodies(&since).ends_with(&["x2", "x3"]), "{since:?}");
    let (until, _) = run(
        &mut alice,
        archive,
        &query(&[("end", &[&all[0].stamp])], &[]),
    )
    .await
    .unwrap();
    assert!(bodies(&until).starts_with(&["x0"]), "{until:?}");
    let (between, _) = run(
        &mut alice,
        archive,
        &query(
            &[("after-id", &[&all[0].id]), ("before-id", &[&all[3].id])],
            &[],
        ),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&between), ["x1", "x2"]);
    let (picked, _) = run(
        &mut alice,
        archive,
        &query(&[("ids", &[&all[3].id, &all[1].id])], &[]),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&picked), ["x1", "x3"]);

    // The form.
    let form = ok(alice
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "form")
            .with_child(Element::new("query", NS)))
        .await);
    let vars: Vec<_> = form
        .get_child("query", NS)
        .and_then(|q| q.get_child("x", DATA))
        .expect("form")
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    for v in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "after-id",
        "before-id",
        "ids",
    ] {
        assert!(vars.iter().any(|x| x == v), "{v} in {vars:?}");
    }

    // Errors.
    let unknown = run(&mut alice, archive, &query(&[], &[("after", "no-such-id")]))
        .await
        .unwrap_err();
    assert_eq!(error_condition(&unknown).as_deref(), Some("item-not-found"));
    let bad = run(&mut alice, archive, &query(&[("withtext", &["hi"])], &[]))
        .await
        .unwrap_err();
    assert_eq!(error_condition(&bad).as_deref(), Some("bad-request"));
    let bad_time = run(
        &mut alice,
        archive,
        &query(&[("start", &["yesterday"])], &[]),
    )
    .await
    .unwrap_err();
    assert_eq!(error_condition(&bad_time).as_deref(), Some("bad-request"));
    let mut other = query(&[], &[]);
    other.set_attr("to", "bob@localhost");
    let forbidden = run(&mut alice, archive, &other).await.unwrap_err();
    assert_eq!(error_condition(&forbidden).as_deref(), Some("forbidden"));

    // The account's features.
    let info = ok(alice
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "disco")
            .with_attr("to", "alice@localhost")
            .with_child(Element::new("query", ns::DISCO_INFO)))
        .await);
    let features: Vec<_> = info
        .get_child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    for f in [NS, "urn:xmpp:mam:2#extended", SID] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
}

fn prefs_iq(ty: &str, default: Option<&str>, always: &[&str], never: &[&str]) -> Element {
    let mut p = Element::new("prefs", NS);
    if let Some(d) = default {
        p.set_attr("default", d);
        let list = |name: &str, jids: &[&str]| {
            jids.iter().fold(Element::new(name, NS), |el, j| {
                el.with_child(Element::new("jid", NS).with_text(*j))
            })
        };
        p.push_child(list("always", always));
        p.push_child(list("never", never));
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", next_id("prefs"))
        .with_child(p)
}

/// XEP-0441 §2: the preferences start at the server's default, are stored, and decide
/// what is archived from then on (never wins over always); a bad one is `bad-request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0441_preferences_decide_what_is_archived() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let got = ok(alice.iq(&prefs_iq("get", None, &[], &[])).await);
    assert_eq!(
        got.get_child("prefs", NS).and_then(|p| p.attr("default")),
        Some("always"),
        "{got}"
    );
    let set = ok(alice
        .iq(&prefs_iq("set", Some("never"), &["carol@localhost"], &[]))
        .await);
    assert_eq!(set.attr("type"), Some("result"), "{set}");
    let back = ok(alice.iq(&prefs_iq("get", None, &[], &[])).await);
    let p = back.get_child("prefs", NS).unwrap();
    assert_eq!(p.attr("default"), Some("never"));
    assert_eq!(
        p.get_child("always", NS)
            .unwrap()
            .children()
            .next()
            .unwrap()
            .text(),
        "carol@localhost"
    );
    alice.send(&chat("bob@localhost", "chat", "unkept")).await;
    let got = ok(bob.expect_message_body("unkept").await);
    // Bob's archive still keeps it (his own preferences), with his id.
    assert!(stanza_id_by(&got, "bob@localhost").is_some(), "{got}");
    let (hits, _) = run(&mut alice, "alice@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let (hits, _) = run(&mut bob, "bob@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["unkept"]);

    let bad = ok(alice
        .iq(&prefs_iq("set", Some("sometimes"), &[], &[]))
        .await);
    assert_eq!(error_condition(&bad).as_deref(), Some("bad-request"));
}

/// XEP-0313 §5.1, XEP-0160, XEP-0280: a message stored offline and the carbons of a
/// conversation carry the ids of the archive copies they belong to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0313_offline_messages_and_carbons_carry_archive_ids() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let mut alice2 = Client::login(server.c2s(), "alice", Some("laptop")).await;
    ok(alice.carbons(true).await);
    ok(alice2.carbons(true).await);
    // Bob is offline: the message waits with its id.
    alice
        .send(&chat("bob@localhost", "chat", "while away"))
        .await;
    let sent = ok(alice2
        .expect_match("a sent carbon", |el| el.has_child("sent", ns::CARBONS))
        .await);
    let inner = sent
        .get_child("sent", ns::CARBONS)
        .and_then(|s| s.get_child("forwarded", ns::FORWARD))
        .and_then(|f| f.get_child("message", ns::CLIENT))
        .expect("forwarded message");
    let alice_id = stanza_id_by(inner, "alice@localhost").expect("sender's archive id");
    settle(&mut alice, "alice@localhost").await;
    let (hits, _) = run(&mut alice2, "alice@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, alice_id);

    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let got = ok(bob.expect_message_body("while away").await);
    let bob_id = stanza_id_by(&got, "bob@localhost").expect("recipient's archive id");
    let (hits, _) = run(&mut bob, "bob@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, bob_id);
}

/// XEP-0198 §4 with XEP-0313: once the server acknowledges a message, it is in both
/// archives, so a client that loses its connection right after can catch up by query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_an_acknowledged_message_is_already_archived() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let enabled = ok(alice.sm_send_for_answer(&sm::enable(false)).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    alice.send(&chat("bob@localhost", "chat", "acked")).await;
    alice.send(&sm::request()).await;
    let a = ok(alice.expect_match("the ack", |el| sm::is(el, "a")).await);
    assert_eq!(sm::h(&a), Some(1), "{a}");
    // Gone at once, without a goodbye.
    alice.abort();
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let (hits, _) = run(&mut bob, "bob@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["acked"]);
    let mut alice = Client::login(server.c2s(), "alice", Some("again")).await;
    let (hits, _) = run(&mut alice, "alice@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["acked"]);
}

/// RFC 6120 §4.4 with XEP-0313: a client that closes its stream right after sending gets
/// our closing tag only once its messages are archived, so that its next session (here at
/// once) reads them back. Each batch lingers a second in this server, so a closing tag that
/// did not wait would come long before the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_4_4_the_closing_tag_waits_until_the_sessions_messages_are_archived() {
    let server = TestServer::start(|c| c.mam.batch_linger_ms = 1000);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    alice
        .send(&chat("bob@localhost", "chat", "last words"))
        .await;
    alice.send_raw("</stream:stream>").await.unwrap();
    loop {
        match alice.recv().await {
            Ok(Received::Close) => break,
            Ok(Received::Element(_)) => continue,
            other => panic!("expected the closing tag, got {other:?}"),
        }
    }
    let mut again = Client::login(server.c2s(), "alice", Some("b")).await;
    let (hits, _) = run(&mut again, "alice@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["last words"]);
}

/// XEP-0313 in a cluster (two `parley` nodes, a real etcd and PostgreSQL): with the two
/// parties on different nodes, each archive has the message, and either node answers
/// either account's queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0313_any_node_answers_for_parties_on_different_nodes() {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("mam");
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, ""))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let mut alice = Client::login(nodes[0].c2s, "alice", Some("n1")).await;
    let mut bob = Client::login(nodes[1].c2s, "bob", Some("n2")).await;
    bob.available().await;
    alice
        .send(&chat("bob@localhost", "chat", "across nodes"))
        .await;
    let got = ok(bob.expect_message_body("across nodes").await);
    let bob_id = stanza_id_by(&got, "bob@localhost").expect("stanza-id");
    settle(&mut alice, "alice@localhost").await;
    let (hits, _) = run(&mut bob, "bob@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        [bob_id.as_str()]
    );
    // Each account asks the other node.
    let mut alice_n2 = Client::login(nodes[1].c2s, "alice", Some("n2")).await;
    let (hits, _) = run(&mut alice_n2, "alice@localhost", &query(&[], &[]))
        .await
        .unwrap();
    assert_eq!(bodies(&hits), ["across nodes"]);
    let mut bob_n1 = Client::login(nodes[0].c2s, "bob", Some("n1")).await;
    let (hits, _) = run(
        &mut bob_n1,
        "bob@localhost",
        &query(&[("with", &["alice@localhost"])], &[]),
    )
    .await
    .unwrap();
    assert_eq!(hits[0].id, bob_id);
}

/// A failed archive write (here the tables are gone, as if the disk refused it) loses no
/// message: the message is delivered, the sender's XEP-0198 acknowledgement still comes
/// (nothing waits forever for a write that failed), the failure is counted in
/// `parley_archive_batches_total{result="failed"}`, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_archive_write_delivers_and_acknowledges() {
    let server = TestServer::start(|_| {});
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    // Another connection to the same file breaks the archive under the running server.
    let url = server.config.storage.url.clone().unwrap();
    let path = url.trim_start_matches("sqlite://").to_owned();
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        // Both tables a batch may write (SQLite's appends go to the log, docs/archive.md).
        sqlx::raw_sql("DROP TABLE archive_log; DROP TABLE archive")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let enabled = ok(alice.sm_send_for_answer(&sm::enable(false)).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    alice
        .send(&chat("bob@localhost", "chat", "kept anyway"))
        .await;
    alice.send(&sm::request()).await;
    let a = ok(alice.expect_match("the ack", |el| sm::is(el, "a")).await);
    assert_eq!(sm::h(&a), Some(1), "{a}");
    let got = ok(bob
        .expect_match("the message", |el| body(el) == "kept anyway")
        .await);
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
    let (_, metrics) =
        parley_testkit::http_get(server.handle.admin.unwrap(), "/metrics", None).unwrap();
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("parley_archive_batches_total") && l.contains("failed"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(failed >= 1, "{metrics}");
    // The server goes on: another message, another ack.
    alice
        .send(&chat("bob@localhost", "chat", "still here"))
        .await;
    alice.send(&sm::request()).await;
    let a = ok(alice
        .expect_match("the second ack", |el| sm::is(el, "a"))
        .await);
    assert_eq!(sm::h(&a), Some(2), "{a}");
}

/// `[mam] max_in_flight_per_session`: a session at its bound stops reading until the
/// writer catches up, and nothing is lost or reordered: with a bound of one message and
/// batches that wait, twenty messages all arrive in order, are acknowledged, and are
/// archived in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_at_its_archive_bound_waits_and_loses_nothing() {
    let server = TestServer::start(|c| {
        c.mam.max_in_flight_per_session = 1;
        c.mam.batch_linger_ms = 20;
    });
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let enabled = ok(alice.sm_send_for_answer(&sm::enable(false)).await);
    assert!(sm::is(&enabled, "enabled"), "{enabled}");
    let sent: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    for b in &sent {
        alice.send(&chat("bob@localhost", "chat", b)).await;
    }
    alice.send(&sm::request()).await;
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let m = ok(bob
            .expect_match("a message", |el| !body(el).is_empty())
            .await);
        got.push(body(&m));
    }
    assert_eq!(got, sent);
    let a = ok(alice.expect_match("the ack", |el| sm::is(el, "a")).await);
    assert_eq!(sm::h(&a), Some(20), "{a}");
    let (hits, _) = run(&mut alice, "alice@localhost", &query(&[], &[("max", "50")]))
        .await
        .unwrap();
    let archived: Vec<&str> = bodies(&hits);
    assert_eq!(
        archived,
        sent.iter().map(String::as_str).collect::<Vec<_>>()
    );
}
