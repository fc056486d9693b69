//! What the threads beside the sqlx pool share (`archive_thread.rs`, `user_thread.rs`): a
//! rusqlite connection to the same WAL file with the pool's settings, the thread itself,
//! and rusqlite's errors in the store's terms.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, StorageError};

/// Opens the (migrated, WAL) database at `path` with the pool's busy timeout and settings
/// (`SqliteStorage::open_file_with`), then `pragmas`; prepared statements are kept.
pub(super) fn connection(path: &Path, busy: Duration, pragmas: &str) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(busy).map_err(sqlite)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; {pragmas}"
    ))
    .map_err(sqlite)?;
    // Room for every statement of the archive thread (`archive_thread.rs`: 16 now), so that none
    // is parsed again after an eviction.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Runs `body` on a thread named `name` (what `top -H` shows).
pub(super) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(drop)
        .map_err(|e| StorageError::Backend(format!("starting the {name} thread: {e}")))
}

pub(super) fn sqlite(e: rusqlite::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}
