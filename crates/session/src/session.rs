//! The session actor and its I/O driver.
//!
//! One actor per connection owns the connection, the parser and the outbound queue. Its I/O is
//! driven by [`Driver`], an actor future polled on the actor's own task: it writes the outbound
//! queue, reads into a per-thread scratch buffer and feeds the parser, so an idle session holds
//! no read buffer at all. Messages from other actors ([`Deliver`], [`Close`]) append to the
//! queue and wake the driver.
//!
//! Stream negotiation (RFC 6120 §4–§7) lives here; what a bound session does with stanzas is in
//! `stanzas.rs`.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll, Waker};
use std::time::Duration;

use actix::fut::{wrap_future, ActorFuture, ActorFutureExt};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jid::{BareJid, FullJid, NodePart, ResourcePart};
use parley_proto::ns;
use parley_proto::sasl::{self, Mechanism, SaslFailure, ScramCredentials, ScramHash, ScramServer};
use parley_proto::stream_error::{StreamCondition, StreamError};
use parley_router::{
    BindOutcome, ClaimOutcome, Close, CloseReason, Deliver, PendingGauge, ResourceConflict, Resync,
    SessionFlags, SessionHandle, SessionId, SessionMeta, SessionStatus,
};
use parley_user::{Attach, AttachState, Detach, UserLink};
use parley_xml::{Element, Event, StreamHeader, StreamParser};
use tokio::io::ReadBuf;
use tracing::{debug, info, warn, Span};

use crate::bounds::ReadGate;
use crate::connection::{Connection, Framing, Security};
use crate::env::SessionEnv;
use crate::limits::{ConnPermit, Shaper};
use crate::outbox::Outbox;

thread_local! {
    /// Scratch space for reads. Data is handed to the parser at once, so one buffer per thread
    /// serves every session on it.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; 16 * 1024].into_boxed_slice());
}

/// Reads handled in one poll before the driver yields to other sessions on the thread.
const READ_BUDGET: usize = 16;
/// How long a closing session waits for the client's side of the close.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// How long a bind waits for its cluster-wide claim before it is refused.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// Prosody's `session.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// A client connection that has not authenticated.
    C2sUnauthed,
    /// An authenticated client connection.
    C2s,
}

impl SessionType {
    /// The name Prosody uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::C2sUnauthed => "c2s_unauthed",
            SessionType::C2s => "c2s",
        }
    }
}

/// Where a session is in its negotiation.
#[derive(Debug)]
pub enum Phase {
    /// Before SASL success (TLS may or may not be up).
    Unauthed(Unauthed),
    /// SASL succeeded; waiting for the stream restart and a resource bind.
    Authed {
        /// The authenticated user's bare JID.
        user: BareJid,
    },
    /// A resource is bound and routable.
    Bound(Bound),
    /// The client has sent initial presence.
    Established(Bound),
}

/// State before authentication.
#[derive(Debug, Default)]
pub struct Unauthed {
    failures: u32,
    /// SASL exchanges started (`<auth/>` elements), whatever became of them.
    pub(crate) auths: u32,
    sasl: SaslState,
}

#[derive(Default)]
enum SaslState {
    #[default]
    Idle,
    /// `<auth/>` for SCRAM arrived without an initial response; the client-first message
    /// follows in `<response/>`.
    ScramAwaitingFirst {
        server: ScramServer,
        hash: ScramHash,
    },
    /// Server-first sent; waiting for client-final. `user` is None for a username that is no
    /// valid localpart: such an exchange runs on fake credentials and can only fail.
    ScramAwaitingFinal {
        server: ScramServer,
        user: Option<BareJid>,
    },
    /// A storage lookup or password check is under way; input is paused.
    Pending,
    /// RFC 7628 §3.2.2: the error challenge was sent; the client's `\x01` ends it.
    OAuthFailed,
}

impl fmt::Debug for SaslState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaslState::Idle => "Idle",
            SaslState::ScramAwaitingFirst { .. } => "ScramAwaitingFirst",
            SaslState::ScramAwaitingFinal { .. } => "ScramAwaitingFinal",
            SaslState::Pending => "Pending",
            SaslState::OAuthFailed => "OAuthFailed",
        })
    }
}

/// Stanzas a new session holds back until its blocklist arrives; past this, they are
/// refused with `resource-constraint` (never delivered unchecked, never queued without
/// bound).
pub const HELD_BACK_MAX: usize = 256;

/// State of a bound resource: the Prosody fields `full_jid`, `priority`, `presence`,
/// `interested`. The user actor holds the authoritative copy for routing; these mirror it for
/// this session's own view.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The bound full JID.
    pub jid: FullJid,
    /// The user's actor.
    pub user: UserLink,
    /// Whether the user actor has been told that this resource is gone.
    pub detached: bool,
    /// Presence priority (RFC 6121 §4.7.2.3).
    pub priority: i8,
    /// The last presence broadcast by the client.
    pub presence: Option<Element>,
    /// Whether the client has asked for its roster.
    pub interested: bool,
    /// Whether the client enabled XEP-0280 carbons.
    pub carbons: bool,
    /// XEP-0191: the user's blocklist, as its user actor pushed it here.
    pub blocked: parley_proto::blocking::Blocklist,
    /// Whether the client asked for the blocklist, and so gets the pushes (§3.3).
    pub blocklist_requested: bool,
    /// Whether the user actor's copy of the blocklist has arrived; until then stanzas
    /// from other sessions wait in `held_back`, so that none slips past the list.
    pub blocklist_synced: bool,
    /// Stanzas that arrived before the blocklist (bounded by [`HELD_BACK_MAX`]).
    pub held_back: Vec<Element>,
    /// Where the client sent directed presence that is still on (RFC 6121 §4.6), so that a
    /// user actor that takes over on another node knows whom to tell when it goes.
    pub directed: Vec<String>,
}

impl Bound {
    /// What other nodes route by.
    pub fn flags(&self) -> SessionFlags {
        SessionFlags {
            priority: self.priority,
            available: self.presence.is_some(),
            interested: self.interested,
            carbons: self.carbons,
        }
    }

    /// The state a user actor needs when this resource attaches (again).
    fn attach_state(&self) -> AttachState {
        AttachState {
            available: self.presence.is_some(),
            priority: self.priority,
            presence: self.presence.clone(),
            interested: self.interested,
            carbons: self.carbons,
            directed: self.directed.clone(),
        }
    }
}

/// Whether a client stream header has been received (Prosody's `notopen`).
#[derive(Debug)]
enum StreamState {
    AwaitingHeader,
    Open { host: String },
}

/// The I/O state of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    Running,
    /// `<proceed/>` is queued; the handshake starts once it is flushed.
    StartingTls,
    /// The closing tag is queued; flush, shut the write side, then wait for the client.
    Closing(CloseStage),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseStage {
    Flushing,
    ShuttingDown,
    Draining,
}

