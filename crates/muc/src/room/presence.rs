//! Presence in a room (XEP-0045 §7.1–§7.7, §7.14): joining (and creating, §10.1),
//! changing status or nick, leaving, and every removal (kick, ban, affiliation change,
//! a lost session), each announced with its status codes.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::{BareJid, FullJid};
use parley_proto::muc::{self, status, Affiliation, Item, Join, Role};
use parley_proto::ns;
use parley_proto::stanza_error::StanzaCondition;
use parley_storage::RoomCreated;
use parley_xml::Element;

use super::{Phase, RoomActor};
use crate::settings::Creation;
use crate::state::{Occupant, Room, Standing};

/// One presence the room announces about an occupant.
pub(super) struct Announce {
    pub unavailable: bool,
    /// For everyone.
    pub codes: Vec<u16>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// §7.6: the new nick on a 303.
    pub new_nick: Option<String>,
    /// The role and affiliation shown (a removed occupant is shown with role none).
    pub role: Role,
    pub affiliation: Affiliation,
    /// The presence's own content (show, status), room payloads stripped.
    pub base: Element,
}

impl Announce {
    /// The occupant as it is now: available, with its own presence.
    fn present(occupant: &Occupant, role: Role, affiliation: Affiliation) -> Announce {
        Announce {
            unavailable: false,
            codes: Vec::new(),
            actor: None,
            reason: None,
            new_nick: None,
            role,
            affiliation,
            base: occupant.presence().clone(),
        }
    }

    /// The occupant leaving (role none), with `codes`.
    fn leaving(affiliation: Affiliation, codes: Vec<u16>, base: Element) -> Announce {
        Announce {
            unavailable: true,
            codes,
            actor: None,
            reason: None,
            new_nick: None,
            role: Role::None,
            affiliation,
            base,
        }
    }
}

