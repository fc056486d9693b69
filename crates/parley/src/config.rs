//! The server configuration: a TOML file (documented in `config/parley.toml`), its defaults
//! and its validation.
//!
//! Every error names the file and the dotted key it is about (and the line, when the problem
//! was found while parsing), because an operator fixing a config at 3am should not have to
//! guess which of two `listen` keys is meant.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod trust;
pub use trust::ProxyNet;
mod http_limits;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the served domains and process-wide settings.
    pub server: ServerConfig,
    /// `[c2s]`: client-to-server listeners and per-connection limits.
    pub c2s: C2sConfig,
    /// `[tls]`: the certificate presented to clients.
    pub tls: TlsConfig,
    /// `[sasl]`: authentication settings.
    pub sasl: SaslConfig,
    /// `[roster]`: roster limits (RFC 6121 §2).
    pub roster: RosterConfig,
    /// `[offline]`: offline message storage (XEP-0160).
    pub offline: OfflineConfig,
    /// `[quotas]`: per-account bounds on what one account may store or hold.
    pub quotas: QuotasConfig,
    /// `[users]`: bounds on the user actors (one per bare JID).
    pub users: UsersConfig,
    /// `[admin]`: the admin API, health, readiness and metrics over HTTP.
    pub admin: AdminConfig,
    /// `[http]`: the client-facing HTTP listener (WebSocket, discovery).
    pub http: HttpConfig,
    /// `[auth]`: logins other than the account password (JWT, delegated).
    pub auth: AuthConfig,
    /// `[storage]`: where accounts and state are kept.
    pub storage: StorageConfig,
    /// `[log]`: logging verbosity and format.
    pub log: LogConfig,
    /// `[limits]`: connection limits per address and per node, and the read rate.
    pub limits: LimitsConfig,
    /// `[cluster]`: membership of a cluster; absent for a single node (no etcd needed).
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// This node's unique id; unset: the host name.
    pub node_id: Option<String>,
    /// Where the node-link listener binds.
    pub peer_listen: SocketAddr,
    /// Where other nodes reach this one (`host:port`); unset: `peer_listen`.
    pub peer_advertise: Option<String>,
    /// Lease TTL in seconds: how long a dead node's sessions stay registered.
    pub lease_ttl_s: u64,
    /// Key prefix in etcd, so that several clusters can share one etcd.
    pub prefix: String,
    /// This node's certificate chain for mutual TLS on node links (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA that signs every node's certificate (PEM).
    pub tls_ca: Option<PathBuf>,
    /// The cluster's shared secret for node links (32+ bytes).
    pub secret: Option<String>,
    /// A file holding that secret (first line).
    pub secret_file: Option<PathBuf>,
    /// PEM CA bundle for `https://` etcd endpoints; unset: the system's CA bundle.
    pub etcd_ca: Option<PathBuf>,
    /// This node's client certificate for etcd (PEM), for `--client-cert-auth`.
    pub etcd_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub etcd_key: Option<PathBuf>,
    /// etcd user (etcd's own authentication); unset: no login.
    pub etcd_user: Option<String>,
    /// That user's password; prefer `etcd_password_file`.
    pub etcd_password: Option<String>,
    /// A file whose first line is that password.
    pub etcd_password_file: Option<PathBuf>,
    /// How long a peer has to complete the link handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Node-link connections open at once from one IP address.
    pub max_links_per_address: usize,
    /// Largest node-link frame, in bytes (sent or received).
    pub max_frame_bytes: usize,
    /// Bytes that may wait in the send queue toward one peer.
    pub send_queue_bytes: usize,
    /// How long a frame about a peer's session waits for its claim to show in the registry.
    pub registry_wait_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            etcd: vec!["http://127.0.0.1:2379".to_owned()],
            node_id: None,
            peer_listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            peer_advertise: None,
            lease_ttl_s: 10,
            prefix: "/parley".to_owned(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            secret: None,
            secret_file: None,
            etcd_ca: None,
            etcd_cert: None,
            etcd_key: None,
            etcd_user: None,
            etcd_password: None,
            etcd_password_file: None,
            handshake_timeout_ms: 5_000,
            max_links_per_address: 8,
            max_frame_bytes: 4 << 20,
            send_queue_bytes: 64 << 20,
            registry_wait_ms: 2_000,
        }
    }
}

impl ClusterConfig {
    /// The node id: configured, or the host name.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(host_name)
    }

    /// The advertised peer address.
    pub fn peer_advertise(&self) -> String {
        self.peer_advertise
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }

    fn check(&self) -> Result<(), Violation> {
        if self.etcd.is_empty() {
            return Err(Violation::new(
                "cluster.etcd",
                "[]",
                "needs at least one etcd endpoint such as \"http://127.0.0.1:2379\"",
            ));
        }
        for (i, url) in self.etcd.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Violation::new(
                    &format!("cluster.etcd[{i}]"),
                    Quoted(url),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(id) = &self.node_id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                return Err(Violation::new(
                    "cluster.node_id",
                    Quoted(id),
                    "must be 1-64 characters of letters, digits, '-', '_' or '.'",
                ));
            }
        }
        if let Some(adv) = &self.peer_advertise {
            let ok = adv
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(Violation::new(
                    "cluster.peer_advertise",
                    Quoted(adv),
                    "must be \"host:port\" as other nodes reach this one",
                ));
            }
        }
        if self.peer_advertise.is_none() && self.peer_listen.ip().is_unspecified() {
            return Err(Violation::new(
                "cluster.peer_advertise",
                "unset",
                "must be set when peer_listen is a wildcard address",
            ));
        }
        if !(2..=300).contains(&self.lease_ttl_s) {
            return Err(Violation::new(
                "cluster.lease_ttl_s",
                self.lease_ttl_s,
                "must be from 2 to 300 seconds",
            ));
        }
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => {}
            (Some(cert), Some(key), Some(ca)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key), ("tls_ca", ca)] {
                    if !path.is_file() {
                        return Err(Violation::new(
                            &format!("cluster.{name}"),
                            Quoted(path.display()),
                            "no such file",
                        ));
                    }
                }
            }
            _ => {
                return Err(Violation::new(
                    "cluster.tls_cert",
                    "…",
                    "set tls_cert, tls_key and tls_ca together (mutual TLS on node links), or none",
                ))
            }
        }
        self.check_links()?;
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return Err(Violation::new(
                "cluster.prefix",
                Quoted(&self.prefix),
                "must start with '/' and not end with one, e.g. \"/parley\"",
            ));
        }
        self.check_trust()
    }
}

impl ClusterConfig {
    /// Node-link trust and bounds (issue 10): authentication is required.
    fn check_links(&self) -> Result<(), Violation> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return Err(Violation::new(
                    "cluster.secret",
                    "\"…\"",
                    "set cluster.secret or cluster.secret_file, not both",
                ))
            }
            (Some(s), None) if s.len() < 32 => {
                return Err(Violation::new(
                    "cluster.secret",
                    "\"…\"",
                    "must be at least 32 bytes (generate one with `openssl rand -hex 32`)",
                ))
            }
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Err(e) => {
                    return Err(Violation::new(
                        "cluster.secret_file",
                        Quoted(path.display()),
                        format!("cannot be read: {e}"),
                    ))
                }
                Ok(text) if text.trim().len() < 32 => return Err(Violation::new(
                    "cluster.secret_file",
                    Quoted(path.display()),
                    "must hold a secret of at least 32 bytes (white space around it is trimmed)",
                )),
                Ok(_) => {}
            },
            (None, None) if self.tls_cert.is_none() => {
                return Err(Violation::new(
                    "cluster.secret",
                    "unset",
                    "node links must be authenticated: set cluster.secret or cluster.secret_file \
                     (a shared secret of at least 32 bytes), or cluster.tls_cert, cluster.tls_key \
                     and cluster.tls_ca (mutual TLS)",
                ))
            }
            _ => {}
        }
        if !(100..=60_000).contains(&self.handshake_timeout_ms) {
            return Err(Violation::new(
                "cluster.handshake_timeout_ms",
                self.handshake_timeout_ms,
                "must be from 100 to 60000 milliseconds",
            ));
        }
        if !(1..=1024).contains(&self.max_links_per_address) {
            return Err(Violation::new(
                "cluster.max_links_per_address",
                self.max_links_per_address,
                "must be from 1 to 1024",
            ));
        }
        if !((64 << 10)..=(64 << 20)).contains(&self.max_frame_bytes) {
            return Err(Violation::new(
                "cluster.max_frame_bytes",
                self.max_frame_bytes,
                "must be from 65536 (64 KiB) to 67108864 (64 MiB)",
            ));
        }
        if self.send_queue_bytes < self.max_frame_bytes || self.send_queue_bytes > (4 << 30) {
            return Err(Violation::new(
                "cluster.send_queue_bytes",
                self.send_queue_bytes,
                "must be at least cluster.max_frame_bytes and at most 4 GiB",
            ));
        }
        if !(100..=30_000).contains(&self.registry_wait_ms) {
            return Err(Violation::new(
                "cluster.registry_wait_ms",
                self.registry_wait_ms,
                "must be from 100 to 30000 milliseconds",
            ));
        }
        Ok(())
    }
}

