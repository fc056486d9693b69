//! Messages in a room (XEP-0045 §7.4–§7.5, §7.8, §8.1): groupchat relayed to every seat
//! with the room's `<stanza-id/>` (XEP-0359) and `<occupant-id/>` (XEP-0421), kept in the
//! history and the room archive; the subject; private messages; mediated invitations and
//! declines.

use actix::Context;
use jid::{BareJid, FullJid, Jid};
use parley_proto::mam;
use parley_proto::muc::{self, Affiliation, Invitation, Role};
use parley_proto::ns;
use parley_proto::stanza_error::StanzaCondition;
use parley_storage::ArchiveRecord;
use parley_xml::Element;

use super::RoomActor;
use crate::config::AllowPm;

impl RoomActor {
    pub(super) fn on_message(&mut self, m: Element, ctx: &mut Context<Self>) {
        let Some(from) = m.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return;
        };
        let kind = m.attr("type").unwrap_or("normal").to_owned();
        let to_nick = m
            .attr("to")
            .and_then(|t| FullJid::new(t).ok())
            .map(|t| t.resource().as_str().to_owned());
        if kind == "error" {
            // An occupant's client or server bounced what the room sent it: the seat is
            // gone (a PM's error goes back to its sender instead).
            if self.room().is_some_and(|r| r.by_jid.contains_key(&from)) && lost(&m) {
                return self.seat_lost(&from, ctx);
            }
            if let Some(nick) = &to_nick {
                self.relay_pm_error(&from, nick, m);
            }
            return;
        }
        if self.room().is_none() {
            return self.refuse(&m, StanzaCondition::ItemNotFound, Some("no such room"));
        }
        match (to_nick, kind.as_str()) {
            // §7.5: groupchat to one occupant is a bad request.
            (Some(_), "groupchat") => self.refuse(&m, StanzaCondition::BadRequest, None),
            (Some(nick), _) => self.private_message(&from, &nick, m),
            (None, "groupchat") => self.groupchat(&from, m, ctx),
            (None, _) => self.addressed_to_room(&from, m, ctx),
        }
    }

    /// §7.4: relayed to every seat, from the sender's occupant JID.
    fn groupchat(&mut self, from: &FullJid, mut m: Element, ctx: &mut Context<Self>) {
        let settings = self.env.settings.clone();
        let Some(room) = self.room_mut() else { return };
        let Some(nick) = room.by_jid.get(from).cloned() else {
            return self.refuse(
                &m,
                StanzaCondition::NotAcceptable,
                Some("only occupants may speak here"),
            );
        };
        let moderated = room.config.moderated;
        let change_subject = room.config.change_subject;
        let occupant = room.occupants.get_mut(&nick).expect("indexed");
        if occupant.role == Role::Visitor && moderated || occupant.role == Role::None {
            return self.refuse(
                &m,
                StanzaCondition::Forbidden,
                Some("visitors may not speak in a moderated room"),
            );
        }
        if !occupant
            .bucket
            .take(settings.messages_per_second, settings.message_burst)
        {
            crate::metrics::message_refused();
            return self.refuse(
                &m,
                StanzaCondition::ResourceConstraint,
                Some("you are sending too fast"),
            );
        }
        let role = occupant.role;
        let occupant_id = occupant.id.clone();
        let bare = occupant.bare.clone();
        // The estimate, not a serialization: this runs for every message.
        if parley_xml::size::approx_bytes(&m) > settings.max_message_bytes {
            return self.refuse(
                &m,
                StanzaCondition::NotAcceptable,
                Some("the message is too large"),
            );
        }
        // §8.1: a subject without a body changes the subject.
        let subject_only = m.has_child("subject", ns::CLIENT) && !m.has_child("body", ns::CLIENT);
        if subject_only && !(role == Role::Moderator || change_subject) {
            return self.refuse(
                &m,
                StanzaCondition::Forbidden,
                Some("you may not change the subject"),
            );
        }
        let room_jid = self.jid.to_string();
        muc::strip_room_payloads(&mut m);
        mam::strip_stanza_ids(&mut m, |by| by == room_jid);
        m.set_attr("from", format!("{room_jid}/{nick}"));
        m.remove_attr("to");
        m.push_child(muc::occupant_id(&occupant_id));
        let now = parley_proto::clock::now_ms();
        let room = self.room_mut().expect("live");
        if subject_only {
            room.subject = Some(m.clone());
            self.persist_room(ctx);
        } else {
            let id = mam::new_id_at(now);
            m.push_child(mam::stanza_id(&room_jid, &id));
            let keep = mam::worth_keeping(&m);
            // Serialized once, for the history's byte count and the archive.
            let xml = keep.then(|| m.to_string());
            if let Some(xml) = &xml {
                let max = room.config.history_length.min(settings.max_history);
                room.history
                    .push(now, m.clone(), xml.len(), max, settings.max_history_bytes);
            }
            if let (true, Some(xml)) = (room.config.archive, xml) {
                if let Some(archive) = &self.env.archive {
                    archive.append(ArchiveRecord {
                        username: self.name(),
                        host: self.env.service.clone(),
                        id,
                        with: mam::With {
                            bare: bare.to_string(),
                            resource: None,
                        },
                        stamp_ms: now,
                        stanza: xml,
                    });
                }
            }
        }
        crate::metrics::relayed();
        let room = self.room().expect("live");
        let seats: Vec<&FullJid> = room.occupants.values().flat_map(|o| o.jids()).collect();
        self.fan_out(&m, &seats);
    }

    /// §7.5: a private message, to every seat of the addressee.
    fn private_message(&mut self, from: &FullJid, nick: &str, m: Element) {
        let Some(room) = self.room() else { return };
        let Some(sender) = room.occupant_of(from) else {
            return self.refuse(
                &m,
                StanzaCondition::NotAcceptable,
                Some("only occupants may send private messages"),
            );
        };
        let Some(target) = room.occupants.get(nick) else {
            return self.refuse(&m, StanzaCondition::ItemNotFound, Some("no such occupant"));
        };
        let allowed = match room.config.allow_pm {
            AllowPm::Anyone => true,
            AllowPm::Participants => sender.role >= Role::Participant,
            AllowPm::Moderators => sender.role == Role::Moderator,
            AllowPm::None => false,
        };
        if !allowed {
            return self.refuse(
                &m,
                StanzaCondition::Forbidden,
                Some("private messages are not allowed here"),
            );
        }
        let mut m = m;
        muc::strip_room_payloads(&mut m);
        m.set_attr("from", format!("{}/{}", self.jid, sender.nick));
        m.push_child(Element::new("x", muc::NS_USER));
        m.push_child(muc::occupant_id(&sender.id));
        for seat in &target.seats {
            let mut copy = m.clone();
            copy.set_attr("to", seat.jid.to_string());
            self.send(copy);
        }
    }

    /// An error an occupant's client returned to a private message goes back to the sender.
    fn relay_pm_error(&self, from: &FullJid, nick: &str, mut m: Element) {
        let Some(room) = self.room() else { return };
        let (Some(sender), Some(target)) = (room.occupant_of(from), room.occupants.get(nick))
        else {
            return;
        };
        m.set_attr("from", format!("{}/{}", self.jid, sender.nick));
        for seat in &target.seats {
            let mut copy = m.clone();
            copy.set_attr("to", seat.jid.to_string());
            self.send(copy);
        }
    }

    /// A message to the room itself that is not groupchat: invitations (§7.8) or nothing.
    fn addressed_to_room(&mut self, from: &FullJid, m: Element, ctx: &mut Context<Self>) {
        if super::voice::request_form(&m).is_some() {
            return self.voice_form(from, &m, ctx);
        }
        let invitations = muc::parse_invitations(&m, self.env.settings.max_invitations);
        if invitations.is_empty() {
            return self.refuse(
                &m,
                StanzaCondition::BadRequest,
                Some("send groupchat messages to the room"),
            );
        }
        let Some(room) = self.room() else { return };
        let Some(inviter) = room.occupant_of(from).cloned() else {
            return self.refuse(
                &m,
                StanzaCondition::NotAcceptable,
                Some("only occupants may invite"),
            );
        };
        let inviter_aff = room.affiliation(&inviter.bare);
        let password = room.config.password.clone();
        for invitation in invitations {
            match invitation {
                Invitation::Invite { to, reason } => {
                    let Ok(invitee) = BareJid::new(&to) else {
                        self.refuse(&m, StanzaCondition::JidMalformed, None);
                        continue;
                    };
                    let room = self.room().expect("live");
                    // §7.8.2: in a members-only room, an invitation by an admin (or by
                    // a member when members may invite) makes the invitee a member.
                    if room.config.members_only {
                        let may = inviter_aff >= Affiliation::Admin
                            || (room.config.allow_invites && inviter_aff >= Affiliation::Member);
                        if !may {
                            self.refuse(
                                &m,
                                StanzaCondition::Forbidden,
                                Some("you may not invite to this room"),
                            );
                            continue;
                        }
                        if room.affiliation(&invitee) < Affiliation::Member {
                            self.grant(&invitee, Affiliation::Member, None, ctx);
                        }
                    }
                    let mut invite = Element::new("invite", muc::NS_USER)
                        .with_attr("from", from.to_bare().to_string());
                    if let Some(r) = reason {
                        invite.push_child(Element::new("reason", muc::NS_USER).with_text(r));
                    }
                    let mut x = Element::new("x", muc::NS_USER).with_child(invite);
                    if let Some(pw) = &password {
                        x.push_child(Element::new("password", muc::NS_USER).with_text(pw.clone()));
                    }
                    let mut out = Element::new("message", ns::CLIENT)
                        .with_attr("from", self.jid.to_string())
                        .with_attr("to", invitee.to_string())
                        .with_child(x);
                    if let Some(id) = m.attr("id") {
                        out.set_attr("id", id);
                    }
                    crate::metrics::invited();
                    self.send(out);
                }
                Invitation::Decline { to, reason } => {
                    // §7.8.3: passed on to the inviter, from the room.
                    let Some(to) = to.and_then(|t| Jid::new(&t).ok()) else {
                        continue;
                    };
                    let mut decline = Element::new("decline", muc::NS_USER)
                        .with_attr("from", from.to_bare().to_string());
                    if let Some(r) = reason {
                        decline.push_child(Element::new("reason", muc::NS_USER).with_text(r));
                    }
                    self.send(
                        Element::new("message", ns::CLIENT)
                            .with_attr("from", self.jid.to_string())
                            .with_attr("to", to.to_string())
                            .with_child(Element::new("x", muc::NS_USER).with_child(decline)),
                    );
                }
            }
        }
    }
}

/// Whether an error says the recipient's session is gone (not a refusal of the content).
fn lost(m: &Element) -> bool {
    let Some(e) = parley_proto::stanza_error::StanzaError::from_element(m) else {
        return false;
    };
    matches!(
        e.condition,
        StanzaCondition::Gone
            | StanzaCondition::ItemNotFound
            | StanzaCondition::RecipientUnavailable
            | StanzaCondition::RemoteServerNotFound
            | StanzaCondition::RemoteServerTimeout
            | StanzaCondition::ServiceUnavailable
    )
}
