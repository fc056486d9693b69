//! The SQLite backend: the embedded default for a single node.
//!
//! Files run in WAL mode with `synchronous=NORMAL` (a crash loses at most the last
//! transactions, never consistency) and a busy timeout so that a second process, such as
//! the admin CLI, waits instead of failing. Every write transaction starts with
//! `BEGIN IMMEDIATE`: a deferred transaction that upgrades from reader to writer can get
//! `SQLITE_BUSY` at once, without the busy timeout being consulted. That one writer at a
//! time is also what serialises a user's roster versions and offline cap, so SQLite needs
//! no per-user locks.
//!
//! The `Storage` methods are the shared ones (`crate::shared`); this module holds the
//! pool, the migrations runner and the row-at-a-time batch writes.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use parley_proto::sasl::ScramCredentials;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::migrate::Migration;
use crate::shared::sql::DELETE_PENDING_IN;
use crate::shared::{backend, impl_sql_storage, UserLock};
use crate::{redact_password, Result, StorageError};

mod archive_thread;
mod side;
mod sql;
mod user_thread;
use sql::*;

#[cfg(test)]
mod tests;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has a single writer anyway; a few connections let reads run alongside it.
const FILE_POOL_SIZE: u32 = 4;

/// A store in one SQLite database.
pub(crate) struct SqliteStorage {
    pool: SqlitePool,
    /// One connection that every transaction begun with `begin_write` takes (the archive's
    /// batches, rosters, accounts): SQLite has one writer anyway, and a connection that
    /// alone writes keeps its page cache across transactions. Spread over the pool, each
    /// commit emptied the others' caches, and every batch read its index pages afresh
    /// (32 KB read per archived message, measured).
    writer: SqlitePool,
    /// A file's archive batches (`archive_thread.rs`); None for an in-memory database.
    archive: Option<archive_thread::ArchiveThread>,
    /// A file's login work (`user_thread.rs`); None for an in-memory database.
    user: Option<user_thread::UserThread>,
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
            writer: pool.clone(),
            archive: None,
            user: None,
            pool,
            location: ":memory:".into(),
        })
    }

    /// Opens (creating if needed) the database file at `path`, named by `url` in errors.
    /// Also returns how many migrations this call applied.
    #[cfg(test)]
    pub(crate) async fn open_file(url: &str, path: PathBuf) -> Result<(Self, usize)> {
        Self::open_file_with(url, path, crate::StorageOptions::default()).await
    }

    /// [`Self::open_file`] with `tuning`.
    pub(crate) async fn open_file_with(
        url: &str,
        path: PathBuf,
        tuning: crate::StorageOptions,
    ) -> Result<(Self, usize)> {
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
            .busy_timeout(BUSY_TIMEOUT)
            // The statement journal of a multi-row insert stays in memory instead of
            // spilling to a temporary file; a checkpoint every 4000 pages (16 MiB) instead
            // of 1000 copies a page rewritten meanwhile once.
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "4000");
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options.clone())
            .await
            .map_err(|e| StorageError::Backend(format!("opening {}: {e}", path.display())))?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options.pragma(
                "cache_size",
                format!("-{}", tuning.sqlite_writer_cache_kib.max(64)),
            ));
        enable_wal(&pool, &path).await?;
        let applied = migrate(&pool).await?;
        let archive = archive_thread::ArchiveThread::start(
            &path,
            BUSY_TIMEOUT,
            tuning.sqlite_writer_cache_kib,
            tuning.sqlite_archive_log_rows,
        )?;
        let user = user_thread::UserThread::start(&path, BUSY_TIMEOUT, tuning.sqlite_user_queue)?;
        tracing::info!(path = %path.display(), migrations_applied = applied, "opened SQLite storage");
        Ok((
            Self {
                pool,
                writer,
                archive: Some(archive),
                user: Some(user),
                location: path.display().to_string(),
            },
            applied,
        ))
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.writer
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
    let applied = sql_storage::apply_pending(&mut tx, migrations).await?;
    tx.commit().await.map_err(backend)?;
    Ok(applied)
}

/// Nothing to take: `BEGIN IMMEDIATE` already holds the database's one write lock.
async fn lock_user(
    _conn: &mut SqliteConnection,
    _lock: UserLock,
    _username: &str,
    _host: &str,
) -> Result<()> {
    Ok(())
}

