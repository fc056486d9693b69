//! The PostgreSQL storage backend against a real PostgreSQL started by the test kit: the
//! backend-independent suite, the `postgresql://` scheme, nodes migrating one fresh database
//! at once, two nodes sharing versions and caps, bulk import, a clear error for a missing
//! database. Builds parley-storage and the light test kit, not the server.

use std::sync::Arc;
use std::time::Duration;

use parley_proto::sasl::ScramHash;
use parley_storage::testsuite::{self, fake_credentials, postgres};
use parley_storage::{
    ImportReport, NewAccount, OfflineMessage, RosterItem, Storage, StorageError, Subscription,
};
use parley_testkit_services::shared_pg;

/// A connection of the test's own, for the SQL a store does not offer.
async fn raw_pool(url: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(url)
        .await
        .expect("connect to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_suite() {
    let url = shared_pg().database();
    testsuite::run_all(parley_storage::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_scheme_opens_too_and_nodes_share_the_database() {
    let url = shared_pg().database();
    let other = url.replacen("postgres://", "postgresql://", 1);
    let a = parley_storage::open(&url).await.unwrap();
    let b = parley_storage::open(&other).await.unwrap();
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
    let url = shared_pg().database();
    let opens: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { postgres::open_counting(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    let mut applied = 0;
    for open in opens {
        let (store, n) = open.await.unwrap().unwrap();
        applied += n;
        stores.push(store);
    }
    assert_eq!(
        applied,
        postgres::MIGRATIONS,
        "each migration runs exactly once"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_version")
        .fetch_one(&raw_pool(&url).await)
        .await
        .unwrap();
    assert_eq!(recorded, i64::try_from(postgres::MIGRATIONS).unwrap());
    stores[0]
        .create_account("alice", "localhost", &[])
        .await
        .unwrap();
    for store in &stores {
        assert!(store.account("alice", "localhost").await.unwrap().is_some());
    }
    let (_, again) = postgres::open_counting(&url).await.unwrap();
    assert_eq!(again, 0, "migrations ran again on reopen");
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let url = shared_pg().database();
    let (_storage, _) = postgres::open_counting(&url).await.unwrap();
    sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)")
        .execute(&raw_pool(&url).await)
        .await
        .unwrap();
    let err = postgres::open_counting(&url).await.unwrap_err();
    assert!(err.to_string().contains("schema version 999"), "{err}");
}

/// Two stores stand for two nodes: the database, not the pool, keeps versions and
/// the offline cap right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_versions_and_caps() {
    let url = shared_pg().database();
    let a: Arc<dyn Storage> = parley_storage::open(&url).await.unwrap();
    let b: Arc<dyn Storage> = parley_storage::open(&url).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..20_usize {
        let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
        handles.push(tokio::spawn(async move {
            let item = RosterItem {
                jid: format!("c{i}@localhost"),
                name: None,
                subscription: Subscription::None,
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
    let url = shared_pg().database();
    let storage = parley_storage::open(&url).await.unwrap();
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
async fn unknown_database_is_a_clear_error() {
    let server = shared_pg();
    let url = format!(
        "postgres://parley:pw@127.0.0.1:{}/no_such_database",
        server.port
    );
    let message = parley_storage::open(&url).await.unwrap_err().to_string();
    assert!(message.contains("no_such_database"), "{message}");
    assert!(!message.contains(":pw@"), "{message}");
}
