//! The presence subscription state machine of RFC 6121 §3 and Appendix A, as pure functions.
//!
//! A user's view of one contact is a [`State`]: the subscription (none/to/from/both), whether
//! the user asked to subscribe and got no answer (pending-out, `ask`), and whether the contact
//! asked and got no answer (pending-in). Outbound functions apply what the user sent; inbound
//! functions apply what the user's server received from the contact.

use parley_storage::Subscription;

/// One side's state for one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// none, to, from or both.
    pub subscription: Subscription,
    /// Pending-out: a subscribe was sent and not answered.
    pub ask: bool,
    /// Pending-in: the contact's subscribe was not answered.
    pub pending_in: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            subscription: Subscription::None,
            ask: false,
            pending_in: false,
        }
    }
}

/// A subscription presence type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ask for the other party's presence.
    Subscribe,
    /// Approve the other party's request.
    Subscribed,
    /// Stop receiving the other party's presence.
    Unsubscribe,
    /// Deny or cancel the other party's subscription.
    Unsubscribed,
}

impl Kind {
    /// From a presence `type` attribute.
    pub fn from_type(ty: &str) -> Option<Kind> {
        Some(match ty {
            "subscribe" => Kind::Subscribe,
            "subscribed" => Kind::Subscribed,
            "unsubscribe" => Kind::Unsubscribe,
            "unsubscribed" => Kind::Unsubscribed,
            _ => return None,
        })
    }

    /// The presence `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Unsubscribed => "unsubscribed",
        }
    }
}

/// What a transition asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The new state.
    pub state: State,
    /// Outbound: route the stanza to the contact. Inbound: deliver it to the user's
    /// available resources.
    pub forward: bool,
    /// Inbound only: answer the contact with this instead of bothering the user.
    pub auto_reply: Option<Kind>,
}

fn has_to(s: Subscription) -> bool {
    matches!(s, Subscription::To | Subscription::Both)
}

fn has_from(s: Subscription) -> bool {
    matches!(s, Subscription::From | Subscription::Both)
}

fn with_to(s: Subscription, on: bool) -> Subscription {
    match (s, on) {
        (Subscription::None, true) => Subscription::To,
        (Subscription::From, true) => Subscription::Both,
        (Subscription::To, false) => Subscription::None,
        (Subscription::Both, false) => Subscription::From,
        (s, _) => s,
    }
}

fn with_from(s: Subscription, on: bool) -> Subscription {
    match (s, on) {
        (Subscription::None, true) => Subscription::From,
        (Subscription::To, true) => Subscription::Both,
        (Subscription::From, false) => Subscription::None,
        (Subscription::Both, false) => Subscription::To,
        (s, _) => s,
    }
}

/// The user sent `kind` to the contact (RFC 6121 Appendix A.2).
pub fn outbound(state: State, kind: Kind) -> Outcome {
    let mut s = state;
    let forward = match kind {
        // A.2.1 / §3.1.2: ask, unless the subscription exists already.
        Kind::Subscribe => {
            if !has_to(s.subscription) {
                s.ask = true;
            }
            true
        }
        // A.2.2 / §3.1.5: approving needs a pending request (no pre-approval here).
        Kind::Subscribed => {
            if s.pending_in {
                s.subscription = with_from(s.subscription, true);
                s.pending_in = false;
                true
            } else {
                false
            }
        }
        // A.2.3 / §3.3.2: stop receiving the contact's presence, or withdraw the request.
        Kind::Unsubscribe => {
            s.subscription = with_to(s.subscription, false);
            s.ask = false;
            true
        }
        // A.2.4 / §3.2.2: cancel the contact's subscription, or deny its request.
        Kind::Unsubscribed => {
            let relevant = has_from(s.subscription) || s.pending_in;
            s.subscription = with_from(s.subscription, false);
            s.pending_in = false;
            relevant
        }
    };
    Outcome {
        state: s,
        forward,
        auto_reply: None,
    }
}

