//! The bounded outbound queue of a session.
//!
//! Serialized stanzas are appended to one contiguous buffer so that a burst is written with a
//! single `write` call. The queue is bounded by stanzas and by bytes; when a client stops
//! reading, the session closes it instead of growing without bound. An empty queue gives its
//! buffer back, because idle sessions are the common case and their memory is what counts.

use std::collections::VecDeque;

use crate::connection::Unit;

/// Returned when a push would exceed a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Outbound bytes, with the end offset and the kind of each unit in them.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    written: usize,
    ends: VecDeque<(usize, Unit)>,
    max_stanzas: usize,
    max_bytes: usize,
}

/// What a queue that was empty reserves on its next push: most bursts (a stanza or a few)
/// fit, so they are written without growing the buffer.
const FIRST_CAPACITY: usize = 1024;

impl Outbox {
    /// An empty queue with the given bounds.
    pub fn new(max_stanzas: usize, max_bytes: usize) -> Outbox {
        Outbox {
            buf: Vec::new(),
            written: 0,
            ends: VecDeque::new(),
            max_stanzas,
            max_bytes,
        }
    }

    /// Appends one unit (a stanza or stream-level data) written by `write`. Refused past the
    /// bounds; the bytes already written by `write` are then discarded.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Full> {
        self.reserve_first();
        let start = self.buf.len();
        write(&mut self.buf);
        if self.ends.len() >= self.max_stanzas || self.pending() > self.max_bytes {
            self.buf.truncate(start);
            return Err(Full);
        }
        self.ends.push_back((self.buf.len(), Unit::Element));
        Ok(())
    }

    /// Appends control data (stream headers, errors, the closing tag) without any bound: the
    /// session must always be able to say why it closes.
    pub fn push_unbounded(&mut self, data: &[u8]) {
        self.push_unit(Unit::Element, data);
    }

    /// Like [`push_unbounded`](Self::push_unbounded), for a unit of kind `unit` (a header,
    /// a stream error, the close).
    pub fn push_unit(&mut self, unit: Unit, data: &[u8]) {
        self.reserve_first();
        self.buf.extend_from_slice(data);
        self.ends.push_back((self.buf.len(), unit));
    }

    fn reserve_first(&mut self) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(FIRST_CAPACITY);
        }
    }

    /// Whether the session should stop taking input: the queue is at least half full (in
    /// bytes or units). Answers to the client's own requests (stream features, SASL
    /// challenges, iq results) are then not produced faster than the client reads them, and
    /// the other half stays for stanzas from others.
    pub fn input_paused(&self) -> bool {
        let half_bytes = (self.max_bytes / 2).max(1);
        let half_units = (self.max_stanzas / 2).max(1);
        self.pending() >= half_bytes || self.ends.len() >= half_units
    }

    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// The bytes to write next.
    pub fn front(&self) -> &[u8] {
        &self.buf[self.written..]
    }

    /// The rest of the next unit (one stanza or stream-level element): what a framed
    /// transport sends as one message.
    pub fn front_unit(&self) -> &[u8] {
        let end = self.ends.front().map_or(self.buf.len(), |&(end, _)| end);
        &self.buf[self.written..end]
    }

    /// The kind of the next unit.
    pub fn front_kind(&self) -> Unit {
        self.ends.front().map_or(Unit::Element, |&(_, unit)| unit)
    }

    /// Records that `n` bytes of [`front`](Self::front) were written.
    pub fn consume(&mut self, n: usize) {
        self.written += n;
        while self
            .ends
            .front()
            .is_some_and(|&(end, _)| end <= self.written)
        {
            self.ends.pop_front();
        }
        if self.written == self.buf.len() {
            // Drained: an idle session keeps no buffer at all (an allocation per burst is
            // cheap; a kilobyte held by each of a million idle sessions is not).
            self.written = 0;
            self.buf = Vec::new();
            self.ends = VecDeque::new();
        } else if self.written > 64 * 1024 && self.written > self.buf.len() / 2 {
            // A slow reader with a steady trickle: reclaim the written prefix.
            self.buf.drain(..self.written);
            for (end, _) in self.ends.iter_mut() {
                *end -= self.written;
            }
            self.written = 0;
        }
    }

    /// Drops everything not yet written (the connection is gone).
    pub fn clear(&mut self) {
        *self = Outbox::new(self.max_stanzas, self.max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_stanzas() {
        let mut o = Outbox::new(2, 1000);
        assert!(o.push_with(|b| b.extend_from_slice(b"<a/>")).is_ok());
        assert!(o.push_with(|b| b.extend_from_slice(b"<b/>")).is_ok());
        assert_eq!(o.push_with(|b| b.extend_from_slice(b"<c/>")), Err(Full));
        assert_eq!(o.front(), b"<a/><b/>");
        o.consume(4);
        assert!(o.push_with(|b| b.extend_from_slice(b"<c/>")).is_ok());
        assert_eq!(o.front(), b"<b/><c/>");
    }

    #[test]
    fn bounded_by_bytes_and_refused_bytes_are_discarded() {
        let mut o = Outbox::new(100, 6);
        assert!(o.push_with(|b| b.extend_from_slice(b"<a/>")).is_ok());
        assert_eq!(o.push_with(|b| b.extend_from_slice(b"<bb/>")), Err(Full));
        assert_eq!(o.front(), b"<a/>");
        o.push_unbounded(b"</stream:stream>");
        assert_eq!(o.pending(), 4 + 16);
    }

    #[test]
    fn input_pauses_at_half_the_bound_whatever_was_pushed() {
        let mut o = Outbox::new(4, 100);
        o.push_unbounded(b"<stream:features/>");
        assert!(!o.input_paused());
        o.push_unbounded(b"<challenge/>");
        assert!(o.input_paused(), "two of four units");
        o.consume(o.front().len());
        assert!(!o.input_paused());
        o.push_unbounded(&[b'x'; 50]);
        assert!(o.input_paused(), "half of the bytes");
    }

    #[test]
    fn rfc7395_3_6_units_keep_their_kind_until_written() {
        let mut o = Outbox::new(10, 1000);
        o.push_unit(Unit::Header, b"<open/>");
        o.push_with(|b| b.extend_from_slice(b"<a/>")).unwrap();
        o.push_unit(Unit::Close, b"<close/>");
        assert_eq!(
            (o.front_unit(), o.front_kind()),
            (&b"<open/>"[..], Unit::Header)
        );
        o.consume(3);
        assert_eq!(
            o.front_kind(),
            Unit::Header,
            "a unit keeps its kind while partly written"
        );
        o.consume(4);
        assert_eq!(
            (o.front_unit(), o.front_kind()),
            (&b"<a/>"[..], Unit::Element)
        );
        o.consume(4);
        assert_eq!(
            (o.front_unit(), o.front_kind()),
            (&b"<close/>"[..], Unit::Close)
        );
    }

    #[test]
    fn drained_queue_releases_its_buffer() {
        let mut o = Outbox::new(100, 1 << 20);
        o.push_with(|b| b.extend_from_slice(&[b'x'; 4000])).unwrap();
        o.consume(1000);
        assert_eq!(o.pending(), 3000);
        o.consume(3000);
        assert!(o.is_empty());
        assert_eq!(o.buf.capacity(), 0);
        // A small burst too: an idle session holds nothing.
        o.push_unbounded(b"<presence/>");
        o.consume(11);
        assert_eq!((o.buf.capacity(), o.ends.capacity()), (0, 0));
    }
}
