//! Stanza errors (RFC 6120 §8.3) and the helpers that build replies to
//! stanzas: error replies and IQ results.

use std::fmt;
use std::str::FromStr;

use parley_xml::Element;

use crate::ns;
use crate::stanza::StanzaKind;

/// A name that is not a stanza error type or condition of RFC 6120 §8.3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownStanzaError {
    #[error("unknown stanza error type `{0}`")]
    Type(String),
    #[error("unknown stanza error condition `{0}`")]
    Condition(String),
}

/// The `type` attribute of `<error/>` (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry: the error cannot be remedied.
    Cancel,
    /// Proceed: the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting: the error is temporary.
    Wait,
}

impl ErrorType {
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::Auth,
        ErrorType::Cancel,
        ErrorType::Continue,
        ErrorType::Modify,
        ErrorType::Wait,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

impl FromStr for ErrorType {
    type Err = UnknownStanzaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownStanzaError::Type(s.to_owned()))
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! stanza_conditions {
    ($($variant:ident => $name:literal, $ty:ident;)*) => {
        /// Defined stanza error conditions (RFC 6120 §8.3.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StanzaCondition {
            $(#[doc = concat!("`<", $name, "/>`")] $variant,)*
        }

        impl StanzaCondition {
            /// Every condition, in RFC order.
            pub const ALL: &'static [StanzaCondition] = &[$(StanzaCondition::$variant,)*];

            /// The element name used on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StanzaCondition::$variant => $name,)*
                }
            }

            /// The error type RFC 6120 §8.3.3 gives (or shows in its example)
            /// for this condition.
            pub fn default_type(self) -> ErrorType {
                match self {
                    $(StanzaCondition::$variant => ErrorType::$ty,)*
                }
            }
        }

        impl FromStr for StanzaCondition {
            type Err = UnknownStanzaError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(StanzaCondition::$variant),)*
                    other => Err(UnknownStanzaError::Condition(other.to_owned())),
                }
            }
        }
    };
}

