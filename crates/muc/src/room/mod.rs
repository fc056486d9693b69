//! The room actor: one per live room, on the node that owns the room (rendezvous placement,
//! like user actors). It is the one place the room's state changes. Every change that
//! must survive the node (occupants, affiliations, configuration, subject) is written to
//! storage inside the actor with `ctx.wait`, so writes are applied in order and the next
//! stanza is handled only once the previous one's state is stored: a node that takes the
//! room over (membership change, owner restart) reads what every occupant saw.
//!
//! Its phase is a type: `Loading` (reading storage), `Absent` (no such room: only a join
//! creates it), `Live`, and `Moved` (another node owns it now: what is left in the
//! mailbox goes back through the registry, which forwards it).

mod admin;
mod info;
mod message;
mod presence;
mod voice;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, SpawnHandle};
use jid::{BareJid, FullJid};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_storage::StorageError;
use parley_xml::Element;
use tracing::{debug, warn};

use crate::registry::{Env, Gauge};
use crate::state::Room;

/// A stanza for the room (counted in its mailbox gauge until handled).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RoomStanza {
    pub stanza: Element,
    pub bytes: usize,
}

/// Another node owns the room now (cluster membership changed).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Moved;

/// Read the room again from storage: its previous owner finished its last changes.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reload;

/// What the admin API asks of a room.
#[derive(Message)]
#[rtype(result = "Option<crate::RoomView>")]
pub(crate) struct View;

/// The admin API destroys the room (§10.9), with a reason.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct Destroy {
    pub reason: Option<String>,
}

/// The admin API kicks an occupant by nick (§8.2).
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct Kick {
    pub nick: String,
    pub reason: Option<String>,
}

enum Phase {
    Loading,
    Absent,
    Live(Box<Room>),
    Moved,
}

/// Ids of iqs relayed to an occupant (an iq to an occupant's room JID), to route the answer.
const MAX_RELAYED_IQS: usize = 256;

pub(crate) struct RoomActor {
    env: Arc<Env>,
    jid: BareJid,
    phase: Phase,
    gauge: Arc<Gauge>,
    idle: Option<SpawnHandle>,
    lock_timer: Option<SpawnHandle>,
    /// Relayed iq id → (the real sender, its id).
    relayed: HashMap<String, (FullJid, String)>,
}

impl RoomActor {
    pub(crate) fn new(env: Arc<Env>, jid: BareJid, gauge: Arc<Gauge>) -> RoomActor {
        RoomActor {
            env,
            jid,
            phase: Phase::Loading,
            gauge,
            idle: None,
            lock_timer: None,
            relayed: HashMap::new(),
        }
    }

    fn name(&self) -> String {
        self.jid
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default()
    }

    fn room(&self) -> Option<&Room> {
        match &self.phase {
            Phase::Live(r) => Some(r),
            _ => None,
        }
    }

    fn room_mut(&mut self) -> Option<&mut Room> {
        match &mut self.phase {
            Phase::Live(r) => Some(r),
            _ => None,
        }
    }

    /// Sends a stanza the room produced (always addressed).
    fn send(&self, stanza: Element) {
        let wake = wake_for(&stanza);
        self.env.router.send(stanza, wake);
    }

    /// Sends one stanza (without `to`) to many seats: one copy each, one frame per node.
    fn fan_out(&self, stanza: &Element, to: &[&FullJid]) {
        self.env.router.fan_out(stanza, to, wake_for(stanza));
    }

    /// Answers `stanza` with an error from wherever it was addressed (never an error for
    /// an error: the router checks).
    fn refuse(&self, stanza: &Element, condition: StanzaCondition, text: Option<&str>) {
        let error = match text {
            Some(t) => StanzaError::with_text(condition, t),
            None => StanzaError::new(condition),
        };
        self.env.router.bounce(stanza, error);
    }

