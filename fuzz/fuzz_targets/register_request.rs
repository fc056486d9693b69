//! A registration request (XEP-0077, XEP-0445) as Parley reads it before authentication:
//! bytes through the XML parser with small limits, then `register::parse`.
//!
//! Invariants: no panic; what is read is within the field bounds (a username of at most
//! `MAX_FIELD_CHARS` characters, a non-empty token of at most that many bytes); anything
//! `is_request` refuses is never read as a registration; an invitation's hash is 64 hex
//! characters whatever the token.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::register::{self, Request, MAX_FIELD_CHARS};
use parley_xml::Element;

fuzz_target!(|data: &[u8]| {
    let Ok(el) = Element::parse(data, &small_limits()) else {
        return;
    };
    let Ok(request) = register::parse(&el) else {
        return;
    };
    // parse reads the first child whatever the element; the session asks is_request first.
    let _ = register::is_request(&el);
    match request {
        Request::Register { username, password } => {
            assert!(username.chars().count() <= MAX_FIELD_CHARS);
            assert!(password.len() <= 4 * MAX_FIELD_CHARS);
        }
        Request::Preauth { token } => {
            assert!(!token.is_empty() && token.len() <= MAX_FIELD_CHARS);
            let hash = register::invite_hash(&token);
            assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Request::Form | Request::Remove => {}
    }
});
