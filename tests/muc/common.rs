//! What the chat-room tests share: the namespaces, joining and waiting for the
//! self-presence, configuring, and reading status codes and items. Each test file uses
//! part of it.
#![allow(dead_code)]

pub use parley_testkit::im::{body, error_condition, next_id};
pub use parley_testkit::{Client, TestServer};
pub use parley_xml::Element;

pub const CLIENT: &str = "jabber:client";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const USER: &str = "http://jabber.org/protocol/muc#user";
pub const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const DATA: &str = "jabber:x:data";
pub const SERVICE: &str = "conference.localhost";

pub fn room(name: &str) -> String {
    format!("{name}@{SERVICE}")
}

/// The status codes of a room presence or message.
pub fn codes(el: &Element) -> Vec<u16> {
    el.get_child("x", USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn item(el: &Element) -> Option<&Element> {
    el.get_child("x", USER)?.get_child("item", USER)
}

pub fn join_presence(room: &str, nick: &str) -> Element {
    Element::new("presence", CLIENT)
        .with_attr("to", format!("{room}/{nick}"))
        .with_child(Element::new("x", MUC))
}

/// Joins and waits for the self-presence (status 110); returns it.
pub async fn join(c: &mut Client, room: &str, nick: &str) -> Element {
    c.send(&join_presence(room, nick)).await;
    self_presence(c, room, nick).await
}

pub async fn self_presence(c: &mut Client, room: &str, nick: &str) -> Element {
    let from = format!("{room}/{nick}");
    c.expect_match(&format!("self-presence from {from}"), move |el| {
        el.name() == "presence"
            && el.attr("from") == Some(from.as_str())
            && codes(el).contains(&110)
    })
    .await
    .expect("self-presence")
}

/// Waits for a presence error from `room/nick`; returns its condition.
pub async fn join_error(c: &mut Client, room: &str, nick: &str) -> String {
    let from = format!("{room}/{nick}");
    let el = c
        .expect_match("a presence error", move |el| {
            el.name() == "presence"
                && el.attr("type") == Some("error")
                && el.attr("from") == Some(from.as_str())
        })
        .await
        .expect("presence error");
    error_condition(&el).expect("a condition")
}

pub fn owner_set(room: &str, payload: Element) -> Element {
    Element::new("iq", CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("owner"))
        .with_attr("to", room)
        .with_child(Element::new("query", OWNER).with_child(payload))
}

/// §10.1.2: accepts the default configuration (an instant room).
pub async fn instant(c: &mut Client, room: &str) {
    let form = Element::new("x", DATA).with_attr("type", "submit");
    let reply = c.iq(&owner_set(room, form)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
}

/// Submits the configuration form with `fields`.
pub async fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) -> Element {
    let mut form = Element::new("x", DATA)
        .with_attr("type", "submit")
        .with_child(
            Element::new("field", DATA)
                .with_attr("var", "FORM_TYPE")
                .with_child(
                    Element::new("value", DATA)
                        .with_text("http://jabber.org/protocol/muc#roomconfig"),
                ),
        );
    for (var, value) in fields {
        form.push_child(
            Element::new("field", DATA)
                .with_attr("var", *var)
                .with_child(Element::new("value", DATA).with_text(*value)),
        );
    }
    c.iq(&owner_set(room, form)).await.unwrap()
}

/// alice creates `name` as an instant room and joins as Alice.
pub async fn open_room(alice: &mut Client, name: &str) -> String {
    let r = room(name);
    join(alice, &r, "Alice").await;
    instant(alice, &r).await;
    r
}

pub fn groupchat(room: &str, text: &str) -> Element {
    Element::new("message", CLIENT)
        .with_attr("to", room)
        .with_attr("type", "groupchat")
        .with_attr("id", next_id("gc"))
        .with_child(Element::new("body", CLIENT).with_text(text))
}

pub fn admin_set(room: &str, item: Element) -> Element {
    Element::new("iq", CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("admin"))
        .with_attr("to", room)
        .with_child(Element::new("query", ADMIN).with_child(item))
}

pub async fn groupchat_from(c: &mut Client, from: &str, text: &str) -> Element {
    let (from, text) = (from.to_owned(), text.to_owned());
    c.expect_match(&format!("groupchat {text:?} from {from}"), move |el| {
        el.name() == "message" && el.attr("from") == Some(from.as_str()) && body(el) == text
    })
    .await
    .expect("groupchat")
}
