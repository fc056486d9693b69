//! `parley token …`: issue, list and revoke authentication tokens in the configured storage
//! (the same store the running server reads, so a revocation takes effect at the next
//! login on every node).

use std::time::Duration;

use parley_storage::TokenRecord;

use crate::config::Config;
use crate::users::{with_storage, UserError};

/// Issues a token for `jid`; returns the token string (printed once, never stored).
pub fn issue(
    config: &Config,
    jid: &str,
    ttl: Option<Duration>,
    purpose: &str,
) -> Result<(String, TokenRecord), UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        if storage
            .account(&account.username, &account.host)
            .await
            .map_err(|e| account_err("token issue", &account.to_string(), e))?
            .is_none()
        {
            return Err(account_err(
                "token issue",
                &account.to_string(),
                parley_storage::StorageError::NotFound {
                    username: account.username.clone(),
                    host: account.host.clone(),
                },
            ));
        }
        let issued = parley_session::tokens::issue(
            &*storage,
            &account.username,
            &account.host,
            ttl,
            purpose,
        )
        .await
        .map_err(|e| account_err("token issue", &account.to_string(), e))?;
        Ok((issued.token, issued.record))
    })
}

/// The tokens of `jid`.
pub fn list(config: &Config, jid: &str) -> Result<Vec<TokenRecord>, UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        storage
            .tokens_of(&account.username, &account.host)
            .await
            .map_err(|e| account_err("token list", &account.to_string(), e))
    })
}

/// Revokes the token with this id (or the id inside a whole token string).
pub fn revoke(config: &Config, id_or_token: &str) -> Result<bool, UserError> {
    let id = parley_proto::token::parse(id_or_token)
        .map(|p| p.id)
        .unwrap_or_else(|| id_or_token.to_owned());
    with_storage(config, |storage| async move {
        storage
            .token_revoke(&id)
            .await
            .map_err(|e| account_err("token revoke", &id, e))
    })
}

/// Revokes every token of `jid`.
pub fn revoke_all(config: &Config, jid: &str) -> Result<u64, UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        storage
            .tokens_revoke_user(&account.username, &account.host)
            .await
            .map_err(|e| account_err("token revoke-all", &account.to_string(), e))
    })
}

fn account_err(action: &'static str, jid: &str, source: parley_storage::StorageError) -> UserError {
    UserError::Account {
        action,
        jid: jid.to_owned(),
        source,
    }
}
