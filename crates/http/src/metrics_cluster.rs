//! The cluster families of `/metrics`: etcd requests, node links, fences, hand-offs and the
//! registry cache (its size, and whether it could be kept current: issue 16). Apart from
//! `metrics.rs` to keep that file readable.

use std::fmt;

use parley_cluster::node::Node;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};
use prometheus_client::registry::Unit;

use crate::metrics::{family, labelled, load};

/// The cluster part of a [`crate::metrics::Snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// Claim transactions sent to etcd.
    pub etcd_claims: u64,
    /// Batched write transactions sent to etcd.
    pub etcd_batches: u64,
    /// etcd requests that failed.
    pub etcd_errors: u64,
    /// Keys written or deleted by batches.
    pub etcd_batched_keys: u64,
    /// Each peer link and whether it is connected.
    pub links: Vec<(String, bool)>,
    /// Frames queued on node links.
    pub frames_out: u64,
    /// Frames received from node links.
    pub frames_in: u64,
    /// Stanzas bounced because a link refused or gave them up.
    pub bounced: u64,
    /// Times this node fenced itself.
    pub fences: u64,
    /// User actors handed to another node.
    pub handed_off: u64,
    /// Approximate heap bytes of the registry cache's session entries.
    pub registry_cache_bytes: u64,
    /// Session entries in the registry cache.
    pub registry_sessions: u64,
    /// Registry lists (or watch openings) that failed, leaving the cache stale.
    pub registry_sync_failures: u64,
    /// Registry watches that ended and were replaced by a new list.
    pub registry_watch_restarts: u64,
    /// The newest etcd revision the registry cache holds.
    pub registry_revision: u64,
}

impl Cluster {
    /// Reads the node's counters and its registry cache.
    pub(crate) fn take(n: &Node) -> Cluster {
        let c = &n.metrics;
        let cache = n.cache().read();
        Cluster {
            etcd_claims: load(&c.etcd_claims),
            etcd_batches: load(&c.etcd_batches),
            etcd_errors: load(&c.etcd_errors),
            etcd_batched_keys: load(&c.etcd_batched_keys),
            links: n.links().into_iter().map(|l| (l.node, l.up)).collect(),
            frames_out: load(&c.frames_out),
            frames_in: load(&c.frames_in),
            bounced: load(&c.bounced),
            fences: load(&c.fences),
            handed_off: load(&c.handed_off),
            registry_cache_bytes: cache.approx_session_bytes() as u64,
            registry_sessions: cache.session_count() as u64,
            registry_sync_failures: n.registry_sync().failures(),
            registry_watch_restarts: n.registry_sync().restarts(),
            registry_revision: u64::try_from(n.registry_sync().revision()).unwrap_or(0),
        }
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder, node: &str) -> fmt::Result {
        let here = |value: u64| std::iter::once(([("node", node)], value));
        family(
            enc,
            "etcd_requests",
            "etcd requests by kind: claim transactions, batched write transactions, failures.",
            None,
            Counter,
            labelled(
                node,
                "op",
                vec![
                    ("claim", self.etcd_claims),
                    ("batch", self.etcd_batches),
                    ("error", self.etcd_errors),
                ],
            ),
        )?;
        family(
            enc,
            "etcd_batched_keys",
            "Keys written or deleted by batched transactions.",
            None,
            Counter,
            here(self.etcd_batched_keys),
        )?;
        family(
            enc,
            "node_link_up",
            "Whether the link to each peer is connected.",
            None,
            Gauge,
            labelled(
                node,
                "peer",
                self.links
                    .iter()
                    .map(|(peer, up)| (peer.as_str(), u64::from(*up))),
            ),
        )?;
        family(
            enc,
            "node_link_frames",
            "Frames sent and received on node links.",
            None,
            Counter,
            labelled(
                node,
                "direction",
                vec![("out", self.frames_out), ("in", self.frames_in)],
            ),
        )?;
        family(
            enc,
            "node_link_bounced",
            "Stanzas bounced because a node link refused or gave them up.",
            None,
            Counter,
            here(self.bounced),
        )?;
        family(
            enc,
            "fences",
            "Times this node fenced itself (lease not renewed in time).",
            None,
            Counter,
            here(self.fences),
        )?;
        family(
            enc,
            "user_actors_handed_off",
            "User actors handed to another node when ownership moved.",
            None,
            Counter,
            here(self.handed_off),
        )?;
        family(
            enc,
            "registry_cache",
            "Approximate heap bytes of the registry cache's session entries.",
            Some(&Unit::Bytes),
            Gauge,
            here(self.registry_cache_bytes),
        )?;
        family(
            enc,
            "registry_sessions",
            "Session entries in the registry cache (cluster-wide).",
            None,
            Gauge,
            here(self.registry_sessions),
        )?;
        family(
            enc,
            "registry_sync_failures",
            "Registry lists (at start, after a fence, or after the watch ended) that failed: the cache stays stale and the node not ready until one succeeds.",
            None,
            Counter,
            here(self.registry_sync_failures),
        )?;
        family(
            enc,
            "registry_watch_restarts",
            "Registry watches that ended (compaction, cancellation, a lost connection, an error) and were replaced by a new list.",
            None,
            Counter,
            here(self.registry_watch_restarts),
        )?;
        family(
            enc,
            "registry_revision",
            "The newest etcd revision the registry cache holds; etcd's own revision minus this is how far behind the node is.",
            None,
            Gauge,
            here(self.registry_revision),
        )
    }
}
