//! The archive writer: one per node, it gathers the messages that sessions archive
//! (XEP-0313) into batches and writes each batch with a fixed number of statements
//! (one multi-row insert, one multi-row totals update), whatever its size. A session hands
//! its message over and goes on; the client's XEP-0198 acknowledgement of that message
//! waits for the batch to commit (see `mod.rs`).
//!
//! What decides a record (the owner's account, preferences and blocklist) is read once per
//! owner and kept for `[mam] owner_cache_ttl_s`: a change made on this node (preferences, blocklist) is
//! applied at once ([`ArchiveWriter::forget`]), one made on another node within that time.
//! Delivery never depends on it.
//!
//! Bounds: jobs waiting (`[mam] queue_items`), bytes waiting (`[mam] queue_bytes`), records
//! per transaction (`[mam] batch`), owners remembered (`[mam] owner_cache_entries`). The writer also
//! expires messages older than `[mam] retention_days`, hourly.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_proto::mam::Default as ArchiveDefault;
use parley_storage::{ArchiveOwner, ArchivePolicy, ArchiveRecord, Storage, StorageError};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// The writer's settings, from `[mam]`.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub policy: ArchivePolicy,
    /// Jobs waiting at most.
    pub queue_items: usize,
    /// Bytes of stanzas waiting at most.
    pub queue_bytes: usize,
    /// Records per transaction at most.
    pub batch: usize,
    /// How long a batch waits for more records after its first (they share one commit).
    pub linger: Duration,
    /// Messages older than this go; None keeps them.
    pub retention: Option<Duration>,
    /// Owners remembered at once (`[mam] owner_cache_entries`); past it the memory starts
    /// afresh.
    pub owner_cache_entries: usize,
    /// How long what decides an owner's records is trusted without reading it again
    /// (`[mam] owner_cache_ttl_s`).
    pub owner_ttl: Duration,
}

/// How far one session's messages are written: the writer raises `committed` (the
/// session's sequence number of its last message written, or given up on) and wakes
/// whoever waits. Nobody waits unless the session needs to (an ack, a query, too many in
/// flight), so a batch wakes no session thread for nothing.
#[derive(Debug, Default)]
pub struct Progress {
    pub committed: std::sync::atomic::AtomicU64,
    pub notify: tokio::sync::Notify,
}

impl Progress {
    /// Resolves once the session's message `seq` is written (or given up on).
    pub async fn reached(self: Arc<Self>, seq: u64) {
        use std::sync::atomic::Ordering;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.committed.load(Ordering::Acquire) >= seq {
                return;
            }
            notified.await;
        }
    }
}

struct Job {
    records: Vec<ArchiveRecord>,
    /// Already decided by their owner (a chat room's archive): kept without the checks.
    decided: bool,
    progress: Arc<Progress>,
    seq: u64,
    /// The job's bytes in the queue, released when it is written.
    _bytes: OwnedSemaphorePermit,
}

enum Msg {
    Append(Job),
    /// An owner's preferences or blocklist changed on this node.
    Forget {
        host: String,
        username: String,
    },
}

/// The handle sessions append through.
#[derive(Debug)]
pub struct ArchiveWriter {
    jobs: mpsc::Sender<Msg>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    policy: ArchivePolicy,
}

impl ArchiveWriter {
    /// Starts the writer (and its expiry) on the current runtime.
    pub fn start(storage: Arc<dyn Storage>, settings: WriterSettings) -> Arc<ArchiveWriter> {
        let (jobs, rx) = mpsc::channel(settings.queue_items.max(1));
        let max_bytes = settings.queue_bytes.max(1);
        tokio::spawn(write_loop(storage.clone(), rx, settings));
        if let Some(retention) = settings.retention {
            tokio::spawn(expire_loop(storage, retention));
        }
        Arc::new(ArchiveWriter {
            jobs,
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            policy: settings.policy,
        })
    }

    /// The rules appends follow.
    pub fn policy(&self) -> ArchivePolicy {
        self.policy
    }

