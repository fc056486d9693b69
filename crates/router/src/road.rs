//! The one road every stanza takes, like Prosody's `stanza_router`: where it goes, and what
//! its sender hears when it cannot get there.
//!
//! A stanza's `to` leads to exactly one of:
//! * a session that owns the full JID, on this node (the table) or another (the
//!   [`Directory`](crate::Directory), which hands back a remote [`SessionHandle`]);
//! * the addressee's user actor ([`UserSink`], installed by the user registry), for a bare
//!   JID or a full JID no session owns: its RFC 6121 §8.5 table decides from there;
//! * the server's own address, where what nobody answered before is refused or dropped;
//! * a domain this server does not serve ([`Foreign`], where s2s and components plug in;
//!   without one, `remote-server-not-found`, RFC 6120 §10.4.3).
//!
//! This is also the only place that decides what a failed delivery means
//! ([`DeliverError`]): a session that is not reading gets its sender `resource-constraint`;
//! a session that is gone hands the stanza to its user's actor (RFC 6121 §8.5.3.2). Every
//! refusal answers the sender through [`error_reply`], which never answers an error.
//!
//! Refusals of a client's stanza come back to its session ([`Routed::Bounced`]) instead of
//! going through its mailbox, so that the client sees them in order with the session's
//! other direct replies.

#[path = "fanout.rs"]
mod fanout;

use std::sync::{Arc, Weak};

use jid::{BareJid, FullJid, Jid};
use parley_proto::stanza::stanza_type;
use parley_proto::stanza_error::{error_reply, StanzaCondition, StanzaError};
use parley_xml::Element;

use crate::handle::{DeliverError, SessionHandle, SessionId, Undelivered};
use crate::table::{Local, Router};

/// Whether an idle user actor is started for a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Start it: the stanza matters even to a user with no session (messages, iqs,
    /// subscriptions, which may be stored or answered).
    Start,
    /// Only if it runs: presence broadcasts and errors, which a user with no actor has
    /// nobody to show to.
    IfRunning,
}

/// Who hands a stanza to the router; it decides where a refusal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's stanza from local session `id`, its `from` already stamped: anything for
    /// that session itself comes back in [`Routed`], to be written in order with the
    /// session's other replies.
    Session(SessionId),
    /// The server (a user actor, a node link, a session answering for its client): a
    /// refusal is routed to the sender along this same road.
    Server(Wake),
}

/// Where a stanza went.
#[derive(Debug)]
#[must_use = "a stanza for the origin session must be written to its client"]
pub enum Routed {
    /// Handed to the session that owns the full JID, on this node or another.
    Session,
    /// Handed to the addressee's user actor (RFC 6121 §8.5 decides from there).
    User,
    /// Handed to the hook for domains this server does not serve.
    Foreign,
    /// Handed to a service the server runs itself ([`Service`]).
    Service,
    /// Addressed to the origin session itself: it writes the stanza to its client now.
    Loopback(Element),
    /// Refused: the origin session writes this error to its client now.
    Bounced(Element),
    /// Refused, and the error went on to the sender (a server origin).
    Refused,
    /// Ends here without an answer: an error that could not be delivered, or something
    /// addressed to the server that it ignores.
    Dropped,
}

/// The full JID under which a component's connection is bound in the routing table and
/// claimed in the cluster registry: its domain, with a resource no client can bind there
/// (a component's domain is never one of the served hosts).
pub fn component_jid(domain: &str) -> Option<FullJid> {
    FullJid::new(&format!("{domain}/{COMPONENT_RESOURCE}")).ok()
}

/// The resource of [`component_jid`].
pub const COMPONENT_RESOURCE: &str = "component";

/// What the sender of a stanza for a component hears while none is connected (as Prosody
/// answers for a component that is configured but not connected).
fn component_absent(stanza: Element) -> Box<Refused> {
    Refused::new(
        stanza,
        StanzaError::with_text(
            StanzaCondition::ServiceUnavailable,
            "the component is not connected",
        ),
    )
}

/// What the sender of a stanza hears when the component's connection did not take it.
fn component_refusal(undelivered: Undelivered) -> Box<Refused> {
    let condition = match undelivered.error {
        DeliverError::Overloaded => StanzaCondition::ResourceConstraint,
        DeliverError::Gone => StanzaCondition::ServiceUnavailable,
    };
    Refused::new(undelivered.stanza, StanzaError::new(condition))
}

/// A stanza that goes no further, and the error its sender gets (none if it is itself an
/// error).
#[derive(Debug)]
pub struct Refused {
    /// The stanza, unchanged.
    pub stanza: Element,
    /// The error for its sender.
    pub error: StanzaError,
}

