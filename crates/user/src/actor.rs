//! The user actor: state, start-up, idle stop, and the message handlers that dispatch to the
//! roster, presence and carbons modules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle};
use jid::{BareJid, FullJid, Jid};
use parley_proto::ns;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::{SessionHandle, Wake};
use parley_storage::{OfflineMessage, RosterItem};
use parley_xml::{Element, Limits};
use tracing::{debug, warn};

use crate::messages::{
    Attach, CarbonReceived, Detach, Drain, FromClient, HandOff, Inbound, Vanished,
};
use crate::registry::Users;
use crate::routing::{self, Action, Addressed, Class};

/// One bound resource of the user.
#[derive(Debug)]
pub(crate) struct Resource {
    /// The bound full JID; the resource's name is its resource part (no copy of it kept).
    pub(crate) full: FullJid,
    pub(crate) handle: SessionHandle,
    /// Sent initial presence and not gone unavailable.
    pub(crate) available: bool,
    pub(crate) priority: i8,
    /// The last available presence it broadcast.
    pub(crate) presence: Option<Element>,
    /// Asked for the roster (RFC 6121 §2.2): gets roster pushes.
    pub(crate) interested: bool,
    /// XEP-0280 enabled.
    pub(crate) carbons: bool,
    /// Entities that got directed presence and no subscription covers (RFC 6121 §4.6).
    pub(crate) directed: Vec<Jid>,
}

impl Resource {
    /// The resource's name: the resource part of its full JID.
    pub(crate) fn name(&self) -> &str {
        self.full.resource().as_str()
    }

    /// Whether the resource's session can still take stanzas. A session that stopped (or a
    /// node that left) may be listed until its detach arrives; routing skips it, so that a
    /// stanza it handed back (RFC 6121 §8.5.3.2) does not come back to it.
    pub(crate) fn reachable(&self) -> bool {
        self.handle.connected()
    }
}

/// The user's roster, cached for the actor's lifetime; storage is written through.
#[derive(Debug, Default)]
pub(crate) struct RosterCache {
    pub(crate) version: i64,
    pub(crate) items: BTreeMap<String, RosterItem>,
    /// Unanswered inbound subscription requests (RFC 6121 §3.1.3): contact → stanza XML.
    pub(crate) pending_in: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Loading,
    Ready,
    /// Left the registry; drains what was sent before, then stops.
    Retiring,
    /// The user now belongs to another node: stops without any presence change.
    HandedOff,
}

/// The actor for one bare JID.
pub struct UserActor {
    pub(crate) jid: BareJid,
    pub(crate) users: Arc<Users>,
    attached: Arc<AtomicUsize>,
    pub(crate) carbons_count: Arc<AtomicUsize>,
    /// Shared with the registry: stanzas sent here and not yet handled.
    mailbox: Arc<crate::bounds::MailboxGauge>,
    lifecycle: Lifecycle,
    pub(crate) exists: bool,
    /// XEP-0012: when the last available resource left while this actor ran (unix s) and
    /// the status it left with; storage has it for later actors.
    pub(crate) last_activity: Option<(i64, String)>,
    /// `last_activity` changed and is not written yet.
    pub(crate) last_activity_unsaved: bool,
    pub(crate) roster: RosterCache,
    /// XEP-0191: whom the user blocks.
    pub(crate) blocklist: parley_proto::blocking::Blocklist,
    /// Whether storage may hold offline messages for the user.
    pub(crate) offline_waiting: bool,
    pub(crate) resources: Vec<Resource>,
    idle: Option<SpawnHandle>,
    pub(crate) next_id: u64,
    /// The account's PEP service state (XEP-0163): contacts' interest, caps, node list.
    pub(crate) pep: crate::pep::PepState,
    /// The account's avatar (XEP-0084 metadata id, the image's SHA-1), added to its
    /// presence for vCard-based clients (XEP-0153, XEP-0398 §4).
    pub(crate) avatar: Option<String>,
}

impl std::fmt::Debug for UserActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserActor")
            .field("jid", &self.jid)
            .field("resources", &self.resources.len())
            .finish_non_exhaustive()
    }
}

