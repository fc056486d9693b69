//! Stream Management on a bound session (XEP-0198): enabling, acks both ways, the queue of
//! unacknowledged stanzas, hibernation when the connection dies, and what becomes of the
//! queue when the session ends. Resumption itself is in `resume.rs`.
//!
//! Invariant: a stanza counted as sent is in the queue until the client acknowledges it;
//! when the session ends without a resume, each one still there goes back to the router
//! (messages to the user's other resources or offline storage with a delay stamp, iqs
//! answered with an error), never dropped.

use std::time::Duration;

use actix::{ActorContext, AsyncContext, Context, SpawnHandle};
use parley_proto::ns;
use parley_proto::sm::{self, ClientNonza, SmParseError, Unacked};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, SessionStatus};
use parley_xml::Element;
use tracing::{debug, info};

use crate::driver::Io;
use crate::phase::EndCause;
use crate::session::Session;

/// Stream Management on a bound resource.
#[derive(Debug, Default)]
pub(crate) enum Sm {
    /// Not enabled (yet).
    #[default]
    Off,
    /// Enabled (`<enabled/>` sent).
    On(Box<SmState>),
}

/// The counters and the queue of an enabled session.
#[derive(Debug)]
pub(crate) struct SmState {
    /// Stanzas handled from the client since `<enable/>` (§4, mod 2^32).
    pub(crate) inbound: u32,
    /// Stanzas sent and not acknowledged, with the count the client acknowledges against.
    pub(crate) out: Unacked<Queued>,
    pub(crate) resume: Resumption,
    pub(crate) ask: Ask,
    /// Stanzas sent since the last `<r/>`.
    pub(crate) since_request: u32,
}

/// Whether the session may be resumed (§5).
#[derive(Debug, Clone)]
pub(crate) enum Resumption {
    No,
    Yes {
        /// The id `<enabled/>` gave (see [`crate::resumption`]).
        id: String,
        /// How long it waits for a resume once the connection died.
        timeout: Duration,
    },
}

/// Where the server's own ack request is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask {
    /// Nothing unacknowledged waits for a request.
    Idle,
    /// A request goes out when this timer fires (`[c2s] sm_ack_delay_ms`).
    Armed(SpawnHandle),
    /// `<r/>` sent; no other until the client answers.
    Outstanding,
}

/// One unacknowledged stanza and when it was sent (the delay stamp, if it ends up stored).
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) stanza: Element,
    pub(crate) at_ms: i64,
}

/// What sending a stanza did to the queue.
pub(crate) enum Counted {
    /// Queued (or SM is off): write it, then ask for an ack when `ask` (after the stanza,
    /// so that the answer can cover it).
    Write { ask: bool },
    /// The session hibernates: it waits in the queue and is not written.
    Held,
    /// The queue is full: the stanza is refused.
    Full(Element),
}

impl SmState {
    fn new(resume: Resumption) -> SmState {
        SmState {
            inbound: 0,
            out: Unacked::default(),
            resume,
            ask: Ask::Idle,
            since_request: 0,
        }
    }
}

impl Session {
    pub(crate) fn sm_mut(&mut self) -> Option<&mut SmState> {
        match &mut self.bound_mut()?.sm {
            Sm::On(s) => Some(s),
            Sm::Off => None,
        }
    }

    pub(crate) fn sm(&self) -> Option<&SmState> {
        match &self.bound()?.sm {
            Sm::On(s) => Some(s),
            Sm::Off => None,
        }
    }

    /// An SM element before a bind: only `<resume/>` makes sense there (§5); `<enable/>`
    /// waits for the bind (§3).
    pub(crate) fn on_sm_authed(&mut self, el: Element, ctx: &mut Context<Self>) {
        match ClientNonza::parse(&el) {
            Ok(ClientNonza::Resume { previd, h }) if self.offer().sm => {
                self.on_resume(previd, h, ctx)
            }
            Ok(ClientNonza::Resume { .. }) => self.sm_failed(
                StanzaCondition::FeatureNotImplemented,
                "stream management is not offered here",
            ),
            Ok(_) => self.sm_failed(
                StanzaCondition::UnexpectedRequest,
                "bind a resource before enabling stream management",
            ),
            Err(e) => self.sm_bad(e, ctx),
        }
    }

