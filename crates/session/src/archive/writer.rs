//! The archive writer: one per node, it gathers the messages that sessions archive
//! (XEP-0313) into batches, one storage transaction each, so that archiving costs a commit
//! per batch rather than per message. A session waits for its batch before it counts its
//! client's stanza handled (XEP-0198), so an acknowledged message is in the archive.
//!
//! The queue is bounded in jobs (`[mam] queue_items`) and in bytes (`[mam] queue_bytes`);
//! a session that finds it full waits, and so reads nothing more from its client. The
//! writer also expires messages older than `[mam] retention_days`, hourly.

use std::sync::Arc;
use std::time::Duration;

use parley_storage::{ArchivePolicy, ArchiveRecord, Storage, StorageError};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The writer is gone (the node is stopping).
    #[error("the archive writer stopped")]
    Stopped,
}

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
    /// Messages older than this go; None keeps them.
    pub retention: Option<Duration>,
}

struct Job {
    records: Vec<ArchiveRecord>,
    reply: oneshot::Sender<Result<Vec<Option<String>>, ArchiveError>>,
    /// The job's bytes in the queue, released when it is written.
    _bytes: OwnedSemaphorePermit,
}

/// The handle sessions append through.
#[derive(Debug)]
pub struct ArchiveWriter {
    jobs: mpsc::Sender<Job>,
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

    /// Archives `records` (one message, for its one or two local parties); for each its
    /// archive id, or None when the rules kept it out. Waits while the queue is full.
    pub async fn append(
        &self,
        records: Vec<ArchiveRecord>,
    ) -> Result<Vec<Option<String>>, ArchiveError> {
        let size: usize = records.iter().map(|r| r.stanza.len()).sum();
        // A message larger than the whole bound still goes, alone.
        let permits = u32::try_from(size.clamp(1, self.max_bytes)).unwrap_or(u32::MAX);
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| ArchiveError::Stopped)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                records,
                reply,
                _bytes: bytes,
            })
            .await
            .map_err(|_| ArchiveError::Stopped)?;
        answer.await.map_err(|_| ArchiveError::Stopped)?
    }
}

async fn write_loop(
    storage: Arc<dyn Storage>,
    mut rx: mpsc::Receiver<Job>,
    settings: WriterSettings,
) {
    while let Some(first) = rx.recv().await {
        // Whatever else is waiting joins this transaction, up to the batch size.
        let mut jobs = vec![first];
        let mut records = jobs[0].records.len();
        while records < settings.batch {
            match rx.try_recv() {
                Ok(job) => {
                    records += job.records.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<ArchiveRecord> = jobs.iter().flat_map(|j| j.records.clone()).collect();
        let result = storage.archive_append(&all, &settings.policy).await;
        parley_router::metrics::archive_batch(all.len(), result.is_ok());
        match result {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for job in jobs {
                    let mine: Vec<Option<String>> = ids.by_ref().take(job.records.len()).collect();
                    // A session that stopped waiting is no error.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, records = all.len(), "archive batch failed");
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(ArchiveError::Storage(StorageError::Backend(
                            e.to_string(),
                        ))));
                }
            }
        }
    }
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
