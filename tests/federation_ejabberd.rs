//! Federation with a second real peer: Debian's ejabberd 23.01 serving `ejabberd.example` on
//! loopback, Parley serving `parley.example`, each finding the other through SRV records on
//! the test's DNS server (dnsmasq). ejabberd requires TLS between servers and holds a
//! self-signed certificate, as does Parley: both sides authenticate with dialback
//! (XEP-0220, ejabberd's `mod_s2s_dialback`). Messages, presence subscriptions both ways
//! with the rosters they leave, and iq across the two servers — the same rules as with
//! Prosody (`tests/federation_prosody.rs`), against another implementation.

use std::net::SocketAddr;

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::im::{chat, next_id};
use parley_testkit::{free_port, Client, ClientError, DnsRecord, Dnsmasq, Ejabberd, TestServer};
use parley_xml::Element;

const PARLEY: &str = "parley.example";
const EJABBERD: &str = "ejabberd.example";

struct World {
    parley: TestServer,
    ejabberd: Ejabberd,
    _dns: Dnsmasq,
}

fn world() -> World {
    let (parley_s2s, ejabberd_s2s) = (free_port(), free_port());
    // ejabberd asks the DNS server for SRV records only: it resolves their targets with
    // the system's resolver (getaddrinfo), which knows nothing of the test's server, so
    // Parley's record names `localhost`.
    let records = vec![
        DnsRecord::Srv {
            name: format!("_xmpp-server._tcp.{PARLEY}"),
            target: Some(("localhost".into(), parley_s2s)),
            priority: 0,
            weight: 0,
        },
        DnsRecord::Srv {
            name: format!("_xmpp-server._tcp.{EJABBERD}"),
            target: Some((EJABBERD.into(), ejabberd_s2s)),
            priority: 0,
            weight: 0,
        },
        DnsRecord::A {
            name: EJABBERD.into(),
            ip: [127, 0, 0, 1].into(),
        },
    ];
    let dns = Dnsmasq::start_zone("example", &records);
    let ejabberd = Ejabberd::start_on(EJABBERD, dns.addr, &[("pat", "pw")], ejabberd_s2s);
    let dns_addr = dns.addr;
    let parley = TestServer::start(move |c| {
        c.server.hosts = vec![PARLEY.into()];
        c.s2s.listen = vec![SocketAddr::from(([127, 0, 0, 1], parley_s2s))];
        c.s2s.name_servers = vec![dns_addr];
    });
    parley.add_user_at("dave", PARLEY, "password");
    World {
        parley,
        ejabberd,
        _dns: dns,
    }
}

fn ok<T>(r: Result<T, ClientError>, ejabberd: &Ejabberd) -> T {
    r.unwrap_or_else(|e| panic!("{e}\n--- ejabberd ---\n{}", tail(&ejabberd.log())))
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Pat's client on ejabberd (plain TCP; PLAIN, which ejabberd offers without TLS when TLS
/// is not required).
async fn pat(ejabberd: &Ejabberd) -> Client {
    let mut c = Client::connect(ejabberd.c2s).await;
    c.host = EJABBERD.into();
    ok(c.open().await, ejabberd);
    ok(c.auth(Mechanism::Plain, "pat", "pw").await, ejabberd);
    ok(c.open().await, ejabberd);
    c.bind(Some("desk")).await.expect("bind on ejabberd");
    c
}

async fn dave(w: &World) -> Client {
    Client::login_at(w.parley.c2s(), PARLEY, "dave", Some("laptop")).await
}

/// RFC 6120 §10.4 with ejabberd: a message from Parley reaches ejabberd's user (Parley
/// dials ejabberd through its SRV record, STARTTLS, dialback; ejabberd checks the key by
/// dialing back through Parley's SRV record), and the answer comes back the other way, over
/// the stream ejabberd opens to Parley.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_10_4_parley_and_ejabberd_exchange_messages() {
    let w = world();
    let e = &w.ejabberd;
    let mut dave = dave(&w).await;
    dave.available().await;
    let mut pat = pat(e).await;
    pat.available().await;

    dave.send(&chat("pat@ejabberd.example", "chat", "hello ejabberd"))
        .await;
    let got = ok(pat.expect_message_body("hello ejabberd").await, e);
    assert_eq!(got.attr("from"), Some("dave@parley.example/laptop"));

    pat.send(&chat("dave@parley.example/laptop", "chat", "hello parley"))
        .await;
    let back = ok(dave.expect_message_body("hello parley").await, e);
    assert_eq!(back.attr("from"), Some("pat@ejabberd.example/desk"));
}

