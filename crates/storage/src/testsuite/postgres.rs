//! What tests of the PostgreSQL backend outside this crate need to see of it (they run
//! against a real server in `tests/storage`, which a bare `cargo test` does not build).

use std::sync::Arc;

use crate::{Result, Storage};

/// How many migrations the PostgreSQL schema history has.
pub const MIGRATIONS: usize = crate::postgres::MIGRATION_COUNT;

/// Opens the database at `url` as [`crate::open`] does, and also returns how many
/// migrations this open applied.
pub async fn open_counting(url: &str) -> Result<(Arc<dyn Storage>, usize)> {
    let (storage, applied) = crate::postgres::PgStorage::open(url).await?;
    Ok((Arc::new(storage), applied))
}
