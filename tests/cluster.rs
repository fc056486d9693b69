//! The cluster issue against real processes: three `parley` nodes sharing a real etcd and a
//! real PostgreSQL, clients on different nodes, nodes killed and stopped under them.
//!
//! Each test takes its own database and its own etcd key prefix, so they run side by side.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parley_proto::ns;
use parley_testkit::cluster::{add_users, ClusterNode, Extra, Secret};
use parley_testkit::im::{chat, push_item};
use parley_testkit::{shared_etcd, shared_pg, Client, Haproxy, Received};
use parley_xml::Element;

/// Polls `done` (each poll is a real request) until it holds; fails naming `what` after
/// `within`.
fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    parley_testkit::poll_until(what, within, || done().then_some(()));
}

struct Cluster {
    nodes: Vec<ClusterNode>,
}

impl Cluster {
    fn start(n: usize, ttl_s: u64, c2s_extra: &str) -> Cluster {
        let db = shared_pg().database();
        add_users(&db, &["alice", "bob", "carol", "dave"]);
        let etcd = shared_etcd().endpoint.clone();
        let prefix = parley_testkit::cluster::random_prefix("t");
        let nodes = (1..=n)
            .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, ttl_s, c2s_extra))
            .collect();
        let cluster = Cluster { nodes };
        cluster.wait_members(n);
        cluster
    }

    /// Waits until every node sees `n` members.
    fn wait_members(&self, n: usize) {
        parley_testkit::cluster::wait_members(&self.nodes, n);
    }

    fn c2s(&self, i: usize) -> SocketAddr {
        self.nodes[i].c2s
    }
}

async fn online(addr: SocketAddr, user: &str, resource: &str, priority: i8) -> Client {
    let mut c = Client::login(addr, user, Some(resource)).await;
    c.roster().await.expect("roster get");
    c.available_with_priority(priority).await;
    c.sync().await.expect("sync");
    c
}

fn bare(user: &str) -> String {
    format!("{user}@localhost")
}

