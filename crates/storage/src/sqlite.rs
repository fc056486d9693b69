//! The SQLite backend: the embedded default for a single node.
//!
//! Files run in WAL mode with `synchronous=NORMAL` (a crash loses at most the last
//! transactions, never consistency) and a busy timeout so that a second process, such as
//! the admin CLI, waits instead of failing. Every write transaction starts with
//! `BEGIN IMMEDIATE`: a deferred transaction that upgrades from reader to writer can get
//! `SQLITE_BUSY` at once, without the busy timeout being consulted.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rand::RngCore;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::migrate::{self, Migration};
use crate::{
    now_unix, redact_password, AccountInfo, ImportReport, NewAccount, OfflineMessage, Result,
    Roster, RosterChange, RosterItem, Storage, StorageError, TokenRecord,
};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has a single writer anyway; a few connections let reads run alongside it.
const FILE_POOL_SIZE: u32 = 4;
/// Accounts per transaction in `import_accounts`: large enough that commits are not the
/// cost, small enough not to hold the write lock for long.
const IMPORT_BATCH: usize = 1000;
/// Key of the server secret in `meta`.
const SERVER_SECRET_KEY: &str = "server_secret";

/// Schema history. Never edit a released migration: append a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, SCRAM credentials and meta",
        statements: &[
            "CREATE TABLE accounts (
            host TEXT NOT NULL,
            username TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            password_changed_at BIGINT NOT NULL,
            PRIMARY KEY (host, username)
        )",
            "CREATE TABLE scram_credentials (
            host TEXT NOT NULL,
            username TEXT NOT NULL,
            hash TEXT NOT NULL,
            salt BLOB NOT NULL,
            iterations BIGINT NOT NULL,
            stored_key BLOB NOT NULL,
            server_key BLOB NOT NULL,
            PRIMARY KEY (host, username, hash),
            FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
        )",
            "CREATE TABLE meta (
            key TEXT NOT NULL PRIMARY KEY,
            value BLOB NOT NULL
        )",
        ],
    },
    // Per-user tables deliberately have no foreign key to `accounts`: storing for a user
    // must not depend on the account row (see the crate documentation), and
    // `delete_account` removes them explicitly instead of by cascade.
    Migration {
        version: 2,
        description: "rosters, pending subscription requests, offline messages",
        statements: &[
            // One row per user whose roster ever changed; absent means version 0.
            "CREATE TABLE roster_versions (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )",
            // `version` is the roster version that last wrote the row, which is what
            // RFC 6121 §2.6 replay selects on.
            "CREATE TABLE roster_items (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                name TEXT,
                subscription TEXT NOT NULL
                    CHECK (subscription IN ('none', 'to', 'from', 'both')),
                ask BOOLEAN NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
            // A table rather than an encoded column: any group name survives, and order
            // is explicit.
            "CREATE TABLE roster_groups (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                position BIGINT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (host, username, jid, position),
                FOREIGN KEY (host, username, jid)
                    REFERENCES roster_items (host, username, jid) ON DELETE CASCADE
            )",
            // At most one per jid (the latest removal); a later put of the jid deletes it.
            "CREATE TABLE roster_tombstones (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
            // `seq` orders arrivals across the whole table, which is all that is needed
            // within one user; AUTOINCREMENT never hands out a number twice.
            "CREATE TABLE pending_in (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                stanza TEXT NOT NULL,
                UNIQUE (host, username, jid)
            )",
            "CREATE TABLE offline_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                stamp_ms BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )",
            "CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq)",
        ],
    },
    Migration {
        version: 3,
        description: "authentication tokens (mod_tokenauth style: only a hash of the secret)",
        statements: &[
            r#"CREATE TABLE tokens (
                id TEXT NOT NULL PRIMARY KEY,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                secret_hash BLOB NOT NULL,
                purpose TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                expires_ms BIGINT,
                last_used_ms BIGINT
            )"#,
            "CREATE INDEX tokens_by_user ON tokens (host, username)",
        ],
    },
    Migration {
        version: 4,
        description: "blocklists (XEP-0191)",
        statements: &[
            // The key serves the per-user reads too: its prefix is `(host, username)`.
            "CREATE TABLE blocklist (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
        ],
    },
    Migration {
        version: 5,
        description: "sign-out-everywhere times (JWTs issued before are refused)",
        statements: &["CREATE TABLE signouts (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                at_ms BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"],
    },
];

const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// The time only moves forward, so that two sign-outs racing keep the later one.
const UPSERT_SIGNOUT: &str = "INSERT INTO signouts (host, username, at_ms) VALUES (?, ?, ?)
    ON CONFLICT (host, username) DO UPDATE SET at_ms = MAX(signouts.at_ms, excluded.at_ms)";

const SELECT_SIGNOUT: &str = "SELECT at_ms FROM signouts WHERE host = ? AND username = ?";

const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (host, username, created_at, password_changed_at)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (host, username) DO NOTHING";

/// Upsert, so that a hash listed twice keeps its last entry instead of failing.
const INSERT_CREDENTIALS: &str = "INSERT INTO scram_credentials
    (host, username, hash, salt, iterations, stored_key, server_key)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (host, username, hash) DO UPDATE SET
        salt = excluded.salt,
        iterations = excluded.iterations,
        stored_key = excluded.stored_key,
        server_key = excluded.server_key";

