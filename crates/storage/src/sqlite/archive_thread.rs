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
//! # The totals
//!
//! An account's `archive_stats` row (items, bytes, newest stamp) counts its records in
//! `archive` only: the merge adds the log's, counted from the log itself, in its
//! transaction. A batch writes no per-account row at all: the thread remembers, between
//! merges, each account's merged totals as read and what the log holds ([`Known`]), which
//! is enough to stamp the batch and to see that an account is within its caps. Those
//! statements and their pages were most of a batch's work besides the rows themselves.
//! What the thread remembers is only ever too high (other connections only remove records),
//! so an account that may be past its caps is read exactly before it is trimmed.
//!
//! Bounds: batches waiting for the thread ([`QUEUE`]); each is already bounded by the
//! archive writer's `[mam] batch`; the log by `log_rows` (plus one batch) while merges
//! succeed, and by [`LOG_OVERFLOW`] times that while they fail (batches are refused past
//! it); what the thread remembers per account by the accounts in the log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::side::{self, sqlite};
use crate::archive::{batch_totals, stamp_batch, trim_reads, trim_upto};
use crate::archive::{ArchivePolicy, ArchiveRecord};
use crate::{Result, StorageError};

/// Batches waiting for the thread at most: the archive writer waits for each batch anyway,
/// so one is usually all there is.
const QUEUE: usize = 4;

/// An account's merged totals (`archive_stats` counts the rows of `archive` only, never the log's).
const MERGED: &str =
    "SELECT items, bytes, last_stamp FROM archive_stats WHERE host = ?1 AND username = ?2";
/// An account's logged totals, read only when its bound says it may be past its caps (the
/// log has no index but the sequence: a scan of at most `log_rows` rows).
const LOGGED: &str = "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM archive_log
    WHERE host = ?1 AND username = ?2";
/// Every account's logged totals, when the thread starts and after a merge.
const LOGGED_ALL: &str = "SELECT host, username, COUNT(*), SUM(size), MAX(stamp_ms)
    FROM archive_log GROUP BY host, username";
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
/// The merged rows' totals, added to their accounts' in the merge's transaction: counted from
/// the log itself, so what other connections removed from it (expiry, account deletion) is
/// never counted.
const MERGE_STATS: &str = "INSERT INTO archive_stats (host, username, items, bytes, last_stamp)
    SELECT host, username, COUNT(*), SUM(size), MAX(stamp_ms) FROM archive_log
    WHERE seq >= ?1 AND seq <= ?2 GROUP BY host, username
    ON CONFLICT (host, username) DO UPDATE
    SET items = archive_stats.items + excluded.items, bytes = archive_stats.bytes + excluded.bytes,
        last_stamp = MAX(archive_stats.last_stamp, excluded.last_stamp)";
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
    status: Arc<Status>,
}

/// What the thread tells `/metrics` ([`crate::ArchiveLogStatus`]), written by the thread only.
#[derive(Debug, Default)]
struct Status {
    records: AtomicU64,
    merges: AtomicU64,
    merge_failures: AtomicU64,
    refused_batches: AtomicU64,
}

impl Status {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
        let status = Arc::new(Status::default());
        let theirs = status.clone();
        side::spawn("parley-archive-sqlite", move || {
            run(conn, rx, log_rows, &theirs)
        })?;
        Ok(ArchiveThread { batches, status })
    }

    /// The log's size and merges so far.
    pub(crate) fn status(&self) -> crate::ArchiveLogStatus {
        let s = &self.status;
        crate::ArchiveLogStatus {
            records: s.records.load(Ordering::Relaxed),
            merges: s.merges.load(Ordering::Relaxed),
            merge_failures: s.merge_failures.load(Ordering::Relaxed),
            refused_batches: s.refused_batches.load(Ordering::Relaxed),
        }
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

/// A `BEGIN IMMEDIATE` transaction whose three statements are prepared once and kept:
/// rusqlite's `Transaction` parses `BEGIN` and `COMMIT` again for every batch, which was
/// about 5 % of this thread at 1000 archived messages per second. Rolled back when dropped
/// unfinished (an error, or a `COMMIT` that failed and left it open).
struct Immediate<'c>(&'c Connection);

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self(conn))
    }

    fn commit(self) -> rusqlite::Result<()> {
        self.0.prepare_cached("COMMIT")?.execute([]).map(drop)
    }
}

