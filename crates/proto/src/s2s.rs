//! The server-to-server stream (RFC 6120 §4 with `jabber:server`, XEP-0220 §2.1): the
//! headers both ends write, the rules an incoming header must follow, and the features an
//! incoming stream is offered. Pure functions of literal values, unit tested below; the
//! session actor applies them.

use parley_xml::{Element, StreamHeader};

use crate::dialback;
use crate::ns;
use crate::stream_error::{StreamCondition, StreamError};

/// A server stream's header (RFC 6120 §4.7) with the dialback prefix declared (XEP-0220
/// §2.1.1). The receiving end gives its `id`; the initiating end has none to give.
pub fn header(stream_id: Option<&str>, from: &str, to: Option<&str>) -> String {
    let mut h = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}' from='{}'",
        ns::SERVER,
        ns::STREAM,
        dialback::NS,
        parley_xml::escape::attr(from),
    );
    if let Some(to) = to {
        h.push_str(&format!(" to='{}'", parley_xml::escape::attr(to)));
    }
    if let Some(id) = stream_id {
        h.push_str(&format!(" id='{}'", parley_xml::escape::attr(id)));
    }
    h.push_str(" version='1.0' xml:lang='en'>");
    h
}

/// A bare domain (nameprep'd, lowercase), or None for anything else.
pub fn domain(s: &str) -> Option<String> {
    let jid = jid::Jid::new(s).ok()?;
    (jid.node().is_none() && jid.resource().is_none()).then(|| jid.domain().as_str().to_owned())
}

/// What an accepted incoming header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Our domain the peer addressed (`to`).
    pub to: String,
    /// The domain the peer names itself by (`from`), if it said (RFC 6120 §4.7.1: SHOULD).
    pub from: Option<String>,
}

/// RFC 6120 §4.7–§4.9 for a stream from another server: the streams namespace, the
/// `jabber:server` content namespace, version 1.0, a `to` this server serves (§4.9.3.6
/// `<host-unknown/>`), and a `from` that is a domain (§4.9.3.9 `<invalid-from/>`).
pub fn check_header(
    header: &StreamHeader,
    serves: impl Fn(&str) -> bool,
) -> Result<Opened, StreamError> {
    if header.name != "stream" || header.ns != ns::STREAM {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the stream element must be {http://etherx.jabber.org/streams}stream",
        ));
    }
    if header.default_ns.as_deref() != Some(ns::SERVER) {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the content namespace of a server stream must be jabber:server",
        ));
    }
    let version_ok = header
        .attr("version")
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| major == "1" && minor.parse::<u32>().is_ok());
    if !version_ok {
        return Err(StreamError::with_text(
            StreamCondition::UnsupportedVersion,
            "this server supports XMPP version 1.0 (with STARTTLS) only",
        ));
    }
    let to = header.attr("to").and_then(domain).filter(|d| serves(d));
    let Some(to) = to else {
        return Err(StreamError::with_text(
            StreamCondition::HostUnknown,
            match header.attr("to") {
                Some(t) => format!("this server does not serve {}", t.to_ascii_lowercase()),
                None => "the stream header has no 'to' address".to_owned(),
            },
        ));
    };
    let from = match header.attr("from") {
        None => None,
        Some(f) => Some(domain(f).ok_or_else(|| {
            StreamError::with_text(StreamCondition::InvalidFrom, "'from' must be a domain")
        })?),
    };
    Ok(Opened { to, from })
}

/// What an incoming stream is offered (RFC 6120 §4.3.2): STARTTLS while plain (required
/// when `require_encryption`); once nothing must come first, SASL EXTERNAL when the peer's
/// certificate is valid for the domain it names (`external`, XEP-0178 §2), and dialback
/// (XEP-0220 §2.1, with `<errors/>` for §2.4).
pub fn features(
    secure: bool,
    can_starttls: bool,
    require_encryption: bool,
    external: bool,
) -> Vec<Element> {
    let mut features = Vec::new();
    if secure && external {
        // Only between servers: clients are never offered EXTERNAL, so it is not one of
        // the c2s mechanisms of `crate::sasl`.
        features.push(
            Element::new("mechanisms", ns::SASL)
                .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
        );
    }
    if !secure && can_starttls {
        let mut starttls = Element::new("starttls", ns::TLS);
        if require_encryption {
            starttls.push_child(Element::new("required", ns::TLS));
        }
        features.push(starttls);
    }
    if secure || !require_encryption {
        features.push(
            Element::new("dialback", dialback::FEATURE_NS)
                .with_child(Element::new("errors", dialback::FEATURE_NS)),
        );
    }
    features
}

