//! PostgreSQL-only checks that need no server: the schema history and errors that must not
//! leak the password. Those against a real PostgreSQL are in `tests/storage`
//! (`postgres.rs`), which a bare `cargo test` does not run.

use super::*;

#[test]
fn migrations_are_numbered_in_sequence() {
    crate::migrate::assert_well_formed(MIGRATIONS);
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
