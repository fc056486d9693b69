//! The roster (RFC 6121 §2): get with versioning (§2.6), set, remove, and pushes to the
//! interested resources — never to a resource that did not ask for the roster.

use std::collections::HashSet;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::BareJid;
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_storage::{RosterChange, RosterItem, Subscription};
use parley_xml::Element;
use tracing::warn;

use crate::actor::UserActor;
use crate::presence::{has_from, has_to};

/// Per-item bounds of a roster set (`[quotas]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemLimits {
    /// Longest item name or group name, in bytes.
    pub(crate) name_bytes: usize,
    /// Most groups one item may name.
    pub(crate) groups: usize,
}

#[cfg(test)]
const TEST_LIMITS: ItemLimits = ItemLimits {
    name_bytes: 1023,
    groups: 32,
};

/// The XML of one roster item.
pub(crate) fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", ns::ROSTER)
        .with_attr("jid", item.jid.clone())
        .with_attr("subscription", item.subscription.as_str());
    if let Some(name) = &item.name {
        el.set_attr("name", name.clone());
    }
    if item.ask {
        el.set_attr("ask", "subscribe");
    }
    for g in &item.groups {
        el.push_child(Element::new("group", ns::ROSTER).with_text(g.clone()));
    }
    el
}

fn removed_element(jid: &str) -> Element {
    Element::new("item", ns::ROSTER)
        .with_attr("jid", jid)
        .with_attr("subscription", "remove")
}

/// What a roster set asks for, after validation.
enum SetRequest {
    Update {
        jid: String,
        name: Option<String>,
        groups: Vec<String>,
    },
    Remove {
        jid: String,
    },
}

/// RFC 6121 §2.3.3 / §2.5.3: the checks on a roster set, from the query element. Too long
/// a name or group name, or too many groups, is `<not-acceptable/>` (§2.3.3 names that
/// condition for a name or group past the server's configured length): the item itself is
/// unacceptable, whatever else the roster holds.
fn parse_set(query: &Element, limits: ItemLimits) -> Result<SetRequest, StanzaError> {
    let mut items = query.children().filter(|c| c.is("item", ns::ROSTER));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "a roster set carries exactly one item",
        ));
    };
    let jid = item
        .attr("jid")
        .and_then(|j| BareJid::new(j).ok())
        .ok_or_else(|| {
            StanzaError::with_text(
                StanzaCondition::BadRequest,
                "the item needs a valid bare JID",
            )
        })?;
    if item.attr("subscription") == Some("remove") {
        return Ok(SetRequest::Remove {
            jid: jid.to_string(),
        });
    }
    let name = item.attr("name").map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.len() > limits.name_bytes) {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "the item name is too long",
        ));
    }
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for g in item.children().filter(|c| c.is("group", ns::ROSTER)) {
        if groups.len() >= limits.groups {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "the item names too many groups",
            ));
        }
        let text = g.text();
        if text.is_empty() || text.len() > limits.name_bytes {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "a group name is empty or too long",
            ));
        }
        if !seen.insert(text.clone()) {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "the same group is named twice",
            ));
        }
        groups.push(text);
    }
    Ok(SetRequest::Update {
        jid: jid.to_string(),
        name,
        groups,
    })
}

