//! An incoming server-to-server stream (RFC 6120 §4–§5, XEP-0220 §2.1.2–§2.2): another
//! server connected to us. It may STARTTLS (required by default), then asks with
//! `<db:result/>` to be accepted for its domain; we ask that domain's authority and answer
//! with the verdict. It may also ask us, as the authority for one of our domains, to check
//! a key (`<db:verify/>`).
//!
//! What it may send once authenticated: stanzas from a domain it proved, to a domain we
//! serve. A `from` outside them ends the stream with `<invalid-from/>` (RFC 6120
//! §4.9.3.9), a `to` we do not serve with `<host-unknown/>` (§4.9.3.6), and a stanza before
//! any dialback success with `<not-authorized/>`. Stanzas are then routed in
//! `jabber:client` like any other server's; errors for them go back through our own
//! outgoing stream to the sender's domain (streams are unidirectional, RFC 6120 §2.6).

use actix::{AsyncContext, Context, Handler};
use jid::Jid;
use parley_proto::dialback::{self, Dialback, Verdict};
use parley_proto::ns;
use parley_proto::s2s;
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, Origin, Routed, StreamLink, Wake};
use parley_user::{eligible_for_carbons, CarbonReceived};
use parley_xml::{Element, StreamHeader};
use tracing::info;

use super::routes::VerifyDone;
use crate::connection::Unit;
use crate::phase::{Phase, StartTls, StreamState};
use crate::server_iq::Entity;
use crate::session::Session;

/// Where an incoming stream is.
#[derive(Debug)]
pub enum S2sInPhase {
    /// No header yet (at first, and after TLS).
    AwaitingHeader,
    /// The stream is open.
    Open(S2sIn),
}

/// SASL EXTERNAL (XEP-0178) on an incoming stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum External {
    /// Not offered: no TLS, no `from`, or no certificate valid for it.
    Unavailable,
    /// Offered: the peer's certificate is valid for the `from` of its header.
    Offered,
    /// Tried and refused once; a second try ends the stream.
    Failed,
    /// Succeeded: the stream restarts, authenticated.
    Succeeded,
}

/// An open incoming stream.
#[derive(Debug)]
pub struct S2sIn {
    /// The id of our header: dialback keys on this stream are computed over it.
    pub(crate) stream_id: String,
    /// Our domain the header addressed.
    pub(crate) local: String,
    /// The domain the peer named in its header, if it did.
    pub(crate) peer: Option<String>,
    /// Where SASL EXTERNAL is.
    pub(crate) external: External,
    /// STARTTLS (RFC 6120 §5.4) as far as the session is concerned.
    pub(crate) starttls: StartTls,
    /// (remote, local) domain pairs the stream proved with dialback.
    pub(crate) authed: Vec<(String, String)>,
    /// (remote, local) pairs whose check an authority is answering.
    pub(crate) checking: Vec<(String, String)>,
}

impl S2sInPhase {
    /// Whether the stream proved any domain.
    pub fn authenticated(&self) -> bool {
        matches!(self, S2sInPhase::Open(s) if !s.authed.is_empty())
    }
}

impl Session {
    fn s2s_in(&mut self) -> Option<&mut S2sIn> {
        match &mut self.phase {
            Phase::S2sIn(S2sInPhase::Open(s)) => Some(s),
            _ => None,
        }
    }

    fn in_settings(&self) -> (bool, usize) {
        match &self.env.s2s {
            Some(r) => (
                r.settings().require_encryption,
                r.settings().max_pending_verifications,
            ),
            None => (true, 0),
        }
    }

    /// Whether we answer for `domain` as a server: a host, or a component's domain.
    fn ours(&self, domain: &str) -> bool {
        self.env.router.serves(domain) || self.env.router.is_component(domain)
    }

