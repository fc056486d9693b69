//! Issuing, listing, revoking and checking authentication tokens (`secret-token:…`, see
//! [`parley_proto::token`]) in storage. SASL (OAUTHBEARER, and PLAIN with a token as the
//! password) verifies them; the CLI and the admin API issue and revoke them. Storage keeps
//! only a hash of each secret; tokens are never logged.

use std::time::Duration;

use parley_proto::token;
use parley_storage::{Storage, StorageError, TokenRecord};

use crate::AccountJid;

use parley_proto::clock::now_ms;

/// A token just issued: the string for the client (shown once) and its record.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `secret-token:…`. Never log it.
    pub token: String,
    /// What storage keeps.
    pub record: TokenRecord,
}

/// Issues a token for an existing `account`, valid for `ttl` (None: until revoked or until
/// the password changes). An account that does not exist is
/// [`StorageError::NotFound`].
pub async fn issue(
    storage: &dyn Storage,
    account: &AccountJid,
    ttl: Option<Duration>,
    purpose: &str,
) -> Result<Issued, StorageError> {
    let (username, host) = (&account.username, &account.host);
    if storage.account(username, host).await?.is_none() {
        return Err(StorageError::NotFound {
            username: username.clone(),
            host: host.clone(),
        });
    }
    let made = token::generate(&account.to_string());
    let created_ms = now_ms();
    let record = TokenRecord {
        id: made.id,
        username: username.clone(),
        host: host.clone(),
        secret_hash: made.secret_hash,
        purpose: purpose.to_owned(),
        created_ms,
        expires_ms: ttl.map(|t| created_ms + t.as_millis() as i64),
        last_used_ms: None,
    };
    storage.token_put(&record).await?;
    Ok(Issued {
        token: made.token,
        record,
    })
}

/// The tokens of `account`: ids and times, never secrets.
pub async fn list(
    storage: &dyn Storage,
    account: &AccountJid,
) -> Result<Vec<TokenRecord>, StorageError> {
    storage.tokens_of(&account.username, &account.host).await
}

/// The id named by `id_or_token`: an id, or the id inside a whole token string (so that an
/// operator can paste the token itself).
pub fn token_id(id_or_token: &str) -> String {
    token::parse(id_or_token).map_or_else(|| id_or_token.to_owned(), |p| p.id)
}

/// Revokes one token (see [`token_id`]); whether it existed.
pub async fn revoke(storage: &dyn Storage, id_or_token: &str) -> Result<bool, StorageError> {
    storage.token_revoke(&token_id(id_or_token)).await
}

/// Revokes every token of `account`; how many there were.
pub async fn revoke_all(storage: &dyn Storage, account: &AccountJid) -> Result<u64, StorageError> {
    storage
        .tokens_revoke_user(&account.username, &account.host)
        .await
}

/// Why a token was refused (for logs: never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of ours.
    Malformed,
    /// No such token (never issued, revoked, or its password changed).
    Unknown,
    /// The secret does not match, or the token names another account.
    Mismatch,
    /// Past its lifetime.
    Expired,
}

/// A token that checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The account's username.
    pub username: String,
    /// The account's host.
    pub host: String,
    /// When the token expires (unix ms): a session it opened ends then.
    pub expires_ms: Option<i64>,
}

/// Checks a presented token; on success, the account it is for. A successful use is
/// recorded.
pub async fn verify(
    storage: &dyn Storage,
    presented: &str,
) -> Result<Result<Verified, Refused>, StorageError> {
    let Some(p) = token::parse(presented) else {
        return Ok(Err(Refused::Malformed));
    };
    let Some(record) = storage.token_get(&p.id).await? else {
        return Ok(Err(Refused::Unknown));
    };
    let account = format!("{}@{}", record.username, record.host);
    if !token::verify(&p.secret, &record.secret_hash) || p.jid != account {
        return Ok(Err(Refused::Mismatch));
    }
    let now = now_ms();
    if record.expires_ms.is_some_and(|e| e <= now) {
        return Ok(Err(Refused::Expired));
    }
    storage.token_touch(&record.id, now).await?;
    Ok(Ok(Verified {
        username: record.username,
        host: record.host,
        expires_ms: record.expires_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issue_verify_revoke() {
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        let storage = &*storage;
        let alice = AccountJid::parse("alice@localhost", &["localhost"]).unwrap();
        let e = issue(storage, &alice, None, "login").await.unwrap_err();
        assert!(matches!(e, StorageError::NotFound { .. }), "{e}");
        let creds = crate::derive_credentials("pw", 4096).unwrap();
        crate::admin::create(storage, &alice, &creds).await.unwrap();
        let issued = issue(storage, &alice, None, "login").await.unwrap();
        let ok = verify(storage, &issued.token).await.unwrap().unwrap();
        assert_eq!(
            (ok.username.as_str(), ok.host.as_str()),
            ("alice", "localhost")
        );
        assert_eq!(
            verify(storage, "nonsense").await.unwrap().unwrap_err(),
            Refused::Malformed
        );
        assert_eq!(list(storage, &alice).await.unwrap().len(), 1);
        assert!(revoke(storage, &issued.token).await.unwrap());
        assert_eq!(
            verify(storage, &issued.token).await.unwrap().unwrap_err(),
            Refused::Unknown
        );
        issue(storage, &alice, Some(Duration::from_secs(60)), "x")
            .await
            .unwrap();
        assert_eq!(revoke_all(storage, &alice).await.unwrap(), 1);
    }
}
