//! The admin API's one error format: RFC 9457 problem details (`application/problem+json`,
//! members `type`, `title`, `status`, `detail`). Every refusal the API sends is built here, so
//! a client (the CLI, a script, the admin page) reads one shape, and the extractors' own
//! errors (bad JSON, an unknown field, a bad query, an unknown route) are mapped to it too:
//! actix's plain-text defaults never reach the wire.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

/// The media type of RFC 9457 §3.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem answer: `status`, its standard reason as `title` (RFC 9457 §3.1.1: `type` is
/// `about:blank`, so the title is the status phrase), and `detail` saying what was wrong in
/// words a person can act on (naming the field, for a bad request).
pub fn problem(status: StatusCode, detail: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        }))
}

/// 400: the request was wrong; `detail` names the field.
pub fn bad_request(detail: &str) -> HttpResponse {
    problem(StatusCode::BAD_REQUEST, detail)
}

/// 401 with the `WWW-Authenticate` challenge of RFC 6750 §3.
pub fn unauthorized() -> HttpResponse {
    let mut resp = problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// 404: `detail` says what does not exist.
pub fn not_found(detail: &str) -> HttpResponse {
    problem(StatusCode::NOT_FOUND, detail)
}

/// 409: the request conflicts with what exists.
pub fn conflict(detail: &str) -> HttpResponse {
    problem(StatusCode::CONFLICT, detail)
}

/// 503: something the answer needs is off or unavailable.
pub fn unavailable(detail: &str) -> HttpResponse {
    problem(StatusCode::SERVICE_UNAVAILABLE, detail)
}

/// 500: a failure the caller cannot fix (the log says more).
pub fn internal(detail: &str) -> HttpResponse {
    problem(StatusCode::INTERNAL_SERVER_ERROR, detail)
}

/// What serde said about a body or query, cut to the part that names the field (serde's
/// messages are "unknown field `ttl`, expected one of …" or "invalid type: string \"x\",
/// expected u64", with a position after for JSON).
fn serde_detail(what: &str, said: &str) -> String {
    format!("invalid {what}: {said}")
}

/// JSON bodies: at most `limit` bytes; a body that is not JSON, has a field the endpoint
/// does not know, or a value of the wrong type is a 400 problem naming it.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req| {
            let detail = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    format!("the JSON body must be at most {limit} bytes")
                }
                actix_web::error::JsonPayloadError::Deserialize(e) => {
                    serde_detail("JSON body", &e.to_string())
                }
                other => serde_detail("JSON body", &other.to_string()),
            };
            actix_web::error::InternalError::from_response(err, bad_request(&detail)).into()
        })
}

/// Query strings: a parameter the endpoint does not know, or one of the wrong type, is a
/// 400 problem naming it.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            actix_web::error::QueryPayloadError::Deserialize(e) => {
                serde_detail("query", &e.to_string())
            }
            other => serde_detail("query", &other.to_string()),
        };
        actix_web::error::InternalError::from_response(err, bad_request(&detail)).into()
    })
}

/// An optional JSON body: empty is the default; anything else must parse into `T` (whose
/// fields are `deny_unknown_fields`), or it is refused naming the field.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| serde_detail("JSON body", &e.to_string()))
}

/// The answer for a path no route serves.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    not_found(&format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        ttl_s: Option<u64>,
    }

    #[test]
    fn rfc9457_3_a_problem_has_its_members_and_media_type() {
        let resp = bad_request("ttl_s must be an integer");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        let resp = unauthorized();
        assert_eq!(
            resp.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }

    #[test]
    fn an_unknown_or_mistyped_field_is_named() {
        let e = optional_json::<Body>(br#"{"ttl": 60}"#).unwrap_err();
        assert!(e.contains("unknown field `ttl`"), "{e}");
        let e = optional_json::<Body>(br#"{"ttl_s": "60"}"#).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = optional_json::<Body>(br#"{"ttl_s": 6"#).unwrap_err();
        assert!(e.starts_with("invalid JSON body"), "{e}");
        assert!(optional_json::<Body>(b"  ").unwrap().ttl_s.is_none());
    }
}
