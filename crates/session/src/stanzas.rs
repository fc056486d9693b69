//! What a bound session does with the stanzas its client sends (RFC 6120 §8), and with the
//! stanzas routed to it.
//!
//! The session keeps only its client's own duties: the `from` check and stamp (RFC 6120
//! §8.1.2.1), the blocklist (XEP-0191), its mirror of the client's presence, the carbons
//! hand-off (XEP-0280) and the iqs the server answers itself (`server_iq.rs`). Everything else
//! takes the router's road ([`parley_router::Router::route_to`]), which hands back what is
//! for this session itself — its own stanza addressed to itself, or the error for a
//! refusal — to be written in order with the session's other replies. An error stanza is
//! never answered with another error.

use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::{FullJid, Jid};
use parley_proto::ns;
use parley_proto::stanza::StanzaKind;
use parley_proto::stanza_error::{error_reply, StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, Dest, Origin, Routed};
use parley_user::{eligible_for_carbons, CarbonReceived, FromClient};
use parley_xml::Element;

use crate::archive::{Parties, Stamped};
use crate::session::{Phase, Session};

/// The longest a client's input waits for its broadcast to reach the contacts' sessions
/// (RFC 6120 §10.1); past it the broadcast is presumed on its way (a contact's actor busy
/// with storage, a peer node lost) and input goes on.
const FENCE_LIMIT: Duration = parley_user::SYNC_LIMIT;

/// Where a stanza is addressed, after reading its `to`.
enum Target {
    /// No `to`: the sender's own account.
    OwnAccount,
    /// Anywhere else, as the router reads it.
    To(Dest),
}

impl Session {
    pub(crate) fn on_stanza(&mut self, el: Element, ctx: &mut Context<Self>) {
        self.meta.received();
        // XEP-0198 §4: handled, whatever becomes of it (an error answer is handling too).
        self.sm_count_in();
        let started = std::time::Instant::now();
        self.route_stanza(el, ctx);
        parley_router::metrics::observe_routing(started.elapsed());
    }

    fn route_stanza(&mut self, mut el: Element, ctx: &mut Context<Self>) {
        let kind = match StanzaKind::of(&el) {
            Some(kind) if el.ns() == ns::CLIENT => kind,
            _ => {
                // RFC 6120 §4.9.3.23: only message, presence and iq are stanzas.
                return self.close(
                    CloseReason::with_text(
                        StreamCondition::UnsupportedStanzaType,
                        format!("unsupported top-level element <{}/>", el.name()),
                    ),
                    ctx,
                );
            }
        };
        let Some(me) = self.bound().map(|b| b.jid.clone()) else {
            return;
        };
        // RFC 6120 §8.1.2.1: a `from` must match the client's full or bare JID.
        if let Some(from) = el.attr("from") {
            let ok = Jid::new(from).is_ok_and(|j| {
                j.as_str() == me.as_str() || (j.resource().is_none() && j.to_bare() == me.to_bare())
            });
            if !ok {
                return self.close(
                    CloseReason::with_text(
                        StreamCondition::InvalidFrom,
                        "the 'from' address does not match this session",
                    ),
                    ctx,
                );
            }
        }
        el.set_attr("from", me.as_str().to_owned());
        let target = match el.attr("to") {
            None => Target::OwnAccount,
            Some(to) => match self.env.router.dest(to) {
                Err(_) => {
                    // RFC 6120 §8.3.3.8.
                    return self.bounce(&el, StanzaCondition::JidMalformed, ctx);
                }
                Ok(dest) => Target::To(dest),
            },
        };
        // XEP-0191 §3.6: nothing goes to an address the user blocks.
        let to_blocked = !matches!(target, Target::OwnAccount)
            && self
                .bound()
                .is_some_and(|b| el.attr("to").is_some_and(|to| b.blocked.blocks_str(to)));
        if to_blocked {
            return self.bounce_with(&el, parley_proto::blocking::blocked_error(), ctx);
        }
        match kind {
            StanzaKind::Iq => self.route_iq(el, target, &me, ctx),
            StanzaKind::Message => self.route_message(el, target, &me, ctx),
            StanzaKind::Presence => self.route_presence(el, target, &me, ctx),
        }
    }