    /// An SM element on a bound session.
    pub(crate) fn on_sm_bound(&mut self, el: Element, ctx: &mut Context<Self>) {
        let nonza = match ClientNonza::parse(&el) {
            Ok(n) => n,
            Err(e) => return self.sm_bad(e, ctx),
        };
        let on = self.sm().is_some();
        match nonza {
            ClientNonza::Enable { .. } if on => self.sm_failed(
                StanzaCondition::UnexpectedRequest,
                "stream management is already enabled",
            ),
            ClientNonza::Enable { .. } if !self.offer().sm => self.sm_failed(
                StanzaCondition::FeatureNotImplemented,
                "stream management is not offered here",
            ),
            ClientNonza::Enable { resume, max } => self.enable(resume, max, ctx),
            ClientNonza::Request | ClientNonza::Ack { .. } if !on => self.sm_failed(
                StanzaCondition::UnexpectedRequest,
                "stream management is not enabled",
            ),
            ClientNonza::Request => {
                let h = self.sm().map_or(0, |s| s.inbound);
                // XEP-0313 durability: counted messages are acknowledged once archived.
                self.ack_when_archived(h, ctx);
            }
            ClientNonza::Ack { h } => self.on_ack(h, ctx),
            ClientNonza::Resume { .. } => self.sm_failed(
                StanzaCondition::UnexpectedRequest,
                "this stream is bound already; resume on a new stream",
            ),
        }
    }

    fn sm_failed(&mut self, condition: StanzaCondition, text: &str) {
        self.send_nonza(&sm::failed(condition, None, Some(text)));
    }

    /// A malformed SM element: an `h` that is not a number cannot be acted on, and guessing
    /// would lose or repeat stanzas, so the stream ends; an unknown element is refused.
    fn sm_bad(&mut self, e: SmParseError, ctx: &mut Context<Self>) {
        match e {
            SmParseError::Unknown(_) => {
                self.sm_failed(StanzaCondition::FeatureNotImplemented, &e.to_string())
            }
            SmParseError::BadH | SmParseError::NoPrevid if self.bound().is_none() => {
                self.sm_failed(StanzaCondition::BadRequest, &e.to_string())
            }
            SmParseError::BadH | SmParseError::NoPrevid => self.close(
                CloseReason::with_text(StreamCondition::UndefinedCondition, e.to_string()),
                ctx,
            ),
        }
    }

    /// §3: `<enable/>` after the bind.
    fn enable(&mut self, resume: bool, max: Option<u32>, ctx: &mut Context<Self>) {
        let cfg = &self.env.config.sm;
        let resumption = if resume {
            let timeout = max
                .map(|m| Duration::from_secs(u64::from(m)))
                .unwrap_or(cfg.resume_timeout)
                .min(cfg.max_resume_timeout);
            Resumption::Yes {
                id: self.env.resumptions.new_id(),
                timeout,
            }
        } else {
            Resumption::No
        };
        let location = cfg.location.clone();
        let answer = match &resumption {
            Resumption::Yes { id, timeout } => sm::enabled(
                Some((id, timeout.as_secs().min(u64::from(u32::MAX)) as u32)),
                location.as_deref(),
            ),
            Resumption::No => sm::enabled(None, None),
        };
        if let Resumption::Yes { id, .. } = &resumption {
            if let Some(b) = self.bound() {
                self.env
                    .resumptions
                    .register(id, b.jid.to_bare(), self.id, ctx.address());
            }
        }
        if let Some(b) = self.bound_mut() {
            b.sm = Sm::On(Box::new(SmState::new(resumption)));
        }
        self.send_nonza(&answer);
        self.span
            .in_scope(|| debug!(resume, "stream management enabled"));
    }

    /// §4: the client acknowledged `h` stanzas in all.
    fn on_ack(&mut self, h: u32, ctx: &mut Context<Self>) {
        let Some(s) = self.sm_mut() else {
            return;
        };
        let before = s.out.len();
        match s.out.ack(h) {
            Ok(_) => {
                if matches!(s.ask, Ask::Outstanding) {
                    s.ask = Ask::Idle;
                }
                let now = s.out.len();
                parley_router::metrics::sm_unacked(before, now);
                if now > 0 && matches!(s.ask, Ask::Idle) {
                    self.arm_ack_request(ctx);
                }
            }
            Err(too_high) => {
                let el = sm::handled_count_too_high(too_high.h, too_high.sent);
                self.close(CloseReason::Stanza(el), ctx);
            }
        }
    }

