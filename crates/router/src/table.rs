//! The local routing table: bare JID → bound resources and the sessions that own them.
//!
//! Availability, priorities and bare-JID routing belong to the user actor (parley-user);
//! this table only answers "which session owns this full JID" (and delivers to it in place
//! for the road in `road.rs`).
//!
//! One map keyed by bare JID holds each user's few resources in a small vector, so a full-JID
//! lookup is one hash probe and a short scan, and a user costs one entry however many
//! resources it binds. Resource-conflict policy (RFC 6120 §7.7.2.2) is applied here, under
//! the write lock, so that two binds of one full JID can never both win.

use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, Weak};

use jid::{BareJid, FullJid, ResourcePart};
use parley_xml::Element;

use crate::directory::Directory;
use crate::handle::{SessionHandle, SessionId, Undelivered};
use crate::road::{Foreign, UserSink};

/// What to do when a client binds a resource that is already bound (RFC 6120 §7.7.2.2).
/// Read from `[c2s] resource_conflict` as `"kick_old"`, `"kick_new"` or `"random"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceConflict {
    /// Close the old session with `<conflict/>` and bind the new one.
    #[default]
    KickOld,
    /// Refuse the new bind with a `<conflict/>` stanza error.
    KickNew,
    /// Give the new session a server-generated resource instead.
    Random,
}

/// The result of [`Router::bind`].
#[derive(Debug)]
pub enum BindOutcome {
    /// The session now owns `jid`. `replaced` is the session it displaced (kick_old), which the
    /// caller must close with `<conflict/>`.
    Bound {
        /// The full JID bound.
        jid: FullJid,
        /// The displaced session, if any.
        replaced: Option<SessionHandle>,
    },
    /// The resource is taken and the policy is kick_new.
    Conflict,
    /// The account already has as many resources bound as it may (RFC 6120 §7.6.2.1:
    /// `<resource-constraint/>`).
    TooMany,
}

/// A bound resource as the router sees it: who owns it.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// The resource part.
    pub resource: String,
    /// The owning session.
    pub handle: SessionHandle,
}

/// The routing table of one node.
#[derive(Debug)]
pub struct Router {
    hosts: HashSet<String>,
    users: RwLock<HashMap<BareJid, Vec<ResourceInfo>>>,
    directory: OnceLock<Arc<dyn Directory>>,
    /// The user actors' entrance ([`UserSink`]), installed by the user registry.
    pub(crate) user_sink: OnceLock<Weak<dyn UserSink>>,
    /// Domains we do not serve ([`Foreign`]): none until s2s exists.
    pub(crate) foreign: OnceLock<Arc<dyn Foreign>>,
    /// Domains served by external components (XEP-0114), set once at start-up.
    components: OnceLock<HashSet<String>>,
    /// Domains of the services the server runs itself ([`crate::road::Service`]), set
    /// once at start-up.
    services: OnceLock<HashMap<String, Arc<dyn crate::road::Service>>>,
    history: parking_lot::Mutex<History>,
    /// Every connection on this node, bound or not, by the key its actor registered under
    /// (for the admin API's view of connections that have not authenticated). As many as
    /// the node's connection limit allows.
    streams: parking_lot::Mutex<HashMap<SessionId, Arc<crate::meta::SessionMeta>>>,
    /// How to close the streams that bind no JID (between servers), by registration key,
    /// for the admin API.
    closers: parking_lot::Mutex<HashMap<SessionId, actix::Recipient<crate::handle::Close>>>,
    /// Most resources one account may bind on this node (`quotas.resources_per_account`).
    max_resources: std::sync::atomic::AtomicUsize,
    /// Sessions that resumed on another node (XEP-0198 §5) and whose old actor here still
    /// forwards: full JID → the session on its new node. A peer whose registry cache has
    /// not yet seen the move still sends here; without this, those stanzas would take the
    /// absent-resource road (RFC 6121 §8.5.3.2) and a resumed client would never see them.
    /// One entry per session in its forwarding grace, removed when the old actor stops.
    moved: RwLock<HashMap<FullJid, SessionHandle>>,
}

