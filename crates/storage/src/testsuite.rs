//! The backend-independent test suite: every [`Storage`] implementation's tests call
//! [`run_all`] on a freshly opened store.
//!
//! Each check works under hosts carrying a random per-run tag, so the suite also passes
//! on a database that already holds data (a reused PostgreSQL test database, say).

use std::sync::Arc;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rand::Rng;

use crate::{
    now_unix, AccountInfo, ImportReport, NewAccount, OfflineMessage, Roster, RosterChange,
    RosterItem, Storage, StorageError, Subscription,
};

/// Runs every check against `storage`, panicking on the first failure.
pub async fn run_all(storage: Arc<dyn Storage>) {
    let run = Run::new();
    let s = &*storage;
    create_and_read_back(s, &run).await;
    same_username_on_two_hosts_are_distinct(s, &run).await;
    duplicate_account_is_refused(s, &run).await;
    missing_account_is_not_found(s, &run).await;
    import_skips_existing_accounts(s, &run).await;
    list_is_sorted_and_filtered_by_host(s, &run).await;
    set_credentials_replaces_every_hash(s, &run).await;
    set_credentials_drops_hashes_not_given(s, &run).await;
    delete_cascades_to_credentials(s, &run).await;
    generated_credentials_round_trip(s, &run).await;
    server_secret_is_stable(&storage).await;

    roster_of_unknown_user_is_empty_version_zero(s, &run).await;
    roster_put_bumps_version_and_replaces(s, &run).await;
    roster_groups_keep_their_order(s, &run).await;
    roster_remove_of_absent_item_changes_nothing(s, &run).await;
    rfc6121_2_6_changes_since_replays_latest_state_per_jid(s, &run).await;
    rfc6121_2_6_unknown_versions_are_refused(s, &run).await;
    rosters_are_per_user(s, &run).await;
    concurrent_roster_puts_get_distinct_versions(&storage, &run).await;
    rfc6121_3_1_3_pending_in_keeps_arrival_order(s, &run).await;
    xep0160_offline_messages_are_capped_and_taken_in_order(s, &run).await;
    xep0160_concurrent_offline_pushes_respect_the_cap(&storage, &run).await;
    xep0160_offline_messages_are_capped_in_bytes(s, &run).await;
    rfc6121_2_6_pruned_tombstones_send_older_versions_the_whole_roster(s, &run).await;
    delete_account_wipes_user_data(s, &run).await;
    xep0191_blocklists_report_changes_and_go_with_the_account(s, &run).await;
    tokens_keep_only_a_hash_and_die_with_the_password(s, &run).await;
    signed_out_time_only_moves_forward_and_outlives_the_account(s, &run).await;
}

/// Sign-out everywhere: one time per user, kept at the latest, per host, and still there
/// after the account is deleted (a re-created account must not revive old JWTs).
async fn signed_out_time_only_moves_forward_and_outlives_the_account(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("signout");
    let other = run.host("signout-other");
    assert_eq!(storage.signed_out_at("alice", &host).await.unwrap(), None);
    storage
        .create_account(
            "alice",
            &host,
            &[fake_credentials(ScramHash::Sha256, "signout")],
        )
        .await
        .unwrap();
    storage.set_signed_out("alice", &host, 2_000).await.unwrap();
    assert_eq!(
        storage.signed_out_at("alice", &host).await.unwrap(),
        Some(2_000)
    );
    storage.set_signed_out("alice", &host, 1_000).await.unwrap();
    assert_eq!(
        storage.signed_out_at("alice", &host).await.unwrap(),
        Some(2_000)
    );
    storage.set_signed_out("alice", &host, 3_000).await.unwrap();
    assert_eq!(
        storage.signed_out_at("alice", &host).await.unwrap(),
        Some(3_000)
    );
    assert_eq!(storage.signed_out_at("alice", &other).await.unwrap(), None);
    assert_eq!(storage.signed_out_at("bob", &host).await.unwrap(), None);
    storage.delete_account("alice", &host).await.unwrap();
    assert_eq!(
        storage.signed_out_at("alice", &host).await.unwrap(),
        Some(3_000)
    );
}

