//! SASL for XMPP (RFC 6120 §6): mechanism names, channel bindings, failure
//! conditions, SCRAM (RFC 5802, RFC 7677) server and client state machines,
//! and PLAIN (RFC 4616) parsing.
//!
//! The client side lives here too because the test kit and the load
//! generator must speak exactly the protocol the server checks.

mod credentials;
mod oauthbearer;
mod plain;
mod scram;

use std::fmt;

use parley_xml::Element;

use crate::ns;

pub use credentials::{salted_password, ScramCredentials};
pub use oauthbearer::{parse_oauthbearer, OAuthBearer, INVALID_TOKEN_CHALLENGE};
pub use plain::{parse_plain, PlainCredentials};
pub use scram::{ClientFirst, ScramClient, ScramServer};

/// The hash function underlying a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// The hash name as it appears in mechanism names.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }

    /// Digest length in bytes (also the length of keys and proofs).
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }
}

/// SASL mechanisms Parley implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
    Plain,
    /// RFC 7628, with Parley's own bearer tokens.
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: &'static [Mechanism] = &[
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
        Mechanism::OAuthBearer,
    ];

    /// The registered SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::Plain => "PLAIN",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Looks a mechanism up by name. SASL names are upper-case by definition
    /// (RFC 4422 §3.1), so the match is exact.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The SCRAM hash, or `None` for non-SCRAM mechanisms.
    pub fn hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
            Mechanism::Plain | Mechanism::OAuthBearer => None,
        }
    }

    /// Whether this is a channel-binding (`-PLUS`) variant.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }

    /// The SCRAM mechanism for a hash, with or without channel binding.
    pub fn scram(hash: ScramHash, plus: bool) -> Mechanism {
        match (hash, plus) {
            (ScramHash::Sha1, false) => Mechanism::ScramSha1,
            (ScramHash::Sha1, true) => Mechanism::ScramSha1Plus,
            (ScramHash::Sha256, false) => Mechanism::ScramSha256,
            (ScramHash::Sha256, true) => Mechanism::ScramSha256Plus,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Channel binding types Parley supports: `tls-exporter` (RFC 9266) and
/// `tls-server-end-point` (RFC 5929 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    TlsExporter,
    TlsServerEndPoint,
}

impl ChannelBindingType {
    pub const ALL: &'static [ChannelBindingType] = &[
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ];

    /// The registered channel binding name, as used in `p=` and XEP-0440.
    pub fn name(self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    pub fn from_name(name: &str) -> Option<ChannelBindingType> {
        ChannelBindingType::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
    }
}

impl fmt::Display for ChannelBindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The channel binding data this connection's TLS layer can offer; both
/// empty on a connection without TLS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    pub tls_exporter: Option<Vec<u8>>,
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    pub fn get(&self, ty: ChannelBindingType) -> Option<&[u8]> {
        match ty {
            ChannelBindingType::TlsExporter => self.tls_exporter.as_deref(),
            ChannelBindingType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        }
    }

    /// Available types, strongest first.
    pub fn types(&self) -> Vec<ChannelBindingType> {
        ChannelBindingType::ALL
            .iter()
            .copied()
            .filter(|t| self.get(*t).is_some())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tls_exporter.is_none() && self.tls_server_end_point.is_none()
    }
}

// Channel binding data is key material derived from the TLS session, so it
// is never printed.
impl fmt::Debug for ChannelBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBindings")
            .field("types", &self.types())
            .finish()
    }
}

/// SASL failure conditions (RFC 6120 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SaslFailure {
    #[error("aborted")]
    Aborted,
    #[error("account-disabled")]
    AccountDisabled,
    #[error("credentials-expired")]
    CredentialsExpired,
    #[error("encryption-required")]
    EncryptionRequired,
    #[error("incorrect-encoding")]
    IncorrectEncoding,
    #[error("invalid-authzid")]
    InvalidAuthzid,
    #[error("invalid-mechanism")]
    InvalidMechanism,
    #[error("malformed-request")]
    MalformedRequest,
    #[error("mechanism-too-weak")]
    MechanismTooWeak,
    #[error("not-authorized")]
    NotAuthorized,
    #[error("temporary-auth-failure")]
    TemporaryAuthFailure,
}

