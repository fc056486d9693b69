//! Publish-subscribe (XEP-0060) as personal eventing (XEP-0163) uses it: every account is a
//! pubsub service at its bare JID with nodes created on first publish. Pure: reading the
//! requests an account's service answers, node configuration with publish-options
//! (XEP-0223) as a typed value, and the shapes of results and event notifications. The user
//! actor runs them against storage.

use parley_xml::Element;

use crate::stanza_error::{StanzaCondition, StanzaError};

/// Requests.
pub const NS: &str = "http://jabber.org/protocol/pubsub";
/// Notifications.
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// Owner requests (delete, purge, configure).
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// Application-specific error conditions.
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// The FORM_TYPE of publish-options.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// The FORM_TYPE of node configuration.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
const DATA: &str = "jabber:x:data";

/// The disco#info features of an account's PEP service (XEP-0163 §6, XEP-0060 §10).
pub const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#config-node-max",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-items",
];

/// Who may read a node's items and get its notifications (XEP-0060 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessModel {
    /// Contacts subscribed to the owner's presence (`from` or `both`): PEP's default.
    Presence,
    /// Anyone.
    Open,
    /// Contacts in the allowed roster groups.
    Roster,
    /// Only the owner (no other affiliations are kept).
    Whitelist,
}

impl AccessModel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Presence => "presence",
            AccessModel::Open => "open",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
        }
    }

    pub fn parse(s: &str) -> Option<AccessModel> {
        Some(match s {
            "presence" => AccessModel::Presence,
            "open" => AccessModel::Open,
            "roster" => AccessModel::Roster,
            "whitelist" => AccessModel::Whitelist,
            _ => return None,
        })
    }
}

/// When the last item goes to a contact (XEP-0060 §12.15, `pubsub#send_last_published_item`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLast {
    Never,
    /// When it subscribes, and (PEP) when it comes online with `+notify`.
    OnSubAndPresence,
}

impl SendLast {
    pub fn as_str(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    pub fn parse(s: &str) -> Option<SendLast> {
        Some(match s {
            "never" => SendLast::Never,
            // `on_sub` has no subscription event in PEP but presence: the same here.
            "on_sub_and_presence" | "on_sub" => SendLast::OnSubAndPresence,
            _ => return None,
        })
    }
}

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub access: AccessModel,
    /// Keep items (else only the last, for the last-published rule).
    pub persist_items: bool,
    /// Items kept; the oldest go first.
    pub max_items: u64,
    pub send_last: SendLast,
    /// For the `roster` access model.
    pub roster_groups: Vec<String>,
}

impl NodeConfig {
    /// A new PEP node's configuration (XEP-0163 §4.3): presence access, one item kept.
    pub fn pep_default() -> NodeConfig {
        NodeConfig {
            access: AccessModel::Presence,
            persist_items: true,
            max_items: 1,
            send_last: SendLast::OnSubAndPresence,
            roster_groups: Vec::new(),
        }
    }

    /// Applies the fields of a configuration or publish-options form on top of `self`;
    /// `max_items_cap` bounds `pubsub#max_items` (`max` asks for the cap).
    pub fn apply(
        &mut self,
        fields: &[(String, Vec<String>)],
        max_items_cap: u64,
    ) -> Result<(), PubsubError> {
        for (var, values) in fields {
            let one = values.first().map(String::as_str).unwrap_or("");
            match var.as_str() {
                "FORM_TYPE" => {}
                "pubsub#access_model" => {
                    self.access = AccessModel::parse(one)
                        .ok_or_else(|| PubsubError::bad_config(format!("access model '{one}'")))?;
                }
                "pubsub#persist_items" => self.persist_items = boolean(one)?,
                "pubsub#max_items" => {
                    self.max_items = if one == "max" {
                        max_items_cap
                    } else {
                        let n: u64 = one
                            .parse()
                            .map_err(|_| PubsubError::bad_config(format!("max_items '{one}'")))?;
                        if n == 0 || n > max_items_cap {
                            return Err(PubsubError::bad_config(format!(
                                "max_items must be 1 to {max_items_cap}"
                            )));
                        }
                        n
                    };
                }
                "pubsub#send_last_published_item" => {
                    self.send_last = SendLast::parse(one).ok_or_else(|| {
                        PubsubError::bad_config(format!("send_last_published_item '{one}'"))
                    })?;
                }
                "pubsub#roster_groups_allowed" => self.roster_groups = values.clone(),
                // Accepted and not kept: they change nothing a PEP service does.
                "pubsub#deliver_notifications"
                | "pubsub#deliver_payloads"
                | "pubsub#notify_retract"
                | "pubsub#notify_delete"
                | "pubsub#title"
                | "pubsub#type"
                | "pubsub#notify_config"
                | "pubsub#notification_type"
                | "pubsub#itemreply"
                | "pubsub#publish_model"
                | "pubsub#purge_offline"
                | "pubsub#presence_based_delivery"
                | "pubsub#max_payload_size" => {}
                other => {
                    return Err(PubsubError::bad_config(format!(
                        "unsupported option '{other}'"
                    )));
                }
            }
        }
        Ok(())
    }