/// The host name, for the default node id.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parley".to_owned())
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The XMPP domains served (normalized with nameprep by [`Config::from_toml_str`]).
    pub hosts: Vec<String>,
    /// Where the server keeps its files; relative paths are relative to the working directory.
    pub data_dir: PathBuf,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hosts: vec!["localhost".to_owned()],
            data_dir: PathBuf::from("./data"),
            workers: 0,
        }
    }
}

/// `[c2s]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sConfig {
    /// STARTTLS listeners (RFC 6120 §5).
    pub listen: Vec<SocketAddr>,
    /// Direct TLS listeners (XEP-0368).
    pub direct_tls: Vec<SocketAddr>,
    /// Refuse to authenticate or route for clients that have not negotiated TLS.
    pub require_encryption: bool,
    /// The largest stanza accepted, in bytes; advertised via XEP-0478.
    pub max_stanza_bytes: usize,
    /// The deepest element nesting accepted within a stanza.
    pub max_depth: usize,
    /// The most attributes accepted on one element.
    pub max_attributes: usize,
    /// The most namespace declarations in scope at any element of a stanza, the
    /// stream header's included.
    pub max_namespace_declarations: usize,
    /// What happens when a client binds a resource that is already bound.
    pub resource_conflict: ResourceConflict,
    /// Seconds an unauthenticated connection may stay open.
    pub auth_timeout_s: u64,
    /// Failed SASL attempts before the stream is closed.
    pub max_auth_attempts: u32,
    /// Outbound queue bound per connection, in stanzas.
    pub send_queue_stanzas: usize,
    /// Outbound queue bound per connection, in bytes.
    pub send_queue_bytes: usize,
    /// Seconds after which a session ends (status expired) whatever it does; 0: never.
    pub max_session_lifetime_s: u64,
    /// Seconds without anything from the client after which its session ends (status
    /// expired); 0: never.
    pub idle_timeout_s: u64,
    /// SASL exchanges (`<auth/>` elements) one connection may start, whatever their outcome.
    pub max_sasl_attempts: u32,
    /// Stream headers (the first and every restart; RFC 7395 `<open/>`) per connection.
    pub max_stream_opens: u32,
}

impl Default for C2sConfig {
    fn default() -> Self {
        C2sConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5222))],
            direct_tls: vec![SocketAddr::from(([127, 0, 0, 1], 5223))],
            require_encryption: true,
            max_stanza_bytes: 262_144,
            max_depth: 32,
            max_attributes: 64,
            max_namespace_declarations: 64,
            resource_conflict: ResourceConflict::KickOld,
            auth_timeout_s: 60,
            max_auth_attempts: 3,
            send_queue_stanzas: 10_000,
            send_queue_bytes: 4_194_304,
            max_session_lifetime_s: 0,
            idle_timeout_s: 0,
            max_sasl_attempts: 5,
            max_stream_opens: 10,
        }
    }
}

/// `[limits]`: in the style of Prosody's mod_limits and ejabberd's shapers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections (c2s, WebSocket, BOSH sessions) one address (IPv6: one /64) may hold.
    pub max_connections_per_ip: usize,
    /// New connections one address may open per second, on average.
    pub connection_rate_per_ip: u32,
    /// New connections one address may open at once after a quiet period.
    pub connection_burst_per_ip: u32,
    /// Sessions this node holds in all.
    pub max_sessions: usize,
    /// Bytes per second one session may send, on average; past it reading pauses.
    pub read_bytes_per_s: u32,
    /// Bytes one session may send at once after a quiet period.
    pub read_burst_bytes: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections_per_ip: 100,
            connection_rate_per_ip: 20,
            connection_burst_per_ip: 40,
            max_sessions: 100_000,
            read_bytes_per_s: 65_536,
            read_burst_bytes: 262_144,
        }
    }
}

/// Below this a login (a few kilobytes) takes seconds.
pub const MIN_READ_BYTES_PER_S: u32 = 1024;

impl LimitsConfig {
    fn check(&self, max_stanza_bytes: usize) -> Result<(), Violation> {
        for (key, value) in [
            ("limits.max_connections_per_ip", self.max_connections_per_ip),
            (
                "limits.connection_rate_per_ip",
                self.connection_rate_per_ip as usize,
            ),
            (
                "limits.connection_burst_per_ip",
                self.connection_burst_per_ip as usize,
            ),
            ("limits.max_sessions", self.max_sessions),
        ] {
            if value == 0 {
                return Err(Violation::new(key, 0, "must be greater than 0"));
            }
        }
        if self.read_bytes_per_s < MIN_READ_BYTES_PER_S {
            return Err(Violation::new(
                "limits.read_bytes_per_s",
                self.read_bytes_per_s,
                format!("must be at least {MIN_READ_BYTES_PER_S}"),
            ));
        }
        if (self.read_burst_bytes as usize) < max_stanza_bytes {
            return Err(Violation::new(
                "limits.read_burst_bytes",
                self.read_burst_bytes,
                format!(
                    "must be at least c2s.max_stanza_bytes ({max_stanza_bytes}), so that one whole stanza can arrive at once"
                ),
            ));
        }
        Ok(())
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret for JWT logins (PLAIN with a JWT as the password); unset: off.
    pub jwt_secret: Option<String>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, in seconds.
    pub jwt_leeway_s: u64,
    /// A backend that checks PLAIN passwords (`POST` JSON, 200 = yes); unset: off.
    pub delegate_url: Option<String>,
    /// How long the backend may take, in milliseconds; past it the login fails.
    pub delegate_timeout_ms: u64,
    /// When set, a JWT's `aud` must contain it.
    pub jwt_audience: Option<String>,
    /// When set, a JWT's `iss` must equal it.
    pub jwt_issuer: Option<String>,
    /// The longest JWT lifetime accepted (`exp - iat`, or `exp - now` without `iat`).
    pub jwt_max_lifetime_s: u64,
    /// Seconds during which failed authentications count (from the first of a window).
    pub failure_window_s: u64,
    /// Failures from one address (IPv6: its /64) before its failure answers are delayed.
    pub failure_ip_delay_after: u32,
    /// Failures from one address before its attempts are refused for the window.
    pub failure_ip_refuse_after: u32,
    /// Failures on one account before its failure answers are delayed.
    pub failure_account_delay_after: u32,
    /// Failures on one account before it is refused to the addresses that failed on it.
    pub failure_account_refuse_after: u32,
    /// The first delay on a failure answer, in milliseconds; each further failure doubles it.
    pub failure_delay_ms: u64,
    /// The longest delay on a failure answer, in milliseconds.
    pub failure_max_delay_ms: u64,
    /// Entries (addresses, accounts, pairs) the failure table holds at most.
    pub failure_table_size: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            jwt_leeway_s: 30,
            delegate_url: None,
            delegate_timeout_ms: 3000,
            jwt_audience: None,
            jwt_issuer: None,
            jwt_max_lifetime_s: 86_400,
            failure_window_s: 600,
            failure_ip_delay_after: 5,
            failure_ip_refuse_after: 20,
            failure_account_delay_after: 5,
            failure_account_refuse_after: 10,
            failure_delay_ms: 250,
            failure_max_delay_ms: 8_000,
            failure_table_size: 100_000,
        }
    }
}

