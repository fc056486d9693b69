//! Suite checks for pending subscription requests, XEP-0160 offline messages, and the
//! wipe of all per-user data with the account.

use super::*;

/// RFC 6121 §3.1.3: unanswered inbound requests are kept, one per contact, and offered
/// again in the order they arrived.
pub(super) async fn rfc6121_3_1_3_pending_in_keeps_arrival_order(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn xep0160_offline_messages_are_capped_and_taken_in_order(
    storage: &dyn Storage,
    run: &Run,
) {
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

    // A peek (an export) reads them in arrival order and leaves them.
    for _ in 0..2 {
        assert_eq!(
            storage.offline_peek("alice", &host).await.unwrap(),
            messages.to_vec()
        );
    }
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 3);
    assert_eq!(
        storage.offline_take("alice", &host).await.unwrap(),
        messages.to_vec()
    );
    assert_eq!(storage.offline_count("alice", &host).await.unwrap(), 0);
    assert!(storage
        .offline_peek("alice", &host)
        .await
        .unwrap()
        .is_empty());
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
pub(super) async fn xep0160_offline_messages_are_capped_in_bytes(storage: &dyn Storage, run: &Run) {
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

/// XEP-0160 storage limits hold under concurrent senders: the count and the insert are
/// one transaction.
pub(super) async fn xep0160_concurrent_offline_pushes_respect_the_cap(
    storage: &Arc<dyn Storage>,
    run: &Run,
) {
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

pub(super) async fn delete_account_wipes_user_data(storage: &dyn Storage, run: &Run) {
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
