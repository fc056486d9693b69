//! HTTP on actix-web: the admin API (bearer token), health and readiness for load balancers,
//! and Prometheus metrics. It holds no business rules: it reads the router and the user
//! registry and answers.
//!
//! This is the single-node part of the admin endpoint; answers cover this node until the
//! cluster layer feeds them the registry (docs/cluster.md).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parley_router::Router;
use parley_user::Users;
use serde::Serialize;
use subtle::ConstantTimeEq;

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// This node's name.
    pub node: String,
    /// The routing table.
    pub router: Arc<Router>,
    /// The user actors.
    pub users: Arc<Users>,
    /// The bearer token; without one, the API routes always answer 401.
    pub token: Option<String>,
    /// Cleared when the node starts shutting down (load balancers stop sending clients).
    pub ready: Arc<AtomicBool>,
}

/// One bound session as the API shows it.
#[derive(Debug, Serialize)]
struct SessionView {
    jid: String,
    session: String,
    node: String,
}

fn authorized(req: &HttpRequest, state: &AdminState) -> bool {
    let Some(token) = &state.token else {
        return false;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(serde_json::json!({"error": "a valid bearer token is required"}))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready\n")
    }
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    let body = format!(
        "# HELP parley_sessions Bound client sessions on this node.\n\
         # TYPE parley_sessions gauge\n\
         parley_sessions{{type=\"c2s\",node=\"{node}\"}} {sessions}\n\
         # HELP parley_user_actors Running user actors on this node.\n\
         # TYPE parley_user_actors gauge\n\
         parley_user_actors{{node=\"{node}\"}} {users}\n\
         # HELP parley_ready Whether the node accepts clients.\n\
         # TYPE parley_ready gauge\n\
         parley_ready{{node=\"{node}\"}} {ready}\n",
        node = state.node,
        sessions = state.router.session_count(),
        users = state.users.running(),
        ready = u8::from(state.ready.load(Ordering::Acquire)),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

fn views(state: &AdminState, user: Option<&str>) -> Vec<SessionView> {
    state
        .router
        .bound()
        .into_iter()
        .filter(|(jid, _)| user.is_none_or(|u| jid.to_bare().as_str() == u))
        .map(|(jid, id)| SessionView {
            jid: jid.to_string(),
            session: id.to_string(),
            node: state.node.clone(),
        })
        .collect()
}

async fn sessions(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if !authorized(&req, &state) {
        return unauthorized();
    }
    HttpResponse::Ok().json(serde_json::json!({ "sessions": views(&state, None) }))
}

async fn user_sessions(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    if !authorized(&req, &state) {
        return unauthorized();
    }
    let user = path.into_inner().to_lowercase();
    HttpResponse::Ok()
        .json(serde_json::json!({ "user": user, "sessions": views(&state, Some(&user)) }))
}

/// Binds the admin endpoint on `addr` and returns its address and the server future (spawn
/// it on the actix system).
pub fn admin_server(state: AdminState, addr: SocketAddr) -> std::io::Result<(SocketAddr, Server)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
            .route("/api/v1/sessions", web::get().to(sessions))
            .route("/api/v1/users/{jid}/sessions", web::get().to(user_sessions))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let local = server.addrs().first().copied().unwrap_or(addr);
    Ok((local, server.run()))
}