impl std::ops::Deref for Immediate<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            // Nothing to answer with: the batch already failed, and a connection whose
            // rollback failed fails its next `BEGIN` too, which is reported.
            let _ = self
                .0
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Batch>, log_rows: i64, status: &Status) {
    lower_priority();
    let mut known = match Known::read(&conn) {
        Ok(known) => known,
        Err(e) => {
            // Starting from nothing known only makes the bounds too low until the next
            // merge reads the log again: caps enforced late, never a record trimmed wrongly.
            tracing::warn!(error = %e, "reading the archive log failed");
            Known::default()
        }
    };
    // The log's rows while merges fail; None once one succeeds.
    let mut unmerged: Option<i64> = None;
    let most = log_rows.saturating_mul(LOG_OVERFLOW);
    let logged = |rows: i64| {
        let rows = u64::try_from(rows).unwrap_or(0);
        status.records.store(rows, Ordering::Relaxed);
    };
    // The log's rows when the merge failed; None when it was not needed or succeeded.
    let merge =
        |conn: &mut Connection, known: &mut Known| match merge_if_full(conn, log_rows, known) {
            Ok((merged, rows)) => {
                if merged {
                    Status::bump(&status.merges);
                }
                logged(rows);
                None
            }
            Err(e) => {
                // The log stays, and every query reads it; the next batch tries again.
                Status::bump(&status.merge_failures);
                tracing::warn!(error = %e, "merging the archive log failed");
                let rows = log_extent(conn).ok().map(|(rows, _)| rows);
                rows.inspect(|&rows| logged(rows))
            }
        };
    while let Some(batch) = rx.blocking_recv() {
        if unmerged.is_some_and(|rows| rows >= most) {
            // Refused only if the merge fails again now.
            unmerged = merge(&mut conn, &mut known);
        }
        let result = match unmerged {
            Some(rows) if rows >= most => {
                Status::bump(&status.refused_batches);
                Err(StorageError::Backend(format!(
                    "the archive log holds {rows} records it cannot merge \
                 ({LOG_OVERFLOW} x [storage] sqlite_archive_log_rows): batches are refused \
                 until a merge succeeds"
                )))
            }
            _ => write(&mut conn, &batch.records, &batch.policy, &mut known).map_err(sqlite),
        };
        // The asker may have gone (its task was dropped): the batch is written regardless.
        let _ = batch.done.send(result);
        // After the answer: the merge delays the next batch, never this one's acks.
        unmerged = merge(&mut conn, &mut known);
    }
}

/// How many times `log_rows` the log may hold while its merges fail. Past it batches fail
/// (their messages stay delivered, unarchived, counted and logged by the archive writer),
/// so that neither the file nor every query's scan of the log grows without bound.
const LOG_OVERFLOW: i64 = 4;

/// The log's extent: `(rows at most, last sequence)`, `(0, _)` when it is empty.
fn log_extent(conn: &Connection) -> rusqlite::Result<(i64, Option<i64>)> {
    let (first, last): (Option<i64>, Option<i64>) = conn
        .prepare_cached(LOG_EXTENT)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(match (first, last) {
        (Some(first), Some(last)) => (last - first + 1, Some(last)),
        _ => (0, None),
    })
}

type Account = (String, String);

/// An account's records, `(items, bytes, newest stamp)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    items: i64,
    bytes: i64,
    last_stamp: i64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            items: 0,
            bytes: 0,
            last_stamp: i64::MIN,
        }
    }
}

/// What the thread knows of the accounts it writes, so that a batch reads and writes no
/// per-account row (the totals' statements were a third of a batch, and their pages a
/// share of its commit). Both maps are bounds, never exact counts trusted for a trim:
/// other connections only ever remove an account's records (expiry, account and room
/// deletion, all through the pool), so what is known here can only be too high, which
/// costs an exact reading, never a wrong trim; and a stamp remembered too high only keeps
/// new stamps above it, as a real newer record would. Emptied at each merge, so they hold
/// at most the accounts of `log_rows` records (plus a batch).
#[derive(Debug, Default)]
struct Known {
    /// `archive_stats` rows as last read (the merged records).
    merged: HashMap<Account, Tally>,
    /// What the log holds per account.
    logged: HashMap<Account, Tally>,
}

