//! In-band registration of new accounts (XEP-0077 §3.1), before authentication, and
//! registration by invitation (XEP-0401, XEP-0445). Off by default (`[register] mode`):
//!
//! * `off`: no `<register/>` feature; a registration iq is `<service-unavailable/>`.
//! * `invite`: only with an invitation an operator issued (`parley invite create`, the
//!   admin API): the client shows it with `<preauth token='…'/>` first, then registers.
//!   Each invitation allows a set number of accounts until it expires.
//! * `open`: anyone, at most `per_ip_max` accounts per address (IPv6 by /64) in
//!   `per_ip_period_s`, counted in storage for the whole cluster (at most
//!   `max_tracked_addresses` addresses at once); a registration with an invitation is not
//!   counted, and a count is given back when the name was taken.
//!
//! Usernames must be valid localparts (nodeprep, as every JID here) and are stored
//! normalized; passwords go through SASLprep and must have `min_password_length`
//! characters. An unauthenticated connection may send `MAX_REQUESTS` registration iqs;
//! past that the stream is closed with `<policy-violation/>`, so a connection cannot spend
//! the server's key derivation in a loop. Input pauses while storage works, so nothing the
//! client sends next (its SASL `<auth/>`) overtakes the new account.

use std::net::IpAddr;
use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::register::{self, Request};
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::CloseReason;
use parley_xml::Element;
use tracing::info;

use crate::auth_limits::Addr;
use crate::phase::Phase;
use crate::session::Session;

/// Registration iqs one unauthenticated connection may send.
pub const MAX_REQUESTS: u32 = 16;

/// Who may register a new account in band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignupMode {
    /// Nobody (accounts come from the CLI or the admin API).
    #[default]
    Off,
    /// Holders of an invitation.
    Invite,
    /// Anyone, within the per-address limit.
    Open,
}

/// `[register]` as sessions read it.
#[derive(Debug, Clone, Copy)]
pub struct SignupSettings {
    pub mode: SignupMode,
    /// Fewest characters a new password may have.
    pub min_password_length: usize,
    /// Accounts one address may register per period (open mode, without invitation),
    /// counted in storage for the whole cluster.
    pub per_ip_max: u32,
    pub per_ip_period: Duration,
    /// Addresses counted at once; when full, registrations from new addresses wait for old
    /// windows to end (refused meanwhile) rather than forget a recent one.
    pub max_tracked: usize,
}

impl Default for SignupSettings {
    fn default() -> Self {
        Self {
            mode: SignupMode::Off,
            min_password_length: 8,
            per_ip_max: 3,
            per_ip_period: Duration::from_secs(3600),
            max_tracked: 10_000,
        }
    }
}

/// Registration as this node runs it: its settings (the per-address counts live in storage,
/// so that they hold for the whole cluster).
#[derive(Debug)]
pub struct SignupLimiter {
    settings: SignupSettings,
}

