//! An outgoing server-to-server stream (RFC 6120 §4–§5, XEP-0220 §2.1.1): dialed by the
//! transport, secured with STARTTLS (unless it is TLS from the first byte), authenticated
//! with dialback, then the writer of everything this node sends to the remote domain.
//!
//! The queue is its lane in [`super::S2sRoutes`]; the actor takes it once the stream is
//! authenticated and whenever a [`Flush`] says there is more. A stream that fails (not
//! found, timed out, refused) ends, and the lane's stanzas bounce with the condition that
//! says why (`remote-server-not-found` or `remote-server-timeout`).

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{ActorContext, AsyncContext, Context, Handler};
use parley_proto::dialback::{self, Dialback, Verdict};
use parley_proto::ns;
use parley_proto::s2s::{self, Next};
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, StreamLink};
use parley_xml::{Element, StreamHeader};
use tracing::{debug, info};

use super::routes::{Flush, Pair, VerifyDone, VerifyRequest};
use super::{DialError, Dialed};
use crate::connection::Unit;
use crate::phase::{Phase, StreamState};
use crate::session::Session;

/// Where an outgoing stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S2sOutPhase {
    /// The transport is resolving and connecting.
    Dialing,
    /// Our header is out (again after TLS); waiting for the peer's.
    AwaitingHeader,
    /// The peer's header gave the stream id; waiting for its features.
    AwaitingFeatures {
        /// The id the dialback key is computed over.
        stream_id: String,
    },
    /// `<starttls/>` is out; waiting for `<proceed/>`.
    StartingTls,
    /// `<auth mechanism='EXTERNAL'/>` is out (XEP-0178); dialback on this stream id if it
    /// fails.
    External {
        /// The id a dialback key would be computed over.
        stream_id: String,
    },
    /// `<db:result/>` is out; waiting for the verdict.
    Dialback,
    /// Authenticated: stanzas flow.
    Ready,
}

/// An outgoing stream's state.
pub struct S2sOut {
    pub(crate) pair: Pair,
    pub(crate) step: S2sOutPhase,
    /// `db:verify` requests sent and not answered yet (XEP-0220 §2.2).
    pub(crate) verifying: Vec<VerifyRequest>,
    /// How the lane's stanzas bounce if the stream ends now.
    pub(crate) failure: StanzaCondition,
    /// The last time a stanza was written (unix ms), for the idle close.
    pub(crate) last_used_ms: i64,
    /// SASL EXTERNAL succeeded: the restarted stream is authenticated.
    pub(crate) external_done: bool,
}

impl std::fmt::Debug for S2sOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sOut")
            .field("pair", &self.pair)
            .field("step", &self.step)
            .field("verifying", &self.verifying.len())
            .finish()
    }
}

impl S2sOut {
    /// A stream for `pair` about to dial.
    pub(crate) fn new(pair: Pair) -> S2sOut {
        S2sOut {
            pair,
            step: S2sOutPhase::Dialing,
            verifying: Vec::new(),
            failure: StanzaCondition::RemoteServerNotFound,
            last_used_ms: parley_router::now_ms(),
            external_done: false,
        }
    }

    /// Whether the stream can carry `db:verify` requests: open, TLS done if there is any.
    fn open(&self) -> bool {
        matches!(self.step, S2sOutPhase::Dialback | S2sOutPhase::Ready)
    }
}

impl Session {
    fn s2s_out(&mut self) -> Option<&mut S2sOut> {
        match &mut self.phase {
            Phase::S2sOut(out) => Some(out),
            _ => None,
        }
    }

    /// Starts dialing (from `started`), with the deadline for the whole set-up.
    pub(crate) fn start_outgoing(&mut self, ctx: &mut Context<Self>) {
        let Some(routes) = self.env.s2s.clone() else {
            return ctx.stop();
        };
        let Some((local, remote)) = self.s2s_out().map(|o| o.pair.clone()) else {
            return;
        };
        let dial = routes.dialer().dial(&local, &remote);
        ctx.spawn(wrap_future::<_, Self>(dial).map(|dialed, act, ctx| act.on_dialed(dialed, ctx)));
        let deadline = routes.settings().connect_timeout;
        ctx.run_later(deadline, |act, ctx| {
            if act.s2s_out().is_some_and(|o| o.step != S2sOutPhase::Ready) {
                act.give_up(
                    StanzaCondition::RemoteServerTimeout,
                    "the remote server did not accept the stream in time",
                    ctx,
                );
            }
        });
        self.watch_s2s_idle(routes.settings().idle_timeout, ctx);
    }

