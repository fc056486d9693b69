//! Suite checks for authentication tokens and sign-out-everywhere times.

use super::*;

/// Sign-out everywhere: one time per user, kept at the latest, per host, and still there
/// after the account is deleted (a re-created account must not revive old JWTs).
pub(super) async fn signed_out_time_only_moves_forward_and_outlives_the_account(
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
pub(super) async fn tokens_keep_only_a_hash_and_die_with_the_password(
    storage: &dyn Storage,
    run: &Run,
) {
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
