//! Authentication policy around the SASL exchanges of `session.rs`: the failed-attempt
//! limits (a gate before any credential is checked, a growing delay on failure answers —
//! see [`crate::auth_limits`]) and JWT logins (signature and claims, then the account's
//! existence and its sign-out time in storage; the session ends at `exp`).
//!
//! Nothing from the client's credentials is logged: only reasons, addresses and account
//! names.

use std::time::Instant;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use jid::BareJid;
use parley_proto::jwt::{self, JwtError, JwtPolicy};
use parley_proto::sasl::SaslFailure;
use tracing::{info, warn};

use crate::auth_limits::Gate;
use crate::phase::Phase;
use crate::session::Session;

/// Why a JWT that verified was still refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JwtRefusal {
    /// The token's checks failed.
    Token(JwtError),
    /// `sub` is not the account the client named.
    OtherAccount,
    /// No such account.
    NoAccount,
    /// Issued before the account's last sign-out everywhere (or without `iat` after one).
    SignedOut,
}

impl JwtRefusal {
    fn reason(self) -> &'static str {
        match self {
            JwtRefusal::Token(JwtError::Malformed) => "not a JWT",
            JwtRefusal::Token(JwtError::Algorithm) => "algorithm is not HS256",
            JwtRefusal::Token(JwtError::Signature) => "bad signature",
            JwtRefusal::Token(JwtError::Expired) => "expired",
            JwtRefusal::Token(JwtError::NotYetValid) => "not valid yet",
            JwtRefusal::Token(JwtError::NoJid) => "no sub or jid claim",
            JwtRefusal::Token(JwtError::Audience) => "audience does not match",
            JwtRefusal::Token(JwtError::Issuer) => "issuer does not match",
            JwtRefusal::Token(JwtError::TooLong) => "lifetime longer than allowed",
            JwtRefusal::OtherAccount => "JWT of another account",
            JwtRefusal::NoAccount => "no such account",
            JwtRefusal::SignedOut => "issued before the last sign-out",
        }
    }
}

