//! Connection limits, in the style of Prosody's mod_limits and ejabberd's shapers: how many
//! connections one address may hold, how fast it may open new ones, how many sessions the
//! node holds in all, and how fast one session may send.
//!
//! One [`ConnLimiter`] per node is shared by every transport (c2s TCP and direct TLS,
//! WebSocket, BOSH): a transport asks it for a [`ConnPermit`] before it starts a session, and
//! the session holds the permit until it ends, so the counts can never drift from the sessions
//! that exist. Refusals are counted with [`parley_router::metrics::refuse`].
//!
//! The limiter is also where a draining node stops taking clients: once
//! [`ConnLimiter::start_draining`] is called every new connection is refused
//! ([`Refusal::Draining`]) on every transport at once, with the address clients should go to
//! instead when one is configured.
//!
//! Addresses are grouped as an attacker controls them: an IPv4 address is one key, an IPv6
//! address counts with its whole /64 (one host is routinely given a /64, so per-address limits
//! would mean nothing there), and an IPv4-mapped IPv6 address is its IPv4 address.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parley_proto::stream_error::StreamCondition;

/// The connection limits of a node (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections (c2s, WebSocket, BOSH sessions) one address may hold at once.
    pub max_per_ip: usize,
    /// New connections one address may open per second, on average.
    pub rate_per_ip: u32,
    /// New connections one address may open at once, after a quiet period.
    pub burst_per_ip: u32,
    /// Sessions the node holds in all.
    pub max_sessions: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_per_ip: 100,
            rate_per_ip: 20,
            burst_per_ip: 40,
            max_sessions: 100_000,
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds `max_per_ip` connections.
    PerIp,
    /// The address opens connections faster than `rate_per_ip` (with `burst_per_ip`).
    Rate,
    /// The node holds `max_sessions` sessions.
    Full,
    /// The node is draining (shutting down or restarting): it takes no new clients.
    Draining,
}

impl Refusal {
    /// The reason under which the refusal is counted (`parley_refusals_total{reason=…}`).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PerIp => "conn_per_ip",
            Refusal::Rate => "conn_rate_per_ip",
            Refusal::Full => "sessions_total",
            Refusal::Draining => "draining",
        }
    }

    /// RFC 6120 §4.9.3: `<policy-violation/>` (§4.9.3.14) when the client's own behaviour
    /// broke a local policy (too many connections, too fast); `<resource-constraint/>`
    /// (§4.9.3.17) when the server is full, which is no fault of this client;
    /// `<system-shutdown/>` (§4.9.3.21) when the node is draining and no other address is
    /// known (with one, [`refusal_stream`] sends `<see-other-host/>` instead).
    pub fn condition(self) -> StreamCondition {
        match self {
            Refusal::PerIp | Refusal::Rate => StreamCondition::PolicyViolation,
            Refusal::Full => StreamCondition::ResourceConstraint,
            Refusal::Draining => StreamCondition::SystemShutdown,
        }
    }

    /// The human-readable text sent with the refusal.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::PerIp => "too many connections from your address",
            Refusal::Rate => "too many new connections from your address; slow down",
            Refusal::Full => "the server has no room for more sessions; try again later",
            Refusal::Draining => "this node is shutting down; connect again",
        }
    }
}

