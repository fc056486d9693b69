//! Stream negotiation (RFC 6120 §4–§5, RFC 7395 §3): the client's header and ours, the
//! stream features, STARTTLS, and the `<open/>`/`<close/>` framing of web transports.
//!
//! The decisions are pure functions of literal values and XML (header checks, the feature
//! list, the mechanisms offered, what an element before authentication asks for), unit
//! tested below; the `impl Session` block applies them.

use actix::Context;
use parley_proto::ns;
use parley_proto::sasl::{self, ChannelBindingType, Mechanism, SaslFailure};
use parley_proto::stream_error::{StreamCondition, StreamError};
use parley_router::CloseReason;
use parley_xml::{Element, StreamHeader};

use crate::connection::Unit;
use crate::phase::{EndCause, Phase, StartTls, StreamState};
use crate::session::Session;

/// What a connection may be offered now, from its transport and the node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    /// The connection is TLS (or counts as such).
    pub secure: bool,
    /// STARTTLS can be done on this connection now (the transport can, a certificate is
    /// configured).
    pub starttls: bool,
    /// `[c2s] require_encryption`.
    pub require_encryption: bool,
    /// Passwords are checked by the site's backend (`[auth] delegate_url`).
    pub delegated: bool,
    /// `[sasl] mechanisms`: nothing else is offered.
    pub allowed: Vec<Mechanism>,
    /// The channel bindings the connection has (SCRAM-PLUS).
    pub channel_bindings: Vec<ChannelBindingType>,
    /// The largest stanza accepted (XEP-0478).
    pub max_stanza_bytes: usize,
    /// Stream Management (XEP-0198) is on and this transport takes it.
    pub sm: bool,
    /// The server's entity capabilities `<c/>` (XEP-0115 §6.3), announced once
    /// authenticated.
    pub caps: Option<Element>,
    /// In-band registration of new accounts is on (XEP-0077 §8, XEP-0445 §3).
    pub signup: bool,
}

/// How far negotiation is, as far as the features are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before SASL success.
    Unauthed,
    /// After SASL success, before a resource is bound.
    Authed,
    /// A resource is bound (a restart then has nothing to offer).
    Bound,
}

impl Stage {
    fn of(phase: &Phase) -> Stage {
        match phase {
            Phase::Unauthed(_) => Stage::Unauthed,
            Phase::Authed { .. } => Stage::Authed,
            Phase::Bound(_)
            | Phase::Established(_)
            | Phase::Component(_)
            | Phase::S2sIn(_)
            | Phase::S2sOut(_) => Stage::Bound,
        }
    }
}

/// The server's stream header (RFC 6120 §4.7; RFC 7395 §3.3.2 when framed).
pub(crate) fn header(framed: bool, stream_id: &str, from: &str) -> String {
    if framed {
        format!(
            "<open xmlns='{}' id='{}' from='{}' version='1.0' xml:lang='en'/>",
            ns::FRAMING,
            stream_id,
            parley_xml::escape::attr(from),
        )
    } else {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{}' from='{}' version='1.0' xml:lang='en'>",
            ns::CLIENT,
            ns::STREAM,
            stream_id,
            parley_xml::escape::attr(from),
        )
    }
}

