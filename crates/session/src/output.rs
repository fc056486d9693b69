//! What a session writes: Prosody's `session.send(stanza)` and `session:close(reason)`, the
//! stream header and the stream-level elements, each queued as one unit of the outbox with
//! its kind ([`Unit`]), so that a framed transport knows what it carries without reading it.

use std::task::{self, Poll, Waker};
use std::time::Duration;

use actix::{ActorContext, AsyncContext, Context};
use parley_proto::ns;
use parley_proto::stream_error::{StreamCondition, StreamError};
use parley_router::{CloseReason, SessionStatus};
use parley_user::Detach;
use parley_xml::Element;
use tracing::{debug, info};

use crate::connection::Unit;
use crate::driver::{CloseStage, Io};
use crate::phase::{EndCause, Phase};
use crate::session::Session;
use crate::sm::Counted;

/// How long a closing session waits for the client's side of the close.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

impl Session {
    /// Prosody's `session.send(stanza)`: queues a stanza for the client. A full queue means
    /// the client is not reading; it is disconnected with `<policy-violation/>`.
    pub fn send(&mut self, stanza: &Element, ctx: &mut Context<Self>) {
        if self.io == Io::Moved || matches!(self.io, Io::Closing(_)) && !self.hibernate_on_close {
            return;
        }
        // XEP-0198: counted and kept until acknowledged; a hibernating session only keeps it.
        let ask = match self.sm_count_out(stanza, ctx) {
            Counted::Write { ask } => ask,
            Counted::Held => return,
            Counted::Full(el) if !matches!(self.io, Io::Running) => return self.refuse_held(el),
            Counted::Full(el) => {
                self.close(
                    CloseReason::with_text(
                        StreamCondition::PolicyViolation,
                        "too many unacknowledged stanzas",
                    ),
                    ctx,
                );
                // The queue went back to the router with the close; this one follows it.
                self.env.router.gone(el);
                return;
            }
        };
        self.write_stanza(stanza, ctx);
        if ask {
            self.request_ack(ctx);
        }
    }

    /// Queues `stanza` on the connection, uncounted (a resume sends the SM queue again
    /// this way). A full queue means the client is not reading; it is disconnected with
    /// `<policy-violation/>`.
    pub(crate) fn write_stanza(&mut self, stanza: &Element, ctx: &mut Context<Self>) {
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

    /// Writes what the socket takes without waiting; true if anything was written. The
    /// driver (woken after every push) does the rest.
    fn write_now(&mut self) -> bool {
        if !self.running() {
            return false;
        }
        let mut cx = task::Context::from_waker(Waker::noop());
        let mut wrote = false;
        while !self.outbox.is_empty() {
            let written = if self.framed {
                let unit = self.outbox.front_kind();
                self.conn
                    .poll_write_unit(&mut cx, unit, self.outbox.front_unit())
            } else {
                self.conn.poll_write(&mut cx, self.outbox.front())
            };
            match written {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.outbox.consume(n);
                    wrote = true;
                }
                _ => break,
            }
        }
        wrote
    }

