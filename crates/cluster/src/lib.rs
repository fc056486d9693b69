//! Clustering: several Parley nodes serve one domain, sharing etcd (who is where) and
//! PostgreSQL (accounts, rosters, offline messages). See `docs/cluster.md`.
//!
//! - [`node`]: the node itself — its lease and registry writer, the watch that keeps the
//!   registry cache and the set of live nodes current, hand-off of user actors when the
//!   owner changes, fencing, and the implementations of the router's `Directory`, the
//!   sessions' `RemoteSessions` and the user registry's `Placement`;
//! - [`link`]: the node-link wire protocol — length-prefixed postcard frames that carry a
//!   protocol version, so that nodes of different versions refuse each other clearly instead
//!   of misreading each other;
//! - [`registry`]: the etcd key layout and the session-registry entries (one key per bound
//!   resource under the node's lease), and the local cache that a watch keeps up to date,
//!   with revision checks so that a re-list after a compaction never moves it backwards;
//! - [`owner`]: which node runs a user's actor — rendezvous hashing over the live nodes, so
//!   that every node computes the same owner without coordination and only the users of a
//!   lost node move;
//! - [`etcd`]: the registry in etcd — one lease per node kept alive every TTL/3, ownership
//!   claims by transaction, release by lease;
//! - [`etcd_sync`]: reading the registry — the paged list at one revision, the watch that
//!   follows it, and whether the cache is current (the node's readiness);
//! - [`etcd_access`]: TLS (CA, client certificate) and login for etcd, checked at start so
//!   that a wrong CA, certificate or password is an error naming its key;
//! - [`fence`]: when a node must fence itself (renewal overdue past 2/3 of the TTL, or the
//!   lease reported gone);
//! - [`peer`]: node links over TCP — bounded queues, reconnection with backoff, frames held
//!   while a link is down and handed back for a bounce past the hold bound;
//! - [`link_tls`]: optional mutual TLS on node links;
//! - [`auth`]: the link handshake (HMAC-SHA256 challenge-response over the cluster secret,
//!   or mutual TLS alone), run before any frame is acted on;
//! - [`trust`]: what an authenticated peer may ask in its own name (sessions it holds);
//! - [`links_rt`]: the runtime thread that carries link I/O, away from the lease keep-alive.
//!
//! This is the only crate that depends on etcd-client (`deny.toml` enforces it); tests that
//! look at etcd directly use the re-export [`etcd_client`].

pub mod auth;
pub mod etcd;
pub mod etcd_access;
pub mod etcd_sync;
pub mod fence;
pub mod link;
pub mod link_tls;
pub mod links_rt;
pub mod node;
pub mod owner;
pub mod peer;
pub mod registry;
pub mod trust;

/// The etcd client this crate is built on, re-exported so that tests can inspect the
/// registry (keys, leases) without a second path to etcd-client: `deny.toml` allows
/// etcd-client only as a dependency of this crate.
pub use etcd_client;
