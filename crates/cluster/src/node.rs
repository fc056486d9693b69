//! The node: this server's membership of the cluster, wired into the router and the user
//! registry.
//!
//! A [`Node`] holds the node's lease and registry handle, the local cache of the registry,
//! one outgoing link per peer, and the listener for peers' links. It is the router's
//! [`Directory`] (sessions on other nodes, claims on full JIDs), the sessions'
//! [`RemoteSessions`] (delivering to and closing sessions elsewhere) and the user registry's
//! [`Placement`] (which node runs a user's actor). Three tasks keep it current:
//!
//! - the **writer** serializes this node's registry writes: claims run concurrently (they are
//!   pipelined on the etcd connection), presence-flag updates and releases are coalesced into
//!   one transaction per batch, each guarded by the value this node last wrote;
//! - the **watcher** applies registry events: a membership change moves user actors (hand-off
//!   here, re-attach of local sessions to the new owner) and opens or closes links; sessions
//!   of a node that left are announced unavailable by their user's (new) owner;
//! - the **fence** checks the lease every 200 ms: past 2/3 of the TTL without renewal the node
//!   stops binding, closes its sessions with `<reset/>`, reports not-ready, and registers
//!   again with a new lease once etcd answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jid::{BareJid, FullJid};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{
    ClaimFuture, ClaimOutcome, CloseReason, DeliverError, Directory, RemoteSessions,
    ResourceConflict, Router, SessionFlags, SessionHandle, SessionId, Undelivered,
};
use parley_user::{Placement, UserWire, Users, Vanished};
use parley_xml::{Element, Limits};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::auth::ClusterSecret;
use crate::etcd::{Claim, ClusterError, EtcdRegistry};
use crate::etcd_access::EtcdAccess;
use crate::fence::{Fence, Standing};
use crate::link::{Body, RemoteClose};
use crate::link_tls::LinkTls;
use crate::links_rt::LinksRuntime;
use crate::owner::owner;
use crate::peer::{listen, LinkAuth, LinkConfig, ListenConfig, PeerLink};
use crate::registry::{Cache, Event, Layout, NodeInfo, SessionEntry};

mod frames;

/// Answers a BOSH request forwarded by another node (the `<body/>` in, the answer out).
pub type BoshHandler = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>
        + Send
        + Sync,
>;

/// The `[cluster]` settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// TLS and login for etcd.
    pub etcd_access: EtcdAccess,
    /// This node's unique id.
    pub node_id: String,
    /// Where the node-link listener binds.
    pub peer_listen: SocketAddr,
    /// Where peers reach it (`host:port`).
    pub peer_advertise: String,
    /// Lease TTL in seconds.
    pub lease_ttl_s: i64,
    /// Key prefix in etcd.
    pub prefix: String,
    /// Outgoing link settings.
    pub link: LinkConfig,
    /// Mutual TLS on node links (None: plain TCP).
    pub tls: Option<Arc<LinkTls>>,
    /// The cluster secret proven in every link handshake (None: mutual TLS alone). One of
    /// the two is required.
    pub secret: Option<Arc<ClusterSecret>>,
    /// Connections open at once from one address (`cluster.max_links_per_address`).
    pub max_links_per_address: usize,
    /// How long a frame about a session waits for the registry to show that its sender
    /// holds it (`cluster.registry_wait_ms`).
    pub registry_wait: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Claim transactions sent to etcd.
    pub etcd_claims: AtomicU64,
    /// Batched write transactions (updates and releases) sent to etcd.
    pub etcd_batches: AtomicU64,
    /// Keys written or deleted by those batches.
    pub etcd_batched_keys: AtomicU64,
    /// etcd requests that failed.
    pub etcd_errors: AtomicU64,
    /// Frames queued on node links.
    pub frames_out: AtomicU64,
    /// Frames received from node links.
    pub frames_in: AtomicU64,
    /// Stanzas bounced because a link refused or gave them up.
    pub bounced: AtomicU64,
    /// Times this node fenced itself.
    pub fences: AtomicU64,
    /// User actors handed to another node.
    pub handed_off: AtomicU64,
}

/// A node link's state, for the admin API and metrics.
#[derive(Debug, Clone)]
pub struct LinkState {
    /// The peer.
    pub node: String,
    /// Its advertised address.
    pub addr: String,
    /// Connected now.
    pub up: bool,
}

