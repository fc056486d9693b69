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
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The user a frame is about (the bare JID as the peer wrote it), for the frames whose
/// order per user matters and that may wait; None for the rest, which never wait.
pub(super) fn user_of(body: &Body) -> Option<&str> {
    match body {
        Body::ToUser { user, .. } => Some(user),
        // Behind the broadcast it follows (a fence names its one user).
        Body::Sync { users, .. } if users.len() == 1 => users.first().map(String::as_str),
        Body::ToSession { jid, .. } | Body::Close { jid, .. } => {
            Some(jid.split_once('/').map_or(jid.as_str(), |(bare, _)| bare))
        }
        _ => None,
    }
}

/// One peer's lines: by user, the frames behind the head its waiter works on; and what
/// they hold, the heads included.
#[derive(Default)]
struct PeerLines {
    lines: HashMap<String, VecDeque<(Body, usize)>>,
    frames: usize,
    bytes: usize,
}

impl PeerLines {
    fn fits(&self, bounds: HeldBounds, bytes: usize) -> bool {
        // An empty peer always takes one frame, however large (one frame is bounded by
        // `cluster.max_frame_bytes` already).
        self.frames == 0 || (self.frames < bounds.frames && self.bytes + bytes <= bounds.bytes)
    }

    fn add(&mut self, bytes: usize) {
        self.frames += 1;
        self.bytes += bytes;
    }
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
    peers: Mutex<HashMap<String, PeerLines>>,
    /// Lines open on this node, so that the frames of a node with none (nearly all of
    /// them) pass without taking the lock.
    open_lines: AtomicUsize,
    /// Signalled whenever a held frame leaves.
    freed: Notify,
    bounds: HeldBounds,
}

impl Held {
    pub(super) fn new(bounds: HeldBounds) -> Held {
        Held {
            peers: Mutex::new(HashMap::new()),
            open_lines: AtomicUsize::new(0),
            freed: Notify::new(),
            bounds,
        }
    }

    fn fits(&self, peer: &str, bytes: usize) -> bool {
        self.peers
            .lock()
            .get(peer)
            .is_none_or(|p| p.fits(self.bounds, bytes))
    }

    /// Puts `body` (from `peer`, `bytes` long) at the end of its user's line when one is
    /// waiting.
    pub(super) fn join(&self, peer: &str, body: Body, bytes: usize) -> Joined {
        if self.open_lines.load(Ordering::Acquire) == 0 {
            return Joined::Free(body);
        }
        let Some(user) = user_of(&body) else {
            return Joined::Free(body);
        };
        let mut peers = self.peers.lock();
        let Some(p) = peers.get_mut(peer) else {
            return Joined::Free(body);
        };
        if !p.lines.contains_key(user) {
            return Joined::Free(body);
        }
        if !p.fits(self.bounds, bytes) {
            return Joined::Full(body);
        }
        p.add(bytes);
        if let Some(line) = p.lines.get_mut(user) {
            line.push_back((body, bytes));
        }
        Joined::Queued
    }

    /// Opens a line for `user` of `peer` whose head (`bytes` long) the caller waits on;
    /// false when the peer's lines are full.
    pub(super) fn open(&self, peer: &str, user: &str, bytes: usize) -> bool {
        let mut peers = self.peers.lock();
        let p = peers.entry(peer.to_owned()).or_default();
        if !p.fits(self.bounds, bytes) {
            return false;
        }
        p.add(bytes);
        p.lines.insert(user.to_owned(), VecDeque::new());
        self.open_lines.fetch_add(1, Ordering::Release);
        true
    }

    /// A held frame of `peer`, `bytes` long, was acted on or refused.
    pub(super) fn done(&self, peer: &str, bytes: usize) {
        let mut peers = self.peers.lock();
        if let Some(p) = peers.get_mut(peer) {
            p.frames = p.frames.saturating_sub(1);
            p.bytes = p.bytes.saturating_sub(bytes);
            if p.frames == 0 && p.lines.is_empty() {
                peers.remove(peer);
            }
        }
        drop(peers);
        self.freed.notify_waiters();
    }

    /// The next frame in the line of `user` of `peer`; None, with the line closed, when it
    /// is empty (so that the next frame about that user is judged at once).
    pub(super) fn next(&self, peer: &str, user: &str) -> Option<(Body, usize)> {
        let mut peers = self.peers.lock();
        let p = peers.get_mut(peer)?;
        let next = p.lines.get_mut(user).and_then(VecDeque::pop_front);
        if next.is_none() && p.lines.remove(user).is_some() {
            self.open_lines.fetch_sub(1, Ordering::Release);
            if p.frames == 0 && p.lines.is_empty() {
                peers.remove(peer);
            }
        }
        next
    }

    /// Waits until `peer` could hold a frame of `bytes` more.
    pub(super) async fn room(&self, peer: &str, bytes: usize) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.fits(peer, bytes) {
                return;
            }
            freed.await;
        }
    }

    /// Frames held for `peer` now.
    #[cfg(test)]
    fn frames(&self, peer: &str) -> usize {
        self.peers.lock().get(peer).map_or(0, |p| p.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame about `user` whose session number marks its order.
    fn frame(user: &str, i: u64) -> Body {
        Body::ToSession {
            jid: format!("{user}/r"),
            session: i,
            xml: String::new(),
        }
    }

    fn number(b: &Body) -> u64 {
        match b {
            Body::ToSession { session, .. } => *session,
            _ => unreachable!(),
        }
    }

    fn held(frames: usize, bytes: usize) -> Held {
        Held::new(HeldBounds { frames, bytes })
    }

    #[test]
    fn a_users_frames_queue_behind_its_waiting_line_in_order_and_others_go_free() {
        let h = held(10, 10_000);
        assert!(matches!(
            h.join("n2", frame("alice@x", 0), 10),
            Joined::Free(_)
        ));
        assert!(h.open("n2", "alice@x", 10));
        assert!(matches!(
            h.join("n2", frame("alice@x", 1), 10),
            Joined::Queued
        ));
        assert!(matches!(
            h.join("n2", frame("alice@x", 2), 10),
            Joined::Queued
        ));
        // Another user, the same user from another peer, a frame about no user: not held up.
        assert!(matches!(
            h.join("n2", frame("bob@x", 3), 10),
            Joined::Free(_)
        ));
        assert!(matches!(
            h.join("n3", frame("alice@x", 4), 10),
            Joined::Free(_)
        ));
        assert!(matches!(h.join("n2", Body::Ping(5), 10), Joined::Free(_)));
        assert_eq!(h.frames("n2"), 3);
        h.done("n2", 10);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let (b, bytes) = h.next("n2", "alice@x")?;
            h.done("n2", bytes);
            Some(number(&b))
        })
        .collect();
        assert_eq!(order, [1, 2]);
        assert_eq!(h.frames("n2"), 0);
        // The line closed with its last frame: the user's next frame is judged at once.
        assert!(matches!(
            h.join("n2", frame("alice@x", 6), 10),
            Joined::Free(_)
        ));
        assert_eq!(h.open_lines.load(Ordering::Acquire), 0);
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
            h.join("n2", frame("alice@x", 1), 100),
            Joined::Queued
        ));
        assert!(
            matches!(h.join("n2", frame("alice@x", 2), 100), Joined::Full(_)),
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