impl Known {
    /// The log's totals per account, read once (at start and after a merge); the merged
    /// totals are read as accounts come.
    fn read(conn: &Connection) -> rusqlite::Result<Known> {
        let mut logged = HashMap::new();
        let mut stmt = conn.prepare_cached(LOGGED_ALL)?;
        let rows = stmt.query_map([], |row| {
            Ok((
                (row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                Tally {
                    items: row.get(2)?,
                    bytes: row.get(3)?,
                    last_stamp: row.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (account, tally) = row?;
            logged.insert(account, tally);
        }
        Ok(Known {
            merged: HashMap::new(),
            logged,
        })
    }
}

/// Moves the log into the archive once it holds about `log_rows` records: one transaction
/// (so each account's index pages are written once), in chunks that offer the core to the
/// routing threads between them, and the moved records' totals added to their accounts'.
/// Whether it merged, and the log's rows afterwards (read once per batch: the extent that
/// decides is also what `/metrics` shows).
fn merge_if_full(
    conn: &mut Connection,
    log_rows: i64,
    known: &mut Known,
) -> rusqlite::Result<(bool, i64)> {
    let (rows, Some(last)) = log_extent(conn)? else {
        return Ok((false, 0));
    };
    if rows < log_rows {
        return Ok((false, rows));
    }
    let first = last - rows + 1;
    let tx = Immediate::begin(conn)?;
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
    tx.prepare_cached(MERGE_STATS)?
        .execute(params![first, moved])?;
    give_way();
    tx.prepare_cached(MERGE_CLEAR)?.execute(params![moved])?;
    give_way();
    tx.commit()?;
    // What is left in the log (nothing, unless another process appended) is read afresh,
    // and the merged totals as accounts come again.
    *known = Known::read(conn)?;
    Ok((true, log_extent(conn)?.0))
}

/// The batch's transaction: the rows, and a trim of the accounts past `policy`. What
/// `known` learns is kept only once it commits.
fn write(
    conn: &mut Connection,
    records: &[ArchiveRecord],
    policy: &ArchivePolicy,
    known: &mut Known,
) -> rusqlite::Result<()> {
    let tx = Immediate::begin(conn)?;
    let mut totals = batch_totals(records);
    // Each account's (merged, logged) as known before the batch, in `totals`' order.
    let mut before = Vec::with_capacity(totals.len());
    {
        let mut read = tx.prepare_cached(MERGED)?;
        for (i, ((host, username), t)) in totals.iter_mut().enumerate() {
            let account = ((*host).to_owned(), (*username).to_owned());
            let merged = match known.merged.get(&account) {
                Some(&m) => m,
                None => {
                    if i % YIELD_EVERY == YIELD_EVERY - 1 {
                        give_way();
                    }
                    read.query_row(params![host, username], |row| {
                        Ok(Tally {
                            items: row.get(0)?,
                            bytes: row.get(1)?,
                            last_stamp: row.get(2)?,
                        })
                    })
                    .optional()?
                    .unwrap_or_default()
                }
            };
            let logged = known.logged.get(&account).copied().unwrap_or_default();
            t.2 = merged.last_stamp.max(logged.last_stamp);
            before.push((account, merged, logged));
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
    let mut after = Vec::with_capacity(before.len());
    for ((account, merged, logged), (items, bytes, newest)) in
        before.into_iter().zip(totals.values())
    {
        let logged = Tally {
            items: logged.items + items,
            bytes: logged.bytes + bytes,
            last_stamp: *newest,
        };
        let bound = (merged.items + logged.items, merged.bytes + logged.bytes);
        if trim_reads(bound, policy).is_none() {
            after.push((account, merged, logged));
            continue;
        }
        give_way();
        let (merged, logged) = trim(&tx, &account, policy, merged.last_stamp, logged.last_stamp)?;
        after.push((account, merged, logged));
    }
    give_way();
    tx.commit()?;
    for (account, merged, logged) in after {
        known.merged.insert(account.clone(), merged);
        known.logged.insert(account, logged);
    }
    Ok(())
}

/// Trims `account` back within `policy` from its exact totals (its bound said it may be
/// past them): merged records first, the log's only past every merged one. Its exact
/// `(merged, logged)` totals afterwards.
fn trim(
    tx: &Connection,
    (host, username): &Account,
    policy: &ArchivePolicy,
    merged_stamp: i64,
    logged_stamp: i64,
) -> rusqlite::Result<(Tally, Tally)> {
    let (merged_items, merged_bytes): (i64, i64) = tx
        .prepare_cached(MERGED)?
        .query_row(params![host, username], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .unwrap_or((0, 0));
    let (logged_items, logged_bytes): (i64, i64) = tx
        .prepare_cached(LOGGED)?
        .query_row(params![host, username], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let mut merged = Tally {
        items: merged_items,
        bytes: merged_bytes,
        last_stamp: merged_stamp,
    };
    let mut logged = Tally {
        items: logged_items,
        bytes: logged_bytes,
        last_stamp: logged_stamp,
    };
    let now = (merged.items + logged.items, merged.bytes + logged.bytes);
    let Some(want) = trim_reads(now, policy) else {
        return Ok((merged, logged));
    };
    let read = |sql: &str, want: i64| {
        tx.prepare_cached(sql)?
            .query_map(params![host, username, want], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()
    };
    let mut oldest = read(OLDEST, want)?;
    let in_archive = oldest.len();
    if (in_archive as i64) < want {
        oldest.extend(read(OLDEST_LOGGED, want - in_archive as i64)?);
    }
    let Some(((stamp, seq), _, _)) = trim_upto(now, policy, &oldest) else {
        return Ok((merged, logged));
    };
    // What goes from each table: the merged rows up to the cut, then the logged ones.
    let gone = |rows: &[(i64, i64, i64)]| {
        rows.iter()
            .filter(|&&(s, q, _)| (s, q) <= (stamp, seq))
            .fold((0, 0), |(n, b), &(_, _, size)| (n + 1, b + size))
    };
    let (merged_gone, logged_gone) = (gone(&oldest[..in_archive]), gone(&oldest[in_archive..]));
    tx.prepare_cached(DELETE_UPTO)?
        .execute(params![host, username, stamp, seq])?;
    if logged_gone.0 > 0 {
        tx.prepare_cached(DELETE_LOGGED_UPTO)?
            .execute(params![host, username, seq])?;
    }
    if merged_gone.0 > 0 {
        tx.prepare_cached(SHRINK_STATS)?.execute(params![
            host,
            username,
            merged_gone.0,
            merged_gone.1
        ])?;
    }
    merged.items -= merged_gone.0;
    merged.bytes -= merged_gone.1;
    logged.items -= logged_gone.0;
    logged.bytes -= logged_gone.1;
    Ok((merged, logged))
}