impl AuthConfig {
    /// The JWT rules and the failed-authentication limits.
    fn check_limits(&self) -> Result<(), Violation> {
        for (key, value) in [
            ("auth.jwt_audience", &self.jwt_audience),
            ("auth.jwt_issuer", &self.jwt_issuer),
        ] {
            if value.as_ref().is_some_and(|v| v.is_empty()) {
                return Err(Violation::new(
                    key,
                    "\"\"",
                    "must not be empty (leave it unset)",
                ));
            }
        }
        if !(60..=31_536_000).contains(&self.jwt_max_lifetime_s) {
            return Err(Violation::new(
                "auth.jwt_max_lifetime_s",
                self.jwt_max_lifetime_s,
                "must be from 60 to 31536000 (a year)",
            ));
        }
        if !(1..=86_400).contains(&self.failure_window_s) {
            return Err(Violation::new(
                "auth.failure_window_s",
                self.failure_window_s,
                "must be from 1 to 86400",
            ));
        }
        for (key, value) in [
            ("auth.failure_ip_refuse_after", self.failure_ip_refuse_after),
            (
                "auth.failure_account_refuse_after",
                self.failure_account_refuse_after,
            ),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(Violation::new(key, value, "must be from 1 to 1000000"));
            }
        }
        for (key, value, refuse) in [
            (
                "auth.failure_ip_delay_after",
                self.failure_ip_delay_after,
                self.failure_ip_refuse_after,
            ),
            (
                "auth.failure_account_delay_after",
                self.failure_account_delay_after,
                self.failure_account_refuse_after,
            ),
        ] {
            if value > refuse {
                return Err(Violation::new(
                    key,
                    value,
                    "must not exceed the matching *_refuse_after",
                ));
            }
        }
        if self.failure_delay_ms > 10_000 {
            return Err(Violation::new(
                "auth.failure_delay_ms",
                self.failure_delay_ms,
                "must be at most 10000",
            ));
        }
        if self.failure_max_delay_ms < self.failure_delay_ms || self.failure_max_delay_ms > 30_000 {
            return Err(Violation::new(
                "auth.failure_max_delay_ms",
                self.failure_max_delay_ms,
                "must be from auth.failure_delay_ms to 30000",
            ));
        }
        if !(1_000..=10_000_000).contains(&self.failure_table_size) {
            return Err(Violation::new(
                "auth.failure_table_size",
                self.failure_table_size,
                "must be from 1000 to 10000000",
            ));
        }
        Ok(())
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where the listener binds; unset disables it.
    pub listen: Option<SocketAddr>,
    /// Browser origins allowed to connect (`Origin` header), e.g. `"https://example.org"`;
    /// "*" allows any. Requests without an `Origin` (native clients) are always allowed.
    pub origins: Vec<String>,
    /// When an HTTP client counts as encrypted.
    pub consider_secure: ConsiderSecure,
    /// The public base URL announced by discovery (XEP-0156); unset: from the Host header.
    pub public_url: Option<String>,
    /// Serve a Converse.js chat page at `/`.
    pub web_client: bool,
    /// A local copy of Converse.js's `dist` directory for that page; unset: `converse_url`.
    pub converse_dist: Option<PathBuf>,
    /// Where the page loads Converse.js from when `converse_dist` is unset.
    pub converse_url: String,
    /// Peers (IPs or CIDR blocks) whose `X-Forwarded-*`/`Forwarded` headers are believed;
    /// with `consider_secure = "always"` and a non-empty list, the only peers that count as
    /// encrypted.
    pub trusted_proxies: Vec<String>,
    /// Largest BOSH request body, bytes (larger: HTTP 413).
    pub bosh_max_body_bytes: usize,
    /// BOSH input held node-wide (bodies read, waiting, unread by sessions), bytes.
    pub bosh_pending_bytes: usize,
    /// BOSH input awaiting processing per session, bytes (past it: policy-violation).
    pub bosh_session_pending_bytes: usize,
    /// BOSH sessions on this node.
    pub bosh_max_sessions: usize,
    /// BOSH session creations one client IP may make at once.
    pub bosh_sessions_per_ip_burst: u32,
    /// BOSH session creations one client IP regains per minute.
    pub bosh_sessions_per_ip_per_minute: u32,
    /// Large BOSH bodies parsed at once, off the HTTP worker.
    pub bosh_parse_threads: usize,
}

/// The Converse.js release the chat page loads by default (the one the browser tests run).
pub const DEFAULT_CONVERSE_URL: &str = "https://cdn.conversejs.org/12.0.0/dist";

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5280))),
            origins: Vec::new(),
            consider_secure: ConsiderSecure::Loopback,
            public_url: None,
            web_client: false,
            converse_dist: None,
            converse_url: DEFAULT_CONVERSE_URL.to_owned(),
            trusted_proxies: Vec::new(),
            bosh_max_body_bytes: 256 * 1024 + 8 * 1024,
            bosh_pending_bytes: 16 * 1024 * 1024,
            bosh_session_pending_bytes: 1024 * 1024,
            bosh_max_sessions: 20_000,
            bosh_sessions_per_ip_burst: 20,
            bosh_sessions_per_ip_per_minute: 60,
            bosh_parse_threads: 2,
        }
    }
}

/// When a client of the HTTP listener counts as encrypted (TLS ends at a reverse proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsiderSecure {
    /// Connections from loopback: a reverse proxy on the same host.
    #[default]
    Loopback,
    /// Every connection.
    Always,
    /// None.
    Never,
}

/// The policy for a resource binding conflict (RFC 6120 §7.7.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceConflict {
    /// Disconnect the session that held the resource; the new one gets it.
    #[default]
    KickOld,
    /// Refuse the new binding with `<conflict/>`.
    KickNew,
    /// Give the new session a server-generated resource instead.
    Random,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; set together with `key`, or leave both unset for a
    /// self-signed certificate generated in `data_dir`.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[sasl]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// PBKDF2 iteration count for newly derived SCRAM credentials.
    pub scram_iterations: u32,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            scram_iterations: 10_000,
        }
    }
}

/// `[roster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RosterConfig {
    /// Most items a roster may hold; adding more gets `<not-allowed/>`.
    pub max_items: usize,
}

impl Default for RosterConfig {
    fn default() -> Self {
        RosterConfig { max_items: 1000 }
    }
}

/// `[offline]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Most messages stored per user while no resource is available; senders past it get
    /// `<service-unavailable/>`.
    pub max_per_user: usize,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig { max_per_user: 100 }
    }
}

/// `[quotas]`: what one account may store or hold, each past its bound refused with a
/// stanza error rather than stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Groups one roster item may name; more gets `<not-acceptable/>`.
    pub roster_groups_per_item: usize,
    /// Longest roster item name or group name, in bytes; longer gets `<not-acceptable/>`.
    pub roster_name_bytes: usize,
    /// Roster removal records kept per user; a client with an older roster version gets the
    /// whole roster (RFC 6121 §2.6).
    pub roster_tombstones: usize,
    /// Items one blocklist may hold; more gets `<resource-constraint/>`.
    pub blocklist_items: usize,
    /// Unanswered inbound subscription requests kept per user; past it, the requester gets
    /// `<resource-constraint/>`.
    pub pending_subscriptions: usize,
    /// Largest inbound subscription request kept, in bytes of XML; larger gets
    /// `<not-acceptable/>`.
    pub subscription_request_bytes: usize,
    /// Directed-presence targets remembered per resource; past it, `<resource-constraint/>`.
    pub directed_presence: usize,
    /// Resources one account may have bound at once on a node; past it the bind gets
    /// `<resource-constraint/>` (RFC 6120 §7.6.2.1).
    pub resources_per_account: usize,
    /// Bytes of offline messages stored per user; past it, `<service-unavailable/>`.
    pub offline_bytes: usize,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        QuotasConfig {
            roster_groups_per_item: 32,
            roster_name_bytes: 1023,
            roster_tombstones: 1000,
            blocklist_items: 1000,
            pending_subscriptions: 1000,
            subscription_request_bytes: 4096,
            directed_presence: 100,
            resources_per_account: 10,
            offline_bytes: 1 << 20,
        }
    }
}