/// A live node as the registry shows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Its id.
    pub id: String,
    /// What it registered.
    pub info: NodeInfo,
    /// Sessions it holds in the registry.
    pub sessions: usize,
}

enum WriteOp {
    Claim {
        jid: FullJid,
        session: SessionId,
        policy: ResourceConflict,
        reply: oneshot::Sender<ClaimOutcome>,
    },
    Claimed {
        key: (String, String),
        entry: SessionEntry,
    },
    Update {
        key: (String, String),
        session: u64,
        flags: SessionFlags,
    },
    Release {
        key: (String, String),
        session: u64,
    },
    Reset,
}

/// A query or BOSH forward waiting for its answer: the node asked, and the answer's way.
type Pending = (Arc<str>, oneshot::Sender<String>);

/// This server's membership of the cluster.
pub struct Node {
    me: Arc<str>,
    settings: ClusterSettings,
    layout: Layout,
    cache: Arc<RwLock<Cache>>,
    /// Live node ids, sorted (the owner computation reads only this).
    members: RwLock<Vec<Arc<str>>>,
    links: RwLock<HashMap<Arc<str>, (String, PeerLink)>>,
    registry: RwLock<Option<Arc<EtcdRegistry>>>,
    sync: Mutex<Option<JoinHandle<()>>>,
    events: mpsc::UnboundedSender<Vec<Event>>,
    writes: mpsc::UnboundedSender<WriteOp>,
    router: Arc<Router>,
    users: Arc<Users>,
    ready: Arc<AtomicBool>,
    fenced: AtomicBool,
    stopping: AtomicBool,
    /// Counters.
    pub metrics: ClusterMetrics,
    /// Pending queries and BOSH forwards: random id → (the node asked, the answer's way).
    queries: Mutex<HashMap<u128, Pending>>,
    /// Woken whenever the registry cache changes (frames waiting for a claim to show).
    cache_changed: Notify,
    /// The runtime thread of link I/O, away from the lease keep-alive.
    links_rt: LinksRuntime,
    /// The runtime the node was started on (etcd, BOSH handlers).
    home: Handle,
    #[allow(clippy::type_complexity)]
    answer: RwLock<Option<Box<dyn Fn(&str) -> String + Send + Sync>>>,
    bosh: RwLock<Option<BoshHandler>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    me_weak: Weak<Node>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.me)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Node {
    /// Joins the cluster: registers under a fresh lease, lists the registry, listens for
    /// peers, and installs itself into `router` and `users`. Must run inside a Tokio runtime
    /// that lives as long as the node.
    pub async fn start(
        settings: ClusterSettings,
        router: Arc<Router>,
        users: Arc<Users>,
        ready: Arc<AtomicBool>,
    ) -> Result<Arc<Node>, ClusterError> {
        if settings.secret.is_none() && settings.tls.is_none() {
            return Err(ClusterError::Unauthenticated);
        }
        let links_rt = LinksRuntime::start().map_err(|e| ClusterError::Runtime(e.to_string()))?;
        let layout = Layout::new(settings.prefix.clone());
        let registry = register(&settings, &layout).await?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let node = Arc::new_cyclic(|me| Node {
            me: Arc::from(settings.node_id.as_str()),
            layout,
            cache: Arc::new(RwLock::new(Cache::default())),
            members: RwLock::new(Vec::new()),
            links: RwLock::new(HashMap::new()),
            registry: RwLock::new(Some(Arc::new(registry))),
            sync: Mutex::new(None),
            events: events_tx,
            writes: writes_tx,
            router: router.clone(),
            users: users.clone(),
            ready,
            fenced: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            metrics: ClusterMetrics::default(),
            queries: Mutex::new(HashMap::new()),
            cache_changed: Notify::new(),
            links_rt,
            home: Handle::current(),
            answer: RwLock::new(None),
            bosh: RwLock::new(None),
            tasks: Mutex::new(Vec::new()),
            me_weak: me.clone(),
            settings,
        });
        // Peers' links first: others may send as soon as they see our key. The listener and
        // every link run on the links runtime.
        let weak = Arc::downgrade(&node);
        let config = ListenConfig {
            auth: node.link_auth(),
            max_frame: node.settings.link.max_frame,
            handshake_timeout: node.settings.link.handshake_timeout,
            max_per_address: node.settings.max_links_per_address,
        };
        let addr = node.settings.peer_listen;
        let listening = node.links_rt.handle().spawn(async move {
            listen(addr, config, move |from, body| {
                weak.upgrade().and_then(|node| node.on_frame(from, body))
            })
            .await
        });
        let listen_err = |reason: String| ClusterError::Listen { addr, reason };
        let (_, listener) = listening
            .await
            .map_err(|e| listen_err(e.to_string()))?
            .map_err(|e| listen_err(e.to_string()))?;
        if let Some(reg) = node.current() {
            reg.load(&node.cache).await?;
        }
        node.membership_changed();
        node.start_sync();
        router.set_directory(node.clone());
        users.set_placement(node.clone());
        let tasks = vec![
            listener,
            tokio::spawn(node.clone().watcher(events_rx)),
            tokio::spawn(writer(Arc::downgrade(&node), writes_rx)),
            tokio::spawn(fence_loop(Arc::downgrade(&node))),
        ];
        node.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
        info!(node = %node.me, lease_ttl_s = node.settings.lease_ttl_s, "joined the cluster");
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.me
    }

    /// The registry cache.
    pub fn cache(&self) -> &RwLock<Cache> {
        &self.cache
    }

    /// Whether the lease is alive (the node is not fenced).
    pub fn healthy(&self) -> bool {
        !self.fenced.load(Ordering::Acquire) && self.current().is_some()
    }

    /// The live nodes, with the sessions each holds.
    pub fn nodes(&self) -> Vec<NodeView> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, _, e) in cache.all_sessions() {
            *counts.entry(e.node.as_str()).or_default() += 1;
        }
        cache
            .nodes()
            .map(|(id, info)| NodeView {
                id: id.to_owned(),
                info: info.clone(),
                sessions: counts.get(id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// The state of every outgoing link.
    pub fn links(&self) -> Vec<LinkState> {
        let links = self.links.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<LinkState> = links
            .iter()
            .map(|(node, (addr, link))| LinkState {
                node: node.to_string(),
                addr: addr.clone(),
                up: link.is_up(),
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }

    /// Sets how this node answers peers' admin queries (its local session records).
    pub fn set_query_answer(&self, answer: impl Fn(&str) -> String + Send + Sync + 'static) {
        *self.answer.write().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(answer));
    }

    /// Sets how this node answers BOSH requests other nodes forward to it.
    pub fn set_bosh_handler(&self, handler: BoshHandler) {
        *self.bosh.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Whether `node` is this node.
    pub fn is_me(&self, node: &str) -> bool {
        *self.me == *node
    }

    /// Forwards a BOSH request to `node`, which owns its session; its answer, or None if it
    /// did not answer within `timeout`.
    pub async fn forward_bosh(
        &self,
        node: &str,
        body: String,
        timeout: Duration,
    ) -> Option<String> {
        let id: u128 = rand::random();
        let (tx, rx) = oneshot::channel();
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (Arc::from(node), tx));
        let answer = match self.send_to(node, Body::BoshRequest { id, body }) {
            Ok(()) => tokio::time::timeout(timeout, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        answer
    }

    /// Asks every other live node `what`; returns each node's answer, or None for a node
    /// that did not answer within `timeout`.
    pub async fn query_peers(
        &self,
        what: &str,
        timeout: Duration,
    ) -> Vec<(String, Option<String>)> {
        let peers: Vec<Arc<str>> = self
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|n| ***n != *self.me)
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for peer in peers {
            let id: u128 = rand::random();
            let (tx, rx) = oneshot::channel();
            self.queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, (peer.clone(), tx));
            let sent = self.send_to(
                &peer,
                Body::Query {
                    id,
                    what: what.to_owned(),
                },
            );
            waits.push((peer, id, sent.is_ok().then_some(rx)));
        }
        let mut out = Vec::new();
        for (peer, id, rx) in waits {
            let answer = match rx {
                Some(rx) => tokio::time::timeout(timeout, rx)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            self.queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            out.push((peer.to_string(), answer));
        }
        out
    }

    /// Ends session `session` (bound to `jid`) on `node` for an admin: it is closed with
    /// `reason` and ends with `status` (revoked, removed). Returns whether the frame was
    /// queued.
    pub fn revoke_remote(
        &self,
        node: &str,
        jid: &FullJid,
        session: u64,
        reason: CloseReason,
        status: parley_router::SessionStatus,
    ) -> bool {
        self.send_to(
            node,
            Body::Close {
                jid: jid.to_string(),
                session,
                reason: to_remote_close(reason),
                status: Some(status.as_str().to_owned()),
            },
        )
        .is_ok()
    }

    /// Clean leave (SIGTERM), after the sessions are closed: revokes the lease so that every
    /// key of this node disappears at once.
    pub async fn leave(&self) {
        self.stopping.store(true, Ordering::Release);
        let reg = self
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reg) = reg {
            match tokio::time::timeout(Duration::from_secs(3), reg.revoke()).await {
                Ok(Ok(())) => info!(node = %self.me, "left the cluster (lease revoked)"),
                Ok(Err(e)) => warn!(error = %e, "revoking the lease failed; keys expire with it"),
                Err(_) => warn!("revoking the lease timed out; keys expire with it"),
            }
        }
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        if let Some(sync) = self.sync.lock().unwrap_or_else(|e| e.into_inner()).take() {
            sync.abort();
        }
    }

    /// How this node authenticates its links.
    fn link_auth(&self) -> LinkAuth {
        LinkAuth {
            me: self.me.to_string(),
            secret: self.settings.secret.clone(),
            tls: self.settings.tls.clone(),
        }
    }

    fn current(&self) -> Option<Arc<EtcdRegistry>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn start_sync(&self) {
        let Some(reg) = self.current() else {
            return;
        };
        let task = reg.spawn_sync(self.cache.clone(), self.events.clone());
        if let Some(old) = self
            .sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    fn owner_of(&self, user: &str) -> Option<Arc<str>> {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        owner(user, members.iter().map(|m| &**m))
            .and_then(|o| members.iter().find(|m| &***m == o).cloned())
    }

    fn send_to(&self, node: &str, body: Body) -> Result<(), Body> {
        let links = self.links.read().unwrap_or_else(|e| e.into_inner());
        let Some((_, link)) = links.get(node) else {
            return Err(body);
        };
        self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
        link.send(body).map_err(|full| full.0)
    }

    // ----- registry events -------------------------------------------------------------------

    async fn watcher(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Vec<Event>>) {
        while let Some(events) = rx.recv().await {
            self.cache_changed.notify_waiters();
            if events.contains(&Event::NodesChanged) {
                self.membership_changed();
            }
            for event in events {
                if let Event::SessionRemoved {
                    bare,
                    resource,
                    entry,
                } = event
                {
                    self.session_removed(bare, resource, entry);
                }
            }
        }
    }

    /// A key vanished. If its node is gone too (lease expired or revoked), the session
    /// ended without a goodbye: the user's owner announces it unavailable.
    fn session_removed(&self, bare: String, resource: String, entry: SessionEntry) {
        if *entry.node == *self.me {
            return;
        }
        let node_alive = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has_node(&entry.node);
        if node_alive {
            // A live node released it; its Detach travels over the link.
            return;
        }
        if self.owner_of(&bare).as_deref() != Some(&*self.me) {
            return;
        }
        let Ok(jid) = BareJid::new(&bare) else {
            return;
        };
        debug!(user = %jid, %resource, node = %entry.node, "session of a lost node vanished");
        self.users.vanished(
            &jid,
            Vanished {
                resource,
                session: SessionId(entry.session),
                available: entry.available,
            },
        );
    }

    /// The set of live nodes changed: links follow, user actors move to their new owners.
    fn membership_changed(&self) {
        let (new, addrs): (Vec<Arc<str>>, HashMap<String, String>) = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            let mut ids: Vec<Arc<str>> = cache.nodes().map(|(id, _)| Arc::from(id)).collect();
            ids.sort();
            let addrs = cache
                .nodes()
                .map(|(id, info)| (id.to_owned(), info.addr.clone()))
                .collect();
            (ids, addrs)
        };
        let old = std::mem::replace(
            &mut *self.members.write().unwrap_or_else(|e| e.into_inner()),
            new.clone(),
        );
        info!(node = %self.me, members = ?new, "cluster membership");
        // Links: one per live peer, at its advertised address.
        let mut given_up = Vec::new();
        {
            // Link tasks run on the links runtime.
            let _links_rt = self.links_rt.handle().enter();
            let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
            links.retain(|id, (addr, link)| {
                let keep = addrs.get(&**id) == Some(addr);
                if !keep {
                    given_up.extend(link.take_queued());
                }
                keep
            });
            for id in new.iter().filter(|id| ***id != *self.me) {
                if links.contains_key(id) {
                    continue;
                }
                let Some(addr) = addrs.get(&**id) else {
                    continue;
                };
                let weak = self.me_weak.clone();
                let link = PeerLink::start(
                    self.link_auth(),
                    id.to_string(),
                    addr.clone(),
                    self.settings.link.clone(),
                    move |body| {
                        if let Some(node) = weak.upgrade() {
                            node.undeliverable(body);
                        }
                    },
                );
                links.insert(id.clone(), (addr.clone(), link));
            }
        }
        for body in given_up {
            self.undeliverable(body);
        }
        if old == new {
            return;
        }
        // Actors whose user now belongs elsewhere leave; local sessions whose user's owner
        // changed attach again (with their state) to the new owner.
        let me = self.me.clone();
        let moved = self.users.hand_off(|jid| {
            owner(jid.as_str(), new.iter().map(|m| &**m)).is_none_or(|o| *o == *me)
        });
        self.metrics
            .handed_off
            .fetch_add(moved as u64, Ordering::Relaxed);
        for (jid, handle) in self.router.bound_handles() {
            let bare = jid.to_bare();
            let before = owner(bare.as_str(), old.iter().map(|m| &**m));
            let after = owner(bare.as_str(), new.iter().map(|m| &**m));
            if before != after {
                handle.resync();
            }
        }
    }

    // ----- fencing ---------------------------------------------------------------------------

    async fn fence(&self) {
        if self.fenced.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.fences.fetch_add(1, Ordering::Relaxed);
        self.ready.store(false, Ordering::Release);
        warn!(node = %self.me, "lease not renewed in time: fencing this node");
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = self.writes.send(WriteOp::Reset);
        // No two owners of one full JID: our keys are about to expire, so our sessions go
        // first. Their clients reconnect through the load balancer to a healthy node.
        for handle in self.router.all_sessions() {
            handle.close(CloseReason::with_text(
                StreamCondition::Reset,
                "this cluster node lost the cluster registry; please reconnect",
            ));
        }
    }

    async fn rejoin(&self) -> bool {
        match register(&self.settings, &self.layout).await {
            Ok(reg) => {
                let reg = Arc::new(reg);
                if reg.load(&self.cache).await.is_err() {
                    return false;
                }
                *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Some(reg);
                self.start_sync();
                self.membership_changed();
                self.fenced.store(false, Ordering::Release);
                if !self.stopping.load(Ordering::Acquire) {
                    self.ready.store(true, Ordering::Release);
                }
                info!(node = %self.me, "registered again with a new lease");
                true
            }
            Err(e) => {
                debug!(error = %e, "registering again failed");
                false
            }
        }
    }
}

async fn register(
    settings: &ClusterSettings,
    layout: &Layout,
) -> Result<EtcdRegistry, ClusterError> {
    let info = NodeInfo {
        addr: settings.peer_advertise.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_ms: now_ms(),
    };
    let ttl = Duration::from_secs(settings.lease_ttl_s.max(1) as u64);
    tokio::time::timeout(
        ttl,
        EtcdRegistry::register(
            &settings.etcd,
            &settings.etcd_access,
            layout.clone(),
            &settings.node_id,
            &info,
            settings.lease_ttl_s,
        ),
    )
    .await
    .map_err(|_| ClusterError::Timeout(settings.etcd.join(",")))?
}

async fn fence_loop(node: Weak<Node>) {
    let Some(ttl) = node
        .upgrade()
        .map(|n| Duration::from_secs(n.settings.lease_ttl_s.max(1) as u64))
    else {
        return;
    };
    let fence = Fence::for_ttl(ttl);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(node) = node.upgrade() else {
            return;
        };
        if node.stopping.load(Ordering::Acquire) {
            return;
        }
        match node.current() {
            Some(reg) => {
                if fence.check(reg.since_renewal(), reg.lease_lost()) == Standing::Fenced {
                    node.fence().await;
                }
            }
            None => {
                if !node.rejoin().await {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                }
            }
        }
    }
}

/// Reads back a stanza a node serialized (ours or a peer's). It was accepted under
/// the configured limits, so it is read under the limits for copies, which no valid
/// configuration exceeds; a failure means a bug or a corrupt frame, and is logged.
fn parse(xml: &str) -> Option<Element> {
    match Element::parse(xml.as_bytes(), &Limits::trusted_copies()) {
        Ok(e) => Some(e),
        Err(e) => {
            if parley_router::metrics::refuse("copy_unparsable", "node_link") {
                warn!(error = %e, bytes = xml.len(), "a node-link stanza could not be read back");
            }
            None
        }
    }
}

fn from_remote_close(reason: RemoteClose) -> CloseReason {
    match reason {
        RemoteClose::Clean => CloseReason::Clean,
        RemoteClose::Error { condition, text } => {
            let condition = condition
                .parse::<StreamCondition>()
                .unwrap_or(StreamCondition::UndefinedCondition);
            match text {
                Some(t) => CloseReason::with_text(condition, t),
                None => CloseReason::condition(condition),
            }
        }
    }
}

fn to_remote_close(reason: CloseReason) -> RemoteClose {
    match reason {
        CloseReason::Clean => RemoteClose::Clean,
        CloseReason::Error(e) => RemoteClose::Error {
            condition: e.condition.as_str().to_owned(),
            text: e.text,
        },
        CloseReason::Stanza(_) => RemoteClose::Error {
            condition: StreamCondition::UndefinedCondition.as_str().to_owned(),
            text: None,
        },
    }
}

/// Stands in when the node is gone (shutdown): nothing can be reached.
struct Detached;

impl RemoteSessions for Detached {
    fn deliver(
        &self,
        _: &str,
        _: &FullJid,
        _: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>> {
        Err(Box::new(Undelivered {
            error: DeliverError::Gone,
            stanza,
        }))
    }
    fn close(&self, _: &str, _: &FullJid, _: SessionId, _: CloseReason) {}
    fn alive(&self, _: &str) -> bool {
        false
    }
}

impl RemoteSessions for Node {
    fn deliver(
        &self,
        node: &str,
        jid: &FullJid,
        session: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>> {
        let body = Body::ToSession {
            jid: jid.to_string(),
            session: session.0,
            xml: stanza.to_string(),
        };
        let error = {
            let links = self.links.read().unwrap_or_else(|e| e.into_inner());
            match links.get(node) {
                None => DeliverError::Gone,
                Some((_, link)) => {
                    self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                    match link.send(body) {
                        Ok(()) => return Ok(()),
                        Err(_) => DeliverError::Overloaded,
                    }
                }
            }
        };
        Err(Box::new(Undelivered { error, stanza }))
    }

    fn close(&self, node: &str, jid: &FullJid, session: SessionId, reason: CloseReason) {
        let _ = self.send_to(
            node,
            Body::Close {
                jid: jid.to_string(),
                session: session.0,
                reason: to_remote_close(reason),
                status: None,
            },
        );
    }

    fn alive(&self, node: &str) -> bool {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| **m == *node)
    }
}

impl Placement for Node {
    fn remote_owner(&self, user: &BareJid) -> Option<Arc<str>> {
        self.owner_of(user.as_str()).filter(|o| **o != *self.me)
    }

    fn forward(&self, node: &str, user: &BareJid, msg: UserWire) -> Result<(), UserWire> {
        match self.send_to(
            node,
            Body::ToUser {
                user: user.to_string(),
                msg,
            },
        ) {
            Ok(()) => Ok(()),
            Err(Body::ToUser { msg, .. }) => Err(msg),
            Err(_) => unreachable!("send_to hands back the frame it was given"),
        }
    }

    fn carbons_enabled(&self, user: &BareJid) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .resources(user.as_str())
            .filter(|(_, e)| e.carbons)
            .count()
    }
}

impl Directory for Node {
    fn lookup(&self, jid: &FullJid) -> Option<SessionHandle> {
        let entry = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            let e = cache.lookup(jid.to_bare().as_str(), jid.resource().as_str())?;
            if *e.node == *self.me {
                // Ours: the local table is authoritative (it is gone or not yet claimed).
                return None;
            }
            (Arc::<str>::from(e.node.as_str()), e.session)
        };
        let me: Arc<dyn RemoteSessions> = self.me_weak.upgrade()?;
        Some(SessionHandle::remote(
            SessionId(entry.1),
            entry.0,
            jid.clone(),
            me,
        ))
    }

    fn claim(&self, jid: &FullJid, session: SessionId, policy: ResourceConflict) -> ClaimFuture {
        // Claims go through the writer, which puts a login storm's claims in one
        // transaction (falling back to one by one when any key is taken).
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send(WriteOp::Claim {
            jid: jid.clone(),
            session,
            policy,
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return ClaimOutcome::Unavailable;
            }
            answer.await.unwrap_or(ClaimOutcome::Unavailable)
        })
    }

    fn update(&self, jid: &FullJid, session: SessionId, flags: SessionFlags) {
        let _ = self.writes.send(WriteOp::Update {
            key: key_of(jid),
            session: session.0,
            flags,
        });
    }

    fn release(&self, jid: &FullJid, session: SessionId) {
        let _ = self.writes.send(WriteOp::Release {
            key: key_of(jid),
            session: session.0,
        });
    }
}

