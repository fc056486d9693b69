//! Server Dialback (XEP-0220) with XEP-0185 keys: the pure part of weak identity
//! verification between servers, for peers whose certificates do not authenticate them.
//!
//! The originating server (O) sends `<db:result from=O to=R>KEY</db:result>` on its stream to
//! the receiving server (R). R asks the authoritative server for O's domain, over a stream of
//! its own, `<db:verify from=R to=O id=STREAM-ID>KEY</db:verify>`; the authority recomputes
//! the key from its secret and answers `type='valid'` or `'invalid'`, and R tells O the same
//! in `<db:result type=…/>`. The key (XEP-0185 §2) is
//! `HMAC-SHA256(hex(SHA256(secret)), "receiving originating stream-id")`, in hex, so that
//! only the holder of the secret can produce it and each key names one stream between two
//! domains.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use parley_xml::Element;

/// The dialback namespace (the `db:` prefix on server streams).
pub const NS: &str = "jabber:server:dialback";
/// The stream feature announcing dialback support (XEP-0220 §2.1, `<dialback/>`).
pub const FEATURE_NS: &str = "urn:xmpp:features:dialback";

/// XEP-0185 §2: the dialback key for a stream `stream_id` from `originating` to `receiving`.
pub fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hashed = hex::encode(Sha256::digest(secret));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(hashed.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(receiving.as_bytes());
    mac.update(b" ");
    mac.update(originating.as_bytes());
    mac.update(b" ");
    mac.update(stream_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the key [`key`] computes (white space and hex case aside), compared
/// in constant time.
pub fn key_matches(
    secret: &[u8],
    receiving: &str,
    originating: &str,
    stream_id: &str,
    given: &str,
) -> bool {
    let expected = key(secret, receiving, originating, stream_id);
    let given = given.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The `type` of a dialback answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The key was right (XEP-0220 §2.1.4 and §2.2.2).
    Valid,
    /// The key was wrong.
    Invalid,
    /// The check could not be made (XEP-0220 §2.4: the element carries a stanza error).
    Error,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Verdict> {
        match s {
            "valid" => Some(Verdict::Valid),
            "invalid" => Some(Verdict::Invalid),
            "error" => Some(Verdict::Error),
            _ => None,
        }
    }
}

/// A dialback element, read: what it asks or answers, between which domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialback {
    /// `<db:result>` with a key: the sender asks to be accepted for `from` on this stream.
    ResultRequest {
        from: String,
        to: String,
        key: String,
    },
    /// `<db:result type=…/>`: the answer to our request.
    ResultAnswer {
        from: String,
        to: String,
        verdict: Verdict,
    },
    /// `<db:verify>` with a key: a receiving server asks us, the authority, to check a key
    /// it got on stream `id`.
    VerifyRequest {
        from: String,
        to: String,
        id: String,
        key: String,
    },
    /// `<db:verify type=…/>`: the authority's answer to our check.
    VerifyAnswer {
        from: String,
        to: String,
        id: String,
        verdict: Verdict,
    },
}

/// Why a dialback element is refused (the stream then ends with `<invalid-xml/>` or
/// `<improper-addressing/>`, RFC 6120 §4.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialbackError {
    /// Not a dialback element at all.
    #[error("not a dialback element")]
    NotDialback,
    /// `from` or `to` is missing or not a domain.
    #[error("a dialback element needs 'from' and 'to' domains")]
    Addressing,
    /// A `db:verify` without an `id`, a request without a key, or an unknown `type`.
    #[error("a malformed dialback element")]
    Malformed,
}

/// A bare domain, nameprep'd (lowercased), or None for anything else.
fn domain(s: Option<&str>) -> Option<String> {
    crate::s2s::domain(s?)
}

/// Reads a dialback element.
pub fn parse(el: &Element) -> Result<Dialback, DialbackError> {
    if el.ns() != NS || !matches!(el.name(), "result" | "verify") {
        return Err(DialbackError::NotDialback);
    }
    let (Some(from), Some(to)) = (domain(el.attr("from")), domain(el.attr("to"))) else {
        return Err(DialbackError::Addressing);
    };
    let verdict = match el.attr("type") {
        Some(t) => Some(Verdict::parse(t).ok_or(DialbackError::Malformed)?),
        None => None,
    };
    let key = el.text().trim().to_owned();
    match (el.name(), verdict) {
        ("result", None) if !key.is_empty() => Ok(Dialback::ResultRequest { from, to, key }),
        ("result", Some(verdict)) => Ok(Dialback::ResultAnswer { from, to, verdict }),
        ("verify", v) => {
            let id = el
                .attr("id")
                .filter(|i| !i.is_empty())
                .ok_or(DialbackError::Malformed)?
                .to_owned();
            match v {
                None if !key.is_empty() => Ok(Dialback::VerifyRequest { from, to, id, key }),
                Some(verdict) => Ok(Dialback::VerifyAnswer {
                    from,
                    to,
                    id,
                    verdict,
                }),
                None => Err(DialbackError::Malformed),
            }
        }
        _ => Err(DialbackError::Malformed),
    }
}

