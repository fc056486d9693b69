//! Suite checks for uploaded files (XEP-0363).

use super::*;
use crate::{UploadAdded, UploadQuota, UploadRecord};

const QUOTA: UploadQuota = UploadQuota {
    bytes: 1_000,
    files: 3,
};

/// XEP-0363 §5: files count against their owner's quota until they expire; an id is
/// recorded once; expiry hands back the ids whose bytes must go.
pub(super) async fn xep0363_uploads_are_quota_bound_and_expire(storage: &dyn Storage, run: &Run) {
    let host = run.host("uploads");
    let file = |id: &str, owner: &str, size: u64, expires_ms: i64| UploadRecord {
        id: format!("{id}{}", run.tag),
        username: owner.to_owned(),
        host: host.clone(),
        filename: format!("{id}.png"),
        content_type: "image/png".to_owned(),
        size,
        created_ms: 1_000,
        expires_ms,
    };
    let a = file("a", "alice", 600, 10_000);
    assert_eq!(
        storage.upload_add(&a, QUOTA).await.unwrap(),
        UploadAdded::Added
    );
    assert_eq!(storage.upload_get(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(storage.upload_get("absent").await.unwrap(), None);
    // 600 + 500 passes 1000; nothing is stored.
    let b = file("b", "alice", 500, 10_000);
    assert_eq!(
        storage.upload_add(&b, QUOTA).await.unwrap(),
        UploadAdded::OverQuota
    );
    assert_eq!(storage.upload_get(&b.id).await.unwrap(), None);
    // Another owner has a quota of its own.
    let c = file("c", "bob", 500, 10_000);
    assert_eq!(
        storage.upload_add(&c, QUOTA).await.unwrap(),
        UploadAdded::Added
    );
    // The same id twice: the first stays.
    let again = UploadRecord {
        size: 1,
        ..a.clone()
    };
    assert_eq!(
        storage.upload_add(&again, QUOTA).await.unwrap(),
        UploadAdded::Exists
    );
    assert_eq!(storage.upload_get(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        storage.upload_usage("alice", &host, 5_000).await.unwrap(),
        (600, 1)
    );
    // Once `a` has expired it no longer counts.
    assert_eq!(
        storage.upload_usage("alice", &host, 10_000).await.unwrap(),
        (0, 0)
    );
    let late = UploadRecord {
        created_ms: 10_000,
        expires_ms: 20_000,
        ..b.clone()
    };
    assert_eq!(
        storage.upload_add(&late, QUOTA).await.unwrap(),
        UploadAdded::Added
    );

    // At most three files at once, however small.
    for n in 0..3 {
        let small = UploadRecord {
            id: format!("small{n}{}", run.tag),
            username: "carol".into(),
            size: 1,
            ..c.clone()
        };
        assert_eq!(
            storage.upload_add(&small, QUOTA).await.unwrap(),
            UploadAdded::Added
        );
    }
    let fourth = UploadRecord {
        id: format!("small3{}", run.tag),
        username: "carol".into(),
        size: 1,
        ..c.clone()
    };
    assert_eq!(
        storage.upload_add(&fourth, QUOTA).await.unwrap(),
        UploadAdded::OverQuota
    );

    let expired = storage.upload_expire(15_000, 1_000_000).await.unwrap();
    assert!(
        expired.contains(&a.id) && expired.contains(&c.id),
        "{expired:?}"
    );
    assert!(!expired.contains(&late.id));
    assert_eq!(storage.upload_get(&a.id).await.unwrap(), None);
}