    fn on_dialed(&mut self, dialed: Result<Dialed, DialError>, ctx: &mut Context<Self>) {
        let dialed = match dialed {
            Ok(d) => d,
            Err(e) => {
                let condition = match e {
                    DialError::NotFound(_) => StanzaCondition::RemoteServerNotFound,
                    DialError::Timeout(_) => StanzaCondition::RemoteServerTimeout,
                };
                return self.give_up(condition, &e.to_string(), ctx);
            }
        };
        self.span
            .in_scope(|| debug!(target = %dialed.target, "connected to the remote server"));
        self.meta.set_ip(dialed.conn.peer_addr());
        self.conn = dialed.conn;
        self.send_out_header();
    }

    /// Our header (RFC 6120 §4.7.1), first on the connection and after TLS.
    fn send_out_header(&mut self) {
        let Some(out) = self.s2s_out() else { return };
        let (local, remote) = out.pair.clone();
        out.step = S2sOutPhase::AwaitingHeader;
        let header = s2s::header(None, &local, Some(&remote));
        self.stream = StreamState::Open { host: local };
        self.outbox.push_unit(Unit::Header, header.as_bytes());
        self.wake();
    }

    /// The peer's header: a server stream with an id (the dialback key needs it).
    pub(crate) fn on_out_header(&mut self, header: StreamHeader, ctx: &mut Context<Self>) {
        if !self.count_open(ctx) {
            return;
        }
        let right = header.name == "stream"
            && header.ns == ns::STREAM
            && header.default_ns.as_deref() == Some(ns::SERVER);
        let id = header
            .attr("id")
            .filter(|i| !i.is_empty())
            .map(str::to_owned);
        let (true, Some(stream_id)) = (right, id) else {
            return self.give_up_closing(
                StanzaCondition::RemoteServerNotFound,
                StreamCondition::InvalidNamespace,
                "the remote server's header is not a server stream with an id",
                ctx,
            );
        };
        if let Some(out) = self.s2s_out() {
            if out.step == S2sOutPhase::AwaitingHeader {
                out.step = S2sOutPhase::AwaitingFeatures { stream_id };
            }
        }
    }

