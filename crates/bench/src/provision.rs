//! Provisioning a Parley store directly (before the server starts, or before the users
//! concerned log in: a running server caches rosters): accounts with shared SCRAM keys,
//! and the mutual `both` subscriptions the presence scenario needs.

use std::sync::Arc;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use parley_storage::{ImportReport, NewAccount, RosterItem, Storage, Subscription};

use crate::target::Target;
use crate::BenchError;

/// Opens the store at `url` (e.g. `sqlite:///path/parley.db`).
pub async fn open(url: &str) -> Result<Arc<dyn Storage>, BenchError> {
    Ok(parley_storage::open(url).await?)
}

/// Creates users `first_user .. first_user + count` with the target's password, for
/// SCRAM-SHA-1 and SCRAM-SHA-256. Keys are derived once and shared by every account
/// (one salt for all: fine for a benchmark, never for a deployment). Existing accounts
/// are left alone.
pub async fn accounts(
    storage: &dyn Storage,
    target: &Target,
    count: usize,
    iterations: u32,
) -> Result<ImportReport, BenchError> {
    let creds: Vec<ScramCredentials> = [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|h| {
            ScramCredentials::generate(h, &target.password, iterations)
                .map_err(|e| BenchError::Options(format!("password or iterations: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let accounts: Vec<NewAccount> = (0..count)
        .map(|i| NewAccount {
            username: target.username(i),
            host: target.domain.clone(),
            credentials: creds.clone(),
        })
        .collect();
    Ok(storage.import_accounts(&accounts).await?)
}

/// RFC 6121 §2.1.2.5 `both` in both directions between the presence scenario's user
/// (`first_user`) and its contacts (`first_user + 1 ..= first_user + contacts`).
pub async fn presence_rosters(
    storage: &dyn Storage,
    target: &Target,
    contacts: usize,
) -> Result<(), BenchError> {
    let owner = target.username(0);
    let owner_item = RosterItem {
        jid: target.bare_jid(0),
        name: None,
        subscription: Subscription::Both,
        ask: false,
        groups: Vec::new(),
    };
    for i in 1..=contacts {
        let item = RosterItem {
            jid: target.bare_jid(i),
            name: None,
            subscription: Subscription::Both,
            ask: false,
            groups: vec!["bench".into()],
        };
        storage.roster_put(&owner, &target.domain, &item).await?;
        storage
            .roster_put(&target.username(i), &target.domain, &owner_item)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6121 §2.1.2.5: both sides of every pair hold the other with `both`.
    #[tokio::test]
    async fn rfc6121_2_1_2_5_presence_rosters_are_mutual_both() {
        let storage = open("sqlite::memory:").await.unwrap();
        let target = Target::new(vec!["127.0.0.1:5222".parse().unwrap()]);
        let report = accounts(storage.as_ref(), &target, 4, 4096).await.unwrap();
        assert_eq!(report.created, 4);
        let again = accounts(storage.as_ref(), &target, 5, 4096).await.unwrap();
        assert_eq!((again.created, again.skipped_existing), (1, 4));
        let creds = storage
            .credentials("user3", "localhost", ScramHash::Sha256)
            .await
            .unwrap()
            .unwrap();
        assert!(creds.verify_password("pw"));

        presence_rosters(storage.as_ref(), &target, 3)
            .await
            .unwrap();
        let owner = storage.roster("user1", "localhost").await.unwrap();
        let jids: Vec<&str> = owner.items.iter().map(|i| i.jid.as_str()).collect();
        assert_eq!(
            jids,
            ["user2@localhost", "user3@localhost", "user4@localhost"]
        );
        assert!(owner
            .items
            .iter()
            .all(|i| i.subscription == Subscription::Both && !i.ask));
        for contact in ["user2", "user3", "user4"] {
            let roster = storage.roster(contact, "localhost").await.unwrap();
            assert_eq!(roster.items.len(), 1);
            assert_eq!(roster.items[0].jid, "user1@localhost");
            assert_eq!(roster.items[0].subscription, Subscription::Both);
        }
        assert!(storage
            .roster("user5", "localhost")
            .await
            .unwrap()
            .items
            .is_empty());
    }
}