/// Tokens (mod_tokenauth style): stored by id with a hash of the secret, listed per user,
/// touched, revoked one by one or all at once, and gone after a password change or with the
/// account.
async fn tokens_keep_only_a_hash_and_die_with_the_password(storage: &dyn Storage, run: &Run) {
    use crate::TokenRecord;
    let host = run.host("tokens");
    let creds = [fake_credentials(ScramHash::Sha256, "tok")];
    storage
        .create_account("alice", &host, &creds)
        .await
        .unwrap();
    let token = |id: &str, created_ms: i64| TokenRecord {
        id: format!("{}-{id}", run.tag),
        username: "alice".into(),
        host: host.clone(),
        secret_hash: vec![7; 32],
        purpose: "web".into(),
        created_ms,
        expires_ms: Some(created_ms + 60_000),
        last_used_ms: None,
    };
    let (a, b, c) = (token("a", 1000), token("b", 2000), token("c", 3000));
    for t in [&a, &b, &c] {
        storage.token_put(t).await.unwrap();
    }
    assert_eq!(storage.token_get(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(storage.token_get("no-such-token").await.unwrap(), None);
    storage.token_touch(&a.id, 5000).await.unwrap();
    assert_eq!(
        storage
            .token_get(&a.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_ms,
        Some(5000)
    );
    let ids: Vec<String> = storage
        .tokens_of("alice", &host)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec![a.id.clone(), b.id.clone(), c.id.clone()]);
    assert!(storage.token_revoke(&b.id).await.unwrap());
    assert!(!storage.token_revoke(&b.id).await.unwrap());
    assert_eq!(storage.tokens_of("alice", &host).await.unwrap().len(), 2);
    // A password change invalidates every token issued before it.
    storage
        .set_credentials("alice", &host, &creds)
        .await
        .unwrap();
    assert_eq!(storage.token_get(&a.id).await.unwrap(), None);
    assert!(storage.tokens_of("alice", &host).await.unwrap().is_empty());
    // Revoke-all and account deletion.
    storage.token_put(&token("d", 4000)).await.unwrap();
    storage.token_put(&token("e", 4001)).await.unwrap();
    assert_eq!(storage.tokens_revoke_user("alice", &host).await.unwrap(), 2);
    storage.token_put(&token("f", 4002)).await.unwrap();
    storage.delete_account("alice", &host).await.unwrap();
    assert_eq!(storage.token_get(&token("f", 0).id).await.unwrap(), None);
}

/// XEP-0191: a blocklist per user, listed sorted; adding reports only the jids that were
/// not blocked yet and removing only those that were; deleting the account empties it.
async fn xep0191_blocklists_report_changes_and_go_with_the_account(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("blocking");
    let jids = |list: &[&str]| -> Vec<String> { list.iter().map(|j| (*j).to_owned()).collect() };
    assert!(storage.blocklist("alice", &host).await.unwrap().is_empty());

    // Out of order and with a repeat: the new ones come back once each, in the order given.
    let added = storage
        .blocklist_add(
            "alice",
            &host,
            &jids(&[
                "romeo@example.net",
                "example.org",
                "romeo@example.net",
                "juliet@example.com/balcony",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        added,
        jids(&[
            "romeo@example.net",
            "example.org",
            "juliet@example.com/balcony"
        ])
    );
    assert_eq!(
        storage.blocklist("alice", &host).await.unwrap(),
        jids(&[
            "example.org",
            "juliet@example.com/balcony",
            "romeo@example.net"
        ])
    );
    // Already blocked ones are not reported again.
    let added = storage
        .blocklist_add(
            "alice",
            &host,
            &jids(&["example.org", "nurse@example.com", "romeo@example.net"]),
        )
        .await
        .unwrap();
    assert_eq!(added, jids(&["nurse@example.com"]));
    assert!(storage
        .blocklist_add("alice", &host, &jids(&["example.org"]))
        .await
        .unwrap()
        .is_empty());
    assert!(storage
        .blocklist_add("alice", &host, &[])
        .await
        .unwrap()
        .is_empty());

    // Lists are per user: alice's entries neither show in bob's list nor count as his.
    assert!(storage.blocklist("bob", &host).await.unwrap().is_empty());
    assert_eq!(
        storage
            .blocklist_add("bob", &host, &jids(&["example.org"]))
            .await
            .unwrap(),
        jids(&["example.org"])
    );
    assert_eq!(
        storage.blocklist("alice", &host).await.unwrap().len(),
        4,
        "bob's entry is not alice's"
    );

    // Removing reports what was blocked, sorted; unknown jids and repeats are ignored.
    let removed = storage
        .blocklist_remove(
            "alice",
            &host,
            Some(&jids(&[
                "romeo@example.net",
                "tybalt@example.net",
                "example.org",
                "romeo@example.net",
            ])),
        )
        .await
        .unwrap();
    assert_eq!(removed, jids(&["example.org", "romeo@example.net"]));
    assert_eq!(
        storage.blocklist("alice", &host).await.unwrap(),
        jids(&["juliet@example.com/balcony", "nurse@example.com"])
    );
    assert!(storage
        .blocklist_remove("alice", &host, Some(&jids(&["romeo@example.net"])))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        storage.blocklist("bob", &host).await.unwrap(),
        jids(&["example.org"]),
        "alice's removal is not bob's"
    );

    // `None` clears the whole list and reports it sorted.
    storage
        .blocklist_add("alice", &host, &jids(&["capulet.example", "example.org"]))
        .await
        .unwrap();
    assert_eq!(
        storage
            .blocklist_remove("alice", &host, None)
            .await
            .unwrap(),
        jids(&[
            "capulet.example",
            "example.org",
            "juliet@example.com/balcony",
            "nurse@example.com"
        ])
    );
    assert!(storage.blocklist("alice", &host).await.unwrap().is_empty());
    assert!(storage
        .blocklist_remove("alice", &host, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        storage.blocklist("bob", &host).await.unwrap(),
        jids(&["example.org"])
    );

    // The list goes with the account, and a re-created account starts with none.
    storage.create_account("carol", &host, &[]).await.unwrap();
    storage
        .blocklist_add(
            "carol",
            &host,
            &jids(&["romeo@example.net", "example.org/desk"]),
        )
        .await
        .unwrap();
    storage.delete_account("carol", &host).await.unwrap();
    assert!(storage.blocklist("carol", &host).await.unwrap().is_empty());
    storage.create_account("carol", &host, &[]).await.unwrap();
    assert!(storage.blocklist("carol", &host).await.unwrap().is_empty());
    assert_eq!(
        storage
            .blocklist_add("carol", &host, &jids(&["romeo@example.net"]))
            .await
            .unwrap(),
        jids(&["romeo@example.net"])
    );
    assert_eq!(
        storage.blocklist("bob", &host).await.unwrap(),
        jids(&["example.org"]),
        "carol's deletion leaves bob's list alone"
    );
}

/// Cheap stand-in credentials (no PBKDF2), distinct per `seed` and hash, for tests that
/// need many accounts.
pub fn fake_credentials(hash: ScramHash, seed: &str) -> ScramCredentials {
    let name = hash.name();
    ScramCredentials {
        salt: format!("salt/{name}/{seed}").into_bytes(),
        iterations: 4096,
        stored_key: format!("stored/{name}/{seed}").into_bytes(),
        server_key: format!("server/{name}/{seed}").into_bytes(),
        hash,
    }
}

/// Tags the hosts of one run of the suite.
struct Run {
    tag: String,
}

impl Run {
    fn new() -> Self {
        Self {
            tag: format!("{:08x}", rand::thread_rng().gen::<u32>()),
        }
    }

    fn host(&self, label: &str) -> String {
        format!("{label}.{}.test", self.tag)
    }
}

fn assert_same_credentials(actual: &ScramCredentials, expected: &ScramCredentials, what: &str) {
    assert_eq!(actual.hash.name(), expected.hash.name(), "{what}: hash");
    assert_eq!(actual.salt, expected.salt, "{what}: salt");
    assert_eq!(actual.iterations, expected.iterations, "{what}: iterations");
    assert_eq!(actual.stored_key, expected.stored_key, "{what}: stored_key");
    assert_eq!(actual.server_key, expected.server_key, "{what}: server_key");
}

async fn expect_credentials(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    expected: &ScramCredentials,
    what: &str,
) {
    let actual = storage
        .credentials(username, host, expected.hash)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .unwrap_or_else(|| panic!("{what}: no {} credentials", expected.hash.name()));
    assert_same_credentials(&actual, expected, what);
}

async fn expect_no_credentials(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    hash: ScramHash,
    what: &str,
) {
    let name = hash.name();
    let found = storage.credentials(username, host, hash).await.unwrap();
    assert!(found.is_none(), "{what}: unexpected {name} credentials");
}

async fn account_info(storage: &dyn Storage, username: &str, host: &str) -> AccountInfo {
    storage
        .account(username, host)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("account {username}@{host} missing"))
}

async fn create_and_read_back(storage: &dyn Storage, run: &Run) {
    let host = run.host("create");
    let sha1 = fake_credentials(ScramHash::Sha1, "alice");
    let sha256 = fake_credentials(ScramHash::Sha256, "alice");
    let before = now_unix();
    storage
        .create_account("alice", &host, &[sha1.clone(), sha256.clone()])
        .await
        .unwrap();
    let after = now_unix();

    let info = account_info(storage, "alice", &host).await;
    assert_eq!(info.username, "alice");
    assert_eq!(info.host, host);
    assert!(
        (before..=after).contains(&info.created_at),
        "created_at {} outside [{before}, {after}]",
        info.created_at
    );
    assert_eq!(info.password_changed_at, info.created_at);

    expect_credentials(storage, "alice", &host, &sha1, "create: SHA-1").await;
    expect_credentials(storage, "alice", &host, &sha256, "create: SHA-256").await;

    // Only the hashes given exist.
    storage
        .create_account("bob", &host, &[fake_credentials(ScramHash::Sha256, "bob")])
        .await
        .unwrap();
    expect_no_credentials(storage, "bob", &host, ScramHash::Sha1, "create: bob").await;

    // Unknown users and hosts have nothing.
    assert_eq!(storage.account("carol", &host).await.unwrap(), None);
    assert_eq!(
        storage
            .account("alice", &run.host("create-other"))
            .await
            .unwrap(),
        None
    );
    expect_no_credentials(storage, "carol", &host, ScramHash::Sha256, "create: carol").await;
}

async fn same_username_on_two_hosts_are_distinct(storage: &dyn Storage, run: &Run) {
    let (one, two) = (run.host("twin-one"), run.host("twin-two"));
    let on_one = fake_credentials(ScramHash::Sha256, "twin/one");
    let on_two = fake_credentials(ScramHash::Sha256, "twin/two");
    storage
        .create_account("alice", &one, std::slice::from_ref(&on_one))
        .await
        .unwrap();
    storage
        .create_account("alice", &two, std::slice::from_ref(&on_two))
        .await
        .unwrap();
    expect_credentials(storage, "alice", &one, &on_one, "twins: first host").await;
    expect_credentials(storage, "alice", &two, &on_two, "twins: second host").await;
    storage.delete_account("alice", &one).await.unwrap();
    assert!(storage.account("alice", &two).await.unwrap().is_some());
}

async fn duplicate_account_is_refused(storage: &dyn Storage, run: &Run) {
    let host = run.host("dup");
    let original = fake_credentials(ScramHash::Sha256, "dup/original");
    storage
        .create_account("alice", &host, std::slice::from_ref(&original))
        .await
        .unwrap();
    let err = storage
        .create_account(
            "alice",
            &host,
            &[fake_credentials(ScramHash::Sha256, "dup/intruder")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::AlreadyExists { username, host: h }
            if username == "alice" && *h == host),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("account alice@{host} already exists")
    );
    // The failed attempt changed nothing.
    expect_credentials(storage, "alice", &host, &original, "duplicate").await;
    assert_eq!(storage.list_accounts(Some(&host)).await.unwrap().len(), 1);
}

async fn missing_account_is_not_found(storage: &dyn Storage, run: &Run) {
    let host = run.host("missing");
    let is_not_found = |err: &StorageError| {
        matches!(err, StorageError::NotFound { username, host: h }
            if username == "nobody" && *h == host)
    };
    let err = storage.delete_account("nobody", &host).await.unwrap_err();
    assert!(is_not_found(&err), "delete: {err:?}");
    let err = storage
        .set_credentials(
            "nobody",
            &host,
            &[fake_credentials(ScramHash::Sha256, "nobody")],
        )
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "set_credentials: {err:?}");
    // set_credentials must not have created anything on the way.
    assert_eq!(storage.account("nobody", &host).await.unwrap(), None);
    expect_no_credentials(storage, "nobody", &host, ScramHash::Sha256, "missing").await;
}

async fn import_skips_existing_accounts(storage: &dyn Storage, run: &Run) {
    let host = run.host("import");
    let existing = fake_credentials(ScramHash::Sha256, "import/existing");
    storage
        .create_account("existing", &host, std::slice::from_ref(&existing))
        .await
        .unwrap();
    let new_account = |username: &str, seed: &str| NewAccount {
        username: username.into(),
        host: host.clone(),
        credentials: vec![
            fake_credentials(ScramHash::Sha1, seed),
            fake_credentials(ScramHash::Sha256, seed),
        ],
    };
    let report = storage
        .import_accounts(&[
            new_account("existing", "import/overwrite"),
            new_account("fresh1", "import/fresh1"),
            new_account("fresh2", "import/fresh2"),
            new_account("fresh1", "import/repeat"),
        ])
        .await
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            created: 2,
            skipped_existing: 2
        }
    );
    // Skipped accounts keep what they had.
    expect_credentials(storage, "existing", &host, &existing, "import: existing").await;
    expect_no_credentials(
        storage,
        "existing",
        &host,
        ScramHash::Sha1,
        "import: existing",
    )
    .await;
    // The first occurrence of a repeated account wins.
    expect_credentials(
        storage,
        "fresh1",
        &host,
        &fake_credentials(ScramHash::Sha1, "import/fresh1"),
        "import: fresh1",
    )
    .await;
    expect_credentials(
        storage,
        "fresh2",
        &host,
        &fake_credentials(ScramHash::Sha256, "import/fresh2"),
        "import: fresh2",
    )
    .await;
    let info = account_info(storage, "fresh2", &host).await;
    assert_eq!(info.created_at, info.password_changed_at);

    let names: Vec<String> = storage
        .list_accounts(Some(&host))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["existing", "fresh1", "fresh2"]);

    assert_eq!(
        storage.import_accounts(&[]).await.unwrap(),
        ImportReport::default()
    );
}