async fn expect_push(c: &mut Client, jid: &str, sub: &str) {
    let (j, s) = (jid.to_owned(), sub.to_owned());
    let push = c
        .expect_match(&format!("roster push {jid} {sub}"), move |el| {
            push_item(el).is_some_and(|i| i.jid == j && i.subscription == s)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.ack_push(&push).await;
}

/// Mutual subscription between `a` and `b`, whose sessions sit on different nodes.
async fn befriend(ca: &mut Client, a: &str, cb: &mut Client, b: &str) {
    ca.subscribe(&bare(b)).await;
    cb.expect_presence_from(&bare(a), "subscribe")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cb.approve(&bare(a)).await;
    expect_push(ca, &bare(b), "to").await;
    cb.subscribe(&bare(a)).await;
    ca.expect_presence_from(&bare(b), "subscribe")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ca.approve(&bare(b)).await;
    expect_push(ca, &bare(b), "both").await;
    expect_push(cb, &bare(a), "both").await;
}

async fn stream_error(c: &mut Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv_within(left).await {
            Ok(Some(Received::Element(el))) if el.name() == "error" => {
                return el
                    .children()
                    .find(|c| c.ns() == ns::STREAM_ERRORS)
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
            }
            Ok(Some(Received::Element(_) | Received::Header(_))) => {}
            other => panic!("expected a stream error, got {other:?}"),
        }
    }
}

fn sessions_of(node: &ClusterNode, query: &str) -> Vec<serde_json::Value> {
    let (status, body) = node.api(&format!("/api/v1/sessions{query}"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["sessions"].as_array().unwrap().clone()
}

fn jids(records: &[serde_json::Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["jid"].as_str().unwrap().to_owned())
        .collect()
}

/// RFC 6121 across nodes: subscriptions and roster pushes to interested resources on every
/// node (§2.1.6), presence broadcast and probes (§4.2, §4.3), bare-JID routing by priority
/// (§8.5.2.1.1), full-JID delivery (§8.5.3.1), XEP-0280 carbons, XEP-0160 offline storage,
/// directed-presence cleanup (§4.6.3); and the admin API answering the same from any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_behaviour_holds_across_nodes() {
    let cluster = Cluster::start(3, 10, "");
    // alice/a on n1 (priority 5), bob/b on n2, alice/c on n3 (priority 1).
    let mut alice_a = online(cluster.c2s(0), "alice", "a", 5).await;
    let mut bob = online(cluster.c2s(1), "bob", "b", 0).await;
    let mut alice_c = online(cluster.c2s(2), "alice", "c", 1).await;
    alice_a
        .expect_presence_from("alice@localhost/c", "available")
        .await
        .expect("own resources see each other (§4.2.2)");

    befriend(&mut alice_a, "alice", &mut bob, "bob").await;
    // §2.1.6: the interested resource on the third node got every push too.
    expect_push(&mut alice_c, &bare("bob"), "both").await;

    // §4.3: probes answered across nodes — a fresh bob resource on n3 learns both of alice's.
    let mut bob2 = online(cluster.c2s(2), "bob", "b2", 0).await;
    bob2.expect_presence_from("alice@localhost/a", "available")
        .await
        .expect("probe answer for alice/a");
    bob2.expect_presence_from("alice@localhost/c", "available")
        .await
        .expect("probe answer for alice/c");

    // §8.5.2.1.1: the bare JID goes to the highest priority only (alice/a on n1).
    bob.send(&chat("alice@localhost", "chat", "to the bare jid"))
        .await;
    alice_a
        .expect_message_body("to the bare jid")
        .await
        .expect("highest priority gets it");
    // A timed window: alice/a and alice/c are on different nodes, so a copy for alice/c could
    // cross a node link that no round trip of alice/c's is known to be ordered with.
    alice_c
        .expect_none_within(
            Duration::from_millis(300),
            "a message",
            |el: &parley_xml::Element| el.is("message", ns::CLIENT),
        )
        .await
        .expect("the lower priority does not");

    // §8.5.3.1: full JID, node to node.
    bob.send(&chat("alice@localhost/c", "chat", "to c")).await;
    alice_c.expect_message_body("to c").await.expect("full JID");

    // XEP-0280: alice/c enables carbons; a message to alice/a is copied to it.
    alice_c.carbons(true).await.expect("carbons enable");
    // The registry carries the flag to bob's node; wait until bob's node sees it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        bob.send(&chat("alice@localhost/a", "chat", "carbon me"))
            .await;
        alice_a
            .expect_message_body("carbon me")
            .await
            .expect("direct");
        let got = alice_c
            .collect_within(Duration::from_millis(300))
            .await
            .unwrap();
        if got.iter().any(|el| el.has_child("received", ns::CARBONS)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no received carbon on the other node"
        );
    }

    // XEP-0160: carol is offline; the message waits and reaches her on n2 with a delay stamp.
    bob.send(&chat("carol@localhost", "chat", "while you were out"))
        .await;
    bob.sync().await.unwrap();
    let mut carol = Client::login(cluster.c2s(1), "carol", Some("c")).await;
    carol.available().await;
    let m = carol
        .expect_message_body("while you were out")
        .await
        .expect("offline message");
    assert!(m.has_child("delay", "urn:xmpp:delay"), "{m}");

    // §4.6.3: directed presence from dave (n1) to carol (n2), then dave leaves: carol is told.
    let mut dave = online(cluster.c2s(0), "dave", "d", 0).await;
    dave.send_presence_to("carol@localhost/c", None).await;
    carol
        .expect_presence_from("dave@localhost/d", "available")
        .await
        .expect("directed presence");
    dave.send_raw("</stream:stream>").await.unwrap();
    carol
        .expect_presence_from("dave@localhost/d", "unavailable")
        .await
        .expect("directed presence ends with the session");

    // Admin API: every node lists the same sessions, with their nodes and Prosody fields.
    let expected: BTreeSet<String> = [
        "alice@localhost/a",
        "alice@localhost/c",
        "bob@localhost/b",
        "bob@localhost/b2",
        "carol@localhost/c",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for node in &cluster.nodes {
        let records = parley_testkit::poll_until(
            &format!("{} lists {expected:?}", node.id),
            Duration::from_secs(5),
            || {
                let records = sessions_of(node, "");
                (jids(&records) == expected).then_some(records)
            },
        );
        let a = records
            .iter()
            .find(|r| r["jid"] == "alice@localhost/a")
            .unwrap();
        assert_eq!(a["node"], "n1", "{a}");
        assert_eq!(a["priority"], 5, "{a}");
        assert_eq!(a["available"], true, "{a}");
        assert_eq!(a["interested"], true, "{a}");
        assert_eq!(a["ip"], "127.0.0.1", "{a}");
        assert_eq!(a["secure"], true, "{a}");
        assert_eq!(a["type"], "c2s", "{a}");
        assert!(a["created"].as_i64().unwrap() > 0, "{a}");
        let by_node = sessions_of(node, "?node=n3");
        assert_eq!(
            jids(&by_node),
            ["alice@localhost/c", "bob@localhost/b2"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        );
        let (status, body) = node.api("/api/v1/users/alice@localhost/sessions");
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["sessions"].as_array().unwrap().len(), 2, "{body}");
        // Pagination: two pages of 3 and 2.
        let (_, body) = node.api("/api/v1/sessions?limit=3");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["sessions"].as_array().unwrap().len(), 3);
        assert_eq!(page["total"], 5);
        let next = page["next"].as_str().expect("a next cursor").to_owned();
        let (_, body) = node.api(&format!("/api/v1/sessions?limit=3&after={next}"));
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["sessions"].as_array().unwrap().len(), 2, "{body}");
        assert!(page["next"].is_null());
        assert_eq!(node.get("/api/v1/nodes").unwrap().0, 401);
    }
    let metrics = cluster.nodes[0].get("/metrics").unwrap().1;
    for needle in [
        "parley_stanzas_in_total",
        "parley_routing_seconds_bucket",
        "parley_etcd_requests_total",
        "parley_node_link_up{node=\"n1\",peer=\"n2\"} 1",
        "parley_sessions{type=\"c2s\",node=\"n1\"}",
        "parley_registry_cache_bytes",
        "parley_auth_total{node=\"n1\",mechanism=\"SCRAM-SHA-256\",result=\"success\"}",
        "parley_connections_total{node=\"n1\",listener=\"c2s\",result=\"accepted\"}",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    // Issue 17: each node counts only its own sessions, so the sum over the nodes' scrapes
    // is the cluster's: alice/a, bob/b, alice/c, bob/b2 and carol's.
    assert!(
        !metrics.contains("parley_sessions{type=\"c2s\",node=\"n2\"}"),
        "{metrics}"
    );
    let c2s_sessions = |text: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with("parley_sessions{type=\"c2s\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let total: u64 = cluster
        .nodes
        .iter()
        .map(|n| c2s_sessions(&n.get("/metrics").unwrap().1))
        .sum();
    assert_eq!(total, 5, "the sum of every node's own sessions");
}

/// RFC 6120 §7.7.2.2 across nodes: under kick_old a bind on another node replaces the old
/// session, which gets `<conflict/>`; under kick_new, of 100 concurrent binds of one full JID
/// spread over three nodes exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_7_7_2_2_resource_conflict_is_cluster_wide() {
    let cluster = Cluster::start(2, 10, "");
    let mut old = Client::login(cluster.c2s(0), "alice", Some("same")).await;
    let _new = Client::login(cluster.c2s(1), "alice", Some("same")).await;
    assert_eq!(stream_error(&mut old).await, "conflict");
    drop(cluster);

    let cluster = Cluster::start(3, 10, "resource_conflict = \"kick_new\"");
    let mut authed = Vec::new();
    for i in 0..100 {
        authed.push(Client::authed(cluster.c2s(i % 3), "bob").await);
    }
    let binds = authed.into_iter().map(|mut c| {
        tokio::spawn(async move {
            let won = c.bind(Some("one")).await.is_ok();
            (won, c)
        })
    });
    let mut winners = 0;
    let mut keep = Vec::new();
    for b in binds {
        let (won, c) = b.await.unwrap();
        winners += usize::from(won);
        keep.push(c);
    }
    assert_eq!(winners, 1, "exactly one of 100 concurrent binds wins");
    let records = sessions_of(&cluster.nodes[0], "?user=bob@localhost");
    assert_eq!(records.len(), 1, "{records:?}");
}

/// Node loss by SIGKILL: the node's keys are gone within TTL + 2 s; contacts on the
/// surviving nodes get unavailable presence for its resources (RFC 6121 §4.5.2); messages
/// between sessions on the surviving nodes are never lost (a ledger of ids); messages to the
/// lost resource's bare JID take the other-resource path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_node_is_noticed_and_nothing_is_lost() {
    const TTL: u64 = 3;
    let mut cluster = Cluster::start(3, TTL, "");
    let mut alice_a = online(cluster.c2s(0), "alice", "a", 0).await;
    let mut bob = online(cluster.c2s(1), "bob", "b", 0).await;
    befriend(&mut alice_a, "alice", &mut bob, "bob").await;
    let mut alice_k = online(cluster.c2s(2), "alice", "k", 10).await;
    bob.expect_presence_from("alice@localhost/k", "available")
        .await
        .expect("alice/k available");
    alice_k.sync().await.unwrap();

    // Chat between the survivors around n3's death, in three batches tied to events: before
    // the kill, right after it (n3 still registered), and right after the survivors noticed
    // (ownership moving). Every id must arrive.
    let send_batch = |from: u32| {
        (from..from + 100).map(|i| {
            let mut m = chat("bob@localhost/b", "chat", &format!("ledger {i}"));
            m.set_attr("id", format!("l{i}"));
            m
        })
    };
    for m in send_batch(0) {
        alice_a.send(&m).await;
    }
    let killed_at = Instant::now();
    cluster.nodes[2].kill();
    for m in send_batch(100) {
        alice_a.send(&m).await;
    }

    let mut ledger = BTreeSet::new();
    let mut saw_unavailable = None;
    let deadline = Instant::now() + Duration::from_secs(TTL + 10);
    while (ledger.len() < 300 || saw_unavailable.is_none()) && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(Received::Element(el))) = bob.recv_within(left).await {
            if el.is("message", ns::CLIENT) {
                ledger.insert(el.attr("id").unwrap_or_default().to_owned());
            } else if el.is("presence", ns::CLIENT)
                && el.attr("from") == Some("alice@localhost/k")
                && el.attr("type") == Some("unavailable")
            {
                saw_unavailable = Some(killed_at.elapsed());
                for m in send_batch(200) {
                    alice_a.send(&m).await;
                }
            }
        }
    }
    let missing: Vec<u32> = (0..300)
        .filter(|i| !ledger.contains(&format!("l{i}")))
        .collect();
    assert!(
        missing.is_empty() && saw_unavailable.is_some(),
        "ledger missing {} ids ({:?}..{:?}); unavailable seen after {saw_unavailable:?}\n\
         n1 log:\n{}\nn2 log:\n{}",
        missing.len(),
        missing.first(),
        missing.last(),
        cluster.nodes[0].log(),
        cluster.nodes[1].log()
    );
    let took = saw_unavailable.expect("unavailable presence for the killed node's resource");
    assert!(
        took <= Duration::from_secs(TTL + 2),
        "unavailable after {took:?}"
    );
    // The killed node's keys are gone from the registry as every survivor sees it.
    for node in &cluster.nodes[..2] {
        let records = sessions_of(node, "?node=n3");
        assert!(records.is_empty(), "{records:?}");
    }
    // The bare JID now goes to the remaining resource.
    bob.send(&chat("alice@localhost", "chat", "after the loss"))
        .await;
    alice_a
        .expect_message_body("after the loss")
        .await
        .expect("other-resource path");
}

