//! Suite checks for the message archive (XEP-0313): appends and the rules that decide
//! them, every filter and page, the bounds, expiry, and the account's deletion.

use parley_proto::mam::{Default as ArchiveDefault, Page, Prefs, Query, With};

use super::*;
use crate::{ArchivePolicy, ArchiveRecord};

const ALWAYS: ArchivePolicy = ArchivePolicy {
    default: ArchiveDefault::Always,
    max_items: 1000,
    max_bytes: 1 << 20,
};

fn record(owner: &str, host: &str, with: &str, stamp_ms: i64, body: &str) -> ArchiveRecord {
    ArchiveRecord {
        username: owner.to_owned(),
        host: host.to_owned(),
        id: parley_proto::mam::new_id(),
        with: With::parse(with).unwrap(),
        stamp_ms,
        stanza: format!("<message xmlns='jabber:client' type='chat'><body>{body}</body></message>"),
    }
}

/// A query for every message of an archive, `max` a page.
pub(crate) fn all(max: usize) -> Query {
    Query {
        query_id: None,
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        max,
        page: Page::First,
        flip: false,
    }
}

fn bodies(page: &crate::ArchivePage) -> Vec<String> {
    page.items
        .iter()
        .map(|r| {
            let start = r.stanza.find("<body>").unwrap() + 6;
            let end = r.stanza.find("</body>").unwrap();
            r.stanza[start..end].to_owned()
        })
        .collect()
}

/// What the archive writer does with a batch: decide each record from its owner's state,
/// then write the kept ones at once; the ids of the kept ones.
async fn append_with(
    storage: &dyn Storage,
    records: &[ArchiveRecord],
    policy: &ArchivePolicy,
) -> Vec<Option<String>> {
    let mut kept = Vec::new();
    let mut ids = Vec::new();
    for r in records {
        let owner = storage
            .archive_owner(&r.username, &r.host, true)
            .await
            .unwrap();
        if crate::archive_decide(&owner, policy.default, &r.with) {
            ids.push(Some(r.id.clone()));
            kept.push(r.clone());
        } else {
            ids.push(None);
        }
    }
    storage.archive_insert(kept, policy).await.unwrap();
    ids
}

async fn append(storage: &dyn Storage, records: &[ArchiveRecord]) -> Vec<Option<String>> {
    append_with(storage, records, &ALWAYS).await
}

