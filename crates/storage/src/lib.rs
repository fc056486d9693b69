//! Persistent state of a Parley deployment: accounts, their SCRAM credentials,
//! per-deployment secrets, and each user's roster, pending subscription requests,
//! offline messages, blocklist, private XML, message archive and PEP nodes, and the
//! multi-user chat rooms of the deployment's MUC services.
//!
//! The [`Storage`] trait is what the rest of the server programs against; [`open`] picks
//! a backend from a URL. SQLite (`sqlite://…`, `sqlite::memory:`) is the embedded default
//! for a single node; PostgreSQL (`postgres://…`) backs clusters, every node sharing one
//! database. Both pass the same test suite (`testsuite::run_all`, behind the `testsuite`
//! feature); their method bodies are written once, in `shared`.
//!
//! Accounts never hold a plaintext password: only the salted SCRAM keys of RFC 5802 are
//! stored, one row per hash function.
//!
//! Per-user data (rosters and the rest) is keyed by `(username, host)` alone, not tied
//! to an account row: a stanza may be stored for a user whose account is being created
//! or deleted concurrently, and that must not fail. [`Storage::delete_account`] removes
//! it along with the account.

use std::sync::Arc;

use parley_proto::sasl::{ScramCredentials, ScramHash};

mod archive;
mod invites;
mod migrate;
mod model;
mod muc;
mod pep;
mod postgres;
mod push;
mod shared;
mod sqlite;
/// Compiled for this crate's tests and, through the `testsuite` feature, for other
/// crates' tests only: it never ships in the server.
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod uploads;

/// The `jid` of the one removal record per user that is no removal: its version is the
/// newest of the records pruned, below which changes can no longer be replayed. No JID is
/// empty, so it never collides with a contact.
pub(crate) const TOMBSTONE_FLOOR_JID: &str = "";

pub use archive::{
    decide as archive_decide, Archive, ArchiveLogStatus, ArchiveOwner, ArchivePage, ArchivePolicy,
    ArchiveRecord, ArchivedRow,
};
pub use invites::{InviteRecord, Invites};
pub use model::{
    OfflineMessage, ParseSubscriptionError, Roster, RosterChange, RosterItem, Subscription,
};
pub use muc::{Muc, RoomAffiliationRow, RoomCreated, RoomOccupantRow, RoomRecord, RoomState};
pub use pep::{Pep, PepItemRow};
pub use push::{Push, PushRegistration};
pub use uploads::{UploadAdded, UploadQuota, UploadRecord, Uploads};

use postgres::PgStorage;
use sqlite::SqliteStorage;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The account to create is already present.
    #[error("account {username}@{host} already exists")]
    AlreadyExists { username: String, host: String },
    /// The account to change or delete is absent.
    #[error("account {username}@{host} does not exist")]
    NotFound { username: String, host: String },
    /// The storage URL cannot be used; `url` has any password redacted.
    #[error("storage url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    /// A recognised backend that this build cannot provide yet.
    #[error("unsupported storage: {0}")]
    Unsupported(String),
    /// The database itself failed.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Result of every storage operation.
pub type Result<T> = std::result::Result<T, StorageError>;

/// One account for [`Storage::import_accounts`].
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub host: String,
    pub credentials: Vec<ScramCredentials>,
}

/// What the store knows about an account, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub username: String,
    pub host: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; equals `created_at` until the password is first changed.
    pub password_changed_at: i64,
}

/// An authentication token as stored (mod_tokenauth style): a hash of its secret, never
/// the secret.
/// What a user's actor loads before it handles anything, read in one call
/// ([`Storage::user_state`]) so that a login costs the store one hand-off, not one per
/// table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    /// The account, if it exists (a stanza may start the actor of a user who has none).
    pub account: Option<AccountInfo>,
    /// As [`Storage::roster`] reads it.
    pub roster: Roster,
    /// As [`Storage::pending_in`] reads it.
    pub pending_in: Vec<(String, String)>,
    /// As [`Storage::offline_count`] counts.
    pub offline_count: usize,
    /// As [`Storage::blocklist`] reads it.
    pub blocklist: Vec<String>,
    /// The newest item of the user's avatar metadata node (XEP-0084), if any.
    pub avatar_metadata: Option<PepItemRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's public id.
    pub id: String,
    pub username: String,
    pub host: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// What it is for (free text, e.g. "web-login").
    pub purpose: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds; None: until revoked.
    pub expires_ms: Option<i64>,
    /// Unix milliseconds of the last successful use.
    pub last_used_ms: Option<i64>,
}

