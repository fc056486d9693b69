//! Invitations to register an account (XEP-0401 / XEP-0445) as stored: a public id for
//! listings, the host the account will be on, a hash of the secret (never the secret: a
//! copy of the database cannot be used to register), when it expires and how many
//! registrations it still allows. Part of every [`Storage`](crate::Storage) (a supertrait),
//! written once for both SQL backends in `shared/invites.rs`.
//!
//! Taking a use is one conditional update, so two registrations racing for the last use
//! cannot both have it. Issuing drops the invitations that are spent or expired, so the
//! table holds only the live ones an operator made.
//!
//! The per-address count of open registration lives here too, so that it holds for the
//! whole cluster: one row per address with its window, taken by one conditional upsert,
//! bounded in rows (`max_tracked`), expired windows dropped on every take.

use crate::Result;

/// One invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// Public: shown in listings, used to revoke.
    pub id: String,
    /// The domain the new account is created on.
    pub host: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// Registrations it still allows.
    pub uses_left: u32,
}

/// The invitations part of a store.
#[async_trait::async_trait]
pub trait Invites: Send + Sync {
    /// Stores a new invitation (and drops the spent and expired ones, as of its creation).
    async fn invite_put(&self, invite: &InviteRecord) -> Result<()>;

    /// The live invitation whose secret hashes to `secret_hash`, for `host`, at `now_ms`.
    async fn invite_get(
        &self,
        secret_hash: &str,
        host: &str,
        now_ms: i64,
    ) -> Result<Option<InviteRecord>>;

    /// Takes one use of that invitation if it is still live; whether it did.
    async fn invite_take(&self, secret_hash: &str, host: &str, now_ms: i64) -> Result<bool>;

    /// Gives a taken use back (the registration it was taken for did not happen).
    async fn invite_give_back(&self, secret_hash: &str) -> Result<()>;

    /// Every stored invitation, oldest first.
    async fn invites(&self) -> Result<Vec<InviteRecord>>;

    /// Deletes one invitation by id; whether it existed.
    async fn invite_revoke(&self, id: &str) -> Result<bool>;

    /// Counts one in-band registration from `address` (an address as counted: IPv4 whole,
    /// IPv6 by its /64), cluster-wide: only if it made fewer than `max` in its window (which
    /// starts at its first registration and lasts `period_ms`), and, for an address not
    /// counted yet, only if fewer than `max_tracked` addresses are (expired windows go
    /// first). Whether it was counted.
    async fn signup_take(
        &self,
        address: &str,
        now_ms: i64,
        period_ms: i64,
        max: u32,
        max_tracked: usize,
    ) -> Result<bool>;

    /// Gives back a count taken for a registration that did not happen.
    async fn signup_give_back(&self, address: &str) -> Result<()>;
}
