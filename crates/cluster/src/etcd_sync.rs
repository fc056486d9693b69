//! Reading the registry out of etcd: the paged list of the whole prefix at one revision, the
//! watch that follows it, and [`SyncStatus`], which tells the node whether its cache is
//! current (its readiness) and counts the lists that failed.
//!
//! Issue 16 (first scaling ceiling): one unpaged range over the registry exceeded the 4 MiB a
//! gRPC client decodes by default past ~23,500 sessions, so no node could start and a node
//! whose watch broke re-listed every 200 ms forever with a frozen cache, still "ready". The
//! list is therefore read in pages, all at the revision of the first page, so the pages
//! together are one consistent snapshot (what one range returned before); a failed list
//! marks the node not ready and is counted; and the watch decodes messages up to the
//! configured bound, since one response carries every delete of a leaving node's lease.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KvClient, WatchClient, WatchOptions, WatchStream};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use crate::etcd::ClusterError;
use crate::registry::{Cache, Change, Event, Layout};

/// Keys per range request at most. 2,000 registry keys are ~400 KB at typical sizes, and
/// under 7 MB even with resource names and bare JIDs at their XMPP maxima.
pub const MAX_PAGE_KEYS: i64 = 2_000;

/// What one key may take in a page at most, for sizing pages under a small message bound: a
/// key (prefix, bare JID up to 3071 bytes, resource up to 1023), its value and the framing.
const MAX_KEY_BYTES: usize = 8 << 10;

/// How often a list restarts because its revision was compacted between two pages, before
/// the list counts as failed (each restart takes a new, current revision).
const COMPACTED_RESTARTS: usize = 5;

/// How long one page or one watch opening may take. A request to an etcd that is gone may
/// otherwise wait for a connection without end, and the node would keep reporting a cache
/// that nothing updates as current.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a watch ended or broke, before listing again.
const RETRY: Duration = Duration::from_millis(200);

/// Longest pause between failed lists: a node that cannot list does not hammer etcd with
/// full reads of the registry.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Keys per page under a message bound of `max_message_bytes`.
pub fn page_keys(max_message_bytes: usize) -> i64 {
    ((max_message_bytes / MAX_KEY_BYTES) as i64).clamp(1, MAX_PAGE_KEYS)
}

/// Whether the registry cache is current, and how often it could not be made so. Shared by
/// the sync task and the node, which reports it as readiness and in `/metrics`.
#[derive(Debug, Default)]
pub struct SyncStatus {
    synced: AtomicBool,
    failures: AtomicU64,
    restarts: AtomicU64,
    /// The newest etcd revision the cache holds (listed or applied from the watch).
    revision: AtomicI64,
}

impl SyncStatus {
    /// Whether the last list succeeded and its watch runs (or has just ended and is being
    /// replaced by a new list).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Lists or watch openings that failed: each left the cache stale.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Watches that ended (compaction, cancellation, a lost connection, an error) and were
    /// replaced by a new list.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The newest etcd revision the cache holds: what an operator (or a benchmark)
    /// compares with etcd's own revision to see how far behind the node is.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The cache now holds `revision` (a list, or a watch response applied).
    pub(crate) fn applied(&self, revision: i64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }

    /// The cache was listed and is followed.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// A list failed: the cache is stale until the next one succeeds.
    pub fn set_failed(&self) {
        self.synced.store(false, Ordering::Release);
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The first key after every key starting with `prefix` (etcd's prefix range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: to the end of the keyspace.
    vec![0]
}

/// Whether etcd refused a read because its revision was compacted.
fn compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.message().contains("required revision has been compacted"))
}

/// Every key under `prefix` at one revision, read `page` keys at a time: the first page
/// fixes the revision (its header's), the next ones read at it from the key after the last
/// one seen. A compaction past that revision between two pages restarts the read at a new
/// one. Returns the revision and the keys in key order, as one range would.
pub async fn list_prefix(
    kv: &mut KvClient,
    prefix: &str,
    page: i64,
) -> Result<(i64, Vec<(String, Vec<u8>)>), ClusterError> {
    let end = prefix_end(prefix.as_bytes());
    let mut restarts = 0;
    'read: loop {
        let mut kvs = Vec::new();
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(page);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let get = kv.get(from.clone(), Some(options));
            let resp = match tokio::time::timeout(REQUEST_TIMEOUT, get).await {
                Err(_) => return Err(ClusterError::Unanswered("a registry page", REQUEST_TIMEOUT)),
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) if compacted(&e) && restarts < COMPACTED_RESTARTS => {
                    restarts += 1;
                    debug!(
                        revision,
                        "registry list compacted between pages; reading again"
                    );
                    continue 'read;
                }
                Ok(Err(e)) => return Err(e.into()),
            };
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            if let Some(last) = resp.kvs().last() {
                from = last.key().to_vec();
                // The smallest key after `last`.
                from.push(0);
            }
            kvs.extend(
                resp.kvs()
                    .iter()
                    .filter_map(|kv| Some((kv.key_str().ok()?.to_owned(), kv.value().to_vec()))),
            );
            if !resp.more() || resp.kvs().is_empty() {
                return Ok((revision, kvs));
            }
        }
    }
}

