//! `POST /api/v1/nodes/{id}/drain`: the admin API's way to drain a node (what SIGTERM and
//! `parley node drain` do too). The drain itself belongs to the binary, which wires the
//! whole node; this crate sees it only through [`NodeDrain`], so that it never depends on
//! the binary.
//!
//! Only the node asked drains itself: draining another node goes to that node's own admin
//! endpoint (its address is in `GET /api/v1/nodes`), so that no node link ever carries an
//! order to stop.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::AdminState;

/// The node's drain, as the admin API sees it (implemented by the binary).
pub trait NodeDrain: Send + Sync + std::fmt::Debug {
    /// Starts draining this node: readiness turns false and new connections are refused at
    /// once; the rest (asking clients to move, waiting for them, leaving the cluster,
    /// exiting) follows in the background. False when a drain was already under way.
    fn start(&self) -> bool;
    /// Whether a drain is under way (readiness stays false whatever else happens).
    fn draining(&self) -> bool;
}

/// `POST /api/v1/nodes/{id}/drain`: 202 once the drain has started (also when it had
/// started before: `"started": false`); 404 for a node that is not a member; 409 for
/// another member, which must be asked itself.
pub(crate) async fn drain(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner();
    if id != state.node {
        let member = state
            .cluster
            .as_ref()
            .and_then(|n| n.nodes().into_iter().find(|v| v.id == id));
        return match member {
            Some(v) => crate::problem::conflict(&format!(
                "this is node {}; drain node {id} through its own admin endpoint \
                     (peer address {})",
                state.node, v.info.addr
            )),
            None => crate::problem::not_found(&format!(
                "no node {id} in this cluster (this is node {})",
                state.node
            )),
        };
    }
    let Some(drain) = &state.drain else {
        return crate::problem::unavailable("this node cannot be drained");
    };
    crate::audit(&req, "node.drain", &state.node);
    let started = drain.start();
    if started {
        tracing::info!(node = %state.node, "drain requested through the admin API");
    }
    HttpResponse::Accepted().json(serde_json::json!({
        "node": state.node,
        "draining": true,
        "started": started,
    }))
}