impl Refused {
    /// A refusal of `stanza` with `error`.
    pub fn new(stanza: Element, error: StanzaError) -> Box<Refused> {
        Box::new(Refused { stanza, error })
    }
}

/// The user actors, installed by the user registry (which depends on the router, not the
/// reverse). A stanza comes here for a bare JID, or for a full JID no session owns.
pub trait UserSink: Send + Sync + 'static {
    /// Hands `stanza` to `user`'s actor, wherever it runs. Refused at once when the user
    /// layer has no room for it, or already knows the answer (an absent account).
    fn to_user(&self, user: &BareJid, stanza: Element, wake: Wake) -> Result<(), Box<Refused>>;
}

/// Domains this server does not serve: where server-to-server links and components will
/// plug in.
pub trait Foreign: Send + Sync + 'static {
    /// Takes a stanza for `to`. Refused at once when it cannot be sent.
    fn send(&self, to: &Jid, stanza: Element) -> Result<(), Box<Refused>>;
}

/// A service the server runs itself on a domain of its own (XEP-0363 file upload): it
/// takes every stanza addressed to that domain and answers through the router. Services
/// run on every node, so a stanza never leaves the node it arrived on to reach one.
pub trait Service: Send + Sync + 'static {
    /// Takes a stanza addressed to the service's domain. It must not block: work that
    /// waits (storage) goes to a task, which answers with [`Router::send`].
    fn accept(&self, stanza: Element);
}

impl std::fmt::Debug for dyn Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service")
    }
}

impl std::fmt::Debug for dyn UserSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSink")
    }
}

impl std::fmt::Debug for dyn Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Foreign")
    }
}

/// Where a `to` points, as the router reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A full JID with a localpart on a domain we serve.
    Full(FullJid),
    /// A bare JID with a localpart on a domain we serve.
    Bare(BareJid),
    /// One of our domains itself (with or without a resource).
    Server(Jid),
    /// A domain we do not serve.
    Foreign(Jid),
}

impl Router {
    /// Installs the user actors' entrance (once, by the user registry). Held weakly: the
    /// registry holds the router.
    pub fn set_user_sink(&self, sink: Weak<dyn UserSink>) {
        // Set once at start-up; a second registry on one router would be a wiring bug
        // that the first one's stanzas must not suffer from.
        if self.user_sink.set(sink).is_err() {
            tracing::warn!("a second user registry was offered to the router and ignored");
        }
    }

    /// Installs the hook for domains this server does not serve (once, at start-up).
    pub fn set_foreign(&self, hook: Arc<dyn Foreign>) {
        if self.foreign.set(hook).is_err() {
            tracing::warn!("a second foreign-domain hook was offered to the router and ignored");
        }
    }

    /// Reads a `to` address.
    pub fn dest(&self, to: &str) -> Result<Dest, jid::Error> {
        let jid = Jid::new(to)?;
        Ok(if !self.serves(jid.domain().as_str()) {
            Dest::Foreign(jid)
        } else if jid.node().is_none() {
            Dest::Server(jid)
        } else {
            match jid.try_into_full() {
                Ok(full) => Dest::Full(full),
                Err(bare) => Dest::Bare(bare),
            }
        })
    }

    /// Routes `stanza` by its `to`.
    pub fn route(&self, stanza: Element, origin: Origin) -> Routed {
        let (id, wake) = split(origin);
        match self.by_to(stanza, id, wake) {
            Ok(routed) => routed,
            Err(refused) => self.refused(*refused, origin),
        }
    }

    /// Routes `stanza` to `dest` (its `to`, already read by the caller).
    pub fn route_to(&self, dest: Dest, stanza: Element, origin: Origin) -> Routed {
        let (id, wake) = split(origin);
        match self.road(dest, stanza, id, wake) {
            Ok(routed) => routed,
            Err(refused) => self.refused(*refused, origin),
        }
    }

    /// Sends a stanza the server generated (presence broadcasts, pushes, answers): routed
    /// by its `to`, a refusal answered to its sender.
    pub fn send(&self, stanza: Element, wake: Wake) {
        if let Err(refused) = self.by_to(stanza, None, wake) {
            self.answer(*refused);
        }
    }

    /// Answers `stanza`'s sender with `error`, routed like any stanza. Never for errors.
    pub fn bounce(&self, stanza: &Element, error: StanzaError) {
        if let Some(reply) = error_reply(stanza, &error) {
            self.send(reply, Wake::IfRunning);
        }
    }

    /// Delivers to a session the caller holds the handle of (a user actor to its
    /// resources); a refusal is answered to the sender.
    pub fn deliver(&self, to: &SessionHandle, stanza: Element) {
        let result = match to.deliver(stanza) {
            Ok(()) => Ok(Routed::Session),
            Err(undelivered) => self.undelivered(*undelivered, None, Wake::Start),
        };
        if let Err(refused) = result {
            self.answer(*refused);
        }
    }