/// A session that ended on this node, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct EndedSession {
    /// Its full JID.
    pub jid: FullJid,
    /// Its id.
    pub id: SessionId,
    /// Its facts at the end (status, times).
    pub meta: Arc<crate::meta::SessionMeta>,
}

/// Recently ended sessions: at most [`HISTORY_PER_USER`] per user and
/// [`HISTORY_TOTAL`] in all, oldest dropped first.
#[derive(Debug, Default)]
struct History {
    order: std::collections::VecDeque<(BareJid, SessionId)>,
    per_user: HashMap<BareJid, std::collections::VecDeque<EndedSession>>,
}

/// Ended sessions kept per user.
pub const HISTORY_PER_USER: usize = 20;
/// Ended sessions kept per node.
pub const HISTORY_TOTAL: usize = 10_000;

impl std::fmt::Debug for dyn Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Directory")
    }
}

impl Router {
    /// A router serving `hosts` (already nameprep'd).
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Router {
        Router {
            hosts: hosts.into_iter().collect(),
            users: RwLock::new(HashMap::new()),
            directory: OnceLock::new(),
            user_sink: OnceLock::new(),
            foreign: OnceLock::new(),
            components: OnceLock::new(),
            services: OnceLock::new(),
            history: parking_lot::Mutex::new(History::default()),
            streams: parking_lot::Mutex::new(HashMap::new()),
            closers: parking_lot::Mutex::new(HashMap::new()),
            max_resources: std::sync::atomic::AtomicUsize::new(usize::MAX),
            moved: RwLock::new(HashMap::new()),
        }
    }

