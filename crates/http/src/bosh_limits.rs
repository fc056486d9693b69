//! The bounds of the BOSH endpoint (`[http] bosh_*`): what one client, one session and all
//! of them together may make the server hold.
//!
//! - a request body is read chunk by chunk against a cap (`bosh_max_body_bytes`, else
//!   HTTP 413) and against a node-wide budget of bytes held for BOSH input
//!   (`bosh_pending_bytes`, else HTTP 503 with `Retry-After`): bodies being read, bodies
//!   waiting their RID's turn and input the session actors have not read yet;
//! - per session, the bytes awaiting processing (`bosh_session_pending_bytes`) and the
//!   requests open at once (`hold`+1) are bounded in `bosh.rs`, with the terminal binding
//!   condition `policy-violation` (XEP-0124 §11);
//! - session creation is bounded per client IP by a token bucket
//!   (`bosh_sessions_per_ip_burst`, `bosh_sessions_per_ip_per_minute`; an IPv6 client counts
//!   by its /64, which one host usually has whole) and in total (`bosh_max_sessions`);
//! - bodies larger than [`INLINE_PARSE_BYTES`] are parsed on the blocking pool, at most
//!   `bosh_parse_threads` at once, so that one client's large bodies never stall the HTTP
//!   worker that every other BOSH and WebSocket client shares.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parley_xml::{Element, Limits};
use tokio::sync::Semaphore;

/// Bodies up to this size are parsed inline on the HTTP worker: parse cost is linear in the
/// size, and this is a sixteenth of the largest body, a few ordinary stanzas, where a hop to
/// the blocking pool would cost more than it saves. Larger ones go to the pool.
pub const INLINE_PARSE_BYTES: usize = 16 * 1024;

/// The configured bounds (`[http] bosh_*`, see `config/parley.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshLimits {
    /// Largest request body, bytes (`bosh_max_body_bytes`).
    pub max_body_bytes: usize,
    /// Bytes of BOSH input held node-wide (`bosh_pending_bytes`).
    pub pending_bytes: usize,
    /// Bytes awaiting processing per session (`bosh_session_pending_bytes`).
    pub session_pending_bytes: usize,
    /// BOSH sessions on this node (`bosh_max_sessions`).
    pub max_sessions: usize,
    /// Session creations one IP may make at once (`bosh_sessions_per_ip_burst`).
    pub sessions_per_ip_burst: u32,
    /// Session creations one IP regains per minute (`bosh_sessions_per_ip_per_minute`).
    pub sessions_per_ip_per_minute: u32,
    /// Large bodies parsed at once (`bosh_parse_threads`).
    pub parse_threads: usize,
}

impl Default for BoshLimits {
    fn default() -> Self {
        BoshLimits {
            max_body_bytes: 256 * 1024 + 8 * 1024,
            pending_bytes: 16 * 1024 * 1024,
            session_pending_bytes: 1024 * 1024,
            max_sessions: 20_000,
            sessions_per_ip_burst: 20,
            sessions_per_ip_per_minute: 60,
            parse_threads: 2,
        }
    }
}

/// A node-wide count of bytes held, with a ceiling.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicUsize,
    max: usize,
}

/// Bytes counted in a [`ByteBudget`] for as long as this lives.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl ByteBudget {
    pub(crate) fn new(max: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// An empty reservation, to grow.
    pub(crate) fn empty(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes whatever the ceiling, for bytes admitted under a reservation that
    /// is released at the same moment (a body handed on to its session as input).
    pub(crate) fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    /// Stops counting `n` bytes given to [`Self::add`].
    pub(crate) fn sub(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

impl Reservation {
    /// Bytes it counts.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `n` bytes whatever the ceiling: bytes another bound admitted already (a
    /// body forwarded by the node that read it).
    pub(crate) fn add_admitted(&mut self, n: usize) {
        self.budget.add(n);
        self.bytes += n;
    }

    /// Adds `n` bytes if the budget has room.
    fn try_grow(&mut self, n: usize) -> bool {
        let b = &self.budget;
        let mut now = b.used.load(Ordering::Relaxed);
        loop {
            if now + n > b.max {
                return false;
            }
            match b
                .used
                .compare_exchange_weak(now, now + n, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.bytes += n;
                    return true;
                }
                Err(actual) => now = actual,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Why a body was not read; each is an HTTP answer, since no session is known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRefusal {
    /// Over `bosh_max_body_bytes`: 413.
    TooLarge,
    /// The node-wide budget is spent: 503, try again shortly.
    Busy,
    /// The client stopped sending mid-body.
    Broken,
}

impl BodyRefusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            BodyRefusal::TooLarge => "bosh_body_bytes",
            BodyRefusal::Busy => "bosh_pending_bytes",
            BodyRefusal::Broken => "bosh_body_broken",
        }
    }

    pub(crate) fn response(self) -> HttpResponse {
        match self {
            BodyRefusal::TooLarge => HttpResponse::PayloadTooLarge()
                .content_type("text/plain")
                .body("the BOSH body is larger than [http] bosh_max_body_bytes\n"),
            BodyRefusal::Busy => HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .content_type("text/plain")
                .body("too much BOSH input is pending; retry\n"),
            BodyRefusal::Broken => HttpResponse::BadRequest()
                .content_type("text/plain")
                .body("incomplete body\n"),
        }
    }
}

/// Reads a request body within `max` bytes and the budget.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
    budget: &Arc<ByteBudget>,
) -> Result<(web::Bytes, Reservation), BodyRefusal> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyRefusal::TooLarge);
    }
    let mut held = budget.empty();
    // Sized once from Content-Length (already checked against `max`): no doubling copies.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyRefusal::Broken)?;
        if body.len() + chunk.len() > max {
            return Err(BodyRefusal::TooLarge);
        }
        if !held.try_grow(chunk.len()) {
            return Err(BodyRefusal::Busy);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), held))
}

