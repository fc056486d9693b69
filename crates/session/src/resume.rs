//! Resumption (XEP-0198 §5): a new connection takes over a session that enabled it.
//!
//! The new connection's actor (after SASL, before a bind) finds the session by its id in
//! the node's [`crate::resumption::Resumptions`] and sends the actor holding it a
//! [`TakeOver`] with a handle to itself under the session's id. The holder, in one message
//! handler (so nothing can come in between), points the routing table and the user actor
//! at that handle, gives up its connection if it still had one, and hands over the bound
//! state, the counters and the queue. It then forwards whatever still reaches it for a
//! grace period and stops without ending the session. The new actor, which handles nothing
//! else meanwhile (`ctx.wait`), answers `<resumed/>`, drops what the client's `h` covers
//! and sends the rest again, in order, before anything newer.
//!
//! Two resumes of one session race to the holder's mailbox: the first takes the state,
//! the second finds nothing and fails. A resume and the hibernation timer race the same
//! way. Either way there is exactly one winner.

use std::sync::Arc;
use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{ActorContext, AsyncContext, Context, Handler, Message};
use jid::BareJid;
use parley_proto::sm;
use parley_proto::stanza_error::StanzaCondition;
use parley_router::{CloseReason, SessionHandle, SessionId, SessionMeta};
use parley_user::Attach;
use tracing::info;

use crate::driver::Io;
use crate::faults::Fault;
use crate::phase::{Bound, EndCause, Phase};
use crate::resumption::Lookup;
use crate::session::Session;
use crate::sm::{Ask, Resumption, Sm};

/// How long a session that handed itself over still forwards what reaches it.
const FORWARD_GRACE: Duration = Duration::from_secs(5);

/// Asks the actor holding a resumable session to hand it to the sender (see the module doc).
#[derive(Message)]
#[rtype(result = "Option<Box<Transfer>>")]
pub(crate) struct TakeOver {
    /// Who authenticated on the resuming stream: only the session's own user may take it.
    pub(crate) user: BareJid,
    /// The new actor, under the session's id.
    pub(crate) handle: SessionHandle,
}

/// A session's state, handed from one actor to the next.
pub(crate) struct Transfer {
    id: SessionId,
    meta: Arc<SessionMeta>,
    bound: Bound,
    /// Whether the client had sent initial presence.
    established: bool,
}

impl Transfer {
    pub(crate) fn new(
        id: SessionId,
        meta: Arc<SessionMeta>,
        bound: Bound,
        established: bool,
    ) -> Transfer {
        Transfer {
            id,
            meta,
            bound,
            established,
        }
    }
}

impl Handler<TakeOver> for Session {
    type Result = Option<Box<Transfer>>;

    fn handle(&mut self, msg: TakeOver, ctx: &mut Context<Self>) -> Self::Result {
        if self.env.config.faults.on(Fault::TimeoutAtTake) {
            self.hibernation_over(ctx);
        }
        if !self.can_hand_over() {
            return None;
        }
        // XEP-0352 holds join the SM queue that travels with the session.
        self.flush_csi(ctx);
        let b = self.bound()?;
        let resumable = matches!(&b.sm, Sm::On(s) if matches!(s.resume, Resumption::Yes { .. }));
        if !resumable || b.jid.to_bare() != msg.user {
            return None;
        }
        let jid = b.jid.clone();
        if !self.env.router.rehandle(&jid, self.id, msg.handle.clone()) {
            return None;
        }
        if !b.detached {
            // The same session id: the user actor swaps the handle and keeps the rest.
            b.user.send(Attach {
                resource: jid.resource().as_str().to_owned(),
                handle: msg.handle.clone(),
                state: b.attach_state(),
            });
        }
        self.hibernate_on_close = false;
        self.wake_from_hibernation(ctx);
        if let Some(s) = self.sm_mut() {
            if let Ask::Armed(h) = s.ask {
                ctx.cancel_future(h);
            }
            s.ask = Ask::Idle;
        }
        // A client resuming while its old connection still looks alive has left it (§5):
        // it is dropped without a word, and what was queued on it is in the SM queue.
        self.conn = Box::new(crate::connection::Gone);
        self.outbox.clear();
        let (bound, established) =
            match std::mem::replace(&mut self.phase, Phase::Authed { user: msg.user }) {
                Phase::Bound(b) => (b, false),
                Phase::Established(b) => (b, true),
                _ => unreachable!("checked bound above"),
            };
        self.io = Io::Moved;
        self.successor = Some(msg.handle);
        self.end = Some(EndCause::Resumed);
        self.span
            .in_scope(|| info!("handed over to a resuming connection"));
        ctx.run_later(FORWARD_GRACE, |_, ctx| ctx.stop());
        Some(Box::new(Transfer {
            id: self.id,
            meta: self.meta.clone(),
            bound,
            established,
        }))
    }
}