impl UserActor {
    pub(crate) fn new(
        jid: BareJid,
        users: Arc<Users>,
        attached: Arc<AtomicUsize>,
        carbons_count: Arc<AtomicUsize>,
        mailbox: Arc<crate::bounds::MailboxGauge>,
    ) -> UserActor {
        UserActor {
            jid,
            users,
            attached,
            carbons_count,
            mailbox,
            lifecycle: Lifecycle::Loading,
            exists: false,
            last_activity: None,
            last_activity_unsaved: false,
            roster: RosterCache::default(),
            blocklist: Default::default(),
            offline_waiting: false,
            resources: Vec::new(),
            idle: None,
            next_id: 0,
            pep: Default::default(),
            avatar: None,
        }
    }

    pub(crate) fn username(&self) -> &str {
        self.jid.node().map_or("", |n| n.as_str())
    }

    pub(crate) fn host(&self) -> &str {
        self.jid.domain().as_str()
    }

    pub(crate) fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    pub(crate) fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name() == name)
    }

    pub(crate) fn resource_mut(&mut self, name: &str) -> Option<&mut Resource> {
        self.resources.iter_mut().find(|r| r.name() == name)
    }

    pub(crate) fn any_available(&self) -> bool {
        self.resources.iter().any(|r| r.available)
    }

    /// Sends a stanza generated for (or routed by) this user along the router's road to
    /// wherever its `to` points. `wake` decides whether an idle user's actor is started for
    /// it (subscriptions must persist; broadcasts to offline users need not).
    ///
    /// Nothing goes to an address the user blocks (XEP-0191 §3.6).
    pub(crate) fn route_out(&self, stanza: Element, wake: Wake) {
        if stanza
            .attr("to")
            .is_some_and(|to| self.blocklist.blocks_str(to))
        {
            return;
        }
        self.users.router().send(stanza, wake);
    }

    /// Answers `stanza`'s sender with an error (never for errors), even a sender the user
    /// blocks: XEP-0191 §3.5 wants it told.
    pub(crate) fn bounce(&self, stanza: &Element, err: StanzaError) {
        self.users.router().bounce(stanza, err);
    }

    /// Delivers to one of our resources through the router: an overloaded session gets the
    /// sender `resource-constraint`, a gone one falls to RFC 6121 §8.5.3.2 (back here,
    /// where [`Resource::reachable`] keeps it from being picked again).
    pub(crate) fn deliver(&self, r: &Resource, stanza: Element) {
        self.users.router().deliver(&r.handle, stanza);
    }

    fn schedule_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.resources.is_empty() || self.idle.is_some() {
            return;
        }
        // Actors started by stanzas for accounts that do not exist leave quickly.
        let timeout = if self.exists {
            self.users.config.idle_timeout
        } else {
            self.users
                .config
                .idle_timeout
                .min(std::time::Duration::from_secs(2))
        };
        self.idle = Some(ctx.run_later(timeout, |act, ctx| {
            act.idle = None;
            if act.resources.is_empty() && act.users.retire(&act.jid, &ctx.address()) {
                act.lifecycle = Lifecycle::Retiring;
                debug!(user = %act.jid, "user actor idle: retiring");
                // Anything sent before the removal is already queued; let it drain.
                ctx.run_later(std::time::Duration::from_secs(5), |_, ctx| ctx.stop());
            }
        }));
    }

    fn cancel_idle(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
    }

    /// Stores a message for later (XEP-0160), or bounces it when the user's store is full.
    pub(crate) fn store_offline(&mut self, stanza: Element, ctx: &mut Context<Self>) {
        if !stanza.has_child("body", ns::CLIENT) {
            return;
        }
        let msg = OfflineMessage {
            stamp_ms: parley_router::now_ms(),
            stanza: stanza.to_string(),
        };
        let storage = self.users.storage.clone();
        let (user, host, max, max_bytes) = (
            self.username().to_owned(),
            self.host().to_owned(),
            self.users.config.max_offline,
            self.users.config.max_offline_bytes,
        );
        ctx.wait(
            wrap_future::<_, Self>(async move {
                storage
                    .offline_push(&user, &host, &msg, max, max_bytes)
                    .await
            })
            .map(move |res, act, _| match res {
                Ok(true) => {
                    act.offline_waiting = true;
                    // XEP-0357 §7: stored because no session can show it.
                    act.users.push_notify(&act.jid, stanza.attr("from"));
                }
                Ok(false) => {
                    // XEP-0160 / RFC 6121 §8.5.2.2.1: a full store answers as if there
                    // were no storage.
                    if parley_router::metrics::refuse("offline_quota", act.jid.as_str()) {
                        warn!(user = %act.jid, "offline storage full: refusing messages");
                    }
                    act.bounce(
                        &stanza,
                        StanzaError::with_text(
                            StanzaCondition::ServiceUnavailable,
                            "the recipient's offline storage is full",
                        ),
                    )
                }
                Err(e) => {
                    warn!(user = %act.jid, error = %e, "storing an offline message failed");
                    act.bounce(
                        &stanza,
                        StanzaError::new(StanzaCondition::InternalServerError),
                    );
                }
            }),
        );
    }

    /// Delivers stored messages to `resource`, each with its XEP-0203 delay stamp.
    pub(crate) fn flush_offline(&mut self, resource: String, ctx: &mut Context<Self>) {
        if !self.offline_waiting {
            return;
        }
        self.offline_waiting = false;
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        ctx.wait(
            wrap_future::<_, Self>(async move { storage.offline_take(&user, &host).await }).map(
                move |res, act, _| {
                    let messages = match res {
                        Ok(m) => m,
                        Err(e) => {
                            warn!(user = %act.jid, error = %e, "reading offline messages failed");
                            act.offline_waiting = true;
                            return;
                        }
                    };
                    let Some(r) = act.resource(&resource) else {
                        // Gone meanwhile: keep them for the next one.
                        act.requeue_offline(messages);
                        return;
                    };
                    for m in messages {
                        // Stored by us from an accepted stanza: read under the limits for
                        // copies, never tighter than the configured ones it passed.
                        let mut el =
                            match Element::parse(m.stanza.as_bytes(), &Limits::trusted_copies()) {
                                Ok(el) => el,
                                Err(e) => {
                                    if parley_router::metrics::refuse(
                                        "offline_unreadable",
                                        &act.jid.to_string(),
                                    ) {
                                        warn!(user = %act.jid, error = %e, bytes = m.stanza.len(),
                                        "a stored offline message could not be read back");
                                    }
                                    continue;
                                }
                            };
                        el.push_child(
                            Element::new("delay", ns::DELAY)
                                .with_attr("from", act.host())
                                .with_attr("stamp", parley_proto::datetime::xep0082(m.stamp_ms)),
                        );
                        act.deliver(r, el);
                    }
                },
            ),
        );
    }

    fn requeue_offline(&mut self, messages: Vec<OfflineMessage>) {
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let max = self.users.config.max_offline.max(messages.len());
        self.offline_waiting = true;
        actix::spawn(async move {
            for m in messages {
                // Taken out and put back: the byte cap was checked when they came.
                let _ = storage
                    .offline_push(&user, &host, &m, max, usize::MAX)
                    .await;
            }
        });
    }

    /// RFC 6121 §8.5: a stanza addressed to this user that no session took directly.
    fn inbound(&mut self, stanza: Element, ctx: &mut Context<Self>) {
        let Some(class) = Class::of(&stanza) else {
            return;
        };
        // The answer to the PEP service's own capabilities query (XEP-0115 §6.2).
        if class == Class::IqResponse && self.pep_caps_answer(&stanza, ctx) {
            return;
        }
        if self.sent_by_blocked(&stanza) {
            // XEP-0191 §3.5: messages and iq requests are refused, the rest dropped.
            let refuse = match stanza.name() {
                "message" => true,
                "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
                _ => false,
            };
            if refuse {
                self.bounce(
                    &stanza,
                    StanzaError::new(StanzaCondition::ServiceUnavailable),
                );
            }
            return;
        }
        let addressed = match stanza.attr("to").and_then(|t| Jid::new(t).ok()) {
            _ if !self.exists => Addressed::NoAccount,
            Some(to) if to.resource().is_some() => Addressed::FullMissing,
            _ => Addressed::Bare,
        };
        if class == Class::Presence && addressed != Addressed::NoAccount {
            // XEP-0163 §4: a contact's resource and what it wants notifications for.
            self.pep_contact_presence(&stanza, ctx);
        }
        let rule = routing::decide(addressed, class, self.any_available());
        match rule.action {
            Action::HighestPriority => {
                let top = self
                    .resources
                    .iter()
                    .filter(|r| r.available && r.priority >= 0 && r.reachable())
                    .map(|r| r.priority)
                    .max();
                match top {
                    Some(top) => self.deliver_message(stanza, |r| r.priority == top),
                    // §8.5.2.1.1: only negative priorities: as if none were available.
                    None => self.store_offline(stanza, ctx),
                }
            }
            Action::AllNonNegative => self.deliver_message(stanza, |r| r.priority >= 0),
            Action::AllAvailable => {
                for r in self
                    .resources
                    .iter()
                    .filter(|r| r.available && r.reachable())
                {
                    let mut copy = stanza.clone();
                    copy.set_attr("to", r.full.to_string());
                    self.deliver(r, copy);
                }
            }
            Action::Offline => self.store_offline(stanza, ctx),
            Action::Bounce(cond) => self.bounce(&stanza, StanzaError::new(cond)),
            Action::Drop => {}
            Action::Subscription => self.inbound_subscription(stanza, ctx),
            Action::Probe => self.answer_probe(&stanza),
            Action::AccountIq if is_vcard_get(&stanza) => self.vcard_get(stanza, ctx),
            Action::AccountIq if crate::pep::is_pubsub(&stanza) => {
                let from = stanza.attr("from").unwrap_or_default().to_owned();
                self.pep_iq(stanza, crate::pep::Requester::Other(from), ctx)
            }
            Action::AccountIq if crate::pep::is_disco_info_get(&stanza) => {
                self.account_disco_info(&stanza)
            }
            Action::AccountIq if crate::last::is_last_get(&stanza) => {
                self.last_activity(stanza, ctx)
            }
            Action::AccountIq => self.account_iq(&stanza),
        }
    }

    /// Delivers a message to the available resources selected by `pick`, then sends
    /// `<received/>` carbons to the carbons-enabled resources that did not get it.
    fn deliver_message(&self, stanza: Element, pick: impl Fn(&Resource) -> bool) {
        let targets: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| r.available && r.reachable() && pick(r))
            .collect();
        for r in &targets {
            self.deliver(r, stanza.clone());
        }
        if !targets.is_empty() {
            let got: Vec<&str> = targets.iter().map(|r| r.name()).collect();
            self.carbon_copies(&stanza, crate::carbons::Direction::Received, |r| {
                !got.contains(&r.name())
            });
        }
    }

    /// An iq to this user's bare JID from someone else: the server answers for the account.
    fn account_iq(&self, iq: &Element) {
        // (A vCard get is answered by `vcard_get`.)
        let roster = iq.first_child().is_some_and(|q| q.ns() == ns::ROSTER);
        // RFC 6121 §2.1.5 / §2.3.3: nobody else reads or writes a user's roster.
        let condition = if roster {
            StanzaCondition::Forbidden
        } else {
            StanzaCondition::ServiceUnavailable
        };
        self.bounce(iq, StanzaError::new(condition));
    }
}