/// Outcome of [`Storage::import_accounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub created: usize,
    pub skipped_existing: usize,
}

/// A storage backend. Every implementation must pass `testsuite::run_all`.
#[async_trait::async_trait]
pub trait Storage:
    Archive + Pep + Invites + Uploads + Push + Muc + Send + Sync + std::fmt::Debug + 'static
{
    /// Creates an account with one credential row per hash in `creds`.
    ///
    /// Usernames and hosts arrive already normalized (nodeprep/nameprep) by the caller.
    /// Fails with [`StorageError::AlreadyExists`] if the account is present.
    async fn create_account(
        &self,
        username: &str,
        host: &str,
        creds: &[ScramCredentials],
    ) -> Result<()>;

    /// Creates every account that does not exist yet; existing ones (including repeats
    /// within `accounts`) are left untouched and counted as skipped.
    async fn import_accounts(&self, accounts: &[NewAccount]) -> Result<ImportReport>;

    /// Deletes an account, its credentials, and its roster (with versions and removal
    /// records), pending subscription requests, offline messages, blocklist and tokens,
    /// all at once; [`StorageError::NotFound`] (and nothing deleted) if the account is
    /// absent.
    ///
    /// Other users' roster items naming this account stay: cleaning those up is a
    /// protocol decision (RFC 6121 §3.3 unsubscriptions), not the store's.
    async fn delete_account(&self, username: &str, host: &str) -> Result<()>;

    /// Replaces all the credentials of an account by `creds` and sets
    /// `password_changed_at` to now.
    ///
    /// Hashes absent from `creds` lose their row too, so the old password stops
    /// working for every mechanism. [`StorageError::NotFound`] if the account is absent.
    async fn set_credentials(
        &self,
        username: &str,
        host: &str,
        creds: &[ScramCredentials],
    ) -> Result<()>;

    /// The credentials of an account for one hash, if both exist.
    async fn credentials(
        &self,
        username: &str,
        host: &str,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>>;

    /// Everything a user's actor reads when it starts ([`UserState`]), from one snapshot
    /// where the backend has them (a login's reads were eleven statements, each a
    /// hand-off to the store's thread and back).
    async fn user_state(&self, username: &str, host: &str) -> Result<UserState>;

    /// One account, if it exists.
    async fn account(&self, username: &str, host: &str) -> Result<Option<AccountInfo>>;

    /// All accounts, or those of one host, sorted by host then username (byte order).
    async fn list_accounts(&self, host: Option<&str>) -> Result<Vec<AccountInfo>>;

    /// At most `limit` accounts (of `host`, or all) that sort after `after` — the
    /// `(host, username)` of the previous page's last — in [`Storage::list_accounts`]'s
    /// order: the admin API pages through a million accounts without loading them all.
    async fn accounts_page(
        &self,
        host: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<AccountInfo>>;

    /// A per-deployment secret (32 random bytes), created atomically on first call and
    /// stable afterwards.
    ///
    /// It derives fake SCRAM salts for unknown users, so every node of a cluster must
    /// see the same value.
    async fn server_secret(&self) -> Result<Vec<u8>>;

    // Everything below takes the already-normalized `username, host` of the roster
    // owner and works whether or not that account exists.

    /// The user's roster: items sorted by jid, version 0 if it never changed.
    async fn roster(&self, username: &str, host: &str) -> Result<Roster>;

    /// Inserts or replaces the item for `item.jid` and returns the roster's new version
    /// (previous + 1).
    async fn roster_put(&self, username: &str, host: &str, item: &RosterItem) -> Result<i64>;

    /// Removes the item for `jid`: `Ok(None)` if there was none (version unchanged), else
    /// `Ok(Some(new_version))`.
    ///
    /// Keeps a record of the removal so that [`Storage::roster_changes_since`] can
    /// report it.
    async fn roster_remove(&self, username: &str, host: &str, jid: &str) -> Result<Option<i64>>;

    /// Keeps at most `keep` removal records of the user, dropping the oldest; returns how
    /// many went. The newest version dropped is remembered, and
    /// [`Storage::roster_changes_since`] answers `Ok(None)` (send the whole roster) for any
    /// version older than it, so versioning stays correct (RFC 6121 §2.6).
    async fn roster_prune_tombstones(&self, username: &str, host: &str, keep: usize)
        -> Result<u64>;

    /// RFC 6121 §2.6: the changes after `version`, oldest first, each with the version it
    /// created; one entry per jid, giving only its latest state.
    ///
    /// `Ok(Some(vec![]))` when `version` is current; `Ok(None)` when `version` is unknown
    /// (negative, greater than the current version, or older than a pruned removal
    /// record), and the caller then sends the whole roster.
    async fn roster_changes_since(
        &self,
        username: &str,
        host: &str,
        version: i64,
    ) -> Result<Option<Vec<(i64, RosterChange)>>>;

    /// Inbound subscription requests not yet answered (RFC 6121 §3.1.3), in arrival
    /// order: (contact bare jid, the stanza as XML text).
    async fn pending_in(&self, username: &str, host: &str) -> Result<Vec<(String, String)>>;

    /// Stores an inbound subscription request from `jid`, replacing an earlier one from
    /// the same jid; the replacement counts as the latest arrival.
    async fn pending_in_put(
        &self,
        username: &str,
        host: &str,
        jid: &str,
        stanza: &str,
    ) -> Result<()>;

    /// Forgets the request from `jid`; whether there was one.
    async fn pending_in_remove(&self, username: &str, host: &str, jid: &str) -> Result<bool>;

    /// XEP-0160: stores `msg` unless the user already has `max` messages stored, or the
    /// stored stanzas and this one would exceed `max_bytes` bytes (UTF-8) together, in which
    /// case nothing is stored and the result is `Ok(false)`.
    ///
    /// The count and the insert are one transaction, so concurrent pushes never exceed
    /// `max` or `max_bytes`.
    async fn offline_push(
        &self,
        username: &str,
        host: &str,
        msg: &OfflineMessage,
        max: usize,
        max_bytes: usize,
    ) -> Result<bool>;

    /// How many messages are stored for the user.
    async fn offline_count(&self, username: &str, host: &str) -> Result<usize>;

    /// Returns and deletes all stored messages, in arrival order.
    async fn offline_take(&self, username: &str, host: &str) -> Result<Vec<OfflineMessage>>;

    /// Returns all stored messages, in arrival order, and keeps them (an export, XEP-0227:
    /// reading must not deliver them).
    async fn offline_peek(&self, username: &str, host: &str) -> Result<Vec<OfflineMessage>>;

    // ----- blocking (XEP-0191) ---------------------------------------------------------------

    /// The JIDs the user blocks (bare, full, domain or domain/resource, as given), sorted.
    async fn blocklist(&self, username: &str, host: &str) -> Result<Vec<String>>;
    /// Adds `jids`; returns those that were not blocked before, in the order given (a jid
    /// listed twice counts once).
    async fn blocklist_add(
        &self,
        username: &str,
        host: &str,
        jids: &[String],
    ) -> Result<Vec<String>>;
    /// Removes `jids`, or every entry when `None`; returns those that were blocked, sorted.
    async fn blocklist_remove(
        &self,
        username: &str,
        host: &str,
        jids: Option<&[String]>,
    ) -> Result<Vec<String>>;

    // ----- tokens ----------------------------------------------------------------------------

    /// Stores a new token.
    async fn token_put(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this id.
    async fn token_get(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Records a successful use.
    async fn token_touch(&self, id: &str, at_ms: i64) -> Result<()>;
    /// Deletes one token; whether it existed.
    async fn token_revoke(&self, id: &str) -> Result<bool>;
    /// Deletes every token of the user; how many. A password change does this too.
    async fn tokens_revoke_user(&self, username: &str, host: &str) -> Result<u64>;
    /// The user's tokens, oldest first.
    async fn tokens_of(&self, username: &str, host: &str) -> Result<Vec<TokenRecord>>;

    // ----- sign-out everywhere -----------------------------------------------------------------

    /// Records that the user signed out everywhere at `at_ms` (unix ms): credentials issued
    /// before it (JWTs by their `iat`) stop working. The time only moves forward. Works
    /// whether or not the account exists, and outlives the account, so that a re-created
    /// account does not revive old JWTs.
    async fn set_signed_out(&self, username: &str, host: &str, at_ms: i64) -> Result<()>;

    /// XEP-0049: the element a user stored under namespace `ns`, as XML.
    async fn private_get(&self, username: &str, host: &str, ns: &str) -> Result<Option<String>>;

    /// XEP-0049: every element the user stored, as (namespace, XML), by namespace (what an
    /// export writes).
    async fn private_all(&self, username: &str, host: &str) -> Result<Vec<(String, String)>>;

    /// XEP-0049: stores (or replaces) `xml` under `ns`; false, storing nothing, when that
    /// would make the user store more than `max_namespaces` namespaces.
    async fn private_set(
        &self,
        username: &str,
        host: &str,
        ns: &str,
        xml: &str,
        max_namespaces: usize,
    ) -> Result<bool>;
    /// When the user last signed out everywhere (unix ms), if ever.
    async fn signed_out_at(&self, username: &str, host: &str) -> Result<Option<i64>>;
}

/// Opens the store named by `url`, creating and migrating it at first start.
///
/// * `sqlite://relative/path.db`, `sqlite:///absolute/path.db`: a file, created with its
///   parent directory if missing;
/// * `sqlite::memory:`: a private in-memory database, gone when the store is dropped;
/// * `postgres://…`, `postgresql://…`: a PostgreSQL database, which must exist; several
///   nodes may open (and migrate) it at once;
/// * anything else: [`StorageError::BadUrl`].
pub async fn open(url: &str) -> Result<Arc<dyn Storage>> {
    open_with(url, StorageOptions::default()).await
}

/// Tuning that changes how fast, never what, the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// SQLite: the page cache of the one connection that writes, in KiB (`[storage]
    /// sqlite_cache_mib`). Archive batches touch every active account's index pages; a
    /// cache that holds them saves reading them again for each batch.
    pub sqlite_writer_cache_kib: u32,
    /// SQLite: requests waiting for the file's user thread (a login's credentials and
    /// state, private XML writes such as the last activity at logout; `[storage]
    /// sqlite_user_queue`); a full queue makes the askers wait, it drops nothing.
    pub sqlite_user_queue: usize,
    /// SQLite: archived records a file's archive log holds before they are merged into the
    /// indexed archive (`[storage] sqlite_archive_log_rows`, `sqlite/archive_thread.rs`).
    /// More costs less CPU per archived message and more per query (each scans the log).
    pub sqlite_archive_log_rows: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            sqlite_writer_cache_kib: 16 * 1024,
            sqlite_user_queue: 1024,
            sqlite_archive_log_rows: 4096,
        }
    }
}

/// [`open`] with `options`.
pub async fn open_with(url: &str, options: StorageOptions) -> Result<Arc<dyn Storage>> {
    match parse_url(url)? {
        Location::SqliteMemory => Ok(Arc::new(SqliteStorage::open_memory().await?)),
        Location::SqliteFile(path) => {
            let (storage, _applied) = SqliteStorage::open_file_with(url, path, options).await?;
            Ok(Arc::new(storage))
        }
        Location::Postgres => {
            let (storage, _applied) = PgStorage::open(url).await?;
            Ok(Arc::new(storage))
        }
    }
}

/// Where a URL points, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    SqliteMemory,
    SqliteFile(std::path::PathBuf),
    Postgres,
}