    /// A stanza for local session `id`, bound to `jid`, sent by a node that saw it there in
    /// the registry. If that session no longer owns `jid`, RFC 6121 §8.5.3.2 applies (for
    /// a component's connection: `service-unavailable`, there is no user to fall back to).
    pub fn to_local_session(&self, jid: &FullJid, id: SessionId, stanza: Element) {
        let component = self.is_component(jid.domain().as_str());
        let result = match self.deliver_local(jid, stanza, None, Some(id)) {
            Local::Delivered => Ok(Routed::Session),
            Local::Loopback(stanza) | Local::Absent(stanza) if component => {
                Err(component_absent(stanza))
            }
            Local::Failed(undelivered) if component => Err(component_refusal(*undelivered)),
            // The session resumed on another node after the sender looked it up here.
            Local::Absent(stanza) => match self.moved_to(jid, Some(id)) {
                Some(successor) => self.via(&successor, jid, stanza, Wake::Start),
                None => self.to_user(&jid.to_bare(), stanza, Wake::Start),
            },
            Local::Loopback(stanza) => self.to_user(&jid.to_bare(), stanza, Wake::Start),
            Local::Failed(undelivered) => self.undelivered(*undelivered, Some(jid), Wake::Start),
        };
        if let Err(refused) = result {
            self.answer(*refused);
        }
    }

    /// A stanza a session accepted but cannot show its client (it is closing): the rules
    /// for a resource that is gone apply (RFC 6121 §8.5.3.2). Nothing is lost silently.
    pub fn gone(&self, stanza: Element) {
        if let Err(refused) = self.undelivered(*Undelivered::gone(stanza), None, Wake::Start) {
            self.answer(*refused);
        }
    }

    // ----- the road ------------------------------------------------------------------------

    fn by_to(
        &self,
        stanza: Element,
        origin: Option<SessionId>,
        wake: Wake,
    ) -> Result<Routed, Box<Refused>> {
        match stanza.attr("to").map(|to| self.dest(to)) {
            Some(Ok(dest)) => self.road(dest, stanza, origin, wake),
            // RFC 6120 §8.3.3.8.
            Some(Err(_)) => Err(Refused::new(
                stanza,
                StanzaError::new(StanzaCondition::JidMalformed),
            )),
            // No `to` on a stanza the server routes: nobody but the server itself.
            None => server_rule(stanza),
        }
    }

    fn road(
        &self,
        dest: Dest,
        stanza: Element,
        origin: Option<SessionId>,
        wake: Wake,
    ) -> Result<Routed, Box<Refused>> {
        match dest {
            Dest::Full(full) => self.to_full(&full, stanza, origin, wake),
            // RFC 6121 §8.5.2: the user's actor decides.
            Dest::Bare(bare) => self.to_user(&bare, stanza, wake),
            Dest::Server(_) => server_rule(stanza),
            Dest::Foreign(to) if self.service(to.domain().as_str()).is_some() => {
                self.service(to.domain().as_str())
                    .expect("checked by the guard")
                    .accept(stanza);
                Ok(Routed::Service)
            }
            Dest::Foreign(to) if self.is_component(to.domain().as_str()) => {
                self.to_component(to.domain().as_str(), stanza)
            }
            Dest::Foreign(to) => match self.foreign.get() {
                Some(hook) => hook.send(&to, stanza).map(|()| Routed::Foreign),
                // RFC 6120 §10.4.3: no server-to-server connections yet.
                None => Err(Refused::new(
                    stanza,
                    StanzaError::new(StanzaCondition::RemoteServerNotFound),
                )),
            },
        }
    }

    /// XEP-0114: the component connection that serves `domain`, on this node or another;
    /// while none is connected, `service-unavailable` (as Prosody answers for a component
    /// that is configured but not connected).
    fn to_component(&self, domain: &str, stanza: Element) -> Result<Routed, Box<Refused>> {
        let handle = component_jid(domain).and_then(|jid| self.lookup(&jid));
        let Some(handle) = handle else {
            return Err(component_absent(stanza));
        };
        handle
            .deliver(stanza)
            .map(|()| Routed::Session)
            .map_err(|undelivered| component_refusal(*undelivered))
    }

