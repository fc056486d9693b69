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
//! Bounds: batches waiting for the thread ([`QUEUE`]); each is already bounded by the
//! archive writer's `[mam] batch`.

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
const INSERT: &str = "INSERT INTO archive
    (host, username, id, stamp_ms, with_bare, with_resource, size, stanza)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const BUMP_STATS: &str = "INSERT INTO archive_stats (host, username, items, bytes, last_stamp)
    VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (host, username) DO UPDATE
    SET items = archive_stats.items + excluded.items, bytes = archive_stats.bytes + excluded.bytes,
        last_stamp = excluded.last_stamp
    RETURNING items, bytes";
const OLDEST: &str = "SELECT stamp_ms, seq, size FROM archive
    WHERE host = ?1 AND username = ?2 ORDER BY stamp_ms, seq LIMIT ?3";
const DELETE_UPTO: &str = "DELETE FROM archive
    WHERE host = ?1 AND username = ?2 AND (stamp_ms, seq) <= (?3, ?4)";
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
    pub(crate) fn start(path: &Path, busy: Duration, cache_kib: u32) -> Result<ArchiveThread> {
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
        side::spawn("parley-archive-sqlite", move || run(conn, rx))?;
        Ok(ArchiveThread { batches })
    }

    /// Writes `records` in one transaction (see [`crate::Archive::archive_insert`]).
    pub(crate) async fn insert(
        &self,
        records: &[ArchiveRecord],
        policy: &ArchivePolicy,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        let batch = Batch {
            records: records.to_vec(),
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

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Batch>) {
    lower_priority();
    while let Some(batch) = rx.blocking_recv() {
        let result = write(&mut conn, &batch.records, &batch.policy).map_err(sqlite);
        // The asker may have gone (its task was dropped): the batch is written regardless.
        let _ = batch.done.send(result);
    }
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
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for (i, (r, stamp)) in records.iter().zip(stamps).enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                give_way();
            }
            insert.execute(params![
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
        let oldest = tx
            .prepare_cached(OLDEST)?
            .query_map(params![host, username, want], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()?;
        if let Some(((stamp, seq), gone_items, gone_bytes)) = trim_upto(now, policy, &oldest) {
            tx.prepare_cached(DELETE_UPTO)?
                .execute(params![host, username, stamp, seq])?;
            tx.prepare_cached(SHRINK_STATS)?
                .execute(params![host, username, gone_items, gone_bytes])?;
        }
    }
    give_way();
    tx.commit()
}