/// What the initiating end does with the features it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// `<starttls/>` (RFC 6120 §5.4.2.1).
    StartTls,
    /// SASL EXTERNAL with our certificate (XEP-0178 §2).
    External,
    /// Authenticate with dialback (XEP-0220 §2.1.1).
    Dialback,
    /// Nothing we can do: the stream cannot be secured or authenticated as required.
    GiveUp(&'static str),
}

/// RFC 6120 §5.3.1, XEP-0178 §2 and XEP-0220 §2.1: TLS first when offered and we can;
/// then SASL EXTERNAL when offered over TLS and we present a certificate (`external`);
/// otherwise dialback (a peer that does not announce the feature may still speak it:
/// XEP-0220 §2.1, legacy servers, so it is tried whatever the list says).
pub fn next_step(
    features: &Element,
    secure: bool,
    can_starttls: bool,
    require_encryption: bool,
    external: bool,
) -> Next {
    let offers_tls = features.get_child("starttls", ns::TLS).is_some();
    if !secure && offers_tls && can_starttls {
        return Next::StartTls;
    }
    if !secure && require_encryption {
        return Next::GiveUp(
            "the remote server does not offer STARTTLS, and [s2s] require_encryption is on",
        );
    }
    let offers_external = features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
    if secure && external && offers_external {
        return Next::External;
    }
    Next::Dialback
}

/// XEP-0178 §2: our `<auth mechanism='EXTERNAL'>` naming our domain as the authorization
/// identity.
pub fn external_auth(local: &str) -> Element {
    use base64::Engine;
    Element::new("auth", ns::SASL)
        .with_attr("mechanism", "EXTERNAL")
        .with_text(base64::engine::general_purpose::STANDARD.encode(local))
}

/// An `<auth/>` that is not a well-formed SASL EXTERNAL request (XEP-0178 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed SASL EXTERNAL request")]
pub struct NotExternal;

