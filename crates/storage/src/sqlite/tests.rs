//! SQLite-only checks: files, WAL, reopening, upgrades, two processes on one file.

use std::sync::Arc;

use parley_proto::sasl::ScramHash;

use super::*;
use crate::testsuite::{self, fake_credentials};
use crate::{ImportReport, NewAccount, OfflineMessage, Roster, RosterItem, Storage};

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
    crate::migrate::assert_well_formed(MIGRATIONS);
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

/// The file suite again with the archive log merged after every batch (everything in the
/// indexed archive) and after every three records (each account's archive in both tables,
/// so that pages, cursors, counts, trims and expiry cross from one to the other). The
/// default (`file_backend_passes_the_suite`) keeps the suite's whole archive in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_passes_the_suite_whatever_the_archive_log_holds() {
    for log_rows in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let (url, _) = file_url(&dir, "parley.db");
        let options = crate::StorageOptions {
            sqlite_archive_log_rows: log_rows,
            ..Default::default()
        };
        testsuite::run_all(crate::open_with(&url, options).await.unwrap()).await;
    }
}

/// A file store (in `dir`) whose archive log is merged every `log_rows` records.
async fn log_store(dir: &tempfile::TempDir, log_rows: usize) -> SqliteStorage {
    let (url, path) = file_url(dir, "parley.db");
    let options = crate::StorageOptions {
        sqlite_archive_log_rows: log_rows,
        ..Default::default()
    };
    SqliteStorage::open_file_with(&url, path, options)
        .await
        .unwrap()
        .0
}

/// Archives everything, at most `max_items` per account.
fn keep_all(max_items: u64) -> crate::ArchivePolicy {
    crate::ArchivePolicy {
        default: parley_proto::mam::Default::Always,
        max_items,
        max_bytes: 1 << 20,
    }
}

/// alice@example.org's record `id{n:03}` of a message with bob@example.org.
fn alice_record(n: i64, stamp_ms: i64, stanza: String) -> crate::ArchiveRecord {
    crate::ArchiveRecord {
        username: "alice".into(),
        host: "example.org".into(),
        id: format!("id{n:03}"),
        with: parley_proto::mam::With::parse("bob@example.org").unwrap(),
        stamp_ms,
        stanza,
    }
}

/// `k` more of alice's records (`alice_record`), numbered on from `n`, each stamped
/// `stamp` plus its number.
fn alice_batch(n: &mut i64, k: usize, stamp: i64) -> Vec<crate::ArchiveRecord> {
    (0..k)
        .map(|_| {
            *n += 1;
            alice_record(*n, stamp + *n, "<message/>".into())
        })
        .collect()
}

