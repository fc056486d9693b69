//! The message archive (XEP-0313) as stored: each account's messages in arrival order, its
//! archiving preferences, and the per-account totals that bound it. Part of every
//! [`Storage`](crate::Storage) (a supertrait, so `Arc<dyn Storage>` reaches it), written
//! once for both SQL backends in `shared/archive.rs`.
//!
//! Appends come in batches (the archive writer gathers the messages of many sessions into
//! one transaction) and decide per record whether it is kept: the owner must have an
//! account, must not block the other party (XEP-0191), and its preferences (or the
//! server's default) must allow it. A kept record pushes out the owner's oldest messages
//! when the account is over its item or byte bound.

use parley_proto::mam::{Default as ArchiveDefault, Prefs, Query, With};

use crate::Result;

/// One message to archive for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// The archive's owner (normalized).
    pub username: String,
    pub host: String,
    /// The other party: for an outgoing message its recipient, else its sender.
    pub with: With,
    /// Unix ms.
    pub stamp_ms: i64,
    /// The message as XML.
    pub stanza: String,
}

/// The server's archiving rules, from `[mam]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivePolicy {
    /// For accounts that never set preferences.
    pub default: ArchiveDefault,
    /// Messages kept per account; older ones go first.
    pub max_items: u64,
    /// Bytes of XML kept per account.
    pub max_bytes: u64,
}

/// One archived message as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRow {
    pub id: String,
    pub stamp_ms: i64,
    pub stanza: String,
}

/// One page of a query (XEP-0059 terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// Oldest first.
    pub items: Vec<ArchivedRow>,
    /// The page reaches the end it moves towards (the newest paging forward, the oldest
    /// paging backward).
    pub complete: bool,
    /// How many messages match the filter, all pages together.
    pub count: u64,
    /// The position of the first item among them, when known without another count.
    pub first_index: Option<u64>,
}

/// The message archive part of a store.
#[async_trait::async_trait]
pub trait Archive: Send + Sync {
    /// Archives what the rules allow of `records`, in one transaction; for each record its
    /// archive id, or None when it was not kept (no account, blocked, preferences).
    async fn archive_append(
        &self,
        records: &[ArchiveRecord],
        policy: &ArchivePolicy,
    ) -> Result<Vec<Option<String>>>;

    /// One page of the account's archive; None when an id the query names (a cursor,
    /// `after-id` or `before-id`) is not in it (XEP-0313 §4.1.3: `item-not-found`).
    async fn archive_query(
        &self,
        username: &str,
        host: &str,
        query: &Query,
    ) -> Result<Option<ArchivePage>>;

    /// The account's preferences, if it ever set them.
    async fn archive_prefs(&self, username: &str, host: &str) -> Result<Option<Prefs>>;

    /// Replaces the account's preferences.
    async fn archive_set_prefs(&self, username: &str, host: &str, prefs: &Prefs) -> Result<()>;

    /// Deletes every message archived before `before_ms` (retention); how many went.
    async fn archive_expire(&self, before_ms: i64) -> Result<u64>;

    /// The account's totals: (messages, bytes).
    async fn archive_size(&self, username: &str, host: &str) -> Result<(u64, u64)>;
}
