//! What every session of a node shares: its settings, the router and the storage.

use std::sync::Arc;
use std::time::Duration;

use parley_router::{ResourceConflict, Router};
use parley_storage::Storage;
use parley_user::Users;
use parley_xml::Limits;

use crate::limits::{ConnLimiter, ReadRate};

/// Per-connection settings, taken from the `[c2s]` and `[sasl]` config sections.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Parser limits: stanza bytes (advertised per XEP-0478), depth, attributes.
    pub limits: Limits,
    /// Nothing but `<starttls/>` is accepted before TLS.
    pub require_encryption: bool,
    /// An unauthenticated connection is closed after this.
    pub auth_timeout: Duration,
    /// Failed SASL attempts before the stream is closed (RFC 6120 §6.4.5).
    pub max_auth_attempts: u32,
    /// Resource-conflict policy (RFC 6120 §7.7.2.2).
    pub resource_conflict: ResourceConflict,
    /// Bound on stanzas queued towards one client.
    pub send_queue_stanzas: usize,
    /// Bound on bytes queued towards one client.
    pub send_queue_bytes: usize,
    /// SCRAM iteration count, shown for unknown users so that they look like real ones.
    pub scram_iterations: u32,
    /// The SASL mechanisms a client may use (`[sasl] mechanisms`); the others are neither
    /// offered nor accepted.
    pub mechanisms: Vec<parley_proto::sasl::Mechanism>,
    /// HS256 JWT logins (PLAIN with a JWT as the password), when configured.
    pub jwt: Option<JwtSettings>,
    /// A session ends (status expired) this long after it started.
    pub max_lifetime: Option<Duration>,
    /// A session that sends nothing for this long ends (status expired).
    pub idle_timeout: Option<Duration>,
    /// SASL exchanges (`<auth/>` elements) one connection may start, whatever their outcome;
    /// past it the stream is closed with `<policy-violation/>`.
    pub max_sasl_attempts: u32,
    /// Stream headers (`<stream:stream>` or RFC 7395 `<open/>`, the first one and every
    /// restart) one connection may send; past it the stream is closed with
    /// `<policy-violation/>`.
    pub max_stream_opens: u32,
    /// The read rate of each session (back-pressure past it).
    pub read_rate: ReadRate,
    /// Stream Management (XEP-0198).
    pub sm: SmConfig,
    /// Dead-peer detection: a bound connection silent this long gets a ping (XEP-0199, or
    /// `<r/>` under Stream Management); None: never.
    pub ping_interval: Option<Duration>,
    /// A pinged connection that sends nothing for this long is treated as gone.
    pub ping_timeout: Duration,
    /// Namespaces one account may keep in private XML storage (XEP-0049).
    pub private_namespaces: usize,
    /// STUN and TURN servers announced to clients (XEP-0215).
    pub external_services: ExternalServices,
    /// Client State Indication (XEP-0352): stanzas held for an inactive client, at most…
    pub csi_max_held: usize,
    /// …and their bytes; past either, they all go out.
    pub csi_max_held_bytes: usize,
    /// `[mam]`: page sizes and the preferences' bound (XEP-0313).
    pub mam: crate::mam::MamSettings,
    /// Fault points for tests (empty in service; see [`crate::faults`]).
    pub faults: crate::faults::Faults,
}

/// `[c2s]` Stream Management settings (XEP-0198).
#[derive(Debug, Clone)]
pub struct SmConfig {
    /// Whether `<sm/>` is offered.
    pub enabled: bool,
    /// How long a session whose connection died waits for its client to resume it, when
    /// the client asked for no shorter time.
    pub resume_timeout: Duration,
    /// The longest a client's `max` may make it.
    pub max_resume_timeout: Duration,
    /// Stanzas kept for a client until it acknowledges them; past it a connected client is
    /// disconnected and a hibernating session refuses more.
    pub max_queue: usize,
    /// The same bound in bytes.
    pub max_queue_bytes: usize,
    /// The server asks for an ack (`<r/>`) once this many stanzas are unacknowledged…
    pub ack_every: u32,
    /// …or this long after the first unacknowledged one.
    pub ack_delay: Duration,
    /// Where clients should reconnect to resume (`<enabled location/>`); None: anywhere,
    /// the right answer behind a load balancer.
    pub location: Option<String>,
    /// Ended resumable sessions remembered, so that a late resume learns its `h`.
    pub remember_ended: usize,
}

impl Default for SmConfig {
    fn default() -> Self {
        SmConfig {
            enabled: true,
            resume_timeout: Duration::from_secs(300),
            max_resume_timeout: Duration::from_secs(3600),
            max_queue: 500,
            max_queue_bytes: 2 << 20,
            ack_every: 5,
            ack_delay: Duration::from_secs(2),
            location: None,
            remember_ended: 10_000,
        }
    }
}

