//! Suite checks for rosters: versions, groups, RFC 6121 §2.6 replay, removal records.

use super::*;

/// No account and no roster change: an empty roster at version 0, which is also the
/// current version for RFC 6121 §2.6.
pub(super) async fn roster_of_unknown_user_is_empty_version_zero(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn roster_put_bumps_version_and_replaces(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn roster_groups_keep_their_order(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn roster_remove_of_absent_item_changes_nothing(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn rfc6121_2_6_changes_since_replays_latest_state_per_jid(
    storage: &dyn Storage,
    run: &Run,
) {
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
pub(super) async fn rfc6121_2_6_unknown_versions_are_refused(storage: &dyn Storage, run: &Run) {
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

pub(super) async fn rosters_are_per_user(storage: &dyn Storage, run: &Run) {
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
pub(super) async fn concurrent_roster_puts_get_distinct_versions(
    storage: &Arc<dyn Storage>,
    run: &Run,
) {
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

/// RFC 6121 §2.6: removal records are pruned to a bound, and a client whose version is
/// older than the newest pruned record gets the whole roster (None) rather than a replay
/// that would miss removals; newer versions still get exact replays.
pub(super) async fn rfc6121_2_6_pruned_tombstones_send_older_versions_the_whole_roster(
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
