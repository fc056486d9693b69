//! Bookmarks in their two forms (XEP-0411): the legacy `<storage xmlns='storage:bookmarks'/>`
//! element of private XML storage (XEP-0048 over XEP-0049), and PEP native bookmarks
//! (XEP-0402), one item per room in the `urn:xmpp:bookmarks:1` node, its id the room's JID.
//!
//! Conferences carry over both ways (name, autojoin, nick, password); XEP-0402's
//! `<extensions/>` and XEP-0048's `<url/>` entries have no counterpart and stay where they
//! are (the server keeps the legacy element as stored, and merges its URLs back).

use parley_xml::Element;

/// XEP-0048's namespace, the key of the legacy element in private storage.
pub const LEGACY_NS: &str = "storage:bookmarks";
/// XEP-0402's node and namespace.
pub const NODE: &str = "urn:xmpp:bookmarks:1";
/// XEP-0411 §3: the feature of an account whose server keeps both forms in step.
pub const CONVERSION_FEATURE: &str = "urn:xmpp:bookmarks-conversion:0";

/// XEP-0402 §5: the publish-options a client uses; the server's own publications use them
/// too, so both agree on the node's configuration.
pub const PUBLISH_OPTIONS: &[(&str, &str)] = &[
    ("pubsub#persist_items", "true"),
    ("pubsub#max_items", "max"),
    ("pubsub#send_last_published_item", "never"),
    ("pubsub#access_model", "whitelist"),
];

fn autojoin(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

/// The conferences of a legacy `<storage/>` as XEP-0402 items: (room JID, payload), in
/// document order; a conference without a JID is skipped, the last of two for one room
/// wins.
pub fn legacy_to_items(storage: &Element) -> Vec<(String, Element)> {
    let mut out: Vec<(String, Element)> = Vec::new();
    for c in storage.children().filter(|c| c.is("conference", LEGACY_NS)) {
        let Some(jid) = c.attr("jid").filter(|j| !j.is_empty()) else {
            continue;
        };
        let mut conf = Element::new("conference", NODE).with_attr(
            "autojoin",
            if autojoin(c.attr("autojoin")) {
                "true"
            } else {
                "false"
            },
        );
        if let Some(name) = c.attr("name") {
            conf.set_attr("name", name);
        }
        for field in ["nick", "password"] {
            if let Some(v) = c.get_child(field, LEGACY_NS) {
                conf.push_child(Element::new(field, NODE).with_text(v.text()));
            }
        }
        out.retain(|(j, _)| j != jid);
        out.push((jid.to_owned(), conf));
    }
    out
}

/// A legacy `<storage/>` from XEP-0402 items (room JID, payload), with the `<url/>`
/// entries of `stored` (the legacy element as last stored, if any).
pub fn items_to_legacy(items: &[(String, Element)], stored: Option<&Element>) -> Element {
    let mut storage = Element::new("storage", LEGACY_NS);
    for (jid, payload) in items {
        if !payload.is("conference", NODE) {
            continue;
        }
        let mut c = Element::new("conference", LEGACY_NS)
            .with_attr("jid", jid.as_str())
            .with_attr(
                "autojoin",
                if autojoin(payload.attr("autojoin")) {
                    "true"
                } else {
                    "false"
                },
            );
        if let Some(name) = payload.attr("name") {
            c.set_attr("name", name);
        }
        for field in ["nick", "password"] {
            if let Some(v) = payload.get_child(field, NODE) {
                c.push_child(Element::new(field, LEGACY_NS).with_text(v.text()));
            }
        }
        storage.push_child(c);
    }
    if let Some(stored) = stored {
        for url in stored.children().filter(|c| c.is("url", LEGACY_NS)) {
            storage.push_child(url.clone());
        }
    }
    storage
}

#[cfg(test)]
mod tests {
    use parley_xml::Limits;

    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    /// XEP-0411 §4: a legacy conference becomes an item named by its room, and back.
    #[test]
    fn xep0411_4_conferences_convert_both_ways() {
        let legacy = el("<storage xmlns='storage:bookmarks'>\
            <conference jid='tea@rooms.example' name='Tea' autojoin='1'><nick>alice</nick><password>pw</password></conference>\
            <conference name='no jid'/>\
            <conference jid='cake@rooms.example' autojoin='false'/>\
            <url name='home' url='https://example.org'/>\
            </storage>");
        let items = legacy_to_items(&legacy);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0, "tea@rooms.example");
        let tea = &items[0].1;
        assert!(tea.is("conference", NODE));
        assert_eq!(
            (tea.attr("name"), tea.attr("autojoin")),
            (Some("Tea"), Some("true"))
        );
        assert_eq!(tea.get_child("nick", NODE).unwrap().text(), "alice");
        assert_eq!(tea.get_child("password", NODE).unwrap().text(), "pw");
        assert_eq!(items[1].1.attr("autojoin"), Some("false"));

        let back = items_to_legacy(&items, Some(&legacy));
        let confs: Vec<&Element> = back
            .children()
            .filter(|c| c.is("conference", LEGACY_NS))
            .collect();
        assert_eq!(confs.len(), 2);
        assert_eq!(confs[0].attr("jid"), Some("tea@rooms.example"));
        assert_eq!(confs[0].attr("autojoin"), Some("true"));
        assert_eq!(
            confs[0].get_child("nick", LEGACY_NS).unwrap().text(),
            "alice"
        );
        assert!(back.has_child("url", LEGACY_NS), "URLs stay");
        // Without a stored element: conferences only.
        assert!(!items_to_legacy(&items, None).has_child("url", LEGACY_NS));
    }
}
