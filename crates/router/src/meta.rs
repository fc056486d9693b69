//! What the admin API shows of a local session: Prosody's session fields that are not
//! routing state (type, ip, secure), its presence summary and its times.
//!
//! The session writes it (cheap atomics and a small mutex, touched on presence changes and
//! once per read batch); the admin endpoint reads it through the router without asking the
//! session actor anything.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::directory::SessionFlags;

/// The workspace's one wall clock, re-exported where sessions and nodes already look.
pub use parley_proto::clock::now_ms;

/// Where a session is in its life (the Session model of the web-sessions issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Connected.
    Active,
    /// Its connection was lost and it waits for its client to resume it (XEP-0198 §5).
    Hibernating,
    /// The client closed it.
    Ended,
    /// Past its lifetime, idle too long, or its token expired.
    Expired,
    /// Its account was removed.
    Removed,
    /// Another session took its resource (resource conflict).
    Replaced,
    /// Ended by an admin or by sign-out-everywhere.
    Revoked,
    /// The connection was lost without a close.
    Abandoned,
    /// The server closed it with a stream error of its own (a limit, a protocol
    /// violation, a failed check): not the user's doing. Its record says which.
    Failed,
}

impl SessionStatus {
    /// The lowercase name used by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Hibernating => "hibernating",
            SessionStatus::Ended => "ended",
            SessionStatus::Expired => "expired",
            SessionStatus::Removed => "removed",
            SessionStatus::Replaced => "replaced",
            SessionStatus::Revoked => "revoked",
            SessionStatus::Abandoned => "abandoned",
            SessionStatus::Failed => "failed",
        }
    }

    /// Parses [`SessionStatus::as_str`].
    pub fn parse(s: &str) -> Option<SessionStatus> {
        [
            SessionStatus::Active,
            SessionStatus::Hibernating,
            SessionStatus::Ended,
            SessionStatus::Expired,
            SessionStatus::Removed,
            SessionStatus::Replaced,
            SessionStatus::Revoked,
            SessionStatus::Abandoned,
            SessionStatus::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A local session's admin-visible facts.
#[derive(Debug)]
pub struct SessionMeta {
    /// Prosody's `type` once bound (`c2s`).
    pub kind: &'static str,
    /// The client's address (of its latest connection: a resume moves it).
    ip: Mutex<Option<SocketAddr>>,
    /// When the connection was accepted (unix ms).
    pub created_ms: i64,
    secure: AtomicBool,
    last_active_ms: AtomicI64,
    updated_ms: AtomicI64,
    state: Mutex<(SessionFlags, Option<String>)>,
    /// Set once: the first cause to end the session wins (an admin's revocation is marked
    /// before the close it causes).
    status: Mutex<SessionStatus>,
    /// When the session must end (its max lifetime, or its token's expiry if sooner),
    /// unix ms; 0: never.
    expire_at_ms: AtomicI64,
    /// Why it ended, as the client was told (`condition: text`), when the server ended it.
    reason: std::sync::OnceLock<String>,
    /// What carries its stream now (`tcp`, `websocket`, `bosh`); a resume may change it.
    transport: Mutex<&'static str>,
    abandon_at_ms: AtomicI64,
    /// Stanzas the peer sent on this session, and stanzas delivered to it.
    stanzas_in: AtomicU64,
    stanzas_out: AtomicU64,
    /// How the peer authenticated (a SASL mechanism, `prebind`, a component's `secret`).
    auth: std::sync::OnceLock<&'static str>,
    /// For a stream between servers or with a component: its direction and hosts.
    link: std::sync::OnceLock<StreamLink>,
}

/// Which way a stream between servers (or with a component) goes, and between which hosts
/// (Prosody's `direction`, `from_host`, `to_host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLink {
    /// `in` (the peer connected to us) or `out`.
    pub direction: &'static str,
    /// The host the stream is from.
    pub from_host: String,
    /// The host it is to.
    pub to_host: String,
}

impl SessionMeta {
    /// Facts of a connection accepted now.
    pub fn new(
        kind: &'static str,
        ip: Option<SocketAddr>,
        secure: bool,
        expire_at_ms: Option<i64>,
    ) -> SessionMeta {
        let now = now_ms();
        SessionMeta {
            kind,
            ip: Mutex::new(ip),
            created_ms: now,
            secure: AtomicBool::new(secure),
            last_active_ms: AtomicI64::new(now),
            updated_ms: AtomicI64::new(now),
            state: Mutex::new((SessionFlags::default(), None)),
            status: Mutex::new(SessionStatus::Active),
            expire_at_ms: AtomicI64::new(expire_at_ms.unwrap_or(0)),
            reason: std::sync::OnceLock::new(),
            transport: Mutex::new("tcp"),
            abandon_at_ms: AtomicI64::new(0),
            stanzas_in: AtomicU64::new(0),
            stanzas_out: AtomicU64::new(0),
            auth: std::sync::OnceLock::new(),
            link: std::sync::OnceLock::new(),
        }
    }

    /// Records how the peer authenticated (once; later calls are ignored).
    pub fn set_auth(&self, method: &'static str) {
        let _ = self.auth.set(method);
    }

    /// How the peer authenticated, once it has.
    pub fn auth(&self) -> Option<&'static str> {
        self.auth.get().copied()
    }

    /// Records the stream's direction and hosts (once).
    pub fn set_link(&self, link: StreamLink) {
        let _ = self.link.set(link);
    }

    /// The stream's direction and hosts, for a stream between servers or with a component.
    pub fn link(&self) -> Option<&StreamLink> {
        self.link.get()
    }

    /// The client showed it is there (anything it sent): `last_active` is now.
    pub fn touch(&self) {
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The user signed this session out and it leaves the user's list of sessions: status
    /// removed, whatever it was, live or ended (an ended record is kept for the admin's
    /// `?status=removed` view, no longer shown to the user). False if it already was.
    pub fn remove(&self) -> bool {
        let mut s = self.status.lock();
        if *s == SessionStatus::Removed {
            return false;
        }
        *s = SessionStatus::Removed;
        self.updated_ms.store(now_ms(), Ordering::Relaxed);
        true
    }

    /// The peer sent a stanza: counted here and in the node's total.
    pub fn received(&self) {
        self.touch();
        self.stanzas_in.fetch_add(1, Ordering::Relaxed);
        crate::metrics::STANZAS_IN.fetch_add(1, Ordering::Relaxed);
    }

    /// A stanza was delivered to the session: counted here and in the node's total.
    pub fn delivered(&self) {
        self.stanzas_out.fetch_add(1, Ordering::Relaxed);
        crate::metrics::STANZAS_OUT.fetch_add(1, Ordering::Relaxed);
    }

    /// Stanzas received from the peer and delivered to it, so far.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.stanzas_in.load(Ordering::Relaxed),
            self.stanzas_out.load(Ordering::Relaxed),
        )
    }

    /// TLS is up.
    pub fn set_secure(&self) {
        self.secure.store(true, Ordering::Relaxed);
    }

    /// Routing state or presence changed; `show` is the presence's `<show/>` (None for plain
    /// available or unavailable).
    pub fn set_state(&self, flags: SessionFlags, show: Option<String>) {
        *self.state.lock() = (flags, show);
        self.updated_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Prosody's `secure`.
    pub fn secure(&self) -> bool {
        self.secure.load(Ordering::Relaxed)
    }

    /// Last time the client sent anything (unix ms).
    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Last time the session's state changed (unix ms).
    pub fn updated_ms(&self) -> i64 {
        self.updated_ms.load(Ordering::Relaxed)
    }

    /// The connection was lost and the session waits for a resume (XEP-0198 §5); the
    /// time is shown as `abandoned` until the client is back.
    pub fn hibernate(&self) {
        let mut s = self.status.lock();
        if *s == SessionStatus::Active {
            *s = SessionStatus::Hibernating;
            let now = now_ms();
            self.updated_ms.store(now, Ordering::Relaxed);
            self.abandon_at_ms.store(now, Ordering::Relaxed);
        }
    }

    /// The client's address, of its latest connection.
    pub fn ip(&self) -> Option<SocketAddr> {
        *self.ip.lock()
    }

    /// The connection's peer became known after the session started (an outgoing server
    /// stream learns it when its dial succeeds).
    pub fn set_ip(&self, ip: Option<SocketAddr>) {
        *self.ip.lock() = ip;
    }

    /// The client resumed the session on a new connection (`secure`: that one's TLS; `ip`:
    /// its address).
    pub fn resumed(&self, secure: bool, ip: Option<SocketAddr>) {
        *self.ip.lock() = ip;
        let mut s = self.status.lock();
        if *s == SessionStatus::Hibernating {
            *s = SessionStatus::Active;
            self.abandon_at_ms.store(0, Ordering::Relaxed);
        }
        self.secure.store(secure, Ordering::Relaxed);
        let now = now_ms();
        self.updated_ms.store(now, Ordering::Relaxed);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// Marks how the session ends, if nothing did before; returns whether this call did.
    pub fn end(&self, status: SessionStatus) -> bool {
        let mut s = self.status.lock();
        if !matches!(*s, SessionStatus::Active | SessionStatus::Hibernating) {
            return false;
        }
        *s = status;
        self.updated_ms.store(now_ms(), Ordering::Relaxed);
        if status == SessionStatus::Abandoned && self.abandon_at_ms.load(Ordering::Relaxed) == 0 {
            self.abandon_at_ms.store(now_ms(), Ordering::Relaxed);
        }
        true
    }

    /// When the session must end, unix ms, if ever.
    pub fn expires_ms(&self) -> Option<i64> {
        Some(self.expire_at_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The session must end by `at_ms` too (a token's expiry): the sooner deadline is kept.
    pub fn set_expires(&self, at_ms: i64) {
        let _ = self
            .expire_at_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t == 0 || at_ms < t).then_some(at_ms)
            });
    }

    /// What carries the stream now (its connection's, after a resume the new one's).
    pub fn set_transport(&self, transport: &'static str) {
        *self.transport.lock() = transport;
    }

    /// What carries the stream: `tls` for TCP once encrypted, else `tcp`, `websocket` or
    /// `bosh`.
    pub fn transport(&self) -> &'static str {
        match *self.transport.lock() {
            "tcp" if self.secure() => "tls",
            other => other,
        }
    }

    /// Records why the server ended the session (the first reason given wins).
    pub fn set_reason(&self, reason: String) {
        let _ = self.reason.set(reason);
    }

    /// Why the server ended the session, if it did.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// The current status.
    pub fn status(&self) -> SessionStatus {
        *self.status.lock()
    }

    /// When the connection was found lost (abandoned sessions), unix ms.
    pub fn abandon_at_ms(&self) -> Option<i64> {
        Some(self.abandon_at_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// Routing flags and presence show.
    pub fn state(&self) -> (SessionFlags, Option<String>) {
        self.state.lock().clone()
    }
}