/// XEP-0313 §3-§4: ids are unique and unpredictable, order is arrival order, and every
/// filter and page of XEP-0059 returns what it names, with `complete`, `count` and
/// `first_index` right; an unknown id is None (item-not-found).
pub(super) async fn xep0313_appends_filters_and_pages(storage: &dyn Storage, run: &Run) {
    let host = run.host("mam");
    storage.create_account("alice", &host, &[]).await.unwrap();
    let mut records = Vec::new();
    for i in 0..10 {
        let with = if i % 2 == 0 {
            "bob@x.example/phone"
        } else {
            "carol@x.example"
        };
        records.push(record(
            "alice",
            &host,
            with,
            1000 + i * 100,
            &format!("m{i}"),
        ));
    }
    // One batch, with a record for an account that does not exist: not kept.
    records.push(record("nobody", &host, "bob@x.example", 5000, "lost"));
    let ids = append(storage, &records).await;
    assert_eq!(ids[10], None, "no account, no archive");
    let ids: Vec<String> = ids[..10].iter().map(|i| i.clone().unwrap()).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 10);
    assert!(ids.iter().all(|id| id.len() == 20), "{ids:?}");
    assert_eq!(storage.archive_size("alice", &host).await.unwrap().0, 10);

    let q = |f: &dyn Fn(&mut Query)| {
        let mut q = all(4);
        f(&mut q);
        q
    };
    let h = host.as_str();
    let run_q = |q: Query| async move { storage.archive_query("alice", h, &q).await.unwrap() };
    // First page, forward.
    let p = run_q(q(&|_| {})).await.unwrap();
    assert_eq!(bodies(&p), ["m0", "m1", "m2", "m3"]);
    assert_eq!(
        (p.complete, p.count, p.first_index),
        (false, Some(10), Some(0))
    );
    // After the last of it, then to the end.
    let p2 = run_q(q(&|q| q.page = Page::After(ids[3].clone())))
        .await
        .unwrap();
    assert_eq!(bodies(&p2), ["m4", "m5", "m6", "m7"]);
    assert!(!p2.complete);
    let p3 = run_q(q(&|q| q.page = Page::After(ids[7].clone())))
        .await
        .unwrap();
    assert_eq!(bodies(&p3), ["m8", "m9"]);
    assert!(p3.complete, "the last page paging forward is complete");
    // The last page, then backward.
    let last = run_q(q(&|q| q.page = Page::Last)).await.unwrap();
    assert_eq!(bodies(&last), ["m6", "m7", "m8", "m9"]);
    assert_eq!((last.complete, last.first_index), (false, Some(6)));
    let back = run_q(q(&|q| q.page = Page::Before(ids[2].clone())))
        .await
        .unwrap();
    assert_eq!(bodies(&back), ["m0", "m1"]);
    assert!(back.complete, "the first page paging backward is complete");
    let idx = run_q(q(&|q| q.page = Page::Index(8))).await.unwrap();
    assert_eq!(
        (bodies(&idx), idx.first_index, idx.complete),
        (vec!["m8".to_owned(), "m9".to_owned()], Some(8), true)
    );
    // §4.1.1: a bare `with` matches every resource, a full one only itself.
    let bob = run_q(q(&|q| {
        q.with = With::parse("bob@x.example");
        q.max = 10;
    }))
    .await
    .unwrap();
    assert_eq!(bodies(&bob), ["m0", "m2", "m4", "m6", "m8"]);
    assert_eq!(bob.count, Some(5));
    let other_res = run_q(q(&|q| q.with = With::parse("bob@x.example/laptop")))
        .await
        .unwrap();
    assert_eq!(other_res.count, Some(0));
    assert!(other_res.items.is_empty() && other_res.complete);
    let carol_full = run_q(q(&|q| q.with = With::parse("carol@x.example/any")))
        .await
        .unwrap();
    assert_eq!(
        carol_full.count,
        Some(0),
        "a full `with` does not match bare-addressed messages"
    );
    // §4.1.2: start and end are inclusive.
    let window = run_q(q(&|q| {
        q.start = Some(1200);
        q.end = Some(1400);
    }))
    .await
    .unwrap();
    assert_eq!(bodies(&window), ["m2", "m3", "m4"]);
    assert_eq!(window.count, None, "no count for a query bounded in time");
    // after-id / before-id bound the set; RSM pages inside it.
    let between = run_q(q(&|q| {
        q.after_id = Some(ids[1].clone());
        q.before_id = Some(ids[8].clone());
        q.page = Page::Last;
        q.max = 3;
    }))
    .await
    .unwrap();
    assert_eq!(bodies(&between), ["m5", "m6", "m7"]);
    assert_eq!(between.count, Some(6));
    // ids: just those, in archive order.
    let picked = run_q(q(&|q| {
        q.ids = vec![ids[7].clone(), ids[2].clone(), "nope".into()]
    }))
    .await
    .unwrap();
    assert_eq!(bodies(&picked), ["m2", "m7"]);
    // max 0: the count only.
    let count_only = run_q(q(&|q| q.max = 0)).await.unwrap();
    assert!(count_only.items.is_empty());
    assert_eq!(count_only.count, Some(10));
    // Unknown ids: item-not-found.
    for f in [
        &(|q: &mut Query| q.page = Page::After("unknown".into())) as &dyn Fn(&mut Query),
        &|q: &mut Query| q.before_id = Some("unknown".into()),
        &|q: &mut Query| q.after_id = Some("unknown".into()),
    ] {
        assert!(run_q(q(f)).await.is_none());
    }
    // Another account does not see alice's ids.
    storage.create_account("bob", &host, &[]).await.unwrap();
    let mut other = all(4);
    other.page = Page::After(ids[0].clone());
    assert!(storage
        .archive_query("bob", &host, &other)
        .await
        .unwrap()
        .is_none());
    // Hostile text is bound, never spliced.
    let mut hostile = all(4);
    hostile.with = Some(With {
        bare: "x' OR '1'='1".into(),
        resource: None,
    });
    hostile.ids = vec!["') OR 1=1 --".into()];
    let p = storage
        .archive_query("alice", &host, &hostile)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.count, Some(0));
    // One batch of two messages for one account: the totals count both.
    let two = vec![
        record("alice", &host, "dave@x.example", 5000, "batch-a"),
        record("alice", &host, "dave@x.example", 5001, "batch-b"),
    ];
    storage.archive_insert(two, &ALWAYS).await.unwrap();
    assert_eq!(storage.archive_size("alice", &host).await.unwrap().0, 12);
    let mut only_dave = all(10);
    only_dave.with = With::parse("dave@x.example");
    let dave = storage
        .archive_query("alice", &host, &only_dave)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&dave), ["batch-a", "batch-b"]);
}

