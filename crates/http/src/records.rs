//! Sessions as the admin API shows them: records of this node's live and recently ended
//! sessions, and the cluster-wide view assembled from every node's answer.

use std::sync::Arc;
use std::time::Duration;

use parley_cluster::node::Node;
use parley_router::Router;
use serde::{Deserialize, Serialize};

use crate::AdminState;

/// One session as the API shows it: Prosody's session fields plus node, ip and times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// Full JID (`full_jid`).
    pub jid: String,
    /// `username`.
    pub username: String,
    /// `host`.
    pub host: String,
    /// `resource`.
    pub resource: String,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Session id on its node.
    pub session: String,
    /// The node holding it.
    pub node: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client address with its port (`203.0.113.7:52114`, `[2001:db8::1]:52114`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// What carries the stream: `tcp`, `tls` (TCP, encrypted), `websocket` or `bosh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// TLS in use.
    pub secure: Option<bool>,
    /// Presence priority.
    pub priority: i8,
    /// `presence`: "unavailable", "available", or the `<show/>` value.
    pub presence: String,
    /// Bound (always true for a listed session).
    pub connected: bool,
    /// Sent initial presence.
    pub available: bool,
    /// Asked for the roster.
    pub interested: bool,
    /// Lifecycle status.
    pub status: String,
    /// Times, unix milliseconds.
    pub created: Option<i64>,
    /// Last time the client sent anything.
    pub last_active: Option<i64>,
    /// Last state change.
    pub updated: Option<i64>,
    /// When it must end (max lifetime or its token's expiry), unix ms.
    #[serde(default)]
    pub expires: Option<i64>,
    /// When its connection was found lost (abandoned), unix ms.
    #[serde(default)]
    pub abandoned: Option<i64>,
    /// `created` in ISO 8601 (UTC, with milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// `last_active` in ISO 8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<String>,
    /// `updated` in ISO 8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// `expires` in ISO 8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `abandoned` in ISO 8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_at: Option<String>,
    /// Why the server ended it, as the client was told (`condition: text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the peer authenticated: a SASL mechanism (`SCRAM-SHA-1`, `PLAIN`, …),
    /// `prebind`, or a component's `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// For a component's (later a server's) stream: `in` or `out` (Prosody's `direction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The host the stream is from (Prosody's `from_host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_host: Option<String>,
    /// The host it is to (Prosody's `to_host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_host: Option<String>,
    /// Stanzas the peer sent on this session so far.
    #[serde(default)]
    pub stanzas_in: u64,
    /// Stanzas delivered to it so far.
    #[serde(default)]
    pub stanzas_out: u64,
    /// True when the holding node did not answer and this comes from the registry alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The sessions of this node, as records.
pub fn local_records(router: &Router, node: &str, user: Option<&str>) -> Vec<SessionRecord> {
    let mut out: Vec<SessionRecord> = router
        .bound_handles()
        .into_iter()
        .filter(|(jid, _)| user.is_none_or(|u| jid.to_bare().as_str() == u))
        .map(|(jid, handle)| {
            record(
                Some(&jid),
                handle.id,
                handle.meta().map(|m| &**m),
                node,
                true,
            )
        })
        .collect();
    if user.is_none() {
        // Streams between servers bind no JID: they are listed by their hosts.
        out.extend(server_streams(router, node));
    }
    out.sort_by(|a, b| a.jid.cmp(&b.jid));
    out
}

/// This node's server-to-server streams, both ways (Prosody's `s2s_unauthed` until the
/// stream proved a domain, then `s2s`), named by the host at the other end.
fn server_streams(router: &Router, node: &str) -> Vec<SessionRecord> {
    router
        .server_streams()
        .into_iter()
        .map(|(key, meta)| {
            let mut r = record(None, key, Some(&meta), node, true);
            if meta.auth().is_none() {
                r.kind = "s2s_unauthed".to_owned();
            }
            if let Some(link) = meta.link() {
                r.host = match link.direction {
                    "out" => link.to_host.clone(),
                    _ => link.from_host.clone(),
                };
            }
            r
        })
        .collect()
}

/// The sessions that ended on this node recently (bounded history per user).
pub fn ended_records(router: &Router, node: &str, user: Option<&str>) -> Vec<SessionRecord> {
    let bare = user.and_then(|u| jid::BareJid::new(u).ok());
    if user.is_some() && bare.is_none() {
        return Vec::new();
    }
    router
        .ended(bare.as_ref())
        .into_iter()
        .map(|e| record(Some(&e.jid), e.id, Some(&e.meta), node, false))
        .collect()
}

/// One session's record; `live` is false for an ended one (no longer connected or
/// available, whatever it last was).
fn record(
    jid: Option<&jid::FullJid>,
    id: parley_router::SessionId,
    meta: Option<&parley_router::SessionMeta>,
    node: &str,
    live: bool,
) -> SessionRecord {
    let (flags, show) = meta.map(|m| m.state()).unwrap_or_default();
    let available = live && flags.available;
    SessionRecord {
        username: jid
            .and_then(|j| j.node())
            .map_or("", |n| n.as_str())
            .to_owned(),
        host: jid.map_or("", |j| j.domain().as_str()).to_owned(),
        resource: jid.map_or("", |j| j.resource().as_str()).to_owned(),
        jid: jid.map(ToString::to_string).unwrap_or_default(),
        kind: meta.map_or("c2s", |m| m.kind).to_owned(),
        session: id.to_string(),
        node: node.to_owned(),
        ip: meta.and_then(|m| m.ip()).map(|ip| ip.ip().to_string()),
        address: meta.and_then(|m| m.ip()).map(|ip| ip.to_string()),
        transport: meta.map(|m| m.transport().to_owned()),
        secure: meta.map(|m| m.secure()),
        priority: flags.priority,
        presence: presence_word(available, show),
        connected: live,
        available,
        interested: flags.interested,
        status: meta.map_or("active", |m| m.status().as_str()).to_owned(),
        created: meta.map(|m| m.created_ms),
        last_active: meta.map(|m| m.last_active_ms()),
        updated: meta.map(|m| m.updated_ms()),
        expires: meta.and_then(|m| m.expires_ms()),
        abandoned: meta.and_then(|m| m.abandon_at_ms()),
        reason: meta.and_then(|m| m.reason()).map(str::to_owned),
        created_at: None,
        last_active_at: None,
        updated_at: None,
        expires_at: None,
        abandoned_at: None,
        auth: meta.and_then(|m| m.auth()).map(str::to_owned),
        direction: meta.and_then(|m| m.link()).map(|l| l.direction.to_owned()),
        from_host: meta.and_then(|m| m.link()).map(|l| l.from_host.clone()),
        to_host: meta.and_then(|m| m.link()).map(|l| l.to_host.clone()),
        stanzas_in: meta.map_or(0, |m| m.counters().0),
        stanzas_out: meta.map_or(0, |m| m.counters().1),
        partial: false,
    }
    .with_iso_times()
}

impl SessionRecord {
    /// Fills the ISO 8601 twins of the millisecond times.
    fn with_iso_times(mut self) -> SessionRecord {
        let iso = |ms: Option<i64>| ms.map(parley_proto::datetime::xep0082);
        self.created_at = iso(self.created);
        self.last_active_at = iso(self.last_active);
        self.updated_at = iso(self.updated);
        self.expires_at = iso(self.expires);
        self.abandoned_at = iso(self.abandoned);
        self
    }
}

fn presence_word(available: bool, show: Option<String>) -> String {
    match (available, show) {
        (false, _) => "unavailable".to_owned(),
        (true, Some(show)) if !show.trim().is_empty() => show.trim().to_owned(),
        (true, _) => "available".to_owned(),
    }
}

/// The connections of this node that are not bound (not authenticated yet, or between
/// authentication and bind): Prosody's `c2s_unauthed` and `component_unauthed`, with their
/// address and times; no JID yet. At most `max` of them, oldest first.
pub fn unbound_records(router: &Router, node: &str, max: usize) -> Vec<SessionRecord> {
    router
        .unbound_streams()
        .into_iter()
        .filter(|(_, meta)| meta.kind != "s2s")
        .take(max)
        .map(|(key, meta)| {
            let mut r = record(None, key, Some(&meta), node, true);
            if meta.auth().is_none() {
                r.kind = format!("{}_unauthed", meta.kind);
            }
            r
        })
        .collect()
}

/// Unbound connections one node reports, at most.
pub const MAX_UNBOUND_PER_NODE: usize = 1000;

/// Which sessions an admin request wants, sent as is to every peer so that each answers
/// with at most one page (the whole of a busy node's records, with its history, would not
/// fit in a node-link frame, and a peer whose answer is refused looks like a silent one).
/// Fields a peer does not know are ignored by it (serde's default), so a mixed-version
/// cluster answers, if less precisely.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Filter {
    /// One account's sessions.
    pub user: Option<String>,
    /// Include ended sessions (history).
    #[serde(default)]
    pub history: bool,
    /// Only the unbound connections (`?unbound=true`).
    #[serde(default)]
    pub unbound: bool,
    /// Only this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Only this session id.
    #[serde(default)]
    pub session: Option<String>,
    /// Only sessions held by this node.
    #[serde(default)]
    pub node: Option<String>,
    /// The page starts after this `(jid, session)`.
    #[serde(default)]
    pub after: Option<(String, String)>,
    /// At most this many records (more are counted in `total`); None: all.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One node's (or the merged cluster's) answer: a page in `(jid, session)` order and how
/// many records matched in all.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Page {
    pub records: Vec<SessionRecord>,
    pub total: usize,
}

