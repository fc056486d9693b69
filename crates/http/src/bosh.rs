//! XMPP over BOSH (XEP-0124, XEP-0206) at `/http-bind`: the same session actors as TCP
//! and WebSocket, behind a table of BOSH sessions.
//!
//! A BOSH session is the `Channel` of a framed connection for its session actor. Requests carry the
//! client's elements in; the actor's output waits in the BOSH session until a held request
//! takes it. What the XEPs require of the server and how it is met:
//!
//! - SIDs are 128 random bits;
//! - the RID window is `requests` wide: a repeated RID within it gets the cached response
//!   again (XEP-0124 §14.3), a RID above the window or below the cache ends the session with
//!   `item-not-found` — the same answer for too high and too low (§14.2); RIDs inside the
//!   window are processed in order;
//! - at most `hold` requests wait for data; a held request is answered empty after `wait`
//!   seconds, or at once when a newer request would exceed `hold`; output always goes to the
//!   oldest request waiting, so responses come back in RID order (Strophe.js, seeing a newer
//!   request answered first, abandons and resends the older one);
//! - a request whose HTTP connection went away before its answer (the client gave up on
//!   it) leaves nothing behind: its repeat is answered as the original would have been;
//! - a session without requests for `inactivity` seconds is ended (its actor sees the
//!   connection lost: status abandoned);
//! - `xmpp:restart='true'` restarts the stream after SASL (XEP-0206 §5), answered with the
//!   new stream features;
//! - `type='terminate'` closes the stream;
//! - at most `hold`+1 requests are open per session and the bodies awaiting processing
//!   (waiting their turn, or input the actor has not read) are bounded in bytes; past either
//!   the session ends with `policy-violation` (XEP-0124 §11). Body size, node-wide bytes,
//!   session creation per IP and in total are bounded in [`crate::bosh_limits`].

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use parley_proto::ns;
use parley_session::limits::{ConnPermit, Refusal};
use parley_session::{Session, Unit};
use parley_xml::Element;
use tokio::io::ReadBuf;
use tokio::sync::Notify;

use crate::bosh_limits::{ByteBudget, RateRefusal, Reservation};
use crate::framed::{Channel, FramedConnection};
use crate::web_state::WebState;

mod open;
mod prebind;
mod table;

use open::{body_limits, refused, Open};
pub use prebind::prebind;
pub use table::BoshTable;
use table::InFlight;

/// XEP-0124's namespace.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206's namespace.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// Longest `wait` granted, seconds.
const MAX_WAIT: u64 = 60;
/// Requests the client may have open at once (the RID window).
const REQUESTS: u64 = 2;
/// Requests held waiting for data.
const HOLD: u64 = 1;
/// Seconds without any request before the session is ended.
pub const INACTIVITY: u64 = 60;
/// Bytes of output queued for the client, at most (the actor's writes wait past it).
const MAX_OUTBOUND_BYTES: usize = 1 << 20;

/// How the session's stream ended, as the actor told it (never read from its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A close without an error (or the client is gone).
    Closed,
    /// A stream error: the terminate body says `remote-stream-error` (XEP-0206 §6).
    StreamError,
}

#[derive(Default)]
struct Inner {
    /// The next RID to process.
    next_rid: u64,
    /// The last responses, by RID, for repeated requests.
    cache: VecDeque<(u64, String)>,
    /// Elements from the actor not yet sent.
    out: VecDeque<String>,
    out_bytes: usize,
    /// How the actor ended its stream, once it has: the session ends after it is sent.
    end: Option<End>,
    /// Input for the actor.
    inbound: VecDeque<Vec<u8>>,
    /// Bytes in `inbound` not read yet (counted in the node-wide budget too).
    in_bytes: usize,
    /// Bytes awaiting processing: `in_bytes` plus bodies waiting for their RID's turn.
    pending: usize,
    /// Requests open now (bounded by `hold`+1).
    open: usize,
    in_offset: usize,
    in_closed: bool,
    actor_read: Option<Waker>,
    actor_write: Option<Waker>,
    /// Requests currently waiting for output: their RIDs, oldest first.
    held: BTreeMap<u64, ()>,
    /// RIDs taken and not yet answered (feeding their elements, or waiting).
    answering: std::collections::HashSet<u64>,
    last_request: Option<Instant>,
    wait: u64,
    gone: bool,
}