fn key_of(jid: &FullJid) -> (String, String) {
    (
        jid.to_bare().to_string(),
        jid.resource().as_str().to_owned(),
    )
}

impl Node {
    async fn claim_now(
        &self,
        jid: FullJid,
        session: SessionId,
        policy: ResourceConflict,
    ) -> ClaimOutcome {
        if self.fenced.load(Ordering::Acquire) || self.stopping.load(Ordering::Acquire) {
            return ClaimOutcome::Unavailable;
        }
        let Some(reg) = self.current() else {
            return ClaimOutcome::Unavailable;
        };
        let (bare, resource) = key_of(&jid);
        let entry = SessionEntry {
            node: self.me.to_string(),
            session: session.0,
            priority: 0,
            available: false,
            interested: false,
            carbons: false,
        };
        for _ in 0..3 {
            self.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
            let holder = match reg.claim(&bare, &resource, &entry).await {
                Ok(Claim::Won) => return self.claimed(bare, resource, entry),
                Ok(Claim::Taken(holder, raw)) => (holder, raw),
                Err(e) => {
                    self.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "claiming a resource failed");
                    return ClaimOutcome::Unavailable;
                }
            };
            let (holder, raw) = holder;
            // Our own key (a local session this bind already replaced, or one whose release
            // is still queued): the local table has decided, take it.
            let ours = *holder.node == *self.me;
            if !ours && policy != ResourceConflict::KickOld {
                return ClaimOutcome::Taken;
            }
            self.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
            match reg.take_over(&bare, &resource, &raw, &entry).await {
                Ok(true) => {
                    if !ours {
                        // RFC 6120 §7.7.2.2: the old session is told why it goes.
                        let _ = self.send_to(
                            &holder.node,
                            Body::Close {
                                jid: jid.to_string(),
                                session: holder.session,
                                reason: RemoteClose::Error {
                                    condition: "conflict".into(),
                                    text: Some(
                                        "replaced by a new connection for the same resource".into(),
                                    ),
                                },
                                status: None,
                            },
                        );
                    }
                    return self.claimed(bare, resource, entry);
                }
                // Changed meanwhile: look again.
                Ok(false) => continue,
                Err(e) => {
                    self.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "taking a resource over failed");
                    return ClaimOutcome::Unavailable;
                }
            }
        }
        ClaimOutcome::Taken
    }

    fn claimed(&self, bare: String, resource: String, entry: SessionEntry) -> ClaimOutcome {
        let _ = self.writes.send(WriteOp::Claimed {
            key: (bare, resource),
            entry,
        });
        ClaimOutcome::Won
    }
}

