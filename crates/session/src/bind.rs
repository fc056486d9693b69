//! Resource binding (RFC 6120 §7): after SASL, a client binds a resource before it may
//! send stanzas; a prebound session (BOSH prebind) binds one as it starts.
//!
//! The bind is local first (the router applies the resource-conflict policy under its
//! lock), then, in a cluster, a claim of the full JID cluster-wide; nothing else the session
//! receives is handled meanwhile.

use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::{FullJid, ResourcePart};
use parley_proto::ns;
use parley_proto::stanza_error::{error_reply, iq_result, StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{BindOutcome, ClaimOutcome, CloseReason, ResourceConflict, SessionHandle};
use parley_user::AttachState;
use parley_xml::Element;
use tracing::{info, warn};

use crate::phase::{Bound, Phase};
use crate::session::Session;

/// How long a bind waits for its cluster-wide claim before it is refused.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a prebound session says how its bind went: the bound full JID, or why not.
pub type PrebindReply = tokio::sync::oneshot::Sender<Result<FullJid, BindError>>;

/// Why a bind was refused (RFC 6120 §7.6.2, §7.7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// §7.7.2.1: the resource is not valid under resourceprep.
    #[error("the resource is not valid under resourceprep")]
    BadResource,
    /// §7.7.2.2: the resource is bound by another session and the policy keeps it.
    #[error("this resource is already bound")]
    Conflict,
    /// §7.6.2.1: the account has reached its limit of bound resources.
    #[error("this account has too many resources bound")]
    TooManyResources,
    /// The cluster registry could not be reached to claim the full JID.
    #[error("this node cannot bind resources now (cluster registry unreachable)")]
    Unavailable,
}

impl BindError {
    /// The stanza error a client's bind iq gets.
    pub(crate) fn stanza_error(self) -> StanzaError {
        let condition = match self {
            BindError::BadResource => StanzaCondition::BadRequest,
            BindError::Conflict => StanzaCondition::Conflict,
            BindError::TooManyResources | BindError::Unavailable => {
                StanzaCondition::ResourceConstraint
            }
        };
        StanzaError::with_text(condition, self.to_string())
    }
}

/// Who asked for a bind, and so gets the answer.
pub(crate) enum Requester {
    /// The client, with its `<iq type='set'><bind/></iq>`.
    Client(Element),
    /// The prebind call that created the session.
    Prebind(PrebindReply),
}

/// What an element after authentication and before a bind asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authed {
    /// RFC 6120 §7.2: a bind request.
    Bind,
    /// RFC 3921 §3: session establishment, a no-op that some clients still send.
    LegacySession,
    /// RFC 6120 §7.1: anything else; no stanza may be sent before a resource is bound.
    Refuse,
}

/// Classifies an element received after SASL and before a bind.
pub(crate) fn authed(el: &Element) -> Authed {
    let iq = el.is("iq", ns::CLIENT);
    if iq && el.attr("type") == Some("set") && el.has_child("bind", ns::BIND) {
        Authed::Bind
    } else if iq && el.has_child("session", ns::SESSION) {
        Authed::LegacySession
    } else {
        Authed::Refuse
    }
}

/// RFC 6120 §7.6, §7.7: the resource a bind asks for (None: the server picks one). Empty
/// or blank means none; one that resourceprep refuses is a bad request.
pub(crate) fn requested_resource(
    requested: Option<&str>,
) -> Result<Option<ResourcePart>, BindError> {
    match requested
        .filter(|r| !r.trim().is_empty())
        .map(ResourcePart::new)
    {
        None => Ok(None),
        Some(Ok(r)) => Ok(Some(r.into_owned())),
        Some(Err(_)) => Err(BindError::BadResource),
    }
}

/// The `<resource/>` text of a bind iq, if any.
pub(crate) fn bind_resource_text(iq: &Element) -> Option<String> {
    iq.get_child("bind", ns::BIND)
        .and_then(|b| b.get_child("resource", ns::BIND))
        .map(|r| r.text())
}

