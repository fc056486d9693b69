//! The live admin page at `/admin` on the admin listener: a small static page (HTML, JS,
//! CSS in `assets/admin/`, built into the binary) that is a client of the admin API. The
//! operator logs in with the admin token, which the page keeps in its tab only
//! (sessionStorage) and sends as the bearer header; the page itself holds no data, so it is
//! served without the token. It lists the cluster's nodes, sessions (search, filter by status
//! and type) and users, kicks sessions, signs users out and revokes their tokens, and reads
//! the current view again every two seconds.
//!
//! A strict Content-Security-Policy (scripts and styles from this origin only, no inline
//! code, no frames) and rendering by `textContent` only: JIDs, resources and addresses
//! shown are clients' input.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const PAGE: &str = include_str!("../assets/admin/admin.html");
const SCRIPT: &str = include_str!("../assets/admin/admin.js");
const STYLE: &str = include_str!("../assets/admin/admin.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn file(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", STYLE)
}

/// Registers `/admin` and its two assets.
pub(crate) fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(page))
        .route("/admin/admin.js", web::get().to(script))
        .route("/admin/admin.css", web::get().to(style));
}