/// The task that keeps a node's cache current: list, then watch from the listed revision
/// + 1; after a compaction, a cancelled watch, a lost connection or an error, list again.
pub(crate) struct EtcdSync {
    pub(crate) kv: KvClient,
    pub(crate) watch: WatchClient,
    pub(crate) page: i64,
    pub(crate) layout: Layout,
    pub(crate) events: UnboundedSender<Vec<Event>>,
    pub(crate) status: Arc<SyncStatus>,
}

impl EtcdSync {
    /// Runs until the task is dropped.
    pub(crate) async fn run_forever(mut self, cache: Arc<RwLock<Cache>>) {
        let mut pause = RETRY;
        loop {
            match self.open(&cache).await {
                Ok(stream) => {
                    self.status.set_synced();
                    pause = RETRY;
                    if let Err(e) = self.follow(&cache, stream).await {
                        warn!(error = %e, "registry watch interrupted; listing again");
                    }
                    self.status.restarted();
                }
                Err(e) => {
                    self.status.set_failed();
                    warn!(error = %e, retry_ms = pause.as_millis() as u64,
                        "the registry could not be listed: this node reports not ready");
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Lists the registry into the cache and opens the watch that follows it.
    async fn open(&mut self, cache: &RwLock<Cache>) -> Result<WatchStream, ClusterError> {
        let (revision, kvs) = list_prefix(&mut self.kv, &self.layout.prefix(), self.page).await?;
        let events = cache.write().reset(&self.layout, kvs, revision);
        self.status.applied(revision);
        // Sent even when empty: every cache change wakes frames waiting for a claim to show.
        let _ = self.events.send(events);
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let watch = self.watch.watch(self.layout.prefix(), Some(options));
        match tokio::time::timeout(REQUEST_TIMEOUT, watch).await {
            Ok(stream) => Ok(stream?),
            Err(_) => Err(ClusterError::Unanswered(
                "the registry watch",
                REQUEST_TIMEOUT,
            )),
        }
    }

    /// Applies the watch's events until it ends.
    async fn follow(
        &mut self,
        cache: &RwLock<Cache>,
        mut stream: WatchStream,
    ) -> Result<(), ClusterError> {
        while let Some(resp) = stream.message().await? {
            if resp.canceled() || resp.compact_revision() > 0 {
                debug!(
                    compacted = resp.compact_revision(),
                    "watch cancelled; re-listing"
                );
                return Ok(());
            }
            // The events' own revision, not the header's: the header carries the store's
            // revision when the response was sent, which a later response of the same
            // watch may share (etcd splits a burst of events over several responses), and
            // the cache ignores a response at or below the revision it has seen: a
            // header revision would drop the second half of such a burst. (The watch is
            // not fragmented for the same reason: fragments of one revision would share
            // it. A whole revision comes in one response, bounded by the message bound.)
            let rev = resp
                .events()
                .iter()
                .filter_map(|ev| ev.kv().map(|kv| kv.mod_revision()))
                .max()
                .unwrap_or(0);
            let changes: Vec<Change> = resp
                .events()
                .iter()
                .filter_map(|ev| {
                    let kv = ev.kv()?;
                    let key = kv.key_str().ok()?.to_owned();
                    Some(match ev.event_type() {
                        EventType::Put => Change::Put {
                            key,
                            value: kv.value().to_vec(),
                        },
                        EventType::Delete => Change::Delete { key },
                    })
                })
                .collect();
            if !changes.is_empty() {
                let events = cache.write().apply(&self.layout, &changes, rev);
                self.status.applied(rev);
                let _ = self.events.send(events);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_follow_the_last_byte_that_can_grow() {
        assert_eq!(prefix_end(b"/parley/"), b"/parley0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn pages_fit_the_message_bound() {
        assert_eq!(page_keys(256 << 20), MAX_PAGE_KEYS);
        assert_eq!(page_keys(4 << 20), 512);
        assert_eq!(page_keys(0), 1);
    }

    #[test]
    fn a_failed_list_marks_the_cache_stale_until_one_succeeds() {
        let s = SyncStatus::default();
        assert!(!s.synced());
        s.set_synced();
        assert!(s.synced());
        s.set_failed();
        s.set_failed();
        assert!(!s.synced());
        assert_eq!(s.failures(), 2);
        s.set_synced();
        assert!(s.synced());
        assert_eq!(s.failures(), 2);
    }
}