impl SaslFailure {
    pub const ALL: &'static [SaslFailure] = &[
        SaslFailure::Aborted,
        SaslFailure::AccountDisabled,
        SaslFailure::CredentialsExpired,
        SaslFailure::EncryptionRequired,
        SaslFailure::IncorrectEncoding,
        SaslFailure::InvalidAuthzid,
        SaslFailure::InvalidMechanism,
        SaslFailure::MalformedRequest,
        SaslFailure::MechanismTooWeak,
        SaslFailure::NotAuthorized,
        SaslFailure::TemporaryAuthFailure,
    ];

    /// The condition element name.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }

    pub fn from_name(name: &str) -> Option<SaslFailure> {
        SaslFailure::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == name)
    }

    /// Builds `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` with the
    /// condition and optional `<text/>` (RFC 6120 §6.4.5).
    pub fn to_element(self, text: Option<&str>) -> Element {
        let mut el =
            Element::new("failure", ns::SASL).with_child(Element::new(self.as_str(), ns::SASL));
        if let Some(text) = text {
            el = el.with_child(Element::new("text", ns::SASL).with_text(text));
        }
        el
    }

    /// Reads a received `<failure/>`: the condition and optional text. An
    /// unknown or missing condition is read as `not-authorized`, the
    /// generic failure, since the outcome for the client is the same.
    pub fn from_element(el: &Element) -> Option<(SaslFailure, Option<String>)> {
        if !el.is("failure", ns::SASL) {
            return None;
        }
        let mut condition = None;
        let mut text = None;
        for child in el.children() {
            if child.ns() != ns::SASL {
                continue;
            }
            if child.name() == "text" {
                text = Some(child.text());
            } else if condition.is_none() {
                condition = SaslFailure::from_name(child.name());
            }
        }
        Some((condition.unwrap_or(SaslFailure::NotAuthorized), text))
    }
}

/// `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` for stream
/// features (RFC 6120 §6.4.1), in the order given (the client's preference
/// is what counts, but order conveys the server's).
pub fn mechanisms_element(mechs: &[Mechanism]) -> Element {
    let mut el = Element::new("mechanisms", ns::SASL);
    for m in mechs {
        el = el.with_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
    }
    el
}

