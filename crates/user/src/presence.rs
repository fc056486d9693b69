//! Presence (RFC 6121 §4) and subscriptions (§3) for one user.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::{BareJid, Jid};
use parley_proto::ns;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_storage::{RosterItem, Subscription};
use parley_xml::Element;
use tracing::warn;

use crate::actor::UserActor;
use crate::subscription::{self, Kind, State};

pub(crate) fn has_from(s: Subscription) -> bool {
    matches!(s, Subscription::From | Subscription::Both)
}

pub(crate) fn has_to(s: Subscription) -> bool {
    matches!(s, Subscription::To | Subscription::Both)
}

impl UserActor {
    /// Presence sent by one of the user's resources (its `from` is that full JID).
    pub(crate) fn client_presence(
        &mut self,
        resource: &str,
        stanza: Element,
        ctx: &mut Context<Self>,
    ) {
        let ty = stanza.attr("type").unwrap_or("available").to_owned();
        if let Some(kind) = Kind::from_type(&ty) {
            return self.client_subscription(kind, stanza, ctx);
        }
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        match (ty.as_str(), to) {
            ("available" | "unavailable", None) => {
                self.broadcast_presence(resource, stanza, ty == "available", ctx)
            }
            ("available" | "unavailable", Some(to)) => self.directed(resource, stanza, to),
            // Probes are the server's business (RFC 6121 §4.3); errors go nowhere.
            _ => {}
        }
    }

    /// RFC 6121 §4.2 (initial), §4.4 (update), §4.5 (unavailable): broadcast presence.
    pub(crate) fn broadcast_presence(
        &mut self,
        resource: &str,
        stanza: Element,
        available: bool,
        ctx: &mut Context<Self>,
    ) {
        if !available {
            if self.resource(resource).is_some_and(|r| r.available) {
                self.go_unavailable(resource, Some(stanza));
            }
            return;
        }
        // XEP-0153 / XEP-0398 §4: the avatar's hash, unless the client names one itself.
        let stanza = self.with_avatar_hash(stanza);
        let priority = stanza
            .get_child("priority", ns::CLIENT)
            .and_then(|p| p.text().trim().parse::<i8>().ok())
            .unwrap_or(0);
        let Some(r) = self.resource_mut(resource) else {
            return;
        };
        let initial = !r.available;
        r.available = true;
        r.priority = priority;
        r.presence = Some(stanza.clone());
        let full = r.full.clone();
        // Contacts with a subscription to us (from/both).
        for item in self.roster.items.values() {
            if has_from(item.subscription) {
                let mut copy = stanza.clone();
                copy.set_attr("to", item.jid.clone());
                self.route_out(copy, Wake::IfRunning);
            }
        }
        // §4.2.2 / §4.4.2: every available resource sees it, the sender included; a new
        // resource also gets the others' presence (below).
        for other in self.resources.iter().filter(|o| o.available) {
            let mut copy = stanza.clone();
            copy.set_attr("to", other.full.to_string());
            self.deliver(other, copy);
        }
        if !initial {
            return;
        }
        if let Some(me) = self.resource(resource) {
            for other in self
                .resources
                .iter()
                .filter(|o| o.available && o.name() != resource)
            {
                if let Some(p) = &other.presence {
                    let mut copy = p.clone();
                    copy.set_attr("to", full.to_string());
                    self.deliver(me, copy);
                }
            }
            // §3.1.3: requests that arrived while the user was away.
            for (_, pending) in &self.roster.pending_in {
                // Stored by us from an accepted stanza: read under the copy limits.
                if let Some(mut el) = crate::placement::parse(pending) {
                    el.set_attr("to", full.to_string());
                    self.deliver(me, el);
                }
            }
        }
        // §4.2.2 / §4.3.1: probe the contacts we are subscribed to (to/both). From the bare
        // JID when this is the only available resource: the answers then come through this
        // actor (which delivers them to that one resource), so the PEP service learns which
        // contacts are online and what their capabilities ask for (XEP-0163 §4.3.3). A later
        // resource probes from its full JID, so that the others do not get them again.
        let alone = !self
            .resources
            .iter()
            .any(|o| o.available && o.name() != resource);
        let prober = if alone {
            self.jid.to_string()
        } else {
            full.to_string()
        };
        for item in self.roster.items.values() {
            if has_to(item.subscription) {
                let probe = Element::new("presence", ns::CLIENT)
                    .with_attr("type", "probe")
                    .with_attr("from", prober.as_str())
                    .with_attr("to", item.jid.clone());
                self.route_out(probe, Wake::IfRunning);
            }
        }
        // XEP-0160: stored messages go to the first resource able to take bare-JID messages.
        if priority >= 0 {
            self.flush_offline(resource.to_owned(), ctx);
        }
    }