impl UserActor {
    /// A roster iq from one of the user's resources.
    pub(crate) fn roster_iq(&mut self, resource: &str, iq: Element, ctx: &mut Context<Self>) {
        let Some(query) = iq.get_child("query", ns::ROSTER).cloned() else {
            return;
        };
        match iq.attr("type") {
            Some("get") => self.roster_get(resource, &iq, &query, ctx),
            Some("set") => match parse_set(&query, self.item_limits()) {
                Err(err) => self.reply_error(resource, &iq, err),
                Ok(SetRequest::Update { jid, name, groups }) => {
                    let existing = self.roster.items.get(&jid).cloned();
                    if existing.is_none()
                        && self.roster.items.len() >= self.users.config.max_roster_items
                    {
                        if parley_router::metrics::refuse("roster_items", self.jid.as_str()) {
                            warn!(user = %self.jid, "roster set refused: the roster is full");
                        }
                        return self.reply_error(
                            resource,
                            &iq,
                            StanzaError::with_text(
                                StanzaCondition::NotAllowed,
                                "the roster is full",
                            ),
                        );
                    }
                    // The client names and groups the item; subscription state is the
                    // server's (§2.1.2.5).
                    let item = RosterItem {
                        jid,
                        name,
                        groups,
                        subscription: existing
                            .as_ref()
                            .map_or(Subscription::None, |e| e.subscription),
                        ask: existing.is_some_and(|e| e.ask),
                    };
                    self.reply(resource, iq_result(&iq));
                    self.put_item(item, ctx);
                }
                Ok(SetRequest::Remove { jid }) => {
                    if !self.roster.items.contains_key(&jid) {
                        // §2.5.3: removing an item that is not there.
                        return self.reply_error(
                            resource,
                            &iq,
                            StanzaError::new(StanzaCondition::ItemNotFound),
                        );
                    }
                    self.reply(resource, iq_result(&iq));
                    self.remove_item(&jid, ctx);
                }
            },
            // Answers to our pushes.
            _ => {}
        }
    }

    fn item_limits(&self) -> ItemLimits {
        ItemLimits {
            name_bytes: self.users.config.max_roster_name_bytes,
            groups: self.users.config.max_groups_per_item,
        }
    }

    fn reply(&self, resource: &str, stanza: Element) {
        if let Some(r) = self.resource(resource) {
            self.deliver(r, stanza);
        }
    }

    fn reply_error(&self, resource: &str, iq: &Element, err: StanzaError) {
        if let Some(reply) = parley_proto::stanza_error::error_reply(iq, &err) {
            self.reply(resource, reply);
        }
    }

    /// §2.2 / §2.6: the roster, or only what changed since the client's version.
    fn roster_get(
        &mut self,
        resource: &str,
        iq: &Element,
        query: &Element,
        ctx: &mut Context<Self>,
    ) {
        if let Some(r) = self.resource_mut(resource) {
            r.interested = true;
        }
        let client_ver = query.attr("ver").map(str::to_owned);
        let known = client_ver.as_deref().and_then(|v| v.parse::<i64>().ok());
        let full = |act: &UserActor| {
            let mut q = Element::new("query", ns::ROSTER);
            if client_ver.is_some() {
                q.set_attr("ver", act.roster.version.to_string());
            }
            for item in act.roster.items.values() {
                q.push_child(item_element(item));
            }
            iq_result(iq).with_child(q)
        };
        let Some(since) = known else {
            let reply = full(self);
            return self.reply(resource, reply);
        };
        if since == self.roster.version {
            return self.reply(resource, iq_result(iq));
        }
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let (iq, resource) = (iq.clone(), resource.to_owned());
        let client_ver = client_ver.clone();
        ctx.wait(
            wrap_future::<_, Self>(async move {
                storage.roster_changes_since(&user, &host, since).await
            })
            .map(move |res, act, _| match res {
                Ok(Some(changes)) => {
                    act.reply(&resource, iq_result(&iq));
                    for (version, change) in changes {
                        let el = match change {
                            RosterChange::Updated(item) => item_element(&item),
                            RosterChange::Removed(jid) => removed_element(&jid),
                        };
                        act.push_to(&resource, version, el);
                    }
                }
                Ok(None) | Err(_) => {
                    let mut q = Element::new("query", ns::ROSTER);
                    if client_ver.is_some() {
                        q.set_attr("ver", act.roster.version.to_string());
                    }
                    for item in act.roster.items.values() {
                        q.push_child(item_element(item));
                    }
                    act.reply(&resource, iq_result(&iq).with_child(q));
                }
            }),
        );
    }