/// One BOSH session.
struct BoshSession {
    sid: String,
    host: String,
    inner: Mutex<Inner>,
    notify: Notify,
    /// The node-wide budget that unread input counts in.
    budget: Arc<ByteBudget>,
}

impl Drop for BoshSession {
    fn drop(&mut self) {
        let unread = self.inner.get_mut().in_bytes;
        self.budget.sub(unread);
    }
}

impl BoshSession {
    fn feed(&self, data: Vec<u8>) {
        let mut i = self.inner.lock();
        self.budget.add(data.len());
        i.in_bytes += data.len();
        i.pending += data.len();
        i.inbound.push_back(data);
        if let Some(w) = i.actor_read.take() {
            w.wake();
        }
    }

    fn feed_open(&self) {
        let open = format!(
            "<open xmlns='{}' to='{}' version='1.0'/>",
            ns::FRAMING,
            self.host
        );
        self.feed(open.into_bytes());
    }

    fn end_input(&self) {
        let mut i = self.inner.lock();
        i.in_closed = true;
        i.gone = true;
        if let Some(w) = i.actor_read.take() {
            w.wake();
        }
        drop(i);
        self.notify.notify_waiters();
    }
}

impl Channel for BoshSession {
    fn transport(&self) -> &'static str {
        "bosh"
    }

    /// XEP-0206 sessions recover by RID (XEP-0124 §14), not by Stream Management.
    fn stream_management(&self) -> bool {
        false
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut i = self.inner.lock();
        let Some(front) = i.inbound.front() else {
            if i.in_closed {
                return Poll::Ready(Ok(()));
            }
            i.actor_read = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let len = front.len();
        let rest = &front[i.in_offset..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        i.in_offset += n;
        i.in_bytes -= n;
        i.pending -= n;
        self.budget.sub(n);
        if i.in_offset == len {
            i.inbound.pop_front();
            i.in_offset = 0;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(&self, cx: &mut Context<'_>, unit: Unit, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut i = self.inner.lock();
        if i.gone {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the BOSH session is gone",
            )));
        }
        if i.out_bytes + data.len() > MAX_OUTBOUND_BYTES && !i.out.is_empty() {
            i.actor_write = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match unit {
            // The stream header: BOSH answers with body attributes instead (XEP-0206 §4).
            Unit::Header => {}
            // XEP-0124 §13: the end is the terminate body, not an element in it.
            Unit::Close => {
                i.end.get_or_insert(End::Closed);
            }
            Unit::StreamError(_) | Unit::Element => {
                // A stream error's end is set with the element itself, so that no answer
                // can carry the error without the terminate around it.
                if let Unit::StreamError(_) = unit {
                    i.end = Some(End::StreamError);
                }
                let text = String::from_utf8_lossy(data).into_owned();
                i.out_bytes += text.len();
                i.out.push_back(text);
            }
        }
        drop(i);
        self.notify.notify_waiters();
        Poll::Ready(Ok(data.len()))
    }

    fn shutdown(&self) {
        self.inner.lock().end.get_or_insert(End::Closed);
        self.notify.notify_waiters();
    }
}

fn terminate(condition: &str) -> String {
    format!("<body xmlns='{NS_HTTPBIND}' type='terminate' condition='{condition}'/>")
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// A request's `<body/>` (XEP-0124 §7), or None for anything else (§17.1 bad-request).
/// Pure and public for the fuzz target `fuzz/fuzz_targets/bosh_body.rs`.
#[doc(hidden)]
pub fn parse_body(bytes: &[u8], limits: &parley_xml::Limits) -> Option<Element> {
    Element::parse(bytes, limits)
        .ok()
        .filter(|el| el.is("body", NS_HTTPBIND))
}

/// `POST /http-bind`.
pub async fn http_bind(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    let _counted = InFlight::new(&state.bosh.in_flight);
    let bosh = &state.bosh;
    let read =
        crate::bosh_limits::read_body(&req, payload, bosh.limits.max_body_bytes, &bosh.budget);
    let (body, held) = match read.await {
        Ok(read) => read,
        Err(refusal) => {
            refused(refusal.reason(), state.client_addr(&req).map(|a| a.ip()));
            return crate::origin::cors_response(&req, &state, refusal.response());
        }
    };
    let parsed = crate::bosh_limits::parse(body.clone(), body_limits(&state), &bosh.parsers).await;
    let resp = match parsed {
        Some(el) => {
            let remote = el.attr("sid").and_then(|sid| state.bosh.remote_owner(sid));
            match remote {
                // Another node's session: its node answers (non-sticky balancing).
                Some((node, owner)) => {
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    node.forward_bosh(&owner, raw, Duration::from_secs(MAX_WAIT + 10))
                        .await
                        .unwrap_or_else(|| terminate("item-not-found"))
                }
                None => {
                    // The parsed tree is what goes on; the raw bytes need not wait with it.
                    drop(body);
                    // XEP-0124 §7: a body without a SID creates a session, if the client's
                    // address and the node have room for one more connection.
                    let permit = match el.attr("sid") {
                        Some(_) => None,
                        None => match crate::admit::admit(
                            &state,
                            "bosh",
                            state.client_addr(&req),
                            |r| (terminate(bosh_condition(r)), "text/xml; charset=utf-8"),
                        ) {
                            Ok(permit) => Some(permit),
                            Err(refused) => {
                                return crate::origin::cors_response(&req, &state, *refused)
                            }
                        },
                    };
                    handle(&req, el, held, &state, permit).await
                }
            }
        }
        // XEP-0124 §17.1: not a body: bad-request.
        _ => terminate("bad-request"),
    };
    crate::origin::cors_response(&req, &state, xml(resp))
}

/// A request another node forwarded for one of this node's sessions.
pub async fn forwarded(state: &WebState, body: String) -> String {
    // The forwarding node read it within its own bounds; here it counts like any body.
    let mut held = state.bosh.budget.empty();
    held.add_admitted(body.len());
    let parsed = crate::bosh_limits::parse(
        web::Bytes::from(body),
        body_limits(state),
        &state.bosh.parsers,
    );
    let Some(el) = parsed.await else {
        return terminate("bad-request");
    };
    let (Some(sid), Some(rid)) = (
        el.attr("sid").map(str::to_owned),
        el.attr("rid").and_then(|r| r.parse::<u64>().ok()),
    ) else {
        return terminate("bad-request");
    };
    match state.bosh.get(&sid) {
        None => terminate("item-not-found"),
        Some(session) => request(session, el, rid, held, None, state).await,
    }
}

async fn handle(
    req: &HttpRequest,
    body: Element,
    held: Reservation,
    state: &WebState,
    permit: Option<ConnPermit>,
) -> String {
    let Some(rid) = body.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate("bad-request");
    };
    match (body.attr("sid"), permit) {
        (None, Some(permit)) => create(req, body, rid, state, permit).await,
        // Admission is checked before a session is created; no permit, no session.
        (None, None) => terminate("internal-server-error"),
        (Some(sid), _) => match state.bosh.get(sid) {
            // XEP-0124 §17.2: unknown SID.
            None => terminate("item-not-found"),
            Some(session) => {
                let client = state.client_addr(req).map(|a| a.ip());
                request(session, body, rid, held, client, state).await
            }
        },
    }
}

/// XEP-0124 §17.2 has no condition for "too many": `policy-violation` for the client's own
/// excess, `undefined-condition` when the node is full (the HTTP status says which);
/// `system-shutdown` (§17.2) when the node is draining.
fn bosh_condition(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::PerIp | Refusal::Rate => "policy-violation",
        Refusal::Full => "undefined-condition",
        Refusal::Draining => "system-shutdown",
    }
}

