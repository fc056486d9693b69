//! Stream Management (XEP-0198, `urn:xmpp:sm:3`): the nonzas, read from and written to
//! elements, and the two counters with the queue of stanzas the peer has not acknowledged.
//!
//! Pure: no clock, no socket. The session decides when to send `<r/>` and what to do with
//! stanzas left in the queue; this module only keeps the arithmetic right (h is a 32-bit
//! counter that wraps, §4) and refuses what a peer may not say.

use std::collections::VecDeque;

use parley_xml::Element;

use crate::ns;
use crate::stanza_error::StanzaCondition;
use crate::stream_error::StreamCondition;

/// The Stream Management namespace, version 3.
pub const NS: &str = "urn:xmpp:sm:3";

/// A Stream Management element a client sends (§3–§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientNonza {
    /// §3: `<enable/>`, asking for resumption when `resume` is set, with the client's
    /// preferred resumption time in seconds.
    Enable { resume: bool, max: Option<u32> },
    /// §4: `<r/>`, a request for the server's count of handled stanzas.
    Request,
    /// §4: `<a h/>`, the client's count of stanzas it handled.
    Ack { h: u32 },
    /// §5: `<resume previd h/>`.
    Resume { previd: String, h: u32 },
}

/// Why an element in the SM namespace could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmParseError {
    /// An element this version does not define (the server answers `<failed/>`).
    #[error("unknown Stream Management element <{0}/>")]
    Unknown(String),
    /// `h` missing or not an unsigned 32-bit integer (§4: xs:unsignedInt).
    #[error("'h' must be an unsigned 32-bit integer")]
    BadH,
    /// `<resume/>` without `previd`.
    #[error("<resume/> needs a 'previd'")]
    NoPrevid,
}

/// Reads `h`: an `xs:unsignedInt` (§4). Leading `+` or whitespace is not one.
fn parse_h(el: &Element) -> Result<u32, SmParseError> {
    let raw = el.attr("h").ok_or(SmParseError::BadH)?;
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SmParseError::BadH);
    }
    raw.parse().map_err(|_| SmParseError::BadH)
}

impl ClientNonza {
    /// Reads `el`, which is in the SM namespace.
    pub fn parse(el: &Element) -> Result<ClientNonza, SmParseError> {
        debug_assert_eq!(el.ns(), NS);
        match el.name() {
            "enable" => Ok(ClientNonza::Enable {
                // §3: a boolean; "1" is as true as "true".
                resume: matches!(el.attr("resume"), Some("true" | "1")),
                // A `max` that is not a number is ignored, as a missing one would be.
                max: el.attr("max").and_then(|m| m.parse().ok()),
            }),
            "r" => Ok(ClientNonza::Request),
            "a" => Ok(ClientNonza::Ack { h: parse_h(el)? }),
            "resume" => {
                let previd = el
                    .attr("previd")
                    .filter(|p| !p.is_empty())
                    .ok_or(SmParseError::NoPrevid)?;
                Ok(ClientNonza::Resume {
                    previd: previd.to_owned(),
                    h: parse_h(el)?,
                })
            }
            other => Err(SmParseError::Unknown(other.to_owned())),
        }
    }
}

/// §3: `<enabled/>`; with `id`, `resume='true'` and `max` when the session may be resumed,
/// and `location` when the operator names where clients should reconnect.
pub fn enabled(resumable: Option<(&str, u32)>, location: Option<&str>) -> Element {
    let mut el = Element::new("enabled", NS);
    if let Some((id, max)) = resumable {
        el = el
            .with_attr("id", id)
            .with_attr("resume", "true")
            .with_attr("max", max.to_string());
        if let Some(loc) = location {
            el = el.with_attr("location", loc);
        }
    }
    el
}

/// §4: `<a h/>`.
pub fn ack(h: u32) -> Element {
    Element::new("a", NS).with_attr("h", h.to_string())
}

/// §4: `<r/>`.
pub fn request() -> Element {
    Element::new("r", NS)
}

/// §5: `<resumed previd h/>`.
pub fn resumed(previd: &str, h: u32) -> Element {
    Element::new("resumed", NS)
        .with_attr("previd", previd)
        .with_attr("h", h.to_string())
}

/// §6: `<failed/>` with a stanza error condition, and `h` where the server knows it (§5:
/// a failed resumption tells the client what the server handled, so it can resend the rest).
pub fn failed(condition: StanzaCondition, h: Option<u32>, text: Option<&str>) -> Element {
    let mut el = Element::new("failed", NS);
    if let Some(h) = h {
        el = el.with_attr("h", h.to_string());
    }
    el = el.with_child(Element::new(condition.as_str(), ns::STANZA_ERRORS));
    if let Some(text) = text {
        el = el.with_child(Element::new("text", ns::STANZA_ERRORS).with_text(text));
    }
    el
}

