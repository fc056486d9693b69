//! The registry of live room actors, and the router's [`Service`] for the conference
//! domains: every stanza to `conference.DOMAIN` or a room on it enters here.
//!
//! A room lives on one node, its owner by rendezvous hashing (the same placement as user
//! actors, through [`RoomPlacement`]); a stanza that arrives elsewhere is forwarded over
//! the node link. Every send to a room actor happens under the registry's read lock with
//! its mailbox gauge raised, and an actor leaves the registry under the write lock only
//! when its gauge is empty, so no stanza reaches an actor that decided to stop. When the
//! cluster's membership changes, rooms owned elsewhere now are handed off: removed here,
//! told [`Moved`], and the new owner told to read the room again once the old actor's last
//! writes are done.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use jid::{BareJid, Jid};
use parking_lot::RwLock;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::{Router, Service};
use parley_storage::Storage;
use parley_xml::Element;
use tracing::debug;

use crate::room::{Destroy, Kick, Moved, Reload, RoomActor, RoomStanza, View};
use crate::{MucSettings, RoomArchive, RoomView};

/// Where a room lives in a cluster, and the road to it.
pub trait RoomPlacement: Send + Sync + 'static {
    /// The node that owns `room`, when it is not this one.
    fn owner(&self, room: &BareJid) -> Option<Arc<str>>;
    /// Sends a stanza for a room to its owner; handed back when the link refuses it.
    fn forward(&self, node: &str, stanza: Element) -> Result<(), Element>;
    /// Tells `node` to read `room` again (its previous owner finished its last writes).
    fn reload(&self, node: &str, room: &BareJid);
    /// Asks `node` to act on `room` for the admin API.
    fn control(&self, node: &str, room: &BareJid, op: RoomControl);
}

/// What the admin API does to a room, on whichever node owns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomControl {
    /// §10.9, with a reason.
    Destroy { reason: Option<String> },
    /// §8.2: remove an occupant by nick.
    Kick {
        nick: String,
        reason: Option<String>,
    },
}

/// What became of an admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controlled {
    /// Done here, its writes stored.
    Done,
    /// Sent to the node that owns the room, which does it at once.
    Forwarded,
    /// No such room (or occupant) here.
    NotFound,
}

/// Stanzas and bytes waiting for one room actor (`[muc] mailbox_*`), and the occupants
/// it counts in the node's gauge.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    items: AtomicUsize,
    bytes: AtomicUsize,
    occupants: AtomicUsize,
}

