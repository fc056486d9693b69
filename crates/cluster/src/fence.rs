//! When a node must fence itself: it has not renewed its lease for longer than a deadline
//! shorter than the TTL, or etcd said the lease is gone. A fenced node stops accepting binds,
//! closes its sessions and reports not-ready, so that it never serves a full JID that etcd may
//! already have given to another node (the lease expires only after the TTL).

use std::time::Duration;

/// The node's standing with etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The lease was renewed recently enough.
    Healthy,
    /// Renewal is overdue or the lease is gone: fence.
    Fenced,
}

/// The fencing rule for one lease TTL.
#[derive(Debug, Clone, Copy)]
pub struct Fence {
    deadline: Duration,
}

impl Fence {
    /// A deadline of two thirds of the TTL: renewals run every TTL/3, so two missed renewals
    /// fence the node a third of a TTL before etcd could expire its keys.
    pub fn for_ttl(ttl: Duration) -> Fence {
        Fence {
            deadline: ttl * 2 / 3,
        }
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The standing after `since_renewal` without a renewal; `lost` when etcd reported the
    /// lease gone.
    pub fn check(&self, since_renewal: Duration, lost: bool) -> Standing {
        if lost || since_renewal >= self.deadline {
            Standing::Fenced
        } else {
            Standing::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_before_the_lease_can_expire() {
        let ttl = Duration::from_secs(10);
        let f = Fence::for_ttl(ttl);
        assert!(f.deadline() < ttl);
        assert_eq!(f.check(Duration::from_secs(3), false), Standing::Healthy);
        assert_eq!(
            f.check(Duration::from_millis(6_666), false),
            Standing::Healthy
        );
        assert_eq!(
            f.check(Duration::from_millis(6_667), false),
            Standing::Fenced
        );
        assert_eq!(f.check(Duration::from_secs(9), false), Standing::Fenced);
    }

    #[test]
    fn a_lost_lease_fences_at_once() {
        let f = Fence::for_ttl(Duration::from_secs(10));
        assert_eq!(f.check(Duration::ZERO, true), Standing::Fenced);
    }
}