impl SignupLimiter {
    pub fn new(settings: SignupSettings) -> SignupLimiter {
        SignupLimiter { settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SignupSettings {
        &self.settings
    }
}

/// The key an address is counted under: IPv4 whole, IPv6 by its /64 (one host usually holds
/// a whole /64), as the other per-address limits count.
pub fn address_key(ip: IpAddr) -> String {
    match Addr::from(ip) {
        Addr::V4(v4) => format!("4:{}", std::net::Ipv4Addr::from(v4)),
        Addr::V6Prefix(p) => format!("6:{p:016x}"),
    }
}

/// What a registration needs from storage, decided before it runs.
enum Grant {
    /// Take one use of the invitation with this hash.
    Invite(String),
    /// Counted against the address (its key), cluster-wide.
    Address(String),
    /// Nothing to count (a connection without an address: in-process).
    Free,
}

impl Session {
    /// A registration iq before authentication.
    pub(crate) fn on_signup_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Phase::Unauthed(u) = &mut self.phase else {
            return;
        };
        u.signup_requests += 1;
        if u.signup_requests > MAX_REQUESTS {
            return self.close(
                CloseReason::with_text(
                    StreamCondition::PolicyViolation,
                    "too many registration requests",
                ),
                ctx,
            );
        }
        let settings = *self.env.signup.settings();
        if settings.mode == SignupMode::Off {
            // XEP-0077 §3.1: a server that does not offer registration.
            return self.bounce(&iq, StanzaCondition::ServiceUnavailable, ctx);
        }
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let request = match register::parse(&iq) {
            Ok(r) => r,
            Err(e) => {
                let err = StanzaError::with_text(StanzaCondition::BadRequest, e.to_string());
                return self.bounce_with(&iq, err, ctx);
            }
        };
        match request {
            Request::Form => {
                let text = match settings.mode {
                    SignupMode::Invite => "Choose a username and password. An invitation is required: show it first (XEP-0445).",
                    _ => "Choose a username and password.",
                };
                self.send(&iq_result(&iq).with_child(register::form_new(text)), ctx);
            }
            // §3.2: only an account's own session may remove it.
            Request::Remove => self.bounce_with(
                &iq,
                StanzaError::with_text(
                    StanzaCondition::NotAuthorized,
                    "log in to remove your account",
                ),
                ctx,
            ),
            Request::Preauth { token } => self.on_preauth(iq, host, token, ctx),
            Request::Register { username, password } => {
                self.on_signup(iq, host, username, password, settings, ctx)
            }
        }
    }

    /// XEP-0445 §4: remembers a live invitation for the registration that follows.
    fn on_preauth(&mut self, iq: Element, host: String, token: String, ctx: &mut Context<Self>) {
        let hash = register::invite_hash(&token);
        let storage = self.env.storage.clone();
        let now = parley_proto::clock::now_ms();
        self.pause();
        let work = async move {
            storage
                .invite_get(&hash, &host, now)
                .await
                .map(|i| (i, hash))
        };
        ctx.wait(wrap_future::<_, Self>(work).map(move |res, act, ctx| {
            act.resume();
            match res {
                Ok((Some(_), hash)) => {
                    if let Phase::Unauthed(u) = &mut act.phase {
                        u.invite = Some(hash);
                    }
                    act.send(&iq_result(&iq), ctx);
                }
                Ok((None, _)) => act.bounce_with(
                    &iq,
                    StanzaError::with_text(
                        StanzaCondition::ItemNotFound,
                        "no such invitation, or it is spent or expired",
                    ),
                    ctx,
                ),
                Err(_) => act.bounce(&iq, StanzaCondition::InternalServerError, ctx),
            }
        }));
    }

    /// XEP-0077 §3.1: creates the account, if everything allows it.
    fn on_signup(
        &mut self,
        iq: Element,
        host: String,
        username: String,
        password: String,
        settings: SignupSettings,
        ctx: &mut Context<Self>,
    ) {
        let not_acceptable =
            |text: String| StanzaError::with_text(StanzaCondition::NotAcceptable, text);
        let Some(jid) = crate::sasl::account_jid(&username, &host) else {
            let err = not_acceptable("the username is not a valid JID localpart".into());
            return self.bounce_with(&iq, err, ctx);
        };
        if password.chars().count() < settings.min_password_length {
            let err = not_acceptable(format!(
                "the password must have at least {} characters",
                settings.min_password_length
            ));
            return self.bounce_with(&iq, err, ctx);
        }
        let invite = match &self.phase {
            Phase::Unauthed(u) => u.invite.clone(),
            _ => None,
        };
        let ip = self.ip().map(|a| a.ip());
        let grant = match (invite, settings.mode) {
            (Some(hash), _) => Grant::Invite(hash),
            (None, SignupMode::Invite) => {
                let err = StanzaError::with_text(
                    StanzaCondition::NotAllowed,
                    "an invitation is required: show it with <preauth/> first (XEP-0445)",
                );
                return self.bounce_with(&iq, err, ctx);
            }
            (None, _) => match ip {
                Some(ip) => Grant::Address(address_key(ip)),
                None => Grant::Free,
            },
        };
        let credentials = match parley_accounts::credentials::derive_credentials(
            &password,
            self.env.config.scram_iterations,
        ) {
            Ok(c) => c,
            Err(e) => return self.bounce_with(&iq, not_acceptable(e.to_string()), ctx),
        };
        let storage = self.env.storage.clone();
        let (user, domain) = (
            jid.node().map(|n| n.as_str().to_owned()),
            jid.domain().to_string(),
        );
        let Some(user) = user else { return };
        let now = parley_proto::clock::now_ms();
        self.pause();
        let (period, max, tracked) = (
            i64::try_from(settings.per_ip_period.as_millis()).unwrap_or(i64::MAX),
            settings.per_ip_max,
            settings.max_tracked,
        );
        let work = async move {
            match &grant {
                Grant::Invite(hash) => {
                    if !storage.invite_take(hash, &domain, now).await? {
                        return Ok(Err(StanzaCondition::ItemNotFound));
                    }
                }
                Grant::Address(key) => {
                    if !storage.signup_take(key, now, period, max, tracked).await? {
                        return Ok(Err(StanzaCondition::ResourceConstraint));
                    }
                }
                Grant::Free => {}
            }
            match storage.create_account(&user, &domain, &credentials).await {
                Ok(()) => Ok(Ok(grant)),
                Err(e) => {
                    // The use or the count goes back: no account came of it.
                    let _ = match &grant {
                        Grant::Invite(hash) => storage.invite_give_back(hash).await,
                        Grant::Address(key) => storage.signup_give_back(key).await,
                        Grant::Free => Ok(()),
                    };
                    match e {
                        parley_storage::StorageError::AlreadyExists { .. } => {
                            Ok(Err(StanzaCondition::Conflict))
                        }
                        e => Err(e),
                    }
                }
            }
        };
        ctx.wait(wrap_future::<_, Self>(work).map(move |res, act, ctx| {
            act.resume();
            match res {
                Ok(Ok(grant)) => {
                    if let (Grant::Invite(_), Phase::Unauthed(u)) = (grant, &mut act.phase) {
                        u.invite = None;
                    }
                    parley_router::metrics::signup(true);
                    act.span.in_scope(
                        || info!(account = %jid, "account registered in band (XEP-0077)"),
                    );
                    act.send(&iq_result(&iq), ctx);
                }
                Ok(Err(condition)) => {
                    parley_router::metrics::signup(false);
                    let err = match condition {
                        StanzaCondition::Conflict => {
                            StanzaError::with_text(condition, "the username is taken")
                        }
                        StanzaCondition::ItemNotFound => {
                            StanzaError::with_text(condition, "the invitation is spent or expired")
                        }
                        StanzaCondition::ResourceConstraint => StanzaError::with_text(
                            condition,
                            "too many accounts registered from your address; try again later",
                        ),
                        c => StanzaError::new(c),
                    };
                    act.bounce_with(&iq, err, ctx);
                }
                Err(e) => {
                    parley_router::metrics::signup(false);
                    act.span
                        .in_scope(|| tracing::warn!(error = %e, "in-band registration failed"));
                    act.bounce(&iq, StanzaCondition::InternalServerError, ctx);
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_whole_or_by_their_64() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "4:192.0.2.7");
        assert_eq!(
            key("::ffff:192.0.2.7"),
            "4:192.0.2.7",
            "a mapped IPv4 is IPv4"
        );
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff"), "one /64");
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
    }
}