/// §4: the stream error for an `<a/>` that acknowledges more than was sent: the text the
/// XEP gives, and its application condition.
pub fn handled_count_too_high(h: u32, sent: u32) -> Element {
    Element::new("error", ns::STREAM)
        .with_child(Element::new(
            StreamCondition::UndefinedCondition.as_str(),
            ns::STREAM_ERRORS,
        ))
        .with_child(
            Element::new("handled-count-too-high", NS)
                .with_attr("h", h.to_string())
                .with_attr("send-count", sent.to_string()),
        )
        .with_child(Element::new("text", ns::STREAM_ERRORS).with_text(format!(
            "You acknowledged {h} stanza{}, while I only sent {sent} so far.",
            if h == 1 { "" } else { "s" }
        )))
}

/// Whether `el` is a stanza that Stream Management counts (§4: only `<message/>`,
/// `<presence/>` and `<iq/>`; nonzas never).
pub fn counts(el: &Element) -> bool {
    matches!(el.name(), "message" | "presence" | "iq")
}

/// An ack that acknowledges more than was sent (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooHigh {
    /// What the peer claimed.
    pub h: u32,
    /// What was sent.
    pub sent: u32,
}

/// Stanzas sent to the peer since `<enabled/>` and not yet acknowledged, with the counter
/// the peer acknowledges against. `T` is whatever the caller keeps per stanza (the stanza
/// and when it was queued); `size` of each item is counted against a byte bound.
///
/// Invariant: `sent() == acked + queue.len()` (mod 2^32). Retransmission after a resume
/// resends the queue without counting it again, as §5 wants.
#[derive(Debug)]
pub struct Unacked<T> {
    acked: u32,
    /// Acknowledged stanzas in all, unwrapped: how far back a late ack may reach.
    ever_acked: u64,
    queue: VecDeque<(T, usize)>,
    bytes: usize,
}

