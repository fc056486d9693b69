//! XEP-0191 Blocking Command: the `<blocklist/>`, `<block/>` and `<unblock/>` payloads, the
//! error a blocked stanza gets, and which addresses a list covers.
//!
//! An item names a full JID, a bare JID, a domain or `domain/resource`; it covers an address
//! the way XEP-0016 §2.1 matches JIDs (XEP-0191 §3.5): a bare JID covers every resource of
//! it, a domain covers the domain and everyone at it. Items are kept as the normalized
//! string form of the JID (the `jid` crate applies the RFC 7622 profiles), so that
//! `Romeo@Example.NET` and `romeo@example.net` are one item.

use std::collections::BTreeSet;

use jid::Jid;
use parley_xml::Element;

use crate::ns;
use crate::stanza_error::{ErrorType, StanzaCondition, StanzaError};

/// What a client asks in an iq of this namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// §3.2: `<blocklist/>` in a get.
    Get,
    /// §3.3: `<block/>` in a set, with at least one item.
    Block(Vec<String>),
    /// §3.4: `<unblock/>` in a set; no items unblocks everything (§3.4.2).
    Unblock(Vec<String>),
}

impl Command {
    /// Reads the payload of an iq get or set (`iq` is the whole stanza).
    pub fn parse(iq: &Element) -> Result<Command, StanzaError> {
        let bad = |text: &str| StanzaError::with_text(StanzaCondition::BadRequest, text);
        let payload = iq
            .first_child()
            .filter(|c| c.ns() == ns::BLOCKING)
            .ok_or_else(|| bad("no blocking payload"))?;
        match (iq.attr("type").unwrap_or_default(), payload.name()) {
            ("get", "blocklist") => Ok(Command::Get),
            ("set", "block") => {
                let items = items(payload)?;
                if items.is_empty() {
                    // §3.3: a block without items is a bad request.
                    return Err(bad("<block/> needs at least one <item/>"));
                }
                Ok(Command::Block(items))
            }
            ("set", "unblock") => Ok(Command::Unblock(items(payload)?)),
            _ => Err(bad(
                "expected a get of <blocklist/> or a set of <block/> or <unblock/>",
            )),
        }
    }
}