/// RFC 7395 §3.3.2: an `<open/>` read as the stream header it stands for.
pub(crate) fn framed_header(open: &Element) -> StreamHeader {
    StreamHeader {
        name: "stream".into(),
        ns: ns::STREAM.into(),
        default_ns: Some(ns::CLIENT.into()),
        attrs: open
            .attrs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// RFC 6120 §4.7.2: the domain a header's `to` names, lowercased, if this server serves it.
pub(crate) fn requested_host(
    header: &StreamHeader,
    serves: impl Fn(&str) -> bool,
) -> Option<String> {
    header
        .attr("to")
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| serves(t))
}

/// RFC 6120 §4.7–§4.9: whether a client's header opens a stream we speak. `host` is
/// [`requested_host`]; `authed_domain` the authenticated user's domain on a restart after
/// SASL (RFC 6120 §6.4.6), which the restarted stream must be addressed to.
pub(crate) fn check_header(
    header: &StreamHeader,
    host: Option<&str>,
    authed_domain: Option<&str>,
) -> Result<(), StreamError> {
    // §4.9.3.10: the stream element and the content namespace must be the right ones.
    if header.name != "stream" || header.ns != ns::STREAM {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the stream element must be {http://etherx.jabber.org/streams}stream",
        ));
    }
    if header.default_ns.as_deref() != Some(ns::CLIENT) {
        return Err(StreamError::with_text(
            StreamCondition::InvalidNamespace,
            "the content namespace of a client stream must be jabber:client",
        ));
    }
    // §4.7.5: we speak version 1.0 only; a missing version is 0.9, refused too (§4.9.3.25).
    let version_ok = header
        .attr("version")
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            major.parse::<u32>() == Ok(1) && minor.parse::<u32>().is_ok()
        });
    if !version_ok {
        return Err(StreamError::with_text(
            StreamCondition::UnsupportedVersion,
            "this server supports XMPP version 1.0",
        ));
    }
    // §4.9.3.6: a host we do not serve.
    let Some(host) = host else {
        let text = match header.attr("to") {
            Some(t) => format!("this server does not serve {}", t.to_ascii_lowercase()),
            None => "the stream header has no 'to' address".to_owned(),
        };
        return Err(StreamError::with_text(StreamCondition::HostUnknown, text));
    };
    if authed_domain.is_some_and(|d| d != host) {
        return Err(StreamError::with_text(
            StreamCondition::HostUnknown,
            "the restarted stream must be addressed to the authenticated domain",
        ));
    }
    Ok(())
}

/// RFC 6120 §6.3.3: the SASL mechanisms offered. None on a plain connection that must be
/// encrypted first (§5.3.1: TLS is then mandatory-to-negotiate); with delegated passwords
/// only PLAIN and tokens, since the server holds no keys for SCRAM.
pub(crate) fn offered_mechanisms(offer: &Offer) -> Vec<Mechanism> {
    let mut mechs = all_mechanisms(offer);
    mechs.retain(|m| offer.allowed.contains(m));
    mechs
}

/// [`offered_mechanisms`] before `[sasl] mechanisms` is applied.
fn all_mechanisms(offer: &Offer) -> Vec<Mechanism> {
    if !offer.secure && offer.require_encryption {
        return Vec::new();
    }
    if offer.delegated {
        return vec![Mechanism::Plain, Mechanism::OAuthBearer];
    }
    let mut mechs = Vec::new();
    if !offer.channel_bindings.is_empty() {
        mechs.push(Mechanism::ScramSha256Plus);
        mechs.push(Mechanism::ScramSha1Plus);
    }
    mechs.extend([
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
        Mechanism::OAuthBearer,
    ]);
    mechs
}

/// XEP-0478: how big a stanza may be.
fn limits_feature(max_stanza_bytes: usize) -> Element {
    Element::new("limits", ns::STREAM_LIMITS).with_child(
        Element::new("max-bytes", ns::STREAM_LIMITS).with_text(max_stanza_bytes.to_string()),
    )
}

