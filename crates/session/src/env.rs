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
            jwt: None,
            max_lifetime: None,
            idle_timeout: None,
            max_sasl_attempts: 5,
            max_stream_opens: 10,
            read_rate: ReadRate::default(),
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
}
