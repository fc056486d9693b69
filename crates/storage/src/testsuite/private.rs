//! Suite checks for private XML storage (XEP-0049).

use super::*;

/// XEP-0049 §2-§3: one element per user and namespace, replaced on a second store, read
/// back as stored (one at a time, or all for an export); per user; at most `max_namespaces` namespaces (a replacement always
/// fits); gone with the account.
pub(super) async fn xep0049_private_storage_is_per_user_bounded_and_goes_with_the_account(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("private");
    storage.create_account("alice", &host, &[]).await.unwrap();
    let prefs = "<prefs xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></prefs>";
    assert_eq!(
        storage
            .private_get("alice", &host, "exodus:prefs")
            .await
            .unwrap(),
        None
    );
    assert!(storage
        .private_set("alice", &host, "exodus:prefs", prefs, 2)
        .await
        .unwrap());
    assert_eq!(
        storage
            .private_get("alice", &host, "exodus:prefs")
            .await
            .unwrap()
            .as_deref(),
        Some(prefs)
    );
    let newer = "<prefs xmlns='exodus:prefs'><defaultnick>Ophelia</defaultnick></prefs>";
    assert!(storage
        .private_set("alice", &host, "exodus:prefs", newer, 2)
        .await
        .unwrap());
    assert_eq!(
        storage
            .private_get("alice", &host, "exodus:prefs")
            .await
            .unwrap()
            .as_deref(),
        Some(newer)
    );
    // Per user.
    assert_eq!(
        storage
            .private_get("bob", &host, "exodus:prefs")
            .await
            .unwrap(),
        None
    );
    // The bound counts namespaces; replacing one never exceeds it.
    assert!(storage
        .private_set(
            "alice",
            &host,
            "storage:bookmarks",
            "<storage xmlns='storage:bookmarks'/>",
            2
        )
        .await
        .unwrap());
    assert!(!storage
        .private_set("alice", &host, "third:ns", "<x xmlns='third:ns'/>", 2)
        .await
        .unwrap());
    assert_eq!(
        storage
            .private_get("alice", &host, "third:ns")
            .await
            .unwrap(),
        None
    );
    assert!(storage
        .private_set("alice", &host, "exodus:prefs", prefs, 2)
        .await
        .unwrap());
    // Everything at once, by namespace (what a XEP-0227 export writes); per user.
    assert_eq!(
        storage.private_all("alice", &host).await.unwrap(),
        [
            ("exodus:prefs".to_owned(), prefs.to_owned()),
            (
                "storage:bookmarks".to_owned(),
                "<storage xmlns='storage:bookmarks'/>".to_owned()
            ),
        ]
    );
    assert!(storage.private_all("bob", &host).await.unwrap().is_empty());
    storage.delete_account("alice", &host).await.unwrap();
    assert!(storage
        .private_all("alice", &host)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        storage
            .private_get("alice", &host, "exodus:prefs")
            .await
            .unwrap(),
        None
    );
}