/// SIGTERM: readiness turns false, sessions get `<system-shutdown/>`, the node's keys are
/// deleted at once (long before the TTL), and the process exits in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_cluster_cleanly() {
    const TTL: u64 = 30;
    let mut cluster = Cluster::start(2, TTL, "");
    let mut leaving = online(cluster.c2s(1), "alice", "bye", 0).await;
    let watcher = &cluster.nodes[0];
    wait_for("n1 sees n2's session", Duration::from_secs(5), || {
        !sessions_of(watcher, "?node=n2").is_empty()
    });
    // The CLI goes through the admin API and answers for the whole cluster.
    let nodes = cluster.nodes[0].cli(&["cluster", "nodes"]);
    assert!(nodes.contains("n1 ") && nodes.contains("n2 "), "{nodes}");
    assert!(nodes.contains("link-up"), "{nodes}");
    let listed = cluster.nodes[0].cli(&["sessions", "list"]);
    assert!(
        listed.contains("alice@localhost/bye") && listed.contains(" n2"),
        "{listed}"
    );
    let admin = cluster.nodes[1].admin;
    let took = cluster.nodes[1].terminate();
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert_eq!(stream_error(&mut leaving).await, "system-shutdown");
    assert!(parley_testkit::cluster::http_get(admin, "/ready", None).is_none());
    // Keys gone at once, not after the 30 s TTL.
    wait_for(
        "n2's keys gone after the clean leave",
        Duration::from_secs(3),
        || sessions_of(&cluster.nodes[0], "?node=n2").is_empty(),
    );
    let (_, body) = cluster.nodes[0].api("/api/v1/nodes");
    assert!(!body.contains("\"n2\""), "{body}");
}