async fn list_is_sorted_and_filtered_by_host(storage: &dyn Storage, run: &Run) {
    let (a, b) = (run.host("list-a"), run.host("list-b"));
    // Created out of order so that insertion order cannot pass for sorting.
    for (username, host) in [("zed", &b), ("mia", &a), ("amy", &b), ("bob", &a)] {
        storage.create_account(username, host, &[]).await.unwrap();
    }
    let pairs = |accounts: Vec<AccountInfo>| -> Vec<(String, String)> {
        accounts.into_iter().map(|i| (i.host, i.username)).collect()
    };

    let all = pairs(storage.list_accounts(None).await.unwrap());
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "list_accounts(None) is not sorted by (host, username): {all:?}"
    );
    let ours: Vec<_> = all
        .iter()
        .filter(|(host, _)| *host == a || *host == b)
        .map(|(host, username)| (host.as_str(), username.as_str()))
        .collect();
    assert_eq!(
        ours,
        [
            (a.as_str(), "bob"),
            (a.as_str(), "mia"),
            (b.as_str(), "amy"),
            (b.as_str(), "zed")
        ]
    );

    let only_a = pairs(storage.list_accounts(Some(&a)).await.unwrap());
    assert_eq!(
        only_a,
        [(a.clone(), "bob".to_owned()), (a.clone(), "mia".to_owned())]
    );
    assert!(storage
        .list_accounts(Some(&run.host("list-none")))
        .await
        .unwrap()
        .is_empty());

    // Listing agrees with single lookups.
    let listed = storage.list_accounts(Some(&b)).await.unwrap();
    assert_eq!(listed[0], account_info(storage, "amy", &b).await);
}