    /// RFC 6121 §4.5.2: the resource goes unavailable (explicitly or by disconnecting).
    /// `stanza` is the client's own unavailable presence, if it sent one.
    pub(crate) fn go_unavailable(&mut self, resource: &str, stanza: Option<Element>) {
        let Some(r) = self.resource_mut(resource) else {
            return;
        };
        let was_available = r.available;
        r.available = false;
        r.presence = None;
        let directed = std::mem::take(&mut r.directed);
        let full = r.full.clone();
        let unavailable = stanza.unwrap_or_else(|| {
            Element::new("presence", ns::CLIENT).with_attr("type", "unavailable")
        });
        let mut unavailable = unavailable;
        unavailable.set_attr("from", full.to_string());
        if was_available && !self.resources.iter().any(|o| o.available) {
            // XEP-0012: the account's last activity ends now.
            self.record_last_activity(&unavailable);
        }
        for item in self.roster.items.values() {
            if has_from(item.subscription) {
                let mut copy = unavailable.clone();
                copy.set_attr("to", item.jid.clone());
                self.route_out(copy, Wake::IfRunning);
            }
        }
        // §4.5.2: the user's available resources, and the sender while it is still here.
        for other in self
            .resources
            .iter()
            .filter(|o| o.available || o.name() == resource)
        {
            let mut copy = unavailable.clone();
            copy.set_attr("to", other.full.to_string());
            self.deliver(other, copy);
        }
        // §4.6.3: whoever got directed presence learns that it ended.
        for target in directed {
            let mut copy = unavailable.clone();
            copy.set_attr("to", target.to_string());
            self.route_out(copy, Wake::IfRunning);
        }
    }

    /// RFC 6121 §4.5.2 for a resource this actor never had: unavailable presence from `full`
    /// to the contacts subscribed to the user and to the user's available resources.
    pub(crate) fn announce_gone(&self, full: &jid::FullJid) {
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", full.to_string());
        for item in self.roster.items.values() {
            if has_from(item.subscription) {
                let mut copy = unavailable.clone();
                copy.set_attr("to", item.jid.clone());
                self.route_out(copy, Wake::IfRunning);
            }
        }
        for other in self.resources.iter().filter(|o| o.available) {
            let mut copy = unavailable.clone();
            copy.set_attr("to", other.full.to_string());
            self.deliver(other, copy);
        }
    }