/// `[external_services]` (XEP-0215).
#[derive(Clone, Default)]
pub struct ExternalServices {
    /// The services, in the order configured.
    pub services: Vec<parley_proto::extdisco::Service>,
    /// The secret shared with the TURN servers, for time-limited credentials.
    pub turn_secret: Option<Vec<u8>>,
    /// How long such credentials are valid.
    pub credential_ttl: Duration,
}

impl std::fmt::Debug for ExternalServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ExternalServices")
            .field("services", &self.services)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "…"))
            .field("credential_ttl", &self.credential_ttl)
            .finish()
    }
}

/// `[auth] jwt_secret`, its leeway, and the `aud`, `iss` and lifetime rules.
pub type JwtSettings = parley_proto::jwt::JwtPolicy;

impl std::fmt::Debug for dyn ExternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalAuth")
    }
}

/// A password check delegated to a site's own backend (`[auth] delegate_url`). Errors and
/// timeouts fail closed.
pub trait ExternalAuth: Send + Sync + 'static {
    /// Whether `password` is right for `username@host`; Err(reason) when the backend could
    /// not say. `username` is the normalized localpart (nodeprep), exactly the one that is
    /// bound on a yes.
    fn check(
        &self,
        username: &str,
        host: &str,
        password: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send>>;
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            require_encryption: true,
            auth_timeout: Duration::from_secs(60),
            max_auth_attempts: 3,
            resource_conflict: ResourceConflict::KickOld,
            send_queue_stanzas: 10_000,
            send_queue_bytes: 4 << 20,
            scram_iterations: 10_000,
            mechanisms: parley_proto::sasl::Mechanism::ALL.to_vec(),
            jwt: None,
            max_lifetime: None,
            idle_timeout: None,
            max_sasl_attempts: 5,
            max_stream_opens: 10,
            read_rate: ReadRate::default(),
            sm: SmConfig::default(),
            ping_interval: Some(Duration::from_secs(120)),
            ping_timeout: Duration::from_secs(30),
            private_namespaces: 100,
            external_services: ExternalServices::default(),
            csi_max_held: 500,
            csi_max_held_bytes: 1 << 20,
            mam: crate::mam::MamSettings::default(),
            faults: crate::faults::Faults::default(),
        }
    }
}

/// Shared, read-only environment of all sessions on a node.
#[derive(Debug)]
pub struct SessionEnv {
    /// This node's name, carried by every session's log span.
    pub node: String,
    /// Settings.
    pub config: SessionConfig,
    /// The routing table.
    pub router: Arc<Router>,
    /// The user actors (RFC 6121: bare-JID routing, roster, presence).
    pub users: Arc<Users>,
    /// Accounts and credentials.
    pub storage: Arc<dyn Storage>,
    /// The deployment secret from storage, for fake SCRAM salts of unknown users.
    pub server_secret: Vec<u8>,
    /// Whether a TLS acceptor is configured, so that STARTTLS can be offered.
    pub tls_available: bool,
    /// Failed authentications per address and per account (`[auth]` limits), node-wide.
    pub auth_limits: Arc<crate::auth_limits::AuthLimits>,
    /// Delegated password checks, when configured (SCRAM is then not offered: the server
    /// has no keys for such users).
    pub external_auth: Option<std::sync::Arc<dyn ExternalAuth>>,
    /// Connection limits shared by every transport of the node.
    pub conn_limiter: Arc<ConnLimiter>,
    /// Resumable sessions of this node, by Stream Management id (XEP-0198 §5).
    pub resumptions: Arc<crate::resumption::Resumptions>,
    /// External components (XEP-0114): their domains' secrets and their parser limits.
    pub components: ComponentSettings,
    /// Server-to-server streams (`[s2s]`): the outgoing routes, with their settings. None:
    /// federation is off.
    pub s2s: Option<Arc<crate::s2s::S2sRoutes>>,
    /// When the node started (unix ms): its uptime is its last activity (XEP-0012 §5).
    pub started_ms: i64,
    /// The server's `<c/>` (XEP-0115): its disco#info is fixed for the node's life, so the
    /// hash is computed on the first login, not on each.
    pub server_caps: std::sync::OnceLock<parley_xml::Element>,
    /// The message archive's writer (XEP-0313); None: `[mam] enabled = false`.
    pub archive: Option<Arc<crate::archive::writer::ArchiveWriter>>,
    /// Ends an account's sessions on every node (XEP-0077 self-service); set once by the
    /// binary after the admin road is built.
    pub account_sessions: std::sync::OnceLock<Arc<dyn crate::register::AccountSessions>>,
    /// In-band registration of new accounts: its settings and per-address counts.
    pub signup: Arc<crate::signup::SignupLimiter>,
}

/// The `[component]` settings a component's session needs.
#[derive(Clone, Default)]
pub struct ComponentSettings {
    /// The shared secret of each component domain (lowercase).
    pub secrets: std::collections::HashMap<String, String>,
    /// Parser limits on a component's stream.
    pub limits: Limits,
}

impl std::fmt::Debug for ComponentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("ComponentSettings")
            .field("domains", &self.secrets.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}