/// `<db:result from to>key</db:result>` (XEP-0220 §2.1.1).
pub fn result_request(from: &str, to: &str, key: &str) -> Element {
    Element::new("result", NS)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_text(key)
}

/// `<db:result from to type/>` (XEP-0220 §2.1.4); an error carries `<item-not-found/>`
/// (§2.4: the domain is not served here, or no check could be made).
pub fn result_answer(from: &str, to: &str, verdict: Verdict) -> Element {
    with_error(
        Element::new("result", NS)
            .with_attr("from", from)
            .with_attr("to", to)
            .with_attr("type", verdict.as_str()),
        verdict,
    )
}

/// `<db:verify from to id>key</db:verify>` (XEP-0220 §2.2.1).
pub fn verify_request(from: &str, to: &str, id: &str, key: &str) -> Element {
    Element::new("verify", NS)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("id", id)
        .with_text(key)
}

/// `<db:verify from to id type/>` (XEP-0220 §2.2.2).
pub fn verify_answer(from: &str, to: &str, id: &str, verdict: Verdict) -> Element {
    with_error(
        Element::new("verify", NS)
            .with_attr("from", from)
            .with_attr("to", to)
            .with_attr("id", id)
            .with_attr("type", verdict.as_str()),
        verdict,
    )
}

/// A dialback element as a server stream carries it: with the `db:` prefix that the
/// stream header declares (XEP-0220's examples), because some servers (ejabberd) match the
/// qualified name `db:result` and ignore an unprefixed `<result xmlns='jabber:server:
/// dialback'/>`, which a namespace-aware reader sees as the same element. Children (the
/// §2.4 error) are written in the stream's content namespace.
pub fn to_wire(el: &Element) -> Vec<u8> {
    use parley_xml::escape;
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"<db:");
    out.extend_from_slice(el.name().as_bytes());
    for (k, v) in el.attrs() {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"='");
        out.extend_from_slice(escape::attr(v).as_bytes());
        out.push(b'\'');
    }
    let text = el.text();
    let children: Vec<&Element> = el.children().collect();
    if text.is_empty() && children.is_empty() {
        out.extend_from_slice(b"/>");
        return out;
    }
    out.push(b'>');
    for child in children {
        child.write_to(&mut out, Some(crate::ns::SERVER));
    }
    out.extend_from_slice(escape::text(&text).as_bytes());
    out.extend_from_slice(b"</db:");
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
    out
}