/// Whether etcd holds `key` (through its HTTP gateway, bypassing every node).
fn registry_holds(key: &str) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let (status, body) = shared_etcd()
        .http("POST", "/v3/kv/range", &format!("{{\"key\":\"{b64}\"}}"))
        .expect("etcd gateway");
    assert_eq!(status, 200, "{body}");
    body.contains("\"kvs\"")
}

/// A TCP proxy the test controls, standing between one node and etcd.
struct Proxy {
    addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (c, list) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::Acquire) {
                    continue; // dropped: the partition refuses it
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                list.lock().push(task);
            }
        });
        Proxy { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Release);
        for task in self.conns.lock().drain(..) {
            task.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// A node cut off from etcd (through a proxy the test controls) fences itself before its
/// lease can expire: its sessions get `<reset/>` while the registry still shows them (so no
/// other node could yet own their full JIDs), it reports not-ready, and it registers again
/// with a new lease once etcd is reachable. The reconnecting client binds the same full JID
/// on a healthy node; at no instant are there two owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_fences_itself_before_its_lease_expires() {
    const TTL: u64 = 3;
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    let etcd = shared_etcd().endpoint.clone();
    let etcd_addr: SocketAddr = etcd.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(etcd_addr).await;
    let prefix = parley_testkit::cluster::random_prefix("t");
    let healthy = ClusterNode::start("n1", &etcd, &prefix, &db, TTL, "");
    let mut cut_off = ClusterNode::start(
        "n2",
        &format!("http://{}", proxy.addr),
        &prefix,
        &db,
        TTL,
        "",
    );
    let mut alice = online(cut_off.c2s, "alice", "r", 0).await;
    wait_for("n1 sees alice/r", Duration::from_secs(5), || {
        !sessions_of(&healthy, "?user=alice@localhost").is_empty()
    });

    let cut_at = Instant::now();
    proxy.cut();
    assert_eq!(stream_error(&mut alice).await, "reset");
    let fenced_after = cut_at.elapsed();
    // The fence deadline is 2/3 of the TTL after the last renewal, which came at most
    // TTL/3 before the cut; the lease lives until a full TTL after that renewal. So the
    // key of alice/r is still in etcd, held by n2's lease, while n2 no longer serves it.
    let still_registered = registry_holds(&format!("{prefix}/sessions/alice@localhost/r"));
    assert!(
        fenced_after < Duration::from_secs(TTL),
        "fenced only after {fenced_after:?}"
    );
    assert!(
        still_registered,
        "fenced while its lease still holds the key ({fenced_after:?})"
    );
    assert!(
        sessions_of(&healthy, "?user=alice@localhost").is_empty(),
        "n2 answers the admin query over the link: it serves nothing"
    );
    assert_eq!(cut_off.get("/ready").map(|r| r.0), Some(503));

    // The client comes back through a healthy node and gets its resource.
    let mut again = Client::login(healthy.c2s, "alice", Some("r")).await;
    again.sync().await.expect("bound on the healthy node");
    let records = sessions_of(&healthy, "?user=alice@localhost");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["node"], "n1");

    // etcd reachable again: a new lease, ready again, a member again.
    proxy.heal();
    cut_off.wait_ready(Duration::from_secs(15));
    wait_for("n2 a member again", Duration::from_secs(10), || {
        healthy.api("/api/v1/nodes").1.contains("\"n2\"")
    });
}

