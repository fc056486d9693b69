//! The registry in etcd: one lease per node, the node's key and one key per bound resource
//! under it, ownership claims by transaction, and the handle that lists the registry and
//! starts the watch keeping a node's [`Cache`] current (both in [`crate::etcd_sync`]).

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, WatchClient,
};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::etcd_access::EtcdAccess;
use crate::etcd_sync::{list_prefix, page_keys, EtcdSync, SyncStatus};
use crate::registry::{encode, Cache, Event, Layout, NodeInfo, SessionEntry};

/// Errors talking to etcd. Messages name the endpoint list where it helps the operator.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd answered with an error or could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A registry value could not be read.
    #[error("registry value at {key}: {reason}")]
    Value {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// etcd's certificate, this node's client certificate or its login was refused: a
    /// configuration error, named by its `[cluster]` key.
    #[error("{key}: etcd at {endpoint}: {reason}")]
    Trust {
        /// The config key to fix.
        key: &'static str,
        /// The endpoint(s).
        endpoint: String,
        /// Why (never a password).
        reason: String,
    },
    /// etcd did not answer in time.
    #[error("etcd at {0} did not answer in time")]
    Timeout(String),
    /// etcd did not answer one registry read in time (a page of the list, a watch opening).
    #[error("etcd did not answer {0} within {1:?}")]
    Unanswered(&'static str, std::time::Duration),
    /// Neither a cluster secret nor mutual TLS is configured: node links would be open to
    /// anyone who reaches `peer_listen`.
    #[error("node links must be authenticated: set cluster.secret (or cluster.secret_file), or cluster.tls_cert, cluster.tls_key and cluster.tls_ca")]
    Unauthenticated,
    /// The link runtime thread could not start.
    #[error("node-link runtime: {0}")]
    Runtime(String),
    /// The node-link listener could not bind.
    #[error("cluster peer_listen {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// The outcome of claiming a full JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns it now.
    Won,
    /// Someone owns it: their entry and its raw value (for a compare-and-swap takeover).
    Taken(SessionEntry, Vec<u8>),
}

/// A node's handle on the registry.
pub struct EtcdRegistry {
    /// Leases (grant, keep-alive, revoke).
    client: Client,
    /// Reads and writes, decoding messages up to `cluster.etcd_max_message_bytes`.
    kv: KvClient,
    /// The registry watch, under the same bound: one response carries every delete of a
    /// leaving node's lease (issue 16).
    watch: WatchClient,
    /// Keys per page of a registry list.
    page: i64,
    layout: Layout,
    node: String,
    lease: i64,
    /// Milliseconds since `epoch` of the last successful lease renewal.
    renewed_ms: Arc<AtomicU64>,
    /// Set when etcd reported the lease gone (TTL 0): the node must fence itself.
    lost: Arc<AtomicBool>,
    epoch: Instant,
    keepalive: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl EtcdRegistry {
    /// Connects, grants the node's lease (`ttl_s`), registers the node under it and keeps
    /// the lease alive every TTL/3.
    pub async fn register(
        endpoints: &[String],
        access: &EtcdAccess,
        layout: Layout,
        node: &str,
        info: &NodeInfo,
        ttl_s: i64,
    ) -> Result<EtcdRegistry, ClusterError> {
        let mut client = access.connect(endpoints).await?;
        let max = access.max_message_bytes();
        let kv = client.kv_client().max_decoding_message_size(max);
        let watch = client.watch_client().max_decoding_message_size(max);
        let lease = client.lease_grant(ttl_s, None).await?.id();
        client
            .put(
                layout.node(node),
                encode(info),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        let epoch = Instant::now();
        let renewed_ms = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicBool::new(false));
        let keepalive = tokio::spawn(keep_alive(
            client.clone(),
            lease,
            Duration::from_millis((ttl_s as u64 * 1000 / 3).max(100)),
            epoch,
            renewed_ms.clone(),
            lost.clone(),
        ));
        Ok(EtcdRegistry {
            client,
            kv,
            watch,
            page: page_keys(max),
            layout,
            node: node.to_owned(),
            lease,
            renewed_ms,
            lost,
            epoch,
            keepalive,
        })
    }

    /// The node's lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Time since the lease was last renewed (or since registration).
    pub fn since_renewal(&self) -> Duration {
        let at = Duration::from_millis(self.renewed_ms.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(at)
    }

    /// Whether etcd said the lease no longer exists.
    pub fn lease_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Claims a full JID for a session of this node: created only if nobody holds it, in
    /// one transaction, so each full JID has exactly one owner cluster-wide.
    pub async fn claim(
        &self,
        bare: &str,
        resource: &str,
        entry: &SessionEntry,
    ) -> Result<Claim, ClusterError> {
        let key = self.layout.session(bare, resource);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                encode(entry),
                Some(PutOptions::new().with_lease(self.lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self.kv.clone().txn(txn).await?;
        if resp.succeeded() {
            return Ok(Claim::Won);
        }
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                if let Some(kv) = get.kvs().first() {
                    let raw = kv.value().to_vec();
                    let holder: SessionEntry =
                        serde_json::from_slice(&raw).map_err(|e| ClusterError::Value {
                            key: key.clone(),
                            reason: e.to_string(),
                        })?;
                    return Ok(Claim::Taken(holder, raw));
                }
            }
        }
        // Deleted between the compare and the get: try again once.
        Box::pin(self.claim(bare, resource, entry)).await
    }

    /// Claims many full JIDs at once: all are created if none exists, else nothing is
    /// written (false) and the caller claims them one by one.
    pub async fn claim_all(
        &self,
        claims: &[(String, String, SessionEntry)],
    ) -> Result<bool, ClusterError> {
        let mut compares = Vec::with_capacity(claims.len());
        let mut ops = Vec::with_capacity(claims.len());
        for (bare, resource, entry) in claims {
            let key = self.layout.session(bare, resource);
            compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(
                key,
                encode(entry),
                Some(PutOptions::new().with_lease(self.lease)),
            ));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        Ok(self.kv.clone().txn(txn).await?.succeeded())
    }

    /// Takes a full JID over from its current holder (resource conflict `kick_old`), only if
    /// the holder is still the one seen (`expected` is its raw value).
    pub async fn take_over(
        &self,
        bare: &str,
        resource: &str,
        expected: &[u8],
        entry: &SessionEntry,
    ) -> Result<bool, ClusterError> {
        let key = self.layout.session(bare, resource);
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                expected.to_vec(),
            )])
            .and_then([TxnOp::put(
                key,
                encode(entry),
                Some(PutOptions::new().with_lease(self.lease)),
            )]);
        Ok(self.kv.clone().txn(txn).await?.succeeded())
    }

    /// Rewrites this node's entry (presence flags changed).
    pub async fn update(
        &self,
        bare: &str,
        resource: &str,
        entry: &SessionEntry,
    ) -> Result<(), ClusterError> {
        self.kv
            .clone()
            .put(
                self.layout.session(bare, resource),
                encode(entry),
                Some(PutOptions::new().with_lease(self.lease)),
            )
            .await?;
        Ok(())
    }

    /// Writes and deletes many of this node's keys in one transaction. Each change is
    /// `((bare, resource), (what this node last wrote, new value or None to delete))` and
    /// applies only where the key still holds exactly that value: a key another session
    /// took over (kick_old, on this node or another) is never overwritten or deleted.
    /// Returns false when some key had changed; nothing is then written.
    #[allow(clippy::type_complexity)]
    pub async fn write_batch(
        &self,
        changes: &[((String, String), (SessionEntry, Option<SessionEntry>))],
    ) -> Result<bool, ClusterError> {
        let mut compares = Vec::with_capacity(changes.len());
        let mut ops = Vec::with_capacity(changes.len());
        for ((bare, resource), (prev, next)) in changes {
            let key = self.layout.session(bare, resource);
            compares.push(Compare::value(key.clone(), CompareOp::Equal, encode(prev)));
            ops.push(match next {
                Some(entry) => TxnOp::put(
                    key,
                    encode(entry),
                    Some(PutOptions::new().with_lease(self.lease)),
                ),
                None => TxnOp::delete(key, None),
            });
        }
        let txn = Txn::new().when(compares).and_then(ops);
        Ok(self.kv.clone().txn(txn).await?.succeeded())
    }

    /// Deletes the key of a full JID if this node (its lease) still holds it.
    pub async fn release(&self, bare: &str, resource: &str) -> Result<bool, ClusterError> {
        let key = self.layout.session(bare, resource);
        let txn = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, self.lease)])
            .and_then([TxnOp::delete(key, None)]);
        Ok(self.kv.clone().txn(txn).await?.succeeded())
    }

    /// Lists the whole registry into `cache` (in pages, at one revision) and returns the
    /// revision to watch from.
    pub async fn load(&self, cache: &RwLock<Cache>) -> Result<i64, ClusterError> {
        let (revision, kvs) =
            list_prefix(&mut self.kv.clone(), &self.layout.prefix(), self.page).await?;
        let _ = cache.write().reset(&self.layout, kvs, revision);
        Ok(revision)
    }

    /// Keeps `cache` current until the task is dropped: list, then watch from the listed
    /// revision + 1; after a compaction, a cancelled watch or a lost connection, list again.
    /// `status` says whether the cache is current and counts the lists that failed.
    pub fn spawn_sync(
        &self,
        cache: Arc<RwLock<Cache>>,
        events: tokio::sync::mpsc::UnboundedSender<Vec<Event>>,
        status: Arc<SyncStatus>,
    ) -> JoinHandle<()> {
        let sync = EtcdSync {
            kv: self.kv.clone(),
            watch: self.watch.clone(),
            page: self.page,
            layout: self.layout.clone(),
            events,
            status,
        };
        tokio::spawn(sync.run_forever(cache))
    }

    /// Revokes the lease: every key of this node disappears at once (clean shutdown).
    pub async fn revoke(&self) -> Result<(), ClusterError> {
        self.keepalive.abort();
        self.client.clone().lease_revoke(self.lease).await?;
        Ok(())
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

async fn keep_alive(
    mut client: Client,
    lease: i64,
    every: Duration,
    epoch: Instant,
    renewed_ms: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
) {
    loop {
        match client.lease_keep_alive(lease).await {
            Ok((mut keeper, mut stream)) => loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match stream.message().await {
                    Ok(Some(resp)) if resp.ttl() > 0 => {
                        renewed_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Release);
                    }
                    Ok(Some(_)) => {
                        // TTL 0: etcd no longer knows the lease.
                        lost.store(true, Ordering::Release);
                        return;
                    }
                    Ok(None) | Err(_) => break,
                }
                tokio::time::sleep(every).await;
            },
            Err(e) => debug!(error = %e, "lease keep-alive could not start"),
        }
        tokio::time::sleep(every.min(Duration::from_millis(500))).await;
    }
}
