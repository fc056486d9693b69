//! Suite checks for XEP-0191 blocklists.

use super::*;

/// XEP-0191: a blocklist per user, listed sorted; adding reports only the jids that were
/// not blocked yet and removing only those that were; deleting the account empties it.
pub(super) async fn xep0191_blocklists_report_changes_and_go_with_the_account(
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
