//! The message archive (XEP-0313) as stored: each account's messages in arrival order, its
//! archiving preferences, and the per-account totals that bound it. Part of every
//! [`Storage`](crate::Storage) (a supertrait, so `Arc<dyn Storage>` reaches it), written
//! once for both SQL backends in `shared/archive.rs`.
//!
//! The archive writer decides per record whether it is kept ([`decide`]: the owner must
//! have an account, must not block the other party (XEP-0191), and its preferences or the
//! server's default must allow it), from what [`Archive::archive_owner`] reads once per
//! owner, then writes the kept records of many sessions in one batch
//! ([`Archive::archive_insert`]: one multi-row insert and one multi-row totals update per
//! batch, whatever its size). A batch that leaves an account over its item or byte bound
//! pushes out the account's oldest messages.
//!
//! Stamps never go back within an account's archive: a record stamped before the account's
//! newest (messages race between sessions, batches and nodes' clocks) is stored with the
//! newest stamp instead. The archive's order and its times then agree: the archive is paged
//! in `(stamp_ms, seq)` order, which is the order of `seq`, through the time index (or the
//! contact's index, which also ends with the stamp), so a `start` or `end` filter is a range
//! of the same index that pages, and no index keyed by the sequence alone is kept.

use parley_proto::blocking::Blocklist;
use parley_proto::mam::{Default as ArchiveDefault, Prefs, Query, With};

use crate::Result;

/// One message to archive for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// The archive's owner (normalized).
    pub username: String,
    pub host: String,
    /// Its id in the owner's archive, chosen before the message is routed (so that the
    /// delivered copy carries it): [`parley_proto::mam::new_id`].
    pub id: String,
    /// The other party: for an outgoing message its recipient, else its sender.
    pub with: With,
    /// Unix ms.
    pub stamp_ms: i64,
    /// The message as XML.
    pub stanza: String,
}

/// What decides an owner's records: read once per owner (and cached by the writer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveOwner {
    /// The account exists.
    pub exists: bool,
    /// Its preferences, if it set any.
    pub prefs: Option<Prefs>,
    /// Whom it blocks (XEP-0191), built once per read: the writer checks it per record.
    pub blocklist: Blocklist,
    /// Its roster's JIDs, read only when the `roster` default applies.
    pub roster: Vec<String>,
}

/// Whether `owner` keeps a message with `with` (XEP-0441 with the server's `default`, and
/// never one with an entity it blocks).
pub fn decide(owner: &ArchiveOwner, default: ArchiveDefault, with: &With) -> bool {
    if !owner.exists {
        return false;
    }
    // An empty blocklist (most accounts) needs no address built.
    if !owner.blocklist.is_empty() && owner.blocklist.blocks_str(&with.full()) {
        return false;
    }
    let in_roster = || owner.roster.contains(&with.bare);
    match &owner.prefs {
        Some(prefs) => prefs.archives(with, in_roster),
        None => Prefs::with_default(default).archives(with, in_roster),
    }
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
    /// How many messages match the filter, all pages together; None for a query bounded in
    /// time, whose count would visit every message in the bounds (XEP-0313 §4.3 leaves the
    /// count optional).
    pub count: Option<u64>,
    /// The position of the first item among them, when known without another count.
    pub first_index: Option<u64>,
}

/// The message archive part of a store.
#[async_trait::async_trait]
pub trait Archive: Send + Sync {
    /// What decides `username@host`'s records; its roster only when `with_roster`.
    async fn archive_owner(
        &self,
        username: &str,
        host: &str,
        with_roster: bool,
    ) -> Result<ArchiveOwner>;

    /// Writes `records` (already decided) in one transaction, then trims the accounts that
    /// passed `policy`'s bounds. Taken by value: a SQLite file hands them to its archive
    /// thread as they are, without a copy.
    async fn archive_insert(
        &self,
        records: Vec<ArchiveRecord>,
        policy: &ArchivePolicy,
    ) -> Result<()>;

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

    /// The archive's log, where the backend keeps one (a SQLite file's): for `/metrics`.
    fn archive_log_status(&self) -> Option<ArchiveLogStatus>;
}

/// What an archive's log holds and how its merges went (SQLite's, `sqlite/archive_thread.rs`),
/// since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveLogStatus {
    /// Records in the log at most (its extent after the last batch or merge).
    pub records: u64,
    /// Merges done.
    pub merges: u64,
    /// Merges that failed (each retried after the next batch).
    pub merge_failures: u64,
    /// Batches refused because the log reached its bound while merges failed.
    pub refused_batches: u64,
}

/// What a batch adds to each of its accounts: `(items, bytes, newest stamp)`, keyed by
/// `(host, username)` in sorted order, so that every batch on every node takes the
/// accounts' locks in one order. The newest stamp starts at `i64::MIN`, for
/// [`stamp_batch`] to raise.
pub(crate) fn batch_totals(
    records: &[ArchiveRecord],
) -> std::collections::BTreeMap<(&str, &str), (i64, i64, i64)> {
    let mut totals = std::collections::BTreeMap::new();
    for r in records {
        let t = totals
            .entry((r.host.as_str(), r.username.as_str()))
            .or_insert((0, 0, i64::MIN));
        t.0 += 1;
        t.1 += i64::try_from(r.stanza.len()).unwrap_or(i64::MAX);
    }
    totals
}

/// The stamp each record is stored with: never earlier than its account's newest before
/// it (`totals` holds each account's newest stamp so far, as read under the batch's locks,
/// and ends with the batch's newest).
pub(crate) fn stamp_batch<'a>(
    records: &'a [ArchiveRecord],
    totals: &mut std::collections::BTreeMap<(&'a str, &'a str), (i64, i64, i64)>,
) -> Vec<i64> {
    records
        .iter()
        .map(|r| {
            let t = totals
                .get_mut(&(r.host.as_str(), r.username.as_str()))
                .expect("every record's account is counted");
            t.2 = t.2.max(r.stamp_ms);
            t.2
        })
        .collect()
}

/// How many of an account's oldest messages to read to trim it back within `policy`,
/// given its totals `(items, bytes)` after a batch; None when it is within them. Enough
/// rows to cover the item excess, and a few for the bytes: a message is usually small, so
/// one more read is rare.
pub(crate) fn trim_reads((items, bytes): (i64, i64), policy: &ArchivePolicy) -> Option<i64> {
    let max_items = i64::try_from(policy.max_items).unwrap_or(i64::MAX);
    let max_bytes = i64::try_from(policy.max_bytes).unwrap_or(i64::MAX);
    (items > max_items || bytes > max_bytes).then(|| (items - max_items).max(0) + 16)
}

/// Of an account's oldest messages `(stamp_ms, seq, size)`, oldest first, the ones to
/// delete to be within `policy` again: `((stamp_ms, seq) of the last to delete, items,
/// bytes)`, or None for none.
pub(crate) fn trim_upto(
    (items, bytes): (i64, i64),
    policy: &ArchivePolicy,
    oldest: &[(i64, i64, i64)],
) -> Option<((i64, i64), i64, i64)> {
    let max_items = i64::try_from(policy.max_items).unwrap_or(i64::MAX);
    let max_bytes = i64::try_from(policy.max_bytes).unwrap_or(i64::MAX);
    let (mut gone_items, mut gone_bytes, mut upto) = (0i64, 0i64, None);
    for &(stamp, seq, size) in oldest {
        if items - gone_items <= max_items && bytes - gone_bytes <= max_bytes {
            break;
        }
        gone_items += 1;
        gone_bytes += size;
        upto = Some((stamp, seq));
    }
    upto.map(|u| (u, gone_items, gone_bytes))
}