    /// Queues `records` (one message, for its one or two local parties, with their ids),
    /// the session's message `seq`: `progress` reaches `seq` once they are written. Ok when
    /// queued at once; Err with a future that queues them once there is room.
    pub fn submit(
        &self,
        records: Vec<ArchiveRecord>,
        progress: Arc<Progress>,
        seq: u64,
    ) -> Result<(), std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> {
        let size: usize = records.iter().map(|r| r.stanza.len()).sum();
        // A message larger than the whole bound still goes, alone.
        let permits = u32::try_from(size.clamp(1, self.max_bytes)).unwrap_or(u32::MAX);
        if let Ok(bytes) = self.bytes.clone().try_acquire_many_owned(permits) {
            let job = Job {
                records,
                decided: false,
                progress,
                seq,
                _bytes: bytes,
            };
            match self.jobs.try_send(Msg::Append(job)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(Msg::Append(job))) => {
                    let jobs = self.jobs.clone();
                    return Err(Box::pin(async move {
                        give_up_unless_sent(jobs.send(Msg::Append(job)).await)
                    }));
                }
                Err(e) => {
                    // The writer is gone: nothing will be written.
                    give_up_unless_sent(Err(mpsc::error::SendError(e.into_inner())));
                    return Ok(());
                }
            }
        }
        let (bytes, jobs) = (self.bytes.clone(), self.jobs.clone());
        Err(Box::pin(async move {
            let Ok(bytes) = bytes.acquire_many_owned(permits).await else {
                return progress_done(&progress, seq);
            };
            let job = Job {
                records,
                decided: false,
                progress,
                seq,
                _bytes: bytes,
            };
            give_up_unless_sent(jobs.send(Msg::Append(job)).await)
        }))
    }

    /// Queues records their owner already decided to keep (a chat room's messages,
    /// XEP-0313 for MUC). Nobody waits for them; when the queue is full they are not kept
    /// (the message was delivered), and that is counted and logged.
    pub fn append_decided(&self, records: Vec<ArchiveRecord>) {
        let size: usize = records.iter().map(|r| r.stanza.len()).sum();
        let permits = u32::try_from(size.clamp(1, self.max_bytes)).unwrap_or(u32::MAX);
        let queued = self
            .bytes
            .clone()
            .try_acquire_many_owned(permits)
            .ok()
            .and_then(|bytes| {
                let job = Job {
                    records,
                    decided: true,
                    progress: Arc::new(Progress::default()),
                    seq: 0,
                    _bytes: bytes,
                };
                self.jobs.try_send(Msg::Append(job)).ok()
            });
        if queued.is_none() && parley_router::metrics::refuse("archive_full", "room") {
            tracing::warn!("archive writer full: a room message was delivered unarchived");
        }
    }

    /// Reads `username@host`'s preferences and blocklist afresh for its next records.
    pub fn forget(&self, username: &str, host: &str) {
        // Full queue: the owner's state is read again within the owner TTL anyway.
        let _ = self.jobs.try_send(Msg::Forget {
            host: host.to_owned(),
            username: username.to_owned(),
        });
    }
}

/// A job that could not be queued is given up on: its session's acks must not wait for it.
fn give_up_unless_sent(sent: Result<(), mpsc::error::SendError<Msg>>) {
    if let Err(mpsc::error::SendError(Msg::Append(job))) = sent {
        progress_done(&job.progress, job.seq);
    }
}

fn progress_done(progress: &Progress, seq: u64) {
    progress
        .committed
        .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
    progress.notify.notify_waiters();
}

type Owners = HashMap<(String, String), (Arc<ArchiveOwner>, Instant)>;

/// What decides `host/username`'s records: remembered, or read (with the roster only when
/// the `roster` default applies).
async fn owner(
    storage: &dyn Storage,
    owners: &mut Owners,
    settings: &WriterSettings,
    host: &str,
    username: &str,
) -> Result<Arc<ArchiveOwner>, StorageError> {
    let default = settings.policy.default;
    let key = (host.to_owned(), username.to_owned());
    if let Some((o, at)) = owners.get(&key) {
        if at.elapsed() < settings.owner_ttl {
            return Ok(o.clone());
        }
    }
    let mut o = storage.archive_owner(username, host, false).await?;
    let effective = o.prefs.as_ref().map_or(default, |p| p.default);
    if effective == ArchiveDefault::Roster {
        o = storage.archive_owner(username, host, true).await?;
    }
    if owners.len() >= settings.owner_cache_entries {
        owners.clear();
    }
    let o = Arc::new(o);
    owners.insert(key, (o.clone(), Instant::now()));
    Ok(o)
}

