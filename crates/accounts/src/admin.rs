//! Account operations on a store: create, delete, set credentials, list. Each failure names
//! the account and what was being done.

use std::io;

use parley_proto::sasl::ScramCredentials;
use parley_storage::{AccountInfo, Storage, StorageError};

use crate::account::{join, served_host, AccountJid, AccountJidError};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The JID is not an account of this server.
    #[error(transparent)]
    Jid(#[from] AccountJidError),
    /// A listing named a host that is not served.
    #[error("host `{host}` is not in [server] hosts ({hosts})")]
    UnknownHost {
        /// The host given.
        host: String,
        /// The configured hosts, comma-separated.
        hosts: String,
    },
    /// A storage operation on one account failed.
    #[error("{}", account_failure(action, jid, source))]
    Account {
        /// What was being done, e.g. `add`.
        action: &'static str,
        /// The normalized account (or token id).
        jid: String,
        /// What the store said.
        source: StorageError,
    },
    /// Listing accounts failed.
    #[error("cannot list accounts: {0}")]
    List(StorageError),
    /// A batch of an import failed; earlier batches are stored.
    #[error("import stopped after {created} accounts were created: {source}")]
    Import {
        /// Accounts created before the failure.
        created: usize,
        /// What the store said.
        source: StorageError,
    },
    /// The password cannot be used (empty, mismatched, rejected by SASLprep).
    #[error("password: {0}")]
    Password(String),
    /// Input (a password, an import) could not be read.
    #[error("cannot read {what}: {source}")]
    Read {
        /// `the password` or `the import input`.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A XEP-0227 file that cannot be read.
    #[error("{file}: {reason}")]
    Piefxis {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

impl AccountError {
    /// A failed storage operation on `jid`.
    pub fn account(
        action: &'static str,
        jid: &dyn std::fmt::Display,
        source: StorageError,
    ) -> Self {
        AccountError::Account {
            action,
            jid: jid.to_string(),
            source,
        }
    }
}

/// The store's own messages already name the account for the common cases.
fn account_failure(action: &str, jid: &str, source: &StorageError) -> String {
    match source {
        StorageError::AlreadyExists { .. } | StorageError::NotFound { .. } => source.to_string(),
        _ => format!("cannot {action} {jid}: {source}"),
    }
}

/// Creates `account` with `credentials` (see [`crate::derive_credentials`]).
pub async fn create(
    storage: &dyn Storage,
    account: &AccountJid,
    credentials: &[ScramCredentials],
) -> Result<(), AccountError> {
    storage
        .create_account(&account.username, &account.host, credentials)
        .await
        .map_err(|source| AccountError::account("add", account, source))?;
    tracing::info!(jid = %account, "account created");
    Ok(())
}

/// Deletes `account`, its credentials and everything stored for it.
pub async fn delete(storage: &dyn Storage, account: &AccountJid) -> Result<(), AccountError> {
    storage
        .delete_account(&account.username, &account.host)
        .await
        .map_err(|source| AccountError::account("delete", account, source))?;
    tracing::info!(jid = %account, "account deleted");
    Ok(())
}

/// Replaces the credentials of `account` (the store drops its tokens with the old ones).
pub async fn set_credentials(
    storage: &dyn Storage,
    account: &AccountJid,
    credentials: &[ScramCredentials],
) -> Result<(), AccountError> {
    storage
        .set_credentials(&account.username, &account.host, credentials)
        .await
        .map_err(|source| AccountError::account("change the password of", account, source))?;
    tracing::info!(jid = %account, "password changed");
    Ok(())
}

/// Checks a `--host` style filter against `hosts`: its normalized form, or why not.
pub fn host_filter<H: AsRef<str>>(
    hosts: &[H],
    host: Option<&str>,
) -> Result<Option<String>, AccountError> {
    host.map(|h| {
        served_host(hosts, h).ok_or_else(|| AccountError::UnknownHost {
            host: h.to_owned(),
            hosts: join(hosts),
        })
    })
    .transpose()
}

/// All accounts, or those of `host` (already checked with [`host_filter`]), sorted by host
/// then username.
pub async fn list(
    storage: &dyn Storage,
    host: Option<&str>,
) -> Result<Vec<AccountInfo>, AccountError> {
    storage
        .list_accounts(host)
        .await
        .map_err(AccountError::List)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive_credentials;

    const HOSTS: [&str; 2] = ["localhost", "example.org"];

    #[tokio::test]
    async fn account_round_trip() {
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        let storage = &*storage;
        let alice = AccountJid::parse("Alice@LocalHost", &HOSTS).unwrap();
        assert_eq!(alice.to_string(), "alice@localhost");
        let creds = derive_credentials("pw", 4096).unwrap();
        create(storage, &alice, &creds).await.unwrap();
        let e = create(storage, &alice, &creds).await.unwrap_err();
        assert_eq!(e.to_string(), "account alice@localhost already exists");
        let new = derive_credentials("new", 4096).unwrap();
        set_credentials(storage, &alice, &new).await.unwrap();
        let host = host_filter(&HOSTS, Some("LOCALHOST")).unwrap();
        assert_eq!(host.as_deref(), Some("localhost"));
        assert_eq!(list(storage, host.as_deref()).await.unwrap().len(), 1);
        assert!(host_filter(&HOSTS, Some("example.net")).is_err());
        delete(storage, &alice).await.unwrap();
        let e = delete(storage, &alice).await.unwrap_err();
        assert_eq!(e.to_string(), "account alice@localhost does not exist");
    }
}
