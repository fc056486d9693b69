//! The service's settings, from `[muc]`: every bound a room or an occupant can push on
//! has a key here, and the defaults a new room starts with.

use std::time::Duration;

use crate::config::{RoomConfig, Whois};

/// Who may create rooms (`[muc] creation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// Any account of a host this server serves.
    Local,
    /// Only the server's admins (`[muc] admins`).
    Admins,
    /// Anyone, remote users included.
    Anyone,
}

/// `[muc]`.
#[derive(Debug, Clone)]
pub struct MucSettings {
    /// Who may create rooms.
    pub creation: Creation,
    /// Bare JIDs that own every room (service admins).
    pub admins: Vec<String>,
    /// Occupant sessions one room holds at most (`max_occupants`); a room's own
    /// `maxusers` can only lower it.
    pub max_occupants: usize,
    /// Rooms one account may own (`max_rooms_per_user`).
    pub max_rooms_per_user: usize,
    /// Rooms this node runs at once (`max_live_rooms`): past it, joins to rooms that are
    /// not running get `resource-constraint`.
    pub max_live_rooms: usize,
    /// Messages one occupant may send per second, on average (`messages_per_second`).
    pub messages_per_second: f64,
    /// Messages one occupant may send in a burst (`message_burst`).
    pub message_burst: f64,
    /// History kept per room, in messages (`max_history`); a room's `historylength` can
    /// only lower it.
    pub max_history: usize,
    /// History kept per room, in bytes (`max_history_bytes`).
    pub max_history_bytes: usize,
    /// Largest message a room relays, in bytes of XML (`max_message_bytes`).
    pub max_message_bytes: usize,
    /// Stanzas waiting for one room actor (`mailbox_stanzas`).
    pub mailbox_stanzas: usize,
    /// Bytes waiting for one room actor (`mailbox_bytes`).
    pub mailbox_bytes: usize,
    /// Invitations one message may carry (`max_invitations`).
    pub max_invitations: usize,
    /// How long an empty room's actor lingers before it stops (`idle_timeout_s`).
    pub idle_timeout: Duration,
    /// Rooms listed in one disco#items answer (`max_listed_rooms`).
    pub max_listed_rooms: usize,
    /// A new room waits for its owner's configuration (`lock_new_rooms`, §10.1.2); an
    /// instant room (§10.1.2, an empty form) unlocks it.
    pub lock_new_rooms: bool,
    /// A room whose owner never configures it is destroyed after this long
    /// (`lock_timeout_s`).
    pub lock_timeout: Duration,
    /// Results of one room archive query when the client asks for no page size.
    pub mam_default_page: usize,
    /// Most results in one room archive page.
    pub mam_max_page: usize,
    /// The configuration a new room starts with (`[muc.defaults]`).
    pub defaults: RoomConfig,
}

impl Default for MucSettings {
    fn default() -> Self {
        MucSettings {
            creation: Creation::Local,
            admins: Vec::new(),
            max_occupants: 2000,
            max_rooms_per_user: 100,
            max_live_rooms: 100_000,
            messages_per_second: 5.0,
            message_burst: 20.0,
            max_history: 50,
            max_history_bytes: 256 * 1024,
            max_message_bytes: 64 * 1024,
            mailbox_stanzas: 10_000,
            mailbox_bytes: 16 << 20,
            max_invitations: 10,
            idle_timeout: Duration::from_secs(60),
            max_listed_rooms: 500,
            lock_new_rooms: true,
            lock_timeout: Duration::from_secs(300),
            mam_default_page: 50,
            mam_max_page: 250,
            defaults: RoomConfig {
                whois: Whois::Moderators,
                ..RoomConfig::default()
            },
        }
    }
}