/// `MAX` keeps the timestamp monotonic should the clock step backwards.
const TOUCH_PASSWORD: &str = "UPDATE accounts
    SET password_changed_at = MAX(password_changed_at, ?)
    WHERE host = ? AND username = ?";

const DELETE_CREDENTIALS: &str = "DELETE FROM scram_credentials WHERE host = ? AND username = ?";

/// Credentials go with it through `ON DELETE CASCADE`.
const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE host = ? AND username = ?";

const SELECT_CREDENTIALS: &str = "SELECT salt, iterations, stored_key, server_key
    FROM scram_credentials
    WHERE host = ? AND username = ? AND hash = ?";

const SELECT_ACCOUNT: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = ? AND username = ?";

const LIST_ALL_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    ORDER BY host, username";

const LIST_HOST_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = ?
    ORDER BY username";

/// First writer wins; everyone then reads the winner's value.
const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING";

const SELECT_META: &str = "SELECT value FROM meta WHERE key = ?";

/// Tokens: only a hash of each secret is stored (see `parley_proto::token`).
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)";
const SELECT_TOKEN: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE id = ?";
const SELECT_USER_TOKENS: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE host = ? AND username = ? ORDER BY created_ms, id";
const TOUCH_TOKEN: &str = "UPDATE tokens SET last_used_ms = ? WHERE id = ?";
const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = ?";
const DELETE_USER_TOKENS: &str = "DELETE FROM tokens WHERE host = ? AND username = ?";

/// Everything a user owns besides the account and credentials, for `delete_account`.
/// Groups go with their items through `ON DELETE CASCADE`.
const DELETE_USER_DATA: &[&str] = &[
    "DELETE FROM roster_items WHERE host = ? AND username = ?",
    "DELETE FROM roster_tombstones WHERE host = ? AND username = ?",
    "DELETE FROM roster_versions WHERE host = ? AND username = ?",
    "DELETE FROM pending_in WHERE host = ? AND username = ?",
    "DELETE FROM offline_messages WHERE host = ? AND username = ?",
    "DELETE FROM tokens WHERE host = ? AND username = ?",
    "DELETE FROM blocklist WHERE host = ? AND username = ?",
];

const SELECT_ROSTER_VERSION: &str =
    "SELECT version FROM roster_versions WHERE host = ? AND username = ?";

/// Run inside the write transaction of the change it numbers, so that versions are
/// handed out one by one even across processes.
const BUMP_ROSTER_VERSION: &str = "INSERT INTO roster_versions (host, username, version)
    VALUES (?, ?, 1)
    ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1
    RETURNING version";

/// An upsert, not `INSERT OR REPLACE`: replacing would delete the row and cascade to
/// the groups of the item.
const UPSERT_ROSTER_ITEM: &str = "INSERT INTO roster_items
    (host, username, jid, name, subscription, ask, version)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (host, username, jid) DO UPDATE SET
        name = excluded.name,
        subscription = excluded.subscription,
        ask = excluded.ask,
        version = excluded.version";

const DELETE_ROSTER_ITEM: &str =
    "DELETE FROM roster_items WHERE host = ? AND username = ? AND jid = ?";

const DELETE_ROSTER_GROUPS: &str =
    "DELETE FROM roster_groups WHERE host = ? AND username = ? AND jid = ?";

const INSERT_ROSTER_GROUP: &str =
    "INSERT INTO roster_groups (host, username, jid, position, name) VALUES (?, ?, ?, ?, ?)";

/// `jid` order is byte order under SQLite's default BINARY collation, which is also the
/// order of Rust strings.
const SELECT_ROSTER_ITEMS: &str = "SELECT jid, name, subscription, ask, version
    FROM roster_items
    WHERE host = ? AND username = ? AND version > ?
    ORDER BY jid";

const SELECT_ROSTER_GROUPS: &str = "SELECT g.jid, g.name
    FROM roster_groups g
    JOIN roster_items i ON i.host = g.host AND i.username = g.username AND i.jid = g.jid
    WHERE g.host = ? AND g.username = ? AND i.version > ?
    ORDER BY g.jid, g.position";

const UPSERT_TOMBSTONE: &str = "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (host, username, jid) DO UPDATE SET version = excluded.version";

const DELETE_TOMBSTONE: &str =
    "DELETE FROM roster_tombstones WHERE host = ? AND username = ? AND jid = ?";

/// The newest removal record past the `keep` newest (the jid-less floor aside).
const SELECT_TOMBSTONE_CUT: &str = "SELECT version FROM roster_tombstones
    WHERE host = ? AND username = ? AND jid <> ''
    ORDER BY version DESC LIMIT 1 OFFSET ?";

const DELETE_TOMBSTONES_UPTO: &str = "DELETE FROM roster_tombstones
    WHERE host = ? AND username = ? AND jid <> '' AND version <= ?";

/// The floor only ever rises.
const UPSERT_TOMBSTONE_FLOOR: &str = "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES (?, ?, '', ?)
    ON CONFLICT (host, username, jid)
    DO UPDATE SET version = MAX(roster_tombstones.version, excluded.version)";

const SELECT_TOMBSTONES: &str = "SELECT jid, version
    FROM roster_tombstones
    WHERE host = ? AND username = ? AND version > ?";

const SELECT_PENDING_IN: &str = "SELECT jid, stanza
    FROM pending_in
    WHERE host = ? AND username = ?
    ORDER BY seq";

