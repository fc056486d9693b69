//! What one room knows: its configuration, subject, affiliations and occupants, with the
//! rules that derive one from another (default roles, who sees real JIDs, who may act on
//! whom). No I/O here: the actor (`room/`) applies decisions and persists them.

use std::collections::{BTreeMap, HashMap};

use jid::{BareJid, FullJid};
use parley_proto::muc::{Affiliation, Role};
use parley_storage::{RoomAffiliationRow, RoomOccupantRow, RoomRecord, RoomState as Stored};
use parley_xml::{Element, Limits};
use sha2::{Digest, Sha256};

use crate::config::RoomConfig;
use crate::history::History;

/// A bare JID's long-lived standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Standing {
    pub affiliation: Affiliation,
    /// A reserved nick.
    pub nick: Option<String>,
    pub reason: Option<String>,
}

/// One connected resource of an occupant: an occupant may be joined from several
/// resources under one nick, as in Prosody.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub jid: FullJid,
    /// Its last presence as sent (room payloads stripped).
    pub presence: Element,
}

/// Messages an occupant may still send: a token bucket (`[muc] messages_per_second`,
/// `message_burst`).
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    pub fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            at: std::time::Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One nick in the room.
#[derive(Debug, Clone)]
pub(crate) struct Occupant {
    pub nick: String,
    pub bare: BareJid,
    pub role: Role,
    /// Never empty while the occupant is in the room.
    pub seats: Vec<Seat>,
    /// XEP-0421: stable per (room, bare JID), and telling nothing about the JID.
    pub id: String,
    pub bucket: Bucket,
}

impl Occupant {
    /// The presence others see: the newest seat's.
    pub fn presence(&self) -> &Element {
        &self.seats.last().expect("an occupant has a seat").presence
    }

    pub fn jids(&self) -> impl Iterator<Item = &FullJid> {
        self.seats.iter().map(|s| &s.jid)
    }
}

/// A room's whole state.
#[derive(Debug)]
pub(crate) struct Room {
    pub jid: BareJid,
    pub config: RoomConfig,
    /// The current subject message as sent (from the occupant who set it).
    pub subject: Option<Element>,
    pub standings: HashMap<BareJid, Standing>,
    /// By nick.
    pub occupants: BTreeMap<String, Occupant>,
    /// Real full JID to nick.
    pub by_jid: HashMap<FullJid, String>,
    pub history: History,
    pub created_ms: i64,
    /// Service admins: owners of every room.
    pub service_admins: Vec<BareJid>,
}

impl Room {
    /// A room that does not exist yet.
    pub fn new(jid: BareJid, config: RoomConfig, service_admins: Vec<BareJid>) -> Room {
        Room {
            jid,
            config,
            subject: None,
            standings: HashMap::new(),
            occupants: BTreeMap::new(),
            by_jid: HashMap::new(),
            history: History::default(),
            created_ms: parley_proto::clock::now_ms(),
            service_admins,
        }
    }

    /// The room as storage holds it. Occupants come back only as rows: the actor decides
    /// which are still connected.
    pub fn from_stored(
        jid: BareJid,
        stored: &Stored,
        service_admins: Vec<BareJid>,
        burst: f64,
    ) -> Room {
        let config = RoomConfig::from_json(&stored.room.config).unwrap_or_else(|| {
            tracing::warn!(room = %jid, "unreadable room configuration: defaults used");
            RoomConfig::default()
        });
        let limits = Limits::trusted_copies();
        let mut room = Room::new(jid, config, service_admins);
        room.created_ms = stored.room.created_ms;
        room.subject = stored
            .room
            .subject
            .as_deref()
            .and_then(|s| Element::parse(s.as_bytes(), &limits).ok());
        for a in &stored.affiliations {
            let (Ok(bare), Some(affiliation)) =
                (BareJid::new(&a.jid), Affiliation::parse(&a.affiliation))
            else {
                continue;
            };
            room.standings.insert(
                bare,
                Standing {
                    affiliation,
                    nick: a.nick.clone(),
                    reason: a.reason.clone(),
                },
            );
        }
        for o in &stored.occupants {
            let (Ok(jid), Some(role), Ok(presence)) = (
                FullJid::new(&o.jid),
                Role::parse(&o.role),
                Element::parse(o.presence.as_bytes(), &limits),
            ) else {
                continue;
            };
            room.seat(&o.nick, jid, role, presence, burst);
        }
        room
    }