/// XEP-0441 §2 and XEP-0191 §3.4: preferences (with the server's default for accounts
/// that set none) and blocks decide what is kept; preferences round-trip.
pub(super) async fn xep0441_preferences_and_blocks_decide(storage: &dyn Storage, run: &Run) {
    let host = run.host("mamprefs");
    storage.create_account("alice", &host, &[]).await.unwrap();
    assert_eq!(storage.archive_prefs("alice", &host).await.unwrap(), None);
    let never_default = ArchivePolicy {
        default: ArchiveDefault::Never,
        ..ALWAYS
    };
    let ids = append_with(
        storage,
        &[record("alice", &host, "bob@x", 1, "a")],
        &never_default,
    )
    .await;
    assert_eq!(
        ids,
        [None],
        "the server's default applies to accounts without prefs"
    );

    let prefs = Prefs {
        default: ArchiveDefault::Roster,
        always: vec!["always@x".into()],
        never: vec!["never@x".into()],
    };
    storage
        .archive_set_prefs("alice", &host, &prefs)
        .await
        .unwrap();
    assert_eq!(
        storage.archive_prefs("alice", &host).await.unwrap(),
        Some(prefs)
    );
    storage
        .roster_put("alice", &host, &item("friend@x", Subscription::Both, &[]))
        .await
        .unwrap();
    storage
        .blocklist_add("alice", &host, &["x/evil".into(), "troll@y".into()])
        .await
        .unwrap();
    let ids = append(
        storage,
        &[
            record("alice", &host, "friend@x/phone", 1, "friend"),
            record("alice", &host, "stranger@x", 2, "stranger"),
            record("alice", &host, "always@x", 3, "always"),
            record("alice", &host, "never@x", 4, "never"),
            // Blocked by domain/resource and by bare JID.
            record("alice", &host, "friend2@x/evil", 5, "blocked-domain-res"),
            record("alice", &host, "troll@y/r", 6, "blocked-bare"),
        ],
    )
    .await;
    let kept: Vec<bool> = ids.iter().map(Option::is_some).collect();
    assert_eq!(kept, [true, false, true, false, false, false]);
}

/// Bounds: past `max_items` or `max_bytes` the oldest messages go (the totals follow);
/// expiry drops what is older than the cut; the archive goes with the account.
pub(super) async fn xep0313_archives_are_bounded_expire_and_go_with_the_account(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("mambounds");
    storage.create_account("alice", &host, &[]).await.unwrap();
    let small = ArchivePolicy {
        max_items: 3,
        ..ALWAYS
    };
    for i in 0..5 {
        append_with(
            storage,
            &[record("alice", &host, "bob@x", i, &format!("m{i}"))],
            &small,
        )
        .await;
    }
    let p = storage
        .archive_query("alice", &host, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&p), ["m2", "m3", "m4"]);
    assert_eq!(storage.archive_size("alice", &host).await.unwrap().0, 3);
    let size = record("alice", &host, "bob@x", 0, "m0").stanza.len() as u64;
    let by_bytes = ArchivePolicy {
        max_bytes: size * 2,
        ..ALWAYS
    };
    append_with(
        storage,
        &[record("alice", &host, "bob@x", 9, "m9")],
        &by_bytes,
    )
    .await;
    let p = storage
        .archive_query("alice", &host, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&p), ["m4", "m9"]);
    assert_eq!(
        storage.archive_size("alice", &host).await.unwrap(),
        (2, size * 2)
    );

    // Expiry (global across the run's hosts: only what is older than the cut goes).
    storage.create_account("bob", &host, &[]).await.unwrap();
    append(
        storage,
        &[
            record("bob", &host, "alice@x", 5, "old"),
            record("bob", &host, "alice@x", i64::MAX / 2, "new"),
        ],
    )
    .await;
    let gone = storage.archive_expire(6).await.unwrap();
    assert!(gone >= 2, "alice's m4 and bob's old went: {gone}");
    let p = storage
        .archive_query("bob", &host, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&p), ["new"]);
    assert_eq!(storage.archive_size("bob", &host).await.unwrap().0, 1);
    let p = storage
        .archive_query("alice", &host, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&p), ["m9"]);

    storage
        .archive_set_prefs("bob", &host, &Prefs::with_default(ArchiveDefault::Roster))
        .await
        .unwrap();
    storage.delete_account("bob", &host).await.unwrap();
    assert_eq!(storage.archive_size("bob", &host).await.unwrap(), (0, 0));
    assert_eq!(storage.archive_prefs("bob", &host).await.unwrap(), None);
    let p = storage
        .archive_query("bob", &host, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert!(p.items.is_empty());
}

