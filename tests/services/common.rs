//! What the registry tests share: a fresh key prefix per test and a node's advertised facts.

use parley_cluster::registry::{Layout, NodeInfo};

/// A key prefix no other test (or earlier run) uses.
pub fn layout() -> Layout {
    let tag: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Layout::new(format!("/parley-test/{tag:x}"))
}

/// A node's facts as it registers them.
pub fn info() -> NodeInfo {
    NodeInfo {
        addr: "127.0.0.1:7000".into(),
        version: "test".into(),
        started_ms: 0,
    }
}
