//! `parley sessions …`, `parley cluster …` and `parley node …`: what a running node's admin
//! API says of the cluster's sessions and nodes, and the actions on them (kick, drain).

use clap::Subcommand;

use super::admin_client::{self, encode};
use super::listing::{cell, Listing};
use crate::config::Config;

/// `parley sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// The bound sessions of the whole cluster: JID, session id, node, type, transport,
    /// client address, status and when it started (`--json`: the admin API's records).
    List {
        /// Only the sessions of this bare JID.
        #[arg(long)]
        user: Option<String>,
        /// The connections that are not bound instead (not authenticated yet, or between
        /// authentication and bind).
        #[arg(long, conflicts_with = "user")]
        unbound: bool,
    },
    /// End one session, on whichever node holds it: the client gets the stream error
    /// (default `<policy-violation/>`) with the reason, and the record says revoked.
    Kick {
        /// The session id (`parley sessions list` shows it).
        id: String,
        /// The text the client is shown.
        #[arg(long)]
        reason: Option<String>,
        /// The stream error condition (RFC 6120 §4.9.3), e.g. `conflict`, `not-authorized`.
        #[arg(long)]
        condition: Option<String>,
    },
}

/// `parley cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The live nodes: id, peer address, sessions, version and link state.
    Nodes,
}

/// `parley node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Drain the node, as SIGTERM does: it turns not-ready, refuses new clients, asks its
    /// clients to move (`[c2s] redirect_host`, `[http] redirect_ws_uri`), waits for them
    /// (at most `[cluster] drain_timeout_s`), leaves the cluster and exits with status 0.
    /// Returns as soon as the drain has started.
    Drain {
        /// The node's id; it must be the node whose admin endpoint the config names
        /// (default: that node, whatever its id).
        #[arg(long)]
        node: Option<String>,
    },
}

fn get(config: &Config, path: &str) -> Result<serde_json::Value, String> {
    admin_client::call(config, "GET", path, None).map_err(|e| e.to_string())
}

/// A session record's cells.
fn session_row(s: &serde_json::Value) -> Vec<String> {
    let text = |k: &str| cell(s[k].as_str());
    // A server stream binds no JID: it is named by its hosts, in its direction.
    let who = match s["jid"].as_str() {
        Some(jid) if !jid.is_empty() => jid.to_owned(),
        _ if s["from_host"].is_string() => format!(
            "{}->{}",
            s["from_host"].as_str().unwrap_or("?"),
            s["to_host"].as_str().unwrap_or("?")
        ),
        _ => "-".to_owned(),
    };
    vec![
        who,
        text("session"),
        text("node"),
        text("type"),
        text("transport"),
        cell(s["address"].as_str().or(s["ip"].as_str())),
        text("status"),
        text("created_at"),
    ]
}

const SESSION_COLUMNS: [&str; 8] = [
    "JID",
    "SESSION",
    "NODE",
    "TYPE",
    "TRANSPORT",
    "ADDRESS",
    "STATUS",
    "SINCE",
];

/// `GET /api/v1/sessions` (every page), the user's sessions, or the unbound connections.
pub fn list(config: &Config, user: Option<String>, unbound: bool) -> Result<Listing, String> {
    let mut listing = Listing::new(&SESSION_COLUMNS);
    let mut add = |list: &serde_json::Value| {
        for s in list.as_array().into_iter().flatten() {
            listing.push(session_row(s), s.clone());
        }
    };
    if unbound {
        add(&get(config, "/api/v1/sessions?unbound=true")?["sessions"]);
        return Ok(listing);
    }
    if let Some(u) = &user {
        add(&get(config, &format!("/api/v1/users/{}/sessions", encode(u)))?["sessions"]);
        return Ok(listing);
    }
    let mut after: Option<(String, String)> = None;
    loop {
        let path = match &after {
            Some((jid, session)) => format!(
                "/api/v1/sessions?limit=1000&after={}&after_session={}",
                encode(jid),
                encode(session)
            ),
            None => "/api/v1/sessions?limit=1000".to_owned(),
        };
        let json = get(config, &path)?;
        add(&json["sessions"]);
        match (json["next"].as_str(), json["next_session"].as_str()) {
            (Some(jid), Some(session)) => after = Some((jid.to_owned(), session.to_owned())),
            _ => return Ok(listing),
        }
    }
}

/// `DELETE /api/v1/sessions/{id}` with the reason and condition.
pub fn kick(
    config: &Config,
    id: &str,
    reason: Option<String>,
    condition: Option<String>,
) -> Result<Vec<String>, String> {
    let mut body = serde_json::Map::new();
    if let Some(r) = reason {
        body.insert("reason".into(), r.into());
    }
    if let Some(c) = condition {
        body.insert("condition".into(), c.into());
    }
    let answer = admin_client::call(
        config,
        "DELETE",
        &format!("/api/v1/sessions/{}", encode(id)),
        Some(&serde_json::Value::Object(body)),
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![format!(
        "kicked session {} on node {}",
        answer["revoked"].as_str().unwrap_or(id),
        answer["node"].as_str().unwrap_or("?")
    )])
}

/// `POST /api/v1/nodes/{id}/drain` on the configured admin endpoint; without `node`, the
/// id that endpoint reports for itself.
pub fn drain(config: &Config, node: Option<String>) -> Result<Vec<String>, String> {
    let id = match node {
        Some(id) => id,
        None => get(config, "/api/v1/nodes")?["node"]
            .as_str()
            .ok_or("the admin endpoint did not say which node it is")?
            .to_owned(),
    };
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(format!("--node {id:?} is not a node id"));
    }
    let json = admin_client::call(config, "POST", &format!("/api/v1/nodes/{id}/drain"), None)
        .map_err(|e| e.to_string())?;
    let what = if json["started"].as_bool() == Some(false) {
        "was draining already"
    } else {
        "is draining"
    };
    Ok(vec![format!(
        "node {id} {what}: it exits once its sessions have moved, or after [cluster] drain_timeout_s"
    )])
}

/// `GET /api/v1/nodes`.
pub fn nodes(config: &Config) -> Result<Listing, String> {
    let json = get(config, "/api/v1/nodes")?;
    let mut listing = Listing::new(&["NODE", "ADDRESS", "SESSIONS", "VERSION", "LINK"]);
    for n in json["nodes"].as_array().into_iter().flatten() {
        let link = match (n["self"].as_bool(), n["link_up"].as_bool()) {
            (Some(true), _) => "self",
            (_, Some(true)) => "link-up",
            (_, Some(false)) => "link-down",
            _ => "-",
        };
        listing.push(
            vec![
                cell(n["id"].as_str()),
                cell(n["addr"].as_str()),
                n["sessions"].to_string(),
                cell(n["version"].as_str()),
                link.to_owned(),
            ],
            n.clone(),
        );
    }
    Ok(listing)
}
