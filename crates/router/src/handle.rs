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

/// What the router keeps for a session: its id, its mailboxes and the gauge of stanzas in
/// flight towards it.
#[derive(Clone)]
pub struct SessionHandle {
    /// The session's id.
    pub id: SessionId,
    deliver: Recipient<Deliver>,
    close: Recipient<Close>,
    pending: Arc<PendingGauge>,
}

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
            deliver,
            close,
            pending,
        }
    }

    /// Hands a stanza to the session without waiting. Refused once the session has `limit`
    /// stanzas in flight; the caller then bounces the stanza and the session is told to close.
    pub fn deliver(&self, stanza: Element) -> Result<(), Box<Undelivered>> {
        let before = self.pending.count.fetch_add(1, Ordering::AcqRel);
        if before >= self.pending.limit {
            self.pending.count.fetch_sub(1, Ordering::AcqRel);
            self.close(CloseReason::with_text(
                StreamCondition::PolicyViolation,
                "too many stanzas queued for this session: the client is not reading",
            ));
            return Err(Box::new(Undelivered {
                error: DeliverError::Overloaded,
                stanza,
            }));
        }
        if !self.deliver.connected() {
            self.pending.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Box::new(Undelivered {
                error: DeliverError::Gone,
                stanza,
            }));
        }
        // do_send ignores the mailbox capacity on purpose: the gauge above is the bound.
        self.deliver.do_send(Deliver { stanza });
        Ok(())
    }

    /// Asks the session to close. Ignored if it is already gone.
    pub fn close(&self, reason: CloseReason) {
        self.close.do_send(Close { reason });
    }

    /// Whether the session actor is still running.
    pub fn connected(&self) -> bool {
        self.deliver.connected()
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id)
            .field("pending", &self.pending.in_flight())
            .finish()
    }
}
