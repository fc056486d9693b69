//! What the conference domain itself answers (XEP-0045 §6.1–§6.3, §10.1.4): its identity
//! and features, the list of public rooms (from storage, so it is the same on every
//! node), unique room names and pings. Anything else gets the error RFC 6120 gives it.

use std::sync::Arc;

use parley_proto::muc;
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_xml::Element;

use crate::config::RoomConfig;
use crate::registry::Env;

const RSM: &str = "http://jabber.org/protocol/rsm";

pub(crate) fn accept(env: &Arc<Env>, stanza: Element) {
    if stanza.name() != "iq" {
        if stanza.name() == "message" {
            env.router.bounce(
                &stanza,
                StanzaError::new(StanzaCondition::ServiceUnavailable),
            );
        }
        return;
    }
    let kind = stanza.attr("type").unwrap_or("");
    if kind == "result" || kind == "error" {
        return;
    }
    let payload = stanza
        .first_child()
        .map(|p| (p.ns().to_owned(), p.name().to_owned()));
    match (
        payload.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        kind,
    ) {
        (Some((ns::DISCO_INFO, "query")), "get") => {
            let feature = |v: &str| Element::new("feature", ns::DISCO_INFO).with_attr("var", v);
            let q = Element::new("query", ns::DISCO_INFO)
                .with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", "Chatrooms"),
                )
                .with_child(feature(muc::NS))
                .with_child(feature(muc::NS_UNIQUE))
                .with_child(feature(ns::DISCO_INFO))
                .with_child(feature(ns::DISCO_ITEMS))
                .with_child(feature(muc::NS_OCCUPANT_ID))
                .with_child(feature(muc::NS_SELF_PING))
                .with_child(feature(parley_proto::mam::NS));
            env.router
                .send(iq_result(&stanza).with_child(q), Wake::IfRunning);
        }
        (Some((ns::DISCO_ITEMS, "query")), "get") => list_rooms(env.clone(), stanza),
        (Some((muc::NS_UNIQUE, "unique")), "get") => {
            // §10.1.4: a name nobody uses, for a room created next.
            let name = hex::encode(rand::random::<[u8; 10]>());
            env.router.send(
                iq_result(&stanza)
                    .with_child(Element::new("unique", muc::NS_UNIQUE).with_text(name)),
                Wake::IfRunning,
            );
        }
        (Some(("urn:xmpp:ping", "ping")), "get") => {
            env.router.send(iq_result(&stanza), Wake::IfRunning)
        }
        _ => env.router.bounce(
            &stanza,
            StanzaError::new(StanzaCondition::ServiceUnavailable),
        ),
    }
}

/// §6.3: the public rooms, in name order, paged with XEP-0059 (`<max/>`, `<after/>`).
fn list_rooms(env: Arc<Env>, iq: Element) {
    let set = iq.first_child().and_then(|q| q.get_child("set", RSM));
    let cap = env.settings.max_listed_rooms;
    let max = set
        .and_then(|s| s.get_child("max", RSM))
        .and_then(|m| m.text().trim().parse::<usize>().ok())
        .map_or(cap, |m| m.min(cap));
    let after = set
        .and_then(|s| s.get_child("after", RSM))
        .map(Element::text);
    let paged = set.is_some();
    tokio::spawn(async move {
        match env
            .storage
            .muc_rooms(&env.service, after.as_deref(), max, true)
            .await
        {
            Ok(rooms) => {
                let mut q = Element::new("query", ns::DISCO_ITEMS);
                for r in &rooms {
                    let name = RoomConfig::from_json(&r.config)
                        .map(|c| c.name)
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| r.name.clone());
                    q.push_child(
                        Element::new("item", ns::DISCO_ITEMS)
                            .with_attr("jid", format!("{}@{}", r.name, env.service))
                            .with_attr("name", name),
                    );
                }
                if paged || rooms.len() == max {
                    let mut s = Element::new("set", RSM);
                    if let (Some(first), Some(last)) = (rooms.first(), rooms.last()) {
                        s.push_child(Element::new("first", RSM).with_text(first.name.clone()));
                        s.push_child(Element::new("last", RSM).with_text(last.name.clone()));
                    }
                    q.push_child(s);
                }
                env.router
                    .send(iq_result(&iq).with_child(q), Wake::IfRunning);
            }
            Err(e) => {
                tracing::warn!(service = %env.service, error = %e, "room listing failed");
                env.router
                    .bounce(&iq, StanzaError::new(StanzaCondition::InternalServerError));
            }
        }
    });
}
