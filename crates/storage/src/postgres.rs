//! The PostgreSQL backend: one database shared by every node of a cluster.
//!
//! Text keys are `COLLATE "C"` so that `ORDER BY` is byte order, as with SQLite and Rust
//! strings, whatever the database's locale. Writes that read before they write (the
//! offline cap, roster versions) serialise per user through transaction-scoped advisory
//! locks, which work across nodes and need no row to exist first.
//!
//! Migrations run under a database-wide advisory lock taken before anything else in the
//! migration transaction: nodes starting together queue on it, and all but the first find
//! nothing left to apply. Even `CREATE TABLE IF NOT EXISTS` needs the lock, since two
//! concurrent ones can both decide to create and one then fails.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rand::RngCore;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::migrate::{self, Migration};
use crate::{
    now_unix, redact_password, AccountInfo, ImportReport, NewAccount, OfflineMessage, Result,
    Roster, RosterChange, RosterItem, Storage, StorageError, TokenRecord,
};

/// Connections per node; the test server allows 200, a default PostgreSQL 100.
const POOL_SIZE: u32 = 16;
/// How long opening waits for the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Accounts per statement and transaction in `import_accounts`.
const IMPORT_BATCH: usize = 1000;
/// Key of the server secret in `meta`.
const SERVER_SECRET_KEY: &str = "server_secret";
/// The advisory lock serialising migrations ("parley" in ASCII). Single-key advisory
/// locks do not overlap with the two-key ones below.
const MIGRATION_LOCK: i64 = 0x7061_726c_6579;
/// First key of the per-user advisory locks, one class per kind of data, so that a
/// roster change never waits for an offline push.
const ROSTER_LOCK_CLASS: i32 = 1;
const OFFLINE_LOCK_CLASS: i32 = 2;
/// Blocklist changes touch several rows of one user in whatever order the caller lists
/// them; two such changes at once could each wait for a row the other holds.
const BLOCKLIST_LOCK_CLASS: i32 = 3;

/// Schema history, numbered like SQLite's so that a version means the same content.
/// Never edit a released migration: append a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, SCRAM credentials and meta",
        statements: &[
            r#"CREATE TABLE accounts (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                password_changed_at BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
            r#"CREATE TABLE scram_credentials (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                hash TEXT COLLATE "C" NOT NULL,
                salt BYTEA NOT NULL,
                iterations BIGINT NOT NULL,
                stored_key BYTEA NOT NULL,
                server_key BYTEA NOT NULL,
                PRIMARY KEY (host, username, hash),
                FOREIGN KEY (host, username)
                    REFERENCES accounts (host, username) ON DELETE CASCADE
            )"#,
            r#"CREATE TABLE meta (
                key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                value BYTEA NOT NULL
            )"#,
        ],
    },
    // As in SQLite, per-user tables have no foreign key to `accounts`.
    Migration {
        version: 2,
        description: "rosters, pending subscription requests, offline messages",
        statements: &[
            r#"CREATE TABLE roster_versions (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
            r#"CREATE TABLE roster_items (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                name TEXT,
                subscription TEXT NOT NULL
                    CHECK (subscription IN ('none', 'to', 'from', 'both')),
                ask BOOLEAN NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
            r#"CREATE TABLE roster_groups (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                position BIGINT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (host, username, jid, position),
                FOREIGN KEY (host, username, jid)
                    REFERENCES roster_items (host, username, jid) ON DELETE CASCADE
            )"#,
            r#"CREATE TABLE roster_tombstones (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
            // A sequence default rather than an identity column: a repeated request takes
            // `excluded.seq`, a fresh number, in one upsert.
            r#"CREATE TABLE pending_in (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                stanza TEXT NOT NULL,
                UNIQUE (host, username, jid)
            )"#,
            r#"CREATE TABLE offline_messages (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                stamp_ms BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )"#,
            "CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq)",
        ],
    },
    Migration {
        version: 3,
        description: "authentication tokens (mod_tokenauth style: only a hash of the secret)",
        statements: &[
            r#"CREATE TABLE tokens (
                id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                secret_hash BYTEA NOT NULL,
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
            r#"CREATE TABLE blocklist (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
        ],
    },
    Migration {
        version: 5,
        description: "sign-out-everywhere times (JWTs issued before are refused)",
        statements: &[r#"CREATE TABLE signouts (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                at_ms BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#],
    },
];