async fn set_credentials_replaces_every_hash(storage: &dyn Storage, run: &Run) {
    let host = run.host("setcreds");
    storage
        .create_account(
            "alice",
            &host,
            &[
                fake_credentials(ScramHash::Sha1, "set/old"),
                fake_credentials(ScramHash::Sha256, "set/old"),
            ],
        )
        .await
        .unwrap();
    let before = account_info(storage, "alice", &host).await;

    let new_sha1 = fake_credentials(ScramHash::Sha1, "set/new");
    let new_sha256 = fake_credentials(ScramHash::Sha256, "set/new");
    storage
        .set_credentials("alice", &host, &[new_sha1.clone(), new_sha256.clone()])
        .await
        .unwrap();
    let after_call = now_unix();

    expect_credentials(storage, "alice", &host, &new_sha1, "set: SHA-1").await;
    expect_credentials(storage, "alice", &host, &new_sha256, "set: SHA-256").await;
    let after = account_info(storage, "alice", &host).await;
    assert_eq!(after.created_at, before.created_at);
    assert!(
        after.password_changed_at >= before.password_changed_at,
        "password_changed_at went from {} to {}",
        before.password_changed_at,
        after.password_changed_at
    );
    assert!(after.password_changed_at <= after_call);
}

async fn set_credentials_drops_hashes_not_given(storage: &dyn Storage, run: &Run) {
    let host = run.host("setcreds-drop");
    storage
        .create_account(
            "alice",
            &host,
            &[
                fake_credentials(ScramHash::Sha1, "drop/old"),
                fake_credentials(ScramHash::Sha256, "drop/old"),
            ],
        )
        .await
        .unwrap();
    let only = fake_credentials(ScramHash::Sha256, "drop/new");
    storage
        .set_credentials("alice", &host, std::slice::from_ref(&only))
        .await
        .unwrap();
    // The old password must not keep working through the hash left out.
    expect_no_credentials(storage, "alice", &host, ScramHash::Sha1, "drop").await;
    expect_credentials(storage, "alice", &host, &only, "drop").await;
}

async fn delete_cascades_to_credentials(storage: &dyn Storage, run: &Run) {
    let host = run.host("delete");
    storage
        .create_account(
            "alice",
            &host,
            &[
                fake_credentials(ScramHash::Sha1, "delete/v1"),
                fake_credentials(ScramHash::Sha256, "delete/v1"),
            ],
        )
        .await
        .unwrap();
    storage
        .create_account("bob", &host, &[fake_credentials(ScramHash::Sha1, "bob")])
        .await
        .unwrap();
    storage.delete_account("alice", &host).await.unwrap();

    assert_eq!(storage.account("alice", &host).await.unwrap(), None);
    expect_no_credentials(storage, "alice", &host, ScramHash::Sha1, "deleted").await;
    expect_no_credentials(storage, "alice", &host, ScramHash::Sha256, "deleted").await;
    // Neighbours are untouched.
    expect_credentials(
        storage,
        "bob",
        &host,
        &fake_credentials(ScramHash::Sha1, "bob"),
        "neighbour of deleted",
    )
    .await;

    // A re-created account starts clean: no credential row outlived the old one.
    let v2 = fake_credentials(ScramHash::Sha256, "delete/v2");
    storage
        .create_account("alice", &host, std::slice::from_ref(&v2))
        .await
        .unwrap();
    expect_no_credentials(storage, "alice", &host, ScramHash::Sha1, "re-created").await;
    expect_credentials(storage, "alice", &host, &v2, "re-created").await;

    storage.delete_account("alice", &host).await.unwrap();
    let err = storage.delete_account("alice", &host).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

/// Real RFC 5802 credentials (binary keys, not the text of `fake_credentials`) survive
/// storage byte for byte.
async fn generated_credentials_round_trip(storage: &dyn Storage, run: &Run) {
    let host = run.host("generated");
    let sha1 = ScramCredentials::generate(ScramHash::Sha1, "pencil", 4096)
        .unwrap_or_else(|e| panic!("generating SHA-1 credentials: {e:?}"));
    let sha256 = ScramCredentials::generate(ScramHash::Sha256, "pencil", 4096)
        .unwrap_or_else(|e| panic!("generating SHA-256 credentials: {e:?}"));
    storage
        .create_account("user", &host, &[sha1.clone(), sha256.clone()])
        .await
        .unwrap();
    expect_credentials(storage, "user", &host, &sha1, "generated SHA-1").await;
    expect_credentials(storage, "user", &host, &sha256, "generated SHA-256").await;
    let stored = storage
        .credentials("user", &host, ScramHash::Sha256)
        .await
        .unwrap()
        .expect("generated SHA-256 credentials");
    assert!(stored.verify_password("pencil"));
    assert!(!stored.verify_password("pen"));
}

async fn server_secret_is_stable(storage: &Arc<dyn Storage>) {
    // Concurrent first calls must agree on one value.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let storage = Arc::clone(storage);
            tokio::spawn(async move { storage.server_secret().await })
        })
        .collect();
    let mut secrets = Vec::new();
    for handle in handles {
        secrets.push(handle.await.expect("server_secret task").unwrap());
    }
    let first = secrets[0].clone();
    assert_eq!(first.len(), 32);
    assert!(first.iter().any(|&b| b != 0), "secret is all zeroes");
    assert!(
        secrets.iter().all(|s| *s == first),
        "concurrent calls disagree"
    );
    assert_eq!(storage.server_secret().await.unwrap(), first);
}

