//! BOSH request bodies (XEP-0124 §7, XEP-0206): `parley_http::bosh::parse_body`, the
//! parser every `POST /http-bind` (and every request forwarded from another node) goes
//! through, then what the BOSH layer does with an accepted body: read `rid`, `sid`,
//! `type`, the `xmpp:restart` flag, and hand each child, serialized, to the session's
//! framed parser.
//!
//! Invariants: no panic; each child reaches the session as exactly one element, equal to
//! the child (a crafted body must not smuggle a second stanza, or a different one, past
//! the BOSH layer); nothing is left half-parsed in the session's parser.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_http::bosh::parse_body;
use parley_xml::{Event, Limits, StreamParser, XmlError};

fuzz_target!(|data: &[u8]| {
    // As http_bind: stanza limits plus room for the <body/> around them.
    let base = small_limits();
    let limits = Limits {
        max_stanza_bytes: base.max_stanza_bytes + 4096,
        ..base.clone()
    };
    let Some(body) = parse_body(data, &limits) else {
        return;
    };
    let _rid = body.attr("rid").and_then(|r| r.parse::<u64>().ok());
    let _sid = body.attr("sid");
    let _terminate = body.attr("type") == Some("terminate");
    let _restart = body
        .attrs()
        .any(|(k, v)| k.ends_with(":restart") && v == "true");
    // The session's parser, with the stanza limits (the body was allowed 4 KiB more).
    let mut session = StreamParser::new_framed(base.clone());
    for child in body.children() {
        let xml = child.to_string();
        session.feed(xml.as_bytes());
        match session.next_event() {
            Ok(Some(Event::Stanza(el))) => assert_eq!(&el, child, "child sent as {xml:?}"),
            // Larger than a stanza may be: the session refuses it with policy-violation.
            Err(XmlError::PolicyViolation(_)) if xml.len() > base.max_stanza_bytes => return,
            other => panic!("child {xml:?} reached the session as {other:?}"),
        }
        assert_eq!(session.next_event(), Ok(None), "child {xml:?} split in two");
        assert_eq!(session.buffered_len(), 0);
    }
});
