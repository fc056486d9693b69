//! Suite checks for accounts, SCRAM credentials and the server secret.

use super::*;

pub(super) fn assert_same_credentials(
    actual: &ScramCredentials,
    expected: &ScramCredentials,
    what: &str,
) {
    assert_eq!(actual.hash.name(), expected.hash.name(), "{what}: hash");
    assert_eq!(actual.salt, expected.salt, "{what}: salt");
    assert_eq!(actual.iterations, expected.iterations, "{what}: iterations");
    assert_eq!(actual.stored_key, expected.stored_key, "{what}: stored_key");
    assert_eq!(actual.server_key, expected.server_key, "{what}: server_key");
}

pub(super) async fn expect_credentials(
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

pub(super) async fn expect_no_credentials(
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

pub(super) async fn account_info(storage: &dyn Storage, username: &str, host: &str) -> AccountInfo {
    storage
        .account(username, host)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("account {username}@{host} missing"))
}

pub(super) async fn create_and_read_back(storage: &dyn Storage, run: &Run) {
    let host = run.host("create");
    let sha1 = fake_credentials(ScramHash::Sha1, "alice");
    let sha256 = fake_credentials(ScramHash::Sha256, "alice");
    let before = parley_proto::clock::now_s();
    storage
        .create_account("alice", &host, &[sha1.clone(), sha256.clone()])
        .await
        .unwrap();
    let after = parley_proto::clock::now_s();

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

pub(super) async fn same_username_on_two_hosts_are_distinct(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn duplicate_account_is_refused(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn missing_account_is_not_found(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn import_skips_existing_accounts(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn list_is_sorted_and_filtered_by_host(storage: &dyn Storage, run: &Run) {
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

    // Pages: every account once, in the same order, whatever the page size.
    for size in [1, 2, 3] {
        let mut paged = Vec::new();
        // From just before this test's first host (other tests may share the store, with
        // many accounts) to past its last.
        let mut after: Option<(String, String)> = Some((a.clone(), String::new()));
        while after.as_ref().is_some_and(|(host, _)| *host <= b) {
            let page = storage
                .accounts_page(
                    None,
                    after.as_ref().map(|(h, u)| (h.as_str(), u.as_str())),
                    size,
                )
                .await
                .unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some((last.host.clone(), last.username.clone()));
            paged.extend(pairs(page));
        }
        // Other tests may share the store: compare this test's hosts only.
        paged.retain(|(host, _)| *host == a || *host == b);
        let expected: Vec<_> = ours
            .iter()
            .map(|(h, u)| (h.to_string(), u.to_string()))
            .collect();
        assert_eq!(paged, expected, "pages of {size}");
    }
    let first = pairs(storage.accounts_page(Some(&a), None, 1).await.unwrap());
    assert_eq!(first, [(a.clone(), "bob".to_owned())]);
    let next = pairs(
        storage
            .accounts_page(Some(&a), Some((&a, "bob")), 10)
            .await
            .unwrap(),
    );
    assert_eq!(next, [(a.clone(), "mia".to_owned())]);

    // Listing agrees with single lookups.
    let listed = storage.list_accounts(Some(&b)).await.unwrap();
    assert_eq!(listed[0], account_info(storage, "amy", &b).await);
}

pub(super) async fn set_credentials_replaces_every_hash(storage: &dyn Storage, run: &Run) {
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
    let after_call = parley_proto::clock::now_s();

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

pub(super) async fn set_credentials_drops_hashes_not_given(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn delete_cascades_to_credentials(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn generated_credentials_round_trip(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn server_secret_is_stable(storage: &Arc<dyn Storage>) {
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