    /// RFC 6120 §4.7: the peer's header, answered with ours and the features.
    pub(crate) fn on_in_header(&mut self, header: StreamHeader, ctx: &mut Context<Self>) {
        if !self.count_open(ctx) {
            return;
        }
        let checked = s2s::check_header(&header, |d| self.env.router.serves(d));
        let from = match &checked {
            Ok(opened) => opened.to.clone(),
            Err(_) => self.default_host(),
        };
        // §4.9.1.2: our header goes first, also when the stream is refused.
        let stream_id = self.send_header(&from);
        self.stream = StreamState::Open { host: from };
        if let Err(e) = checked {
            return self.close(e.into(), ctx);
        }
        let (authed, after_sasl) = match &mut self.phase {
            Phase::S2sIn(S2sInPhase::Open(s)) => (
                std::mem::take(&mut s.authed),
                s.external == External::Succeeded,
            ),
            _ => (Vec::new(), false),
        };
        let Ok(opened) = checked else { return };
        if !authed.is_empty() && !after_sasl {
            // RFC 6120 §4.3.3: only TLS restarts a stream, and it comes before dialback.
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "an authenticated server stream is not restarted",
                ),
                ctx,
            );
        }
        // XEP-0178 §2: EXTERNAL when the certificate is valid for the domain the header
        // names; once it succeeded, the restarted stream keeps what it proved.
        let external = match (&opened.from, after_sasl) {
            (_, true) => External::Succeeded,
            (Some(from), false) if self.secure() && self.conn.peer_certificate_valid_for(from) => {
                External::Offered
            }
            _ => External::Unavailable,
        };
        self.phase = Phase::S2sIn(S2sInPhase::Open(S2sIn {
            stream_id,
            local: opened.to,
            peer: opened.from,
            external,
            starttls: StartTls::Idle,
            authed,
            checking: Vec::new(),
        }));
        let (required, _) = self.in_settings();
        let can_tls = self.conn.can_starttls() && self.env.tls_available;
        let features = s2s::features(
            self.secure(),
            can_tls,
            required,
            external == External::Offered,
        );
        self.send_stream_level(Unit::Element, "features", &features);
    }

    /// A top-level element on an incoming stream.
    pub(crate) fn on_in_element(&mut self, el: Element, ctx: &mut Context<Self>) {
        if self.s2s_in().is_none() {
            return;
        }
        let (required, _) = self.in_settings();
        if el.is("starttls", ns::TLS) {
            return self.on_in_starttls(ctx);
        }
        if required && !self.secure() {
            // RFC 6120 §5.3.1: TLS is mandatory-to-negotiate here.
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "encryption is required: only <starttls/> is accepted before TLS",
                ),
                ctx,
            );
        }
        if el.ns() == dialback::NS {
            return self.on_in_dialback(&el, ctx);
        }
        if el.is("auth", ns::SASL) {
            return self.on_in_external(&el, ctx);
        }
        self.on_in_stanza(el, ctx);
    }

    /// RFC 6120 §5.4.2: `<proceed/>`, or `<failure/>` and close.
    fn on_in_starttls(&mut self, ctx: &mut Context<Self>) {
        let can_tls = self.conn.can_starttls() && self.env.tls_available;
        if self.secure() || !can_tls {
            self.send_nonza(&Element::new("failure", ns::TLS));
            return self.close(CloseReason::Clean, ctx);
        }
        self.send_nonza(&Element::new("proceed", ns::TLS));
        if let Some(s) = self.s2s_in() {
            s.starttls = StartTls::Proceeding;
        }
    }

    /// XEP-0178 §2: `<auth mechanism='EXTERNAL'/>`, accepted when it was offered (the
    /// certificate is valid for the header's `from`) and names that domain or none.
    fn on_in_external(&mut self, el: &Element, ctx: &mut Context<Self>) {
        let Some(s) = self.s2s_in() else { return };
        let peer = s.peer.clone();
        let claimed = s2s::read_external(el);
        let right = s.external == External::Offered
            && match (&claimed, &peer) {
                (Ok(None), Some(_)) => true,
                (Ok(Some(d)), Some(p)) => d == p,
                _ => false,
            };
        if !right {
            let again = s.external == External::Failed;
            if s.external == External::Offered {
                s.external = External::Failed;
            }
            self.send_nonza(
                &Element::new("failure", ns::SASL)
                    .with_child(Element::new("not-authorized", ns::SASL)),
            );
            if again {
                self.close(
                    CloseReason::with_text(
                        StreamCondition::NotAuthorized,
                        "SASL EXTERNAL failed twice",
                    ),
                    ctx,
                );
            }
            return;
        }
        let remote = peer.unwrap_or_default();
        let local = s.local.clone();
        s.external = External::Succeeded;
        if !s.authed.contains(&(remote.clone(), local.clone())) {
            s.authed.push((remote.clone(), local.clone()));
        }
        self.proved(&remote, &local, "EXTERNAL");
        self.send_nonza(&Element::new("success", ns::SASL));
        // RFC 6120 §6.4.6: the stream restarts; what the peer pipelined is kept.
        self.parser.restart();
        self.stream = StreamState::AwaitingHeader;
    }

    /// The stream proved `remote` (to `local`) by `method`: the first time, the admin view
    /// and the log learn it.
    fn proved(&mut self, remote: &str, local: &str, method: &'static str) {
        if self.meta.auth().is_some() {
            return;
        }
        self.meta.set_auth(method);
        if self.secure() {
            self.meta.set_secure();
        }
        self.meta.set_link(StreamLink {
            direction: "in",
            from_host: remote.to_owned(),
            to_host: local.to_owned(),
        });
        self.span.record("jid", tracing::field::display(remote));
        self.span
            .in_scope(|| info!(method, "incoming server stream authenticated"));
    }

    fn on_in_dialback(&mut self, el: &Element, ctx: &mut Context<Self>) {
        match dialback::parse(el) {
            Ok(Dialback::ResultRequest { from, to, key }) => {
                self.on_result_request(from, to, key, ctx)
            }
            Ok(Dialback::VerifyRequest { from, to, id, key }) => {
                // XEP-0220 §2.2.2: we are the authority for `to`; the key is right if we
                // made it, for the stream `id` from `to` to `from`.
                let verdict = if !self.ours(&to) {
                    Verdict::Error
                } else if dialback::key_matches(&self.env.server_secret, &from, &to, &id, &key) {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                };
                self.send_dialback(&dialback::verify_answer(&to, &from, &id, verdict));
            }
            Ok(Dialback::ResultAnswer { .. } | Dialback::VerifyAnswer { .. }) => self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    "dialback answers belong on the stream that asked",
                ),
                ctx,
            ),
            Err(e) => self.close(
                CloseReason::with_text(StreamCondition::InvalidXml, e.to_string()),
                ctx,
            ),
        }
    }

    /// XEP-0220 §2.1.2: the peer asks to be accepted for `remote`; its authority is asked
    /// over our own stream to it.
    fn on_result_request(
        &mut self,
        remote: String,
        local: String,
        key: String,
        ctx: &mut Context<Self>,
    ) {
        let (_, max) = self.in_settings();
        let routes = self.env.s2s.clone();
        let reply = ctx.address().recipient();
        let ours = self.env.router.serves(&local);
        let secure_only = routes
            .as_ref()
            .is_some_and(|r| r.settings().secure_domains.required(&remote));
        let Some(s) = self.s2s_in() else { return };
        let pair = (remote.clone(), local.clone());
        if !ours {
            // §2.4: not a domain of ours.
            self.send_dialback(&dialback::result_answer(&local, &remote, Verdict::Error));
            return;
        }
        if secure_only {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    format!("{remote} must authenticate with a valid certificate ([s2s] require_valid_certificates)"),
                ),
                ctx,
            );
        }
        if s.checking.contains(&pair) {
            return;
        }
        if s.checking.len() >= max {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "too many dialback requests in flight on this stream",
                ),
                ctx,
            );
        }
        let id = s.stream_id.clone();
        s.checking.push(pair);
        let asked =
            routes.is_some_and(|r| r.verify(&local, &remote, id.clone(), key, reply).is_ok());
        if !asked {
            self.ctx_verify_done(
                VerifyDone {
                    remote,
                    local,
                    id,
                    verdict: Verdict::Error,
                },
                ctx,
            );
        }
    }

    /// The authority answered (or could not be asked).
    fn ctx_verify_done(&mut self, done: VerifyDone, ctx: &mut Context<Self>) {
        let Some(s) = self.s2s_in() else { return };
        let pair = (done.remote.clone(), done.local.clone());
        let Some(i) = s.checking.iter().position(|p| *p == pair) else {
            return;
        };
        if done.id != s.stream_id {
            return;
        }
        s.checking.swap_remove(i);
        let answer = dialback::result_answer(&done.local, &done.remote, done.verdict);
        match done.verdict {
            Verdict::Valid => {
                if !s.authed.contains(&pair) {
                    s.authed.push(pair);
                }
                self.proved(&done.remote, &done.local, "dialback");
                self.send_dialback(&answer);
            }
            // §2.4: the authority could not be asked; the peer may try again.
            Verdict::Error => self.send_dialback(&answer),
            Verdict::Invalid => {
                self.send_dialback(&answer);
                self.close(
                    CloseReason::with_text(
                        StreamCondition::NotAuthorized,
                        format!("the authority for {} refused the dialback key", done.remote),
                    ),
                    ctx,
                );
            }
        }
    }

    /// A stanza from the peer: checked against what the stream proved, then routed.
    fn on_in_stanza(&mut self, mut el: Element, ctx: &mut Context<Self>) {
        let Some(s) = self.s2s_in() else { return };
        if s.authed.is_empty() {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::NotAuthorized,
                    "authenticate (dialback) before sending stanzas",
                ),
                ctx,
            );
        }
        el.rename_ns(ns::SERVER, ns::CLIENT);
        if !matches!(el.name(), "message" | "presence" | "iq") || el.ns() != ns::CLIENT {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("<{}/> is not a stanza", el.name()),
                ),
                ctx,
            );
        }
        let addr = |a: Option<&str>| a.and_then(|a| Jid::new(a).ok());
        let (Some(from), Some(to)) = (addr(el.attr("from")), addr(el.attr("to"))) else {
            // RFC 6120 §8.1.1.2, §8.1.2.1: both are required between servers.
            return self.close(
                CloseReason::with_text(
                    StreamCondition::ImproperAddressing,
                    "a stanza between servers needs valid 'from' and 'to'",
                ),
                ctx,
            );
        };
        let (from_domain, to_domain) = (from.domain().as_str(), to.domain().as_str());
        if !self.ours(to_domain) {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::HostUnknown,
                    format!("this server does not serve {to_domain}"),
                ),
                ctx,
            );
        }
        let to_host = self.env.router.serves(to_domain);
        let Some(s) = self.s2s_in() else { return };
        let host_pair = s
            .authed
            .iter()
            .any(|(r, l)| r == from_domain && l == to_domain);
        // A component's domain is reached through its server's host: any pair proved for
        // the sending domain covers it.
        let component_pair = !to_host && s.authed.iter().any(|(r, _)| r == from_domain);
        if !host_pair && !component_pair {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::InvalidFrom,
                    format!("this stream has not proved {from_domain} to {to_domain}"),
                ),
                ctx,
            );
        }
        self.meta.received();
        // RFC 6120 §10.3: an iq to one of our domains is the server's to answer (ping,
        // service discovery, version), for a remote entity as for a local one.
        if el.name() == "iq" && to.node().is_none() && to.resource().is_none() && to_host {
            match self.iq_answer(&el, Entity::Server) {
                Some(Ok(reply)) => self.env.router.send(reply, Wake::IfRunning),
                Some(Err(err)) => self.env.router.bounce(&el, err),
                None => {}
            }
            return;
        }
        if el.name() != "message" {
            return self.route_from_server(el, &to);
        }
        // XEP-0359 §3, then XEP-0313: archived for a local recipient before delivery.
        self.strip_forged_ids(&mut el);
        let parties = crate::archive::Parties {
            sender: None,
            recipient: (to_host && to.node().is_some()).then(|| to.to_bare().to_string()),
        };
        self.archive_then(el, parties, ctx, move |act, el, _, _| {
            act.route_from_server(el, &to)
        });
    }

    /// Routes a checked stanza from the peer.
    fn route_from_server(&mut self, el: Element, to: &Jid) {
        // XEP-0280 §5.2: a message delivered straight to one resource is copied to the
        // user's other carbons-enabled resources, as for a local sender.
        let carbon = match to.try_as_full() {
            Ok(full) if el.name() == "message" && eligible_for_carbons(&el) => {
                let bare = full.to_bare();
                (self.env.users.carbons_enabled(&bare) > 0)
                    .then(|| (bare, full.resource().as_str().to_owned(), el.clone()))
            }
            _ => None,
        };
        let routed = self.env.router.route(el, Origin::Server(Wake::Start));
        if let (Routed::Session, Some((bare, resource, message))) = (routed, carbon) {
            self.env
                .users
                .send_if_running(&bare, CarbonReceived { resource, message });
        }
    }
}

impl Handler<VerifyDone> for Session {
    type Result = ();

    fn handle(&mut self, done: VerifyDone, ctx: &mut Context<Self>) {
        self.ctx_verify_done(done, ctx);
    }
}
