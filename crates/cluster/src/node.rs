//! The node: this server's membership of the cluster, wired into the router and the user
//! registry.
//!
//! A [`Node`] holds the node's lease and registry handle, the local cache of the registry,
//! one outgoing link per peer, and the listener for peers' links. It is the router's
//! [`Directory`] (sessions on other nodes, claims on full JIDs), the sessions'
//! [`RemoteSessions`] (delivering to and closing sessions elsewhere) and the user registry's
//! [`Placement`] (which node runs a user's actor); those implementations are in `seams.rs`,
//! and frames from peers are judged and applied in `frames.rs`. Three tasks keep it current:
//!
//! - the **writer** (`writer.rs`) serializes this node's registry writes: claims run
//!   concurrently (they are pipelined on the etcd connection), presence-flag updates and
//!   releases are coalesced into one transaction per batch, each guarded by the value this
//!   node last wrote;
//! - the **watcher** (`membership.rs`) applies registry events: a membership change moves
//!   user actors (hand-off here, re-attach of local sessions to the new owner) and opens or
//!   closes links; sessions of a node that left are announced unavailable by their user's
//!   (new) owner;
//! - the **fence** (`fencing.rs`) checks the lease every 200 ms: past 2/3 of the TTL without
//!   renewal the node stops binding, closes its sessions with `<reset/>`, reports not-ready,
//!   and registers again with a new lease once etcd answers.
//!
//! The node is ready ([`Node::healthy`], `sync.rs`) only while its lease is alive and its
//! registry cache could be listed and is followed by the watch.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jid::{BareJid, FullJid};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{
    ClaimFuture, ClaimOutcome, CloseReason, Directory, RemoteSessions, ResourceConflict, Router,
    SessionFlags, SessionHandle, SessionId, Undelivered,
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
use crate::etcd_sync::SyncStatus;
use crate::fence::{Fence, Standing};
use crate::link::{Body, RemoteClose};
use crate::link_tls::LinkTls;
use crate::links_rt::LinksRuntime;
use crate::owner::owner;
use crate::peer::{listen, LinkAuth, LinkConfig, ListenConfig, PeerLink};
use crate::registry::{Cache, Event, Layout, NodeInfo, SessionEntry};

mod fencing;
mod frames;
mod held;
mod membership;
mod ordering;
mod pending;
mod seams;
mod sync;
mod writer;

use fencing::{fence_loop, register};
use seams::{from_remote_close, key_of, to_remote_close, Detached};
use writer::{writer, WriteOp};

/// Answers a BOSH request forwarded by another node (the `<body/>` in, the answer out).
pub type BoshHandler = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>
        + Send
        + Sync,
>;

/// Takes a stanza for a domain the cluster does not serve, forwarded by the node that got
/// it because this node owns the outgoing stream to that domain.
pub type ForeignHandler = Arc<dyn Fn(Element) + Send + Sync>;

/// The chat-room service (XEP-0045) behind the node, wired by the binary: rooms are
/// placed on nodes like user actors, and move when the membership changes.
pub trait RoomHost: Send + Sync + 'static {
    /// A stanza peer `from` forwarded for a room this node owns (as `from` believes).
    fn accept(&self, stanza: Element, from: &str);
    /// A stanza whose room node could not be reached: routed again by placement.
    fn reroute(&self, stanza: Element);
    /// A room's previous owner finished its writes: read the room again.
    fn reload(&self, room: &str);
    /// The admin API's action on a room this node owns (the service's encoding).
    fn control(&self, room: &str, op: &str);
    /// Rooms `owned_here` does not keep leave this node; how many did.
    fn hand_off(&self, owned_here: &dyn Fn(&str) -> bool) -> usize;
    /// This node leaves the cluster (its placement no longer counts it): every room goes to
    /// its next owner; resolves once they have all handed over, their last writes done.
    fn leave(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

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
    /// Frames of one peer held at once while they wait for the registry
    /// (`cluster.registry_wait_frames`); past it the peer's link waits.
    pub registry_wait_frames: usize,
    /// Their bytes (`cluster.registry_wait_bytes`).
    pub registry_wait_bytes: usize,
    /// A test's fault point (`stale-owners` in `PARLEY_FAULTS`, read by debug builds only,
    /// never from a configuration file): the registry cache never follows a session to
    /// another node, so this node keeps routing a moved resource to its old node.
    pub stale_owners: bool,
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
    /// Sessions it holds in the registry (clients and components).
    pub sessions: usize,
    /// Of those, components' connections (XEP-0114).
    pub components: usize,
}

