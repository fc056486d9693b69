//! Issue 16: first scaling ceiling. A registry larger than the 4 MiB a gRPC client decodes by
//! default is listed in pages at one revision, and the single watch response that carries
//! every delete of a big node's lease is decoded under the configured bound: neither stops a
//! node from starting nor breaks a running node's watch. A node whose cache cannot be listed
//! again says so (not synced, failures counted).
//!
//! The big node's 5,000 sessions have ~1,000-byte resources, so the registry is ~5.3 MB: past
//! the old ceiling with few keys, which keeps the test quick.

use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

use parley_cluster::etcd::{Claim, EtcdRegistry};
use parley_cluster::etcd_access::EtcdAccess;
use parley_cluster::etcd_client;
use parley_cluster::etcd_sync::SyncStatus;
use parley_cluster::registry::{encode, Cache, Layout, SessionEntry};

mod common;
use common::{info, layout};
use parley_testkit_services::{poll_until, shared_etcd, EtcdServer};

/// Sessions the big node holds.
const SESSIONS: usize = 5_000;

/// Keys per transaction while filling (etcd allows 128 operations per transaction).
const BATCH: usize = 100;

fn entry(node: &str, session: u64) -> SessionEntry {
    SessionEntry {
        node: node.into(),
        session,
        priority: 0,
        available: true,
        interested: true,
        carbons: false,
    }
}

/// The resource of session `i`: ~1,000 bytes, distinct.
fn resource(i: usize) -> String {
    format!("{i:05}-{}", "r".repeat(1_000))
}

fn user(i: usize) -> String {
    format!("user{}@localhost", i % 50)
}

async fn node(endpoint: &str, access: &EtcdAccess, layout: &Layout, id: &str) -> EtcdRegistry {
    EtcdRegistry::register(
        &[endpoint.to_owned()],
        access,
        layout.clone(),
        id,
        &info(),
        30,
    )
    .await
    .expect("register with etcd")
}

/// Registers node `id` and has it claim [`SESSIONS`] big sessions under its lease, in the
/// registry's own key and value format. Returns the node and the bytes written.
async fn big_node(endpoint: &str, layout: &Layout, id: &str) -> (EtcdRegistry, usize) {
    let big = node(endpoint, &EtcdAccess::plain(), layout, id).await;
    let mut bytes = 0;
    let all: Vec<usize> = (0..SESSIONS).collect();
    for chunk in all.chunks(BATCH) {
        let claims: Vec<(String, String, SessionEntry)> = chunk
            .iter()
            .map(|&i| (user(i), resource(i), entry(id, i as u64)))
            .collect();
        for (bare, res, e) in &claims {
            bytes += layout.session(bare, res).len() + encode(e).len();
        }
        assert!(big.claim_all(&claims).await.unwrap(), "fresh keys");
    }
    (big, bytes)
}

/// The watch cache and the status change on the sync task; polled off the runtime.
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    poll_until(what, limit, || check().then_some(()));
}

fn sessions_of(cache: &RwLock<Cache>, node: &str) -> usize {
    cache
        .read()
        .all_sessions()
        .iter()
        .filter(|(_, _, e)| e.node == node)
        .count()
}