    /// Sends the error reply for `el` back to this session's client. Never for errors.
    pub(crate) fn bounce(
        &mut self,
        el: &Element,
        condition: StanzaCondition,
        ctx: &mut Context<Self>,
    ) {
        self.bounce_with(el, StanzaError::new(condition), ctx);
    }

    pub(crate) fn bounce_with(&mut self, el: &Element, err: StanzaError, ctx: &mut Context<Self>) {
        if let Some(reply) = error_reply(el, &err) {
            self.send(&reply, ctx);
        }
    }

    /// Hands a client stanza to the router. What comes back for this session — its own
    /// stanza addressed to itself, or the error for a refusal — is written now, in order
    /// with the session's other replies (never through its mailbox). True when a session
    /// took it (for XEP-0280 received copies).
    fn hand_to_router(&mut self, el: Element, dest: Dest, ctx: &mut Context<Self>) -> bool {
        match self.env.router.route_to(dest, el, Origin::Session(self.id)) {
            Routed::Session => true,
            Routed::Loopback(el) => {
                self.send(&el, ctx);
                true
            }
            Routed::Bounced(error) => {
                self.send(&error, ctx);
                false
            }
            Routed::User
            | Routed::Foreign
            | Routed::Service
            | Routed::Refused
            | Routed::Dropped => false,
        }
    }

    /// A stanza reached this session after it started closing (it was routed before the
    /// session unregistered): the router applies the rules for a full JID whose resource is
    /// gone (RFC 6121 §8.5.3.2), so nothing is lost silently.
    pub(crate) fn undeliverable(&mut self, el: Element) {
        self.env.router.gone(el);
    }

    // ----- iq (RFC 6120 §8.2.3) ------------------------------------------------------------------

