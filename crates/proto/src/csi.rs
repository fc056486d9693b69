//! Client State Indication (XEP-0352): which stanzas an inactive client must get at once,
//! and which may wait until it is active again or something urgent comes.
//!
//! XEP-0352 leaves the policy to the server (§5, "Business Rules"). Parley's, as Prosody's
//! `mod_csi_simple`: anything the user would notice or a peer waits for goes at once
//! (messages with a body, also inside a carbon or another wrapper; every iq; errors;
//! subscription requests and answers); presence broadcasts wait, only the latest per
//! sender kept; other messages (chat states, receipts, PEP events) wait in order.

use parley_xml::Element;

use crate::ns;

/// The namespace of `<active/>`, `<inactive/>` and the stream feature.
pub const NS: &str = "urn:xmpp:csi:0";

/// What an inactive client's session does with a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urgency {
    /// Deliver now, after everything held (order is kept).
    Now,
    /// Hold; a later presence from the same sender (`from`, as written) replaces it.
    Presence(String),
    /// Hold, in order.
    Later,
}

/// Whether `el` or any element inside it is a `<body/>` with text in a message namespace
/// (forwarded messages in carbons and XEP-0297 wrappers are in `jabber:client`).
fn has_body(el: &Element) -> bool {
    el.children().any(|c| {
        (c.name() == "body"
            && (c.ns() == ns::CLIENT || c.ns() == ns::SERVER)
            && !c.text().trim().is_empty())
            || has_body(c)
    })
}

/// XEP-0352 §5: how urgent a stanza for an inactive client is.
pub fn urgency(el: &Element) -> Urgency {
    let ty = el.attr("type").unwrap_or("");
    match el.name() {
        "iq" => Urgency::Now,
        "message" if ty == "error" || has_body(el) => Urgency::Now,
        "message" => Urgency::Later,
        "presence" => match ty {
            "" | "unavailable" => Urgency::Presence(el.attr("from").unwrap_or("").to_owned()),
            // Subscriptions ask for the user's attention; errors end an exchange.
            _ => Urgency::Now,
        },
        _ => Urgency::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &parley_xml::Limits::default()).expect("test XML")
    }

    #[test]
    fn xep0352_5_messages_with_a_body_iqs_and_subscriptions_are_urgent() {
        for xml in [
            "<message xmlns='jabber:client' from='a@x/r'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='error' from='a@x/r'/>",
            "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
            "<presence xmlns='jabber:client' type='subscribe' from='a@x'/>",
            // A carbon of a message with a body (XEP-0280 wraps it in XEP-0297).
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>hi</body></message></forwarded></received></message>",
        ] {
            assert_eq!(urgency(&el(xml)), Urgency::Now, "{xml}");
        }
    }

    #[test]
    fn xep0352_5_presence_broadcasts_wait_by_sender_and_chat_states_wait_in_order() {
        let p = el("<presence xmlns='jabber:client' from='a@x/r'><show>away</show></presence>");
        assert_eq!(urgency(&p), Urgency::Presence("a@x/r".into()));
        let gone = el("<presence xmlns='jabber:client' type='unavailable' from='a@x/r'/>");
        assert_eq!(urgency(&gone), Urgency::Presence("a@x/r".into()));
        let typing = el("<message xmlns='jabber:client' from='a@x/r'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
        assert_eq!(urgency(&typing), Urgency::Later);
        let empty_body = el("<message xmlns='jabber:client' from='a@x/r'><body> </body></message>");
        assert_eq!(urgency(&empty_body), Urgency::Later);
    }
}
