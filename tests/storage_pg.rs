//! The whole server on PostgreSQL storage (the cluster issue: nodes share one database):
//! accounts, SCRAM logins, rosters, subscriptions and offline messages work exactly as on
//! SQLite, against a real PostgreSQL started by the test kit.

use parley_testkit::im::{chat, roster_item};
use parley_testkit::{shared_pg, Client, TestServer};

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server.c2s(), user, Some(resource)).await
}

/// RFC 6121 §2 (roster), §3.1 (subscription), XEP-0160 (offline) on PostgreSQL, and the data
/// outliving a restart of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_roster_subscription_and_offline_on_postgresql() {
    let url = shared_pg().database();
    let server = TestServer::start(|c| c.storage.url = Some(url.clone()));

    let mut alice = login(&server, "alice", "a").await;
    alice.roster().await.expect("roster");
    let reply = alice
        .roster_set(roster_item("bob@localhost", Some("Bob"), &["Friends"]))
        .await
        .expect("roster set");
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    alice.available().await;

    // Bob is offline: the request is kept and so is a chat message.
    alice.subscribe("bob@localhost").await;
    alice
        .send(&chat("bob@localhost", "chat", "stored on postgres"))
        .await;
    // The ping's answer proves the session has handed both stanzas on (it handles its input
    // in order); the writes they cause are finished by the shutdown's drain, no waiting.
    alice.sync().await.expect("ping");
    let server = server.restart();
    let mut bob = login(&server, "bob", "b").await;
    bob.roster().await.expect("roster");
    bob.available().await;
    bob.expect_presence_from("alice@localhost", "subscribe")
        .await
        .expect("the pending request, after a restart");
    let msg = bob
        .expect_message_body("stored on postgres")
        .await
        .expect("the offline message, after a restart");
    assert!(msg.has_child("delay", "urn:xmpp:delay"), "{msg}");

    let mut alice = login(&server, "alice", "a2").await;
    let roster = alice.roster().await.expect("roster after restart");
    let bob_item = roster
        .items
        .iter()
        .find(|i| i.jid == "bob@localhost")
        .expect("bob is still in alice's roster");
    assert_eq!(bob_item.name.as_deref(), Some("Bob"));
    assert_eq!(bob_item.groups, vec!["Friends".to_owned()]);
    assert_eq!(bob_item.ask.as_deref(), Some("subscribe"));
}
