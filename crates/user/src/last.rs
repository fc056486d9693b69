//! Last activity (XEP-0012) of an account: when its last available resource went away
//! (kept in storage, with the status it left with, under the reserved key
//! `jabber:iq:last`), told to the account's contacts who may see its presence (§4).

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::Jid;
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_xml::{Element, Limits};

use crate::actor::UserActor;
use crate::presence::has_from;

impl UserActor {
    /// The account has no available resource left: when, and with what status, is kept.
    pub(crate) fn record_last_activity(&mut self, unavailable: &Element) {
        let now = parley_proto::clock::now_s();
        let status = unavailable
            .get_child("status", ns::CLIENT)
            .map(|s| s.text())
            .unwrap_or_default();
        // Answered from memory while this actor runs; written by `write_last_activity`.
        self.last_activity = Some((now, status));
        self.last_activity_unsaved = true;
    }

    /// Writes the last activity recorded by this message's handling, if any, before the
    /// next message (the actor may leave soon after its last resource did).
    pub(crate) fn write_last_activity(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.last_activity_unsaved) {
            return;
        }
        let Some((stamp, status)) = self.last_activity.clone() else {
            return;
        };
        let mut record = Element::new("query", ns::LAST).with_attr("stamp", stamp.to_string());
        if !status.is_empty() {
            record.push_text(status);
        }
        let xml = record.to_string();
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let write = async move {
            storage
                .private_set(&user, &host, ns::LAST, &xml, usize::MAX)
                .await
        };
        ctx.wait(wrap_future::<_, Self>(write).map(|written, _act, _ctx| {
            if let Err(e) = written {
                tracing::warn!(error = %e, "recording last activity failed");
            }
        }));
    }

    /// XEP-0012 §4: `<query xmlns='jabber:iq:last'/>` to the account's bare JID. Only a
    /// contact allowed to see the account's presence gets an answer (else `forbidden`):
    /// `seconds='0'` while a resource is available, otherwise the time since the last
    /// one left and its status (`item-not-found` if none ever did).
    pub(crate) fn last_activity(&self, iq: Element, ctx: &mut Context<Self>) {
        let asker = iq
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .map(|j| j.to_bare().to_string());
        let allowed = asker
            .as_ref()
            .and_then(|a| self.roster.items.get(a))
            .is_some_and(|item| has_from(item.subscription));
        if !allowed {
            return self.bounce(&iq, StanzaError::new(StanzaCondition::Forbidden));
        }
        if self.resources.iter().any(|r| r.available) {
            let answer = Element::new("query", ns::LAST).with_attr("seconds", "0");
            return self.route_out(iq_result(&iq).with_child(answer), Wake::IfRunning);
        }
        if let Some((stamp, status)) = &self.last_activity {
            let seconds = (parley_proto::clock::now_s() - stamp).max(0);
            let mut answer =
                Element::new("query", ns::LAST).with_attr("seconds", seconds.to_string());
            if !status.is_empty() {
                answer.push_text(status.as_str());
            }
            return self.route_out(iq_result(&iq).with_child(answer), Wake::IfRunning);
        }
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let read = async move { storage.private_get(&user, &host, ns::LAST).await };
        ctx.spawn(wrap_future::<_, Self>(read).map(move |stored, act, _ctx| {
            let record = match stored {
                Ok(Some(xml)) => Element::parse(xml.as_bytes(), &Limits::trusted_copies()).ok(),
                Ok(None) => None,
                Err(_) => {
                    return act.bounce(&iq, StanzaError::new(StanzaCondition::InternalServerError))
                }
            };
            let stamp = record
                .as_ref()
                .and_then(|r| r.attr("stamp"))
                .and_then(|s| s.parse::<i64>().ok());
            let Some(stamp) = stamp else {
                return act.bounce(&iq, StanzaError::new(StanzaCondition::ItemNotFound));
            };
            let seconds = (parley_proto::clock::now_s() - stamp).max(0);
            let mut answer =
                Element::new("query", ns::LAST).with_attr("seconds", seconds.to_string());
            let status = record.map(|r| r.text()).unwrap_or_default();
            if !status.is_empty() {
                answer.push_text(status);
            }
            act.route_out(iq_result(&iq).with_child(answer), Wake::IfRunning);
        }));
    }
}

/// XEP-0012 §4: a request for the account's last activity.
pub(crate) fn is_last_get(iq: &Element) -> bool {
    iq.attr("type") == Some("get") && iq.first_child().is_some_and(|c| c.is("query", ns::LAST))
}