/// An etcd restart (a crash, with its data kept): sessions survive, every node rebuilds its
/// registry cache, and routing and binds work afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_keeps_sessions_and_rebuilds_the_registry() {
    let mut etcd = parley_testkit::EtcdServer::start();
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob", "carol"]);
    let prefix = parley_testkit::cluster::random_prefix("t");
    let n1 = ClusterNode::start("n1", &etcd.endpoint, &prefix, &db, 10, "");
    let n2 = ClusterNode::start("n2", &etcd.endpoint, &prefix, &db, 10, "");
    let mut alice = online(n1.c2s, "alice", "a", 0).await;
    let mut bob = online(n2.c2s, "bob", "b", 0).await;

    // A crash and a restart: the nodes' connections break; the data stays.
    etcd.stop();
    etcd.restart();

    // Sessions survived: they still talk across nodes.
    alice
        .send(&chat("bob@localhost/b", "chat", "still here"))
        .await;
    bob.expect_message_body("still here")
        .await
        .expect("after the restart");
    // The registry is rebuilt on both nodes.
    for node in [&n1, &n2] {
        wait_for(
            &format!("{} lists both sessions", node.id),
            Duration::from_secs(10),
            || sessions_of(node, "").len() == 2,
        );
    }
    // New binds are claimed and routed.
    let mut carol = online(n2.c2s, "carol", "c", 0).await;
    alice
        .send(&chat("carol@localhost/c", "chat", "welcome"))
        .await;
    carol
        .expect_message_body("welcome")
        .await
        .expect("new session reachable");
    assert_eq!(n1.get("/ready").map(|r| r.0), Some(200));
    assert_eq!(n2.get("/ready").map(|r| r.0), Some(200));
}