impl RoomActor {
    pub(super) fn on_presence(&mut self, p: Element, ctx: &mut Context<Self>) {
        let Some(from) = p.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return;
        };
        let kind = p.attr("type").unwrap_or("available").to_owned();
        let to_nick = p
            .attr("to")
            .and_then(|t| FullJid::new(t).ok())
            .map(|t| t.resource().as_str().to_owned());
        match kind.as_str() {
            "unavailable" => self.leave(&from, &p, ctx),
            "error" if self.room().is_some_and(|r| r.by_jid.contains_key(&from)) => {
                self.seat_lost(&from, ctx)
            }
            "available" => {
                let Some(nick) = to_nick else {
                    // §7.2.1: a join must name a nick.
                    if muc::parse_join(&p).is_some() {
                        self.refuse(
                            &p,
                            StanzaCondition::JidMalformed,
                            Some("a nick is required"),
                        );
                    }
                    return;
                };
                let current = self.room().and_then(|r| r.by_jid.get(&from).cloned());
                match current {
                    Some(cur) if cur == nick => self.status_change(&from, p, ctx),
                    Some(cur) => self.nick_change(&from, &cur, &nick, p, ctx),
                    None => self.join(from, nick, p, ctx),
                }
            }
            // Subscriptions and probes mean nothing to a room.
            _ => {}
        }
    }

    fn join(&mut self, from: FullJid, nick: String, p: Element, ctx: &mut Context<Self>) {
        let request = muc::parse_join(&p);
        if nick.len() > muc::MAX_NICK_BYTES || nick.trim().is_empty() {
            return self.refuse(
                &p,
                StanzaCondition::JidMalformed,
                Some("that nick cannot be used"),
            );
        }
        if matches!(self.phase, Phase::Absent) {
            return self.create(from, nick, p, ctx);
        }
        let Some(room) = self.room() else { return };
        let bare = from.to_bare();
        let affiliation = room.affiliation(&bare);
        let settings = &self.env.settings;
        let refusal = if room.config.locked && affiliation != Affiliation::Owner {
            // §10.1.2: nobody enters until the owner configures the room.
            Some((
                StanzaCondition::ItemNotFound,
                "the room is locked until its owner configures it",
            ))
        } else if affiliation == Affiliation::Outcast {
            Some((StanzaCondition::Forbidden, "you are banned from this room")) // §7.2.8
        } else if room.occupants.get(&nick).is_some_and(|o| o.bare != bare)
            || room
                .standings
                .iter()
                .any(|(j, s)| j != &bare && s.nick.as_deref() == Some(nick.as_str()))
        {
            Some((StanzaCondition::Conflict, "that nick is in use")) // §7.2.9
        } else if room.config.members_only && affiliation < Affiliation::Member {
            Some((
                StanzaCondition::RegistrationRequired,
                "this room is for members only",
            )) // §7.2.7
        } else if room.seat_count() >= room.config.max_occupants.min(settings.max_occupants)
            && affiliation < Affiliation::Admin
        {
            Some((StanzaCondition::ServiceUnavailable, "the room is full")) // §7.2.10
        } else if room.config.password.is_some()
            && affiliation < Affiliation::Owner
            && request.as_ref().and_then(|j| j.password.as_deref())
                != room.config.password.as_deref()
        {
            Some((StanzaCondition::NotAuthorized, "a password is required")) // §7.2.6
        } else {
            None
        };
        if let Some((condition, text)) = refusal {
            crate::metrics::join_refused();
            return self.refuse(&p, condition, Some(text));
        }
        self.seat_new(from, nick, p, request, false, ctx);
    }

    /// §10.1: a join to a room that does not exist creates it, if the sender may.
    fn create(&mut self, from: FullJid, nick: String, p: Element, ctx: &mut Context<Self>) {
        let bare = from.to_bare();
        let allowed = match self.env.settings.creation {
            Creation::Anyone => true,
            Creation::Local => self.env.router.serves(bare.domain().as_str()),
            Creation::Admins => self.env.admins.contains(&bare),
        };
        if !allowed {
            return self.refuse(
                &p,
                StanzaCondition::NotAllowed,
                Some("you may not create rooms here"),
            );
        }
        if !self.env.may_create_room() {
            return self.refuse(
                &p,
                StanzaCondition::ResourceConstraint,
                Some("too many rooms"),
            );
        }
        let mut config = self.env.settings.defaults.clone();
        config.locked = self.env.settings.lock_new_rooms;
        config.occupant_salt = hex::encode(rand::random::<[u8; 16]>());
        config.max_occupants = config.max_occupants.min(self.env.settings.max_occupants);
        let mut room = Room::new(self.jid.clone(), config, self.env.admins.clone());
        room.standings.insert(
            bare.clone(),
            Standing {
                affiliation: Affiliation::Owner,
                nick: None,
                reason: None,
            },
        );
        let record = room.record(&self.env.service);
        let storage = self.env.storage.clone();
        let max = self.env.settings.max_rooms_per_user;
        let owner = bare.to_string();
        let work = async move { storage.muc_create_room(&record, &owner, max).await };
        ctx.wait(
            wrap_future::<_, Self>(work).map(move |r, act, ctx| match r {
                Ok(RoomCreated::Created) => {
                    crate::metrics::room_created();
                    act.phase = Phase::Live(Box::new(room));
                    let request = muc::parse_join(&p);
                    act.seat_new(from, nick, p, request, true, ctx);
                    if act.room().is_some_and(|r| r.config.locked) {
                        let timeout = act.env.settings.lock_timeout;
                        act.lock_timer = Some(ctx.run_later(timeout, |act, ctx| {
                            act.lock_timer = None;
                            if act.room().is_some_and(|r| r.config.locked) {
                                act.destroyed(
                                    ctx,
                                    Some("the room was never configured".into()),
                                    None,
                                );
                            }
                        }));
                    }
                }
                Ok(RoomCreated::Exists) => {
                    // Created meanwhile (by this room's previous owner node): read it, then join.
                    act.load_then(ctx, Some(p));
                }
                Ok(RoomCreated::TooMany) => act.refuse(
                    &p,
                    StanzaCondition::NotAllowed,
                    Some("you own as many rooms as you may"),
                ),
                Err(e) => {
                    tracing::warn!(room = %act.jid, error = %e, "room creation failed");
                    act.refuse(&p, StanzaCondition::InternalServerError, None);
                }
            }),
        );
    }

    /// Seats `from` (checks done) and tells everyone (§7.2.3–§7.2.16).
    fn seat_new(
        &mut self,
        from: FullJid,
        nick: String,
        p: Element,
        request: Option<Join>,
        created: bool,
        ctx: &mut Context<Self>,
    ) {
        let burst = self.env.settings.message_burst;
        let Some(room) = self.room_mut() else { return };
        let bare = from.to_bare();
        let role = room
            .occupants
            .get(&nick)
            .map(|o| o.role)
            .unwrap_or_else(|| room.default_role(room.affiliation(&bare)));
        room.seat(&nick, from.clone(), role, clean(&p), burst);
        let row = {
            let o = &room.occupants[&nick];
            Room::row(o, o.seats.last().expect("just seated"))
        };
        crate::metrics::joined();
        // §7.2.3: first everyone else, then the newcomer itself.
        let room = self.room().expect("live");
        let sees = room.sees_jids(role);
        for other in room.occupants.values().filter(|o| o.nick != nick) {
            self.send(self.presence_of(room, other, &from, sees, &[]));
        }
        let mut codes = vec![status::SELF];
        if room.config.non_anonymous() {
            codes.push(status::NON_ANONYMOUS);
        }
        if room.config.archive {
            codes.push(status::LOGGED);
        }
        if created {
            codes.push(status::CREATED);
        }
        let me = &room.occupants[&nick];
        self.send(self.presence_of(room, me, &from, true, &codes));
        for other in room.occupants.values() {
            for seat in &other.seats {
                if seat.jid == from {
                    continue;
                }
                let own = other.nick == nick;
                let codes: &[u16] = if own { &[status::SELF] } else { &[] };
                self.send(self.presence_of(
                    room,
                    me,
                    &seat.jid,
                    own || room.sees_jids(other.role),
                    codes,
                ));
            }
        }
        // §7.2.14–§7.2.15: history, then the subject (empty when none).
        let history_default = room
            .config
            .history_length
            .min(self.env.settings.max_history);
        let now = parley_proto::clock::now_ms();
        for past in room
            .history
            .select(request.as_ref().map(|j| &j.history), history_default, now)
        {
            let mut m = past.message.clone();
            m.set_attr("to", from.to_string());
            m.push_child(muc::delay(self.jid.as_str(), past.stamp_ms));
            self.send(m);
        }
        let subject = match &room.subject {
            Some(s) => {
                let mut s = s.clone();
                s.set_attr("to", from.to_string());
                s
            }
            None => Element::new("message", ns::CLIENT)
                .with_attr("from", self.jid.to_string())
                .with_attr("to", from.to_string())
                .with_attr("type", "groupchat")
                .with_child(Element::new("subject", ns::CLIENT)),
        };
        self.send(subject);
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "occupant", async move {
            storage.muc_put_occupant(&service, &name, &row).await
        });
    }

    /// The presence `occupant` shows to `to`, with its real JID when `show_jid`.
    pub(super) fn presence_of(
        &self,
        room: &Room,
        occupant: &Occupant,
        to: &FullJid,
        show_jid: bool,
        codes: &[u16],
    ) -> Element {
        let mut p = occupant.presence().clone();
        p.set_attr("from", format!("{}/{}", self.jid, occupant.nick));
        p.set_attr("to", to.to_string());
        let mut item = Item::new(room.affiliation(&occupant.bare), occupant.role);
        if show_jid {
            item.jid = occupant.seats.last().map(|s| s.jid.to_string());
        }
        p.push_child(muc::user_x(&item, codes));
        p.push_child(muc::occupant_id(&occupant.id));
        p
    }

    /// Tells every seat in the room (and the `gone` seats, as the subject itself) about
    /// `occupant`.
    pub(super) fn announce(&self, occupant: &Occupant, a: &Announce, gone: &[FullJid]) {
        let Some(room) = self.room() else { return };
        // Three versions at most (its own seats; those who see real JIDs; the others), each
        // fanned out once: one frame per node, not one per occupant.
        let build = |own: bool, show_jid: bool| {
            let mut p = a.base.clone();
            p.set_attr("from", format!("{}/{}", self.jid, occupant.nick));
            p.remove_attr("to");
            if a.unavailable {
                p.set_attr("type", "unavailable");
            }
            let mut item = Item::new(a.affiliation, a.role);
            if show_jid {
                item.jid = occupant.seats.last().map(|s| s.jid.to_string());
            }
            item.nick = a.new_nick.clone();
            item.actor = a.actor.clone();
            item.reason = a.reason.clone();
            let mut codes = Vec::new();
            if own {
                codes.push(status::SELF);
            }
            codes.extend(&a.codes);
            p.push_child(muc::user_x(&item, &codes));
            p.push_child(muc::occupant_id(&occupant.id));
            p
        };
        let (mut own, mut seeing, mut others): (Vec<&FullJid>, Vec<&FullJid>, Vec<&FullJid>) =
            (gone.iter().collect(), Vec::new(), Vec::new());
        for other in room.occupants.values() {
            let list = if other.nick == occupant.nick && other.bare == occupant.bare {
                &mut own
            } else if room.sees_jids(other.role) {
                &mut seeing
            } else {
                &mut others
            };
            list.extend(other.jids());
        }
        for (to, is_own, show_jid) in [
            (own, true, true),
            (seeing, false, true),
            (others, false, false),
        ] {
            if !to.is_empty() {
                self.fan_out(&build(is_own, show_jid), &to);
            }
        }
    }

    fn status_change(&mut self, from: &FullJid, p: Element, ctx: &mut Context<Self>) {
        let Some(room) = self.room_mut() else { return };
        let Some(nick) = room.by_jid.get(from).cloned() else {
            return;
        };
        let Some(occupant) = room.occupants.get_mut(&nick) else {
            return;
        };
        if let Some(seat) = occupant.seats.iter_mut().find(|s| &s.jid == from) {
            seat.presence = clean(&p);
        }
        // The seat that spoke last is the one shown.
        if let Some(i) = occupant.seats.iter().position(|s| &s.jid == from) {
            let seat = occupant.seats.remove(i);
            occupant.seats.push(seat);
        }
        let occupant = occupant.clone();
        let row = Room::row(&occupant, occupant.seats.last().expect("seated"));
        let affiliation = self.room().expect("live").affiliation(&occupant.bare);
        let a = Announce::present(&occupant, occupant.role, affiliation);
        self.announce(&occupant, &a, &[]);
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "occupant", async move {
            storage.muc_put_occupant(&service, &name, &row).await
        });
    }

    /// §7.6: unavailable with 303 under the old nick, then available under the new one.
    fn nick_change(
        &mut self,
        from: &FullJid,
        old: &str,
        new: &str,
        p: Element,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room() else { return };
        let bare = from.to_bare();
        let taken = room.occupants.get(new).is_some_and(|o| o.bare != bare)
            || room
                .standings
                .iter()
                .any(|(j, s)| j != &bare && s.nick.as_deref() == Some(new));
        if taken || new.len() > muc::MAX_NICK_BYTES || new.trim().is_empty() {
            return self.refuse(&p, StanzaCondition::Conflict, Some("that nick is in use"));
        }
        if room.occupants.contains_key(new) {
            // Another resource of the same user already has that nick: Parley keeps one
            // nick per occupant, so this one moves there by leaving and joining.
            self.leave(from, &Element::new("presence", ns::CLIENT), ctx);
            return self.join(from.clone(), new.to_owned(), p, ctx);
        }
        let occupant = room.occupants[old].clone();
        let affiliation = room.affiliation(&bare);
        self.announce(
            &occupant,
            &Announce {
                new_nick: Some(new.to_owned()),
                role: occupant.role,
                ..Announce::leaving(
                    affiliation,
                    vec![status::NICK_CHANGE],
                    Element::new("presence", ns::CLIENT),
                )
            },
            &[],
        );
        let room = self.room_mut().expect("live");
        room.rename(old, new);
        if let Some(o) = room.occupants.get_mut(new) {
            if let Some(seat) = o.seats.iter_mut().find(|s| &s.jid == from) {
                seat.presence = clean(&p);
            }
        }
        let occupant = room.occupants[new].clone();
        let rows: Vec<_> = occupant
            .seats
            .iter()
            .map(|s| Room::row(&occupant, s))
            .collect();
        self.announce(
            &occupant,
            &Announce::present(&occupant, occupant.role, affiliation),
            &[],
        );
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "occupant", async move {
            for row in rows {
                storage.muc_put_occupant(&service, &name, &row).await?;
            }
            Ok(())
        });
    }

    /// §7.14: a seat leaves; the occupant goes with its last seat.
    pub(super) fn leave(&mut self, from: &FullJid, p: &Element, ctx: &mut Context<Self>) {
        self.unseat_with(from, p, Vec::new(), ctx);
    }

    /// A seat whose session is gone (an error bounced, its node vanished): it leaves with
    /// status 333 (XEP-0045 §15.6.2, XEP-0410).
    pub(super) fn seat_lost(&mut self, from: &FullJid, ctx: &mut Context<Self>) {
        self.unseat_with(
            from,
            &Element::new("presence", ns::CLIENT),
            vec![status::TECHNICAL],
            ctx,
        );
    }

    fn unseat_with(
        &mut self,
        from: &FullJid,
        p: &Element,
        codes: Vec<u16>,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room_mut() else { return };
        let Some(before) = room.occupant_of(from).cloned() else {
            return;
        };
        let affiliation = room.affiliation(&before.bare);
        let last = room.unseat(from);
        let mut base = clean(p);
        base.remove_attr("type");
        match last {
            Some(occupant) => {
                self.announce(
                    &occupant,
                    &Announce::leaving(affiliation, codes, base),
                    std::slice::from_ref(from),
                );
            }
            None => {
                // Other resources stay: only this one is told it left.
                let mut gone = before.clone();
                gone.seats.retain(|s| &s.jid == from);
                let mut x = base;
                x.set_attr("type", "unavailable");
                x.set_attr("from", format!("{}/{}", self.jid, before.nick));
                x.set_attr("to", from.to_string());
                let mut item = Item::new(affiliation, Role::None);
                item.jid = Some(from.to_string());
                let mut all = vec![status::SELF];
                all.extend(codes);
                x.push_child(muc::user_x(&item, &all));
                self.send(x);
            }
        }
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        let jid = from.to_string();
        self.persist(ctx, "occupant", async move {
            storage.muc_remove_occupant(&service, &name, &jid).await
        });
        self.empty_check(ctx);
    }

    /// Removes an occupant with every seat (kick, ban, affiliation change), telling
    /// everyone why (§8.2, §9.1, §9.4).
    pub(super) fn remove_with_status(
        &mut self,
        nick: &str,
        code: u16,
        actor: Option<String>,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room_mut() else { return };
        let Some(occupant) = room.remove_occupant(nick) else {
            return;
        };
        let affiliation = room.affiliation(&occupant.bare);
        let seats: Vec<FullJid> = occupant.jids().cloned().collect();
        self.announce(
            &occupant,
            &Announce {
                actor,
                reason,
                ..Announce::leaving(
                    affiliation,
                    vec![code],
                    Element::new("presence", ns::CLIENT),
                )
            },
            &seats,
        );
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "occupant", async move {
            for jid in seats {
                storage
                    .muc_remove_occupant(&service, &name, &jid.to_string())
                    .await?;
            }
            Ok(())
        });
        self.empty_check(ctx);
    }

    /// A temporary room goes with its last occupant (§10.1: "destroyed when the last
    /// occupant exits").
    fn empty_check(&mut self, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        if !room.occupants.is_empty() || room.config.persistent {
            return;
        }
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "destroy", async move {
            storage.muc_destroy_room(&service, &name).await.map(|_| ())
        });
        crate::metrics::room_destroyed();
        self.phase = Phase::Absent;
    }

    /// The occupant's role changes (§8.3–§8.6, §9.6): everyone sees it.
    pub(super) fn set_role(
        &mut self,
        nick: &str,
        role: Role,
        actor: Option<String>,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room_mut() else { return };
        let Some(o) = room.occupants.get_mut(nick) else {
            return;
        };
        o.role = role;
        let occupant = o.clone();
        let affiliation = room.affiliation(&occupant.bare);
        let rows: Vec<_> = occupant
            .seats
            .iter()
            .map(|s| Room::row(&occupant, s))
            .collect();
        self.announce(
            &occupant,
            &Announce {
                actor,
                reason,
                ..Announce::present(&occupant, role, affiliation)
            },
            &[],
        );
        let (storage, service, name) = (
            self.env.storage.clone(),
            self.env.service.clone(),
            self.name(),
        );
        self.persist(ctx, "occupant", async move {
            for row in rows {
                storage.muc_put_occupant(&service, &name, &row).await?;
            }
            Ok(())
        });
    }

    /// After `bare`'s affiliation changed: its occupants are removed (outcast: 301; a
    /// members-only room it may no longer enter: 321) or shown with the new standing.
    pub(super) fn affiliation_changed(
        &mut self,
        bare: &BareJid,
        actor: Option<String>,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(room) = self.room() else { return };
        let affiliation = room.affiliation(bare);
        let nicks: Vec<String> = room
            .occupants
            .values()
            .filter(|o| &o.bare == bare)
            .map(|o| o.nick.clone())
            .collect();
        let members_only = room.config.members_only;
        for nick in nicks {
            if affiliation == Affiliation::Outcast {
                self.remove_with_status(&nick, status::BANNED, actor.clone(), reason.clone(), ctx);
            } else if members_only && affiliation < Affiliation::Member {
                self.remove_with_status(
                    &nick,
                    status::AFFILIATION_CHANGE,
                    actor.clone(),
                    reason.clone(),
                    ctx,
                );
            } else {
                let role = self.room().expect("live").default_role(affiliation);
                self.set_role(&nick, role, actor.clone(), reason.clone(), ctx);
            }
        }
    }

    /// §10.2: a room turned members-only removes everyone below member (322).
    pub(super) fn enforce_members_only(&mut self, ctx: &mut Context<Self>) {
        let Some(room) = self.room() else { return };
        if !room.config.members_only {
            return;
        }
        let out: Vec<String> = room
            .occupants
            .values()
            .filter(|o| room.affiliation(&o.bare) < Affiliation::Member)
            .map(|o| o.nick.clone())
            .collect();
        for nick in out {
            self.remove_with_status(&nick, status::MEMBERS_ONLY, None, None, ctx);
        }
    }
}

/// A presence as the room keeps it: the sender's content without addresses, id or room
/// payloads.
fn clean(p: &Element) -> Element {
    let mut p = p.clone();
    muc::strip_room_payloads(&mut p);
    for attr in ["from", "to", "id", "type"] {
        p.remove_attr(attr);
    }
    p
}