/// Issue 16: first scaling ceiling. A new node lists a registry of more than 4 MiB (which
/// one unpaged range cannot return to a default client) and its cache holds every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_over_four_mib_loads_on_a_new_node() {
    let endpoint = shared_etcd().endpoint.clone();
    let l = layout();
    let (_big, bytes) = big_node(&endpoint, &l, "big").await;
    assert!(bytes > 5 << 20, "the registry holds {bytes} bytes");

    // The ceiling is real: one range over the prefix is refused by a default client.
    let mut plain = etcd_client::Client::connect([endpoint.as_str()], None)
        .await
        .unwrap();
    let unpaged = plain
        .get(
            l.prefix(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await;
    let e = unpaged.expect_err("one range over the registry exceeds 4 MiB");
    assert!(
        e.to_string().contains("decoded message length too large"),
        "{e}"
    );

    // A new node under etcd-client's own bound still lists it: pages fit any bound.
    let small = EtcdAccess::plain().with_max_message_bytes(4 << 20);
    let newcomer = node(&endpoint, &small, &l, "newcomer").await;
    let cache = Arc::new(RwLock::new(Cache::default()));
    newcomer.load(&cache).await.expect("paged list");
    assert_eq!(sessions_of(&cache, "big"), SESSIONS);
    for i in [0, 1_999, 2_000, 4_999] {
        let e = cache.read().lookup(&user(i), &resource(i)).cloned();
        assert_eq!(e.map(|e| e.session), Some(i as u64), "session {i}");
    }
    assert!(cache.read().has_node("big") && cache.read().has_node("newcomer"));

    // The sync task lists the same way and reports the cache current.
    let status = Arc::new(SyncStatus::default());
    let fresh = Arc::new(RwLock::new(Cache::default()));
    let sync = newcomer.spawn_sync(
        fresh.clone(),
        tokio::sync::mpsc::unbounded_channel().0,
        status.clone(),
    );
    eventually(
        "the sync task lists the registry",
        Duration::from_secs(30),
        || status.synced() && sessions_of(&fresh, "big") == SESSIONS,
    )
    .await;
    assert_eq!(status.failures(), 0);
    sync.abort();
}

/// Issue 16: first scaling ceiling. A big node leaves (its lease revoked): etcd deletes its
/// 5,000 keys in one revision, sent as one watch response of more than 4 MiB. The running
/// node's watch decodes it (no restart), its cache drops them, and it goes on following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_leaving_node_does_not_break_a_running_nodes_watch() {
    let endpoint = shared_etcd().endpoint.clone();
    let l = layout();
    let observer = node(&endpoint, &EtcdAccess::plain(), &l, "observer").await;
    let status = Arc::new(SyncStatus::default());
    let cache = Arc::new(RwLock::new(Cache::default()));
    let sync = observer.spawn_sync(
        cache.clone(),
        tokio::sync::mpsc::unbounded_channel().0,
        status.clone(),
    );
    let (big, _) = big_node(&endpoint, &l, "big").await;
    eventually(
        "the watch sees the big node's sessions",
        Duration::from_secs(30),
        || sessions_of(&cache, "big") == SESSIONS,
    )
    .await;
    assert!(status.synced());
    let restarts = status.restarts();
    let before = status.revision();
    assert!(before > 0, "the revision the cache holds is reported");

    big.revoke().await.unwrap();
    eventually(
        "the watch drops the big node",
        Duration::from_secs(30),
        || {
            let c = cache.read();
            c.session_count() == 0 && !c.has_node("big")
        },
    )
    .await;
    assert_eq!(
        status.restarts(),
        restarts,
        "the watch decoded the leave without breaking"
    );
    assert_eq!(status.failures(), 0);
    assert!(status.synced());
    assert!(
        status.revision() > before,
        "the revoke's revision is applied and reported"
    );

    // Still following.
    assert_eq!(
        observer
            .claim("alice@localhost", "r", &entry("observer", 1))
            .await
            .unwrap(),
        Claim::Won
    );
    eventually("the watch goes on", Duration::from_secs(10), || {
        cache.read().lookup("alice@localhost", "r").is_some()
    })
    .await;
    sync.abort();
}

/// Issue 16: first scaling ceiling. A node whose watch breaks and whose registry cannot be
/// listed again (etcd gone) reports its cache stale and counts the failed lists, instead of
/// retrying forever as if current; once etcd is back, a list succeeds and it is current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_cannot_be_listed_again_is_reported_stale() {
    let mut etcd = EtcdServer::start();
    let l = layout();
    let reg = node(&etcd.endpoint, &EtcdAccess::plain(), &l, "alone").await;
    let status = Arc::new(SyncStatus::default());
    let cache = Arc::new(RwLock::new(Cache::default()));
    let sync = reg.spawn_sync(
        cache.clone(),
        tokio::sync::mpsc::unbounded_channel().0,
        status.clone(),
    );
    eventually("the cache is current", Duration::from_secs(10), || {
        status.synced()
    })
    .await;

    etcd.stop();
    eventually(
        "the failed list is reported",
        Duration::from_secs(30),
        || !status.synced() && status.failures() > 0,
    )
    .await;
    assert!(status.restarts() > 0, "the watch ended first");

    etcd.restart();
    eventually(
        "listed again once etcd is back",
        Duration::from_secs(30),
        || status.synced(),
    )
    .await;
    sync.abort();
}
