//! Voice requests (XEP-0045 §7.13, §8.6): a visitor in a moderated room asks for voice with
//! a `muc#request` form; the room passes the request to every moderator as a form to fill,
//! and a moderator's approval (the same form with `muc#request_allow` true) grants the
//! occupant the participant role, as §8.3 would.

use actix::Context;
use jid::FullJid;
use parley_proto::muc::{self, field, form, Role};
use parley_proto::ns;
use parley_proto::stanza_error::StanzaCondition;
use parley_xml::Element;

use super::RoomActor;

/// The request form's FORM_TYPE.
pub(super) const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";
const DATA: &str = "jabber:x:data";

/// The `muc#request` submit form a message carries, if any.
pub(super) fn request_form(m: &Element) -> Option<&Element> {
    m.children().find(|x| {
        x.is("x", DATA)
            && x.attr("type") == Some("submit")
            && muc::form_fields(x).iter().any(|(var, v)| {
                var == "FORM_TYPE" && v.first().map(String::as_str) == Some(NS_REQUEST)
            })
    })
}

impl RoomActor {
    /// A `muc#request` form sent to the room: a visitor's request, or a moderator's answer.
    pub(super) fn voice_form(&mut self, from: &FullJid, m: &Element, ctx: &mut Context<Self>) {
        let Some(form_el) = request_form(m) else {
            return;
        };
        let fields = muc::form_fields(form_el);
        let value = |name: &str| {
            fields
                .iter()
                .find(|(v, _)| v == name)
                .and_then(|(_, vals)| vals.first().cloned())
        };
        let Some(room) = self.room() else { return };
        let Some(sender) = room.occupant_of(from).cloned() else {
            return self.refuse(
                m,
                StanzaCondition::NotAcceptable,
                Some("only occupants may ask for voice"),
            );
        };
        match sender.role {
            Role::Moderator => {
                // §8.6: an approval names the occupant by nick.
                let allow = matches!(value("muc#request_allow").as_deref(), Some("1" | "true"));
                let Some(nick) = value("muc#roomnick") else {
                    return self.refuse(
                        m,
                        StanzaCondition::BadRequest,
                        Some("the approval names no occupant"),
                    );
                };
                let is_visitor = room
                    .occupants
                    .get(&nick)
                    .is_some_and(|o| o.role == Role::Visitor);
                if allow && is_visitor {
                    self.set_role(
                        &nick,
                        Role::Participant,
                        Some(sender.nick.clone()),
                        None,
                        ctx,
                    );
                }
            }
            Role::Visitor if room.config.moderated => {
                // §7.13: to every moderator, as a form to approve.
                let request = form("form", NS_REQUEST)
                    .with_child(Element::new("title", DATA).with_text("Voice request"))
                    .with_child(field(
                        "muc#role",
                        Some("list-single"),
                        Some("Requested role"),
                        &["participant"],
                    ))
                    .with_child(field(
                        "muc#jid",
                        Some("jid-single"),
                        Some("User ID"),
                        &[&from.to_bare().to_string()],
                    ))
                    .with_child(field(
                        "muc#roomnick",
                        Some("text-single"),
                        Some("Room nickname"),
                        &[&sender.nick],
                    ))
                    .with_child(field(
                        "muc#request_allow",
                        Some("boolean"),
                        Some("Grant voice to this person?"),
                        &["false"],
                    ));
                let message = Element::new("message", ns::CLIENT)
                    .with_attr("from", self.jid.to_string())
                    .with_child(request);
                let moderators: Vec<&FullJid> = room
                    .occupants
                    .values()
                    .filter(|o| o.role == Role::Moderator)
                    .flat_map(|o| o.jids())
                    .collect();
                self.fan_out(&message, &moderators);
            }
            // A participant already speaks; a visitor in an unmoderated room cannot exist.
            _ => self.refuse(
                m,
                StanzaCondition::NotAcceptable,
                Some("you already have voice"),
            ),
        }
    }
}
