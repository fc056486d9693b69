//! External components (XEP-0114, the Jabber Component Protocol): Prosody's `component`
//! session type, on the same actor, driver, limits and close path as a client's session.
//!
//! A component connects to a component port, opens a `jabber:component:accept` stream to
//! its domain, and proves the domain's shared secret with `<handshake/>` (the pure rules
//! are in `parley_proto::component`). Its connection is then bound in the routing table,
//! and claimed cluster-wide, under [`parley_router::component_jid`]: the router sends
//! every stanza for the domain there, from any node. One connection per domain: a second
//! one is refused with `<conflict/>`, as Prosody does.
//!
//! What the component sends is a stanza of its domain: its `from` must be in that domain
//! (else `<invalid-from/>`) and it must have a `to` (else `<improper-addressing/>`); it is
//! then routed like any server-originated stanza. Stanzas are read in the component's
//! namespace and routed in `jabber:client`; on the way out they are written without a
//! namespace declaration, so that the component reads them in its stream's namespace.

use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::{BareJid, FullJid, Jid, ResourcePart};
use parley_proto::component;
use parley_proto::ns;
use parley_proto::stream_error::StreamCondition;
use parley_router::{
    BindOutcome, ClaimOutcome, CloseReason, Origin, ResourceConflict, Routed, COMPONENT_RESOURCE,
};
use parley_xml::{Element, StreamHeader};
use tracing::{info, warn};

use crate::phase::{Phase, StreamState};
use crate::session::Session;

/// How long a component's handshake waits for its cluster-wide claim.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a component's connection is.
#[derive(Debug)]
pub enum ComponentPhase {
    /// No stream header yet.
    AwaitingHeader,
    /// The header named `domain`; the server's header carried `stream_id`, which the
    /// handshake digest covers.
    AwaitingHandshake {
        /// The component's domain.
        domain: String,
        /// The id the handshake proves the secret with.
        stream_id: String,
    },
    /// The handshake was right; the routing claim is under way (input is paused).
    Claiming,
    /// Serving `domain`, bound as `jid`.
    Ready {
        /// The component's domain.
        domain: String,
        /// Its connection's place in the routing table.
        jid: FullJid,
    },
}

impl ComponentPhase {
    /// Whether the component has authenticated.
    pub fn ready(&self) -> bool {
        matches!(self, ComponentPhase::Ready { .. })
    }
}

impl Session {
    /// The routing-table JID of a ready component's connection.
    pub(crate) fn component_jid(&self) -> Option<&FullJid> {
        match &self.phase {
            Phase::Component(ComponentPhase::Ready { jid, .. }) => Some(jid),
            _ => None,
        }
    }

