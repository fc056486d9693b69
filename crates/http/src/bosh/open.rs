//! What a BOSH request may hold while it is open: the per-session bounds of XEP-0124 §11
//! (`hold`+1 requests, `bosh_session_pending_bytes`), and how refusals are counted.

use std::sync::Arc;

use parley_xml::Limits;

use super::{BoshSession, HOLD};
use crate::bosh_limits::{BoshLimits, Reservation};
use crate::web_state::WebState;

/// Logs a refusal the first time `offender` earns it (every time, it is counted).
pub(super) fn refused(reason: &'static str, offender: Option<std::net::IpAddr>) {
    let who = offender.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if parley_router::metrics::refuse(reason, &who) {
        tracing::warn!(reason, client = %who, "BOSH request refused");
    }
}

/// Parser limits for a `<body/>`: a stanza plus room for the wrapper.
pub(super) fn body_limits(state: &WebState) -> Limits {
    Limits {
        max_stanza_bytes: state.env.config.limits.max_stanza_bytes + 4096,
        ..state.env.config.limits.clone()
    }
}

/// A request open on a session: counted while it lives; its body's bytes count as
/// pending until [`Self::fed`] hands them to the actor (where they count as input).
pub(super) struct Open {
    session: Arc<BoshSession>,
    bytes: usize,
    /// The body's bytes in the node-wide budget, until fed.
    held: Option<Reservation>,
}

impl Open {
    /// Admits a request of `bytes` or says which bound it breaks.
    pub(super) fn enter(
        session: &Arc<BoshSession>,
        held: Reservation,
        limits: &BoshLimits,
    ) -> Result<Open, &'static str> {
        let bytes = held.bytes();
        let mut i = session.inner.lock();
        // XEP-0124 §11: more simultaneous requests than `requests` (hold + 1).
        if i.open as u64 > HOLD {
            return Err("bosh_requests_per_session");
        }
        if i.pending + bytes > limits.session_pending_bytes {
            return Err("bosh_session_pending_bytes");
        }
        i.open += 1;
        i.pending += bytes;
        Ok(Open {
            session: session.clone(),
            bytes,
            held: Some(held),
        })
    }

    /// The body is about to be fed to the actor (where it counts as input instead).
    pub(super) fn fed(&mut self) {
        let mut i = self.session.inner.lock();
        i.pending -= self.bytes;
        self.bytes = 0;
        self.held = None;
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut i = self.session.inner.lock();
        i.open -= 1;
        i.pending -= self.bytes;
    }
}
