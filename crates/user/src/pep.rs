//! Personal eventing (XEP-0163): the account's pubsub service, run by its user actor, which
//! is the one place (cluster-wide) that sees the account's roster, its resources and its
//! contacts' presence. Requests come from the owner's sessions (`FromClient`) and from
//! others (`Inbound`, to the bare JID); items and node configurations live in storage, so
//! the service survives the actor and any node.
//!
//! Notifications go to the owner's available resources and to contacts' available
//! resources that the node's access model allows and whose entity capabilities (XEP-0115)
//! ask for the node (`node+notify`). A contact's capabilities come with its presence; an
//! unknown hash is asked once with disco#info, checked against the hash (§5.4) and cached
//! in storage for every node. When a contact or an own resource comes online wanting a
//! node, it gets the node's last item (XEP-0163 §4.3.3 "last published item").
//!
//! Bounds (all `[pep]`): `max_nodes` per account, `max_items` per node, contacts' resources
//! tracked per actor (`max_tracked_resources`), capability hashes cached per actor
//! (`max_caps_cached`) and disco queries in flight (`max_caps_queries`).

use std::collections::HashMap;
use std::sync::Arc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::Jid;
use parley_proto::pubsub::{self, AccessModel, Item, NodeConfig, Request, SendLast};
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_proto::{caps, ns};
use parley_router::Wake;
use parley_storage::{PepItemRow, Subscription};
use parley_xml::{Element, Limits};
use tracing::warn;

use crate::actor::UserActor;

/// The iq id prefix of capability queries, so that their answers are recognised.
const CAPS_QUERY: &str = "pep-caps";

/// `[pep]`: what one account's PEP service may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PepLimits {
    /// Nodes per account; past it a new node is `resource-constraint`.
    pub max_nodes: usize,
    /// The largest `pubsub#max_items` a node may ask for (`max` means this).
    pub max_items: u64,
    /// Contacts' available resources remembered per account (`[pep] max_tracked_resources`).
    pub max_tracked: usize,
    /// Capability hashes remembered per actor; storage has them all (`[pep] max_caps_cached`).
    pub max_caps: usize,
    /// Capability queries in flight per actor (`[pep] max_caps_queries`).
    pub max_pending: usize,
}

impl Default for PepLimits {
    fn default() -> Self {
        PepLimits {
            max_nodes: 64,
            max_items: 256,
            max_tracked: 4096,
            max_caps: 512,
            max_pending: 64,
        }
    }
}

/// What the actor knows for PEP while it runs.
#[derive(Debug, Default)]
pub(crate) struct PepState {
    /// Contacts' available full JIDs and the capability hash each announced.
    contacts: HashMap<String, Option<String>>,
    /// Verified hashes → the nodes they want notifications for.
    caps: HashMap<String, Arc<Vec<String>>>,
    /// Capability queries sent: iq id → (hash, whom it was asked of).
    pending: HashMap<String, (String, String)>,
    /// Resources waiting for a hash being asked (one query per hash at a time).
    waiting: HashMap<String, Vec<String>>,
    /// What resources whose announced hash did not match their disco#info want (XEP-0115
    /// §5.4 step 8: usable for that JID only, never cached by hash).
    by_jid: HashMap<String, Arc<Vec<String>>>,
}

/// Who asks.
#[derive(Debug, Clone)]
pub(crate) enum Requester {
    /// One of the owner's resources.
    Owner,
    /// Anyone else (a bare or full JID).
    Other(String),
}

/// Whether `iq` is a pubsub request.
pub(crate) fn is_pubsub(iq: &Element) -> bool {
    iq.first_child()
        .is_some_and(|c| c.is("pubsub", pubsub::NS) || c.is("pubsub", pubsub::NS_OWNER))
}

/// Whether `iq` is a `get` or `set` (the rest are answers).
pub(crate) fn is_request(iq: &Element) -> bool {
    matches!(iq.attr("type"), Some("get" | "set"))
}

