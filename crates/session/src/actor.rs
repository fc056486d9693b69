//! The session as an actor: its start and end, and the messages it accepts.
//!
//! | message | sent by |
//! |---|---|
//! | [`Deliver`] | only the router ([`parley_router::Router`]), for other sessions, user actors and node links |
//! | [`Close`] | the router (a replaced resource), the admin API, sign-out, the node |
//! | [`Resync`] | the node (`parley-cluster`), when the owner of the user's actor changed and the new one needs this resource again |
//! | [`crate::resume::TakeOver`] | a session on a new connection of the same user that resumes this one (XEP-0198 §5) |

use actix::{Actor, AsyncContext, Context, Handler};
use parley_proto::stream_error::StreamCondition;
use parley_router::{Close, CloseReason, Deliver, Resync, SessionStatus};
use parley_user::Attach;
use tracing::{debug, info};

use crate::driver::{Driver, Io};
use crate::phase::{EndCause, Phase};
use crate::session::Session;

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        {
            let _enter = self.span.enter();
            debug!(secure = self.secure(), "connection accepted");
        }
        ctx.spawn(Driver);
        self.env
            .router
            .register_stream(self.stream_key, self.meta.clone());
        if let Some(at) = self.meta.expires_ms() {
            self.expire_at(at, ctx);
        }
        // A component may be quiet for hours (a gateway nobody uses at night), and so may
        // a server: the client idle limit is not for them.
        let client = !matches!(
            self.phase,
            Phase::Component(_) | Phase::S2sIn(_) | Phase::S2sOut(_)
        );
        if let (Some(idle), true) = (self.env.config.idle_timeout, client) {
            self.watch_idle(idle, ctx);
        }
        if matches!(self.phase, Phase::S2sIn(_) | Phase::S2sOut(_)) {
            // Streams between servers bind no JID: the admin API closes them by key.
            self.env
                .router
                .register_stream_closer(self.stream_key, ctx.address().recipient());
        }
        match &self.phase {
            Phase::S2sOut(_) => self.start_outgoing(ctx),
            Phase::S2sIn(_) => {
                if let Some(idle) = self.env.s2s.as_ref().map(|r| r.settings().idle_timeout) {
                    self.watch_s2s_idle(idle, ctx);
                }
            }
            _ => {}
        }
        if let Some((resource, reply)) = self.prebind.take() {
            self.prebind(resource, reply, ctx);
        }
        let timeout = self.env.config.auth_timeout;
        self.auth_timer = Some(ctx.run_later(timeout, |act, ctx| {
            let unauthenticated = match &act.phase {
                Phase::Unauthed(_) => true,
                Phase::Component(c) => !c.ready(),
                Phase::S2sIn(s) => !s.authenticated(),
                _ => false,
            };
            if unauthenticated {
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
        if self.io == Io::Moved {
            // Done forwarding (remote.rs): the JID's stanzas no longer follow it from here.
            self.env.router.moved_end(self.id);
        }
        self.unregister();
        self.env.router.unregister_stream(self.stream_key);
        actix::Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let end = self.end.unwrap_or(EndCause::Abandoned);
        if end == EndCause::Resumed {
            // The session goes on in another actor, with its record.
            return;
        }
        self.meta.end(match end {
            EndCause::Abandoned => SessionStatus::Abandoned,
            EndCause::Replaced => SessionStatus::Replaced,
            EndCause::Error(_) => SessionStatus::Failed,
            EndCause::Ended | EndCause::Closed | EndCause::Resumed => SessionStatus::Ended,
        });
        let jid = self
            .bound()
            .map(|b| b.jid.clone())
            .or_else(|| self.component_jid().cloned());
        if let Some(jid) = jid {
            self.env.router.record_end(jid, self.id, self.meta.clone());
        }
        let _enter = self.span.enter();
        info!(end = ?end, status = self.meta.status().as_str(), "session ended");
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.pending.taken();
        if self.io == Io::Moved {
            // Routed here before the hand-over: on to the session's new actor.
            return match &self.successor {
                Some(next) => self.env.router.deliver(next, msg.stanza),
                None => self.undeliverable(msg.stanza),
            };
        }
        if matches!(self.io, Io::Closing(_)) && !self.hibernate_on_close {
            // Routed before this session unregistered: nothing may be lost silently.
            return self.undeliverable(msg.stanza);
        }
        self.meta.delivered();
        self.deliver_to_client(msg.stanza, ctx);
    }
}

impl Handler<Resync> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Resync, ctx: &mut Context<Self>) {
        if matches!(self.io, Io::Closing(_) | Io::Moved) {
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
