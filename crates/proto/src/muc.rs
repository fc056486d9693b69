//! Multi-user chat (XEP-0045) payloads, without any room logic: the namespaces, the
//! affiliations and roles, what a join presence asks for (§7.2: password, history), the
//! `<x xmlns='…#user'/>` a room adds to the presence and messages it sends, the items of an
//! admin request (§8–§9) and invitations (§7.8). The room service (`parley-muc`) decides;
//! this module only reads and writes elements, so it can be fuzzed on its own.

use parley_xml::Element;

/// The MUC namespace (the join `<x/>`).
pub const NS: &str = "http://jabber.org/protocol/muc";
/// `<x/>` in presences and messages from a room.
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
/// Role and affiliation administration (§8, §9).
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// Room configuration and destruction (§10).
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// Unique room names (§10.1.4).
pub const NS_UNIQUE: &str = "http://jabber.org/protocol/muc#unique";
/// The configuration form's FORM_TYPE (§15.5.3).
pub const NS_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
/// The extended room information form's FORM_TYPE (§15.5.4).
pub const NS_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
/// XEP-0421: a stable anonymous id per occupant.
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
/// XEP-0410: the room answers pings to an occupant itself.
pub const NS_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
/// XEP-0045 §7.2.15 / XEP-0359: message ids the room assigns are stable.
pub const NS_STABLE_ID: &str = "http://jabber.org/protocol/muc#stable_id";
/// Direct invitations (XEP-0249).
pub const NS_CONFERENCE: &str = "jabber:x:conference";
const DATA: &str = "jabber:x:data";
const DELAY: &str = "urn:xmpp:delay";

/// Longest nick accepted, in bytes (a resourcepart's bound, RFC 7622 §3.4).
pub const MAX_NICK_BYTES: usize = 1023;
/// Most items one admin request may carry.
pub const MAX_ADMIN_ITEMS: usize = 100;
/// Longest reason or password kept, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// Status codes (§15.6.2) Parley sends.
pub mod status {
    /// Non-anonymous room: every occupant sees real JIDs.
    pub const NON_ANONYMOUS: u16 = 100;
    /// Configuration changed (a message).
    pub const CONFIG_CHANGED: u16 = 104;
    /// The presence is the recipient's own.
    pub const SELF: u16 = 110;
    /// The room is archived (logging on).
    pub const LOGGED: u16 = 170;
    /// Logging turned off.
    pub const NOT_LOGGED: u16 = 171;
    /// The room became non-anonymous.
    pub const NOW_NON_ANONYMOUS: u16 = 172;
    /// The room became semi-anonymous.
    pub const NOW_SEMI_ANONYMOUS: u16 = 173;
    /// The room was created by this join.
    pub const CREATED: u16 = 201;
    /// The service changed the nick asked for.
    pub const NICK_MODIFIED: u16 = 210;
    /// Banned.
    pub const BANNED: u16 = 301;
    /// Nick change (on the unavailable presence of the old nick).
    pub const NICK_CHANGE: u16 = 303;
    /// Kicked.
    pub const KICKED: u16 = 307;
    /// Removed by an affiliation change.
    pub const AFFILIATION_CHANGE: u16 = 321;
    /// Removed because the room became members-only.
    pub const MEMBERS_ONLY: u16 = 322;
    /// Removed because the service is shutting down.
    pub const SHUTDOWN: u16 = 332;
    /// Removed because the room lost its copy of the occupant (a technical reason,
    /// XEP-0045 §15.6.2 / XEP-0410: the client should join again).
    pub const TECHNICAL: u16 = 333;
}

/// A long-lived association with a room (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    /// Banned.
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// A temporary position in a room while present (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// What a join asks about discussion history (§7.2.13); absent fields are None.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryRequest {
    pub maxchars: Option<u64>,
    pub maxstanzas: Option<u64>,
    pub seconds: Option<u64>,
    /// Unix ms.
    pub since_ms: Option<i64>,
}

