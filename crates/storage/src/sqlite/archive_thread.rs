//! A SQLite file's archive batches, written on a thread of their own through one rusqlite
//! connection.
//!
//! Why not sqlx, like every other statement: sqlx runs each statement on its connection's
//! worker thread and hands every result back to the async runtime, one thread switch and
//! one runtime wake-up per statement, and it looks up every placeholder's name when binding
//! (linear in the number of placeholders, so quadratic for a multi-row insert). Profiled at
//! 1000 archived messages per second, those were about a third of the archive's CPU. Here a
//! whole batch is one hand-over: the thread runs the transaction with statements prepared
//! once and kept, one row at a time (SQLite's rows cost no round trip), and answers once.
//!
//! The connection opens the same file in WAL mode as the pool's; every transaction here is
//! `BEGIN IMMEDIATE` with the same busy timeout, so it takes turns with the sqlx writer like
//! any second writer would. In-memory databases (tests) keep the sqlx path: their one
//! connection cannot be shared with another library.
//!
//! # The log and the merge
//!
//! A batch appends its records to `archive_log`, a table keyed by the sequence alone, and
//! the batch is acknowledged once that commit is done: the records are durable (as durable
//! as any commit of this WAL file) and every query reads them (it reads both tables). Once
//! the log holds about `log_rows` records, one transaction moves them into `archive` in
//! sequence order and empties the log.
//!
//! Why: SQLite writes each page a transaction dirtied to the WAL at its commit, and the
//! archive's two account-led indexes (time, contact) have a page per account where that
//! account's newest entries go. Written a batch at a time, every account in a batch cost a
//! page of each (4 KiB copied and checksummed for a record of a few hundred bytes), which
//! was most of the archive's CPU (docs/archive.md). The log is appended at one end only, a
//! page per dozen records; the merge dirties each account's index pages once per
//! `log_rows` records instead of once per batch.
//!
//! What it costs: a query scans the log (no index but the sequence), so `log_rows` bounds
//! that scan (`[storage] sqlite_archive_log_rows`); an id in the log is unique by its random
//! part, as everywhere else (the merge ignores a duplicate rather than stop).
//!
//! Bounds: batches waiting for the thread ([`QUEUE`]); each is already bounded by the
//! archive writer's `[mam] batch`; the log by `log_rows` (plus one batch).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::side::{self, sqlite};
use crate::archive::{batch_totals, stamp_batch, trim_reads, trim_upto};
use crate::archive::{ArchivePolicy, ArchiveRecord};
use crate::{Result, StorageError};

/// Batches waiting for the thread at most: the archive writer waits for each batch anyway,
/// so one is usually all there is.
const QUEUE: usize = 4;

const LAST_STAMP: &str = "SELECT last_stamp FROM archive_stats WHERE host = ?1 AND username = ?2";
/// The sequence's next value: past every row of both tables, and past every value the
/// archive's AUTOINCREMENT handed out (so that a deleted newest row's number is never reused).
const NEXT_SEQ: &str = "SELECT 1 + COALESCE(MAX(s), 0) FROM (
    SELECT MAX(seq) AS s FROM archive
    UNION ALL SELECT MAX(seq) FROM archive_log
    UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'archive')";
const APPEND: &str = "INSERT INTO archive_log
    (seq, host, username, id, stamp_ms, with_bare, with_resource, size, stanza)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// The log's extent, `(first, last)` sequence: its rows at most (trims leave gaps). Two
/// subqueries: SQLite reads one end of the key for a lone MIN or MAX, but scans the table
/// for both in one SELECT.
const LOG_EXTENT: &str =
    "SELECT (SELECT MIN(seq) FROM archive_log), (SELECT MAX(seq) FROM archive_log)";
const BUMP_STATS: &str = "INSERT INTO archive_stats (host, username, items, bytes, last_stamp)
    VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (host, username) DO UPDATE
    SET items = archive_stats.items + excluded.items, bytes = archive_stats.bytes + excluded.bytes,
        last_stamp = excluded.last_stamp
    RETURNING items, bytes";
const OLDEST: &str = "SELECT stamp_ms, seq, size FROM archive
    WHERE host = ?1 AND username = ?2 ORDER BY stamp_ms, seq LIMIT ?3";
/// An account's oldest logged records: all newer than its merged ones (the sequence and the
/// stamps only grow), so read only when the merged ones are too few.
const OLDEST_LOGGED: &str = "SELECT stamp_ms, seq, size FROM archive_log
    WHERE host = ?1 AND username = ?2 ORDER BY seq LIMIT ?3";
