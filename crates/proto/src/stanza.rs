//! Small helpers for recognising the three stanza kinds (RFC 6120 §8).

use parley_xml::Element;

use crate::ns;

/// The three top-level stanza kinds (RFC 6120 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    /// Classifies an element; only the content namespaces of RFC 6120
    /// §4.8.3 (`jabber:client`, `jabber:server`) qualify as stanzas.
    pub fn of(el: &Element) -> Option<StanzaKind> {
        if el.ns() != ns::CLIENT && el.ns() != ns::SERVER {
            return None;
        }
        match el.name() {
            "message" => Some(StanzaKind::Message),
            "presence" => Some(StanzaKind::Presence),
            "iq" => Some(StanzaKind::Iq),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
            StanzaKind::Iq => "iq",
        }
    }
}

/// The stanza's `type`, with the defaults of RFC 6120 §8.2.3 / RFC 6121:
/// a message without `type` is `normal` (RFC 6121 §5.2.2) and a presence
/// without `type` is `available` (RFC 6121 §4.7.1). IQs have no default;
/// a missing IQ type yields `""`, which no valid type equals.
pub fn stanza_type(el: &Element) -> &str {
    match el.attr("type") {
        Some(t) => t,
        None => match StanzaKind::of(el) {
            Some(StanzaKind::Message) => "normal",
            Some(StanzaKind::Presence) => "available",
            _ => "",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML parses")
    }

    #[test]
    fn rfc6120_8_stanza_kinds_in_client_and_server_namespaces() {
        assert_eq!(
            StanzaKind::of(&parse("<message xmlns='jabber:client'/>")),
            Some(StanzaKind::Message)
        );
        assert_eq!(
            StanzaKind::of(&parse("<presence xmlns='jabber:server'/>")),
            Some(StanzaKind::Presence)
        );
        assert_eq!(
            StanzaKind::of(&parse("<iq xmlns='jabber:client' type='get' id='1'/>")),
            Some(StanzaKind::Iq)
        );
        assert_eq!(StanzaKind::of(&parse("<iq xmlns='urn:example'/>")), None);
        assert_eq!(
            StanzaKind::of(&parse("<body xmlns='jabber:client'/>")),
            None
        );
        assert_eq!(StanzaKind::Iq.as_str(), "iq");
    }

    #[test]
    fn rfc6121_5_2_2_and_4_7_1_default_types() {
        assert_eq!(
            stanza_type(&parse("<message xmlns='jabber:client'/>")),
            "normal"
        );
        assert_eq!(
            stanza_type(&parse("<message xmlns='jabber:client' type='chat'/>")),
            "chat"
        );
        assert_eq!(
            stanza_type(&parse("<presence xmlns='jabber:client'/>")),
            "available"
        );
        assert_eq!(
            stanza_type(&parse(
                "<presence xmlns='jabber:client' type='unavailable'/>"
            )),
            "unavailable"
        );
        assert_eq!(stanza_type(&parse("<iq xmlns='jabber:client'/>")), "");
        assert_eq!(
            stanza_type(&parse("<iq xmlns='jabber:client' type='set'/>")),
            "set"
        );
    }
}