impl<T> Default for Unacked<T> {
    fn default() -> Self {
        Unacked {
            acked: 0,
            ever_acked: 0,
            queue: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Unacked<T> {
    /// The count of stanzas sent since enable, modulo 2^32 (§4).
    pub fn sent(&self) -> u32 {
        self.acked.wrapping_add(self.queue.len() as u32)
    }

    /// The last `h` the peer acknowledged.
    pub fn acked(&self) -> u32 {
        self.acked
    }

    /// Stanzas sent and not acknowledged.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether everything sent has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes held, as the caller sized the items.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records one more stanza sent.
    pub fn push(&mut self, item: T, size: usize) {
        self.bytes += size;
        self.queue.push_back((item, size));
    }

    /// Applies the peer's `h`: drops what it covers and returns how many that was. An `h`
    /// behind the last one is a stale ack (the peer sends `<a/>` unasked, and a wrapped
    /// counter looks smaller): nothing is dropped. An `h` ahead of what was sent is refused.
    pub fn ack(&mut self, h: u32) -> Result<usize, TooHigh> {
        // Distances are taken modulo 2^32, so that h = 3 after 2^32 - 1 is 4 stanzas on.
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.queue.len() {
            // A step back to a count that was acknowledged before (a late or repeated ack)
            // is not an error; anything else is.
            if u64::from(self.acked.wrapping_sub(h)) <= self.ever_acked {
                return Ok(0);
            }
            return Err(TooHigh {
                h,
                sent: self.sent(),
            });
        }
        for _ in 0..newly {
            if let Some((_, size)) = self.queue.pop_front() {
                self.bytes -= size;
            }
        }
        self.acked = h;
        self.ever_acked += newly as u64;
        Ok(newly)
    }

    /// The unacknowledged stanzas, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queue.iter().map(|(t, _)| t)
    }

    /// Takes every unacknowledged stanza out, oldest first (the session is ending, and
    /// they go elsewhere).
    pub fn drain(&mut self) -> Vec<T> {
        self.bytes = 0;
        self.ever_acked += self.queue.len() as u64;
        self.acked = self.sent();
        self.queue.drain(..).map(|(t, _)| t).collect()
    }

    /// Starts counting at `acked`, with nothing acknowledged before here.
    pub fn starting_at(acked: u32) -> Unacked<T> {
        Unacked {
            acked,
            ..Unacked::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn xep0198_3_enable_reads_resume_and_max() {
        let e = ClientNonza::parse(&el(
            "<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>",
        ));
        assert_eq!(
            e,
            Ok(ClientNonza::Enable {
                resume: true,
                max: Some(60)
            })
        );
        let e = ClientNonza::parse(&el("<enable xmlns='urn:xmpp:sm:3' resume='1' max='x'/>"));
        assert_eq!(
            e,
            Ok(ClientNonza::Enable {
                resume: true,
                max: None
            })
        );
        let e = ClientNonza::parse(&el("<enable xmlns='urn:xmpp:sm:3'/>"));
        assert_eq!(
            e,
            Ok(ClientNonza::Enable {
                resume: false,
                max: None
            })
        );
    }

    #[test]
    fn xep0198_4_h_must_be_an_unsigned_int() {
        for bad in ["", "-1", "+1", " 1", "4294967296", "x", "1.0"] {
            let xml = format!("<a xmlns='urn:xmpp:sm:3' h='{bad}'/>");
            assert_eq!(
                ClientNonza::parse(&el(&xml)),
                Err(SmParseError::BadH),
                "{bad}"
            );
        }
        assert_eq!(
            ClientNonza::parse(&el("<a xmlns='urn:xmpp:sm:3'/>")),
            Err(SmParseError::BadH)
        );
        assert_eq!(
            ClientNonza::parse(&el("<a xmlns='urn:xmpp:sm:3' h='4294967295'/>")),
            Ok(ClientNonza::Ack { h: u32::MAX })
        );
    }

    #[test]
    fn xep0198_5_resume_needs_previd_and_h() {
        assert_eq!(
            ClientNonza::parse(&el("<resume xmlns='urn:xmpp:sm:3' previd='abc' h='7'/>")),
            Ok(ClientNonza::Resume {
                previd: "abc".into(),
                h: 7
            })
        );
        assert_eq!(
            ClientNonza::parse(&el("<resume xmlns='urn:xmpp:sm:3' h='7'/>")),
            Err(SmParseError::NoPrevid)
        );
        assert_eq!(
            ClientNonza::parse(&el("<resume xmlns='urn:xmpp:sm:3' previd='a'/>")),
            Err(SmParseError::BadH)
        );
        assert!(matches!(
            ClientNonza::parse(&el("<enabled xmlns='urn:xmpp:sm:3'/>")),
            Err(SmParseError::Unknown(_))
        ));
    }

    #[test]
    fn xep0198_3_enabled_carries_id_and_max_only_when_resumable() {
        let e = enabled(Some(("id1", 300)), Some("xmpp.example:5222"));
        assert_eq!(e.attr("id"), Some("id1"));
        assert_eq!(e.attr("resume"), Some("true"));
        assert_eq!(e.attr("max"), Some("300"));
        assert_eq!(e.attr("location"), Some("xmpp.example:5222"));
        let e = enabled(None, Some("ignored"));
        assert_eq!(e.attr("id"), None);
        assert_eq!(e.attr("resume"), None);
        assert_eq!(e.attr("location"), None);
    }

    #[test]
    fn xep0198_4_acks_drop_what_they_cover() {
        let mut q = Unacked::default();
        for i in 0..5 {
            q.push(i, 10);
        }
        assert_eq!(q.sent(), 5);
        assert_eq!(q.ack(2), Ok(2));
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(q.bytes(), 30);
        // A repeated or late ack drops nothing.
        assert_eq!(q.ack(2), Ok(0));
        assert_eq!(q.ack(1), Ok(0));
        assert_eq!(q.ack(5), Ok(3));
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn xep0198_4_an_ack_above_what_was_sent_is_refused() {
        let mut q = Unacked::default();
        q.push((), 1);
        assert_eq!(q.ack(2), Err(TooHigh { h: 2, sent: 1 }));
        assert_eq!(
            q.ack(u32::MAX / 2),
            Err(TooHigh {
                h: u32::MAX / 2,
                sent: 1
            })
        );
        let mut empty: Unacked<()> = Unacked::default();
        assert_eq!(
            empty.ack(u32::MAX),
            Err(TooHigh {
                h: u32::MAX,
                sent: 0
            })
        );
        assert_eq!(empty.ack(0), Ok(0));
    }

    #[test]
    fn xep0198_4_h_wraps_around_at_2_pow_32() {
        let mut q = Unacked::starting_at(u32::MAX - 1);
        for i in 0..4 {
            q.push(i, 1);
        }
        // Sent: 2^32 - 1, 0, 1, 2 (mod 2^32).
        assert_eq!(q.sent(), 2);
        assert_eq!(q.ack(u32::MAX), Ok(1));
        assert_eq!(q.ack(1), Ok(2));
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(q.ack(3), Err(TooHigh { h: 3, sent: 2 }));
        assert_eq!(q.ack(2), Ok(1));
    }

    #[test]
    fn xep0198_6_failed_carries_the_condition_and_h() {
        let f = failed(StanzaCondition::ItemNotFound, Some(3), None);
        assert_eq!(f.attr("h"), Some("3"));
        assert!(f.has_child("item-not-found", ns::STANZA_ERRORS));
        let f = failed(StanzaCondition::UnexpectedRequest, None, Some("bind first"));
        assert_eq!(f.attr("h"), None);
        assert!(f.has_child("unexpected-request", ns::STANZA_ERRORS));
    }

    #[test]
    fn xep0198_4_too_high_error_text_and_condition() {
        let e = handled_count_too_high(3, 1);
        let err = crate::stream_error::StreamError::from_element(&e).unwrap();
        assert_eq!(err.condition, StreamCondition::UndefinedCondition);
        assert_eq!(
            err.text.as_deref(),
            Some("You acknowledged 3 stanzas, while I only sent 1 so far.")
        );
        let app = e.get_child("handled-count-too-high", NS).unwrap();
        assert_eq!(app.attr("send-count"), Some("1"));
    }

    #[test]
    fn xep0198_4_only_stanzas_count() {
        assert!(counts(&el("<message xmlns='jabber:client'/>")));
        assert!(counts(&el("<iq xmlns='jabber:client'/>")));
        assert!(!counts(&el("<r xmlns='urn:xmpp:sm:3'/>")));
    }
}
