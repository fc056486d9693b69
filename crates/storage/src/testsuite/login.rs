//! Suite checks for a login's reads: the credentials and the user's state read in one call.

use parley_proto::pubsub::NodeConfig;

use super::*;
use crate::{PepItemRow, UserState};

/// `user_state` reads what the single reads do, from one snapshot: the account, the
/// versioned roster with its groups (RFC 6121 §2), pending subscription requests
/// (RFC 6121 §3.1.3), the offline count (XEP-0160), the blocklist (XEP-0191) and the newest
/// avatar metadata item (XEP-0084 §4.2); for a user with nothing stored, all empty.
pub(super) async fn user_state_reads_what_the_single_reads_do(storage: &dyn Storage, run: &Run) {
    let host = run.host("login");
    assert_eq!(
        storage.user_state("nobody", &host).await.unwrap(),
        UserState::default()
    );

    storage
        .create_account(
            "alice",
            &host,
            &[fake_credentials(ScramHash::Sha1, "alice")],
        )
        .await
        .unwrap();
    put(
        storage,
        "alice",
        &host,
        &item("b@x", Subscription::Both, &["g2", "g1"]),
    )
    .await;
    put(storage, "alice", &host, &item("a@x", Subscription::To, &[])).await;
    storage
        .pending_in_put("alice", &host, "c@x", "<presence type='subscribe'/>")
        .await
        .unwrap();
    storage
        .offline_push("alice", &host, &offline_message(1, "hi"), 10, 1 << 20)
        .await
        .unwrap();
    storage
        .blocklist_add("alice", &host, &["z@x".to_owned(), "y@x".to_owned()])
        .await
        .unwrap();
    let node = parley_proto::avatar::METADATA_NODE;
    for id in ["old", "new"] {
        let row = PepItemRow {
            id: id.to_owned(),
            stamp_ms: 1,
            payload: format!("<metadata xmlns='{node}'><info id='{id}'/></metadata>"),
        };
        storage
            .pep_publish("alice", &host, node, &NodeConfig::pep_default(), &row, 10)
            .await
            .unwrap();
    }
    // Another user's data stays out.
    storage
        .blocklist_add("bob", &host, &["w@x".to_owned()])
        .await
        .unwrap();

    let state = storage.user_state("alice", &host).await.unwrap();
    assert_eq!(
        state.account,
        storage.account("alice", &host).await.unwrap()
    );
    assert!(state.account.is_some());
    assert_eq!(state.roster, storage.roster("alice", &host).await.unwrap());
    assert_eq!(state.roster.version, 2);
    assert_eq!(state.roster.items[1].groups, ["g2", "g1"]);
    assert_eq!(
        state.pending_in,
        storage.pending_in("alice", &host).await.unwrap()
    );
    assert_eq!(state.pending_in.len(), 1);
    assert_eq!(state.offline_count, 1);
    assert_eq!(state.blocklist, ["y@x", "z@x"]);
    assert_eq!(
        state.avatar_metadata.map(|r| r.id).as_deref(),
        Some("new"),
        "the newest metadata item"
    );

    // The credentials read (also on the login path) sees a change at once.
    let before = storage
        .credentials("alice", &host, ScramHash::Sha1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, fake_credentials(ScramHash::Sha1, "alice"));
    storage
        .set_credentials(
            "alice",
            &host,
            &[fake_credentials(ScramHash::Sha1, "changed")],
        )
        .await
        .unwrap();
    assert_eq!(
        storage
            .credentials("alice", &host, ScramHash::Sha1)
            .await
            .unwrap(),
        Some(fake_credentials(ScramHash::Sha1, "changed"))
    );
    assert_eq!(
        storage
            .credentials("alice", &host, ScramHash::Sha256)
            .await
            .unwrap(),
        None
    );
}
