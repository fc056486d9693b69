//! `[push]`: push notifications (XEP-0357). Kept apart from `schema.rs` to keep that file
//! readable; the rules are checked here too.

use std::time::Duration;

use serde::Deserialize;

use super::validate::Violation;

/// `[push]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// App servers one account may register (past it, `resource-constraint`).
    pub max_registrations: usize,
    /// Least seconds between two notifications to one account; messages meanwhile go
    /// together in the next.
    pub min_interval_s: u64,
    /// Accounts a node remembers for that (past it, it starts afresh).
    pub max_tracked_accounts: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        let d = parley_user::PushLimits::default();
        PushConfig {
            max_registrations: d.max_registrations,
            min_interval_s: d.min_interval.as_secs(),
            max_tracked_accounts: d.max_tracked,
        }
    }
}

impl PushConfig {
    pub(super) fn check(&self) -> Result<(), Violation> {
        if self.max_registrations == 0 || self.max_registrations > 100 {
            return Err(Violation::new(
                "push.max_registrations",
                self.max_registrations,
                "must be 1 to 100",
            ));
        }
        if self.min_interval_s > 3600 {
            return Err(Violation::new(
                "push.min_interval_s",
                self.min_interval_s,
                "must be 0 to 3600",
            ));
        }
        if self.max_tracked_accounts == 0 {
            return Err(Violation::new(
                "push.max_tracked_accounts",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// As the user registry reads it.
    pub fn limits(&self) -> parley_user::PushLimits {
        parley_user::PushLimits {
            max_registrations: self.max_registrations,
            min_interval: Duration::from_secs(self.min_interval_s),
            max_tracked: self.max_tracked_accounts,
        }
    }
}
