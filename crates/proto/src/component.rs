//! XEP-0114 (Jabber Component Protocol): the pure rules of a component's stream.
//!
//! A component opens `<stream:stream xmlns='jabber:component:accept' to='its.domain'>`,
//! reads the server's header (with a stream id, and no version or features), and proves
//! that it knows the shared secret of its domain with `<handshake>`: the lowercase hex
//! SHA-1 of the stream id followed by the secret (XEP-0114 §3). The server answers an
//! empty `<handshake/>`, or closes the stream with `<not-authorized/>`. From then on the
//! component sends and receives stanzas for its domain.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::ns;
use crate::stream_error::{StreamCondition, StreamError};
use parley_xml::{Element, StreamHeader};

/// XEP-0114 §3: the handshake digest for `stream_id` and `secret`.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `given` (the text of the component's `<handshake>`) proves the secret. Hex
/// case and surrounding white space do not matter; the comparison takes the same time
/// whatever the input.
pub fn handshake_matches(stream_id: &str, secret: &str, given: &str) -> bool {
    let expected = handshake_digest(stream_id, secret);
    let given = given.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The server's answer to a good handshake.
pub fn handshake_ok() -> Element {
    Element::new("handshake", ns::COMPONENT)
}

/// The server's stream header to a component: from the component's domain, no version
/// (XEP-0114 streams have no features).
pub fn header(stream_id: &str, domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{}' from='{}'>",
        ns::COMPONENT,
        ns::STREAM,
        stream_id,
        parley_xml::escape::attr(domain),
    )
}

/// XEP-0114 §3: the domain a component's header asks for, if it opens a component stream
/// for one of `configured` (lowercased).
pub fn check_header(
    header: &StreamHeader,
    configured: impl Fn(&str) -> bool,
) -> Result<String, StreamError> {
    if header.name != "stream" || header.ns != ns::STREAM {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the stream element must be {http://etherx.jabber.org/streams}stream",
        ));
    }
    if header.default_ns.as_deref() != Some(ns::COMPONENT) {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the content namespace of a component stream must be jabber:component:accept",
        ));
    }
    let Some(to) = header.attr("to").map(str::to_ascii_lowercase) else {
        return Err(StreamError::with_text(
            StreamCondition::ImproperAddressing,
            "the stream header has no 'to': the component's domain",
        ));
    };
    if !configured(&to) {
        return Err(StreamError::with_text(
            StreamCondition::HostUnknown,
            format!("no component is configured for {to}"),
        ));
    }
    Ok(to)
}

/// What a component's stanza may claim to come from: its own domain (any local part and
/// resource), nothing else (as Prosody's `mod_component`).
pub fn from_allowed(domain: &str, from: &jid::Jid) -> bool {
    from.domain().as_str() == domain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(xml: &str) -> StreamHeader {
        let mut p = parley_xml::StreamParser::new(parley_xml::Limits::default());
        p.feed(xml.as_bytes());
        match p.next_event() {
            Ok(Some(parley_xml::Event::StreamOpen(h))) => h,
            other => panic!("not a header: {other:?}"),
        }
    }

    const OPEN: &str = "<stream:stream xmlns='jabber:component:accept' \
                        xmlns:stream='http://etherx.jabber.org/streams' to='Bot.Localhost'>";

    /// XEP-0114 §3: the digest is the hex SHA-1 of the stream id, then the secret.
    #[test]
    fn xep0114_3_the_handshake_digest_is_hex_sha1_of_id_and_secret() {
        let d = handshake_digest("3BF96D32", "secret");
        assert_eq!(d.len(), 40);
        assert_eq!(d, hex::encode(Sha1::digest(b"3BF96D32secret")));
        assert!(handshake_matches("3BF96D32", "secret", &d));
        assert!(handshake_matches(
            "3BF96D32",
            "secret",
            &format!(" {} ", d.to_uppercase())
        ));
        assert!(!handshake_matches("3BF96D32", "wrong", &d));
        assert!(!handshake_matches("3BF96D33", "secret", &d));
        assert!(!handshake_matches("3BF96D32", "secret", ""));
        assert!(!handshake_matches("3BF96D32", "secret", &d[..39]));
    }

    #[test]
    fn xep0114_3_a_header_for_a_configured_domain_is_accepted_lowercased() {
        let h = header_of(OPEN);
        assert_eq!(
            check_header(&h, |d| d == "bot.localhost").unwrap(),
            "bot.localhost"
        );
        let e = check_header(&h, |_| false).unwrap_err();
        assert_eq!(e.condition, StreamCondition::HostUnknown);
    }

    #[test]
    fn xep0114_3_a_client_stream_or_a_header_without_to_is_refused() {
        let client = header_of(
            "<stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='bot.localhost'>",
        );
        let e = check_header(&client, |_| true).unwrap_err();
        assert_eq!(e.condition, StreamCondition::InvalidNamespace);
        let no_to = header_of(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
        );
        let e = check_header(&no_to, |_| true).unwrap_err();
        assert_eq!(e.condition, StreamCondition::ImproperAddressing);
    }

    #[test]
    fn xep0114_only_the_components_own_domain_may_be_the_from() {
        let ok = jid::Jid::new("user@bot.localhost/x").unwrap();
        let other = jid::Jid::new("alice@localhost").unwrap();
        let sub = jid::Jid::new("x.bot.localhost").unwrap();
        assert!(from_allowed("bot.localhost", &ok));
        assert!(!from_allowed("bot.localhost", &other));
        assert!(!from_allowed("bot.localhost", &sub));
    }

    #[test]
    fn the_servers_header_names_the_domain_and_no_version() {
        let h = header("abc", "bot.localhost");
        assert!(h.contains("xmlns='jabber:component:accept'"), "{h}");
        assert!(
            h.contains("from='bot.localhost'") && h.contains("id='abc'"),
            "{h}"
        );
        let stream = &h[h.find("<stream:stream").unwrap()..];
        assert!(!stream.contains("version"), "{h}");
    }
}
