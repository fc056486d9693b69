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
//!
//! The `Storage` methods are the shared ones (`crate::shared`); this module holds the
//! pool, the migrations runner, the locks and the batch writes over arrays.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use parley_proto::sasl::ScramCredentials;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::migrate::Migration;
use crate::shared::{backend, impl_sql_storage, UserLock};
use crate::{redact_password, Result, StorageError};

mod sql;
use sql::*;

#[cfg(test)]
mod tests;

/// Connections per node; the test server allows 200, a default PostgreSQL 100.
const POOL_SIZE: u32 = 16;
/// How long opening waits for the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The advisory lock serialising migrations ("parley" in ASCII). Single-key advisory
/// locks do not overlap with the two-key ones of `lock_user`.
const MIGRATION_LOCK: i64 = 0x7061_726c_6579;

/// For the test suite's view of this backend (`testsuite::postgres`).
#[cfg(any(test, feature = "testsuite"))]
pub(crate) const MIGRATION_COUNT: usize = MIGRATIONS.len();

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

    /// READ COMMITTED; writes that read first take a per-user lock (`lock_user`).
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }

    /// A transaction whose statements all see one snapshot, so a roster is never read
    /// half-way through a change.
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>> {
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
    let applied = sql_storage::apply_pending(&mut tx, migrations).await?;
    tx.commit().await.map_err(backend)?;
    Ok(applied)
}

/// Serialises one kind of write for one user until the transaction ends, across nodes.
async fn lock_user(
    conn: &mut PgConnection,
    lock: UserLock,
    username: &str,
    host: &str,
) -> Result<()> {
    sqlx::query(LOCK_USER)
        .bind(lock as i32)
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

async fn insert_roster_groups(
    conn: &mut PgConnection,
    username: &str,
    host: &str,
    jid: &str,
    groups: &[String],
) -> Result<()> {
    let positions: Vec<i64> = (0_i64..).take(groups.len()).collect();
    sqlx::query(INSERT_ROSTER_GROUPS)
        .bind(host)
        .bind(username)
        .bind(jid)
        .bind(positions)
        .bind(groups)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// One upsert, so concurrent puts cannot collide; see `UPSERT_PENDING_IN`.
async fn put_pending_in(
    conn: &mut PgConnection,
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
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Blocks `jids` (free of repeats, so that each new jid comes back once); returns those
/// not blocked before, in no particular order.
async fn insert_blocked(
    conn: &mut PgConnection,
    username: &str,
    host: &str,
    jids: &[&str],
) -> Result<Vec<String>> {
    sqlx::query_scalar(INSERT_BLOCKED)
        .bind(host)
        .bind(username)
        .bind(jids)
        .fetch_all(conn)
        .await
        .map_err(backend)
}

/// Unblocks `jids`; returns those that were blocked, in no particular order.
async fn delete_blocked(
    conn: &mut PgConnection,
    username: &str,
    host: &str,
    jids: &[String],
) -> Result<Vec<String>> {
    sqlx::query_scalar(DELETE_BLOCKED)
        .bind(host)
        .bind(username)
        .bind(jids)
        .fetch_all(conn)
        .await
        .map_err(backend)
}

/// Archive batches go through sqlx: a fixed number of multi-row statements each.
async fn archive_insert_backend(
    store: &PgStorage,
    records: Vec<crate::archive::ArchiveRecord>,
    policy: &crate::archive::ArchivePolicy,
) -> Result<()> {
    sql_storage::archive_insert_sqlx(store, &records, policy).await
}

/// PostgreSQL keeps no archive log (`sql::ARCHIVE_LOG`).
fn archive_log_status_backend(_: &PgStorage) -> Option<crate::archive::ArchiveLogStatus> {
    None
}

async fn credentials_backend(
    store: &PgStorage,
    username: &str,
    host: &str,
    hash: parley_proto::sasl::ScramHash,
) -> Result<Option<ScramCredentials>> {
    sql_storage::credentials_sqlx(store, username, host, hash).await
}

async fn user_state_backend(
    store: &PgStorage,
    username: &str,
    host: &str,
) -> Result<crate::UserState> {
    sql_storage::user_state_sqlx(store, username, host).await
}

async fn private_set_backend(
    store: &PgStorage,
    username: &str,
    host: &str,
    ns: &str,
    xml: &str,
    max_namespaces: usize,
) -> Result<bool> {
    sql_storage::private_set_sqlx(store, username, host, ns, xml, max_namespaces).await
}

impl_sql_storage!(PgStorage, conn = PgConnection, row = PgRow);
