//! `[register]`: in-band registration of new accounts (XEP-0077 §3.1) and registration
//! by invitation (XEP-0401, XEP-0445). Off by default. Kept apart from `schema.rs` to keep
//! that file readable; the rules are checked here too.

use parley_session::signup::{SignupMode, SignupSettings};
use serde::Deserialize;

use super::validate::Violation;

/// `[register] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterMode {
    /// Accounts come from the CLI and the admin API only.
    #[default]
    Off,
    /// Only with an invitation (`parley invite create`, `POST /api/v1/invites`).
    Invite,
    /// Anyone, within the per-address limit.
    Open,
}

/// `[register]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    pub mode: RegisterMode,
    /// Fewest characters of a new account's password.
    pub min_password_length: usize,
    /// Accounts one address (IPv6: its /64) may register per period, cluster-wide, without
    /// an invitation.
    pub per_ip_max: u32,
    pub per_ip_period_s: u64,
    /// Addresses the per-address count (in storage) holds at once.
    pub max_tracked_addresses: usize,
    /// Lifetime of an invitation when its issuer names none.
    pub invite_ttl_s: u64,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        let d = SignupSettings::default();
        RegisterConfig {
            mode: RegisterMode::Off,
            min_password_length: d.min_password_length,
            per_ip_max: d.per_ip_max,
            per_ip_period_s: d.per_ip_period.as_secs(),
            max_tracked_addresses: d.max_tracked,
            invite_ttl_s: 7 * 24 * 3600,
        }
    }
}

impl RegisterConfig {
    pub(super) fn check(&self) -> Result<(), Violation> {
        if !(1..=1024).contains(&self.min_password_length) {
            return Err(Violation::new(
                "register.min_password_length",
                self.min_password_length,
                "must be 1 to 1024",
            ));
        }
        if self.per_ip_period_s == 0 {
            return Err(Violation::new(
                "register.per_ip_period_s",
                0,
                "must be at least 1",
            ));
        }
        if self.max_tracked_addresses == 0 {
            return Err(Violation::new(
                "register.max_tracked_addresses",
                0,
                "must be at least 1",
            ));
        }
        if self.invite_ttl_s == 0 || self.invite_ttl_s > 365 * 24 * 3600 {
            return Err(Violation::new(
                "register.invite_ttl_s",
                self.invite_ttl_s,
                "must be 1 to 31536000 (a year)",
            ));
        }
        Ok(())
    }

    /// As sessions read it.
    pub fn settings(&self) -> SignupSettings {
        SignupSettings {
            mode: match self.mode {
                RegisterMode::Off => SignupMode::Off,
                RegisterMode::Invite => SignupMode::Invite,
                RegisterMode::Open => SignupMode::Open,
            },
            min_password_length: self.min_password_length,
            per_ip_max: self.per_ip_max,
            per_ip_period: std::time::Duration::from_secs(self.per_ip_period_s),
            max_tracked: self.max_tracked_addresses,
        }
    }
}