const DELETE_PENDING_IN: &str =
    "DELETE FROM pending_in WHERE host = ? AND username = ? AND jid = ?";

const INSERT_PENDING_IN: &str =
    "INSERT INTO pending_in (host, username, jid, stanza) VALUES (?, ?, ?, ?)";

const COUNT_OFFLINE: &str = "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?";

/// Messages and their bytes (UTF-8), for the caps.
const COUNT_OFFLINE_BYTES: &str = "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(stanza AS BLOB))), 0)
    FROM offline_messages WHERE host = ? AND username = ?";

const INSERT_OFFLINE: &str =
    "INSERT INTO offline_messages (host, username, stamp_ms, stanza) VALUES (?, ?, ?, ?)";

const SELECT_OFFLINE: &str = "SELECT stamp_ms, stanza
    FROM offline_messages
    WHERE host = ? AND username = ?
    ORDER BY seq";

const DELETE_OFFLINE: &str = "DELETE FROM offline_messages WHERE host = ? AND username = ?";

/// Byte order, as for roster items.
const SELECT_BLOCKLIST: &str = "SELECT jid FROM blocklist
    WHERE host = ? AND username = ?
    ORDER BY jid";

/// Affects no row for a jid already blocked, which is how `blocklist_add` tells new
/// entries (a repeat within one call included) from old ones.
const INSERT_BLOCKED: &str = "INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?)
    ON CONFLICT (host, username, jid) DO NOTHING";

const DELETE_BLOCKED: &str = "DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?";

const DELETE_BLOCKLIST: &str = "DELETE FROM blocklist
    WHERE host = ? AND username = ?
    RETURNING jid";

/// A store in one SQLite database.
pub(crate) struct SqliteStorage {
    pool: SqlitePool,
    /// For `Debug` and logs: the file path, or `:memory:`.
    location: String,
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens a private in-memory database.
    pub(crate) async fn open_memory() -> Result<Self> {
        // sqlx names each `:memory:` database uniquely with a shared cache, so every
        // connection of this pool, and only of this pool, sees the same data.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(backend)?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The database lives as long as one connection to it does: keep exactly one,
        // forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StorageError::Backend(format!("opening in-memory database: {e}")))?;
        migrate(&pool).await?;
        Ok(Self {
            pool,
            location: ":memory:".into(),
        })
    }

    /// Opens (creating if needed) the database file at `path`, named by `url` in errors.
    /// Also returns how many migrations this call applied.
    pub(crate) async fn open_file(url: &str, path: PathBuf) -> Result<(Self, usize)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StorageError::BadUrl {
                    url: redact_password(url),
                    reason: format!("cannot create directory {}: {e}", parent.display()),
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|e| StorageError::Backend(format!("opening {}: {e}", path.display())))?;
        enable_wal(&pool, &path).await?;
        let applied = migrate(&pool).await?;
        tracing::info!(path = %path.display(), migrations_applied = applied, "opened SQLite storage");
        Ok((
            Self {
                pool,
                location: path.display().to_string(),
            },
            applied,
        ))
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// A deferred transaction for reads that span several statements: in WAL mode it
    /// sees one snapshot, so a roster is never read half-way through a change.
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(backend)
    }
}

