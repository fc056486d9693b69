//! Each hostile input of `benches/hostile_inputs.rs` gets the verdict it should from
//! the stream parser (RFC 6120 §4.9.3.14, §13.9.4), and what is accepted serializes
//! to a copy that re-parses under `Limits::for_copies` to the same tree.

use parley_xml::{Element, Event, Limits, StreamParser, XmlError};

#[path = "../benches/hostile_inputs.rs"]
mod hostile_inputs;

use hostile_inputs::Expect;

const HEADER: &str = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";

fn verdict(xml: &str) -> Result<Element, XmlError> {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    p.feed(xml.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    match p.next_event()? {
        Some(Event::Stanza(e)) => Ok(e),
        other => panic!("expected a stanza, got {other:?}"),
    }
}

#[test]
fn rfc6120_13_9_4_hostile_inputs_are_accepted_or_refused_with_policy_violation() {
    for h in hostile_inputs::all() {
        match (verdict(&h.xml), h.expect) {
            (Ok(e), Expect::Accepted) => {
                // The copy that is stored or forwarded is read back under the limits
                // for copies, and is the same stanza.
                let copy = e.to_bytes_in(None);
                assert!(
                    copy.len() <= 2 * Limits::default().max_stanza_bytes,
                    "{}: copy of {} bytes",
                    h.name,
                    copy.len()
                );
                let again = Element::parse(&copy, &Limits::default().for_copies())
                    .unwrap_or_else(|err| panic!("{}: copy refused: {err}", h.name));
                assert_eq!(again, e, "{}", h.name);
            }
            (Err(XmlError::PolicyViolation(_)), Expect::PolicyViolation) => {}
            (got, want) => panic!("{}: expected {want:?}, got {:?}", h.name, got.map(|_| ())),
        }
    }
}

#[test]
fn rfc6120_4_9_3_14_namespace_declarations_in_scope_are_capped_and_siblings_are_not() {
    let limits = Limits {
        max_namespace_declarations: 4,
        ..Limits::default()
    };
    let parse = |xml: &str| Element::parse(xml.as_bytes(), &limits);
    // Four in scope at the innermost element: accepted.
    assert!(
        parse("<a xmlns='urn:a' xmlns:b='urn:b'><c xmlns:d='urn:d' xmlns:e='urn:e'/></a>").is_ok()
    );
    // A fifth: refused, however it is spread.
    assert!(matches!(
        parse("<a xmlns='urn:a' xmlns:b='urn:b'><c xmlns:d='urn:d'><f xmlns:e='urn:e' xmlns:g='urn:g'/></c></a>"),
        Err(XmlError::PolicyViolation(_))
    ));
    // Declarations that went out of scope do not count.
    let siblings: String = (0..50)
        .map(|i| format!("<x{i} xmlns='urn:{i}'/>"))
        .collect();
    assert!(parse(&format!("<a xmlns='urn:a'>{siblings}</a>")).is_ok());
}

#[test]
fn rfc6120_4_9_3_14_stream_header_declarations_count_against_the_cap() {
    let limits = Limits {
        max_namespace_declarations: 3,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    p.feed(b"<message xmlns:a='urn:a'/><message xmlns:a='urn:a' xmlns:b='urn:b'/>");
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    assert!(matches!(p.next_event(), Ok(Some(Event::Stanza(_)))));
    assert!(matches!(p.next_event(), Err(XmlError::PolicyViolation(_))));
}

#[test]
fn rfc6120_13_9_4_a_namespace_inherited_by_many_children_is_shared_not_copied() {
    let uri = format!("urn:{}", "u".repeat(100_000));
    let xml = format!("<x xmlns='{uri}'>{}</x>", "<a/>".repeat(30_000));
    let e = Element::parse(xml.as_bytes(), &Limits::default()).unwrap();
    let first = e.children().next().unwrap().ns().as_ptr();
    assert!(e.children().all(|c| c.ns().as_ptr() == first));
    // And the copy writes the namespace once.
    assert!(e.to_string().len() < xml.len() + 100);
}