/// A whole stream that says why a byte-stream connection (c2s TCP) is refused: our stream
/// header, the stream error and the closing tag. RFC 6120 §4.9.1.2: an error before the
/// client's header still comes inside a stream of ours. Written once, without waiting for
/// the client, so a refusal costs no session.
///
/// A draining node with a `redirect` (`host[:port]`, usually the load balancer) answers
/// `<see-other-host/>` (RFC 6120 §4.9.3.19, which allows it right after our header) so that
/// the client reconnects there at once.
///
/// `content_ns` is the namespace of the listener's streams: `jabber:client`, or on a
/// component port `jabber:component:accept` (XEP-0114), so that a component reads the
/// refusal as a stream of its own kind.
pub fn refusal_stream(
    host: &str,
    refusal: Refusal,
    redirect: Option<&str>,
    content_ns: &str,
) -> Vec<u8> {
    use parley_proto::ns;
    use parley_proto::stream_error::StreamError;
    let id: [u8; 16] = rand::random();
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{id}' from='{}' version='1.0' xml:lang='en'><stream:error>",
        content_ns,
        ns::STREAM,
        parley_xml::escape::attr(host),
    )
    .into_bytes();
    match redirect.filter(|_| refusal == Refusal::Draining) {
        Some(to) => {
            let see_other =
                parley_xml::Element::new(StreamCondition::SeeOtherHost.as_str(), ns::STREAM_ERRORS)
                    .with_text(to);
            see_other.write_to(&mut out, Some(content_ns));
        }
        None => {
            let err = StreamError::with_text(refusal.condition(), refusal.text()).to_element();
            for child in err.children() {
                child.write_to(&mut out, Some(content_ns));
            }
        }
    }
    out.extend_from_slice(b"</stream:error></stream:stream>");
    out
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up. Time is passed in, so
/// that it can be tested without a clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            rate,
            burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.max(0.0) as u64
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens (they were used already).
    pub fn take(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// How long until `n` tokens (at most `burst`) are available.
    pub fn time_until(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        let missing = n.min(self.burst) - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate)
        }
    }

    /// Whether the bucket is full again by `now` (so forgetting it loses nothing).
    fn full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// What the limiter knows of one address.
#[derive(Debug)]
struct IpEntry {
    open: usize,
    bucket: TokenBucket,
}

/// The node's connection limiter, shared by every transport.
#[derive(Debug)]
pub struct ConnLimiter {
    /// Replaced on SIGHUP ([`ConnLimiter::set_limits`]).
    limits: parking_lot::RwLock<ConnLimits>,
    by_ip: Mutex<ByIp>,
    total: AtomicUsize,
    draining: AtomicBool,
    /// Where refused clients are sent while draining (set once, with the drain).
    redirect: OnceLock<Option<String>>,
}

#[derive(Debug, Default)]
struct ByIp {
    entries: HashMap<IpAddr, IpEntry>,
    /// The table is swept of forgettable entries when it grows past this.
    sweep_at: usize,
}

/// Entries below this many are never swept (sweeping a small table is not worth it).
const SWEEP_MIN: usize = 1024;

