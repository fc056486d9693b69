//! XEP-0191 Blocking Command for one user: the blocklist iqs, the pushes to the user's
//! sessions, and the presence a change implies (§3.3, §3.4).
//!
//! Where a stanza is stopped depends on where it passes: what reaches or leaves this actor
//! (bare-JID traffic, presence broadcasts, probes, subscriptions, offline storage) is checked
//! here; what goes straight between two sessions is checked by the user's sessions, which
//! hold a copy of the list. Every session gets the list when it attaches (and holds back
//! what reaches it straight from other sessions until then) and every change as a push from
//! the user's bare JID — the only sender a client cannot be — in order with all
//! else it receives; the session passes the push on to its client only if the client asked
//! for the list (§3.3).

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::Jid;
use parley_proto::blocking::{payload, Command};
use parley_proto::ns;
use parley_proto::stanza_error::{error_reply, iq_result, StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_xml::Element;
use tracing::warn;

use crate::actor::{Resource, UserActor};
use crate::presence::has_from;

/// The id of the push that hands a session the whole list when it attaches: a `<blocklist/>`
/// in a set, which no client ever receives.
pub const SYNC_ID: &str = "parley-blocklist-sync";

impl UserActor {
    /// An iq of the blocking namespace from one of the user's resources.
    pub(crate) fn blocking_iq(&mut self, resource: &str, iq: Element, ctx: &mut Context<Self>) {
        if !matches!(iq.attr("type"), Some("get" | "set")) {
            return;
        }
        let command = match Command::parse(&iq) {
            Ok(c) => c,
            Err(err) => return self.answer(resource, error_reply(&iq, &err)),
        };
        let jids = match command {
            Command::Get => {
                let list = payload("blocklist", &self.blocklist.items());
                return self.answer(resource, Some(iq_result(&iq).with_child(list)));
            }
            Command::Block(jids) | Command::Unblock(jids) => jids,
        };
        let block = iq.has_child("block", ns::BLOCKING);
        if block {
            // `jids` holds each item once; the list is a set, so this is O(n log n).
            let new = jids.iter().filter(|j| !self.blocklist.contains(j)).count();
            if self.blocklist.len() + new > self.users.config.max_blocklist_items {
                // A quota of the server, not a fault of the request: resource-constraint
                // (RFC 6120 §8.3.3.18); unblocking some makes room.
                if parley_router::metrics::refuse("blocklist_items", self.jid.as_str()) {
                    warn!(user = %self.jid, "block refused: the blocklist is full");
                }
                let err = StanzaError::with_text(
                    StanzaCondition::ResourceConstraint,
                    "the blocklist is full",
                );
                return self.answer(resource, error_reply(&iq, &err));
            }
        }
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let write = {
            let jids = jids.clone();
            async move {
                if block {
                    storage.blocklist_add(&user, &host, &jids).await
                } else {
                    let which = (!jids.is_empty()).then_some(jids.as_slice());
                    storage.blocklist_remove(&user, &host, which).await
                }
            }
        };
        let resource = resource.to_owned();
        // Held like a roster write: what the user sends next sees the new list.
        ctx.wait(
            wrap_future::<_, Self>(write).map(move |res, act, _| match res {
                Ok(changed) => {
                    act.answer(&resource, Some(iq_result(&iq)));
                    if block {
                        act.blocked(&jids, &changed);
                    } else {
                        act.unblocked(&jids, &changed);
                    }
                }
                Err(e) => {
                    warn!(user = %act.jid, error = %e, "writing the blocklist failed");
                    let err = StanzaError::new(StanzaCondition::InternalServerError);
                    act.answer(&resource, error_reply(&iq, &err));
                }
            }),
        );
    }

    fn answer(&self, resource: &str, reply: Option<Element>) {
        if let (Some(r), Some(reply)) = (self.resource(resource), reply) {
            self.deliver(r, reply);
        }
    }

    /// §3.3: pushes the block, and contacts who saw the user's presence see it go.
    fn blocked(&mut self, jids: &[String], new: &[String]) {
        self.push_blocking(payload("block", jids));
        let newly = parley_proto::blocking::Blocklist::new(new.iter().cloned());
        // The unavailable presence must leave before the list stops everything to them.
        let mut gone = Vec::new();
        for item in self.roster.items.values() {
            if has_from(item.subscription) && newly.blocks_str(&item.jid) {
                gone.push(item.jid.clone());
            }
        }
        for r in self.resources.iter().filter(|r| r.available) {
            for target in gone
                .iter()
                .cloned()
                .chain(r.directed.iter().map(Jid::to_string))
            {
                if !newly.blocks_str(&target) {
                    continue;
                }
                let unavailable = Element::new("presence", ns::CLIENT)
                    .with_attr("type", "unavailable")
                    .with_attr("from", r.full.to_string())
                    .with_attr("to", target);
                self.users.router().send(unavailable, Wake::IfRunning);
            }
        }
        self.blocklist.add(new);
    }

    /// §3.4: pushes the unblock, and contacts allowed to see the user's presence get it
    /// again.
    fn unblocked(&mut self, jids: &[String], removed: &[String]) {
        self.push_blocking(payload("unblock", jids));
        let freed = parley_proto::blocking::Blocklist::new(removed.iter().cloned());
        if jids.is_empty() {
            self.blocklist.clear();
        } else {
            self.blocklist.remove(removed);
        }
        let contacts: Vec<String> = self
            .roster
            .items
            .values()
            .filter(|i| has_from(i.subscription) && freed.blocks_str(&i.jid))
            .map(|i| i.jid.clone())
            .collect();
        for contact in contacts {
            for r in self.resources.iter().filter(|r| r.available) {
                if let Some(p) = &r.presence {
                    let mut copy = p.clone();
                    copy.set_attr("from", r.full.to_string());
                    copy.set_attr("to", contact.as_str());
                    // Through the filter: another item may still block this contact.
                    self.route_out(copy, Wake::IfRunning);
                }
            }
        }
    }

    /// A change to every session of the user (each keeps a copy of the list).
    fn push_blocking(&mut self, change: Element) {
        let names: Vec<String> = self.resources.iter().map(|r| r.name().to_owned()).collect();
        for name in names {
            let id = self.fresh_id("block");
            if let Some(r) = self.resource(&name) {
                self.deliver(r, self.push(r, &id, change.clone()));
            }
        }
    }

    fn push(&self, r: &Resource, id: &str, payload: Element) -> Element {
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id)
            .with_attr("from", self.jid.to_string())
            .with_attr("to", r.full.to_string())
            .with_child(payload)
    }

    /// The whole list (maybe empty) for a session that just attached: until it comes, the
    /// session holds back what other sessions send it straight.
    pub(crate) fn sync_blocklist(&self, r: &Resource) {
        let list = payload("blocklist", &self.blocklist.items());
        self.deliver(r, self.push(r, SYNC_ID, list));
    }

    /// §3.5: whether a stanza reaching this actor comes from an address the user blocks.
    pub(crate) fn sent_by_blocked(&self, stanza: &Element) -> bool {
        stanza
            .attr("from")
            .is_some_and(|f| self.blocklist.blocks_str(f))
    }
}
