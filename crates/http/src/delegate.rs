//! Delegated authentication (`[auth] delegate_url`): a PLAIN password is checked by the
//! site's own backend with `POST {"user", "host", "password"}` as JSON; HTTP 200 means yes,
//! 401 or 403 means no, and anything else, a connection failure or the timeout fails closed
//! (the client gets `<temporary-auth-failure/>` and the log says why, without the password).
//!
//! A plain HTTP/1.1 client is enough here: the backend is expected on loopback or a private
//! network (a sidecar); put a TLS-terminating proxy in between otherwise.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use parley_session::ExternalAuth;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The backend's address and path, from an `http://host:port/path` URL.
#[derive(Debug, Clone)]
pub struct DelegatedAuth {
    authority: String,
    path: String,
    timeout: Duration,
}

impl DelegatedAuth {
    /// Parses `url` (http:// only); Err names what is wrong.
    pub fn new(url: &str, timeout: Duration) -> Result<DelegatedAuth, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("must be an http:// URL (terminate TLS in a proxy)")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err("has no host".into());
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(DelegatedAuth {
            authority,
            path: path.to_owned(),
            timeout,
        })
    }

    async fn ask(&self, username: &str, host: &str, password: &str) -> Result<bool, String> {
        let body =
            serde_json::json!({"user": username, "host": host, "password": password}).to_string();
        let mut stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.authority,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("writing to {}: {e}", self.authority))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        // The status line is all that counts; read until it is complete.
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading from {}: {e}", self.authority))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("{} sent no HTTP status", self.authority))?;
        match status {
            200 => Ok(true),
            401 | 403 => Ok(false),
            other => Err(format!("{} answered HTTP {other}", self.authority)),
        }
    }
}

impl ExternalAuth for DelegatedAuth {
    fn check(
        &self,
        username: &str,
        host: &str,
        password: &str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send>> {
        let me = self.clone();
        let (u, h, p) = (username.to_owned(), host.to_owned(), password.to_owned());
        Box::pin(async move {
            match tokio::time::timeout(me.timeout, me.ask(&u, &h, &p)).await {
                Ok(verdict) => verdict,
                Err(_) => Err(format!(
                    "{} did not answer within {:?}",
                    me.authority, me.timeout
                )),
            }
        })
    }
}
