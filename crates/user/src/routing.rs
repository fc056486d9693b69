//! RFC 6121 §8.5: how a stanza addressed to a user's bare JID, or to a full JID that no
//! session owns, is handled. Written as a table, like Prosody's `doc/stanza_routing.txt`: the
//! first row that matches decides, and every row names its rule.
//!
//! Stanzas to a full JID that a session owns never come here: the router delivers them
//! directly (§8.5.3.1). This is the only copy of the table: the router and the sessions
//! hand everything else to the user actor, which decides with it.

use parley_proto::stanza::stanza_type;
use parley_proto::stanza_error::StanzaCondition;
use parley_xml::Element;

/// Where the stanza was addressed, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// The localpart has no account (§8.5.1).
    NoAccount,
    /// The bare JID of an existing account (§8.5.2).
    Bare,
    /// A full JID of an existing account whose resource is not bound (§8.5.3.2).
    FullMissing,
}

/// The stanza's kind and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `<message type='normal'/>` (or no type).
    Normal,
    /// `<message type='chat'/>`.
    Chat,
    /// `<message type='groupchat'/>`.
    Groupchat,
    /// `<message type='headline'/>`.
    Headline,
    /// `<message type='error'/>`.
    MessageError,
    /// Presence with no type or `unavailable`.
    Presence,
    /// `subscribe`, `subscribed`, `unsubscribe`, `unsubscribed`.
    Subscription,
    /// `<presence type='probe'/>`.
    Probe,
    /// `<presence type='error'/>`.
    PresenceError,
    /// An iq `get` or `set`.
    IqRequest,
    /// An iq `result` or `error`.
    IqResponse,
}

impl Class {
    /// Classifies a stanza; None for anything that is not a valid stanza kind and type.
    pub fn of(stanza: &Element) -> Option<Class> {
        let ty = stanza_type(stanza);
        Some(match (stanza.name(), ty) {
            ("message", "normal") => Class::Normal,
            ("message", "chat") => Class::Chat,
            ("message", "groupchat") => Class::Groupchat,
            ("message", "headline") => Class::Headline,
            ("message", "error") => Class::MessageError,
            ("presence", "available" | "unavailable") => Class::Presence,
            ("presence", "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
                Class::Subscription
            }
            ("presence", "probe") => Class::Probe,
            ("presence", "error") => Class::PresenceError,
            ("iq", "get" | "set") => Class::IqRequest,
            ("iq", "result" | "error") => Class::IqResponse,
            _ => return None,
        })
    }
}

/// Whether the user has an available resource (sent presence, not gone unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The row applies either way.
    Any,
    /// At least one available resource.
    Some,
    /// No available resource.
    None,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deliver to the available resources that share the highest non-negative priority.
    HighestPriority,
    /// Deliver to every available resource of non-negative priority.
    AllNonNegative,
    /// Deliver to every available resource.
    AllAvailable,
    /// Store for later (XEP-0160) if it has a body; otherwise drop.
    Offline,
    /// Answer the sender with this error.
    Bounce(StanzaCondition),
    /// Ignore silently.
    Drop,
    /// Run the subscription state machine (RFC 6121 §3).
    Subscription,
    /// Answer a presence probe (RFC 6121 §4.3.2).
    Probe,
    /// The server answers on the account's behalf (RFC 6121 §8.5.2.1.3).
    AccountIq,
}

/// One row of the routing table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// How the stanza was addressed.
    pub addressed: Addressed,
    /// Its class.
    pub class: Class,
    /// When the rule applies.
    pub availability: Availability,
    /// What to do.
    pub action: Action,
    /// The RFC 6121 section that says so.
    pub section: &'static str,
}

const fn row(
    addressed: Addressed,
    class: Class,
    availability: Availability,
    action: Action,
    section: &'static str,
) -> Rule {
    Rule {
        addressed,
        class,
        availability,
        action,
        section,
    }
}

use Action as A;
use Addressed as To;
use Availability as Av;
use Class as C;

