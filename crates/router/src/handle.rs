//! Session handles and the messages every session actor accepts.
//!
//! actix's `do_send` ignores mailbox capacity, so a handle carries its own gauge of stanzas
//! sent but not yet taken in by the session. Senders refuse to go past the bound instead of
//! letting a slow client's mailbox grow without limit; the session itself bounds the bytes it
//! holds once a stanza is serialized.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Message, Recipient};
use jid::FullJid;
use parley_proto::stream_error::{StreamCondition, StreamError};
use parley_xml::Element;

/// A session's identifier: random, unique per node for the node's lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> SessionId {
        SessionId(rand::random())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a session is being closed: Prosody's three forms of `session:close(reason)`, plus a
/// clean close without any error.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// `</stream:stream>` with no error.
    Clean,
    /// A stream error condition, optionally with a human-readable text.
    Error(StreamError),
    /// A stanza (usually a prepared `<stream:error/>`) sent as-is before `</stream:stream>`.
    Stanza(Element),
    /// The node is draining: the client is asked to reconnect at `host` (RFC 6120
    /// §4.9.3.19 `<see-other-host/>`) or, over WebSocket, at `uri` (RFC 7395 §3.6.1
    /// `see-other-uri`). A resumable session (XEP-0198) keeps its state, so that the client
    /// resumes it where it reconnects.
    /// Without a `host`, the close is `<system-shutdown/>` (the client reconnects where it
    /// connected, a load balancer's address).
    Move {
        /// `host[:port]` for `<see-other-host/>`.
        host: Option<String>,
        /// A `wss://` URI for WebSocket clients, when one is configured.
        uri: Option<String>,
    },
}

impl CloseReason {
    /// A stream error with only a condition.
    pub fn condition(condition: StreamCondition) -> CloseReason {
        CloseReason::Error(StreamError::new(condition))
    }

    /// A stream error with a condition and a text.
    pub fn with_text(condition: StreamCondition, text: impl Into<String>) -> CloseReason {
        CloseReason::Error(StreamError::with_text(condition, text))
    }
}

impl From<StreamCondition> for CloseReason {
    fn from(condition: StreamCondition) -> Self {
        CloseReason::condition(condition)
    }
}

impl From<StreamError> for CloseReason {
    fn from(err: StreamError) -> Self {
        CloseReason::Error(err)
    }
}

/// A stanza for a session to send to its client. The router has already decided that this
/// session is the recipient; `from`/`to` are final.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The stanza, in the `jabber:client` namespace.
    pub stanza: Element,
}

/// Asks a session to close its stream with a reason.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Close {
    /// The reason sent to the client.
    pub reason: CloseReason,
}

/// Why a stanza could not be handed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverError {
    /// The session's queue is full: its client is not reading fast enough.
    Overloaded,
    /// The session is gone.
    Gone,
}

/// A stanza that could not be delivered, handed back so that the sender can bounce it.
#[derive(Debug)]
pub struct Undelivered {
    /// Why.
    pub error: DeliverError,
    /// The stanza, unchanged.
    pub stanza: Element,
}

impl Undelivered {
    /// The recipient is gone (a seam reports it; only the router decides what follows).
    pub fn gone(stanza: Element) -> Box<Undelivered> {
        Box::new(Undelivered {
            error: DeliverError::Gone,
            stanza,
        })
    }

    /// The way to the recipient is full (a seam reports it; only the router decides what
    /// follows).
    pub fn overloaded(stanza: Element) -> Box<Undelivered> {
        Box::new(Undelivered {
            error: DeliverError::Overloaded,
            stanza,
        })
    }
}

/// What the router keeps for a session: its id and how to reach it. A local session is a
/// pair of actix recipients with the gauge of stanzas in flight towards it; a session on
/// another cluster node is reached through that node's link ([`RemoteSessions`]).
#[derive(Clone)]
pub struct SessionHandle {
    /// The session's id.
    pub id: SessionId,
    reach: Reach,
}