    /// Runs a storage write before the next stanza is handled; a failure is logged (the
    /// state in memory stays, and a later write carries it).
    fn persist<F>(&mut self, ctx: &mut Context<Self>, what: &'static str, write: F)
    where
        F: std::future::Future<Output = Result<(), StorageError>> + 'static,
    {
        let room = self.jid.clone();
        ctx.wait(wrap_future::<_, Self>(write).map(move |r, _, _| {
            if let Err(e) = r {
                warn!(%room, error = %e, what, "room state not stored");
            }
        }));
    }

    /// Stores the room record (configuration, subject).
    fn persist_room(&mut self, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        let record = room.record(&self.env.service);
        let storage = self.env.storage.clone();
        self.persist(ctx, "room", async move {
            storage.muc_update_room(&record).await.map(|_| ())
        });
    }

    /// Reads the room from storage, then checks which occupants are still connected.
    fn load(&mut self, ctx: &mut Context<Self>) {
        self.load_then(ctx, None);
    }

    /// [`Self::load`], then handles `next` (a join that found the room created meanwhile).
    fn load_then(&mut self, ctx: &mut Context<Self>, next: Option<Element>) {
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        let archive_items = self.env.settings.max_history;
        let work = async move {
            let stored = storage.muc_room(&service, &name).await?;
            let history = match &stored {
                Some(_) if archive_items > 0 => {
                    crate::archive::recent(&*storage, &name, &service, archive_items).await
                }
                _ => Vec::new(),
            };
            Ok::<_, StorageError>((stored, history))
        };
        ctx.wait(
            wrap_future::<_, Self>(work).map(move |r, act, ctx| match r {
                Ok((Some(stored), history)) => {
                    let admins = act.env.admins.clone();
                    let mut room = Room::from_stored(
                        act.jid.clone(),
                        &stored,
                        admins,
                        act.env.settings.message_burst,
                    );
                    for (stamp, msg) in history {
                        let chars = msg.to_string().len();
                        room.history.push(
                            stamp,
                            msg,
                            chars,
                            room.config.history_length.min(act.env.settings.max_history),
                            act.env.settings.max_history_bytes,
                        );
                    }
                    act.phase = Phase::Live(Box::new(room));
                    act.prune_gone(ctx);
                    if let Some(stanza) = next {
                        act.dispatch(stanza, ctx);
                    }
                    act.count_occupants();
                    act.arm_idle(ctx);
                }
                Ok((None, _)) => {
                    act.phase = Phase::Absent;
                    if let Some(stanza) = next {
                        // Gone again: refused rather than creating in a loop.
                        act.refuse(&stanza, StanzaCondition::ItemNotFound, None);
                    }
                    act.arm_idle(ctx);
                }
                Err(e) => {
                    warn!(room = %act.jid, error = %e, "room could not be read");
                    act.phase = Phase::Absent;
                    act.arm_idle(ctx);
                }
            }),
        );
    }

    /// Occupants whose session is gone (their node went down while this room was
    /// elsewhere, or the whole server restarted) leave, with status 333.
    fn prune_gone(&mut self, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        let gone: Vec<FullJid> = room
            .by_jid
            .keys()
            .filter(|j| self.env.router.lookup(j).is_none())
            .cloned()
            .collect();
        for jid in gone {
            debug!(room = %self.jid, occupant = %jid, "occupant no longer connected");
            self.seat_lost(&jid, ctx);
        }
    }

    /// Counts the room's occupants in the node's gauge (replacing what it counted before).
    fn count_occupants(&mut self) {
        let now = self.room().map_or(0, Room::seat_count);
        self.gauge.set_occupants(now);
    }

    /// An actor with no occupants leaves after `[muc] idle_timeout_s`, if nothing is
    /// waiting for it.
    fn arm_idle(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        let empty = self.room().is_none_or(|r| r.occupants.is_empty());
        if !empty {
            return;
        }
        let timeout = match self.phase {
            Phase::Absent => Duration::from_secs(1),
            _ => self.env.settings.idle_timeout,
        };
        self.idle = Some(ctx.run_later(timeout, |act, ctx| {
            act.idle = None;
            let empty = act.room().is_none_or(|r| r.occupants.is_empty());
            if empty && act.env.retire(&act.jid, &act.gauge) {
                ctx.stop();
            } else {
                act.arm_idle(ctx);
            }
        }));
    }

    fn dispatch(&mut self, stanza: Element, ctx: &mut Context<Self>) {
        match stanza.name() {
            "presence" => self.on_presence(stanza, ctx),
            "message" => self.on_message(stanza, ctx),
            "iq" => self.on_iq(stanza, ctx),
            _ => {}
        }
    }

    /// The room is gone from storage and memory (§10.9), every occupant told.
    fn destroyed(
        &mut self,
        ctx: &mut Context<Self>,
        reason: Option<String>,
        alternate: Option<String>,
    ) {
        let Some(room) = self.room() else { return };
        for occupant in room.occupants.values() {
            let mut destroy = Element::new("destroy", parley_proto::muc::NS_USER);
            if let Some(alt) = &alternate {
                destroy.set_attr("jid", alt.clone());
            }
            if let Some(r) = &reason {
                destroy.push_child(
                    Element::new("reason", parley_proto::muc::NS_USER).with_text(r.clone()),
                );
            }
            let x = Element::new("x", parley_proto::muc::NS_USER)
                .with_child(
                    parley_proto::muc::Item::new(
                        parley_proto::muc::Affiliation::None,
                        parley_proto::muc::Role::None,
                    )
                    .to_element(parley_proto::muc::NS_USER),
                )
                .with_child(destroy);
            for jid in occupant.jids() {
                self.send(
                    Element::new("presence", parley_proto::ns::CLIENT)
                        .with_attr("from", format!("{}/{}", self.jid, occupant.nick))
                        .with_attr("to", jid.to_string())
                        .with_attr("type", "unavailable")
                        .with_child(x.clone()),
                );
            }
        }
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "destroy", async move {
            storage.muc_destroy_room(&service, &name).await.map(|_| ())
        });
        self.phase = Phase::Absent;
        crate::metrics::room_destroyed();
        self.count_occupants();
        self.arm_idle(ctx);
    }
}