/// Batches of at most this many keys per transaction (etcd's default limit is 128 ops).
const MAX_BATCH: usize = 64;

/// How long the writer lingers for more work once it sees a burst.
const LINGER: Duration = Duration::from_millis(5);

fn drain(rx: &mut mpsc::UnboundedReceiver<WriteOp>, ops: &mut Vec<WriteOp>) {
    while ops.len() < 4 * MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
}

type ClaimReq = (
    FullJid,
    SessionId,
    ResourceConflict,
    oneshot::Sender<ClaimOutcome>,
);

/// Claims in one transaction when several fresh keys are asked at once (a login storm):
/// every key must be absent, else nothing is written and each claim runs on its own, where
/// the conflict policy applies.
async fn claim_batch(
    node: &Arc<Node>,
    reg: Option<&EtcdRegistry>,
    claims: Vec<ClaimReq>,
    held: &mut HashMap<(String, String), SessionEntry>,
) {
    let unavailable = node.fenced.load(Ordering::Acquire) || node.stopping.load(Ordering::Acquire);
    let Some(reg) = reg.filter(|_| !unavailable) else {
        for (.., reply) in claims {
            let _ = reply.send(ClaimOutcome::Unavailable);
        }
        return;
    };
    let entry = |session: SessionId| SessionEntry {
        node: node.me.to_string(),
        session: session.0,
        priority: 0,
        available: false,
        interested: false,
        carbons: false,
    };
    let mut claims = claims;
    let mut alone = Vec::new();
    while !claims.is_empty() {
        let rest = claims.split_off(claims.len().min(MAX_BATCH));
        let chunk = std::mem::replace(&mut claims, rest);
        let keys: Vec<(String, String)> = chunk.iter().map(|c| key_of(&c.0)).collect();
        let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
        if chunk.len() < 2 || !distinct {
            alone.extend(chunk);
            continue;
        }
        let batch: Vec<(String, String, SessionEntry)> = chunk
            .iter()
            .zip(keys)
            .map(|(c, (b, r))| (b, r, entry(c.1)))
            .collect();
        node.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
        match reg.claim_all(&batch).await {
            Ok(true) => {
                for ((b, r, e), (.., reply)) in batch.into_iter().zip(chunk) {
                    held.insert((b, r), e);
                    let _ = reply.send(ClaimOutcome::Won);
                }
            }
            // Some key exists (or etcd failed): each claim on its own, with its policy.
            _ => alone.extend(chunk),
        }
    }
    let claims = alone;
    for (jid, session, policy, reply) in claims {
        let node = node.clone();
        tokio::spawn(async move {
            let _ = reply.send(node.claim_now(jid, session, policy).await);
        });
    }
}