    /// RFC 6121 §4.6.3: directed presence the session routed itself (to one of the server's
    /// own services): only remembered, so that the target is told when the resource goes.
    pub(crate) fn directed_routed(&mut self, resource: &str, stanza: &Element) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let available = stanza.attr("type").is_none();
        let max = self.users.config.max_directed_presence;
        if let Some(r) = self.resource_mut(resource) {
            r.directed.retain(|j| j != &to);
            if available && r.directed.len() < max {
                r.directed.push(to);
            }
        }
    }

    /// RFC 6121 §4.6: directed presence, remembered when no subscription covers the target.
    fn directed(&mut self, resource: &str, stanza: Element, to: Jid) {
        let covered = self
            .roster
            .items
            .get(to.to_bare().as_str())
            .is_some_and(|i| has_from(i.subscription));
        let available = stanza.attr("type").is_none();
        let max = self.users.config.max_directed_presence;
        let full = self.resource(resource).is_some_and(|r| {
            available
                && !covered
                && r.available
                && r.directed.len() >= max
                && !r.directed.contains(&to)
        });
        if full {
            // Every target is remembered to be told when the resource goes (§4.6.3); past
            // the quota the presence is not sent rather than forgotten.
            if parley_router::metrics::refuse("directed_presence", self.jid.as_str()) {
                warn!(user = %self.jid, "directed presence refused: too many targets");
            }
            return self.bounce(
                &stanza,
                StanzaError::with_text(
                    StanzaCondition::ResourceConstraint,
                    "too many directed presence targets",
                ),
            );
        }
        if let Some(r) = self.resource_mut(resource) {
            r.directed.retain(|j| j != &to);
            if available && !covered && r.available {
                r.directed.push(to);
            }
        }
        self.route_out(stanza, Wake::IfRunning);
    }

    /// RFC 6121 §4.3.2: a contact probes us; it gets the presence of each available resource
    /// if it is subscribed to us.
    pub(crate) fn answer_probe(&self, probe: &Element) {
        let Some(from) = probe.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let subscribed = self
            .roster
            .items
            .get(from.to_bare().as_str())
            .is_some_and(|i| has_from(i.subscription));
        if !subscribed {
            return;
        }
        for r in self.resources.iter().filter(|r| r.available) {
            if let Some(p) = &r.presence {
                let mut copy = p.clone();
                copy.set_attr("from", r.full.to_string());
                copy.set_attr("to", from.to_string());
                self.route_out(copy, Wake::IfRunning);
            }
        }
    }

    fn state_for(&self, contact: &str) -> State {
        let pending_in = self.roster.pending_in.iter().any(|(j, _)| j == contact);
        match self.roster.items.get(contact) {
            Some(item) => State {
                subscription: item.subscription,
                ask: item.ask,
                pending_in,
            },
            None => State {
                pending_in,
                ..State::default()
            },
        }
    }

    /// Sends the presence of every available resource (or unavailable from each) to `to`.
    fn send_presence_to(&self, to: &BareJid, available: bool) {
        for r in self.resources.iter().filter(|r| r.available) {
            let mut p = match (&r.presence, available) {
                (Some(p), true) => p.clone(),
                _ => Element::new("presence", ns::CLIENT).with_attr("type", "unavailable"),
            };
            p.set_attr("from", r.full.to_string());
            p.set_attr("to", to.to_string());
            self.route_out(p, Wake::IfRunning);
        }
    }

    /// RFC 6121 §3, outbound: the user sent a subscription stanza to a contact.
    fn client_subscription(&mut self, kind: Kind, stanza: Element, ctx: &mut Context<Self>) {
        let Some(contact) = stanza
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|j| j.to_bare())
        else {
            return self.bounce(
                &stanza,
                StanzaError::with_text(StanzaCondition::BadRequest, "a subscription needs a 'to'"),
            );
        };
        let key = contact.to_string();
        let before = self.state_for(&key);
        let out = subscription::outbound(before, kind);
        let creates = !self.roster.items.contains_key(&key)
            && (out.state.ask || out.state.subscription != Subscription::None);
        if creates && self.roster.items.len() >= self.users.config.max_roster_items {
            return self.bounce(
                &stanza,
                StanzaError::with_text(StanzaCondition::NotAllowed, "the roster is full"),
            );
        }
        self.apply_state(&key, before, out.state, creates, ctx);
        if !out.forward {
            return;
        }
        // §3.1.2: subscription stanzas leave with the user's bare JID.
        let mut routed = Element::new("presence", ns::CLIENT)
            .with_attr("type", kind.as_str())
            .with_attr("from", self.jid.to_string())
            .with_attr("to", key.clone());
        for child in stanza.children() {
            routed.push_child(child.clone());
        }
        if let Some(id) = stanza.attr("id") {
            routed.set_attr("id", id);
        }
        self.route_out(routed, Wake::Start);
        match kind {
            // §3.1.5: an approved contact gets our current presence.
            Kind::Subscribed => self.send_presence_to(&contact, true),
            // §3.2.2: a cancelled contact sees us go unavailable.
            Kind::Unsubscribed => self.send_presence_to(&contact, false),
            Kind::Subscribe | Kind::Unsubscribe => {}
        }
    }

    /// RFC 6121 §3, inbound: a contact sent us a subscription stanza.
    pub(crate) fn inbound_subscription(&mut self, stanza: Element, ctx: &mut Context<Self>) {
        let Some(kind) = stanza.attr("type").and_then(Kind::from_type) else {
            return;
        };
        let Some(contact) = stanza
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .map(|j| j.to_bare())
        else {
            return;
        };
        let key = contact.to_string();
        let before = self.state_for(&key);
        let out = subscription::inbound(before, kind);
        if kind == Kind::Subscribe && out.forward {
            if let Err(err) = self.may_keep_request(&stanza, &key) {
                return self.bounce(&stanza, err);
            }
        }
        // An inbound request alone does not create a roster item (§3.1.3).
        self.apply_state(&key, before, out.state, false, ctx);
        if let Some(reply) = out.auto_reply {
            let answer = Element::new("presence", ns::CLIENT)
                .with_attr("type", reply.as_str())
                .with_attr("from", self.jid.to_string())
                .with_attr("to", key.clone());
            self.route_out(answer, Wake::Start);
            self.send_presence_to(&contact, true);
        }
        if !out.forward {
            return;
        }
        let mut shown = stanza.clone();
        shown.set_attr("from", key.clone());
        if kind == Kind::Subscribe {
            // §3.1.3: kept until answered, and shown again at each login.
            let xml = shown.to_string();
            self.roster.pending_in.retain(|(j, _)| j != &key);
            self.roster.pending_in.push((key.clone(), xml.clone()));
            let storage = self.users.storage.clone();
            let (user, host, k) = (
                self.username().to_owned(),
                self.host().to_owned(),
                key.clone(),
            );
            ctx.wait(
                wrap_future::<_, Self>(async move {
                    storage.pending_in_put(&user, &host, &k, &xml).await
                })
                .map(|res, act, _| {
                    if let Err(e) = res {
                        warn!(user = %act.jid, error = %e, "storing a subscription request failed");
                    }
                }),
            );
        }
        for r in self.resources.iter().filter(|r| r.available) {
            let mut copy = shown.clone();
            copy.set_attr("to", r.full.to_string());
            self.deliver(r, copy);
        }
        if kind == Kind::Unsubscribe {
            // §3.3.3: the contact no longer sees us.
            self.send_presence_to(&contact, false);
        }
    }

    /// Whether a new inbound subscription request from `contact` fits the user's quotas:
    /// too large a stanza is `<not-acceptable/>` (the request itself is at fault; a bare
    /// subscribe always fits), too many unanswered requests `<resource-constraint/>` (the
    /// user's store is full; it frees as the user answers).
    fn may_keep_request(&self, stanza: &Element, contact: &str) -> Result<(), StanzaError> {
        let config = &self.users.config;
        if stanza.to_string().len() > config.max_subscription_request_bytes {
            if parley_router::metrics::refuse("subscription_request_bytes", contact) {
                warn!(user = %self.jid, contact, "subscription request refused: too large");
            }
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "the subscription request is too large",
            ));
        }
        let known = self.roster.pending_in.iter().any(|(j, _)| j == contact);
        if !known && self.roster.pending_in.len() >= config.max_pending_subscriptions {
            if parley_router::metrics::refuse("pending_subscriptions", self.jid.as_str()) {
                warn!(user = %self.jid, "subscription request refused: too many pending");
            }
            return Err(StanzaError::with_text(
                StanzaCondition::ResourceConstraint,
                "the recipient has too many unanswered subscription requests",
            ));
        }
        Ok(())
    }

    /// Writes a subscription state change: the roster item (pushed to interested
    /// resources) and the pending-in record.
    fn apply_state(
        &mut self,
        contact: &str,
        before: State,
        after: State,
        create: bool,
        ctx: &mut Context<Self>,
    ) {
        if before.pending_in && !after.pending_in {
            self.roster.pending_in.retain(|(j, _)| j != contact);
            let storage = self.users.storage.clone();
            let (user, host, k) = (
                self.username().to_owned(),
                self.host().to_owned(),
                contact.to_owned(),
            );
            ctx.wait(
                wrap_future::<_, Self>(async move {
                    storage.pending_in_remove(&user, &host, &k).await
                })
                .map(|res, act, _| {
                    if let Err(e) = res {
                        warn!(user = %act.jid, error = %e, "removing a subscription request failed");
                    }
                }),
            );
        }
        let item = match self.roster.items.get(contact) {
            Some(existing) => {
                if existing.subscription == after.subscription && existing.ask == after.ask {
                    return;
                }
                RosterItem {
                    subscription: after.subscription,
                    ask: after.ask,
                    ..existing.clone()
                }
            }
            None if create => RosterItem {
                jid: contact.to_owned(),
                name: None,
                subscription: after.subscription,
                ask: after.ask,
                groups: Vec::new(),
            },
            None => return,
        };
        self.put_item(item, ctx);
    }
}