    /// Sets how many resources one account may bind on this node (at start-up).
    pub fn set_max_resources(&self, max: usize) {
        self.max_resources
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records a session that ended (its meta carries the final status and times).
    pub fn record_end(&self, jid: FullJid, id: SessionId, meta: Arc<crate::meta::SessionMeta>) {
        let bare = jid.to_bare();
        let mut h = self.history.lock();
        let list = h.per_user.entry(bare.clone()).or_default();
        list.push_back(EndedSession { jid, id, meta });
        if list.len() > HISTORY_PER_USER {
            list.pop_front();
        }
        h.order.push_back((bare, id));
        while h.order.len() > HISTORY_TOTAL {
            if let Some((user, old)) = h.order.pop_front() {
                if let Some(list) = h.per_user.get_mut(&user) {
                    list.retain(|e| e.id != old);
                    if list.is_empty() {
                        h.per_user.remove(&user);
                    }
                }
            }
        }
    }

    /// Recently ended sessions (of one user, or all), oldest first per user.
    pub fn ended(&self, user: Option<&BareJid>) -> Vec<EndedSession> {
        let h = self.history.lock();
        match user {
            Some(u) => h
                .per_user
                .get(u)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default(),
            None => h
                .per_user
                .values()
                .flat_map(|l| l.iter().cloned())
                .collect(),
        }
    }

    /// Installs the cluster directory (once, at start-up, before any session binds).
    pub fn set_directory(&self, directory: Arc<dyn Directory>) {
        let _ = self.directory.set(directory);
    }

    /// The cluster directory, when this node is part of a cluster.
    pub fn directory(&self) -> Option<&Arc<dyn Directory>> {
        self.directory.get()
    }

    /// Whether `domain` is one of ours.
    pub fn serves(&self, domain: &str) -> bool {
        self.hosts.contains(domain)
    }

    /// The domains this node serves.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }

    /// A connection's actor started (or its facts changed, after a resume) under `key`.
    pub fn register_stream(&self, key: SessionId, meta: Arc<crate::meta::SessionMeta>) {
        self.streams.lock().insert(key, meta);
    }

    /// The actor registered under `key` stopped.
    pub fn unregister_stream(&self, key: SessionId) {
        self.streams.lock().remove(&key);
        self.closers.lock().remove(&key);
    }

    /// A stream that binds no JID (between servers) can be closed by its key with `close`.
    pub fn register_stream_closer(
        &self,
        key: SessionId,
        close: actix::Recipient<crate::handle::Close>,
    ) {
        self.closers.lock().insert(key, close);
    }

    /// The streams that registered a closer (between servers), with their facts: read
    /// without walking every connection of the node.
    pub fn server_streams(&self) -> Vec<(SessionId, Arc<crate::meta::SessionMeta>)> {
        let keys: Vec<SessionId> = self.closers.lock().keys().copied().collect();
        let streams = self.streams.lock();
        keys.into_iter()
            .filter_map(|k| streams.get(&k).map(|m| (k, m.clone())))
            .collect()
    }

    /// Closes the unbound stream registered under `key` (the admin API); false if there is
    /// none. `status` is what its record ends with.
    pub fn close_stream(
        &self,
        key: SessionId,
        reason: crate::handle::CloseReason,
        status: crate::meta::SessionStatus,
    ) -> bool {
        let Some(close) = self.closers.lock().get(&key).cloned() else {
            return false;
        };
        if let Some(meta) = self.streams.lock().get(&key) {
            meta.end(status);
        }
        close.do_send(crate::handle::Close { reason });
        true
    }

    /// Marks the ended session `id` of this node's history removed ([`SessionMeta::remove`]);
    /// whether there was one.
    ///
    /// [`SessionMeta::remove`]: crate::meta::SessionMeta::remove
    pub fn remove_ended(&self, id: SessionId) -> bool {
        let history = self.history.lock();
        history
            .per_user
            .values()
            .flat_map(|list| list.iter())
            .find(|e| e.id == id)
            .is_some_and(|e| {
                e.meta.remove();
                true
            })
    }

    /// The connections on this node that are not bound: not authenticated yet, or between
    /// authentication and their bind. Their facts, by registration key.
    pub fn unbound_streams(&self) -> Vec<(SessionId, Arc<crate::meta::SessionMeta>)> {
        let bound: HashSet<*const crate::meta::SessionMeta> = self
            .all_sessions()
            .iter()
            .filter_map(|h| h.meta().map(Arc::as_ptr))
            .collect();
        let mut out: Vec<_> = self
            .streams
            .lock()
            .iter()
            .filter(|(_, m)| !bound.contains(&Arc::as_ptr(m)))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        out.sort_by_key(|(_, m)| m.created_ms);
        out
    }

    /// Declares the domains of external components (XEP-0114; once, at start-up). A
    /// component connected to any node of the cluster serves its domain.
    pub fn set_components(&self, domains: impl IntoIterator<Item = String>) {
        if self.components.set(domains.into_iter().collect()).is_err() {
            tracing::warn!("component domains were set twice; the second set is ignored");
        }
    }

    /// Declares the services the server runs itself, by domain (once, at start-up).
    pub fn set_services(&self, services: HashMap<String, Arc<dyn crate::road::Service>>) {
        if self.services.set(services).is_err() {
            tracing::warn!("service domains were set twice; the second set is ignored");
        }
    }

    /// The service on `domain`, if the server runs one there.
    pub fn service(&self, domain: &str) -> Option<&Arc<dyn crate::road::Service>> {
        self.services.get().and_then(|s| s.get(domain))
    }

    /// The domains of the services the server runs for `host` (`x.host`), sorted:
    /// service discovery lists them.
    pub fn services_of(&self, host: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .services
            .get()
            .map(|s| {
                s.keys()
                    .filter(|d| d.strip_suffix(host).is_some_and(|p| p.ends_with('.')))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Whether `domain` belongs to an external component.
    pub fn is_component(&self, domain: &str) -> bool {
        self.components.get().is_some_and(|c| c.contains(domain))
    }

    /// The domains of external components, sorted (service discovery lists them).
    pub fn components(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .components
            .get()
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Binds a resource for `bare`. `requested` is an already resourceprep'd resource, or None
    /// for a server-generated one; `generate` makes a fresh random resource.
    pub fn bind(
        &self,
        bare: &BareJid,
        requested: Option<&ResourcePart>,
        handle: SessionHandle,
        policy: ResourceConflict,
        mut generate: impl FnMut() -> ResourcePart,
    ) -> BindOutcome {
        let mut users = self.users.write();
        let resources = users.entry(bare.clone()).or_default();
        let taken = |r: &str, list: &[ResourceInfo]| list.iter().position(|x| x.resource == r);
        // Checked under the write lock, so concurrent binds cannot both pass the bound; a
        // kick_old bind replaces a resource and adds none.
        let max = self
            .max_resources
            .load(std::sync::atomic::Ordering::Relaxed);
        let replaces = requested.is_some_and(|req| {
            policy == ResourceConflict::KickOld && taken(req.as_str(), resources).is_some()
        });
        if !replaces && resources.len() >= max {
            if resources.is_empty() {
                users.remove(bare);
            }
            return BindOutcome::TooMany;
        }
        let mut replaced = None;
        let resource = match requested {
            Some(req) => match (taken(req.as_str(), resources), policy) {
                (None, _) => req.clone(),
                (Some(i), ResourceConflict::KickOld) => {
                    replaced = Some(resources.swap_remove(i).handle);
                    req.clone()
                }
                (Some(_), ResourceConflict::KickNew) => {
                    if resources.is_empty() {
                        users.remove(bare);
                    }
                    return BindOutcome::Conflict;
                }
                (Some(_), ResourceConflict::Random) => fresh(resources, &mut generate),
            },
            None => fresh(resources, &mut generate),
        };
        // One resource per account is the common case: no spare slots kept per idle user.
        resources.reserve_exact(1);
        resources.push(ResourceInfo {
            resource: resource.as_str().to_owned(),
            handle,
        });
        drop(users);
        let jid = bare.with_resource(&resource);
        // Bound here again (a session that came back): nothing for it is forwarded away,
        // so two nodes never forward the same JID to each other.
        if !self.moved.read().is_empty() {
            self.moved.write().remove(&jid);
        }
        BindOutcome::Bound { jid, replaced }
    }

    /// Removes `jid` if it is still owned by session `id` (a replaced session must not unbind
    /// its successor).
    pub fn unbind(&self, jid: &FullJid, id: SessionId) {
        let bare = jid.to_bare();
        let mut users = self.users.write();
        if let Some(resources) = users.get_mut(&bare) {
            resources.retain(|r| !(r.resource == jid.resource().as_str() && r.handle.id == id));
            if resources.is_empty() {
                users.remove(&bare);
            }
        }
    }

    /// Session `id`, bound to `jid` here, now lives on another node as `successor` (same
    /// id): its table entry goes, and until [`Router::moved_end`] stanzas that still come
    /// here for it (routed by a stale registry cache) follow it there.
    pub fn moved(&self, jid: &FullJid, id: SessionId, successor: SessionHandle) {
        self.unbind(jid, id);
        if successor.id == id {
            self.moved.write().insert(jid.clone(), successor);
        }
    }

    /// Session `id`'s old actor stopped forwarding: forget where it went.
    pub fn moved_end(&self, id: SessionId) {
        let mut moved = self.moved.write();
        if !moved.is_empty() {
            moved.retain(|_, h| h.id != id);
        }
    }

    /// Where session `only` (any session, when None) that was bound to `jid` here went.
    pub(crate) fn moved_to(&self, jid: &FullJid, only: Option<SessionId>) -> Option<SessionHandle> {
        let moved = self.moved.read();
        if moved.is_empty() {
            return None;
        }
        moved
            .get(jid)
            .filter(|h| only.is_none_or(|id| h.id == id))
            .cloned()
    }

    /// Points `jid`, owned by session `id`, at another actor under the same id (a resumed
    /// session moved to its new connection, XEP-0198 §5). False when `id` no longer owns it.
    pub fn rehandle(&self, jid: &FullJid, id: SessionId, handle: SessionHandle) -> bool {
        let mut users = self.users.write();
        let Some(r) = users.get_mut(&jid.to_bare()).and_then(|list| {
            list.iter_mut()
                .find(|r| r.resource == jid.resource().as_str() && r.handle.id == id)
        }) else {
            return false;
        };
        r.handle = handle;
        true
    }

    /// The session that owns `jid`, on this node or (in a cluster) on another.
    pub fn lookup(&self, jid: &FullJid) -> Option<SessionHandle> {
        self.lookup_local(jid)
            .or_else(|| self.directory.get()?.lookup(jid))
    }

    /// The session on this node that owns `jid`.
    pub fn lookup_local(&self, jid: &FullJid) -> Option<SessionHandle> {
        let users = self.users.read();
        users
            .get(&jid.to_bare())?
            .iter()
            .find(|r| r.resource == jid.resource().as_str())
            .map(|r| r.handle.clone())
    }

    /// Delivers to the session on this node that owns `jid` (only if it is session `only`,
    /// when given), using its handle in place under the read lock: no handle is cloned on
    /// the hot path. A stanza for `origin` itself comes back as [`Local::Loopback`].
    pub(crate) fn deliver_local(
        &self,
        jid: &FullJid,
        stanza: Element,
        origin: Option<SessionId>,
        only: Option<SessionId>,
    ) -> Local {
        let users = self.users.read();
        let owner = users
            .get(&jid.to_bare())
            .and_then(|list| list.iter().find(|r| r.resource == jid.resource().as_str()))
            .map(|r| &r.handle)
            .filter(|h| only.is_none_or(|id| h.id == id));
        match owner {
            None => Local::Absent(stanza),
            Some(h) if Some(h.id) == origin => Local::Loopback(stanza),
            // Delivering is a counter and a non-blocking channel push: fine under the lock.
            Some(h) => match h.deliver(stanza) {
                Ok(()) => Local::Delivered,
                Err(undelivered) => Local::Failed(undelivered),
            },
        }
    }

    /// Every bound session on this node (for shutdown and the admin API).
    pub fn all_sessions(&self) -> Vec<SessionHandle> {
        let users = self.users.read();
        users
            .values()
            .flat_map(|list| list.iter().map(|r| r.handle.clone()))
            .collect()
    }

    /// Every bound full JID on this node with its session id, sorted by JID (admin API).
    pub fn bound(&self) -> Vec<(FullJid, SessionId)> {
        let users = self.users.read();
        let mut out: Vec<(FullJid, SessionId)> = users
            .iter()
            .flat_map(|(bare, list)| {
                list.iter().filter_map(move |r| {
                    bare.with_resource_str(&r.resource)
                        .ok()
                        .map(|full| (full, r.handle.id))
                })
            })
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }

    /// Every bound full JID on this node with its session's handle.
    pub fn bound_handles(&self) -> Vec<(FullJid, SessionHandle)> {
        let users = self.users.read();
        users
            .iter()
            .flat_map(|(bare, list)| {
                list.iter().filter_map(move |r| {
                    bare.with_resource_str(&r.resource)
                        .ok()
                        .map(|full| (full, r.handle.clone()))
                })
            })
            .collect()
    }

    /// Number of bound resources on this node.
    pub fn session_count(&self) -> usize {
        let users = self.users.read();
        users.values().map(Vec::len).sum()
    }

    /// Bound sessions on this node by kind: clients, and components' connections.
    pub fn session_counts(&self) -> (usize, usize) {
        let users = self.users.read();
        users.iter().fold((0, 0), |(c2s, comp), (bare, list)| {
            if self.is_component(bare.domain().as_str()) {
                (c2s, comp + list.len())
            } else {
                (c2s + list.len(), comp)
            }
        })
    }
}

/// What became of a delivery to this node's table.
pub(crate) enum Local {
    /// Handed to the owning session.
    Delivered,
    /// The owner is the origin session itself.
    Loopback(Element),
    /// The owner refused it.
    Failed(Box<Undelivered>),
    /// No session here owns the full JID (or not the one asked for).
    Absent(Element),
}

fn fresh(resources: &[ResourceInfo], generate: &mut impl FnMut() -> ResourcePart) -> ResourcePart {
    loop {
        let candidate = generate();
        if !resources.iter().any(|r| r.resource == candidate.as_str()) {
            return candidate;
        }
    }
}