/// The routing table. The first matching row wins.
pub const TABLE: &[Rule] = &[
    // §8.5.1: no such account.
    row(To::NoAccount, C::MessageError, Av::Any, A::Drop, "8.5.1"),
    row(
        To::NoAccount,
        C::Normal,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.1",
    ),
    row(
        To::NoAccount,
        C::Chat,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.1",
    ),
    row(
        To::NoAccount,
        C::Groupchat,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.1",
    ),
    row(To::NoAccount, C::Headline, Av::Any, A::Drop, "8.5.1"),
    row(To::NoAccount, C::Presence, Av::Any, A::Drop, "8.5.1"),
    row(To::NoAccount, C::Subscription, Av::Any, A::Drop, "8.5.1"),
    row(To::NoAccount, C::Probe, Av::Any, A::Drop, "8.5.1"),
    row(To::NoAccount, C::PresenceError, Av::Any, A::Drop, "8.5.1"),
    row(
        To::NoAccount,
        C::IqRequest,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.1",
    ),
    row(To::NoAccount, C::IqResponse, Av::Any, A::Drop, "8.5.1"),
    // §8.5.2.1.1: messages to the bare JID, with an available resource.
    row(
        To::Bare,
        C::Normal,
        Av::Some,
        A::HighestPriority,
        "8.5.2.1.1",
    ),
    row(To::Bare, C::Chat, Av::Some, A::HighestPriority, "8.5.2.1.1"),
    row(
        To::Bare,
        C::Groupchat,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.2.1.1",
    ),
    row(
        To::Bare,
        C::Headline,
        Av::Some,
        A::AllNonNegative,
        "8.5.2.1.1",
    ),
    row(To::Bare, C::MessageError, Av::Any, A::Drop, "8.5.2.1.1"),
    // §8.5.2.2.1: messages to the bare JID, no available resource.
    row(To::Bare, C::Normal, Av::None, A::Offline, "8.5.2.2.1"),
    row(To::Bare, C::Chat, Av::None, A::Offline, "8.5.2.2.1"),
    row(To::Bare, C::Headline, Av::None, A::Drop, "8.5.2.2.1"),
    // §8.5.2.1.2 / §8.5.2.2.2: presence to the bare JID.
    row(To::Bare, C::Presence, Av::Any, A::AllAvailable, "8.5.2.1.2"),
    row(
        To::Bare,
        C::Subscription,
        Av::Any,
        A::Subscription,
        "8.5.2.1.2",
    ),
    row(To::Bare, C::Probe, Av::Any, A::Probe, "8.5.2.1.2"),
    row(To::Bare, C::PresenceError, Av::Any, A::Drop, "8.5.2.1.2"),
    // §8.5.2.1.3 / §8.5.2.2.3: iq to the bare JID is the server's, on the account's behalf.
    row(To::Bare, C::IqRequest, Av::Any, A::AccountIq, "8.5.2.1.3"),
    row(To::Bare, C::IqResponse, Av::Any, A::Drop, "8.5.2.1.3"),
    // §8.5.3.2.1: messages to a full JID with no such resource: as if to the bare JID.
    row(
        To::FullMissing,
        C::Normal,
        Av::Some,
        A::HighestPriority,
        "8.5.3.2.1",
    ),
    row(
        To::FullMissing,
        C::Chat,
        Av::Some,
        A::HighestPriority,
        "8.5.3.2.1",
    ),
    row(
        To::FullMissing,
        C::Normal,
        Av::None,
        A::Offline,
        "8.5.3.2.1",
    ),
    row(To::FullMissing, C::Chat, Av::None, A::Offline, "8.5.3.2.1"),
    row(
        To::FullMissing,
        C::Headline,
        Av::Some,
        A::AllNonNegative,
        "8.5.3.2.1",
    ),
    row(To::FullMissing, C::Headline, Av::None, A::Drop, "8.5.3.2.1"),
    row(
        To::FullMissing,
        C::Groupchat,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.3.2.1",
    ),
    row(
        To::FullMissing,
        C::MessageError,
        Av::Any,
        A::Drop,
        "8.5.3.2.1",
    ),
    // §8.5.3.2.2: presence to a full JID with no such resource.
    row(To::FullMissing, C::Presence, Av::Any, A::Drop, "8.5.3.2.2"),
    row(
        To::FullMissing,
        C::Subscription,
        Av::Any,
        A::Subscription,
        "8.5.3.2.2",
    ),
    row(To::FullMissing, C::Probe, Av::Any, A::Probe, "8.5.3.2.2"),
    row(
        To::FullMissing,
        C::PresenceError,
        Av::Any,
        A::Drop,
        "8.5.3.2.2",
    ),
    // §8.5.3.2.3: iq to a full JID with no such resource.
    row(
        To::FullMissing,
        C::IqRequest,
        Av::Any,
        A::Bounce(StanzaCondition::ServiceUnavailable),
        "8.5.3.2.3",
    ),
    row(
        To::FullMissing,
        C::IqResponse,
        Av::Any,
        A::Drop,
        "8.5.3.2.3",
    ),
];

