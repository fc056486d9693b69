//! Suite checks for invitations to register (XEP-0401 / XEP-0445).

use super::*;
use crate::InviteRecord;

/// XEP-0445 §3: an invitation allows as many registrations as it was issued for, on its
/// host, until it expires; a use taken for a registration that failed can be given back;
/// revoked, it allows nothing; spent and expired ones go when the next is issued.
pub(super) async fn xep0445_invites_are_counted_bounded_in_time_and_revocable(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("invites");
    let other = run.host("elsewhere");
    let invite = |id: &str, expires_ms: i64, uses: u32| InviteRecord {
        id: format!("{id}-{}", run.tag),
        host: host.clone(),
        secret_hash: format!("hash-{id}-{}", run.tag),
        created_ms: 1_000,
        expires_ms,
        uses_left: uses,
    };
    let twice = invite("twice", 10_000, 2);
    storage.invite_put(&twice).await.unwrap();
    let h = twice.secret_hash.as_str();
    assert_eq!(
        storage.invite_get(h, &host, 5_000).await.unwrap(),
        Some(twice.clone())
    );
    assert_eq!(
        storage.invite_get(h, &other, 5_000).await.unwrap(),
        None,
        "another host"
    );
    assert_eq!(
        storage.invite_get(h, &host, 10_000).await.unwrap(),
        None,
        "expired"
    );
    assert!(!storage.invite_take(h, &other, 5_000).await.unwrap());
    assert!(!storage.invite_take(h, &host, 10_000).await.unwrap());
    assert!(storage.invite_take(h, &host, 5_000).await.unwrap());
    assert!(storage.invite_take(h, &host, 5_000).await.unwrap());
    assert!(
        !storage.invite_take(h, &host, 5_000).await.unwrap(),
        "spent"
    );
    assert_eq!(storage.invite_get(h, &host, 5_000).await.unwrap(), None);
    // A registration that failed gives its use back.
    storage.invite_give_back(h).await.unwrap();
    assert!(storage.invite_take(h, &host, 5_000).await.unwrap());
    assert!(!storage
        .invite_take("no-such-hash", &host, 5_000)
        .await
        .unwrap());

    let revoked = invite("revoked", 10_000, 5);
    storage.invite_put(&revoked).await.unwrap();
    assert!(storage.invite_revoke(&revoked.id).await.unwrap());
    assert!(!storage.invite_revoke(&revoked.id).await.unwrap());
    assert!(!storage
        .invite_take(&revoked.secret_hash, &host, 5_000)
        .await
        .unwrap());

    // Issuing prunes: the spent one goes, a live one stays.
    let mut live = invite("live", 50_000, 1);
    live.created_ms = 20_000;
    storage.invite_put(&live).await.unwrap();
    let ids: Vec<String> = storage
        .invites()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.host == host)
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [live.id.clone()]);
}

/// XEP-0077 open registration's per-address count: `max` per window, a new window once the
/// old one is over, a count given back for a registration that did not happen, and no
/// new address past `max_tracked` (a known one still counts).
pub(super) async fn signup_counts_are_windowed_bounded_and_given_back(
    storage: &dyn Storage,
    run: &Run,
) {
    let a = format!("4:{}-a", run.tag);
    let b = format!("4:{}-b", run.tag);
    let period = 1_000;
    // Every run of the suite has a fresh database, so the table holds only this check's rows.
    let t0 = 1_000_000_i64;
    assert!(storage.signup_take(&a, t0, period, 2, 100).await.unwrap());
    assert!(storage
        .signup_take(&a, t0 + 10, period, 2, 100)
        .await
        .unwrap());
    assert!(
        !storage
            .signup_take(&a, t0 + 20, period, 2, 100)
            .await
            .unwrap(),
        "at its limit"
    );
    storage.signup_give_back(&a).await.unwrap();
    assert!(
        storage
            .signup_take(&a, t0 + 30, period, 2, 100)
            .await
            .unwrap(),
        "given back"
    );
    assert!(!storage
        .signup_take(&a, t0 + 40, period, 2, 100)
        .await
        .unwrap());
    // A new window once the first is over.
    assert!(storage
        .signup_take(&a, t0 + period + 1, period, 2, 100)
        .await
        .unwrap());
    // A full table refuses a new address, not a known one.
    assert!(!storage
        .signup_take(&b, t0 + period + 2, period, 2, 1)
        .await
        .unwrap());
    assert!(storage
        .signup_take(&a, t0 + period + 3, period, 2, 1)
        .await
        .unwrap());
    assert!(storage
        .signup_take(&b, t0 + period + 4, period, 2, 2)
        .await
        .unwrap());
}
