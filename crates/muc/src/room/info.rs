//! The iqs a room answers (XEP-0045 §6.4 disco#info with the `muc#roominfo` form,
//! §6.5 disco#items, the room archive of XEP-0313 §5, self-ping of XEP-0410) and the
//! iqs it relays between occupants (an iq to an occupant's room JID, XEP-0045's business
//! rules on iq routing), with ids rewritten so
//! that no real JID leaks and answers find their way back.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::FullJid;
use parley_proto::mam::{self, Archived, Fin};
use parley_proto::muc::{self, field, form, Affiliation};
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition};
use parley_xml::{Element, Limits};

use super::{RoomActor, MAX_RELAYED_IQS};
use crate::state::Room;

const PING: &str = "urn:xmpp:ping";

impl RoomActor {
    pub(super) fn on_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Some(from) = iq.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return;
        };
        let kind = iq.attr("type").unwrap_or("").to_owned();
        let to_nick = iq
            .attr("to")
            .and_then(|t| FullJid::new(t).ok())
            .map(|t| t.resource().as_str().to_owned());
        if kind == "result" || kind == "error" {
            return self.relay_answer(iq);
        }
        if self.room().is_none() {
            return self.refuse(&iq, StanzaCondition::ItemNotFound, Some("no such room"));
        }
        let Some(payload) = iq.first_child().cloned() else {
            return self.refuse(&iq, StanzaCondition::BadRequest, None);
        };
        if let Some(nick) = to_nick {
            return self.iq_to_occupant(&from, &nick, iq, &payload);
        }
        let get = kind == "get";
        match (payload.ns(), payload.name(), get) {
            (ns::DISCO_INFO, "query", true) => {
                let info = self.disco_info(self.room().expect("live"));
                self.send(iq_result(&iq).with_child(info));
            }
            (ns::DISCO_ITEMS, "query", true) => {
                // §6.5: occupants are not listed (their nicks would let anyone watch who
                // is in a room without joining it).
                self.send(iq_result(&iq).with_child(Element::new("query", ns::DISCO_ITEMS)));
            }
            (PING, "ping", true) => self.send(iq_result(&iq)),
            (muc::NS_ADMIN, "query", _) => self.admin_iq(iq, &from, ctx),
            (muc::NS_OWNER, "query", _) => self.owner_iq(iq, &from, ctx),
            (mam::NS, "query", _) => self.mam_query(iq, &from, &payload, ctx),
            _ => self.refuse(&iq, StanzaCondition::ServiceUnavailable, None),
        }
    }

    /// §6.4: identity, features (one per room property) and the room information form.
    fn disco_info(&self, room: &Room) -> Element {
        let c = &room.config;
        let feature = |v: &str| Element::new("feature", ns::DISCO_INFO).with_attr("var", v);
        let name = if c.name.is_empty() {
            self.name()
        } else {
            c.name.clone()
        };
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "conference")
                .with_attr("type", "text")
                .with_attr("name", name),
        );
        for f in [
            muc::NS,
            ns::DISCO_INFO,
            mam::NS,
            mam::SID,
            muc::NS_OCCUPANT_ID,
            muc::NS_SELF_PING,
            muc::NS_STABLE_ID,
            if c.public { "muc_public" } else { "muc_hidden" },
            if c.persistent {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
            if c.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if c.moderated {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
            if c.non_anonymous() {
                "muc_nonanonymous"
            } else {
                "muc_semianonymous"
            },
            if c.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
        ] {
            q.push_child(feature(f));
        }
        let occupants = room.occupants.len().to_string();
        let subject = room
            .subject
            .as_ref()
            .and_then(|s| s.get_child("subject", ns::CLIENT))
            .map(Element::text)
            .unwrap_or_default();
        let max = c.max_occupants.to_string();
        q.push_child(
            form("result", muc::NS_ROOMINFO)
                .with_child(field(
                    "muc#roominfo_description",
                    None,
                    Some("Description"),
                    &[&c.description],
                ))
                .with_child(field(
                    "muc#roominfo_occupants",
                    None,
                    Some("Occupants"),
                    &[&occupants],
                ))
                .with_child(field(
                    "muc#roominfo_subject",
                    None,
                    Some("Subject"),
                    &[&subject],
                ))
                .with_child(field(
                    "muc#roominfo_changesubject",
                    None,
                    Some("Occupants may change the subject"),
                    &[if c.change_subject { "1" } else { "0" }],
                ))
                .with_child(field("muc#maxusers", None, Some("Most occupants"), &[&max])),
        );
        q
    }

    /// An iq to `room/nick`: XEP-0410 pings answered by the room, anything else relayed
    /// to the occupant's newest seat.
    fn iq_to_occupant(&mut self, from: &FullJid, nick: &str, iq: Element, payload: &Element) {
        let room = self.room().expect("live");
        let Some(sender) = room.occupant_of(from) else {
            // XEP-0410 §3: a client that is no longer joined learns it here.
            return self.refuse(
                &iq,
                StanzaCondition::NotAcceptable,
                Some("you are not in this room"),
            );
        };
        if payload.is("ping", PING) && sender.nick == nick {
            return self.send(iq_result(&iq));
        }
        let Some(target) = room.occupants.get(nick) else {
            return self.refuse(&iq, StanzaCondition::ItemNotFound, Some("no such occupant"));
        };
        if self.relayed.len() >= MAX_RELAYED_IQS {
            return self.refuse(
                &iq,
                StanzaCondition::ResourceConstraint,
                Some("too many iqs in flight"),
            );
        }
        let to = target.seats.last().expect("seated").jid.to_string();
        let relay_id = format!("muc-{}", hex::encode(rand::random::<[u8; 8]>()));
        let original = iq.attr("id").unwrap_or("").to_owned();
        let mut out = iq.clone();
        out.set_attr("from", format!("{}/{}", self.jid, sender.nick));
        out.set_attr("to", to);
        out.set_attr("id", relay_id.clone());
        self.relayed.insert(relay_id, (from.clone(), original));
        self.send(out);
    }

    /// The answer to a relayed iq goes back to whoever asked, under its own id.
    fn relay_answer(&mut self, mut iq: Element) {
        let Some(id) = iq.attr("id") else { return };
        let Some((asker, original)) = self.relayed.remove(id) else {
            return;
        };
        let from_nick = self.room().and_then(|r| {
            iq.attr("from")
                .and_then(|f| FullJid::new(f).ok())
                .and_then(|f| r.by_jid.get(&f).cloned())
        });
        let Some(from_nick) = from_nick else { return };
        iq.set_attr("from", format!("{}/{from_nick}", self.jid));
        iq.set_attr("to", asker.to_string());
        iq.set_attr("id", original);
        self.send(iq);
    }

    /// XEP-0313 §5: the room archive, for occupants, or anyone when the room is open.
    fn mam_query(
        &mut self,
        iq: Element,
        from: &FullJid,
        payload: &Element,
        ctx: &mut Context<Self>,
    ) {
        let room = self.room().expect("live");
        let bare = from.to_bare();
        let allowed = room.by_jid.contains_key(from)
            || room.affiliation(&bare) >= Affiliation::Member
            || (!room.config.members_only && room.config.public);
        if !allowed || room.affiliation(&bare) == Affiliation::Outcast {
            return self.refuse(
                &iq,
                StanzaCondition::Forbidden,
                Some("join the room to read its archive"),
            );
        }
        if iq.attr("type") == Some("get") {
            return self.send(iq_result(&iq).with_child(mam::query_form()));
        }
        let settings = &self.env.settings;
        let query =
            match mam::parse_query(payload, settings.mam_default_page, settings.mam_max_page) {
                Ok(q) => q,
                Err(e) => return self.refuse(&iq, StanzaCondition::BadRequest, Some(&e.0)),
            };
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        let work = {
            let query = query.clone();
            async move { storage.archive_query(&name, &service, &query).await }
        };
        let to = from.to_string();
        ctx.spawn(wrap_future::<_, Self>(work).map(move |page, act, _| {
            let page = match page {
                Ok(Some(page)) => page,
                Ok(None) => {
                    return act.refuse(
                        &iq,
                        StanzaCondition::ItemNotFound,
                        Some("no message with that id in the archive"),
                    )
                }
                Err(e) => {
                    tracing::warn!(room = %act.jid, error = %e, "room archive query failed");
                    return act.refuse(&iq, StanzaCondition::InternalServerError, None);
                }
            };
            let fin = Fin {
                complete: page.complete,
                first: page.items.first().map(|r| r.id.clone()),
                last: page.items.last().map(|r| r.id.clone()),
                first_index: page.first_index,
                count: page.count,
            };
            let mut items = page.items;
            if query.flip {
                items.reverse();
            }
            let archive = act.jid.to_string();
            for row in items {
                let Ok(stanza) = Element::parse(row.stanza.as_bytes(), &Limits::trusted_copies())
                else {
                    continue;
                };
                let item = Archived {
                    id: row.id,
                    stamp_ms: row.stamp_ms,
                    stanza,
                };
                act.send(mam::result_message(
                    &archive,
                    &to,
                    query.query_id.as_deref(),
                    item,
                ));
            }
            act.send(iq_result(&iq).with_child(mam::fin(&fin)));
        }));
    }
}
