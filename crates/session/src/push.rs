//! Push notifications (XEP-0357): the account's `<enable/>` and `<disable/>` (§5, §6),
//! stored for the whole cluster (at most `[push] max_registrations` per account), and the
//! notification of messages this session holds for its client while it hibernates
//! (XEP-0198: the client's connection is gone, typically a phone whose app was suspended):
//! those unacknowledged when it starts to hibernate (written to a connection that was
//! already dead, as Prosody's mod_cloud_notify also counts them), and each one that
//! reaches it afterwards. Messages for accounts with no session at all are notified by the
//! user actor when it stores them.

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

impl Session {
    /// XEP-0357 §7 at the start of a hibernation: the messages with a body the client has
    /// not acknowledged.
    pub(crate) fn push_unacked(&self) {
        let Some(b) = self.bound() else { return };
        let crate::sm::Sm::On(s) = &b.sm else { return };
        let with_body = |q: &&crate::sm::Queued| {
            q.stanza.name() == "message" && q.stanza.has_child("body", parley_proto::ns::CLIENT)
        };
        let count = s.out.iter().filter(with_body).count() as u64;
        let last = s.out.iter().filter(with_body).last();
        if let Some(last) = last {
            let user = b.jid.to_bare();
            self.env
                .users
                .push_notify_n(&user, last.stanza.attr("from"), count);
        }
    }
}
