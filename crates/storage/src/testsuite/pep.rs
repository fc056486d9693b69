//! Suite checks for personal eventing (XEP-0163) and the capabilities cache (XEP-0115).

use parley_proto::pubsub::{AccessModel, NodeConfig};

use super::*;
use crate::PepItemRow;

fn row(id: &str, payload: &str) -> PepItemRow {
    PepItemRow {
        id: id.to_owned(),
        stamp_ms: 1,
        payload: format!("<p xmlns='x'>{payload}</p>"),
    }
}

fn payloads(rows: &[PepItemRow]) -> Vec<String> {
    rows.iter().map(|r| r.payload.clone()).collect()
}

/// XEP-0060 §7.1 (auto-create), §7.2, §8.2, §8.4, §8.5: nodes are created by the first
/// publish with its configuration, keep their newest `max_items` (a republished id becomes
/// the newest), are bounded per account, reconfigured, retracted, purged and deleted; the
/// data goes with the account.
pub(super) async fn xep0163_nodes_items_and_bounds(storage: &dyn Storage, run: &Run) {
    let host = run.host("pep");
    let mut config = NodeConfig::pep_default();
    config.max_items = 2;
    assert!(storage
        .pep_node("alice", &host, "n")
        .await
        .unwrap()
        .is_none());
    for id in ["a", "b", "c"] {
        assert!(storage
            .pep_publish("alice", &host, "n", &config, &row(id, id), 2)
            .await
            .unwrap());
    }
    let items = storage
        .pep_items("alice", &host, "n", None, &[])
        .await
        .unwrap();
    assert_eq!(
        payloads(&items),
        [row("b", "b").payload, row("c", "c").payload]
    );
    // Republishing `b` makes it the newest.
    storage
        .pep_publish("alice", &host, "n", &config, &row("b", "b2"), 2)
        .await
        .unwrap();
    let items = storage
        .pep_items("alice", &host, "n", Some(1), &[])
        .await
        .unwrap();
    assert_eq!(items[0].id, "b");
    assert_eq!(items[0].payload, row("b", "b2").payload);
    let named = storage
        .pep_items("alice", &host, "n", None, &["c".into(), "zz".into()])
        .await
        .unwrap();
    assert_eq!(named.len(), 1);
    // The publish's own configuration does not replace an existing node's.
    let mut open = NodeConfig::pep_default();
    open.access = AccessModel::Open;
    storage
        .pep_publish("alice", &host, "n", &open, &row("d", "d"), 2)
        .await
        .unwrap();
    assert_eq!(
        storage.pep_node("alice", &host, "n").await.unwrap(),
        Some(config.clone())
    );
    // Bounded nodes per account.
    assert!(storage
        .pep_publish("alice", &host, "m", &open, &row("x", "x"), 2)
        .await
        .unwrap());
    assert!(!storage
        .pep_publish("alice", &host, "o", &open, &row("x", "x"), 2)
        .await
        .unwrap());
    assert!(!storage
        .pep_configure("alice", &host, "o", &open, 2)
        .await
        .unwrap());
    let nodes = storage.pep_nodes("alice", &host).await.unwrap();
    assert_eq!(
        nodes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["m", "n"]
    );
    // Reconfiguring to one item trims at once.
    let mut one = config.clone();
    one.max_items = 1;
    assert!(storage
        .pep_configure("alice", &host, "n", &one, 2)
        .await
        .unwrap());
    assert_eq!(
        storage
            .pep_items("alice", &host, "n", None, &[])
            .await
            .unwrap()
            .len(),
        1
    );
    // Items that do not persist: only the last is kept.
    let mut transient = NodeConfig::pep_default();
    transient.persist_items = false;
    transient.max_items = 10;
    storage
        .pep_configure("alice", &host, "m", &transient, 2)
        .await
        .unwrap();
    storage
        .pep_publish("alice", &host, "m", &transient, &row("y", "y"), 2)
        .await
        .unwrap();
    assert_eq!(
        storage
            .pep_items("alice", &host, "m", None, &[])
            .await
            .unwrap()
            .len(),
        1
    );
    // Retract, purge, delete.
    assert_eq!(
        storage
            .pep_retract("alice", &host, "m", &["y".into(), "nope".into()])
            .await
            .unwrap(),
        ["y"]
    );
    assert!(storage.pep_purge("alice", &host, "n").await.unwrap());
    assert!(storage
        .pep_items("alice", &host, "n", None, &[])
        .await
        .unwrap()
        .is_empty());
    assert!(storage.pep_delete("alice", &host, "n").await.unwrap());
    assert!(!storage.pep_delete("alice", &host, "n").await.unwrap());
    // Per account, and gone with it.
    assert!(storage.pep_nodes("bob", &host).await.unwrap().is_empty());
    storage.create_account("alice", &host, &[]).await.unwrap();
    storage.delete_account("alice", &host).await.unwrap();
    assert!(storage.pep_nodes("alice", &host).await.unwrap().is_empty());
}

/// XEP-0115 §5.4: a verified hash's features are cached once, for every node.
pub(super) async fn xep0115_caps_cache(storage: &dyn Storage, run: &Run) {
    let ver = format!("{}=", run.tag);
    assert_eq!(storage.caps_get(&ver).await.unwrap(), None);
    let features = vec![
        "urn:xmpp:avatar:metadata+notify".to_owned(),
        "jabber:iq:version".to_owned(),
    ];
    storage.caps_put(&ver, &features).await.unwrap();
    storage.caps_put(&ver, &["other".to_owned()]).await.unwrap();
    assert_eq!(storage.caps_get(&ver).await.unwrap(), Some(features));
}
