//! Process-wide stanza counters, refusals and the routing-latency histogram, for `/metrics`.
//!
//! Plain relaxed atomics: one add per stanza, no locks, nothing allocated. They are read at
//! scrape time and written out by `parley-http`'s `metrics` module with `prometheus-client`;
//! that crate's own `Histogram` takes a mutex per observation, which the stanza path must not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Stanzas received from clients.
pub static STANZAS_IN: AtomicU64 = AtomicU64::new(0);
/// Stanzas handed to clients' outbound queues.
pub static STANZAS_OUT: AtomicU64 = AtomicU64::new(0);

/// Sessions hibernating now (XEP-0198 §5: connection lost, waiting for a resume).
pub static SM_HIBERNATING: AtomicU64 = AtomicU64::new(0);
/// Stanzas held unacknowledged in Stream Management queues now.
pub static SM_UNACKED: AtomicU64 = AtomicU64::new(0);
/// Sessions resumed (XEP-0198 §5) on the node that held them.
pub static SM_RESUMES_LOCAL: AtomicU64 = AtomicU64::new(0);
/// Sessions resumed here that another node held (XEP-0198 §5 across the cluster).
pub static SM_RESUMES_REMOTE: AtomicU64 = AtomicU64::new(0);
/// Resumes answered with `<failed/>` (unknown, expired or another user's id).
pub static SM_RESUMES_FAILED: AtomicU64 = AtomicU64::new(0);

/// Drains started on this node (SIGTERM, the admin API, `parley node drain`).
pub static DRAINS: AtomicU64 = AtomicU64::new(0);

/// Records archived (XEP-0313: one per local party of a message).
pub static ARCHIVED: AtomicU64 = AtomicU64::new(0);
/// Archive writer transactions that committed.
pub static ARCHIVE_BATCHES: AtomicU64 = AtomicU64::new(0);
/// Archive writer transactions that failed (their messages were delivered unarchived).
pub static ARCHIVE_FAILED_BATCHES: AtomicU64 = AtomicU64::new(0);

