//! The configuration's shape: one serde struct per TOML section, each with the defaults that
//! `config/parley.toml` documents. Unknown keys are refused (`deny_unknown_fields`) so that a
//! typo is an error naming the key rather than a silently ignored setting. Enums that lower
//! crates own (resource-conflict policy, `consider_secure`) are read with their own
//! `Deserialize`, so each is declared once.
//!
//! Longer than 800 lines: it is the reference of every key, one struct per section with its
//! defaults beside it, read top to bottom against `config/parley.toml`; validation and the
//! error locations live in their own modules.

use std::net::SocketAddr;
use std::path::PathBuf;

use parley_http::ConsiderSecure;
use parley_router::ResourceConflict;
use serde::Deserialize;

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
    /// `[component]`: external components (XEP-0114).
    pub component: ComponentConfig,
    /// `[s2s]`: federation with other servers (RFC 6120 server-to-server).
    pub s2s: S2sConfig,
    /// `[external_services]`: STUN and TURN servers announced to clients (XEP-0215).
    pub external_services: ExternalServicesConfig,
    /// `[mam]`: the message archive (XEP-0313).
    pub mam: super::MamConfig,
    /// `[pep]`: each account's personal eventing service (XEP-0163).
    pub pep: super::PepConfig,
    /// `[register]`: in-band registration of new accounts (XEP-0077, XEP-0445).
    pub register: super::RegisterConfig,
    /// `[push]`: push notifications (XEP-0357).
    pub push: super::PushConfig,
    /// `[upload]`: HTTP file upload (XEP-0363) at `upload.DOMAIN`.
    pub upload: super::UploadConfig,
    /// `[muc]`: multi-user chat (XEP-0045) at `conference.DOMAIN`.
    pub muc: super::MucConfig,
    /// Fault points for tests: never read from a file (a test sets them in code, or a
    /// debug build reads `PARLEY_FAULTS`; see `parley_session::faults`).
    #[serde(skip)]
    pub faults: parley_session::faults::Faults,
}

/// `[component]`: external components (XEP-0114): gateways, bots, push app servers.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentConfig {
    /// Where components connect (plain TCP, as XEP-0114; keep it on loopback or a private
    /// network). Empty: no component port.
    pub listen: Vec<SocketAddr>,
    /// The shared secret of each component domain.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// Files whose first line is a component domain's secret.
    pub secret_files: std::collections::BTreeMap<String, PathBuf>,
    /// Largest stanza a component may send, in bytes.
    pub max_stanza_bytes: usize,
}

impl Default for ComponentConfig {
    fn default() -> Self {
        ComponentConfig {
            listen: Vec::new(),
            secrets: Default::default(),
            secret_files: Default::default(),
            max_stanza_bytes: 262_144,
        }
    }
}

impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("ComponentConfig")
            .field("listen", &self.listen)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("secret_files", &self.secret_files)
            .field("max_stanza_bytes", &self.max_stanza_bytes)
            .finish()
    }
}

/// `[s2s]`: federation with other XMPP servers. Off while `listen` and `direct_tls` are
/// both empty: a server that cannot be reached cannot prove its domain (dialback asks the
/// sender's own server), so there is no outgoing federation without a listener either.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Where other servers connect with STARTTLS (port 5269, `_xmpp-server._tcp`).
    pub listen: Vec<SocketAddr>,
    /// Where other servers connect with TLS from the first byte (XEP-0368,
    /// `_xmpps-server._tcp`).
    pub direct_tls: Vec<SocketAddr>,
    /// Static routes, domain → `host:port` (STARTTLS), before DNS: private federations
    /// and tests.
    pub routes: std::collections::BTreeMap<String, String>,
    /// DNS servers for SRV and address lookups (`ip:port`); empty: the system's.
    pub name_servers: Vec<SocketAddr>,
    /// TLS is required both ways before anything else.
    pub require_encryption: bool,
    /// Remote servers must present a certificate valid for their domain (Prosody's
    /// `s2s_secure_auth`): dialback is then refused for them.
    pub require_valid_certificates: bool,
    /// Per-domain overrides of `require_valid_certificates`.
    pub require_valid_certificates_for: std::collections::BTreeMap<String, bool>,
    /// PEM trust anchors for remote servers' certificates; unset: the system's CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Largest stanza a remote server may send, in bytes.
    pub max_stanza_bytes: usize,
    /// Stanzas waiting for one remote domain's stream; past it `resource-constraint`.
    pub queue_stanzas: usize,
    /// The same bound in bytes.
    pub queue_bytes: usize,
    /// Seconds an outgoing stream may take from dialing to authenticated.
    pub connect_timeout_s: u64,
    /// Seconds a stream may carry no stanza before it is closed.
    pub idle_timeout_s: u64,
    /// Dialback checks one stream may have in flight.
    pub max_pending_verifications: usize,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            listen: Vec::new(),
            direct_tls: Vec::new(),
            routes: Default::default(),
            name_servers: Vec::new(),
            require_encryption: true,
            require_valid_certificates: false,
            require_valid_certificates_for: Default::default(),
            ca_file: None,
            max_stanza_bytes: 262_144,
            queue_stanzas: 1000,
            queue_bytes: 4 << 20,
            connect_timeout_s: 20,
            idle_timeout_s: 600,
            max_pending_verifications: 64,
        }
    }
}

