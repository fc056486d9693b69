//! What the admin API shows of a local session: Prosody's session fields that are not
//! routing state (type, ip, secure), its presence summary and its times.
//!
//! The session writes it (cheap atomics and a small mutex, touched on presence changes and
//! once per read batch); the admin endpoint reads it through the router without asking the
//! session actor anything.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::directory::SessionFlags;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A local session's admin-visible facts.
#[derive(Debug)]
pub struct SessionMeta {
    /// Prosody's `type` once bound (`c2s`).
    pub kind: &'static str,
    /// The client's address.
    pub ip: Option<SocketAddr>,
    /// When the connection was accepted (unix ms).
    pub created_ms: i64,
    secure: AtomicBool,
    last_active_ms: AtomicI64,
    updated_ms: AtomicI64,
    state: Mutex<(SessionFlags, Option<String>)>,
}

impl SessionMeta {
    /// Facts of a connection accepted now.
    pub fn new(kind: &'static str, ip: Option<SocketAddr>, secure: bool) -> SessionMeta {
        let now = now_ms();
        SessionMeta {
            kind,
            ip,
            created_ms: now,
            secure: AtomicBool::new(secure),
            last_active_ms: AtomicI64::new(now),
            updated_ms: AtomicI64::new(now),
            state: Mutex::new((SessionFlags::default(), None)),
        }
    }

    /// The client sent something.
    pub fn touch(&self) {
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// TLS is up.
    pub fn set_secure(&self) {
        self.secure.store(true, Ordering::Relaxed);
    }

    /// Routing state or presence changed; `show` is the presence's `<show/>` (None for plain
    /// available or unavailable).
    pub fn set_state(&self, flags: SessionFlags, show: Option<String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (flags, show);
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

    /// Routing flags and presence show.
    pub fn state(&self) -> (SessionFlags, Option<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
