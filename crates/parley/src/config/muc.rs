//! `[muc]` and `[muc.defaults]`: multi-user chat (XEP-0045) at `conference.DOMAIN`. Kept
//! apart from `schema.rs` to keep that file readable; the rules are checked here too.

use std::time::Duration;

use parley_muc::{AllowPm, Creation, MucSettings, RoomConfig, Whois};
use serde::Deserialize;

use super::validate::Violation;

/// `[muc]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MucConfig {
    /// Run the service.
    pub enabled: bool,
    /// The service's domain: this label, a dot, and each host.
    pub subdomain: String,
    /// Who may create rooms: "local" (accounts of this server), "admins", "anyone".
    pub creation: String,
    /// Bare JIDs that own every room.
    pub admins: Vec<String>,
    pub max_occupants: usize,
    pub max_rooms_per_user: usize,
    pub max_live_rooms: usize,
    /// Messages one occupant may send per minute, on average.
    pub messages_per_minute: u32,
    /// Messages one occupant may send at once after a pause.
    pub message_burst: u32,
    pub max_history: usize,
    pub max_history_bytes: usize,
    pub max_message_bytes: usize,
    pub mailbox_stanzas: usize,
    pub mailbox_bytes: usize,
    pub max_invitations: usize,
    pub idle_timeout_s: u64,
    pub max_listed_rooms: usize,
    pub lock_new_rooms: bool,
    pub lock_timeout_s: u64,
    /// `[muc.defaults]`.
    pub defaults: MucDefaults,
}

/// `[muc.defaults]`: the configuration a new room starts with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MucDefaults {
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// "moderators" (semi-anonymous) or "anyone" (non-anonymous).
    pub whois: String,
    pub max_occupants: usize,
    pub history_length: usize,
    pub archive: bool,
    pub change_subject: bool,
    pub allow_invites: bool,
    /// "anyone", "participants", "moderators" or "none".
    pub allow_pm: String,
}

impl Default for MucDefaults {
    fn default() -> Self {
        let d = RoomConfig::default();
        MucDefaults {
            persistent: d.persistent,
            public: d.public,
            members_only: d.members_only,
            moderated: d.moderated,
            whois: "moderators".into(),
            max_occupants: d.max_occupants,
            history_length: d.history_length,
            archive: d.archive,
            change_subject: d.change_subject,
            allow_invites: d.allow_invites,
            allow_pm: "anyone".into(),
        }
    }
}

impl Default for MucConfig {
    fn default() -> Self {
        let d = MucSettings::default();
        MucConfig {
            enabled: true,
            subdomain: "conference".into(),
            creation: "local".into(),
            admins: Vec::new(),
            max_occupants: d.max_occupants,
            max_rooms_per_user: d.max_rooms_per_user,
            max_live_rooms: d.max_live_rooms,
            messages_per_minute: (d.messages_per_second * 60.0) as u32,
            message_burst: d.message_burst as u32,
            max_history: d.max_history,
            max_history_bytes: d.max_history_bytes,
            max_message_bytes: d.max_message_bytes,
            mailbox_stanzas: d.mailbox_stanzas,
            mailbox_bytes: d.mailbox_bytes,
            max_invitations: d.max_invitations,
            idle_timeout_s: d.idle_timeout.as_secs(),
            max_listed_rooms: d.max_listed_rooms,
            lock_new_rooms: d.lock_new_rooms,
            lock_timeout_s: d.lock_timeout.as_secs(),
            defaults: MucDefaults::default(),
        }
    }
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
    what: &'static str,
) -> Result<(), Violation> {
    if v < lo || v > hi {
        return Err(Violation::new(key, v, what));
    }
    Ok(())
}

