//! Administration (XEP-0045 §8–§10): roles by nick (kick, voice, moderator),
//! affiliations by JID (ban, member, admin, owner) with their lists, and the owner's
//! configuration form, instant rooms and destruction. Every item of a request is checked
//! before any is applied, so a request is done whole or not at all.

use actix::{AsyncContext, Context};
use jid::{BareJid, FullJid};
use parley_proto::muc::{self, status, AdminItem, Affiliation, Item, Role};
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition};
use parley_xml::Element;

use super::RoomActor;
use crate::state::{may_set_affiliation, may_set_role, Room, Standing};

/// One checked change.
enum Change {
    Role {
        nick: String,
        role: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: BareJid,
        affiliation: Affiliation,
        reason: Option<String>,
    },
}

impl RoomActor {
    /// `<query xmlns='…#admin'/>` (§8, §9).
    pub(super) fn admin_iq(&mut self, iq: Element, from: &FullJid, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        let Some(query) = iq.first_child() else {
            return;
        };
        let items = match muc::parse_admin(query) {
            Ok(items) => items,
            Err(e) => return self.refuse(&iq, StanzaCondition::BadRequest, Some(&e.to_string())),
        };
        let bare = from.to_bare();
        let actor_aff = room.affiliation(&bare);
        let actor = room.occupant_of(from);
        let actor_role = actor.map_or(Role::None, |o| o.role);
        let actor_nick = actor.map(|o| o.nick.clone());
        if iq.attr("type") == Some("get") {
            return self.admin_list(&iq, &items[0], actor_aff, actor_role);
        }
        let mut changes = Vec::new();
        for item in items {
            match self.check(room, &item, actor_aff, actor_role, &bare) {
                Ok(change) => changes.push(change),
                Err((condition, text)) => return self.refuse(&iq, condition, Some(text)),
            }
        }
        for change in changes {
            match change {
                Change::Role {
                    nick,
                    role: Role::None,
                    reason,
                } => {
                    self.remove_with_status(&nick, status::KICKED, actor_nick.clone(), reason, ctx)
                }
                Change::Role { nick, role, reason } => {
                    self.set_role(&nick, role, actor_nick.clone(), reason, ctx)
                }
                Change::Affiliation {
                    jid,
                    affiliation,
                    reason,
                } => {
                    self.grant(&jid, affiliation, reason.clone(), ctx);
                    self.affiliation_changed(&jid, actor_nick.clone(), reason, ctx);
                }
            }
        }
        self.send(iq_result(&iq));
    }

    /// Checks one item against the actor's standing.
    fn check(
        &self,
        room: &Room,
        item: &AdminItem,
        actor_aff: Affiliation,
        actor_role: Role,
        actor: &BareJid,
    ) -> Result<Change, (StanzaCondition, &'static str)> {
        if let Some(affiliation) = item.affiliation {
            let jid = match (&item.jid, &item.nick) {
                (Some(j), _) => {
                    BareJid::new(j).map_err(|_| (StanzaCondition::JidMalformed, "not a JID"))?
                }
                (None, Some(nick)) => room
                    .occupants
                    .get(nick)
                    .map(|o| o.bare.clone())
                    .ok_or((StanzaCondition::ItemNotFound, "no such occupant"))?,
                (None, None) => {
                    return Err((
                        StanzaCondition::BadRequest,
                        "an affiliation change names a jid",
                    ))
                }
            };
            let from = room.affiliation(&jid);
            if !may_set_affiliation(actor_aff, from, affiliation) {
                return Err((
                    StanzaCondition::NotAllowed,
                    "you may not change that affiliation",
                ));
            }
            // §10.7: the last owner stays.
            if from == Affiliation::Owner
                && affiliation != Affiliation::Owner
                && room.owners().filter(|o| **o != jid).count() == 0
            {
                return Err((StanzaCondition::Conflict, "a room keeps at least one owner"));
            }
            if &jid == actor && affiliation == Affiliation::Outcast {
                return Err((StanzaCondition::NotAllowed, "you may not ban yourself"));
            }
            return Ok(Change::Affiliation {
                jid,
                affiliation,
                reason: item.reason.clone(),
            });
        }
        let role = item
            .role
            .ok_or((StanzaCondition::BadRequest, "nothing to change"))?;
        let nick = item
            .nick
            .clone()
            .ok_or((StanzaCondition::BadRequest, "a role change names a nick"))?;
        let target = room
            .occupants
            .get(&nick)
            .ok_or((StanzaCondition::ItemNotFound, "no such occupant"))?;
        let target_aff = room.affiliation(&target.bare);
        if !may_set_role(actor_aff, actor_role, target_aff, target.role, role) {
            return Err((StanzaCondition::NotAllowed, "you may not change that role"));
        }
        Ok(Change::Role {
            nick,
            role,
            reason: item.reason.clone(),
        })
    }