/// Accounts registered in band (XEP-0077 §3.1).
pub static SIGNUPS: AtomicU64 = AtomicU64::new(0);
/// In-band registrations refused after the checks of the request (name taken, invitation
/// spent, storage failed).
pub static SIGNUPS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Files stored by HTTP upload (XEP-0363).
pub static UPLOADS: AtomicU64 = AtomicU64::new(0);
/// Upload PUTs refused (not a slot, forged or expired, size, type, used, quota, busy,
/// storage).
pub static UPLOADS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Bytes of the files stored by HTTP upload.
pub static UPLOAD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Room actors running on this node (XEP-0045).
pub static MUC_ROOMS_LIVE: AtomicU64 = AtomicU64::new(0);
/// Occupant seats in the rooms running on this node.
pub static MUC_OCCUPANTS: AtomicU64 = AtomicU64::new(0);
/// Rooms created on this node.
pub static MUC_ROOMS_CREATED: AtomicU64 = AtomicU64::new(0);
/// Rooms destroyed on this node (by an owner, the admin API, or their last occupant
/// leaving a temporary room).
pub static MUC_ROOMS_DESTROYED: AtomicU64 = AtomicU64::new(0);
/// Joins accepted.
pub static MUC_JOINS: AtomicU64 = AtomicU64::new(0);
/// Joins refused (locked, banned, nick taken, members only, full, password).
pub static MUC_JOINS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Groupchat messages relayed (once per message, whatever the room's size).
pub static MUC_MESSAGES: AtomicU64 = AtomicU64::new(0);
/// Groupchat messages refused for their rate.
pub static MUC_MESSAGES_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Mediated invitations sent.
pub static MUC_INVITATIONS: AtomicU64 = AtomicU64::new(0);

/// An upload of `bytes` was stored (or refused, `bytes` ignored).
pub fn upload(stored: bool, bytes: u64) {
    if stored {
        UPLOADS.fetch_add(1, Ordering::Relaxed);
        UPLOAD_BYTES.fetch_add(bytes, Ordering::Relaxed);
    } else {
        UPLOADS_REFUSED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Push notifications (XEP-0357) sent to app servers.
pub static PUSHES: AtomicU64 = AtomicU64::new(0);

/// A push notification went to an app server.
pub fn push_sent() {
    PUSHES.fetch_add(1, Ordering::Relaxed);
}

/// An in-band registration created an account, or failed.
pub fn signup(ok: bool) {
    if ok {
        SIGNUPS.fetch_add(1, Ordering::Relaxed);
    } else {
        SIGNUPS_FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The archive writer wrote (or failed to write) a batch of `records`.
pub fn archive_batch(records: usize, ok: bool) {
    if ok {
        ARCHIVED.fetch_add(records as u64, Ordering::Relaxed);
        ARCHIVE_BATCHES.fetch_add(1, Ordering::Relaxed);
    } else {
        ARCHIVE_FAILED_BATCHES.fetch_add(1, Ordering::Relaxed);
    }
}

/// A Stream Management queue went from `before` to `after` stanzas.
pub fn sm_unacked(before: usize, after: usize) {
    if after >= before {
        SM_UNACKED.fetch_add((after - before) as u64, Ordering::Relaxed);
    } else {
        SM_UNACKED.fetch_sub((before - after) as u64, Ordering::Relaxed);
    }
}

/// Upper bounds of the routing-latency buckets, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 10_000, 100_000];

static LATENCY_BUCKETS: [AtomicU64; LATENCY_BOUNDS_US.len() + 1] =
    [const { AtomicU64::new(0) }; LATENCY_BOUNDS_US.len() + 1];
static LATENCY_SUM_US: AtomicU64 = AtomicU64::new(0);

/// Records how long routing one client stanza took (parse done → handed to its destination).
pub fn observe_routing(took: Duration) {
    let us = took.as_micros() as u64;
    let i = LATENCY_BOUNDS_US
        .iter()
        .position(|b| us <= *b)
        .unwrap_or(LATENCY_BOUNDS_US.len());
    LATENCY_BUCKETS[i].fetch_add(1, Ordering::Relaxed);
    LATENCY_SUM_US.fetch_add(us, Ordering::Relaxed);
}

/// The routing-latency histogram as it stands: the count in each bucket of
/// [`LATENCY_BOUNDS_US`] (not cumulative; the last counts everything above the largest bound)
/// and the sum of all observations in microseconds. Each atomic is read once, so the count
/// of all observations is the sum of the buckets.
pub fn routing_buckets() -> ([u64; LATENCY_BOUNDS_US.len() + 1], u64) {
    let counts = std::array::from_fn(|i| LATENCY_BUCKETS[i].load(Ordering::Relaxed));
    (counts, LATENCY_SUM_US.load(Ordering::Relaxed))
}

/// Refusals by reason: every limit, quota and authentication check that turns a client or a
/// peer away counts here under a short static name (`c2s_conn_per_ip`, `bosh_body_bytes`, …),
/// rendered by `/metrics` as `parley_refusals_total{reason="…"}`.
///
/// Reasons are `&'static str` so that the set stays bounded whatever an attacker sends: no
/// label value ever comes from input.
pub fn count_refusal(reason: &'static str) {
    let mut map = REFUSALS.lock();
    *map.entry(reason).or_insert(0) += 1;
}

/// Counters with two labels for events far rarer than stanzas (connections, logins): one
/// small map behind a mutex. The label values are `'static` names from a fixed set (a
/// listener, a SASL mechanism, an outcome), never input, so the map stays small.
#[derive(Debug)]
pub struct LabelledCounter(
    parking_lot::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
);

impl LabelledCounter {
    /// An empty counter (for a `static`).
    pub const fn new() -> Self {
        LabelledCounter(parking_lot::Mutex::new(std::collections::BTreeMap::new()))
    }

    /// Adds one to `(a, b)`.
    pub fn inc(&self, a: &'static str, b: &'static str) {
        *self.0.lock().entry((a, b)).or_insert(0) += 1;
    }

    /// Every label pair seen so far with its count, sorted.
    pub fn snapshot(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.0.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }
}

impl Default for LabelledCounter {
    fn default() -> Self {
        LabelledCounter::new()
    }
}

/// Connections by (listener, outcome): `accepted`, or the refusal's reason
/// (`conn_per_ip`, `conn_rate_per_ip`, `sessions_total`, `draining`).
pub static CONNECTIONS: LabelledCounter = LabelledCounter::new();

/// SASL outcomes by (mechanism, result): `success`; `failure` (a credential check failed);
/// `refused` (refused before any credential check: an unoffered mechanism, a malformed
/// request, the server's own failure); `throttled` (refused by the failed-login limits).
pub static AUTH: LabelledCounter = LabelledCounter::new();

/// Every refusal reason seen so far with its count, sorted by name.
pub fn refusals() -> Vec<(&'static str, u64)> {
    let map = REFUSALS.lock();
    map.iter().map(|(k, v)| (*k, *v)).collect()
}

static REFUSALS: parking_lot::Mutex<std::collections::BTreeMap<&'static str, u64>> =
    parking_lot::Mutex::new(std::collections::BTreeMap::new());

/// How many (reason, offender) pairs [`refuse`] remembers before it forgets them all; a
/// bound so that a spray of source addresses cannot grow it.
pub const LOG_ONCE_CAPACITY: usize = 4096;

static LOGGED: parking_lot::Mutex<Option<std::collections::HashSet<(&'static str, String)>>> =
    parking_lot::Mutex::new(None);

/// Counts a refusal and says whether to log it: true the first time a given offender (an IP
/// address, an account, a peer address — never a secret) is refused for `reason`, false after
/// that, so a flood is logged once rather than once per attempt. The memory is bounded by
/// [`LOG_ONCE_CAPACITY`]; when full it starts afresh (an offender may then be logged again).
pub fn refuse(reason: &'static str, offender: &str) -> bool {
    count_refusal(reason);
    let mut guard = LOGGED.lock();
    let set = guard.get_or_insert_with(Default::default);
    if set.len() >= LOG_ONCE_CAPACITY {
        set.clear();
    }
    set.insert((reason, offender.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_counted_every_time_and_logged_once_per_offender() {
        assert!(refuse("test_reason", "192.0.2.1"));
        assert!(!refuse("test_reason", "192.0.2.1"));
        assert!(refuse("test_reason", "192.0.2.2"));
        let n = refusals()
            .into_iter()
            .find(|(r, _)| *r == "test_reason")
            .map(|(_, n)| n);
        assert_eq!(n, Some(3));
    }

    #[test]
    fn each_observation_lands_in_the_first_bucket_that_holds_it() {
        let (before, sum_before) = routing_buckets();
        observe_routing(Duration::from_micros(10));
        observe_routing(Duration::from_micros(11));
        observe_routing(Duration::from_secs(1));
        let (after, sum_after) = routing_buckets();
        let grew: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        // Other tests in this process may observe too, so only growth is asserted.
        assert!(grew[0] >= 1, "10 µs is within the 10 µs bound: {grew:?}");
        assert!(grew[1] >= 1, "11 µs goes to the 25 µs bucket: {grew:?}");
        assert!(
            grew[LATENCY_BOUNDS_US.len()] >= 1,
            "1 s is above every bound: {grew:?}"
        );
        assert!(sum_after - sum_before >= 1_000_021);
    }
}
