//! The registry of running user actors: get-or-start, a safe idle stop, and the router's
//! [`UserSink`]: the entrance through which the router hands stanzas to user actors.
//!
//! Every send to a user actor happens under the registry lock, and an actor leaves the
//! registry under the write lock only when no session is attached or attaching. So a stanza
//! is never sent to an actor that has already decided to stop: it either reaches the old
//! actor before its removal (and the actor drains its mailbox before stopping) or starts a new
//! one.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler, Message};
use actix_rt::ArbiterHandle;
use jid::BareJid;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::{Refused, Router, SessionHandle, SessionId, UserSink, Wake};
use parley_storage::Storage;
use parley_xml::Element;

use crate::actor::UserActor;
use crate::bounds::{AbsentCache, MailboxGauge, Queued};
use crate::messages::{
    Attach, AttachState, CarbonReceived, Detach, FromClient, HandOff, Inbound, Vanished,
};
use crate::placement::{parse, Placement, ToWire, UserWire};
use crate::routing::{self, Action, Addressed, Class};
use tracing::warn;

/// Settings of the user layer, from the `[roster]`, `[offline]`, `[quotas]` and `[users]`
/// config sections. Every per-account bound lives here, so that one account cannot fill
/// storage or memory.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Largest roster a user may build (RFC 6121 §2.3.3: past it, `<not-allowed/>`).
    pub max_roster_items: usize,
    /// Offline messages kept per user (XEP-0160); past it, senders get service-unavailable.
    pub max_offline: usize,
    /// Bytes of offline messages kept per user (their serialized stanzas).
    pub max_offline_bytes: usize,
    /// Groups one roster item may name.
    pub max_groups_per_item: usize,
    /// Longest roster item name or group name, in bytes.
    pub max_roster_name_bytes: usize,
    /// Roster removal records (tombstones) kept per user for RFC 6121 §2.6 versioning.
    pub max_roster_tombstones: usize,
    /// Items one blocklist (XEP-0191) may hold.
    pub max_blocklist_items: usize,
    /// Unanswered inbound subscription requests kept per user (RFC 6121 §3.1.3).
    pub max_pending_subscriptions: usize,
    /// Largest stored subscription request (the presence stanza's XML), in bytes.
    pub max_subscription_request_bytes: usize,
    /// Directed-presence targets remembered per resource (RFC 6121 §4.6).
    pub max_directed_presence: usize,
    /// Stanzas queued towards one user actor and not yet handled.
    pub mailbox_stanzas: usize,
    /// Bytes of stanzas queued towards one user actor and not yet handled.
    pub mailbox_bytes: usize,
    /// Accounts remembered as absent, so that stanzas to them start no actor.
    pub absent_cache_entries: usize,
    /// How long an account is remembered as absent (bounds how late an account created
    /// on another node or by the CLI is seen here).
    pub absent_cache_ttl: Duration,
    /// Account existence checks in flight at once; past it, stanzas to unknown accounts
    /// are refused with `resource-constraint`.
    pub max_existence_checks: usize,
    /// How long an actor with no resources lingers before stopping.
    pub idle_timeout: Duration,
    /// `[pep]` bounds of each account's PEP service (XEP-0163).
    pub pep: crate::pep::PepLimits,
    /// `[push]` bounds of push notifications (XEP-0357).
    pub push: crate::push::PushLimits,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            max_roster_items: 1000,
            max_offline: 100,
            max_offline_bytes: 1 << 20,
            max_groups_per_item: 32,
            max_roster_name_bytes: 1023,
            max_roster_tombstones: 1000,
            max_blocklist_items: 1000,
            max_pending_subscriptions: 1000,
            max_subscription_request_bytes: 4096,
            max_directed_presence: 100,
            mailbox_stanzas: 1000,
            mailbox_bytes: 4 << 20,
            absent_cache_entries: 10_000,
            absent_cache_ttl: Duration::from_secs(5),
            max_existence_checks: 256,
            idle_timeout: Duration::from_secs(30),
            pep: crate::pep::PepLimits::default(),
            push: crate::push::PushLimits::default(),
        }
    }
}

