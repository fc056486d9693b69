//! The messages a user actor accepts. All carry stanzas whose `from` the sender has already
//! checked and stamped.

use actix::Message;
use parley_router::{SessionHandle, SessionId};
use parley_xml::Element;

/// A session bound `resource` (RFC 6120 §7): it is now *connected*. A session attaches again,
/// with its state, when its user's actor moved to another node.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Attach {
    /// The bound resource.
    pub resource: String,
    /// The session that owns it.
    pub handle: SessionHandle,
    /// Its state: the default for a fresh bind.
    pub state: AttachState,
}

/// A resource's state as its session mirrors it (Prosody's `presence`, `priority`,
/// `interested`, plus carbons).
#[derive(Debug, Clone, Default)]
pub struct AttachState {
    /// Sent initial presence.
    pub available: bool,
    /// Presence priority.
    pub priority: i8,
    /// The last presence it broadcast.
    pub presence: Option<Element>,
    /// Asked for the roster.
    pub interested: bool,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
    /// Where it sent directed presence that is still on (RFC 6121 §4.6); the actor keeps
    /// those no subscription covers, so that they learn when the resource goes away.
    pub directed: Vec<String>,
}

/// A session on a node that left the cluster (killed, or fenced off etcd) is gone without a
/// goodbye: the user's contacts and other resources learn that it is unavailable (RFC 6121
/// §4.5.2), whether or not this actor had seen it attach.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Vanished {
    /// The resource.
    pub resource: String,
    /// The session's id on the lost node.
    pub session: SessionId,
    /// Whether the registry showed it available (its flags trail presence by one write).
    pub available: bool,
}

/// The user's actor now belongs on another node: this one leaves without any presence
/// change, handing what it still receives to the new owner.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct HandOff;

/// The session of `resource` ended (cleanly or not): it is gone, and if it was available its
/// contacts learn that it is unavailable (RFC 6121 §4.5.2).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Detach {
    /// The resource.
    pub resource: String,
    /// The session that owned it (a replaced session must not detach its successor).
    pub session: SessionId,
}

/// A stanza from one of the user's own resources that needs the user's state: presence of
/// any kind, roster and carbons iqs, and messages (for XEP-0280 sent copies).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FromClient {
    /// The sending resource.
    pub resource: String,
    /// The stanza.
    pub stanza: Element,
    /// The session already routed it (directed presence to one of the server's own
    /// services, a chat room: it must reach the room in order with the messages sent after
    /// it, RFC 6120 §10.1); the actor only keeps its books (RFC 6121 §4.6.3).
    pub routed: bool,
}

/// A stanza addressed to this user: to the bare JID, or to a full JID that no session owns
/// (or whose session is gone). Sent only by the registry, as the router's `UserSink`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The stanza.
    pub stanza: Element,
}

/// A message was delivered straight to `resource`; the user's other carbons-enabled
/// resources get a `<received/>` copy (XEP-0280 §6).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct CarbonReceived {
    /// The resource that got the original.
    pub resource: String,
    /// The original message.
    pub message: Element,
}

/// Sent right after a broadcast presence of one of the user's sessions: answered once the
/// broadcast sits in the contacts' sessions' queues, ahead of anything the client sends next
/// (RFC 6120 §10.1, the crate's `order.rs`). Built by [`crate::UserLink::fence`].
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Fence {
    /// The node of the fencing session, when it is not this one.
    pub(crate) origin: Option<std::sync::Arc<str>>,
}

/// Answered once everything queued to an actor before it was handled ([`Fence`]). With
/// `flush`, the answer names the other nodes its resources' sessions run on: what the actor
/// handed them is still on its way there.
#[derive(Message, Debug)]
#[rtype(result = "Vec<std::sync::Arc<str>>")]
pub(crate) struct Barrier {
    pub(crate) flush: bool,
}

/// Answered once everything the actor had started (storage writes) is done; used at shutdown
/// so that no write is cut off.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Drain;