impl Filter {
    fn keeps(&self, r: &SessionRecord) -> bool {
        self.status.as_ref().is_none_or(|s| &r.status == s)
            && self.session.as_ref().is_none_or(|s| &r.session == s)
            && self.node.as_ref().is_none_or(|n| &r.node == n)
    }

    /// Filters, sorts and cuts `records` into the page this filter asks for.
    fn page(&self, records: Vec<SessionRecord>) -> Page {
        let mut kept: Vec<SessionRecord> = records.into_iter().filter(|r| self.keeps(r)).collect();
        kept.sort_by(|a, b| (&a.jid, &a.session).cmp(&(&b.jid, &b.session)));
        kept.dedup_by(|a, b| a.jid == b.jid && a.session == b.session && a.node == b.node);
        let total = kept.len();
        if let Some((jid, session)) = &self.after {
            kept.retain(|r| (&r.jid, &r.session) > (jid, session));
        }
        if let Some(limit) = self.limit {
            kept.truncate(limit);
        }
        Page {
            records: kept,
            total,
        }
    }
}

/// What this node holds for `filter`, as one page.
fn local_page(router: &Router, node: &str, filter: &Filter) -> Page {
    let records = if filter.unbound {
        unbound_records(router, node, MAX_UNBOUND_PER_NODE)
    } else {
        let mut all = local_records(router, node, filter.user.as_deref());
        if filter.history {
            all.extend(ended_records(router, node, filter.user.as_deref()));
        }
        all
    };
    filter.page(records)
}