async fn table_rows(store: &SqliteStorage, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

/// The archive thread appends each batch to the log and moves the log into the archive once
/// it holds `sqlite_archive_log_rows` records, in sequence order; a query reads both and
/// pages across them in the archive's order (docs/archive.md, "The log").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_log_is_merged_in_order_and_read_with_the_archive() {
    use parley_proto::mam::{Page, Query, With};
    let dir = tempfile::tempdir().unwrap();
    let store = log_store(&dir, 8).await;
    store
        .create_account("alice", "example.org", &[])
        .await
        .unwrap();
    let policy = keep_all(1000);
    let record = |n: i64| alice_record(n, 1000 + n, format!("<message><body>{n}</body></message>"));
    // Batches of three: the third brings the log to nine (over eight), and the thread
    // merges it after answering, before it takes the fourth batch. So the fourth's answer
    // finds the merge done; the third's may not.
    let mut n = 0;
    for batch in 0..4 {
        let records: Vec<_> = (0..3)
            .map(|_| {
                n += 1;
                record(n)
            })
            .collect();
        crate::Archive::archive_insert(&store, records, &policy)
            .await
            .unwrap();
        let expect = match batch {
            0 => (0, 3),
            1 => (0, 6),
            2 => continue,
            _ => (9, 3),
        };
        let (merged, logged) = (
            table_rows(&store, "archive").await,
            table_rows(&store, "archive_log").await,
        );
        assert_eq!((merged, logged), expect, "after batch {batch}");
    }
    // The merged rows kept their sequence, and the log's continue it.
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT seq FROM archive UNION ALL SELECT seq FROM archive_log ORDER BY seq",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    // A page across both tables, a cursor in each, the count from both.
    let page = |page: Page, max: usize| {
        let store = &store;
        async move {
            let query = Query {
                with: Some(With::parse("bob@example.org").unwrap()),
                page,
                ..testsuite::archive::all(max)
            };
            crate::Archive::archive_query(store, "alice", "example.org", &query)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let ids = |p: &crate::ArchivePage| p.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let p = page(Page::After("id007".into()), 4).await;
    assert_eq!(ids(&p), ["id008", "id009", "id010", "id011"]);
    assert_eq!(p.count, Some(12));
    assert!(!p.complete);
    let p = page(Page::Before("id011".into()), 3).await;
    assert_eq!(ids(&p), ["id008", "id009", "id010"]);
    let p = page(Page::Last, 5).await;
    assert_eq!(ids(&p), ["id008", "id009", "id010", "id011", "id012"]);
    assert!(!p.complete, "paging backward, complete is the first page");
    let p = page(Page::Before("id003".into()), 5).await;
    assert_eq!(ids(&p), ["id001", "id002"]);
    assert!(p.complete);
    // Pages by index (forward, the archive first): one that starts among the merged rows
    // and ends in the log, and one that starts in the log (the merged ones all skipped).
    let p = page(Page::Index(7), 3).await;
    assert_eq!(ids(&p), ["id008", "id009", "id010"]);
    let p = page(Page::Index(10), 3).await;
    assert_eq!(ids(&p), ["id011", "id012"]);
    // The account's deletion takes its logged records too.
    crate::Storage::delete_account(&store, "alice", "example.org")
        .await
        .unwrap();
    assert_eq!(
        (
            table_rows(&store, "archive").await,
            table_rows(&store, "archive_log").await
        ),
        (0, 0)
    );
}

/// An account's totals row counts its merged records; the log's are counted from the log
/// until their merge adds them. The archive thread keeps only bounds of both between
/// merges, never trusted for a trim: records another connection removed (here an account
/// deleted and made again, and an expiry) leave them too high, which costs an exact
/// reading, and never a trim of records that should stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_totals_count_the_log_apart_and_bounds_never_trim_wrongly() {
    use crate::Archive;
    let dir = tempfile::tempdir().unwrap();
    let store = log_store(&dir, 8).await;
    let policy = keep_all(5);
    let mut n = 0;
    let stats = || {
        let pool = store.pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64)>("SELECT items, bytes FROM archive_stats")
                .fetch_optional(&pool)
                .await
                .unwrap()
        }
    };
    let ids = || {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM archive UNION ALL SELECT id FROM archive_log ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    store
        .create_account("alice", "example.org", &[])
        .await
        .unwrap();
    // Four in the log: no totals row yet, the size counts them.
    store
        .archive_insert(alice_batch(&mut n, 4, 1000), &policy)
        .await
        .unwrap();
    assert_eq!(stats().await, None);
    assert_eq!(
        store.archive_size("alice", "example.org").await.unwrap(),
        (4, 40)
    );
    // The account goes (its four with it) and comes back: the thread still counts four,
    // so three more look like seven, past the cap of five. Read exactly, they are three:
    // none is trimmed.
    store.delete_account("alice", "example.org").await.unwrap();
    store
        .create_account("alice", "example.org", &[])
        .await
        .unwrap();
    store
        .archive_insert(alice_batch(&mut n, 3, 1000), &policy)
        .await
        .unwrap();
    assert_eq!(ids().await, ["id005", "id006", "id007"]);
    // Past the cap for real: the oldest go, from the log (nothing is merged yet).
    store
        .archive_insert(alice_batch(&mut n, 4, 1000), &policy)
        .await
        .unwrap();
    assert_eq!(ids().await, ["id007", "id008", "id009", "id010", "id011"]);
    assert_eq!(
        store.archive_size("alice", "example.org").await.unwrap(),
        (5, 50)
    );
    // With room to grow, the log's extent reaches eight and the thread merges it after
    // answering that batch (so before it takes the next): the totals row then counts the
    // eight it moved, and the next one is in the log.
    let roomy = crate::ArchivePolicy {
        max_items: 100,
        ..policy
    };
    store
        .archive_insert(alice_batch(&mut n, 1, 1000), &roomy)
        .await
        .unwrap();
    store
        .archive_insert(alice_batch(&mut n, 2, 1000), &roomy)
        .await
        .unwrap();
    store
        .archive_insert(alice_batch(&mut n, 1, 1000), &roomy)
        .await
        .unwrap();
    assert_eq!(stats().await, Some((8, 80)));
    assert_eq!(
        store.archive_size("alice", "example.org").await.unwrap(),
        (9, 90)
    );
    // Expiry takes merged and logged records alike; the totals row loses only the merged.
    store
        .archive_insert(alice_batch(&mut n, 2, 1_000_000), &roomy)
        .await
        .unwrap();
    assert_eq!(store.archive_expire(500_000).await.unwrap(), 9);
    assert_eq!(ids().await, ["id016", "id017"]);
    assert_eq!(stats().await, None, "every merged record expired");
    assert_eq!(
        store.archive_size("alice", "example.org").await.unwrap(),
        (2, 20)
    );
}