stanza_conditions! {
    BadRequest => "bad-request", Modify;
    Conflict => "conflict", Cancel;
    FeatureNotImplemented => "feature-not-implemented", Cancel;
    Forbidden => "forbidden", Auth;
    Gone => "gone", Cancel;
    InternalServerError => "internal-server-error", Cancel;
    ItemNotFound => "item-not-found", Cancel;
    JidMalformed => "jid-malformed", Modify;
    NotAcceptable => "not-acceptable", Modify;
    NotAllowed => "not-allowed", Cancel;
    NotAuthorized => "not-authorized", Auth;
    PolicyViolation => "policy-violation", Modify;
    RecipientUnavailable => "recipient-unavailable", Wait;
    Redirect => "redirect", Modify;
    RegistrationRequired => "registration-required", Auth;
    RemoteServerNotFound => "remote-server-not-found", Cancel;
    RemoteServerTimeout => "remote-server-timeout", Wait;
    ResourceConstraint => "resource-constraint", Wait;
    ServiceUnavailable => "service-unavailable", Cancel;
    SubscriptionRequired => "subscription-required", Auth;
    UndefinedCondition => "undefined-condition", Cancel;
    UnexpectedRequest => "unexpected-request", Wait;
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stanza error (RFC 6120 §8.3.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stanza error: {condition} ({error_type})")]
pub struct StanzaError {
    pub error_type: ErrorType,
    pub condition: StanzaCondition,
    pub text: Option<String>,
    /// The entity that generated the error, when it is not the addressee.
    pub by: Option<String>,
    /// An application-specific condition (RFC 6120 §8.3.4), e.g. XEP-0191's `<blocked/>`.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    /// An error with the condition's default type and no text.
    pub fn new(condition: StanzaCondition) -> Self {
        StanzaError {
            error_type: condition.default_type(),
            condition,
            text: None,
            by: None,
            app: None,
        }
    }

    pub fn with_text(condition: StanzaCondition, text: impl Into<String>) -> Self {
        StanzaError {
            text: Some(text.into()),
            ..StanzaError::new(condition)
        }
    }

    /// Builds `<error type='…' [by='…']>` in the namespace of the stanza it
    /// will be put in (`jabber:client` or `jabber:server`); the condition and
    /// `<text/>` are in the stanza-errors namespace (RFC 6120 §8.3.2).
    pub fn to_element(&self, stanza_ns: &str) -> Element {
        let mut el = Element::new("error", stanza_ns).with_attr("type", self.error_type.as_str());
        if let Some(by) = &self.by {
            el = el.with_attr("by", by.as_str());
        }
        el = el.with_child(Element::new(self.condition.as_str(), ns::STANZA_ERRORS));
        if let Some(text) = &self.text {
            el = el.with_child(Element::new("text", ns::STANZA_ERRORS).with_text(text.as_str()));
        }
        if let Some(app) = &self.app {
            el = el.with_child((**app).clone());
        }
        el
    }

    /// The same error with an application-specific condition (RFC 6120 §8.3.4).
    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }

    /// Reads a stanza error from either the `<error/>` element itself or a
    /// stanza containing one. Returns `None` when there is no `<error/>` or it
    /// carries no condition. An unknown condition is read as
    /// `undefined-condition` and a missing or unknown `type` falls back to the
    /// condition's default, so that a slightly non-conforming peer still
    /// yields a usable error.
    pub fn from_element(el: &Element) -> Option<StanzaError> {
        let error = if el.name() == "error" {
            el
        } else {
            el.get_child("error", el.ns())?
        };
        let mut condition = None;
        let mut text = None;
        for child in error.children() {
            if child.ns() != ns::STANZA_ERRORS {
                continue;
            }
            if child.name() == "text" {
                text = Some(child.text());
            } else if condition.is_none() {
                condition = Some(
                    child
                        .name()
                        .parse()
                        .unwrap_or(StanzaCondition::UndefinedCondition),
                );
            }
        }
        let condition: StanzaCondition = condition?;
        let error_type = error
            .attr("type")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| condition.default_type());
        Some(StanzaError {
            error_type,
            condition,
            text,
            by: error.attr("by").map(str::to_owned),
            app: error
                .children()
                .find(|c| c.ns() != ns::STANZA_ERRORS)
                .map(|c| Box::new(c.clone())),
        })
    }
}

impl From<StanzaCondition> for StanzaError {
    fn from(condition: StanzaCondition) -> Self {
        StanzaError::new(condition)
    }
}

/// Whether the stanza has `type='error'`.
pub fn is_error(stanza: &Element) -> bool {
    stanza.attr("type") == Some("error")
}

/// Starts a reply to `stanza`: same name and namespace, `id` kept, `to` and
/// `from` swapped.
fn reply_skeleton(name: &str, stanza: &Element, ty: &str) -> Element {
    let mut reply = Element::new(name, stanza.ns());
    if let Some(id) = stanza.attr("id") {
        reply = reply.with_attr("id", id);
    }
    if let Some(from) = stanza.attr("from") {
        reply = reply.with_attr("to", from);
    }
    if let Some(to) = stanza.attr("to") {
        reply = reply.with_attr("from", to);
    }
    reply.with_attr("type", ty)
}

/// Builds the error reply to `stanza` (RFC 6120 §8.3.1).
///
/// Returns `None` when no error may be sent back: the stanza is itself an
/// error (§8.3.1 "MUST NOT respond to an error stanza with an error"), or it
/// is an IQ response (§8.2.3 rule 5: `result`/`error` IQs are never
/// answered). Message and presence replies keep the original payload, which
/// §8.3.1 permits and which helps the sender correlate; IQ replies do not,
/// since the request payload can be large and carries nothing the requester
/// lacks.
pub fn error_reply(stanza: &Element, err: &StanzaError) -> Option<Element> {
    if is_error(stanza) {
        return None;
    }
    let kind = StanzaKind::of(stanza);
    if kind == Some(StanzaKind::Iq) && stanza.attr("type") == Some("result") {
        return None;
    }
    let mut reply = reply_skeleton(stanza.name(), stanza, "error");
    if kind != Some(StanzaKind::Iq) {
        for child in stanza.children() {
            reply.push_child(child.clone());
        }
    }
    reply.push_child(err.to_element(stanza.ns()));
    Some(reply)
}

