//! The session actor: its fields, its constructors and Prosody's session fields.
//!
//! One actor per connection owns the connection, the parser and the outbound queue. The
//! rest of the actor is split by concern, each an `impl Session` block of its own:
//! `driver.rs` (the I/O driver: writes, reads, the parser), `output.rs` (`send`, `close`),
//! `negotiation.rs` (stream headers, features, STARTTLS, RFC 7395 framing), `sasl.rs`,
//! `bind.rs`, `actor.rs` (the actor's life and its messages), `stanzas.rs` (what a bound
//! session does with stanzas) and `server_iq.rs` (the iqs the server answers itself).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Waker;

use actix::{AsyncContext, Context, SpawnHandle};
use jid::BareJid;
use parley_proto::ns;
use parley_router::{PendingGauge, SessionHandle, SessionId, SessionMeta};
use parley_xml::StreamParser;
use tracing::{info, Span};

use crate::bind::PrebindReply;
use crate::bounds::ReadGate;
use crate::connection::{Connection, Framing, Security};
use crate::driver::Io;
use crate::env::SessionEnv;
use crate::limits::{ConnPermit, Shaper};
use crate::outbox::Outbox;
use crate::phase::StreamState;
pub use crate::phase::{Bound, EndCause, Phase, SessionType, Unauthed, HELD_BACK_MAX};

/// One client connection.
pub struct Session {
    /// This session's place among the node's connections (`[limits]`). The first field, so
    /// that it is released before the connection is closed: a client that saw the end of
    /// its connection may connect again at once.
    pub(crate) permit: Option<ConnPermit>,
    pub(crate) id: SessionId,
    pub(crate) env: Arc<SessionEnv>,
    pub(crate) conn: Box<dyn Connection>,
    pub(crate) parser: StreamParser,
    pub(crate) outbox: Outbox,
    pub(crate) pending: Arc<PendingGauge>,
    pub(crate) stream: StreamState,
    pub(crate) phase: Phase,
    pub(crate) io: Io,
    pub(crate) paused: bool,
    /// Input waits until the user's actor answers a [`parley_user::Fence`] after a
    /// broadcast presence (RFC 6120 §10.1); a flag of its own, so that no other pause's end
    /// lifts it.
    pub(crate) fenced: bool,
    pub(crate) waker: Option<Waker>,
    pub(crate) end: Option<EndCause>,
    pub(crate) auth_timer: Option<SpawnHandle>,
    pub(crate) span: Span,
    /// What the admin API shows (ip, times, presence summary).
    pub(crate) meta: Arc<SessionMeta>,
    /// RFC 7395 framing: `<open/>`/`<close/>`, one element per message.
    pub(crate) framed: bool,
    /// The read rate (`[limits] read_bytes_per_s`).
    pub(crate) shaper: Shaper,
    /// Whether reading waits for the shaper's tokens.
    pub(crate) read_gate: ReadGate,
    /// Stream headers received so far (the first and every restart).
    pub(crate) opens: u32,
    /// A prebound session's bind, done when the actor starts (taken then).
    pub(crate) prebind: Option<(Option<String>, PrebindReply)>,
    /// After a resume moved the session to another actor (`Io::Moved`): where what still
    /// arrives here goes.
    pub(crate) successor: Option<SessionHandle>,
    /// Reads that returned data, for dead-peer detection (a counter is cheaper than a
    /// clock reading per read).
    pub(crate) reads: u64,
    /// A drain asked the client to move (`CloseReason::Move`) and the session is resumable:
    /// when the connection is done, it hibernates instead of ending.
    pub(crate) hibernate_on_close: bool,
    /// The key this actor's connection is registered under in the router's stream table
    /// (its first session id: a resume gives the actor another).
    pub(crate) stream_key: SessionId,
    /// Messages on their way to the archive, and the XEP-0198 acks that wait for them.
    pub(crate) archiving: crate::archive::Archiving,
    /// The handle given to the router and the user's actor, built once: each build makes
    /// new recipients (allocations an idle session would keep twice). Dropped when the
    /// session unregisters, so that the actor holds no address of its own after that.
    pub(crate) handle: Option<SessionHandle>,
}

