//! What the client-facing HTTP listener shares between its handlers: the sessions'
//! environment, the workers sessions start on, the BOSH table, and the listener's settings
//! (origins, when a client counts as encrypted, trusted proxies, the public URL).
//!
//! Its own module, below the handlers (`ws.rs`, `bosh.rs`, `web_client.rs`, `listener.rs`),
//! so that they depend on it and it on none of them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_rt::ArbiterHandle;
use actix_web::http::header;
use actix_web::HttpRequest;
use parley_session::SessionEnv;

/// When a client on the HTTP listener counts as encrypted (it never speaks TLS to Parley
/// itself: TLS ends at a reverse proxy in front of it).
/// Read from `[http] consider_secure` as `"loopback"`, `"always"` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsiderSecure {
    /// Connections from loopback (a reverse proxy on the same host) count as encrypted.
    #[default]
    Loopback,
    /// Every connection counts as encrypted (the proxy is elsewhere on a trusted network).
    Always,
    /// None does: with `require_encryption` nobody can log in over HTTP.
    Never,
}

/// What the listener needs.
pub struct WebState {
    /// The sessions' environment (the same as TCP's).
    pub env: Arc<SessionEnv>,
    /// Worker arbiters sessions are started on, in turn.
    pub workers: Arc<Vec<ArbiterHandle>>,
    next: AtomicUsize,
    /// Allowed `Origin`s for browsers; `*` allows any. Replaced on SIGHUP
    /// ([`WebState::set_origins`]).
    origins: parking_lot::RwLock<Vec<String>>,
    /// When a client counts as encrypted.
    pub consider_secure: ConsiderSecure,
    /// The public base URL (`https://chat.example.org`) for discovery; None: from the
    /// request's Host header.
    pub public_url: Option<String>,
    /// BOSH sessions (XEP-0124/0206).
    pub bosh: Arc<crate::bosh::BoshTable>,
    /// The built-in chat page, when `[http] web_client` is on.
    pub web_client: Option<crate::web_client::WebClient>,
    /// `[http] trusted_proxies`: whose forwarding headers are believed, and (with
    /// [`ConsiderSecure::Always`] and a non-empty list) the only peers that count as encrypted.
    pub trusted: crate::proxy::TrustedProxies,
    /// HTTP file upload (XEP-0363), when `[upload]` is on.
    pub uploads: Option<Arc<parley_upload::Uploads>>,
    /// `[http] proxy_protocol_from`: the balancers whose PROXY header every connection
    /// starts with ([`crate::proxy_header`]); None takes connections as they are.
    pub proxy: Option<Arc<crate::proxy_header::WebProxy>>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("origins", &*self.origins.read())
            .field("consider_secure", &self.consider_secure)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// A state for the listener.
    pub fn new(
        env: Arc<SessionEnv>,
        workers: Arc<Vec<ArbiterHandle>>,
        origins: Vec<String>,
        consider_secure: ConsiderSecure,
        public_url: Option<String>,
    ) -> WebState {
        WebState {
            env,
            workers,
            next: AtomicUsize::new(0),
            origins: parking_lot::RwLock::new(origins),
            consider_secure,
            public_url,
            bosh: Arc::new(crate::bosh::BoshTable::default()),
            web_client: None,
            trusted: crate::proxy::TrustedProxies::default(),
            uploads: None,
            proxy: None,
        }
    }

    /// Carries and serves uploaded files (XEP-0363, the `upload` module).
    pub fn with_uploads(mut self, uploads: Option<Arc<parley_upload::Uploads>>) -> Self {
        self.uploads = uploads;
        self
    }