/// How a session ended, for logs and the session lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The client closed its stream.
    Ended,
    /// The connection was lost without a close.
    Abandoned,
    /// Another session took the resource.
    Replaced,
    /// The server closed the stream with this condition.
    Error(StreamCondition),
    /// The server closed the stream without an error.
    Closed,
}

/// One client connection.
pub struct Session {
    /// This session's place among the node's connections (`[limits]`). The first field, so
    /// that it is released before the connection is closed: a client that saw the end of
    /// its connection may connect again at once.
    permit: Option<ConnPermit>,
    pub(crate) id: SessionId,
    pub(crate) env: Arc<SessionEnv>,
    conn: Box<dyn Connection>,
    parser: StreamParser,
    outbox: Outbox,
    pending: Arc<PendingGauge>,
    stream: StreamState,
    pub(crate) phase: Phase,
    io: Io,
    paused: bool,
    waker: Option<Waker>,
    pub(crate) ip: Option<SocketAddr>,
    end: Option<EndCause>,
    auth_timer: Option<SpawnHandle>,
    pub(crate) span: Span,
    /// What the admin API shows (ip, times, presence summary).
    pub(crate) meta: Arc<SessionMeta>,
    /// RFC 7395 framing: `<open/>`/`<close/>`, one element per message.
    framed: bool,
    /// The read rate (`[limits] read_bytes_per_s`).
    pub(crate) shaper: Shaper,
    /// Whether reading waits for the shaper's tokens.
    pub(crate) read_gate: ReadGate,
    /// Stream headers received so far (the first and every restart).
    pub(crate) opens: u32,
}

impl Session {
    /// A new session on `conn`. Start it with `Actor::start` (or on an arbiter).
    pub fn new(env: Arc<SessionEnv>, conn: Box<dyn Connection>) -> Session {
        let id = SessionId::random();
        let ip = conn.peer_addr();
        let cfg = &env.config;
        let span = tracing::info_span!(
            "session",
            node = %env.node,
            id = %id,
            ip = ?ip,
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
            waker: None,
            meta: Arc::new(SessionMeta::new(
                "c2s",
                ip,
                false,
                cfg.max_lifetime
                    .map(|l| parley_router::now_ms() + l.as_millis() as i64),
            )),
            ip,
            end: None,
            auth_timer: None,
            permit: None,
            shaper: Shaper::new(cfg.read_rate),
            read_gate: ReadGate::Open,
            opens: 0,
            conn,
            env,
            span,
        }
    }

    /// A session whose user was authenticated elsewhere (BOSH prebind: the site's backend
    /// vouched for it through the admin API). It starts at resource binding.
    pub fn new_authenticated(
        env: Arc<SessionEnv>,
        conn: Box<dyn Connection>,
        user: BareJid,
    ) -> Session {
        let mut s = Session::new(env, conn);
        s.span
            .in_scope(|| info!(user = %user, "authenticated by prebind"));
        s.phase = Phase::Authed { user };
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
        match self.phase {
            Phase::Unauthed(_) => SessionType::C2sUnauthed,
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

    /// Prosody's `ip`.
    pub fn ip(&self) -> Option<SocketAddr> {
        self.ip
    }

    /// Prosody's `host`: the domain the client asked for.
    pub fn host(&self) -> Option<&str> {
        match &self.stream {
            StreamState::Open { host } => Some(host),
            StreamState::AwaitingHeader => None,
        }
    }

    /// The authenticated user, once there is one (Prosody's `username` and `host`).
    pub fn user(&self) -> Option<BareJid> {
        match &self.phase {
            Phase::Unauthed(_) => None,
            Phase::Authed { user } => Some(user.clone()),
            Phase::Bound(b) | Phase::Established(b) => Some(b.jid.to_bare()),
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

    pub(crate) fn session_handle(&self, ctx: &Context<Self>) -> SessionHandle {
        let addr = ctx.address();
        SessionHandle::new(
            self.id,
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

    // ----- output -------------------------------------------------------------------------

    /// Prosody's `session.send(stanza)`: queues a stanza for the client. A full queue means
    /// the client is not reading; it is disconnected with `<policy-violation/>`.
    pub fn send(&mut self, stanza: &Element, ctx: &mut Context<Self>) {
        if matches!(self.io, Io::Closing(_)) {
            return;
        }
        // RFC 7395 §3.4: each framed stanza carries its own xmlns='jabber:client'.
        let content_ns = self.content_ns();
        let mut pushed = self
            .outbox
            .push_with(|buf| stanza.write_to(buf, content_ns));
        if pushed.is_err() && self.write_now() {
            // A burst arrived faster than the driver ran; the client does read: the bytes
            // went to the socket, and the stanza fits now.
            pushed = self
                .outbox
                .push_with(|buf| stanza.write_to(buf, content_ns));
        }
        if pushed.is_err() {
            self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "too much data queued for this connection: the client is not reading",
                ),
                ctx,
            );
            return;
        }
        self.wake();
    }

    /// Ends the session (status expired) at unix time `at_ms`: its lifetime or its token's.
    pub(crate) fn expire_at(&mut self, at_ms: i64, ctx: &mut Context<Self>) {
        let wait = (at_ms - parley_router::now_ms()).max(0) as u64;
        ctx.run_later(Duration::from_millis(wait), |act, ctx| {
            act.meta.end(SessionStatus::Expired);
            act.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "the session has expired; log in again",
                ),
                ctx,
            );
        });
    }

    /// Ends the session (status expired) once it has sent nothing for `idle`.
    fn watch_idle(&mut self, idle: Duration, ctx: &mut Context<Self>) {
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            let quiet = parley_router::now_ms() - act.meta.last_active_ms();
            if quiet >= idle.as_millis() as i64 {
                act.meta.end(SessionStatus::Expired);
                act.close(
                    CloseReason::with_text(
                        StreamCondition::ConnectionTimeout,
                        "no activity for too long",
                    ),
                    ctx,
                );
            }
        });
    }

