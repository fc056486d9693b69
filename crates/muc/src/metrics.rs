//! The service's counters, kept in `parley_router::metrics` with the others so that
//! `/metrics` reads them all in one place.

use std::sync::atomic::Ordering;

use parley_router::metrics as m;

/// Room actors started (+1) or stopped (-n) on this node.
pub(crate) fn live(delta: i64) {
    if delta >= 0 {
        m::MUC_ROOMS_LIVE.fetch_add(delta as u64, Ordering::Relaxed);
    } else {
        m::MUC_ROOMS_LIVE.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

/// A room's occupant seats went from `before` to `now`.
pub(crate) fn occupants(before: usize, now: usize) {
    if now >= before {
        m::MUC_OCCUPANTS.fetch_add((now - before) as u64, Ordering::Relaxed);
    } else {
        m::MUC_OCCUPANTS.fetch_sub((before - now) as u64, Ordering::Relaxed);
    }
}

pub(crate) fn room_created() {
    m::MUC_ROOMS_CREATED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn room_destroyed() {
    m::MUC_ROOMS_DESTROYED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn joined() {
    m::MUC_JOINS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn join_refused() {
    m::MUC_JOINS_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// A groupchat message relayed to the room (once, whatever its occupants).
pub(crate) fn relayed() {
    m::MUC_MESSAGES.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn message_refused() {
    m::MUC_MESSAGES_REFUSED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn invited() {
    m::MUC_INVITATIONS.fetch_add(1, Ordering::Relaxed);
}