    /// XEP-0223 §4.4: whether an existing node satisfies a publish's preconditions (the
    /// fields given, with `max` read as `max_items_cap`).
    pub fn satisfies(&self, fields: &[(String, Vec<String>)], max_items_cap: u64) -> bool {
        let mut wanted = self.clone();
        wanted.apply(fields, max_items_cap).is_ok() && wanted == *self
    }

    /// The configuration as a `form` (XEP-0060 §8.2).
    pub fn to_form(&self) -> Element {
        let field = |var: &str, value: &str| {
            Element::new("field", DATA)
                .with_attr("var", var)
                .with_child(Element::new("value", DATA).with_text(value))
        };
        let mut groups =
            Element::new("field", DATA).with_attr("var", "pubsub#roster_groups_allowed");
        for g in &self.roster_groups {
            groups.push_child(Element::new("value", DATA).with_text(g.clone()));
        }
        Element::new("x", DATA)
            .with_attr("type", "form")
            .with_child(field("FORM_TYPE", NODE_CONFIG).with_attr("type", "hidden"))
            .with_child(field("pubsub#access_model", self.access.as_str()))
            .with_child(field(
                "pubsub#persist_items",
                if self.persist_items { "true" } else { "false" },
            ))
            .with_child(field("pubsub#max_items", &self.max_items.to_string()))
            .with_child(field(
                "pubsub#send_last_published_item",
                self.send_last.as_str(),
            ))
            .with_child(groups)
    }
}

fn boolean(s: &str) -> Result<bool, PubsubError> {
    match s {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(PubsubError::bad_config(format!(
            "'{other}' is not a boolean"
        ))),
    }
}

/// A refusal: a stanza condition with pubsub's application condition (XEP-0060 §7-§8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubError {
    pub condition: StanzaCondition,
    /// In `pubsub#errors`, e.g. `precondition-not-met`.
    pub app: Option<&'static str>,
    pub text: Option<String>,
}

impl PubsubError {
    pub fn new(condition: StanzaCondition, app: Option<&'static str>) -> PubsubError {
        PubsubError {
            condition,
            app,
            text: None,
        }
    }

    fn bad_request(text: impl Into<String>) -> PubsubError {
        PubsubError {
            condition: StanzaCondition::BadRequest,
            app: None,
            text: Some(text.into()),
        }
    }

    fn bad_config(text: impl Into<String>) -> PubsubError {
        PubsubError {
            condition: StanzaCondition::NotAcceptable,
            app: None,
            text: Some(text.into()),
        }
    }

    /// As the stanza error it is sent as.
    pub fn to_stanza_error(&self) -> StanzaError {
        let mut e = match &self.text {
            Some(t) => StanzaError::with_text(self.condition, t.clone()),
            None => StanzaError::new(self.condition),
        };
        if let Some(app) = self.app {
            e = e.with_app(Element::new(app, NS_ERRORS));
        }
        e
    }
}

/// A form's fields as (var, values).
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