/// The payload's item JIDs, normalized, each once, in the order given.
pub fn items(payload: &Element) -> Result<Vec<String>, StanzaError> {
    // A set of what was seen keeps de-duplication O(n log n) for a payload of n items
    // (a linear `contains` made a large <block/> quadratic).
    let mut out: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for item in payload.children().filter(|c| c.is("item", ns::BLOCKING)) {
        let raw = item.attr("jid").ok_or_else(|| {
            StanzaError::with_text(StanzaCondition::BadRequest, "an <item/> needs a jid")
        })?;
        let jid = Jid::new(raw).map_err(|_| {
            StanzaError::with_text(StanzaCondition::JidMalformed, "an item's jid is not valid")
        })?;
        let jid = jid.to_string();
        if seen.insert(jid.clone()) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// `<blocklist/>`, `<block/>` or `<unblock/>` with these items.
pub fn payload(name: &str, jids: &[String]) -> Element {
    let mut el = Element::new(name, ns::BLOCKING);
    for jid in jids {
        el.push_child(Element::new("item", ns::BLOCKING).with_attr("jid", jid.as_str()));
    }
    el
}

/// §3.6: what a stanza to a blocked address gets back.
pub fn blocked_error() -> StanzaError {
    StanzaError {
        // Example 13 of XEP-0191 gives it type cancel (not-acceptable defaults to modify).
        error_type: ErrorType::Cancel,
        ..StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "you have blocked this address",
        )
    }
    .with_app(Element::new("blocked", ns::BLOCKING_ERRORS))
}

/// A user's blocklist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist(BTreeSet<String>);

impl Blocklist {
    /// A list of these (normalized) items.
    pub fn new(items: impl IntoIterator<Item = String>) -> Blocklist {
        Blocklist(items.into_iter().collect())
    }

    /// Whether any item covers `jid` (XEP-0191 §3.5 by XEP-0016 §2.1).
    pub fn blocks(&self, jid: &Jid) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let domain = jid.domain().as_str();
        let bare = jid.to_bare();
        self.0.contains(jid.as_str())
            || self.0.contains(bare.as_str())
            || jid
                .resource()
                .is_some_and(|r| self.0.contains(&format!("{domain}/{}", r.as_str())))
            || self.0.contains(domain)
    }

    /// [`Blocklist::blocks`] for an address in text form; an unparsable one is not blocked.
    pub fn blocks_str(&self, jid: &str) -> bool {
        !self.0.is_empty() && Jid::new(jid).is_ok_and(|j| self.blocks(&j))
    }

    /// How many items the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `jid` (normalized) is an item of the list, as given.
    pub fn contains(&self, jid: &str) -> bool {
        self.0.contains(jid)
    }

    /// Adds items.
    pub fn add(&mut self, jids: &[String]) {
        self.0.extend(jids.iter().cloned());
    }

    /// Removes items.
    pub fn remove(&mut self, jids: &[String]) {
        for jid in jids {
            self.0.remove(jid);
        }
    }

    /// Removes every item (§3.4.2).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The items, sorted.
    pub fn items(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML parses")
    }

    #[test]
    fn xep0191_3_2_the_get_of_the_blocklist() {
        let iq = parse("<iq xmlns='jabber:client' type='get' id='b1'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
        assert_eq!(Command::parse(&iq), Ok(Command::Get));
    }

    #[test]
    fn xep0191_3_3_block_items_are_normalized_and_deduplicated() {
        let iq = parse(
            "<iq xmlns='jabber:client' type='set' id='b2'><block xmlns='urn:xmpp:blocking'>\
             <item jid='Romeo@Example.NET'/><item jid='romeo@example.net'/>\
             <item jid='example.org'/></block></iq>",
        );
        assert_eq!(
            Command::parse(&iq),
            Ok(Command::Block(vec![
                "romeo@example.net".into(),
                "example.org".into()
            ]))
        );
    }

    #[test]
    fn xep0191_3_3_a_block_without_items_or_with_a_bad_jid_is_refused() {
        let empty = parse(
            "<iq xmlns='jabber:client' type='set' id='b3'><block xmlns='urn:xmpp:blocking'/></iq>",
        );
        assert_eq!(
            Command::parse(&empty).unwrap_err().condition,
            StanzaCondition::BadRequest
        );
        let bad = parse(
            "<iq xmlns='jabber:client' type='set' id='b4'><block xmlns='urn:xmpp:blocking'>\
             <item jid='a@b@c'/></block></iq>",
        );
        assert_eq!(
            Command::parse(&bad).unwrap_err().condition,
            StanzaCondition::JidMalformed
        );
        let no_jid = parse(
            "<iq xmlns='jabber:client' type='set' id='b5'><block xmlns='urn:xmpp:blocking'><item/></block></iq>",
        );
        assert_eq!(
            Command::parse(&no_jid).unwrap_err().condition,
            StanzaCondition::BadRequest
        );
        let wrong = parse("<iq xmlns='jabber:client' type='get' id='b6'><block xmlns='urn:xmpp:blocking'><item jid='x'/></block></iq>");
        assert_eq!(
            Command::parse(&wrong).unwrap_err().condition,
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn xep0191_3_4_unblock_with_items_or_everything() {
        let some = parse(
            "<iq xmlns='jabber:client' type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'>\
             <item jid='romeo@example.net'/></unblock></iq>",
        );
        assert_eq!(
            Command::parse(&some),
            Ok(Command::Unblock(vec!["romeo@example.net".into()]))
        );
        let all = parse("<iq xmlns='jabber:client' type='set' id='u2'><unblock xmlns='urn:xmpp:blocking'/></iq>");
        assert_eq!(Command::parse(&all), Ok(Command::Unblock(vec![])));
    }

    #[test]
    fn xep0191_3_5_items_cover_addresses_as_xep0016_matches_them() {
        let list = Blocklist::new([
            "romeo@example.net".to_owned(),
            "juliet@example.com/balcony".to_owned(),
            "example.org".to_owned(),
            "example.edu/bot".to_owned(),
        ]);
        for blocked in [
            "romeo@example.net",
            "romeo@example.net/orchard",
            "juliet@example.com/balcony",
            "example.org",
            "nurse@example.org/kitchen",
            "example.edu/bot",
            "anyone@example.edu/bot",
        ] {
            assert!(list.blocks_str(blocked), "{blocked}");
        }
        for free in [
            "juliet@example.com",
            "juliet@example.com/chamber",
            "benvolio@example.net",
            "example.edu",
            "tybalt@example.edu/home",
            "not a jid@@",
        ] {
            assert!(!list.blocks_str(free), "{free}");
        }
    }

    #[test]
    fn xep0191_3_6_the_blocked_error_carries_its_application_condition() {
        let el = blocked_error().to_element(ns::CLIENT);
        assert_eq!(el.attr("type"), Some("cancel"));
        assert!(el.has_child("not-acceptable", ns::STANZA_ERRORS));
        assert!(el.has_child("blocked", ns::BLOCKING_ERRORS));
        let back = StanzaError::from_element(&el).unwrap();
        assert!(back
            .app
            .is_some_and(|a| a.is("blocked", ns::BLOCKING_ERRORS)));
    }

    #[test]
    fn payloads_list_their_items() {
        let el = payload("block", &["a@b".into(), "c".into()]);
        let mut out = Vec::new();
        el.write_to(&mut out, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<block xmlns='urn:xmpp:blocking'><item jid='a@b'/><item jid='c'/></block>"
        );
    }
}