impl Actor for UserActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        // Nothing is handled until the account and roster are known: `wait` holds the mailbox.
        // One call: the store answers from one snapshot with one hand-off (a login's
        // reads were eleven round trips to the store's thread).
        let load = async move { storage.user_state(&user, &host).await };
        ctx.wait(wrap_future::<_, Self>(load).map(|res, act, ctx| {
            match res {
                Ok(state) => {
                    act.exists = state.account.is_some();
                    act.avatar = state
                        .avatar_metadata
                        .as_ref()
                        .and_then(crate::avatar::avatar_of);
                    act.blocklist = parley_proto::blocking::Blocklist::new(state.blocklist);
                    act.roster.version = state.roster.version;
                    act.roster.items = state
                        .roster
                        .items
                        .into_iter()
                        .map(|i| (i.jid.clone(), i))
                        .collect();
                    act.roster.pending_in = state.pending_in;
                    act.offline_waiting = state.offline_count > 0;
                }
                Err(e) => {
                    // Without its roster the user would be shown offline to everyone; better
                    // to treat the account as present with an empty roster and say so.
                    warn!(user = %act.jid, error = %e, "loading the user's state failed");
                    act.exists = true;
                }
            }
            act.lifecycle = Lifecycle::Ready;
            act.schedule_idle(ctx);
        }));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        debug!(user = %self.jid, lifecycle = ?self.lifecycle, "user actor stopped");
    }
}

