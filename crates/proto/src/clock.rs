//! The workspace's one wall-clock reading. The protocol rules in this crate never call it:
//! they take the time as an argument (JWT expiry, token lifetimes), so that they stay
//! testable from literal values. Callers that store or compare times read it here, so that
//! every stored time is on the same scale. Timers use the monotonic clock, not this.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_and_seconds_agree() {
        let (s, ms) = (now_s(), now_ms());
        assert!(s > 1_600_000_000, "the clock reads {s}");
        assert!((ms / 1000 - s).abs() <= 1, "{ms} ms against {s} s");
    }
}