/// RFC 6120 §4.3.2: the children of `<stream:features/>` at `stage`.
pub(crate) fn features(stage: Stage, offer: &Offer) -> Vec<Element> {
    let mut features = Vec::new();
    match stage {
        Stage::Unauthed => {
            // §5.3.1: STARTTLS, marked required when nothing else may happen before it.
            if !offer.secure && offer.starttls {
                let mut starttls = Element::new("starttls", ns::TLS);
                if offer.require_encryption {
                    starttls.push_child(Element::new("required", ns::TLS));
                }
                features.push(starttls);
            }
            let mechs = offered_mechanisms(offer);
            if !mechs.is_empty() {
                features.push(sasl::mechanisms_element(&mechs));
                if !offer.channel_bindings.is_empty() {
                    features.push(sasl::channel_binding_element(&offer.channel_bindings));
                }
                features.push(limits_feature(offer.max_stanza_bytes));
            }
            // XEP-0077 §8: registration once TLS is done where TLS is required.
            if offer.signup && (offer.secure || !offer.require_encryption) {
                features.extend(parley_proto::register::features(true));
            }
        }
        Stage::Authed => {
            // RFC 6120 §7.2.
            features.push(Element::new("bind", ns::BIND));
            // RFC 6121 §2.6.1: roster versioning.
            features.push(Element::new("ver", ns::ROSTER_VER));
            features.push(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
            // XEP-0198 §2: offered once authenticated; enabled after the bind, or used at
            // once to resume.
            if offer.sm {
                features.push(Element::new("sm", ns::SM));
            }
            // XEP-0352 §3.
            features.push(Element::new("csi", parley_proto::csi::NS));
            if let Some(c) = &offer.caps {
                features.push(c.clone());
            }
            features.push(limits_feature(offer.max_stanza_bytes));
        }
        Stage::Bound => {}
    }
    features
}

/// What an element before authentication asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unauthed {
    /// RFC 6120 §5.4.1: `<starttls/>`.
    StartTls,
    /// RFC 6120 §6.4: a SASL element (`auth`, `response`, `abort`, …), by name.
    Sasl(String),
    /// RFC 6120 §5.3.1, §6.5.4: `<auth/>` while TLS must come first.
    EncryptionRequired,
    /// RFC 6120 §5.3.1: anything but `<starttls/>` while TLS must come first.
    TlsFirst,
    /// XEP-0077 §3.1 / XEP-0445 §4: a registration iq (`jabber:iq:register`, `<preauth/>`).
    Signup,
    /// Anything else: a stanza before authentication (RFC 6120 §6.4.1, §7.1).
    NotAuthorized,
}

/// Classifies an element received before authentication. `tls_required`: the connection is
/// plain and `[c2s] require_encryption` is on.
pub(crate) fn unauthed(el: &Element, tls_required: bool) -> Unauthed {
    if el.is("starttls", ns::TLS) {
        Unauthed::StartTls
    } else if el.ns() == ns::SASL && !tls_required {
        Unauthed::Sasl(el.name().to_owned())
    } else if el.is("auth", ns::SASL) {
        Unauthed::EncryptionRequired
    } else if tls_required {
        Unauthed::TlsFirst
    } else if parley_proto::register::is_request(el) {
        Unauthed::Signup
    } else {
        Unauthed::NotAuthorized
    }
}

impl Session {
    /// What this connection may be offered now.
    pub(crate) fn offer(&self) -> Offer {
        Offer {
            secure: self.secure(),
            starttls: self.conn.can_starttls() && self.env.tls_available,
            require_encryption: self.env.config.require_encryption,
            delegated: self.env.external_auth.is_some(),
            allowed: self.env.config.mechanisms.clone(),
            channel_bindings: self.conn.channel_bindings().types(),
            max_stanza_bytes: self.env.config.limits.max_stanza_bytes,
            sm: self.env.config.sm.enabled && self.conn.stream_management(),
            caps: matches!(self.phase, Phase::Authed { .. }).then(|| {
                self.env
                    .server_caps
                    .get_or_init(|| parley_proto::caps::element(&self.server_info()))
                    .clone()
            }),
            signup: self.env.signup.settings().mode != crate::signup::SignupMode::Off,
        }
    }

