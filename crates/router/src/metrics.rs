//! Process-wide stanza counters and the routing-latency histogram, for `/metrics`.
//!
//! Plain relaxed atomics: one add per stanza, no locks, nothing allocated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Stanzas received from clients.
pub static STANZAS_IN: AtomicU64 = AtomicU64::new(0);
/// Stanzas handed to clients' outbound queues.
pub static STANZAS_OUT: AtomicU64 = AtomicU64::new(0);

/// Upper bounds of the routing-latency buckets, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 10_000, 100_000];

static LATENCY_BUCKETS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
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

/// Cumulative bucket counts (Prometheus `le` semantics, the last is `+Inf`) and the sum in
/// microseconds.
pub fn routing_histogram() -> (Vec<u64>, u64) {
    let mut acc = 0;
    let counts = LATENCY_BUCKETS
        .iter()
        .map(|b| {
            acc += b.load(Ordering::Relaxed);
            acc
        })
        .collect();
    (counts, LATENCY_SUM_US.load(Ordering::Relaxed))
}