/// The issue's acceptance: real slixmpp clients behind HAProxy (a plain TCP load balancer
/// health-checking each node's `/ready`), spread round-robin over three nodes, chat, see
/// each other's presence and get roster pushes (tests/clients/chat.py and
/// roster_presence.py: RFC 6121 §2.1.6, §3, §4, §8.5.3.1).
#[test]
fn slixmpp_clients_on_different_nodes_behind_haproxy() {
    use std::process::Command;
    let cluster = Cluster::start(3, 10, "");
    let servers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.c2s, n.admin))
        .collect();
    let haproxy = Haproxy::start("tcp", &servers);
    let lb_port = haproxy.addr.port();
    let root = parley_testkit::workspace_root();
    for (script, args) in [
        (
            "tests/clients/roster_presence.py",
            vec!["--alice-password", "password", "--bob-password", "password"],
        ),
        (
            "tests/clients/chat.py",
            vec![
                "--jid1",
                "carol@localhost",
                "--password1",
                "password",
                "--jid2",
                "dave@localhost",
                "--password2",
                "password",
            ],
        ),
    ] {
        let out = Command::new("python3")
            .arg(root.join(script))
            .args(["--host", "127.0.0.1", "--port", &lb_port.to_string()])
            .args(&args)
            .output()
            .expect("python3 with slixmpp (tests/run installs it)");
        assert!(
            out.status.success(),
            "{script} failed through HAProxy:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The clients were spread: at least two nodes handled client stanzas.
    let busy = cluster
        .nodes
        .iter()
        .filter(|n| {
            let metrics = n.get("/metrics").unwrap().1;
            metrics
                .lines()
                .find(|l| l.starts_with("parley_stanzas_in_total"))
                .and_then(|l| l.rsplit_once(' '))
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .is_some_and(|v| v > 0)
        })
        .count();
    assert!(busy >= 2, "clients should land on different nodes");
}

/// Node links over mutual TLS (`[cluster] tls_cert`, `tls_key`, `tls_ca`): two nodes with
/// certificates of one cluster CA route a chat between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_links_over_mutual_tls() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("t");
    let mut nodes = Vec::new();
    for id in ["n1", "n2"] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let (c, k) = (
            dir.path().join(format!("{id}.pem")),
            dir.path().join(format!("{id}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let extra = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"",
            c.display(),
            k.display(),
            dir.path().join("ca.pem").display()
        );
        // Mutual TLS alone authenticates the links (no cluster secret).
        let extra = Extra {
            cluster: extra,
            secret: Secret::Omitted,
            ..Extra::default()
        };
        nodes.push(ClusterNode::start_with(id, &etcd, &prefix, &db, 10, &extra));
    }
    let cluster = Cluster { nodes };
    cluster.wait_members(2);
    let mut alice = online(cluster.c2s(0), "alice", "a", 0).await;
    let mut bob = online(cluster.c2s(1), "bob", "b", 0).await;
    alice
        .send(&chat("bob@localhost/b", "chat", "over mTLS"))
        .await;
    bob.expect_message_body("over mTLS")
        .await
        .expect("across a TLS link");
    bob.send(&chat("alice@localhost/a", "chat", "and back"))
        .await;
    alice
        .expect_message_body("and back")
        .await
        .expect("both ways");
}

/// Tokens across nodes: issued with the CLI against node A's config, used on node B (SASL
/// OAUTHBEARER, RFC 7628), revoked through node A's admin API and then refused on node B at
/// once; the token never appears in either node's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_node_is_refused_on_another() {
    use parley_proto::sasl::Mechanism;
    let cluster = Cluster::start(2, 10, "");
    let token = cluster.nodes[0]
        .cli(&["token", "issue", "alice@localhost", "--ttl", "600"])
        .trim()
        .to_owned();
    assert!(token.starts_with("secret-token:"), "{token}");
    let login = |addr: SocketAddr, token: String| async move {
        let mut c = Client::connect(addr).await;
        c.open().await.unwrap();
        c.starttls().await.unwrap();
        c.open().await.unwrap();
        c.auth(Mechanism::OAuthBearer, "alice@localhost", &token)
            .await
    };
    login(cluster.c2s(1), token.clone())
        .await
        .expect("the token works on the other node");
    let id = parley_proto::token::parse(&token).unwrap().id;
    let listed = cluster.nodes[1].cli(&["token", "list", "alice@localhost"]);
    assert!(listed.contains(&id) && !listed.contains(&token), "{listed}");
    let (status, _) = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(cluster.nodes[0].admin).unwrap();
        write!(
            s,
            "DELETE /api/v1/tokens/{id} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            parley_testkit::cluster::ADMIN_TOKEN
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out.split_whitespace().nth(1).unwrap().to_owned(), out)
    };
    assert_eq!(status, "200");
    assert!(
        login(cluster.c2s(1), token.clone()).await.is_err(),
        "revoked on node A, refused on node B"
    );
    for node in &cluster.nodes {
        let log = node.log();
        assert!(!log.contains(&token), "{} logged the token", node.id);
        let secret = parley_proto::token::parse(&token).unwrap().secret;
        assert!(!log.contains(&secret), "{} logged the secret", node.id);
    }
}

