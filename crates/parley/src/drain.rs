//! The node's drain: what SIGTERM, `POST /api/v1/nodes/{id}/drain` and `parley node drain`
//! do before the process exits, so that a rolling restart loses no session state
//! (docs/cluster.md, "Drain and rolling restarts").
//!
//! In order: readiness turns false and every transport refuses new connections (the
//! [`DrainSwitch`], at once, whoever asked); then every bound session is asked to move
//! (`CloseReason::Move`: `<see-other-host/>`, WebSocket `see-other-uri`, or
//! `<system-shutdown/>`), a resumable one hibernates here instead of ending, and the node
//! keeps running — its lease, its node links, its user actors — until it holds no session
//! (hibernating ones included: they stay in the routing table until they are resumed
//! elsewhere or expire) or `[cluster] drain_timeout_s` has passed. What is left then ends
//! through the ordinary shutdown (`server.rs`), which leaves the cluster.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_router::{CloseReason, Router, SessionId};
use parley_session::limits::ConnLimiter;
use tokio::sync::Notify;
use tracing::info;

/// How often the drain looks for sessions to ask and counts what is left. The router has
/// no "a session ended" signal, and a tenth of a second is nothing next to a drain.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often a long drain says how far it is.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Starts a drain, once: shared by the signal handler, the admin API and the server thread
/// that carries the drain out.
#[derive(Debug)]
pub struct DrainSwitch {
    limiter: Arc<ConnLimiter>,
    redirect_host: Option<String>,
    ready: Arc<AtomicBool>,
    requested: Notify,
}

impl DrainSwitch {
    /// A switch over the node's connection limiter and readiness flag; refused c2s
    /// connections are sent to `redirect_host` when set.
    pub(crate) fn new(
        limiter: Arc<ConnLimiter>,
        redirect_host: Option<String>,
        ready: Arc<AtomicBool>,
    ) -> Arc<DrainSwitch> {
        Arc::new(DrainSwitch {
            limiter,
            redirect_host,
            ready,
            requested: Notify::new(),
        })
    }

    /// Waits until a drain is asked for (at once if it was asked already).
    pub(crate) async fn requested(&self) {
        self.requested.notified().await;
    }
}

impl parley_http::NodeDrain for DrainSwitch {
    fn start(&self) -> bool {
        if !self.limiter.start_draining(self.redirect_host.clone()) {
            return false;
        }
        // Load balancers stop sending clients before any client is asked to move, so that
        // none comes back here.
        self.ready.store(false, Ordering::Release);
        parley_router::metrics::DRAINS.fetch_add(1, Ordering::Relaxed);
        // A stored permit if the server thread is not waiting yet: the drain is not lost.
        self.requested.notify_one();
        true
    }

    fn draining(&self) -> bool {
        self.limiter.is_draining()
    }
}

/// What a drain tells clients and how long it waits for them.
#[derive(Debug, Clone)]
pub(crate) struct DrainPlan {
    /// `CloseReason::Move` with `[c2s] redirect_host` and `[http] redirect_ws_uri`.
    pub(crate) reason: CloseReason,
    /// `[cluster] drain_timeout_s`.
    pub(crate) timeout: Duration,
}

/// Asks every session bound here to move — also those that bind while the drain runs
/// (their negotiation had started before the listeners closed) — and returns once none is
/// left (true) or the plan's timeout has passed (false).
pub(crate) async fn move_sessions(router: &Router, plan: &DrainPlan) -> bool {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let mut next_report = started + REPORT_EVERY;
    // Each session is asked once: a hibernating one ignores a second Move anyway, and
    // asking 100 000 of them every round would flood their mailboxes.
    let mut asked: HashSet<SessionId> = HashSet::new();
    loop {
        for session in router.all_sessions() {
            if asked.insert(session.id) {
                session.close(plan.reason.clone());
            }
        }
        let left = router.session_count();
        if left == 0 {
            info!(
                asked = asked.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "drained: no session left"
            );
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if now >= next_report {
            next_report = now + REPORT_EVERY;
            info!(
                sessions = left,
                hibernating = parley_router::metrics::SM_HIBERNATING.load(Ordering::Relaxed),
                left_s = deadline.saturating_duration_since(now).as_secs(),
                "draining: waiting for sessions to move"
            );
        }
        tokio::time::sleep(CHECK_EVERY.min(deadline.saturating_duration_since(now))).await;
    }
}
