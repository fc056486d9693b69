//! Issuing and checking authentication tokens (`secret-token:…`, see
//! [`parley_proto::token`]) against storage. Used by SASL (OAUTHBEARER, and PLAIN with a
//! token as the password), the CLI and the admin API. Tokens are never logged.

use std::time::Duration;

use parley_proto::token;
use parley_storage::{Storage, StorageError, TokenRecord};

/// A token just issued: the string for the client (shown once) and its record.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `secret-token:…`. Never log it.
    pub token: String,
    /// What storage keeps.
    pub record: TokenRecord,
}

/// Issues a token for `username@host`, valid for `ttl` (None: until revoked or until the
/// password changes).
pub async fn issue(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    ttl: Option<Duration>,
    purpose: &str,
) -> Result<Issued, StorageError> {
    let made = token::generate(&format!("{username}@{host}"));
    let created_ms = parley_router::now_ms();
    let record = TokenRecord {
        id: made.id,
        username: username.to_owned(),
        host: host.to_owned(),
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
    let now = parley_router::now_ms();
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