fn item(jid: &str, subscription: Subscription, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription,
        ask: false,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn offline_message(stamp_ms: i64, body: &str) -> OfflineMessage {
    OfflineMessage {
        stamp_ms,
        stanza: format!(
            "<message xmlns='jabber:client' from='x@example.org/r' type='chat'><body>{body}</body></message>"
        ),
    }
}

async fn put(storage: &dyn Storage, username: &str, host: &str, item: &RosterItem) -> i64 {
    storage
        .roster_put(username, host, item)
        .await
        .unwrap_or_else(|e| panic!("roster_put {} for {username}@{host}: {e}", item.jid))
}

async fn changes(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    since: i64,
) -> Option<Vec<(i64, RosterChange)>> {
    storage
        .roster_changes_since(username, host, since)
        .await
        .unwrap_or_else(|e| panic!("roster_changes_since {since}: {e}"))
}

/// No account and no roster change: an empty roster at version 0, which is also the
/// current version for RFC 6121 §2.6.
async fn roster_of_unknown_user_is_empty_version_zero(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-empty");
    assert_eq!(
        storage.roster("nobody", &host).await.unwrap(),
        Roster::default()
    );
    assert_eq!(changes(storage, "nobody", &host, 0).await, Some(vec![]));
    assert_eq!(changes(storage, "nobody", &host, 1).await, None);
    assert!(storage
        .pending_in("nobody", &host)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(storage.offline_count("nobody", &host).await.unwrap(), 0);
    assert!(storage
        .offline_take("nobody", &host)
        .await
        .unwrap()
        .is_empty());
    // Reads created nothing: the account still does not exist.
    assert_eq!(storage.account("nobody", &host).await.unwrap(), None);
}

/// RFC 6121 §2.6.1: every change yields a new version, here previous + 1; a put of an
/// existing jid replaces the whole item.
async fn roster_put_bumps_version_and_replaces(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-put");
    // Puts for a user without an account succeed.
    assert_eq!(storage.account("alice", &host).await.unwrap(), None);
    let zoe = RosterItem {
        name: Some("Zoë".into()),
        ask: true,
        ..item("zoe@example.org", Subscription::None, &["Friends"])
    };
    let amy = item("amy@example.net", Subscription::Both, &[]);
    // Inserted out of order so that insertion order cannot pass for sorting.
    assert_eq!(put(storage, "alice", &host, &zoe).await, 1);
    assert_eq!(put(storage, "alice", &host, &amy).await, 2);
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster {
            version: 2,
            items: vec![amy.clone(), zoe.clone()]
        }
    );

    // Replacing clears what the new item does not carry.
    let zoe2 = item("zoe@example.org", Subscription::To, &[]);
    assert_eq!(put(storage, "alice", &host, &zoe2).await, 3);
    let roster = storage.roster("alice", &host).await.unwrap();
    assert_eq!(roster.version, 3);
    assert_eq!(roster.items, vec![amy.clone(), zoe2.clone()]);

    // An identical put is still a change.
    assert_eq!(put(storage, "alice", &host, &zoe2).await, 4);
    assert_eq!(storage.roster("alice", &host).await.unwrap().version, 4);

    // Removal is a change too, and the item is gone.
    assert_eq!(
        storage
            .roster_remove("alice", &host, "zoe@example.org")
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster {
            version: 5,
            items: vec![amy]
        }
    );
    // Putting a removed jid back makes it an ordinary item again.
    assert_eq!(put(storage, "alice", &host, &zoe).await, 6);
    assert_eq!(storage.roster("alice", &host).await.unwrap().items.len(), 2);
}

/// RFC 6121 §2.1.2.2: groups as given, in their order (not sorted), with any text.
async fn roster_groups_keep_their_order(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-groups");
    let groups = ["Zeta", "Alpha", "Work & <Play>", "Ünïcødé 👋", "Mid"];
    let contact = item("carol@example.org", Subscription::From, &groups);
    put(storage, "alice", &host, &contact).await;
    let roster = storage.roster("alice", &host).await.unwrap();
    assert_eq!(roster.items, vec![contact.clone()]);
    assert_eq!(roster.items[0].groups, groups);

    let fewer = item("carol@example.org", Subscription::From, &["Mid", "Zeta"]);
    put(storage, "alice", &host, &fewer).await;
    let roster = storage.roster("alice", &host).await.unwrap();
    assert_eq!(roster.items[0].groups, ["Mid", "Zeta"]);

    // Groups belong to one item: another item's are not mixed in.
    let other = item("dave@example.org", Subscription::None, &["Alpha"]);
    put(storage, "alice", &host, &other).await;
    let roster = storage.roster("alice", &host).await.unwrap();
    assert_eq!(roster.items, vec![fewer, other]);
}

async fn roster_remove_of_absent_item_changes_nothing(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-remove");
    assert_eq!(
        storage
            .roster_remove("alice", &host, "ghost@example.org")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster::default()
    );
    put(
        storage,
        "alice",
        &host,
        &item("bob@example.org", Subscription::None, &[]),
    )
    .await;
    assert_eq!(
        storage
            .roster_remove("alice", &host, "ghost@example.org")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        storage
            .roster_remove("alice", &host, "bob@example.org")
            .await
            .unwrap(),
        Some(2)
    );
    // A second removal finds nothing, and no version is spent on it.
    assert_eq!(
        storage
            .roster_remove("alice", &host, "bob@example.org")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster {
            version: 2,
            items: vec![]
        }
    );
    assert_eq!(
        changes(storage, "alice", &host, 0).await,
        Some(vec![(2, RosterChange::Removed("bob@example.org".into()))])
    );
}

/// RFC 6121 §2.6.3: a client at an older version gets the changes since, in order,
/// each jid once in its latest state; removals as removals.
async fn rfc6121_2_6_changes_since_replays_latest_state_per_jid(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-changes");
    let a1 = item("a@example.org", Subscription::None, &["One"]);
    let b = item("b@example.org", Subscription::To, &[]);
    let c = item("c@example.org", Subscription::From, &["Three", "Also"]);
    let a4 = RosterItem {
        name: Some("Anna".into()),
        ..item("a@example.org", Subscription::Both, &["Four", "One"])
    };
    let d = item("d@example.org", Subscription::None, &[]);
    assert_eq!(put(storage, "alice", &host, &a1).await, 1);
    assert_eq!(put(storage, "alice", &host, &b).await, 2);
    assert_eq!(put(storage, "alice", &host, &c).await, 3);
    assert_eq!(put(storage, "alice", &host, &a4).await, 4);
    assert_eq!(
        storage
            .roster_remove("alice", &host, "b@example.org")
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(put(storage, "alice", &host, &d).await, 6);

    let removed_b = || RosterChange::Removed("b@example.org".into());
    let updated = |i: &RosterItem| RosterChange::Updated(i.clone());

    // Current version: nothing to send.
    assert_eq!(changes(storage, "alice", &host, 6).await, Some(vec![]));
    assert_eq!(
        changes(storage, "alice", &host, 0).await,
        Some(vec![
            (3, updated(&c)),
            (4, updated(&a4)),
            (5, removed_b()),
            (6, updated(&d)),
        ])
    );
    assert_eq!(
        changes(storage, "alice", &host, 2).await,
        Some(vec![
            (3, updated(&c)),
            (4, updated(&a4)),
            (5, removed_b()),
            (6, updated(&d)),
        ])
    );
    assert_eq!(
        changes(storage, "alice", &host, 3).await,
        Some(vec![(4, updated(&a4)), (5, removed_b()), (6, updated(&d))])
    );
    assert_eq!(
        changes(storage, "alice", &host, 5).await,
        Some(vec![(6, updated(&d))])
    );

    // Re-adding a removed jid replaces its removal: one entry per jid.
    assert_eq!(put(storage, "alice", &host, &b).await, 7);
    assert_eq!(
        changes(storage, "alice", &host, 4).await,
        Some(vec![(6, updated(&d)), (7, updated(&b))])
    );
    assert_eq!(
        storage
            .roster_remove("alice", &host, "b@example.org")
            .await
            .unwrap(),
        Some(8)
    );
    assert_eq!(
        changes(storage, "alice", &host, 1).await,
        Some(vec![
            (3, updated(&c)),
            (4, updated(&a4)),
            (6, updated(&d)),
            (8, removed_b()),
        ])
    );

    // Replaying the changes onto the old roster gives the current one.
    let mut replayed: Vec<RosterItem> = vec![a1, b];
    for (_, change) in changes(storage, "alice", &host, 2).await.unwrap() {
        match change {
            RosterChange::Updated(new) => {
                replayed.retain(|i| i.jid != new.jid);
                replayed.push(new);
            }
            RosterChange::Removed(jid) => replayed.retain(|i| i.jid != jid),
        }
    }
    replayed.sort_by(|x, y| x.jid.cmp(&y.jid));
    assert_eq!(
        storage.roster("alice", &host).await.unwrap().items,
        replayed
    );
}

/// RFC 6121 §2.6.3: a version the server never issued (negative or in the future) is
/// unknown, and the caller falls back to the whole roster.
async fn rfc6121_2_6_unknown_versions_are_refused(storage: &dyn Storage, run: &Run) {
    let host = run.host("roster-unknown");
    for v in [-1, 1, i64::MAX] {
        assert_eq!(changes(storage, "alice", &host, v).await, None, "{v}");
    }
    put(
        storage,
        "alice",
        &host,
        &item("bob@example.org", Subscription::None, &[]),
    )
    .await;
    put(
        storage,
        "alice",
        &host,
        &item("carol@example.org", Subscription::None, &[]),
    )
    .await;
    for v in [-1, i64::MIN, 3, 100, i64::MAX] {
        assert_eq!(changes(storage, "alice", &host, v).await, None, "{v}");
    }
    assert_eq!(changes(storage, "alice", &host, 2).await, Some(vec![]));
    assert_eq!(changes(storage, "alice", &host, 1).await.unwrap().len(), 1);
    assert_eq!(changes(storage, "alice", &host, 0).await.unwrap().len(), 2);
}

async fn rosters_are_per_user(storage: &dyn Storage, run: &Run) {
    let (one, two) = (run.host("roster-users-one"), run.host("roster-users-two"));
    let contact = item("carol@example.org", Subscription::Both, &["G"]);
    put(storage, "alice", &one, &contact).await;
    put(storage, "alice", &one, &contact).await;
    assert_eq!(put(storage, "bob", &one, &contact).await, 1);
    assert_eq!(put(storage, "alice", &two, &contact).await, 1);
    storage
        .roster_remove("bob", &one, "carol@example.org")
        .await
        .unwrap();
    assert_eq!(
        storage.roster("alice", &one).await.unwrap(),
        Roster {
            version: 2,
            items: vec![contact.clone()]
        }
    );
    assert_eq!(
        storage.roster("alice", &two).await.unwrap(),
        Roster {
            version: 1,
            items: vec![contact.clone()]
        }
    );
    assert_eq!(
        storage.roster("bob", &one).await.unwrap(),
        Roster {
            version: 2,
            items: vec![]
        }
    );
    // Bob's removal is not alice's change.
    assert_eq!(changes(storage, "alice", &one, 1).await.unwrap().len(), 1);
    assert_eq!(
        changes(storage, "alice", &one, 1).await.unwrap()[0].1,
        RosterChange::Updated(contact)
    );
}

/// Versions are handed out one at a time even under concurrent writers.
async fn concurrent_roster_puts_get_distinct_versions(storage: &Arc<dyn Storage>, run: &Run) {
    const WRITERS: i64 = 10;
    let host = run.host("roster-concurrent");
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let storage = Arc::clone(storage);
            let host = host.clone();
            tokio::spawn(async move {
                let contact = item(&format!("c{i:02}@example.org"), Subscription::None, &[]);
                storage.roster_put("alice", &host, &contact).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for handle in handles {
        versions.push(handle.await.expect("roster_put task").unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=WRITERS).collect::<Vec<_>>());
    let roster = storage.roster("alice", &host).await.unwrap();
    assert_eq!(roster.version, WRITERS);
    assert_eq!(roster.items.len(), 10);
}

/// RFC 6121 §3.1.3: unanswered inbound requests are kept, one per contact, and offered
/// again in the order they arrived.
async fn rfc6121_3_1_3_pending_in_keeps_arrival_order(storage: &dyn Storage, run: &Run) {
    let host = run.host("pending");
    let stanza = |from: &str, status: &str| {
        format!(
            "<presence xmlns='jabber:client' from='{from}' to='alice@{host}' type='subscribe'><status>{status} &amp; ☺</status></presence>"
        )
    };
    assert!(storage.pending_in("alice", &host).await.unwrap().is_empty());
    // Out of alphabetical order, so that sorting cannot pass for arrival order.
    for from in ["zed@example.org", "bob@example.org", "mia@example.org"] {
        storage
            .pending_in_put("alice", &host, from, &stanza(from, "first"))
            .await
            .unwrap();
    }
    let expected = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(from, status)| ((*from).to_owned(), stanza(from, status)))
            .collect()
    };
    assert_eq!(
        storage.pending_in("alice", &host).await.unwrap(),
        expected(&[
            ("zed@example.org", "first"),
            ("bob@example.org", "first"),
            ("mia@example.org", "first"),
        ])
    );

    // A repeated request replaces the earlier one and is now the latest arrival.
    storage
        .pending_in_put(
            "alice",
            &host,
            "zed@example.org",
            &stanza("zed@example.org", "again"),
        )
        .await
        .unwrap();
    assert_eq!(
        storage.pending_in("alice", &host).await.unwrap(),
        expected(&[
            ("bob@example.org", "first"),
            ("mia@example.org", "first"),
            ("zed@example.org", "again"),
        ])
    );

    assert!(storage
        .pending_in_remove("alice", &host, "bob@example.org")
        .await
        .unwrap());
    assert!(!storage
        .pending_in_remove("alice", &host, "bob@example.org")
        .await
        .unwrap());
    assert!(!storage
        .pending_in_remove("alice", &host, "nobody@example.org")
        .await
        .unwrap());
    assert_eq!(
        storage.pending_in("alice", &host).await.unwrap(),
        expected(&[("mia@example.org", "first"), ("zed@example.org", "again")])
    );

    // Other users are separate.
    assert!(storage.pending_in("bob", &host).await.unwrap().is_empty());
    assert!(!storage
        .pending_in_remove("bob", &host, "mia@example.org")
        .await
        .unwrap());
    assert_eq!(storage.pending_in("alice", &host).await.unwrap().len(), 2);
}

/// XEP-0160 §3 and §5: messages are stored up to a per-user limit, delivered in the
/// order they arrived and then no longer stored.
async fn xep0160_offline_messages_are_capped_and_taken_in_order(storage: &dyn Storage, run: &Run) {
    let host = run.host("offline");
    // Stamps out of order: arrival, not stamp, decides the order.
    let messages = [
        offline_message(1_700_000_000_300, "one"),
        offline_message(1_700_000_000_100, "two <&> ☺"),
        offline_message(1_700_000_000_200, "three"),
    ];
    for (i, msg) in messages.iter().enumerate() {
        assert!(storage
            .offline_push("alice", &host, msg, 3, usize::MAX)
            .await
            .unwrap());
        assert_eq!(storage.offline_count("alice", &host).await.unwrap(), i + 1);
    }
    // Full: refused, nothing stored.
    let extra = offline_message(1_700_000_000_400, "four");
    assert!(!storage
        .offline_push("alice", &host, &extra, 3, usize::MAX)
        .await
        .unwrap());
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 3);
    // A lower limit than what is stored refuses too.
    assert!(!storage
        .offline_push("alice", &host, &extra, 1, usize::MAX)
        .await
        .unwrap());
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 3);
    // Another user has their own count.
    assert!(storage
        .offline_push("bob", &host, &extra, 3, usize::MAX)
        .await
        .unwrap());

    assert_eq!(
        storage.offline_take("alice", &host).await.unwrap(),
        messages.to_vec()
    );
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 0);
    assert!(storage
        .offline_take("alice", &host)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(storage.offline_count("bob", &host).await.unwrap(), 1);

    // Taking frees the space.
    assert!(storage
        .offline_push("alice", &host, &extra, 3, usize::MAX)
        .await
        .unwrap());
    assert_eq!(
        storage.offline_take("alice", &host).await.unwrap(),
        vec![extra.clone()]
    );

    // A limit of zero stores nothing.
    assert!(!storage
        .offline_push("carol", &host, &extra, 0, usize::MAX)
        .await
        .unwrap());
    assert_eq!(storage.offline_count("carol", &host).await.unwrap(), 0);
}