    fn route_iq(&mut self, el: Element, target: Target, me: &FullJid, ctx: &mut Context<Self>) {
        let ty = el.attr("type").unwrap_or_default();
        let request = matches!(ty, "get" | "set");
        if !request && !matches!(ty, "result" | "error") {
            return self.bounce_with(
                &el,
                StanzaError::with_text(StanzaCondition::BadRequest, "invalid iq type"),
                ctx,
            );
        }
        if el.attr("id").is_none() {
            return self.bounce_with(
                &el,
                StanzaError::with_text(StanzaCondition::BadRequest, "an iq needs an id"),
                ctx,
            );
        }
        if request && el.children().count() != 1 {
            return self.bounce_with(
                &el,
                StanzaError::with_text(
                    StanzaCondition::BadRequest,
                    "an iq get or set carries exactly one payload element",
                ),
                ctx,
            );
        }
        let own = match &target {
            Target::OwnAccount => true,
            Target::To(Dest::Bare(bare)) => *bare == me.to_bare(),
            Target::To(_) => false,
        };
        if request
            && el.first_child().is_some_and(|q| {
                q.ns() == parley_proto::push::NS && matches!(q.name(), "enable" | "disable")
            })
        {
            // XEP-0357 §5-§6: the account's own registrations only.
            if !own {
                return self.bounce_with(&el, StanzaError::new(StanzaCondition::Forbidden), ctx);
            }
            return self.push_iq(el, ctx);
        }
        if request
            && el
                .first_child()
                .is_some_and(|q| q.is("query", crate::private::NS))
        {
            // XEP-0049 §3: only the account's own storage, never another entity's.
            if !own {
                return self.bounce_with(&el, StanzaError::new(StanzaCondition::Forbidden), ctx);
            }
            return self.private_iq(el, ctx);
        }
        if request
            && el
                .first_child()
                .is_some_and(|q| q.is("vCard", crate::private::VCARD))
        {
            if own {
                return self.own_vcard_iq(el, ctx);
            }
            if ty == "set" {
                // XEP-0054 §3.2: a vCard is written only by its owner.
                return self.bounce_with(&el, StanzaError::new(StanzaCondition::Forbidden), ctx);
            }
        }
        // XEP-0077: the account's own registration, asked of its server or itself.
        let to_server = matches!(&target, Target::To(Dest::Server(s)) if s.resource().is_none());
        if request
            && (own || to_server)
            && el
                .first_child()
                .is_some_and(|q| q.is("query", crate::register::NS))
        {
            return self.register_iq(el, ctx);
        }
        let mam = request
            && el
                .first_child()
                .is_some_and(|q| q.ns() == parley_proto::mam::NS);
        if mam && own {
            return self.mam_iq(el, ctx);
        }
        if own && !request {
            // An answer to a question the account's own services asked (the PEP
            // service's capabilities query, XEP-0115 §6.2): the user actor's.
            return self.forward_to_user(el, ctx);
        }
        if mam && matches!(target, Target::To(Dest::Bare(_))) {
            // XEP-0313 §4: an account's archive is its own; rooms and other servers'
            // archives are reached by routing.
            return self.bounce_with(&el, StanzaError::new(StanzaCondition::Forbidden), ctx);
        }
        if own {
            // The roster and carbons are the user's state; the rest the session answers.
            // PEP (XEP-0163) is the account's pubsub service, run by its user actor.
            let user_ns = el.first_child().is_some_and(|c| {
                c.ns() == ns::ROSTER
                    || c.ns() == ns::CARBONS
                    || c.ns() == ns::BLOCKING
                    || c.ns() == parley_proto::pubsub::NS
                    || c.ns() == parley_proto::pubsub::NS_OWNER
            });
            if user_ns {
                let roster_get = ty == "get" && el.has_child("query", ns::ROSTER);
                if ty == "get" && el.has_child("blocklist", ns::BLOCKING) {
                    if let Phase::Bound(b) | Phase::Established(b) = &mut self.phase {
                        b.blocklist_requested = true;
                    }
                }
                // XEP-0280 §4: the client's own choice, mirrored for the registry.
                let carbons = (ty == "set")
                    .then(|| {
                        if el.has_child("enable", ns::CARBONS) {
                            Some(true)
                        } else if el.has_child("disable", ns::CARBONS) {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .flatten();
                let mut changed = false;
                if let Phase::Bound(b) | Phase::Established(b) = &mut self.phase {
                    if roster_get && !b.interested {
                        b.interested = true;
                        changed = true;
                    }
                    if let Some(on) = carbons.filter(|on| *on != b.carbons) {
                        b.carbons = on;
                        changed = true;
                    }
                }
                if changed {
                    self.publish_flags();
                }
                return self.forward_to_user(el, ctx);
            }
            return self.account_iq(el, ctx);
        }
        match target {
            Target::To(Dest::Server(server)) if server.resource().is_none() => {
                let domain = server.domain().as_str().to_owned();
                self.server_iq(el, &domain, ctx)
            }
            // Another account's bare JID (RFC 6121 §8.5.2.1.3), or a full JID (§8.5.3): the
            // router's road, to a session or to the user's actor, whose table answers.
            Target::To(dest) => {
                self.hand_to_router(el, dest, ctx);
            }
            Target::OwnAccount => {}
        }
    }

    /// A stanza routed to this session, on its way to the client. XEP-0191: a blocklist
    /// push from the user's actor (no `from`, or the user's bare JID: nothing a client sends
    /// arrives so) updates this session's copy and reaches the client only if it asked for
    /// the list; anything from an address the user blocks is refused or dropped (§3.5).
    pub(crate) fn deliver_to_client(&mut self, el: Element, ctx: &mut Context<Self>) {
        let Some(b) = self.bound_mut() else {
            return self.send(&el, ctx);
        };
        let from = el.attr("from");
        // The user's bare JID is the full JID up to its '/': compared in place, since this
        // runs for every stanza delivered.
        let own = from.is_none_or(|f| {
            b.jid
                .as_str()
                .strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        if own && self.took_pep_sync_answer(&el) {
            return;
        }
        let Some(b) = self.bound_mut() else { return };
        let push = (own && el.name() == "iq" && el.attr("type") == Some("set"))
            .then(|| el.first_child().filter(|c| c.ns() == ns::BLOCKING))
            .flatten();
        if let Some(payload) = push {
            let items = parley_proto::blocking::items(payload).unwrap_or_default();
            match payload.name() {
                "blocklist" if el.attr("id") == Some(parley_user::BLOCKLIST_SYNC_ID) => {
                    b.blocked = parley_proto::blocking::Blocklist::new(items);
                    b.blocklist_synced = true;
                    for held in std::mem::take(&mut b.held_back) {
                        self.deliver_to_client(held, ctx);
                    }
                    return;
                }
                "block" => b.blocked.add(&items),
                "unblock" if items.is_empty() => b.blocked.clear(),
                "unblock" => b.blocked.remove(&items),
                _ => {}
            }
            let requested = b.blocklist_requested;
            // Stored: the archive decides with the new blocklist from the next message on.
            if let (Some(w), Some(user)) = (self.env.archive.clone(), self.user()) {
                let (username, host) = crate::private::account_parts(&user);
                w.forget(&username, &host);
            }
            if !requested {
                return;
            }
            return self.send(&el, ctx);
        }
        if !own && !b.blocklist_synced {
            if b.held_back.len() < crate::session::HELD_BACK_MAX {
                b.held_back.push(el);
                return;
            }
            // Full before the list came: delivering unchecked could let a blocked sender
            // through, so the sender is told to try again. The answer is the same whether
            // or not it is blocked, so it learns nothing about the list.
            let user = b.jid.to_bare();
            if parley_router::metrics::refuse("blocklist_hold_back", user.as_str()) {
                tracing::warn!(user = %user, "stanzas held back for the blocklist overflowed");
            }
            let err = StanzaError::with_text(
                StanzaCondition::ResourceConstraint,
                "the recipient's session is starting; try again",
            );
            // Answered on the client's behalf, past its own checks.
            self.env.router.bounce(&el, err);
            return;
        }
        if !own && from.is_some_and(|f| b.blocked.blocks_str(f)) {
            let refuse = match el.name() {
                "message" => true,
                "iq" => matches!(el.attr("type"), Some("get" | "set")),
                _ => false,
            };
            if refuse {
                // Answered on the client's behalf, past its own checks.
                let err = StanzaError::new(StanzaCondition::ServiceUnavailable);
                self.env.router.bounce(&el, err);
            }
            return;
        }
        self.push_if_hibernating(&el);
        self.send_or_hold(el, ctx)
    }

    /// Hands a stanza from this client to its own user actor.
    /// A refusal (the user layer is congested) is written to the client now, in order.
    pub(crate) fn forward_to_user(&mut self, stanza: Element, ctx: &mut Context<Self>) {
        let Some(b) = self.bound() else {
            return;
        };
        let sent = b.user.try_send(FromClient {
            resource: b.jid.resource().as_str().to_owned(),
            stanza,
            routed: false,
        });
        if let Err(refused) = sent {
            if let Some(reply) = error_reply(&refused.stanza, &refused.error) {
                self.send(&reply, ctx);
            }
        }
    }

    // ----- message (RFC 6121 §8.5) -----------------------------------------------------------------

    fn route_message(
        &mut self,
        mut el: Element,
        target: Target,
        me: &FullJid,
        ctx: &mut Context<Self>,
    ) {
        // XEP-0359 §3, then XEP-0313: archived for its local parties before it goes on.
        self.strip_forged_ids(&mut el);
        if self.env.archive.is_none() {
            return self.deliver_message(el, target, me, Stamped::default(), ctx);
        }
        // Strings cut from the JIDs: `to_bare` formats a new JID, which showed in the
        // profile of every routed message.
        let recipient = match &target {
            Target::OwnAccount => Some(bare_str(me).to_owned()),
            Target::To(Dest::Bare(bare)) => Some(bare.as_str().to_owned()),
            Target::To(Dest::Full(full)) => Some(bare_str(full).to_owned()),
            Target::To(_) => None,
        };
        let parties = Parties {
            sender: Some(bare_str(me).to_owned()),
            recipient,
        };
        let me = me.clone();
        self.archive_then(el, parties, ctx, move |act, el, stamped, ctx| {
            act.deliver_message(el, target, &me, stamped, ctx)
        });
    }

    fn deliver_message(
        &mut self,
        el: Element,
        target: Target,
        me: &FullJid,
        stamped: Stamped,
        ctx: &mut Context<Self>,
    ) {
        // XEP-0280: the user's other carbons-enabled resources get a <sent/> copy, with the
        // id of the sender's archive copy (XEP-0313 §5.1.2).
        if self.bound().is_some_and(|b| b.user.carbons_enabled() > 0) && eligible_for_carbons(&el) {
            let mut copy = el.clone();
            let bare = me.to_bare();
            let has_own = copy.children().any(|c| {
                c.is("stanza-id", parley_proto::mam::SID) && c.attr("by") == Some(bare.as_str())
            });
            if let (Some(id), false) = (&stamped.sender_id, has_own) {
                copy.push_child(parley_proto::mam::stanza_id(bare.as_str(), id));
            }
            self.forward_to_user(copy, ctx);
        }
        match target {
            // RFC 6121 §8.5.2: to the user's own bare JID.
            Target::OwnAccount => {
                self.hand_to_router(el, Dest::Bare(me.to_bare()), ctx);
            }
            Target::To(Dest::Full(full)) => {
                let bare = Jid::clone(&full).into_bare();
                let carbons =
                    eligible_for_carbons(&el) && self.env.users.carbons_enabled(&bare) > 0;
                let copy = carbons.then(|| (el.clone(), full.resource().as_str().to_owned()));
                // §8.5.3.1 straight to the session, or §8.5.3.2 the user actor's rules
                // (which do their own carbons).
                let delivered = self.hand_to_router(el, Dest::Full(full), ctx);
                if let (true, Some((message, resource))) = (delivered, copy) {
                    // XEP-0280: delivered straight to one resource; the user's other
                    // carbons-enabled resources get a <received/> copy.
                    self.env
                        .users
                        .send_if_running(&bare, CarbonReceived { resource, message });
                }
            }
            Target::To(dest) => {
                self.hand_to_router(el, dest, ctx);
            }
        }
    }

    // ----- presence (RFC 6121 §4) ------------------------------------------------------------------

    fn route_presence(
        &mut self,
        el: Element,
        target: Target,
        _me: &FullJid,
        ctx: &mut Context<Self>,
    ) {
        let ty = el.attr("type").unwrap_or("available").to_owned();
        if ty == "error" {
            // Errors about presence go straight to their addressee (to a resource that is
            // gone, the user's table drops them, RFC 6121 §8.5.3.2.2).
            if let Target::To(dest @ (Dest::Full(_) | Dest::Foreign(_))) = target {
                self.hand_to_router(el, dest, ctx);
            }
            return;
        }
        if let Target::To(dest @ Dest::Server(_)) = target {
            // Presence to the server itself: the router drops it.
            self.hand_to_router(el, dest, ctx);
            return;
        }
        let broadcast = matches!(target, Target::OwnAccount)
            && matches!(ty.as_str(), "available" | "unavailable");
        if broadcast {
            if self.mirror_presence(&el, ty == "available").is_err() {
                return self.bounce_with(
                    &el,
                    StanzaError::with_text(
                        StanzaCondition::BadRequest,
                        "priority must be an integer from -128 to 127",
                    ),
                    ctx,
                );
            }
            self.publish_flags();
        }
        // RFC 6121 §4.6: the directed presence still on, mirrored like the broadcast one.
        let directed_to = match &target {
            Target::To(Dest::Bare(_) | Dest::Full(_) | Dest::Foreign(_)) => {
                el.attr("to").map(str::to_owned)
            }
            _ => None,
        };
        if let Some(b) = self.bound_mut() {
            match (directed_to, ty.as_str()) {
                (Some(to), "available") if !b.directed.contains(&to) => b.directed.push(to),
                (Some(to), "unavailable") => b.directed.retain(|d| *d != to),
                (None, "unavailable") if broadcast => b.directed.clear(),
                _ => {}
            }
        }
        // Presence to one of the server's own services (a chat room) goes on at once, in
        // order with what the client sends next (RFC 6120 §10.1: a join reaches the room
        // before the first message to it); the user's actor only records it, to tell the
        // room when the resource goes (RFC 6121 §4.6.3).
        if let Target::To(Dest::Foreign(to)) = &target {
            if matches!(ty.as_str(), "available" | "unavailable")
                && self.env.router.service(to.domain().as_str()).is_some()
            {
                let copy = el.clone();
                self.hand_to_router(el, Dest::Foreign(to.clone()), ctx);
                if let Some(b) = self.bound() {
                    let _ = b.user.try_send(FromClient {
                        resource: b.jid.resource().as_str().to_owned(),
                        stanza: copy,
                        routed: true,
                    });
                }
                return;
            }
        }
        // Broadcasts, directed presence and subscriptions all need the user's roster.
        self.forward_to_user(el, ctx);
        if broadcast {
            self.fence(ctx);
        }
    }

    /// RFC 6120 §10.1: what the client sends after a broadcast presence must not overtake
    /// it. The broadcast reaches contacts through this user's actor and theirs; a message
    /// goes straight to their sessions. So input waits until the user's actor (here or on
    /// the node that owns the user) says every copy sits in the contacts' sessions' queues,
    /// or [`FENCE_LIMIT`] has passed (parley-user's `order.rs`, docs/routing.md).
    fn fence(&mut self, ctx: &mut Context<Self>) {
        let Some(fence) = self.bound().and_then(|b| b.user.fence()) else {
            return;
        };
        self.fenced = true;
        let waited = tokio::time::timeout(FENCE_LIMIT, fence);
        ctx.spawn(wrap_future::<_, Self>(waited).map(|_, act, _| {
            act.fenced = false;
            act.wake();
        }));
    }

    /// Keeps this session's copy of its presence state (Prosody's `presence`, `priority`)
    /// and moves the phase to Established on initial presence (RFC 6121 §4.2).
    fn mirror_presence(&mut self, el: &Element, available: bool) -> Result<(), ()> {
        let priority = match el.get_child("priority", ns::CLIENT).map(|p| p.text()) {
            None => 0,
            // RFC 6121 §4.7.2.3: an integer from -128 to +127.
            Some(text) => text.trim().parse::<i8>().map_err(|_| ())?,
        };
        let phase = std::mem::replace(&mut self.phase, Phase::Unauthed(Default::default()));
        self.phase = match phase {
            Phase::Bound(mut b) | Phase::Established(mut b) => {
                b.priority = priority;
                b.presence = available.then(|| el.clone());
                if available {
                    Phase::Established(b)
                } else {
                    Phase::Bound(b)
                }
            }
            other => other,
        };
        Ok(())
    }
}

/// The bare part of a full JID, `user@host` of `user@host/resource`: a slice, where
/// `to_bare` would format a new JID.
fn bare_str(full: &FullJid) -> &str {
    let s = full.as_str();
    s.split_once('/').map_or(s, |(bare, _)| bare)
}
