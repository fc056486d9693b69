//! XEP-0280 Message Carbons: which messages are copied, and the copies.

use std::sync::atomic::Ordering;

use parley_proto::ns;
use parley_proto::stanza::stanza_type;
use parley_proto::stanza_error::iq_result;
use parley_xml::Element;

use crate::actor::{Resource, UserActor};

/// Which way the copied message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The user's resource sent it (`<sent/>`).
    Sent,
    /// One of the user's resources received it (`<received/>`).
    Received,
}

/// XEP-0280 §6: chat messages, and normal messages with a body, are copied; not messages
/// marked private (§7) or no-copy (XEP-0334), and never a carbon itself.
pub fn eligible_for_carbons(message: &Element) -> bool {
    if message.name() != "message" {
        return false;
    }
    let eligible_type = match stanza_type(message) {
        "chat" => true,
        "normal" => message.has_child("body", ns::CLIENT),
        _ => false,
    };
    eligible_type
        && !message.has_child("private", ns::CARBONS)
        && !message.has_child("no-copy", ns::HINTS)
        && !message.has_child("sent", ns::CARBONS)
        && !message.has_child("received", ns::CARBONS)
}

impl UserActor {
    /// `<enable/>` / `<disable/>` (XEP-0280 §4, §5).
    pub(crate) fn carbons_iq(&mut self, resource: &str, iq: &Element) {
        let Some(payload) = iq.first_child() else {
            return;
        };
        let enable = match (iq.attr("type"), payload.name()) {
            (Some("set"), "enable") => true,
            (Some("set"), "disable") => false,
            (Some("get" | "set"), _) => {
                return self.bounce(
                    iq,
                    parley_proto::stanza_error::StanzaError::new(
                        parley_proto::stanza_error::StanzaCondition::BadRequest,
                    ),
                )
            }
            _ => return,
        };
        let counter = self.carbons_count.clone();
        if let Some(r) = self.resource_mut(resource) {
            if r.carbons != enable {
                r.carbons = enable;
                if enable {
                    counter.fetch_add(1, Ordering::AcqRel);
                } else {
                    counter.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        if let Some(r) = self.resource(resource) {
            self.deliver(r, iq_result(iq));
        }
    }

    /// Sends a wrapped copy of `message` to each carbons-enabled resource picked by `to`.
    pub(crate) fn carbon_copies(
        &self,
        message: &Element,
        direction: Direction,
        to: impl Fn(&Resource) -> bool,
    ) {
        if !eligible_for_carbons(message) {
            return;
        }
        let wrapper = match direction {
            Direction::Sent => "sent",
            Direction::Received => "received",
        };
        for r in self
            .resources
            .iter()
            .filter(|r| r.carbons && r.reachable() && to(r))
        {
            let copy = Element::new("message", ns::CLIENT)
                .with_attr("from", self.jid.to_string())
                .with_attr("to", r.full.to_string())
                .with_attr("type", stanza_type(message))
                .with_child(Element::new(wrapper, ns::CARBONS).with_child(
                    Element::new("forwarded", ns::FORWARD).with_child(message.clone()),
                ));
            self.deliver(r, copy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn xep0280_6_chat_and_normal_with_body_are_eligible() {
        assert!(eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='chat'/>"
        )));
        assert!(eligible_for_carbons(&el(
            "<message xmlns='jabber:client'><body>hi</body></message>"
        )));
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client'/>"
        )));
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='groupchat'><body>x</body></message>"
        )));
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='headline'><body>x</body></message>"
        )));
    }

    #[test]
    fn xep0280_7_private_and_no_copy_are_excluded() {
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>"
        )));
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>"
        )));
    }

    #[test]
    fn xep0280_carbons_are_not_copied_again() {
        assert!(!eligible_for_carbons(&el(
            "<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>"
        )));
    }
}