/// Whether what the room sends may start the addressee's user actor: an invitation or a
/// private message matters to a user with no session (offline storage); groupchat and
/// presence only to the session they are addressed to.
fn wake_for(stanza: &Element) -> Wake {
    match (stanza.name(), stanza.attr("type")) {
        ("message", Some("groupchat" | "error")) => Wake::IfRunning,
        ("message", _) => Wake::Start,
        _ => Wake::IfRunning,
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.gauge.set_occupants(0);
        self.env.gone(&self.jid, &self.gauge);
        actix::Running::Stop
    }
}

impl Handler<RoomStanza> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: RoomStanza, ctx: &mut Context<Self>) {
        self.gauge.taken(msg.bytes);
        if matches!(self.phase, Phase::Moved) {
            // Handed off: the registry sends it where the room lives now.
            return self.env.reroute(msg.stanza);
        }
        self.dispatch(msg.stanza, ctx);
        self.count_occupants();
        self.arm_idle(ctx);
    }
}

impl Handler<Moved> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Moved, ctx: &mut Context<Self>) {
        // Every write of the stanzas handled before this one is done (they ran under
        // `ctx.wait`): the new owner may read the room now.
        self.phase = Phase::Moved;
        self.count_occupants();
        self.env.moved(&self.jid);
        ctx.stop();
    }
}

impl Handler<Reload> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Moved) {
            return;
        }
        self.load(ctx);
    }
}

impl Handler<View> for RoomActor {
    type Result = Option<crate::RoomView>;

    fn handle(&mut self, _: View, _: &mut Context<Self>) -> Option<crate::RoomView> {
        let room = self.room()?;
        Some(crate::RoomView::of(room))
    }
}

impl Handler<Destroy> for RoomActor {
    type Result = bool;

    fn handle(&mut self, msg: Destroy, ctx: &mut Context<Self>) -> bool {
        if self.room().is_none() {
            return false;
        }
        self.destroyed(ctx, msg.reason, None);
        true
    }
}

impl Handler<Kick> for RoomActor {
    type Result = bool;

    fn handle(&mut self, msg: Kick, ctx: &mut Context<Self>) -> bool {
        let known = self
            .room()
            .is_some_and(|r| r.occupants.contains_key(&msg.nick));
        if known {
            self.remove_with_status(
                &msg.nick,
                parley_proto::muc::status::KICKED,
                None,
                msg.reason,
                ctx,
            );
            self.count_occupants();
            self.arm_idle(ctx);
        }
        known
    }
}