    /// Counts `stanza` as sent to the client (§4) and keeps it until it is acknowledged.
    pub(crate) fn sm_count_out(&mut self, stanza: &Element, ctx: &mut Context<Self>) -> Counted {
        // Also while a drain's close is flushing: the session will hibernate.
        let hibernating = self.io != Io::Running;
        let (max, max_bytes, every) = {
            let c = &self.env.config.sm;
            (c.max_queue, c.max_queue_bytes, c.ack_every)
        };
        let Some(s) = self.sm_mut() else {
            return Counted::Write { ask: false };
        };
        if !sm::counts(stanza) {
            return Counted::Write { ask: false };
        }
        let size = parley_user::size::approx_bytes(stanza);
        if s.out.len() >= max || s.out.bytes() + size > max_bytes {
            return Counted::Full(stanza.clone());
        }
        s.out.push(
            Queued {
                stanza: stanza.clone(),
                at_ms: parley_router::now_ms(),
            },
            size,
        );
        parley_router::metrics::sm_unacked(0, 1);
        if hibernating {
            return Counted::Held;
        }
        s.since_request += 1;
        let ask = match s.ask {
            Ask::Outstanding => false,
            _ if s.since_request >= every => true,
            Ask::Idle => {
                self.arm_ack_request(ctx);
                false
            }
            Ask::Armed(_) => false,
        };
        Counted::Write { ask }
    }

    /// Sends `<r/>` (§4) now.
    pub(crate) fn request_ack(&mut self, ctx: &mut Context<Self>) {
        let Some(s) = self.sm_mut() else {
            return;
        };
        if let Ask::Armed(h) = s.ask {
            ctx.cancel_future(h);
        }
        s.ask = Ask::Outstanding;
        s.since_request = 0;
        self.send_nonza(&sm::request());
    }

    /// Sends `<r/>` after `[c2s] sm_ack_delay_ms`, unless it is answered or sent before.
    fn arm_ack_request(&mut self, ctx: &mut Context<Self>) {
        let delay = self.env.config.sm.ack_delay;
        let handle = ctx.run_later(delay, |act, ctx| {
            let due = act
                .sm()
                .is_some_and(|s| matches!(s.ask, Ask::Armed(_)) && !s.out.is_empty());
            if due && act.io == Io::Running {
                act.request_ack(ctx);
            } else if let Some(s) = act.sm_mut() {
                if matches!(s.ask, Ask::Armed(_)) {
                    s.ask = Ask::Idle;
                }
            }
        });
        if let Some(s) = self.sm_mut() {
            s.ask = Ask::Armed(handle);
        }
    }

    /// Counts a stanza handled from the client (§4).
    pub(crate) fn sm_count_in(&mut self) {
        if let Some(s) = self.sm_mut() {
            s.inbound = s.inbound.wrapping_add(1);
        }
    }

    /// Whether the session enabled resumption (§5).
    pub(crate) fn resumable(&self) -> bool {
        self.sm()
            .is_some_and(|s| matches!(s.resume, Resumption::Yes { .. }))
    }

    /// The connection died: a resumable session hibernates (§5) and waits for its client;
    /// false when it is not resumable and so ends.
    pub(crate) fn hibernate(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(timeout) = self.sm().and_then(|s| match &s.resume {
            Resumption::Yes { timeout, .. } => Some(*timeout),
            Resumption::No => None,
        }) else {
            return false;
        };
        // XEP-0352 holds go into the SM queue, which is what a resume sends again.
        self.flush_csi(ctx);
        if let Some(s) = self.sm_mut() {
            if let Ask::Armed(h) = s.ask {
                ctx.cancel_future(h);
            }
            s.ask = Ask::Idle;
            s.since_request = 0;
        }
        // The socket is released now; what was queued for it is in the SM queue.
        self.conn = Box::new(crate::connection::Gone);
        self.outbox.clear();
        let timer = ctx.run_later(timeout, |act, ctx| act.hibernation_over(ctx));
        self.io = Io::Hibernating(timer);
        self.push_unacked();
        self.meta.hibernate();
        parley_router::metrics::SM_HIBERNATING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.span
            .in_scope(|| info!(timeout_s = timeout.as_secs(), "hibernating"));
        true
    }

