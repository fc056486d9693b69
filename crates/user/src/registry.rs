//! The registry of running user actors: get-or-start, and a safe idle stop.
//!
//! Every send to a user actor happens under the registry lock, and an actor leaves the
//! registry under the write lock only when no session is attached or attaching. So a stanza
//! is never sent to an actor that has already decided to stop: it either reaches the old
//! actor before its removal (and the actor drains its mailbox before stopping) or starts a new
//! one.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use actix::{Actor, Addr, Handler, Message};
use actix_rt::ArbiterHandle;
use jid::BareJid;
use parley_router::{Router, SessionHandle};
use parley_storage::Storage;

use crate::actor::UserActor;
use crate::messages::Attach;

/// Settings of the user layer, from the `[roster]` and `[offline]` config sections.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Largest roster a user may build (RFC 6121 §2.3.3: past it, `<not-allowed/>`).
    pub max_roster_items: usize,
    /// Offline messages kept per user (XEP-0160); past it, senders get service-unavailable.
    pub max_offline: usize,
    /// How long an actor with no resources lingers before stopping.
    pub idle_timeout: Duration,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            max_roster_items: 1000,
            max_offline: 100,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

pub(crate) struct Entry {
    pub(crate) addr: Addr<UserActor>,
    /// Attaches sent and not yet undone by a processed detach.
    pub(crate) attached: Arc<AtomicUsize>,
    /// Resources with carbons enabled (XEP-0280), so that senders can skip carbon work.
    pub(crate) carbons: Arc<AtomicUsize>,
}

/// All running user actors of this node.
pub struct Users {
    me: Weak<Users>,
    pub(crate) router: Arc<Router>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: UserConfig,
    workers: Vec<ArbiterHandle>,
    map: RwLock<HashMap<BareJid, Entry>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

/// What a session keeps of its user actor.
#[derive(Clone, Debug)]
pub struct UserLink {
    /// The user's actor.
    pub addr: Addr<UserActor>,
    carbons: Arc<AtomicUsize>,
}

impl UserLink {
    /// How many of the user's resources have carbons enabled.
    pub fn carbons_enabled(&self) -> usize {
        self.carbons.load(Ordering::Acquire)
    }
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
        Arc::new_cyclic(|me| Users {
            me: me.clone(),
            router,
            storage,
            config,
            workers,
            map: RwLock::new(HashMap::new()),
        })
    }

    fn start(&self, jid: &BareJid) -> Entry {
        let mut h = DefaultHasher::new();
        jid.hash(&mut h);
        let worker = &self.workers[(h.finish() as usize) % self.workers.len()];
        let attached = Arc::new(AtomicUsize::new(0));
        let carbons = Arc::new(AtomicUsize::new(0));
        let users = self.me.upgrade().expect("the registry outlives its actors");
        let (j, a, c) = (jid.clone(), attached.clone(), carbons.clone());
        let addr = UserActor::start_in_arbiter(worker, move |_| UserActor::new(j, users, a, c));
        Entry {
            addr,
            attached,
            carbons,
        }
    }

    /// Sends `msg` to `jid`'s actor, starting it if needed.
    pub fn send<M>(&self, jid: &BareJid, msg: M)
    where
        M: Message<Result = ()> + Send + 'static,
        UserActor: Handler<M>,
    {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = map.get(jid) {
                entry.addr.do_send(msg);
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(jid.clone()).or_insert_with(|| self.start(jid));
        entry.addr.do_send(msg);
    }

    /// Sends `msg` only if `jid`'s actor is running (the user has sessions or recent
    /// traffic). Returns whether it was sent.
    pub fn send_if_running<M>(&self, jid: &BareJid, msg: M) -> bool
    where
        M: Message<Result = ()> + Send + 'static,
        UserActor: Handler<M>,
    {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(jid) {
            Some(entry) => {
                entry.addr.do_send(msg);
                true
            }
            None => false,
        }
    }

    /// A session bound `resource`: attaches it to the user's actor (starting it if needed).
    pub fn attach(&self, jid: &BareJid, resource: &str, handle: SessionHandle) -> UserLink {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(jid.clone()).or_insert_with(|| self.start(jid));
        entry.attached.fetch_add(1, Ordering::AcqRel);
        entry.addr.do_send(Attach {
            resource: resource.to_owned(),
            handle,
        });
        UserLink {
            addr: entry.addr.clone(),
            carbons: entry.carbons.clone(),
        }
    }

    /// How many of `jid`'s resources have carbons enabled (0 when the user is not running).
    pub fn carbons_enabled(&self, jid: &BareJid) -> usize {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(jid)
            .map_or(0, |e| e.carbons.load(Ordering::Acquire))
    }

    /// Removes `jid`'s actor if it is `addr` and nothing is attached or attaching.
    pub(crate) fn retire(&self, jid: &BareJid, addr: &Addr<UserActor>) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
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
        // Two rounds: a stanza one actor forwards to another while the first round passes
        // (a subscription going from the user's actor to the contact's) is handled in the
        // second. Chains between user actors are never longer than that.
        let all = async {
            for _ in 0..2 {
                let addrs: Vec<Addr<UserActor>> = {
                    let map = self.map.read().unwrap_or_else(|e| e.into_inner());
                    map.values().map(|e| e.addr.clone()).collect()
                };
                for addr in addrs {
                    let _ = addr.send(crate::messages::Drain).await;
                }
            }
        };
        let _ = actix_rt::time::timeout(limit, all).await;
    }

    /// Number of running user actors.
    pub fn running(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