    /// A top-level element on an outgoing stream.
    pub(crate) fn on_out_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        let Some(out) = self.s2s_out() else { return };
        let step = out.step.clone();
        match step {
            S2sOutPhase::AwaitingFeatures { stream_id } if el.is("features", ns::STREAM) => {
                self.on_out_features(&el, &stream_id, ctx)
            }
            S2sOutPhase::StartingTls if el.is("proceed", ns::TLS) => self.out_start_tls(ctx),
            S2sOutPhase::External { stream_id } if el.ns() == ns::SASL => {
                self.on_out_external(&el, &stream_id, ctx)
            }
            _ if el.ns() == dialback::NS => self.on_out_dialback(&el, ctx),
            _ => self.give_up_closing(
                StanzaCondition::RemoteServerNotFound,
                StreamCondition::UnsupportedStanzaType,
                "unexpected element on an outgoing server stream",
                ctx,
            ),
        }
    }

    fn on_out_features(&mut self, features: &Element, stream_id: &str, ctx: &mut Context<Self>) {
        let secure = self.secure();
        if self.s2s_out().is_some_and(|o| o.external_done) {
            // XEP-0178 §2: the stream restarted after <success/>: authenticated.
            return self.out_ready("EXTERNAL");
        }
        let can_tls = self.conn.can_starttls();
        let required = self
            .env
            .s2s
            .as_ref()
            .is_none_or(|r| r.settings().require_encryption);
        let external = self.conn.presents_certificate();
        match s2s::next_step(features, secure, can_tls, required, external) {
            Next::External => {
                if secure {
                    self.meta.set_secure();
                }
                let Some(out) = self.s2s_out() else { return };
                let local = out.pair.0.clone();
                out.step = S2sOutPhase::External {
                    stream_id: stream_id.to_owned(),
                };
                self.send_nonza(&s2s::external_auth(&local));
            }
            Next::StartTls => {
                self.send_nonza(&Element::new("starttls", ns::TLS));
                if let Some(out) = self.s2s_out() {
                    out.step = S2sOutPhase::StartingTls;
                }
            }
            Next::GiveUp(why) => self.give_up_closing(
                StanzaCondition::RemoteServerNotFound,
                StreamCondition::PolicyViolation,
                why,
                ctx,
            ),
            Next::Dialback => {
                if secure {
                    self.meta.set_secure();
                }
                self.out_dialback(stream_id);
            }
        }
    }

    /// XEP-0220 §2.1.1: our key for this stream; checks for other streams may ride it now.
    fn out_dialback(&mut self, stream_id: &str) {
        let Some(out) = self.s2s_out() else { return };
        let (local, remote) = out.pair.clone();
        out.step = S2sOutPhase::Dialback;
        // XEP-0185 §2: the key names this stream and both domains.
        let key = dialback::key(&self.env.server_secret, &remote, &local, stream_id);
        self.send_dialback(&dialback::result_request(&local, &remote, &key));
        self.take_lane();
    }

    /// XEP-0178 §2: `<success/>` restarts the stream, authenticated; `<failure/>` leaves
    /// dialback (unless the peer's domain must be authenticated by certificate only).
    fn on_out_external(&mut self, el: &Element, stream_id: &str, ctx: &mut Context<Self>) {
        if el.name() == "success" {
            if let Some(out) = self.s2s_out() {
                out.external_done = true;
            }
            self.parser.restart();
            return self.send_out_header();
        }
        let remote = self.s2s_out().map(|o| o.pair.1.clone()).unwrap_or_default();
        let strict = self
            .env
            .s2s
            .as_ref()
            .is_some_and(|r| r.settings().secure_domains.required(&remote));
        if strict {
            return self.give_up_closing(
                StanzaCondition::RemoteServerNotFound,
                StreamCondition::PolicyViolation,
                "the remote server refused SASL EXTERNAL, and dialback is not allowed with it",
                ctx,
            );
        }
        self.out_dialback(stream_id);
    }

    /// The stream is authenticated (by `method`): what waits in the lane goes out.
    fn out_ready(&mut self, method: &'static str) {
        let Some(out) = self.s2s_out() else { return };
        out.step = S2sOutPhase::Ready;
        self.meta.set_auth(method);
        self.span
            .in_scope(|| info!(method, "outgoing server stream authenticated"));
        self.take_lane();
    }

    /// RFC 6120 §5.4.3.3: `<proceed/>`: the handshake starts, and the stream restarts
    /// over TLS with nothing of the plain one kept.
    fn out_start_tls(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.conn.start_tls() {
            return self.give_up(
                StanzaCondition::RemoteServerNotFound,
                &format!("starting TLS: {e}"),
                ctx,
            );
        }
        self.parser.reset();
        self.send_out_header();
    }

    fn on_out_dialback(&mut self, el: &Element, ctx: &mut Context<Self>) {
        let Some(out) = self.s2s_out() else { return };
        let (local, remote) = out.pair.clone();
        match dialback::parse(el) {
            // XEP-0220 §2.1.4: the verdict on our request.
            Ok(Dialback::ResultAnswer { from, to, verdict })
                if from == remote && to == local && out.step == S2sOutPhase::Dialback =>
            {
                if verdict == Verdict::Valid {
                    self.out_ready("dialback");
                } else {
                    self.give_up_closing(
                        StanzaCondition::RemoteServerNotFound,
                        StreamCondition::NotAuthorized,
                        "the remote server refused our dialback key",
                        ctx,
                    );
                }
            }
            // XEP-0220 §2.2.2: the authority's answer to a check we carried.
            Ok(Dialback::VerifyAnswer {
                from,
                to,
                id,
                verdict,
            }) if from == remote && to == local => {
                if let Some(i) = out.verifying.iter().position(|v| v.id == id) {
                    let asked = out.verifying.swap_remove(i);
                    asked.reply.do_send(VerifyDone {
                        remote,
                        local,
                        id,
                        verdict,
                    });
                }
            }
            _ => self.give_up_closing(
                StanzaCondition::RemoteServerNotFound,
                StreamCondition::InvalidXml,
                "a dialback element that answers nothing we asked",
                ctx,
            ),
        }
    }

    /// Takes what waits in the lane: `db:verify` requests once the stream is open, stanzas
    /// once it is authenticated.
    fn take_lane(&mut self) {
        let Some(routes) = self.env.s2s.clone() else {
            return;
        };
        let id = self.id;
        let Some(out) = self.s2s_out() else { return };
        if !out.open() {
            return;
        }
        let ready = out.step == S2sOutPhase::Ready;
        let pair = out.pair.clone();
        let (stanzas, verifies) = routes.take(&pair, id, ready);
        for v in verifies {
            let key = dialback::verify_request(&pair.0, &pair.1, &v.id, &v.key);
            self.send_dialback(&key);
            if let Some(out) = self.s2s_out() {
                out.verifying.push(v);
            }
        }
        if stanzas.is_empty() {
            return;
        }
        if let Some(out) = self.s2s_out() {
            out.last_used_ms = parley_router::now_ms();
        }
        for q in stanzas {
            if self
                .outbox
                .push_with(|buf| buf.extend_from_slice(&q.bytes))
                .is_err()
            {
                // The remote server does not read what it is sent.
                self.env.router.bounce(
                    &q.stanza,
                    StanzaError::new(StanzaCondition::ResourceConstraint),
                );
                continue;
            }
            self.meta.delivered();
        }
        self.wake();
    }

    /// The stream cannot be used: what waits bounces with `condition` once the actor
    /// stops, and the connection closes.
    pub(crate) fn give_up(
        &mut self,
        condition: StanzaCondition,
        why: &str,
        ctx: &mut Context<Self>,
    ) {
        let Some(out) = self.s2s_out() else { return };
        out.failure = condition;
        let dialing = out.step == S2sOutPhase::Dialing;
        self.span
            .in_scope(|| info!(reason = why, "outgoing server stream failed"));
        if dialing {
            // Nothing to say on a connection that is not there.
            self.end.get_or_insert(crate::phase::EndCause::Closed);
            self.unregister();
            return ctx.stop();
        }
        self.close(CloseReason::Clean, ctx);
    }

    fn give_up_closing(
        &mut self,
        condition: StanzaCondition,
        stream: StreamCondition,
        why: &str,
        ctx: &mut Context<Self>,
    ) {
        if let Some(out) = self.s2s_out() {
            out.failure = condition;
        }
        self.span
            .in_scope(|| info!(reason = why, "outgoing server stream failed"));
        self.close(CloseReason::with_text(stream, why), ctx);
    }

    /// The stream ends: its lane goes, and what waited in it (or waited for an answer on
    /// it) is answered: stanzas bounce, dialback checks fail.
    pub(crate) fn unregister_outgoing(&mut self) {
        let Some(routes) = self.env.s2s.clone() else {
            return;
        };
        let id = self.id;
        let Some(out) = self.s2s_out() else { return };
        let pair = out.pair.clone();
        let failure = out.failure;
        let mut waiting = std::mem::take(&mut out.verifying);
        let left = routes.remove(&pair, id);
        waiting.extend(left.verifies);
        for v in waiting {
            v.reply.do_send(VerifyDone {
                remote: pair.1.clone(),
                local: pair.0.clone(),
                id: v.id,
                verdict: Verdict::Error,
            });
        }
        for q in left.stanzas {
            self.env.router.bounce(&q.stanza, StanzaError::new(failure));
        }
    }
}

impl Handler<Flush> for Session {
    type Result = ();

    fn handle(&mut self, _: Flush, _ctx: &mut Context<Self>) {
        self.take_lane();
    }
}

/// What the admin view shows for an outgoing stream.
pub(crate) fn out_link(pair: &Pair) -> StreamLink {
    StreamLink {
        direction: "out",
        from_host: pair.0.clone(),
        to_host: pair.1.clone(),
    }
}
