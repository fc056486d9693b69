//! RFC 6120 §10.1 between nodes: the [`Body::Sync`] requests the user layer makes
//! (parley-user's `order.rs`) and their answers.
//!
//! A sync travels the link its sender's earlier frames took, and frames of one link are
//! acted on in order (a sync naming one user joins that user's held line, `held.rs`), so
//! when one arrives everything queued before it has been handed on: the answer only waits
//! for what `depth` adds (user actors' barriers, further links).
//!
//! The answers a node owes at once are bounded ([`MAX_SYNCS_SERVED`]); past the bound a
//! sync is answered at once, counted and logged: ordering is then best effort, and no
//! peer can make this node hold more waits.

use std::sync::atomic::AtomicUsize;

use parley_router::metrics::refuse;
use parley_user::{SyncDepth, SyncFuture, SYNC_LIMIT};

use super::*;

/// Syncs this node answers at once, from all its peers.
pub(super) const MAX_SYNCS_SERVED: usize = 4096;

/// The syncs this node asked and the ones it owes.
pub(super) struct Syncs {
    /// Asked of peers, waiting for their [`Body::Synced`].
    asked: pending::Pending<()>,
    /// Owed to peers and not answered yet.
    served: AtomicUsize,
}

impl Syncs {
    pub(super) fn new() -> Syncs {
        Syncs {
            asked: pending::Pending::new(),
            served: AtomicUsize::new(0),
        }
    }
}

impl Node {
    /// Queues a [`Body::Sync`] to `node` now; the future resolves on its answer, after
    /// [`SYNC_LIMIT`], or at once when there is no link to take it.
    pub(super) fn ask_sync(&self, node: &str, users: Vec<BareJid>, depth: SyncDepth) -> SyncFuture {
        let Some(me) = self.me_weak.upgrade() else {
            return Box::pin(std::future::ready(()));
        };
        let node: Arc<str> = Arc::from(node);
        let (id, rx) = self.syncs.asked.open(node.clone());
        let body = Body::Sync {
            id,
            users: users.iter().map(ToString::to_string).collect(),
            depth,
        };
        let sent = self.send_to(&node, body).is_ok();
        Box::pin(async move {
            me.syncs
                .asked
                .wait(id, sent.then_some(rx), SYNC_LIMIT)
                .await;
        })
    }

    /// A peer's [`Body::Sync`]: the user layer's wait starts now (behind what the earlier
    /// frames queued), and the answer goes back when it ends.
    pub(super) fn serve_sync(&self, from: &str, id: u128, users: Vec<String>, depth: SyncDepth) {
        let users = users.iter().filter_map(|u| BareJid::new(u).ok()).collect();
        if depth == SyncDepth::Link {
            let _ = self.send_to(from, Body::Synced { id });
            return;
        }
        if self.syncs.served.fetch_add(1, Ordering::Relaxed) >= MAX_SYNCS_SERVED {
            self.syncs.served.fetch_sub(1, Ordering::Relaxed);
            if refuse("link_syncs_over_bound", from) {
                warn!(peer = %from, bound = MAX_SYNCS_SERVED, "too many syncs owed: answered at once");
            }
            let _ = self.send_to(from, Body::Synced { id });
            return;
        }
        // Queued only once it is known to be served: a refused sync costs the actors nothing.
        let wait = self.users.synced(from, users, depth);
        let me = self.me_weak.clone();
        let from = from.to_owned();
        self.home.spawn(async move {
            let _ = tokio::time::timeout(SYNC_LIMIT, wait).await;
            if let Some(node) = me.upgrade() {
                node.syncs.served.fetch_sub(1, Ordering::Relaxed);
                let _ = node.send_to(&from, Body::Synced { id });
            }
        });
    }

    /// A peer's [`Body::Synced`]: false for a stray.
    pub(super) fn synced(&self, from: &str, id: u128) -> bool {
        self.syncs.asked.answer(id, from, ())
    }
}