impl Gauge {
    fn admit(&self, bytes: usize, max_items: usize, max_bytes: usize) -> bool {
        if self.items.load(Ordering::Acquire) >= max_items
            || self.bytes.load(Ordering::Acquire) + bytes > max_bytes
        {
            return false;
        }
        self.items.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// One stanza of `bytes` was handled.
    pub(crate) fn taken(&self, bytes: usize) {
        self.items.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn idle(&self) -> bool {
        self.items.load(Ordering::Acquire) == 0
    }

    /// The room holds `now` occupant seats.
    pub(crate) fn set_occupants(&self, now: usize) {
        let before = self.occupants.swap(now, Ordering::AcqRel);
        crate::metrics::occupants(before, now);
    }
}

/// What every room of one service shares.
pub(crate) struct Env {
    /// The service's domain (`conference.example.org`).
    pub service: String,
    pub router: Arc<Router>,
    pub storage: Arc<dyn Storage>,
    pub settings: Arc<MucSettings>,
    /// Service admins (`[muc] admins`): owners of every room.
    pub admins: Vec<BareJid>,
    pub archive: Option<Arc<dyn RoomArchive>>,
    rooms: Weak<Rooms>,
}

impl Env {
    pub(crate) fn retire(&self, room: &BareJid, gauge: &Arc<Gauge>) -> bool {
        self.rooms.upgrade().is_none_or(|r| r.retire(room, gauge))
    }

    pub(crate) fn gone(&self, room: &BareJid, gauge: &Arc<Gauge>) {
        if let Some(r) = self.rooms.upgrade() {
            r.gone(room, gauge);
        }
    }

    /// A stanza a handed-off actor still had: routed again, to the room's new owner.
    pub(crate) fn reroute(&self, stanza: Element) {
        if let Some(r) = self.rooms.upgrade() {
            Service::accept(&*r, stanza);
        }
    }

    /// The room left this node: its new owner reads it again once the messages relayed
    /// here are in the archive too (its history is refilled from there).
    pub(crate) fn moved(&self, room: &BareJid) {
        let Some(r) = self.rooms.upgrade() else {
            return;
        };
        let (Some(placement), Some(owner)) = (r.placement.get().cloned(), r.remote_owner(room))
        else {
            return;
        };
        match self.archive.clone() {
            Some(archive) => {
                let room = room.clone();
                tokio::spawn(async move {
                    archive.written().await;
                    placement.reload(&owner, &room);
                });
            }
            None => placement.reload(&owner, room),
        }
    }

    pub(crate) fn may_create_room(&self) -> bool {
        self.rooms
            .upgrade()
            .is_some_and(|r| r.map.read().len() <= self.settings.max_live_rooms)
    }
}

struct Entry {
    addr: Addr<RoomActor>,
    gauge: Arc<Gauge>,
}

/// Every live room of this node, for every conference domain it serves.
pub struct Rooms {
    envs: HashMap<String, Arc<Env>>,
    settings: Arc<MucSettings>,
    workers: Vec<ArbiterHandle>,
    map: RwLock<HashMap<BareJid, Entry>>,
    placement: OnceLock<Arc<dyn RoomPlacement>>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("services", &self.envs.keys().collect::<Vec<_>>())
            .field("live", &self.map.read().len())
            .finish()
    }
}

impl Rooms {
    /// The registry for `services` (conference domains). Room actors run on `workers`
    /// (spread by room JID), or on the current arbiter when there are none.
    pub fn new(
        services: Vec<String>,
        router: Arc<Router>,
        storage: Arc<dyn Storage>,
        settings: MucSettings,
        archive: Option<Arc<dyn RoomArchive>>,
        workers: Vec<ArbiterHandle>,
    ) -> Arc<Rooms> {
        let settings = Arc::new(settings);
        let admins: Vec<BareJid> = settings
            .admins
            .iter()
            .filter_map(|a| BareJid::new(a).ok())
            .collect();
        Arc::new_cyclic(|me: &Weak<Rooms>| Rooms {
            envs: services
                .into_iter()
                .map(|service| {
                    let env = Arc::new(Env {
                        service: service.clone(),
                        router: router.clone(),
                        storage: storage.clone(),
                        settings: settings.clone(),
                        admins: admins.clone(),
                        archive: archive.clone(),
                        rooms: me.clone(),
                    });
                    (service, env)
                })
                .collect(),
            settings,
            workers,
            map: RwLock::new(HashMap::new()),
            placement: OnceLock::new(),
        })
    }

    /// The conference domains served.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.envs.keys().map(String::as_str)
    }

    /// The service's settings.
    pub fn settings(&self) -> &MucSettings {
        &self.settings
    }

    /// Plugs the registry into the cluster (once).
    pub fn set_placement(&self, placement: Arc<dyn RoomPlacement>) {
        let _ = self.placement.set(placement);
    }

    fn remote_owner(&self, room: &BareJid) -> Option<Arc<str>> {
        self.placement.get()?.owner(room)
    }

    /// Live rooms on this node.
    pub fn live(&self) -> usize {
        self.map.read().len()
    }

    /// A stanza peer node `from` forwarded, believing this node owns the room. When this
    /// node places the room on a third node (membership is changing), it goes on there;
    /// never back to `from`, so two nodes that disagree for a moment cannot pass a stanza
    /// back and forth: it is handled here.
    pub fn accept_from(&self, stanza: Element, from: &str) {
        self.route(stanza, Some(from));
    }

