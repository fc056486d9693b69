//! The routing table: which session owns which JID, and the messages the router sends to sessions.
//!
//! Like Prosody's `full_sessions`/`bare_sessions` tables, the router maps a bound full JID to
//! the handle of the session actor that owns it, and keeps per bare JID the resources with
//! their availability and priority so that stanzas to a bare JID follow RFC 6121 §8.5.
//! Everything here is synchronous and lock-protected: looking a JID up never waits on an actor
//! or on storage, which keeps the stanza hot path free of I/O.
//!
//! The router knows nothing about sockets, stream parsing or how a session talks to its client:
//! a session is only a [`SessionHandle`], a pair of actix recipients.

mod directory;
mod handle;
mod meta;
pub mod metrics;
mod table;

pub use directory::{ClaimFuture, ClaimOutcome, Directory, SessionFlags};
pub use handle::{
    Close, CloseReason, Deliver, DeliverError, PendingGauge, RemoteSessions, Resync, SessionHandle,
    SessionId, Undelivered,
};
pub use meta::{now_ms, SessionMeta, SessionStatus};
pub use table::{
    BindOutcome, EndedSession, ResourceConflict, ResourceInfo, Router, HISTORY_PER_USER,
    HISTORY_TOTAL,
};
