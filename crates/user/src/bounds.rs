//! Bounds of the user layer that are not per-account data: the memory of accounts known to
//! be absent (so that stanzas to them start no actor and hit storage once per TTL, not once
//! per stanza), and the gauge that bounds each user actor's mailbox (actix's `do_send`
//! ignores mailbox capacity, so, as with `SessionHandle`'s `PendingGauge`, the sender counts
//! what is in flight and refuses past the bound).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jid::BareJid;
use parley_xml::Element;

use crate::messages::{Attach, CarbonReceived, Detach, FromClient, Inbound, Vanished};
use crate::size::approx_bytes;

/// What a message costs a user actor's mailbox: the stanza it carries, if the message may
/// be refused when the mailbox is full. Control messages (attach, detach, vanished) carry
/// none and are never refused: losing them would corrupt the actor's view of the sessions.
pub trait Queued {
    /// The stanza to count (and to bounce if refused).
    fn queued_stanza(&self) -> Option<&Element>;

    /// The stanza of a message that may address an account that does not exist (a stanza
    /// *to* the user), which is checked for before an actor is started for it.
    fn into_inbound(self) -> Result<Element, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl Queued for Inbound {
    fn queued_stanza(&self) -> Option<&Element> {
        Some(&self.stanza)
    }

    fn into_inbound(self) -> Result<Element, Self> {
        Ok(self.stanza)
    }
}

impl Queued for FromClient {
    fn queued_stanza(&self) -> Option<&Element> {
        Some(&self.stanza)
    }
}

impl Queued for CarbonReceived {
    fn queued_stanza(&self) -> Option<&Element> {
        Some(&self.message)
    }
}

impl Queued for Attach {
    fn queued_stanza(&self) -> Option<&Element> {
        None
    }
}

impl Queued for Detach {
    fn queued_stanza(&self) -> Option<&Element> {
        None
    }
}

impl Queued for Vanished {
    fn queued_stanza(&self) -> Option<&Element> {
        None
    }
}

/// Stanzas (and their approximate bytes) sent to one user actor and not yet handled.
#[derive(Debug, Default)]
pub(crate) struct MailboxGauge {
    stanzas: AtomicUsize,
    bytes: AtomicUsize,
}

impl MailboxGauge {
    /// Counts `el` in if it fits under both bounds; false (nothing counted) if not.
    pub(crate) fn charge(&self, el: &Element, max_stanzas: usize, max_bytes: usize) -> bool {
        let size = approx_bytes(el);
        if self.stanzas.fetch_add(1, Ordering::AcqRel) >= max_stanzas {
            self.stanzas.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self.bytes.fetch_add(size, Ordering::AcqRel) + size > max_bytes {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            self.stanzas.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// The actor took `el` in (the same stanza, unchanged, so the same estimate).
    pub(crate) fn taken(&self, el: &Element) {
        let size = approx_bytes(el);
        let _ = self
            .stanzas
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(size))
            });
    }

    /// Stanzas in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.stanzas.load(Ordering::Acquire)
    }
}

/// Accounts recently found absent, each until its expiry. Bounded: when full, expired
/// entries go, and if none has expired the whole memory is dropped (a spray of distinct
/// names then costs one existence check each, never unbounded memory).
#[derive(Debug)]
pub(crate) struct AbsentCache {
    entries: HashMap<BareJid, Instant>,
    capacity: usize,
    ttl: Duration,
}

impl AbsentCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> AbsentCache {
        AbsentCache {
            entries: HashMap::new(),
            capacity,
            ttl,
        }
    }

    /// Whether `jid` is known to be absent now.
    pub(crate) fn is_absent(&mut self, jid: &BareJid, now: Instant) -> bool {
        match self.entries.get(jid) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.entries.remove(jid);
                false
            }
            None => false,
        }
    }

    /// Remembers `jid` as absent for the TTL.
    pub(crate) fn insert(&mut self, jid: BareJid, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&jid) {
            self.entries.retain(|_, until| *until > now);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(jid, now + self.ttl);
    }

    /// The account exists now (created, or someone logged in to it).
    pub(crate) fn forget(&mut self, jid: &BareJid) {
        self.entries.remove(jid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    #[test]
    fn absent_accounts_expire_and_are_forgotten_on_creation() {
        let t0 = Instant::now();
        let mut c = AbsentCache::new(10, Duration::from_secs(5));
        c.insert(jid("a@x"), t0);
        assert!(c.is_absent(&jid("a@x"), t0 + Duration::from_secs(4)));
        assert!(!c.is_absent(&jid("a@x"), t0 + Duration::from_secs(6)));
        c.insert(jid("b@x"), t0);
        c.forget(&jid("b@x"));
        assert!(!c.is_absent(&jid("b@x"), t0));
    }

    #[test]
    fn the_absent_cache_never_grows_past_its_capacity() {
        let t0 = Instant::now();
        let mut c = AbsentCache::new(100, Duration::from_secs(5));
        for i in 0..10_000 {
            c.insert(jid(&format!("u{i}@x")), t0);
            assert!(c.len() <= 100);
        }
    }

    #[test]
    fn the_mailbox_gauge_refuses_past_either_bound_and_counts_back() {
        let small =
            Element::parse(b"<message xmlns='jabber:client'/>", &Limits::default()).unwrap();
        let g = MailboxGauge::default();
        assert!(g.charge(&small, 2, 1 << 20));
        assert!(g.charge(&small, 2, 1 << 20));
        assert!(!g.charge(&small, 2, 1 << 20));
        g.taken(&small);
        assert!(g.charge(&small, 2, 1 << 20));
        assert_eq!(g.in_flight(), 2);
        let big = Element::new("message", "jabber:client").with_text("z".repeat(5000));
        let g = MailboxGauge::default();
        assert!(!g.charge(&big, 10, 4096));
        assert_eq!(g.in_flight(), 0);
    }
}
