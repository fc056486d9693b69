//! Multi-user chat rooms (XEP-0045) as stored: each room's configuration and subject, the
//! affiliations of bare JIDs with it, and its occupants. Part of every
//! [`Storage`](crate::Storage) (a supertrait), written once for both SQL backends in
//! `shared/muc.rs`.
//!
//! A room's state lives here rather than only in its actor's memory so that any node of a
//! cluster can take a room over (its node gone, the room moved) and find it as it was,
//! occupants included; temporary rooms are therefore stored too, and deleted when their
//! last occupant leaves. Configuration is opaque JSON owned by `parley-muc`, so that a new
//! room option needs no migration.
//!
//! Rooms are keyed by the MUC service's domain and the room's name, never by an account:
//! they outlive their owners' accounts, and [`Storage::delete_account`](crate::Storage)
//! leaves them alone. A room's archive, though, is its own: it is stored as the archive of
//! `name@service` in the message-archive tables and goes with the room.
//!
//! Creating a room checks that it is new and that its owner is under the service's cap,
//! then inserts, in one transaction under a lock on the owner: two creations racing can
//! never both pass the cap, nor both create one room.

use crate::Result;

/// A room as stored (XEP-0045). Temporary rooms are stored too (so another cluster node
/// can take the room over) and deleted when their last occupant leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// The MUC service's domain, e.g. `conference.example.org`.
    pub service: String,
    /// The room's localpart (normalized).
    pub name: String,
    /// The room's configuration, opaque to storage (JSON written by parley-muc).
    pub config: String,
    /// The current subject message as XML, if any.
    pub subject: Option<String>,
    /// Listed in the service's disco#items (a public room).
    pub public: bool,
    /// Kept when empty.
    pub persistent: bool,
    /// Unix ms.
    pub created_ms: i64,
}

/// One affiliation (owner, admin, member, outcast) of a bare JID with a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAffiliationRow {
    /// The affiliated bare JID.
    pub jid: String,
    /// `owner`, `admin`, `member` or `outcast`; `none` removes the row.
    pub affiliation: String,
    /// A reserved nick (members).
    pub nick: Option<String>,
    /// Why it was given, as the admin said.
    pub reason: Option<String>,
}

/// An occupant session in a room (one row per real full JID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOccupantRow {
    /// The occupant's real full JID.
    pub jid: String,
    /// Its nick in the room.
    pub nick: String,
    /// `moderator`, `participant` or `visitor`.
    pub role: String,
    /// Its last presence, as XML.
    pub presence: String,
}

/// Everything a room actor loads when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The room itself.
    pub room: RoomRecord,
    /// Its affiliations, by JID (byte order).
    pub affiliations: Vec<RoomAffiliationRow>,
    /// Its occupants, by real JID (byte order).
    pub occupants: Vec<RoomOccupantRow>,
}

/// The outcome of [`Muc::muc_create_room`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreated {
    /// The room and its owner's affiliation are stored.
    Created,
    /// A room of that name exists already; nothing changed.
    Exists,
    /// The owner owns the most rooms of this service it may; nothing changed.
    TooMany,
}

/// The multi-user chat part of a store.
#[async_trait::async_trait]
pub trait Muc: Send + Sync {
    /// The room with everything it holds, if it exists (one snapshot: never half-way
    /// through a change).
    async fn muc_room(&self, service: &str, name: &str) -> Result<Option<RoomState>>;

    /// Creates `room` with `owner` (a bare JID) as its owner affiliation, unless it exists
    /// ([`RoomCreated::Exists`]) or `owner` already owns `max_owned` rooms of this service
    /// ([`RoomCreated::TooMany`]). The checks and the inserts are one transaction, under a
    /// lock on `(service, owner)`: concurrent creations never pass the cap. A room created
    /// anew starts without affiliations or occupants other than its owner, whatever writes
    /// that raced an earlier room's destruction left.
    async fn muc_create_room(
        &self,
        room: &RoomRecord,
        owner: &str,
        max_owned: usize,
    ) -> Result<RoomCreated>;

    /// Rewrites config, subject, public and persistent of an existing room; false when it
    /// does not exist.
    async fn muc_update_room(&self, room: &RoomRecord) -> Result<bool>;

    /// Deletes the room, its affiliations, its occupants and its archive (the messages
    /// archived for `name@service`, with their totals); whether the room existed.
    async fn muc_destroy_room(&self, service: &str, name: &str) -> Result<bool>;

    /// Sets one affiliation (`none` deletes the row).
    async fn muc_set_affiliation(
        &self,
        service: &str,
        name: &str,
        row: &RoomAffiliationRow,
    ) -> Result<()>;

    /// Inserts or replaces the occupant row of `row.jid`.
    async fn muc_put_occupant(
        &self,
        service: &str,
        name: &str,
        row: &RoomOccupantRow,
    ) -> Result<()>;

    /// Removes the occupant row of `jid` (a real full JID).
    async fn muc_remove_occupant(&self, service: &str, name: &str, jid: &str) -> Result<()>;

    /// Removes every occupant row of the room.
    async fn muc_clear_occupants(&self, service: &str, name: &str) -> Result<()>;

    /// Rooms of `service` in name order (byte order) after `after` (exclusive), at most
    /// `limit`; only public ones when `public_only`.
    async fn muc_rooms(
        &self,
        service: &str,
        after: Option<&str>,
        limit: usize,
        public_only: bool,
    ) -> Result<Vec<RoomRecord>>;

    /// How many rooms `service` has.
    async fn muc_room_count(&self, service: &str) -> Result<u64>;
}
