//! A component's stream (XEP-0114) as the server reads it: bytes through the stream parser
//! with a component's limits, the header through `parley_proto::component::check_header`,
//! the first element through the handshake check, the rest through the namespace move and
//! the `from` rule that every component stanza passes before it is routed.
//!
//! Invariants: no panic; a header is accepted only for the configured domain, lowercased;
//! a handshake is accepted only when its text is the digest of the stream id and the
//! secret (white space and hex case aside); after the move no element of a stanza is left
//! in the component's namespace; a `from` is allowed only in the component's domain.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::component::{check_header, from_allowed, handshake_digest, handshake_matches};
use parley_proto::ns;
use parley_xml::{Element, Event, StreamParser};

const DOMAIN: &str = "bot.localhost";
const STREAM_ID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "component-secret-0123456789";

fn no_component_ns_left(el: &Element) -> bool {
    el.ns() != ns::COMPONENT && el.children().all(no_component_ns_left)
}

fuzz_target!(|data: &[u8]| {
    let mut p = StreamParser::new(small_limits());
    p.feed(data);
    let mut handshaken = false;
    let mut opened = false;
    while let Ok(Some(ev)) = p.next_event() {
        match ev {
            Event::StreamOpen(h) => {
                if let Ok(domain) = check_header(&h, |d| d == DOMAIN) {
                    assert_eq!(domain, DOMAIN);
                    opened = true;
                }
            }
            Event::Stanza(mut el) if opened && !handshaken => {
                let text = el.text();
                let ok = handshake_matches(STREAM_ID, SECRET, &text);
                let expected = handshake_digest(STREAM_ID, SECRET);
                assert_eq!(ok, text.trim().eq_ignore_ascii_case(&expected));
                handshaken = true;
                el.rename_ns(ns::COMPONENT, ns::CLIENT);
            }
            Event::Stanza(mut el) => {
                el.rename_ns(ns::COMPONENT, ns::CLIENT);
                assert!(no_component_ns_left(&el), "{el}");
                if let Some(Ok(from)) = el.attr("from").map(jid::Jid::new) {
                    if from_allowed(DOMAIN, &from) {
                        assert_eq!(from.domain().as_str(), DOMAIN);
                    }
                }
            }
            Event::StreamClose => break,
        }
    }
});
