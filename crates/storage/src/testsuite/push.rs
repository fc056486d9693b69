//! Suite checks for push registrations (XEP-0357).

use super::*;
use crate::PushRegistration;

/// XEP-0357 §5-§6: registrations per account, bounded, replaced for the same app server
/// and node, removed per node or per app server.
pub(super) async fn xep0357_registrations_are_bounded_and_removable(
    storage: &dyn Storage,
    run: &Run,
) {
    let host = run.host("push");
    let reg = |jid: &str, node: &str, options: Option<&str>| PushRegistration {
        jid: jid.to_owned(),
        node: node.to_owned(),
        options: options.map(str::to_owned),
    };
    assert!(storage
        .push_registrations("alice", &host)
        .await
        .unwrap()
        .is_empty());
    assert!(storage
        .push_enable("alice", &host, &reg("p.example", "a", None), 2)
        .await
        .unwrap());
    assert!(storage
        .push_enable("alice", &host, &reg("p.example", "b", Some("<x/>")), 2)
        .await
        .unwrap());
    // A third is past the cap; the same one again replaces its options.
    assert!(!storage
        .push_enable("alice", &host, &reg("q.example", "c", None), 2)
        .await
        .unwrap());
    assert!(storage
        .push_enable("alice", &host, &reg("p.example", "a", Some("<y/>")), 2)
        .await
        .unwrap());
    assert_eq!(
        storage.push_registrations("alice", &host).await.unwrap(),
        vec![
            reg("p.example", "a", Some("<y/>")),
            reg("p.example", "b", Some("<x/>"))
        ]
    );
    assert!(storage
        .push_registrations("bob", &host)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        storage
            .push_disable("alice", &host, "p.example", Some("a"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        storage
            .push_disable("alice", &host, "p.example", None)
            .await
            .unwrap(),
        1
    );
    assert!(storage
        .push_registrations("alice", &host)
        .await
        .unwrap()
        .is_empty());
}