/// A log whose merges keep failing (here a trigger refuses every insert into the archive;
/// appends to the log still work) is bounded: past four times `sqlite_archive_log_rows`
/// the thread refuses batches (their messages stay delivered, counted as failed by the
/// writer) instead of growing the file and every query's scan of the log; and takes them
/// again once a merge succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_log_is_bounded_while_merges_fail() {
    use crate::Archive;
    let dir = tempfile::tempdir().unwrap();
    let store = log_store(&dir, 2).await;
    let policy = keep_all(1000);
    let mut n = 0;
    sqlx::query(
        "CREATE TRIGGER no_merge BEFORE INSERT ON archive
         BEGIN SELECT RAISE(ABORT, 'the test refuses merges'); END",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    // Four batches of two reach eight rows, four times the two the log should hold.
    for _ in 0..4 {
        store
            .archive_insert(alice_batch(&mut n, 2, 1000), &policy)
            .await
            .unwrap();
    }
    assert_eq!(table_rows(&store, "archive_log").await, 8);
    let refused = store
        .archive_insert(alice_batch(&mut n, 2, 1000), &policy)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("sqlite_archive_log_rows"),
        "{refused}"
    );
    assert_eq!(
        table_rows(&store, "archive_log").await,
        8,
        "nothing more was appended"
    );
    // What `/metrics` shows meanwhile: every merge failed (one after each batch, and one
    // more before the refused one), the log's extent, the refusal.
    let status = store.archive_log_status().unwrap();
    assert_eq!((status.records, status.merges), (8, 0), "{status:?}");
    assert!(status.merge_failures >= 5, "{status:?}");
    assert_eq!(status.refused_batches, 1, "{status:?}");
    // The fault goes: the next batch's merge runs first, and the batch is taken (one
    // record, so that no merge follows it while the test counts).
    sqlx::query("DROP TRIGGER no_merge")
        .execute(&store.pool)
        .await
        .unwrap();
    let one: Vec<_> = alice_batch(&mut n, 2, 1000).into_iter().take(1).collect();
    store.archive_insert(one, &policy).await.unwrap();
    assert_eq!(table_rows(&store, "archive").await, 8);
    // The merge before the batch counted; the log's size is read again after the answer
    // (so it is 0 or already 1 here).
    let status = store.archive_log_status().unwrap();
    assert_eq!(status.merges, 1, "{status:?}");
    assert!(status.records <= 1, "{status:?}");
    let p = store
        .archive_query("alice", "example.org", &testsuite::archive::all(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.items.len(), 9);
}