impl Handler<Attach> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        self.cancel_idle(ctx);
        // A session authenticated as this user: the account exists, whatever was loaded
        // when a stanza for a not-yet-created account started this actor.
        self.exists = true;
        if let Some(i) = self
            .resources
            .iter()
            .position(|r| r.name() == msg.resource && r.handle.id == msg.handle.id)
        {
            // The same session attaching again (membership changed twice, or a resume
            // moved it to a new connection or node): keep what this actor knows, count the
            // attach once. The blocklist goes again: the session may have moved before its
            // first copy reached it, and holds stanzas back until one does.
            self.resources[i].handle = msg.handle;
            self.release_attached();
            let r = &self.resources[i];
            self.sync_blocklist(r);
            return;
        }
        if let Some(i) = self.resources.iter().position(|r| r.name() == msg.resource) {
            // kick_old: the replaced session's resource goes away as if it had disconnected.
            let old = self.resources[i].handle.id;
            self.detach(&msg.resource, old);
            self.attached.fetch_add(1, Ordering::AcqRel);
        }
        let Ok(full) = self.jid.with_resource_str(&msg.resource) else {
            return;
        };
        // A fresh bind starts unavailable; a session re-attaching after its actor moved
        // brings the state its contacts have already seen, so nothing is broadcast.
        let state = msg.state;
        if state.carbons {
            self.carbons_count.fetch_add(1, Ordering::AcqRel);
        }
        // Most accounts have one resource: room for exactly one more, not the four slots
        // of a Vec's first growth (a Resource is a few hundred bytes, kept per idle user).
        self.resources.reserve_exact(1);
        self.resources.push(Resource {
            full,
            handle: msg.handle,
            available: state.available,
            priority: state.priority,
            presence: state.presence,
            interested: state.interested,
            carbons: state.carbons,
            // A session that comes with directed presence on had it before this actor
            // existed (its owner moved): keep what no subscription covers (RFC 6121 §4.6).
            directed: state
                .directed
                .iter()
                .filter(|_| state.available)
                .filter_map(|d| Jid::new(d).ok())
                .filter(|d| {
                    !self
                        .roster
                        .items
                        .get(d.to_bare().as_str())
                        .is_some_and(|i| crate::presence::has_from(i.subscription))
                })
                .take(self.users.config.max_directed_presence)
                .collect(),
        });
        if let Some(r) = self.resources.last() {
            self.sync_blocklist(r);
        }
    }
}

