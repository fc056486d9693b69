//! HTTP on actix-web: the client listener (XMPP over WebSocket and BOSH, XEP-0156 discovery,
//! the Converse.js page), the delegated-auth client, and the admin endpoint (the bearer-token
//! API, health and readiness for load balancers, Prometheus metrics). It holds no business
//! rules: it reads the router, the user registry and (in a cluster) the node, and answers;
//! XMPP itself is parsed and negotiated by the session actors it starts.
//!
//! Every API answer covers the whole cluster, whichever node is asked: the node answering
//! gathers the other nodes' session records over the node links (`Body::Query`); a node that
//! does not answer in time is represented by what the registry holds for it, marked
//! `"partial": true`.

mod admin_drain;
pub mod admin_input;
mod admin_invites;
mod admin_page;
mod admin_rooms;
mod admin_sessions;
mod admin_users;
pub mod api_routes;
pub use admin_sessions::AdminSessions;
mod admit;
pub mod bosh;
pub mod bosh_limits;
pub mod delegate;
mod framed;
pub mod listener;
pub mod metrics;
mod metrics_cluster;
mod metrics_muc;
pub mod metrics_process;
mod origin;
pub mod problem;
pub mod proxy;
pub mod proxy_header;
mod records;
mod upload;
pub mod web_client;
pub mod web_state;
pub mod ws;

pub use admin_drain::NodeDrain;
pub use listener::web_server;
pub use records::{answer_queries, ended_records, local_records, SessionRecord};
pub use web_state::{ConsiderSecure, WebState};

use admin_sessions::{
    delete_session, end_user_sessions, nodes, revoke_reason, session_by_id, sessions,
    user_sessions, RevokeRequest,
};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use parley_accounts::AccountJid;
use parley_cluster::node::Node;
use parley_router::Router;
use parley_user::Users;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// This node's id.
    pub node: String,
    /// The cluster membership, when clustered.
    pub cluster: Option<Arc<Node>>,
    /// The routing table.
    pub router: Arc<Router>,
    /// The user actors.
    pub users: Arc<Users>,
    /// Bearer token for `/api/` (`[admin] token`).
    pub token: Option<String>,
    /// The node's local admin credential (`{data_dir}/admin.token`, readable only by the
    /// server's user): accepted from loopback callers only, so that `parley user del` on
    /// the server's machine works without a configured token. None with neither: the API
    /// answers 401.
    pub local_token: Option<String>,
    /// Readiness (false while starting, shutting down or fenced).
    pub ready: Arc<AtomicBool>,
    /// Accounts and tokens.
    pub storage: Arc<dyn parley_storage::Storage>,
    /// The client HTTP listener's state (BOSH sessions for prebind), when it is enabled.
    pub web: Option<Arc<WebState>>,
    /// `[admin]` bounds and where `/metrics` is served.
    pub policy: admin_input::AdminPolicy,
    /// The node's drain (`POST /api/v1/nodes/{id}/drain`); None: it cannot be drained.
    pub drain: Option<Arc<dyn NodeDrain>>,
    /// The chat rooms (XEP-0045), when `[muc]` is on.
    pub rooms: Option<Arc<parley_muc::Rooms>>,
}

pub(crate) fn authorized(req: &HttpRequest, state: &AdminState) -> bool {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    credential_ok(
        presented,
        state.token.as_deref(),
        state.local_token.as_deref(),
        loopback,
    )
}

/// The configured token from anywhere; the node's local credential from loopback only.
/// Both compared in constant time.
fn credential_ok(
    presented: &str,
    token: Option<&str>,
    local: Option<&str>,
    loopback: bool,
) -> bool {
    let matches =
        |t: Option<&str>| t.is_some_and(|t| bool::from(presented.as_bytes().ct_eq(t.as_bytes())));
    matches(token) || (loopback && matches(local))
}

#[cfg(test)]
#[test]
fn the_local_credential_is_taken_from_loopback_only() {
    let (token, local) = (Some("configured-token-0123"), Some("ab12cd34"));
    assert!(credential_ok("configured-token-0123", token, local, false));
    assert!(credential_ok("ab12cd34", token, local, true));
    assert!(!credential_ok("ab12cd34", token, local, false));
    assert!(!credential_ok("", None, None, true));
    assert!(!credential_ok("", None, Some(""), false));
    assert!(!credential_ok("wrong", token, local, true));
}