const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// Creates the accounts absent from the arrays; returns the ones it created.
/// The time only moves forward, so that two sign-outs racing keep the later one.
const UPSERT_SIGNOUT: &str = "INSERT INTO signouts (host, username, at_ms) VALUES ($1, $2, $3)
    ON CONFLICT (host, username) DO UPDATE SET at_ms = GREATEST(signouts.at_ms, excluded.at_ms)";

const SELECT_SIGNOUT: &str = "SELECT at_ms FROM signouts WHERE host = $1 AND username = $2";

const INSERT_ACCOUNTS: &str =
    "INSERT INTO accounts (host, username, created_at, password_changed_at)
    SELECT h, u, $3, $3 FROM UNNEST($1::text[], $2::text[]) AS t (h, u)
    ON CONFLICT (host, username) DO NOTHING
    RETURNING host, username";

/// Callers remove repeated keys first: one statement may not update a row twice.
const INSERT_CREDENTIALS: &str = "INSERT INTO scram_credentials
    (host, username, hash, salt, iterations, stored_key, server_key)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int8[],
        $6::bytea[], $7::bytea[])
    ON CONFLICT (host, username, hash) DO UPDATE SET
        salt = excluded.salt,
        iterations = excluded.iterations,
        stored_key = excluded.stored_key,
        server_key = excluded.server_key";

/// `GREATEST` keeps the timestamp monotonic should the clock step backwards.
const TOUCH_PASSWORD: &str = "UPDATE accounts
    SET password_changed_at = GREATEST(password_changed_at, $1)
    WHERE host = $2 AND username = $3";

const DELETE_CREDENTIALS: &str = "DELETE FROM scram_credentials WHERE host = $1 AND username = $2";

/// Credentials go with it through `ON DELETE CASCADE`.
const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE host = $1 AND username = $2";

const SELECT_CREDENTIALS: &str = "SELECT salt, iterations, stored_key, server_key
    FROM scram_credentials
    WHERE host = $1 AND username = $2 AND hash = $3";

const SELECT_ACCOUNT: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = $1 AND username = $2";

const LIST_ALL_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    ORDER BY host, username";

const LIST_HOST_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = $1
    ORDER BY username";

/// First writer wins: a concurrent insert waits for the winner's commit, then does
/// nothing, and its next statement sees the winner's value.
const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

const SELECT_META: &str = "SELECT value FROM meta WHERE key = $1";

/// Tokens: only a hash of each secret is stored (see `parley_proto::token`).
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)";
const SELECT_TOKEN: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE id = $1";
const SELECT_USER_TOKENS: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE host = $1 AND username = $2 ORDER BY created_ms, id";
const TOUCH_TOKEN: &str = "UPDATE tokens SET last_used_ms = $1 WHERE id = $2";
const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = $1";
const DELETE_USER_TOKENS: &str = "DELETE FROM tokens WHERE host = $1 AND username = $2";

/// Everything a user owns besides the account and credentials, for `delete_account`.
const DELETE_USER_DATA: &[&str] = &[
    "DELETE FROM roster_items WHERE host = $1 AND username = $2",
    "DELETE FROM roster_tombstones WHERE host = $1 AND username = $2",
    "DELETE FROM roster_versions WHERE host = $1 AND username = $2",
    "DELETE FROM pending_in WHERE host = $1 AND username = $2",
    "DELETE FROM offline_messages WHERE host = $1 AND username = $2",
    "DELETE FROM tokens WHERE host = $1 AND username = $2",
    "DELETE FROM blocklist WHERE host = $1 AND username = $2",
];

/// Serialises one kind of write for one user until the transaction ends; a hash
/// collision between two users only makes them wait for each other.
const LOCK_USER: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))";

const SELECT_ROSTER_VERSION: &str =
    "SELECT version FROM roster_versions WHERE host = $1 AND username = $2";

const BUMP_ROSTER_VERSION: &str = "INSERT INTO roster_versions (host, username, version)
    VALUES ($1, $2, 1)
    ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1
    RETURNING version";

