//! Server-to-server streams (RFC 6120 with `jabber:server`, XEP-0220 dialback): Prosody's
//! `s2s_unauthed` and `s2s` session types, incoming and outgoing, on the same session actor,
//! driver, limits and close path as clients' and components' sessions.
//!
//! * `incoming.rs`: a stream another server opened to us (`[s2s] listen`). It may
//!   STARTTLS, then asks to be accepted for its domain with `<db:result/>`; we ask that
//!   domain's authority (over our own outgoing stream to it, see `routes.rs`) and answer.
//!   It also carries `<db:verify/>` requests when we are the authority for a key.
//!   Authenticated stanzas are checked (`from` in a domain the stream proved, `to` a
//!   domain we serve) and routed in `jabber:client`.
//! * `outgoing.rs`: a stream we open to a remote domain, started by the router's
//!   [`parley_router::Foreign`] hook through [`S2sRoutes`]: dial (the transport's
//!   [`Dialer`]), STARTTLS, dialback, then everything queued for the domain is written.
//! * `routes.rs`: one outgoing stream per (local, remote) domain pair, with its bounded
//!   queue, which is bounced when the stream fails.
//!
//! Streams are unidirectional (RFC 6120 §2.6): stanzas arrive on incoming streams and
//! leave on outgoing ones; errors for a remote sender go out through its domain's route.

mod incoming;
mod outgoing;
mod routes;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use parley_xml::Limits;

pub use incoming::S2sInPhase;
pub(crate) use outgoing::out_link;
pub use outgoing::S2sOut;
pub use outgoing::S2sOutPhase;
pub use routes::{S2sRoutes, VerifyDone};

use actix::{AsyncContext, Context};
use parley_router::CloseReason;

use crate::connection::Connection;
use crate::phase::Phase;
use crate::session::Session;

/// The `[s2s]` settings the sessions and the routes need.
#[derive(Debug, Clone)]
pub struct S2sSettings {
    /// Parser limits on a server stream (`[s2s] max_stanza_bytes`).
    pub limits: Limits,
    /// TLS before anything else, both ways (`[s2s] require_encryption`).
    pub require_encryption: bool,
    /// Stanzas waiting for one remote domain's stream (while it connects, or faster than
    /// it writes); past it they bounce with `resource-constraint`.
    pub queue_stanzas: usize,
    /// The same bound in bytes.
    pub queue_bytes: usize,
    /// How long an outgoing stream may take from dialing to authenticated; past it the
    /// queue bounces with `remote-server-timeout`.
    pub connect_timeout: Duration,
    /// A stream that carried no stanza for this long is closed (reopened when needed).
    pub idle_timeout: Duration,
    /// Dialback checks one stream may have in flight (both the checks an incoming stream
    /// waits for and the `db:verify` requests an outgoing one carries).
    pub max_pending_verifications: usize,
    /// Domains that must present a valid certificate (`require_valid_certificates`, with
    /// its per-domain overrides applied): dialback is refused for them.
    pub secure_domains: SecureDomains,
}

/// Which remote domains dialback is refused for (XEP-0178's stronger check is required).
#[derive(Debug, Clone, Default)]
pub struct SecureDomains {
    /// The default (`[s2s] require_valid_certificates`).
    pub default: bool,
    /// Per-domain overrides (`[s2s] require_valid_certificates_for`).
    pub overrides: std::collections::HashMap<String, bool>,
}

impl SecureDomains {
    /// Whether `domain` must authenticate with a valid certificate.
    pub fn required(&self, domain: &str) -> bool {
        self.overrides.get(domain).copied().unwrap_or(self.default)
    }
}

impl Default for S2sSettings {
    fn default() -> Self {
        S2sSettings {
            limits: Limits::default(),
            require_encryption: true,
            queue_stanzas: 1000,
            queue_bytes: 4 << 20,
            connect_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(600),
            max_pending_verifications: 64,
            secure_domains: SecureDomains::default(),
        }
    }
}

/// In a cluster: which node owns the outgoing stream to a remote domain (one at a time,
/// rendezvous placement over the live nodes, as for user actors), and the node link that
/// takes stanzas there. The cluster crate implements it; the binary installs it.
pub trait S2sPlacement: Send + Sync + 'static {
    /// The owner of `remote`'s stream when it is another node; None when it is this one.
    fn owner(&self, remote: &str) -> Option<std::sync::Arc<str>>;
    /// Hands `stanza` to `node`'s outgoing stream; gives it back when `node` cannot be
    /// reached (the stanza then leaves from here).
    fn forward(&self, node: &str, stanza: parley_xml::Element) -> Result<(), parley_xml::Element>;
}

/// A connection to a remote server, made by the transport.
pub struct Dialed {
    /// The connection: plain (STARTTLS may follow) or TLS from the first byte.
    pub conn: Box<dyn Connection>,
    /// Where it went, for logs.
    pub target: String,
}

/// Why a remote server could not be reached: the stanzas waiting for it bounce with the
/// condition that says so (RFC 6120 §8.3.3.15 and §8.3.3.16).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// Not resolvable, no service, or every address refused the connection.
    #[error("remote server not found: {0}")]
    NotFound(String),
    /// No answer in time.
    #[error("remote server timed out: {0}")]
    Timeout(String),
}

/// Future of a dial: polled on the outgoing session's own arbiter.
pub type DialFuture = Pin<Box<dyn Future<Output = Result<Dialed, DialError>>>>;

/// How outgoing server connections are made (resolution, TCP, TLS): the transport
/// implements it, so that this crate touches no socket.
pub trait Dialer: Send + Sync + 'static {
    /// Connects to `remote`'s server, for a stream from our `local` domain.
    fn dial(&self, local: &str, remote: &str) -> DialFuture;
}

impl std::fmt::Debug for dyn Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

impl Session {
    /// Closes a server stream that carried nothing for `idle`: an incoming one that
    /// received no stanza, an outgoing one that wrote none (with nothing waiting). The
    /// next stanza opens a new one.
    pub(crate) fn watch_s2s_idle(&mut self, idle: Duration, ctx: &mut Context<Self>) {
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            let last = match &act.phase {
                Phase::S2sIn(_) => act.meta.last_active_ms(),
                Phase::S2sOut(out) if out.step == S2sOutPhase::Ready => out.last_used_ms,
                _ => return,
            };
            if parley_router::now_ms() - last >= idle.as_millis() as i64 {
                act.span
                    .in_scope(|| tracing::debug!("closing an idle server stream"));
                act.close(CloseReason::Clean, ctx);
            }
        });
    }
}

impl Session {
    /// Queues a dialback element with the `db:` prefix our stream header declares (see
    /// [`parley_proto::dialback::to_wire`]); like every negotiation element, not refused by
    /// the output bounds.
    pub(crate) fn send_dialback(&mut self, el: &parley_xml::Element) {
        self.outbox
            .push_unbounded(&parley_proto::dialback::to_wire(el));
        self.wake();
    }
}