/// A query or BOSH forward waiting for its answer: the node asked, and the answer's way.
/// How this node gives up sessions that clients resume on other nodes (XEP-0198 §5): the
/// session layer's `export` (state for `previd` of `user`, None if it has none) and
/// `commit` (`previd`, the node that took it, whether the claim moved).
#[derive(Clone)]
pub struct ResumeHandler {
    /// Exports a session.
    #[allow(clippy::type_complexity)]
    pub take: Arc<
        dyn Fn(
                String,
                String,
            )
                -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send>>
            + Send
            + Sync,
    >,
    /// Settles an export.
    #[allow(clippy::type_complexity)]
    pub commit: Arc<dyn Fn(String, String, bool) + Send + Sync>,
}

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
    /// Whether the cache is current (part of readiness), and failed lists.
    sync_status: Arc<SyncStatus>,
    events: mpsc::UnboundedSender<Vec<Event>>,
    writes: mpsc::UnboundedSender<WriteOp>,
    router: Arc<Router>,
    users: Arc<Users>,
    ready: Arc<AtomicBool>,
    fenced: AtomicBool,
    stopping: AtomicBool,
    /// The node is leaving ([`Node::leave`]): a room stanza a peer forwards goes where this
    /// node's own view places the room, even back to that peer (which then keeps it), never
    /// kept here for the sender's sake once this node no longer counts itself a member.
    leaving: AtomicBool,
    /// Peers' links to this node open now.
    links_in: Arc<crate::peer::OpenLinks>,
    /// Told when a peer's link closes or one of ours empties its queue: what a leaving
    /// node waits on.
    quiet: Arc<Notify>,
    /// Counters.
    pub metrics: ClusterMetrics,
    /// Pending admin queries and BOSH forwards.
    queries: pending::Pending<String>,
    /// Woken whenever the registry cache changes (frames waiting for a claim to show).
    cache_changed: Notify,
    /// Frames waiting for a claim to show, in lines per peer and user.
    held: held::Held,
    /// The runtime thread of link I/O, away from the lease keep-alive.
    links_rt: LinksRuntime,
    /// The runtime the node was started on (etcd, BOSH handlers).
    home: Handle,
    #[allow(clippy::type_complexity)]
    answer: RwLock<Option<Box<dyn Fn(&str) -> String + Send + Sync>>>,
    bosh: RwLock<Option<BoshHandler>>,
    /// Where stanzas for other domains that peers forward here go (federation).
    foreign: RwLock<Option<ForeignHandler>>,
    /// The chat-room service, if it runs.
    rooms: RwLock<Option<Arc<dyn RoomHost>>>,
    /// Room frames peers sent before the chat-room service was plugged in: peers see this
    /// node (and forward to the rooms it owns) as soon as it registers, a moment before the
    /// binary has wired its rooms. Kept in order and handed over by [`Node::set_room_host`];
    /// None once handed over, or given up after the link hold bound (a node without rooms).
    early_rooms: Mutex<Option<Vec<(String, Body)>>>,
    /// The session layer's side of cross-node resumption.
    resume: RwLock<Option<ResumeHandler>>,
    /// Pending resume takes.
    takes: pending::Pending<Vec<u8>>,
    /// RFC 6120 §10.1 syncs asked and owed.
    syncs: ordering::Syncs,
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
        let quiet = Arc::new(Notify::new());
        let node = Arc::new_cyclic(|me| Node {
            me: Arc::from(settings.node_id.as_str()),
            layout,
            cache: Arc::new(RwLock::new(if settings.stale_owners {
                Cache::with_stale_owners()
            } else {
                Cache::default()
            })),
            members: RwLock::new(Vec::new()),
            links: RwLock::new(HashMap::new()),
            registry: RwLock::new(Some(Arc::new(registry))),
            sync: Mutex::new(None),
            sync_status: Arc::new(SyncStatus::default()),
            events: events_tx,
            writes: writes_tx,
            router: router.clone(),
            users: users.clone(),
            ready,
            fenced: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            links_in: Arc::new(crate::peer::OpenLinks::new(quiet.clone())),
            quiet: quiet.clone(),
            metrics: ClusterMetrics::default(),
            queries: pending::Pending::new(),
            cache_changed: Notify::new(),
            held: held::Held::new(held::HeldBounds {
                frames: settings.registry_wait_frames,
                bytes: settings.registry_wait_bytes,
            }),
            links_rt,
            home: Handle::current(),
            answer: RwLock::new(None),
            bosh: RwLock::new(None),
            foreign: RwLock::new(None),
            rooms: RwLock::new(None),
            early_rooms: Mutex::new(Some(Vec::new())),
            resume: RwLock::new(None),
            takes: pending::Pending::new(),
            syncs: ordering::Syncs::new(),
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
            open: node.links_in.clone(),
        };
        let addr = node.settings.peer_listen;
        let listening = node.links_rt.handle().spawn(async move {
            listen(addr, config, move |from, body, bytes| {
                weak.upgrade()
                    .and_then(|node| node.on_frame(from, body, bytes))
            })
            .await
        });
        let listen_err = |reason: String| ClusterError::Listen { addr, reason };
        let (_, listener) = listening
            .await
            .map_err(|e| listen_err(e.to_string()))?
            .map_err(|e| listen_err(e.to_string()))?;
        if let Some(reg) = node.current() {
            node.load_registry(&reg).await?;
        }
        node.membership_changed();
        node.start_sync();
        router.set_directory(node.clone());
        users.set_placement(node.clone());
        let weak = Arc::downgrade(&node);
        let hold = node.settings.link.hold;
        let tasks = vec![
            listener,
            tokio::spawn(node.clone().watcher(events_rx)),
            tokio::spawn(writer(Arc::downgrade(&node), writes_rx)),
            tokio::spawn(fence_loop(Arc::downgrade(&node))),
            // Room frames wait for the room service as long as frames wait for a link.
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                if let Some(node) = weak.upgrade() {
                    node.rooms_unwired();
                }
            }),
        ];
        node.tasks.lock().extend(tasks);
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

    /// The live nodes, with the sessions each holds.
    pub fn nodes(&self) -> Vec<NodeView> {
        let cache = self.cache.read();
        let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
        for (bare, _, e) in cache.all_sessions() {
            let c = counts.entry(e.node.as_str()).or_default();
            c.0 += 1;
            if self.router.is_component(bare) {
                c.1 += 1;
            }
        }
        cache
            .nodes()
            .map(|(id, info)| {
                let (sessions, components) = counts.get(id).copied().unwrap_or_default();
                NodeView {
                    id: id.to_owned(),
                    info: info.clone(),
                    sessions,
                    components,
                }
            })
            .collect()
    }

    /// The state of every outgoing link.
    pub fn links(&self) -> Vec<LinkState> {
        let links = self.links.read();
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
        *self.answer.write() = Some(Box::new(answer));
    }

    /// Sets how this node answers BOSH requests other nodes forward to it.
    pub fn set_bosh_handler(&self, handler: BoshHandler) {
        *self.bosh.write() = Some(handler);
    }

    /// Sets where stanzas for other domains that peers forward to this node go.
    pub fn set_foreign_handler(&self, handler: ForeignHandler) {
        *self.foreign.write() = Some(handler);
    }

    /// Sets the chat-room service rooms forwarded here go to; room frames that came before
    /// it go to it first, in order.
    pub fn set_room_host(&self, host: Arc<dyn RoomHost>) {
        // Under the lock of the early frames, so that none is left behind or overtaken.
        let mut early = self.early_rooms.lock();
        *self.rooms.write() = Some(host.clone());
        for (from, body) in early.take().unwrap_or_default() {
            self.act_room(&host, &from, body);
        }
    }

    /// The node that owns chat room `room` (a bare JID), if it is not this one:
    /// rendezvous over the live members under a key of its own.
    pub fn room_owner(&self, room: &str) -> Option<Arc<str>> {
        self.owner_of(&room_key(room)).filter(|o| **o != *self.me)
    }

    /// Forwards a stanza for a room to `node`, its owner; gives it back when there is no
    /// link to that node.
    pub fn forward_to_room(&self, node: &str, stanza: Element) -> Result<(), Element> {
        let xml = stanza.to_string();
        self.send_to(node, Body::ToRoom { xml }).map_err(|_| stanza)
    }

    /// Tells `node` to read `room` again (this node handed it off).
    pub fn room_reload(&self, node: &str, room: &str) {
        let _ = self.send_to(
            node,
            Body::RoomReload {
                room: room.to_owned(),
            },
        );
    }

    /// Asks `node` to act on `room` for the admin API.
    pub fn room_control(&self, node: &str, room: &str, op: String) {
        let _ = self.send_to(
            node,
            Body::RoomControl {
                room: room.to_owned(),
                op,
            },
        );
    }

    /// The node that owns the outgoing server-to-server stream to `domain`, if it is not
    /// this one: rendezvous over the live members, as for user actors, under a key of its
    /// own so that a domain and a user never share a placement.
    pub fn domain_owner(&self, domain: &str) -> Option<Arc<str>> {
        self.owner_of(&format!("s2s/{domain}"))
            .filter(|o| **o != *self.me)
    }

    /// Forwards a stanza for another domain to `node`, the owner of its outgoing stream;
    /// gives it back when there is no link to that node.
    pub fn forward_to_domain(&self, node: &str, stanza: Element) -> Result<(), Element> {
        let xml = stanza.to_string();
        self.send_to(node, Body::ToDomain { xml })
            .map_err(|_| stanza)
    }

    /// Sets how this node gives up sessions resumed elsewhere.
    pub fn set_resume_handler(&self, handler: ResumeHandler) {
        *self.resume.write() = Some(handler);
    }

    /// Asks `node` for session `previd` of `user` (XEP-0198 §5 across nodes): its state,
    /// or None if it had none to give or did not answer within `timeout`.
    pub async fn take_session(
        &self,
        node: &str,
        previd: &str,
        user: &str,
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let answer = self
            .takes
            .ask(Arc::from(node), timeout, |id| {
                let body = Body::ResumeTake {
                    id,
                    previd: previd.to_owned(),
                    user: user.to_owned(),
                };
                self.send_to(node, body).is_ok()
            })
            .await;
        answer.filter(|s| !s.is_empty())
    }

    /// Tells `node` whether this node took session `previd` for good.
    pub fn commit_session(&self, node: &str, previd: &str, ok: bool) {
        let _ = self.send_to(
            node,
            Body::ResumeCommit {
                previd: previd.to_owned(),
                ok,
            },
        );
    }

    /// The other live nodes, in placement order.
    pub fn peers(&self) -> Vec<String> {
        self.members
            .read()
            .iter()
            .filter(|n| ***n != *self.me)
            .map(|n| n.to_string())
            .collect()
    }

    /// A handle to session `session` on `node`.
    pub fn remote_session(
        &self,
        node: &str,
        jid: &FullJid,
        session: SessionId,
    ) -> Option<SessionHandle> {
        let me: Arc<dyn RemoteSessions> = self.me_weak.upgrade()?;
        Some(SessionHandle::remote(
            session,
            Arc::from(node),
            jid.clone(),
            me,
        ))
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
        self.queries
            .ask(Arc::from(node), timeout, |id| {
                self.send_to(node, Body::BoshRequest { id, body }).is_ok()
            })
            .await
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
            .iter()
            .filter(|n| ***n != *self.me)
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for peer in peers {
            let (id, rx) = self.queries.open(peer.clone());
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
            let answer = self.queries.wait(id, rx, timeout).await;
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

    /// Asks `node` to close its server-to-server stream `session` (the admin API).
    pub fn close_remote_stream(&self, node: &str, session: u64, reason: CloseReason) -> bool {
        self.send_to(
            node,
            Body::Close {
                // No JID: a stream between servers, named by its key alone.
                jid: String::new(),
                session,
                reason: to_remote_close(reason),
                status: Some(parley_router::SessionStatus::Revoked.as_str().to_owned()),
            },
        )
        .is_ok()
    }

    /// Clean leave (SIGTERM), after the sessions are closed: revokes the lease so that every
    /// key of this node disappears at once.
    pub async fn leave(&self) {
        self.stopping.store(true, Ordering::Release);
        self.leaving.store(true, Ordering::Release);
        let reg = self.registry.write().take();
        if let Some(reg) = reg {
            match tokio::time::timeout(Duration::from_secs(3), reg.revoke()).await {
                Ok(Ok(())) => {
                    info!(node = %self.me, "left the cluster (lease revoked)");
                    self.hand_over().await;
                }
                Ok(Err(e)) => warn!(error = %e, "revoking the lease failed; keys expire with it"),
                Err(_) => warn!("revoking the lease timed out; keys expire with it"),
            }
        }
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        if let Some(sync) = self.sync.lock().take() {
            sync.abort();
        }
    }

    /// After the lease is revoked: the rooms this node ran go to their next owners (their
    /// last writes, archive included, done), and the node waits until every peer has seen
    /// it go — each closes its link here once its membership no longer has this node, after
    /// the frames it sent before, which are passed on — and its own links have written what
    /// they hold; all within [`HAND_OVER`]. A room stanza a peer forwarded in those moments
    /// goes on to the room's next owner instead of being lost with the process.
    async fn hand_over(&self) {
        let others = {
            let mut members = self.members.write();
            members.retain(|m| **m != *self.me);
            !members.is_empty()
        };
        if !others {
            return;
        }
        let deadline = tokio::time::Instant::now() + HAND_OVER;
        let host = self.rooms.read().clone();
        if let Some(host) = host {
            if tokio::time::timeout_at(deadline, host.leave())
                .await
                .is_err()
            {
                warn!(node = %self.me, "rooms still handing over when leaving");
            }
        }
        // A peer's link closing and one of our queues emptying both tell `quiet`: looked
        // at again on each, until the deadline.
        for (_, link) in self.links.read().values() {
            link.notify_drained(self.quiet.clone());
        }
        loop {
            let changed = self.quiet.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let quiet = self.links_in.open() == 0
                && self.links.read().values().all(|(_, l)| l.queued() == 0);
            if quiet {
                debug!(node = %self.me, "peers closed their links: nothing more to pass on");
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        warn!(
            node = %self.me,
            links_in = self.links_in.open(),
            "peers still linked when leaving; what they send now is lost"
        );
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
        self.registry.read().clone()
    }

    fn owner_of(&self, user: &str) -> Option<Arc<str>> {
        let members = self.members.read();
        owner(user, members.iter().map(|m| &**m))
            .and_then(|o| members.iter().find(|m| &***m == o).cloned())
    }

    fn send_to(&self, node: &str, body: Body) -> Result<(), Body> {
        let links = self.links.read();
        let Some((_, link)) = links.get(node) else {
            return Err(body);
        };
        self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
        link.send(body).map_err(|full| full.0)
    }
}

/// How long a leaving node waits for its peers to see it go ([`Node::hand_over`]).
const HAND_OVER: Duration = Duration::from_secs(2);

/// The placement key of a room: apart from user keys, so a room and a user of the same
/// name are placed independently.
pub(crate) fn room_key(room: &str) -> String {
    format!("muc/{room}")
}
