//! In-band registration of new accounts (XEP-0077 §3.1), before authentication, and
//! registration by invitation (XEP-0401, XEP-0445). Off by default (`[register] mode`):
//!
//! * `off`: no `<register/>` feature; a registration iq is `<service-unavailable/>`.
//! * `invite`: only with an invitation an operator issued (`parley invite create`, the
//!   admin API): the client shows it with `<preauth token='…'/>` first, then registers.
//!   Each invitation allows a set number of accounts until it expires.
//! * `open`: anyone, at most `per_ip_max` accounts per address (IPv6 by /64) in
//!   `per_ip_period_s` on this node; a registration with an invitation is not counted.
//!
//! Usernames must be valid localparts (nodeprep, as every JID here) and are stored
//! normalized; passwords go through SASLprep and must have `min_password_length`
//! characters. An unauthenticated connection may send `MAX_REQUESTS` registration iqs;
//! past that the stream is closed with `<policy-violation/>`, so a connection cannot spend
//! the server's key derivation in a loop. Input pauses while storage works, so nothing the
//! client sends next (its SASL `<auth/>`) overtakes the new account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parking_lot::Mutex;
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
    /// Accounts one address may register per period (open mode, without invitation).
    pub per_ip_max: u32,
    pub per_ip_period: Duration,
    /// Addresses remembered at once; when full, registrations without invitation wait
    /// for old entries to expire (refused meanwhile) rather than forget a recent one.
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

/// Registrations per address on this node, in fixed windows.
#[derive(Debug)]
pub struct SignupLimiter {
    settings: SignupSettings,
    table: Mutex<HashMap<Addr, (Instant, u32)>>,
}

impl SignupLimiter {
    pub fn new(settings: SignupSettings) -> SignupLimiter {
        SignupLimiter {
            settings,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SignupSettings {
        &self.settings
    }

    /// Whether `ip` may register one more account at `now`.
    pub fn allows(&self, ip: Option<IpAddr>, now: Instant) -> bool {
        let Some(addr) = ip.map(Addr::from) else {
            return true;
        };
        let mut table = self.table.lock();
        let period = self.settings.per_ip_period;
        match table.get(&addr) {
            Some((since, n)) if now.duration_since(*since) < period => {
                *n < self.settings.per_ip_max
            }
            Some(_) => true,
            None => {
                if table.len() >= self.settings.max_tracked {
                    table.retain(|_, (since, _)| now.duration_since(*since) < period);
                }
                table.len() < self.settings.max_tracked
            }
        }
    }

    /// Counts a registration from `ip` at `now`.
    pub fn registered(&self, ip: Option<IpAddr>, now: Instant) {
        let Some(addr) = ip.map(Addr::from) else {
            return;
        };
        let mut table = self.table.lock();
        let period = self.settings.per_ip_period;
        let entry = table.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= period {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a registration needs from storage, decided before it runs.
enum Grant {
    /// Take one use of the invitation with this hash.
    Invite(String),
    /// Counted against the address.
    Address,
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
            (None, _) => {
                if !self.env.signup.allows(ip, Instant::now()) {
                    let err = StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "too many accounts registered from your address; try again later",
                    );
                    return self.bounce_with(&iq, err, ctx);
                }
                Grant::Address
            }
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
        let work = async move {
            if let Grant::Invite(hash) = &grant {
                if !storage.invite_take(hash, &domain, now).await? {
                    return Ok(Err(StanzaCondition::ItemNotFound));
                }
            }
            match storage.create_account(&user, &domain, &credentials).await {
                Ok(()) => Ok(Ok(grant)),
                Err(e) => {
                    if let Grant::Invite(hash) = &grant {
                        // The use goes back: no account came of it.
                        let _ = storage.invite_give_back(hash).await;
                    }
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
                    match grant {
                        Grant::Address => act.env.signup.registered(ip, Instant::now()),
                        Grant::Invite(_) => {
                            if let Phase::Unauthed(u) = &mut act.phase {
                                u.invite = None;
                            }
                        }
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

    fn limiter(max: u32, tracked: usize) -> SignupLimiter {
        SignupLimiter::new(SignupSettings {
            mode: SignupMode::Open,
            per_ip_max: max,
            per_ip_period: Duration::from_secs(60),
            max_tracked: tracked,
            ..SignupSettings::default()
        })
    }

    #[test]
    fn per_address_limit_counts_a_window_and_ipv6_by_64() {
        let l = limiter(2, 100);
        let t = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(l.allows(Some(a), t));
        l.registered(Some(a), t);
        l.registered(Some(same_64), t);
        assert!(!l.allows(Some(a), t), "two from the /64");
        assert!(l.allows(Some("2001:db8:1::1".parse().unwrap()), t));
        assert!(
            l.allows(Some(a), t + Duration::from_secs(61)),
            "a new window"
        );
        assert!(l.allows(None, t), "no address (in-process): not counted");
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_entries_expire() {
        let l = limiter(5, 2);
        let t = Instant::now();
        l.registered(Some("10.0.0.1".parse().unwrap()), t);
        l.registered(Some("10.0.0.2".parse().unwrap()), t);
        assert!(!l.allows(Some("10.0.0.3".parse().unwrap()), t));
        assert!(
            l.allows(Some("10.0.0.1".parse().unwrap()), t),
            "known ones go on"
        );
        assert!(l.allows(
            Some("10.0.0.3".parse().unwrap()),
            t + Duration::from_secs(61)
        ));
        assert_eq!(l.len(), 0, "expired entries were dropped");
    }
}
