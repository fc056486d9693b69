//! Stream errors (RFC 6120 §4.9): the `<stream:error/>` element sent just
//! before a stream is closed.
//!
//! This is also the one place where parser failures from `parley-xml` are
//! mapped onto wire conditions, so every transport reports them alike.

use std::fmt;
use std::str::FromStr;

use parley_xml::{Element, XmlError};

use crate::ns;

/// A stream condition name that RFC 6120 §4.9.3 does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stream error condition `{0}`")]
pub struct UnknownStreamCondition(pub String);

macro_rules! stream_conditions {
    ($($variant:ident => $name:literal,)*) => {
        /// Defined stream error conditions (RFC 6120 §4.9.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StreamCondition {
            $(#[doc = concat!("`<", $name, "/>`")] $variant,)*
        }

        impl StreamCondition {
            /// Every condition, in RFC order.
            pub const ALL: &'static [StreamCondition] = &[$(StreamCondition::$variant,)*];

            /// The element name used on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StreamCondition::$variant => $name,)*
                }
            }
        }

        impl FromStr for StreamCondition {
            type Err = UnknownStreamCondition;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(StreamCondition::$variant),)*
                    other => Err(UnknownStreamCondition(other.to_owned())),
                }
            }
        }
    };
}

stream_conditions! {
    BadFormat => "bad-format",
    BadNamespacePrefix => "bad-namespace-prefix",
    Conflict => "conflict",
    ConnectionTimeout => "connection-timeout",
    HostGone => "host-gone",
    HostUnknown => "host-unknown",
    ImproperAddressing => "improper-addressing",
    InternalServerError => "internal-server-error",
    InvalidFrom => "invalid-from",
    InvalidNamespace => "invalid-namespace",
    InvalidXml => "invalid-xml",
    NotAuthorized => "not-authorized",
    NotWellFormed => "not-well-formed",
    PolicyViolation => "policy-violation",
    RemoteConnectionFailed => "remote-connection-failed",
    Reset => "reset",
    ResourceConstraint => "resource-constraint",
    RestrictedXml => "restricted-xml",
    SeeOtherHost => "see-other-host",
    SystemShutdown => "system-shutdown",
    UndefinedCondition => "undefined-condition",
    UnsupportedEncoding => "unsupported-encoding",
    UnsupportedFeature => "unsupported-feature",
    UnsupportedStanzaType => "unsupported-stanza-type",
    UnsupportedVersion => "unsupported-version",
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream error: a defined condition plus optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream error: {condition}")]
pub struct StreamError {
    pub condition: StreamCondition,
    pub text: Option<String>,
}

impl StreamError {
    pub fn new(condition: StreamCondition) -> Self {
        StreamError {
            condition,
            text: None,
        }
    }

    pub fn with_text(condition: StreamCondition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
        }
    }

    /// Builds `<stream:error>` (RFC 6120 §4.9.2): the condition and the
    /// optional `<text/>` both live in the stream-errors namespace.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("error", ns::STREAM)
            .with_child(Element::new(self.condition.as_str(), ns::STREAM_ERRORS));
        if let Some(text) = &self.text {
            el = el.with_child(Element::new("text", ns::STREAM_ERRORS).with_text(text.as_str()));
        }
        el
    }

    /// Reads a received `<stream:error>`; `None` when the element is not one
    /// or carries no condition. Unknown conditions are read as
    /// `undefined-condition`, since RFC 6120 §4.9.3 lets entities extend the
    /// set only with application-specific children.
    pub fn from_element(el: &Element) -> Option<StreamError> {
        if !el.is("error", ns::STREAM) {
            return None;
        }
        let mut condition = None;
        let mut text = None;
        for child in el.children() {
            if child.ns() != ns::STREAM_ERRORS {
                continue;
            }
            if child.name() == "text" {
                text = Some(child.text());
            } else if condition.is_none() {
                condition = Some(
                    child
                        .name()
                        .parse()
                        .unwrap_or(StreamCondition::UndefinedCondition),
                );
            }
        }
        condition.map(|condition| StreamError { condition, text })
    }
}