/// Migration 17: a totals row no longer counts its account's logged records.
#[tokio::test]
async fn migration_seventeen_takes_the_log_out_of_the_totals() {
    use crate::Archive;
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrate_with(&pool, &MIGRATIONS[..16]).await.unwrap();
        for (table, seq) in [("archive", 1), ("archive_log", 2), ("archive_log", 3)] {
            sqlx::query(&format!(
                "INSERT INTO {table} (seq, host, username, id, stamp_ms, with_bare, with_resource, size, stanza)
                 VALUES ($1, 'localhost', 'alice', $2, $1, 'bob@localhost', '', 10, '<message/>')"
            ))
            .bind(seq)
            .bind(format!("id{seq}"))
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO archive_stats (host, username, items, bytes, last_stamp)
             VALUES ('localhost', 'alice', 3, 30, 3)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let (storage, applied) = SqliteStorage::open_file(&url, path).await.unwrap();
    assert_eq!(applied, MIGRATIONS.len() - 16);
    let row: (i64, i64) = sqlx::query_as("SELECT items, bytes FROM archive_stats")
        .fetch_one(&storage.pool)
        .await
        .unwrap();
    assert_eq!(row, (1, 10));
    assert_eq!(
        storage.archive_size("alice", "localhost").await.unwrap(),
        (3, 30)
    );
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

/// A database left by the release before rosters gains their tables on open, keeps
/// its accounts, and then serves rosters, requests and offline messages.
#[tokio::test]
async fn schema_one_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        assert_eq!(migrate_with(&pool, &MIGRATIONS[..1]).await.unwrap(), 1);
        let old = SqliteStorage {
            writer: pool.clone(),
            archive: None,
            user: None,
            pool,
            location: "schema one".into(),
        };
        old.create_account("alice", "localhost", &[]).await.unwrap();
        old.pool.close().await;
    }

    let (storage, applied) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
    assert_eq!(applied, MIGRATIONS.len() - 1);
    assert!(storage
        .account("alice", "localhost")
        .await
        .unwrap()
        .is_some());
    let item = RosterItem {
        jid: "bob@localhost".into(),
        name: Some("Bob".into()),
        subscription: crate::Subscription::Both,
        ask: false,
        groups: vec!["Friends".into()],
    };
    assert_eq!(
        storage
            .roster_put("alice", "localhost", &item)
            .await
            .unwrap(),
        1
    );
    storage
        .pending_in_put("alice", "localhost", "carol@localhost", "<presence/>")
        .await
        .unwrap();
    let msg = OfflineMessage {
        stamp_ms: 1,
        stanza: "<message/>".into(),
    };
    assert!(storage
        .offline_push("alice", "localhost", &msg, 10, usize::MAX)
        .await
        .unwrap());
    storage.pool.close().await;

    // Everything survives a reopen, which applies nothing more.
    let (storage, applied) = SqliteStorage::open_file(&url, path).await.unwrap();
    assert_eq!(applied, 0);
    assert_eq!(
        storage.roster("alice", "localhost").await.unwrap(),
        Roster {
            version: 1,
            items: vec![item]
        }
    );
    assert_eq!(
        storage.pending_in("alice", "localhost").await.unwrap(),
        vec![("carol@localhost".to_owned(), "<presence/>".to_owned())]
    );
    assert_eq!(
        storage.offline_take("alice", "localhost").await.unwrap(),
        vec![msg]
    );
}

/// An archive written before migration 9 (stamps in any order) comes out of it with stamps
/// that never go back in archive order, and the account's newest stamp carries over to the
/// next batch, so time filters (XEP-0313 §4.1.2) find every message.
#[tokio::test]
async fn archives_before_migration_nine_get_ordered_stamps() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrate_with(&pool, &MIGRATIONS[..8]).await.unwrap();
        for (seq, stamp) in [(1, 100), (2, 300), (3, 200), (4, 400)] {
            sqlx::query(
                "INSERT INTO archive (seq, host, username, id, stamp_ms, with_bare, with_resource, size, stanza)
                 VALUES ($1, 'localhost', 'alice', $2, $3, 'bob@localhost', '', 1, '<message/>')",
            )
            .bind(seq)
            .bind(format!("id{seq}"))
            .bind(stamp)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO archive_stats (host, username, items, bytes) VALUES ('localhost', 'alice', 4, 4)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let (storage, applied) = SqliteStorage::open_file(&url, path).await.unwrap();
    assert_eq!(applied, MIGRATIONS.len() - 8);
    let stamps: Vec<i64> = sqlx::query_scalar("SELECT stamp_ms FROM archive ORDER BY seq")
        .fetch_all(&storage.pool)
        .await
        .unwrap();
    assert_eq!(stamps, [100, 300, 300, 400]);
    let last: i64 = sqlx::query_scalar("SELECT last_stamp FROM archive_stats")
        .fetch_one(&storage.pool)
        .await
        .unwrap();
    assert_eq!(last, 400);
}