/// Serializes this node's updates and releases, coalescing each batch into one transaction.
async fn writer(node: Weak<Node>, mut rx: mpsc::UnboundedReceiver<WriteOp>) {
    // What this node last wrote for each key it holds.
    let mut held: HashMap<(String, String), SessionEntry> = HashMap::new();
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut ops = vec![first];
        drain(&mut rx, &mut ops);
        if ops.len() > 1 {
            // A storm: a moment more gathers a bigger batch. A lone login waits for nothing.
            tokio::time::sleep(LINGER).await;
            drain(&mut rx, &mut ops);
        }
        let Some(node) = node.upgrade() else {
            return;
        };
        let reg = node.current();
        let mut claims = Vec::new();
        // key → (previous value, new value or None for a delete)
        let mut changes: HashMap<(String, String), (SessionEntry, Option<SessionEntry>)> =
            HashMap::new();
        for op in ops {
            match op {
                WriteOp::Claim {
                    jid,
                    session,
                    policy,
                    reply,
                } => claims.push((jid, session, policy, reply)),
                WriteOp::Reset => {
                    held.clear();
                    changes.clear();
                }
                WriteOp::Claimed { key, entry } => {
                    changes.remove(&key);
                    held.insert(key, entry);
                }
                WriteOp::Update {
                    key,
                    session,
                    flags,
                } => {
                    let Some(cur) = held.get(&key).filter(|e| e.session == session) else {
                        continue;
                    };
                    let mut next = cur.clone();
                    next.priority = flags.priority;
                    next.available = flags.available;
                    next.interested = flags.interested;
                    next.carbons = flags.carbons;
                    let prev = changes
                        .remove(&key)
                        .map_or_else(|| cur.clone(), |(prev, _)| prev);
                    held.insert(key.clone(), next.clone());
                    changes.insert(key, (prev, Some(next)));
                }
                WriteOp::Release { key, session } => {
                    if held.get(&key).is_none_or(|e| e.session != session) {
                        continue;
                    }
                    let cur = held.remove(&key).expect("checked above");
                    let prev = changes.remove(&key).map_or(cur, |(prev, _)| prev);
                    changes.insert(key, (prev, None));
                }
            }
        }
        if !claims.is_empty() {
            claim_batch(&node, reg.as_deref(), claims, &mut held).await;
        }
        if changes.is_empty() {
            continue;
        }
        let Some(reg) = reg else {
            continue;
        };
        let changes: Vec<_> = changes.into_iter().collect();
        for chunk in changes.chunks(MAX_BATCH) {
            node.metrics.etcd_batches.fetch_add(1, Ordering::Relaxed);
            node.metrics
                .etcd_batched_keys
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            match reg.write_batch(chunk).await {
                Ok(true) => {}
                Ok(false) => {
                    // Some key changed hands (kick_old from another node): one by one, so
                    // that only the lost keys are skipped.
                    for one in chunk {
                        node.metrics.etcd_batches.fetch_add(1, Ordering::Relaxed);
                        if let Ok(false) = reg.write_batch(std::slice::from_ref(one)).await {
                            if one.1 .1.is_some() {
                                held.remove(&one.0);
                            }
                        }
                    }
                }
                Err(e) => {
                    node.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, keys = chunk.len(), "registry batch write failed");
                }
            }
        }
    }
}