/// Checks a storage URL without opening anything (`parley check config`): the scheme is
/// one this build serves and its form is right. The error says why, password redacted.
pub fn check_url(url: &str) -> Result<()> {
    parse_url(url).map(|_| ())
}

fn parse_url(url: &str) -> Result<Location> {
    let bad = |reason: &str| StorageError::BadUrl {
        url: redact_password(url),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(bad(
            "expected sqlite://PATH, sqlite::memory: or postgres://…",
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            // SQLite itself treats a file named `:memory:` as an in-memory database, one
            // per connection, so `sqlite://:memory:` must not reach the file path.
            if rest == ":memory:" || rest == "//:memory:" {
                return Ok(Location::SqliteMemory);
            }
            let Some(path) = rest.strip_prefix("//") else {
                return Err(bad("expected sqlite://PATH or sqlite::memory:"));
            };
            if path.is_empty() {
                return Err(bad("the database path is empty"));
            }
            // sqlx users habitually append `?mode=rwc`; silently creating a file with that
            // name would be worse than refusing.
            if path.contains('?') {
                return Err(bad("query parameters are not supported"));
            }
            Ok(Location::SqliteFile(path.into()))
        }
        "postgres" | "postgresql" => Ok(Location::Postgres),
        _ => Err(bad(&format!(
            "unknown scheme `{scheme}` (expected sqlite or postgres)"
        ))),
    }
}

/// Replaces the password of a `scheme://user:password@host` URL so that error messages
/// (which end up in logs) never carry it. The server logs its storage URL through it too.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &userinfo[..colon],
        &url[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(
            parse_url("sqlite::memory:").unwrap(),
            Location::SqliteMemory
        );
        assert_eq!(
            parse_url("sqlite://data/parley.db").unwrap(),
            Location::SqliteFile("data/parley.db".into())
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/parley/parley.db").unwrap(),
            Location::SqliteFile("/var/lib/parley/parley.db".into())
        );
        assert_eq!(
            parse_url("SQLite://x.db").unwrap(),
            Location::SqliteFile("x.db".into())
        );
    }

    #[test]
    fn parses_postgres_urls() {
        assert_eq!(
            parse_url("postgres://u:p@db/parley").unwrap(),
            Location::Postgres
        );
        assert_eq!(
            parse_url("postgresql://db/parley").unwrap(),
            Location::Postgres
        );
    }

    #[test]
    fn rejects_bad_urls_naming_them() {
        for url in [
            "mysql://x",
            "sqlite://",
            "sqlite:foo.db",
            "sqlite::foo.db",
            "sqlite://foo.db?mode=rwc",
            "parley.db",
            "",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(
                matches!(&err, StorageError::BadUrl { url: u, .. } if u == url),
                "{url}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("storage url `{url}`: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_url_messages_hide_passwords() {
        let err = parse_url("mysql://admin:hunter2@db.example:3306/parley").unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("mysql://admin:***@db.example:3306/parley"),
            "{message}"
        );
    }

    #[test]
    fn redaction_leaves_urls_without_password_alone() {
        assert_eq!(redact_password("mysql://x"), "mysql://x");
        assert_eq!(redact_password("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(redact_password("sqlite://a@b:c.db"), "sqlite://a@b:c.db");
        assert_eq!(redact_password("pg://u:p@h/x@y:z"), "pg://u:***@h/x@y:z");
        assert_eq!(redact_password("no scheme"), "no scheme");
    }

    #[test]
    fn error_messages_name_the_account() {
        let err = StorageError::AlreadyExists {
            username: "alice".into(),
            host: "localhost".into(),
        };
        assert_eq!(err.to_string(), "account alice@localhost already exists");
        let err = StorageError::NotFound {
            username: "bob".into(),
            host: "example.org".into(),
        };
        assert_eq!(err.to_string(), "account bob@example.org does not exist");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(parley_proto::clock::now_s() > 1_577_836_800);
    }
}