/// Sign-out everywhere, asked of one node, revokes the user's sessions on every node
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_everywhere_reaches_every_node() {
    let cluster = Cluster::start(2, 10, "");
    let mut here = Client::login(cluster.c2s(0), "alice", Some("here")).await;
    let mut there = Client::login(cluster.c2s(1), "alice", Some("there")).await;
    wait_for(
        "both of alice's sessions listed",
        Duration::from_secs(5),
        || sessions_of(&cluster.nodes[0], "?user=alice@localhost").len() == 2,
    );
    let started = Instant::now();
    let out = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(cluster.nodes[0].admin).unwrap();
        write!(
            s,
            "POST /api/v1/users/alice@localhost/signout HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            parley_testkit::cluster::ADMIN_TOKEN
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(out.contains("\"sessions\":2"), "{out}");
    assert_eq!(stream_error(&mut here).await, "policy-violation");
    assert_eq!(stream_error(&mut there).await, "policy-violation");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Issue 17: the lifecycle across nodes. Ended and failed sessions held by another node are
/// listed by any node (peers honour the history filter), found by id, and removed through
/// it; the failed one carries the server's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_history_is_shown_and_removed_from_any_node() {
    let cluster = Cluster::start(2, 10, "");
    let mut gone = Client::login(cluster.c2s(1), "alice", Some("gone")).await;
    gone.send_raw("</stream:stream>").await.unwrap();
    let mut broken = Client::login(cluster.c2s(1), "bob", Some("broken")).await;
    broken
        .send_raw("<message to='alice@localhost'><body>x</message></body>")
        .await
        .unwrap();
    assert_eq!(stream_error(&mut broken).await, "not-well-formed");
    let asked = &cluster.nodes[0];
    let mut ended = None;
    wait_for(
        "n2's ended session listed by n1",
        Duration::from_secs(10),
        || {
            ended = sessions_of(asked, "?status=ended")
                .into_iter()
                .find(|r| r["jid"] == "alice@localhost/gone");
            ended.is_some()
        },
    );
    let ended = ended.unwrap();
    assert_eq!(ended["node"], "n2", "{ended}");
    assert_eq!(ended["connected"], false, "{ended}");
    let mut failed = None;
    wait_for(
        "n2's failed session listed by n1",
        Duration::from_secs(10),
        || {
            failed = sessions_of(asked, "?status=failed")
                .into_iter()
                .find(|r| r["jid"] == "bob@localhost/broken");
            failed.is_some()
        },
    );
    let failed = failed.unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not-well-formed")),
        "{failed}"
    );
    let id = ended["session"].as_str().unwrap();
    let (status, body) = asked.api(&format!("/api/v1/sessions/{id}"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = asked.post(&format!("/api/v1/sessions/{id}/remove"));
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the removal reaches n2's record",
        Duration::from_secs(10),
        || {
            sessions_of(asked, "?status=removed")
                .iter()
                .any(|r| r["session"] == id && r["node"] == "n2")
        },
    );
}

/// POSTs a BOSH body; returns the answer's `<body/>` as text.
fn bosh_post(addr: SocketAddr, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// XEP-0124 without sticky balancing: every request of one BOSH session goes through
/// HAProxy in round-robin over two nodes (so half reach the node that does not own the
/// session, which forwards them over the node link); the session logs in, binds and chats.
#[test]
fn bosh_needs_no_sticky_balancing() {
    const NS: &str = "xmlns='http://jabber.org/protocol/httpbind'";
    let cluster = Cluster::start(2, 10, "");
    let servers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.http, n.admin))
        .collect();
    let haproxy = Haproxy::start("http", &servers);
    let lb = haproxy.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut bob = rt.block_on(Client::login(cluster.c2s(0), "bob", Some("tcp")));

    let created = bosh_post(
        lb,
        &format!("<body {NS} to='localhost' rid='100' wait='10' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"),
    );
    let sid = created
        .split("sid='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("sid")
        .to_owned();
    assert!(created.contains("mechanisms"), "{created}");
    let creds = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("\0alice\0password")
    };
    let mut rid = 101;
    let mut next = |extra: &str, children: &str| {
        let out = bosh_post(
            lb,
            &format!("<body {NS} sid='{sid}' rid='{rid}' {extra}>{children}</body>"),
        );
        rid += 1;
        out
    };
    let r = next(
        "",
        &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"),
    );
    assert!(r.contains("<success"), "{r}");
    let r = next("xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", "");
    assert!(r.contains("urn:ietf:params:xml:ns:xmpp-bind"), "{r}");
    let r = next("", "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>lb</resource></bind></iq>");
    assert!(r.contains("alice@localhost/lb"), "{r}");
    next("", "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>through the balancer</body></message>");
    rt.block_on(bob.expect_message_body("through the balancer"))
        .expect("bob got it");
    // And a request sent straight to each node, owner or not, is answered alike.
    for node in &cluster.nodes {
        let r = bosh_post(
            node.http,
            &format!(
                "<body {NS} sid='{sid}' rid='{rid}'><iq xmlns='jabber:client' type='get' id='p{rid}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>"
            ),
        );
        assert!(r.contains(&format!("id='p{rid}'")), "{}: {r}", node.id);
        rid += 1;
    }
}

/// XEP-0191 across nodes: alice has resources on n1 and n2 and blocks bob, who is on n3.
/// Both of her sessions hold the list (pushed by her user actor over the node links), so
/// bob's message straight to her n2 resource is refused with service-unavailable (§3.5) and
/// hers to him with `<blocked/>` (§3.6); after the unblock they chat across nodes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_blocking_holds_across_nodes() {
    use parley_testkit::im::is_blocking_push;

    let cluster = Cluster::start(3, 10, "");
    let mut a1 = online(cluster.c2s(0), "alice", "one", 0).await;
    let mut a2 = online(cluster.c2s(1), "alice", "two", 0).await;
    let mut bob = online(cluster.c2s(2), "bob", "b", 0).await;
    // a2 asks for the list, so a push to it marks that its session has the change.
    a2.blocklist().await;
    let reply = a1.block(&["bob@localhost"]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    a2.expect_match("the block push on n2", |el| is_blocking_push(el, "block"))
        .await
        .unwrap();
    assert_eq!(
        bob.refused_chat("alice@localhost/two", "over here").await,
        "service-unavailable"
    );
    assert_eq!(
        a2.refused_chat("bob@localhost/b", "no").await,
        "not-acceptable"
    );

    let reply = a1.unblock(&["bob@localhost"]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    a2.expect_match("the unblock push on n2", |el| {
        is_blocking_push(el, "unblock")
    })
    .await
    .unwrap();
    bob.send(&chat("alice@localhost/two", "chat", "hello again"))
        .await;
    a2.expect_message_body("hello again").await.unwrap();
}

/// RFC 6121 §4.6.3 when the user's actor moves: alice (on n2) sends directed presence to
/// carol (n1), who is not her contact; n3, which ran alice's actor, leaves; her session
/// re-attaches to the new owner (n1) with the directed presence it mirrors, so when alice
/// goes unavailable carol is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_4_6_3_directed_presence_survives_an_owner_move() {
    let mut cluster = Cluster::start(3, 10, "");
    // Rendezvous owners (crates/cluster/src/owner.rs): alice → n3 of three, n1 of n1 and n2.
    let mut alice = online(cluster.c2s(1), "alice", "a", 0).await;
    let mut carol = online(cluster.c2s(0), "carol", "c", 0).await;
    alice
        .send(&Element::new("presence", ns::CLIENT).with_attr("to", "carol@localhost/c"))
        .await;
    carol
        .expect_presence_from("alice@localhost/a", "available")
        .await
        .expect("directed presence");

    cluster.nodes[2].terminate();
    parley_testkit::cluster::wait_members(&cluster.nodes[..2], 2);
    // The new owner has alice attached once a message to her bare JID reaches her session.
    let mut n = 0;
    loop {
        n += 1;
        assert!(n <= 40, "alice never re-attached to her new owner");
        let text = format!("are you there {n}");
        carol.send(&chat("alice@localhost", "chat", &text)).await;
        if let Ok(Some(Received::Element(el))) = alice.recv_within(Duration::from_millis(250)).await
        {
            if el.is("message", ns::CLIENT) && parley_testkit::im::body(&el).starts_with("are you")
            {
                break;
            }
        }
    }

    alice
        .send(&Element::new("presence", ns::CLIENT).with_attr("type", "unavailable"))
        .await;
    carol
        .expect_presence_from("alice@localhost/a", "unavailable")
        .await
        .expect("§4.6.3: the directed presence's target learns that alice went away");
}

