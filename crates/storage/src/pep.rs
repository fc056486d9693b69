//! Personal eventing (XEP-0163) as stored: each account's pubsub nodes with their
//! configuration and items, and the entity capabilities cache (XEP-0115) that tells which
//! nodes a client wants notifications for. Part of every [`Storage`](crate::Storage) (a
//! supertrait), written once for both SQL backends in `shared/pep.rs`.
//!
//! Bounds: an account has at most `max_nodes` nodes (the caller's `[pep] max_nodes`), a
//! node at most its `max_items` items (one when items do not persist), and an item is at
//! most a stanza; so an account's PEP data is bounded.

use parley_proto::pubsub::NodeConfig;

use crate::Result;

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PepItemRow {
    pub id: String,
    /// Unix ms of its publication.
    pub stamp_ms: i64,
    /// The payload element as XML.
    pub payload: String,
}

/// The PEP part of a store.
#[async_trait::async_trait]
pub trait Pep: Send + Sync {
    /// The account's nodes and their configurations, by name.
    async fn pep_nodes(&self, username: &str, host: &str) -> Result<Vec<(String, NodeConfig)>>;

    /// One node's configuration.
    async fn pep_node(&self, username: &str, host: &str, node: &str) -> Result<Option<NodeConfig>>;

    /// Creates the node or replaces its configuration, trimming its items to the new
    /// bound; false (nothing done) when creating it would pass `max_nodes`.
    async fn pep_configure(
        &self,
        username: &str,
        host: &str,
        node: &str,
        config: &NodeConfig,
        max_nodes: usize,
    ) -> Result<bool>;

    /// Stores `item` in `node` (replacing an item of the same id, which becomes the newest),
    /// creating the node with `config` when it does not exist, then keeps the node's newest
    /// `max_items` (one when items do not persist); false (nothing stored) when creating the
    /// node would pass `max_nodes`.
    async fn pep_publish(
        &self,
        username: &str,
        host: &str,
        node: &str,
        config: &NodeConfig,
        item: &PepItemRow,
        max_nodes: usize,
    ) -> Result<bool>;

    /// Items of `node`, oldest first: those named by `ids` (when any), else the newest
    /// `max` (all when None).
    async fn pep_items(
        &self,
        username: &str,
        host: &str,
        node: &str,
        max: Option<usize>,
        ids: &[String],
    ) -> Result<Vec<PepItemRow>>;

    /// Removes the items named; those that were there.
    async fn pep_retract(
        &self,
        username: &str,
        host: &str,
        node: &str,
        ids: &[String],
    ) -> Result<Vec<String>>;

    /// Deletes the node and its items; whether it existed.
    async fn pep_delete(&self, username: &str, host: &str, node: &str) -> Result<bool>;

    /// Deletes the node's items; whether the node exists.
    async fn pep_purge(&self, username: &str, host: &str, node: &str) -> Result<bool>;

    /// XEP-0115: the features of a verified capabilities hash, when cached.
    async fn caps_get(&self, ver: &str) -> Result<Option<Vec<String>>>;

    /// Caches the features of a verified hash (the hash names them for ever).
    async fn caps_put(&self, ver: &str, features: &[String]) -> Result<()>;
}
