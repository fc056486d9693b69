//! What the federation tests against real peers (Prosody in `federation_prosody.rs`, ejabberd
//! in `federation_ejabberd.rs`) run alike, written once: Dave is on Parley
//! (`parley.example`), Pat on the peer; each exchange takes the peer's domain, and its log for
//! failure messages.

use std::net::SocketAddr;

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::cluster::ClusterNode;
use parley_testkit::im::{chat, next_id};
use parley_testkit::{Client, ClientError};
use parley_xml::Element;

/// Parley's domain in these tests.
pub const PARLEY: &str = "parley.example";

/// The peer's log, read when a step fails.
pub type Log<'a> = &'a dyn Fn() -> String;

/// Unwraps, or fails with the end of the peer's log.
pub fn ok<T>(r: Result<T, ClientError>, log: Log) -> T {
    r.unwrap_or_else(|e| {
        let log = log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        panic!("{e}\n--- peer log ---\n{tail}")
    })
}

/// Pat's client on the peer at `c2s`, serving `domain`: plain TCP and PLAIN, which both
/// peers allow here for test clients.
pub async fn pat(c2s: SocketAddr, domain: &str, log: Log<'_>) -> Client {
    let mut c = Client::connect(c2s).await;
    c.host = domain.into();
    ok(c.open().await, log);
    ok(c.auth(Mechanism::Plain, "pat", "pw").await, log);
    ok(c.open().await, log);
    c.bind(Some("desk")).await.expect("bind on the peer");
    c
}

/// RFC 6120 §10.4: a message from Dave reaches Pat and the answer comes back.
pub async fn messages_both_ways(dave: &mut Client, pat: &mut Client, peer: &str, log: Log<'_>) {
    dave.send(&chat(&format!("pat@{peer}"), "chat", "hello peer"))
        .await;
    let got = ok(pat.expect_message_body("hello peer").await, log);
    assert_eq!(got.attr("from"), Some("dave@parley.example/laptop"));

    pat.send(&chat("dave@parley.example/laptop", "chat", "hello parley"))
        .await;
    let back = ok(dave.expect_message_body("hello parley").await, log);
    assert_eq!(
        back.attr("from").map(str::to_owned),
        Some(format!("pat@{peer}/desk"))
    );
}

/// RFC 6121 §3.1 both ways: each side's request reaches the other, each approval comes
/// back, both rosters end with `both`, and presence flows after each approval. Both clients
/// have fetched their rosters and are available.
pub async fn subscriptions_both_ways(
    dave: &mut Client,
    pat: &mut Client,
    peer: &str,
    log: Log<'_>,
) {
    let pat_bare = format!("pat@{peer}");
    dave.subscribe(&pat_bare).await;
    ok(
        pat.expect_presence_from("dave@parley.example", "subscribe")
            .await,
        log,
    );
    pat.approve("dave@parley.example").await;
    ok(pat.expect_roster_push("dave@parley.example").await, log);
    ok(
        dave.expect_presence_from(&format!("{pat_bare}/desk"), "available")
            .await,
        log,
    );

    pat.subscribe("dave@parley.example").await;
    ok(dave.expect_presence_from(&pat_bare, "subscribe").await, log);
    dave.approve(&pat_bare).await;
    ok(
        pat.expect_presence_from("dave@parley.example/laptop", "available")
            .await,
        log,
    );

    let roster = ok(dave.roster().await, log);
    assert_eq!(roster.item(&pat_bare).unwrap().subscription, "both");
    let roster = ok(pat.roster().await, log);
    assert_eq!(
        roster.item("dave@parley.example").unwrap().subscription,
        "both"
    );
}

/// XEP-0199: each server answers a ping from the other's user.
pub async fn pings_cross(dave: &mut Client, pat: &mut Client, peer: &str, log: Log<'_>) {
    for (client, to) in [(dave, peer), (pat, PARLEY)] {
        let id = next_id("ping");
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.as_str())
            .with_attr("to", to)
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        let reply = ok(client.iq(&ping).await, log);
        assert_eq!(reply.attr("type"), Some("result"), "{reply}");
        assert_eq!(reply.attr("from"), Some(to));
    }
}

/// A 3-node cluster's users (one per node, in `users` order) each send Pat a message and
/// get Pat's answer; their clients, still available, are returned.
pub async fn cluster_exchange(
    nodes: &[ClusterNode],
    users: &[&str],
    pat: &mut Client,
    peer: &str,
    log: Log<'_>,
) -> Vec<Client> {
    let mut clients = Vec::new();
    for (node, user) in nodes.iter().zip(users) {
        let mut c = Client::login_at(node.c2s, PARLEY, user, Some("laptop")).await;
        c.available().await;
        c.send(&chat(
            &format!("pat@{peer}"),
            "chat",
            &format!("from {user}"),
        ))
        .await;
        clients.push(c);
    }
    for user in users {
        let got = ok(pat.expect_message_body(&format!("from {user}")).await, log);
        assert_eq!(
            got.attr("from").map(str::to_owned),
            Some(format!("{user}@{PARLEY}/laptop"))
        );
    }
    for (c, user) in clients.iter_mut().zip(users) {
        pat.send(&chat(
            &format!("{user}@{PARLEY}/laptop"),
            "chat",
            &format!("to {user}"),
        ))
        .await;
        ok(c.expect_message_body(&format!("to {user}")).await, log);
    }
    clients
}

/// The nodes whose own outgoing stream to `peer` carried stanzas (dialback checks may open
/// a stream of a node's own, which carries none).
pub fn carriers(nodes: &[ClusterNode], peer: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| {
            let (_, text) = n.api("/api/v1/sessions");
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            json["sessions"].as_array().unwrap().iter().any(|r| {
                r["type"] == "s2s"
                    && r["direction"] == "out"
                    && r["to_host"] == peer
                    && r["node"] == n.id.as_str()
                    && r["stanzas_out"].as_u64() > Some(0)
            })
        })
        .map(|n| n.id.clone())
        .collect()
}
