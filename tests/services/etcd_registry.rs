//! The registry against a real etcd started by the test kit (cluster issue: one owner per full
//! JID cluster-wide, keys under the node lease, the watch cache).

use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_cluster::etcd::{Claim, EtcdRegistry};
use parley_cluster::registry::{Cache, Layout, SessionEntry};

mod common;
use common::{info, layout};
use parley_testkit_services::{poll_until, shared_etcd};

fn entry(node: &str, session: u64) -> SessionEntry {
    SessionEntry {
        node: node.into(),
        session,
        priority: 0,
        available: false,
        interested: false,
        carbons: false,
    }
}

async fn node(layout: &Layout, id: &str, ttl: i64) -> EtcdRegistry {
    EtcdRegistry::register(
        &[shared_etcd().endpoint.clone()],
        &parley_cluster::etcd_access::EtcdAccess::plain(),
        layout.clone(),
        id,
        &info(),
        ttl,
    )
    .await
    .expect("register with etcd")
}

/// The watch cache and the lease keeper change on their own tasks, with no event a test can
/// await; so the condition is polled (off the runtime, which keeps those tasks running).
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    poll_until(what, limit, || check().then_some(()));
}

/// 100 concurrent binds of one full JID spread over 3 nodes: exactly one wins (RFC 6120
/// §7.7.2.2 across the cluster: one owner per full JID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_100_concurrent_claims_wins() {
    let l = layout();
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push(node(&l, id, 10).await);
    }
    let mut tasks = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for k in 0..34 {
                let session = (i * 100 + k) as u64;
                let e = entry(&format!("n{}", i + 1), session);
                if n.claim("alice@localhost", "phone", &e).await.unwrap() == Claim::Won {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1, "exactly one claim wins");
}

/// Keys live under the node's lease: when a node stops renewing it (SIGKILL), its node key
/// and session keys are gone within TTL + 2 s, and other nodes' caches see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_keys_vanish_within_ttl_plus_two_seconds() {
    let l = layout();
    let watcher = node(&l, "watcher", 10).await;
    let cache = Arc::new(RwLock::new(Cache::default()));
    let sync = watcher.spawn_sync(
        cache.clone(),
        tokio::sync::mpsc::unbounded_channel().0,
        Default::default(),
    );
    let doomed = node(&l, "doomed", 2).await;
    assert_eq!(
        doomed
            .claim("bob@localhost", "r", &entry("doomed", 1))
            .await
            .unwrap(),
        Claim::Won
    );
    eventually("the cache sees the session", Duration::from_secs(5), || {
        cache.read().lookup("bob@localhost", "r").is_some()
    })
    .await;
    let died = Instant::now();
    drop(doomed); // stops the keep-alive, as a killed process would
    eventually(
        "the dead node's keys vanish",
        Duration::from_secs(4),
        || {
            let c = cache.read();
            c.lookup("bob@localhost", "r").is_none() && c.nodes().all(|(id, _)| id != "doomed")
        },
    )
    .await;
    assert!(died.elapsed() <= Duration::from_secs(4));
    sync.abort();
}

/// A clean shutdown revokes the lease: the keys go at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_lease_deletes_the_keys_at_once() {
    let l = layout();
    let observer = node(&l, "observer", 10).await;
    let leaving = node(&l, "leaving", 10).await;
    leaving
        .claim("carol@localhost", "r", &entry("leaving", 1))
        .await
        .unwrap();
    leaving.revoke().await.unwrap();
    let cache = RwLock::new(Cache::default());
    observer.load(&cache).await.unwrap();
    let c = cache.read();
    assert!(c.lookup("carol@localhost", "r").is_none());
    assert!(c.nodes().all(|(id, _)| id != "leaving"));
}

/// The watch cache follows claims, updates and releases; release and take-over only act
/// for the right holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_updates_releases_and_take_over() {
    let l = layout();
    let a = node(&l, "a", 10).await;
    let b = node(&l, "b", 10).await;
    let cache = Arc::new(RwLock::new(Cache::default()));
    let sync = a.spawn_sync(
        cache.clone(),
        tokio::sync::mpsc::unbounded_channel().0,
        Default::default(),
    );

    assert_eq!(
        a.claim("dave@localhost", "r", &entry("a", 1))
            .await
            .unwrap(),
        Claim::Won
    );
    let Claim::Taken(holder, raw) = b
        .claim("dave@localhost", "r", &entry("b", 2))
        .await
        .unwrap()
    else {
        panic!("b must not win a held JID");
    };
    assert_eq!(holder.node, "a");
    // b cannot release what a holds.
    assert!(!b.release("dave@localhost", "r").await.unwrap());

    let mut available = entry("a", 1);
    available.available = true;
    available.priority = 5;
    a.update("dave@localhost", "r", &available).await.unwrap();
    eventually("the cache sees the update", Duration::from_secs(5), || {
        cache
            .read()
            .lookup("dave@localhost", "r")
            .is_some_and(|e| e.available && e.priority == 5)
    })
    .await;

    // The raw value b saw is stale now (a updated it): no take-over.
    assert!(!b
        .take_over("dave@localhost", "r", &raw, &entry("b", 2))
        .await
        .unwrap());
    let Claim::Taken(_, fresh) = b
        .claim("dave@localhost", "r", &entry("b", 2))
        .await
        .unwrap()
    else {
        panic!("still held by a");
    };
    assert!(b
        .take_over("dave@localhost", "r", &fresh, &entry("b", 2))
        .await
        .unwrap());
    eventually(
        "the cache sees b as the owner",
        Duration::from_secs(5),
        || {
            cache
                .read()
                .lookup("dave@localhost", "r")
                .is_some_and(|e| e.node == "b")
        },
    )
    .await;
    // a no longer holds it, so its release does nothing; b's does.
    assert!(!a.release("dave@localhost", "r").await.unwrap());
    assert!(b.release("dave@localhost", "r").await.unwrap());
    eventually("the cache sees the release", Duration::from_secs(5), || {
        cache.read().lookup("dave@localhost", "r").is_none()
    })
    .await;
    sync.abort();
}

/// A node cut off from etcd fences itself before its lease could expire: renewals stop, and
/// the fence deadline (2/3 of the TTL) passes while the TTL has not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_fences_itself_before_the_ttl() {
    use parley_cluster::fence::{Fence, Standing};
    let mut etcd = parley_testkit_services::EtcdServer::start();
    let ttl = Duration::from_secs(3);
    let reg = EtcdRegistry::register(
        &[etcd.endpoint.clone()],
        &parley_cluster::etcd_access::EtcdAccess::plain(),
        layout(),
        "isolated",
        &info(),
        ttl.as_secs() as i64,
    )
    .await
    .expect("register");
    let fence = Fence::for_ttl(ttl);
    eventually("a first renewal", Duration::from_secs(5), || {
        reg.since_renewal() < Duration::from_secs(1)
    })
    .await;
    assert_eq!(
        fence.check(reg.since_renewal(), reg.lease_lost()),
        Standing::Healthy
    );
    etcd.stop();
    let cut = Instant::now();
    eventually("the node fences itself", ttl, || {
        fence.check(reg.since_renewal(), reg.lease_lost()) == Standing::Fenced
    })
    .await;
    assert!(
        cut.elapsed() < ttl,
        "fenced after {:?}, before the {ttl:?} TTL",
        cut.elapsed()
    );
}