/// XEP-0440 `<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>` listing the
/// channel binding types this connection supports.
pub fn channel_binding_element(types: &[ChannelBindingType]) -> Element {
    let mut el = Element::new("sasl-channel-binding", ns::SASL_CB);
    for t in types {
        el =
            el.with_child(Element::new("channel-binding", ns::SASL_CB).with_attr("type", t.name()));
    }
    el
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML parses")
    }

    #[test]
    fn rfc5802_4_and_rfc7677_mechanism_names() {
        let expected = [
            (
                Mechanism::ScramSha1,
                "SCRAM-SHA-1",
                Some(ScramHash::Sha1),
                false,
            ),
            (
                Mechanism::ScramSha1Plus,
                "SCRAM-SHA-1-PLUS",
                Some(ScramHash::Sha1),
                true,
            ),
            (
                Mechanism::ScramSha256,
                "SCRAM-SHA-256",
                Some(ScramHash::Sha256),
                false,
            ),
            (
                Mechanism::ScramSha256Plus,
                "SCRAM-SHA-256-PLUS",
                Some(ScramHash::Sha256),
                true,
            ),
            (Mechanism::Plain, "PLAIN", None, false),
            (Mechanism::OAuthBearer, "OAUTHBEARER", None, false),
        ];
        for (m, name, hash, plus) in expected {
            assert_eq!(m.name(), name);
            assert_eq!(Mechanism::from_name(name), Some(m));
            assert_eq!(m.hash(), hash);
            assert_eq!(m.is_plus(), plus);
            if let Some(h) = hash {
                assert_eq!(Mechanism::scram(h, plus), m);
            }
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
        assert_eq!(ScramHash::Sha1.name(), "SHA-1");
        assert_eq!(ScramHash::Sha256.name(), "SHA-256");
        assert_eq!(ScramHash::Sha1.output_len(), 20);
        assert_eq!(ScramHash::Sha256.output_len(), 32);
    }

    #[test]
    fn rfc9266_and_rfc5929_channel_binding_types() {
        assert_eq!(ChannelBindingType::TlsExporter.name(), "tls-exporter");
        assert_eq!(
            ChannelBindingType::TlsServerEndPoint.name(),
            "tls-server-end-point"
        );
        for &t in ChannelBindingType::ALL {
            assert_eq!(ChannelBindingType::from_name(t.name()), Some(t));
        }
        assert_eq!(ChannelBindingType::from_name("tls-unique"), None);

        let none = ChannelBindings::default();
        assert!(none.is_empty());
        assert!(none.types().is_empty());
        let both = ChannelBindings {
            tls_exporter: Some(vec![1]),
            tls_server_end_point: Some(vec![2]),
        };
        assert_eq!(
            both.types(),
            vec![
                ChannelBindingType::TlsExporter,
                ChannelBindingType::TlsServerEndPoint
            ]
        );
        assert_eq!(
            both.get(ChannelBindingType::TlsServerEndPoint),
            Some(&[2u8][..])
        );
        let endpoint_only = ChannelBindings {
            tls_exporter: None,
            tls_server_end_point: Some(vec![2]),
        };
        assert_eq!(endpoint_only.get(ChannelBindingType::TlsExporter), None);
        assert_eq!(
            endpoint_only.types(),
            vec![ChannelBindingType::TlsServerEndPoint]
        );
    }

    #[test]
    fn channel_bindings_debug_hides_data() {
        let cb = ChannelBindings {
            tls_exporter: Some(vec![0xab; 4]),
            tls_server_end_point: None,
        };
        let dbg = format!("{cb:?}");
        assert!(dbg.contains("TlsExporter"));
        assert!(!dbg.contains("171"));
    }

    #[test]
    fn rfc6120_6_5_every_failure_round_trips_through_xml() {
        assert_eq!(SaslFailure::ALL.len(), 11);
        for &f in SaslFailure::ALL {
            assert_eq!(SaslFailure::from_name(f.as_str()), Some(f));
            assert_eq!(f.to_string(), f.as_str());
            let plain = parse(&f.to_element(None).to_string());
            assert_eq!(SaslFailure::from_element(&plain), Some((f, None)));
            let texted = parse(&f.to_element(Some("because")).to_string());
            assert_eq!(
                SaslFailure::from_element(&texted),
                Some((f, Some("because".to_owned())))
            );
        }
    }

    #[test]
    fn rfc6120_6_4_5_failure_matches_literal_xml() {
        assert_eq!(
            SaslFailure::NotAuthorized.to_element(None).to_string(),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
        );
        assert_eq!(
            SaslFailure::AccountDisabled.to_element(Some("Call 212-555-1212")),
            parse(
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><account-disabled/>\
                 <text>Call 212-555-1212</text></failure>"
            )
        );
        let unknown = parse("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><odd/></failure>");
        assert_eq!(
            SaslFailure::from_element(&unknown),
            Some((SaslFailure::NotAuthorized, None))
        );
        let not_failure = parse("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        assert_eq!(SaslFailure::from_element(&not_failure), None);
    }

    #[test]
    fn rfc6120_6_4_1_mechanisms_feature_matches_literal_xml() {
        assert_eq!(
            mechanisms_element(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha1]),
            parse(
                "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                 <mechanism>SCRAM-SHA-256-PLUS</mechanism>\
                 <mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
            )
        );
    }

    #[test]
    fn xep0440_2_channel_binding_feature_matches_literal_xml() {
        assert_eq!(
            channel_binding_element(&[
                ChannelBindingType::TlsExporter,
                ChannelBindingType::TlsServerEndPoint
            ])
            .to_string(),
            "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
             <channel-binding type='tls-exporter'/>\
             <channel-binding type='tls-server-end-point'/></sasl-channel-binding>"
        );
    }
}
