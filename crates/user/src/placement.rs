//! Where a user's actor runs in a cluster, and the form user-actor messages take between
//! nodes.
//!
//! A cluster runs one actor per bare JID, on the node that owns the user (rendezvous hashing
//! in the cluster layer). The [`Users`](crate::Users) registry asks its [`Placement`] before
//! every send: a user owned elsewhere gets the message as a [`UserWire`] over the node link,
//! and the receiving node hands it to its local actor with
//! [`Users::deliver_wire`](crate::Users::deliver_wire). A single node has no placement:
//! every user is local.

use std::sync::Arc;

use jid::BareJid;
use parley_xml::{Element, Limits};
use serde::{Deserialize, Serialize};

use crate::messages::{Attach, AttachState, CarbonReceived, Detach, FromClient, Inbound};

/// Decides which node runs a user's actor, and carries messages to actors on other nodes.
pub trait Placement: Send + Sync + 'static {
    /// The node that runs `user`'s actor, when it is not this one.
    fn remote_owner(&self, user: &BareJid) -> Option<Arc<str>>;
    /// Queues `msg` for `user`'s actor on `node`; handed back when the link refuses it.
    fn forward(&self, node: &str, user: &BareJid, msg: UserWire) -> Result<(), UserWire>;
    /// How many of `user`'s resources, cluster-wide, have XEP-0280 carbons enabled.
    fn carbons_enabled(&self, user: &BareJid) -> usize;
    /// This node's id.
    fn node_id(&self) -> Arc<str>;
    /// The node that owns the outgoing server-to-server stream to `domain`, when it is not
    /// this one.
    fn domain_owner(&self, domain: &str) -> Option<Arc<str>>;
    /// Asks `node` to answer once it has done what `depth` says for `users`, behind every
    /// frame queued to it before (RFC 6120 §10.1, the crate's `order.rs`). The request is queued
    /// when this is called; the future resolves on the answer, or after
    /// [`crate::SYNC_LIMIT`], or at once when the link refused the request.
    fn sync(&self, node: &str, users: Vec<BareJid>, depth: SyncDepth) -> SyncFuture;
}

/// What [`Placement::sync`] returns.
pub type SyncFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// How far a [`Placement::sync`] reaches on the node that receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncDepth {
    /// Answered once the receiver has acted on every frame the sender queued before it: the
    /// stanzas they carried sit in the sessions' queues.
    Link,
    /// Answered once each named user's actor there has handled everything queued to it
    /// before; and, when `origin` (the node of the session that fences) is not the
    /// receiver, once what those actors handed to sessions on other nodes got there too (a
    /// [`SyncDepth::Link`] to each such node).
    Barrier {
        /// The fencing session's node.
        origin: String,
    },
    /// The one named user's actor there takes the [`crate::Fence`] of a session on the
    /// sender.
    Fence,
}

/// A resource's state as its session knows it, sent when it attaches (again) to an actor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireState {
    /// Sent initial presence.
    pub available: bool,
    /// Presence priority.
    pub priority: i8,
    /// The last presence it broadcast, as XML.
    pub presence: Option<String>,
    /// Asked for the roster.
    pub interested: bool,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
    /// Targets of directed presence still on.
    pub directed: Vec<String>,
}

/// A user-actor message on a node link. Stanzas travel as XML in `jabber:client`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserWire {
    /// [`Attach`]: a session on the sending node bound (or re-attaches) `resource`.
    Attach {
        /// The resource.
        resource: String,
        /// The session's id on the sending node.
        session: u64,
        /// Its state.
        state: WireState,
    },
    /// [`Detach`].
    Detach {
        /// The resource.
        resource: String,
        /// The session's id.
        session: u64,
    },
    /// [`FromClient`].
    FromClient {
        /// The sending resource.
        resource: String,
        /// The stanza.
        xml: String,
        /// Already routed by the session: only recorded.
        routed: bool,
    },
    /// `Inbound`; `start` says whether an idle actor is started for it.
    Inbound {
        /// The stanza.
        xml: String,
        /// Start the actor if it is not running.
        start: bool,
    },
    /// [`CarbonReceived`].
    CarbonReceived {
        /// The resource that got the original.
        resource: String,
        /// The message.
        xml: String,
    },
}

impl UserWire {
    /// The stanza this message carries, if any (to bounce it when it cannot be sent).
    pub fn stanza(&self) -> Option<Element> {
        match self {
            UserWire::Inbound { xml, .. } => parse(xml),
            _ => None,
        }
    }
}

/// A user-actor message that can be sent to another node.
pub trait ToWire {
    /// Its wire form.
    fn to_wire(self) -> UserWire;
}

impl ToWire for Attach {
    fn to_wire(self) -> UserWire {
        UserWire::Attach {
            resource: self.resource,
            session: self.handle.id.0,
            state: WireState {
                available: self.state.available,
                priority: self.state.priority,
                presence: self.state.presence.map(|p| p.to_string()),
                interested: self.state.interested,
                carbons: self.state.carbons,
                directed: self.state.directed,
            },
        }
    }
}

impl ToWire for Detach {
    fn to_wire(self) -> UserWire {
        UserWire::Detach {
            resource: self.resource,
            session: self.session.0,
        }
    }
}

impl ToWire for FromClient {
    fn to_wire(self) -> UserWire {
        UserWire::FromClient {
            resource: self.resource,
            xml: self.stanza.to_string(),
            routed: self.routed,
        }
    }
}

impl ToWire for Inbound {
    fn to_wire(self) -> UserWire {
        UserWire::Inbound {
            xml: self.stanza.to_string(),
            start: true,
        }
    }
}

impl ToWire for CarbonReceived {
    fn to_wire(self) -> UserWire {
        UserWire::CarbonReceived {
            resource: self.resource,
            xml: self.message.to_string(),
        }
    }
}

/// Reads back a stanza another node serialized. It was accepted under that node's
/// configured limits, so it is read under the limits for copies, which no valid
/// configuration exceeds; a failure means a bug or a corrupt frame, and is logged.
pub(crate) fn parse(xml: &str) -> Option<Element> {
    match Element::parse(xml.as_bytes(), &Limits::trusted_copies()) {
        Ok(e) => Some(e),
        Err(e) => {
            if parley_router::metrics::refuse("copy_unparsable", "user_wire") {
                tracing::warn!(error = %e, bytes = xml.len(), "a forwarded stanza could not be read back");
            }
            None
        }
    }
}

impl WireState {
    pub(crate) fn into_state(self) -> AttachState {
        AttachState {
            available: self.available,
            priority: self.priority,
            presence: self.presence.as_deref().and_then(parse),
            interested: self.interested,
            carbons: self.carbons,
            directed: self.directed,
        }
    }
}