impl Session {
    /// Whether this session can be handed to a resuming connection now: connected,
    /// hibernating, or closing because a drain asked its client to move (the client may
    /// come back before this node has seen the old connection end).
    pub(crate) fn can_hand_over(&self) -> bool {
        match self.io {
            Io::Running | Io::Hibernating(_) => true,
            Io::Closing(_) => self.hibernate_on_close,
            Io::Moved | Io::Exporting { .. } => false,
        }
    }

    /// §5: `<resume previd h/>` on an authenticated stream.
    pub(crate) fn on_resume(&mut self, previd: String, h: u32, ctx: &mut Context<Self>) {
        let Phase::Authed { user } = &self.phase else {
            return;
        };
        let user = user.clone();
        match self.env.resumptions.lookup(&previd, &user) {
            // Perhaps another node's (the id names it), or one that moved there.
            Lookup::Unknown if self.env.resumptions.remote().is_some() => {
                self.resume_remote(previd, h, user, ctx)
            }
            Lookup::Unknown => self.resume_failed(None),
            Lookup::Ended { h } => self.resume_failed(Some(h)),
            Lookup::Live { session, addr } => {
                let handle = self.session_handle_as(session, ctx);
                self.pause();
                let act_user = user.clone();
                let ask = addr.send(TakeOver { user, handle });
                ctx.wait(wrap_future::<_, Self>(ask).map(move |res, act, ctx| {
                    act.resume();
                    match res {
                        Ok(Some(t)) => {
                            parley_router::metrics::SM_RESUMES_LOCAL
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            act.resumed(&previd, h, *t, ctx)
                        }
                        // Ended meanwhile (the hibernation timeout came first): the
                        // client learns the server's `h` all the same.
                        _ => {
                            let h = match act.env.resumptions.lookup(&previd, &act_user) {
                                Lookup::Ended { h } => Some(h),
                                _ => None,
                            };
                            act.resume_failed(h)
                        }
                    }
                }));
            }
        }
    }

    pub(crate) fn resume_failed(&mut self, h: Option<u32>) {
        parley_router::metrics::SM_RESUMES_FAILED
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send_nonza(&sm::failed(StanzaCondition::ItemNotFound, h, None));
    }

    /// The session is ours now: answer `<resumed/>` and send again what the client's `h`
    /// does not cover.
    pub(crate) fn resumed(&mut self, previd: &str, h: u32, t: Transfer, ctx: &mut Context<Self>) {
        self.id = t.id;
        self.meta = t.meta;
        self.meta.resumed(self.secure(), self.ip());
        self.meta.set_transport(self.conn.transport());
        // This connection now carries the resumed session's facts.
        self.env
            .router
            .register_stream(self.stream_key, self.meta.clone());
        let jid = t.bound.jid.clone();
        self.span = tracing::info_span!(
            "session",
            node = %self.env.node,
            id = %self.id,
            ip = %self.ip().map_or_else(|| "-".to_owned(), |a| a.to_string()),
            jid = %jid
        );
        self.phase = if t.established {
            Phase::Established(t.bound)
        } else {
            Phase::Bound(t.bound)
        };
        // The handle the routing table got was made before this actor had the session's
        // record: the admin API reads the record through it.
        let handle = self.session_handle(ctx);
        self.env.router.rehandle(&jid, self.id, handle);
        self.publish_flags();
        if let Some(t) = self.auth_timer.take() {
            ctx.cancel_future(t);
        }
        self.watch_peer(ctx);
        self.env
            .resumptions
            .register(previd, jid.to_bare(), self.id, ctx.address());
        let Some(s) = self.sm_mut() else {
            return;
        };
        s.ask = Ask::Idle;
        s.since_request = 0;
        let inbound = s.inbound;
        let before = s.out.len();
        let acked = s.out.ack(h);
        let again: Vec<_> = s.out.iter().map(|q| q.stanza.clone()).collect();
        self.send_nonza(&sm::resumed(previd, inbound));
        match acked {
            Ok(_) => parley_router::metrics::sm_unacked(before, again.len()),
            Err(too_high) => {
                let el = sm::handled_count_too_high(too_high.h, too_high.sent);
                return self.close(CloseReason::Stanza(el), ctx);
            }
        }
        self.span
            .in_scope(|| info!(resent = again.len(), "resumed"));
        for stanza in &again {
            self.write_stanza(stanza, ctx);
        }
        if !again.is_empty() {
            self.request_ack(ctx);
        }
    }
}
