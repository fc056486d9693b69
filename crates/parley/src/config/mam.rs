//! `[mam]`: the message archive (XEP-0313): whether it runs, what an account that set no
//! preferences keeps, how long and how much each account keeps, the page sizes of queries,
//! and the bounds of the archive writer's queue. Kept apart from `schema.rs` to keep that
//! file readable; the rules are checked here too.

use serde::Deserialize;

use super::validate::{Quoted, Violation};

/// `[mam]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MamConfig {
    /// Archive messages and answer queries.
    pub enabled: bool,
    /// For accounts that never set preferences: "always", "roster" or "never".
    pub default: String,
    /// Days a message is kept; 0 keeps messages until the account's bounds push them out.
    pub retention_days: u64,
    /// Messages kept per account; past it the oldest go.
    pub max_items: u64,
    /// Bytes of XML kept per account; past it the oldest go.
    pub max_bytes: u64,
    /// Results in a page when the client asks for no size.
    pub default_page: usize,
    /// Most results in one page (XEP-0059 lets the server return fewer than asked).
    pub max_page: usize,
    /// JIDs an account may list in its preferences.
    pub max_prefs_jids: usize,
    /// Messages waiting for the archive writer, per node.
    pub queue_items: usize,
    /// Bytes of messages waiting for the archive writer, per node.
    pub queue_bytes: usize,
    /// Records written in one transaction.
    pub batch: usize,
    /// Milliseconds a batch waits for more records after its first (they share one commit;
    /// only acknowledgements wait, never delivery).
    pub batch_linger_ms: u64,
    /// Accounts whose preferences and blocklist the writer remembers at once.
    pub owner_cache_entries: usize,
    /// Seconds the writer trusts what it remembers of an account (a change on another node
    /// is seen within this; one on this node at once).
    pub owner_cache_ttl_s: u64,
    /// Messages one session may have waiting for the writer; past it the session stops
    /// reading its client until some are written.
    pub max_in_flight_per_session: usize,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig {
            enabled: true,
            default: "always".to_owned(),
            retention_days: 365,
            max_items: 100_000,
            max_bytes: 100 << 20,
            default_page: 50,
            max_page: 250,
            max_prefs_jids: 1000,
            queue_items: 10_000,
            queue_bytes: 32 << 20,
            batch: 256,
            // 50 rather than 20: a SQLite file's batch commit is a fixed cost (WAL frames),
            // and at 1000 msg/s 50 ms cut the archive thread's CPU by about a quarter
            // (docs/archive.md); an acknowledgement waits at most that long.
            batch_linger_ms: 50,
            owner_cache_entries: 10_000,
            owner_cache_ttl_s: 10,
            max_in_flight_per_session: 64,
        }
    }
}

impl MamConfig {
    /// The server's default as the archive reads it (checked when the file is read).
    pub fn default_mode(&self) -> parley_proto::mam::Default {
        parley_proto::mam::Default::parse(&self.default)
            .unwrap_or(parley_proto::mam::Default::Always)
    }

    pub(super) fn check(&self) -> Result<(), Violation> {
        if parley_proto::mam::Default::parse(&self.default).is_none() {
            return Err(Violation::new(
                "mam.default",
                Quoted(&self.default),
                "must be \"always\", \"roster\" or \"never\"",
            ));
        }
        let positive = [
            ("mam.max_items", self.max_items),
            ("mam.max_bytes", self.max_bytes),
            ("mam.default_page", self.default_page as u64),
            ("mam.max_page", self.max_page as u64),
            ("mam.queue_items", self.queue_items as u64),
            ("mam.queue_bytes", self.queue_bytes as u64),
            ("mam.batch", self.batch as u64),
            ("mam.owner_cache_entries", self.owner_cache_entries as u64),
            (
                "mam.max_in_flight_per_session",
                self.max_in_flight_per_session as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Violation::new(key, value, "must be at least 1"));
            }
        }
        if self.owner_cache_ttl_s > 3600 {
            return Err(Violation::new(
                "mam.owner_cache_ttl_s",
                self.owner_cache_ttl_s,
                "must be at most 3600",
            ));
        }
        if self.batch_linger_ms > 1000 {
            return Err(Violation::new(
                "mam.batch_linger_ms",
                self.batch_linger_ms,
                "must be at most 1000",
            ));
        }
        if self.default_page > self.max_page {
            return Err(Violation::new(
                "mam.default_page",
                self.default_page,
                format!("must not exceed mam.max_page ({})", self.max_page),
            ));
        }
        Ok(())
    }
}
