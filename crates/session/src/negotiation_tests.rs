//! Unit tests of stream negotiation's decisions, from literal XML and values.

use super::*;
use parley_xml::{Event, Limits, StreamParser};

/// The header a client sends, parsed as the session's parser does.
fn header_of(xml: &str) -> StreamHeader {
    let mut p = StreamParser::new(Limits::default());
    p.feed(xml.as_bytes());
    match p.next_event() {
        Ok(Some(Event::StreamOpen(h))) => h,
        other => panic!("not a header: {other:?}"),
    }
}

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML")
}

const GOOD: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
                    to='Example.org' version='1.0'>";

fn serves(host: &str) -> bool {
    host == "example.org"
}

fn condition(header: &str, authed: Option<&str>) -> Option<StreamCondition> {
    let h = header_of(header);
    let host = requested_host(&h, serves);
    check_header(&h, host.as_deref(), authed)
        .err()
        .map(|e| e.condition)
}

fn plain() -> Offer {
    Offer {
        secure: false,
        starttls: true,
        require_encryption: true,
        delegated: false,
        allowed: Mechanism::ALL.to_vec(),
        channel_bindings: Vec::new(),
        max_stanza_bytes: 262_144,
        sm: true,
        caps: None,
        signup: false,
    }
}

fn names(features: &[Element]) -> Vec<(String, String)> {
    features
        .iter()
        .map(|f| (f.name().to_owned(), f.ns().to_owned()))
        .collect()
}

#[test]
fn rfc6120_4_7_good_header_is_accepted_and_to_is_case_folded() {
    let h = header_of(GOOD);
    assert_eq!(requested_host(&h, serves).as_deref(), Some("example.org"));
    assert_eq!(condition(GOOD, None), None);
}

#[test]
fn rfc6120_4_9_3_10_wrong_stream_namespace_is_invalid_namespace() {
    let bad = "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='example.org' version='1.0'>";
    assert_eq!(
        condition(bad, None),
        Some(StreamCondition::InvalidNamespace)
    );
}

#[test]
fn rfc6120_4_9_3_10_server_content_namespace_is_invalid_namespace() {
    let bad =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
               to='example.org' version='1.0'>";
    assert_eq!(
        condition(bad, None),
        Some(StreamCondition::InvalidNamespace)
    );
}

#[test]
fn rfc6120_4_7_5_missing_or_other_version_is_unsupported_version() {
    let none = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>";
    assert_eq!(
        condition(none, None),
        Some(StreamCondition::UnsupportedVersion)
    );
    let two = GOOD.replace("1.0", "2.0");
    assert_eq!(
        condition(&two, None),
        Some(StreamCondition::UnsupportedVersion)
    );
    let minor = GOOD.replace("1.0", "1.1");
    assert_eq!(
        condition(&minor, None),
        None,
        "§4.7.5: a higher minor version is fine"
    );
}

#[test]
fn rfc6120_4_9_3_6_unknown_or_missing_host_is_host_unknown() {
    let other = GOOD.replace("Example.org", "elsewhere.net");
    assert_eq!(condition(&other, None), Some(StreamCondition::HostUnknown));
    let none = GOOD.replace(" to='Example.org'", "");
    assert_eq!(condition(&none, None), Some(StreamCondition::HostUnknown));
}

#[test]
fn rfc6120_6_4_6_restart_goes_to_the_authenticated_domain() {
    assert_eq!(condition(GOOD, Some("example.org")), None);
    assert_eq!(
        condition(GOOD, Some("other.example")),
        Some(StreamCondition::HostUnknown)
    );
}

#[test]
fn rfc7395_3_3_2_open_stands_for_a_client_header() {
    let open =
        el("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>");
    let h = framed_header(&open);
    assert_eq!(requested_host(&h, serves).as_deref(), Some("example.org"));
    assert_eq!(check_header(&h, Some("example.org"), None), Ok(()));
}

#[test]
fn rfc7395_3_3_2_server_open_is_one_framed_element() {
    let open = header(true, "abc", "example.org");
    let parsed = el(&open);
    assert!(parsed.is("open", ns::FRAMING));
    assert_eq!(parsed.attr("from"), Some("example.org"));
    assert_eq!(parsed.attr("version"), Some("1.0"));
}

#[test]
fn rfc6120_4_7_server_header_escapes_its_from() {
    let h = header(false, "abc", "a'b");
    assert!(h.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client'"));
    assert!(h.contains("from='a&apos;b'"));
}

#[test]
fn rfc6120_5_3_1_plain_connection_offers_only_required_starttls() {
    let features = features(Stage::Unauthed, &plain());
    assert_eq!(
        names(&features),
        vec![("starttls".to_owned(), ns::TLS.to_owned())]
    );
    assert!(features[0].has_child("required", ns::TLS));
}

#[test]
fn rfc6120_5_3_1_starttls_not_offered_where_impossible() {
    let offer = Offer {
        starttls: false,
        require_encryption: false,
        ..plain()
    };
    let features = features(Stage::Unauthed, &offer);
    assert!(!features.iter().any(|f| f.is("starttls", ns::TLS)));
    assert!(features.iter().any(|f| f.is("mechanisms", ns::SASL)));
}

#[test]
fn rfc6120_6_3_3_tls_connection_offers_mechanisms_and_limits() {
    let offer = Offer {
        secure: true,
        ..plain()
    };
    let features = features(Stage::Unauthed, &offer);
    assert_eq!(
        names(&features),
        vec![
            ("mechanisms".to_owned(), ns::SASL.to_owned()),
            ("limits".to_owned(), ns::STREAM_LIMITS.to_owned()),
        ]
    );
    let mechs: Vec<String> = features[0].children().map(|m| m.text()).collect();
    assert_eq!(
        mechs,
        ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "OAUTHBEARER"]
    );
}

