//! Numbered schema migrations, shared bookkeeping for every backend.
//!
//! Each backend owns its SQL (types differ: BLOB vs BYTEA) but follows the same scheme:
//! a `schema_version` table lists applied versions; at open, inside one transaction that
//! excludes other writers, the backend applies every migration above the highest
//! recorded version. Two processes starting at once thus serialise, and the second finds
//! nothing left to do.

use crate::{Result, StorageError};

/// One step of a backend's schema history.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Strictly increasing from 1, never reused once released.
    pub version: i64,
    pub description: &'static str,
    /// Executed in order, each as one prepared statement.
    pub statements: &'static [&'static str],
}

/// The migrations still to apply to a database at `current` (None: fresh database).
///
/// A database newer than this build is refused rather than silently used: an older
/// binary would not know the invariants the newer schema relies on.
pub(crate) fn pending(migrations: &[Migration], current: Option<i64>) -> Result<&[Migration]> {
    let current = current.unwrap_or(0);
    let latest = migrations.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(StorageError::Backend(format!(
            "database schema version {current} is newer than this build supports ({latest})"
        )));
    }
    let first_pending = migrations.partition_point(|m| m.version <= current);
    Ok(&migrations[first_pending..])
}

/// Checks that versions run 1, 2, 3… so that `pending` can rely on their order.
#[cfg(test)]
pub(crate) fn assert_well_formed(migrations: &[Migration]) {
    for (i, m) in migrations.iter().enumerate() {
        assert_eq!(
            m.version,
            i64::try_from(i).unwrap() + 1,
            "migration `{}` is out of sequence",
            m.description
        );
        assert!(
            !m.statements.is_empty(),
            "migration {} has no statements",
            m.version
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &[Migration] = &[
        Migration {
            version: 1,
            description: "one",
            statements: &["SELECT 1"],
        },
        Migration {
            version: 2,
            description: "two",
            statements: &["SELECT 2"],
        },
        Migration {
            version: 3,
            description: "three",
            statements: &["SELECT 3"],
        },
    ];

    #[test]
    fn fresh_database_gets_everything() {
        assert_well_formed(THREE);
        assert_eq!(pending(THREE, None).unwrap().len(), 3);
        assert_eq!(pending(THREE, Some(0)).unwrap().len(), 3);
    }

    #[test]
    fn partially_migrated_database_gets_the_rest() {
        let rest = pending(THREE, Some(1)).unwrap();
        assert_eq!(
            rest.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn up_to_date_database_gets_nothing() {
        assert!(pending(THREE, Some(3)).unwrap().is_empty());
    }

    #[test]
    fn newer_database_is_refused() {
        let err = pending(THREE, Some(4)).unwrap_err();
        assert!(
            err.to_string().contains("schema version 4 is newer"),
            "{err}"
        );
    }
}