/// The contact sent `kind` to the user (RFC 6121 Appendix A.3).
pub fn inbound(state: State, kind: Kind) -> Outcome {
    let mut s = state;
    let mut auto_reply = None;
    let forward = match kind {
        // A.3.1 / §3.1.3: already approved → answer for the user; otherwise remember the
        // request and show it (once).
        Kind::Subscribe => {
            if has_from(s.subscription) {
                auto_reply = Some(Kind::Subscribed);
                false
            } else if s.pending_in {
                false
            } else {
                s.pending_in = true;
                true
            }
        }
        // A.3.2 / §3.1.6: only an answer to our own request counts.
        Kind::Subscribed => {
            if s.ask {
                s.subscription = with_to(s.subscription, true);
                s.ask = false;
                true
            } else {
                false
            }
        }
        // A.3.3 / §3.3.3: the contact no longer wants our presence, or withdrew its request.
        Kind::Unsubscribe => {
            let relevant = has_from(s.subscription) || s.pending_in;
            s.subscription = with_from(s.subscription, false);
            s.pending_in = false;
            relevant
        }
        // A.3.4 / §3.2.3: the contact cancelled our subscription or denied our request.
        Kind::Unsubscribed => {
            let relevant = has_to(s.subscription) || s.ask;
            s.subscription = with_to(s.subscription, false);
            s.ask = false;
            relevant
        }
    };
    Outcome {
        state: s,
        forward,
        auto_reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Subscription as S;

    fn st(subscription: S, ask: bool, pending_in: bool) -> State {
        State {
            subscription,
            ask,
            pending_in,
        }
    }

    #[test]
    fn rfc6121_3_1_full_handshake_reaches_to_and_from() {
        // Alice subscribes to Bob.
        let alice = outbound(State::default(), Kind::Subscribe);
        assert_eq!(alice.state, st(S::None, true, false));
        assert!(alice.forward);
        let bob = inbound(State::default(), Kind::Subscribe);
        assert_eq!(bob.state, st(S::None, false, true));
        assert!(bob.forward);
        // Bob approves.
        let bob = outbound(bob.state, Kind::Subscribed);
        assert_eq!(bob.state, st(S::From, false, false));
        assert!(bob.forward);
        let alice = inbound(alice.state, Kind::Subscribed);
        assert_eq!(alice.state, st(S::To, false, false));
        assert!(alice.forward);
    }

    #[test]
    fn rfc6121_3_1_3_subscribe_from_an_approved_contact_is_answered_by_the_server() {
        let out = inbound(st(S::From, false, false), Kind::Subscribe);
        assert_eq!(out.auto_reply, Some(Kind::Subscribed));
        assert!(!out.forward);
        assert_eq!(out.state, st(S::From, false, false));
    }

    #[test]
    fn rfc6121_3_1_3_a_repeated_request_is_shown_once() {
        let out = inbound(st(S::None, false, true), Kind::Subscribe);
        assert!(!out.forward);
    }

    #[test]
    fn rfc6121_3_1_6_subscribed_without_a_request_is_ignored() {
        let out = inbound(st(S::None, false, false), Kind::Subscribed);
        assert!(!out.forward);
        assert_eq!(out.state, st(S::None, false, false));
    }

    #[test]
    fn rfc6121_3_1_5_approval_without_a_request_is_not_routed() {
        let out = outbound(st(S::None, false, false), Kind::Subscribed);
        assert!(!out.forward);
        assert_eq!(out.state.subscription, S::None);
    }

    #[test]
    fn rfc6121_3_2_cancelling_a_subscription_from_both_leaves_to() {
        let out = outbound(st(S::Both, false, false), Kind::Unsubscribed);
        assert_eq!(out.state.subscription, S::To);
        assert!(out.forward);
        let contact = inbound(st(S::Both, false, false), Kind::Unsubscribed);
        assert_eq!(contact.state.subscription, S::From);
        assert!(contact.forward);
    }

    #[test]
    fn rfc6121_3_3_unsubscribing_from_both_leaves_from() {
        let out = outbound(st(S::Both, false, false), Kind::Unsubscribe);
        assert_eq!(out.state.subscription, S::From);
        let contact = inbound(st(S::Both, false, false), Kind::Unsubscribe);
        assert_eq!(contact.state.subscription, S::To);
        assert!(contact.forward);
    }

    #[test]
    fn rfc6121_3_2_denying_a_pending_request_clears_it() {
        let out = outbound(st(S::None, false, true), Kind::Unsubscribed);
        assert_eq!(out.state, st(S::None, false, false));
        assert!(out.forward);
        let requester = inbound(st(S::None, true, false), Kind::Unsubscribed);
        assert_eq!(requester.state, st(S::None, false, false));
        assert!(requester.forward);
    }

    #[test]
    fn rfc6121_3_1_2_subscribe_with_an_existing_subscription_keeps_no_ask() {
        let out = outbound(st(S::Both, false, false), Kind::Subscribe);
        assert_eq!(out.state, st(S::Both, false, false));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            Kind::Subscribe,
            Kind::Subscribed,
            Kind::Unsubscribe,
            Kind::Unsubscribed,
        ] {
            assert_eq!(Kind::from_type(k.as_str()), Some(k));
        }
        assert_eq!(Kind::from_type("probe"), None);
    }
}
