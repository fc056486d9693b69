//! The cluster-wide side of the routing table: sessions on other nodes, and the claims that
//! keep each full JID owned by exactly one session cluster-wide.
//!
//! A single node has no directory and the router answers from its own table alone. In a
//! cluster the cluster layer installs one ([`Router::set_directory`](crate::Router)): it
//! answers lookups for full JIDs bound elsewhere from its registry cache, and a bind is
//! complete only once its claim has won.

use std::future::Future;
use std::pin::Pin;

use jid::FullJid;

use crate::handle::{SessionHandle, SessionId};
use crate::table::ResourceConflict;

/// The per-resource state other nodes route by (RFC 6121 §8.5 needs priority and
/// availability; roster pushes need interest; carbons need the XEP-0280 flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFlags {
    /// Presence priority.
    pub priority: i8,
    /// Sent initial presence and not gone unavailable.
    pub available: bool,
    /// Asked for the roster.
    pub interested: bool,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
}

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The session owns the full JID cluster-wide (under kick_old, a holder on another node
    /// has been told to close with `<conflict/>`).
    Won,
    /// Another node's session holds it and the policy does not take it over.
    Taken,
    /// The node cannot claim now (it is fenced off the registry).
    Unavailable,
}

/// A future of a claim.
pub type ClaimFuture = Pin<Box<dyn Future<Output = ClaimOutcome> + Send>>;

/// Sessions on other nodes, and this node's claims on full JIDs.
pub trait Directory: Send + Sync + 'static {
    /// The session on another node that owns `jid`.
    fn lookup(&self, jid: &FullJid) -> Option<SessionHandle>;
    /// Claims `jid` for local session `session`, applying `policy` to a holder elsewhere.
    fn claim(&self, jid: &FullJid, session: SessionId, policy: ResourceConflict) -> ClaimFuture;
    /// Publishes the routing state of local session `session`.
    fn update(&self, jid: &FullJid, session: SessionId, flags: SessionFlags);
    /// Drops the claim of local session `session` on `jid` (a successor's claim stays).
    fn release(&self, jid: &FullJid, session: SessionId);
}