impl From<&XmlError> for StreamError {
    fn from(err: &XmlError) -> Self {
        let (condition, msg) = match err {
            XmlError::NotWellFormed(m) => (StreamCondition::NotWellFormed, m),
            XmlError::RestrictedXml(m) => (StreamCondition::RestrictedXml, m),
            XmlError::PolicyViolation(m) => (StreamCondition::PolicyViolation, m),
            XmlError::BadNamespacePrefix(m) => (StreamCondition::BadNamespacePrefix, m),
            XmlError::BadEncoding(m) => (StreamCondition::UnsupportedEncoding, m),
        };
        StreamError::with_text(condition, msg.as_str())
    }
}

impl From<StreamCondition> for StreamError {
    fn from(condition: StreamCondition) -> Self {
        StreamError::new(condition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML parses")
    }

    #[test]
    fn rfc6120_4_9_3_defines_25_conditions_and_names_round_trip() {
        assert_eq!(StreamCondition::ALL.len(), 25);
        for &c in StreamCondition::ALL {
            assert_eq!(c.as_str().parse::<StreamCondition>(), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(
            "no-such-thing".parse::<StreamCondition>(),
            Err(UnknownStreamCondition("no-such-thing".into()))
        );
    }

    #[test]
    fn rfc6120_4_9_2_stream_error_matches_literal_xml() {
        let expected = parse(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text>\
             </stream:error>",
        );
        let err = StreamError::with_text(StreamCondition::HostUnknown, "no such host");
        assert_eq!(err.to_element(), expected);
        assert_eq!(
            StreamError::new(StreamCondition::Conflict)
                .to_element()
                .to_string(),
            "<error xmlns='http://etherx.jabber.org/streams'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"
        );
    }

    #[test]
    fn rfc6120_4_9_3_every_condition_round_trips_through_xml() {
        for &c in StreamCondition::ALL {
            let plain = StreamError::new(c);
            assert_eq!(StreamError::from_element(&plain.to_element()), Some(plain));
            let texted = StreamError::with_text(c, "why");
            let reparsed = parse(&texted.to_element().to_string());
            assert_eq!(StreamError::from_element(&reparsed), Some(texted));
        }
    }

    #[test]
    fn rfc6120_4_9_3_unknown_condition_reads_as_undefined() {
        let el = parse(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <made-up xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <app xmlns='urn:example'/></stream:error>",
        );
        assert_eq!(
            StreamError::from_element(&el),
            Some(StreamError::new(StreamCondition::UndefinedCondition))
        );
        let empty = parse("<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>");
        assert_eq!(StreamError::from_element(&empty), None);
        let not_stream = parse("<error xmlns='jabber:client'/>");
        assert_eq!(StreamError::from_element(&not_stream), None);
    }

    #[test]
    fn rfc6120_4_9_3_xml_errors_map_to_their_conditions_with_message_text() {
        let cases = [
            (
                XmlError::NotWellFormed("a".into()),
                StreamCondition::NotWellFormed,
            ),
            (
                XmlError::RestrictedXml("b".into()),
                StreamCondition::RestrictedXml,
            ),
            (
                XmlError::PolicyViolation("c".into()),
                StreamCondition::PolicyViolation,
            ),
            (
                XmlError::BadNamespacePrefix("d".into()),
                StreamCondition::BadNamespacePrefix,
            ),
            (
                XmlError::BadEncoding("e".into()),
                StreamCondition::UnsupportedEncoding,
            ),
        ];
        for (xml_err, cond) in cases {
            let err = StreamError::from(&xml_err);
            assert_eq!(err.condition, cond);
            let msg = match &xml_err {
                XmlError::NotWellFormed(m)
                | XmlError::RestrictedXml(m)
                | XmlError::PolicyViolation(m)
                | XmlError::BadNamespacePrefix(m)
                | XmlError::BadEncoding(m) => m.clone(),
            };
            assert_eq!(err.text, Some(msg));
        }
    }

    #[test]
    fn rfc6120_4_9_3_not_well_formed_from_real_parser_error() {
        let xml_err = Element::parse(b"<a><b></a>", &Limits::default()).unwrap_err();
        assert_eq!(
            StreamError::from(&xml_err).condition,
            StreamCondition::NotWellFormed
        );
    }
}