impl Session {
    /// A new session on `conn`. Start it with `Actor::start` (or on an arbiter).
    pub fn new(env: Arc<SessionEnv>, conn: Box<dyn Connection>) -> Session {
        let id = SessionId::random();
        let ip = conn.peer_addr();
        let transport = conn.transport();
        let cfg = &env.config;
        let span = tracing::info_span!(
            "session",
            node = %env.node,
            id = %id,
            ip = %ip.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            jid = tracing::field::Empty
        );
        Session {
            id,
            parser: match conn.framing() {
                Framing::Stream => StreamParser::new(cfg.limits.clone()),
                Framing::Framed => StreamParser::new_framed(cfg.limits.clone()),
            },
            framed: conn.framing() == Framing::Framed,
            outbox: Outbox::new(cfg.send_queue_stanzas, cfg.send_queue_bytes),
            pending: PendingGauge::new(cfg.send_queue_stanzas),
            stream: StreamState::AwaitingHeader,
            phase: Phase::Unauthed(Unauthed::default()),
            io: Io::Running,
            paused: false,
            fenced: false,
            waker: None,
            meta: {
                let meta = SessionMeta::new(
                    "c2s",
                    ip,
                    false,
                    cfg.max_lifetime
                        .map(|l| parley_router::now_ms() + l.as_millis() as i64),
                );
                meta.set_transport(transport);
                Arc::new(meta)
            },
            end: None,
            auth_timer: None,
            permit: None,
            shaper: Shaper::new(cfg.read_rate),
            read_gate: ReadGate::Open,
            opens: 0,
            prebind: None,
            successor: None,
            reads: 0,
            hibernate_on_close: false,
            stream_key: id,
            archiving: Default::default(),
            handle: None,
            conn,
            env,
            span,
        }
    }

    /// A connection on a component port (XEP-0114): it negotiates as a component, never as
    /// a client. Its parser has the `[component]` limits.
    pub fn component(env: Arc<SessionEnv>, conn: Box<dyn Connection>) -> Session {
        let limits = env.components.limits.clone();
        let mut s = Session::new(env, conn);
        s.parser = StreamParser::new(limits);
        s.phase = Phase::Component(crate::component::ComponentPhase::AwaitingHeader);
        s.meta = Arc::new(SessionMeta::new("component", s.ip(), false, None));
        s
    }

    /// A connection on a server-to-server port: it negotiates as a server stream (RFC 6120
    /// with `jabber:server`), never as a client. Its parser has the `[s2s]` limits.
    pub fn s2s_incoming(env: Arc<SessionEnv>, conn: Box<dyn Connection>) -> Session {
        let limits = env.s2s.as_ref().map(|r| r.settings().limits.clone());
        let mut s = Session::new(env, conn);
        if let Some(limits) = limits {
            s.parser = StreamParser::new(limits);
        }
        s.phase = Phase::S2sIn(crate::s2s::S2sInPhase::AwaitingHeader);
        s.meta = Arc::new(SessionMeta::new("s2s", s.ip(), false, None));
        s
    }

    /// Our stream from `local` to the server of `remote`, under session id `id` (its lane in
    /// [`crate::s2s::S2sRoutes`] knows it by that): it dials when the actor starts.
    pub(crate) fn outgoing(
        env: Arc<SessionEnv>,
        id: SessionId,
        local: String,
        remote: String,
    ) -> Session {
        let limits = env.s2s.as_ref().map(|r| r.settings().limits.clone());
        let mut s = Session::new(env, Box::new(crate::connection::Dialing));
        if let Some(limits) = limits {
            s.parser = StreamParser::new(limits);
        }
        s.id = id;
        s.stream_key = id;
        s.span = tracing::info_span!(
            "s2s_out",
            node = %s.env.node,
            id = %id,
            remote = %remote,
            jid = tracing::field::Empty
        );
        let pair = (local, remote);
        s.meta = Arc::new(SessionMeta::new("s2s", None, false, None));
        s.meta.set_link(crate::s2s::out_link(&pair));
        s.phase = Phase::S2sOut(Box::new(crate::s2s::S2sOut::new(pair)));
        s
    }

    /// A session whose user was authenticated elsewhere (BOSH prebind: the site's backend
    /// vouched for it through the admin API), on a stream that is already open to the
    /// user's domain. When the actor starts it binds `resource` (or a generated one) as a
    /// client's bind would, and sends the bound full JID, or why binding failed, to
    /// `reply`; on a failure the session closes. Nothing of this reaches the connection:
    /// the client attaches to a session that is bound already.
    pub fn prebound(
        env: Arc<SessionEnv>,
        conn: Box<dyn Connection>,
        user: BareJid,
        resource: Option<String>,
        reply: PrebindReply,
    ) -> Session {
        let mut s = Session::new(env, conn);
        s.span
            .in_scope(|| info!(user = %user, "authenticated by prebind"));
        s.stream = StreamState::Open {
            host: user.domain().as_str().to_owned(),
        };
        s.meta.set_auth("prebind");
        s.phase = Phase::Authed { user };
        s.prebind = Some((resource, reply));
        s
    }

