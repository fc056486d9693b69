//! The CLI's client of a running node's admin API: one HTTP/1.1 request on the configured
//! `[admin] listen` address with the bearer token (`[admin] token`, else the node's local
//! credential in the data directory, see `local_admin`). It tells a node that is not
//! running (nothing listens) from one that refused, so that account commands can fall back
//! to the storage when no server is there to end sessions.

use std::io::{Read, Write};
use std::time::Duration;

use crate::config::Config;

/// Why an admin call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    /// No server answers there (or the endpoint is disabled): nothing is running to act.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered with an error: its status and RFC 9457 `detail`.
    #[error(
        "admin endpoint {addr} answered HTTP {status}{}",
        detail_suffix(detail)
    )]
    Status {
        /// The endpoint.
        addr: String,
        /// The HTTP status.
        status: u16,
        /// What the endpoint said, if anything.
        detail: Option<String>,
    },
    /// Anything else (a refused token, a broken answer).
    #[error("{0}")]
    Failed(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// A request with an optional JSON body; the JSON answer of a 2xx.
pub fn call(
    config: &Config,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, AdminCallError> {
    let addr = config.admin.listen.ok_or_else(|| {
        AdminCallError::Unreachable(
            "the admin endpoint is disabled ([admin] listen is not set)".to_owned(),
        )
    })?;
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
            AdminCallError::Unreachable(format!(
                "cannot reach the admin endpoint at {addr} ([admin] listen): {e}"
            ))
        })?;
    let token = token(config)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| AdminCallError::Failed(e.to_string()))?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| AdminCallError::Failed(format!("admin endpoint {addr}: {e}")))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| AdminCallError::Failed(format!("admin endpoint {addr}: {e}")))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match status {
        200..=299 => {}
        401 => {
            return Err(AdminCallError::Failed(format!(
                "admin endpoint {addr} refused the token ([admin] token)"
            )))
        }
        status => {
            let detail = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|j| j["detail"].as_str().map(str::to_owned));
            return Err(AdminCallError::Status {
                addr: addr.to_string(),
                status,
                detail,
            });
        }
    }
    serde_json::from_str(body)
        .map_err(|e| AdminCallError::Failed(format!("admin endpoint {addr}: {e}")))
}

/// `[admin] token`, else the local credential the server keeps in its data directory.
fn token(config: &Config) -> Result<String, AdminCallError> {
    if let Some(token) = &config.admin.token {
        return Ok(token.clone());
    }
    crate::local_admin::read(&config.server.data_dir).map_err(|e| {
        AdminCallError::Failed(format!(
            "[admin] token is not set in the config and the local admin credential {} cannot \
             be read ({e}): run this as the server's user, or set [admin] token",
            crate::local_admin::path(&config.server.data_dir).display()
        ))
    })
}

/// A path segment, percent-encoded (RFC 3986 §2.1) but for unreserved characters and `@`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
