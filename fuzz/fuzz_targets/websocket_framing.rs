//! RFC 7395 WebSocket framing: the path a WebSocket text message takes into the session,
//! i.e. `StreamParser::new_framed` fed message by message, then the session's dispatch
//! (`<open/>`/`<close/>` in the framing namespace, any other element a stanza).
//!
//! The input's cut points (see `parley_fuzz::split_input`) are the message boundaries.
//! A text message is UTF-8 (RFC 6455 §5.6; actix-ws refuses others before the session
//! sees them), so inputs whose messages are not are skipped.
//!
//! Invariants: no panic; the same events and error however the messages were cut; an
//! `<open/>` gives a stream header of its attributes; every other element survives a round
//! trip through the serializer (it is forwarded as serialized); every error maps onto a
//! stream error that is itself XML.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::{assert_round_trips, no_limits, small_limits, split_input};
use parley_proto::ns;
use parley_proto::stream_error::StreamError;
use parley_xml::{Element, Event, StreamParser, XmlError};

/// What the session does with one framed event (session.rs `process_events`/`on_framing`).
#[derive(Debug, PartialEq)]
enum Action {
    Open(Vec<(String, String)>),
    Close,
    UnknownFraming(String),
    Stanza(Element),
}

fn drive(messages: &[&[u8]]) -> (Vec<Action>, Option<XmlError>) {
    let mut p = StreamParser::new_framed(small_limits());
    let mut actions = Vec::new();
    for msg in messages {
        p.feed(msg);
        loop {
            match p.next_event() {
                Ok(Some(Event::Stanza(el))) if el.ns() == ns::FRAMING => {
                    actions.push(match el.name() {
                        "open" => Action::Open(
                            el.attrs()
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .collect(),
                        ),
                        "close" => Action::Close,
                        other => Action::UnknownFraming(other.to_owned()),
                    });
                }
                Ok(Some(Event::Stanza(el))) => actions.push(Action::Stanza(el)),
                Ok(Some(ev)) => panic!("framed parser gave a TCP stream event: {ev:?}"),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(p.next_event(), Err(e.clone()));
                    assert_eq!(p.buffered_len(), 0);
                    return (actions, Some(e));
                }
            }
        }
    }
    (actions, None)
}

fuzz_target!(|data: &[u8]| {
    let (messages, whole) = split_input(data);
    if messages.iter().any(|m| std::str::from_utf8(m).is_err()) {
        return;
    }
    let cut = drive(&messages);
    let one = drive(&[whole]);
    assert_eq!(cut, one, "the result depends on how the messages were cut");
    for action in &one.0 {
        if let Action::Stanza(el) = action {
            assert_round_trips(el);
        }
    }
    if let Some(e) = &one.1 {
        let xml = StreamError::from(e).to_element().to_string();
        let back = Element::parse(xml.as_bytes(), &no_limits())
            .unwrap_or_else(|err| panic!("our stream error {xml:?} is not XML: {err}"));
        // The condition survives; characters XML cannot carry in the text become U+FFFD.
        let read = StreamError::from_element(&back).expect("reads back as a stream error");
        assert_eq!(read.condition, StreamError::from(e).condition);
    }
});