/// Creates the absent accounts among `accounts` (`(host, username)`, free of repeats);
/// returns those created.
async fn insert_accounts(
    conn: &mut SqliteConnection,
    accounts: &[(&str, &str)],
    now: i64,
) -> Result<HashSet<(String, String)>> {
    let mut created = HashSet::new();
    for &(host, username) in accounts {
        let result = sqlx::query(INSERT_ACCOUNT)
            .bind(host)
            .bind(username)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 1 {
            created.insert((host.to_owned(), username.to_owned()));
        }
    }
    Ok(created)
}

/// Stores `(host, username, credentials)` rows; of a hash listed twice for one account,
/// the last entry wins (the statement is an upsert).
async fn insert_credentials(
    conn: &mut SqliteConnection,
    rows: &[(&str, &str, &ScramCredentials)],
) -> Result<()> {
    for &(host, username, cred) in rows {
        sqlx::query(INSERT_CREDENTIALS)
            .bind(host)
            .bind(username)
            .bind(cred.hash.name())
            .bind(&cred.salt)
            .bind(i64::from(cred.iterations))
            .bind(&cred.stored_key)
            .bind(&cred.server_key)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

async fn insert_roster_groups(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
    jid: &str,
    groups: &[String],
) -> Result<()> {
    for (position, group) in (0_i64..).zip(groups) {
        sqlx::query(INSERT_ROSTER_GROUP)
            .bind(host)
            .bind(username)
            .bind(jid)
            .bind(position)
            .bind(group)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Delete and insert rather than update, so the request takes a new place in the arrival
/// order.
async fn put_pending_in(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
    jid: &str,
    stanza: &str,
) -> Result<()> {
    sqlx::query(DELETE_PENDING_IN)
        .bind(host)
        .bind(username)
        .bind(jid)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    sqlx::query(INSERT_PENDING_IN)
        .bind(host)
        .bind(username)
        .bind(jid)
        .bind(stanza)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Blocks `jids` (free of repeats); returns those not blocked before.
async fn insert_blocked(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
    jids: &[&str],
) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for &jid in jids {
        let result = sqlx::query(INSERT_BLOCKED)
            .bind(host)
            .bind(username)
            .bind(jid)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        if result.rows_affected() > 0 {
            added.push(jid.to_owned());
        }
    }
    Ok(added)
}

/// Unblocks `jids`; returns those that were blocked.
async fn delete_blocked(
    conn: &mut SqliteConnection,
    username: &str,
    host: &str,
    jids: &[String],
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for jid in jids {
        let result = sqlx::query(DELETE_BLOCKED)
            .bind(host)
            .bind(username)
            .bind(jid)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        // A repeat finds its row gone already, so it is reported once.
        if result.rows_affected() > 0 {
            removed.push(jid.clone());
        }
    }
    Ok(removed)
}

/// A file's archive batches go to its archive thread; an in-memory database's through sqlx.
async fn archive_insert_backend(
    store: &SqliteStorage,
    records: Vec<crate::archive::ArchiveRecord>,
    policy: &crate::archive::ArchivePolicy,
) -> Result<()> {
    match &store.archive {
        Some(thread) => thread.insert(records, policy).await,
        None => sql_storage::archive_insert_sqlx(store, &records, policy).await,
    }
}

/// A file's archive log, as its thread last saw it; an in-memory database has none.
fn archive_log_status_backend(store: &SqliteStorage) -> Option<crate::archive::ArchiveLogStatus> {
    store
        .archive
        .as_ref()
        .map(archive_thread::ArchiveThread::status)
}

/// A file's login work goes to its user thread; an in-memory database's through sqlx.
async fn credentials_backend(
    store: &SqliteStorage,
    username: &str,
    host: &str,
    hash: parley_proto::sasl::ScramHash,
) -> Result<Option<ScramCredentials>> {
    match &store.user {
        Some(user) => user.credentials(username, host, hash).await,
        None => sql_storage::credentials_sqlx(store, username, host, hash).await,
    }
}

/// As [`credentials_backend`].
async fn user_state_backend(
    store: &SqliteStorage,
    username: &str,
    host: &str,
) -> Result<crate::UserState> {
    match &store.user {
        Some(user) => user.user_state(username, host).await,
        None => sql_storage::user_state_sqlx(store, username, host).await,
    }
}

/// As [`credentials_backend`].
async fn private_set_backend(
    store: &SqliteStorage,
    username: &str,
    host: &str,
    ns: &str,
    xml: &str,
    max_namespaces: usize,
) -> Result<bool> {
    match &store.user {
        Some(user) => {
            user.private_set(username, host, ns, xml, max_namespaces)
                .await
        }
        None => sql_storage::private_set_sqlx(store, username, host, ns, xml, max_namespaces).await,
    }
}

impl_sql_storage!(SqliteStorage, conn = SqliteConnection, row = SqliteRow);
