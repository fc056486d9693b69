//! The per-connection bounds a session enforces on its own input: SASL exchanges and stream
//! headers per connection, and the read rate (`[limits]`, `[c2s]`).
//!
//! Counting elements rather than failures matters: an `<auth/>` without an initial response
//! only earns an empty challenge, never a failure, so a failure count alone would let one
//! connection ask for challenges forever.

use actix::{AsyncContext, Context};
use parley_proto::stream_error::StreamCondition;
use parley_router::CloseReason;
use tracing::warn;

use crate::limits::{Allowance, READS_THROTTLED};
use crate::session::{Phase, Session};

/// Whether the session may read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadGate {
    /// Reads go ahead (within the shaper's allowance).
    Open,
    /// Over the read rate; a timer opens the gate when tokens are back. Only a throttled
    /// session has such a timer: an idle one costs none.
    Waiting,
}

impl Session {
    /// The offender a refusal is logged for: the client's address, never more.
    fn offender(&self) -> String {
        self.ip()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
    }

    /// Closes the stream with `<policy-violation/>` for a per-connection bound.
    fn violate(&mut self, reason: &'static str, text: &'static str, ctx: &mut Context<Self>) {
        let offender = self.offender();
        if parley_router::metrics::refuse(reason, &offender) {
            warn!(ip = %offender, reason, "connection over a limit: closing it");
        }
        self.close(
            CloseReason::with_text(StreamCondition::PolicyViolation, text),
            ctx,
        );
    }

    /// Counts a stream header (the first, or a restart); false (and the stream is closed)
    /// past `c2s.max_stream_opens`.
    pub(crate) fn count_open(&mut self, ctx: &mut Context<Self>) -> bool {
        self.opens += 1;
        if self.opens <= self.env.config.max_stream_opens {
            return true;
        }
        self.violate(
            "c2s_stream_opens",
            "too many stream headers (opens and restarts) on this connection",
            ctx,
        );
        false
    }

    /// Counts an `<auth/>`; false (and the stream is closed) past `c2s.max_sasl_attempts`.
    pub(crate) fn count_sasl_attempt(&mut self, ctx: &mut Context<Self>) -> bool {
        let max = self.env.config.max_sasl_attempts;
        let Phase::Unauthed(u) = &mut self.phase else {
            return true;
        };
        u.auths += 1;
        if u.auths <= max {
            return true;
        }
        self.violate(
            "c2s_sasl_attempts",
            "too many SASL attempts on this connection",
            ctx,
        );
        false
    }

    /// How many bytes the next read may take; None while over the read rate, after
    /// arming the one timer that wakes the driver when tokens are back.
    pub(crate) fn read_allowance(&mut self, ctx: &mut Context<Self>) -> Option<usize> {
        if self.read_gate == ReadGate::Waiting {
            return None;
        }
        match self.shaper.allowance() {
            Allowance::Bytes(n) => Some(n),
            Allowance::Wait(wait) => {
                READS_THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.read_gate = ReadGate::Waiting;
                ctx.run_later(wait, |act, _| {
                    act.read_gate = ReadGate::Open;
                    act.wake();
                });
                None
            }
        }
    }
}