/// A presence's `<x xmlns='…muc'/>`: the sender asks to join (§7.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Join {
    pub password: Option<String>,
    pub history: HistoryRequest,
}

/// The join request a presence carries, if it is one.
pub fn parse_join(presence: &Element) -> Option<Join> {
    let x = presence.get_child("x", NS)?;
    let password = x
        .get_child("password", NS)
        .map(Element::text)
        .filter(|p| p.len() <= MAX_REASON_BYTES);
    let history = match x.get_child("history", NS) {
        None => HistoryRequest::default(),
        Some(h) => {
            let num = |name: &str| h.attr(name).and_then(|v| v.trim().parse::<u64>().ok());
            HistoryRequest {
                maxchars: num("maxchars"),
                maxstanzas: num("maxstanzas"),
                seconds: num("seconds"),
                since_ms: h.attr("since").and_then(crate::datetime::parse_xep0082),
            }
        }
    };
    Some(Join { password, history })
}

/// One `<item/>` of a room's presence (§7.2.3) or of an admin list (§9.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub affiliation: Affiliation,
    pub role: Role,
    /// The real JID, for those allowed to see it.
    pub jid: Option<String>,
    /// A nick (the new one on a 303, the reserved one in a list).
    pub nick: Option<String>,
    /// Who did it (kick, ban), by nick.
    pub actor: Option<String>,
    pub reason: Option<String>,
}

impl Item {
    pub fn new(affiliation: Affiliation, role: Role) -> Item {
        Item {
            affiliation,
            role,
            jid: None,
            nick: None,
            actor: None,
            reason: None,
        }
    }

    /// The `<item/>` in `ns`.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut item = Element::new("item", ns)
            .with_attr("affiliation", self.affiliation.as_str())
            .with_attr("role", self.role.as_str());
        if let Some(jid) = &self.jid {
            item.set_attr("jid", jid.clone());
        }
        if let Some(nick) = &self.nick {
            item.set_attr("nick", nick.clone());
        }
        if let Some(actor) = &self.actor {
            item.push_child(Element::new("actor", ns).with_attr("nick", actor.clone()));
        }
        if let Some(reason) = &self.reason {
            item.push_child(Element::new("reason", ns).with_text(reason.clone()));
        }
        item
    }
}

/// `<x xmlns='…#user'>` with `item` and the status codes, in order.
pub fn user_x(item: &Item, codes: &[u16]) -> Element {
    let mut x = Element::new("x", NS_USER).with_child(item.to_element(NS_USER));
    for code in codes {
        x.push_child(Element::new("status", NS_USER).with_attr("code", code.to_string()));
    }
    x
}

/// `<x xmlns='…#user'>` with only status codes (a message from the room itself, §10.2.1).
pub fn status_x(codes: &[u16]) -> Element {
    let mut x = Element::new("x", NS_USER);
    for code in codes {
        x.push_child(Element::new("status", NS_USER).with_attr("code", code.to_string()));
    }
    x
}

/// XEP-0421's `<occupant-id/>`.
pub fn occupant_id(id: &str) -> Element {
    Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", id)
}

/// XEP-0203's `<delay/>` on a history message, from the room.
pub fn delay(room: &str, stamp_ms: i64) -> Element {
    Element::new("delay", DELAY)
        .with_attr("from", room)
        .with_attr("stamp", crate::datetime::xep0082(stamp_ms))
}

/// Removes what only a room may say from a stanza an occupant sent: the MUC `<x/>`s and
/// `<occupant-id/>` (XEP-0421 §4: a room strips those it did not add), so that a
/// forged status code or id never reaches other occupants.
pub fn strip_room_payloads(stanza: &mut Element) {
    while stanza.remove_child("x", NS).is_some() {}
    while stanza.remove_child("x", NS_USER).is_some() {}
    while stanza.remove_child("occupant-id", NS_OCCUPANT_ID).is_some() {}
}

