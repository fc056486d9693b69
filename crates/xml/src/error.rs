//! Error type and resource limits shared by the stream parser and `Element::parse`
//! (RFC 6120 §4.9.3 stream error conditions, §11 XML usage, §13.9.4 denial of service).

/// Why input was refused. Each variant maps onto one RFC 6120 §4.9.3 stream error
/// condition, so the session layer can answer with the right `<stream:error/>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Malformed XML (`<not-well-formed/>`, RFC 6120 §4.9.3.13).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// XML features RFC 6120 §11.1 forbids: DTDs, comments, processing instructions,
    /// internal or external entity references (`<restricted-xml/>`, §4.9.3.18).
    #[error("restricted XML: {0}")]
    RestrictedXml(String),
    /// A configured size limit was exceeded (`<policy-violation/>`, §4.9.3.14).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// A namespace prefix was used without a declaration (`<bad-namespace-prefix/>`, §4.9.3.2).
    #[error("bad namespace prefix: {0}")]
    BadNamespacePrefix(String),
    /// Bytes that are not UTF-8, or a declared encoding other than UTF-8
    /// (`<unsupported-encoding/>`, §4.9.3.22, §11.6).
    #[error("unsupported encoding: {0}")]
    BadEncoding(String),
}

impl XmlError {
    pub(crate) fn nwf(msg: impl Into<String>) -> Self {
        XmlError::NotWellFormed(msg.into())
    }

    pub(crate) fn restricted(msg: impl Into<String>) -> Self {
        XmlError::RestrictedXml(msg.into())
    }

    pub(crate) fn policy(msg: impl Into<String>) -> Self {
        XmlError::PolicyViolation(msg.into())
    }
}

impl From<quick_xml::Error> for XmlError {
    fn from(e: quick_xml::Error) -> Self {
        XmlError::NotWellFormed(e.to_string())
    }
}

impl From<quick_xml::events::attributes::AttrError> for XmlError {
    fn from(e: quick_xml::events::attributes::AttrError) -> Self {
        XmlError::NotWellFormed(e.to_string())
    }
}

impl From<std::str::Utf8Error> for XmlError {
    fn from(_: std::str::Utf8Error) -> Self {
        // RFC 6120 §11.6 mandates UTF-8; §4.9.3.22 names the condition for violating it.
        XmlError::BadEncoding("invalid UTF-8".into())
    }
}

/// Resource limits enforced while bytes arrive, so hostile input is refused before it
/// is fully buffered (RFC 6120 §13.9.4).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted top-level element (stanza, stream header or XML declaration), in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest accepted element nesting; the stanza element itself is depth 1.
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    pub max_attrs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 32,
            max_attrs: 64,
        }
    }
}
