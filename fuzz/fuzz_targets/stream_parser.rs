//! RFC 6120 stream parser (`parley_xml::StreamParser`, TCP framing), fed at cut points the
//! input chooses (see `parley_fuzz::split_input`).
//!
//! Invariants: no panic; the events and the first error are the same as when the whole
//! input arrives at once (RFC 6120 §4: a stream is a byte stream, TCP may cut it anywhere);
//! a failed parser keeps its error and holds no input; every stanza survives a round trip
//! through the serializer; every error maps onto a stream error that is itself XML.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::{assert_round_trips, small_limits, split_input};
use parley_proto::stream_error::StreamError;
use parley_xml::{Element, Event, StreamParser, XmlError};

/// Feeds `pieces` in order and drains events after each, restarting the stream after
/// `<auth/>` as the session does after SASL success (RFC 6120 §4.3.3), so that pipelined
/// restart headers are covered too.
fn drive(pieces: &[&[u8]]) -> (Vec<Event>, Option<XmlError>) {
    let mut p = StreamParser::new(small_limits());
    let mut events = Vec::new();
    for piece in pieces {
        p.feed(piece);
        loop {
            match p.next_event() {
                Ok(Some(ev)) => {
                    if matches!(&ev, Event::Stanza(e) if e.name() == "auth") {
                        p.restart();
                    }
                    events.push(ev);
                }
                Ok(None) => break,
                Err(e) => {
                    // Poisoned: the same error again, and no buffered input kept.
                    assert_eq!(p.next_event(), Err(e.clone()));
                    assert_eq!(p.buffered_len(), 0);
                    p.feed(b"<more/>");
                    assert_eq!(p.buffered_len(), 0);
                    return (events, Some(e));
                }
            }
        }
        assert!(p.buffered_len() <= pieces.iter().map(|p| p.len()).sum::<usize>());
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let (pieces, whole) = split_input(data);
    let cut = drive(&pieces);
    let one = drive(&[whole]);
    assert_eq!(cut, one, "the result depends on where the input was cut");
    for ev in &one.0 {
        if let Event::Stanza(el) = ev {
            assert_round_trips(el);
        }
    }
    if let Some(e) = &one.1 {
        let xml = StreamError::from(e).to_element().to_string();
        let back = Element::parse(xml.as_bytes(), &parley_fuzz::no_limits())
            .unwrap_or_else(|err| panic!("our stream error {xml:?} is not XML: {err}"));
        // The condition survives; characters XML cannot carry in the text become U+FFFD.
        let read = StreamError::from_element(&back).expect("reads back as a stream error");
        assert_eq!(read.condition, StreamError::from(e).condition);
    }
});