impl QuotasConfig {
    fn check(&self) -> Result<(), Violation> {
        let at_least = |key: &str, value: usize, min: usize| {
            if value < min {
                Err(Violation::new(
                    key,
                    value,
                    format!("must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least(
            "quotas.roster_groups_per_item",
            self.roster_groups_per_item,
            1,
        )?;
        at_least("quotas.roster_name_bytes", self.roster_name_bytes, 1)?;
        at_least("quotas.roster_tombstones", self.roster_tombstones, 1)?;
        at_least("quotas.blocklist_items", self.blocklist_items, 1)?;
        at_least(
            "quotas.pending_subscriptions",
            self.pending_subscriptions,
            1,
        )?;
        // A bare subscribe from a long JID is some 3 KiB; less would refuse honest ones.
        at_least(
            "quotas.subscription_request_bytes",
            self.subscription_request_bytes,
            1024,
        )?;
        at_least("quotas.directed_presence", self.directed_presence, 1)?;
        at_least(
            "quotas.resources_per_account",
            self.resources_per_account,
            1,
        )?;
        at_least("quotas.offline_bytes", self.offline_bytes, 1024)?;
        Ok(())
    }
}

/// `[users]`: bounds on the user actors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Stanzas queued towards one user actor; past it, senders get `<resource-constraint/>`.
    pub mailbox_stanzas: usize,
    /// Bytes of stanzas queued towards one user actor; past it, `<resource-constraint/>`.
    pub mailbox_bytes: usize,
    /// Accounts remembered as absent, so that stanzas to them start no user actor.
    pub absent_cache_entries: usize,
    /// Milliseconds an account is remembered as absent: an account created on another node
    /// or by the CLI is reachable here at most this late.
    pub absent_cache_ttl_ms: u64,
    /// Account existence checks in flight at once; past it, `<resource-constraint/>`.
    pub existence_checks: usize,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            mailbox_stanzas: 1000,
            mailbox_bytes: 4 << 20,
            absent_cache_entries: 10_000,
            absent_cache_ttl_ms: 5000,
            existence_checks: 256,
        }
    }
}

impl UsersConfig {
    /// `max_stanza_bytes`: the largest stanza a client may send, which must always fit.
    fn check(&self, max_stanza_bytes: usize) -> Result<(), Violation> {
        if self.mailbox_stanzas < 16 {
            return Err(Violation::new(
                "users.mailbox_stanzas",
                self.mailbox_stanzas,
                "must be at least 16",
            ));
        }
        // The mailbox counts an estimate of memory, up to a few times the wire size for a
        // stanza of many small elements: a legal stanza must fit an empty mailbox.
        let min = max_stanza_bytes.saturating_mul(4).max(65_536);
        if self.mailbox_bytes < min {
            return Err(Violation::new(
                "users.mailbox_bytes",
                self.mailbox_bytes,
                format!("must be at least {min} (4 × c2s.max_stanza_bytes)"),
            ));
        }
        if self.existence_checks == 0 {
            return Err(Violation::new(
                "users.existence_checks",
                self.existence_checks,
                "must be at least 1",
            ));
        }
        if self.absent_cache_ttl_ms > 300_000 {
            return Err(Violation::new(
                "users.absent_cache_ttl_ms",
                self.absent_cache_ttl_ms,
                "must be at most 300000 (accounts created elsewhere would stay unreachable)",
            ));
        }
        Ok(())
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where the admin endpoint listens; unset disables it.
    pub listen: Option<SocketAddr>,
    /// Bearer token for the `/api/` routes; unset: they answer 401. `/health`, `/ready` and
    /// `/metrics` are open.
    pub token: Option<String>,
    /// `/metrics` requires the bearer token too.
    pub metrics_auth: bool,
    /// Serve `/metrics` on this address instead of `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Longest lifetime the API grants a token (`ttl_s`), seconds.
    pub max_token_ttl_s: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5290))),
            token: None,
            metrics_auth: false,
            metrics_listen: None,
            max_token_ttl_s: 365 * 24 * 3600,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Storage URL; `None` means `sqlite://{data_dir}/parley.db` (see [`Config::storage_url`]).
    pub url: Option<String>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` EnvFilter directive; the `RUST_LOG` environment variable overrides it.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
pub const MIN_STANZA_BYTES: usize = 10_000;
/// RFC 7677 §4: SCRAM-SHA-256 iteration counts should be at least 4096.
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// Below this a legitimate stanza (message > body, x-data forms) cannot be expressed.
pub const MIN_DEPTH: usize = 8;
/// Below this common stanzas (`<message from to id type xml:lang>`) are refused.
pub const MIN_ATTRIBUTES: usize = 8;
/// Below this a stream header (2) and a stanza with a few payload namespaces
/// (Jingle nests 5 or 6) are refused.
pub const MIN_NAMESPACE_DECLARATIONS: usize = 16;

/// A configuration that cannot be used. Each variant names the file (or `embedded default`)
/// and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: TOML syntax error (line {line}): {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// The parser's description.
        message: String,
    },
    /// A key that Parley does not know (often a typo).
    #[error("{origin}: unknown key `{key}` (line {line}){hint}")]
    UnknownKey {
        /// The file.
        origin: String,
        /// The dotted key, e.g. `c2s.listn`.
        key: String,
        /// 1-based line of the key.
        line: usize,
        /// `; expected one of ...`, or empty.
        hint: String,
    },
    /// A value of the wrong type or form.
    #[error("{origin}: {key} (line {line}): {message}")]
    BadValue {
        /// The file.
        origin: String,
        /// The dotted key, e.g. `c2s.max_depth` or `c2s.listen[1]`.
        key: String,
        /// 1-based line of the value.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A well-formed value that breaks a rule (see [`Config::validate`]).
    #[error("{origin}: {key} = {value}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// The dotted key.
        key: String,
        /// The offending value, TOML-ish.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// What [`Config::validate`] calls the configuration when it does not know the file.
const UNNAMED_ORIGIN: &str = "configuration";
/// What errors and `check config` call the built-in defaults.
pub const EMBEDDED_ORIGIN: &str = "embedded default";

impl Config {
    /// Reads and validates the file at `path`, or returns the (validated) defaults for `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => {
                let config = Config::default();
                config.validate_in(EMBEDDED_ORIGIN)?;
                Ok(config)
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_toml_str(&text, &path.display().to_string())
            }
        }
    }

    /// Parses, normalizes and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(s: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(s).map_err(|e| de_error(s, origin, &e))?;
        // Hosts are compared against JID domains, which the jid crate nameprep-normalizes;
        // invalid ones are left as they are for validate to report with their key.
        for host in &mut config.server.hosts {
            if let Ok(normalized) = normalize_host(host) {
                *host = normalized;
            }
        }
        config.validate_in(origin)?;
        Ok(config)
    }

    /// Checks every rule that a type alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in(UNNAMED_ORIGIN)
    }

    fn validate_in(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|v| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: v.key,
            value: v.value,
            reason: v.reason,
        })
    }

    fn check(&self) -> Result<(), Violation> {
        self.check_server()?;
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
            // A maximal stanza and its frame envelope must fit in one node-link frame.
            if cluster.max_frame_bytes < self.c2s.max_stanza_bytes + 4096 {
                return Err(Violation::new(
                    "cluster.max_frame_bytes",
                    cluster.max_frame_bytes,
                    "must exceed c2s.max_stanza_bytes by at least 4096 bytes",
                ));
            }
        }
        if self.auth.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(Violation::new(
                "auth.jwt_secret",
                "\"…\"",
                "must be at least 32 characters (HS256 keys shorter than the hash are weak)",
            ));
        }
        if self.auth.jwt_leeway_s > 600 {
            return Err(Violation::new(
                "auth.jwt_leeway_s",
                self.auth.jwt_leeway_s,
                "must be at most 600 seconds",
            ));
        }
        if let Some(url) = &self.auth.delegate_url {
            let ok = url
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                return Err(Violation::new(
                    "auth.delegate_url",
                    Quoted(url),
                    "must be an http:// URL such as \"http://127.0.0.1:8080/xmpp-auth\"",
                ));
            }
        }
        if !(100..=60_000).contains(&self.auth.delegate_timeout_ms) {
            return Err(Violation::new(
                "auth.delegate_timeout_ms",
                self.auth.delegate_timeout_ms,
                "must be from 100 to 60000",
            ));
        }
        self.auth.check_limits()?;
        for (i, origin) in self.http.origins.iter().enumerate() {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = origin == "*"
                || host.is_some_and(|h| !h.is_empty() && !h.contains(['/', ' ', '*']));
            if !ok {
                return Err(Violation::new(
                    &format!("http.origins[{i}]"),
                    Quoted(origin),
                    "must be \"*\" or an origin such as \"https://example.org\" (scheme and host, no path)",
                ));
            }
        }
        if let Some(url) = &self.http.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Violation::new(
                    "http.public_url",
                    Quoted(url),
                    "must be an http:// or https:// URL such as \"https://chat.example.org\"",
                ));
            }
        }
        self.check_web_client()?;
        self.check_exposure()?;
        self.check_http_limits()?;
        self.check_admin_limits()?;
        self.check_c2s()?;
        self.check_tls()?;
        if self.sasl.scram_iterations < MIN_SCRAM_ITERATIONS {
            return Err(Violation::new(
                "sasl.scram_iterations",
                self.sasl.scram_iterations,
                format!("must be at least {MIN_SCRAM_ITERATIONS} (RFC 7677 §4)"),
            ));
        }
        if self.admin.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(Violation::new(
                "admin.token",
                "\"…\"",
                "must be at least 16 characters (it guards the whole server)",
            ));
        }
        if self.roster.max_items == 0 {
            return Err(Violation::new(
                "roster.max_items",
                self.roster.max_items,
                "must be at least 1",
            ));
        }
        self.quotas.check()?;
        self.users.check(self.c2s.max_stanza_bytes)?;
        if let Some(url) = &self.storage.url {
            // The backend checks the rest when it opens the URL; this catches a bare path.
            let has_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
                !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            if !has_scheme {
                return Err(Violation::new(
                    "storage.url",
                    Quoted(url),
                    "must be a URL such as \"sqlite://data/parley.db\" or \"sqlite::memory:\"",
                ));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(Violation::new(
                "log.level",
                Quoted(&self.log.level),
                format!("not a valid tracing filter directive: {e}"),
            ));
        }
        Ok(())
    }

    fn check_server(&self) -> Result<(), Violation> {
        let hosts = &self.server.hosts;
        if hosts.is_empty() {
            return Err(Violation::new(
                "server.hosts",
                "[]",
                "must list at least one domain",
            ));
        }
        let mut seen: Vec<String> = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.iter().enumerate() {
            let key = format!("server.hosts[{i}]");
            let normalized = normalize_host(host)
                .map_err(|reason| Violation::new(&key, Quoted(host), reason))?;
            if let Some(j) = seen.iter().position(|h| *h == normalized) {
                return Err(Violation::new(
                    &key,
                    Quoted(host),
                    format!("duplicate of server.hosts[{j}]"),
                ));
            }
            seen.push(normalized);
        }
        Ok(())
    }

    /// `[http] web_client` and where its Converse.js comes from.
    fn check_web_client(&self) -> Result<(), Violation> {
        let http = &self.http;
        if !(http.converse_url.starts_with("https://") || http.converse_url.starts_with("http://"))
        {
            return Err(Violation::new(
                "http.converse_url",
                Quoted(&http.converse_url),
                "must be an http:// or https:// URL of Converse.js's dist directory, such as \"https://cdn.conversejs.org/12.0.0/dist\"",
            ));
        }
        if let Some(dir) = &http.converse_dist {
            if !dir.join("converse.min.js").is_file() {
                return Err(Violation::new(
                    "http.converse_dist",
                    Quoted(&dir.display().to_string()),
                    "must be Converse.js's dist directory (holding converse.min.js), e.g. node_modules/converse.js/dist",
                ));
            }
        }
        if http.web_client && http.listen.is_none() {
            return Err(Violation::new(
                "http.web_client",
                true,
                "needs [http] listen (the page is served by the HTTP listener)",
            ));
        }
        Ok(())
    }

    fn check_c2s(&self) -> Result<(), Violation> {
        let c2s = &self.c2s;
        if c2s.listen.is_empty() && c2s.direct_tls.is_empty() {
            return Err(Violation::new(
                "c2s.listen",
                "[]",
                "no client listener: set c2s.listen or c2s.direct_tls (or both)",
            ));
        }
        let all = c2s
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("c2s.listen[{i}]"), a))
            .chain(
                c2s.direct_tls
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("c2s.direct_tls[{i}]"), a)),
            )
            .collect::<Vec<_>>();
        for (n, (key, addr)) in all.iter().enumerate() {
            if let Some((other, _)) = all[..n].iter().find(|(_, a)| a == addr) {
                return Err(Violation::new(
                    key,
                    Quoted(addr),
                    format!("already used by {other}"),
                ));
            }
        }
        if c2s.max_stanza_bytes < MIN_STANZA_BYTES {
            return Err(Violation::new(
                "c2s.max_stanza_bytes",
                c2s.max_stanza_bytes,
                format!("must be at least {MIN_STANZA_BYTES} (RFC 6120 §13.12)"),
            ));
        }
        if c2s.max_depth < MIN_DEPTH {
            return Err(Violation::new(
                "c2s.max_depth",
                c2s.max_depth,
                format!("must be at least {MIN_DEPTH}"),
            ));
        }
        if c2s.max_attributes < MIN_ATTRIBUTES {
            return Err(Violation::new(
                "c2s.max_attributes",
                c2s.max_attributes,
                format!("must be at least {MIN_ATTRIBUTES}"),
            ));
        }
        if c2s.max_namespace_declarations < MIN_NAMESPACE_DECLARATIONS {
            return Err(Violation::new(
                "c2s.max_namespace_declarations",
                c2s.max_namespace_declarations,
                format!("must be at least {MIN_NAMESPACE_DECLARATIONS}"),
            ));
        }
        // Our own stored and forwarded copies are re-read under limits derived from
        // these ceilings (`Limits::for_copies`), so nothing accepted is refused later.
        let ceiling = parley_xml::Limits::CEILING;
        for (key, value, max) in [
            (
                "c2s.max_stanza_bytes",
                c2s.max_stanza_bytes,
                ceiling.max_stanza_bytes,
            ),
            ("c2s.max_depth", c2s.max_depth, ceiling.max_depth),
            ("c2s.max_attributes", c2s.max_attributes, ceiling.max_attrs),
            (
                "c2s.max_namespace_declarations",
                c2s.max_namespace_declarations,
                ceiling.max_namespace_declarations,
            ),
        ] {
            if value > max {
                return Err(Violation::new(key, value, format!("must be at most {max}")));
            }
        }
        if c2s.auth_timeout_s == 0 {
            return Err(Violation::new(
                "c2s.auth_timeout_s",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_auth_attempts == 0 {
            return Err(Violation::new(
                "c2s.max_auth_attempts",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_sasl_attempts == 0 {
            return Err(Violation::new(
                "c2s.max_sasl_attempts",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_stream_opens < 3 {
            return Err(Violation::new(
                "c2s.max_stream_opens",
                c2s.max_stream_opens,
                "must be at least 3: a client opens the stream, then restarts it after STARTTLS and after SASL",
            ));
        }
        self.limits.check(c2s.max_stanza_bytes)?;
        if c2s.send_queue_stanzas == 0 {
            return Err(Violation::new(
                "c2s.send_queue_stanzas",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.send_queue_bytes < c2s.max_stanza_bytes {
            return Err(Violation::new(
                "c2s.send_queue_bytes",
                c2s.send_queue_bytes,
                format!(
                    "must be at least c2s.max_stanza_bytes ({}), or one stanza could never be queued",
                    c2s.max_stanza_bytes
                ),
            ));
        }
        Ok(())
    }

    fn check_tls(&self) -> Result<(), Violation> {
        match (&self.tls.cert, &self.tls.key) {
            (None, None) => Ok(()),
            (Some(cert), None) => Err(Violation::new(
                "tls.cert",
                Quoted(cert.display()),
                "tls.key is not set: set both tls.cert and tls.key, or neither for a self-signed certificate",
            )),
            (None, Some(key)) => Err(Violation::new(
                "tls.key",
                Quoted(key.display()),
                "tls.cert is not set: set both tls.cert and tls.key, or neither for a self-signed certificate",
            )),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    if let Err(e) = std::fs::metadata(path) {
                        return Err(Violation::new(
                            name,
                            Quoted(path.display()),
                            format!("cannot read: {e}"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// The storage URL in effect: `storage.url`, or `sqlite://{data_dir}/parley.db`.
    pub fn storage_url(&self) -> String {
        match &self.storage.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("parley.db").display()
            ),
        }
    }

    /// Parses a user-supplied account JID: bare, with a node, on one of `server.hosts`;
    /// the result is normalized (nodeprep lowercases the node, nameprep the domain).
    pub fn account_jid(&self, input: &str) -> Result<AccountJid, AccountJidError> {
        let jid = jid::Jid::new(input.trim()).map_err(|e| AccountJidError::Invalid {
            jid: input.to_owned(),
            reason: e.to_string(),
        })?;
        if jid.resource().is_some() {
            return Err(AccountJidError::HasResource {
                jid: input.to_owned(),
            });
        }
        let Some(node) = jid.node() else {
            return Err(AccountJidError::NoNode {
                jid: input.to_owned(),
            });
        };
        let host = jid.domain().as_str();
        self.served_host(host)
            .ok_or_else(|| AccountJidError::UnknownHost {
                jid: input.to_owned(),
                host: host.to_owned(),
                hosts: self.server.hosts.join(", "),
            })
            .map(|host| AccountJid {
                username: node.as_str().to_owned(),
                host,
            })
    }

    /// Returns the normalized form of `host` if it is one of `server.hosts`.
    pub fn served_host(&self, host: &str) -> Option<String> {
        let host = normalize_host(host).ok()?;
        // Loaded configs hold normalized hosts already; the fallback covers configs built in code.
        self.server
            .hosts
            .iter()
            .any(|h| *h == host || normalize_host(h).is_ok_and(|h| h == host))
            .then_some(host)
    }
}

/// Normalizes a domain with the `jid` crate's nameprep; the error says why it is not one.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let jid = jid::Jid::new(host).map_err(|e| format!("not a valid domain: {e}"))?;
    if jid.node().is_some() || jid.resource().is_some() {
        return Err("must be a bare domain, without `@` or `/`".to_owned());
    }
    Ok(jid.domain().as_str().to_owned())
}

/// A validated, normalized account address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountJid {
    /// The normalized localpart.
    pub username: String,
    /// The normalized domain, one of `server.hosts`.
    pub host: String,
}

impl fmt::Display for AccountJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.username, self.host)
    }
}

/// Why a string is not an account JID of this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountJidError {
    /// Not a JID at all.
    #[error("`{jid}` is not a valid JID: {reason}")]
    Invalid {
        /// The input.
        jid: String,
        /// The jid crate's reason.
        reason: String,
    },
    /// Accounts are bare JIDs.
    #[error("`{jid}` has a resource; accounts are bare JIDs (user@host)")]
    HasResource {
        /// The input.
        jid: String,
    },
    /// A bare domain is not an account.
    #[error("`{jid}` has no user part; accounts are user@host")]
    NoNode {
        /// The input.
        jid: String,
    },
    /// The domain is not served here.
    #[error("`{jid}`: host `{host}` is not in [server] hosts ({hosts})")]
    UnknownHost {
        /// The input.
        jid: String,
        /// Its normalized domain.
        host: String,
        /// The configured hosts, comma-separated.
        hosts: String,
    },
}

/// A broken rule, before the origin is attached.
struct Violation {
    key: String,
    value: String,
    reason: String,
}

impl Violation {
    fn new(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Violation {
            key: key.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Displays a value as a TOML string.
struct Quoted<T>(T);

impl<T: fmt::Display> fmt::Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.to_string())
    }
}

/// Turns a toml deserialization error into one that names the key and line.
fn de_error(source: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    // Parser messages span several lines ("invalid array\nexpected `]`"); errors are one line.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let span = e.span().unwrap_or(0..0);
    let line = line_of(source, span.start);
    let Ok(doc) = toml_edit::ImDocument::parse(source) else {
        return ConfigError::Syntax {
            origin: origin.to_owned(),
            line,
            message,
        };
    };
    let mut path = Vec::new();
    let key = if locate_item(doc.as_item(), &span, &mut path) {
        path.concat()
    } else {
        "(document)".to_owned()
    };
    if let Some(rest) = message.strip_prefix("unknown field") {
        let hint = rest
            .split_once(", ")
            .map(|(_, expected)| format!("; {expected}"))
            .unwrap_or_default();
        return ConfigError::UnknownKey {
            origin: origin.to_owned(),
            key,
            line,
            hint,
        };
    }
    ConfigError::BadValue {
        origin: origin.to_owned(),
        key,
        line,
        message,
    }
}

/// 1-based line number of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    source.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn span_hits(span: Option<Range<usize>>, target: &Range<usize>) -> bool {
    span.is_some_and(|s| s.start <= target.start && target.start < s.end.max(s.start + 1))
}

/// Finds the key or value whose span holds `target`, appending its dotted path to `path`.
fn locate_item(item: &toml_edit::Item, target: &Range<usize>, path: &mut Vec<String>) -> bool {
    match item {
        toml_edit::Item::None => false,
        toml_edit::Item::Value(value) => locate_value(value, target, path),
        toml_edit::Item::Table(table) => locate_in_table(table, target, path),
        toml_edit::Item::ArrayOfTables(tables) => tables.iter().enumerate().any(|(i, table)| {
            path.push(format!("[{i}]"));
            let found = locate_in_table(table, target, path);
            if !found {
                path.pop();
            }
            found
        }),
    }
}

fn locate_value(value: &toml_edit::Value, target: &Range<usize>, path: &mut Vec<String>) -> bool {
    let in_child = match value {
        toml_edit::Value::InlineTable(table) => locate_in_table(table, target, path),
        toml_edit::Value::Array(array) => array.iter().enumerate().any(|(i, element)| {
            path.push(format!("[{i}]"));
            let found = locate_value(element, target, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    in_child || span_hits(value.span(), target)
}

/// Searches every entry: a `[table]` header's span does not cover its body, so the table's
/// own span cannot be used to prune.
fn locate_in_table(
    table: &dyn toml_edit::TableLike,
    target: &Range<usize>,
    path: &mut Vec<String>,
) -> bool {
    for (name, child) in table.iter() {
        path.push(key_segment(name, path.is_empty()));
        let key_span = table.key(name).and_then(|k| k.span());
        if span_hits(key_span, target) || locate_item(child, target, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// A path segment for a key: dotted, and quoted when it is not a bare TOML key.
fn key_segment(name: &str, first: bool) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if first {
        name
    } else {
        format!(".{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(s, "test.toml")
    }

    fn err(s: &str) -> String {
        parse(s).expect_err("config should be rejected").to_string()
    }

    #[test]
    fn empty_file_is_the_default() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server.hosts, ["localhost"]);
        assert_eq!(config.c2s.max_stanza_bytes, 262_144);
        assert_eq!(config.c2s.resource_conflict, ResourceConflict::KickOld);
        assert_eq!(config.sasl.scram_iterations, 10_000);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.storage_url(), "sqlite://./data/parley.db");
    }

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
        assert_eq!(Config::load(None).unwrap(), Config::default());
    }

    /// Keeps the documented example honest: every key there is at its default.
    #[test]
    fn documented_example_equals_default() {
        let doc = include_str!("../../../config/parley.toml");
        let config = Config::from_toml_str(doc, "config/parley.toml").unwrap();
        assert_eq!(config, Config::default());
    }

    /// Every key of every section must appear (uncommented or commented out) in the example.
    #[test]
    fn documented_example_mentions_every_key() {
        let doc = include_str!("../../../config/parley.toml");
        for key in [
            "[server]",
            "hosts =",
            "data_dir =",
            "workers =",
            "[c2s]",
            "listen =",
            "direct_tls =",
            "require_encryption =",
            "max_stanza_bytes =",
            "max_depth =",
            "max_attributes =",
            "max_namespace_declarations =",
            "resource_conflict =",
            "auth_timeout_s =",
            "max_auth_attempts =",
            "send_queue_stanzas =",
            "send_queue_bytes =",
            "max_session_lifetime_s =",
            "idle_timeout_s =",
            "[tls]",
            "cert =",
            "key =",
            "[sasl]",
            "scram_iterations =",
            "[storage]",
            "url =",
            "[log]",
            "level =",
            "format =",
            "[auth]",
            "jwt_secret =",
            "jwt_leeway_s =",
            "delegate_url =",
            "delegate_timeout_ms =",
            "jwt_audience =",
            "jwt_issuer =",
            "jwt_max_lifetime_s =",
            "failure_window_s =",
            "failure_ip_delay_after =",
            "failure_ip_refuse_after =",
            "failure_account_delay_after =",
            "failure_account_refuse_after =",
            "failure_delay_ms =",
            "failure_max_delay_ms =",
            "failure_table_size =",
            "[http]",
            "origins =",
            "consider_secure =",
            "public_url =",
            "[cluster]",
            "etcd =",
            "node_id =",
            "peer_listen =",
            "peer_advertise =",
            "lease_ttl_s =",
            "prefix =",
            "tls_cert =",
            "tls_key =",
            "tls_ca =",
            "trusted_proxies =",
            "etcd_ca =",
            "etcd_cert =",
            "etcd_key =",
            "etcd_user =",
            "etcd_password =",
            "etcd_password_file =",
            "secret =",
            "secret_file =",
        ] {
            assert!(
                doc.contains(key),
                "config/parley.toml does not document {key}"
            );
        }
    }

    #[test]
    fn limits_keys_are_documented_and_checked() {
        let doc = include_str!("../../../config/parley.toml");
        for key in [
            "max_sasl_attempts =",
            "max_stream_opens =",
            "[limits]",
            "max_connections_per_ip =",
            "connection_rate_per_ip =",
            "connection_burst_per_ip =",
            "max_sessions =",
            "read_bytes_per_s =",
            "read_burst_bytes =",
        ] {
            assert!(
                doc.contains(key),
                "config/parley.toml does not document {key}"
            );
        }
        let cases = [
            ("[c2s]\nmax_sasl_attempts = 0", "c2s.max_sasl_attempts = 0"),
            ("[c2s]\nmax_stream_opens = 2", "c2s.max_stream_opens = 2"),
            (
                "[limits]\nmax_connections_per_ip = 0",
                "limits.max_connections_per_ip = 0",
            ),
            (
                "[limits]\nconnection_rate_per_ip = 0",
                "limits.connection_rate_per_ip = 0",
            ),
            (
                "[limits]\nconnection_burst_per_ip = 0",
                "limits.connection_burst_per_ip = 0",
            ),
            ("[limits]\nmax_sessions = 0", "limits.max_sessions = 0"),
            (
                "[limits]\nread_bytes_per_s = 100",
                "limits.read_bytes_per_s = 100",
            ),
            (
                "[limits]\nread_burst_bytes = 20000",
                "limits.read_burst_bytes = 20000: must be at least c2s.max_stanza_bytes (262144)",
            ),
        ];
        for (toml, expected) in cases {
            let e = err(toml);
            assert!(
                e.starts_with(&format!("test.toml: {expected}")),
                "{toml:?} gave {e}"
            );
        }
    }

    #[test]
    fn full_file_parses() {
        let config = parse(
            r#"
[server]
hosts = ["Example.ORG", "chat.example.org."]
data_dir = "/var/lib/parley"
workers = 4
[c2s]
listen = ["0.0.0.0:5222", "[::]:5222"]
direct_tls = []
require_encryption = false
max_stanza_bytes = 10000
max_depth = 8
max_attributes = 8
resource_conflict = "kick_new"
auth_timeout_s = 5
max_auth_attempts = 1
send_queue_stanzas = 1
send_queue_bytes = 10000
[sasl]
scram_iterations = 4096
[storage]
url = "sqlite:///tmp/x.db"
[log]
level = "parley=debug,warn"
format = "json"
"#,
        )
        .unwrap();
        assert_eq!(config.server.hosts, ["example.org", "chat.example.org"]);
        assert_eq!(config.server.workers, 4);
        assert_eq!(config.c2s.listen.len(), 2);
        assert!(config.c2s.direct_tls.is_empty());
        assert_eq!(config.c2s.resource_conflict, ResourceConflict::KickNew);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.storage_url(), "sqlite:///tmp/x.db");
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let e = err("[server]\nhosts = [\"localhost\"]\n\n[c2s]\nlisten = []\nlistn = [\"127.0.0.1:5222\"]\n");
        assert!(
            e.starts_with("test.toml: unknown key `c2s.listn` (line 6)"),
            "{e}"
        );
        assert!(e.contains("`listen`"), "hint lists the known keys: {e}");
    }

    #[test]
    fn unknown_key_as_dotted_key_and_unknown_section() {
        let e = err("c2s.listn = 1\n");
        assert!(e.contains("unknown key `c2s.listn` (line 1)"), "{e}");
        let e = err("\n[c2ss]\nlisten = []\n");
        assert!(e.contains("unknown key `c2ss` (line 2)"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err("[c2s]\nmax_depth = \"deep\"\n");
        assert!(e.starts_with("test.toml: c2s.max_depth (line 2): "), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn bad_socket_address_names_the_array_element() {
        let e = err("[c2s]\nlisten = [\n  \"127.0.0.1:5222\",\n  \"nowhere\",\n]\n");
        assert!(e.starts_with("test.toml: c2s.listen[1] (line 4): "), "{e}");
    }

    #[test]
    fn bad_enum_value_names_key() {
        let e = err("[c2s]\nresource_conflict = \"kick_everyone\"\n");
        assert!(e.contains("c2s.resource_conflict (line 2)"), "{e}");
        assert!(e.contains("kick_old"), "lists the allowed values: {e}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = err("[server]\nhosts = [\"a\"\nworkers = 1\n");
        assert!(e.starts_with("test.toml: TOML syntax error (line "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = Config::load(Some(Path::new("/nonexistent/parley.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/parley.toml: cannot read"),
            "{e}"
        );
    }

    /// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
    #[test]
    fn rfc6120_13_12_max_stanza_bytes_minimum() {
        let e = err("[c2s]\nmax_stanza_bytes = 100\n");
        assert_eq!(
            e,
            "test.toml: c2s.max_stanza_bytes = 100: must be at least 10000 (RFC 6120 §13.12)"
        );
    }

    /// RFC 7677 §4: at least 4096 iterations.
    #[test]
    fn rfc7677_4_scram_iterations_minimum() {
        let e = err("[sasl]\nscram_iterations = 4095\n");
        assert!(
            e.starts_with("test.toml: sasl.scram_iterations = 4095: must be at least 4096"),
            "{e}"
        );
    }

    #[test]
    fn node_links_must_be_authenticated_and_bounded() {
        // Issue 10: a node refuses to start with open node links, naming the keys.
        let e = err("[cluster]\nnode_id = \"n1\"\n");
        for key in [
            "cluster.secret",
            "cluster.secret_file",
            "cluster.tls_cert",
            "cluster.tls_key",
            "cluster.tls_ca",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
        let e = err("[cluster]\nsecret = \"short\"\n");
        assert!(e.contains("cluster.secret") && e.contains("32"), "{e}");
        let e = err("[cluster]\nsecret_file = \"/nonexistent\"\n");
        assert!(e.contains("cluster.secret_file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  too short \n").unwrap();
        let e = err(&format!(
            "[cluster]\nsecret_file = \"{}\"\n",
            file.display()
        ));
        assert!(e.contains("cluster.secret_file") && e.contains("32"), "{e}");
        std::fs::write(&file, format!("{}\n", "k".repeat(32))).unwrap();
        parse(&format!(
            "[cluster]\nsecret_file = \"{}\"\n",
            file.display()
        ))
        .unwrap();
        const S: &str = "secret = \"0123456789abcdef0123456789abcdef\"\n";
        let c = parse(&format!("[cluster]\n{S}")).unwrap().cluster.unwrap();
        assert_eq!(c.handshake_timeout_ms, 5_000);
        assert_eq!(c.max_links_per_address, 8);
        assert_eq!(c.max_frame_bytes, 4 << 20);
        assert_eq!(c.send_queue_bytes, 64 << 20);
        assert_eq!(c.registry_wait_ms, 2_000);
        for (kv, key) in [
            ("handshake_timeout_ms = 0", "cluster.handshake_timeout_ms"),
            ("max_links_per_address = 0", "cluster.max_links_per_address"),
            ("max_frame_bytes = 100", "cluster.max_frame_bytes"),
            ("send_queue_bytes = 70000", "cluster.send_queue_bytes"),
            ("registry_wait_ms = 0", "cluster.registry_wait_ms"),
        ] {
            let e = err(&format!("[cluster]\n{S}{kv}\n"));
            assert!(e.contains(key), "{key} in {e}");
        }
        let e = err(&format!(
            "[c2s]\nmax_stanza_bytes = 1000000\n[cluster]\n{S}max_frame_bytes = 1000000\n"
        ));
        assert!(e.contains("cluster.max_frame_bytes"), "{e}");
    }

    #[test]
    fn cluster_section_is_off_when_absent_and_checked_when_present() {
        assert_eq!(parse("").unwrap().cluster, None);
        const S: &str = "secret = \"0123456789abcdef0123456789abcdef\"\n";
        let c = parse(&format!("[cluster]\nnode_id = \"n1\"\n{S}")).unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.etcd, vec!["http://127.0.0.1:2379".to_owned()]);
        assert_eq!(cluster.lease_ttl_s, 10);
        assert_eq!(cluster.node_id(), "n1");
        assert_eq!(cluster.peer_advertise(), "127.0.0.1:7400");
        let e = err("[cluster]\netcd = []\n");
        assert!(e.contains("cluster.etcd"), "{e}");
        let e = err("[cluster]\netcd = [\"127.0.0.1:2379\"]\n");
        assert!(e.contains("cluster.etcd[0]"), "{e}");
        let e = err("[cluster]\nnode_id = \"a b\"\n");
        assert!(e.contains("cluster.node_id"), "{e}");
        let e = err("[cluster]\nlease_ttl_s = 1\n");
        assert!(e.contains("cluster.lease_ttl_s"), "{e}");
        let e = err("[cluster]\npeer_listen = \"0.0.0.0:7400\"\n");
        assert!(e.contains("cluster.peer_advertise"), "{e}");
        let e = err("[cluster]\npeer_advertise = \"nohost\"\n");
        assert!(e.contains("cluster.peer_advertise"), "{e}");
        let e = err("[cluster]\ntls_cert = \"/nonexistent.pem\"\n");
        assert!(e.contains("cluster.tls_cert"), "{e}");
        let e =
            err("[cluster]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/k\"\ntls_ca = \"/c\"\n");
        assert!(
            e.contains("cluster.tls_cert") && e.contains("no such file"),
            "{e}"
        );
        let e = err("[cluster]\nnodeid = \"x\"\n");
        assert!(e.contains("cluster.nodeid"), "{e}");
    }

    #[test]
    fn auth_section() {
        let c = parse("[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\ndelegate_url = \"http://127.0.0.1:8080/check\"\n").unwrap();
        assert_eq!(c.auth.jwt_leeway_s, 30);
        assert_eq!(c.auth.delegate_timeout_ms, 3000);
        let e = err("[auth]\njwt_secret = \"short\"\n");
        assert!(e.contains("auth.jwt_secret"), "{e}");
        let e = err("[auth]\ndelegate_url = \"https://x\"\n");
        assert!(e.contains("auth.delegate_url"), "{e}");
        let e = err("[auth]\ndelegate_timeout_ms = 5\n");
        assert!(e.contains("auth.delegate_timeout_ms"), "{e}");
        assert_eq!(c.auth.jwt_max_lifetime_s, 86_400);
        assert_eq!(c.auth.failure_ip_refuse_after, 20);
        assert_eq!(c.auth.failure_table_size, 100_000);
        for (toml, key) in [
            ("jwt_audience = \"\"", "auth.jwt_audience"),
            ("jwt_max_lifetime_s = 0", "auth.jwt_max_lifetime_s"),
            ("failure_window_s = 0", "auth.failure_window_s"),
            (
                "failure_ip_refuse_after = 0",
                "auth.failure_ip_refuse_after",
            ),
            ("failure_ip_delay_after = 30", "auth.failure_ip_delay_after"),
            (
                "failure_account_delay_after = 30",
                "auth.failure_account_delay_after",
            ),
            ("failure_delay_ms = 20000", "auth.failure_delay_ms"),
            ("failure_max_delay_ms = 40000", "auth.failure_max_delay_ms"),
            ("failure_max_delay_ms = 100", "auth.failure_max_delay_ms"),
            ("failure_table_size = 10", "auth.failure_table_size"),
        ] {
            let e = err(&format!("[auth]\n{toml}\n"));
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn http_section() {
        let c = parse(
            "[http]\norigins = [\"https://example.org\", \"*\"]\nconsider_secure = \"always\"\n",
        )
        .unwrap();
        assert_eq!(c.http.origins.len(), 2);
        assert_eq!(c.http.consider_secure, ConsiderSecure::Always);
        assert_eq!(
            Config::default().http.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 5280)))
        );
        let e = err("[http]\norigins = [\"example.org\"]\n");
        assert!(e.contains("http.origins[0]"), "{e}");
        let e = err("[http]\norigins = [\"https://example.org/chat\"]\n");
        assert!(e.contains("http.origins[0]"), "{e}");
        let e = err("[http]\nconsider_secure = \"sometimes\"\n");
        assert!(e.contains("http.consider_secure"), "{e}");
        let e = err("[http]\npublic_url = \"chat.example.org\"\n");
        assert!(e.contains("http.public_url"), "{e}");
    }

    #[test]
    fn http_web_client() {
        let c = parse("[http]\nweb_client = true\n").unwrap();
        assert!(c.http.web_client);
        assert_eq!(c.http.converse_url, DEFAULT_CONVERSE_URL);
        assert!(!Config::default().http.web_client);
        let dist = tempfile::tempdir().unwrap();
        std::fs::write(dist.path().join("converse.min.js"), "").unwrap();
        let text = format!(
            "[http]\nweb_client = true\nconverse_dist = \"{}\"\n",
            dist.path().display()
        );
        assert_eq!(
            parse(&text).unwrap().http.converse_dist.as_deref(),
            Some(dist.path())
        );
        let e = err("[http]\nconverse_dist = \"/nonexistent/dist\"\n");
        assert!(
            e.contains("http.converse_dist") && e.contains("converse.min.js"),
            "{e}"
        );
        let e = err("[http]\nconverse_url = \"cdn.conversejs.org/dist\"\n");
        assert!(e.contains("http.converse_url"), "{e}");
        let e = err("[http]\nweb_client = \"yes\"\n");
        assert!(e.contains("web_client"), "{e}");
    }

    #[test]
    fn admin_section() {
        let c = Config::from_toml_str("[admin]\ntoken = \"0123456789abcdef0123\"\n", "t").unwrap();
        assert_eq!(
            c.admin.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 5290)))
        );
        let e = err("[admin]\ntoken = \"short\"\n");
        assert!(e.starts_with("test.toml: admin.token"), "{e}");
        assert!(!e.contains("short"), "the token is never echoed: {e}");
        let e = err("[admin]\nlisten = \"nowhere\"\n");
        assert!(e.contains("admin.listen"), "{e}");
    }

    #[test]
    fn quotas_and_users_sections_name_the_bad_key() {
        let c = parse("[quotas]\nblocklist_items = 5\nresources_per_account = 2\n[users]\nmailbox_stanzas = 64\n").unwrap();
        assert_eq!(
            (c.quotas.blocklist_items, c.quotas.resources_per_account),
            (5, 2)
        );
        assert_eq!(c.users.mailbox_stanzas, 64);
        assert_eq!(Config::default().quotas.roster_name_bytes, 1023);
        for (text, key) in [
            ("[quotas]\nblocklist_items = 0\n", "quotas.blocklist_items"),
            (
                "[quotas]\nsubscription_request_bytes = 10\n",
                "quotas.subscription_request_bytes",
            ),
            (
                "[quotas]\nresources_per_account = 0\n",
                "quotas.resources_per_account",
            ),
            ("[users]\nmailbox_bytes = 100\n", "users.mailbox_bytes"),
            (
                "[users]\nabsent_cache_ttl_ms = 999999\n",
                "users.absent_cache_ttl_ms",
            ),
            ("[users]\nexistence_checks = 0\n", "users.existence_checks"),
        ] {
            let e = err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(err("[quotas]\nno_such_key = 1\n").contains("no_such_key"));
    }

    #[test]
    fn roster_and_offline_sections() {
        let c = Config::from_toml_str(
            "[roster]\nmax_items = 5\n[offline]\nmax_per_user = 0\n",
            "t",
        )
        .unwrap();
        assert_eq!((c.roster.max_items, c.offline.max_per_user), (5, 0));
        let e = err("[roster]\nmax_items = 0\n");
        assert!(
            e.starts_with("test.toml: roster.max_items = 0: must be at least 1"),
            "{e}"
        );
        let e = err("[offline]\nmax = 1\n");
        assert!(e.contains("offline.max"), "{e}");
    }

    #[test]
    fn each_rule_names_its_key() {
        let cases = [
            ("[server]\nhosts = []", "server.hosts = []"),
            (
                "[server]\nhosts = [\"exa mple\"]",
                "server.hosts[0] = \"exa mple\"",
            ),
            ("[server]\nhosts = [\"a@b\"]", "server.hosts[0] = \"a@b\""),
            (
                "[server]\nhosts = [\"a.org\", \"A.ORG\"]",
                "server.hosts[1] = \"a.org\": duplicate of server.hosts[0]",
            ),
            ("[c2s]\nlisten = []\ndirect_tls = []", "c2s.listen = []"),
            (
                "[c2s]\nlisten = [\"127.0.0.1:5222\"]\ndirect_tls = [\"127.0.0.1:5222\"]",
                "c2s.direct_tls[0] = \"127.0.0.1:5222\": already used by c2s.listen[0]",
            ),
            ("[c2s]\nmax_depth = 7", "c2s.max_depth = 7"),
            ("[c2s]\nmax_attributes = 2", "c2s.max_attributes = 2"),
            (
                "[c2s]\nmax_namespace_declarations = 4",
                "c2s.max_namespace_declarations = 4: must be at least 16",
            ),
            (
                "[c2s]\nmax_namespace_declarations = 5000",
                "c2s.max_namespace_declarations = 5000: must be at most 1024",
            ),
            (
                "[c2s]\nmax_depth = 100000",
                "c2s.max_depth = 100000: must be at most 256",
            ),
            ("[c2s]\nauth_timeout_s = 0", "c2s.auth_timeout_s = 0"),
            ("[c2s]\nmax_auth_attempts = 0", "c2s.max_auth_attempts = 0"),
            (
                "[c2s]\nsend_queue_stanzas = 0",
                "c2s.send_queue_stanzas = 0",
            ),
            (
                "[c2s]\nsend_queue_bytes = 20000",
                "c2s.send_queue_bytes = 20000: must be at least c2s.max_stanza_bytes (262144)",
            ),
            (
                "[storage]\nurl = \"parley.db\"",
                "storage.url = \"parley.db\"",
            ),
            ("[log]\nlevel = \"=^=\"", "log.level = \"=^=\""),
        ];
        for (toml, expected) in cases {
            let e = err(toml);
            assert!(
                e.starts_with(&format!("test.toml: {expected}")),
                "{toml:?} gave {e}"
            );
        }
    }

    #[test]
    fn tls_cert_without_key_is_rejected() {
        let e = err("[tls]\ncert = \"/etc/ssl/fullchain.pem\"\n");
        assert!(
            e.starts_with("test.toml: tls.cert = \"/etc/ssl/fullchain.pem\": tls.key is not set"),
            "{e}"
        );
        let e = err("[tls]\nkey = \"/etc/ssl/key.pem\"\n");
        assert!(
            e.contains("tls.key = \"/etc/ssl/key.pem\": tls.cert is not set"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_must_exist() {
        let e = err("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n");
        assert!(
            e.starts_with("test.toml: tls.cert = \"/nonexistent/cert.pem\": cannot read"),
            "{e}"
        );
    }

    #[test]
    fn validate_without_origin_still_names_the_key() {
        let mut config = Config::default();
        config.c2s.max_auth_attempts = 0;
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("c2s.max_auth_attempts = 0"), "{e}");
    }

    #[test]
    fn account_jid_is_normalized() {
        let config = parse("[server]\nhosts = [\"Example.org\"]\n").unwrap();
        let jid = config.account_jid("Alice@EXAMPLE.org").unwrap();
        assert_eq!(jid.username, "alice");
        assert_eq!(jid.host, "example.org");
        assert_eq!(jid.to_string(), "alice@example.org");
    }

    #[test]
    fn account_jid_with_unknown_host_names_the_host() {
        let e = Config::default()
            .account_jid("alice@example.net")
            .unwrap_err();
        assert!(matches!(e, AccountJidError::UnknownHost { .. }));
        assert_eq!(
            e.to_string(),
            "`alice@example.net`: host `example.net` is not in [server] hosts (localhost)"
        );
    }

    #[test]
    fn account_jid_must_be_bare_with_node() {
        let config = Config::default();
        assert!(matches!(
            config.account_jid("alice@localhost/phone"),
            Err(AccountJidError::HasResource { .. })
        ));
        assert!(matches!(
            config.account_jid("localhost"),
            Err(AccountJidError::NoNode { .. })
        ));
        assert!(matches!(
            config.account_jid("@localhost"),
            Err(AccountJidError::Invalid { .. })
        ));
    }

    #[test]
    fn served_host_normalizes() {
        let config = Config::default();
        assert_eq!(
            config.served_host("LOCALHOST").as_deref(),
            Some("localhost")
        );
        assert_eq!(config.served_host("example.org"), None);
    }
}