/// Refuses `/api/` requests without the bearer token, before their extractors run; the
/// open routes (health, readiness, metrics, the OpenAPI document, the admin page) pass.
/// The one place the API's token is checked: handlers do not check it again (`/metrics`,
/// outside `/api/`, applies `[admin] metrics_auth` itself).
async fn require_token(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let open = !req.path().starts_with("/api/") || req.path() == "/api/v1/openapi.json";
    let allowed = open
        || req
            .app_data::<web::Data<AdminState>>()
            .is_some_and(|state| authorized(req.request(), state));
    if allowed {
        Ok(next.call(req).await?.map_into_boxed_body())
    } else {
        Ok(req.into_response(unauthorized()))
    }
}

pub(crate) fn unauthorized() -> HttpResponse {
    problem::unauthorized()
}

fn bad_request(text: &str) -> HttpResponse {
    problem::bad_request(text)
}

/// The audit line of an admin action (target `parley::audit`, level info): who asked (the
/// caller's address), what was done, and to what. Never a secret: no token, no password.
pub(crate) fn audit(req: &HttpRequest, action: &str, target: &str) {
    let who = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    tracing::info!(target: "parley::audit", who = %who, action = %action, target = %target, "admin action");
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

fn is_ready(state: &AdminState) -> bool {
    // A draining node stays unready even if the node registers again after a fence.
    state.ready.load(Ordering::Acquire)
        && state.cluster.as_ref().is_none_or(|n| n.healthy())
        && !draining(state)
}

fn draining(state: &AdminState) -> bool {
    state.drain.as_ref().is_some_and(|d| d.draining())
}

async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    if is_ready(&state) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready\n")
    }
}

/// `GET /metrics` (on the admin listener or the `metrics_listen` one), rendered by
/// [`metrics::Snapshot`].
pub(crate) async fn metrics(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if !admin_input::metrics_allowed(&req, &state) {
        return unauthorized();
    }
    metrics::response(&state)
}

/// `user@host` of an account this server serves, from a path segment.
fn account(state: &AdminState, jid: &str) -> Result<AccountJid, Box<HttpResponse>> {
    let hosts: Vec<&str> = state.router.hosts().collect();
    AccountJid::parse(jid, &hosts)
        .map_err(|_| Box::new(bad_request("not an account JID of this server")))
}

fn token_view(t: &parley_storage::TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "jid": format!("{}@{}", t.username, t.host),
        "purpose": t.purpose,
        "created": t.created_ms,
        "expires": t.expires_ms,
        "last_used": t.last_used_ms,
    })
}

fn no_such_account() -> HttpResponse {
    crate::problem::not_found("no such account")
}

pub(crate) fn storage_error(e: parley_storage::StorageError) -> HttpResponse {
    tracing::warn!(error = %e, "admin API storage error");
    crate::problem::unavailable("storage unavailable")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    /// Any JSON value, so that a bad one gets a 400 naming `ttl_s`.
    ttl_s: Option<serde_json::Value>,
    purpose: Option<String>,
}

/// `POST /api/v1/users/{jid}/tokens` `{ttl_s?, purpose?}`: a new token, shown once.
async fn issue_token(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let body: IssueRequest = match admin_input::optional_json(&body) {
        Ok(body) => body,
        Err(e) => return admin_input::bad(&e),
    };
    let ttl = match admin_input::ttl(body.ttl_s.as_ref(), state.policy.max_token_ttl_s) {
        Ok(ttl) => ttl,
        Err(e) => return admin_input::bad(&e),
    };
    let purpose = body.purpose.as_deref();
    if let Err(e) = admin_input::short("purpose", purpose, admin_input::MAX_PURPOSE_CHARS) {
        return admin_input::bad(&e);
    }
    let purpose = body.purpose.unwrap_or_else(|| "login".to_owned());
    audit(&req, "token.issue", &account.to_string());
    match parley_accounts::tokens::issue(&*state.storage, &account, ttl, &purpose).await {
        Ok(issued) => {
            let mut view = token_view(&issued.record);
            view["token"] = serde_json::Value::String(issued.token);
            HttpResponse::Created().json(view)
        }
        Err(parley_storage::StorageError::NotFound { .. }) => no_such_account(),
        Err(e) => storage_error(e),
    }
}

