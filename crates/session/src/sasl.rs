//! SASL (RFC 6120 §6): the exchanges a client may run before it is authenticated.
//!
//! SCRAM-SHA-1/256 with -PLUS (RFC 5802, RFC 7677), PLAIN (RFC 4616; a password may be one
//! of Parley's tokens, a JWT, or be checked by the site's backend) and OAUTHBEARER with
//! Parley's tokens (RFC 7628). Every storage lookup or password check pauses input; unknown
//! users run the same steps on fake credentials, so that timing and answers do not tell
//! which accounts exist. The limits on attempts are in `auth.rs` and `bounds.rs`.

use std::sync::Arc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jid::{BareJid, NodePart};
use parley_proto::ns;
use parley_proto::sasl::{self, Mechanism, SaslFailure, ScramCredentials, ScramHash, ScramServer};
use parley_proto::stream_error::StreamCondition;
use parley_router::CloseReason;
use parley_xml::Element;
use tracing::{info, warn};

use crate::negotiation::offered_mechanisms;
use crate::phase::{Phase, SaslState, StreamState};
use crate::session::Session;

impl Session {
    /// RFC 6120 §6.4.2: `<auth mechanism='…'>initial response</auth>`.
    pub(crate) fn on_auth(&mut self, el: &Element, ctx: &mut Context<Self>) {
        if !self.count_sasl_attempt(ctx) {
            return;
        }
        if let Some(u) = self.unauthed_mut() {
            // A refusal of this attempt must not be counted under the last one's mechanism.
            u.mechanism = None;
        }
        let Some(mechanism) = el.attr("mechanism").and_then(Mechanism::from_name) else {
            return self.sasl_refuse(SaslFailure::InvalidMechanism, None, ctx);
        };
        if !offered_mechanisms(&self.offer()).contains(&mechanism) {
            return self.sasl_refuse(SaslFailure::InvalidMechanism, None, ctx);
        }
        let Some(payload) = decode_sasl_payload(&el.text()) else {
            return self.sasl_refuse(SaslFailure::IncorrectEncoding, None, ctx);
        };
        if let Some(u) = self.unauthed_mut() {
            u.mechanism = Some(mechanism.name());
        }
        match mechanism.hash() {
            None if mechanism == Mechanism::OAuthBearer => self.auth_oauthbearer(&payload, ctx),
            None => self.auth_plain(&payload, ctx),
            Some(hash) => {
                let bindings = self.conn.channel_bindings();
                let server_supports_plus = !bindings.types().is_empty();
                let server =
                    ScramServer::new(hash, mechanism.is_plus(), &bindings, server_supports_plus);
                if payload.is_empty() {
                    // RFC 6120 §6.4.2: no initial response; ask for it with an empty challenge.
                    if let Some(u) = self.unauthed_mut() {
                        u.sasl = SaslState::ScramAwaitingFirst { server, hash };
                    }
                    self.send_nonza(&Element::new("challenge", ns::SASL));
                } else {
                    self.scram_first(server, hash, &payload, ctx);
                }
            }
        }
    }

    pub(crate) fn on_sasl_response(&mut self, el: &Element, ctx: &mut Context<Self>) {
        let Some(payload) = decode_sasl_payload(&el.text()) else {
            return self.sasl_fail(SaslFailure::IncorrectEncoding, None, ctx);
        };
        let Some(u) = self.unauthed_mut() else { return };
        match std::mem::take(&mut u.sasl) {
            SaslState::ScramAwaitingFirst { server, hash } => {
                self.scram_first(server, hash, &payload, ctx);
            }
            SaslState::ScramAwaitingFinal { mut server, user } => {
                match (server.client_final(&payload), user) {
                    (Ok(server_final), Some(user)) => {
                        self.sasl_success(user, Some(&server_final), ctx)
                    }
                    (Ok(_), None) => self.auth_failed(None, SaslFailure::NotAuthorized, ctx),
                    (Err(failure), user) => self.auth_failed(user.as_ref(), failure, ctx),
                }
            }
            SaslState::OAuthFailed => self.sasl_fail(SaslFailure::NotAuthorized, None, ctx),
            SaslState::Idle | SaslState::Pending => self.sasl_fail(
                SaslFailure::MalformedRequest,
                Some("no exchange in progress"),
                ctx,
            ),
        }
    }