pub(crate) struct Entry {
    pub(crate) addr: Addr<UserActor>,
    /// Stanzas sent to the actor and not yet handled (`users.mailbox_*`).
    pub(crate) mailbox: Arc<MailboxGauge>,
    /// Attaches sent and not yet undone by a processed detach.
    pub(crate) attached: Arc<AtomicUsize>,
    /// Resources with carbons enabled (XEP-0280), so that senders can skip carbon work.
    pub(crate) carbons: Arc<AtomicUsize>,
}

/// All running user actors of this node.
pub struct Users {
    pub(crate) me: Weak<Users>,
    pub(crate) router: Arc<Router>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: UserConfig,
    workers: Vec<ArbiterHandle>,
    map: RwLock<HashMap<BareJid, Entry>>,
    placement: OnceLock<Arc<dyn Placement>>,
    /// Accounts recently found absent: stanzas to them start no actor.
    absent: Mutex<AbsentCache>,
    /// Existence checks in flight, with the stanzas waiting on each.
    checks: Mutex<Checks>,
    /// Woken whenever an existence check finishes, so that shutdown can wait for stanzas
    /// that are between two user actors (an account lookup) without polling.
    check_done: tokio::sync::Notify,
    /// Push notifications waiting or recently sent, per account (XEP-0357).
    pub(crate) push: crate::push::PushGate,
}

/// Stanzas to users whose account is being looked up, bounded in users, stanzas per user
/// and bytes in all.
#[derive(Debug, Default)]
struct Checks {
    waiting: HashMap<BareJid, Vec<Element>>,
    bytes: usize,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

/// What a session keeps of its user: the way to its actor, wherever that runs.
#[derive(Clone, Debug)]
pub struct UserLink {
    jid: BareJid,
    users: Arc<Users>,
}

impl UserLink {
    /// Sends `msg` to the user's actor, on this node or the one that owns the user.
    pub fn send<M>(&self, msg: M)
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        self.users.send(&self.jid, msg);
    }

    /// Like [`send`](Self::send), but a stanza the user layer has no room for comes back,
    /// so that a session can write the error to its client in order with its other replies.
    pub fn try_send<M>(&self, msg: M) -> Result<(), Box<Refused>>
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        self.users.try_send(&self.jid, msg)
    }

    /// Resolves once the user's latest broadcast sits in its contacts' sessions' queues,
    /// wherever their actors and sessions run ([`crate::Fence`], the crate's `order.rs`); `None`
    /// when the user's actor does not run (nothing was broadcast).
    pub fn fence(&self) -> Option<crate::placement::SyncFuture> {
        self.users.fence(&self.jid)
    }

    /// How many of the user's resources have carbons enabled.
    pub fn carbons_enabled(&self) -> usize {
        self.users.carbons_enabled(&self.jid)
    }
}

/// Where a message for a user actor goes: this node's actor, or (handed over) another's.
enum Placed<M> {
    /// The user's actor runs here: the message, to send locally.
    Here(M),
    /// Forwarded to the owning node; a refused stanza comes back as a refusal.
    Away(Result<(), Box<Refused>>),
}

/// The router hands stanzas for users here: to a bare JID, to a full JID that no session
/// owns, or from a session that is gone (RFC 6121 §8.5.2, §8.5.3.2).
impl UserSink for Users {
    fn to_user(&self, user: &BareJid, stanza: Element, wake: Wake) -> Result<(), Box<Refused>> {
        if stanza.name() == "iq"
            && matches!(stanza.attr("type"), Some("result" | "error"))
            && self.push_answer(user, &stanza)
        {
            return Ok(());
        }
        match wake {
            Wake::Start => self.try_send(user, Inbound { stanza }),
            // Not running: a presence or an error for a user nobody is there to show it to.
            Wake::IfRunning => self.try_send_if_running(user, Inbound { stanza }).map(drop),
        }
    }
}