/// Parses a body: inline when small, else on the blocking pool with at most `parsers`
/// at once (the body's bytes stay counted in the budget while they wait).
/// The parse itself is [`crate::bosh::parse_body`], the function the fuzz target drives.
pub(crate) async fn parse(
    body: web::Bytes,
    limits: Limits,
    parsers: &Semaphore,
) -> Option<Element> {
    if body.len() <= INLINE_PARSE_BYTES {
        return crate::bosh::parse_body(&body, &limits);
    }
    let Ok(_permit) = parsers.acquire().await else {
        return crate::bosh::parse_body(&body, &limits);
    };
    // The blocking pool gone (shutting down) counts as an unparsable body.
    web::block(move || crate::bosh::parse_body(&body, &limits))
        .await
        .ok()
        .flatten()
}

/// One IP's session-creation bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-IP token buckets for session creation; the table is bounded (see [`Self::allow`]).
#[derive(Debug)]
pub(crate) struct CreationRate {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    burst: f64,
    per_second: f64,
    capacity: usize,
}

/// Why a creation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateRefusal {
    /// The IP's bucket is empty.
    Rate,
    /// So many IPs are being rate-limited that the table is full.
    TableFull,
}

impl CreationRate {
    pub(crate) fn new(limits: &BoshLimits) -> CreationRate {
        CreationRate {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(limits.sessions_per_ip_burst),
            per_second: f64::from(limits.sessions_per_ip_per_minute) / 60.0,
            // Every IP tracked has created a session within a refill period, so four per
            // allowed session is room for real clients; a spray of addresses past that is
            // refused rather than grown without end.
            capacity: limits.max_sessions.saturating_mul(4).max(1024),
        }
    }

    /// Takes one token from `ip`'s bucket.
    pub(crate) fn allow(&self, ip: IpAddr, now: Instant) -> Result<(), RateRefusal> {
        let key = ip_key(ip);
        let mut map = self.buckets.lock();
        if !map.contains_key(&key) && map.len() >= self.capacity {
            self.prune(&mut map, now);
            if map.len() >= self.capacity {
                return Err(RateRefusal::TableFull);
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(RateRefusal::Rate)
        }
    }

    /// Forgets buckets that have refilled (they would start full anyway).
    pub(crate) fn sweep(&self, now: Instant) {
        let mut map = self.buckets.lock();
        self.prune(&mut map, now);
    }

    fn prune(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        map.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * self.per_second < self.burst
        });
    }
}

/// The key an address is limited under: IPv4 as it is, IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_session_creation_flood_from_one_ip_is_cut_at_the_burst_and_refills_at_the_rate() {
        let r = CreationRate::new(&BoshLimits {
            sessions_per_ip_burst: 3,
            sessions_per_ip_per_minute: 60,
            ..BoshLimits::default()
        });
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.allow(ip, t0), Ok(()));
        }
        assert_eq!(r.allow(ip, t0), Err(RateRefusal::Rate));
        // Another IP has its own bucket; one from the same IPv6 /64 does not.
        assert_eq!(r.allow("198.51.100.2".parse().unwrap(), t0), Ok(()));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(r.allow(a, t0), Ok(()));
        }
        assert_eq!(r.allow(b, t0), Err(RateRefusal::Rate));
        // One a second comes back.
        assert_eq!(r.allow(ip, t0 + Duration::from_millis(1100)), Ok(()));
        assert_eq!(
            r.allow(ip, t0 + Duration::from_millis(1200)),
            Err(RateRefusal::Rate)
        );
        // Refilled buckets are forgotten.
        r.sweep(t0 + Duration::from_secs(10));
        assert!(r.buckets.lock().is_empty());
    }

    #[test]
    fn a_spray_of_addresses_cannot_grow_the_rate_table_without_bound() {
        let r = CreationRate::new(&BoshLimits {
            max_sessions: 10,
            ..BoshLimits::default()
        });
        let t0 = Instant::now();
        for i in 0..1024u32 {
            assert_eq!(r.allow(IpAddr::from(i.to_be_bytes()), t0), Ok(()));
        }
        assert_eq!(
            r.allow("203.0.113.1".parse().unwrap(), t0),
            Err(RateRefusal::TableFull)
        );
        assert_eq!(r.buckets.lock().len(), 1024);
    }

    #[test]
    fn the_byte_budget_refuses_past_its_ceiling_and_frees_on_drop() {
        let b = ByteBudget::new(100);
        let mut r = b.empty();
        assert!(r.try_grow(60));
        let mut s = b.empty();
        assert!(!s.try_grow(50));
        assert!(s.try_grow(40));
        drop(r);
        assert_eq!(b.used(), 40);
        drop(s);
        assert_eq!(b.used(), 0);
    }
}