    /// Holds `permit` (from the node's [`crate::limits::ConnLimiter`]) for as long as the
    /// session lives.
    pub fn with_permit(mut self, permit: ConnPermit) -> Session {
        self.permit = Some(permit);
        self
    }

    /// Prosody's `session.type`.
    pub fn session_type(&self) -> SessionType {
        match &self.phase {
            Phase::Unauthed(_) => SessionType::C2sUnauthed,
            Phase::Component(c) if c.ready() => SessionType::Component,
            Phase::Component(_) => SessionType::ComponentUnauthed,
            Phase::S2sIn(s) if s.authenticated() => SessionType::S2s,
            Phase::S2sOut(o) if o.step == crate::s2s::S2sOutPhase::Ready => SessionType::S2s,
            Phase::S2sIn(_) | Phase::S2sOut(_) => SessionType::S2sUnauthed,
            _ => SessionType::C2s,
        }
    }

    /// Prosody's `notopen`: no stream header received on the current stream yet.
    pub fn notopen(&self) -> bool {
        matches!(self.stream, StreamState::AwaitingHeader)
    }

    /// Prosody's `secure`.
    pub fn secure(&self) -> bool {
        self.conn.security() == Security::Tls
    }

    /// Prosody's `ip`: the connection's peer, which the connection keeps (a session
    /// holds no copy of its own).
    pub fn ip(&self) -> Option<SocketAddr> {
        self.conn.peer_addr()
    }

    /// Prosody's `host`: the domain the client asked for.
    pub fn host(&self) -> Option<&str> {
        match &self.stream {
            StreamState::Open { host } => Some(host),
            StreamState::AwaitingHeader => None,
        }
    }

    /// The authenticated user, once there is one (Prosody's `username` and `host`).
    /// Whether the client's connection is gone and the session waits for it to resume
    /// (XEP-0198).
    pub(crate) fn hibernating(&self) -> bool {
        matches!(self.io, crate::driver::Io::Hibernating(_))
    }

    pub fn user(&self) -> Option<BareJid> {
        match &self.phase {
            Phase::Unauthed(_) => None,
            Phase::Authed { user } => Some(user.clone()),
            Phase::Bound(b) | Phase::Established(b) => Some(b.jid.to_bare()),
            Phase::Component(_) | Phase::S2sIn(_) | Phase::S2sOut(_) => None,
        }
    }

    /// The bound resource state (Prosody's `full_jid`, `resource`, `priority`, `presence`,
    /// `interested`).
    pub fn bound(&self) -> Option<&Bound> {
        match &self.phase {
            Phase::Bound(b) | Phase::Established(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn bound_mut(&mut self) -> Option<&mut Bound> {
        match &mut self.phase {
            Phase::Bound(b) | Phase::Established(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn unauthed_mut(&mut self) -> Option<&mut Unauthed> {
        match &mut self.phase {
            Phase::Unauthed(u) => Some(u),
            _ => None,
        }
    }

    pub(crate) fn session_handle(&mut self, ctx: &Context<Self>) -> SessionHandle {
        if let Some(h) = self.handle.as_ref().filter(|h| h.id == self.id) {
            return h.clone();
        }
        let h = self.session_handle_as(self.id, ctx);
        self.handle = Some(h.clone());
        h
    }

    /// A handle to this actor under session id `id` (a resume takes over another's id).
    pub(crate) fn session_handle_as(&self, id: SessionId, ctx: &Context<Self>) -> SessionHandle {
        let addr = ctx.address();
        SessionHandle::new(
            id,
            addr.clone().recipient(),
            addr.clone().recipient(),
            self.pending.clone(),
        )
        .with_resync(addr.recipient())
        .with_meta(self.meta.clone())
    }

    /// Publishes this resource's routing state: to the admin view, and in a cluster to the
    /// registry.
    pub(crate) fn publish_flags(&self) {
        let Some(b) = self.bound() else {
            return;
        };
        let show = b
            .presence
            .as_ref()
            .and_then(|p| p.get_child("show", ns::CLIENT))
            .map(|s| s.text());
        self.meta.set_state(b.flags(), show);
        if let Some(dir) = self.env.router.directory() {
            dir.update(&b.jid, self.id, b.flags());
        }
    }

    /// The domain the server names itself by before a client said which one it wants.
    pub(crate) fn default_host(&self) -> String {
        self.env
            .router
            .hosts()
            .next()
            .unwrap_or("localhost")
            .to_owned()
    }
}