impl ConnLimiter {
    /// A limiter with the given limits.
    pub fn new(limits: ConnLimits) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            limits: parking_lot::RwLock::new(limits),
            by_ip: Mutex::new(ByIp {
                entries: HashMap::new(),
                sweep_at: SWEEP_MIN,
            }),
            total: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            redirect: OnceLock::new(),
        })
    }

    /// From now on every new connection is refused with [`Refusal::Draining`]; a c2s
    /// refusal names `redirect` (`host[:port]`) as the place to go, when given. True the
    /// first time, false when the node was draining already (the first redirect stays).
    pub fn start_draining(&self, redirect: Option<String>) -> bool {
        let _ = self.redirect.set(redirect);
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Where refused clients are sent while draining.
    pub fn redirect(&self) -> Option<&str> {
        self.redirect.get().and_then(Option::as_deref)
    }

    /// The limits in force.
    pub fn limits(&self) -> ConnLimits {
        *self.limits.read()
    }

    /// Puts new limits in force (a config reload, SIGHUP). Connections open now stay open
    /// and keep counting against their address; every address's rate starts afresh at the
    /// new burst.
    pub fn set_limits(&self, limits: ConnLimits) {
        self.set_limits_at(limits, Instant::now());
    }

    fn set_limits_at(&self, limits: ConnLimits, now: Instant) {
        let mut table = self.by_ip.lock();
        *self.limits.write() = limits;
        for entry in table.entries.values_mut() {
            entry.bucket = TokenBucket::new(
                f64::from(limits.rate_per_ip),
                f64::from(limits.burst_per_ip),
                now,
            );
        }
    }

    /// Sessions currently holding a permit.
    pub fn sessions(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a new connection from `ip` (None: the transport has no address, e.g. a
    /// session the admin API created; only the node-wide cap applies), or says why not.
    /// Refused attempts are not counted here: the caller reports them with
    /// [`parley_router::metrics::refuse`] under [`Refusal::reason`].
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnPermit, Refusal> {
        self.acquire_at(ip, Instant::now())
    }

    fn acquire_at(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<ConnPermit, Refusal> {
        if self.is_draining() {
            return Err(Refusal::Draining);
        }
        let limits = self.limits();
        let reserved = self.total.fetch_add(1, Ordering::Relaxed);
        if reserved >= limits.max_sessions {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Full);
        }
        let Some(ip) = ip else {
            return Ok(ConnPermit {
                limiter: self.clone(),
                key: None,
            });
        };
        let key = ip_key(ip);
        let mut table = self.by_ip.lock();
        if table.entries.len() >= table.sweep_at {
            table
                .entries
                .retain(|_, e| e.open > 0 || !e.bucket.full_at(now));
            table.sweep_at = (table.entries.len() * 2).max(SWEEP_MIN);
        }
        let entry = table.entries.entry(key).or_insert_with(|| IpEntry {
            open: 0,
            bucket: TokenBucket::new(
                f64::from(limits.rate_per_ip),
                f64::from(limits.burst_per_ip),
                now,
            ),
        });
        let verdict = if entry.open >= limits.max_per_ip {
            Err(Refusal::PerIp)
        } else if !entry.bucket.try_take(1.0, now) {
            Err(Refusal::Rate)
        } else {
            entry.open += 1;
            Ok(())
        };
        drop(table);
        match verdict {
            Ok(()) => Ok(ConnPermit {
                limiter: self.clone(),
                key: Some(key),
            }),
            Err(refusal) => {
                self.total.fetch_sub(1, Ordering::Relaxed);
                Err(refusal)
            }
        }
    }

    fn release(&self, key: Option<IpAddr>) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        let Some(key) = key else { return };
        let mut table = self.by_ip.lock();
        if let Some(entry) = table.entries.get_mut(&key) {
            entry.open = entry.open.saturating_sub(1);
            // An entry whose bucket is still refilling stays, or closing and reopening would
            // reset the rate limit; the sweep drops it later.
            if entry.open == 0 && entry.bucket.full_at(Instant::now()) {
                table.entries.remove(&key);
            }
        }
    }
}

/// The key an address is counted under (see the module docs).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// A place among the node's connections, released when dropped (by the session that holds
/// it, when it ends).
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    key: Option<IpAddr>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limiter.release(self.key);
    }
}

/// A session's read rate (`[limits] read_bytes_per_s`, `read_burst_bytes`): ejabberd's
/// shaper. Over it the session stops reading until tokens refill (back-pressure: TCP's own
/// flow control slows the client), it is not disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRate {
    /// Bytes per second, on average.
    pub bytes_per_s: u32,
    /// Bytes that may arrive at once after a quiet period.
    pub burst_bytes: u32,
}

impl Default for ReadRate {
    fn default() -> Self {
        ReadRate {
            bytes_per_s: 64 * 1024,
            burst_bytes: 256 * 1024,
        }
    }
}

/// Times a session stopped reading because it was over its read rate (for `/metrics`:
/// `parley_reads_throttled_total`).
pub static READS_THROTTLED: AtomicU64 = AtomicU64::new(0);

/// A session's read shaper.
#[derive(Debug)]
pub(crate) struct Shaper {
    bucket: TokenBucket,
    /// Tokens worth waking up for: a throttled session waits until this many are back
    /// rather than waking for every few bytes.
    resume_at: f64,
}

/// What the shaper allows now.
pub(crate) enum Allowance {
    /// Read at most this many bytes.
    Bytes(usize),
    /// Read nothing before this long.
    Wait(Duration),
}

impl Shaper {
    pub(crate) fn new(rate: ReadRate) -> Shaper {
        let burst = f64::from(rate.burst_bytes);
        Shaper {
            bucket: TokenBucket::new(f64::from(rate.bytes_per_s), burst, Instant::now()),
            resume_at: (burst / 4.0).clamp(1.0, 16.0 * 1024.0),
        }
    }

