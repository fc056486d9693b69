//! `/api/v1/users`: create, list (paged), change the password of, and delete accounts. A
//! password change and a deletion end the account's sessions on every node, as `parley
//! user passwd` and `parley user del` do through this API: a deleted or re-keyed account
//! never keeps chatting.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use parley_accounts::{AccountError, AccountJid};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, SessionStatus};
use parley_storage::{AccountInfo, StorageError};

use crate::admin_sessions::end_user_sessions;
use crate::AdminState;
use crate::{account, admin_input, audit, problem, storage_error};

/// Largest page of `GET /api/v1/users`.
const MAX_PAGE: usize = 1000;
/// The page when the request names none.
const DEFAULT_PAGE: usize = 100;
/// Longest password the API takes, bytes (a bound before the key derivation runs).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    jid: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordRequest {
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    host: Option<String>,
    /// The last JID of the previous page.
    after: Option<String>,
    /// Taken as text so that a bad number gets a 400 naming `limit`.
    limit: Option<String>,
}

fn user_view(a: &AccountInfo) -> serde_json::Value {
    serde_json::json!({
        "jid": format!("{}@{}", a.username, a.host),
        "created": parley_proto::datetime::xep0082(a.created_at.saturating_mul(1000)),
        "password_changed": parley_proto::datetime::xep0082(a.password_changed_at.saturating_mul(1000)),
    })
}

/// SCRAM credentials for `password`, derived off the HTTP worker (thousands of PBKDF2
/// rounds must not stall the other requests).
async fn credentials(
    state: &AdminState,
    password: String,
) -> Result<Vec<parley_proto::sasl::ScramCredentials>, HttpResponse> {
    if let Err(e) = admin_input::short("password", Some(&password), MAX_PASSWORD_BYTES) {
        return Err(problem::bad_request(&e));
    }
    let iterations = state.policy.scram_iterations;
    match web::block(move || parley_accounts::derive_credentials(&password, iterations)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(problem::bad_request(&e.to_string())),
        Err(_) => Err(problem::internal("key derivation failed")),
    }
}

/// What a failed account operation answers.
fn account_failure(e: AccountError) -> HttpResponse {
    match e {
        AccountError::Account { source, .. } => match source {
            StorageError::NotFound { .. } => crate::no_such_account(),
            StorageError::AlreadyExists { .. } => problem::conflict("the account already exists"),
            e => storage_error(e),
        },
        AccountError::Password(text) => problem::bad_request(&format!("password: {text}")),
        e => {
            tracing::warn!(error = %e, "admin API account operation failed");
            problem::internal("the account operation failed")
        }
    }
}

/// `POST /api/v1/users` `{jid, password}`: a new account (201), 409 if it exists.
pub(crate) async fn create(
    req: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Json<CreateRequest>,
) -> HttpResponse {
    let body = body.into_inner();
    let account = match account(&state, &body.jid) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let creds = match credentials(&state, body.password).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Err(e) = parley_accounts::admin::create(&*state.storage, &account, &creds).await {
        return account_failure(e);
    }
    audit(&req, "user.create", &account.to_string());
    match state
        .storage
        .account(&account.username, &account.host)
        .await
    {
        Ok(Some(info)) => HttpResponse::Created().json(user_view(&info)),
        Ok(None) => crate::no_such_account(),
        Err(e) => storage_error(e),
    }
}

/// `GET /api/v1/users?host=&after=&limit=`: accounts sorted by host then username, a page at
/// a time; `next` is the `after` of the following page (absent on the last).
pub(crate) async fn list(
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let hosts: Vec<String> = state.router.hosts().map(str::to_owned).collect();
    let host = match parley_accounts::admin::host_filter(&hosts, query.host.as_deref()) {
        Ok(h) => h,
        Err(e) => return problem::bad_request(&format!("host: {e}")),
    };
    let limit = match admin_input::page_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE) {
        Ok(n) => n,
        Err(e) => return problem::bad_request(&e),
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(raw) => match AccountJid::parse(raw, &hosts) {
            Ok(a) => Some(a),
            Err(_) => return problem::bad_request("after must be an account JID of this server"),
        },
    };
    let page = state
        .storage
        .accounts_page(
            host.as_deref(),
            after
                .as_ref()
                .map(|a| (a.host.as_str(), a.username.as_str())),
            limit,
        )
        .await;
    match page {
        Ok(page) => {
            let next = (page.len() == limit)
                .then(|| page.last().map(|a| format!("{}@{}", a.username, a.host)))
                .flatten();
            HttpResponse::Ok().json(serde_json::json!({
                "users": page.iter().map(user_view).collect::<Vec<_>>(),
                "next": next,
            }))
        }
        Err(e) => storage_error(e),
    }
}

/// `PUT /api/v1/users/{jid}/password` `{password}`: new credentials; the account's tokens
/// (dropped with the old credentials), JWTs issued before now, and every session on every
/// node end with `<not-authorized/>`, status revoked.
pub(crate) async fn set_password(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    body: web::Json<PasswordRequest>,
) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let creds = match credentials(&state, body.into_inner().password).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Err(e) = parley_accounts::admin::set_credentials(&*state.storage, &account, &creds).await
    {
        return account_failure(e);
    }
    audit(&req, "user.password", &account.to_string());
    let reason = CloseReason::with_text(
        StreamCondition::NotAuthorized,
        "the account's password was changed",
    );
    match crate::sign_out_everywhere(&state, &account, reason).await {
        Ok((sessions, tokens)) => HttpResponse::Ok().json(serde_json::json!({
            "jid": account.to_string(),
            "sessions": sessions,
            "tokens": tokens,
        })),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /api/v1/users/{jid}`: deletes the account (its credentials, roster, offline
/// messages and tokens) and ends its sessions on every node with `<not-authorized/>`,
/// status removed.
pub(crate) async fn delete(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> HttpResponse {
    let account = match account(&state, &path.into_inner()) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    if let Err(e) = parley_accounts::admin::delete(&*state.storage, &account).await {
        return account_failure(e);
    }
    audit(&req, "user.delete", &account.to_string());
    let reason = CloseReason::with_text(StreamCondition::NotAuthorized, "the account was removed");
    let bare = account.to_string();
    let sessions = end_user_sessions(&state, &bare, reason, SessionStatus::Removed).await;
    HttpResponse::Ok().json(serde_json::json!({"removed": bare, "sessions": sessions}))
}
