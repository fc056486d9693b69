//! Bounds on what the admin API accepts, and where `/metrics` is served (`[admin]
//! metrics_auth`, `metrics_listen`).
//!
//! Every number the API takes is checked against a range and refused with 400 and a message
//! that names the field, before it reaches arithmetic (a `ttl_s` of 2^64-1 once overflowed
//! the token's expiry). Strings are bounded too, and JSON bodies by size, so that a caller
//! holding the token — or a script gone wrong — cannot make the endpoint allocate at will.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::AdminState;

/// Largest JSON body the API reads, bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Longest `purpose` of a token, characters.
pub const MAX_PURPOSE_CHARS: usize = 64;
/// Longest `reason` text sent with a revocation, characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// Longest JID-like query value (`user`, `after`, `node`), bytes: a full JID's maximum
/// (RFC 7622 §3.1: three parts of at most 1023 bytes, plus separators).
pub const MAX_JID_BYTES: usize = 3071;
/// Longest resource, bytes (RFC 7622 §3.4).
pub const MAX_RESOURCE_BYTES: usize = 1023;

/// `[admin]` settings beyond the listener and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPolicy {
    /// `/metrics` requires the bearer token (`metrics_auth`).
    pub metrics_auth: bool,
    /// `/metrics` is served by a listener of its own (`metrics_listen`), not by the admin
    /// listener.
    pub metrics_elsewhere: bool,
    /// Longest token lifetime the API grants (`max_token_ttl_s`).
    pub max_token_ttl_s: u64,
    /// An invitation's lifetime when the request names none (`[register] invite_ttl_s`).
    pub invite_ttl_s: u64,
    /// PBKDF2 rounds of the credentials the API derives (`[sasl] scram_iterations`).
    pub scram_iterations: u32,
}

impl Default for AdminPolicy {
    fn default() -> Self {
        AdminPolicy {
            metrics_auth: false,
            metrics_elsewhere: false,
            max_token_ttl_s: 365 * 24 * 3600,
            invite_ttl_s: 7 * 24 * 3600,
            scram_iterations: 4096,
        }
    }
}

/// A 400 answer naming what was wrong (each check below says it in its `Err`).
pub(crate) fn bad(text: &str) -> HttpResponse {
    crate::problem::bad_request(text)
}

/// `ttl_s`: absent, or an integer from 1 to `max`.
pub(crate) fn ttl(value: Option<&serde_json::Value>, max: u64) -> Result<Option<Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_u64() {
        Some(n) if (1..=max).contains(&n) => Ok(Some(Duration::from_secs(n))),
        _ => Err(format!("ttl_s must be an integer from 1 to {max}")),
    }
}

/// A page size (`limit`): absent (the default), or an integer from 1 to `max`.
pub(crate) fn page_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("limit must be an integer from 1 to {max}")),
    }
}

/// A string field of at most `max` bytes.
pub(crate) fn short(field: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    match value {
        Some(v) if v.len() > max => Err(format!("{field} must be at most {max} bytes")),
        _ => Ok(()),
    }
}

/// JSON bodies: at most [`MAX_JSON_BYTES`], and a bad one is a 400 problem like every
/// other ([`crate::problem`]).
pub(crate) fn json_config() -> web::JsonConfig {
    crate::problem::json_config(MAX_JSON_BYTES)
}

/// An optional JSON body: empty is the default; anything else must parse (a body that does
/// not is refused, never taken as empty). Its size is bounded by the `PayloadConfig`.
pub(crate) fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, String> {
    crate::problem::optional_json(body)
}

/// Whether `/metrics` may be read by this request (`[admin] metrics_auth`).
pub(crate) fn metrics_allowed(req: &actix_web::HttpRequest, state: &AdminState) -> bool {
    !state.policy.metrics_auth || crate::authorized(req, state)
}

/// Starts a listener that serves `/metrics` only (`[admin] metrics_listen`), so that a
/// scraper's network need not reach the admin API at all.
pub fn metrics_server(
    state: AdminState,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, Server)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(crate::metrics))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let local = server.addrs().first().copied().unwrap_or(addr);
    Ok((local, server.run()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_numbers_out_of_range_are_refused_naming_the_field() {
        let max = 3600;
        assert_eq!(ttl(None, max).unwrap(), None);
        assert_eq!(
            ttl(Some(&serde_json::json!(60)), max).unwrap(),
            Some(Duration::from_secs(60))
        );
        for v in [
            serde_json::json!(0),
            serde_json::json!(3601),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!("60"),
            serde_json::json!(u64::MAX),
        ] {
            assert!(ttl(Some(&v), max).unwrap_err().contains("ttl_s"), "{v}");
        }
        assert_eq!(page_limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(page_limit(Some("1000"), 100, 1000).unwrap(), 1000);
        for raw in ["0", "1001", "-1", "99999999999999999999999", "ten"] {
            assert!(page_limit(Some(raw), 100, 1000).is_err(), "{raw}");
        }
        assert!(short("purpose", Some(&"x".repeat(65)), 64).is_err());
        assert!(short("purpose", Some("login"), 64).is_ok());
    }
}