impl Session {
    /// Whether an attempt on `account` (when the mechanism names one) may go ahead; when it
    /// may not, the client has been answered `<temporary-auth-failure/>` (RFC 6120 §6.5) and
    /// nothing is checked.
    pub(crate) fn auth_gate(&mut self, account: Option<&BareJid>, ctx: &mut Context<Self>) -> bool {
        let ip = self.ip().map(|a| a.ip());
        let gate = self
            .env
            .auth_limits
            .check(ip, account.map(|a| a.as_str()), Instant::now());
        let (reason, offender) = match gate {
            Gate::Open => return true,
            Gate::RefusedIp => (
                "auth_failures_ip",
                ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string()),
            ),
            Gate::RefusedAccount => (
                "auth_failures_account",
                account.map_or_else(String::new, |a| a.to_string()),
            ),
        };
        if parley_router::metrics::refuse(reason, &offender) {
            self.span.in_scope(|| {
                warn!(
                    reason,
                    offender = %offender,
                    "too many failed authentications: attempts refused until the window passes"
                )
            });
        }
        let mechanism = match &self.phase {
            Phase::Unauthed(u) => u.mechanism.unwrap_or("none"),
            _ => "none",
        };
        parley_router::metrics::AUTH.inc(mechanism, "throttled");
        self.sasl_fail(
            SaslFailure::TemporaryAuthFailure,
            Some("too many failed attempts; try again later"),
            ctx,
        );
        false
    }

    /// A credential check failed: counted against the address and `account`, and answered
    /// with `failure` after the delay the limits call for.
    pub(crate) fn auth_failed(
        &mut self,
        account: Option<&BareJid>,
        failure: SaslFailure,
        ctx: &mut Context<Self>,
    ) {
        self.answer_failure(account, failure.as_str(), ctx, move |act, ctx| {
            act.sasl_fail(failure, None, ctx)
        });
    }

    /// Counts a failed check and runs `answer` (the failure's answer on the wire) once the
    /// delay has passed. The delay is an actor timer with input paused: no thread waits.
    ///
    /// Each one is logged at info under `parley::auth` with the account named, the client's
    /// address, the mechanism and `reason` — never the secret — so that fail2ban (the filter
    /// in `cluster/fail2ban/`) and operators see every failed login.
    pub(crate) fn answer_failure(
        &mut self,
        account: Option<&BareJid>,
        reason: &str,
        ctx: &mut Context<Self>,
        answer: impl FnOnce(&mut Session, &mut Context<Session>) + 'static,
    ) {
        let ip = self.ip().map(|a| a.ip());
        let mechanism = match &self.phase {
            Phase::Unauthed(u) => u.mechanism.unwrap_or("none"),
            _ => "none",
        };
        parley_router::metrics::AUTH.inc(mechanism, "failure");
        self.span.in_scope(|| {
            info!(
                target: "parley::auth",
                user = %account.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                ip = %ip.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                mechanism = %mechanism,
                reason = %reason,
                "authentication failed"
            )
        });
        let delay = self
            .env
            .auth_limits
            .failed(ip, account.map(|a| a.as_str()), Instant::now());
        if delay.is_zero() {
            return answer(self, ctx);
        }
        self.set_sasl_pending();
        self.pause();
        ctx.run_later(delay, move |act, ctx| {
            act.resume();
            answer(act, ctx);
        });
    }

    /// PLAIN with a JWT as the password (`[auth] jwt_secret`): the token must verify, name
    /// the account the client named, that account must exist, and the token must not be
    /// older than the account's last sign-out everywhere. The session ends at `exp`.
    pub(crate) fn auth_jwt(
        &mut self,
        policy: &JwtPolicy,
        token: &str,
        user: Option<BareJid>,
        ctx: &mut Context<Self>,
    ) {
        let now_s = parley_proto::clock::now_s();
        let claims = match jwt::verify(token, policy, now_s) {
            Ok(claims) => claims,
            Err(e) => return self.jwt_refused(user, JwtRefusal::Token(e), ctx),
        };
        // `sub` is compared normalized, as the account it names would be bound.
        let named = BareJid::new(&claims.jid).ok();
        let user = match user {
            Some(user) if named.as_ref() == Some(&user) => user,
            user => return self.jwt_refused(user, JwtRefusal::OtherAccount, ctx),
        };
        self.set_sasl_pending();
        self.pause();
        let storage = self.env.storage.clone();
        let (username, host) = (
            user.node()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            user.domain().as_str().to_owned(),
        );
        let fut = async move {
            let exists = storage.account(&username, &host).await?.is_some();
            let signed_out = storage.signed_out_at(&username, &host).await?;
            Ok::<_, parley_storage::StorageError>((exists, signed_out))
        };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            match result {
                Ok((false, _)) => act.jwt_refused(Some(user), JwtRefusal::NoAccount, ctx),
                // A JWT without iat cannot show it is newer than the sign-out.
                Ok((true, Some(out_ms)))
                    if claims
                        .iat
                        .is_none_or(|iat| iat.saturating_mul(1000) < out_ms) =>
                {
                    act.jwt_refused(Some(user), JwtRefusal::SignedOut, ctx)
                }
                Ok((true, _)) => {
                    act.expire_at(claims.exp.saturating_mul(1000), ctx);
                    act.sasl_success(user, None, ctx);
                }
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "account lookup for a JWT failed"));
                    act.sasl_fail(SaslFailure::TemporaryAuthFailure, None, ctx);
                }
            }
        }));
    }

    fn jwt_refused(&mut self, user: Option<BareJid>, why: JwtRefusal, ctx: &mut Context<Self>) {
        self.span
            .in_scope(|| info!(reason = why.reason(), "JWT refused"));
        self.auth_failed(user.as_ref(), SaslFailure::NotAuthorized, ctx);
    }
}