    fn push_to(&mut self, resource: &str, version: i64, item: Element) {
        let id = self.fresh_id("push");
        let Some(r) = self.resource(resource) else {
            return;
        };
        let push = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id)
            .with_attr("to", r.full.to_string())
            .with_child(
                Element::new("query", ns::ROSTER)
                    .with_attr("ver", version.to_string())
                    .with_child(item),
            );
        self.deliver(r, push);
    }

    /// §2.1.6: a roster push to every interested resource.
    fn push_all(&mut self, version: i64, item: &Element) {
        let names: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.interested)
            .map(|r| r.name().to_owned())
            .collect();
        for name in names {
            self.push_to(&name, version, item.clone());
        }
    }

    /// Stores an item, then pushes it with the version storage assigned.
    pub(crate) fn put_item(&mut self, item: RosterItem, ctx: &mut Context<Self>) {
        self.roster.items.insert(item.jid.clone(), item.clone());
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        ctx.wait(
            wrap_future::<_, Self>(async move {
                let v = storage.roster_put(&user, &host, &item).await;
                (v, item)
            })
            .map(|(res, item), act, _| match res {
                Ok(version) => {
                    act.roster.version = version;
                    act.push_all(version, &item_element(&item));
                }
                Err(e) => warn!(user = %act.jid, error = %e, "storing a roster item failed"),
            }),
        );
    }

    /// §2.5.2: removing an item cancels both directions of the subscription first.
    fn remove_item(&mut self, jid: &str, ctx: &mut Context<Self>) {
        let Some(item) = self.roster.items.remove(jid) else {
            return;
        };
        let me = self.jid.to_string();
        if has_to(item.subscription) || item.ask {
            self.route_out(
                Element::new("presence", ns::CLIENT)
                    .with_attr("type", "unsubscribe")
                    .with_attr("from", me.clone())
                    .with_attr("to", jid),
                Wake::Start,
            );
        }
        let pending = self.roster.pending_in.iter().any(|(j, _)| j == jid);
        if has_from(item.subscription) || pending {
            if let Ok(contact) = BareJid::new(jid) {
                for r in self.resources.iter().filter(|r| r.available) {
                    let p = Element::new("presence", ns::CLIENT)
                        .with_attr("type", "unavailable")
                        .with_attr("from", r.full.to_string())
                        .with_attr("to", contact.to_string());
                    self.route_out(p, Wake::IfRunning);
                }
            }
            self.route_out(
                Element::new("presence", ns::CLIENT)
                    .with_attr("type", "unsubscribed")
                    .with_attr("from", me)
                    .with_attr("to", jid),
                Wake::Start,
            );
        }
        self.roster.pending_in.retain(|(j, _)| j != jid);
        let storage = self.users.storage.clone();
        let (user, host, contact, keep) = (
            self.username().to_owned(),
            self.host().to_owned(),
            jid.to_owned(),
            self.users.config.max_roster_tombstones,
        );
        ctx.wait(
            wrap_future::<_, Self>(async move {
                let _ = storage.pending_in_remove(&user, &host, &contact).await;
                let v = storage.roster_remove(&user, &host, &contact).await;
                if v.as_ref().is_ok_and(Option::is_some) {
                    // Removal records would otherwise grow with every contact ever
                    // removed; an old client version then gets the whole roster (§2.6).
                    if let Err(e) = storage.roster_prune_tombstones(&user, &host, keep).await {
                        warn!(user = %user, error = %e, "pruning roster removal records failed");
                    }
                }
                (v, contact)
            })
            .map(|(res, contact), act, _| match res {
                Ok(Some(version)) => {
                    act.roster.version = version;
                    act.push_all(version, &removed_element(&contact));
                }
                Ok(None) => {}
                Err(e) => warn!(user = %act.jid, error = %e, "removing a roster item failed"),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn query(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    fn condition(xml: &str) -> StanzaCondition {
        match parse_set(&query(xml), TEST_LIMITS) {
            Err(e) => e.condition,
            Ok(_) => panic!("accepted: {xml}"),
        }
    }

    #[test]
    fn rfc6121_2_3_3_two_items_are_a_bad_request() {
        assert_eq!(
            condition("<query xmlns='jabber:iq:roster'><item jid='a@x'/><item jid='b@x'/></query>"),
            StanzaCondition::BadRequest
        );
        assert_eq!(
            condition("<query xmlns='jabber:iq:roster'/>"),
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn rfc6121_2_3_3_duplicate_group_is_a_bad_request_and_empty_group_not_acceptable() {
        assert_eq!(
            condition(
                "<query xmlns='jabber:iq:roster'><item jid='a@x'><group>G</group><group>G</group></item></query>"
            ),
            StanzaCondition::BadRequest
        );
        assert_eq!(
            condition("<query xmlns='jabber:iq:roster'><item jid='a@x'><group/></item></query>"),
            StanzaCondition::NotAcceptable
        );
    }

    #[test]
    fn rfc6121_2_3_3_item_without_valid_jid_is_a_bad_request() {
        assert_eq!(
            condition("<query xmlns='jabber:iq:roster'><item name='x'/></query>"),
            StanzaCondition::BadRequest
        );
        assert_eq!(
            condition("<query xmlns='jabber:iq:roster'><item jid='@@'/></query>"),
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn rfc6121_2_5_remove_is_recognized_and_jids_are_normalized() {
        match parse_set(&query(
            "<query xmlns='jabber:iq:roster'><item jid='Bob@Example.org' subscription='remove'/></query>",
        ), TEST_LIMITS) {
            Ok(SetRequest::Remove { jid }) => assert_eq!(jid, "bob@example.org"),
            _ => panic!("not a remove"),
        }
        match parse_set(&query(
            "<query xmlns='jabber:iq:roster'><item jid='a@x' name='A' subscription='both'><group>G</group></item></query>",
        ), TEST_LIMITS) {
            Ok(SetRequest::Update { jid, name, groups }) => {
                assert_eq!((jid.as_str(), name.as_deref()), ("a@x", Some("A")));
                assert_eq!(groups, vec!["G".to_owned()]);
            }
            _ => panic!("not an update"),
        }
    }

    #[test]
    fn rfc6121_2_3_3_too_many_groups_or_too_long_a_name_is_not_acceptable() {
        let limits = ItemLimits {
            name_bytes: 8,
            groups: 2,
        };
        let cond = |xml: &str| match parse_set(&query(xml), limits) {
            Err(e) => Some(e.condition),
            Ok(_) => None,
        };
        let two = "<query xmlns='jabber:iq:roster'><item jid='a@x'><group>A</group><group>B</group></item></query>";
        assert_eq!(cond(two), None);
        let three = "<query xmlns='jabber:iq:roster'><item jid='a@x'><group>A</group><group>B</group><group>C</group></item></query>";
        assert_eq!(cond(three), Some(StanzaCondition::NotAcceptable));
        let long_group = "<query xmlns='jabber:iq:roster'><item jid='a@x'><group>123456789</group></item></query>";
        assert_eq!(cond(long_group), Some(StanzaCondition::NotAcceptable));
        let long_name =
            "<query xmlns='jabber:iq:roster'><item jid='a@x' name='123456789'/></query>";
        assert_eq!(cond(long_name), Some(StanzaCondition::NotAcceptable));
    }

    #[test]
    fn rfc6121_2_1_2_item_xml() {
        let el = item_element(&RosterItem {
            jid: "romeo@example.net".into(),
            name: Some("Romeo".into()),
            subscription: Subscription::None,
            ask: true,
            groups: vec!["Friends".into()],
        });
        assert_eq!(el.attr("ask"), Some("subscribe"));
        assert_eq!(el.attr("subscription"), Some("none"));
        assert_eq!(el.get_child("group", ns::ROSTER).unwrap().text(), "Friends");
    }
}