#[derive(Clone)]
enum Reach {
    /// Shared: the routing table, the user's actor and the cluster registry each keep a
    /// handle for every session, and a recipient clone costs two allocations (an idle
    /// session's memory, docs/benchmarks.md).
    Local(Arc<Local>),
    Remote {
        node: Arc<str>,
        jid: Arc<FullJid>,
        nodes: Arc<dyn RemoteSessions>,
    },
}

/// The recipients of a session on this node, with the gauge of stanzas in flight to it.
#[derive(Clone)]
struct Local {
    deliver: Recipient<Deliver>,
    close: Recipient<Close>,
    resync: Option<Recipient<Resync>>,
    meta: Option<Arc<crate::meta::SessionMeta>>,
    pending: Arc<PendingGauge>,
}

/// How stanzas reach sessions on other nodes: implemented by the cluster layer over node
/// links. A send that cannot be queued hands the stanza back at once.
pub trait RemoteSessions: Send + Sync + 'static {
    /// Queues `stanza` for session `session` (bound to `jid`) on `node`.
    fn deliver(
        &self,
        node: &str,
        jid: &FullJid,
        session: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>>;
    /// Queues one stanza for several sessions on `node`, each copy addressed (`to`) to its
    /// session's JID: a chat room's message to its occupants there. The stanzas refused
    /// come back, each with its JID. Without a cheaper way, one `deliver` per session.
    fn deliver_many(
        &self,
        node: &str,
        targets: &[(FullJid, SessionId)],
        stanza: &Element,
    ) -> Vec<(FullJid, Box<Undelivered>)> {
        targets
            .iter()
            .filter_map(|(jid, id)| {
                let mut copy = stanza.clone();
                copy.set_attr("to", jid.to_string());
                self.deliver(node, jid, *id, copy)
                    .err()
                    .map(|u| (jid.clone(), u))
            })
            .collect()
    }
    /// Asks session `session` (bound to `jid`) on `node` to close.
    fn close(&self, node: &str, jid: &FullJid, session: SessionId, reason: CloseReason);
    /// Whether `node` is still a live member of the cluster.
    fn alive(&self, node: &str) -> bool;
}

/// Asks a session to attach itself again to its user's actor with its current state: the
/// actor moved to another node (cluster membership changed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Resync;

/// Counts stanzas sent to a session but not yet taken in by it.
#[derive(Debug)]
pub struct PendingGauge {
    count: AtomicUsize,
    limit: usize,
}

impl PendingGauge {
    /// A gauge that refuses deliveries past `limit` stanzas in flight.
    pub fn new(limit: usize) -> Arc<PendingGauge> {
        Arc::new(PendingGauge {
            count: AtomicUsize::new(0),
            limit,
        })
    }

