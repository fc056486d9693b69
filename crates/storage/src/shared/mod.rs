//! What the SQL backends share: the [`Storage`](crate::Storage) method bodies, written
//! once in [`impl_sql_storage!`] (`methods.rs`, with the row readers of `rows.rs`), and the
//! small helpers they use.
//!
//! SQLite and PostgreSQL run the same statements in the same order for nearly every
//! method; only the SQL text, the pools, migrations and locking differ. A generic
//! implementation over `sqlx::Database` would need a dozen higher-ranked bounds (executors,
//! encoding and decoding of every type used) repeated on every item, since Rust does not
//! imply them; a declarative macro expanded in each backend module keeps the concrete sqlx
//! types and reads like the code it replaced.
//!
//! Where the macro expands, the backend module provides:
//! * the SQL constants named in the bodies whose text differs by dialect (`TOUCH_PASSWORD`,
//!   `COUNT_OFFLINE_BYTES`, …); the statements both run as written are in `sql.rs`;
//! * on the store: a `pool` field, `begin_write()` (a transaction that will write) and
//!   `begin_read()` (one snapshot for reads that span statements);
//! * the free functions where the backends really differ: `lock_user` (PostgreSQL's
//!   per-user advisory locks; SQLite's `BEGIN IMMEDIATE` already serialises every writer),
//!   and the batch writes `insert_accounts`, `insert_credentials`, `insert_roster_groups`,
//!   `put_pending_in`, `insert_blocked`, `delete_blocked` (one statement over arrays on
//!   PostgreSQL, one statement per row on SQLite);
//! * `archive_insert_backend`: PostgreSQL's is the shared `archive_insert_sqlx`; SQLite's
//!   hands a file's batches to a thread of their own (`sqlite/archive_thread.rs`);
//! * `credentials_backend`, `user_state_backend` and `private_set_backend`, a login's and
//!   logout's storage work: PostgreSQL's are the shared `*_sqlx`; SQLite's run a file's on
//!   a thread of their own (`sqlite/user_thread.rs`).

use parley_proto::sasl::ScramCredentials;

mod archive;
mod invites;
mod methods;
mod muc;
mod pep;
mod push;
mod rows;
pub(crate) mod sql;
mod uploads;
pub(crate) use archive::sql_archive_methods;
pub(crate) use invites::sql_invite_methods;
pub(crate) use methods::sql_storage_methods;
pub(crate) use muc::sql_muc_methods;
pub(crate) use pep::sql_pep_methods;
pub(crate) use push::sql_push_methods;
pub(crate) use rows::sql_rows;
pub(crate) use uploads::sql_upload_methods;

use crate::StorageError;

/// Key of the server secret in `meta`.
pub(crate) const SERVER_SECRET_KEY: &str = "server_secret";

/// Accounts per transaction in `import_accounts`: large enough that commits are not the
/// cost, small enough not to hold a write lock for long.
pub(crate) const IMPORT_BATCH: usize = 1000;

/// Which kind of one user's data a write serialises on. PostgreSQL keeps one advisory
/// lock per kind, so that a roster change never waits for an offline push; the value is
/// the first key of the two-key lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserLock {
    Roster = 1,
    Offline = 2,
    /// Blocklist changes touch several rows of one user in whatever order the caller
    /// lists them; two such changes at once could each wait for a row the other holds.
    Blocklist = 3,
    /// Private XML storage (XEP-0049): the namespace count is checked, then written.
    Private = 4,
    /// The message archive: appends, trims and expiry of one account (batches lock their
    /// accounts in sorted order, so two nodes' batches cannot wait for each other).
    Archive = 5,
    /// PEP nodes and items (XEP-0163): the node count is checked, then written.
    Pep = 6,
    /// Uploaded files (XEP-0363): the quota is checked, then the file recorded.
    Uploads = 7,
    /// Push registrations (XEP-0357): the count is checked, then written.
    Push = 8,
    /// Multi-user chat rooms (XEP-0045), keyed by (owner JID, service): the rooms the owner
    /// has are counted, then one created.
    MucOwner = 9,
}

pub(crate) fn backend(error: sqlx::Error) -> StorageError {
    StorageError::Backend(error.to_string())
}

pub(crate) fn not_found(username: &str, host: &str) -> StorageError {
    StorageError::NotFound {
        username: username.to_owned(),
        host: host.to_owned(),
    }
}

pub(crate) fn offline_count_from(count: i64) -> crate::Result<usize> {
    usize::try_from(count)
        .map_err(|_| StorageError::Backend(format!("corrupt offline message count {count}")))
}

/// A stored SCRAM iteration count, which must fit the protocol's `u32`.
pub(crate) fn iterations_from(count: i64, username: &str, host: &str) -> crate::Result<u32> {
    u32::try_from(count).map_err(|_| {
        StorageError::Backend(format!(
            "corrupt iteration count {count} for {username}@{host}"
        ))
    })
}

/// The `(host, username, credentials)` rows that `insert_credentials` takes.
pub(crate) fn credential_rows<'a>(
    username: &'a str,
    host: &'a str,
    creds: &'a [ScramCredentials],
) -> Vec<(&'a str, &'a str, &'a ScramCredentials)> {
    creds.iter().map(|cred| (host, username, cred)).collect()
}

/// Implements [`Storage`](crate::Storage) for `$store`, whose connections are `$conn` and
/// rows `$row`, from the SQL constants and functions of the module it is expanded in (see
/// the module documentation).
macro_rules! impl_sql_storage {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        /// Expanded from [`crate::shared::impl_sql_storage`]: the method bodies both SQL
        /// backends share, over this backend's SQL and hooks.
        mod sql_storage {
            use std::collections::{HashMap, HashSet};

            use parley_proto::sasl::{ScramCredentials, ScramHash};
            use rand::RngCore;
            use sqlx::Row;

            use $crate::shared::{
                backend, credential_rows, iterations_from, not_found, offline_count_from, UserLock,
                IMPORT_BATCH, SERVER_SECRET_KEY,
            };
            use $crate::{
                AccountInfo, ImportReport, NewAccount, OfflineMessage, Result, Roster,
                RosterChange, RosterItem, Storage, StorageError, TokenRecord, UserState,
            };

            // The SQL both backends run as written, then the backend's own SQL constants,
            // store type and hooks.
            use super::*;
            use $crate::shared::sql::*;

            $crate::shared::sql_rows!(conn = $conn, row = $row);
            $crate::shared::sql_storage_methods!($store);
            $crate::shared::sql_archive_methods!($store, conn = $conn, row = $row);
            $crate::shared::sql_pep_methods!($store, conn = $conn, row = $row);
            $crate::shared::sql_invite_methods!($store, conn = $conn, row = $row);
            $crate::shared::sql_upload_methods!($store, conn = $conn, row = $row);
            $crate::shared::sql_push_methods!($store, conn = $conn, row = $row);
            $crate::shared::sql_muc_methods!($store, conn = $conn, row = $row);
        }
    };
}

pub(crate) use impl_sql_storage;
