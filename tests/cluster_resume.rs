//! XEP-0198 §5 across a cluster, against real processes (two or three `parley` nodes, a real
//! etcd and PostgreSQL): a client whose connection died resumes its session on whichever
//! node the load balancer picks, with nothing lost and nothing repeated; two resumes at
//! once have exactly one winner; a session whose node is gone cannot be resumed.

use std::net::SocketAddr;

use parley_proto::ns;
use parley_testkit::cluster::{add_users, befriend_at, ClusterNode, Extra};
use parley_testkit::im::{body, chat};
use parley_testkit::{shared_etcd, shared_pg, sm, Client, Received};
use parley_xml::Element;

/// `n` nodes; the server never asks for acks by itself in these tests (the counts stay
/// the test's to decide).
fn cluster(n: usize) -> Vec<ClusterNode> {
    cluster_with_faults(n, "")
}

/// [`cluster`], with the fault points `faults` (see `parley_session::faults`) on the first
/// node, and alice and bob contacts of each other.
fn cluster_with_faults(n: usize, faults: &str) -> Vec<ClusterNode> {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    befriend_at(&db, "alice", "bob");
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("r");
    let nodes: Vec<ClusterNode> = (1..=n)
        .map(|i| {
            let extra = Extra {
                c2s: "sm_ack_every = 100000\nsm_ack_delay_ms = 3600000".into(),
                faults: if i == 1 { faults.into() } else { String::new() },
                ..Extra::default()
            };
            ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra)
        })
        .collect();
    parley_testkit::cluster::wait_members(&nodes, n);
    nodes
}

/// The exit code of a node that reached a fault point that ends it.
const FAULT_EXIT: i32 = 86;

fn ok<T>(r: Result<T, parley_testkit::ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn is_message(el: &Element) -> bool {
    el.is("message", ns::CLIENT) && el.get_child("body", ns::CLIENT).is_some()
}

async fn next_bodies(c: &mut Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(body(&ok(c.expect_match("a message", is_message).await)));
    }
    out
}

async fn send_numbered(b: &mut Client, to: &str, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        b.send(&chat(to, "chat", &i.to_string())).await;
    }
    // Everything sent has been routed once bob's own stream answers a round trip.
    ok(b.sync().await);
}

/// Resumes `previd` on `addr` with the client's count `h`; returns the client and the
/// server's answer.
async fn resume_on(addr: SocketAddr, previd: &str, h: u32) -> (Client, Element) {
    let mut c = Client::authed(addr, "alice").await;
    let answer = ok(c.sm_send_for_answer(&sm::resume(previd, h)).await);
    (c, answer)
}

/// XEP-0198 §5 on another node: alice's session on n1 hibernates; she resumes on n2 and
/// gets exactly what she had not handled, in order, then what bob sends next (the routing
/// moved with her). Later she resumes the same session back on n1 under the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_a_session_resumes_on_another_node() {
    let nodes = cluster(2);
    let phone = "alice@localhost/phone";
    let mut a = Client::login(nodes[0].c2s, "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    let mut b = Client::login(nodes[1].c2s, "bob", Some("b")).await;
    send_numbered(&mut b, phone, 1..=3).await;
    assert_eq!(next_bodies(&mut a, 3).await, ["1", "2", "3"]);
    a.abort();
    send_numbered(&mut b, phone, 4..=5).await;

    let (mut a, answer) = resume_on(nodes[1].c2s, &id, 1).await;
    assert!(
        sm::is(&answer, "resumed"),
        "XEP-0198 §5 on another node: {answer}"
    );
    assert_eq!(answer.attr("previd"), Some(id.as_str()));
    assert_eq!(
        next_bodies(&mut a, 4).await,
        ["2", "3", "4", "5"],
        "everything after h=1, once, in order"
    );
    send_numbered(&mut b, phone, 6..=6).await;
    assert_eq!(
        next_bodies(&mut a, 1).await,
        ["6"],
        "routing follows the session"
    );
    // Nothing more: anything repeated would have come before bob's last message.
    ok(a.expect_none_yet("a repeated message", is_message).await);
    let count = ok(a.sm_server_count().await);
    assert_eq!(count, 0, "alice sent no stanza since <enable/>");

    // Handled 6 in all; back on n1 under the same id.
    a.send(&sm::ack(6)).await;
    ok(a.sm_server_count().await);
    a.abort();
    send_numbered(&mut b, phone, 7..=7).await;
    let (mut a, answer) = resume_on(nodes[0].c2s, &id, 6).await;
    assert!(
        sm::is(&answer, "resumed"),
        "a moved session resumes again: {answer}"
    );
    assert_eq!(next_bodies(&mut a, 1).await, ["7"]);
}