/// One item of an admin request (§8, §9): who (by nick or JID), and what it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminItem {
    pub nick: Option<String>,
    pub jid: Option<String>,
    pub role: Option<Role>,
    pub affiliation: Option<Affiliation>,
    pub reason: Option<String>,
}

/// Why an admin request is a `bad-request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAdmin {
    #[error("an admin query needs at least one item")]
    NoItems,
    #[error("too many items in one admin query")]
    TooMany,
    #[error("unknown role or affiliation")]
    Unknown,
    #[error("an item names neither a nick nor a jid, nor a role or affiliation to list")]
    Incomplete,
}

/// The items of a `<query xmlns='…#admin'/>`.
pub fn parse_admin(query: &Element) -> Result<Vec<AdminItem>, BadAdmin> {
    let mut items = Vec::new();
    for item in query.children().filter(|c| c.is("item", NS_ADMIN)) {
        if items.len() == MAX_ADMIN_ITEMS {
            return Err(BadAdmin::TooMany);
        }
        let role = match item.attr("role") {
            None => None,
            Some(r) => Some(Role::parse(r).ok_or(BadAdmin::Unknown)?),
        };
        let affiliation = match item.attr("affiliation") {
            None => None,
            Some(a) => Some(Affiliation::parse(a).ok_or(BadAdmin::Unknown)?),
        };
        if role.is_none() && affiliation.is_none() {
            return Err(BadAdmin::Incomplete);
        }
        let reason = item
            .get_child("reason", NS_ADMIN)
            .map(Element::text)
            .map(|r| truncate(r, MAX_REASON_BYTES));
        items.push(AdminItem {
            nick: item.attr("nick").map(str::to_owned),
            jid: item.attr("jid").map(str::to_owned),
            role,
            affiliation,
            reason,
        });
    }
    if items.is_empty() {
        return Err(BadAdmin::NoItems);
    }
    Ok(items)
}

/// A mediated invitation or its decline (§7.8.2, §7.8.3) in a message to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitation {
    Invite {
        to: String,
        reason: Option<String>,
    },
    Decline {
        to: Option<String>,
        reason: Option<String>,
    },
}

/// The invitations a message to a room carries (at most `max`).
pub fn parse_invitations(message: &Element, max: usize) -> Vec<Invitation> {
    let Some(x) = message.get_child("x", NS_USER) else {
        return Vec::new();
    };
    let reason = |e: &Element| {
        e.get_child("reason", NS_USER)
            .map(Element::text)
            .map(|r| truncate(r, MAX_REASON_BYTES))
    };
    x.children()
        .filter_map(|c| {
            if c.is("invite", NS_USER) {
                Some(Invitation::Invite {
                    to: c.attr("to")?.to_owned(),
                    reason: reason(c),
                })
            } else if c.is("decline", NS_USER) {
                Some(Invitation::Decline {
                    to: c.attr("to").map(str::to_owned),
                    reason: reason(c),
                })
            } else {
                None
            }
        })
        .take(max)
        .collect()
}

/// A `jabber:x:data` form's fields as (var, values), for the configuration form.
pub fn form_fields(form: &Element) -> Vec<(String, Vec<String>)> {
    form.children()
        .filter(|c| c.is("field", DATA))
        .filter_map(|f| {
            let values = f
                .children()
                .filter(|v| v.is("value", DATA))
                .map(Element::text)
                .collect();
            Some((f.attr("var")?.to_owned(), values))
        })
        .collect()
}

/// A form field, for the configuration and room information forms.
pub fn field(var: &str, kind: Option<&str>, label: Option<&str>, values: &[&str]) -> Element {
    let mut f = Element::new("field", DATA).with_attr("var", var);
    if let Some(kind) = kind {
        f.set_attr("type", kind);
    }
    if let Some(label) = label {
        f.set_attr("label", label);
    }
    for v in values {
        f.push_child(Element::new("value", DATA).with_text(*v));
    }
    f
}