    /// A room's previous owner finished its writes: a running actor reads it again.
    pub fn reload_here(&self, room: &BareJid) {
        if let Some(e) = self.map.read().get(room) {
            e.addr.do_send(Reload);
        }
    }

    /// The cluster's membership changed: rooms `keep` does not keep leave this node.
    pub fn hand_off(&self, keep: impl Fn(&BareJid) -> bool) -> usize {
        let moved: Vec<(BareJid, Entry)> = {
            let mut map = self.map.write();
            let gone: Vec<BareJid> = map.keys().filter(|r| !keep(r)).cloned().collect();
            gone.into_iter()
                .filter_map(|r| map.remove(&r).map(|e| (r, e)))
                .collect()
        };
        crate::metrics::live(-(moved.len() as i64));
        for (room, entry) in &moved {
            debug!(%room, "room handed off");
            entry.addr.do_send(Moved);
        }
        moved.len()
    }

    /// This node leaves the cluster (its placement no longer counts it): every room goes to
    /// its next owner. Resolves once each actor has handed over — the stanzas it had, and
    /// their writes, done; the next owner told to read the room — and what the rooms gave
    /// the archive is written, so that the next owner's history and archive hold every
    /// message relayed here.
    pub async fn leave(&self) {
        let moved: Vec<(BareJid, Entry)> = self.map.write().drain().collect();
        crate::metrics::live(-(moved.len() as i64));
        // All told at once; each answers once it has handed over.
        let handed: Vec<_> = moved
            .iter()
            .map(|(room, entry)| {
                debug!(%room, "room handed off (leaving)");
                entry.addr.send(Moved)
            })
            .collect();
        for h in handed {
            let _ = h.await;
        }
        let archive = self.envs.values().next().and_then(|e| e.archive.clone());
        if let Some(archive) = archive {
            archive.written().await;
        }
    }

    /// A running room's occupants and settings (admin API), if it runs here.
    pub async fn view(&self, room: &BareJid) -> Option<RoomView> {
        let addr = self.map.read().get(room).map(|e| e.addr.clone())?;
        addr.send(View).await.ok().flatten()
    }

    /// Acts on `room` for the admin API, wherever it lives.
    pub async fn control(&self, room: &BareJid, op: RoomControl) -> Controlled {
        if let (Some(placement), Some(owner)) = (self.placement.get(), self.remote_owner(room)) {
            placement.control(&owner, room, op);
            return Controlled::Forwarded;
        }
        if self.control_here(room, op).await {
            Controlled::Done
        } else {
            Controlled::NotFound
        }
    }

    /// [`Self::control`] on this node (a peer's request, or our own): true once done and
    /// its writes stored (a later listing shows it).
    pub async fn control_here(&self, room: &BareJid, op: RoomControl) -> bool {
        let Some(addr) = self.start(room) else {
            return false;
        };
        let done = match op {
            RoomControl::Destroy { reason } => addr.send(Destroy { reason }).await,
            RoomControl::Kick { nick, reason } => addr.send(Kick { nick, reason }).await,
        };
        // The actor handles nothing else until its writes are stored: a second message
        // returns after them.
        let _ = addr.send(View).await;
        done.unwrap_or(false)
    }