const DELETE_UPTO: &str = "DELETE FROM archive
    WHERE host = ?1 AND username = ?2 AND (stamp_ms, seq) <= (?3, ?4)";
const DELETE_LOGGED_UPTO: &str =
    "DELETE FROM archive_log WHERE host = ?1 AND username = ?2 AND seq <= ?3";
/// The last sequence of the next chunk of the merge, after `?1`.
const MERGE_CHUNK_END: &str =
    "SELECT MAX(seq) FROM (SELECT seq FROM archive_log WHERE seq > ?1 ORDER BY seq LIMIT ?2)";
/// Moves the log's rows in `(?1, ?2]` into the archive, in sequence order (the table's
/// b-tree grows at its end). A duplicate id (two random 71-bit parts alike within one
/// millisecond) keeps the first rather than stop every later merge.
const MERGE_CHUNK: &str = "INSERT OR IGNORE INTO archive
    (seq, host, username, id, stamp_ms, with_bare, with_resource, size, stanza)
    SELECT seq, host, username, id, stamp_ms, with_bare, with_resource, size, stanza
    FROM archive_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq";
const MERGE_CLEAR: &str = "DELETE FROM archive_log WHERE seq <= ?1";
/// Rows moved between two offers of the core to other threads during a merge.
const MERGE_CHUNK_ROWS: i64 = 64;
const SHRINK_STATS: &str = "UPDATE archive_stats SET items = items - ?3, bytes = bytes - ?4
    WHERE host = ?1 AND username = ?2";

struct Batch {
    records: Vec<ArchiveRecord>,
    policy: ArchivePolicy,
    done: oneshot::Sender<Result<()>>,
}

/// The handle: batches go in, each answered once written (or failed).
pub(crate) struct ArchiveThread {
    batches: mpsc::Sender<Batch>,
}

impl ArchiveThread {
    /// Opens a second connection to the (migrated, WAL) database at `path` and starts its
    /// thread, which ends once this handle is dropped and the queue is empty.
    /// `log_rows`: records the log holds before they are merged into the archive.
    pub(crate) fn start(
        path: &Path,
        busy: Duration,
        cache_kib: u32,
        log_rows: usize,
    ) -> Result<ArchiveThread> {
        // The automatic checkpoint is per connection, and this one commits most.
        let conn = side::connection(
            path,
            busy,
            &format!(
                "PRAGMA wal_autocheckpoint = 4000; PRAGMA cache_size = -{};",
                cache_kib.max(64)
            ),
        )?;
        let (batches, rx) = mpsc::channel(QUEUE);
        let log_rows = i64::try_from(log_rows.max(1)).unwrap_or(i64::MAX);
        side::spawn("parley-archive-sqlite", move || run(conn, rx, log_rows))?;
        Ok(ArchiveThread { batches })
    }

    /// Writes `records` in one transaction (see [`crate::Archive::archive_insert`]).
    pub(crate) async fn insert(
        &self,
        records: Vec<ArchiveRecord>,
        policy: &ArchivePolicy,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        let batch = Batch {
            records,
            policy: *policy,
            done,
        };
        let gone = || StorageError::Backend("the archive thread has stopped".into());
        self.batches.send(batch).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The thread's nice value: 19 is the lowest priority (Linux).
#[cfg(target_os = "linux")]
pub(crate) const ARCHIVE_NICE: i32 = 19;

/// The archive is background work. A batch is a transaction of a few milliseconds; on a busy
/// core, the threads that route stanzas must preempt it when a stanza arrives rather than
/// wait for the scheduler's slice to end (that wait was the archive's share of delivery
/// latency, docs/benchmarks.md). Back-pressure is unchanged: the writer's queue stays
/// bounded, and a starved thread slows its senders down rather than dropping anything.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a thread id names one thread for setpriority(PRIO_PROCESS).
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), ARCHIVE_NICE) {
            tracing::debug!(error = %e, "cannot lower the archive thread's priority");
        }
    }
}

/// Rows written between two offers of the core to other threads ([`give_way`]).
const YIELD_EVERY: usize = 8;