/// RFC 6121 §8.5.1: what the server does with a stanza for an account that does not exist,
/// exactly as the user actor's table says.
fn no_account(stanza: Element) -> Result<(), Box<Refused>> {
    let Some(class) = Class::of(&stanza) else {
        return Ok(());
    };
    match routing::decide(Addressed::NoAccount, class, false).action {
        Action::Bounce(condition) => Err(Refused::new(stanza, StanzaError::new(condition))),
        _ => Ok(()),
    }
}

fn refuse_check(jid: &BareJid, stanza: Element) -> Box<Refused> {
    if parley_router::metrics::refuse("existence_checks", jid.domain().as_str()) {
        warn!(domain = %jid.domain(), "too many account lookups in flight: refusing stanzas");
    }
    Refused::new(stanza, congested())
}

/// The refusal for a stanza the user layer has no room for.
fn congested() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::ResourceConstraint,
        "the recipient is receiving too much; try again later",
    )
}

impl Users {
    /// A registry that starts user actors on `workers`, spread by JID.
    pub fn new(
        router: Arc<Router>,
        storage: Arc<dyn Storage>,
        config: UserConfig,
        workers: Vec<ArbiterHandle>,
    ) -> Arc<Users> {
        assert!(!workers.is_empty(), "user actors need at least one worker");
        Arc::new_cyclic(|me: &Weak<Users>| {
            let sink: Weak<dyn UserSink> = me.clone();
            router.set_user_sink(sink);
            Users {
                me: me.clone(),
                router,
                storage,
                workers,
                map: RwLock::new(HashMap::new()),
                placement: OnceLock::new(),
                absent: Mutex::new(AbsentCache::new(
                    config.absent_cache_entries,
                    config.absent_cache_ttl,
                )),
                checks: Mutex::new(Checks::default()),
                check_done: tokio::sync::Notify::new(),
                push: crate::push::PushGate::default(),
                config,
            }
        })
    }

    /// Installs the cluster placement (once, at start-up, before any session binds).
    pub fn set_placement(&self, placement: Arc<dyn Placement>) {
        let _ = self.placement.set(placement);
    }

    /// The node that owns `jid` when it is not this one.
    pub fn remote_owner(&self, jid: &BareJid) -> Option<Arc<str>> {
        self.placement.get()?.remote_owner(jid)
    }

