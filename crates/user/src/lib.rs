//! The user actor: one per bare JID that has sessions or traffic.
//!
//! A [`UserActor`] aggregates the user's resources (connected, available, interested, priority,
//! last presence, carbons), owns the cached roster, the subscription state machine and the
//! blocklist (XEP-0191), runs the account's PEP service (XEP-0163), and applies the RFC 6121 §8.5 table ([`routing::TABLE`]) to what the
//! router hands it: stanzas to the user's bare JID, to a full JID no session owns, or from a
//! session that was gone. The [`Users`] registry starts an actor on first use, lets it stop
//! when idle, and is the router's [`UserSink`](parley_router::UserSink): the only way in for
//! stanzas addressed to a user.
//!
//! Everything an actor sends — to its own resources, to contacts, errors — takes the
//! router's road (`parley_router::Router::send`, `deliver`, `bounce`); the crate never
//! decides what a failed delivery means. It knows nothing about sockets or stream parsing:
//! sessions are [`SessionHandle`]s.
//!
//! [`SessionHandle`]: parley_router::SessionHandle

mod actor;
mod avatar;
mod blocklist;
mod bounds;
mod carbons;
mod last;
mod messages;
mod order;
mod pep;
pub mod placement;
mod presence;
mod push;
mod registry;
mod roster;
pub mod routing;
pub mod size;
pub mod subscription;
mod vcard;

pub use actor::UserActor;
pub use blocklist::SYNC_ID as BLOCKLIST_SYNC_ID;
pub use bounds::Queued;
pub use carbons::eligible_for_carbons;
pub use pep::{account_info as pep_account_info, PepLimits};
pub use push::{PushLimits, ID_PREFIX as PUSH_ID_PREFIX};
pub use vcard::read_vcard;
// `Inbound` (a stanza addressed to a user) is not exported: such stanzas reach user actors
// only through the router's road, via the registry's `UserSink`.
pub use messages::{
    Attach, AttachState, CarbonReceived, Detach, Drain, Fence, FromClient, HandOff, Vanished,
};
pub use order::{MAX_SYNC_USERS, SYNC_LIMIT};
pub use placement::{Placement, SyncDepth, SyncFuture, ToWire, UserWire, WireState};
pub use registry::{UserConfig, UserLink, Users};