const UPSERT_ROSTER_ITEM: &str = "INSERT INTO roster_items
    (host, username, jid, name, subscription, ask, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (host, username, jid) DO UPDATE SET
        name = excluded.name,
        subscription = excluded.subscription,
        ask = excluded.ask,
        version = excluded.version";

const DELETE_ROSTER_ITEM: &str =
    "DELETE FROM roster_items WHERE host = $1 AND username = $2 AND jid = $3";

const DELETE_ROSTER_GROUPS: &str =
    "DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND jid = $3";

const INSERT_ROSTER_GROUPS: &str = "INSERT INTO roster_groups (host, username, jid, position, name)
    SELECT $1, $2, $3, p, n FROM UNNEST($4::int8[], $5::text[]) AS t (p, n)";

const SELECT_ROSTER_ITEMS: &str = "SELECT jid, name, subscription, ask, version
    FROM roster_items
    WHERE host = $1 AND username = $2 AND version > $3
    ORDER BY jid";

const SELECT_ROSTER_GROUPS: &str = "SELECT g.jid, g.name
    FROM roster_groups g
    JOIN roster_items i ON i.host = g.host AND i.username = g.username AND i.jid = g.jid
    WHERE g.host = $1 AND g.username = $2 AND i.version > $3
    ORDER BY g.jid, g.position";

const UPSERT_TOMBSTONE: &str = "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (host, username, jid) DO UPDATE SET version = excluded.version";

const DELETE_TOMBSTONE: &str =
    "DELETE FROM roster_tombstones WHERE host = $1 AND username = $2 AND jid = $3";

/// The newest removal record past the `keep` newest (the jid-less floor aside).
const SELECT_TOMBSTONE_CUT: &str = "SELECT version FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND jid <> ''
    ORDER BY version DESC LIMIT 1 OFFSET $3";

const DELETE_TOMBSTONES_UPTO: &str = "DELETE FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND jid <> '' AND version <= $3";

/// The floor only ever rises.
const UPSERT_TOMBSTONE_FLOOR: &str = "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES ($1, $2, '', $3)
    ON CONFLICT (host, username, jid)
    DO UPDATE SET version = GREATEST(roster_tombstones.version, excluded.version)";

const SELECT_TOMBSTONES: &str = "SELECT jid, version
    FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND version > $3";

const SELECT_PENDING_IN: &str = "SELECT jid, stanza
    FROM pending_in
    WHERE host = $1 AND username = $2
    ORDER BY seq";

/// A repeated request takes the fresh sequence number of the proposed row, so it moves
/// to the end of the arrival order; one statement, so concurrent puts cannot collide.
const UPSERT_PENDING_IN: &str = "INSERT INTO pending_in (host, username, jid, stanza)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (host, username, jid) DO UPDATE SET
        stanza = excluded.stanza,
        seq = excluded.seq";

const DELETE_PENDING_IN: &str =
    "DELETE FROM pending_in WHERE host = $1 AND username = $2 AND jid = $3";

const COUNT_OFFLINE: &str =
    "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2";

/// Messages and their bytes (UTF-8), for the caps.
const COUNT_OFFLINE_BYTES: &str = "SELECT COUNT(*), COALESCE(SUM(octet_length(stanza)), 0)::BIGINT
    FROM offline_messages WHERE host = $1 AND username = $2";

const INSERT_OFFLINE: &str =
    "INSERT INTO offline_messages (host, username, stamp_ms, stanza) VALUES ($1, $2, $3, $4)";

/// One statement returns exactly what it deletes, so a concurrent push is either taken
/// or kept, never lost.
const TAKE_OFFLINE: &str = "DELETE FROM offline_messages
    WHERE host = $1 AND username = $2
    RETURNING seq, stamp_ms, stanza";

const SELECT_BLOCKLIST: &str = "SELECT jid FROM blocklist
    WHERE host = $1 AND username = $2
    ORDER BY jid";

/// Returns the jids it inserted, that is those not blocked before. Callers remove
/// repeats first, so that each new jid comes back once.
const INSERT_BLOCKED: &str = "INSERT INTO blocklist (host, username, jid)
    SELECT $1, $2, j FROM UNNEST($3::text[]) AS t (j)
    ON CONFLICT (host, username, jid) DO NOTHING
    RETURNING jid";

const DELETE_BLOCKED: &str = "DELETE FROM blocklist
    WHERE host = $1 AND username = $2 AND jid = ANY($3::text[])
    RETURNING jid";

const DELETE_BLOCKLIST: &str = "DELETE FROM blocklist
    WHERE host = $1 AND username = $2
    RETURNING jid";

/// A store in one PostgreSQL database.
pub(crate) struct PgStorage {
    pool: PgPool,
    /// For `Debug` and logs: the URL without its password.
    location: String,
}

impl fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStorage")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PgStorage {
    /// Connects to the database at `url` and migrates it. Also returns how many
    /// migrations this call applied.
    pub(crate) async fn open(url: &str) -> Result<(Self, usize)> {
        let location = redact_password(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| StorageError::BadUrl {
            url: location.clone(),
            reason: e.to_string(),
        })?;
        // One connection first, outside the pool: the pool retries failed connects until
        // its timeout and then reports only that it timed out, where this gives the
        // server's own reason.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                StorageError::Backend(format!(
                    "connecting to {location}: no answer within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| StorageError::Backend(format!("connecting to {location}: {e}")))?;
        let applied = migrate_with(&mut conn, MIGRATIONS).await?;
        // Closing is a courtesy to the server; a failure changes nothing for us.
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        tracing::info!(url = %location, migrations_applied = applied, "opened PostgreSQL storage");
        Ok((Self { pool, location }, applied))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }

    /// A transaction whose statements all see one snapshot, so a roster is never read
    /// half-way through a change.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)
    }
}