/// RFC 6120 §7.6.1: a resource the server generates.
fn random_resource() -> ResourcePart {
    let bytes: [u8; 8] = rand::random();
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ResourcePart::new(&format!("parley-{s}"))
        .expect("hex resource is valid")
        .into_owned()
}

impl Session {
    pub(crate) fn on_authed_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        match authed(&el) {
            Authed::Bind => {
                let text = bind_resource_text(&el);
                match requested_resource(text.as_deref()) {
                    Ok(resource) => self.bind_resource(Requester::Client(el), resource, 0, ctx),
                    Err(e) => self.refuse_bind(Requester::Client(el), e, ctx),
                }
            }
            Authed::LegacySession => {
                let reply = iq_result(&el);
                self.send(&reply, ctx);
            }
            // RFC 6120 §7.1: stanzas before a resource is bound are refused.
            Authed::Refuse => self.close(
                CloseReason::with_text(StreamCondition::NotAuthorized, "bind a resource first"),
                ctx,
            ),
        }
    }

    /// The bind of a prebound session, when its actor starts.
    pub(crate) fn prebind(
        &mut self,
        resource: Option<String>,
        reply: PrebindReply,
        ctx: &mut Context<Self>,
    ) {
        match requested_resource(resource.as_deref()) {
            Ok(resource) => self.bind_resource(Requester::Prebind(reply), resource, 0, ctx),
            Err(e) => self.refuse_bind(Requester::Prebind(reply), e, ctx),
        }
    }

    /// Tells the requester why its bind failed. A client may try again; a prebound session
    /// has nobody to try again and closes.
    fn refuse_bind(&mut self, requester: Requester, err: BindError, ctx: &mut Context<Self>) {
        match requester {
            Requester::Client(iq) => {
                if let Some(reply) = error_reply(&iq, &err.stanza_error()) {
                    self.send(&reply, ctx);
                }
            }
            Requester::Prebind(reply) => {
                let _ = reply.send(Err(err));
                self.close(CloseReason::Clean, ctx);
            }
        }
    }

    /// Binds locally, then (in a cluster) claims the full JID cluster-wide before answering;
    /// nothing else this session receives is handled meanwhile.
    fn bind_resource(
        &mut self,
        requester: Requester,
        resource: Option<ResourcePart>,
        attempt: u8,
        ctx: &mut Context<Self>,
    ) {
        let Phase::Authed { user } = &self.phase else {
            return;
        };
        let user = user.clone();
        let policy = self.env.config.resource_conflict;
        let handle = self.session_handle(ctx);
        let outcome =
            self.env
                .router
                .bind(&user, resource.as_ref(), handle, policy, random_resource);
        let (jid, replaced) = match outcome {
            BindOutcome::Conflict => return self.refuse_bind(requester, BindError::Conflict, ctx),
            BindOutcome::TooMany => {
                if parley_router::metrics::refuse("resources_per_account", user.as_str()) {
                    warn!(user = %user, "bind refused: too many resources for one account");
                }
                return self.refuse_bind(requester, BindError::TooManyResources, ctx);
            }
            BindOutcome::Bound { jid, replaced } => (jid, replaced),
        };
        let Some(dir) = self.env.router.directory().cloned() else {
            return self.finish_bind(requester, jid, replaced, ctx);
        };
        let claim = dir.claim(&jid, self.id, policy);
        let claim = async move {
            actix_rt::time::timeout(CLAIM_TIMEOUT, claim)
                .await
                .unwrap_or(ClaimOutcome::Unavailable)
        };
        ctx.wait(wrap_future::<_, Self>(claim).map(move |outcome, act, ctx| {
            if outcome == ClaimOutcome::Won {
                return act.finish_bind(requester, jid, replaced, ctx);
            }
            act.env.router.unbind(&jid, act.id);
            if let Some(old) = replaced {
                // The local holder lost its resource when this bind replaced it locally.
                old.close(CloseReason::with_text(
                    StreamCondition::Conflict,
                    "replaced by a new connection for the same resource",
                ));
            }
            match outcome {
                // RFC 6120 §7.7.2.2: under "random" the client gets another resource.
                ClaimOutcome::Taken if policy == ResourceConflict::Random && attempt < 3 => {
                    act.bind_resource(requester, None, attempt + 1, ctx)
                }
                ClaimOutcome::Taken => act.refuse_bind(requester, BindError::Conflict, ctx),
                _ => act.refuse_bind(requester, BindError::Unavailable, ctx),
            }
        }));
    }

    fn finish_bind(
        &mut self,
        requester: Requester,
        jid: FullJid,
        replaced: Option<SessionHandle>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(old) = replaced {
            old.close(CloseReason::with_text(
                StreamCondition::Conflict,
                "replaced by a new connection for the same resource",
            ));
        }
        self.span.record("jid", tracing::field::display(&jid));
        {
            let _enter = self.span.enter();
            info!("resource bound");
        }
        if self.secure() {
            self.meta.set_secure();
        }
        let handle = self.session_handle(ctx);
        let user = self.env.users.attach(
            &jid.to_bare(),
            jid.resource().as_str(),
            handle,
            AttachState::default(),
        );
        self.phase = Phase::Bound(Bound::new(jid.clone(), user));
        self.watch_peer(ctx);
        match requester {
            Requester::Client(iq) => {
                // RFC 6120 §7.6.1: the result carries the full JID.
                let reply = iq_result(&iq).with_child(
                    Element::new("bind", ns::BIND)
                        .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
                );
                self.send(&reply, ctx);
            }
            Requester::Prebind(reply) => {
                let _ = reply.send(Ok(jid));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &parley_xml::Limits::default()).expect("test XML")
    }

    #[test]
    fn rfc6120_7_2_bind_iq_is_a_bind() {
        let iq = el("<iq xmlns='jabber:client' type='set' id='b'>\
                     <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
        assert_eq!(authed(&iq), Authed::Bind);
        assert_eq!(bind_resource_text(&iq).as_deref(), Some("phone"));
    }

    #[test]
    fn rfc6120_7_1_stanzas_before_bind_are_refused() {
        let msg =
            el("<message xmlns='jabber:client' to='bob@example.org'><body>hi</body></message>");
        assert_eq!(authed(&msg), Authed::Refuse);
        let get = el("<iq xmlns='jabber:client' type='get' id='b'>\
                      <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        assert_eq!(authed(&get), Authed::Refuse, "a bind is a set");
    }

    #[test]
    fn rfc3921_3_legacy_session_before_bind_is_answered() {
        let iq = el("<iq xmlns='jabber:client' type='set' id='s'>\
                     <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
        assert_eq!(authed(&iq), Authed::LegacySession);
    }

    #[test]
    fn rfc6120_7_6_empty_resource_lets_the_server_choose() {
        assert_eq!(requested_resource(None), Ok(None));
        assert_eq!(requested_resource(Some("  ")), Ok(None));
        let r = requested_resource(Some("phone")).unwrap().unwrap();
        assert_eq!(r.as_str(), "phone");
        assert!(random_resource().as_str().starts_with("parley-"));
    }

    #[test]
    fn rfc6120_7_7_2_1_bad_resource_is_bad_request() {
        // A resource longer than 1023 bytes is refused by resourceprep.
        let long = "x".repeat(2000);
        assert_eq!(requested_resource(Some(&long)), Err(BindError::BadResource));
        let err = BindError::BadResource.stanza_error();
        assert_eq!(err.condition, StanzaCondition::BadRequest);
    }

    #[test]
    fn rfc6120_7_7_2_2_conflict_and_limits_map_to_their_conditions() {
        assert_eq!(
            BindError::Conflict.stanza_error().condition,
            StanzaCondition::Conflict
        );
        assert_eq!(
            BindError::TooManyResources.stanza_error().condition,
            StanzaCondition::ResourceConstraint
        );
    }
}