    /// Leaves hibernation (the session ends or moves on); the gauge follows.
    pub(crate) fn wake_from_hibernation(&mut self, ctx: &mut Context<Self>) {
        match self.io {
            Io::Hibernating(timer) => {
                ctx.cancel_future(timer);
                parley_router::metrics::SM_HIBERNATING
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            Io::Exporting { timer, .. } => {
                ctx.cancel_future(timer);
            }
            _ => {}
        }
    }

    /// Nobody resumed in time: the session ends as abandoned. The user actor is told the
    /// resource is gone (it broadcasts the unavailable presence), then the queue follows on
    /// the same road to the same actor (see [`Session::release_unacked`]), so that none of
    /// it is offered to the resource that just left.
    pub(crate) fn hibernation_over(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.io, Io::Hibernating(_)) {
            return;
        }
        self.span.in_scope(|| info!("not resumed in time"));
        self.wake_from_hibernation(ctx);
        // Nothing can take the session from here on, even one that a drain had asked to
        // move (see `can_hand_over`).
        self.hibernate_on_close = false;
        self.end = Some(EndCause::Abandoned);
        self.meta.end(SessionStatus::Abandoned);
        self.io = Io::Closing(crate::driver::CloseStage::Draining);
        self.unregister();
        ctx.stop();
    }

    /// The session ends without a resume: every unacknowledged stanza goes back to the
    /// router. After a resource conflict they go to the session that took the resource
    /// (it is the same client); otherwise as to a resource that is gone (RFC 6121
    /// §8.5.3.2: messages to other resources or offline storage, iqs answered). Messages
    /// carry a delay stamp (XEP-0203) of when they were first sent.
    pub(crate) fn release_unacked(&mut self) {
        let replaced = self.end == Some(EndCause::Replaced);
        let Some(b) = self.bound_mut() else {
            return;
        };
        let jid = b.jid.clone();
        let Sm::On(s) = &mut b.sm else {
            return;
        };
        let queued = s.out.drain();
        let id = match &s.resume {
            Resumption::Yes { id, .. } => Some(id.clone()),
            Resumption::No => None,
        };
        let h = s.inbound;
        parley_router::metrics::sm_unacked(queued.len(), 0);
        if let Some(id) = id {
            // No resume from here on; a late one learns `h`.
            self.env.resumptions.ended(&id, self.id, h);
        }
        if queued.is_empty() {
            return;
        }
        let router = self.env.router.clone();
        let successor = replaced.then(|| router.lookup_local(&jid)).flatten();
        let host = jid.domain().as_str().to_owned();
        for q in queued {
            let mut stanza = q.stanza;
            if stanza.name() == "message" && !stanza.has_child("delay", ns::DELAY) {
                stanza.push_child(
                    Element::new("delay", ns::DELAY)
                        .with_attr("from", host.as_str())
                        .with_attr("stamp", parley_proto::datetime::xep0082(q.at_ms)),
                );
            }
            match &successor {
                Some(handle) if handle.id != self.id => router.deliver(handle, stanza),
                _ => router.gone(stanza),
            }
        }
    }

    /// A stanza for a hibernating session that its queue has no room for.
    pub(crate) fn refuse_held(&mut self, stanza: Element) {
        let user = self.bound().map(|b| b.jid.to_bare().to_string());
        if parley_router::metrics::refuse("sm_queue", user.as_deref().unwrap_or("")) {
            tracing::warn!(user = ?user, "stream management queue full: refusing stanzas");
        }
        // Answered on the client's behalf (never for errors: the router checks).
        self.env.router.bounce(
            &stanza,
            StanzaError::with_text(
                StanzaCondition::RecipientUnavailable,
                "the recipient's connection is suspended and its queue is full",
            ),
        );
    }
}