    /// Called by the session when it has taken a stanza in.
    pub fn taken(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    /// Stanzas currently in flight.
    pub fn in_flight(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

impl SessionHandle {
    /// A handle for a session actor's recipients, sharing `pending` with the session.
    pub fn new(
        id: SessionId,
        deliver: Recipient<Deliver>,
        close: Recipient<Close>,
        pending: Arc<PendingGauge>,
    ) -> SessionHandle {
        SessionHandle {
            id,
            reach: Reach::Local(Arc::new(Local {
                deliver,
                close,
                resync: None,
                meta: None,
                pending,
            })),
        }
    }

    /// Adds the recipient of [`Resync`] (sessions that can re-attach to a moved user actor).
    pub fn with_resync(mut self, recipient: Recipient<Resync>) -> SessionHandle {
        if let Reach::Local(local) = &mut self.reach {
            // Unshared while the handle is being built: no copy is made.
            Arc::make_mut(local).resync = Some(recipient);
        }
        self
    }

    /// Adds the session's admin-visible facts.
    pub fn with_meta(mut self, facts: Arc<crate::meta::SessionMeta>) -> SessionHandle {
        if let Reach::Local(local) = &mut self.reach {
            Arc::make_mut(local).meta = Some(facts);
        }
        self
    }

    /// The session's admin-visible facts (local sessions).
    pub fn meta(&self) -> Option<&Arc<crate::meta::SessionMeta>> {
        match &self.reach {
            Reach::Local(local) => local.meta.as_ref(),
            Reach::Remote { .. } => None,
        }
    }

    /// A handle for session `id` on cluster node `node`.
    pub fn remote(
        id: SessionId,
        node: Arc<str>,
        jid: FullJid,
        nodes: Arc<dyn RemoteSessions>,
    ) -> SessionHandle {
        SessionHandle {
            id,
            reach: Reach::Remote {
                node,
                jid: Arc::new(jid),
                nodes,
            },
        }
    }

    /// The node and the link layer of a session on another node (None for this node).
    pub(crate) fn remote_reach(&self) -> Option<(&Arc<str>, &Arc<dyn RemoteSessions>)> {
        match &self.reach {
            Reach::Local(_) => None,
            Reach::Remote { node, nodes, .. } => Some((node, nodes)),
        }
    }

    /// The node the session lives on, or None for this node.
    pub fn node(&self) -> Option<&str> {
        match &self.reach {
            Reach::Local(_) => None,
            Reach::Remote { node, .. } => Some(node),
        }
    }

    /// Hands a stanza to the session without waiting. Refused once the session has `limit`
    /// stanzas in flight. Only the router's road calls this, so that what a refusal means is
    /// decided in one place.
    ///
    /// A full mailbox says the session's actor is behind (a burst, a starved core), not that
    /// its client stops reading: the actor takes a stanza into its outbox as soon as it runs,
    /// and the outbox's own bounds close a client that does not read (RFC 6120 §13.9). So the
    /// session is not closed here; the stanza is refused (its sender gets
    /// `resource-constraint`). A close would only have queued behind the same backlog.
    pub(crate) fn deliver(&self, stanza: Element) -> Result<(), Box<Undelivered>> {
        let (deliver, pending) = match &self.reach {
            Reach::Local(local) => (&local.deliver, &local.pending),
            Reach::Remote { node, jid, nodes } => return nodes.deliver(node, jid, self.id, stanza),
        };
        let before = pending.count.fetch_add(1, Ordering::AcqRel);
        if before >= pending.limit {
            pending.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Box::new(Undelivered {
                error: DeliverError::Overloaded,
                stanza,
            }));
        }
        if !deliver.connected() {
            pending.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Box::new(Undelivered {
                error: DeliverError::Gone,
                stanza,
            }));
        }
        // do_send ignores the mailbox capacity on purpose: the gauge above is the bound.
        deliver.do_send(Deliver { stanza });
        Ok(())
    }

    /// Asks the session to close. Ignored if it is already gone.
    pub fn close(&self, reason: CloseReason) {
        match &self.reach {
            Reach::Local(local) => local.close.do_send(Close { reason }),
            Reach::Remote { node, jid, nodes } => nodes.close(node, jid, self.id, reason),
        }
    }

    /// Asks a local session to re-attach to its user's actor ([`Resync`]).
    pub fn resync(&self) {
        if let Reach::Local(local) = &self.reach {
            if let Some(r) = &local.resync {
                r.do_send(Resync);
            }
        }
    }

    /// Whether the session is still running (for a remote one: whether its node is alive).
    pub fn connected(&self) -> bool {
        match &self.reach {
            Reach::Local(local) => local.deliver.connected(),
            Reach::Remote { node, nodes, .. } => nodes.alive(node),
        }
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reach {
            Reach::Local(local) => f
                .debug_struct("SessionHandle")
                .field("id", &self.id)
                .field("pending", &local.pending.in_flight())
                .finish(),
            Reach::Remote { node, .. } => f
                .debug_struct("SessionHandle")
                .field("id", &self.id)
                .field("node", node)
                .finish(),
        }
    }
}