impl UserActor {
    fn detach(&mut self, resource: &str, session: parley_router::SessionId) {
        let Some(i) = self
            .resources
            .iter()
            .position(|r| r.name() == resource && r.handle.id == session)
        else {
            return;
        };
        if self.resources[i].available {
            self.go_unavailable(resource, None);
        }
        let r = self.resources.remove(i);
        if r.carbons {
            self.carbons_count.fetch_sub(1, Ordering::AcqRel);
        }
        self.release_attached();
    }

    /// One attach less. Saturating: after a hand-off between nodes a detach can reach an
    /// actor that never counted the attach.
    fn release_attached(&self) {
        let _ = self
            .attached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

impl Handler<Detach> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Context<Self>) {
        let before = self.resources.len();
        self.detach(&msg.resource, msg.session);
        if self.resources.len() == before {
            // Already detached when its successor attached (kick_old); the count was kept
            // for this message.
            self.release_attached();
        }
        self.write_last_activity(ctx);
        self.schedule_idle(ctx);
    }
}

impl Handler<FromClient> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: FromClient, ctx: &mut Context<Self>) {
        self.mailbox.taken(&msg.stanza);
        let stanza = msg.stanza;
        match stanza.name() {
            "presence" => {
                // Initial or updated broadcast presence: the resource's PEP interest.
                let broadcast = stanza.attr("to").is_none()
                    && stanza.attr("type").is_none_or(|t| t == "available");
                if msg.routed {
                    return self.directed_routed(&msg.resource, &stanza);
                }
                self.client_presence(&msg.resource, stanza, ctx);
                self.write_last_activity(ctx);
                if broadcast {
                    self.pep_own_presence(&msg.resource, ctx);
                }
            }
            "iq" if !crate::pep::is_request(&stanza) => {
                // An own resource's answer: to the PEP service's capabilities query (or to
                // a push, which needs nothing more).
                self.pep_caps_answer(&stanza, ctx);
            }
            "iq" => {
                let payload_ns = stanza.first_child().map(|c| c.ns().to_owned());
                match payload_ns.as_deref() {
                    Some(ns::ROSTER) => self.roster_iq(&msg.resource, stanza, ctx),
                    Some(ns::CARBONS) => self.carbons_iq(&msg.resource, &stanza),
                    Some(ns::BLOCKING) => self.blocking_iq(&msg.resource, stanza, ctx),
                    Some(parley_proto::pubsub::NS | parley_proto::pubsub::NS_OWNER) => {
                        self.pep_iq(stanza, crate::pep::Requester::Owner, ctx)
                    }
                    _ => self.bounce(
                        &stanza,
                        StanzaError::new(StanzaCondition::ServiceUnavailable),
                    ),
                }
            }
            "message" => {
                let me = msg.resource;
                self.carbon_copies(&stanza, crate::carbons::Direction::Sent, |r| r.name() != me);
            }
            _ => {}
        }
    }
}

