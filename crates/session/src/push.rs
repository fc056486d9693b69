//! Push notifications (XEP-0357): the account's `<enable/>` and `<disable/>` (§5, §6),
//! stored for the whole cluster (at most `[push] max_registrations` per account), and the
//! notification of a message that reaches this session while it hibernates (XEP-0198: the
//! client's connection is gone, typically a phone whose app was suspended). Messages for
//! accounts with no session at all are notified by the user actor when it stores them.

use actix::Context;
use parley_proto::push::{self, Request};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_storage::PushRegistration;
use parley_xml::Element;

use crate::private::{account_parts, Answer};
use crate::session::Session;

impl Session {
    /// An `<enable/>` or `<disable/>` to the user's own account (the caller checked).
    pub(crate) fn push_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Some(user) = self.user() else { return };
        if iq.attr("type") != Some("set") {
            return self.bounce_with(&iq, StanzaError::new(StanzaCondition::BadRequest), ctx);
        }
        let request = match iq.first_child().map(push::parse) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                let error = StanzaError::with_text(StanzaCondition::BadRequest, e.to_string());
                return self.bounce_with(&iq, error, ctx);
            }
            None => return,
        };
        let storage = self.env.storage.clone();
        let max = self.env.users.push_limits().max_registrations;
        let (username, host) = account_parts(&user);
        self.pause();
        let work = async move {
            match request {
                Request::Enable { jid, node, options } => {
                    let registration = PushRegistration { jid, node, options };
                    if !storage
                        .push_enable(&username, &host, &registration, max)
                        .await?
                    {
                        return Ok(Answer::Full("too many push registrations for this account"));
                    }
                }
                Request::Disable { jid, node } => {
                    storage
                        .push_disable(&username, &host, &jid, node.as_deref())
                        .await?;
                }
            }
            Ok(Answer::StoredThen(Vec::new()))
        };
        self.answer_from_storage(iq, work, ctx);
    }

    /// XEP-0357 §7: a message with a body queued while this session hibernates.
    pub(crate) fn push_if_hibernating(&self, stanza: &Element) {
        if !self.hibernating() || stanza.name() != "message" {
            return;
        }
        if !stanza.has_child("body", parley_proto::ns::CLIENT) {
            return;
        }
        if let Some(user) = self.user() {
            self.env.users.push_notify(&user, stanza.attr("from"));
        }
    }
}