/// `GET /api/v1/users/{jid}/tokens`: ids and times, never secrets.
async fn list_tokens(state: web::Data<AdminState>, path: web::Path<String>) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    match parley_accounts::tokens::list(&*state.storage, &account).await {
        Ok(list) => HttpResponse::Ok().json(serde_json::json!({
            "tokens": list.iter().map(token_view).collect::<Vec<_>>()
        })),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /api/v1/users/{jid}/tokens`: revokes all of the user's tokens.
async fn revoke_user_tokens(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    audit(&req, "token.revoke_all", &account.to_string());
    match parley_accounts::tokens::revoke_all(&*state.storage, &account).await {
        Ok(n) => HttpResponse::Ok().json(serde_json::json!({ "revoked": n })),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /api/v1/tokens/{id}`.
async fn revoke_token(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    audit(
        &req,
        "token.revoke",
        &parley_accounts::tokens::token_id(&path),
    );
    match parley_accounts::tokens::revoke(&*state.storage, &path.into_inner()).await {
        Ok(true) => HttpResponse::Ok().json(serde_json::json!({ "revoked": 1 })),
        Ok(false) => crate::problem::not_found("no such token"),
        Err(e) => storage_error(e),
    }
}

/// `POST /api/v1/users/{jid}/signout`: every session of the user, on every node, is
/// revoked, and every token too; JWTs issued before now (or without `iat`) stop working.
async fn signout(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let mut body: RevokeRequest = match admin_input::optional_json(&body) {
        Ok(body) => body,
        Err(e) => return admin_input::bad(&e),
    };
    body.reason
        .get_or_insert_with(|| "signed out everywhere".to_owned());
    let reason = match revoke_reason(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    audit(&req, "user.signout", &account.to_string());
    match sign_out_everywhere(&state, &account, reason).await {
        Ok((sessions, tokens)) => {
            HttpResponse::Ok().json(serde_json::json!({"sessions": sessions, "tokens": tokens}))
        }
        Err(e) => storage_error(e),
    }
}

/// Signs `account` out everywhere: JWTs issued before now stop working, its tokens are
/// revoked and its sessions on every node end with `reason` (status revoked). The
/// sign-out time first (a JWT cannot be revoked one by one), then the tokens, so that no
/// session can come back. Returns (sessions ended, tokens revoked).
pub(crate) async fn sign_out_everywhere(
    state: &AdminState,
    account: &AccountJid,
    reason: parley_router::CloseReason,
) -> Result<(usize, u64), parley_storage::StorageError> {
    state
        .storage
        .set_signed_out(&account.username, &account.host, parley_router::now_ms())
        .await?;
    let tokens = parley_accounts::tokens::revoke_all(&*state.storage, account).await?;
    let bare = account.to_string();
    let sessions =
        end_user_sessions(state, &bare, reason, parley_router::SessionStatus::Revoked).await;
    Ok((sessions, tokens))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrebindRequest {
    jid: String,
    resource: Option<String>,
}

/// `POST /api/v1/prebind` `{jid, resource?}`: a BOSH session for a real account,
/// authenticated and bound, answered as `{jid, sid, rid}` — what Converse.js `prebind_url`
/// expects. The site's backend calls it for its logged-in user and hands the answer to the
/// page.
async fn prebind(
    req: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Json<PrebindRequest>,
) -> HttpResponse {
    let resource = body.resource.as_deref();
    if let Err(e) = admin_input::short("resource", resource, admin_input::MAX_RESOURCE_BYTES) {
        return admin_input::bad(&e);
    }
    let Some(web) = &state.web else {
        return crate::problem::unavailable("the HTTP listener ([http] listen) is disabled");
    };
    let account = match account(&state, &body.jid) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    match state
        .storage
        .account(&account.username, &account.host)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => return no_such_account(),
        Err(e) => return storage_error(e),
    }
    let Ok(user) = jid::BareJid::new(&account.to_string()) else {
        return bad_request("not an account JID");
    };
    audit(&req, "prebind", &account.to_string());
    match crate::bosh::prebind(web, user, body.resource.clone()).await {
        Ok((jid, sid, rid)) => HttpResponse::Ok().json(serde_json::json!({
            "jid": jid,
            "sid": sid,
            "rid": rid,
        })),
        Err(e) => {
            tracing::warn!(error = %e, "prebind failed");
            crate::problem::internal("prebind failed")
        }
    }
}

/// Starts the admin endpoint on `addr`; returns the bound address and the server future.
pub fn admin_server(state: AdminState, addr: SocketAddr) -> std::io::Result<(SocketAddr, Server)> {
    if let Some(node) = &state.cluster {
        answer_queries(node, state.router.clone());
    }
    let metrics_here = !state.policy.metrics_elsewhere;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(admin_input::json_config())
            .app_data(problem::query_config())
            .app_data(web::PayloadConfig::new(admin_input::MAX_JSON_BYTES))
            .configure(|cfg| {
                if metrics_here {
                    cfg.route("/metrics", web::get().to(metrics));
                }
            })
            // The bearer token is checked before anything of a request is read (a body or a
            // query an unauthenticated caller sent gets 401, never a 400 about its fields).
            .wrap(actix_web::middleware::from_fn(require_token))
            .configure(api_routes::register)
            .configure(admin_page::register)
            .default_service(web::to(problem::no_route))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let local = server.addrs().first().copied().unwrap_or(addr);
    Ok((local, server.run()))
}