    /// The namespace a stanza may leave implicit: jabber:client on a stream; none when
    /// every framed element stands alone.
    pub(crate) fn content_ns(&self) -> Option<&'static str> {
        (!self.framed).then_some(ns::CLIENT)
    }

    /// Queues a stream-level element (`<stream:features/>`, …) with the `stream:` prefix that
    /// naive clients expect.
    pub(crate) fn send_stream_level(&mut self, unit: Unit, name: &str, children: &[Element]) {
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
        self.outbox.push_unit(unit, &data);
        self.wake();
    }

    /// Queues a nonza (negotiation element) that must not be refused by the bounds.
    pub(crate) fn send_nonza(&mut self, el: &Element) {
        let mut data = Vec::with_capacity(128);
        el.write_to(&mut data, self.content_ns());
        self.outbox.push_unbounded(&data);
        self.wake();
    }

    /// Queues the server's stream header from `from` (RFC 6120 §4.7, RFC 7395 §3.3.2; a
    /// component's, XEP-0114 §3); returns the stream id it carries.
    pub(crate) fn send_header(&mut self, from: &str) -> String {
        let stream_id = {
            let bytes: [u8; 16] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        // A component's stream has its own namespace and no version (XEP-0114).
        let header = match self.phase {
            Phase::Component(_) => parley_proto::component::header(&stream_id, from),
            Phase::S2sIn(_) | Phase::S2sOut(_) => {
                parley_proto::s2s::header(Some(&stream_id), from, None)
            }
            _ => crate::negotiation::header(self.framed, &stream_id, from),
        };
        self.outbox.push_unit(Unit::Header, header.as_bytes());
        self.wake();
        stream_id
    }

    /// Prosody's `session:close(reason)`: sends the reason (opening the stream first if the
    /// client's header was never answered, RFC 6120 §4.9.1.2), then `</stream:stream>`, and
    /// closes the connection once the client has closed its side or a grace period passed.
    pub fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        match self.io {
            Io::Closing(_) | Io::Moved => return,
            // A drain leaves a hibernating session as it is: its client resumes it elsewhere.
            Io::Hibernating(_) | Io::Exporting { .. }
                if matches!(reason, CloseReason::Move { .. }) =>
            {
                return
            }
            Io::Hibernating(_) | Io::Exporting { .. } => {
                // No connection to say anything on: the session just ends.
                self.wake_from_hibernation(ctx);
                self.end.get_or_insert(match &reason {
                    CloseReason::Error(e) => EndCause::Error(e.condition),
                    _ => EndCause::Closed,
                });
                if let CloseReason::Error(e) = &reason {
                    self.meta.set_reason(match &e.text {
                        Some(text) => format!("{}: {text}", e.condition.as_str()),
                        None => e.condition.as_str().to_owned(),
                    });
                }
                self.io = Io::Closing(CloseStage::Draining);
                self.unregister();
                ctx.stop();
                return;
            }
            Io::Running => {}
        }
        if self.notopen() && !matches!(reason, CloseReason::Clean) {
            let from = self.default_host();
            self.send_header(&from);
        }
        let mut framed_close = None;
        match &reason {
            CloseReason::Clean => {
                self.end.get_or_insert(EndCause::Closed);
            }
            CloseReason::Move { host, uri } => {
                self.span
                    .in_scope(|| info!(host = ?host, "asking the client to move"));
                let condition = match (uri, host) {
                    // RFC 7395 §3.6.1: the framing's own redirect.
                    (Some(uri), _) if self.framed => {
                        framed_close = Some(uri.clone());
                        None
                    }
                    (_, Some(host)) => {
                        let condition = StreamCondition::SeeOtherHost;
                        let child = Element::new(condition.as_str(), ns::STREAM_ERRORS)
                            .with_text(host.as_str());
                        self.send_stream_level(Unit::StreamError(condition), "error", &[child]);
                        Some(condition)
                    }
                    (_, None) => {
                        let condition = StreamCondition::SystemShutdown;
                        let child = Element::new(condition.as_str(), ns::STREAM_ERRORS);
                        self.send_stream_level(Unit::StreamError(condition), "error", &[child]);
                        Some(condition)
                    }
                };
                // A resumable session outlives its connection: the client resumes it on
                // the node it moves to (see `finish`).
                self.hibernate_on_close = self.resumable();
                if !self.hibernate_on_close {
                    self.end.get_or_insert(match condition {
                        Some(c) => EndCause::Error(c),
                        None => EndCause::Closed,
                    });
                }
            }
            CloseReason::Error(err) => {
                self.end.get_or_insert(EndCause::Error(err.condition));
                self.meta.set_reason(match &err.text {
                    Some(text) => format!("{}: {text}", err.condition.as_str()),
                    None => err.condition.as_str().to_owned(),
                });
                self.span.in_scope(|| {
                    info!(
                        condition = err.condition.as_str(),
                        "closing stream with error"
                    )
                });
                let el = err.to_element();
                let children: Vec<Element> = el.children().cloned().collect();
                self.send_stream_level(Unit::StreamError(err.condition), "error", &children);
            }
            CloseReason::Stanza(el) => {
                self.end.get_or_insert(EndCause::Closed);
                if el.is("error", ns::STREAM) {
                    let condition = StreamError::from_element(el)
                        .map_or(StreamCondition::UndefinedCondition, |e| e.condition);
                    let children: Vec<Element> = el.children().cloned().collect();
                    self.send_stream_level(Unit::StreamError(condition), "error", &children);
                } else {
                    self.send_nonza(el);
                }
            }
        }
        if !self.notopen() || !matches!(reason, CloseReason::Clean) {
            if self.framed {
                // RFC 7395 §3.6.
                let close = match framed_close {
                    Some(uri) => format!(
                        "<close xmlns='{}' see-other-uri='{}'/>",
                        ns::FRAMING,
                        parley_xml::escape::attr(&uri)
                    ),
                    None => format!("<close xmlns='{}'/>", ns::FRAMING),
                };
                self.outbox.push_unit(Unit::Close, close.as_bytes());
            } else {
                self.outbox.push_unit(Unit::Close, b"</stream:stream>");
            }
        }
        self.io = Io::Closing(CloseStage::Flushing);
        self.paused = false;
        if !self.hibernate_on_close {
            self.unregister();
        }
        ctx.run_later(CLOSE_GRACE, |act, ctx| {
            if !matches!(act.io, Io::Closing(_)) {
                return;
            }
            act.span.in_scope(|| debug!("close grace period over"));
            act.finish(ctx);
        });
        self.wake();
    }

    /// The connection is done with (closed, lost, or out of grace): the actor stops, or a
    /// session moved away by a drain hibernates until its client resumes it.
    pub(crate) fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.hibernate_on_close {
            self.hibernate_on_close = false;
            self.io = Io::Running;
            if self.hibernate(ctx) {
                return;
            }
        }
        ctx.stop();
    }

    /// Ends the session (status expired) at unix time `at_ms`: its lifetime or its token's.
    pub(crate) fn expire_at(&mut self, at_ms: i64, ctx: &mut Context<Self>) {
        self.meta.set_expires(at_ms);
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
    pub(crate) fn watch_idle(&mut self, idle: Duration, ctx: &mut Context<Self>) {
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

    /// Dead-peer detection (`[c2s] ping_interval_s`): a bound connection that sent nothing
    /// for a whole interval is pinged (XEP-0199 §4.2; `<r/>` under Stream Management, which
    /// the client must answer too); one that still sends nothing within `ping_timeout_s`
    /// is treated as gone, so that stanzas stop going into a dead socket: a resumable
    /// session hibernates with them in its queue, any other ends.
    pub(crate) fn watch_peer(&mut self, ctx: &mut Context<Self>) {
        let Some(every) = self.env.config.ping_interval else {
            return;
        };
        let timeout = self.env.config.ping_timeout;
        let mut seen = self.reads;
        ctx.run_interval(every, move |act, ctx| {
            if act.io != Io::Running || act.bound().is_none() {
                return;
            }
            if act.reads != seen {
                seen = act.reads;
                return;
            }
            act.ping_peer(ctx);
            let at = act.reads;
            ctx.run_later(timeout, move |act, ctx| {
                if act.io == Io::Running && act.reads == at {
                    let _ = act.lost(ctx, "no answer to a ping");
                }
            });
        });
    }

    fn ping_peer(&mut self, ctx: &mut Context<Self>) {
        if self.sm().is_some() {
            return self.request_ack(ctx);
        }
        let Some(b) = self.bound() else {
            return;
        };
        let bytes: [u8; 6] = rand::random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("ping-{id}"))
            .with_attr("from", b.jid.domain().as_str())
            .with_attr("to", b.jid.as_str())
            .with_child(Element::new("ping", ns::PING));
        self.send(&ping, ctx);
    }

    /// Removes the session from the routing table. Called as soon as the session starts
    /// closing, so that nothing new is routed to it, and again (harmlessly) when it stops.
    pub(crate) fn unregister(&mut self) {
        self.handle = None;
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
        if let Some(jid) = self.component_jid().cloned() {
            router.unbind(&jid, id);
            if let Some(dir) = router.directory() {
                dir.release(&jid, id);
            }
        }
        self.unregister_outgoing();
        held_back.extend(self.release_csi());
        // Held back for the blocklist and never shown: nothing is lost silently.
        for el in held_back {
            self.undeliverable(el);
        }
        // Sent but never acknowledged (XEP-0198): the same.
        self.release_unacked();
    }
}