async fn create(
    req: &HttpRequest,
    body: Element,
    rid: u64,
    state: &WebState,
    permit: ConnPermit,
) -> String {
    let client = state.client_addr(req);
    if let Some(ip) = client.map(|c| c.ip()) {
        match state.bosh.rate.allow(ip, Instant::now()) {
            Ok(()) => {}
            Err(RateRefusal::Rate) => {
                refused("bosh_session_rate", Some(ip));
                return terminate("policy-violation");
            }
            Err(RateRefusal::TableFull) => {
                refused("bosh_session_rate_table", Some(ip));
                return terminate("policy-violation");
            }
        }
    }
    let to = body.attr("to").unwrap_or_default().to_ascii_lowercase();
    if !state.env.router.serves(&to) {
        return terminate("host-unknown");
    }
    let wait = body
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(MAX_WAIT)
        .clamp(1, MAX_WAIT);
    let Some((sid, session)) = state.bosh.open(&to, rid + 1, wait) else {
        refused("bosh_max_sessions", client.map(|c| c.ip()));
        return terminate("policy-violation");
    };
    let conn = FramedConnection::new(session.clone(), client, state.secure_request(req));
    let env = state.env.clone();
    state.next_worker().spawn_fn(move || {
        use actix::Actor;
        Session::new(env, Box::new(conn))
            .with_permit(permit)
            .start();
    });
    session.feed_open();
    let payload = collect(&session, rid, Duration::from_secs(wait)).await;
    let attrs = format!(
        "sid='{sid}' wait='{wait}' requests='{REQUESTS}' hold='{HOLD}' inactivity='{INACTIVITY}' \
         polling='2' ver='1.11' from='{to}' xmlns:xmpp='{NS_XBOSH}' xmpp:version='1.0' \
         xmpp:restartlogic='true'"
    );
    let resp = wrap(&attrs, &payload.0, payload.1);
    cache(&session, rid, &resp);
    resp
}

