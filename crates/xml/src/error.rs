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
    /// Most namespace declarations in scope at any element of a stanza, counting the
    /// stream header's (RFC 6120 §4.9.3.14 `<policy-violation/>` past it).
    pub max_namespace_declarations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 32,
            max_attrs: 64,
            max_namespace_declarations: 64,
        }
    }
}

impl Limits {
    /// The largest values a deployment may configure; `parley`'s config validation
    /// enforces them, so [`Limits::for_copies`] of them covers every configuration.
    pub const CEILING: Limits = Limits {
        max_stanza_bytes: 16 << 20,
        max_depth: 256,
        max_attrs: 1_024,
        max_namespace_declarations: 1_024,
    };

    /// Limits for re-reading a copy this server serialized from an element accepted
    /// under `self` (stored offline messages, node-link frames, pending subscription
    /// requests), which must never refuse what was accepted (RFC 6120 §13.9.4 limits
    /// apply to what peers send, not to our own copies). The serialized form can be
    /// larger than the input: escaping turns one byte into at most six (`'` into
    /// `&apos;`), and namespace declarations the parser inherited are written out,
    /// bounded by the stanza size again (see `tree::Budget`); the server may wrap
    /// a stanza a few levels deeper (XEP-0280 carbons, XEP-0203 delay); an element
    /// carries its own `xmlns` and the declarations of its prefixed attributes.
    pub fn for_copies(&self) -> Limits {
        let max_attrs = self.max_attrs.saturating_mul(2).saturating_add(2);
        let max_depth = self.max_depth.saturating_add(16);
        Limits {
            max_stanza_bytes: self
                .max_stanza_bytes
                .saturating_mul(8)
                .saturating_add(64 << 10),
            max_depth,
            max_attrs,
            max_namespace_declarations: max_depth.saturating_mul(max_attrs),
        }
    }

    /// [`Limits::for_copies`] of [`Limits::CEILING`]: for re-reading our own copies
    /// where the configured limits are not at hand (node-link frames).
    pub fn trusted_copies() -> Limits {
        Limits::CEILING.for_copies()
    }
}
