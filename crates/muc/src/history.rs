//! Discussion history sent on join (XEP-0045 §7.2.13–§7.2.14): the room's newest
//! messages in memory, bounded in messages and bytes, and the selection a join asks for.
//! The room archive (XEP-0313) holds everything; this is the copy a join reads without
//! touching storage, refilled from the archive when a room starts on a node.

use std::collections::VecDeque;

use parley_proto::muc::HistoryRequest;
use parley_xml::Element;

/// One relayed message.
#[derive(Debug, Clone)]
pub(crate) struct Past {
    pub stamp_ms: i64,
    /// As relayed, without `to`.
    pub message: Element,
    /// Characters of its XML (§7.2.13 counts `maxchars` over the full stanza).
    pub chars: usize,
}

/// The newest messages of a room.
#[derive(Debug, Default)]
pub(crate) struct History {
    items: VecDeque<Past>,
    bytes: usize,
}

impl History {
    /// Keeps `message` (`chars` bytes of XML), then drops the oldest past `max_items` or
    /// `max_bytes`.
    pub fn push(
        &mut self,
        stamp_ms: i64,
        message: Element,
        chars: usize,
        max_items: usize,
        max_bytes: usize,
    ) {
        self.bytes += chars;
        self.items.push_back(Past {
            stamp_ms,
            message,
            chars,
        });
        self.trim(max_items, max_bytes);
    }

    pub fn trim(&mut self, max_items: usize, max_bytes: usize) {
        while self.items.len() > max_items || (self.bytes > max_bytes && !self.items.is_empty()) {
            if let Some(old) = self.items.pop_front() {
                self.bytes -= old.chars;
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// §7.2.13: the newest messages that pass every limit the join gave, oldest first;
    /// `default` messages when it gave none.
    pub fn select(
        &self,
        request: Option<&HistoryRequest>,
        default: usize,
        now_ms: i64,
    ) -> Vec<&Past> {
        let none = HistoryRequest::default();
        let r = request.unwrap_or(&none);
        let asked = r.maxstanzas.is_some()
            || r.maxchars.is_some()
            || r.seconds.is_some()
            || r.since_ms.is_some();
        let max_stanzas = match r.maxstanzas {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None if asked => usize::MAX,
            None => default,
        };
        let mut chars_left = r.maxchars.map(|c| usize::try_from(c).unwrap_or(usize::MAX));
        let oldest = match (r.seconds, r.since_ms) {
            (Some(s), Some(since)) => Some(since.max(now_ms - (s as i64).saturating_mul(1000))),
            (Some(s), None) => Some(now_ms - (s as i64).saturating_mul(1000)),
            (None, since) => since,
        };
        let mut picked = Vec::new();
        for past in self.items.iter().rev() {
            if picked.len() >= max_stanzas {
                break;
            }
            if oldest.is_some_and(|o| past.stamp_ms < o) {
                break;
            }
            if let Some(left) = chars_left.as_mut() {
                if past.chars > *left {
                    break;
                }
                *left -= past.chars;
            }
            picked.push(past);
        }
        picked.reverse();
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Element {
        Element::new("message", "jabber:client").with_attr("id", n.to_string())
    }

    fn filled() -> History {
        let mut h = History::default();
        for i in 0..10 {
            h.push(
                1000 * i as i64,
                msg(i),
                msg(i).to_string().len(),
                100,
                1 << 20,
            );
        }
        h
    }

    #[test]
    fn xep0045_7_2_13_maxstanzas_takes_the_newest() {
        let h = filled();
        let r = HistoryRequest {
            maxstanzas: Some(3),
            ..Default::default()
        };
        let ids: Vec<_> = h
            .select(Some(&r), 20, 10_000)
            .iter()
            .map(|p| p.message.attr("id").unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["7", "8", "9"]);
        let zero = HistoryRequest {
            maxstanzas: Some(0),
            ..Default::default()
        };
        assert!(h.select(Some(&zero), 20, 10_000).is_empty());
    }

    #[test]
    fn xep0045_7_2_13_seconds_since_and_maxchars_cut_older_messages() {
        let h = filled();
        let seconds = HistoryRequest {
            seconds: Some(3),
            ..Default::default()
        };
        // now 10 s: stamps 7, 8 and 9 s are within 3 s.
        assert_eq!(h.select(Some(&seconds), 20, 10_000).len(), 3);
        let since = HistoryRequest {
            since_ms: Some(8_000),
            ..Default::default()
        };
        assert_eq!(h.select(Some(&since), 20, 10_000).len(), 2);
        let one = h.select(None, 20, 0)[0].chars;
        let chars = HistoryRequest {
            maxchars: Some((one * 2) as u64),
            ..Default::default()
        };
        assert_eq!(h.select(Some(&chars), 20, 10_000).len(), 2);
        assert_eq!(
            h.select(None, 4, 10_000).len(),
            4,
            "the room's default applies"
        );
    }

    #[test]
    fn history_is_bounded_in_items_and_bytes() {
        let mut h = History::default();
        for i in 0..10 {
            h.push(
                i,
                msg(i as usize),
                msg(i as usize).to_string().len(),
                5,
                1 << 20,
            );
        }
        assert_eq!(h.len(), 5);
        let one = msg(1).to_string().len();
        let mut h = History::default();
        for i in 0..10 {
            h.push(i, msg(i as usize), one, 100, one * 3);
        }
        assert!(h.len() <= 3);
    }
}