/// Switches the file to WAL journaling, which persists in the file.
///
/// The switch needs an exclusive lock that SQLite does not wait for through the busy
/// timeout, so when another process opens the same new file at the same moment we retry
/// by hand.
async fn enable_wal(pool: &SqlitePool, path: &Path) -> Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(pool)
            .await
        {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(path = %path.display(), %mode, "SQLite refused WAL journaling");
                }
                return Ok(());
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`, extended codes included.
fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// Applies pending migrations; returns how many.
async fn migrate(pool: &SqlitePool) -> Result<usize> {
    migrate_with(pool, MIGRATIONS).await
}

/// Applies the pending ones of `migrations`; tests pass a prefix of the history to
/// build databases as older releases left them.
///
/// `BEGIN IMMEDIATE` takes the write lock before reading the version, so a second
/// process opening the same file waits here and then finds nothing left to apply.
async fn migrate_with(pool: &SqlitePool, migrations: &[Migration]) -> Result<usize> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    sqlx::query(CREATE_SCHEMA_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let pending = migrate::pending(migrations, current)?;
    for migration in pending {
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applying storage migration"
        );
        for statement in migration.statements {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StorageError::Backend(format!("migration {}: {e}", migration.version))
                })?;
        }
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")
            .bind(migration.version)
            .bind(now_unix())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(pending.len())
}

fn backend(error: sqlx::Error) -> StorageError {
    StorageError::Backend(error.to_string())
}

fn not_found(username: &str, host: &str) -> StorageError {
    StorageError::NotFound {
        username: username.to_owned(),
        host: host.to_owned(),
    }
}

/// Inserts an account unless present; true if this call created it.
async fn insert_account(
    tx: &mut Transaction<'static, Sqlite>,
    username: &str,
    host: &str,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(INSERT_ACCOUNT)
        .bind(host)
        .bind(username)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(result.rows_affected() == 1)
}

async fn insert_credentials(
    tx: &mut Transaction<'static, Sqlite>,
    username: &str,
    host: &str,
    creds: &[ScramCredentials],
) -> Result<()> {
    for cred in creds {
        sqlx::query(INSERT_CREDENTIALS)
            .bind(host)
            .bind(username)
            .bind(cred.hash.name())
            .bind(&cred.salt)
            .bind(i64::from(cred.iterations))
            .bind(&cred.stored_key)
            .bind(&cred.server_key)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// The roster version, 0 for a user whose roster never changed.
async fn roster_version(conn: &mut SqliteConnection, username: &str, host: &str) -> Result<i64> {
    let version: Option<i64> = sqlx::query_scalar(SELECT_ROSTER_VERSION)
        .bind(host)
        .bind(username)
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    Ok(version.unwrap_or(0))
}

async fn bump_roster_version(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
) -> Result<i64> {
    sqlx::query_scalar(BUMP_ROSTER_VERSION)
        .bind(host)
        .bind(username)
        .fetch_one(conn)
        .await
        .map_err(backend)
}

/// The items last written by a version above `since` (0: all of them), sorted by jid,
/// each with that version.
async fn roster_items_since(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
    since: i64,
) -> Result<Vec<(i64, RosterItem)>> {
    let group_rows = sqlx::query(SELECT_ROSTER_GROUPS)
        .bind(host)
        .bind(username)
        .bind(since)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for row in &group_rows {
        let jid: String = row.try_get("jid").map_err(backend)?;
        let name: String = row.try_get("name").map_err(backend)?;
        groups.entry(jid).or_default().push(name);
    }
    let item_rows = sqlx::query(SELECT_ROSTER_ITEMS)
        .bind(host)
        .bind(username)
        .bind(since)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    item_rows
        .iter()
        .map(|row| {
            let jid: String = row.try_get("jid").map_err(backend)?;
            let subscription: String = row.try_get("subscription").map_err(backend)?;
            let subscription = subscription.parse().map_err(|e| {
                StorageError::Backend(format!("roster of {username}@{host}, item {jid}: {e}"))
            })?;
            let item = RosterItem {
                name: row.try_get("name").map_err(backend)?,
                subscription,
                ask: row.try_get("ask").map_err(backend)?,
                groups: groups.remove(&jid).unwrap_or_default(),
                jid,
            };
            Ok((row.try_get("version").map_err(backend)?, item))
        })
        .collect()
}

fn offline_count_from(count: i64) -> Result<usize> {
    usize::try_from(count)
        .map_err(|_| StorageError::Backend(format!("corrupt offline message count {count}")))
}

fn account_from_row(row: &SqliteRow) -> Result<AccountInfo> {
    Ok(AccountInfo {
        host: row.try_get("host").map_err(backend)?,
        username: row.try_get("username").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        password_changed_at: row.try_get("password_changed_at").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    async fn create_account(
        &self,
        username: &str,
        host: &str,
        creds: &[ScramCredentials],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if !insert_account(&mut tx, username, host, now_unix()).await? {
            return Err(StorageError::AlreadyExists {
                username: username.to_owned(),
                host: host.to_owned(),
            });
        }
        insert_credentials(&mut tx, username, host, creds).await?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, "account created");
        Ok(())
    }

    async fn import_accounts(&self, accounts: &[NewAccount]) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        // An error leaves earlier batches imported; running the import again skips them.
        for batch in accounts.chunks(IMPORT_BATCH) {
            let now = now_unix();
            let mut tx = self.begin_write().await?;
            for account in batch {
                if insert_account(&mut tx, &account.username, &account.host, now).await? {
                    insert_credentials(
                        &mut tx,
                        &account.username,
                        &account.host,
                        &account.credentials,
                    )
                    .await?;
                    report.created += 1;
                } else {
                    report.skipped_existing += 1;
                }
            }
            tx.commit().await.map_err(backend)?;
        }
        tracing::info!(
            created = report.created,
            skipped_existing = report.skipped_existing,
            "accounts imported"
        );
        Ok(report)
    }

    async fn delete_account(&self, username: &str, host: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(DELETE_ACCOUNT)
            .bind(host)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            return Err(not_found(username, host));
        }
        for statement in DELETE_USER_DATA {
            sqlx::query(statement)
                .bind(host)
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, "account deleted");
        Ok(())
    }

    async fn set_credentials(
        &self,
        username: &str,
        host: &str,
        creds: &[ScramCredentials],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let touched = sqlx::query(TOUCH_PASSWORD)
            .bind(now_unix())
            .bind(host)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if touched.rows_affected() == 0 {
            return Err(not_found(username, host));
        }
        sqlx::query(DELETE_CREDENTIALS)
            .bind(host)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_credentials(&mut tx, username, host, creds).await?;
        // A password change invalidates every token issued before it.
        sqlx::query(DELETE_USER_TOKENS)
            .bind(host)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, "credentials replaced, tokens revoked");
        Ok(())
    }

    async fn credentials(
        &self,
        username: &str,
        host: &str,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>> {
        let row = sqlx::query(SELECT_CREDENTIALS)
            .bind(host)
            .bind(username)
            .bind(hash.name())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let iterations: i64 = row.try_get("iterations").map_err(backend)?;
        let iterations = u32::try_from(iterations).map_err(|_| {
            StorageError::Backend(format!(
                "corrupt iteration count {iterations} for {username}@{host}"
            ))
        })?;
        Ok(Some(ScramCredentials {
            hash,
            salt: row.try_get("salt").map_err(backend)?,
            iterations,
            stored_key: row.try_get("stored_key").map_err(backend)?,
            server_key: row.try_get("server_key").map_err(backend)?,
        }))
    }

    async fn account(&self, username: &str, host: &str) -> Result<Option<AccountInfo>> {
        let row = sqlx::query(SELECT_ACCOUNT)
            .bind(host)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn list_accounts(&self, host: Option<&str>) -> Result<Vec<AccountInfo>> {
        let rows = match host {
            Some(host) => {
                sqlx::query(LIST_HOST_ACCOUNTS)
                    .bind(host)
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query(LIST_ALL_ACCOUNTS).fetch_all(&self.pool).await,
        }
        .map_err(backend)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn server_secret(&self) -> Result<Vec<u8>> {
        let mut candidate = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut candidate);
        sqlx::query(INSERT_META_IF_ABSENT)
            .bind(SERVER_SECRET_KEY)
            .bind(&candidate[..])
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        sqlx::query_scalar(SELECT_META)
            .bind(SERVER_SECRET_KEY)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn roster(&self, username: &str, host: &str) -> Result<Roster> {
        let mut tx = self.begin_read().await?;
        let version = roster_version(&mut tx, username, host).await?;
        let items = roster_items_since(&mut tx, username, host, 0).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Roster {
            version,
            items: items.into_iter().map(|(_, item)| item).collect(),
        })
    }

    async fn roster_put(&self, username: &str, host: &str, item: &RosterItem) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let version = bump_roster_version(&mut tx, username, host).await?;
        sqlx::query(UPSERT_ROSTER_ITEM)
            .bind(host)
            .bind(username)
            .bind(&item.jid)
            .bind(item.name.as_deref())
            .bind(item.subscription.as_str())
            .bind(item.ask)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(DELETE_ROSTER_GROUPS)
            .bind(host)
            .bind(username)
            .bind(&item.jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for (position, group) in (0_i64..).zip(&item.groups) {
            sqlx::query(INSERT_ROSTER_GROUP)
                .bind(host)
                .bind(username)
                .bind(&item.jid)
                .bind(position)
                .bind(group)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query(DELETE_TOMBSTONE)
            .bind(host)
            .bind(username)
            .bind(&item.jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, version, "roster item stored");
        Ok(version)
    }

    async fn roster_remove(&self, username: &str, host: &str, jid: &str) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query(DELETE_ROSTER_ITEM)
            .bind(host)
            .bind(username)
            .bind(jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if removed.rows_affected() == 0 {
            return Ok(None);
        }
        let version = bump_roster_version(&mut tx, username, host).await?;
        sqlx::query(UPSERT_TOMBSTONE)
            .bind(host)
            .bind(username)
            .bind(jid)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, version, "roster item removed");
        Ok(Some(version))
    }

    async fn roster_prune_tombstones(
        &self,
        username: &str,
        host: &str,
        keep: usize,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let cut: Option<i64> = sqlx::query_scalar(SELECT_TOMBSTONE_CUT)
            .bind(host)
            .bind(username)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(cut) = cut else {
            return Ok(0);
        };
        let pruned = sqlx::query(DELETE_TOMBSTONES_UPTO)
            .bind(host)
            .bind(username)
            .bind(cut)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        sqlx::query(UPSERT_TOMBSTONE_FLOOR)
            .bind(host)
            .bind(username)
            .bind(cut)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, pruned, floor = cut, "roster tombstones pruned");
        Ok(pruned)
    }

    async fn roster_changes_since(
        &self,
        username: &str,
        host: &str,
        version: i64,
    ) -> Result<Option<Vec<(i64, RosterChange)>>> {
        let mut tx = self.begin_read().await?;
        let current = roster_version(&mut tx, username, host).await?;
        if version < 0 || version > current {
            return Ok(None);
        }
        if version == current {
            return Ok(Some(Vec::new()));
        }
        let items = roster_items_since(&mut tx, username, host, version).await?;
        let tombstones = sqlx::query(SELECT_TOMBSTONES)
            .bind(host)
            .bind(username)
            .bind(version)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut changes: Vec<(i64, RosterChange)> = items
            .into_iter()
            .map(|(v, item)| (v, RosterChange::Updated(item)))
            .collect();
        for row in &tombstones {
            let jid: String = row.try_get("jid").map_err(backend)?;
            if jid == crate::TOMBSTONE_FLOOR_JID {
                // Removals at or below the floor were pruned: they cannot be replayed.
                return Ok(None);
            }
            changes.push((
                row.try_get("version").map_err(backend)?,
                RosterChange::Removed(jid),
            ));
        }
        // Every change got its own version, so this order is total.
        changes.sort_by_key(|(v, _)| *v);
        Ok(Some(changes))
    }

    async fn pending_in(&self, username: &str, host: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(SELECT_PENDING_IN)
            .bind(host)
            .bind(username)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("jid").map_err(backend)?,
                    row.try_get("stanza").map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn pending_in_put(
        &self,
        username: &str,
        host: &str,
        jid: &str,
        stanza: &str,
    ) -> Result<()> {
        // Delete and insert rather than update, so the request takes a new place in the
        // arrival order.
        let mut tx = self.begin_write().await?;
        sqlx::query(DELETE_PENDING_IN)
            .bind(host)
            .bind(username)
            .bind(jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(INSERT_PENDING_IN)
            .bind(host)
            .bind(username)
            .bind(jid)
            .bind(stanza)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn pending_in_remove(&self, username: &str, host: &str, jid: &str) -> Result<bool> {
        let result = sqlx::query(DELETE_PENDING_IN)
            .bind(host)
            .bind(username)
            .bind(jid)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(result.rows_affected() > 0)
    }

    async fn offline_push(
        &self,
        username: &str,
        host: &str,
        msg: &OfflineMessage,
        max: usize,
        max_bytes: usize,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let (count, bytes): (i64, i64) = sqlx::query_as(COUNT_OFFLINE_BYTES)
            .bind(host)
            .bind(username)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        if offline_count_from(count)? >= max || bytes.saturating_add(msg.stanza.len()) > max_bytes {
            return Ok(false);
        }
        sqlx::query(INSERT_OFFLINE)
            .bind(host)
            .bind(username)
            .bind(msg.stamp_ms)
            .bind(&msg.stanza)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn offline_count(&self, username: &str, host: &str) -> Result<usize> {
        let count: i64 = sqlx::query_scalar(COUNT_OFFLINE)
            .bind(host)
            .bind(username)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        offline_count_from(count)
    }

    async fn offline_take(&self, username: &str, host: &str) -> Result<Vec<OfflineMessage>> {
        // The write lock from the start: a message pushed between the read and the
        // delete would otherwise be deleted unseen.
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(SELECT_OFFLINE)
            .bind(host)
            .bind(username)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        let messages = rows
            .iter()
            .map(|row| {
                Ok(OfflineMessage {
                    stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                    stanza: row.try_get("stanza").map_err(backend)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !messages.is_empty() {
            sqlx::query(DELETE_OFFLINE)
                .bind(host)
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(messages)
    }

    async fn blocklist(&self, username: &str, host: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(SELECT_BLOCKLIST)
            .bind(host)
            .bind(username)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn blocklist_add(
        &self,
        username: &str,
        host: &str,
        jids: &[String],
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let mut added = Vec::new();
        for jid in jids {
            let result = sqlx::query(INSERT_BLOCKED)
                .bind(host)
                .bind(username)
                .bind(jid)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            if result.rows_affected() > 0 {
                added.push(jid.clone());
            }
        }
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, added = added.len(), "jids blocked");
        Ok(added)
    }

    async fn blocklist_remove(
        &self,
        username: &str,
        host: &str,
        jids: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let mut removed = match jids {
            Some(jids) => {
                let mut removed = Vec::new();
                for jid in jids {
                    let result = sqlx::query(DELETE_BLOCKED)
                        .bind(host)
                        .bind(username)
                        .bind(jid)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    // A repeat finds its row gone already, so it is reported once.
                    if result.rows_affected() > 0 {
                        removed.push(jid.clone());
                    }
                }
                removed
            }
            None => sqlx::query_scalar(DELETE_BLOCKLIST)
                .bind(host)
                .bind(username)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?,
        };
        tx.commit().await.map_err(backend)?;
        // RETURNING follows no order, and the caller's list need not be sorted.
        removed.sort_unstable();
        tracing::debug!(%username, %host, removed = removed.len(), "jids unblocked");
        Ok(removed)
    }

    async fn token_put(&self, token: &TokenRecord) -> Result<()> {
        sqlx::query(INSERT_TOKEN)
            .bind(&token.id)
            .bind(&token.host)
            .bind(&token.username)
            .bind(&token.secret_hash)
            .bind(&token.purpose)
            .bind(token.created_ms)
            .bind(token.expires_ms)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn token_get(&self, id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(SELECT_TOKEN)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| token_row(&r)).transpose()
    }

    async fn token_touch(&self, id: &str, at_ms: i64) -> Result<()> {
        sqlx::query(TOUCH_TOKEN)
            .bind(at_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn token_revoke(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(DELETE_TOKEN)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn tokens_revoke_user(&self, username: &str, host: &str) -> Result<u64> {
        let done = sqlx::query(DELETE_USER_TOKENS)
            .bind(host)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn tokens_of(&self, username: &str, host: &str) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(SELECT_USER_TOKENS)
            .bind(host)
            .bind(username)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(token_row).collect()
    }

    async fn set_signed_out(&self, username: &str, host: &str, at_ms: i64) -> Result<()> {
        sqlx::query(UPSERT_SIGNOUT)
            .bind(host)
            .bind(username)
            .bind(at_ms)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn signed_out_at(&self, username: &str, host: &str) -> Result<Option<i64>> {
        let row = sqlx::query(SELECT_SIGNOUT)
            .bind(host)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| r.try_get::<i64, _>("at_ms").map_err(backend))
            .transpose()
    }
}

fn token_row(r: &SqliteRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.try_get("id").map_err(backend)?,
        host: r.try_get("host").map_err(backend)?,
        username: r.try_get("username").map_err(backend)?,
        secret_hash: r.try_get("secret_hash").map_err(backend)?,
        purpose: r.try_get("purpose").map_err(backend)?,
        created_ms: r.try_get("created_ms").map_err(backend)?,
        expires_ms: r.try_get("expires_ms").map_err(backend)?,
        last_used_ms: r.try_get("last_used_ms").map_err(backend)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::{self, fake_credentials};
    use std::sync::Arc;

    fn file_url(dir: &tempfile::TempDir, relative: &str) -> (String, PathBuf) {
        let path = dir.path().join(relative);
        (format!("sqlite://{}", path.display()), path)
    }

    async fn count_schema_versions(storage: &SqliteStorage) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
            .fetch_one(&storage.pool)
            .await
            .unwrap()
    }

    #[test]
    fn migrations_are_numbered_in_sequence() {
        migrate::assert_well_formed(MIGRATIONS);
    }

    #[tokio::test]
    async fn memory_backend_passes_the_suite() {
        testsuite::run_all(crate::open("sqlite::memory:").await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_backend_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        // The nested directories do not exist yet: `open` must create them.
        let (url, path) = file_url(&dir, "state/db/parley.db");
        testsuite::run_all(crate::open(&url).await.unwrap()).await;
        assert!(path.is_file());
    }

    #[tokio::test]
    async fn memory_databases_are_private_to_each_open() {
        let a = crate::open("sqlite::memory:").await.unwrap();
        let b = crate::open("sqlite::memory:").await.unwrap();
        a.create_account("alice", "localhost", &[]).await.unwrap();
        assert!(a.account("alice", "localhost").await.unwrap().is_some());
        assert!(b.account("alice", "localhost").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");

        let (first, applied) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
        assert_eq!(applied, MIGRATIONS.len());
        first
            .create_account(
                "alice",
                "localhost",
                &[fake_credentials(ScramHash::Sha256, "alice")],
            )
            .await
            .unwrap();
        let secret = first.server_secret().await.unwrap();
        let info = first.account("alice", "localhost").await.unwrap().unwrap();
        first.pool.close().await;

        let (second, applied) = SqliteStorage::open_file(&url, path).await.unwrap();
        assert_eq!(applied, 0, "migrations ran again on reopen");
        assert_eq!(
            count_schema_versions(&second).await,
            i64::try_from(MIGRATIONS.len()).unwrap()
        );
        assert_eq!(
            second.account("alice", "localhost").await.unwrap(),
            Some(info)
        );
        let creds = second
            .credentials("alice", "localhost", ScramHash::Sha256)
            .await
            .unwrap()
            .expect("credentials survive a reopen");
        assert_eq!(
            creds.stored_key,
            fake_credentials(ScramHash::Sha256, "alice").stored_key
        );
        assert_eq!(second.server_secret().await.unwrap(), secret);
    }

    #[tokio::test]
    async fn file_uses_wal_and_enforces_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");
        let (storage, _) = SqliteStorage::open_file(&url, path).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&storage.pool)
            .await
            .unwrap();
        assert_eq!(mode.to_ascii_lowercase(), "wal");
        let orphan = sqlx::query(
            "INSERT INTO scram_credentials VALUES ('localhost', 'ghost', 'SHA-1', x'00', 1, x'00', x'00')",
        )
        .execute(&storage.pool)
        .await;
        assert!(
            orphan.is_err(),
            "credentials without an account were accepted"
        );
    }

    /// A database left by the release before rosters gains their tables on open, keeps
    /// its accounts, and then serves rosters, requests and offline messages.
    #[tokio::test]
    async fn schema_one_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");
        {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = SqlitePool::connect_with(options).await.unwrap();
            assert_eq!(migrate_with(&pool, &MIGRATIONS[..1]).await.unwrap(), 1);
            let old = SqliteStorage {
                pool,
                location: "schema one".into(),
            };
            old.create_account("alice", "localhost", &[]).await.unwrap();
            old.pool.close().await;
        }

        let (storage, applied) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
        assert_eq!(applied, MIGRATIONS.len() - 1);
        assert!(storage
            .account("alice", "localhost")
            .await
            .unwrap()
            .is_some());
        let item = RosterItem {
            jid: "bob@localhost".into(),
            name: Some("Bob".into()),
            subscription: crate::Subscription::Both,
            ask: false,
            groups: vec!["Friends".into()],
        };
        assert_eq!(
            storage
                .roster_put("alice", "localhost", &item)
                .await
                .unwrap(),
            1
        );
        storage
            .pending_in_put("alice", "localhost", "carol@localhost", "<presence/>")
            .await
            .unwrap();
        let msg = OfflineMessage {
            stamp_ms: 1,
            stanza: "<message/>".into(),
        };
        assert!(storage
            .offline_push("alice", "localhost", &msg, 10, usize::MAX)
            .await
            .unwrap());
        storage.pool.close().await;

        // Everything survives a reopen, which applies nothing more.
        let (storage, applied) = SqliteStorage::open_file(&url, path).await.unwrap();
        assert_eq!(applied, 0);
        assert_eq!(
            storage.roster("alice", "localhost").await.unwrap(),
            Roster {
                version: 1,
                items: vec![item]
            }
        );
        assert_eq!(
            storage.pending_in("alice", "localhost").await.unwrap(),
            vec![("carol@localhost".to_owned(), "<presence/>".to_owned())]
        );
        assert_eq!(
            storage.offline_take("alice", "localhost").await.unwrap(),
            vec![msg]
        );
    }

    /// Two stores on one file stand for two processes (a node and the admin CLI): the
    /// write lock, not the pool, keeps versions and the offline cap right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_share_versions_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");
        let (a, _) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
        let (b, _) = SqliteStorage::open_file(&url, path).await.unwrap();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut handles = Vec::new();
        for i in 0..8_usize {
            let store = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            handles.push(tokio::spawn(async move {
                let item = RosterItem {
                    jid: format!("c{i}@localhost"),
                    name: None,
                    subscription: crate::Subscription::None,
                    ask: false,
                    groups: vec![],
                };
                let version = store.roster_put("alice", "localhost", &item).await?;
                let msg = OfflineMessage {
                    stamp_ms: 0,
                    stanza: format!("<message id='{i}'/>"),
                };
                let stored = store
                    .offline_push("alice", "localhost", &msg, 3, usize::MAX)
                    .await?;
                Ok::<_, StorageError>((version, stored))
            }));
        }
        let mut versions = Vec::new();
        let mut stored = 0;
        for handle in handles {
            let (version, was_stored) = handle.await.unwrap().unwrap();
            versions.push(version);
            stored += usize::from(was_stored);
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
        assert_eq!(stored, 3);
        assert_eq!(b.offline_count("alice", "localhost").await.unwrap(), 3);
        assert_eq!(a.roster("alice", "localhost").await.unwrap().version, 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_of_a_new_file_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "fresh/parley.db");
        let (a, b) = tokio::join!(
            SqliteStorage::open_file(&url, path.clone()),
            SqliteStorage::open_file(&url, path.clone())
        );
        let (a, applied_a) = a.unwrap();
        let (b, applied_b) = b.unwrap();
        assert_eq!(
            applied_a + applied_b,
            MIGRATIONS.len(),
            "each migration runs exactly once"
        );
        assert_eq!(
            count_schema_versions(&a).await,
            i64::try_from(MIGRATIONS.len()).unwrap()
        );
        a.create_account("alice", "localhost", &[]).await.unwrap();
        assert!(b.account("alice", "localhost").await.unwrap().is_some());
        assert_eq!(
            a.server_secret().await.unwrap(),
            b.server_secret().await.unwrap()
        );
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");
        let (storage, _) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)")
            .execute(&storage.pool)
            .await
            .unwrap();
        storage.pool.close().await;
        let err = SqliteStorage::open_file(&url, path).await.unwrap_err();
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }

    #[tokio::test]
    async fn unknown_schemes_are_bad_urls() {
        match crate::open("mysql://x").await.unwrap_err() {
            StorageError::BadUrl { url, reason } => {
                assert_eq!(url, "mysql://x");
                assert!(reason.contains("mysql"), "{reason}");
            }
            other => panic!("expected BadUrl, got {other:?}"),
        }
        let message = crate::open("mysql://x").await.unwrap_err().to_string();
        assert!(message.contains("`mysql://x`"), "{message}");
    }

    #[tokio::test]
    async fn unusable_directory_is_reported_with_the_url() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where a directory is needed.
        std::fs::write(dir.path().join("blocker"), b"").unwrap();
        let (url, _) = file_url(&dir, "blocker/sub/parley.db");
        let err = crate::open(&url).await.unwrap_err();
        assert!(matches!(err, StorageError::BadUrl { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
    }

    /// RFC 5802 §2.2 and §9: the server keeps only the salted StoredKey and ServerKey,
    /// so the database file never contains the password.
    #[tokio::test]
    async fn rfc5802_no_plaintext_password_reaches_the_file() {
        let password = "correct horse battery staple";
        let dir = tempfile::tempdir().unwrap();
        let (url, path) = file_url(&dir, "parley.db");
        let storage = crate::open(&url).await.unwrap();
        let creds = [
            ScramCredentials::generate(ScramHash::Sha1, password, 4096).unwrap(),
            ScramCredentials::generate(ScramHash::Sha256, password, 4096).unwrap(),
        ];
        storage
            .create_account("plaintextcanary", "localhost", &creds)
            .await
            .unwrap();
        let mut contents = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join("parley.db-wal")) {
            contents.extend(wal);
        }
        let contains = |needle: &[u8]| contents.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(b"plaintextcanary"),
            "the account itself should be on disk"
        );
        assert!(!contains(password.as_bytes()), "plaintext password on disk");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imports_twenty_thousand_accounts() {
        const COUNT: usize = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let (url, _) = file_url(&dir, "parley.db");
        let storage: Arc<dyn Storage> = crate::open(&url).await.unwrap();
        let accounts: Vec<NewAccount> = (0..COUNT)
            .map(|i| {
                let username = format!("user{i:05}");
                NewAccount {
                    credentials: vec![
                        fake_credentials(ScramHash::Sha1, &username),
                        fake_credentials(ScramHash::Sha256, &username),
                    ],
                    username,
                    host: "bulk.example".into(),
                }
            })
            .collect();
        let started = Instant::now();
        let report = storage.import_accounts(&accounts).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            report,
            ImportReport {
                created: COUNT,
                skipped_existing: 0
            }
        );
        // Generous for a loaded CI machine; one transaction per account would blow it.
        assert!(elapsed < Duration::from_secs(30), "import took {elapsed:?}");

        let listed = storage.list_accounts(Some("bulk.example")).await.unwrap();
        assert_eq!(listed.len(), COUNT);
        assert!(listed
            .iter()
            .zip(&accounts)
            .all(|(info, account)| info.username == account.username));
        let last = storage
            .credentials("user19999", "bulk.example", ScramHash::Sha1)
            .await
            .unwrap()
            .expect("credentials of the last account");
        assert_eq!(
            last.stored_key,
            fake_credentials(ScramHash::Sha1, "user19999").stored_key
        );

        let again = storage.import_accounts(&accounts[..10]).await.unwrap();
        assert_eq!(
            again,
            ImportReport {
                created: 0,
                skipped_existing: 10
            }
        );
    }
}