/// What one iq asks of an account's PEP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// XEP-0060 §7.1 (auto-create, §7.1.4): one item; publish-options fields (§7.1.5).
    Publish {
        node: String,
        id: Option<String>,
        payload: Element,
        options: Vec<(String, Vec<String>)>,
    },
    /// §7.2.
    Retract {
        node: String,
        ids: Vec<String>,
        notify: bool,
    },
    /// §6.5: the newest `max_items`, or the items named.
    Items {
        node: String,
        max_items: Option<usize>,
        ids: Vec<String>,
    },
    /// §8.1 (explicit creation with an optional configuration).
    Create {
        node: String,
        config: Vec<(String, Vec<String>)>,
    },
    /// §8.2.
    ConfigureGet { node: String },
    ConfigureSet {
        node: String,
        config: Vec<(String, Vec<String>)>,
    },
    /// §8.4.
    Delete { node: String },
    /// §8.5.
    Purge { node: String },
}

impl Request {
    /// Only the owner may ask this.
    pub fn owner_only(&self) -> bool {
        !matches!(self, Request::Items { .. })
    }
}

fn node_of(el: &Element) -> Result<String, PubsubError> {
    match el.attr("node") {
        Some(n) if !n.is_empty() => Ok(n.to_owned()),
        // XEP-0060 §7.1.3.3 and friends: a PEP request always names its node.
        _ => Err(PubsubError::new(
            StanzaCondition::BadRequest,
            Some("nodeid-required"),
        )),
    }
}

