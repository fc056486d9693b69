//! How the node keeps its registry cache and tells whether it is current: the first list
//! (at start and after a fence), the sync task that lists and watches from then on, and
//! readiness, which needs both a live lease and a current cache (issue 16: a node whose
//! cache could not be listed again went on routing by a frozen view while reporting ready).

use super::*;

impl Node {
    /// Whether the node may serve: the lease is alive (the node is not fenced) and the
    /// registry cache is current (its last list succeeded and the watch follows it).
    pub fn healthy(&self) -> bool {
        !self.fenced.load(Ordering::Acquire)
            && self.current().is_some()
            && self.sync_status.synced()
    }

    /// The registry cache's standing: current or not, failed lists (for `/metrics`).
    pub fn registry_sync(&self) -> &SyncStatus {
        &self.sync_status
    }

    /// Lists the registry into the cache with `reg`, recording the outcome.
    pub(super) async fn load_registry(&self, reg: &EtcdRegistry) -> Result<i64, ClusterError> {
        match reg.load(&self.cache).await {
            Ok(revision) => {
                self.sync_status.applied(revision);
                self.sync_status.set_synced();
                Ok(revision)
            }
            Err(e) => {
                self.sync_status.set_failed();
                warn!(node = %self.me, error = %e, "the registry could not be listed");
                Err(e)
            }
        }
    }

    /// Starts (or restarts, with the current registry handle) the task that keeps the
    /// cache current.
    pub(super) fn start_sync(&self) {
        let Some(reg) = self.current() else {
            return;
        };
        let task = reg.spawn_sync(
            self.cache.clone(),
            self.events.clone(),
            self.sync_status.clone(),
        );
        if let Some(old) = self.sync.lock().replace(task) {
            old.abort();
        }
    }
}
