//! Multi-user chat (XEP-0045) on `conference.DOMAIN`: the service the router hands those
//! stanzas to ([`Rooms`]), one actor per live room, placed on the node that owns it by the
//! same rendezvous hashing as user actors ([`RoomPlacement`]), so occupants on any node
//! share one room and a room survives its node (everything it must keep is in storage).
//!
//! Nothing here touches a socket or etcd: stanzas come in through the router (or a node
//! link the cluster crate runs) and go out through the router. Each file owns one concern:
//! `state.rs` the room's data and its rules, `room/` the actor (presence, messages,
//! administration, the iqs it answers), `history.rs` the history sent on join,
//! `service.rs` the conference domain itself, `registry.rs` the live rooms and their
//! hand-off between nodes.

mod archive;
mod config;
mod history;
mod metrics;
mod registry;
mod room;
mod service;
mod settings;
mod state;

pub use archive::RoomArchive;
pub use config::{AllowPm, RoomConfig, Whois};
pub use registry::{Controlled, RoomControl, RoomPlacement, Rooms};
pub use settings::{Creation, MucSettings};

/// A live room as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomView {
    pub jid: String,
    pub name: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub occupants: Vec<OccupantView>,
}

/// One occupant in a [`RoomView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OccupantView {
    pub nick: String,
    pub role: String,
    pub affiliation: String,
    /// Real full JIDs of its seats.
    pub jids: Vec<String>,
}

impl RoomView {
    pub(crate) fn of(room: &state::Room) -> RoomView {
        RoomView {
            jid: room.jid.to_string(),
            name: room.config.name.clone(),
            persistent: room.config.persistent,
            public: room.config.public,
            members_only: room.config.members_only,
            occupants: room
                .occupants
                .values()
                .map(|o| OccupantView {
                    nick: o.nick.clone(),
                    role: o.role.as_str().to_owned(),
                    affiliation: room.affiliation(&o.bare).as_str().to_owned(),
                    jids: o.jids().map(ToString::to_string).collect(),
                })
                .collect(),
        }
    }
}
