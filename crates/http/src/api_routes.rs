//! The admin endpoint's routes, written once: the same table registers each route with
//! actix-web and describes it in the OpenAPI 3.1 document served at `/api/v1/openapi.json`,
//! so the document cannot list a route that does not exist nor miss one that does
//! (`tests/openapi.rs` also asks the running server for every documented operation).
//!
//! By hand rather than `utoipa`: this build has no network for new crates; the table is the
//! one place a route is declared either way.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::{
    admin_drain, admin_invites, admin_rooms, admin_sessions, admin_users, delete_session, health,
    issue_token, list_tokens, nodes, prebind, ready, revoke_token, revoke_user_tokens,
    session_by_id, sessions, signout, user_sessions,
};

/// What the document says of one operation.
#[derive(Debug, Clone)]
pub struct Op {
    summary: &'static str,
    /// The success status.
    ok: u16,
    /// Query parameters: (name, JSON type, description).
    query: &'static [(&'static str, &'static str, &'static str)],
    /// The JSON body's properties: (name, JSON type, required, description).
    body: &'static [(&'static str, &'static str, bool, &'static str)],
    /// Whether the bearer token is needed.
    secured: bool,
}

impl Op {
    const fn new(summary: &'static str) -> Op {
        Op {
            summary,
            ok: 200,
            query: &[],
            body: &[],
            secured: true,
        }
    }
    const fn ok(mut self, status: u16) -> Op {
        self.ok = status;
        self
    }
    const fn query(mut self, q: &'static [(&'static str, &'static str, &'static str)]) -> Op {
        self.query = q;
        self
    }
    const fn body(mut self, b: &'static [(&'static str, &'static str, bool, &'static str)]) -> Op {
        self.body = b;
        self
    }
    const fn open(mut self) -> Op {
        self.secured = false;
        self
    }
}

const JID: &str = "an account's bare JID";
const REVOKE_BODY: &[(&str, &str, bool, &str)] = &[
    (
        "condition",
        "string",
        false,
        "the stream error condition (default policy-violation)",
    ),
    ("reason", "string", false, "the text the client is shown"),
];

macro_rules! api {
    ($($method:ident $path:literal => $handler:path, $op:expr;)*) => {
        /// Registers every route of the table.
        pub(crate) fn register(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }

        /// Every operation of the table: (method, path, what it is).
        pub fn operations() -> Vec<(&'static str, &'static str, Op)> {
            vec![ $( (stringify!($method), $path, $op), )* ]
        }
    };
}