/// Makes `node` answer peers' session queries from `router`: one page of what it holds.
pub fn answer_queries(node: &Arc<Node>, router: Arc<Router>) {
    let id = node.id().to_owned();
    node.set_query_answer(move |what| {
        let Ok(filter) = serde_json::from_str::<Filter>(what) else {
            return "[]".to_owned();
        };
        serde_json::to_string(&local_page(&router, &id, &filter))
            .unwrap_or_else(|_| "[]".to_owned())
    });
}

/// A peer's answer: a [`Page`], or the bare list an older node sends.
fn read_answer(answer: &str) -> Option<Page> {
    serde_json::from_str::<Page>(answer).ok().or_else(|| {
        serde_json::from_str::<Vec<SessionRecord>>(answer)
            .ok()
            .map(|records| Page {
                total: records.len(),
                records,
            })
    })
}

/// The page `filter` asks for, cluster-wide: this node's and every peer's, merged, cut to
/// the limit again, with the sum of their totals. A peer that does not answer in time is
/// represented by what the registry holds of its live sessions (`partial`).
pub(crate) async fn cluster_page(state: &AdminState, filter: &Filter) -> Page {
    let mine = local_page(&state.router, &state.node, filter);
    let Some(node) = &state.cluster else {
        return mine;
    };
    let mut all = mine.records;
    let mut total = mine.total;
    let what = serde_json::to_string(filter).unwrap_or_default();
    for (peer, answer) in node.query_peers(&what, Duration::from_secs(2)).await {
        match answer.as_deref().and_then(read_answer) {
            Some(page) => {
                total += page.total;
                all.extend(page.records);
            }
            None if filter.unbound => {}
            None => {
                let fallback = filter.page(registry_records(state, node, &peer, filter));
                total += fallback.total;
                all.extend(fallback.records);
            }
        }
    }
    let mut page = Filter {
        after: None,
        ..filter.clone()
    }
    .page(all);
    page.total = total;
    page
}

