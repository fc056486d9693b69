//! A push registration request (XEP-0357 §5-§6) as Parley reads it from a client: bytes
//! through the XML parser with small limits, then `push::parse`.
//!
//! Invariants: no panic; what is read is within its bounds (a non-empty jid and, to
//! enable, a non-empty node, each at most `MAX_FIELD_BYTES`; publish-options a submit form
//! of at most `MAX_OPTIONS_BYTES`), and the notification built from it never names a body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::push::{self, Request, MAX_FIELD_BYTES, MAX_OPTIONS_BYTES};
use parley_xml::{Element, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(el) = Element::parse(data, &small_limits()) else {
        return;
    };
    let Ok(request) = push::parse(&el) else {
        return;
    };
    match request {
        Request::Enable { jid, node, options } => {
            assert!(!jid.is_empty() && jid.len() <= MAX_FIELD_BYTES);
            assert!(!node.is_empty() && node.len() <= MAX_FIELD_BYTES);
            let options = options.map(|xml| {
                assert!(xml.len() <= MAX_OPTIONS_BYTES);
                Element::parse(xml.as_bytes(), &Limits::trusted_copies())
                    .expect("a kept form parses back")
            });
            let iq = push::notification("p", "a@b", &jid, &node, 1, Some("c@d"), options);
            let text = iq.to_string();
            assert!(text.contains(push::SUMMARY));
        }
        Request::Disable { jid, node } => {
            assert!(!jid.is_empty() && jid.len() <= MAX_FIELD_BYTES);
            assert!(node.is_none_or(|n| !n.is_empty() && n.len() <= MAX_FIELD_BYTES));
        }
    }
});