/// Lets a thread that routes stanzas run now if one is waiting. A low priority alone does
/// not do it: the scheduler lets the running thread finish its slice (milliseconds) before
/// a woken one preempts it, and a batch of a few hundred rows is several such slices; that
/// wait was the archive's whole share of delivery latency at 5,000 msg/s (docs/benchmarks.md).
/// With nobody waiting, the call returns at once (under a microsecond).
fn give_way() {
    std::thread::yield_now();
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Batch>, log_rows: i64) {
    lower_priority();
    while let Some(batch) = rx.blocking_recv() {
        let result = write(&mut conn, &batch.records, &batch.policy).map_err(sqlite);
        // The asker may have gone (its task was dropped): the batch is written regardless.
        let _ = batch.done.send(result);
        // After the answer: the merge delays the next batch, never this one's acks.
        if let Err(e) = merge_if_full(&mut conn, log_rows) {
            // The log stays, and every query reads it; the next batch tries again.
            tracing::warn!(error = %e, "merging the archive log failed");
        }
    }
}

/// Moves the log into the archive once it holds about `log_rows` records: one transaction
/// (so each account's index pages are written once), in chunks that offer the core to the
/// routing threads between them.
fn merge_if_full(conn: &mut Connection, log_rows: i64) -> rusqlite::Result<()> {
    let (first, last): (Option<i64>, Option<i64>) = conn
        .prepare_cached(LOG_EXTENT)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(());
    };
    if last - first + 1 < log_rows {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut moved = first - 1;
    loop {
        let end: Option<i64> = tx
            .prepare_cached(MERGE_CHUNK_END)?
            .query_row(params![moved, MERGE_CHUNK_ROWS], |row| row.get(0))?;
        // Only up to the extent read above: a batch of another process may have appended.
        let Some(end) = end.filter(|&e| e <= last) else {
            break;
        };
        tx.prepare_cached(MERGE_CHUNK)?
            .execute(params![moved, end])?;
        moved = end;
        give_way();
    }
    tx.prepare_cached(MERGE_CLEAR)?.execute(params![moved])?;
    give_way();
    tx.commit()
}

/// The batch's transaction: each account's newest stamp, the rows, the totals, and a trim
/// of the accounts past `policy`.
fn write(
    conn: &mut Connection,
    records: &[ArchiveRecord],
    policy: &ArchivePolicy,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut totals = batch_totals(records);
    {
        let mut last = tx.prepare_cached(LAST_STAMP)?;
        for (i, ((host, username), t)) in totals.iter_mut().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                give_way();
            }
            let stamp: Option<i64> = last
                .query_row(params![host, username], |row| row.get(0))
                .optional()?;
            if let Some(stamp) = stamp {
                t.2 = stamp;
            }
        }
    }
    let stamps = stamp_batch(records, &mut totals);
    let first_seq: i64 = tx
        .prepare_cached(NEXT_SEQ)?
        .query_row([], |row| row.get(0))?;
    {
        let mut append = tx.prepare_cached(APPEND)?;
        for (i, (r, stamp)) in records.iter().zip(stamps).enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                give_way();
            }
            append.execute(params![
                first_seq + i64::try_from(i).unwrap_or(i64::MAX),
                r.host,
                r.username,
                r.id,
                stamp,
                r.with.bare,
                r.with.resource.as_deref().unwrap_or_default(),
                i64::try_from(r.stanza.len()).unwrap_or(i64::MAX),
                r.stanza,
            ])?;
        }
    }
    for (i, ((host, username), (items, bytes, newest))) in totals.iter().enumerate() {
        if i % YIELD_EVERY == YIELD_EVERY - 1 {
            give_way();
        }
        let now: (i64, i64) = tx
            .prepare_cached(BUMP_STATS)?
            .query_row(params![host, username, items, bytes, newest], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        let Some(want) = trim_reads(now, policy) else {
            continue;
        };
        let read = |sql: &str, want: i64| {
            tx.prepare_cached(sql)?
                .query_map(params![host, username, want], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()
        };
        let mut oldest = read(OLDEST, want)?;
        let merged = oldest.len();
        if (merged as i64) < want {
            oldest.extend(read(OLDEST_LOGGED, want - merged as i64)?);
        }
        if let Some(((stamp, seq), gone_items, gone_bytes)) = trim_upto(now, policy, &oldest) {
            tx.prepare_cached(DELETE_UPTO)?
                .execute(params![host, username, stamp, seq])?;
            // The cut reaches into the log only when it is past every merged record.
            if oldest[merged..].iter().any(|&(_, s, _)| s <= seq) {
                tx.prepare_cached(DELETE_LOGGED_UPTO)?
                    .execute(params![host, username, seq])?;
            }
            tx.prepare_cached(SHRINK_STATS)?
                .execute(params![host, username, gone_items, gone_bytes])?;
        }
    }
    give_way();
    tx.commit()
}