/// What became of a connection that resumed, once bob has sent one more message.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// It holds the session: the message came.
    Holds,
    /// Another resume took the session from it: its connection was dropped.
    Dropped,
}

async fn fate(mut c: Client) -> Fate {
    loop {
        match c.recv().await {
            Ok(Received::Element(el)) if is_message(&el) && body(&el) == "after" => {
                return Fate::Holds
            }
            // The connection is dropped without a word (it is presumed dead): EOF, or a
            // TLS stream cut without close_notify.
            Ok(Received::Eof | Received::Close) | Err(parley_testkit::ClientError::Io(_)) => {
                return Fate::Dropped
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// XEP-0198 §5, a race: two connections resume the same session at once on two other
/// nodes. The session ends up in exactly one place: each resume either fails with
/// `<item-not-found/>` or wins, and when both win (the second took the session from the
/// first, as a resume over a live connection does) the first connection is dropped; the
/// next message reaches exactly one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_two_resumes_at_once_have_one_winner() {
    let nodes = cluster(3);
    let mut a = Client::login(nodes[0].c2s, "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    a.abort();
    let (x, y) = tokio::join!(
        resume_on(nodes[1].c2s, &id, 0),
        resume_on(nodes[2].c2s, &id, 0)
    );
    let mut resumed = Vec::new();
    for (c, answer) in [x, y] {
        if sm::is(&answer, "resumed") {
            resumed.push(c);
        } else {
            assert_eq!(
                sm::failed_condition(&answer).as_deref(),
                Some("item-not-found"),
                "{answer}"
            );
        }
    }
    assert!(!resumed.is_empty(), "one of the two resumes wins");
    let mut b = Client::login(nodes[0].c2s, "bob", Some("b")).await;
    b.send(&chat("alice@localhost/phone", "chat", "after"))
        .await;

    let mut fates = Vec::new();
    for f in futures_join(resumed.into_iter().map(fate).collect()).await {
        fates.push(f);
    }
    fates.sort_by_key(|f| *f == Fate::Dropped);
    assert_eq!(
        fates[0],
        Fate::Holds,
        "exactly one holds the session: {fates:?}"
    );
    assert!(fates[1..].iter().all(|f| *f == Fate::Dropped), "{fates:?}");
}

/// Runs the futures side by side and returns their outputs in order.
async fn futures_join<F: std::future::Future<Output = Fate> + Send + 'static>(
    futs: Vec<F>,
) -> Vec<Fate> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// XEP-0198 §5 when the node that held the session is gone (SIGKILL): nothing can be
/// resumed; the answer is `<failed><item-not-found/></failed>` and the client binds afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_the_holders_loss_fails_the_resume() {
    let mut nodes = cluster(2);
    let mut a = Client::login(nodes[0].c2s, "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    a.abort();
    nodes[0].kill();
    let (mut a, answer) = resume_on(nodes[1].c2s, &id, 0).await;
    assert!(sm::is(&answer, "failed"), "{answer}");
    assert_eq!(
        sm::failed_condition(&answer).as_deref(),
        Some("item-not-found")
    );
    assert!(
        a.bind(Some("phone")).await.is_ok(),
        "the client binds afresh"
    );
}

/// Logs in `user`/`resource` on `addr` and sends initial presence; returns the client once
/// its own presence came back.
async fn online(addr: SocketAddr, user: &str, resource: &str) -> Client {
    let mut c = Client::login(addr, user, Some(resource)).await;
    c.available().await;
    let me = format!("{user}@localhost/{resource}");
    ok(
        c.expect_match("the client's own presence", |el| is_presence(el, &me, None))
            .await,
    );
    c
}

/// Bob online on n2, then alice online on n1 (bob sees her presence) with resumption
/// enabled: alice's client, bob's, and alice's SM id.
async fn alice_on_n1_bob_on_n2(nodes: &[ClusterNode]) -> (Client, Client, String) {
    let phone = "alice@localhost/phone";
    let mut b = online(nodes[1].c2s, "bob", "b").await;
    let mut a = online(nodes[0].c2s, "alice", "phone").await;
    ok(
        b.expect_match("alice's presence", |el| is_presence(el, phone, None))
            .await,
    );
    // Bob's presence (the answer to alice's probe) is in before stream management starts
    // counting: else it may be counted first, and the tests' `h` (which counts only the
    // numbered messages) would acknowledge it instead of message 1.
    ok(a.expect_match("bob's presence", |el| {
        is_presence(el, "bob@localhost/b", None)
    })
    .await);
    let id = ok(a.sm_enable_resumable().await);
    (a, b, id)
}

fn is_presence(el: &Element, from: &str, ty: Option<&str>) -> bool {
    el.is("presence", ns::CLIENT) && el.attr("from") == Some(from) && el.attr("type") == ty
}

/// XEP-0198 §5, a race across nodes: the resume reaches the node holding the session in
/// the same instant as the hibernation timeout (fault point `sm-timeout-at-take` on n1:
/// the timer is handled first). One winner: the session ends on n1 (bob sees alice's
/// resource leave, her unacknowledged messages go offline), and the resume on n2 fails
/// with `<item-not-found/>`; the client binds afresh there and gets the messages once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_a_resume_meeting_the_timeout_on_another_node_has_one_winner() {
    let nodes = cluster_with_faults(2, "sm-timeout-at-take");
    let phone = "alice@localhost/phone";
    let (mut a, mut b, id) = alice_on_n1_bob_on_n2(&nodes).await;
    send_numbered(&mut b, phone, 1..=2).await;
    assert_eq!(next_bodies(&mut a, 2).await, ["1", "2"]);
    a.abort();

    let (mut late, answer) = resume_on(nodes[1].c2s, &id, 0).await;
    assert_eq!(
        sm::failed_condition(&answer).as_deref(),
        Some("item-not-found"),
        "the timeout won: {answer}"
    );
    ok(
        b.expect_match("alice's unavailable presence: the session ended", |el| {
            is_presence(el, phone, Some("unavailable"))
        })
        .await,
    );
    assert!(
        late.bind(Some("phone")).await.is_ok(),
        "the client binds afresh"
    );
    late.available().await;
    assert_eq!(
        next_bodies(&mut late, 2).await,
        ["1", "2"],
        "from offline storage"
    );
    ok(late
        .expect_none_before_user_sync("a message delivered twice", is_message)
        .await);
}

/// XEP-0198 §5 when the node holding the session dies as another node asks for it (fault
/// point `exit-at-take` on n1): nothing was handed over, so nothing can be resumed. The
/// resume on n2 fails with `<item-not-found/>` (within the take's time limit) and the client
/// binds afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_the_holder_dying_before_its_export_fails_the_resume() {
    let mut nodes = cluster_with_faults(2, "exit-at-take");
    let mut a = Client::login(nodes[0].c2s, "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    a.abort();
    let (mut a, answer) = resume_on(nodes[1].c2s, &id, 0).await;
    assert_eq!(
        sm::failed_condition(&answer).as_deref(),
        Some("item-not-found"),
        "{answer}"
    );
    let status = nodes[0].wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(FAULT_EXIT),
        "n1 died at the fault point"
    );
    assert!(
        a.bind(Some("phone")).await.is_ok(),
        "the client binds afresh"
    );
}

/// XEP-0198 §5 when the node holding the session dies in the middle of the hand-over, after
/// it exported the session and before it heard that the other node adopted it (fault point
/// `exit-at-commit` on n1). The resuming node had everything it needed: the resume
/// succeeds with every unacknowledged message once, the session goes on on n2, and when
/// n1's lease expires nobody announces alice's resource as gone (its claim had moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_the_holder_dying_after_its_export_leaves_one_session() {
    let mut nodes = cluster_with_faults(2, "exit-at-commit");
    let phone = "alice@localhost/phone";
    let (mut a, mut b, id) = alice_on_n1_bob_on_n2(&nodes).await;
    send_numbered(&mut b, phone, 1..=3).await;
    assert_eq!(next_bodies(&mut a, 3).await, ["1", "2", "3"]);
    a.abort();
    send_numbered(&mut b, phone, 4..=5).await;

    let (mut a, answer) = resume_on(nodes[1].c2s, &id, 1).await;
    assert!(sm::is(&answer, "resumed"), "{answer}");
    assert_eq!(next_bodies(&mut a, 4).await, ["2", "3", "4", "5"]);
    let status = nodes[0].wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(FAULT_EXIT),
        "n1 died at the fault point"
    );
    parley_testkit::cluster::wait_members(&nodes[1..], 1);

    send_numbered(&mut b, phone, 6..=6).await;
    assert_eq!(
        next_bodies(&mut a, 1).await,
        ["6"],
        "the session goes on on n2"
    );
    b.send(&chat("alice@localhost", "chat", "bare")).await;
    assert_eq!(
        next_bodies(&mut a, 1).await,
        ["bare"],
        "and its user actor knows it"
    );
    ok(
        b.expect_none_before_ping("alice's resource announced gone", |el| {
            is_presence(el, phone, Some("unavailable"))
        })
        .await,
    );
    ok(a.expect_none_yet("a repeated message", is_message).await);
}

