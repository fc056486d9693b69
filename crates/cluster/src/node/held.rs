//! Frames held until the registry shows their sender's claim, one line per peer and user.
//!
//! A frame about a session that the registry does not show yet (an attach just after a bind
//! or a resume elsewhere) waits for the watch to catch up. It used to wait in its link, and
//! then every frame behind it waited too, for every user. Now it waits in a line of its own,
//! keyed by its sender and the user it concerns: later frames of that peer about that user
//! join the line behind it (a user's frames keep their order), and frames about anyone else
//! go on at once.
//!
//! The lines of one peer are bounded in frames and bytes (`cluster.registry_wait_frames`,
//! `cluster.registry_wait_bytes`). A frame that would pass the bound makes its link stop
//! reading until there is room again: the peer's TCP window fills, and nothing is dropped.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::link::Body;

/// The bounds on one peer's held frames.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldBounds {
    /// Frames held at once.
    pub(super) frames: usize,
    /// Their bytes on the wire.
    pub(super) bytes: usize,
}

/// A peer and a user (bare JID as the peer wrote it).
type Key = (String, String);

#[derive(Default)]
struct Inner {
    /// Frames that joined a line behind the one its waiter is working on.
    lines: HashMap<Key, VecDeque<(Body, usize)>>,
    /// Frames and bytes held per peer, the lines' heads included.
    load: HashMap<String, (usize, usize)>,
}

/// What [`Held::join`] did with a frame.
pub(super) enum Joined {
    /// A line for its user was waiting: the frame is in it.
    Queued,
    /// No line for its user: judge it now.
    Free(Body),
    /// The peer's lines are full: the link waits for room ([`Held::room`]).
    Full(Body),
}

pub(super) struct Held {
    inner: Mutex<Inner>,
    /// Signalled whenever a held frame leaves.
    freed: Notify,
    bounds: HeldBounds,
}

impl Held {
    pub(super) fn new(bounds: HeldBounds) -> Held {
        Held {
            inner: Mutex::new(Inner::default()),
            freed: Notify::new(),
            bounds,
        }
    }

    fn fits(&self, inner: &Inner, peer: &str, bytes: usize) -> bool {
        let (frames, held) = inner.load.get(peer).copied().unwrap_or((0, 0));
        // An empty peer always takes one frame, however large (one frame is bounded by
        // `cluster.max_frame_bytes` already).
        frames == 0 || (frames < self.bounds.frames && held + bytes <= self.bounds.bytes)
    }

    /// Puts `body` at the end of its user's line when one is waiting.
    pub(super) fn join(&self, peer: &str, user: &str, body: Body, bytes: usize) -> Joined {
        let mut inner = self.inner.lock();
        let key = (peer.to_owned(), user.to_owned());
        if !inner.lines.contains_key(&key) {
            return Joined::Free(body);
        }
        if !self.fits(&inner, peer, bytes) {
            return Joined::Full(body);
        }
        add(&mut inner.load, peer, bytes);
        if let Some(line) = inner.lines.get_mut(&key) {
            line.push_back((body, bytes));
        }
        Joined::Queued
    }

    /// Opens a line for `user` of `peer` whose head (`bytes` long) the caller waits on;
    /// false when the peer's lines are full.
    pub(super) fn open(&self, peer: &str, user: &str, bytes: usize) -> bool {
        let mut inner = self.inner.lock();
        if !self.fits(&inner, peer, bytes) {
            return false;
        }
        add(&mut inner.load, peer, bytes);
        inner
            .lines
            .insert((peer.to_owned(), user.to_owned()), VecDeque::new());
        true
    }

    /// A held frame of `peer`, `bytes` long, was acted on or refused.
    pub(super) fn done(&self, peer: &str, bytes: usize) {
        let mut inner = self.inner.lock();
        if let Some(load) = inner.load.get_mut(peer) {
            load.0 = load.0.saturating_sub(1);
            load.1 = load.1.saturating_sub(bytes);
            if load.0 == 0 {
                inner.load.remove(peer);
            }
        }
        drop(inner);
        self.freed.notify_waiters();
    }