/// The rule for a stanza. Every (addressed, class) pair has a row for either availability.
pub fn decide(addressed: Addressed, class: Class, available: bool) -> &'static Rule {
    TABLE
        .iter()
        .find(|r| {
            r.addressed == addressed
                && r.class == class
                && match r.availability {
                    Av::Any => true,
                    Av::Some => available,
                    Av::None => !available,
                }
        })
        .expect("the routing table covers every addressed/class/availability combination")
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn class(xml: &str) -> Class {
        Class::of(&Element::parse(xml.as_bytes(), &Limits::default()).unwrap()).unwrap()
    }

    #[test]
    fn the_table_is_total() {
        let classes = [
            C::Normal,
            C::Chat,
            C::Groupchat,
            C::Headline,
            C::MessageError,
            C::Presence,
            C::Subscription,
            C::Probe,
            C::PresenceError,
            C::IqRequest,
            C::IqResponse,
        ];
        for addressed in [To::NoAccount, To::Bare, To::FullMissing] {
            for class in classes {
                for available in [true, false] {
                    decide(addressed, class, available);
                }
            }
        }
    }

    #[test]
    fn rfc6121_8_5_2_1_1_chat_to_bare_goes_to_highest_priority() {
        let c = class("<message xmlns='jabber:client' type='chat'><body>x</body></message>");
        assert_eq!(decide(To::Bare, c, true).action, A::HighestPriority);
        let c = class("<message xmlns='jabber:client'><body>x</body></message>");
        assert_eq!(c, C::Normal);
        assert_eq!(decide(To::Bare, c, true).action, A::HighestPriority);
    }

    #[test]
    fn rfc6121_8_5_2_1_1_headline_goes_to_all_non_negative() {
        let c = class("<message xmlns='jabber:client' type='headline'/>");
        assert_eq!(decide(To::Bare, c, true).action, A::AllNonNegative);
        assert_eq!(decide(To::Bare, c, false).action, A::Drop);
    }

    #[test]
    fn rfc6121_8_5_2_2_1_no_available_resource_means_offline_storage() {
        let c = class("<message xmlns='jabber:client' type='chat'><body>x</body></message>");
        assert_eq!(decide(To::Bare, c, false).action, A::Offline);
        assert_eq!(decide(To::FullMissing, c, false).action, A::Offline);
    }

    #[test]
    fn rfc6121_8_5_3_2_1_message_to_missing_resource_is_treated_as_bare() {
        let c = class("<message xmlns='jabber:client' type='chat'><body>x</body></message>");
        assert_eq!(decide(To::FullMissing, c, true).action, A::HighestPriority);
    }

    #[test]
    fn rfc6121_8_5_3_2_3_iq_to_missing_resource_is_service_unavailable() {
        let c = class("<iq xmlns='jabber:client' type='get' id='1'><q xmlns='urn:x'/></iq>");
        assert_eq!(
            decide(To::FullMissing, c, true).action,
            A::Bounce(StanzaCondition::ServiceUnavailable)
        );
        let c = class("<iq xmlns='jabber:client' type='result' id='1'/>");
        assert_eq!(decide(To::FullMissing, c, true).action, A::Drop);
    }

    #[test]
    fn rfc6121_8_5_1_no_account() {
        let c = class("<message xmlns='jabber:client' type='chat'><body>x</body></message>");
        assert_eq!(
            decide(To::NoAccount, c, false).action,
            A::Bounce(StanzaCondition::ServiceUnavailable)
        );
        let c = class("<presence xmlns='jabber:client' type='subscribe'/>");
        assert_eq!(decide(To::NoAccount, c, false).action, A::Drop);
    }

    #[test]
    fn rfc6121_8_5_2_1_1_groupchat_to_bare_is_service_unavailable_and_errors_are_dropped() {
        let c = class("<message xmlns='jabber:client' type='groupchat'/>");
        assert_eq!(
            decide(To::Bare, c, true).action,
            A::Bounce(StanzaCondition::ServiceUnavailable)
        );
        let c = class("<message xmlns='jabber:client' type='error'/>");
        assert_eq!(decide(To::Bare, c, true).action, A::Drop);
    }

    #[test]
    fn rfc6121_8_5_3_2_2_available_presence_to_missing_resource_is_dropped() {
        let c = class("<presence xmlns='jabber:client'/>");
        assert_eq!(decide(To::FullMissing, c, true).action, A::Drop);
        assert_eq!(decide(To::Bare, c, true).action, A::AllAvailable);
        let c = class("<presence xmlns='jabber:client' type='probe'/>");
        assert_eq!(decide(To::Bare, c, false).action, A::Probe);
    }

    #[test]
    fn unknown_types_are_not_classified() {
        let el = Element::parse(
            b"<message xmlns='jabber:client' type='bogus'/>",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(Class::of(&el), None);
    }
}