/// The answer's `<body>` around the elements.
fn wrap(attrs: &str, elements: &[String], end: Option<End>) -> String {
    let mut out = format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:stream='{}' {attrs}",
        ns::STREAM
    );
    if let Some(end) = end {
        out.push_str(" type='terminate'");
        if end == End::StreamError {
            // XEP-0206 §6.
            out.push_str(" condition='remote-stream-error'");
        }
    }
    if elements.is_empty() {
        out.push_str("/>");
        return out;
    }
    out.push('>');
    for e in elements {
        out.push_str(e);
    }
    out.push_str("</body>");
    out
}

fn cache(session: &BoshSession, rid: u64, resp: &str) {
    let mut i = session.inner.lock();
    i.cache.push_back((rid, resp.to_owned()));
    while i.cache.len() as u64 > REQUESTS {
        i.cache.pop_front();
    }
    drop(i);
    // A repeat of this request may be waiting for the answer.
    session.notify.notify_waiters();
}

/// A request waiting in [`collect`]; leaves the waiting set however the wait ends, also
/// when the HTTP request is dropped mid-wait (the client closed its connection).
struct Waiting<'a> {
    session: &'a BoshSession,
    rid: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.session.inner.lock().held.remove(&self.rid);
        // The next oldest may now take what is waiting.
        self.session.notify.notify_waiters();
    }
}