/// A list-single field with its options.
pub fn list_field(var: &str, label: &str, value: &str, options: &[(&str, &str)]) -> Element {
    let mut f = field(var, Some("list-single"), Some(label), &[value]);
    for (value, label) in options {
        f.push_child(
            Element::new("option", DATA)
                .with_attr("label", *label)
                .with_child(Element::new("value", DATA).with_text(*value)),
        );
    }
    f
}

/// A form of `kind` with its hidden FORM_TYPE.
pub fn form(kind: &str, form_type: &str) -> Element {
    Element::new("x", DATA)
        .with_attr("type", kind)
        .with_child(field("FORM_TYPE", Some("hidden"), None, &[form_type]))
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn xep0045_7_2_13_history_request_is_read() {
        let p = parse(
            "<presence xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc'>\
             <password>pw</password>\
             <history maxstanzas='5' maxchars='x' since='1970-01-01T00:00:10Z'/></x></presence>",
        );
        let join = parse_join(&p).unwrap();
        assert_eq!(join.password.as_deref(), Some("pw"));
        assert_eq!(join.history.maxstanzas, Some(5));
        assert_eq!(join.history.maxchars, None, "a bad number is ignored");
        assert_eq!(join.history.since_ms, Some(10_000));
        assert!(parse_join(&parse("<presence xmlns='jabber:client'/>")).is_none());
    }

    #[test]
    fn xep0045_9_admin_items_are_bounded_and_typed() {
        let q = parse(
            "<query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='a' role='none'><reason>bye</reason></item>\
             <item jid='b@x' affiliation='outcast'/></query>",
        );
        let items = parse_admin(&q).unwrap();
        assert_eq!(items[0].role, Some(Role::None));
        assert_eq!(items[0].reason.as_deref(), Some("bye"));
        assert_eq!(items[1].affiliation, Some(Affiliation::Outcast));
        let bad = parse(
            "<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='a' role='king'/></query>",
        );
        assert_eq!(parse_admin(&bad), Err(BadAdmin::Unknown));
        let empty = parse("<query xmlns='http://jabber.org/protocol/muc#admin'/>");
        assert_eq!(parse_admin(&empty), Err(BadAdmin::NoItems));
        let many = format!(
            "<query xmlns='http://jabber.org/protocol/muc#admin'>{}</query>",
            "<item nick='a' role='none'/>".repeat(MAX_ADMIN_ITEMS + 1)
        );
        assert_eq!(parse_admin(&parse(&many)), Err(BadAdmin::TooMany));
    }

    #[test]
    fn xep0421_4_forged_room_payloads_are_stripped() {
        let mut m = parse(
            "<message xmlns='jabber:client'><body>hi</body>\
             <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x>\
             <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>",
        );
        strip_room_payloads(&mut m);
        assert!(!m.has_child("x", NS_USER));
        assert!(!m.has_child("occupant-id", NS_OCCUPANT_ID));
        assert!(m.has_child("body", "jabber:client"));
    }

    #[test]
    fn xep0045_7_8_invitations_are_read() {
        let m = parse(
            "<message xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <invite to='b@x'><reason>come</reason></invite><decline to='c@x'/></x></message>",
        );
        let inv = parse_invitations(&m, 10);
        assert_eq!(
            inv[0],
            Invitation::Invite {
                to: "b@x".into(),
                reason: Some("come".into())
            }
        );
        assert!(matches!(inv[1], Invitation::Decline { .. }));
        assert_eq!(parse_invitations(&m, 1).len(), 1);
    }

    #[test]
    fn xep0045_7_2_3_self_presence_carries_its_codes() {
        let x = user_x(&Item::new(Affiliation::Owner, Role::Moderator), &[110, 201]);
        let s = x.to_string();
        assert!(s.contains("affiliation=\"owner\"") || s.contains("affiliation='owner'"));
        assert_eq!(x.children().filter(|c| c.name() == "status").count(), 2);
    }
}