/// Reads a peer's `<auth/>` for XEP-0178: `Ok(None)` for EXTERNAL with no authorization
/// identity (`=` or empty: the domain of the stream header), `Ok(Some(domain))` for one
/// given, Err for another mechanism or a malformed one.
pub fn read_external(auth: &Element) -> Result<Option<String>, NotExternal> {
    use base64::Engine;
    if !auth.is("auth", ns::SASL) || auth.attr("mechanism") != Some("EXTERNAL") {
        return Err(NotExternal);
    }
    let text = auth.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| NotExternal)?;
    let s = String::from_utf8(bytes).map_err(|_| NotExternal)?;
    domain(&s).map(Some).ok_or(NotExternal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(default_ns: &str, attrs: &[(&str, &str)]) -> StreamHeader {
        StreamHeader {
            name: "stream".into(),
            ns: ns::STREAM.into(),
            default_ns: Some(default_ns.into()),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn serves(d: &str) -> bool {
        d == "a.example"
    }

    #[test]
    fn rfc6120_4_7_an_incoming_server_header_is_accepted_and_names_both_domains() {
        let h = hdr(
            ns::SERVER,
            &[
                ("to", "A.example"),
                ("from", "b.example"),
                ("version", "1.0"),
            ],
        );
        assert_eq!(
            check_header(&h, serves),
            Ok(Opened {
                to: "a.example".into(),
                from: Some("b.example".into())
            })
        );
    }

    #[test]
    fn rfc6120_4_9_3_headers_that_are_refused_get_their_condition() {
        let cases = [
            (
                hdr(ns::CLIENT, &[("to", "a.example"), ("version", "1.0")]),
                StreamCondition::InvalidNamespace,
            ),
            (
                hdr(ns::SERVER, &[("to", "a.example")]),
                StreamCondition::UnsupportedVersion,
            ),
            (
                hdr(ns::SERVER, &[("to", "c.example"), ("version", "1.0")]),
                StreamCondition::HostUnknown,
            ),
            (
                hdr(ns::SERVER, &[("version", "1.0")]),
                StreamCondition::HostUnknown,
            ),
            (
                hdr(
                    ns::SERVER,
                    &[
                        ("to", "a.example"),
                        ("from", "u@b.example"),
                        ("version", "1.0"),
                    ],
                ),
                StreamCondition::InvalidFrom,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(
                check_header(&h, serves).unwrap_err().condition,
                want,
                "{h:?}"
            );
        }
    }

    #[test]
    fn xep0220_2_1_our_header_declares_the_dialback_prefix() {
        let h = header(Some("abc"), "a.example", Some("b.example"));
        assert!(h.contains("xmlns='jabber:server'"), "{h}");
        assert!(h.contains("xmlns:db='jabber:server:dialback'"), "{h}");
        assert!(
            h.contains("id='abc'") && h.contains("to='b.example'"),
            "{h}"
        );
        assert!(!header(None, "a.example", None).contains(" id="));
    }

    #[test]
    fn rfc6120_5_3_1_starttls_comes_first_and_dialback_only_after_it_when_required() {
        let plain = features(false, true, true, false);
        assert_eq!(plain.len(), 1);
        assert!(plain[0].get_child("required", ns::TLS).is_some());
        let secure = features(true, false, true, false);
        assert!(secure[0].is("dialback", dialback::FEATURE_NS));
        // Encryption optional: both, STARTTLS not marked required.
        let optional = features(false, true, false, false);
        assert_eq!(optional.len(), 2);
        assert!(optional[0].get_child("required", ns::TLS).is_none());
    }

    #[test]
    fn rfc6120_5_4_the_initiator_takes_tls_when_offered_and_gives_up_when_it_must_have_it() {
        let with_tls =
            Element::new("features", ns::STREAM).with_child(Element::new("starttls", ns::TLS));
        let without = Element::new("features", ns::STREAM);
        assert_eq!(
            next_step(&with_tls, false, true, true, true),
            Next::StartTls
        );
        assert_eq!(next_step(&with_tls, true, true, true, true), Next::Dialback);
        assert!(matches!(
            next_step(&without, false, true, true, true),
            Next::GiveUp(_)
        ));
        assert_eq!(
            next_step(&without, false, true, false, true),
            Next::Dialback
        );
    }

    #[test]
    fn xep0178_2_external_is_offered_over_tls_for_a_valid_certificate_and_taken_when_we_present_one(
    ) {
        let offered = features(true, false, true, true);
        let mechs = offered[0]
            .get_child("mechanism", ns::SASL)
            .map(|m| m.text());
        assert_eq!(mechs.as_deref(), Some("EXTERNAL"), "{offered:?}");
        assert!(
            offered[1].is("dialback", dialback::FEATURE_NS),
            "dialback stays offered"
        );
        assert!(
            features(false, true, true, true)
                .iter()
                .all(|f| f.ns() != ns::SASL),
            "never before TLS"
        );
        let f = Element::new("features", ns::STREAM).with_child(offered[0].clone());
        assert_eq!(next_step(&f, true, false, true, true), Next::External);
        assert_eq!(
            next_step(&f, true, false, true, false),
            Next::Dialback,
            "no certificate of ours"
        );
    }

    #[test]
    fn xep0178_2_the_authorization_identity_reads_back() {
        assert_eq!(
            read_external(&external_auth("a.example")),
            Ok(Some("a.example".into()))
        );
        let bare = |t: &str| {
            Element::new("auth", ns::SASL)
                .with_attr("mechanism", "EXTERNAL")
                .with_text(t)
        };
        assert_eq!(read_external(&bare("=")), Ok(None));
        assert_eq!(read_external(&bare("")), Ok(None));
        assert_eq!(read_external(&bare("!!")), Err(NotExternal));
        // "dXNlckBhLmV4YW1wbGU=" is "user@a.example": not a domain.
        assert_eq!(
            read_external(&bare("dXNlckBhLmV4YW1wbGU=")),
            Err(NotExternal)
        );
        let plain = Element::new("auth", ns::SASL).with_attr("mechanism", "PLAIN");
        assert_eq!(read_external(&plain), Err(NotExternal));
    }
}