    /// RFC 6120 §4.7: validate the client's header, answer with ours and the features.
    pub(crate) fn on_stream_open(&mut self, header: StreamHeader, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Component(_) => return self.on_component_header(header, ctx),
            Phase::S2sIn(_) => return self.on_in_header(header, ctx),
            Phase::S2sOut(_) => return self.on_out_header(header, ctx),
            _ => {}
        }
        if !self.count_open(ctx) {
            return;
        }
        let host = requested_host(&header, |t| self.env.router.serves(t));
        let from = host.clone().unwrap_or_else(|| self.default_host());
        // §4.9.1.2: our header goes first, also when the stream is refused.
        self.send_header(&from);
        self.stream = StreamState::Open { host: from };
        let authed_domain = match &self.phase {
            Phase::Authed { user } => Some(user.domain().as_str().to_owned()),
            _ => None,
        };
        if let Err(err) = check_header(&header, host.as_deref(), authed_domain.as_deref()) {
            return self.close(err.into(), ctx);
        }
        let features = features(Stage::of(&self.phase), &self.offer());
        self.send_stream_level(Unit::Element, "features", &features);
    }

    /// RFC 7395 §3.3 and §3.6: `<open/>` opens (or restarts) the stream, `<close/>` ends it.
    pub(crate) fn on_framing(&mut self, el: Element, ctx: &mut Context<Self>) {
        match el.name() {
            "open" => self.on_stream_open(framed_header(&el), ctx),
            "close" => {
                self.end = Some(EndCause::Ended);
                if !self.close_after_archiving(ctx) {
                    self.close(CloseReason::Clean, ctx);
                }
            }
            other => self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("unknown framing element <{other}/>"),
                ),
                ctx,
            ),
        }
    }

    /// A top-level element, by phase.
    pub(crate) fn on_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        match &self.phase {
            Phase::Unauthed(_) => self.on_unauthed_element(el, ctx),
            Phase::Authed { .. } if el.ns() == ns::SM => self.on_sm_authed(el, ctx),
            Phase::Authed { .. } => self.on_authed_element(el, ctx),
            Phase::Bound(_) | Phase::Established(_) if el.ns() == ns::SM => {
                self.on_sm_bound(el, ctx)
            }
            Phase::Bound(_) | Phase::Established(_) if el.ns() == parley_proto::csi::NS => {
                self.on_csi(el, ctx)
            }
            Phase::Bound(_) | Phase::Established(_) => self.on_stanza(el, ctx),
            Phase::Component(_) => self.on_component_element(el, ctx),
            Phase::S2sIn(_) => self.on_in_element(el, ctx),
            Phase::S2sOut(_) => self.on_out_element(el, ctx),
        }
    }

    fn on_unauthed_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        let tls_required = self.env.config.require_encryption && !self.secure();
        match unauthed(&el, tls_required) {
            Unauthed::StartTls => self.on_starttls(ctx),
            Unauthed::Sasl(name) => match name.as_str() {
                "auth" => self.on_auth(&el, ctx),
                "response" => self.on_sasl_response(&el, ctx),
                "abort" => self.sasl_fail(SaslFailure::Aborted, None, ctx),
                _ => self.sasl_fail(SaslFailure::MalformedRequest, None, ctx),
            },
            // RFC 6120 §6.5.4 (<encryption-required/>) and §5.3.1: TLS is
            // mandatory-to-negotiate here.
            Unauthed::EncryptionRequired => self.sasl_fail(
                SaslFailure::EncryptionRequired,
                Some("use STARTTLS before authenticating"),
                ctx,
            ),
            Unauthed::Signup => self.on_signup_iq(el, ctx),
            Unauthed::TlsFirst => self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "encryption is required: only <starttls/> is accepted before TLS",
                ),
                ctx,
            ),
            Unauthed::NotAuthorized => self.close(
                CloseReason::with_text(
                    StreamCondition::NotAuthorized,
                    "authenticate before sending stanzas",
                ),
                ctx,
            ),
        }
    }

    /// RFC 6120 §5.4.2: `<proceed/>`, or `<failure/>` and close (§5.4.2.2). Only reachable
    /// before authentication: a later `<starttls/>` is a stanza of the wrong kind.
    fn on_starttls(&mut self, ctx: &mut Context<Self>) {
        let offer = self.offer();
        if offer.secure || !offer.starttls {
            self.send_nonza(&Element::new("failure", ns::TLS));
            return self.close(CloseReason::Clean, ctx);
        }
        self.send_nonza(&Element::new("proceed", ns::TLS));
        if let Some(u) = self.unauthed_mut() {
            u.starttls = StartTls::Proceeding;
        }
    }
}

#[cfg(test)]
#[path = "negotiation_tests.rs"]
mod tests;