fn with_error(el: Element, verdict: Verdict) -> Element {
    if verdict != Verdict::Error {
        return el;
    }
    el.with_child(
        Element::new("error", crate::ns::SERVER)
            .with_attr("type", "cancel")
            .with_child(Element::new("item-not-found", crate::ns::STANZA_ERRORS)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &parley_xml::Limits::default()).expect("test XML")
    }

    /// XEP-0220 §2.1.1 (the examples' form): written with the `db:` prefix of the stream
    /// header, and read back as the same element inside such a stream.
    #[test]
    fn xep0220_2_1_1_elements_go_out_with_the_db_prefix() {
        let request = result_request("a.example", "b.example", "k&y");
        let wire = String::from_utf8(to_wire(&request)).unwrap();
        assert_eq!(
            wire,
            "<db:result from='a.example' to='b.example'>k&amp;y</db:result>"
        );
        let answer = result_answer("b.example", "a.example", Verdict::Error);
        let wire = String::from_utf8(to_wire(&answer)).unwrap();
        assert!(wire.starts_with("<db:result "), "{wire}");
        let stream = format!(
            "<stream:stream xmlns='jabber:server' xmlns:stream='{}' xmlns:db='{NS}'>{wire}",
            crate::ns::STREAM
        );
        let mut p = parley_xml::StreamParser::new(parley_xml::Limits::default());
        p.feed(stream.as_bytes());
        assert!(matches!(
            p.next_event(),
            Ok(Some(parley_xml::Event::StreamOpen(_)))
        ));
        let Ok(Some(parley_xml::Event::Stanza(back))) = p.next_event() else {
            panic!("no element in {stream}");
        };
        assert_eq!(parse(&back), parse(&answer));
        let error = back
            .get_child("error", crate::ns::SERVER)
            .expect("the §2.4 error");
        assert!(error
            .get_child("item-not-found", crate::ns::STANZA_ERRORS)
            .is_some());
    }

    /// XEP-0185 §2, against an independent computation (Python's `hmac` and `hashlib`:
    /// `hmac.new(sha256(secret).hexdigest().encode(), b"example.net example.com
    /// D60000229F", sha256)`).
    #[test]
    fn xep0185_2_the_key_is_hmac_sha256_keyed_by_the_hex_sha256_of_the_secret() {
        let k = key(
            b"s3cr3tf0rd14lb4ck",
            "example.net",
            "example.com",
            "D60000229F",
        );
        assert_eq!(
            k,
            "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc"
        );
        assert!(key_matches(
            b"s3cr3tf0rd14lb4ck",
            "example.net",
            "example.com",
            "D60000229F",
            &format!(" {} ", k.to_uppercase())
        ));
        // Each input matters: another stream, direction or secret gives another key.
        for (r, o, id, secret) in [
            (
                "example.com",
                "example.net",
                "D60000229F",
                &b"s3cr3tf0rd14lb4ck"[..],
            ),
            (
                "example.net",
                "example.com",
                "D60000229E",
                &b"s3cr3tf0rd14lb4ck"[..],
            ),
            (
                "example.net",
                "example.com",
                "D60000229F",
                &b"another secret"[..],
            ),
        ] {
            assert!(!key_matches(secret, r, o, id, &k));
        }
        assert!(!key_matches(
            b"s3cr3tf0rd14lb4ck",
            "example.net",
            "example.com",
            "D60000229F",
            ""
        ));
    }

    #[test]
    fn xep0220_2_requests_and_answers_read_back() {
        let cases = [
            result_request("example.com", "example.net", "abc"),
            result_answer("example.net", "example.com", Verdict::Valid),
            result_answer("example.net", "example.com", Verdict::Invalid),
            result_answer("example.net", "example.com", Verdict::Error),
            verify_request("example.net", "example.com", "D60000229F", "abc"),
            verify_answer("example.com", "example.net", "D60000229F", Verdict::Valid),
        ];
        let read: Vec<Dialback> = cases.iter().map(|e| parse(e).unwrap()).collect();
        assert_eq!(
            read[0],
            Dialback::ResultRequest {
                from: "example.com".into(),
                to: "example.net".into(),
                key: "abc".into()
            }
        );
        assert!(matches!(
            read[3],
            Dialback::ResultAnswer {
                verdict: Verdict::Error,
                ..
            }
        ));
        assert!(cases[3].get_child("error", crate::ns::SERVER).is_some());
        assert_eq!(
            read[4],
            Dialback::VerifyRequest {
                from: "example.net".into(),
                to: "example.com".into(),
                id: "D60000229F".into(),
                key: "abc".into()
            }
        );
        assert!(matches!(
            read[5],
            Dialback::VerifyAnswer {
                verdict: Verdict::Valid,
                ..
            }
        ));
    }

    #[test]
    fn xep0220_malformed_elements_are_refused() {
        let ns = "xmlns='jabber:server:dialback'";
        for (xml, want) in [
            (
                format!("<result {ns} to='b.example'>k</result>"),
                DialbackError::Addressing,
            ),
            (
                format!("<result {ns} from='a@b.example' to='b.example'>k</result>"),
                DialbackError::Addressing,
            ),
            (
                format!("<result {ns} from='a.example' to='b.example/r'>k</result>"),
                DialbackError::Addressing,
            ),
            (
                format!("<result {ns} from='a.example' to='b.example'/>"),
                DialbackError::Malformed,
            ),
            (
                format!("<result {ns} from='a.example' to='b.example' type='maybe'/>"),
                DialbackError::Malformed,
            ),
            (
                format!("<verify {ns} from='a.example' to='b.example'>k</verify>"),
                DialbackError::Malformed,
            ),
            (
                format!("<verify {ns} from='a.example' to='b.example' id='x'/>"),
                DialbackError::Malformed,
            ),
            (
                "<result xmlns='jabber:server' from='a.example' to='b.example'>k</result>"
                    .to_owned(),
                DialbackError::NotDialback,
            ),
        ] {
            assert_eq!(parse(&el(&xml)), Err(want), "{xml}");
        }
        // Domains are compared nameprep'd.
        let read = parse(&el(&format!(
            "<result {ns} from='A.Example' to='B.example'>k</result>"
        )))
        .unwrap();
        assert!(matches!(read, Dialback::ResultRequest { ref from, .. } if from == "a.example"));
    }
}
