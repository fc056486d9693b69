//! The router: where every stanza goes, and what its sender hears when it cannot get there.
//!
//! Like Prosody's `stanza_router`, one road ([`Router::route`], `road.rs`) decides for
//! every stanza, whoever sends it — a client's session, a user actor, a cluster node link:
//! a session that owns the full JID (on this node, or on another through the
//! [`Directory`]), the addressee's user actor (through the [`UserSink`] the user registry
//! installs; its RFC 6121 §8.5 table decides from there), the server's own address, or a
//! component's domain (XEP-0114: its connection, on any node), or a domain we do not serve
//! (the [`Foreign`] hook; none yet, so `remote-server-not-found`).
//! It is also the one place that decides what a failed delivery means ([`DeliverError`])
//! and that answers refusals ([`Router::bounce`]); [`SessionHandle`]s cannot be delivered
//! to from outside this crate.
//!
//! Underneath is the routing table, like Prosody's `full_sessions`: which session owns
//! which full JID, with resource-conflict policy applied under its write lock. Everything
//! here is synchronous: routing never waits on an actor or on storage, which keeps the
//! stanza hot path free of I/O.
//!
//! The router knows nothing about sockets, stream parsing, rosters or how a session talks
//! to its client: a session is only a [`SessionHandle`], and a user only a [`UserSink`].

mod directory;
mod handle;
mod meta;
pub mod metrics;
mod road;
mod table;

pub use directory::{ClaimFuture, ClaimOutcome, Directory, SessionFlags};
pub use handle::{
    Close, CloseReason, Deliver, DeliverError, PendingGauge, RemoteSessions, Resync, SessionHandle,
    SessionId, Undelivered,
};
pub use meta::{now_ms, SessionMeta, SessionStatus, StreamLink};
pub use road::{
    component_jid, Dest, Foreign, Origin, Refused, Routed, Service, UserSink, Wake,
    COMPONENT_RESOURCE,
};
pub use table::{
    BindOutcome, EndedSession, ResourceConflict, ResourceInfo, Router, HISTORY_PER_USER,
    HISTORY_TOTAL,
};
