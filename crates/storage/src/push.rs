//! Push registrations (XEP-0357) as stored: per account, the app servers (a JID and a
//! node) to notify, with the publish-options the client gave. Part of every
//! [`Storage`](crate::Storage) (a supertrait), written once for both SQL backends in
//! `shared/push.rs`. Bounded per account: enabling past the cap is refused.

use crate::Result;

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRegistration {
    /// The app server's JID.
    pub jid: String,
    pub node: String,
    /// The publish-options form (XML), if the client gave one.
    pub options: Option<String>,
}

/// The push part of a store.
#[async_trait::async_trait]
pub trait Push: Send + Sync {
    /// Adds (or replaces, for the same jid and node) a registration of `username@host`,
    /// unless it already has `max` others; whether it is stored.
    async fn push_enable(
        &self,
        username: &str,
        host: &str,
        registration: &PushRegistration,
        max: usize,
    ) -> Result<bool>;

    /// Removes `username@host`'s registrations with `jid` (only `node`'s, if given); how
    /// many went.
    async fn push_disable(
        &self,
        username: &str,
        host: &str,
        jid: &str,
        node: Option<&str>,
    ) -> Result<u64>;

    /// `username@host`'s registrations.
    async fn push_registrations(&self, username: &str, host: &str)
        -> Result<Vec<PushRegistration>>;
}