    pub(crate) fn allowance(&mut self) -> Allowance {
        let now = Instant::now();
        match self.bucket.available(now) {
            0 => Allowance::Wait(self.bucket.time_until(self.resume_at, now)),
            n => Allowance::Bytes(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    pub(crate) fn consumed(&mut self, n: usize) {
        self.bucket.take(n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_per_ip: usize, rate: u32, burst: u32, max_sessions: usize) -> Arc<ConnLimiter> {
        ConnLimiter::new(ConnLimits {
            max_per_ip,
            rate_per_ip: rate,
            burst_per_ip: burst,
            max_sessions,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn per_ip_limit_is_released_with_the_permit() {
        let l = limiter(2, 1000, 1000, 100);
        let now = Instant::now();
        let a = l.acquire_at(ip("192.0.2.1"), now).unwrap();
        let _b = l.acquire_at(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            l.acquire_at(ip("192.0.2.1"), now).unwrap_err(),
            Refusal::PerIp
        );
        // Another address is not affected.
        let _c = l.acquire_at(ip("192.0.2.2"), now).unwrap();
        drop(a);
        assert!(l.acquire_at(ip("192.0.2.1"), now).is_ok());
    }

    #[test]
    fn new_connections_are_rate_limited_and_refill() {
        let l = limiter(100, 2, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(l.acquire_at(ip("192.0.2.1"), t0).unwrap());
        }
        // Closing and reopening does not reset the bucket.
        assert_eq!(
            l.acquire_at(ip("192.0.2.1"), t0).unwrap_err(),
            Refusal::Rate
        );
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.acquire_at(ip("192.0.2.1"), t1).is_ok());
        assert_eq!(
            l.acquire_at(ip("192.0.2.1"), t1).unwrap_err(),
            Refusal::Rate
        );
    }

    /// A reload (SIGHUP) changes the limits for addresses already seen as for new ones;
    /// what is open stays open and keeps counting.
    #[test]
    fn new_limits_apply_at_once() {
        let l = limiter(1, 1000, 1000, 100);
        let now = Instant::now();
        let a = l.acquire_at(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            l.acquire_at(ip("192.0.2.1"), now).unwrap_err(),
            Refusal::PerIp
        );
        let raised = ConnLimits {
            max_per_ip: 2,
            rate_per_ip: 1,
            burst_per_ip: 1,
            max_sessions: 100,
        };
        l.set_limits_at(raised, now);
        assert_eq!(l.limits(), raised);
        let _b = l.acquire_at(ip("192.0.2.1"), now).unwrap();
        drop(a);
        // The new burst (1) is spent.
        assert_eq!(
            l.acquire_at(ip("192.0.2.1"), now).unwrap_err(),
            Refusal::Rate
        );
        l.set_limits_at(
            ConnLimits {
                max_sessions: 1,
                ..raised
            },
            now,
        );
        assert_eq!(
            l.acquire_at(ip("192.0.2.7"), now).unwrap_err(),
            Refusal::Full
        );
    }

    #[test]
    fn node_wide_cap_counts_every_session() {
        let l = limiter(100, 1000, 1000, 2);
        let now = Instant::now();
        let a = l.acquire_at(ip("192.0.2.1"), now).unwrap();
        let _b = l.acquire_at(None, now).unwrap();
        assert_eq!(
            l.acquire_at(ip("192.0.2.9"), now).unwrap_err(),
            Refusal::Full
        );
        assert_eq!(l.sessions(), 2);
        drop(a);
        assert_eq!(l.sessions(), 1);
        assert!(l.acquire_at(ip("192.0.2.9"), now).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limiter(1, 1000, 1000, 100);
        let now = Instant::now();
        let _a = l.acquire_at(ip("2001:db8:1:2::1"), now).unwrap();
        assert_eq!(
            l.acquire_at(ip("2001:db8:1:2:ffff::9"), now).unwrap_err(),
            Refusal::PerIp
        );
        assert!(l.acquire_at(ip("2001:db8:1:3::1"), now).is_ok());
        let _v4 = l.acquire_at(ip("192.0.2.7"), now).unwrap();
        assert_eq!(
            l.acquire_at(ip("::ffff:192.0.2.7"), now).unwrap_err(),
            Refusal::PerIp
        );
    }

    #[test]
    fn the_table_forgets_quiet_addresses() {
        let l = limiter(10, 1, 1, 100_000);
        let t0 = Instant::now();
        // Enough addresses to reach a sweep; each bucket is empty, so each is remembered.
        for i in 0..4096u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            drop(l.acquire_at(Some(addr), t0).unwrap());
        }
        let later = t0 + Duration::from_secs(1);
        drop(l.acquire_at(ip("192.0.2.1"), later).unwrap());
        let table = l.by_ip.lock();
        assert!(table.entries.len() <= SWEEP_MIN, "{}", table.entries.len());
    }

    #[test]
    fn token_bucket_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 4000.0, t0);
        assert_eq!(b.available(t0), 4000);
        b.take(4000.0);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.time_until(1000.0, t0), Duration::from_secs(1));
        assert_eq!(b.available(t0 + Duration::from_secs(2)), 2000);
        // Never more than the burst.
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 4000);
    }

    #[test]
    fn a_draining_node_refuses_every_new_connection_and_keeps_the_ones_it_has() {
        let l = limiter(10, 1000, 1000, 100);
        let held = l.acquire(ip("192.0.2.1")).unwrap();
        assert!(l.start_draining(Some("lb.example.org:5222".into())));
        assert!(!l.start_draining(None), "a second drain is not a new one");
        assert_eq!(l.redirect(), Some("lb.example.org:5222"));
        assert_eq!(l.acquire(ip("192.0.2.2")).unwrap_err(), Refusal::Draining);
        // Sessions the admin API creates (no address) are refused too.
        assert_eq!(l.acquire(None).unwrap_err(), Refusal::Draining);
        assert_eq!(l.sessions(), 1);
        drop(held);
        assert_eq!(l.sessions(), 0);
    }

    /// RFC 6120 §4.9.3.19: a draining node with somewhere to send clients says so with
    /// `<see-other-host/>`; without, §4.9.3.21 `<system-shutdown/>`.
    #[test]
    fn rfc6120_4_9_3_19_a_refusal_while_draining_names_the_other_host() {
        let text = |redirect| {
            String::from_utf8(refusal_stream(
                "localhost",
                Refusal::Draining,
                redirect,
                "jabber:client",
            ))
            .unwrap()
        };
        let moved = text(Some("lb.example.org:5222"));
        assert!(
            moved.contains("<see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>lb.example.org:5222</see-other-host>")
                || moved.contains("<see-other-host xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\">lb.example.org:5222</see-other-host>"),
            "{moved}"
        );
        assert!(text(None).contains("<system-shutdown"), "{}", text(None));
        // Other refusals ignore the redirect.
        let full = String::from_utf8(refusal_stream(
            "localhost",
            Refusal::Full,
            Some("x"),
            "jabber:client",
        ))
        .unwrap();
        assert!(full.contains("<resource-constraint") && !full.contains("see-other-host"));
    }

    /// XEP-0114 §3: a refusal on a component port is a component's stream (its content
    /// namespace `jabber:component:accept`), which a component's parser reads; the error
    /// itself stays in the streams namespaces.
    #[test]
    fn xep0114_3_a_refusal_on_a_component_port_is_a_component_stream() {
        let out = refusal_stream(
            "localhost",
            Refusal::PerIp,
            None,
            parley_proto::ns::COMPONENT,
        );
        let mut parser = parley_xml::StreamParser::new(parley_xml::Limits::default());
        parser.feed(&out);
        match parser.next_event() {
            Ok(Some(parley_xml::Event::StreamOpen(h))) => {
                assert_eq!(h.default_ns.as_deref(), Some(parley_proto::ns::COMPONENT))
            }
            other => panic!("no stream header: {other:?}"),
        }
        match parser.next_event() {
            Ok(Some(parley_xml::Event::Stanza(err))) => {
                assert!(err.is("error", parley_proto::ns::STREAM), "{err:?}");
                assert!(err
                    .get_child("policy-violation", parley_proto::ns::STREAM_ERRORS)
                    .is_some());
            }
            other => panic!("no stream error: {other:?}"),
        }
        assert!(matches!(
            parser.next_event(),
            Ok(Some(parley_xml::Event::StreamClose))
        ));
    }
}