/// XEP-0313 §4.1.2 with stamps that race: messages routed moments apart reach the archive
/// in another order (other sessions, batches, nodes' clocks). The archive keeps arrival
/// order and stores a late-stamped record with the account's newest stamp, so that `start`
/// and `end` (inclusive) cut the archive's order in one place and every message is in
/// exactly one of two adjacent windows.
pub(super) async fn xep0313_time_filters_follow_archive_order(storage: &dyn Storage, run: &Run) {
    let host = run.host("mamtime");
    storage.create_account("dana", &host, &[]).await.unwrap();
    let h = host.as_str();
    // Arrival order m0..m5; m2 and m4 were stamped before the message ahead of them.
    let stamps = [1000, 2000, 1500, 3000, 2500, 4000];
    let first: Vec<_> = stamps[..3]
        .iter()
        .enumerate()
        .map(|(i, s)| record("dana", h, "erin@x.example", *s, &format!("m{i}")))
        .collect();
    let second: Vec<_> = stamps[3..]
        .iter()
        .enumerate()
        .map(|(i, s)| record("dana", h, "erin@x.example", *s, &format!("m{}", i + 3)))
        .collect();
    // Two batches: the newest stamp carries over from one to the next.
    append(storage, &first).await;
    append(storage, &second).await;
    let everything = storage
        .archive_query("dana", h, &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&everything), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    let stored: Vec<i64> = everything.items.iter().map(|r| r.stamp_ms).collect();
    assert_eq!(
        stored,
        [1000, 2000, 2000, 3000, 3000, 4000],
        "stamps never go back"
    );
    let window = |start: Option<i64>, end: Option<i64>| {
        let mut q = all(10);
        q.start = start;
        q.end = end;
        async move { bodies(&storage.archive_query("dana", h, &q).await.unwrap().unwrap()) }
    };
    assert_eq!(
        window(Some(2000), None).await,
        ["m1", "m2", "m3", "m4", "m5"]
    );
    assert_eq!(window(None, Some(1999)).await, ["m0"]);
    assert_eq!(window(Some(2001), Some(3000)).await, ["m3", "m4"]);
    assert_eq!(
        window(None, Some(3000)).await,
        ["m0", "m1", "m2", "m3", "m4"]
    );
    assert_eq!(window(Some(3001), None).await, ["m5"]);
    // Outside the archive's times: empty, and complete.
    assert!(window(Some(9000), None).await.is_empty());
    assert!(window(None, Some(10)).await.is_empty());
    let mut past = all(10);
    past.end = Some(10);
    let page = storage
        .archive_query("dana", h, &past)
        .await
        .unwrap()
        .unwrap();
    assert!(page.complete && page.items.is_empty());
    // RSM paging inside a window stays inside it.
    let mut q = all(2);
    q.start = Some(2000);
    q.end = Some(3000);
    let p1 = storage.archive_query("dana", h, &q).await.unwrap().unwrap();
    assert_eq!(bodies(&p1), ["m1", "m2"]);
    q.page = Page::After(p1.items[1].id.clone());
    let p2 = storage.archive_query("dana", h, &q).await.unwrap().unwrap();
    assert_eq!(bodies(&p2), ["m3", "m4"]);
    assert!(p2.complete);
}