    /// Believes `X-Forwarded-*` and `Forwarded` from these peers only.
    pub fn with_trusted_proxies(mut self, trusted: crate::proxy::TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// Takes connections from these balancers only, each starting with a PROXY header
    /// (`[http] proxy_protocol_from`); call before the listener starts.
    pub fn with_proxy_protocol(mut self, proxy: Option<crate::proxy_header::WebProxy>) -> Self {
        self.proxy = proxy.map(Arc::new);
        self
    }

    /// Bounds BOSH with `limits` (`[http] bosh_*`); call before the listener starts.
    pub fn with_bosh_limits(mut self, limits: crate::bosh_limits::BoshLimits) -> Self {
        self.bosh = Arc::new(crate::bosh::BoshTable::new(limits));
        self
    }

    /// Serves the built-in chat page ([`crate::web_client`]).
    pub fn with_web_client(mut self, client: Option<crate::web_client::WebClient>) -> Self {
        self.web_client = client;
        self
    }

    /// Puts new allowed origins in force (`[http] origins`, a config reload): for the next
    /// request on any connection.
    pub fn set_origins(&self, origins: Vec<String>) {
        *self.origins.write() = origins;
    }

    pub(crate) fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .read()
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    pub(crate) fn secure_for(&self, peer: Option<SocketAddr>) -> bool {
        match self.consider_secure {
            ConsiderSecure::Always => self.trusted.is_empty() || self.trusted.trusts(peer),
            ConsiderSecure::Never => false,
            ConsiderSecure::Loopback => peer.is_some_and(|p| p.ip().is_loopback()),
        }
    }

    /// The client's address: what a balancer's PROXY header said, else the TCP peer's, or
    /// what a trusted proxy says it is.
    pub(crate) fn client_addr(&self, req: &HttpRequest) -> Option<SocketAddr> {
        if let Some(client) = req.conn_data::<crate::proxy_header::ProxiedClient>() {
            return Some(client.0);
        }
        self.trusted.client_addr(req.peer_addr(), req.headers())
    }

    /// Whether the client of `req` counts as encrypted: what a trusted proxy says of the
    /// scheme it was reached by, else [`Self::secure_for`] of the TCP peer.
    pub(crate) fn secure_request(&self, req: &HttpRequest) -> bool {
        if self.consider_secure == ConsiderSecure::Never {
            return false;
        }
        self.trusted
            .forwarded_https(req.peer_addr(), req.headers())
            .unwrap_or_else(|| self.secure_for(req.peer_addr()))
    }

    pub(crate) fn next_worker(&self) -> &ArbiterHandle {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.workers[n % self.workers.len()]
    }

    /// `ws(s)://host/xmpp-websocket` and `http(s)://host/http-bind` for this request:
    /// `public_url`, else what a trusted proxy forwarded, else this connection's own `Host`
    /// with https when the connection counts as encrypted. A forwarded host from anyone
    /// else is never advertised (it would poison caches in front of discovery).
    pub(crate) fn endpoints(&self, req: &HttpRequest) -> (String, String) {
        self.public_endpoints().unwrap_or_else(|| {
            if self.trusted.trusts(req.peer_addr()) {
                let info = req.connection_info();
                return endpoints_at(&format!("{}://{}", info.scheme(), info.host()));
            }
            let scheme = if self.secure_for(req.peer_addr()) {
                "https"
            } else {
                "http"
            };
            endpoints_at(&format!("{scheme}://{}", direct_host(req)))
        })
    }

    /// The endpoints under `public_url`, if one is configured.
    pub(crate) fn public_endpoints(&self) -> Option<(String, String)> {
        self.public_url
            .as_deref()
            .map(|url| endpoints_at(url.trim_end_matches('/')))
    }
}

/// The `Host` of a request as the client sent it to this listener (no forwarding header),
/// when it is a plain `host[:port]`; else the listener's own address.
fn direct_host(req: &HttpRequest) -> String {
    let plain = |h: &&str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(plain)
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().local_addr().to_string())
}

fn endpoints_at(base: &str) -> (String, String) {
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    (format!("{ws}/xmpp-websocket"), format!("{base}/http-bind"))
}