/// A per-user byte quota on offline storage: one account cannot fill the store with a
/// few huge messages within its message count. Bytes are UTF-8 bytes of the stanzas.
async fn xep0160_offline_messages_are_capped_in_bytes(storage: &dyn Storage, run: &Run) {
    let host = run.host("offline-bytes");
    let msg = offline_message(1, &"é".repeat(50));
    let size = msg.stanza.len();
    assert!(size > 100, "two-byte characters count twice: {size}");
    let max_bytes = 2 * size + size / 2;
    for _ in 0..2 {
        assert!(storage
            .offline_push("alice", &host, &msg, 100, max_bytes)
            .await
            .unwrap());
    }
    // A third would pass the byte cap (not the count): refused, nothing stored.
    assert!(!storage
        .offline_push("alice", &host, &msg, 100, max_bytes)
        .await
        .unwrap());
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 2);
    // A smaller one still fits; another user has a budget of their own.
    let small = offline_message(2, "x");
    assert!(small.stanza.len() <= size / 2);
    assert!(storage
        .offline_push("alice", &host, &small, 100, max_bytes)
        .await
        .unwrap());
    assert!(storage
        .offline_push("bob", &host, &msg, 100, max_bytes)
        .await
        .unwrap());
    // Taking frees the bytes.
    assert_eq!(storage.offline_take("alice", &host).await.unwrap().len(), 3);
    assert!(storage
        .offline_push("alice", &host, &msg, 100, max_bytes)
        .await
        .unwrap());
}