    /// §9.5, §8.5: the JIDs with an affiliation, or the occupants with a role.
    fn admin_list(
        &self,
        iq: &Element,
        asked: &AdminItem,
        actor_aff: Affiliation,
        actor_role: Role,
    ) {
        let Some(room) = self.room() else { return };
        let mut query = Element::new("query", muc::NS_ADMIN);
        if let Some(affiliation) = asked.affiliation {
            if actor_aff < Affiliation::Admin {
                return self.refuse(
                    iq,
                    StanzaCondition::Forbidden,
                    Some("only admins see affiliation lists"),
                );
            }
            for (jid, s) in room
                .standings
                .iter()
                .filter(|(_, s)| s.affiliation == affiliation)
            {
                let mut item = Item::new(affiliation, Role::None);
                item.jid = Some(jid.to_string());
                item.nick = s.nick.clone();
                item.reason = s.reason.clone();
                let mut el = item.to_element(muc::NS_ADMIN);
                el.remove_attr("role");
                query.push_child(el);
            }
        } else if let Some(role) = asked.role {
            if actor_role != Role::Moderator {
                return self.refuse(
                    iq,
                    StanzaCondition::Forbidden,
                    Some("only moderators see role lists"),
                );
            }
            for o in room.occupants.values().filter(|o| o.role == role) {
                let mut item = Item::new(room.affiliation(&o.bare), role);
                item.nick = Some(o.nick.clone());
                item.jid = o.seats.last().map(|s| s.jid.to_string());
                query.push_child(item.to_element(muc::NS_ADMIN));
            }
        }
        self.send(iq_result(iq).with_child(query));
    }

    /// Sets `jid`'s affiliation and stores it.
    pub(super) fn grant(
        &mut self,
        jid: &BareJid,
        affiliation: Affiliation,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room_mut() else { return };
        let nick = room.standings.get(jid).and_then(|s| s.nick.clone());
        let standing = Standing {
            affiliation,
            nick,
            reason,
        };
        let row = Room::standing_row(jid, &standing);
        if affiliation == Affiliation::None {
            room.standings.remove(jid);
        } else {
            room.standings.insert(jid.clone(), standing);
        }
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "affiliation", async move {
            storage.muc_set_affiliation(&service, &name, &row).await
        });
    }

    /// `<query xmlns='…#owner'/>` (§10).
    pub(super) fn owner_iq(&mut self, iq: Element, from: &FullJid, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        if room.affiliation(&from.to_bare()) != Affiliation::Owner {
            return self.refuse(
                &iq,
                StanzaCondition::Forbidden,
                Some("only owners configure the room"),
            );
        }
        let settings = self.env.settings.clone();
        let Some(query) = iq.first_child() else {
            return;
        };
        if iq.attr("type") == Some("get") {
            let form = room
                .config
                .form(settings.max_occupants, settings.max_history);
            let form = form.with_child(
                Element::new("title", "jabber:x:data")
                    .with_text(format!("Configuration of {}", self.jid)),
            );
            return self.send(
                iq_result(&iq).with_child(Element::new("query", muc::NS_OWNER).with_child(form)),
            );
        }
        if let Some(destroy) = query.get_child("destroy", muc::NS_OWNER) {
            // §10.9.
            let reason = destroy
                .get_child("reason", muc::NS_OWNER)
                .map(Element::text);
            let alternate = destroy.attr("jid").map(str::to_owned);
            self.destroyed(ctx, reason, alternate);
            return self.send(iq_result(&iq));
        }
        let Some(form) = query.get_child("x", "jabber:x:data") else {
            return self.refuse(
                &iq,
                StanzaCondition::BadRequest,
                Some("send a form or a destroy"),
            );
        };
        if form.attr("type") == Some("cancel") {
            // §10.1.3: cancelling the first configuration destroys the new room.
            if room.config.locked {
                self.destroyed(ctx, None, None);
            }
            return self.send(iq_result(&iq));
        }
        let before = room.config.clone();
        let next = match before.apply(form, settings.max_occupants, settings.max_history) {
            Ok(next) => next,
            Err(e) => {
                return self.refuse(&iq, StanzaCondition::NotAcceptable, Some(&e.to_string()))
            }
        };
        if let Some(h) = self.lock_timer.take() {
            ctx.cancel_future(h);
        }
        let room = self.room_mut().expect("live");
        room.config = next.clone();
        let max = next.history_length.min(settings.max_history);
        room.history.trim(max, settings.max_history_bytes);
        self.persist_room(ctx);
        self.send(iq_result(&iq));
        // §10.2.1: occupants learn that the configuration changed, and how.
        let mut codes = vec![status::CONFIG_CHANGED];
        if before.archive != next.archive {
            codes.push(if next.archive {
                status::LOGGED
            } else {
                status::NOT_LOGGED
            });
        }
        if before.whois != next.whois {
            codes.push(if next.non_anonymous() {
                status::NOW_NON_ANONYMOUS
            } else {
                status::NOW_SEMI_ANONYMOUS
            });
        }
        if !before.locked {
            let room = self.room().expect("live");
            let seats: Vec<&jid::FullJid> =
                room.occupants.values().flat_map(|o| o.jids()).collect();
            let note = Element::new("message", ns::CLIENT)
                .with_attr("from", self.jid.to_string())
                .with_attr("type", "groupchat")
                .with_attr("id", parley_proto::mam::new_id())
                .with_child(muc::status_x(&codes));
            self.fan_out(&note, &seats);
        }
        if next.members_only && !before.members_only {
            self.enforce_members_only(ctx);
        }
    }
}
