//! What a bound session does with the stanzas its client sends (RFC 6120 §8, RFC 6121 §8.5).
//!
//! Every stanza gets its `from` checked and stamped with the session's full JID, then goes to
//! exactly one place: the server itself (`serve.rs`), another session through the router, or
//! back to the client as an error. An error stanza is never answered with another error.

use actix::Context;
use jid::{BareJid, FullJid, Jid};
use parley_proto::ns;
use parley_proto::stanza::{stanza_type, StanzaKind};
use parley_proto::stanza_error::{error_reply, StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, DeliverError, SessionHandle};
use parley_xml::Element;

use crate::session::{Phase, Session};

/// Where a stanza is addressed, after parsing its `to`.
enum Target {
    /// No `to`: the sender's own account.
    OwnAccount,
    /// A domain we serve.
    Server(String),
    /// A bare JID on a domain we serve.
    Bare(BareJid),
    /// A full JID on a domain we serve.
    Full(FullJid),
    /// A domain we do not serve (no s2s yet).
    Remote,
}

impl Session {
    pub(crate) fn on_stanza(&mut self, mut el: Element, ctx: &mut Context<Self>) {
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
        el.set_attr("from", me.to_string());
        let target = match el.attr("to") {
            None => Target::OwnAccount,
            Some(to) => match Jid::new(to) {
                Err(_) => {
                    // RFC 6120 §8.3.3.8.
                    return self.bounce(&el, StanzaCondition::JidMalformed, ctx);
                }
                Ok(jid) if !self.env.router.serves(jid.domain().as_str()) => Target::Remote,
                Ok(jid) => match (jid.node().is_some(), jid.try_into_full()) {
                    (_, Ok(full)) => Target::Full(full),
                    (true, Err(bare)) => Target::Bare(bare),
                    (false, Err(bare)) => Target::Server(bare.domain().as_str().to_owned()),
                },
            },
        };
        if let Target::Remote = target {
            // RFC 6120 §10.4.3: no server-to-server connections yet.
            return self.bounce(&el, StanzaCondition::RemoteServerNotFound, ctx);
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

    /// Hands `el` to a session; bounces it if that session is overloaded. Gives the stanza
    /// back if the session is gone, so that the caller can apply the next routing rule.
    fn deliver(
        &mut self,
        handle: &SessionHandle,
        el: Element,
        ctx: &mut Context<Self>,
    ) -> Result<(), Element> {
        if handle.id == self.id {
            self.send(&el, ctx);
            return Ok(());
        }
        match handle.deliver(el) {
            Ok(()) => Ok(()),
            Err(undelivered) => match undelivered.error {
                DeliverError::Overloaded => {
                    self.bounce_with(
                        &undelivered.stanza,
                        StanzaError::with_text(
                            StanzaCondition::ResourceConstraint,
                            "the recipient is not reading its stream",
                        ),
                        ctx,
                    );
                    Ok(())
                }
                DeliverError::Gone => Err(undelivered.stanza),
            },
        }
    }

    /// A stanza reached this session after it started closing. Messages get the bare-JID
    /// rules (another resource may take them); iq requests and messages that nobody takes are
    /// bounced to their sender (RFC 6121 §8.5.3.2.1).
    pub(crate) fn undeliverable(&mut self, el: Element) {
        let (Some(to), Some(kind)) = (
            el.attr("to").and_then(|t| FullJid::new(t).ok()),
            StanzaKind::of(&el),
        ) else {
            return;
        };
        let ty = stanza_type(&el).to_owned();
        let ty = ty.as_str();
        let mut el = Some(el);
        if kind == StanzaKind::Message && !matches!(ty, "error" | "groupchat") {
            let targets = self
                .env
                .router
                .bare_message_targets(&to.to_bare(), ty == "headline");
            for handle in targets.iter().filter(|h| h.id != self.id) {
                if let Some(stanza) = el.take() {
                    if let Err(undelivered) = handle.deliver(stanza) {
                        el = Some(undelivered.stanza);
                    }
                }
            }
            if ty == "headline" {
                return;
            }
        }
        let bounce_iq = kind == StanzaKind::Iq && matches!(ty, "get" | "set");
        let bounce_message = kind == StanzaKind::Message;
        let Some(el) = el.filter(|_| bounce_iq || bounce_message) else {
            return;
        };
        let Some(reply) = error_reply(&el, &StanzaError::new(StanzaCondition::ServiceUnavailable))
        else {
            return;
        };
        let sender = reply.attr("to").and_then(|t| FullJid::new(t).ok());
        if let Some(handle) = sender.and_then(|s| self.env.router.lookup(&s)) {
            let _ = handle.deliver(reply);
        }
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
        match target {
            Target::OwnAccount => self.account_iq(el, ctx),
            Target::Bare(bare) if bare == me.to_bare() => self.account_iq(el, ctx),
            Target::Server(domain) => self.server_iq(el, &domain, ctx),
            Target::Bare(_) => {
                // RFC 6121 §8.5.2.1.3: the server answers for the account; it offers nothing
                // for other users' accounts yet.
                if request {
                    self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx);
                }
            }
            Target::Full(full) => match self.env.router.lookup(&full) {
                Some(handle) => {
                    if let (Err(el), true) = (self.deliver(&handle, el, ctx), request) {
                        self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx);
                    }
                }
                // RFC 6121 §8.5.3.2.1 (iq): no such resource.
                None if request => self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx),
                None => {}
            },
            Target::Remote => {}
        }
    }

    // ----- message (RFC 6121 §8.5) -----------------------------------------------------------------

    fn route_message(
        &mut self,
        el: Element,
        target: Target,
        me: &FullJid,
        ctx: &mut Context<Self>,
    ) {
        match target {
            Target::OwnAccount => self.message_to_bare(el, &me.to_bare(), ctx),
            Target::Bare(bare) => self.message_to_bare(el, &bare, ctx),
            Target::Server(_) => self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx),
            Target::Full(full) => match self.env.router.lookup(&full) {
                Some(handle) => {
                    if let Err(el) = self.deliver(&handle, el, ctx) {
                        self.message_to_bare(el, &full.to_bare(), ctx);
                    }
                }
                // RFC 6121 §8.5.3.2.1: the resource is gone; treat as addressed to the bare JID.
                None => {
                    let bare = full.to_bare();
                    self.message_to_bare(el, &bare, ctx)
                }
            },
            Target::Remote => {}
        }
    }

    /// RFC 6121 §8.5.2.1.1 / §8.5.2.2.1.
    fn message_to_bare(&mut self, el: Element, bare: &BareJid, ctx: &mut Context<Self>) {
        let ty = stanza_type(&el);
        match ty {
            "error" => return,
            "groupchat" => return self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx),
            _ => {}
        }
        let targets = self.env.router.bare_message_targets(bare, ty == "headline");
        let mut delivered = false;
        for handle in &targets {
            delivered |= self.deliver(handle, el.clone(), ctx).is_ok();
        }
        if !delivered && ty != "headline" {
            // No available resource. Offline storage (XEP-0160) arrives with the user actor;
            // until then the sender learns that nothing was delivered.
            self.bounce(&el, StanzaCondition::ServiceUnavailable, ctx);
        }
    }

    // ----- presence (RFC 6121 §4) ------------------------------------------------------------------

    fn route_presence(
        &mut self,
        el: Element,
        target: Target,
        me: &FullJid,
        ctx: &mut Context<Self>,
    ) {
        let ty = el.attr("type").unwrap_or("available").to_owned();
        if ty == "error" {
            return;
        }
        match target {
            Target::OwnAccount => self.broadcast_presence(el, &ty, me, ctx),
            Target::Server(_) | Target::Remote => {}
            Target::Full(full) => {
                // RFC 6121 §8.5.3.2.2 (presence): no such resource → silently ignored.
                if let Some(handle) = self.env.router.lookup(&full) {
                    let _ = self.deliver(&handle, el, ctx);
                }
            }
            Target::Bare(bare) => {
                for r in self.env.router.resources(&bare) {
                    if r.available {
                        let _ = self.deliver(&r.handle, el.clone(), ctx);
                    }
                }
            }
        }
    }

    /// RFC 6121 §4.2 / §4.5: broadcast presence (no `to`).
    fn broadcast_presence(&mut self, el: Element, ty: &str, me: &FullJid, ctx: &mut Context<Self>) {
        let available = match ty {
            "available" => true,
            "unavailable" => false,
            // Subscription and probe types need a `to` (RFC 6121 §3); ignore them here.
            _ => return,
        };
        let priority = match el.get_child("priority", ns::CLIENT).map(|p| p.text()) {
            None => 0,
            Some(text) => match text.trim().parse::<i8>() {
                Ok(p) => p,
                Err(_) => {
                    // RFC 6121 §4.7.2.3: an integer from -128 to +127.
                    return self.bounce_with(
                        &el,
                        StanzaError::with_text(
                            StanzaCondition::BadRequest,
                            "priority must be an integer from -128 to 127",
                        ),
                        ctx,
                    );
                }
            },
        };
        self.env
            .router
            .set_presence(me, self.id, available, priority);
        let phase = std::mem::replace(&mut self.phase, Phase::Authed { user: me.to_bare() });
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
        // RFC 6121 §4.2.2 / §4.5.2: the user's other available resources see it too.
        for r in self.env.router.resources(&me.to_bare()) {
            if r.handle.id != self.id && r.available {
                let mut copy = el.clone();
                copy.set_attr("to", format!("{}/{}", me.to_bare(), r.resource));
                let _ = self.deliver(&r.handle, copy, ctx);
            }
        }
    }
}
