//! Admission of new web connections (WebSocket upgrades, BOSH session creation) under the
//! node's connection limits ([`parley_session::limits::ConnLimiter`], shared with c2s TCP).
//!
//! A refusal is plain HTTP, before any session exists: `429 Too Many Requests` when the
//! client's address holds too many connections or opens them too fast, `503 Service
//! Unavailable` when the node is full or draining; all with `Retry-After`.

use std::net::SocketAddr;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use parley_session::limits::{ConnPermit, Refusal};
use tracing::warn;

use crate::web_state::WebState;

/// A permit for a new session from `peer`, or the HTTP answer that refuses it. `body` and
/// `content_type` are what the refusal carries (a BOSH terminate body, or plain text).
/// `listener` (`websocket`, `bosh`) labels the outcome in `parley_connections_total`.
pub(crate) fn admit(
    state: &WebState,
    listener: &'static str,
    peer: Option<SocketAddr>,
    body: impl FnOnce(Refusal) -> (String, &'static str),
) -> Result<ConnPermit, Box<HttpResponse>> {
    let refusal = match state.env.conn_limiter.acquire(peer.map(|p| p.ip())) {
        Ok(permit) => {
            parley_router::metrics::CONNECTIONS.inc(listener, "accepted");
            return Ok(permit);
        }
        Err(refusal) => refusal,
    };
    parley_router::metrics::CONNECTIONS.inc(listener, refusal.reason());
    let offender = peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string());
    if parley_router::metrics::refuse(refusal.reason(), &offender) {
        warn!(ip = %offender, reason = refusal.reason(), "web connection refused");
    }
    let (status, retry_after) = match refusal {
        Refusal::PerIp | Refusal::Rate => (StatusCode::TOO_MANY_REQUESTS, "1"),
        Refusal::Full => (StatusCode::SERVICE_UNAVAILABLE, "10"),
        // The node is going away: the load balancer (its `/ready` is false already) sends
        // the retry to another node.
        Refusal::Draining => (StatusCode::SERVICE_UNAVAILABLE, "1"),
    };
    let (text, content_type) = body(refusal);
    Err(Box::new(
        HttpResponse::build(status)
            .insert_header((header::RETRY_AFTER, retry_after))
            .content_type(content_type)
            .body(text),
    ))
}