    /// Sends to the owner on another node when `jid` is owned elsewhere; hands `msg` back
    /// when it is ours. A stanza the link refuses comes back as a refusal.
    fn forwarded<M: ToWire>(&self, jid: &BareJid, msg: M, start: bool) -> Placed<M> {
        let Some(placement) = self.placement.get() else {
            return Placed::Here(msg);
        };
        let Some(node) = placement.remote_owner(jid) else {
            return Placed::Here(msg);
        };
        let mut wire = msg.to_wire();
        if let UserWire::Inbound { start: s, .. } = &mut wire {
            *s = start;
        }
        match placement.forward(&node, jid, wire) {
            Ok(()) => Placed::Away(Ok(())),
            // Only stanzas are ever refused to their sender; attach and detach messages
            // carry none, and their node's loss is handled by membership (`Vanished`).
            Err(wire) => Placed::Away(wire.stanza().map_or(Ok(()), |stanza| {
                Err(Refused::new(
                    stanza,
                    StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "the cluster link to the recipient's node is congested",
                    ),
                ))
            })),
        }
    }

    fn worker(&self, jid: &BareJid) -> &ArbiterHandle {
        let mut h = DefaultHasher::new();
        jid.hash(&mut h);
        &self.workers[(h.finish() as usize) % self.workers.len()]
    }

    fn start(&self, jid: &BareJid) -> Entry {
        let worker = self.worker(jid);
        let attached = Arc::new(AtomicUsize::new(0));
        let carbons = Arc::new(AtomicUsize::new(0));
        let mailbox = Arc::new(MailboxGauge::default());
        let users = self.me.upgrade().expect("the registry outlives its actors");
        let (j, a, c, m) = (
            jid.clone(),
            attached.clone(),
            carbons.clone(),
            mailbox.clone(),
        );
        let addr = UserActor::start_in_arbiter(worker, move |_| UserActor::new(j, users, a, c, m));
        Entry {
            addr,
            mailbox,
            attached,
            carbons,
        }
    }

    /// Hands `msg` to a running actor, unless its mailbox is full: then a stanza is refused
    /// with `resource-constraint` (RFC 6120 §8.3.3.18) rather than queued without bound.
    fn deliver_to<M>(&self, jid: &BareJid, entry: &Entry, msg: M) -> Result<(), Box<Refused>>
    where
        M: Message<Result = ()> + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        if let Some(stanza) = msg.queued_stanza() {
            let c = &self.config;
            if !entry
                .mailbox
                .charge(stanza, c.mailbox_stanzas, c.mailbox_bytes)
            {
                if parley_router::metrics::refuse("user_mailbox", jid.as_str()) {
                    warn!(user = %jid, "user actor mailbox full: refusing stanzas");
                }
                // A copy only on this path, which a flood takes; the message is dropped.
                return Err(Refused::new(stanza.clone(), congested()));
            }
        }
        entry.addr.do_send(msg);
        Ok(())
    }

    /// A stanza to `jid`, whose actor is not running here: started only if the account
    /// exists. Absent accounts are remembered for `users.absent_cache_ttl_ms`; others are
    /// looked up once (one cheap query, not an actor loading a whole user), while stanzas
    /// to the same user wait in order.
    fn inbound_unknown(&self, jid: &BareJid, stanza: Element) -> Result<(), Box<Refused>> {
        if self.absent_lock().is_absent(jid, Instant::now()) {
            return no_account(stanza);
        }
        let mut checks = self.checks.lock();
        let size = crate::size::approx_bytes(&stanza);
        let c = &self.config;
        let full_bytes = checks.bytes + size > c.mailbox_bytes;
        let Checks { waiting, bytes } = &mut *checks;
        if let Some(queue) = waiting.get_mut(jid) {
            if queue.len() >= c.mailbox_stanzas || full_bytes {
                drop(checks);
                return Err(refuse_check(jid, stanza));
            }
            *bytes += size;
            queue.push(stanza);
            return Ok(());
        }
        if waiting.len() >= c.max_existence_checks || full_bytes {
            drop(checks);
            return Err(refuse_check(jid, stanza));
        }
        *bytes += size;
        waiting.insert(jid.clone(), vec![stanza]);
        drop(checks);
        let users = self.me.upgrade().expect("the registry outlives its checks");
        let (j, storage) = (jid.clone(), self.storage.clone());
        self.worker(jid).spawn(async move {
            let (user, host) = (j.node().map_or("", |n| n.as_str()), j.domain().as_str());
            let exists = storage.account(user, host).await.map(|a| a.is_some());
            users.checked(&j, exists);
        });
        Ok(())
    }

    /// The existence check of `jid` is done: its stanzas go to a fresh actor, or get the
    /// RFC 6121 §8.5.1 answer for an account that does not exist.
    fn checked(&self, jid: &BareJid, exists: parley_storage::Result<bool>) {
        let queue = {
            let mut checks = self.checks.lock();
            let queue = checks.waiting.remove(jid).unwrap_or_default();
            let size: usize = queue.iter().map(crate::size::approx_bytes).sum();
            checks.bytes = checks.bytes.saturating_sub(size);
            queue
        };
        match exists {
            Ok(false) => {
                self.absent_lock().insert(jid.clone(), Instant::now());
                for stanza in queue {
                    self.answer(no_account(stanza));
                }
            }
            other => {
                if let Err(e) = other {
                    // The actor retries the load and, failing again, treats the account as
                    // present: a storage hiccup must not bounce a real user's messages.
                    warn!(user = %jid, error = %e, "checking whether an account exists failed");
                }
                for stanza in queue {
                    self.answer(self.start_and_send(jid, Inbound { stanza }));
                }
            }
        }
        // After the stanzas reached their actor, so a drain that wakes sees the actor.
        self.check_done.notify_waiters();
    }

    fn absent_lock(&self) -> parking_lot::MutexGuard<'_, AbsentCache> {
        self.absent.lock()
    }

    /// An account was created (or proved to exist by a login): stanzas to it are no longer
    /// answered as for a missing account. Accounts created by another process (the CLI,
    /// another node) are seen once `users.absent_cache_ttl_ms` has passed.
    pub fn account_created(&self, jid: &BareJid) {
        self.absent_lock().forget(jid);
    }

    /// Sends `msg` to `jid`'s actor, starting it if needed. A stanza it carries that the
    /// user layer has no room for is refused to its sender through the router.
    pub fn send<M>(&self, jid: &BareJid, msg: M)
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        self.answer(self.try_send(jid, msg));
    }

    fn try_send<M>(&self, jid: &BareJid, msg: M) -> Result<(), Box<Refused>>
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        match self.forwarded(jid, msg, true) {
            Placed::Away(result) => result,
            Placed::Here(msg) => self.send_local(jid, msg),
        }
    }

    /// Sends `msg` to `jid`'s actor on this node, starting it if needed, whoever owns it.
    /// A stanza to a user whose actor is not running waits for an existence check first.
    fn send_local<M>(&self, jid: &BareJid, msg: M) -> Result<(), Box<Refused>>
    where
        M: Message<Result = ()> + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        {
            let map = self.map.read();
            if let Some(entry) = map.get(jid) {
                return self.deliver_to(jid, entry, msg);
            }
        }
        match msg.into_inbound() {
            Ok(stanza) => self.inbound_unknown(jid, stanza),
            Err(msg) => self.start_and_send(jid, msg),
        }
    }

    fn start_and_send<M>(&self, jid: &BareJid, msg: M) -> Result<(), Box<Refused>>
    where
        M: Message<Result = ()> + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        let mut map = self.map.write();
        let entry = map.entry(jid.clone()).or_insert_with(|| self.start(jid));
        self.deliver_to(jid, entry, msg)
    }

    /// Sends `msg` only if `jid`'s actor is running (the user has sessions or recent
    /// traffic). Returns whether it was sent; a stanza it carries that the user layer has
    /// no room for is refused to its sender through the router.
    pub fn send_if_running<M>(&self, jid: &BareJid, msg: M) -> bool
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        match self.try_send_if_running(jid, msg) {
            Ok(sent) => sent,
            Err(refused) => {
                self.router.bounce(&refused.stanza, refused.error);
                true
            }
        }
    }

    /// The address of `jid`'s actor when it runs on this node.
    pub(crate) fn local_addr(&self, jid: &BareJid) -> Option<Addr<UserActor>> {
        if let Some(placement) = self.placement.get() {
            if placement.remote_owner(jid).is_some() {
                return None;
            }
        }
        self.map.read().get(jid).map(|e| e.addr.clone())
    }

    /// The cluster's placement, once installed.
    pub(crate) fn placement(&self) -> Option<&Arc<dyn Placement>> {
        self.placement.get()
    }

    fn try_send_if_running<M>(&self, jid: &BareJid, msg: M) -> Result<bool, Box<Refused>>
    where
        M: Message<Result = ()> + ToWire + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        match self.forwarded(jid, msg, false) {
            Placed::Away(result) => result.map(|()| true),
            Placed::Here(msg) => self.send_if_running_local(jid, msg),
        }
    }

    fn send_if_running_local<M>(&self, jid: &BareJid, msg: M) -> Result<bool, Box<Refused>>
    where
        M: Message<Result = ()> + Queued + Send + 'static,
        UserActor: Handler<M>,
    {
        let map = self.map.read();
        match map.get(jid) {
            Some(entry) => self.deliver_to(jid, entry, msg).map(|()| true),
            None => Ok(false),
        }
    }

    /// A session bound `resource` (or re-attaches with `state` after its user's actor moved):
    /// attaches it to the user's actor, on this node or the owner.
    pub fn attach(
        self: &Arc<Self>,
        jid: &BareJid,
        resource: &str,
        handle: SessionHandle,
        state: AttachState,
    ) -> UserLink {
        let msg = Attach {
            resource: resource.to_owned(),
            handle,
            state,
        };
        // An attach carries no stanza: forwarded, nothing can come back to bounce.
        if let Placed::Here(msg) = self.forwarded(jid, msg, true) {
            self.attach_local(jid, msg);
        }
        UserLink {
            jid: jid.clone(),
            users: self.clone(),
        }
    }

    fn attach_local(&self, jid: &BareJid, msg: Attach) {
        // A login proves the account exists.
        self.account_created(jid);
        let mut map = self.map.write();
        let entry = map.entry(jid.clone()).or_insert_with(|| self.start(jid));
        entry.attached.fetch_add(1, Ordering::AcqRel);
        entry.addr.do_send(msg);
    }

    /// A user-actor message from another node: handled here, where the sender computed the
    /// owner to be. `remote` makes the handle of a session on the sending node.
    pub fn deliver_wire(
        &self,
        jid: &BareJid,
        msg: UserWire,
        remote: impl FnOnce(SessionId, jid::FullJid) -> SessionHandle,
    ) {
        match msg {
            UserWire::Attach {
                resource,
                session,
                state,
            } => {
                let Ok(full) = jid.with_resource_str(&resource) else {
                    return;
                };
                self.attach_local(
                    jid,
                    Attach {
                        resource,
                        handle: remote(SessionId(session), full),
                        state: state.into_state(),
                    },
                )
            }
            UserWire::Detach { resource, session } => self.answer(self.send_local(
                jid,
                Detach {
                    resource,
                    session: SessionId(session),
                },
            )),
            UserWire::FromClient {
                resource,
                xml,
                routed,
            } => {
                if let Some(stanza) = parse(&xml) {
                    self.answer(self.send_local(
                        jid,
                        FromClient {
                            resource,
                            stanza,
                            routed,
                        },
                    ));
                }
            }
            UserWire::Inbound { xml, start } => {
                if let Some(stanza) = parse(&xml) {
                    if start {
                        self.answer(self.send_local(jid, Inbound { stanza }));
                    } else {
                        // Not running: a presence or an error nobody here is left to see.
                        self.answer(
                            self.send_if_running_local(jid, Inbound { stanza })
                                .map(drop),
                        );
                    }
                }
            }
            UserWire::CarbonReceived { resource, xml } => {
                if let Some(message) = parse(&xml) {
                    // Not running: the user has no resource left to copy to.
                    let copied =
                        self.send_if_running_local(jid, CarbonReceived { resource, message });
                    self.answer(copied.map(drop));
                }
            }
        }
    }

    /// Answers a refusal to its sender through the router.
    fn answer(&self, result: Result<(), Box<Refused>>) {
        if let Err(refused) = result {
            self.router.bounce(&refused.stanza, refused.error);
        }
    }

    /// A session of a lost node is gone: its user's actor (here, the owner) tells whoever
    /// saw it available.
    pub fn vanished(&self, jid: &BareJid, msg: Vanished) {
        self.answer(self.send_local(jid, msg));
    }

    /// Hands off every running actor whose user `owned_here` no longer claims (membership
    /// changed): they leave the registry at once, so that later sends go to the new owner.
    pub fn hand_off(&self, owned_here: impl Fn(&BareJid) -> bool) -> usize {
        let mut map = self.map.write();
        let moving: Vec<BareJid> = map.keys().filter(|j| !owned_here(j)).cloned().collect();
        for jid in &moving {
            if let Some(entry) = map.remove(jid) {
                entry.addr.do_send(HandOff);
            }
        }
        moving.len()
    }

    /// The router, whose road every stanza of the user layer takes.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// How many of `jid`'s resources have carbons enabled (0 when the user is not running).
    pub fn carbons_enabled(&self, jid: &BareJid) -> usize {
        if let Some(placement) = self.placement.get() {
            if placement.remote_owner(jid).is_some() {
                return placement.carbons_enabled(jid);
            }
        }
        let map = self.map.read();
        map.get(jid)
            .map_or(0, |e| e.carbons.load(Ordering::Acquire))
    }

    /// Removes `jid`'s actor if it is `addr` and nothing is attached or attaching.
    pub(crate) fn retire(&self, jid: &BareJid, addr: &Addr<UserActor>) -> bool {
        let mut map = self.map.write();
        match map.get(jid) {
            Some(e) if &e.addr == addr && e.attached.load(Ordering::Acquire) == 0 => {
                map.remove(jid);
                true
            }
            _ => false,
        }
    }

    /// Waits (up to `limit`) until every running actor has finished the storage work it
    /// started. Called at shutdown before the worker threads stop.
    pub async fn drain(&self, limit: Duration) {
        // A stanza one actor forwards to another while a round passes (a subscription going
        // from the user's actor to the contact's) may first wait for the contact's account
        // lookup and then start a new actor. So: wait for the lookups, drain every actor,
        // and repeat until a round starts no lookup and no actor.
        let all = async {
            loop {
                self.checks_finished().await;
                let drained: HashMap<BareJid, Addr<UserActor>> = {
                    let map = self.map.read();
                    map.iter()
                        .map(|(j, e)| (j.clone(), e.addr.clone()))
                        .collect()
                };
                for addr in drained.values() {
                    let _ = addr.send(crate::messages::Drain).await;
                }
                let settled = self.checks.lock().waiting.is_empty()
                    && self
                        .map
                        .read()
                        .iter()
                        .all(|(j, e)| drained.get(j) == Some(&e.addr));
                if settled {
                    break;
                }
            }
        };
        let _ = actix_rt::time::timeout(limit, all).await;
    }

    /// Returns once no account lookup is in flight.
    async fn checks_finished(&self) {
        loop {
            // Registered before the check, so a lookup finishing in between still wakes us.
            let done = self.check_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.checks.lock().waiting.is_empty() {
                return;
            }
            done.await;
        }
    }

    /// Number of running user actors.
    pub fn running(&self) -> usize {
        self.map.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn rfc6121_8_5_1_an_absent_account_refuses_what_its_table_bounces_and_drops_the_rest() {
        let message = el("<message xmlns='jabber:client' type='chat' from='a@x/r' to='nobody@x'/>");
        let refused = no_account(message).expect_err("chat is bounced");
        assert_eq!(refused.error.condition, StanzaCondition::ServiceUnavailable);
        let iq = el("<iq xmlns='jabber:client' type='get' id='1' from='a@x/r' to='nobody@x'/>");
        assert!(no_account(iq).is_err());
        let presence = el("<presence xmlns='jabber:client' from='a@x/r' to='nobody@x'/>");
        assert!(no_account(presence).is_ok(), "presence is dropped");
        let error = el("<message xmlns='jabber:client' type='error' from='a@x/r' to='nobody@x'/>");
        assert!(no_account(error).is_ok(), "an error is never answered");
    }
}
