//! Fault points: the few places where a test must line up two events that no outside
//! client can order (XEP-0198 §5: a resume meeting the hibernation timeout; the node
//! holding a session dying in the middle of handing it over; a node whose registry cache
//! has not yet seen a session move).
//!
//! A [`Faults`] set lives in the session settings and is empty unless a test fills it: an
//! in-process test sets it in the config; a test that runs `parley` processes sets
//! `PARLEY_FAULTS` (comma-separated names), which only a debug build reads
//! ([`Faults::from_env`]). No configuration file can name a fault, and a release build
//! never reads the variable, so an operator's server has none.

use std::fmt;

/// One fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A take of a hibernating session (a resume, on this node or another) finds its
    /// hibernation timer due at the same instant, and the timer is handled first.
    TimeoutAtTake,
    /// The node exits, as if it crashed, when another node asks it for a session.
    ExitAtTake,
    /// The node exits, as if it crashed, when told that a session it exported was
    /// adopted (between the export and the commit of a hand-over).
    ExitAtCommit,
    /// The node's registry cache never follows a session to another node, as a node whose
    /// watch trails far behind would: it keeps routing a moved resource to its old node
    /// (which must forward it, XEP-0198 §5).
    StaleOwners,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::TimeoutAtTake,
        Fault::ExitAtTake,
        Fault::ExitAtCommit,
        Fault::StaleOwners,
    ];

    /// Its name in `PARLEY_FAULTS`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::TimeoutAtTake => "sm-timeout-at-take",
            Fault::ExitAtTake => "exit-at-take",
            Fault::ExitAtCommit => "exit-at-commit",
            Fault::StaleOwners => "stale-owners",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fault points switched on (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// These faults.
    pub fn of(faults: &[Fault]) -> Faults {
        Faults(faults.to_vec())
    }

    /// Whether `fault` is on.
    pub fn on(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// Reads `PARLEY_FAULTS` in a debug build; nothing in a release build. A name that is
    /// not a fault is an error naming it.
    pub fn from_env() -> Result<Faults, String> {
        if !cfg!(debug_assertions) {
            return Ok(Faults::default());
        }
        Faults::parse(&std::env::var("PARLEY_FAULTS").unwrap_or_default())
    }

    fn parse(list: &str) -> Result<Faults, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match Fault::ALL.iter().find(|f| f.name() == name) {
                Some(f) => out.push(*f),
                None => return Err(format!("PARLEY_FAULTS: no fault point named {name:?}")),
            }
        }
        Ok(Faults(out))
    }

    /// Ends the process at once, as a crash would (no lease revoked, nothing flushed
    /// but the log line), when `fault` is on.
    pub fn exit_if(&self, fault: Fault) {
        if self.on(fault) {
            tracing::error!(fault = fault.name(), "fault point reached: exiting");
            std::process::exit(86);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_names_are_refused() {
        let f = Faults::parse(" sm-timeout-at-take, exit-at-commit ,").unwrap();
        assert!(f.on(Fault::TimeoutAtTake) && f.on(Fault::ExitAtCommit));
        assert!(!f.on(Fault::ExitAtTake));
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let e = Faults::parse("exit-at-lunch").unwrap_err();
        assert!(e.contains("exit-at-lunch"), "{e}");
    }
}