    /// RFC 6121 §8.5.3: the session that owns `full` if there is one (here, then on another
    /// node), else the user's actor (§8.5.3.2). On this node the hot path is one table
    /// lookup and one delivery, the handle used in place.
    fn to_full(
        &self,
        full: &FullJid,
        stanza: Element,
        origin: Option<SessionId>,
        wake: Wake,
    ) -> Result<Routed, Box<Refused>> {
        let stanza = match self.deliver_local(full, stanza, origin, None) {
            Local::Delivered => return Ok(Routed::Session),
            Local::Loopback(stanza) => return Ok(Routed::Loopback(stanza)),
            Local::Failed(undelivered) => return self.undelivered(*undelivered, Some(full), wake),
            Local::Absent(stanza) => stanza,
        };
        // Resumed on another node, this node's registry cache maybe not yet told.
        let elsewhere = self
            .moved_to(full, None)
            .or_else(|| self.directory().and_then(|d| d.lookup(full)));
        match elsewhere {
            Some(handle) => self.via(&handle, full, stanza, wake),
            None => self.to_user(&full.to_bare(), stanza, wake),
        }
    }

    /// Delivers to `full`'s session through `handle` (on another node).
    fn via(
        &self,
        handle: &SessionHandle,
        full: &FullJid,
        stanza: Element,
        wake: Wake,
    ) -> Result<Routed, Box<Refused>> {
        match handle.deliver(stanza) {
            Ok(()) => Ok(Routed::Session),
            Err(undelivered) => self.undelivered(*undelivered, Some(full), wake),
        }
    }

    /// What a failed delivery means: the one place that decides it. `to` is the full JID
    /// the stanza was delivered to, when the caller knows it.
    fn undelivered(
        &self,
        undelivered: Undelivered,
        to: Option<&FullJid>,
        wake: Wake,
    ) -> Result<Routed, Box<Refused>> {
        let stanza = undelivered.stanza;
        match undelivered.error {
            DeliverError::Overloaded => Err(Refused::new(
                stanza,
                StanzaError::with_text(
                    StanzaCondition::ResourceConstraint,
                    "the recipient is not reading its stream",
                ),
            )),
            // RFC 6121 §8.5.3.2: the resource is gone; its user's rules apply.
            DeliverError::Gone => {
                let user = match to {
                    Some(full) => Some(full.to_bare()),
                    None => stanza
                        .attr("to")
                        .and_then(|t| Jid::new(t).ok())
                        .filter(|j| j.node().is_some() && self.serves(j.domain().as_str()))
                        .map(|j| j.to_bare()),
                };
                match user {
                    Some(user) => self.to_user(&user, stanza, wake),
                    None => Err(Refused::new(
                        stanza,
                        StanzaError::new(StanzaCondition::ServiceUnavailable),
                    )),
                }
            }
        }
    }

    fn to_user(&self, user: &BareJid, stanza: Element, wake: Wake) -> Result<Routed, Box<Refused>> {
        match self.user_sink.get().and_then(Weak::upgrade) {
            Some(sink) => sink.to_user(user, stanza, wake).map(|()| Routed::User),
            // No user layer (shutting down, or a router on its own): nobody can take it.
            None => Err(Refused::new(
                stanza,
                StanzaError::new(StanzaCondition::ServiceUnavailable),
            )),
        }
    }

    fn refused(&self, refused: Refused, origin: Origin) -> Routed {
        match origin {
            // The sender is the origin session (it stamped `from`): it writes the error.
            Origin::Session(_) => match error_reply(&refused.stanza, &refused.error) {
                Some(reply) => Routed::Bounced(reply),
                None => Routed::Dropped,
            },
            Origin::Server(_) => match self.answer(refused) {
                true => Routed::Refused,
                false => Routed::Dropped,
            },
        }
    }

    /// Routes the error for a refusal to the stanza's sender; false for an error stanza,
    /// which is never answered (so a refused answer ends here).
    fn answer(&self, refused: Refused) -> bool {
        match error_reply(&refused.stanza, &refused.error) {
            Some(reply) => {
                self.send(reply, Wake::IfRunning);
                true
            }
            None => false,
        }
    }
}

fn split(origin: Origin) -> (Option<SessionId>, Wake) {
    match origin {
        Origin::Session(id) => (Some(id), Wake::Start),
        Origin::Server(wake) => (None, wake),
    }
}

/// What reaches the server's own address unanswered (the session answers the iqs it
/// serves before routing): requests and messages get `service-unavailable` (RFC 6120
/// §8.3.3.19), the rest is dropped.
fn server_rule(stanza: Element) -> Result<Routed, Box<Refused>> {
    let refuse = match stanza.name() {
        "message" => true,
        "iq" => matches!(stanza_type(&stanza), "get" | "set"),
        _ => false,
    };
    if refuse {
        Err(Refused::new(
            stanza,
            StanzaError::new(StanzaCondition::ServiceUnavailable),
        ))
    } else {
        Ok(Routed::Dropped)
    }
}

#[cfg(test)]
#[path = "road_tests.rs"]
mod tests;