/// XEP-0198 §5 while another node's registry cache still shows a resumed session on its old
/// node (fault point `stale-owners` on n1, the view of a node whose watch trails behind —
/// under load it trailed long enough to lose one message in a rolling restart): bob on n1
/// keeps routing alice's full JID to n2, where her session was. n2 forwards what comes to
/// the moved session to n3, where she resumed, instead of taking it for a stanza to a gone
/// resource (which would put it in offline storage, where a resumed client never looks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_a_stale_route_to_the_old_node_still_reaches_the_resumed_session() {
    let nodes = cluster_with_faults(3, "stale-owners");
    let phone = "alice@localhost/phone";
    let mut a = Client::login(nodes[1].c2s, "alice", Some("phone")).await;
    let id = ok(a.sm_enable_resumable().await);
    let mut b = Client::login(nodes[0].c2s, "bob", Some("b")).await;
    send_numbered(&mut b, phone, 1..=2).await;
    assert_eq!(next_bodies(&mut a, 2).await, ["1", "2"]);
    a.abort();

    let (mut a, answer) = resume_on(nodes[2].c2s, &id, 2).await;
    assert!(
        sm::is(&answer, "resumed"),
        "XEP-0198 §5 on another node: {answer}"
    );
    send_numbered(&mut b, phone, 3..=5).await;
    assert_eq!(
        next_bodies(&mut a, 3).await,
        ["3", "4", "5"],
        "sent through the old node, each once, in order"
    );
    // Nothing repeated: a copy would come before the next message.
    send_numbered(&mut b, phone, 6..=6).await;
    assert_eq!(next_bodies(&mut a, 1).await, ["6"]);
}