/// Whether `iq` asks for disco#info (with no node).
pub(crate) fn is_disco_info_get(iq: &Element) -> bool {
    iq.attr("type") == Some("get")
        && iq
            .get_child("query", ns::DISCO_INFO)
            .is_some_and(|q| q.attr("node").is_none())
}

/// XEP-0163 §6.1 and XEP-0030: what an account's bare JID is, as the server answers for
/// it: a registered account that is a PEP service.
pub fn account_info() -> Element {
    let identity = |category: &str, kind: &str| {
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", category)
            .with_attr("type", kind)
    };
    let mut q = Element::new("query", ns::DISCO_INFO)
        .with_child(identity("account", "registered"))
        .with_child(identity("pubsub", "pep"));
    let conversions = [
        parley_proto::bookmarks::CONVERSION_FEATURE,
        parley_proto::avatar::CONVERSION_FEATURE,
    ];
    for f in [ns::DISCO_INFO]
        .iter()
        .chain(&conversions)
        .chain(pubsub::FEATURES)
    {
        q.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

fn new_item_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

impl UserActor {
    /// Whether `who` (a bare JID) may read `config`'s node (XEP-0060 §4.5).
    fn pep_allows(&self, config: &NodeConfig, who: &str) -> bool {
        if who == self.jid.as_str() {
            return true;
        }
        let item = self.roster.items.get(who);
        match config.access {
            AccessModel::Open => true,
            AccessModel::Presence => item
                .is_some_and(|i| matches!(i.subscription, Subscription::From | Subscription::Both)),
            AccessModel::Roster => {
                item.is_some_and(|i| i.groups.iter().any(|g| config.roster_groups.contains(g)))
            }
            AccessModel::Whitelist => false,
        }
    }

    /// A pubsub iq to this account.
    pub(crate) fn pep_iq(&mut self, iq: Element, from: Requester, ctx: &mut Context<Self>) {
        let request = match pubsub::parse(&iq) {
            Ok(r) => r,
            Err(e) => return self.bounce(&iq, e.to_stanza_error()),
        };
        let owner = matches!(from, Requester::Owner);
        if request.owner_only() && !owner {
            return self.bounce(&iq, StanzaError::new(StanzaCondition::Forbidden));
        }
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let limits = self.users.config.pep;
        let requester_bare = match &from {
            Requester::Owner => self.jid.to_string(),
            Requester::Other(j) => bare_of(j).to_owned(),
        };
        let answer = async move {
            let current = match &request {
                Request::Publish { node, .. }
                | Request::Retract { node, .. }
                | Request::Items { node, .. }
                | Request::Create { node, .. }
                | Request::ConfigureGet { node }
                | Request::ConfigureSet { node, .. }
                | Request::Delete { node }
                | Request::Purge { node } => storage.pep_node(&user, &host, node).await?,
            };
            let outcome = match request {
                Request::Items {
                    node,
                    max_items,
                    ids,
                } => {
                    let Some(config) = current else {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    };
                    let rows = storage
                        .pep_items(&user, &host, &node, max_items, &ids)
                        .await?;
                    Outcome::Items { node, config, rows }
                }
                Request::Publish {
                    node,
                    id,
                    payload,
                    options,
                } => {
                    let config = match &current {
                        Some(c)
                            if !options.is_empty() && !c.satisfies(&options, limits.max_items) =>
                        {
                            // XEP-0223 §4.4 / XEP-0060 §7.1.5: the node exists otherwise.
                            return Ok(Err(pubsub::PubsubError::new(
                                StanzaCondition::Conflict,
                                Some("precondition-not-met"),
                            )
                            .to_stanza_error()));
                        }
                        Some(c) => c.clone(),
                        None => {
                            let mut c = NodeConfig::pep_default();
                            if let Err(e) = c.apply(&options, limits.max_items) {
                                return Ok(Err(e.to_stanza_error()));
                            }
                            c
                        }
                    };
                    let row = PepItemRow {
                        id: id.unwrap_or_else(new_item_id),
                        stamp_ms: parley_proto::clock::now_ms(),
                        payload: payload.to_string(),
                    };
                    if !storage
                        .pep_publish(&user, &host, &node, &config, &row, limits.max_nodes)
                        .await?
                    {
                        return Ok(Err(too_many_nodes()));
                    }
                    Outcome::Published {
                        node,
                        config,
                        item: Item {
                            id: row.id,
                            payload,
                        },
                    }
                }
                Request::Retract { node, ids, .. } => {
                    let Some(config) = current else {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    };
                    let gone = storage.pep_retract(&user, &host, &node, &ids).await?;
                    if gone.is_empty() {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    }
                    Outcome::Event {
                        node: node.clone(),
                        config: Some(config),
                        event: pubsub::event_retract(&node, &gone),
                    }
                }
                Request::Create { node, config } => {
                    if current.is_some() {
                        return Ok(Err(StanzaError::new(StanzaCondition::Conflict)));
                    }
                    let mut c = NodeConfig::pep_default();
                    if let Err(e) = c.apply(&config, limits.max_items) {
                        return Ok(Err(e.to_stanza_error()));
                    }
                    if !storage
                        .pep_configure(&user, &host, &node, &c, limits.max_nodes)
                        .await?
                    {
                        return Ok(Err(too_many_nodes()));
                    }
                    Outcome::Configured
                }
                Request::ConfigureGet { node } => match current {
                    Some(c) => Outcome::Payload(pubsub::configure_result(&node, &c)),
                    None => return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound))),
                },
                Request::ConfigureSet { node, config } => {
                    let Some(mut c) = current else {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    };
                    if let Err(e) = c.apply(&config, limits.max_items) {
                        return Ok(Err(e.to_stanza_error()));
                    }
                    storage
                        .pep_configure(&user, &host, &node, &c, limits.max_nodes)
                        .await?;
                    Outcome::Configured
                }
                Request::Delete { node } => {
                    if current.is_none() || !storage.pep_delete(&user, &host, &node).await? {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    }
                    Outcome::Deleted {
                        event: pubsub::event_delete(&node),
                        node,
                        config: current,
                    }
                }
                Request::Purge { node } => {
                    if current.is_none() {
                        return Ok(Err(StanzaError::new(StanzaCondition::ItemNotFound)));
                    }
                    storage.pep_purge(&user, &host, &node).await?;
                    Outcome::Event {
                        event: pubsub::event_purge(&node),
                        node,
                        config: current,
                    }
                }
            };
            Ok::<_, parley_storage::StorageError>(Ok(outcome))
        };
        // One request at a time: a read after a publish sees it.
        ctx.wait(wrap_future::<_, Self>(answer).map(move |res, act, ctx| {
            let outcome = match res {
                Ok(Ok(o)) => o,
                Ok(Err(err)) => return act.bounce(&iq, err),
                Err(e) => {
                    warn!(user = %act.jid, error = %e, "a PEP request failed in storage");
                    return act.bounce(&iq, StanzaError::new(StanzaCondition::InternalServerError));
                }
            };
            match outcome {
                Outcome::Items { node, config, rows } => {
                    if !act.pep_allows(&config, &requester_bare) {
                        // XEP-0060 §6.5.9-§6.5.11: refused by the access model.
                        let (condition, app) = match config.access {
                            AccessModel::Presence => (
                                StanzaCondition::NotAuthorized,
                                "presence-subscription-required",
                            ),
                            AccessModel::Roster => {
                                (StanzaCondition::NotAuthorized, "not-in-roster-group")
                            }
                            AccessModel::Whitelist | AccessModel::Open => {
                                (StanzaCondition::NotAllowed, "closed-node")
                            }
                        };
                        let err = pubsub::PubsubError::new(condition, Some(app));
                        return act.bounce(&iq, err.to_stanza_error());
                    }
                    let items: Vec<Item> = rows.into_iter().filter_map(item_of).collect();
                    act.pep_reply(&iq, Some(pubsub::items_result(&node, &items)));
                }
                Outcome::Published { node, config, item } => {
                    act.pep_reply(&iq, Some(pubsub::publish_result(&node, &item.id)));
                    if node == parley_proto::avatar::METADATA_NODE {
                        act.avatar_published(&item.payload, ctx);
                    }
                    act.pep_notify(&node, &config, pubsub::event_items(&node, &[item]));
                }
                Outcome::Event {
                    node,
                    config,
                    event,
                } => {
                    act.pep_reply(&iq, None);
                    if let Some(config) = config {
                        act.pep_notify(&node, &config, event);
                    }
                }
                Outcome::Deleted {
                    node,
                    config,
                    event,
                } => {
                    act.pep_reply(&iq, None);
                    if let Some(config) = config {
                        act.pep_notify(&node, &config, event);
                    }
                }
                Outcome::Configured => {
                    act.pep_reply(&iq, None);
                }
                Outcome::Payload(el) => act.pep_reply(&iq, Some(el)),
            }
        }));
    }

    /// Another entity's disco#info to this account.
    pub(crate) fn account_disco_info(&self, iq: &Element) {
        if !self.exists {
            return self.bounce(iq, StanzaError::new(StanzaCondition::ServiceUnavailable));
        }
        self.pep_reply(iq, Some(account_info()));
    }

    fn pep_reply(&self, iq: &Element, payload: Option<Element>) {
        let mut r = iq_result(iq);
        if let Some(p) = payload {
            r.push_child(p);
        }
        self.users.router().send(r, Wake::IfRunning);
    }

    /// The nodes `full` (announcing `ver`) wants notifications for, when known.
    fn interest(&self, full: &str, ver: Option<&String>) -> Option<Arc<Vec<String>>> {
        self.pep
            .by_jid
            .get(full)
            .or_else(|| ver.and_then(|v| self.pep.caps.get(v)))
            .cloned()
    }

    fn wants(&self, full: &str, ver: Option<&String>, node: &str) -> bool {
        self.interest(full, ver)
            .is_some_and(|nodes| nodes.iter().any(|n| n == node))
    }

    /// Sends `event` about `node` to everyone the access model allows who wants it.
    fn pep_notify(&self, node: &str, config: &NodeConfig, event: Element) {
        let from = self.jid.to_string();
        let headline = |to: &str| {
            Element::new("message", ns::CLIENT)
                .with_attr("from", from.clone())
                .with_attr("to", to)
                .with_attr("type", "headline")
                .with_child(event.clone())
        };
        for r in self
            .resources
            .iter()
            .filter(|r| r.available && r.reachable())
        {
            let ver = r
                .presence
                .as_ref()
                .and_then(pubsub::caps_of)
                .map(|(_, v, _)| v);
            if self.wants(r.full.as_str(), ver.as_ref(), node) {
                self.deliver(r, headline(r.full.as_str()));
            }
        }
        for (full, ver) in &self.pep.contacts {
            if self.wants(full, ver.as_ref(), node) && self.pep_allows(config, bare_of(full)) {
                self.route_out(headline(full), Wake::IfRunning);
            }
        }
    }

    /// An available or unavailable presence from someone else reached this account: their
    /// resource's interest, and (newly online) the last items it wants.
    pub(crate) fn pep_contact_presence(&mut self, presence: &Element, ctx: &mut Context<Self>) {
        let Some(from) = presence.attr("from").map(str::to_owned) else {
            return;
        };
        if Jid::new(&from).map_or(true, |j| j.resource().is_none())
            || bare_of(&from) == self.jid.as_str()
        {
            return;
        }
        if presence.attr("type") == Some("unavailable") {
            self.pep.contacts.remove(&from);
            self.pep.by_jid.remove(&from);
            return;
        }
        let ver = pubsub::caps_of(presence).filter(|(_, _, hash)| hash == "sha-1");
        let known = self.pep.contacts.get(&from).cloned();
        if !self.pep.contacts.contains_key(&from)
            && self.pep.contacts.len() >= self.users.config.pep.max_tracked
        {
            return;
        }
        let new_ver = ver.as_ref().map(|(_, v, _)| v.clone());
        self.pep.contacts.insert(from.clone(), new_ver.clone());
        if known.as_ref() == Some(&new_ver) {
            return;
        }
        // A new hash: what was learnt for the old one does not hold.
        self.pep.by_jid.remove(&from);
        if let Some((caps_node, ver, _)) = ver {
            self.pep_resolve(from, caps_node, ver, ctx);
        }
    }

    /// One of the owner's resources sent available presence: the last items it wants.
    pub(crate) fn pep_own_presence(&mut self, resource: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.resource(resource) else {
            return;
        };
        let Some((caps_node, ver, hash)) = r.presence.as_ref().and_then(pubsub::caps_of) else {
            return;
        };
        if hash == "sha-1" {
            let full = r.full.to_string();
            self.pep_resolve(full, caps_node, ver, ctx);
        }
    }

    /// Finds what `ver` wants (memory, then storage, then a disco#info to `full`), then
    /// sends `full` the last items of those nodes.
    fn pep_resolve(
        &mut self,
        full: String,
        caps_node: String,
        ver: String,
        ctx: &mut Context<Self>,
    ) {
        if self.pep.caps.contains_key(&ver) {
            return self.pep_send_last(full, ver, ctx);
        }
        let storage = self.users.storage.clone();
        let lookup = {
            let ver = ver.clone();
            async move { storage.caps_get(&ver).await }
        };
        ctx.spawn(
            wrap_future::<_, Self>(lookup).map(move |res, act, ctx| match res {
                Ok(Some(features)) => {
                    act.pep_cache_caps(ver.clone(), &features);
                    act.pep_send_last(full, ver, ctx);
                }
                Ok(None) => {
                    if let Some(waiting) = act.pep.waiting.get_mut(&ver) {
                        // Already asked of another resource with the same hash.
                        if waiting.len() < act.users.config.pep.max_tracked
                            && !waiting.contains(&full)
                        {
                            waiting.push(full);
                        }
                        return;
                    }
                    if act.pep.pending.len() >= act.users.config.pep.max_pending {
                        return;
                    }
                    act.pep.waiting.insert(ver.clone(), Vec::new());
                    let id = act.fresh_id(CAPS_QUERY);
                    act.pep
                        .pending
                        .insert(id.clone(), (ver.clone(), full.clone()));
                    let query = Element::new("iq", ns::CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id)
                        .with_attr("from", act.jid.to_string())
                        .with_attr("to", full)
                        .with_child(
                            Element::new("query", ns::DISCO_INFO)
                                .with_attr("node", format!("{caps_node}#{ver}")),
                        );
                    act.route_out(query, Wake::IfRunning);
                }
                Err(e) => warn!(user = %act.jid, error = %e, "reading the caps cache failed"),
            }),
        );
    }

    fn pep_cache_caps(&mut self, ver: String, features: &[String]) {
        if self.pep.caps.len() >= self.users.config.pep.max_caps {
            self.pep.caps.clear();
        }
        let nodes: Vec<String> = features
            .iter()
            .filter_map(|f| f.strip_suffix("+notify").map(str::to_owned))
            .collect();
        self.pep.caps.insert(ver, Arc::new(nodes));
    }

    /// The answer to one of our capability queries: checked against its hash (XEP-0115
    /// §5.4), cached for every node. True when it was ours.
    pub(crate) fn pep_caps_answer(&mut self, iq: &Element, ctx: &mut Context<Self>) -> bool {
        let Some(id) = iq.attr("id").filter(|i| i.starts_with(CAPS_QUERY)) else {
            return false;
        };
        let Some((ver, full)) = self.pep.pending.remove(id) else {
            return false;
        };
        let waiting = self.pep.waiting.remove(&ver).unwrap_or_default();
        let Some(info) = iq
            .get_child("query", ns::DISCO_INFO)
            .filter(|_| iq.attr("from") == Some(full.as_str()))
        else {
            return true;
        };
        if caps::ver(info) != ver {
            // §5.4 steps 7-8: a hash that does not verify is not cached, but what the
            // resource answered holds for that resource (clients that announce a stale
            // hash exist). The others that announced the hash are asked in turn.
            if self.pep.by_jid.len() < self.users.config.pep.max_tracked {
                let nodes = pubsub::notify_nodes(info);
                self.pep.by_jid.insert(full.clone(), Arc::new(nodes));
                self.pep_send_last(full, ver.clone(), ctx);
            }
            for other in waiting {
                let caps_node = iq
                    .get_child("query", ns::DISCO_INFO)
                    .and_then(|q| q.attr("node"))
                    .and_then(|n| n.rsplit_once('#'))
                    .map(|(node, _)| node.to_owned())
                    .unwrap_or_default();
                self.pep_resolve(other, caps_node, ver.clone(), ctx);
            }
            return true;
        }
        let features: Vec<String> = info
            .children()
            .filter(|c| c.is("feature", ns::DISCO_INFO))
            .filter_map(|f| f.attr("var").map(str::to_owned))
            .collect();
        let storage = self.users.storage.clone();
        {
            let (ver, features) = (ver.clone(), features.clone());
            actix::spawn(async move {
                let _ = storage.caps_put(&ver, &features).await;
            });
        }
        self.pep_cache_caps(ver.clone(), &features);
        for who in std::iter::once(full).chain(waiting) {
            self.pep_send_last(who, ver.clone(), ctx);
        }
        true
    }

    /// XEP-0163 §4.3.3: the last item of each node `full` wants and may read.
    fn pep_send_last(&mut self, full: String, ver: String, ctx: &mut Context<Self>) {
        let Some(wanted) = self.interest(&full, Some(&ver)) else {
            return;
        };
        if wanted.is_empty() {
            return;
        }
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let work = async move {
            // Read each time: storage is the one truth for every node of a cluster, and a
            // copy read here could be older than a publish handled meanwhile.
            let nodes: HashMap<String, NodeConfig> =
                storage.pep_nodes(&user, &host).await?.into_iter().collect();
            let mut last = Vec::new();
            for node in wanted.iter() {
                let Some(config) = nodes.get(node) else {
                    continue;
                };
                if config.send_last == SendLast::Never {
                    continue;
                }
                if let Some(row) = storage
                    .pep_items(&user, &host, node, Some(1), &[])
                    .await?
                    .pop()
                {
                    last.push((node.clone(), config.clone(), row));
                }
            }
            Ok::<_, parley_storage::StorageError>(last)
        };
        ctx.spawn(wrap_future::<_, Self>(work).map(move |res, act, _| {
            let last = match res {
                Ok(r) => r,
                Err(e) => return warn!(user = %act.jid, error = %e, "reading PEP items failed"),
            };
            let own = bare_of(&full) == act.jid.as_str();
            for (node, config, row) in last {
                if !own && !act.pep_allows(&config, bare_of(&full)) {
                    continue;
                }
                let stamp = row.stamp_ms;
                let Some(item) = item_of(row) else { continue };
                let message = Element::new("message", ns::CLIENT)
                    .with_attr("from", act.jid.to_string())
                    .with_attr("to", full.clone())
                    .with_attr("type", "headline")
                    .with_child(pubsub::event_items(&node, &[item]))
                    .with_child(
                        Element::new("delay", ns::DELAY)
                            .with_attr("from", act.jid.to_string())
                            .with_attr("stamp", parley_proto::datetime::xep0082(stamp)),
                    );
                act.route_out(message, Wake::IfRunning);
            }
        }));
    }
}

fn too_many_nodes() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::ResourceConstraint,
        "this account has as many PEP nodes as it may",
    )
}

fn item_of(row: PepItemRow) -> Option<Item> {
    let payload = Element::parse(row.payload.as_bytes(), &Limits::trusted_copies()).ok()?;
    Some(Item {
        id: row.id,
        payload,
    })
}

/// What a request did, for the actor to answer and notify.
enum Outcome {
    Items {
        node: String,
        config: NodeConfig,
        rows: Vec<PepItemRow>,
    },
    Published {
        node: String,
        config: NodeConfig,
        item: Item,
    },
    Event {
        node: String,
        config: Option<NodeConfig>,
        event: Element,
    },
    Deleted {
        node: String,
        config: Option<NodeConfig>,
        event: Element,
    },
    Configured,
    Payload(Element),
}