impl Handler<Inbound> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        self.mailbox.taken(&msg.stanza);
        self.inbound(msg.stanza, ctx);
        self.schedule_idle(ctx);
    }
}

impl Handler<CarbonReceived> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: CarbonReceived, _ctx: &mut Context<Self>) {
        self.mailbox.taken(&msg.message);
        // XEP-0191 §3.5 over XEP-0280 §6: the sender's session hands the message straight to
        // the addressed resource (which refuses it) and asks for copies at once; a blocked
        // sender's message must not reach the other resources as a <received/> copy.
        if self.sent_by_blocked(&msg.message) {
            return;
        }
        let got = msg.resource;
        self.carbon_copies(&msg.message, crate::carbons::Direction::Received, |r| {
            r.name() != got
        });
    }
}

impl Handler<Vanished> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: Vanished, ctx: &mut Context<Self>) {
        let known = self
            .resources
            .iter()
            .any(|r| r.name() == msg.resource && r.handle.id == msg.session);
        if known {
            self.detach(&msg.resource, msg.session);
        } else if let Ok(full) = self.jid.with_resource_str(&msg.resource) {
            // The lost node also ran this user's actor, so the resource never attached
            // here and only the registry speaks for it. Its `available` flag trails the
            // presence broadcast by one batched write: a node killed in between leaves it
            // false although the contacts saw the resource available. An unavailable
            // presence a contact did not need is harmless; a missing one is a ghost.
            debug!(user = %self.jid, resource = %msg.resource, registry_available = msg.available,
                "announcing a resource of a lost node unavailable");
            self.announce_gone(&full);
        }
        self.write_last_activity(ctx);
        self.schedule_idle(ctx);
    }
}

impl Handler<HandOff> for UserActor {
    type Result = ();

    fn handle(&mut self, _msg: HandOff, ctx: &mut Context<Self>) {
        debug!(user = %self.jid, "user actor handed off to another node");
        self.lifecycle = Lifecycle::HandedOff;
        self.cancel_idle(ctx);
        // The registry no longer sends here; anything queued before the hand-off was
        // handled above. Storage writes already started finish under `wait`.
        ctx.stop();
    }
}

impl Handler<Drain> for UserActor {
    type Result = ();

    // Storage work runs under `ctx.wait`, which holds the mailbox: by the time this message
    // is handled, every earlier write has finished.
    fn handle(&mut self, _msg: Drain, _ctx: &mut Context<Self>) {}
}

/// XEP-0054 §3.1: a request for the account's vCard.
fn is_vcard_get(iq: &Element) -> bool {
    iq.attr("type") == Some("get") && iq.first_child().is_some_and(|c| c.is("vCard", ns::VCARD))
}