    /// Parses client-first, looks the user's credentials up (pausing input), and answers with
    /// server-first. Unknown users get deterministic fake credentials, so that the answer
    /// (salt and iteration count included) cannot tell them apart from real ones.
    fn scram_first(
        &mut self,
        mut server: ScramServer,
        hash: ScramHash,
        payload: &[u8],
        ctx: &mut Context<Self>,
    ) {
        let first = match server.client_first(payload) {
            Ok(first) => first,
            Err(failure) => {
                // Name a channel-binding type we do not offer: the client can tell why.
                let unoffered = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|p| p.strip_prefix("p="))
                    .and_then(|p| p.split(',').next())
                    .filter(|ty| {
                        !self
                            .conn
                            .channel_bindings()
                            .types()
                            .iter()
                            .any(|t| t.name() == *ty)
                    })
                    .map(|ty| {
                        format!(
                            "channel binding type {ty} is not offered (XEP-0440 lists those \
                             that are)"
                        )
                    });
                return self.sasl_refuse(failure, unoffered.as_deref(), ctx);
            }
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let user = account_jid(&first.username, &host);
        if let (Some(authzid), Some(user)) = (&first.authzid, &user) {
            if authzid.as_str() != user.to_string() {
                return self.sasl_refuse(SaslFailure::InvalidAuthzid, None, ctx);
            }
        }
        if !self.auth_gate(user.as_ref(), ctx) {
            return;
        }
        // Fake credentials are keyed on the name as it is looked up, so that `Nobody` and
        // `nobody` get one salt, as `ALICE` and `alice` do.
        let fake_key = fake_key(user.as_ref(), &first.username);
        self.set_sasl_pending();
        self.pause();
        let storage = self.env.storage.clone();
        let lookup_user = user.clone();
        let fut = async move {
            match &lookup_user {
                Some(u) => {
                    storage
                        .credentials(
                            u.node().map(|n| n.as_str()).unwrap_or_default(),
                            u.domain().as_str(),
                            hash,
                        )
                        .await
                }
                None => Ok(None),
            }
        };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            let creds = match result {
                Ok(Some(creds)) => creds,
                Ok(None) => ScramCredentials::fake(
                    hash,
                    &act.env.server_secret,
                    &fake_key,
                    act.env.config.scram_iterations,
                ),
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "credential lookup failed"));
                    return act.sasl_refuse(SaslFailure::TemporaryAuthFailure, None, ctx);
                }
            };
            let challenge = server.server_first(&creds);
            let Some(u) = act.unauthed_mut() else { return };
            // An invalid username keeps going on fake credentials, so that it fails exactly
            // like a wrong password would.
            u.sasl = SaslState::ScramAwaitingFinal { server, user };
            act.send_nonza(&Element::new("challenge", ns::SASL).with_text(B64.encode(&challenge)));
        }));
    }

    /// RFC 7628 OAUTHBEARER with one of Parley's tokens.
    fn auth_oauthbearer(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let bearer = match sasl::parse_oauthbearer(payload) {
            Ok(b) => b,
            Err(failure) => return self.sasl_refuse(failure, None, ctx),
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let expected = bearer.authzid.clone();
        let account = expected.as_deref().and_then(|c| claimed_account(c, &host));
        if !self.auth_gate(account.as_ref(), ctx) {
            return;
        }
        self.auth_token(bearer.token, host, expected, true, ctx);
    }

    /// Checks a token (OAUTHBEARER, or PLAIN with a token as password). `claimed` is the
    /// account the client named (PLAIN's authcid or OAUTHBEARER's authzid): it must be the
    /// token's.
    fn auth_token(
        &mut self,
        token: String,
        host: String,
        claimed: Option<String>,
        oauth: bool,
        ctx: &mut Context<Self>,
    ) {
        if let Some(u) = self.unauthed_mut() {
            u.sasl = SaslState::Pending;
        }
        self.pause();
        let storage = self.env.storage.clone();
        let fut = async move { crate::tokens::verify(&*storage, &token).await };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            let account = claimed.as_deref().and_then(|c| claimed_account(c, &host));
            let refused = move |act: &mut Self, why: &str, ctx: &mut Context<Self>| {
                act.answer_failure(account.as_ref(), why, ctx, move |act, ctx| {
                    if oauth {
                        // RFC 7628 §3.2.2: the error challenge first; the client answers \x01.
                        if let Some(u) = act.unauthed_mut() {
                            u.sasl = SaslState::OAuthFailed;
                        }
                        act.send_nonza(
                            &Element::new("challenge", ns::SASL)
                                .with_text(B64.encode(sasl::INVALID_TOKEN_CHALLENGE.as_bytes())),
                        );
                    } else {
                        act.sasl_fail(SaslFailure::NotAuthorized, None, ctx);
                    }
                });
            };
            match result {
                Ok(Ok(verified)) => {
                    let (username, token_host) = (verified.username, verified.host);
                    if let Some(at) = verified.expires_ms {
                        act.expire_at(at, ctx);
                    }
                    let user = account_jid(&username, &token_host);
                    let matches = user.as_ref().is_some_and(|u| {
                        token_host == host
                            && claimed
                                .as_deref()
                                .is_none_or(|c| c == u.as_str() || c == username)
                    });
                    match (user, matches) {
                        (Some(user), true) => act.sasl_success(user, None, ctx),
                        _ => refused(act, "token of another account", ctx),
                    }
                }
                Ok(Err(why)) => refused(act, &format!("{why:?}"), ctx),
                Err(e) => {
                    {
                        let _enter = act.span.enter();
                        warn!(error = %e, "token lookup failed");
                    }
                    act.sasl_refuse(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    /// A PLAIN password checked by the site's backend (`[auth] delegate_url`); errors and
    /// timeouts fail closed.
    fn auth_delegated(
        &mut self,
        external: Arc<dyn crate::env::ExternalAuth>,
        user: Option<BareJid>,
        password: String,
        ctx: &mut Context<Self>,
    ) {
        let Some(user) = user else {
            return self.auth_failed(None, SaslFailure::NotAuthorized, ctx);
        };
        self.set_sasl_pending();
        self.pause();
        // The backend is asked about exactly the localpart that a yes binds (nodeprep'd):
        // a yes for `ALICE` must never bind `alice` unless `alice` was what it was asked.
        let username = user
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let host = user.domain().as_str().to_owned();
        let fut = async move { external.check(&username, &host, &password).await };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |verdict, act, ctx| {
            act.resume();
            match verdict {
                Ok(false) => act.auth_failed(Some(&user), SaslFailure::NotAuthorized, ctx),
                Ok(true) => act.sasl_success(user, None, ctx),
                Err(reason) => {
                    act.span
                        .in_scope(|| warn!(%reason, "delegated authentication failed closed"));
                    act.sasl_refuse(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    /// RFC 4616 PLAIN, allowed only where offered (TLS, or encryption not required). A
    /// password that is one of Parley's tokens (`secret-token:…`) is checked as a token, so
    /// that a web page can log in with `{jid, password: token}` (Converse.js
    /// `credentials_url`).
    fn auth_plain(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let creds = match sasl::parse_plain(payload) {
            Ok(c) => c,
            Err(failure) => return self.sasl_refuse(failure, None, ctx),
        };
        let Some(host) = self.host().map(str::to_owned) else {
            return;
        };
        let user = account_jid(&creds.username, &host);
        if let (Some(authzid), Some(user)) = (&creds.authzid, &user) {
            if authzid.as_str() != user.to_string() {
                return self.sasl_refuse(SaslFailure::InvalidAuthzid, None, ctx);
            }
        }
        if !self.auth_gate(user.as_ref(), ctx) {
            return;
        }
        if parley_proto::token::is_token(&creds.password) {
            let claimed = Some(creds.username.clone());
            return self.auth_token(creds.password, host, claimed, false, ctx);
        }
        if let Some(jwt) = &self.env.config.jwt {
            if parley_proto::jwt::looks_like_jwt(&creds.password) {
                let jwt = jwt.clone();
                return self.auth_jwt(&jwt, &creds.password, user, ctx);
            }
        }
        if let Some(external) = self.env.external_auth.clone() {
            return self.auth_delegated(external, user, creds.password, ctx);
        }
        self.set_sasl_pending();
        self.pause();
        let storage = self.env.storage.clone();
        let secret = self.env.server_secret.clone();
        let iterations = self.env.config.scram_iterations;
        let lookup_user = user.clone();
        let username = fake_key(user.as_ref(), &creds.username);
        let password = creds.password;
        let fut = async move {
            // SHA-256 keys, else SHA-1 ones: accounts imported with SCRAM-SHA-1 data only
            // (XEP-0227 from Prosody) have no others. Both are read for every login, so
            // that which an account has does not show in the time taken.
            let stored = match &lookup_user {
                Some(u) => {
                    let (node, domain) = (
                        u.node().map(|n| n.as_str()).unwrap_or_default(),
                        u.domain().as_str(),
                    );
                    let sha256 = storage.credentials(node, domain, ScramHash::Sha256).await?;
                    let sha1 = storage.credentials(node, domain, ScramHash::Sha1).await?;
                    sha256.or(sha1)
                }
                None => None,
            };
            // PBKDF2 runs off the actor thread, and runs for unknown users too, so that the
            // time taken does not tell which accounts exist.
            let verified = tokio::task::spawn_blocking(move || {
                let known = stored.is_some();
                let creds = stored.unwrap_or_else(|| {
                    ScramCredentials::fake(ScramHash::Sha256, &secret, &username, iterations)
                });
                creds.verify_password(&password) && known
            })
            .await
            .unwrap_or(false);
            Ok::<bool, parley_storage::StorageError>(verified)
        };
        ctx.spawn(wrap_future::<_, Self>(fut).map(move |result, act, ctx| {
            act.resume();
            match (result, user) {
                (Ok(true), Some(user)) => act.sasl_success(user, None, ctx),
                (Ok(_), user) => act.auth_failed(user.as_ref(), SaslFailure::NotAuthorized, ctx),
                (Err(e), _) => {
                    {
                        let _enter = act.span.enter();
                        warn!(error = %e, "credential lookup failed");
                    }
                    act.sasl_refuse(SaslFailure::TemporaryAuthFailure, None, ctx)
                }
            }
        }));
    }

    pub(crate) fn sasl_success(
        &mut self,
        user: BareJid,
        additional: Option<&[u8]>,
        ctx: &mut Context<Self>,
    ) {
        let mut success = Element::new("success", ns::SASL);
        if let Some(data) = additional {
            success.push_text(B64.encode(data));
        }
        self.send_nonza(&success);
        let method = self.unauthed_mut().and_then(|u| u.mechanism);
        if let Some(method) = method {
            self.meta.set_auth(method);
        }
        parley_router::metrics::AUTH.inc(method.unwrap_or("none"), "success");
        self.span.in_scope(|| info!(user = %user, "authenticated"));
        let ip = self.ip().map(|a| a.ip());
        self.env.auth_limits.succeeded(ip, user.as_str());
        if let Some(timer) = self.auth_timer.take() {
            ctx.cancel_future(timer);
        }
        self.phase = Phase::Authed { user };
        // RFC 6120 §6.4.6: the client restarts the stream; bytes it pipelined are kept.
        self.parser.restart();
        self.stream = StreamState::AwaitingHeader;
    }

    /// Marks an exchange as waiting on an asynchronous step (storage, a backend, a delay).
    pub(crate) fn set_sasl_pending(&mut self) {
        if let Some(u) = self.unauthed_mut() {
            u.sasl = SaslState::Pending;
        }
    }

    /// A refusal before any credential was checked: a mechanism or channel-binding type
    /// the server does not offer, a malformed initial response, an authzid that is not the
    /// user's, or the server's own failure. It is answered like any failure but does not
    /// count against `max_auth_attempts`, which is for credentials: a standard client that
    /// walks down the offered mechanisms (slixmpp 1.8.3 tries `tls-unique`, undefined on
    /// TLS 1.3, on both -PLUS mechanisms, then SCRAM with the `y` flag, which RFC 5802 §6
    /// makes the server refuse while it offers -PLUS, then PLAIN) still logs in on its
    /// first connection. Each `<auth/>` still counts against `max_sasl_attempts`, and
    /// nothing here costs a key derivation.
    pub(crate) fn sasl_refuse(
        &mut self,
        failure: SaslFailure,
        text: Option<&str>,
        _ctx: &mut Context<Self>,
    ) {
        self.send_nonza(&failure.to_element(text));
        let mut mechanism = "none";
        if let Some(u) = self.unauthed_mut() {
            u.sasl = SaslState::Idle;
            mechanism = u.mechanism.unwrap_or("none");
        }
        parley_router::metrics::AUTH.inc(mechanism, "refused");
        self.span.in_scope(|| {
            tracing::debug!(
                condition = failure.as_str(),
                "SASL refused before any credential check"
            )
        });
    }

    /// A failed credential check (or a client misbehaving mid-exchange): counted, and
    /// after `max_auth_attempts` of them the stream ends (RFC 6120 §6.4.5).
    pub(crate) fn sasl_fail(
        &mut self,
        failure: SaslFailure,
        text: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        self.send_nonza(&failure.to_element(text));
        let max = self.env.config.max_auth_attempts;
        let Some(u) = self.unauthed_mut() else { return };
        u.sasl = SaslState::Idle;
        u.failures += 1;
        if u.failures >= max {
            // RFC 6120 §6.4.5: a bounded number of retries, then a stream error.
            self.close(
                CloseReason::with_text(
                    StreamCondition::NotAuthorized,
                    "too many failed authentication attempts",
                ),
                ctx,
            );
        }
    }
}

/// `username@host` as an account JID, if the username is a valid localpart (nodeprep).
pub(crate) fn account_jid(username: &str, host: &str) -> Option<BareJid> {
    let node = NodePart::new(username).ok()?;
    BareJid::new(&format!("{}@{}", node.as_str(), host)).ok()
}

/// What fake credentials for an unknown user are keyed on: the normalized localpart when
/// the name is one, so that case variants of one name look alike; the name as given
/// otherwise.
fn fake_key(user: Option<&BareJid>, given: &str) -> String {
    user.and_then(|u| u.node())
        .map_or_else(|| given.to_owned(), |n| n.as_str().to_owned())
}

/// The account a client names (a bare JID, or a localpart on this host), normalized.
pub(crate) fn claimed_account(claimed: &str, host: &str) -> Option<BareJid> {
    match claimed.split_once('@') {
        Some(_) => BareJid::new(claimed).ok(),
        None => account_jid(claimed, host),
    }
}

/// RFC 6120 §6.4.2: `=` is an empty response; otherwise base64.
fn decode_sasl_payload(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    B64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6120_6_4_2_empty_response_is_an_equals_sign() {
        assert_eq!(decode_sasl_payload("="), Some(Vec::new()));
        assert_eq!(decode_sasl_payload(""), Some(Vec::new()));
        assert_eq!(
            decode_sasl_payload(" AGFsaWNlAHNlY3JldA== "),
            Some(b"\0alice\0secret".to_vec())
        );
    }

    #[test]
    fn rfc6120_6_4_5_incorrect_encoding_is_not_base64() {
        assert_eq!(decode_sasl_payload("not base64!"), None);
    }

    #[test]
    fn rfc6120_6_4_6_authcid_is_nodeprepped_into_the_account() {
        let jid = account_jid("Alice", "example.org").expect("a valid localpart");
        assert_eq!(jid.as_str(), "alice@example.org");
        assert_eq!(
            account_jid("a@b", "example.org"),
            None,
            "'@' is no localpart"
        );
        assert_eq!(
            claimed_account("alice@example.org", "other.org").map(|j| j.to_string()),
            Some("alice@example.org".to_owned())
        );
        assert_eq!(
            claimed_account("ALICE", "example.org").map(|j| j.to_string()),
            Some("alice@example.org".to_owned())
        );
    }

    #[test]
    fn fake_salts_are_keyed_on_the_normalized_name() {
        let alice = account_jid("ALICE", "example.org");
        assert_eq!(fake_key(alice.as_ref(), "ALICE"), "alice");
        assert_eq!(fake_key(None, "a@b"), "a@b");
    }
}
