//! The chat-room (XEP-0045) families of `/metrics`: rooms and occupants running on this
//! node (gauges), rooms created and destroyed, joins, messages and invitations (counters).
//! Apart from `metrics.rs` to keep that file readable.

use std::fmt;

use parley_router::metrics as m;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

use crate::metrics::{family, labelled, load};

/// One scrape's chat-room figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Muc {
    pub rooms: u64,
    pub occupants: u64,
    pub created: u64,
    pub destroyed: u64,
    pub joins: u64,
    pub joins_refused: u64,
    pub messages: u64,
    pub messages_refused: u64,
    pub invitations: u64,
}

impl Muc {
    pub(crate) fn take() -> Muc {
        Muc {
            rooms: load(&m::MUC_ROOMS_LIVE),
            occupants: load(&m::MUC_OCCUPANTS),
            created: load(&m::MUC_ROOMS_CREATED),
            destroyed: load(&m::MUC_ROOMS_DESTROYED),
            joins: load(&m::MUC_JOINS),
            joins_refused: load(&m::MUC_JOINS_REFUSED),
            messages: load(&m::MUC_MESSAGES),
            messages_refused: load(&m::MUC_MESSAGES_REFUSED),
            invitations: load(&m::MUC_INVITATIONS),
        }
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder, node: &str) -> fmt::Result {
        let here = |value: u64| std::iter::once(([("node", node)], value));
        family(
            enc,
            "muc_rooms",
            "Chat rooms (XEP-0045) running on this node.",
            None,
            Gauge,
            here(self.rooms),
        )?;
        family(
            enc,
            "muc_occupants",
            "Occupant sessions in the chat rooms running on this node.",
            None,
            Gauge,
            here(self.occupants),
        )?;
        family(
            enc,
            "muc_room_changes",
            "Chat rooms created and destroyed on this node (destroyed: by an owner, the admin API, or a temporary room's last occupant leaving).",
            None,
            Counter,
            labelled(node, "change", [("created", self.created), ("destroyed", self.destroyed)]),
        )?;
        family(
            enc,
            "muc_joins",
            "Chat room joins, by outcome (refused: locked, banned, nick in use, members only, full, password).",
            None,
            Counter,
            labelled(node, "result", [("ok", self.joins), ("refused", self.joins_refused)]),
        )?;
        family(
            enc,
            "muc_messages",
            "Groupchat messages, by outcome (relayed once per message whatever the room's size; refused: over the occupant's rate).",
            None,
            Counter,
            labelled(node, "result", [("relayed", self.messages), ("refused", self.messages_refused)]),
        )?;
        family(
            enc,
            "muc_invitations",
            "Mediated chat room invitations sent (XEP-0045 §7.8.2).",
            None,
            Counter,
            here(self.invitations),
        )
    }
}