/// Waits for output (or `wait`, or a newer request past `hold`); returns the elements and
/// how the stream ended, if it did. Only the oldest waiting request takes output; older ones past
/// `hold` step aside at once with what there is.
async fn collect(session: &BoshSession, rid: u64, wait: Duration) -> (Vec<String>, Option<End>) {
    let deadline = tokio::time::Instant::now() + wait;
    session.inner.lock().held.insert(rid, ());
    let _waiting = Waiting { session, rid };
    // An older request held past `hold` must answer now.
    session.notify.notify_waiters();
    loop {
        let notified = session.notify.notified();
        {
            let mut i = session.inner.lock();
            let oldest = i.held.keys().next() == Some(&rid);
            let step_aside = oldest && i.held.len() as u64 > HOLD;
            let end = i.end.or(i.gone.then_some(End::Closed));
            let ready = !i.out.is_empty() || end.is_some();
            if oldest && (ready || step_aside) {
                let elements: Vec<String> = i.out.drain(..).collect();
                i.out_bytes = 0;
                if let Some(w) = i.actor_write.take() {
                    w.wake();
                }
                return (elements, end);
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return (Vec::new(), None);
        }
    }
}

async fn request(
    session: Arc<BoshSession>,
    body: Element,
    rid: u64,
    held: Reservation,
    client: Option<std::net::IpAddr>,
    state: &WebState,
) -> String {
    let mut open = match Open::enter(&session, held, &state.bosh.limits) {
        Ok(open) => open,
        Err(reason) => {
            refused(reason, client);
            state.bosh.remove(&session.sid);
            return terminate("policy-violation");
        }
    };
    // The RID window (XEP-0124 §14).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(MAX_WAIT);
    loop {
        let notified = session.notify.notified();
        let take_over = {
            let mut i = session.inner.lock();
            if rid < i.next_rid {
                if let Some((_, resp)) = i.cache.iter().find(|(r, _)| *r == rid) {
                    // §14.3: a repeated request gets the same answer.
                    return resp.clone();
                }
                if rid + REQUESTS < i.next_rid || i.gone {
                    drop(i);
                    state.bosh.remove(&session.sid);
                    return terminate("item-not-found");
                }
                // The original was dropped before it had an answer (its connection
                // closed): this repeat takes its place. Otherwise the original is still
                // being answered, and the repeat gets that answer once it is ready.
                let abandoned = !i.held.contains_key(&rid) && !i.answering.contains(&rid);
                if abandoned {
                    i.answering.insert(rid);
                    i.last_request = Some(Instant::now());
                }
                abandoned
            } else {
                if i.gone {
                    // Ended while this request waited its turn (terminated, or refused).
                    return terminate("item-not-found");
                }
                if rid >= i.next_rid + REQUESTS {
                    drop(i);
                    state.bosh.remove(&session.sid);
                    return terminate("item-not-found");
                }
                if rid == i.next_rid {
                    i.next_rid += 1;
                    i.answering.insert(rid);
                    i.last_request = Some(Instant::now());
                    break;
                }
                false
            }
        };
        if take_over {
            return answer(Arc::clone(&session), rid, state).await;
        }
        // Inside the window but early (its turn comes after the one before it), or a repeat
        // waiting for the original's answer.
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return terminate("item-not-found");
        }
    }
    session.notify.notify_waiters();
    open.fed();
    if body.attr("type") == Some("terminate") {
        for child in body.children() {
            session.feed(child.to_string().into_bytes());
        }
        session.feed(format!("<close xmlns='{}'/>", ns::FRAMING).into_bytes());
        let resp = terminate_ok();
        state.bosh.remove(&session.sid);
        return resp;
    }
    // XEP-0206 §5: xmpp:restart (any prefix bound to urn:xmpp:xbosh; clients use xmpp:).
    let restart = body
        .attrs()
        .any(|(k, v)| k.ends_with(":restart") && v == "true");
    if restart {
        session.feed_open();
    }
    for child in body.children() {
        session.feed(child.to_string().into_bytes());
    }
    // Nothing of the body stays while the request is held.
    drop(body);
    answer(session, rid, state).await
}

/// Waits for the answer to request `rid`, caches it and returns it.
async fn answer(session: Arc<BoshSession>, rid: u64, state: &WebState) -> String {
    /// Marks `rid` answered (or abandoned, if the wait is dropped) when it goes.
    struct Answering<'a>(&'a BoshSession, u64);
    impl Drop for Answering<'_> {
        fn drop(&mut self) {
            self.0.inner.lock().answering.remove(&self.1);
        }
    }
    let _answering = Answering(&session, rid);
    let wait = Duration::from_secs(session.inner.lock().wait);
    let (elements, end) = collect(&session, rid, wait).await;
    let resp = wrap("", &elements, end);
    cache(&session, rid, &resp);
    if end.is_some() {
        state.bosh.remove(&session.sid);
    }
    resp
}

fn terminate_ok() -> String {
    format!("<body xmlns='{NS_HTTPBIND}' type='terminate'/>")
}