async fn write_loop(
    storage: Arc<dyn Storage>,
    mut rx: mpsc::Receiver<Msg>,
    settings: WriterSettings,
) {
    let mut owners: Owners = HashMap::new();
    while let Some(first) = rx.recv().await {
        // Whatever comes within the linger joins this transaction, up to the batch size.
        let mut jobs = Vec::new();
        let mut records = 0;
        let take =
            |msg: Msg, jobs: &mut Vec<Job>, records: &mut usize, owners: &mut Owners| match msg {
                Msg::Append(job) => {
                    *records += job.records.len();
                    jobs.push(job);
                }
                Msg::Forget { host, username } => {
                    owners.remove(&(host, username));
                }
            };
        take(first, &mut jobs, &mut records, &mut owners);
        let drain = |rx: &mut mpsc::Receiver<Msg>,
                     jobs: &mut Vec<Job>,
                     records: &mut usize,
                     owners: &mut Owners| {
            while *records < settings.batch {
                match rx.try_recv() {
                    Ok(msg) => take(msg, jobs, records, owners),
                    Err(_) => break,
                }
            }
        };
        // A backlog of a batch or more is written at once: lingering then would only cap
        // the writer at one batch per linger.
        drain(&mut rx, &mut jobs, &mut records, &mut owners);
        if !jobs.is_empty() && records < settings.batch && !settings.linger.is_zero() {
            // Sleeping, not waiting on the queue: messages that come meanwhile wake nobody,
            // and are all taken at once.
            tokio::time::sleep(settings.linger).await;
            drain(&mut rx, &mut jobs, &mut records, &mut owners);
        }
        if jobs.is_empty() {
            continue;
        }
        match write_batch(&*storage, &mut owners, &settings, &mut jobs).await {
            Ok(kept) => parley_router::metrics::archive_batch(kept, true),
            Err(e) => {
                // The messages stay delivered without their copies; their acks go.
                parley_router::metrics::archive_batch(0, false);
                tracing::warn!(error = %e, records, "archive batch failed: messages delivered unarchived");
            }
        }
        for job in &jobs {
            job.progress
                .committed
                .fetch_max(job.seq, std::sync::atomic::Ordering::AcqRel);
        }
        for job in &jobs {
            job.progress.notify.notify_waiters();
        }
    }
}

/// Decides every record of `jobs` and writes the kept ones; how many were kept. The
/// records move out of the jobs (only their progress is needed after the write).
async fn write_batch(
    storage: &dyn Storage,
    owners: &mut Owners,
    settings: &WriterSettings,
    jobs: &mut [Job],
) -> Result<usize, StorageError> {
    let mut kept = Vec::with_capacity(jobs.iter().map(|j| j.records.len()).sum());
    for job in jobs.iter_mut() {
        let records = std::mem::take(&mut job.records);
        if job.decided {
            kept.extend(records);
            continue;
        }
        for r in records {
            let o = owner(storage, owners, settings, &r.host, &r.username).await?;
            if parley_storage::archive_decide(&o, settings.policy.default, &r.with) {
                kept.push(r);
            }
        }
    }
    let n = kept.len();
    storage.archive_insert(kept, &settings.policy).await?;
    Ok(n)
}

/// Drops expired messages hourly (every node does; each account's expiry is one short
/// transaction, so nodes doing it at once only repeat a little work).
async fn expire_loop(storage: Arc<dyn Storage>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cut = parley_proto::clock::now_ms() - retention.as_millis() as i64;
        match storage.archive_expire(cut).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "expired archived messages"),
            Err(e) => tracing::warn!(error = %e, "archive expiry failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::mam::With;

    fn record(n: usize) -> ArchiveRecord {
        ArchiveRecord {
            username: "alice".into(),
            host: "localhost".into(),
            id: parley_proto::mam::new_id(),
            with: With {
                bare: "bob@localhost".into(),
                resource: None,
            },
            stamp_ms: 1_700_000_000_000 + n as i64,
            stanza: format!("<message xmlns='jabber:client'><body>{n}</body></message>"),
        }
    }

    /// A backlog of a batch or more is written at once: the linger only gathers a batch
    /// that is not full yet. (It once slept after every first record, which capped the
    /// writer at one batch per linger and stalled senders under load.)
    #[tokio::test]
    async fn full_batches_are_written_without_lingering() {
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        storage
            .create_account("alice", "localhost", &[])
            .await
            .unwrap();
        let writer = ArchiveWriter::start(
            storage.clone(),
            WriterSettings {
                policy: ArchivePolicy {
                    default: ArchiveDefault::Always,
                    max_items: 1000,
                    max_bytes: 1 << 20,
                },
                queue_items: 100,
                queue_bytes: 1 << 20,
                batch: 2,
                // Longer than any test run: a batch that waited for it would never come.
                linger: Duration::from_secs(86_400),
                retention: None,
                owner_cache_entries: 10,
                owner_ttl: Duration::from_secs(60),
            },
        );
        let progress = Arc::new(Progress::default());
        // Queued before the writer's task first runs (this test's runtime has one thread):
        // two full batches wait.
        for seq in 1..=4 {
            assert!(writer
                .submit(vec![record(seq as usize)], progress.clone(), seq)
                .is_ok());
        }
        tokio::time::timeout(Duration::from_secs(60), progress.clone().reached(4))
            .await
            .expect("both full batches written without waiting for the linger");
        assert_eq!(
            storage.archive_size("alice", "localhost").await.unwrap().0,
            4
        );
    }
}