    /// XEP-0114 §3: the component's stream header; ours goes first whatever it says.
    pub(crate) fn on_component_header(&mut self, header: StreamHeader, ctx: &mut Context<Self>) {
        if !self.count_open(ctx) {
            return;
        }
        let checked =
            component::check_header(&header, |d| self.env.components.secrets.contains_key(d));
        let from = match &checked {
            Ok(domain) => domain.clone(),
            Err(_) => self.default_host(),
        };
        let stream_id = self.send_header(&from);
        self.stream = StreamState::Open { host: from };
        let domain = match checked {
            Ok(domain) => domain,
            Err(e) => return self.close(e.into(), ctx),
        };
        if !matches!(self.phase, Phase::Component(ComponentPhase::AwaitingHeader)) {
            // XEP-0114 has no stream restarts.
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "a component stream is opened once",
                ),
                ctx,
            );
        }
        self.phase = Phase::Component(ComponentPhase::AwaitingHandshake { domain, stream_id });
    }

    /// A top-level element on a component's stream.
    pub(crate) fn on_component_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        let Phase::Component(phase) = &self.phase else {
            return;
        };
        match phase {
            ComponentPhase::AwaitingHandshake { domain, stream_id } => {
                let (domain, stream_id) = (domain.clone(), stream_id.clone());
                self.on_handshake(&el, domain, &stream_id, ctx)
            }
            ComponentPhase::Ready { domain, .. } => {
                let domain = domain.clone();
                self.on_component_stanza(el, &domain, ctx)
            }
            // Read no further while the claim is under way (the session is paused).
            ComponentPhase::Claiming | ComponentPhase::AwaitingHeader => {}
        }
    }

    /// XEP-0114 §3: `<handshake>` with the digest, or the stream ends `<not-authorized/>`.
    fn on_handshake(
        &mut self,
        el: &Element,
        domain: String,
        stream_id: &str,
        ctx: &mut Context<Self>,
    ) {
        let proof = el.is("handshake", ns::COMPONENT).then(|| el.text());
        let secret = self.env.components.secrets.get(&domain);
        let right = match (proof, secret) {
            (Some(given), Some(secret)) => component::handshake_matches(stream_id, secret, &given),
            _ => false,
        };
        if !right {
            self.span.in_scope(|| {
                info!(component = %domain, "component handshake refused: wrong secret or no handshake")
            });
            return self.close(
                CloseReason::with_text(
                    StreamCondition::NotAuthorized,
                    "the handshake does not prove this domain's secret",
                ),
                ctx,
            );
        }
        let (Ok(bare), Ok(resource)) = (
            BareJid::new(&domain),
            ResourcePart::new(COMPONENT_RESOURCE).map(|r| r.into_owned()),
        ) else {
            return self.close(CloseReason::condition(StreamCondition::HostUnknown), ctx);
        };
        let handle = self.session_handle(ctx);
        let jid = match self.env.router.bind(
            &bare,
            Some(&resource),
            handle,
            ResourceConflict::KickNew,
            || resource.clone(),
        ) {
            BindOutcome::Bound { jid, .. } => jid,
            _ => return self.refuse_second_component(&domain, ctx),
        };
        let Some(dir) = self.env.router.directory().cloned() else {
            return self.component_ready(domain, jid);
        };
        self.phase = Phase::Component(ComponentPhase::Claiming);
        self.pause();
        let claim = dir.claim(&jid, self.id, ResourceConflict::KickNew);
        let claim = async move {
            actix_rt::time::timeout(CLAIM_TIMEOUT, claim)
                .await
                .unwrap_or(ClaimOutcome::Unavailable)
        };
        ctx.wait(wrap_future::<_, Self>(claim).map(move |outcome, act, ctx| {
            act.resume();
            match outcome {
                ClaimOutcome::Won => act.component_ready(domain, jid),
                ClaimOutcome::Taken => {
                    act.env.router.unbind(&jid, act.id);
                    act.refuse_second_component(&domain, ctx)
                }
                ClaimOutcome::Unavailable => {
                    act.env.router.unbind(&jid, act.id);
                    act.close(
                        CloseReason::with_text(
                            StreamCondition::ResourceConstraint,
                            "this node cannot take components now (cluster registry unreachable)",
                        ),
                        ctx,
                    )
                }
            }
        }));
    }

    fn refuse_second_component(&mut self, domain: &str, ctx: &mut Context<Self>) {
        self.span.in_scope(
            || warn!(component = %domain, "component refused: its domain is served already"),
        );
        self.close(
            CloseReason::with_text(
                StreamCondition::Conflict,
                "a component for this domain is connected already",
            ),
            ctx,
        );
    }

    fn component_ready(&mut self, domain: String, jid: FullJid) {
        self.span.record("jid", tracing::field::display(&domain));
        self.span.in_scope(|| info!("component connected"));
        if self.secure() {
            self.meta.set_secure();
        }
        self.meta.set_auth("secret");
        self.meta.set_link(parley_router::StreamLink {
            direction: "in",
            from_host: domain.clone(),
            to_host: self.env.router.hosts().min().unwrap_or_default().to_owned(),
        });
        self.phase = Phase::Component(ComponentPhase::Ready { domain, jid });
        self.send_nonza(&component::handshake_ok());
    }

    /// A stanza from a ready component: checked, moved to `jabber:client`, routed.
    fn on_component_stanza(&mut self, mut el: Element, domain: &str, ctx: &mut Context<Self>) {
        el.rename_ns(ns::COMPONENT, ns::CLIENT);
        if !matches!(el.name(), "message" | "presence" | "iq") || el.ns() != ns::CLIENT {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("<{}/> is not a stanza", el.name()),
                ),
                ctx,
            );
        }
        let from = el.attr("from").map(Jid::new);
        match from {
            Some(Ok(from)) if component::from_allowed(domain, &from) => {}
            _ => {
                return self.close(
                    CloseReason::with_text(
                        StreamCondition::InvalidFrom,
                        format!("a component may only send from its domain {domain}"),
                    ),
                    ctx,
                )
            }
        }
        if el.attr("to").is_none() {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::ImproperAddressing,
                    "a component's stanza needs a 'to'",
                ),
                ctx,
            );
        }
        self.meta.received();
        if el.name() != "message" {
            return self.route_from_component(el, ctx);
        }
        // XEP-0359 §3, then XEP-0313: archived for a local recipient before delivery.
        self.strip_forged_ids(&mut el);
        let recipient = el
            .attr("to")
            .and_then(|to| Jid::new(to).ok())
            .and_then(|to| {
                (to.node().is_some() && self.env.router.serves(to.domain().as_str()))
                    .then(|| to.to_bare().to_string())
            });
        let parties = crate::archive::Parties {
            sender: None,
            recipient,
        };
        self.archive_then(el, parties, ctx, |act, el, _, ctx| {
            act.route_from_component(el, ctx)
        });
    }

    fn route_from_component(&mut self, el: Element, ctx: &mut Context<Self>) {
        match self.env.router.route(el, Origin::Session(self.id)) {
            Routed::Bounced(reply) | Routed::Loopback(reply) => self.write_stanza(&reply, ctx),
            Routed::Session
            | Routed::User
            | Routed::Foreign
            | Routed::Service
            | Routed::Refused
            | Routed::Dropped => {}
        }
    }
}
