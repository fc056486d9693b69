//! `/api/v1/invites`: invitations to register an account in band (XEP-0401, XEP-0445),
//! as `parley invite …` issues them. The token is in the answer to its creation only;
//! listings show ids and times.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::{admin_input, storage_error, AdminState};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    /// Any JSON value, so that a bad one gets a 400 naming its field.
    host: Option<serde_json::Value>,
    ttl_s: Option<serde_json::Value>,
    uses: Option<serde_json::Value>,
}

fn view(i: &parley_storage::InviteRecord) -> serde_json::Value {
    serde_json::json!({
        "id": i.id,
        "host": i.host,
        "created": i.created_ms,
        "expires": i.expires_ms,
        "uses_left": i.uses_left,
    })
}

/// `POST /api/v1/invites` `{host?, ttl_s?, uses?}`: a new invitation; its token and
/// `xmpp:` URI are shown once.
pub(crate) async fn issue(
    req: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Bytes,
) -> HttpResponse {
    let body: IssueRequest = match admin_input::optional_json(&body) {
        Ok(body) => body,
        Err(e) => return admin_input::bad(&e),
    };
    let hosts: Vec<&str> = state.router.hosts().collect();
    let host = match &body.host {
        None => match hosts.first() {
            Some(h) => (*h).to_owned(),
            None => return admin_input::bad("this server serves no host"),
        },
        Some(v) => match v
            .as_str()
            .and_then(|h| parley_accounts::served_host(&hosts, h))
        {
            Some(h) => h,
            None => return admin_input::bad("host must be one of this server's hosts"),
        },
    };
    let ttl = match admin_input::ttl(body.ttl_s.as_ref(), state.policy.max_token_ttl_s) {
        Ok(Some(t)) => t,
        Ok(None) => std::time::Duration::from_secs(state.policy.invite_ttl_s),
        Err(e) => return admin_input::bad(&e),
    };
    let max = parley_accounts::invites::MAX_USES;
    let uses = match &body.uses {
        None => 1,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=max).contains(&n) => n,
            _ => return admin_input::bad(&format!("uses must be an integer from 1 to {max}")),
        },
    };
    crate::audit(&req, "invite.issue", &host);
    match parley_accounts::invites::issue(&*state.storage, &host, ttl, uses).await {
        Ok(issued) => {
            let mut v = view(&issued.record);
            v["token"] = serde_json::Value::String(issued.token);
            v["uri"] = serde_json::Value::String(issued.uri);
            HttpResponse::Created().json(v)
        }
        Err(e) => storage_error(e),
    }
}

/// `GET /api/v1/invites`: ids, hosts and times, never tokens.
pub(crate) async fn list(state: web::Data<AdminState>) -> HttpResponse {
    match parley_accounts::invites::list(&*state.storage).await {
        Ok(list) => HttpResponse::Ok()
            .json(serde_json::json!({ "invites": list.iter().map(view).collect::<Vec<_>>() })),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /api/v1/invites/{id}`.
pub(crate) async fn revoke(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    // Ids only: a pasted token (a secret) is not written to the log.
    let id: &str = &path;
    let shown = if id.len() <= 64 && !id.contains(':') {
        id
    } else {
        "(not an id)"
    };
    crate::audit(&req, "invite.revoke", shown);
    match parley_accounts::invites::revoke(&*state.storage, &path.into_inner()).await {
        Ok(true) => HttpResponse::Ok().json(serde_json::json!({ "revoked": 1 })),
        Ok(false) => crate::problem::not_found("no such invitation"),
        Err(e) => storage_error(e),
    }
}