/// RFC 6121 §2.6: removal records are pruned to a bound, and a client whose version is
/// older than the newest pruned record gets the whole roster (None) rather than a replay
/// that would miss removals; newer versions still get exact replays.
async fn rfc6121_2_6_pruned_tombstones_send_older_versions_the_whole_roster(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("tombstones");
    for i in 0..5 {
        let jid = format!("c{i}@example.org");
        storage
            .roster_put("alice", &host, &item(&jid, Subscription::None, &[]))
            .await
            .unwrap();
    }
    // Versions 6..=10 remove c0..c4.
    for i in 0..5 {
        let jid = format!("c{i}@example.org");
        assert_eq!(
            storage.roster_remove("alice", &host, &jid).await.unwrap(),
            Some(6 + i)
        );
    }
    assert_eq!(
        storage
            .roster_prune_tombstones("alice", &host, 10)
            .await
            .unwrap(),
        0,
        "under the bound nothing goes"
    );
    assert_eq!(
        storage
            .roster_prune_tombstones("alice", &host, 2)
            .await
            .unwrap(),
        3
    );
    // Records 9 and 10 are kept: a client at 8 gets both removals.
    let since8 = storage
        .roster_changes_since("alice", &host, 8)
        .await
        .unwrap()
        .expect("replayable");
    assert_eq!(
        since8,
        vec![
            (9, RosterChange::Removed("c3@example.org".into())),
            (10, RosterChange::Removed("c4@example.org".into())),
        ]
    );
    // The removal at 8 is gone: older versions must get the whole roster.
    for old in [0, 5, 7] {
        assert_eq!(
            storage
                .roster_changes_since("alice", &host, old)
                .await
                .unwrap(),
            None,
            "version {old}"
        );
    }
    assert_eq!(
        storage
            .roster_changes_since("alice", &host, 10)
            .await
            .unwrap(),
        Some(vec![])
    );
    // The floor is no item and no removal of the roster.
    assert!(storage
        .roster("alice", &host)
        .await
        .unwrap()
        .items
        .is_empty());
    // Pruning again keeps the floor where it was or higher, and a re-added contact works.
    storage
        .roster_put(
            "alice",
            &host,
            &item("c0@example.org", Subscription::None, &[]),
        )
        .await
        .unwrap();
    assert_eq!(
        storage
            .roster_prune_tombstones("alice", &host, 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        storage
            .roster_changes_since("alice", &host, 8)
            .await
            .unwrap(),
        None
    );
    // A client at 9 saw the pruned removal itself: it still gets an exact replay.
    let since9 = storage
        .roster_changes_since("alice", &host, 9)
        .await
        .unwrap()
        .expect("replayable");
    assert_eq!(since9.len(), 2);
    let since10 = storage
        .roster_changes_since("alice", &host, 10)
        .await
        .unwrap()
        .expect("replayable");
    assert_eq!(since10.len(), 1);
    // Another user is untouched.
    assert_eq!(
        storage.roster_changes_since("bob", &host, 0).await.unwrap(),
        Some(vec![])
    );
}

/// XEP-0160 storage limits hold under concurrent senders: the count and the insert are
/// one transaction.
async fn xep0160_concurrent_offline_pushes_respect_the_cap(storage: &Arc<dyn Storage>, run: &Run) {
    const SENDERS: usize = 20;
    const MAX: usize = 5;
    let host = run.host("offline-concurrent");
    let handles: Vec<_> = (0..SENDERS)
        .map(|i| {
            let storage = Arc::clone(storage);
            let host = host.clone();
            tokio::spawn(async move {
                let msg = offline_message(i64::try_from(i).unwrap(), &format!("m{i}"));
                storage
                    .offline_push("alice", &host, &msg, MAX, usize::MAX)
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        if handle.await.expect("offline_push task").unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, MAX, "pushes reported as stored");
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), MAX);
    assert_eq!(
        storage.offline_take("alice", &host).await.unwrap().len(),
        MAX
    );
}

async fn delete_account_wipes_user_data(storage: &dyn Storage, run: &Run) {
    let host = run.host("delete-data");
    for username in ["alice", "bob"] {
        storage.create_account(username, &host, &[]).await.unwrap();
        put(
            storage,
            username,
            &host,
            &item("carol@example.org", Subscription::Both, &["G1", "G2"]),
        )
        .await;
        put(
            storage,
            username,
            &host,
            &item("dave@example.org", Subscription::None, &[]),
        )
        .await;
        storage
            .roster_remove(username, &host, "dave@example.org")
            .await
            .unwrap();
        storage
            .pending_in_put(username, &host, "eve@example.org", "<presence/>")
            .await
            .unwrap();
        assert!(storage
            .offline_push(username, &host, &offline_message(1, "hi"), 10, usize::MAX)
            .await
            .unwrap());
    }
    let bob_before = storage.roster("bob", &host).await.unwrap();

    storage.delete_account("alice", &host).await.unwrap();
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster::default()
    );
    // No removal record or version survives: the old version is unknown now.
    assert_eq!(changes(storage, "alice", &host, 0).await, Some(vec![]));
    assert_eq!(changes(storage, "alice", &host, 3).await, None);
    assert!(storage.pending_in("alice", &host).await.unwrap().is_empty());
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 0);

    // A re-created account starts from scratch.
    storage.create_account("alice", &host, &[]).await.unwrap();
    assert_eq!(
        storage.roster("alice", &host).await.unwrap(),
        Roster::default()
    );
    assert_eq!(
        put(
            storage,
            "alice",
            &host,
            &item("dave@example.org", Subscription::None, &[])
        )
        .await,
        1
    );

    // The neighbour keeps everything.
    assert_eq!(storage.roster("bob", &host).await.unwrap(), bob_before);
    assert_eq!(bob_before.version, 3);
    assert_eq!(
        changes(storage, "bob", &host, 0).await,
        Some(vec![
            (
                1,
                RosterChange::Updated(item("carol@example.org", Subscription::Both, &["G1", "G2"]))
            ),
            (3, RosterChange::Removed("dave@example.org".into())),
        ]),
        "bob's changes, removal record included"
    );
    assert_eq!(storage.pending_in("bob", &host).await.unwrap().len(), 1);
    assert_eq!(storage.offline_count("bob", &host).await.unwrap(), 1);

    // Deleting a missing account fails and leaves data stored under its name alone.
    put(
        storage,
        "ghost",
        &host,
        &item("carol@example.org", Subscription::None, &[]),
    )
    .await;
    let err = storage.delete_account("ghost", &host).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
    assert_eq!(storage.roster("ghost", &host).await.unwrap().version, 1);
}