/// Builds an empty `type='result'` response to an IQ request (RFC 6120
/// §8.2.3): `id` kept, `to`/`from` swapped.
pub fn iq_result(req: &Element) -> Element {
    reply_skeleton("iq", req, "result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).expect("test XML parses")
    }

    #[test]
    fn rfc6120_8_3_2_error_types_round_trip() {
        for &t in ErrorType::ALL {
            assert_eq!(t.as_str().parse::<ErrorType>(), Ok(t));
        }
        assert!("fatal".parse::<ErrorType>().is_err());
    }

    #[test]
    fn rfc6120_8_3_3_defines_22_conditions_with_rfc_default_types() {
        assert_eq!(StanzaCondition::ALL.len(), 22);
        for &c in StanzaCondition::ALL {
            assert_eq!(c.as_str().parse::<StanzaCondition>(), Ok(c));
        }
        use StanzaCondition as C;
        let expected = [
            (C::BadRequest, ErrorType::Modify),
            (C::Conflict, ErrorType::Cancel),
            (C::FeatureNotImplemented, ErrorType::Cancel),
            (C::Forbidden, ErrorType::Auth),
            (C::Gone, ErrorType::Cancel),
            (C::InternalServerError, ErrorType::Cancel),
            (C::ItemNotFound, ErrorType::Cancel),
            (C::JidMalformed, ErrorType::Modify),
            (C::NotAcceptable, ErrorType::Modify),
            (C::NotAllowed, ErrorType::Cancel),
            (C::NotAuthorized, ErrorType::Auth),
            (C::PolicyViolation, ErrorType::Modify),
            (C::RecipientUnavailable, ErrorType::Wait),
            (C::Redirect, ErrorType::Modify),
            (C::RegistrationRequired, ErrorType::Auth),
            (C::RemoteServerNotFound, ErrorType::Cancel),
            (C::RemoteServerTimeout, ErrorType::Wait),
            (C::ResourceConstraint, ErrorType::Wait),
            (C::ServiceUnavailable, ErrorType::Cancel),
            (C::SubscriptionRequired, ErrorType::Auth),
            (C::UndefinedCondition, ErrorType::Cancel),
            (C::UnexpectedRequest, ErrorType::Wait),
        ];
        for (c, t) in expected {
            assert_eq!(c.default_type(), t, "{c}");
            assert_eq!(StanzaError::new(c).error_type, t);
        }
    }

    #[test]
    fn rfc6120_8_3_2_error_element_matches_literal_xml() {
        let err = StanzaError::new(StanzaCondition::ServiceUnavailable);
        assert_eq!(
            String::from_utf8(err.to_element(ns::CLIENT).to_bytes_in(Some(ns::CLIENT))).unwrap(),
            "<error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        );
        let mut err = StanzaError::with_text(StanzaCondition::Forbidden, "go away");
        err.by = Some("example.com".into());
        assert_eq!(
            err.to_element(ns::SERVER),
            parse(
                "<error xmlns='jabber:server' type='auth' by='example.com'>\
                 <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>go away</text></error>"
            )
        );
    }

    #[test]
    fn rfc6120_8_3_3_every_condition_round_trips_through_xml() {
        for &c in StanzaCondition::ALL {
            for &t in ErrorType::ALL {
                for ns in [ns::CLIENT, ns::SERVER] {
                    let err = StanzaError {
                        error_type: t,
                        condition: c,
                        text: Some("details".into()),
                        app: None,
                        by: Some("a.example".into()),
                    };
                    let reparsed = parse(&err.to_element(ns).to_string());
                    assert_eq!(StanzaError::from_element(&reparsed), Some(err.clone()));
                }
            }
            let bare = StanzaError::new(c);
            assert_eq!(
                StanzaError::from_element(&bare.to_element(ns::CLIENT)),
                Some(bare)
            );
        }
    }

    #[test]
    fn rfc6120_8_3_2_from_element_reads_error_inside_stanza() {
        let stanza = parse(
            "<iq xmlns='jabber:client' type='error' id='1'>\
             <error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></iq>",
        );
        let err = StanzaError::from_element(&stanza).unwrap();
        assert_eq!(err.condition, StanzaCondition::ResourceConstraint);
        assert_eq!(err.error_type, ErrorType::Wait);
        assert_eq!(err.text, None);
        assert_eq!(err.by, None);
    }

    #[test]
    fn rfc6120_8_3_3_unknown_condition_and_bad_type_are_tolerated() {
        let el = parse(
            "<error xmlns='jabber:client' type='bogus'>\
             <made-up xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        );
        let err = StanzaError::from_element(&el).unwrap();
        assert_eq!(err.condition, StanzaCondition::UndefinedCondition);
        assert_eq!(err.error_type, ErrorType::Cancel);
        let no_condition = parse("<error xmlns='jabber:client' type='cancel'/>");
        assert_eq!(StanzaError::from_element(&no_condition), None);
        let no_error = parse("<message xmlns='jabber:client'><body>hi</body></message>");
        assert_eq!(StanzaError::from_element(&no_error), None);
    }

    #[test]
    fn rfc6120_8_3_1_iq_error_reply_swaps_addresses_and_drops_payload() {
        let req = parse(
            "<iq xmlns='jabber:client' from='juliet@example.com/balcony' \
             to='example.com' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>",
        );
        let reply = error_reply(&req, &StanzaError::new(StanzaCondition::ServiceUnavailable));
        assert_eq!(
            reply.map(|r| r.to_string()).as_deref(),
            Some(
                "<iq xmlns='jabber:client' id='v1' to='juliet@example.com/balcony' \
                 from='example.com' type='error'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 </error></iq>"
            )
        );
    }

    #[test]
    fn rfc6120_8_3_1_message_error_reply_keeps_payload() {
        let msg = parse(
            "<message xmlns='jabber:server' from='romeo@example.net/orchard' \
             to='nobody@example.com' type='chat' id='m1'><body>hi</body></message>",
        );
        let reply = error_reply(&msg, &StanzaError::new(StanzaCondition::ItemNotFound)).unwrap();
        assert_eq!(
            reply,
            parse(
                "<message xmlns='jabber:server' id='m1' to='romeo@example.net/orchard' \
                 from='nobody@example.com' type='error'><body>hi</body>\
                 <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 </error></message>"
            )
        );
    }

    #[test]
    fn rfc6120_8_3_1_presence_error_reply_keeps_payload_without_addresses() {
        let pres = parse("<presence xmlns='jabber:client'><show>away</show></presence>");
        let reply = error_reply(&pres, &StanzaError::new(StanzaCondition::BadRequest)).unwrap();
        assert_eq!(
            reply,
            parse(
                "<presence xmlns='jabber:client' type='error'><show>away</show>\
                 <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 </error></presence>"
            )
        );
    }

    #[test]
    fn rfc6120_8_3_1_never_answers_an_error_with_an_error() {
        let err = StanzaError::new(StanzaCondition::ServiceUnavailable);
        for xml in [
            "<message xmlns='jabber:client' type='error' id='1'/>",
            "<presence xmlns='jabber:client' type='error'/>",
            "<iq xmlns='jabber:client' type='error' id='2'/>",
        ] {
            let stanza = parse(xml);
            assert!(is_error(&stanza));
            assert_eq!(error_reply(&stanza, &err), None, "{xml}");
        }
    }

    #[test]
    fn rfc6120_8_2_3_iq_result_is_never_answered_with_an_error() {
        let result = parse("<iq xmlns='jabber:client' type='result' id='3'/>");
        assert!(!is_error(&result));
        assert_eq!(
            error_reply(&result, &StanzaError::new(StanzaCondition::BadRequest)),
            None
        );
    }

    #[test]
    fn rfc6120_8_2_3_iq_result_swaps_addresses_and_keeps_id() {
        let req = parse(
            "<iq xmlns='jabber:client' from='a@example.com/r' to='example.com' \
             type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(
            iq_result(&req).to_string(),
            "<iq xmlns='jabber:client' id='ping1' to='a@example.com/r' \
             from='example.com' type='result'/>"
        );
    }
}
