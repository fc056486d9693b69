//! Account self-service (XEP-0077 §3.2-§3.3) for a logged-in client: the form of a
//! registered account, a password change, and the account's removal. The account's other
//! sessions end on every node through the [`AccountSessions`] seam (the admin API's road,
//! wired by the binary), as the admin API's sign-out and deletion end them.
//!
//! A password change replaces the credentials for every mechanism (the store drops the
//! account's tokens with them) and records a sign-out, so that JWTs issued before it stop
//! working; the session that asked stays. A removal is answered first, then every session
//! of the account ends with `<not-authorized/>`, this one too. Input pauses while storage
//! works, so nothing the client sends next overtakes the change.

use std::sync::Arc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_proto::stream_error::StreamCondition;
use parley_router::{CloseReason, SessionStatus};
use parley_xml::Element;
use tracing::{info, warn};

use crate::session::Session;

/// `jabber:iq:register`.
pub const NS: &str = parley_proto::register::NS;

/// Ends an account's sessions on every node: the admin API's road, offered to sessions for
/// account self-service.
pub trait AccountSessions: Send + Sync + 'static {
    /// Ends every live session of `bare` (`user@host`) on every node except `keep` (this
    /// node's session id), with `reason` and `status`; answers how many ended.
    fn end_sessions(
        &self,
        bare: String,
        keep: Option<u64>,
        reason: CloseReason,
        status: SessionStatus,
    ) -> crate::BoxFuture<usize>;
}

impl std::fmt::Debug for dyn AccountSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountSessions")
    }
}

/// What the client asked.
enum Ask {
    Form,
    Change(String),
    Remove,
}

/// A logged-in client's request, read by the protocol crate (XEP-0077 §3.2-§3.3): a
/// password change must name the account's own username.
fn read(iq: &Element, username: &str) -> Result<Ask, StanzaError> {
    use parley_proto::register::Request;
    match parley_proto::register::parse(iq) {
        Ok(Request::Form) => Ok(Ask::Form),
        Ok(Request::Remove) => Ok(Ask::Remove),
        Ok(Request::Register {
            username: u,
            password,
        }) if u == username => Ok(Ask::Change(password)),
        Ok(Request::Register { .. }) => Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "the username must be the account's own",
        )),
        Ok(Request::Preauth { .. }) => Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "an invitation is for registering a new account",
        )),
        Err(e) => Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            e.to_string(),
        )),
    }
}

impl Session {
    /// A `jabber:iq:register` iq from a bound client, to its server or its own account.
    pub(crate) fn register_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Some(user) = self.user() else { return };
        let (username, host) = crate::private::account_parts(&user);
        let ask = match read(&iq, &username) {
            Ok(a) => a,
            Err(e) => return self.bounce_with(&iq, e, ctx),
        };
        let password = match ask {
            Ask::Form => {
                // §3.2: the form of a registered account.
                let q = parley_proto::register::form_registered(&username);
                return self.send(&iq_result(&iq).with_child(q), ctx);
            }
            Ask::Remove => None,
            Ask::Change(p) => Some(p),
        };
        let credentials = match &password {
            Some(p) => match parley_accounts::credentials::derive_credentials(
                p,
                self.env.config.scram_iterations,
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    // §3.3: an empty password, or one SASLprep refuses.
                    let err = StanzaError::with_text(StanzaCondition::NotAcceptable, e.to_string());
                    return self.bounce_with(&iq, err, ctx);
                }
            },
            None => None,
        };
        let storage = self.env.storage.clone();
        let sessions: Option<Arc<dyn AccountSessions>> = self.env.account_sessions.get().cloned();
        let bare = user.to_string();
        let keep = self.id.0;
        self.pause();
        let work = async move {
            match credentials {
                Some(creds) => {
                    storage.set_credentials(&username, &host, &creds).await?;
                    storage
                        .set_signed_out(&username, &host, parley_proto::clock::now_ms())
                        .await?;
                    if let Some(s) = sessions {
                        let reason = CloseReason::with_text(
                            StreamCondition::NotAuthorized,
                            "the account's password changed",
                        );
                        s.end_sessions(bare, Some(keep), reason, SessionStatus::Revoked)
                            .await;
                    }
                }
                None => storage.delete_account(&username, &host).await?,
            }
            Ok::<_, parley_storage::StorageError>(())
        };
        let removal = password.is_none();
        let sessions_after = self.env.account_sessions.get().cloned();
        let bare_after = user.to_string();
        ctx.wait(wrap_future::<_, Self>(work).map(move |res, act, ctx| {
            act.resume();
            match res {
                Ok(_) if removal => {
                    act.span
                        .in_scope(|| info!("account removed by its user (XEP-0077)"));
                    act.send(&iq_result(&iq), ctx);
                    // §3.2: answered, then every session of the account ends.
                    let reason = CloseReason::with_text(
                        StreamCondition::NotAuthorized,
                        "the account was removed",
                    );
                    if let Some(s) = sessions_after {
                        actix::spawn(s.end_sessions(
                            bare_after,
                            Some(act.id.0),
                            reason.clone(),
                            SessionStatus::Removed,
                        ));
                    }
                    act.meta.end(SessionStatus::Removed);
                    act.close(reason, ctx);
                }
                Ok(_) => {
                    act.span
                        .in_scope(|| info!("password changed by its user (XEP-0077)"));
                    act.send(&iq_result(&iq), ctx);
                }
                Err(parley_storage::StorageError::NotFound { .. }) => {
                    act.bounce(&iq, StanzaCondition::ItemNotFound, ctx)
                }
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "account self-service failed"));
                    act.bounce(&iq, StanzaCondition::InternalServerError, ctx);
                }
            }
        }));
    }
}
