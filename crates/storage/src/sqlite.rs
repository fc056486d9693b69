//! The SQLite backend: the embedded default for a single node.
//!
//! Files run in WAL mode with `synchronous=NORMAL` (a crash loses at most the last
//! transactions, never consistency) and a busy timeout so that a second process, such as
//! the admin CLI, waits instead of failing. Every write transaction starts with
//! `BEGIN IMMEDIATE`: a deferred transaction that upgrades from reader to writer can get
//! `SQLITE_BUSY` at once, without the busy timeout being consulted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rand::RngCore;
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::migrate::{self, Migration};
use crate::{
    now_unix, redact_password, AccountInfo, ImportReport, NewAccount, Result, Storage, StorageError,
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
const MIGRATIONS: &[Migration] = &[Migration {
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
}];

const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

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
///
/// `BEGIN IMMEDIATE` takes the write lock before reading the version, so a second
/// process opening the same file waits here and then finds nothing left to apply.
async fn migrate(pool: &SqlitePool) -> Result<usize> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    sqlx::query(CREATE_SCHEMA_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let pending = migrate::pending(MIGRATIONS, current)?;
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
        let result = sqlx::query(DELETE_ACCOUNT)
            .bind(host)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            return Err(not_found(username, host));
        }
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
        tx.commit().await.map_err(backend)?;
        tracing::debug!(%username, %host, "credentials replaced");
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
    async fn unknown_schemes_are_bad_urls_and_postgres_is_unsupported() {
        match crate::open("mysql://x").await.unwrap_err() {
            StorageError::BadUrl { url, reason } => {
                assert_eq!(url, "mysql://x");
                assert!(reason.contains("mysql"), "{reason}");
            }
            other => panic!("expected BadUrl, got {other:?}"),
        }
        let message = crate::open("mysql://x").await.unwrap_err().to_string();
        assert!(message.contains("`mysql://x`"), "{message}");

        let err = crate::open("postgres://parley:secret@db.example/parley")
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
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