api! {
    get "/health" => health, Op::new("Liveness: 200 while the process serves").open();
    get "/ready" => ready, Op::new("Readiness: 200 when the node takes clients, else 503").open();
    get "/api/v1/openapi.json" => openapi, Op::new("This document").open();
    get "/api/v1/nodes" => nodes, Op::new("The cluster's nodes");
    get "/api/v1/hosts" => admin_sessions::hosts, Op::new("The served hosts and component domains");
    post "/api/v1/nodes/{id}/drain" => admin_drain::drain, Op::new("Drain this node (as SIGTERM)").ok(202);
    get "/api/v1/sessions" => sessions, Op::new("Sessions of the whole cluster, a page at a time").query(&[
        ("user", "string", "only this bare JID's"),
        ("node", "string", "only this node's"),
        ("status", "string", "active, hibernating, ended, expired, removed, replaced, revoked, abandoned or failed"),
        ("limit", "integer", "page size, 1 to 1000 (default 100)"),
        ("after", "string", "the previous page's next"),
        ("after_session", "string", "the previous page's next_session"),
        ("unbound", "boolean", "the connections not bound yet instead"),
    ]);
    get "/api/v1/sessions/{id}" => session_by_id, Op::new("One session, live or recently ended");
    delete "/api/v1/sessions/{id}" => delete_session, Op::new("End a session (status revoked)").body(REVOKE_BODY);
    post "/api/v1/sessions/{id}/remove" => admin_sessions::remove_session, Op::new("Sign a session out and drop it from the user's list (status removed)");
    post "/api/v1/users" => admin_users::create, Op::new("Create an account").ok(201).body(&[
        ("jid", "string", true, JID),
        ("password", "string", true, "its password (at most 1024 bytes)"),
    ]);
    get "/api/v1/users" => admin_users::list, Op::new("Accounts, a page at a time").query(&[
        ("host", "string", "only this host's"),
        ("limit", "integer", "page size, 1 to 1000 (default 100)"),
        ("after", "string", "the previous page's next"),
    ]);
    delete "/api/v1/users/{jid}" => admin_users::delete, Op::new("Delete an account; its sessions end on every node");
    put "/api/v1/users/{jid}/password" => admin_users::set_password, Op::new("Change a password; sessions, tokens and older JWTs end").body(&[
        ("password", "string", true, "the new password"),
    ]);
    post "/api/v1/users/{jid}/signout" => signout, Op::new("End every session and token of an account").body(REVOKE_BODY);
    get "/api/v1/users/{jid}/sessions" => user_sessions, Op::new("An account's sessions").query(&[
        ("history", "boolean", "the recently ended ones too, except those removed"),
    ]);
    post "/api/v1/users/{jid}/tokens" => issue_token, Op::new("Issue a login token (shown once)").ok(201).body(&[
        ("ttl_s", "integer", false, "lifetime in seconds (default: until revoked)"),
        ("purpose", "string", false, "what it is for (default login)"),
    ]);
    get "/api/v1/users/{jid}/tokens" => list_tokens, Op::new("An account's tokens (never their secrets)");
    delete "/api/v1/users/{jid}/tokens" => revoke_user_tokens, Op::new("Revoke every token of an account");
    delete "/api/v1/tokens/{id}" => revoke_token, Op::new("Revoke one token");
    post "/api/v1/prebind" => prebind, Op::new("A bound BOSH session for a page to attach to").body(&[
        ("jid", "string", true, JID),
        ("resource", "string", false, "the resource to bind"),
    ]);
    post "/api/v1/invites" => admin_invites::issue, Op::new("Issue an invitation to register").ok(201).body(&[
        ("host", "string", false, "the host (default: the first served)"),
        ("ttl_s", "integer", false, "lifetime in seconds"),
        ("uses", "integer", false, "how many accounts it may create (default 1)"),
    ]);
    get "/api/v1/invites" => admin_invites::list, Op::new("Invitations (never their tokens)");
    delete "/api/v1/invites/{id}" => admin_invites::revoke, Op::new("Revoke an invitation");
    get "/api/v1/rooms" => admin_rooms::list, Op::new("Chat rooms").query(&[
        ("service", "string", "only this MUC service's"),
        ("after", "string", "the previous page's last room"),
        ("limit", "integer", "page size"),
    ]);
    get "/api/v1/rooms/{jid}" => admin_rooms::show, Op::new("One room: configuration, affiliations, occupants");
    delete "/api/v1/rooms/{jid}" => admin_rooms::destroy, Op::new("Destroy a room").query(&[
        ("reason", "string", "shown to the occupants"),
    ]);
    delete "/api/v1/rooms/{jid}/occupants/{nick}" => admin_rooms::kick, Op::new("Kick an occupant").query(&[
        ("reason", "string", "shown to the occupants"),
    ]);
}

/// The problem answer every error is (RFC 9457).
fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The OpenAPI 3.1 document of the admin endpoint. `/metrics` (which may live on another
/// listener) is described with it.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut add = |method: &str, path: &str, op: &Op| {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        parameters.extend(op.query.iter().map(|(name, ty, description)| {
            json!({"name": name, "in": "query", "required": false,
                   "description": description, "schema": {"type": ty}})
        }));
        let id: String = format!("{method}{path}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut operation = json!({
            "operationId": id,
            "summary": op.summary,
            "parameters": parameters,
            "responses": {
                op.ok.to_string(): {
                    "description": "done",
                    "content": {"application/json": {"schema": {"type": "object"}}}
                },
                "400": problem_response("the request was wrong: the detail names the field"),
                "404": problem_response("no such thing (or no such endpoint)"),
            }
        });
        if op.secured {
            operation["responses"]["401"] = problem_response("a valid bearer token is required");
        } else {
            operation["security"] = json!([]);
        }
        if !op.body.is_empty() {
            let properties: serde_json::Map<String, Value> = op
                .body
                .iter()
                .map(|(name, ty, _, description)| {
                    (
                        name.to_string(),
                        json!({"type": ty, "description": description}),
                    )
                })
                .collect();
            let required: Vec<&str> = op
                .body
                .iter()
                .filter(|(_, _, required, _)| *required)
                .map(|(name, ..)| *name)
                .collect();
            operation["requestBody"] = json!({
                "required": !required.is_empty(),
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    // Unknown fields are refused with 400.
                    "additionalProperties": false,
                }}}
            });
        }
        paths
            .entry(path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(method.to_owned(), operation);
    };
    for (method, path, op) in operations() {
        add(method, path, &op);
    }
    add(
        "get",
        "/metrics",
        &Op::new("Prometheus metrics (docs/metrics.md); open unless [admin] metrics_auth"),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Parley admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The admin endpoint of a Parley node ([admin] listen). Every answer covers the whole cluster, whichever node is asked. Errors are RFC 9457 problems.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
                "required": ["type", "title", "status", "detail"],
            }},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

/// `GET /api/v1/openapi.json`.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_is_documented_once_with_its_path_parameters() {
        let doc = super::document();
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, _) in super::operations() {
            assert!(seen.insert((method, path)), "{method} {path} twice");
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path}");
            let params = path.matches('{').count();
            let in_path = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .count();
            assert_eq!(params, in_path, "{method} {path}");
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