/// Every unbound connection cluster-wide (what the peers that answer report).
pub(crate) async fn cluster_unbound(state: &AdminState) -> Vec<SessionRecord> {
    let filter = Filter {
        unbound: true,
        ..Filter::default()
    };
    cluster_page(state, &filter).await.records
}

/// Every live session cluster-wide (or of one user), sorted by JID; with `history`, the
/// recently ended ones too. For bounded sets only (one user's, or one id's): listings page
/// through [`cluster_page`].
pub(crate) async fn cluster_records(
    state: &AdminState,
    user: Option<&str>,
    history: bool,
) -> Vec<SessionRecord> {
    let filter = Filter {
        user: user.map(str::to_owned),
        history,
        ..Filter::default()
    };
    cluster_page(state, &filter).await.records
}

/// One session, live or recently ended, on whichever node holds it.
pub(crate) async fn cluster_session(
    state: &AdminState,
    id: &str,
    history: bool,
) -> Option<SessionRecord> {
    let filter = Filter {
        session: Some(id.to_owned()),
        history,
        limit: Some(1),
        ..Filter::default()
    };
    cluster_page(state, &filter)
        .await
        .records
        .into_iter()
        .next()
}

/// What the registry says of `peer`'s live sessions (it did not answer).
fn registry_records(
    state: &AdminState,
    node: &Node,
    peer: &str,
    filter: &Filter,
) -> Vec<SessionRecord> {
    let cache = node.cache().read();
    let mut out = Vec::new();
    for (bare, resource, e) in cache.all_sessions() {
        if e.node != peer || filter.user.as_deref().is_some_and(|u| u != bare) {
            continue;
        }
        let (username, host) = bare.split_once('@').unwrap_or(("", bare));
        out.push(SessionRecord {
            jid: format!("{bare}/{resource}"),
            username: username.to_owned(),
            host: host.to_owned(),
            resource: resource.to_owned(),
            kind: if state.router.is_component(host) {
                "component"
            } else {
                "c2s"
            }
            .to_owned(),
            session: format!("{:016x}", e.session),
            node: e.node.clone(),
            ip: None,
            address: None,
            transport: None,
            secure: None,
            priority: e.priority,
            presence: presence_word(e.available, None),
            connected: true,
            available: e.available,
            interested: e.interested,
            status: "active".to_owned(),
            created: None,
            last_active: None,
            updated: None,
            expires: None,
            abandoned: None,
            reason: None,
            created_at: None,
            last_active_at: None,
            updated_at: None,
            expires_at: None,
            abandoned_at: None,
            auth: None,
            direction: None,
            from_host: None,
            to_host: None,
            stanzas_in: 0,
            stanzas_out: 0,
            partial: true,
        });
    }
    out
}