    /// The next frame in the line of `user` of `peer`; None, with the line closed, when it
    /// is empty (so that the next frame about that user is judged at once).
    pub(super) fn next(&self, peer: &str, user: &str) -> Option<(Body, usize)> {
        let mut inner = self.inner.lock();
        let key = (peer.to_owned(), user.to_owned());
        let next = inner.lines.get_mut(&key).and_then(VecDeque::pop_front);
        if next.is_none() {
            inner.lines.remove(&key);
        }
        next
    }

    /// Waits until `peer` could hold a frame of `bytes` more.
    pub(super) async fn room(&self, peer: &str, bytes: usize) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.fits(&self.inner.lock(), peer, bytes) {
                return;
            }
            freed.await;
        }
    }

    /// Frames held for `peer` now.
    #[cfg(test)]
    fn frames(&self, peer: &str) -> usize {
        self.inner.lock().load.get(peer).map_or(0, |l| l.0)
    }
}

fn add(load: &mut HashMap<String, (usize, usize)>, peer: &str, bytes: usize) {
    let l = load.entry(peer.to_owned()).or_default();
    l.0 += 1;
    l.1 += bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(i: u64) -> Body {
        Body::Ping(i)
    }

    fn held(frames: usize, bytes: usize) -> Held {
        Held::new(HeldBounds { frames, bytes })
    }

    #[test]
    fn a_users_frames_queue_behind_its_waiting_line_in_order_and_others_go_free() {
        let h = held(10, 10_000);
        assert!(h.open("n2", "alice@x", 10));
        assert!(matches!(
            h.join("n2", "alice@x", ping(1), 10),
            Joined::Queued
        ));
        assert!(matches!(
            h.join("n2", "alice@x", ping(2), 10),
            Joined::Queued
        ));
        // Another user, and the same user from another peer: not held up.
        assert!(matches!(
            h.join("n2", "bob@x", ping(3), 10),
            Joined::Free(_)
        ));
        assert!(matches!(
            h.join("n3", "alice@x", ping(4), 10),
            Joined::Free(_)
        ));
        assert_eq!(h.frames("n2"), 3);
        h.done("n2", 10);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let (b, bytes) = h.next("n2", "alice@x")?;
            h.done("n2", bytes);
            match b {
                Body::Ping(i) => Some(i),
                _ => None,
            }
        })
        .collect();
        assert_eq!(order, [1, 2]);
        assert_eq!(h.frames("n2"), 0);
        // The line closed with its last frame: the user's next frame is judged at once.
        assert!(matches!(
            h.join("n2", "alice@x", ping(5), 10),
            Joined::Free(_)
        ));
    }

    #[test]
    fn a_peers_lines_are_bounded_in_frames_and_bytes() {
        let h = held(2, 1_000);
        assert!(h.open("n2", "alice@x", 600));
        assert!(
            !h.open("n2", "bob@x", 600),
            "600 + 600 bytes pass the bound"
        );
        assert!(matches!(
            h.join("n2", "alice@x", ping(1), 100),
            Joined::Queued
        ));
        assert!(
            matches!(h.join("n2", "alice@x", ping(2), 100), Joined::Full(_)),
            "two frames are the bound"
        );
        // Other peers have their own room; an empty peer takes even a large frame.
        assert!(h.open("n3", "alice@x", 5_000));
    }

    #[tokio::test]
    async fn room_comes_when_a_held_frame_leaves() {
        let h = std::sync::Arc::new(held(1, 1_000));
        assert!(h.open("n2", "alice@x", 10));
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.room("n2", 10).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert!(h.next("n2", "alice@x").is_none());
        h.done("n2", 10);
        waiter.await.unwrap();
    }
}