/// Reads the request of `iq` (a `get` or `set` whose payload is in `pubsub` or
/// `pubsub#owner`); what PEP does not offer (subscriptions, affiliations, collections) is
/// `feature-not-implemented` with pubsub's `<unsupported/>`.
pub fn parse(iq: &Element) -> Result<Request, PubsubError> {
    let set = iq.attr("type") == Some("set");
    let Some(payload) = iq.first_child() else {
        return Err(PubsubError::bad_request("no payload"));
    };
    let unsupported = |feature: &str| PubsubError {
        condition: StanzaCondition::FeatureNotImplemented,
        app: Some("unsupported"),
        text: Some(format!(
            "{feature} is not supported by personal eventing here"
        )),
    };
    if payload.is("pubsub", NS_OWNER) {
        let Some(op) = payload.first_child() else {
            return Err(PubsubError::bad_request("no operation"));
        };
        return match (op.name(), set) {
            ("configure", false) => Ok(Request::ConfigureGet { node: node_of(op)? }),
            ("configure", true) => Ok(Request::ConfigureSet {
                node: node_of(op)?,
                config: op.get_child("x", DATA).map(form_fields).unwrap_or_default(),
            }),
            ("delete", true) => Ok(Request::Delete { node: node_of(op)? }),
            ("purge", true) => Ok(Request::Purge { node: node_of(op)? }),
            (name, _) => Err(unsupported(name)),
        };
    }
    if !payload.is("pubsub", NS) {
        return Err(PubsubError::bad_request("not a pubsub request"));
    }
    let mut ops = payload.children();
    let Some(op) = ops.next() else {
        return Err(PubsubError::bad_request("no operation"));
    };
    match (op.name(), set) {
        ("publish", true) => {
            let node = node_of(op)?;
            let items: Vec<&Element> = op.children().filter(|c| c.is("item", NS)).collect();
            let [item] = items.as_slice() else {
                // §7.1.3.6: exactly one item (no transient nodes in PEP).
                return Err(PubsubError::new(
                    StanzaCondition::BadRequest,
                    Some("invalid-payload"),
                ));
            };
            let payloads: Vec<&Element> = item.children().collect();
            let [payload] = payloads.as_slice() else {
                return Err(PubsubError::new(
                    StanzaCondition::BadRequest,
                    Some("invalid-payload"),
                ));
            };
            let options = ops
                .next()
                .filter(|o| o.is("publish-options", NS))
                .and_then(|o| o.get_child("x", DATA))
                .map(form_fields)
                .unwrap_or_default();
            Ok(Request::Publish {
                node,
                id: item.attr("id").filter(|i| !i.is_empty()).map(str::to_owned),
                payload: (*payload).clone(),
                options,
            })
        }
        ("retract", true) => {
            let ids: Vec<String> = op
                .children()
                .filter(|c| c.is("item", NS))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect();
            if ids.is_empty() {
                return Err(PubsubError::new(
                    StanzaCondition::BadRequest,
                    Some("item-required"),
                ));
            }
            Ok(Request::Retract {
                node: node_of(op)?,
                ids,
                notify: matches!(op.attr("notify"), Some("1" | "true")),
            })
        }
        ("items", false) => Ok(Request::Items {
            node: node_of(op)?,
            max_items: op.attr("max_items").and_then(|m| m.parse().ok()),
            ids: op
                .children()
                .filter(|c| c.is("item", NS))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect(),
        }),
        ("create", true) => Ok(Request::Create {
            node: node_of(op)?,
            config: ops
                .next()
                .filter(|c| c.is("configure", NS))
                .and_then(|c| c.get_child("x", DATA))
                .map(form_fields)
                .unwrap_or_default(),
        }),
        (name, _) => Err(unsupported(name)),
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub payload: Element,
}

fn item_el(ns: &str, item: &Item) -> Element {
    Element::new("item", ns)
        .with_attr("id", item.id.clone())
        .with_child(item.payload.clone())
}

/// §7.1.2: the answer to a publish, naming the item's id.
pub fn publish_result(node: &str, id: &str) -> Element {
    Element::new("pubsub", NS).with_child(
        Element::new("publish", NS)
            .with_attr("node", node)
            .with_child(Element::new("item", NS).with_attr("id", id)),
    )
}

/// §6.5.2: items, oldest first.
pub fn items_result(node: &str, items: &[Item]) -> Element {
    let mut el = Element::new("items", NS).with_attr("node", node);
    for i in items {
        el.push_child(item_el(NS, i));
    }
    Element::new("pubsub", NS).with_child(el)
}

/// §8.2.1: the node's configuration form.
pub fn configure_result(node: &str, config: &NodeConfig) -> Element {
    Element::new("pubsub", NS_OWNER).with_child(
        Element::new("configure", NS_OWNER)
            .with_attr("node", node)
            .with_child(config.to_form()),
    )
}

/// §7.1.2.1: an event with published items, the payload of a headline from the owner.
pub fn event_items(node: &str, items: &[Item]) -> Element {
    let mut el = Element::new("items", NS_EVENT).with_attr("node", node);
    for i in items {
        el.push_child(item_el(NS_EVENT, i));
    }
    Element::new("event", NS_EVENT).with_child(el)
}

/// §7.2.2.1: retracted items.
pub fn event_retract(node: &str, ids: &[String]) -> Element {
    let mut el = Element::new("items", NS_EVENT).with_attr("node", node);
    for id in ids {
        el.push_child(Element::new("retract", NS_EVENT).with_attr("id", id.clone()));
    }
    Element::new("event", NS_EVENT).with_child(el)
}

/// §8.4.2: a deleted node.
pub fn event_delete(node: &str) -> Element {
    Element::new("event", NS_EVENT)
        .with_child(Element::new("delete", NS_EVENT).with_attr("node", node))
}

/// §8.5.2: a purged node.
pub fn event_purge(node: &str) -> Element {
    Element::new("event", NS_EVENT)
        .with_child(Element::new("purge", NS_EVENT).with_attr("node", node))
}

/// XEP-0163 §4: the nodes a disco#info answer asks notifications for (`node+notify`).
pub fn notify_nodes(info: &Element) -> Vec<String> {
    info.children()
        .filter(|c| c.is("feature", crate::ns::DISCO_INFO))
        .filter_map(|f| f.attr("var")?.strip_suffix("+notify").map(str::to_owned))
        .collect()
}

/// XEP-0115 §4: the `(node, ver, hash)` a presence announces.
pub fn caps_of(presence: &Element) -> Option<(String, String, String)> {
    let c = presence.get_child("c", crate::caps::NS)?;
    Some((
        c.attr("node")?.to_owned(),
        c.attr("ver")?.to_owned(),
        c.attr("hash")?.to_owned(),
    ))
}

#[cfg(test)]
mod tests;
