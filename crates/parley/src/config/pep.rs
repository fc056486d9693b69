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
}

impl Default for PepConfig {
    fn default() -> Self {
        let d = parley_user::PepLimits::default();
        PepConfig {
            max_nodes: d.max_nodes,
            max_items: d.max_items,
        }
    }
}

impl PepConfig {
    pub(super) fn check(&self) -> Result<(), Violation> {
        if self.max_nodes == 0 {
            return Err(Violation::new("pep.max_nodes", 0, "must be at least 1"));
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
        }
    }
}
