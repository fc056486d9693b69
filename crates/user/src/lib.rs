//! The user actor: one per bare JID that has sessions or traffic.
//!
//! A [`UserActor`] aggregates the user's resources (connected, available, interested, priority,
//! last presence, carbons), owns the cached roster and the subscription state machine, and is
//! the one place where stanzas addressed to the user's bare JID are routed ([`routing::TABLE`],
//! RFC 6121 §8.5). Sessions reach user actors through the [`Users`] registry, which starts an
//! actor on first use and lets it stop when idle.
//!
//! The crate knows nothing about sockets or stream parsing: sessions are [`SessionHandle`]s.
//!
//! [`SessionHandle`]: parley_router::SessionHandle

mod actor;
mod blocking;
mod bounds;
mod carbons;
mod messages;
pub mod placement;
mod presence;
mod registry;
mod roster;
pub mod routing;
mod size;
pub mod subscription;

pub use actor::UserActor;
pub use blocking::SYNC_ID as BLOCKLIST_SYNC_ID;
pub use bounds::Queued;
pub use carbons::eligible_for_carbons;
pub use messages::{
    Attach, AttachState, CarbonReceived, Detach, Drain, FromClient, HandOff, Inbound, Vanished,
};
pub use placement::{Placement, ToWire, UserWire, WireState};
pub use registry::{UserConfig, UserLink, Users};