    fn route(&self, stanza: Element, came_from: Option<&str>) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let Some(env) = self.envs.get(to.domain().as_str()).cloned() else {
            return;
        };
        if to.node().is_none() {
            return crate::service::accept(&env, stanza);
        }
        let room = to.to_bare();
        if let (Some(placement), Some(owner)) = (self.placement.get(), self.remote_owner(&room)) {
            if came_from != Some(&*owner) {
                if let Err(stanza) = placement.forward(&owner, stanza) {
                    env.router.bounce(
                        &stanza,
                        StanzaError::with_text(
                            StanzaCondition::ServiceUnavailable,
                            "the room's node cannot be reached",
                        ),
                    );
                }
                return;
            }
        }
        self.deliver(&env, room, stanza);
    }

    fn deliver(&self, env: &Arc<Env>, room: BareJid, stanza: Element) {
        let bytes = parley_xml::size::approx_bytes(&stanza);
        let s = &self.settings;
        {
            let map = self.map.read();
            if let Some(e) = map.get(&room) {
                if e.gauge.admit(bytes, s.mailbox_stanzas, s.mailbox_bytes) {
                    e.addr.do_send(RoomStanza { stanza, bytes });
                } else {
                    refuse_busy(env, &stanza);
                }
                return;
            }
        }
        let mut map = self.map.write();
        if !map.contains_key(&room) {
            if map.len() >= s.max_live_rooms {
                drop(map);
                return refuse_busy(env, &stanza);
            }
            let entry = self.spawn(env, &room);
            map.insert(room.clone(), entry);
        }
        let e = map.get(&room).expect("just inserted");
        if e.gauge.admit(bytes, s.mailbox_stanzas, s.mailbox_bytes) {
            e.addr.do_send(RoomStanza { stanza, bytes });
        } else {
            refuse_busy(env, &stanza);
        }
    }

    /// The actor of `room`, started if needed (admin control).
    fn start(&self, room: &BareJid) -> Option<Addr<RoomActor>> {
        let env = self.envs.get(room.domain().as_str())?.clone();
        let mut map = self.map.write();
        if let Some(e) = map.get(room) {
            return Some(e.addr.clone());
        }
        let entry = self.spawn(&env, room);
        let addr = entry.addr.clone();
        map.insert(room.clone(), entry);
        Some(addr)
    }

    fn spawn(&self, env: &Arc<Env>, room: &BareJid) -> Entry {
        let gauge = Arc::new(Gauge::default());
        let (e, r, g) = (env.clone(), room.clone(), gauge.clone());
        let addr = match self.worker(room) {
            Some(worker) => RoomActor::start_in_arbiter(worker, move |_| RoomActor::new(e, r, g)),
            None => RoomActor::new(e, r, g).start(),
        };
        crate::metrics::live(1);
        Entry { addr, gauge }
    }

    fn worker(&self, room: &BareJid) -> Option<&ArbiterHandle> {
        if self.workers.is_empty() {
            return None;
        }
        let mut h = DefaultHasher::new();
        room.hash(&mut h);
        Some(&self.workers[(h.finish() % self.workers.len() as u64) as usize])
    }

    fn retire(&self, room: &BareJid, gauge: &Arc<Gauge>) -> bool {
        let mut map = self.map.write();
        match map.get(room) {
            Some(e) if Arc::ptr_eq(&e.gauge, gauge) => {
                if !gauge.idle() {
                    return false;
                }
                map.remove(room);
                crate::metrics::live(-1);
                true
            }
            // Handed off or replaced: it may stop.
            _ => true,
        }
    }

    fn gone(&self, room: &BareJid, gauge: &Arc<Gauge>) {
        let mut map = self.map.write();
        if map.get(room).is_some_and(|e| Arc::ptr_eq(&e.gauge, gauge)) {
            map.remove(room);
            crate::metrics::live(-1);
        }
    }
}

fn refuse_busy(env: &Env, stanza: &Element) {
    if parley_router::metrics::refuse("muc_mailbox", stanza.attr("to").unwrap_or("")) {
        tracing::warn!(room = stanza.attr("to").unwrap_or(""), "room mailbox full");
    }
    env.router.bounce(
        stanza,
        StanzaError::with_text(StanzaCondition::ResourceConstraint, "the room is busy"),
    );
}

impl Service for Rooms {
    fn accept(&self, stanza: Element) {
        self.route(stanza, None);
    }
}