#[test]
fn rfc5802_6_plus_mechanisms_only_with_channel_bindings() {
    let offer = Offer {
        secure: true,
        channel_bindings: vec![ChannelBindingType::TlsExporter],
        ..plain()
    };
    let mechs = offered_mechanisms(&offer);
    assert_eq!(
        mechs[..2],
        [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]
    );
    let features = features(Stage::Unauthed, &offer);
    assert!(features.iter().any(|f| f.name() == "sasl-channel-binding"));
}

#[test]
fn rfc6120_6_3_3_delegated_passwords_offer_plain_and_tokens_only() {
    let offer = Offer {
        secure: true,
        delegated: true,
        ..plain()
    };
    assert_eq!(
        offered_mechanisms(&offer),
        [Mechanism::Plain, Mechanism::OAuthBearer]
    );
}

/// RFC 6120 §6.3.3: the server offers the mechanisms it supports; `[sasl] mechanisms`
/// narrows them (an operator whose imported accounts hold SCRAM-SHA-1 keys only stops
/// offering SCRAM-SHA-256, which they could never pass), in the server's order.
#[test]
fn rfc6120_6_3_3_only_the_configured_mechanisms_are_offered() {
    let offer = Offer {
        secure: true,
        channel_bindings: vec![ChannelBindingType::TlsExporter],
        allowed: vec![
            Mechanism::Plain,
            Mechanism::ScramSha1,
            Mechanism::ScramSha1Plus,
        ],
        ..plain()
    };
    assert_eq!(
        offered_mechanisms(&offer),
        [
            Mechanism::ScramSha1Plus,
            Mechanism::ScramSha1,
            Mechanism::Plain
        ]
    );
    let names: Vec<String> = features(Stage::Unauthed, &offer)
        .iter()
        .filter(|f| f.is("mechanisms", ns::SASL))
        .flat_map(|m| m.children().map(Element::text).collect::<Vec<_>>())
        .collect();
    assert_eq!(names, ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]);
}

#[test]
fn rfc6120_7_2_after_sasl_bind_is_offered() {
    let features = features(Stage::Authed, &plain());
    assert!(features.iter().any(|f| f.is("bind", ns::BIND)));
    assert!(features.iter().any(|f| f.is("ver", ns::ROSTER_VER)));
    assert!(super::features(Stage::Bound, &plain()).is_empty());
}

#[test]
fn xep0198_2_sm_is_offered_after_sasl_only_where_the_transport_takes_it() {
    let sm = |f: &[Element]| f.iter().any(|f| f.is("sm", ns::SM));
    assert!(sm(&features(Stage::Authed, &plain())));
    assert!(!sm(&features(Stage::Unauthed, &plain())));
    let bosh = Offer {
        sm: false,
        ..plain()
    };
    assert!(!sm(&features(Stage::Authed, &bosh)));
}

#[test]
fn rfc6120_5_4_1_starttls_element_asks_for_tls() {
    let starttls = el("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(unauthed(&starttls, true), Unauthed::StartTls);
    assert_eq!(unauthed(&starttls, false), Unauthed::StartTls);
}

#[test]
fn rfc6120_5_3_1_auth_before_required_tls_is_encryption_required() {
    let auth = el("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGE=</auth>");
    assert_eq!(unauthed(&auth, true), Unauthed::EncryptionRequired);
    assert_eq!(unauthed(&auth, false), Unauthed::Sasl("auth".into()));
}

#[test]
fn rfc6120_5_3_1_stanza_before_required_tls_is_a_policy_violation() {
    let msg = el("<message xmlns='jabber:client' to='a@example.org'/>");
    assert_eq!(unauthed(&msg, true), Unauthed::TlsFirst);
}

#[test]
fn rfc6120_6_4_1_stanza_before_auth_is_not_authorized() {
    let iq = el("<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(unauthed(&iq, false), Unauthed::NotAuthorized);
}

/// XEP-0077 §8 and XEP-0445 §3: registration is offered before authentication only where it
/// is on, and not on a plain connection that must start TLS first.
#[test]
fn xep0077_8_registration_feature_only_when_on_and_after_required_tls() {
    let register = |f: &[Element]| {
        f.iter()
            .filter(|e| e.name() == "register")
            .map(|e| e.ns().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(register(&features(Stage::Unauthed, &plain())).is_empty());
    let on = Offer {
        signup: true,
        ..plain()
    };
    assert!(
        register(&features(Stage::Unauthed, &on)).is_empty(),
        "TLS first"
    );
    let secure = Offer {
        secure: true,
        ..on.clone()
    };
    assert_eq!(
        register(&features(Stage::Unauthed, &secure)),
        [
            parley_proto::register::FEATURE_NS,
            parley_proto::register::INVITE_FEATURE_NS
        ]
    );
    assert!(register(&features(Stage::Authed, &secure)).is_empty());
}