/// RFC 6121 §3.1 with ejabberd, both directions: each side's request reaches the other,
/// each approval comes back, and both rosters end with `both`; presence then flows both
/// ways (§4.2 initial presence and probes across the two servers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_3_1_subscriptions_with_ejabberd_both_ways() {
    let w = world();
    let e = &w.ejabberd;
    let mut dave = dave(&w).await;
    ok(dave.roster().await, e);
    dave.available().await;
    let mut pat = pat(e).await;
    ok(pat.roster().await, e);
    pat.available().await;

    dave.subscribe("pat@ejabberd.example").await;
    ok(
        pat.expect_presence_from("dave@parley.example", "subscribe")
            .await,
        e,
    );
    pat.approve("dave@parley.example").await;
    ok(pat.expect_roster_push("dave@parley.example").await, e);
    ok(
        dave.expect_presence_from("pat@ejabberd.example/desk", "available")
            .await,
        e,
    );

    pat.subscribe("dave@parley.example").await;
    ok(
        dave.expect_presence_from("pat@ejabberd.example", "subscribe")
            .await,
        e,
    );
    dave.approve("pat@ejabberd.example").await;
    ok(
        pat.expect_presence_from("dave@parley.example/laptop", "available")
            .await,
        e,
    );

    let roster = ok(dave.roster().await, e);
    assert_eq!(
        roster.item("pat@ejabberd.example").unwrap().subscription,
        "both"
    );
    let roster = ok(pat.roster().await, e);
    assert_eq!(
        roster.item("dave@parley.example").unwrap().subscription,
        "both"
    );

    // RFC 6121 §4.5: dave goes offline; ejabberd's user sees it.
    dave.send(&Element::new("presence", ns::CLIENT).with_attr("type", "unavailable"))
        .await;
    ok(
        pat.expect_presence_from("dave@parley.example/laptop", "unavailable")
            .await,
        e,
    );
}

/// XEP-0199 with ejabberd: each server answers a ping from the other's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0199_pings_cross_between_parley_and_ejabberd() {
    let w = world();
    let e = &w.ejabberd;
    let mut dave = dave(&w).await;
    let mut pat = pat(e).await;
    for (client, to) in [(&mut dave, EJABBERD), (&mut pat, PARLEY)] {
        let id = next_id("ping");
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.as_str())
            .with_attr("to", to)
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        let reply = ok(client.iq(&ping).await, e);
        assert_eq!(
            reply.attr("type"),
            Some("result"),
            "{reply}\n{}",
            tail(&e.log())
        );
        assert_eq!(reply.attr("from"), Some(to));
    }
}

/// The cluster rules with ejabberd: a 3-node Parley cluster serving
/// `parley.example` (ejabberd may dial any node: Parley's SRV records name all three)
/// federates with ejabberd. Users on every node exchange messages with ejabberd's user, and
/// the stanzas to `ejabberd.example` all leave through one node's stream, the owner by
/// rendezvous placement: the others forward them over the node links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_a_three_node_cluster_federates_with_ejabberd_through_one_owner() {
    use parley_testkit::cluster::{add_users_at, wait_members, ClusterNode, Extra};
    let db = parley_testkit::shared_pg().database();
    let users = ["dave", "erin", "fay"];
    add_users_at(&db, PARLEY, &users);
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("s2s");
    let ejabberd_s2s = free_port();
    let extra = Extra {
        hosts: vec![PARLEY.into()],
        s2s: Some(format!(
            "routes = {{ \"{EJABBERD}\" = \"127.0.0.1:{ejabberd_s2s}\" }}"
        )),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=3)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 3);
    // As in `world`: ejabberd resolves SRV targets with getaddrinfo, so they name localhost.
    let records: Vec<DnsRecord> = nodes
        .iter()
        .map(|n| DnsRecord::Srv {
            name: format!("_xmpp-server._tcp.{PARLEY}"),
            target: Some(("localhost".into(), n.s2s.port())),
            priority: 0,
            weight: 10,
        })
        .collect();
    let dns = Dnsmasq::start_zone("example", &records);
    let ejabberd = Ejabberd::start_on(EJABBERD, dns.addr, &[("pat", "pw")], ejabberd_s2s);
    let e = &ejabberd;
    let mut pat = pat(e).await;
    pat.available().await;

    let mut clients = Vec::new();
    for (node, user) in nodes.iter().zip(users) {
        let mut c = Client::login_at(node.c2s, PARLEY, user, Some("laptop")).await;
        c.available().await;
        c.send(&chat(
            "pat@ejabberd.example",
            "chat",
            &format!("from {user}"),
        ))
        .await;
        clients.push(c);
    }
    for user in users {
        let got = ok(pat.expect_message_body(&format!("from {user}")).await, e);
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
        ok(c.expect_message_body(&format!("to {user}")).await, e);
    }

    // One node carried every stanza to ejabberd.example (dialback checks may open a stream
    // of a node's own, which carries no stanza).
    let carriers: Vec<String> = nodes
        .iter()
        .filter(|n| {
            let (_, text) = n.api("/api/v1/sessions");
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            json["sessions"].as_array().unwrap().iter().any(|r| {
                r["type"] == "s2s"
                    && r["direction"] == "out"
                    && r["to_host"] == EJABBERD
                    && r["node"] == n.id.as_str()
                    && r["stanzas_out"].as_u64() > Some(0)
            })
        })
        .map(|n| n.id.clone())
        .collect();
    assert_eq!(carriers.len(), 1, "streams carrying stanzas: {carriers:?}");
}
