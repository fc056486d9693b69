//! `[pep]`: what one account's personal eventing service (XEP-0163) may hold. Kept apart
//! from `schema.rs` to keep that file readable; the rules are checked here too.

use serde::Deserialize;

use super::validate::Violation;

/// `[pep]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PepConfig {
    /// Nodes per account; past it a new node is `resource-constraint`.
    pub max_nodes: usize,
    /// The most items one node may keep (`pubsub#max_items`, and what `max` means).
    pub max_items: u64,
    /// Contacts' available resources one account's service tracks (for notifications).
    pub max_tracked_resources: usize,
    /// Capability hashes one account's service remembers (storage has them all).
    pub max_caps_cached: usize,
    /// Capability queries (disco#info to contacts) one account's service has out at once.
    pub max_caps_queries: usize,
}

impl Default for PepConfig {
    fn default() -> Self {
        let d = parley_user::PepLimits::default();
        PepConfig {
            max_nodes: d.max_nodes,
            max_items: d.max_items,
            max_tracked_resources: d.max_tracked,
            max_caps_cached: d.max_caps,
            max_caps_queries: d.max_pending,
        }
    }
}

impl PepConfig {
    pub(super) fn check(&self) -> Result<(), Violation> {
        if self.max_nodes == 0 {
            return Err(Violation::new("pep.max_nodes", 0, "must be at least 1"));
        }
        for (key, value) in [
            ("pep.max_tracked_resources", self.max_tracked_resources),
            ("pep.max_caps_cached", self.max_caps_cached),
            ("pep.max_caps_queries", self.max_caps_queries),
        ] {
            if value == 0 {
                return Err(Violation::new(key, value, "must be at least 1"));
            }
        }
        if self.max_items == 0 || self.max_items > 100_000 {
            return Err(Violation::new(
                "pep.max_items",
                self.max_items,
                "must be 1 to 100000",
            ));
        }
        Ok(())
    }

    /// As the user actors read it.
    pub fn limits(&self) -> parley_user::PepLimits {
        parley_user::PepLimits {
            max_nodes: self.max_nodes,
            max_items: self.max_items,
            max_tracked: self.max_tracked_resources,
            max_caps: self.max_caps_cached,
            max_pending: self.max_caps_queries,
        }
    }
}