impl S2sConfig {
    /// Whether federation is on.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.direct_tls.is_empty()
    }
}

/// `[external_services]`: STUN and TURN servers for calls, announced to clients
/// (XEP-0215), with time-limited TURN credentials when the TURN server's secret is given.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalServicesConfig {
    /// Each `type:host:port[:transport]`, type stun, stuns, turn or turns.
    pub services: Vec<String>,
    /// The secret shared with the TURN server (its `static-auth-secret`).
    pub turn_secret: Option<String>,
    /// Seconds TURN credentials are valid.
    pub credential_ttl_s: u64,
}

impl Default for ExternalServicesConfig {
    fn default() -> Self {
        ExternalServicesConfig {
            services: Vec::new(),
            turn_secret: None,
            credential_ttl_s: 86_400,
        }
    }
}

impl std::fmt::Debug for ExternalServicesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ExternalServicesConfig")
            .field("services", &self.services)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "…"))
            .field("credential_ttl_s", &self.credential_ttl_s)
            .finish()
    }
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
    /// Largest message decoded from etcd (a registry page, a watch response), in bytes.
    pub etcd_max_message_bytes: usize,
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
    /// Frames of one peer that may wait for the registry at once (in lines per user); past
    /// it the peer's link stops reading until one is done.
    pub registry_wait_frames: usize,
    /// Their bytes on the wire.
    pub registry_wait_bytes: usize,
    /// Seconds a drain (SIGTERM, the admin API, `parley node drain`) waits for the node to
    /// empty before it leaves the cluster anyway.
    pub drain_timeout_s: u64,
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
            etcd_max_message_bytes: parley_cluster::etcd_access::DEFAULT_MAX_MESSAGE_BYTES,
            handshake_timeout_ms: 5_000,
            max_links_per_address: 8,
            max_frame_bytes: 4 << 20,
            send_queue_bytes: 64 << 20,
            registry_wait_ms: 2_000,
            registry_wait_frames: 10_000,
            registry_wait_bytes: 16 << 20,
            drain_timeout_s: 60,
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
    /// Offer Stream Management (XEP-0198).
    pub stream_management: bool,
    /// Seconds a session whose connection died waits for a resume (XEP-0198 §5).
    pub resume_timeout_s: u64,
    /// The longest wait a client's `<enable max/>` may ask for.
    pub max_resume_timeout_s: u64,
    /// Unacknowledged stanzas kept per session.
    pub sm_max_queue: usize,
    /// Unacknowledged bytes kept per session.
    pub sm_max_queue_bytes: usize,
    /// Client State Indication (XEP-0352): stanzas held for an inactive client.
    pub csi_max_held: usize,
    /// Their bytes.
    pub csi_max_held_bytes: usize,
    /// Load balancers that put a PROXY protocol header (v1 or v2) before each connection on
    /// the STARTTLS and direct-TLS ports (addresses or CIDR blocks). Empty: none. When set,
    /// only they may connect there, each connection must start with a header, and the
    /// client address it names is the one sessions, logs and per-address limits see.
    pub proxy_protocol_from: Vec<String>,
    /// Seconds a balancer may take to send the PROXY header of a connection.
    pub proxy_header_timeout_s: u64,
    /// The server asks for an ack after this many unacknowledged stanzas…
    pub sm_ack_every: u32,
    /// …or this many milliseconds after the first one.
    pub sm_ack_delay_ms: u64,
    /// Where clients should reconnect to resume (`<enabled location/>`); empty: anywhere.
    pub resume_location: String,
    /// Ended resumable sessions remembered, so that a late resume learns its `h`.
    pub sm_remember_ended: usize,
    /// Seconds of silence after which a bound connection is pinged; 0: never.
    pub ping_interval_s: u64,
    /// Seconds a pinged connection has to send something before it counts as gone.
    pub ping_timeout_s: u64,
    /// Where a draining node sends its TCP clients (`<see-other-host/>`, RFC 6120
    /// §4.9.3.19), `host` or `host:port`, usually the load balancer; empty:
    /// `<system-shutdown/>`.
    pub redirect_host: String,
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
            stream_management: true,
            resume_timeout_s: 300,
            max_resume_timeout_s: 3600,
            sm_max_queue: 500,
            sm_max_queue_bytes: 2_097_152,
            csi_max_held: 500,
            csi_max_held_bytes: 1_048_576,
            proxy_protocol_from: Vec::new(),
            proxy_header_timeout_s: 5,
            sm_ack_every: 5,
            sm_ack_delay_ms: 2000,
            resume_location: String::new(),
            sm_remember_ended: 10_000,
            ping_interval_s: 120,
            ping_timeout_s: 30,
            redirect_host: String::new(),
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
    /// A local copy of Converse.js's `dist` directory for that page; unset: `converse_url`,
    /// or else the copy bundled into the binary.
    pub converse_dist: Option<PathBuf>,
    /// A URL of a Converse.js `dist` directory (a CDN) the page loads it from instead of the
    /// bundled copy.
    pub converse_url: Option<String>,
    /// Peers (IPs or CIDR blocks) whose `X-Forwarded-*`/`Forwarded` headers are believed;
    /// with `consider_secure = "always"` and a non-empty list, the only peers that count as
    /// encrypted.
    pub trusted_proxies: Vec<String>,
    /// TCP load balancers that put a PROXY protocol header (v1 or v2) before each
    /// connection on this listener (addresses or CIDR blocks). Empty: none. When set, only
    /// they may connect, and the client address each header names is what per-address
    /// limits, session records and logs see.
    pub proxy_protocol_from: Vec<String>,
    /// Seconds a balancer may take to send the PROXY header of a connection.
    pub proxy_header_timeout_s: u64,
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
    /// Where a draining node sends its WebSocket clients (`<close see-other-uri/>`, RFC 7395
    /// §3.6.1); unset: they are told `<system-shutdown/>` (or `c2s.redirect_host`).
    pub redirect_ws_uri: Option<String>,
}