impl MucConfig {
    pub(super) fn check(&self) -> Result<(), Violation> {
        if self.subdomain.is_empty()
            || !self
                .subdomain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Violation::new(
                "muc.subdomain",
                &self.subdomain,
                "must be one DNS label (letters, digits, '-')",
            ));
        }
        self.creation()?;
        for a in &self.admins {
            if jid::BareJid::new(a).is_err() {
                return Err(Violation::new("muc.admins", a, "must be bare JIDs"));
            }
        }
        range(
            "muc.max_occupants",
            self.max_occupants,
            1,
            100_000,
            "must be 1 to 100000",
        )?;
        range(
            "muc.max_rooms_per_user",
            self.max_rooms_per_user,
            1,
            100_000,
            "must be 1 to 100000",
        )?;
        range(
            "muc.max_live_rooms",
            self.max_live_rooms,
            1,
            10_000_000,
            "must be 1 to 10000000",
        )?;
        range(
            "muc.messages_per_minute",
            self.messages_per_minute,
            1,
            600_000,
            "must be 1 to 600000",
        )?;
        range(
            "muc.message_burst",
            self.message_burst,
            1,
            100_000,
            "must be 1 to 100000",
        )?;
        range(
            "muc.max_history",
            self.max_history,
            0,
            10_000,
            "must be 0 to 10000",
        )?;
        range(
            "muc.max_history_bytes",
            self.max_history_bytes,
            0,
            1 << 30,
            "must be at most 1 GiB",
        )?;
        range(
            "muc.max_message_bytes",
            self.max_message_bytes,
            256,
            16 << 20,
            "must be 256 bytes to 16 MiB",
        )?;
        range(
            "muc.mailbox_stanzas",
            self.mailbox_stanzas,
            16,
            10_000_000,
            "must be 16 to 10000000",
        )?;
        range(
            "muc.mailbox_bytes",
            self.mailbox_bytes,
            65_536,
            1 << 32,
            "must be 64 KiB to 4 GiB",
        )?;
        range(
            "muc.max_invitations",
            self.max_invitations,
            1,
            1000,
            "must be 1 to 1000",
        )?;
        range(
            "muc.idle_timeout_s",
            self.idle_timeout_s,
            1,
            86_400,
            "must be 1 to 86400",
        )?;
        range(
            "muc.max_listed_rooms",
            self.max_listed_rooms,
            1,
            100_000,
            "must be 1 to 100000",
        )?;
        range(
            "muc.lock_timeout_s",
            self.lock_timeout_s,
            1,
            86_400,
            "must be 1 to 86400",
        )?;
        let d = &self.defaults;
        self.whois()?;
        self.allow_pm()?;
        range(
            "muc.defaults.max_occupants",
            d.max_occupants,
            1,
            self.max_occupants,
            "must be 1 to muc.max_occupants",
        )?;
        range(
            "muc.defaults.history_length",
            d.history_length,
            0,
            self.max_history,
            "must be 0 to muc.max_history",
        )?;
        Ok(())
    }

    fn creation(&self) -> Result<Creation, Violation> {
        match self.creation.as_str() {
            "local" => Ok(Creation::Local),
            "admins" => Ok(Creation::Admins),
            "anyone" => Ok(Creation::Anyone),
            other => Err(Violation::new(
                "muc.creation",
                other,
                "must be local, admins or anyone",
            )),
        }
    }

    fn whois(&self) -> Result<Whois, Violation> {
        match self.defaults.whois.as_str() {
            "moderators" => Ok(Whois::Moderators),
            "anyone" => Ok(Whois::Anyone),
            other => Err(Violation::new(
                "muc.defaults.whois",
                other,
                "must be moderators or anyone",
            )),
        }
    }

    fn allow_pm(&self) -> Result<AllowPm, Violation> {
        match self.defaults.allow_pm.as_str() {
            "anyone" => Ok(AllowPm::Anyone),
            "participants" => Ok(AllowPm::Participants),
            "moderators" => Ok(AllowPm::Moderators),
            "none" => Ok(AllowPm::None),
            other => Err(Violation::new(
                "muc.defaults.allow_pm",
                other,
                "must be anyone, participants, moderators or none",
            )),
        }
    }

    /// As the service reads it (the config was checked).
    pub fn settings(&self, mam: &super::MamConfig) -> MucSettings {
        let d = &self.defaults;
        MucSettings {
            creation: self.creation().unwrap_or(Creation::Local),
            admins: self.admins.clone(),
            max_occupants: self.max_occupants,
            max_rooms_per_user: self.max_rooms_per_user,
            max_live_rooms: self.max_live_rooms,
            messages_per_second: f64::from(self.messages_per_minute) / 60.0,
            message_burst: f64::from(self.message_burst),
            max_history: self.max_history,
            max_history_bytes: self.max_history_bytes,
            max_message_bytes: self.max_message_bytes,
            mailbox_stanzas: self.mailbox_stanzas,
            mailbox_bytes: self.mailbox_bytes,
            max_invitations: self.max_invitations,
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            max_listed_rooms: self.max_listed_rooms,
            lock_new_rooms: self.lock_new_rooms,
            lock_timeout: Duration::from_secs(self.lock_timeout_s),
            mam_default_page: mam.default_page,
            mam_max_page: mam.max_page,
            defaults: RoomConfig {
                persistent: d.persistent,
                public: d.public,
                members_only: d.members_only,
                moderated: d.moderated,
                whois: self.whois().unwrap_or(Whois::Moderators),
                max_occupants: d.max_occupants,
                history_length: d.history_length,
                archive: d.archive,
                change_subject: d.change_subject,
                allow_invites: d.allow_invites,
                allow_pm: self.allow_pm().unwrap_or(AllowPm::Anyone),
                ..RoomConfig::default()
            },
        }
    }
}
