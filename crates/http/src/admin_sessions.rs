//! The admin API's session endpoints: list (`/api/v1/sessions`, per user, per node), look
//! one up, and revoke one or all of a user's, cluster-wide from any node.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::records::{cluster_records, SessionRecord};
use crate::{admin_input, bad_request, is_ready, AdminState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionsQuery {
    user: Option<String>,
    node: Option<String>,
    status: Option<String>,
    /// Taken as text so that a bad number gets a 400 naming `limit`.
    limit: Option<String>,
    /// The previous page's `next` (a JID) …
    after: Option<String>,
    /// … and its `next_session` (one JID may have several records: ended ones).
    after_session: Option<String>,
    /// `true`: the connections that are not bound instead (not authenticated yet, or
    /// between authentication and bind), at most 1000 per node, oldest first.
    unbound: Option<bool>,
}

const MAX_PAGE: usize = 1000;

pub(crate) async fn sessions(
    state: web::Data<AdminState>,
    query: web::Query<SessionsQuery>,
) -> HttpResponse {
    let limit = match admin_input::page_limit(query.limit.as_deref(), 100, MAX_PAGE) {
        Ok(limit) => limit,
        Err(e) => return admin_input::bad(&e),
    };
    for (field, value) in [
        ("user", &query.user),
        ("node", &query.node),
        ("after", &query.after),
    ] {
        if let Err(e) = admin_input::short(field, value.as_deref(), admin_input::MAX_JID_BYTES) {
            return admin_input::bad(&e);
        }
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => match parley_router::SessionStatus::parse(s) {
            Some(st) => Some(st.as_str()),
            None => {
                return bad_request(
                    "status must be one of active, hibernating, ended, expired, removed, replaced, revoked, abandoned, failed",
                )
            }
        },
    };
    if query.unbound == Some(true) {
        let list: Vec<SessionRecord> = crate::records::cluster_unbound(&state)
            .await
            .into_iter()
            .filter(|r| query.node.as_ref().is_none_or(|n| &r.node == n))
            .collect();
        return HttpResponse::Ok().json(serde_json::json!({
            "sessions": list,
            "total": list.len(),
        }));
    }
    let user = query.user.as_deref().map(str::to_lowercase);
    let filter = crate::records::Filter {
        user,
        history: status.is_some_and(|s| s != "active"),
        unbound: false,
        status: status.map(str::to_owned),
        session: None,
        node: query.node.clone(),
        after: query.after.clone().map(|jid| {
            // Without `after_session`, everything of that JID was on the earlier page.
            let session = query
                .after_session
                .clone()
                .unwrap_or_else(|| "~".to_owned());
            (jid, session.to_lowercase())
        }),
        // One more than the page, to know whether there is a next one.
        limit: Some(limit + 1),
    };
    let page = crate::records::cluster_page(&state, &filter).await;
    let mut records = page.records;
    let next = (records.len() > limit).then(|| {
        let last = &records[limit - 1];
        (last.jid.clone(), last.session.clone())
    });
    records.truncate(limit);
    HttpResponse::Ok().json(serde_json::json!({
        "sessions": records,
        "total": page.total,
        "next": next.as_ref().map(|n| &n.0),
        "next_session": next.as_ref().map(|n| &n.1),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSessionsQuery {
    /// Include the recently ended sessions the user has not removed.
    history: Option<bool>,
}

/// `GET /api/v1/users/{jid}/sessions[?history=true]`: the user's list of sessions, live
/// ones, and with `history` the recently ended ones except those removed (signed out and
/// dropped from the list, [`remove_session`]).
pub(crate) async fn user_sessions(
    state: web::Data<AdminState>,
    path: web::Path<String>,
    query: web::Query<UserSessionsQuery>,
) -> HttpResponse {
    let user = path.into_inner().to_lowercase();
    let history = query.history.unwrap_or(false);
    let mut records = cluster_records(&state, Some(&user), history).await;
    records.retain(|r| r.status != parley_router::SessionStatus::Removed.as_str() || r.connected);
    HttpResponse::Ok().json(serde_json::json!({ "user": user, "sessions": records }))
}

pub(crate) async fn nodes(state: web::Data<AdminState>) -> HttpResponse {
    let list = match &state.cluster {
        None => vec![serde_json::json!({
            "id": state.node,
            "sessions": state.router.session_count(),
            "ready": is_ready(&state),
            "self": true,
        })],
        Some(n) => {
            let links = n.links();
            n.nodes()
                .into_iter()
                .map(|v| {
                    let link = links.iter().find(|l| l.node == v.id);
                    serde_json::json!({
                        "id": v.id,
                        "addr": v.info.addr,
                        "version": v.info.version,
                        "started": v.info.started_ms,
                        "sessions": v.sessions,
                        "self": v.id == state.node,
                        "link_up": link.map(|l| l.up),
                    })
                })
                .collect()
        }
    };
    HttpResponse::Ok().json(serde_json::json!({ "node": state.node, "nodes": list }))
}

/// `GET /api/v1/hosts`: the hosts this server answers for: its own (Prosody's `local`
/// sessions, the `server.hosts`) and its components' (XEP-0114), with whether a component
/// is connected to some node of the cluster.
pub(crate) async fn hosts(state: web::Data<AdminState>) -> HttpResponse {
    let mut local: Vec<&str> = state.router.hosts().collect();
    local.sort_unstable();
    let mut list: Vec<serde_json::Value> = local
        .into_iter()
        .map(|h| serde_json::json!({ "host": h, "type": "local" }))
        .collect();
    for domain in state.router.components() {
        let connected = parley_router::component_jid(&domain)
            .and_then(|jid| state.router.lookup(&jid))
            .is_some();
        list.push(serde_json::json!({
            "host": domain,
            "type": "component",
            "connected": connected,
        }));
    }
    HttpResponse::Ok().json(serde_json::json!({ "hosts": list }))
}

/// `GET /api/v1/sessions/{id}`: one session, live or recently ended, on any node.
pub(crate) async fn session_by_id(
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner().to_lowercase();
    match crate::records::cluster_session(&state, &id, true).await {
        Some(r) => HttpResponse::Ok().json(r),
        None => crate::problem::not_found("no such session"),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// A stream error condition (default `policy-violation`).
    pub(crate) condition: Option<String>,
    /// Human-readable text sent with it.
    pub(crate) reason: Option<String>,
}

pub(crate) fn revoke_reason(
    r: &RevokeRequest,
) -> Result<parley_router::CloseReason, Box<HttpResponse>> {
    use parley_proto::stream_error::StreamCondition;
    admin_input::short("reason", r.reason.as_deref(), admin_input::MAX_REASON_CHARS)
        .map_err(|e| Box::new(admin_input::bad(&e)))?;
    let condition = match r.condition.as_deref() {
        None => StreamCondition::PolicyViolation,
        Some(c) => c.parse::<StreamCondition>().map_err(|_| {
            Box::new(bad_request(
                "condition must be an RFC 6120 stream error condition",
            ))
        })?,
    };
    Ok(match &r.reason {
        Some(text) => parley_router::CloseReason::with_text(condition, text.clone()),
        None => parley_router::CloseReason::condition(condition),
    })
}

/// Revokes one live session wherever it is; whether it was found.
pub(crate) fn revoke_session(
    state: &AdminState,
    jid: &jid::FullJid,
    id: u64,
    node: &str,
    reason: parley_router::CloseReason,
    status: parley_router::SessionStatus,
) -> bool {
    if node == state.node {
        match state.router.lookup_local(jid) {
            Some(h) if h.id.0 == id => {
                if let Some(m) = h.meta() {
                    m.end(status);
                }
                h.close(reason);
                true
            }
            _ => false,
        }
    } else {
        state
            .cluster
            .as_ref()
            .is_some_and(|n| n.revoke_remote(node, jid, id, reason, status))
    }
}

/// Ends every live session of `bare` on every node with `reason` and `status`; how many.
pub(crate) async fn end_user_sessions(
    state: &AdminState,
    bare: &str,
    reason: parley_router::CloseReason,
    status: parley_router::SessionStatus,
) -> usize {
    end_user_sessions_but(state, bare, None, reason, status).await
}

/// [`end_user_sessions`], sparing this node's session `keep`.
pub(crate) async fn end_user_sessions_but(
    state: &AdminState,
    bare: &str,
    keep: Option<u64>,
    reason: parley_router::CloseReason,
    status: parley_router::SessionStatus,
) -> usize {
    let mut ended = 0;
    let kept = keep.map(|k| format!("{k:016x}"));
    for r in cluster_records(state, Some(bare), false).await {
        if r.node == state.node && Some(&r.session) == kept.as_ref() {
            continue;
        }
        if let (Ok(jid), Ok(num)) = (
            jid::FullJid::new(&r.jid),
            u64::from_str_radix(&r.session, 16),
        ) {
            if revoke_session(state, &jid, num, &r.node, reason.clone(), status) {
                ended += 1;
            }
        }
    }
    ended
}

/// `DELETE /api/v1/sessions/{id}` `{condition?, reason?}`: closes the session with that
/// stream error and marks it revoked.
pub(crate) async fn delete_session(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let body: RevokeRequest = match admin_input::optional_json(&body) {
        Ok(body) => body,
        Err(e) => return admin_input::bad(&e),
    };
    let reason = match revoke_reason(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let id = path.into_inner().to_lowercase();
    let Some(r) = crate::records::cluster_session(&state, &id, false).await else {
        return crate::problem::not_found("no such live session");
    };
    crate::audit(
        &req,
        "session.revoke",
        &format!("{} on {}", r.session, r.node),
    );
    if r.kind.starts_with("s2s") {
        // A stream between servers binds no JID: it is closed by its key.
        let Ok(num) = u64::from_str_radix(&r.session, 16) else {
            return bad_request("bad session record");
        };
        let closed = if r.node == state.node {
            state.router.close_stream(
                parley_router::SessionId(num),
                reason,
                parley_router::SessionStatus::Revoked,
            )
        } else {
            state
                .cluster
                .as_ref()
                .is_some_and(|n| n.close_remote_stream(&r.node, num, reason))
        };
        return if closed {
            HttpResponse::Ok().json(serde_json::json!({"revoked": r.session, "node": r.node}))
        } else {
            crate::problem::not_found("the session is gone")
        };
    }
    let (Ok(jid), Ok(num)) = (
        jid::FullJid::new(&r.jid),
        u64::from_str_radix(&r.session, 16),
    ) else {
        return bad_request("bad session record");
    };
    if revoke_session(
        &state,
        &jid,
        num,
        &r.node,
        reason,
        parley_router::SessionStatus::Revoked,
    ) {
        HttpResponse::Ok().json(serde_json::json!({"revoked": r.session, "node": r.node}))
    } else {
        crate::problem::not_found("the session is gone")
    }
}

/// The admin API's road for ending an account's sessions, offered to sessions for account
/// self-service (XEP-0077): built by the binary whether or not the admin listener runs.
pub struct AdminSessions(pub AdminState);

impl parley_session::AccountSessions for AdminSessions {
    fn end_sessions(
        &self,
        bare: String,
        keep: Option<u64>,
        reason: parley_router::CloseReason,
        status: parley_router::SessionStatus,
    ) -> parley_session::BoxFuture<usize> {
        let state = self.0.clone();
        Box::pin(async move { end_user_sessions_but(&state, &bare, keep, reason, status).await })
    }
}

/// `POST /api/v1/sessions/{id}/remove`: the user signs this session out and it leaves
/// their list. A live session is closed (`<not-authorized/>`, "the session was signed
/// out") and ends with status removed; an ended one's record becomes removed. On whichever
/// node holds it.
pub(crate) async fn remove_session(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner().to_lowercase();
    let Some(r) = crate::records::cluster_session(&state, &id, true).await else {
        return crate::problem::not_found("no such session");
    };
    let (Ok(jid), Ok(num)) = (
        jid::FullJid::new(&r.jid),
        u64::from_str_radix(&r.session, 16),
    ) else {
        return bad_request("only a client session can be removed");
    };
    crate::audit(
        &req,
        "session.remove",
        &format!("{} on {}", r.session, r.node),
    );
    let status = parley_router::SessionStatus::Removed;
    let reason = parley_router::CloseReason::with_text(
        parley_proto::stream_error::StreamCondition::NotAuthorized,
        "the session was signed out",
    );
    let done = if r.connected {
        revoke_session(&state, &jid, num, &r.node, reason, status)
    } else if r.node == state.node {
        state.router.remove_ended(parley_router::SessionId(num))
    } else {
        // The holder finds no live session under that id and marks its record instead.
        state
            .cluster
            .as_ref()
            .is_some_and(|n| n.revoke_remote(&r.node, &jid, num, reason, status))
    };
    if done {
        HttpResponse::Ok().json(serde_json::json!({"removed": r.session, "node": r.node}))
    } else {
        crate::problem::not_found("the session is gone")
    }
}