/// Two stores on one file stand for two processes (a node and the admin CLI): the
/// write lock, not the pool, keeps versions and the offline cap right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_versions_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    let (a, _) = SqliteStorage::open_file(&url, path.clone()).await.unwrap();
    let (b, _) = SqliteStorage::open_file(&url, path).await.unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut handles = Vec::new();
    for i in 0..8_usize {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        handles.push(tokio::spawn(async move {
            let item = RosterItem {
                jid: format!("c{i}@localhost"),
                name: None,
                subscription: crate::Subscription::None,
                ask: false,
                groups: vec![],
            };
            let version = store.roster_put("alice", "localhost", &item).await?;
            let msg = OfflineMessage {
                stamp_ms: 0,
                stanza: format!("<message id='{i}'/>"),
            };
            let stored = store
                .offline_push("alice", "localhost", &msg, 3, usize::MAX)
                .await?;
            Ok::<_, StorageError>((version, stored))
        }));
    }
    let mut versions = Vec::new();
    let mut stored = 0;
    for handle in handles {
        let (version, was_stored) = handle.await.unwrap().unwrap();
        versions.push(version);
        stored += usize::from(was_stored);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    assert_eq!(stored, 3);
    assert_eq!(b.offline_count("alice", "localhost").await.unwrap(), 3);
    assert_eq!(a.roster("alice", "localhost").await.unwrap().version, 8);
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
async fn unknown_schemes_are_bad_urls() {
    match crate::open("mysql://x").await.unwrap_err() {
        StorageError::BadUrl { url, reason } => {
            assert_eq!(url, "mysql://x");
            assert!(reason.contains("mysql"), "{reason}");
        }
        other => panic!("expected BadUrl, got {other:?}"),
    }
    let message = crate::open("mysql://x").await.unwrap_err().to_string();
    assert!(message.contains("`mysql://x`"), "{message}");
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

/// A file has two writing connections (the archive's thread and the pool's writer): they
/// take turns on SQLite's one write lock, so archive batches racing roster writes all
/// commit, none fails busy, and the archive's totals match its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_thread_and_pool_writer_take_turns() {
    use crate::archive::{Archive, ArchivePolicy, ArchiveRecord};
    use parley_proto::mam::{Default as ArchiveDefault, With};
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    let (store, _) = SqliteStorage::open_file(&url, path).await.unwrap();
    assert!(
        store.archive.is_some(),
        "a file's archive has its own thread"
    );
    let store = Arc::new(store);
    store
        .create_account("alice", "localhost", &[])
        .await
        .unwrap();
    let policy = ArchivePolicy {
        default: ArchiveDefault::Always,
        max_items: 1_000_000,
        max_bytes: u64::MAX,
    };
    let archive = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for batch in 0..50_i64 {
                let records: Vec<ArchiveRecord> = (0..20_i64)
                    .map(|n| ArchiveRecord {
                        username: "alice".into(),
                        host: "localhost".into(),
                        id: parley_proto::mam::new_id(),
                        with: With {
                            bare: "bob@localhost".into(),
                            resource: None,
                        },
                        stamp_ms: batch * 100 + n,
                        stanza: format!("<message><body>{batch}/{n}</body></message>"),
                    })
                    .collect();
                store.archive_insert(records, &policy).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let rosters = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..200_usize {
                let item = RosterItem {
                    jid: format!("c{i}@localhost"),
                    name: None,
                    subscription: crate::Subscription::None,
                    ask: false,
                    groups: vec![],
                };
                store.roster_put("alice", "localhost", &item).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    archive.await.unwrap().expect("every archive batch commits");
    rosters.await.unwrap().expect("every roster write commits");
    assert_eq!(
        store.archive_size("alice", "localhost").await.unwrap().0,
        1000
    );
    assert_eq!(
        store
            .roster("alice", "localhost")
            .await
            .unwrap()
            .items
            .len(),
        200
    );
}

/// The archive thread runs at the lowest priority (nice 19), so that on a busy core the
/// threads routing stanzas preempt a batch being written (issue 16: delivery latency with
/// the archive on). Checked on the thread itself, after it has written a batch.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn archive_thread_runs_at_the_lowest_priority() {
    use crate::archive::{Archive, ArchivePolicy, ArchiveRecord};
    use parley_proto::mam::{Default as ArchiveDefault, With};
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir, "parley.db");
    let (store, _) = SqliteStorage::open_file(&url, path).await.unwrap();
    store
        .create_account("alice", "localhost", &[])
        .await
        .unwrap();
    let policy = ArchivePolicy {
        default: ArchiveDefault::Always,
        max_items: 10,
        max_bytes: 1 << 20,
    };
    let record = ArchiveRecord {
        username: "alice".into(),
        host: "localhost".into(),
        id: parley_proto::mam::new_id(),
        with: With::parse("bob@localhost").unwrap(),
        stamp_ms: 1,
        stanza: "<message xmlns='jabber:client'><body>x</body></message>".into(),
    };
    // Answered by the thread, so it has run its start-up by now.
    store.archive_insert(vec![record], &policy).await.unwrap();
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread's name.
        if comm.trim_end() != "parley-archive-" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the parenthesized name: state is field 3, nice field 19 (proc(5)).
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        nices.push(nice);
    }
    assert!(!nices.is_empty(), "the archive thread is running");
    assert!(
        nices.iter().all(|&n| n == archive_thread::ARCHIVE_NICE),
        "archive threads' nice values: {nices:?}"
    );
}