/// RFC 6120 §10.1 across nodes: a presence broadcast and a message sent right behind it in
/// one write reach the contact in that order, whichever nodes run the sender's session, its
/// user's actor, the contact's user's actor and the contact's session. The users and nodes
/// are picked (from the rendezvous owners) so that the broadcast crosses three links
/// (session → sender's actor → contact's actor → contact's session) and the message one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_10_1_a_broadcast_is_not_overtaken_across_nodes() {
    let cluster = Cluster::start(3, 10, "");
    let names = ["n1", "n2", "n3"];
    let owner = |user: &str| {
        let o = parley_cluster::owner::owner(&bare(user), names).unwrap();
        names.iter().position(|n| *n == o).unwrap()
    };
    // The pair and the session nodes with the longest broadcast road: the sender's session
    // away from its actor, the contact's actor on a third node, its session away from it.
    let users = ["alice", "bob", "carol", "dave"];
    let mut best: Option<(usize, &str, &str, usize, usize)> = None;
    for s in users {
        for c in users.iter().copied().filter(|c| *c != s) {
            for p in 0..3 {
                for q in 0..3 {
                    let (x, y) = (owner(s), owner(c));
                    let score = [p != x, x != y, y != q, p != q]
                        .iter()
                        .filter(|b| **b)
                        .count();
                    if best.is_none_or(|(b, ..)| score > b) {
                        best = Some((score, s, c, p, q));
                    }
                }
            }
        }
    }
    let (score, s, c, p, q) = best.unwrap();
    assert!(score >= 3, "no placement crosses enough links ({score})");
    let mut sender = online(cluster.c2s(p), s, "s", 0).await;
    let mut contact = online(cluster.c2s(q), c, "c", 0).await;
    befriend(&mut sender, s, &mut contact, c).await;
    let from = format!("{}/s", bare(s));
    // The sender's presence again, so that the contact has seen it before the rounds.
    sender.available_with_priority(0).await;
    contact
        .expect_presence_from(&from, "available")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let road = format!(
        "{s} on n{}, actor n{}; {c} on n{}, actor n{}",
        p + 1,
        owner(s) + 1,
        q + 1,
        owner(c) + 1
    );
    broadcast_then_message(
        &mut sender,
        &from,
        &mut contact,
        &format!("{}/c", bare(c)),
        &road,
    )
    .await;
    // And the other way round: another combination of nodes.
    let from_contact = format!("{}/c", bare(c));
    broadcast_then_message(&mut contact, &from_contact, &mut sender, &from, &road).await;
}

/// Twenty rounds of a new `<status/>` from `sender` (whose full JID is `from`) and a
/// numbered message to `to` (`contact`'s full JID) in one write: each round's presence must
/// reach the contact before its message.
async fn broadcast_then_message(
    sender: &mut Client,
    from: &str,
    contact: &mut Client,
    to: &str,
    road: &str,
) {
    for round in 0..20 {
        let status = Element::new("presence", ns::CLIENT)
            .with_child(Element::new("status", ns::CLIENT).with_text(format!("s{round}")));
        let message = chat(to, "chat", &format!("m{round}"));
        let mut both_at_once = status.to_bytes_in(Some(ns::CLIENT));
        both_at_once.extend(message.to_bytes_in(Some(ns::CLIENT)));
        sender.send_raw(&both_at_once).await.expect("write");
        let from_sender = from.to_owned();
        let first = contact
            .expect_match("round's presence or message", move |el| {
                el.attr("from") == Some(from_sender.as_str())
                    && (el.name() == "message" || el.name() == "presence")
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first.name(),
            "presence",
            "round {round} ({road}): the message overtook the presence before it: {first}"
        );
        let second = contact
            .expect_match("round's message", |el| el.name() == "message")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parley_testkit::im::body(&second), format!("m{round}"));
    }
}