    /// What storage keeps of the room itself.
    pub fn record(&self, service: &str) -> RoomRecord {
        RoomRecord {
            service: service.to_owned(),
            name: self
                .jid
                .node()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            config: self.config.to_json(),
            subject: self.subject.as_ref().map(Element::to_string),
            public: self.config.public,
            persistent: self.config.persistent,
            created_ms: self.created_ms,
        }
    }

    pub fn affiliation(&self, bare: &BareJid) -> Affiliation {
        if self.service_admins.contains(bare) {
            return Affiliation::Owner;
        }
        self.standings
            .get(bare)
            .map_or(Affiliation::None, |s| s.affiliation)
    }

    /// §5.1: the role an affiliation starts with.
    pub fn default_role(&self, affiliation: Affiliation) -> Role {
        match affiliation {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if self.config.moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    pub fn occupant_of(&self, jid: &FullJid) -> Option<&Occupant> {
        self.occupants.get(self.by_jid.get(jid)?)
    }

    /// Occupant sessions in the room.
    pub fn seat_count(&self) -> usize {
        self.by_jid.len()
    }

    /// Seats `jid` under `nick` (a new occupant, or another resource of one).
    pub fn seat(&mut self, nick: &str, jid: FullJid, role: Role, presence: Element, burst: f64) {
        let bare = jid.to_bare();
        let id = occupant_id(&self.config.occupant_salt, &self.jid, &bare);
        let occupant = self
            .occupants
            .entry(nick.to_owned())
            .or_insert_with(|| Occupant {
                nick: nick.to_owned(),
                bare,
                role,
                seats: Vec::new(),
                id,
                bucket: Bucket::full(burst),
            });
        occupant.seats.retain(|s| s.jid != jid);
        occupant.seats.push(Seat {
            jid: jid.clone(),
            presence,
        });
        self.by_jid.insert(jid, nick.to_owned());
    }

    /// Removes one seat; the occupant goes with its last one (returned then).
    pub fn unseat(&mut self, jid: &FullJid) -> Option<Occupant> {
        let nick = self.by_jid.remove(jid)?;
        let occupant = self.occupants.get_mut(&nick)?;
        occupant.seats.retain(|s| &s.jid != jid);
        if occupant.seats.is_empty() {
            return self.occupants.remove(&nick);
        }
        None
    }

    /// Removes an occupant with every seat.
    pub fn remove_occupant(&mut self, nick: &str) -> Option<Occupant> {
        let occupant = self.occupants.remove(nick)?;
        for jid in occupant.jids() {
            self.by_jid.remove(jid);
        }
        Some(occupant)
    }

    /// Renames an occupant (§7.6).
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(mut occupant) = self.occupants.remove(from) {
            occupant.nick = to.to_owned();
            for jid in occupant.jids() {
                self.by_jid.insert(jid.clone(), to.to_owned());
            }
            self.occupants.insert(to.to_owned(), occupant);
        }
    }

    /// Whether an occupant with `role` sees real JIDs (§4.1: everyone in a non-anonymous
    /// room, moderators in a semi-anonymous one).
    pub fn sees_jids(&self, role: Role) -> bool {
        self.config.non_anonymous() || role == Role::Moderator
    }

    /// The owners' bare JIDs (stored ones, not service admins).
    pub fn owners(&self) -> impl Iterator<Item = &BareJid> {
        self.standings
            .iter()
            .filter(|(_, s)| s.affiliation == Affiliation::Owner)
            .map(|(j, _)| j)
    }

    /// An occupant's storage row for one seat.
    pub fn row(occupant: &Occupant, seat: &Seat) -> RoomOccupantRow {
        RoomOccupantRow {
            jid: seat.jid.to_string(),
            nick: occupant.nick.clone(),
            role: occupant.role.as_str().to_owned(),
            presence: seat.presence.to_string(),
        }
    }

    pub fn standing_row(bare: &BareJid, s: &Standing) -> RoomAffiliationRow {
        RoomAffiliationRow {
            jid: bare.to_string(),
            affiliation: s.affiliation.as_str().to_owned(),
            nick: s.nick.clone(),
            reason: s.reason.clone(),
        }
    }
}

/// XEP-0421 §3: derived from the room's salt, the room and the bare JID, so it is the
/// same on every node and after a restart, and reveals nothing of the JID.
pub(crate) fn occupant_id(salt: &str, room: &BareJid, bare: &BareJid) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(room.as_str().as_bytes());
    h.update([0]);
    h.update(bare.as_str().as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// §8–§9: whether `actor` (with its affiliation and role) may give `target` a new role.
pub(crate) fn may_set_role(
    actor_aff: Affiliation,
    actor_role: Role,
    target_aff: Affiliation,
    target_role: Role,
    new_role: Role,
) -> bool {
    if actor_role != Role::Moderator {
        return false;
    }
    // §8.2, §9.6: a moderator cannot act on anyone of a higher affiliation, and only
    // admins and owners may touch moderators.
    if target_aff > actor_aff {
        return false;
    }
    if (new_role == Role::Moderator || target_role == Role::Moderator)
        && actor_aff < Affiliation::Admin
    {
        return false;
    }
    // Admins and owners stay moderators while present (§5.1.2).
    if target_aff >= Affiliation::Admin && new_role != Role::Moderator {
        return false;
    }
    true
}

/// §9–§10: whether `actor` may move `target` from `from` to `to`.
pub(crate) fn may_set_affiliation(actor: Affiliation, from: Affiliation, to: Affiliation) -> bool {
    match actor {
        Affiliation::Owner => true,
        // §9: an admin manages members and outcasts, never admins or owners.
        Affiliation::Admin => from < Affiliation::Admin && to < Affiliation::Admin,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0045_8_2_a_moderator_cannot_kick_an_admin() {
        assert!(!may_set_role(
            Affiliation::Member,
            Role::Moderator,
            Affiliation::Admin,
            Role::Moderator,
            Role::None
        ));
        assert!(may_set_role(
            Affiliation::Admin,
            Role::Moderator,
            Affiliation::None,
            Role::Participant,
            Role::None
        ));
        assert!(!may_set_role(
            Affiliation::None,
            Role::Participant,
            Affiliation::None,
            Role::Participant,
            Role::None
        ));
    }

    #[test]
    fn xep0045_9_an_admin_cannot_touch_owners_or_admins() {
        assert!(may_set_affiliation(
            Affiliation::Admin,
            Affiliation::None,
            Affiliation::Outcast
        ));
        assert!(!may_set_affiliation(
            Affiliation::Admin,
            Affiliation::Owner,
            Affiliation::Outcast
        ));
        assert!(!may_set_affiliation(
            Affiliation::Admin,
            Affiliation::Member,
            Affiliation::Admin
        ));
        assert!(may_set_affiliation(
            Affiliation::Owner,
            Affiliation::Admin,
            Affiliation::None
        ));
    }

    #[test]
    fn xep0421_ids_are_stable_and_differ_per_room() {
        let a = BareJid::new("a@x").unwrap();
        let r1 = BareJid::new("r1@conf.x").unwrap();
        let r2 = BareJid::new("r2@conf.x").unwrap();
        assert_eq!(occupant_id("s", &r1, &a), occupant_id("s", &r1, &a));
        assert_ne!(occupant_id("s", &r1, &a), occupant_id("s", &r2, &a));
        assert_eq!(occupant_id("s", &r1, &a).len(), 32);
    }
}