/// Applies the pending ones of `migrations` in one transaction; returns how many.
async fn migrate_with(conn: &mut PgConnection, migrations: &[Migration]) -> Result<usize> {
    let mut tx = conn.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
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
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
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

async fn lock_user(conn: &mut PgConnection, class: i32, username: &str, host: &str) -> Result<()> {
    sqlx::query(LOCK_USER)
        .bind(class)
        .bind(host)
        .bind(username)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Creates the absent accounts among `accounts` (already free of repeats); returns the
/// `(host, username)` of those created.
async fn insert_accounts(
    conn: &mut PgConnection,
    accounts: &[(&str, &str)],
    now: i64,
) -> Result<HashSet<(String, String)>> {
    let hosts: Vec<&str> = accounts.iter().map(|(host, _)| *host).collect();
    let usernames: Vec<&str> = accounts.iter().map(|(_, username)| *username).collect();
    let rows = sqlx::query(INSERT_ACCOUNTS)
        .bind(hosts)
        .bind(usernames)
        .bind(now)
        .fetch_all(conn)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("host").map_err(backend)?,
                row.try_get("username").map_err(backend)?,
            ))
        })
        .collect()
}

/// Stores `(host, username, credentials)` rows in one statement; of a hash listed twice
/// for one account, the last entry wins.
async fn insert_credentials(
    conn: &mut PgConnection,
    rows: &[(&str, &str, &ScramCredentials)],
) -> Result<()> {
    let mut last: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (i, (host, username, cred)) in rows.iter().enumerate() {
        last.insert((host, username, cred.hash.name()), i);
    }
    let kept: Vec<&(&str, &str, &ScramCredentials)> = rows
        .iter()
        .enumerate()
        .filter(|(i, (host, username, cred))| last[&(*host, *username, cred.hash.name())] == *i)
        .map(|(_, row)| row)
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let hosts: Vec<&str> = kept.iter().map(|r| r.0).collect();
    let usernames: Vec<&str> = kept.iter().map(|r| r.1).collect();
    let hashes: Vec<&str> = kept.iter().map(|r| r.2.hash.name()).collect();
    let salts: Vec<&[u8]> = kept.iter().map(|r| r.2.salt.as_slice()).collect();
    let iterations: Vec<i64> = kept.iter().map(|r| i64::from(r.2.iterations)).collect();
    let stored_keys: Vec<&[u8]> = kept.iter().map(|r| r.2.stored_key.as_slice()).collect();
    let server_keys: Vec<&[u8]> = kept.iter().map(|r| r.2.server_key.as_slice()).collect();
    sqlx::query(INSERT_CREDENTIALS)
        .bind(hosts)
        .bind(usernames)
        .bind(hashes)
        .bind(salts)
        .bind(iterations)
        .bind(stored_keys)
        .bind(server_keys)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

fn credential_rows<'a>(
    username: &'a str,
    host: &'a str,
    creds: &'a [ScramCredentials],
) -> Vec<(&'a str, &'a str, &'a ScramCredentials)> {
    creds.iter().map(|cred| (host, username, cred)).collect()
}

