//! Issue 16: first scaling ceiling, against a real `parley` node. The registry holds more
//! than the 4 MiB a gRPC client decodes by default (5,000 sessions with ~1,000-byte
//! resources, written under another live node's lease in the registry's own format): a new
//! node still starts, is ready and its registry cache shows every session; when that big
//! node leaves, the running node's watch decodes the one response carrying all its deletes
//! (no restart, no failed list) and drops them. Readiness and the sync metrics are read
//! where operators read them: `/ready`, `/api/v1/nodes`, `/metrics`.
//!
//! The registry-level details (paging at one revision, a stale cache reported) are in
//! `tests/services/etcd_registry_scale.rs`.

use std::time::Duration;

use parley_cluster::etcd::EtcdRegistry;
use parley_cluster::etcd_access::EtcdAccess;
use parley_cluster::registry::{encode, Layout, NodeInfo, SessionEntry};
use parley_testkit::cluster::{ClusterNode, Extra};
use parley_testkit::{shared_etcd, shared_pg};

/// Sessions the big node holds.
const SESSIONS: usize = 5_000;

/// Polls `done` (each poll is a real request) until it holds; fails naming `what` after
/// `within`.
fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    parley_testkit::poll_until(what, within, || done().then_some(()));
}

/// Registers node `big` under `prefix` and has it claim [`SESSIONS`] sessions with
/// ~1,000-byte resources under its lease. Returns it and the registry bytes written.
async fn big_node(prefix: &str) -> (EtcdRegistry, usize) {
    let layout = Layout::new(prefix);
    let info = NodeInfo {
        // Nobody listens there: the other node's link to it stays down, which is all right.
        addr: "127.0.0.1:9".into(),
        version: "test".into(),
        started_ms: 0,
    };
    let big = EtcdRegistry::register(
        &[shared_etcd().endpoint.clone()],
        &EtcdAccess::plain(),
        layout.clone(),
        "big",
        &info,
        60,
    )
    .await
    .expect("register the big node");
    let mut bytes = 0;
    let all: Vec<usize> = (0..SESSIONS).collect();
    for chunk in all.chunks(100) {
        let claims: Vec<(String, String, SessionEntry)> = chunk
            .iter()
            .map(|&i| {
                let entry = SessionEntry {
                    node: "big".into(),
                    session: i as u64,
                    priority: 0,
                    available: true,
                    interested: true,
                    carbons: false,
                };
                let bare = format!("user{}@localhost", i % 50);
                let resource = format!("{i:05}-{}", "r".repeat(1_000));
                bytes += layout.session(&bare, &resource).len() + encode(&entry).len();
                (bare, resource, entry)
            })
            .collect();
        assert!(big.claim_all(&claims).await.unwrap(), "fresh keys");
    }
    (big, bytes)
}

/// Sessions the node's registry cache shows for `id` (None: `id` is not a live node).
fn sessions_of(node: &ClusterNode, id: &str) -> Option<u64> {
    let (_, body) = node.api("/api/v1/nodes");
    let json: serde_json::Value = serde_json::from_str(&body).expect("nodes JSON");
    json["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["sessions"].as_u64())
}

/// The value of the sample `name{node="n1"}` in `/metrics`.
fn metric(node: &ClusterNode, name: &str) -> u64 {
    let (_, text) = node.api("/metrics");
    let prefix = format!("{name}{{node=\"{}\"}} ", node.id);
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
        .parse()
        .expect("a number")
}

/// Issue 16: first scaling ceiling. A registry of more than 4 MiB loads on a new node, and
/// a big node leaving does not break the running node's watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_over_a_big_registry_and_survives_a_big_leave() {
    let db = shared_pg().database();
    let prefix = parley_testkit::cluster::random_prefix("scale");
    let (big, bytes) = big_node(&prefix).await;
    assert!(bytes > 5 << 20, "the registry holds {bytes} bytes");

    // The bound is configurable; 64 MiB is plenty for 5,000 deletes in one response.
    let extra = Extra {
        cluster: "etcd_max_message_bytes = 67108864\n".into(),
        ..Extra::default()
    };
    let etcd = shared_etcd().endpoint.clone();
    let n1 = tokio::task::spawn_blocking(move || {
        ClusterNode::start_with("n1", &etcd, &prefix, &db, 10, &extra)
    })
    .await
    .unwrap();
    assert_eq!(n1.get("/ready").map(|r| r.0), Some(200));
    assert_eq!(sessions_of(&n1, "big"), Some(SESSIONS as u64));
    assert_eq!(metric(&n1, "parley_registry_sessions"), SESSIONS as u64);
    assert_eq!(metric(&n1, "parley_registry_sync_failures_total"), 0);
    let restarts = metric(&n1, "parley_registry_watch_restarts_total");
    let revision = metric(&n1, "parley_registry_revision");
    assert!(revision > 0, "the cache's etcd revision is exported");

    big.revoke().await.expect("the big node leaves");
    wait_for(
        "n1's cache drops the big node",
        Duration::from_secs(30),
        || sessions_of(&n1, "big").is_none() && metric(&n1, "parley_registry_sessions") == 0,
    );
    assert_eq!(
        metric(&n1, "parley_registry_watch_restarts_total"),
        restarts,
        "the watch decoded the leave without breaking"
    );
    assert_eq!(metric(&n1, "parley_registry_sync_failures_total"), 0);
    assert!(metric(&n1, "parley_registry_revision") > revision);
    assert_eq!(n1.get("/ready").map(|r| r.0), Some(200));
}
