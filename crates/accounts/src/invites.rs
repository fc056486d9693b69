//! Issuing, listing and revoking invitations to register (XEP-0401 / XEP-0445): the CLI
//! (`parley invite …`) and the admin API (`/api/v1/invites`) both come here. The token is
//! shown once, with its `xmpp:` URI; storage keeps only its hash. Tokens are never logged.

use std::time::Duration;

use parley_proto::clock::now_ms;
use parley_proto::register;
use parley_storage::{InviteRecord, Storage, StorageError};

/// Most accounts one invitation may allow.
pub const MAX_USES: u32 = 1000;

/// An invitation just issued.
#[derive(Debug, Clone)]
pub struct IssuedInvite {
    /// For the invitee. Never log it.
    pub token: String,
    /// `xmpp:HOST?register;preauth=TOKEN` (XEP-0401 §5).
    pub uri: String,
    /// What storage keeps.
    pub record: InviteRecord,
}

/// Issues an invitation to register `uses` accounts on `host` (already normalized and
/// served), valid for `ttl`.
pub async fn issue(
    storage: &dyn Storage,
    host: &str,
    ttl: Duration,
    uses: u32,
) -> Result<IssuedInvite, StorageError> {
    let made = register::new_invite();
    let created_ms = now_ms();
    let record = InviteRecord {
        id: made.id,
        host: host.to_owned(),
        secret_hash: made.secret_hash,
        created_ms,
        expires_ms: created_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        uses_left: uses.clamp(1, MAX_USES),
    };
    storage.invite_put(&record).await?;
    Ok(IssuedInvite {
        uri: register::invite_uri(host, &made.token),
        token: made.token,
        record,
    })
}

/// The stored invitations (ids and times, never secrets), oldest first.
pub async fn list(storage: &dyn Storage) -> Result<Vec<InviteRecord>, StorageError> {
    storage.invites().await
}

/// Revokes one invitation by id; whether it existed.
pub async fn revoke(storage: &dyn Storage, id: &str) -> Result<bool, StorageError> {
    storage.invite_revoke(id).await
}