async fn roster_version(conn: &mut PgConnection, username: &str, host: &str) -> Result<i64> {
    let version: Option<i64> = sqlx::query_scalar(SELECT_ROSTER_VERSION)
        .bind(host)
        .bind(username)
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    Ok(version.unwrap_or(0))
}

async fn bump_roster_version(conn: &mut PgConnection, username: &str, host: &str) -> Result<i64> {
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
    conn: &mut PgConnection,
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

fn account_from_row(row: &PgRow) -> Result<AccountInfo> {
    Ok(AccountInfo {
        host: row.try_get("host").map_err(backend)?,
        username: row.try_get("username").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        password_changed_at: row.try_get("password_changed_at").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl Storage for PgStorage {
    async fn create_account(
        &self,
        username: &str,
        host: &str,
        creds: &[ScramCredentials],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if insert_accounts(&mut tx, &[(host, username)], now_unix())
            .await?
            .is_empty()
        {
            return Err(StorageError::AlreadyExists {
                username: username.to_owned(),
                host: host.to_owned(),
            });
        }
        insert_credentials(&mut tx, &credential_rows(username, host, creds)).await?;
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, "account created");
        Ok(())
    }

    async fn import_accounts(&self, accounts: &[NewAccount]) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        // An error leaves earlier batches imported; running the import again skips them.
        for batch in accounts.chunks(IMPORT_BATCH) {
            // Repeats are dropped here, so that the first occurrence wins whatever order
            // the database processes rows in.
            let firsts: Vec<&NewAccount> = batch
                .iter()
                .filter(|a| seen.insert((a.host.as_str(), a.username.as_str())))
                .collect();
            report.skipped_existing += batch.len() - firsts.len();
            if firsts.is_empty() {
                continue;
            }
            let keys: Vec<(&str, &str)> = firsts
                .iter()
                .map(|a| (a.host.as_str(), a.username.as_str()))
                .collect();
            let mut tx = self.begin().await?;
            let created = insert_accounts(&mut tx, &keys, now_unix()).await?;
            let mut rows = Vec::new();
            for account in &firsts {
                if created.contains(&(account.host.clone(), account.username.clone())) {
                    rows.extend(credential_rows(
                        &account.username,
                        &account.host,
                        &account.credentials,
                    ));
                }
            }
            insert_credentials(&mut tx, &rows).await?;
            tx.commit().await.map_err(backend)?;
            report.created += created.len();
            report.skipped_existing += firsts.len() - created.len();
        }
        tracing::info!(
            created = report.created,
            skipped_existing = report.skipped_existing,
            "accounts imported"
        );
        Ok(report)
    }

    async fn delete_account(&self, username: &str, host: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let result = sqlx::query(DELETE_ACCOUNT)
            .bind(host)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            return Err(not_found(username, host));
        }
        // The same locks as concurrent writers take, so that none of them interleaves
        // with the wipe (a roster put would otherwise re-create a version row between
        // two of the deletes).
        lock_user(&mut tx, ROSTER_LOCK_CLASS, username, host).await?;
        lock_user(&mut tx, OFFLINE_LOCK_CLASS, username, host).await?;
        lock_user(&mut tx, BLOCKLIST_LOCK_CLASS, username, host).await?;
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
        let mut tx = self.begin().await?;
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
        insert_credentials(&mut tx, &credential_rows(username, host, creds)).await?;
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
        let mut tx = self.begin_snapshot().await?;
        let version = roster_version(&mut tx, username, host).await?;
        let items = roster_items_since(&mut tx, username, host, 0).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Roster {
            version,
            items: items.into_iter().map(|(_, item)| item).collect(),
        })
    }

    async fn roster_put(&self, username: &str, host: &str, item: &RosterItem) -> Result<i64> {
        let mut tx = self.begin().await?;
        // Removals lock the item before the version; without a common first lock, a put
        // and a removal of one jid could deadlock.
        lock_user(&mut tx, ROSTER_LOCK_CLASS, username, host).await?;
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
        if !item.groups.is_empty() {
            let positions: Vec<i64> = (0_i64..).take(item.groups.len()).collect();
            sqlx::query(INSERT_ROSTER_GROUPS)
                .bind(host)
                .bind(username)
                .bind(&item.jid)
                .bind(positions)
                .bind(&item.groups)
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
        let mut tx = self.begin().await?;
        lock_user(&mut tx, ROSTER_LOCK_CLASS, username, host).await?;
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
        let mut tx = self.begin().await?;
        lock_user(&mut tx, ROSTER_LOCK_CLASS, username, host).await?;
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
        let mut tx = self.begin_snapshot().await?;
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
        sqlx::query(UPSERT_PENDING_IN)
            .bind(host)
            .bind(username)
            .bind(jid)
            .bind(stanza)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
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
        let mut tx = self.begin().await?;
        // Under READ COMMITTED two pushes could both count below the cap and both
        // insert; the lock makes the second count after the first commits.
        lock_user(&mut tx, OFFLINE_LOCK_CLASS, username, host).await?;
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
        let rows = sqlx::query(TAKE_OFFLINE)
            .bind(host)
            .bind(username)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut messages = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("seq").map_err(backend)?,
                    OfflineMessage {
                        stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                        stanza: row.try_get("stanza").map_err(backend)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING follows no order.
        messages.sort_by_key(|(seq, _)| *seq);
        Ok(messages.into_iter().map(|(_, msg)| msg).collect())
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
        let mut seen: HashSet<&str> = HashSet::new();
        let firsts: Vec<&str> = jids
            .iter()
            .map(String::as_str)
            .filter(|jid| seen.insert(jid))
            .collect();
        let mut tx = self.begin().await?;
        lock_user(&mut tx, BLOCKLIST_LOCK_CLASS, username, host).await?;
        let inserted: Vec<String> = sqlx::query_scalar(INSERT_BLOCKED)
            .bind(host)
            .bind(username)
            .bind(&firsts)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        // RETURNING follows no order; the caller's order is the one promised.
        let inserted: HashSet<String> = inserted.into_iter().collect();
        let added: Vec<String> = firsts
            .into_iter()
            .filter(|jid| inserted.contains(*jid))
            .map(str::to_owned)
            .collect();
        tracing::debug!(%username, %host, added = added.len(), "jids blocked");
        Ok(added)
    }

    async fn blocklist_remove(
        &self,
        username: &str,
        host: &str,
        jids: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, BLOCKLIST_LOCK_CLASS, username, host).await?;
        let query = match jids {
            Some(jids) => sqlx::query_scalar(DELETE_BLOCKED)
                .bind(host)
                .bind(username)
                .bind(jids),
            None => sqlx::query_scalar(DELETE_BLOCKLIST)
                .bind(host)
                .bind(username),
        };
        let mut removed: Vec<String> = query.fetch_all(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        // RETURNING follows no order.
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

fn token_row(r: &PgRow) -> Result<TokenRecord> {
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

    #[test]
    fn migrations_are_numbered_in_sequence() {
        migrate::assert_well_formed(MIGRATIONS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_backend_passes_the_suite() {
        let url = parley_testkit::shared_pg().database();
        testsuite::run_all(crate::open(&url).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgresql_scheme_opens_too_and_nodes_share_the_database() {
        let url = parley_testkit::shared_pg().database();
        let other = url.replacen("postgres://", "postgresql://", 1);
        let a = crate::open(&url).await.unwrap();
        let b = crate::open(&other).await.unwrap();
        a.create_account(
            "alice",
            "localhost",
            &[fake_credentials(ScramHash::Sha256, "alice")],
        )
        .await
        .unwrap();
        assert!(b.account("alice", "localhost").await.unwrap().is_some());
        assert_eq!(
            a.server_secret().await.unwrap(),
            b.server_secret().await.unwrap()
        );
    }

    /// Nodes of a cluster starting together: each migration runs exactly once and every
    /// node ends up with a working store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn five_concurrent_opens_of_a_fresh_database_migrate_once() {
        let url = parley_testkit::shared_pg().database();
        let opens: Vec<_> = (0..5)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgStorage::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        let mut applied = 0;
        for open in opens {
            let (store, n) = open.await.unwrap().unwrap();
            applied += n;
            stores.push(Arc::new(store));
        }
        assert_eq!(
            applied,
            MIGRATIONS.len(),
            "each migration runs exactly once"
        );
        let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
            .fetch_one(&stores[0].pool)
            .await
            .unwrap();
        assert_eq!(recorded, i64::try_from(MIGRATIONS.len()).unwrap());
        stores[0]
            .create_account("alice", "localhost", &[])
            .await
            .unwrap();
        for store in &stores {
            assert!(store.account("alice", "localhost").await.unwrap().is_some());
        }
        let (_, again) = PgStorage::open(&url).await.unwrap();
        assert_eq!(again, 0, "migrations ran again on reopen");
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let url = parley_testkit::shared_pg().database();
        let (storage, _) = PgStorage::open(&url).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)")
            .execute(&storage.pool)
            .await
            .unwrap();
        let err = PgStorage::open(&url).await.unwrap_err();
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }

    /// Two stores stand for two nodes: the database, not the pool, keeps versions and
    /// the offline cap right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_share_versions_and_caps() {
        let url = parley_testkit::shared_pg().database();
        let a: Arc<dyn Storage> = crate::open(&url).await.unwrap();
        let b: Arc<dyn Storage> = crate::open(&url).await.unwrap();
        let mut handles = Vec::new();
        for i in 0..20_usize {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            handles.push(tokio::spawn(async move {
                let item = RosterItem {
                    jid: format!("c{i}@localhost"),
                    name: None,
                    subscription: crate::Subscription::None,
                    ask: false,
                    groups: vec!["G".into()],
                };
                let version = store.roster_put("alice", "localhost", &item).await?;
                let removed = store
                    .roster_remove("alice", "localhost", &format!("c{}@localhost", i / 2))
                    .await?;
                let msg = OfflineMessage {
                    stamp_ms: 0,
                    stanza: format!("<message id='{i}'/>"),
                };
                let stored = store
                    .offline_push("alice", "localhost", &msg, 5, usize::MAX)
                    .await?;
                Ok::<_, StorageError>((version, removed, stored))
            }));
        }
        let mut versions = Vec::new();
        let mut stored = 0;
        for handle in handles {
            let (version, removed, was_stored) = handle.await.unwrap().unwrap();
            versions.push(version);
            versions.extend(removed);
            stored += usize::from(was_stored);
        }
        versions.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(versions.len()).unwrap()).collect();
        assert_eq!(versions, expected, "versions are distinct and gapless");
        assert_eq!(stored, 5);
        assert_eq!(b.offline_count("alice", "localhost").await.unwrap(), 5);
    }

    /// The same check as for SQLite: imports go in batches, not one round trip per row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imports_twenty_thousand_accounts() {
        const COUNT: usize = 20_000;
        let url = parley_testkit::shared_pg().database();
        let storage = crate::open(&url).await.unwrap();
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
        let started = std::time::Instant::now();
        let report = storage.import_accounts(&accounts).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            report,
            ImportReport {
                created: COUNT,
                skipped_existing: 0
            }
        );
        assert!(elapsed < Duration::from_secs(30), "import took {elapsed:?}");
        assert_eq!(
            storage
                .list_accounts(Some("bulk.example"))
                .await
                .unwrap()
                .len(),
            COUNT
        );
        let last = storage
            .credentials("user19999", "bulk.example", ScramHash::Sha256)
            .await
            .unwrap()
            .expect("credentials of the last account");
        assert_eq!(
            last.stored_key,
            fake_credentials(ScramHash::Sha256, "user19999").stored_key
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_reported_without_the_password() {
        // Port 1 on loopback: nothing listens there, so the connect is refused at once.
        let url = "postgres://parley:hunter2@127.0.0.1:1/parley";
        let err = crate::open(url).await.unwrap_err();
        assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("postgres://parley:***@127.0.0.1:1/parley"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn malformed_url_is_a_bad_url_without_the_password() {
        let url = "postgres://parley:hunter2@127.0.0.1:notaport/parley";
        let err = crate::open(url).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::BadUrl { url: u, .. } if u == "postgres://parley:***@127.0.0.1:notaport/parley"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn unknown_database_is_a_clear_error() {
        let server = parley_testkit::shared_pg();
        let url = format!(
            "postgres://parley:pw@127.0.0.1:{}/no_such_database",
            server.port
        );
        let message = crate::open(&url).await.unwrap_err().to_string();
        assert!(message.contains("no_such_database"), "{message}");
        assert!(!message.contains(":pw@"), "{message}");
    }
}
