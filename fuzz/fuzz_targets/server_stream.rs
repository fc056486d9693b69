//! A server-to-server stream (RFC 6120 with `jabber:server`, XEP-0220) as Parley reads
//! it, both ways: bytes through the stream parser with small limits, the header through
//! `parley_proto::s2s::check_header`, dialback elements through `dialback::parse` and the
//! key check, SASL EXTERNAL requests through `s2s::read_external` (XEP-0178), features
//! through the initiator's choice (`s2s::next_step`), and stanzas through the namespace
//! move they pass before they are routed.
//!
//! Invariants: no panic; a header is accepted only for a domain we serve, and its `from`
//! only as a bare domain; a parsed dialback element names bare, lowercase domains; a key
//! is accepted exactly when it is the XEP-0185 key (white space and hex case aside); after
//! the move no element of a stanza is left in `jabber:server`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::dialback::{self, Dialback};
use parley_proto::{ns, s2s};
use parley_xml::{Element, Event, StreamParser};

const LOCAL: &str = "a.example";
const SECRET: &[u8] = b"server-secret-0123456789";
const STREAM_ID: &str = "0123456789abcdef";

fn bare_domain(d: &str) -> bool {
    !d.contains(['@', '/']) && d == d.to_lowercase()
}

fn no_server_ns_left(el: &Element) -> bool {
    el.ns() != ns::SERVER && el.children().all(no_server_ns_left)
}

fuzz_target!(|data: &[u8]| {
    let mut p = StreamParser::new(small_limits());
    p.feed(data);
    let mut opened = false;
    while let Ok(Some(ev)) = p.next_event() {
        match ev {
            Event::StreamOpen(h) => {
                if let Ok(o) = s2s::check_header(&h, |d| d == LOCAL) {
                    assert_eq!(o.to, LOCAL);
                    assert!(o.from.as_deref().is_none_or(bare_domain), "{o:?}");
                    opened = true;
                }
            }
            Event::Stanza(el) if !opened => {
                let _ = s2s::next_step(&el, false, true, true, true);
                let _ = s2s::next_step(&el, true, false, true, true);
            }
            Event::Stanza(el) if el.ns() == dialback::NS => match dialback::parse(&el) {
                Ok(Dialback::ResultRequest { from, to, key })
                | Ok(Dialback::VerifyRequest { from, to, key, .. }) => {
                    assert!(bare_domain(&from) && bare_domain(&to), "{el}");
                    let expected = dialback::key(SECRET, &from, &to, STREAM_ID);
                    let ok = dialback::key_matches(SECRET, &from, &to, STREAM_ID, &key);
                    assert_eq!(ok, key.trim().eq_ignore_ascii_case(&expected), "{el}");
                }
                Ok(Dialback::ResultAnswer { from, to, .. })
                | Ok(Dialback::VerifyAnswer { from, to, .. }) => {
                    assert!(bare_domain(&from) && bare_domain(&to), "{el}");
                }
                Err(_) => {}
            },
            Event::Stanza(el) if el.ns() == ns::SASL => {
                // XEP-0178: an authorization identity is only ever a bare domain.
                if let Ok(Some(d)) = s2s::read_external(&el) {
                    assert!(bare_domain(&d), "{el}");
                }
            }
            Event::Stanza(mut el) => {
                el.rename_ns(ns::SERVER, ns::CLIENT);
                assert!(no_server_ns_left(&el), "{el}");
            }
            Event::StreamClose => break,
        }
    }
});
