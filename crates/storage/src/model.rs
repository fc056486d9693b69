//! What the store keeps of a user's roster (RFC 6121 §2) and offline messages (XEP-0160).
//!
//! These are plain values: the protocol layer turns them into `<item/>` elements and
//! back, and decides what the subscription states mean. The store only promises that
//! every roster change gets the next version number, so that RFC 6121 §2.6 versioning
//! can replay changes to a client that already holds an older copy.

use std::fmt;
use std::str::FromStr;

/// The subscription state of a roster item, from the roster owner's point of view
/// (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither side receives the other's presence.
    None,
    /// The owner receives the contact's presence.
    To,
    /// The contact receives the owner's presence.
    From,
    /// Both receive each other's presence.
    Both,
}

impl Subscription {
    /// The value of the `subscription` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::To => "to",
            Self::From => "from",
            Self::Both => "both",
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `subscription` value that is not one of the four states.
///
/// `remove` is deliberately not among them: it is a request, never a stored state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown subscription state `{0}`")]
pub struct ParseSubscriptionError(pub String);

impl FromStr for Subscription {
    type Err = ParseSubscriptionError;

    /// Exact, case-sensitive: RFC 6121's schema enumerates lowercase values only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "to" => Ok(Self::To),
            "from" => Ok(Self::From),
            "both" => Ok(Self::Both),
            other => Err(ParseSubscriptionError(other.to_owned())),
        }
    }
}

/// One contact on a user's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, already normalized by the caller.
    pub jid: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// Pending-out: the owner sent a subscribe and got no answer yet (RFC 6121 §3.1.2);
    /// shown to clients as `ask='subscribe'`.
    pub ask: bool,
    /// Kept in the given order.
    pub groups: Vec<String>,
}

/// A user's whole roster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster {
    /// 0 for a user whose roster never changed; each change adds one.
    pub version: i64,
    /// Sorted by `jid` (byte order).
    pub items: Vec<RosterItem>,
}

/// One entry of [`crate::Storage::roster_changes_since`]: what a roster push would carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// The item as it is now.
    Updated(RosterItem),
    /// The item for this bare JID was removed (a push with `subscription='remove'`).
    Removed(String),
}

/// A message kept for a user with no available resource (XEP-0160).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// When the server received it, in unix milliseconds: the XEP-0203 delay stamp.
    pub stamp_ms: i64,
    /// The stanza as serialized XML text.
    pub stanza: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6121 §2.1.2.5: the four states and their attribute values.
    #[test]
    fn rfc6121_2_1_2_5_subscription_values_round_trip() {
        for (state, text) in [
            (Subscription::None, "none"),
            (Subscription::To, "to"),
            (Subscription::From, "from"),
            (Subscription::Both, "both"),
        ] {
            assert_eq!(state.as_str(), text);
            assert_eq!(state.to_string(), text);
            assert_eq!(text.parse::<Subscription>(), Ok(state));
        }
    }

    /// RFC 6121 §2.1.2.5: `remove` is only valid in a roster set, never as a state; the
    /// schema's values are lowercase.
    #[test]
    fn rfc6121_2_1_2_5_other_values_are_refused() {
        for text in ["remove", "Both", "", " none", "pending"] {
            let err = text.parse::<Subscription>().unwrap_err();
            assert_eq!(err, ParseSubscriptionError(text.to_owned()));
            assert_eq!(
                err.to_string(),
                format!("unknown subscription state `{text}`")
            );
        }
    }

    #[test]
    fn empty_roster_is_version_zero() {
        let roster = Roster::default();
        assert_eq!(roster.version, 0);
        assert!(roster.items.is_empty());
    }
}
