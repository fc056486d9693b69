//! The origin rules of the client listener: which pages may use it (`[http] origins`, the
//! same-origin rule for pages it serves itself) and the CORS headers that tell browsers so.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::web_state::WebState;

/// Whether `origin` is the origin the request was made to (its host and port are the
/// request's `Host`, or it is `public_url`'s origin): a page this listener served itself,
/// such as the built-in chat page, is never cross-site. Behind a proxy that keeps `Host`
/// this holds as it is; behind one that rewrites it, `public_url` says where pages live.
pub(crate) fn same_origin(req: &HttpRequest, state: &WebState, origin: &str) -> bool {
    if let Some(public) = &state.public_url {
        let public = public.trim_end_matches('/');
        // The origin of "https://chat.example.org/sub" is "https://chat.example.org".
        let scheme_end = public.find("://").map_or(0, |i| i + 3);
        let public_origin = match public[scheme_end..].find('/') {
            Some(i) => &public[..scheme_end + i],
            None => public,
        };
        if public_origin.eq_ignore_ascii_case(origin) {
            return true;
        }
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match (authority, host) {
        (Some(a), Some(h)) => !a.is_empty() && a.eq_ignore_ascii_case(h),
        _ => false,
    }
}

/// Adds the CORS headers for an allowed `Origin` (browsers refuse the answer otherwise).
pub(crate) fn cors_response(
    req: &HttpRequest,
    state: &WebState,
    resp: HttpResponse,
) -> HttpResponse {
    cors(req, state, resp)
}

pub(crate) fn cors(req: &HttpRequest, state: &WebState, mut resp: HttpResponse) -> HttpResponse {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| state.origin_allowed(o));
        if allowed {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::HeaderValue::from_static("GET, HEAD, POST, PUT, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::HeaderValue::from_static("Content-Type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                header::HeaderValue::from_static("7200"),
            );
        }
    }
    resp
}