/// The Converse.js release the chat page loads by default (the one the browser tests run).
/// A CDN URL of the bundled Converse.js version, for the docs' example of `converse_url`.
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
            converse_url: None,
            trusted_proxies: Vec::new(),
            proxy_protocol_from: Vec::new(),
            proxy_header_timeout_s: 5,
            bosh_max_body_bytes: 256 * 1024 + 8 * 1024,
            bosh_pending_bytes: 16 * 1024 * 1024,
            bosh_session_pending_bytes: 1024 * 1024,
            bosh_max_sessions: 20_000,
            bosh_sessions_per_ip_burst: 20,
            bosh_sessions_per_ip_per_minute: 60,
            bosh_parse_threads: 2,
            redirect_ws_uri: None,
        }
    }
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
    /// The SASL mechanisms offered and accepted, by their registered names.
    pub mechanisms: Vec<String>,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            scram_iterations: 10_000,
            mechanisms: parley_proto::sasl::Mechanism::ALL
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
        }
    }
}

impl SaslConfig {
    /// `mechanisms` as mechanisms (names already validated; an unknown one is skipped).
    pub fn mechanisms(&self) -> Vec<parley_proto::sasl::Mechanism> {
        self.mechanisms
            .iter()
            .filter_map(|n| parley_proto::sasl::Mechanism::from_name(n))
            .collect()
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
    /// Namespaces one account may keep in private XML storage (XEP-0049); past it,
    /// `<resource-constraint/>`.
    pub private_namespaces: usize,
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
            private_namespaces: 100,
        }
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Storage URL; `None` means `sqlite://{data_dir}/parley.db` (see [`Config::storage_url`]).
    pub url: Option<String>,
    /// SQLite: the page cache of the connection that writes, in MiB (reading connections
    /// keep SQLite's default of 2 MiB each).
    pub sqlite_cache_mib: u32,
    /// SQLite: requests waiting for the file's user thread (a login's reads, private XML
    /// writes), in items.
    pub sqlite_user_queue: usize,
    /// SQLite: archived records the archive's log holds before they are merged into the
    /// indexed archive, in items (a query scans the log).
    pub sqlite_archive_log_rows: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: None,
            sqlite_cache_mib: parley_storage::StorageOptions::default().sqlite_writer_cache_kib
                / 1024,
            sqlite_user_queue: parley_storage::StorageOptions::default().sqlite_user_queue,
            sqlite_archive_log_rows: parley_storage::StorageOptions::default()
                .sqlite_archive_log_rows,
        }
    }
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
