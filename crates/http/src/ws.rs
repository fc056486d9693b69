//! XMPP over WebSocket (RFC 7395): the upgrade checks and the bridge between an actix-web
//! WebSocket and a session actor.
//!
//! The session is the same actor as on TCP; it sees a framed [`parley_session::Connection`] (RFC 7395).
//! The WebSocket itself lives on the HTTP worker: a pump task moves text frames into a small
//! bounded inbound queue and the session's framed output (exactly one element per write) out
//! as text frames. Both directions are bounded: the pump stops reading the socket while the
//! session has not taken what it got, and the session's writes wait while the frames queued
//! for the socket exceed a byte bound.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use parley_session::{Session, Unit};
use tokio::io::ReadBuf;
use tokio::sync::Notify;
use tracing::debug;

use crate::framed::{Channel, FramedConnection};
use crate::origin::same_origin;
use crate::web_state::WebState;

/// Frames received and not yet taken by the session, at most.
const MAX_INBOUND_FRAMES: usize = 8;
/// Bytes of frames queued for the socket, at most (a frame larger than this still goes
/// alone).
const MAX_OUTBOUND_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Inbound {
    frames: VecDeque<Vec<u8>>,
    /// Offset into the front frame already handed to the session.
    offset: usize,
    closed: bool,
    session: Option<Waker>,
}

#[derive(Default)]
struct Outbound {
    frames: VecDeque<String>,
    bytes: usize,
    closed: bool,
    session: Option<Waker>,
}

#[derive(Default)]
struct Bridge {
    inbound: Mutex<Inbound>,
    outbound: Mutex<Outbound>,
    /// Wakes the pump: output queued, input taken, or the session closed.
    pump: Notify,
}

impl Channel for Bridge {
    fn transport(&self) -> &'static str {
        "websocket"
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut inb = self.inbound.lock();
        let Some(front) = inb.frames.front() else {
            if inb.closed {
                return Poll::Ready(Ok(()));
            }
            inb.session = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let len = front.len();
        let rest = &front[inb.offset..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        inb.offset += n;
        if inb.offset == len {
            inb.frames.pop_front();
            inb.offset = 0;
            drop(inb);
            self.pump.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        _unit: Unit,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        // RFC 7395: every unit, the header and the close included, is one text frame.
        let mut out = self.outbound.lock();
        if out.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket is closed",
            )));
        }
        if out.bytes + data.len() > MAX_OUTBOUND_BYTES && !out.frames.is_empty() {
            out.session = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // The session writes one serialized element per call (Framing::Framed): UTF-8.
        let frame = String::from_utf8_lossy(data).into_owned();
        out.bytes += frame.len();
        out.frames.push_back(frame);
        drop(out);
        self.pump.notify_one();
        Poll::Ready(Ok(data.len()))
    }

    fn shutdown(&self) {
        self.outbound.lock().closed = true;
        self.pump.notify_one();
    }
}

/// Why an upgrade was refused (answered as plain HTTP, before any WebSocket exists).
fn refuse(status: actix_web::http::StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain")
        .body(format!("{text}\n"))
}

/// `GET /xmpp-websocket`: RFC 7395 §3.1 upgrade, then a session.
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<WebState>,
) -> actix_web::Result<HttpResponse> {
    use actix_web::http::StatusCode;
    // RFC 7395 §3.1: the client must offer the "xmpp" subprotocol.
    let offers_xmpp = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "xmpp");
    if !offers_xmpp {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol \"xmpp\" is required (RFC 7395 §3.1)",
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !state.origin_allowed(origin) && !same_origin(&req, &state, origin) {
            return Ok(refuse(
                StatusCode::FORBIDDEN,
                &format!("origin {origin} is not allowed ([http] origins)"),
            ));
        }
    }
    // The client as a trusted proxy names it, else the TCP peer ([http] trusted_proxies):
    // per-address limits count clients, not the proxy in front of them.
    let client = state.client_addr(&req);
    let permit = match crate::admit::admit(&state, "websocket", client, |r| {
        (format!("{}\n", r.text()), "text/plain")
    }) {
        Ok(permit) => permit,
        Err(refused) => return Ok(*refused),
    };
    let (mut response, ws, stream) = actix_ws::handle(&req, body)?;
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static("xmpp"),
    );
    let bridge = Arc::new(Bridge::default());
    let conn = FramedConnection::new(bridge.clone(), client, state.secure_request(&req));
    let env = state.env.clone();
    let worker = state.next_worker();
    worker.spawn_fn(move || {
        use actix::Actor;
        Session::new(env, Box::new(conn))
            .with_permit(permit)
            .start();
    });
    // Frames are bounded like stanzas on TCP (plus the framing around them).
    let max = state.env.config.limits.max_stanza_bytes + 1024;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    actix_web::rt::spawn(pump(bridge, ws, stream));
    Ok(response)
}

/// Moves frames between the socket and the bridge until either side ends.
async fn pump(
    bridge: Arc<Bridge>,
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let close_in = |bridge: &Bridge| {
        let mut inb = bridge.inbound.lock();
        inb.closed = true;
        if let Some(w) = inb.session.take() {
            w.wake();
        }
    };
    loop {
        // Output first, so that answers go out before more input is read.
        let (frames, closed) = {
            let mut out = bridge.outbound.lock();
            let frames: Vec<String> = out.frames.drain(..).collect();
            out.bytes = 0;
            if let Some(w) = out.session.take() {
                w.wake();
            }
            (frames, out.closed)
        };
        for frame in frames {
            if ws.text(frame).await.is_err() {
                close_in(&bridge);
                return;
            }
        }
        if closed {
            let _ = ws
                .close(Some(CloseReason {
                    code: CloseCode::Normal,
                    description: None,
                }))
                .await;
            close_in(&bridge);
            return;
        }
        let room = {
            let inb = bridge.inbound.lock();
            inb.frames.len() < MAX_INBOUND_FRAMES
        };
        let notified = bridge.pump.notified();
        if !room {
            notified.await;
            continue;
        }
        tokio::select! {
            _ = notified => {}
            msg = stream.next() => match msg {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    let mut inb = bridge.inbound.lock();
                    inb.frames.push_back(text.as_bytes().to_vec());
                    if let Some(w) = inb.session.take() {
                        w.wake();
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    let _ = ws.pong(&bytes).await;
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    // RFC 7395 §3.2: XMPP goes in text frames only.
                    debug!("binary WebSocket frame: closing");
                    let _ = ws
                        .close(Some(CloseReason {
                            code: CloseCode::Unsupported,
                            description: Some("XMPP over WebSocket uses text frames".into()),
                        }))
                        .await;
                    close_in(&bridge);
                    return;
                }
                Some(Ok(AggregatedMessage::Close(_))) | None => {
                    close_in(&bridge);
                    return;
                }
                Some(Err(e)) => {
                    debug!(error = %e, "WebSocket protocol error: closing");
                    let _ = ws
                        .close(Some(CloseReason {
                            code: CloseCode::Size,
                            description: Some(e.to_string()),
                        }))
                        .await;
                    close_in(&bridge);
                    return;
                }
            }
        }
    }
}