    /// Writes what the socket takes without waiting; true if anything was written. The
    /// driver (woken after every push) does the rest.
    fn write_now(&mut self) -> bool {
        if self.io != Io::Running {
            return false;
        }
        let mut cx = task::Context::from_waker(Waker::noop());
        let mut wrote = false;
        while !self.outbox.is_empty() {
            let data = if self.framed {
                self.outbox.front_unit()
            } else {
                self.outbox.front()
            };
            match self.conn.poll_write(&mut cx, data) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.outbox.consume(n);
                    wrote = true;
                }
                _ => break,
            }
        }
        wrote
    }

    /// Queues a stream-level element (`<stream:features/>`, …) with the `stream:` prefix that
    /// naive clients expect.
    fn send_stream_level(&mut self, name: &str, children: &[Element]) {
        let mut data = Vec::with_capacity(256);
        data.extend_from_slice(b"<stream:");
        data.extend_from_slice(name.as_bytes());
        if self.framed {
            // RFC 7395 §3.3.3: a framed message declares the prefix it uses.
            data.extend_from_slice(b" xmlns:stream='");
            data.extend_from_slice(ns::STREAM.as_bytes());
            data.push(b'\'');
        }
        data.push(b'>');
        let content_ns = self.content_ns();
        for child in children {
            child.write_to(&mut data, content_ns);
        }
        data.extend_from_slice(b"</stream:");
        data.extend_from_slice(name.as_bytes());
        data.push(b'>');
        self.outbox.push_unbounded(&data);
        self.wake();
    }

    /// Queues a nonza (negotiation element) that must not be refused by the bounds.
    fn send_nonza(&mut self, el: &Element) {
        let mut data = Vec::with_capacity(128);
        el.write_to(&mut data, self.content_ns());
        self.outbox.push_unbounded(&data);
        self.wake();
    }

    fn send_header(&mut self, from: &str) {
        let stream_id = {
            let bytes: [u8; 16] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let header = if self.framed {
            // RFC 7395 §3.3.2.
            format!(
                "<open xmlns='{}' id='{}' from='{}' version='1.0' xml:lang='en'/>",
                ns::FRAMING,
                stream_id,
                escape_attr(from),
            )
        } else {
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{}' from='{}' version='1.0' xml:lang='en'>",
                ns::CLIENT,
                ns::STREAM,
                stream_id,
                escape_attr(from),
            )
        };
        self.outbox.push_unbounded(header.as_bytes());
        self.wake();
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    /// Prosody's `session:close(reason)`: sends the reason (opening the stream first if the
    /// client's header was never answered, RFC 6120 §4.9.1.2), then `</stream:stream>`, and
    /// closes the connection once the client has closed its side or a grace period passed.
    pub fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        if matches!(self.io, Io::Closing(_)) {
            return;
        }
        if self.notopen() && !matches!(reason, CloseReason::Clean) {
            let from = self.default_host();
            self.send_header(&from);
        }
        match &reason {
            CloseReason::Clean => {
                self.end.get_or_insert(EndCause::Closed);
            }
            CloseReason::Error(err) => {
                self.end.get_or_insert(EndCause::Error(err.condition));
                self.span.in_scope(|| {
                    info!(
                        condition = err.condition.as_str(),
                        "closing stream with error"
                    )
                });
                let el = err.to_element();
                let children: Vec<Element> = el.children().cloned().collect();
                self.send_stream_level("error", &children);
            }
            CloseReason::Stanza(el) => {
                self.end.get_or_insert(EndCause::Closed);
                if el.is("error", ns::STREAM) {
                    let children: Vec<Element> = el.children().cloned().collect();
                    self.send_stream_level("error", &children);
                } else {
                    self.send_nonza(el);
                }
            }
        }
        if !self.notopen() || !matches!(reason, CloseReason::Clean) {
            if self.framed {
                // RFC 7395 §3.6.
                let close = format!("<close xmlns='{}'/>", ns::FRAMING);
                self.outbox.push_unbounded(close.as_bytes());
            } else {
                self.outbox.push_unbounded(b"</stream:stream>");
            }
        }
        self.io = Io::Closing(CloseStage::Flushing);
        self.paused = false;
        self.unregister();
        ctx.run_later(CLOSE_GRACE, |act, ctx| {
            let _enter = act.span.enter();
            debug!("close grace period over");
            ctx.stop();
        });
        self.wake();
    }

    fn default_host(&self) -> String {
        self.env
            .router
            .hosts()
            .next()
            .unwrap_or("localhost")
            .to_owned()
    }

    /// Removes the session from the routing table. Called as soon as the session starts
    /// closing, so that nothing new is routed to it, and again (harmlessly) when it stops.
    fn unregister(&mut self) {
        let id = self.id;
        let router = self.env.router.clone();
        let mut held_back = Vec::new();
        if let Phase::Bound(b) | Phase::Established(b) = &mut self.phase {
            held_back = std::mem::take(&mut b.held_back);
            router.unbind(&b.jid, id);
            if !b.detached {
                b.detached = true;
                if let Some(dir) = router.directory() {
                    dir.release(&b.jid, id);
                }
                b.user.send(Detach {
                    resource: b.jid.resource().as_str().to_owned(),
                    session: id,
                });
            }
        }
        // Held back for the blocklist and never shown: nothing is lost silently.
        for el in held_back {
            self.undeliverable(el);
        }
    }

    // ----- I/O driver ------------------------------------------------------------------------

    fn drive(&mut self, ctx: &mut Context<Self>, task: &mut task::Context<'_>) -> Poll<()> {
        if !self
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(task.waker()))
        {
            self.waker = Some(task.waker().clone());
        }
        let mut reads = 0;
        loop {
            // Output first: responses to what was just read go out before more is read.
            while !self.outbox.is_empty() {
                let data = if self.framed {
                    self.outbox.front_unit()
                } else {
                    self.outbox.front()
                };
                match self.conn.poll_write(task, data) {
                    Poll::Ready(Ok(0)) => return self.lost(ctx, "connection closed while writing"),
                    Poll::Ready(Ok(n)) => self.outbox.consume(n),
                    Poll::Ready(Err(e)) => return self.lost(ctx, &e.to_string()),
                    Poll::Pending => break,
                }
            }
            let flushed = self.outbox.is_empty()
                && match self.conn.poll_flush(task) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(e)) => return self.lost(ctx, &e.to_string()),
                    Poll::Pending => false,
                };
            match self.io {
                Io::StartingTls if flushed => {
                    if let Err(e) = self.conn.start_tls() {
                        return self.lost(ctx, &format!("starting TLS: {e}"));
                    }
                    // RFC 6120 §5.4.3.3: nothing sent before the handshake counts.
                    self.parser.reset();
                    self.stream = StreamState::AwaitingHeader;
                    self.io = Io::Running;
                }
                Io::StartingTls => return Poll::Pending,
                Io::Closing(CloseStage::Flushing) if flushed => {
                    self.io = Io::Closing(CloseStage::ShuttingDown);
                }
                Io::Closing(CloseStage::Flushing) => return Poll::Pending,
                Io::Closing(CloseStage::ShuttingDown) => match self.conn.poll_shutdown(task) {
                    Poll::Ready(_) => self.io = Io::Closing(CloseStage::Draining),
                    Poll::Pending => return Poll::Pending,
                },
                Io::Closing(CloseStage::Draining) | Io::Running => {}
            }
            if self.io == Io::Running {
                self.process_events(ctx);
                if self.io != Io::Running {
                    continue;
                }
                if self.paused || self.outbox.input_paused() {
                    // No more input while an asynchronous step runs, or while the client
                    // does not take what it is sent: the write above is registered for
                    // writability and wakes this driver again.
                    return Poll::Pending;
                }
            }
            if reads == READ_BUDGET {
                task.waker().wake_by_ref();
                return Poll::Pending;
            }
            let Some(allowed) = self.read_allowance(ctx) else {
                // Over the read rate: a timer wakes the driver when tokens are back.
                return Poll::Pending;
            };
            reads += 1;
            let draining = self.io == Io::Closing(CloseStage::Draining);
            let parser = &mut self.parser;
            let conn = &mut self.conn;
            let read = READ_BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                let cap = allowed.min(buf.len());
                let mut rb = ReadBuf::new(&mut buf[..cap]);
                match conn.poll_read(task, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(0)),
                    Poll::Ready(Ok(())) => {
                        if !draining {
                            parser.feed(rb.filled());
                        }
                        Poll::Ready(Ok(rb.filled().len()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => self.shaper.consumed(n),
                Poll::Ready(Ok(_)) => {
                    if draining {
                        ctx.stop();
                        return Poll::Ready(());
                    }
                    return self.lost(ctx, "connection closed by peer without </stream:stream>");
                }
                Poll::Ready(Err(e)) => {
                    if draining {
                        ctx.stop();
                        return Poll::Ready(());
                    }
                    return self.lost(ctx, &e.to_string());
                }
            }
        }
    }

    /// The connection is gone without a proper close.
    fn lost(&mut self, ctx: &mut Context<Self>, why: &str) -> Poll<()> {
        if !matches!(self.io, Io::Closing(_)) {
            self.end.get_or_insert(EndCause::Abandoned);
            let _enter = self.span.enter();
            debug!(reason = why, "connection lost");
        }
        self.outbox.clear();
        ctx.stop();
        Poll::Ready(())
    }

    fn process_events(&mut self, ctx: &mut Context<Self>) {
        // Input whose answers cannot be queued waits in the parser (bounded by what was read).
        while self.io == Io::Running && !self.paused && !self.outbox.input_paused() {
            match self.parser.next_event() {
                Ok(Some(Event::StreamOpen(header))) => self.on_stream_open(header, ctx),
                Ok(Some(Event::Stanza(el))) if self.framed && el.ns() == ns::FRAMING => {
                    self.on_framing(el, ctx)
                }
                Ok(Some(Event::Stanza(el))) => self.on_element(el, ctx),
                Ok(Some(Event::StreamClose)) => {
                    self.end = Some(EndCause::Ended);
                    self.close(CloseReason::Clean, ctx);
                }
                Ok(None) => break,
                Err(e) => {
                    self.close(StreamError::from(&e).into(), ctx);
                }
            }
        }
    }

    /// RFC 7395 §3.3 and §3.6: `<open/>` opens (or restarts) the stream, `<close/>` ends it.
    fn on_framing(&mut self, el: Element, ctx: &mut Context<Self>) {
        match el.name() {
            "open" => {
                let header = StreamHeader {
                    name: "stream".into(),
                    ns: ns::STREAM.into(),
                    default_ns: Some(ns::CLIENT.into()),
                    attrs: el
                        .attrs()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                };
                self.on_stream_open(header, ctx);
            }
            "close" => {
                self.end = Some(EndCause::Ended);
                self.close(CloseReason::Clean, ctx);
            }
            other => self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("unknown framing element <{other}/>"),
                ),
                ctx,
            ),
        }
    }

    /// The namespace a stanza may leave implicit: jabber:client on a stream; none when
    /// every framed element stands alone.
    fn content_ns(&self) -> Option<&'static str> {
        (!self.framed).then_some(ns::CLIENT)
    }

    /// Pauses input while an asynchronous step (a storage lookup) is under way.
    pub(crate) fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes input after [`pause`](Self::pause).
    pub(crate) fn resume(&mut self) {
        self.paused = false;
        self.wake();
    }

    // ----- stream negotiation ----------------------------------------------------------------

    /// RFC 6120 §4.7: validate the client's header, answer with ours and the features.
    fn on_stream_open(&mut self, header: StreamHeader, ctx: &mut Context<Self>) {
        if !self.count_open(ctx) {
            return;
        }
        let to = header.attr("to").map(|t| t.to_ascii_lowercase());
        let host = to.clone().filter(|t| self.env.router.serves(t));
        let from = host.clone().unwrap_or_else(|| self.default_host());
        self.send_header(&from);
        self.stream = StreamState::Open { host: from };
        // §4.9.3.10: the stream element and the content namespace must be the right ones.
        if header.name != "stream" || header.ns != ns::STREAM {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::InvalidNamespace,
                    "the stream element must be {http://etherx.jabber.org/streams}stream",
                ),
                ctx,
            );
        }
        if header.default_ns.as_deref() != Some(ns::CLIENT) {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::InvalidNamespace,
                    "the content namespace of a client stream must be jabber:client",
                ),
                ctx,
            );
        }
        // §4.7.5: we speak version 1.0 only.
        let version_ok = header
            .attr("version")
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                major.parse::<u32>() == Ok(1) && minor.parse::<u32>().is_ok()
            });
        if !version_ok {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedVersion,
                    "this server supports XMPP version 1.0",
                ),
                ctx,
            );
        }
        // §4.9.3.6: a host we do not serve.
        if host.is_none() {
            let text = match to {
                Some(t) => format!("this server does not serve {t}"),
                None => "the stream header has no 'to' address".to_owned(),
            };
            return self.close(
                CloseReason::with_text(StreamCondition::HostUnknown, text),
                ctx,
            );
        }
        if let Phase::Authed { user } = &self.phase {
            if Some(user.domain().as_str()) != host.as_deref() {
                return self.close(
                    CloseReason::with_text(
                        StreamCondition::HostUnknown,
                        "the restarted stream must be addressed to the authenticated domain",
                    ),
                    ctx,
                );
            }
        }
        let features = self.features();
        self.send_stream_level("features", &features);
    }

    fn limits_feature(&self) -> Element {
        // XEP-0478: tell the client how big a stanza may be.
        Element::new("limits", ns::STREAM_LIMITS).with_child(
            Element::new("max-bytes", ns::STREAM_LIMITS)
                .with_text(self.env.config.limits.max_stanza_bytes.to_string()),
        )
    }

    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        let secure = self.secure();
        if !secure && self.env.config.require_encryption {
            return Vec::new();
        }
        let mut mechs = Vec::new();
        if self.env.external_auth.is_some() {
            // Delegated passwords: only the site's backend can check them, so only PLAIN
            // (and tokens) can work.
            return vec![Mechanism::Plain, Mechanism::OAuthBearer];
        }
        if !self.conn.channel_bindings().types().is_empty() {
            mechs.push(Mechanism::ScramSha256Plus);
            mechs.push(Mechanism::ScramSha1Plus);
        }
        mechs.push(Mechanism::ScramSha256);
        mechs.push(Mechanism::ScramSha1);
        mechs.push(Mechanism::Plain);
        mechs.push(Mechanism::OAuthBearer);
        mechs
    }

    fn features(&self) -> Vec<Element> {
        let mut features = Vec::new();
        match &self.phase {
            Phase::Unauthed(_) => {
                if !self.secure() && self.conn.can_starttls() && self.env.tls_available {
                    let mut starttls = Element::new("starttls", ns::TLS);
                    if self.env.config.require_encryption {
                        starttls.push_child(Element::new("required", ns::TLS));
                    }
                    features.push(starttls);
                }
                let mechs = self.offered_mechanisms();
                if !mechs.is_empty() {
                    features.push(sasl::mechanisms_element(&mechs));
                    let cb_types = self.conn.channel_bindings().types();
                    if !cb_types.is_empty() {
                        features.push(sasl::channel_binding_element(&cb_types));
                    }
                    features.push(self.limits_feature());
                }
            }
            Phase::Authed { .. } => {
                features.push(Element::new("bind", ns::BIND));
                // RFC 6121 §2.6.1: roster versioning.
                features.push(Element::new("ver", ns::ROSTER_VER));
                features.push(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
                features.push(self.limits_feature());
            }
            Phase::Bound(_) | Phase::Established(_) => {}
        }
        features
    }

    fn on_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        match &self.phase {
            Phase::Unauthed(_) => self.on_unauthed_element(el, ctx),
            Phase::Authed { .. } => self.on_authed_element(el, ctx),
            Phase::Bound(_) | Phase::Established(_) => self.on_stanza(el, ctx),
        }
    }

    fn on_unauthed_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        let tls_required = self.env.config.require_encryption && !self.secure();
        if el.is("starttls", ns::TLS) {
            return self.on_starttls(ctx);
        }
        if el.ns() == ns::SASL && !tls_required {
            return match el.name() {
                "auth" => self.on_auth(&el, ctx),
                "response" => self.on_sasl_response(&el, ctx),
                "abort" => self.sasl_fail(SaslFailure::Aborted, None, ctx),
                _ => self.sasl_fail(SaslFailure::MalformedRequest, None, ctx),
            };
        }
        if el.is("auth", ns::SASL) {
            // RFC 6120 §6.4.? / §5.3.1: TLS is mandatory-to-negotiate here.
            return self.sasl_fail(
                SaslFailure::EncryptionRequired,
                Some("use STARTTLS before authenticating"),
                ctx,
            );
        }
        if tls_required {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "encryption is required: only <starttls/> is accepted before TLS",
                ),
                ctx,
            );
        }
        self.close(
            CloseReason::with_text(
                StreamCondition::NotAuthorized,
                "authenticate before sending stanzas",
            ),
            ctx,
        );
    }

    /// RFC 6120 §5.4.2: `<proceed/>`, or `<failure/>` and close.
    fn on_starttls(&mut self, ctx: &mut Context<Self>) {
        if self.secure() || !self.conn.can_starttls() || !self.env.tls_available {
            self.send_nonza(&Element::new("failure", ns::TLS));
            return self.close(CloseReason::Clean, ctx);
        }
        self.send_nonza(&Element::new("proceed", ns::TLS));
        self.io = Io::StartingTls;
    }

    pub(crate) fn unauthed_mut(&mut self) -> Option<&mut Unauthed> {
        match &mut self.phase {
            Phase::Unauthed(u) => Some(u),
            _ => None,
        }
    }

    /// RFC 6120 §6.4.2: `<auth mechanism='…'>initial response</auth>`.
    fn on_auth(&mut self, el: &Element, ctx: &mut Context<Self>) {
        if !self.count_sasl_attempt(ctx) {
            return;
        }
        let Some(mechanism) = el.attr("mechanism").and_then(Mechanism::from_name) else {
            return self.sasl_fail(SaslFailure::InvalidMechanism, None, ctx);
        };
        if !self.offered_mechanisms().contains(&mechanism) {
            return self.sasl_fail(SaslFailure::InvalidMechanism, None, ctx);
        }
        let Some(payload) = decode_sasl_payload(&el.text()) else {
            return self.sasl_fail(SaslFailure::IncorrectEncoding, None, ctx);
        };
        match mechanism.hash() {
            None if mechanism == Mechanism::OAuthBearer => self.auth_oauthbearer(&payload, ctx),
            None => self.auth_plain(&payload, ctx),
            Some(hash) => {
                let bindings = self.conn.channel_bindings();
                let server_supports_plus = !bindings.types().is_empty();
                let server =
                    ScramServer::new(hash, mechanism.is_plus(), &bindings, server_supports_plus);
                if payload.is_empty() {
                    // RFC 6120 §6.4.2: no initial response; ask for it with an empty challenge.
                    if let Some(u) = self.unauthed_mut() {
                        u.sasl = SaslState::ScramAwaitingFirst { server, hash };
                    }
                    self.send_nonza(&Element::new("challenge", ns::SASL));
                } else {
                    self.scram_first(server, hash, &payload, ctx);
                }
            }
        }
    }

    fn on_sasl_response(&mut self, el: &Element, ctx: &mut Context<Self>) {
        let Some(payload) = decode_sasl_payload(&el.text()) else {
            return self.sasl_fail(SaslFailure::IncorrectEncoding, None, ctx);
        };
        let Some(u) = self.unauthed_mut() else { return };
        match std::mem::take(&mut u.sasl) {
            SaslState::ScramAwaitingFirst { server, hash } => {
                self.scram_first(server, hash, &payload, ctx);
            }
            SaslState::ScramAwaitingFinal { mut server, user } => {
                match (server.client_final(&payload), user) {
                    (Ok(server_final), Some(user)) => {
                        self.sasl_success(user, Some(&server_final), ctx)
                    }
                    (Ok(_), None) => self.auth_failed(None, SaslFailure::NotAuthorized, ctx),
                    (Err(failure), user) => self.auth_failed(user.as_ref(), failure, ctx),
                }
            }
            SaslState::OAuthFailed => self.sasl_fail(SaslFailure::NotAuthorized, None, ctx),
            SaslState::Idle | SaslState::Pending => self.sasl_fail(
                SaslFailure::MalformedRequest,
                Some("no exchange in progress"),
                ctx,
            ),
        }
    }

    /// Parses client-first, looks the user's credentials up (pausing input), and answers with
    /// server-first. Unknown users get deterministic fake credentials, so that the answer
    /// (salt and iteration count included) cannot tell them apart from real ones.
    fn scram_first(
        &mut self,
        mut server: ScramServer,
        hash: ScramHash,
        payload: &[u8],
        ctx: &mut Context<Self>,
    ) {
        let first = match server.client_first(payload) {
            Ok(first) => first,
            Err(failure) => return self.sasl_fail(failure, None, ctx),
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let user = account_jid(&first.username, &host);
        if let (Some(authzid), Some(user)) = (&first.authzid, &user) {
            if authzid.as_str() != user.to_string() {
                return self.sasl_fail(SaslFailure::InvalidAuthzid, None, ctx);
            }
        }
        if !self.auth_gate(user.as_ref(), ctx) {
            return;
        }
        // Fake credentials are keyed on the name as it is looked up, so that `Nobody` and
        // `nobody` get one salt, as `ALICE` and `alice` do.
        let fake_key = fake_key(user.as_ref(), &first.username);
        self.set_sasl_pending();
        self.pause();
        let storage = self.env.storage.clone();
        let lookup_user = user.clone();
        let fut = async move {
            match &lookup_user {
                Some(u) => {
                    storage
                        .credentials(
                            u.node().map(|n| n.as_str()).unwrap_or_default(),
                            u.domain().as_str(),
                            hash,
                        )
                        .await
                }
                None => Ok(None),
            }
        };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            let creds = match result {
                Ok(Some(creds)) => creds,
                Ok(None) => ScramCredentials::fake(
                    hash,
                    &act.env.server_secret,
                    &fake_key,
                    act.env.config.scram_iterations,
                ),
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "credential lookup failed"));
                    return act.sasl_fail(SaslFailure::TemporaryAuthFailure, None, ctx);
                }
            };
            let challenge = server.server_first(&creds);
            let Some(u) = act.unauthed_mut() else { return };
            // An invalid username keeps going on fake credentials, so that it fails exactly
            // like a wrong password would.
            u.sasl = SaslState::ScramAwaitingFinal { server, user };
            act.send_nonza(&Element::new("challenge", ns::SASL).with_text(B64.encode(&challenge)));
        }));
    }

    /// RFC 7628 OAUTHBEARER with one of Parley's tokens.
    fn auth_oauthbearer(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let bearer = match sasl::parse_oauthbearer(payload) {
            Ok(b) => b,
            Err(failure) => return self.sasl_fail(failure, None, ctx),
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let expected = bearer.authzid.clone();
        let account = expected.as_deref().and_then(|c| claimed_account(c, &host));
        if !self.auth_gate(account.as_ref(), ctx) {
            return;
        }
        self.auth_token(bearer.token, host, expected, true, ctx);
    }

    /// Checks a token (OAUTHBEARER, or PLAIN with a token as password). `claimed` is the
    /// account the client named (PLAIN's authcid or OAUTHBEARER's authzid): it must be the
    /// token's.
    fn auth_token(
        &mut self,
        token: String,
        host: String,
        claimed: Option<String>,
        oauth: bool,
        ctx: &mut Context<Self>,
    ) {
        if let Some(u) = self.unauthed_mut() {
            u.sasl = SaslState::Pending;
        }
        self.pause();
        let storage = self.env.storage.clone();
        let fut = async move { crate::tokens::verify(&*storage, &token).await };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            let account = claimed.as_deref().and_then(|c| claimed_account(c, &host));
            let refused = move |act: &mut Self, why: &str, ctx: &mut Context<Self>| {
                act.span.in_scope(|| info!(reason = why, "token refused"));
                act.answer_failure(account.as_ref(), ctx, move |act, ctx| {
                    if oauth {
                        // RFC 7628 §3.2.2: the error challenge first; the client answers \x01.
                        if let Some(u) = act.unauthed_mut() {
                            u.sasl = SaslState::OAuthFailed;
                        }
                        act.send_nonza(
                            &Element::new("challenge", ns::SASL)
                                .with_text(B64.encode(sasl::INVALID_TOKEN_CHALLENGE.as_bytes())),
                        );
                    } else {
                        act.sasl_fail(SaslFailure::NotAuthorized, None, ctx);
                    }
                });
            };
            match result {
                Ok(Ok(verified)) => {
                    let (username, token_host) = (verified.username, verified.host);
                    if let Some(at) = verified.expires_ms {
                        act.expire_at(at, ctx);
                    }
                    let user = account_jid(&username, &token_host);
                    let matches = user.as_ref().is_some_and(|u| {
                        token_host == host
                            && claimed
                                .as_deref()
                                .is_none_or(|c| c == u.as_str() || c == username)
                    });
                    match (user, matches) {
                        (Some(user), true) => act.sasl_success(user, None, ctx),
                        _ => refused(act, "token of another account", ctx),
                    }
                }
                Ok(Err(why)) => refused(act, &format!("{why:?}"), ctx),
                Err(e) => {
                    {
                        let _enter = act.span.enter();
                        warn!(error = %e, "token lookup failed");
                    }
                    act.sasl_fail(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    /// A PLAIN password checked by the site's backend (`[auth] delegate_url`); errors and
    /// timeouts fail closed.
    fn auth_delegated(
        &mut self,
        external: Arc<dyn crate::env::ExternalAuth>,
        user: Option<BareJid>,
        password: String,
        ctx: &mut Context<Self>,
    ) {
        let Some(user) = user else {
            return self.auth_failed(None, SaslFailure::NotAuthorized, ctx);
        };
        self.set_sasl_pending();
        self.pause();
        // The backend is asked about exactly the localpart that a yes binds (nodeprep'd):
        // a yes for `ALICE` must never bind `alice` unless `alice` was what it was asked.
        let username = user
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let host = user.domain().as_str().to_owned();
        let fut = async move { external.check(&username, &host, &password).await };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |verdict, act, ctx| {
            act.resume();
            match verdict {
                Ok(false) => act.auth_failed(Some(&user), SaslFailure::NotAuthorized, ctx),
                Ok(true) => act.sasl_success(user, None, ctx),
                Err(reason) => {
                    act.span
                        .in_scope(|| warn!(%reason, "delegated authentication failed closed"));
                    act.sasl_fail(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    /// RFC 4616 PLAIN, allowed only where offered (TLS, or encryption not required). A
    /// password that is one of Parley's tokens (`secret-token:…`) is checked as a token, so
    /// that a web page can log in with `{jid, password: token}` (Converse.js
    /// `credentials_url`).
    fn auth_plain(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let creds = match sasl::parse_plain(payload) {
            Ok(c) => c,
            Err(failure) => return self.sasl_fail(failure, None, ctx),
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let user = account_jid(&creds.username, &host);
        if let (Some(authzid), Some(user)) = (&creds.authzid, &user) {
            if authzid.as_str() != user.to_string() {
                return self.sasl_fail(SaslFailure::InvalidAuthzid, None, ctx);
            }
        }
        if !self.auth_gate(user.as_ref(), ctx) {
            return;
        }
        if parley_proto::token::is_token(&creds.password) {
            let claimed = Some(creds.username.clone());
            return self.auth_token(creds.password, host, claimed, false, ctx);
        }
        if let Some(jwt) = &self.env.config.jwt {
            if parley_proto::jwt::looks_like_jwt(&creds.password) {
                let jwt = jwt.clone();
                return self.auth_jwt(&jwt, &creds.password, user, ctx);
            }
        }
        if let Some(external) = self.env.external_auth.clone() {
            return self.auth_delegated(external, user, creds.password, ctx);
        }
        self.set_sasl_pending();
        self.pause();
        let storage = self.env.storage.clone();
        let secret = self.env.server_secret.clone();
        let iterations = self.env.config.scram_iterations;
        let lookup_user = user.clone();
        let username = fake_key(user.as_ref(), &creds.username);
        let password = creds.password;
        let fut = async move {
            let stored = match &lookup_user {
                Some(u) => {
                    storage
                        .credentials(
                            u.node().map(|n| n.as_str()).unwrap_or_default(),
                            u.domain().as_str(),
                            ScramHash::Sha256,
                        )
                        .await?
                }
                None => None,
            };
            // PBKDF2 runs off the actor thread, and runs for unknown users too, so that the
            // time taken does not tell which accounts exist.
            let verified = tokio::task::spawn_blocking(move || {
                let known = stored.is_some();
                let creds = stored.unwrap_or_else(|| {
                    ScramCredentials::fake(ScramHash::Sha256, &secret, &username, iterations)
                });
                creds.verify_password(&password) && known
            })
            .await
            .unwrap_or(false);
            Ok::<bool, parley_storage::StorageError>(verified)
        };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            match (result, user) {
                (Ok(true), Some(user)) => act.sasl_success(user, None, ctx),
                (Ok(_), user) => act.auth_failed(user.as_ref(), SaslFailure::NotAuthorized, ctx),
                (Err(e), _) => {
                    {
                        let _enter = act.span.enter();
                        warn!(error = %e, "credential lookup failed");
                    }
                    act.sasl_fail(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    pub(crate) fn sasl_success(
        &mut self,
        user: BareJid,
        additional: Option<&[u8]>,
        ctx: &mut Context<Self>,
    ) {
        let mut success = Element::new("success", ns::SASL);
        if let Some(data) = additional {
            success.push_text(B64.encode(data));
        }
        self.send_nonza(&success);
        self.span.in_scope(|| info!(user = %user, "authenticated"));
        let ip = self.ip.map(|a| a.ip());
        self.env.auth_limits.succeeded(ip, user.as_str());
        if let Some(timer) = self.auth_timer.take() {
            ctx.cancel_future(timer);
        }
        self.phase = Phase::Authed { user };
        // RFC 6120 §6.4.6: the client restarts the stream; bytes it pipelined are kept.
        self.parser.restart();
        self.stream = StreamState::AwaitingHeader;
    }

    /// Marks an exchange as waiting on an asynchronous step (storage, a backend, a delay).
    pub(crate) fn set_sasl_pending(&mut self) {
        if let Some(u) = self.unauthed_mut() {
            u.sasl = SaslState::Pending;
        }
    }

    pub(crate) fn sasl_fail(
        &mut self,
        failure: SaslFailure,
        text: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        self.send_nonza(&failure.to_element(text));
        let max = self.env.config.max_auth_attempts;
        let Some(u) = self.unauthed_mut() else { return };
        u.sasl = SaslState::Idle;
        u.failures += 1;
        if u.failures >= max {
            // RFC 6120 §6.4.5: a bounded number of retries, then a stream error.
            self.close(
                CloseReason::with_text(
                    StreamCondition::NotAuthorized,
                    "too many failed authentication attempts",
                ),
                ctx,
            );
        }
    }

    // ----- after authentication ----------------------------------------------------------------

    fn on_authed_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        let is_bind = el.is("iq", ns::CLIENT)
            && el.attr("type") == Some("set")
            && el.has_child("bind", ns::BIND);
        if is_bind {
            return self.on_bind(el, ctx);
        }
        if el.is("iq", ns::CLIENT) && el.has_child("session", ns::SESSION) {
            // RFC 3921 session establishment is a no-op, but some clients still send it.
            let reply = parley_proto::stanza_error::iq_result(&el);
            return self.send(&reply, ctx);
        }
        // RFC 6120 §7.? : stanzas before a resource is bound are refused.
        self.close(
            CloseReason::with_text(StreamCondition::NotAuthorized, "bind a resource first"),
            ctx,
        );
    }

    /// RFC 6120 §7: bind the requested resource (resourceprep'd by the jid crate) or a
    /// generated one, applying the configured conflict policy.
    fn on_bind(&mut self, iq: Element, ctx: &mut Context<Self>) {
        use parley_proto::stanza_error::{error_reply, StanzaCondition, StanzaError};
        if !matches!(self.phase, Phase::Authed { .. }) {
            return;
        }
        let requested = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let resource = match requested.as_deref().map(ResourcePart::new) {
            None => None,
            Some(Ok(r)) => Some(r.into_owned()),
            Some(Err(_)) => {
                let err = StanzaError::with_text(
                    StanzaCondition::BadRequest,
                    "the resource is not valid under resourceprep",
                );
                if let Some(reply) = error_reply(&iq, &err) {
                    self.send(&reply, ctx);
                }
                return;
            }
        };
        self.bind_resource(iq, resource, 0, ctx);
    }

    /// Binds locally, then (in a cluster) claims the full JID cluster-wide before answering;
    /// nothing else this session receives is handled meanwhile.
    fn bind_resource(
        &mut self,
        iq: Element,
        resource: Option<ResourcePart>,
        attempt: u8,
        ctx: &mut Context<Self>,
    ) {
        use parley_proto::stanza_error::{error_reply, StanzaCondition, StanzaError};
        let Phase::Authed { user } = &self.phase else {
            return;
        };
        let user = user.clone();
        let policy = self.env.config.resource_conflict;
        let handle = self.session_handle(ctx);
        let outcome =
            self.env
                .router
                .bind(&user, resource.as_ref(), handle, policy, random_resource);
        fn refuse(act: &mut Session, iq: &Element, err: StanzaError, ctx: &mut Context<Session>) {
            if let Some(reply) = error_reply(iq, &err) {
                act.send(&reply, ctx);
            }
        }
        let conflict =
            || StanzaError::with_text(StanzaCondition::Conflict, "this resource is already bound");
        let (jid, replaced) = match outcome {
            BindOutcome::Conflict => return refuse(self, &iq, conflict(), ctx),
            BindOutcome::TooMany => {
                // RFC 6120 §7.6.2.1: the account has reached its limit of bound resources.
                if parley_router::metrics::refuse("resources_per_account", user.as_str()) {
                    warn!(user = %user, "bind refused: too many resources for one account");
                }
                return refuse(
                    self,
                    &iq,
                    StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "this account has too many resources bound",
                    ),
                    ctx,
                );
            }
            BindOutcome::Bound { jid, replaced } => (jid, replaced),
        };
        let Some(dir) = self.env.router.directory().cloned() else {
            return self.finish_bind(iq, jid, replaced, ctx);
        };
        let claim = dir.claim(&jid, self.id, policy);
        let claim = async move {
            actix_rt::time::timeout(CLAIM_TIMEOUT, claim)
                .await
                .unwrap_or(ClaimOutcome::Unavailable)
        };
        ctx.wait(wrap_future::<_, Self>(claim).map(move |outcome, act, ctx| {
            if outcome == ClaimOutcome::Won {
                return act.finish_bind(iq, jid, replaced, ctx);
            }
            act.env.router.unbind(&jid, act.id);
            if let Some(old) = replaced {
                // The local holder lost its resource when this bind replaced it locally.
                old.close(CloseReason::with_text(
                    StreamCondition::Conflict,
                    "replaced by a new connection for the same resource",
                ));
            }
            match outcome {
                // RFC 6120 §7.7.2.2: under "random" the client gets another resource.
                ClaimOutcome::Taken if policy == ResourceConflict::Random && attempt < 3 => {
                    act.bind_resource(iq, None, attempt + 1, ctx)
                }
                ClaimOutcome::Taken => refuse(act, &iq, conflict(), ctx),
                _ => refuse(
                    act,
                    &iq,
                    StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "this node cannot bind resources now (cluster registry unreachable)",
                    ),
                    ctx,
                ),
            }
        }));
    }

    fn finish_bind(
        &mut self,
        iq: Element,
        jid: FullJid,
        replaced: Option<SessionHandle>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(old) = replaced {
            old.close(CloseReason::with_text(
                StreamCondition::Conflict,
                "replaced by a new connection for the same resource",
            ));
        }
        self.span.record("jid", tracing::field::display(&jid));
        {
            let _enter = self.span.enter();
            info!("resource bound");
        }
        if self.secure() {
            self.meta.set_secure();
        }
        let reply = parley_proto::stanza_error::iq_result(&iq).with_child(
            Element::new("bind", ns::BIND)
                .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
        );
        let user = self.env.users.attach(
            &jid.to_bare(),
            jid.resource().as_str(),
            self.session_handle(ctx),
            AttachState::default(),
        );
        self.phase = Phase::Bound(Bound {
            jid,
            user,
            detached: false,
            priority: 0,
            presence: None,
            interested: false,
            carbons: false,
            blocked: Default::default(),
            blocklist_requested: false,
            blocklist_synced: false,
            held_back: Vec::new(),
            directed: Vec::new(),
        });
        self.send(&reply, ctx);
    }
}

fn random_resource() -> ResourcePart {
    let bytes: [u8; 8] = rand::random();
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ResourcePart::new(&format!("parley-{s}"))
        .expect("hex resource is valid")
        .into_owned()
}

/// `username@host` as an account JID, if the username is a valid localpart (nodeprep).
pub(crate) fn account_jid(username: &str, host: &str) -> Option<BareJid> {
    let node = NodePart::new(username).ok()?;
    BareJid::new(&format!("{}@{}", node.as_str(), host)).ok()
}

/// What fake credentials for an unknown user are keyed on: the normalized localpart when
/// the name is one, so that case variants of one name look alike; the name as given
/// otherwise.
fn fake_key(user: Option<&BareJid>, given: &str) -> String {
    user.and_then(|u| u.node())
        .map_or_else(|| given.to_owned(), |n| n.as_str().to_owned())
}

/// The account a client names (a bare JID, or a localpart on this host), normalized.
pub(crate) fn claimed_account(claimed: &str, host: &str) -> Option<BareJid> {
    match claimed.split_once('@') {
        Some(_) => BareJid::new(claimed).ok(),
        None => account_jid(claimed, host),
    }
}

/// RFC 6120 §6.4.2: `=` is an empty response; otherwise base64.
fn decode_sasl_payload(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    B64.decode(text).ok()
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

struct Driver;

impl ActorFuture<Session> for Driver {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        task: &mut task::Context<'_>,
    ) -> Poll<()> {
        act.drive(ctx, task)
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        {
            let _enter = self.span.enter();
            debug!(secure = self.secure(), "connection accepted");
        }
        ctx.spawn(Driver);
        if let Some(at) = self.meta.expire_at_ms {
            self.expire_at(at, ctx);
        }
        if let Some(idle) = self.env.config.idle_timeout {
            self.watch_idle(idle, ctx);
        }
        let timeout = self.env.config.auth_timeout;
        self.auth_timer = Some(ctx.run_later(timeout, |act, ctx| {
            if matches!(act.phase, Phase::Unauthed(_)) {
                act.close(
                    CloseReason::with_text(
                        StreamCondition::ConnectionTimeout,
                        "authentication took too long",
                    ),
                    ctx,
                );
            }
        }));
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> actix::Running {
        self.unregister();
        actix::Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let end = self.end.unwrap_or(EndCause::Abandoned);
        self.meta.end(match end {
            EndCause::Abandoned => SessionStatus::Abandoned,
            EndCause::Replaced => SessionStatus::Replaced,
            EndCause::Ended | EndCause::Error(_) | EndCause::Closed => SessionStatus::Ended,
        });
        if let Some(b) = self.bound() {
            self.env
                .router
                .record_end(b.jid.clone(), self.id, self.meta.clone());
        }
        let _enter = self.span.enter();
        info!(end = ?end, status = self.meta.status().as_str(), "session ended");
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.pending.taken();
        if matches!(self.io, Io::Closing(_)) {
            // Routed before this session unregistered: nothing may be lost silently.
            return self.undeliverable(msg.stanza);
        }
        parley_router::metrics::STANZAS_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.deliver_to_client(msg.stanza, ctx);
    }
}

impl Handler<Resync> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Resync, ctx: &mut Context<Self>) {
        if matches!(self.io, Io::Closing(_)) {
            return;
        }
        let handle = self.session_handle(ctx);
        if let Some(b) = self.bound() {
            if b.detached {
                return;
            }
            b.user.send(Attach {
                resource: b.jid.resource().as_str().to_owned(),
                handle,
                state: b.attach_state(),
            });
        }
    }
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        if let CloseReason::Error(e) = &msg.reason {
            if e.condition == StreamCondition::Conflict {
                self.end = Some(EndCause::Replaced);
                self.meta.end(SessionStatus::Replaced);
            }
        }
        self.close(msg.reason, ctx);
    }
}
