//! Federation with a real peer: Debian's Prosody 0.12 serving `prosody.example` on
//! loopback, Parley serving `parley.example`, each finding the other through SRV records
//! on the test's DNS server (dnsmasq). Prosody requires TLS between servers and holds a
//! self-signed certificate, as does Parley: both sides authenticate with dialback
//! (XEP-0220). Messages, presence subscriptions both ways with the rosters they leave, and
//! iq across the two servers.

use std::net::SocketAddr;

use parley_testkit::{free_port, Client, DnsRecord, Dnsmasq, Prosody, TestServer};

#[path = "federation/common.rs"]
mod common;
use common::{ok, PARLEY};

const PROSODY: &str = "prosody.example";

struct World {
    parley: TestServer,
    prosody: Prosody,
    _dns: Dnsmasq,
}

fn world() -> World {
    let (parley_s2s, prosody_port) = (free_port(), free_port());
    let parley_records = |prosody_port: u16| {
        vec![
            DnsRecord::Srv {
                name: format!("_xmpp-server._tcp.{PARLEY}"),
                target: Some((PARLEY.into(), parley_s2s)),
                priority: 0,
                weight: 0,
            },
            DnsRecord::A {
                name: PARLEY.into(),
                ip: [127, 0, 0, 1].into(),
            },
            DnsRecord::Srv {
                name: format!("_xmpp-server._tcp.{PROSODY}"),
                target: Some((PROSODY.into(), prosody_port)),
                priority: 0,
                weight: 0,
            },
            DnsRecord::A {
                name: PROSODY.into(),
                ip: [127, 0, 0, 1].into(),
            },
        ]
    };
    let dns = Dnsmasq::start_zone("example", &parley_records(prosody_port));
    let prosody = Prosody::start_on(PROSODY, dns.addr, &[("pat", "pw")], prosody_port);
    let dns_addr = dns.addr;
    let parley = TestServer::start(move |c| {
        c.server.hosts = vec![PARLEY.into()];
        c.s2s.listen = vec![SocketAddr::from(([127, 0, 0, 1], parley_s2s))];
        c.s2s.name_servers = vec![dns_addr];
    });
    parley.add_user_at("dave", PARLEY, "password");
    World {
        parley,
        prosody,
        _dns: dns,
    }
}

/// Pat's client on Prosody (plain TCP and PLAIN, which this Prosody allows for tests).
async fn pat(prosody: &Prosody) -> Client {
    common::pat(prosody.c2s, PROSODY, &|| prosody.log()).await
}

async fn dave(w: &World) -> Client {
    Client::login_at(w.parley.c2s(), PARLEY, "dave", Some("laptop")).await
}

/// RFC 6120 §10.4 with a real peer: a message from Parley reaches Prosody's user (Parley
/// dials Prosody through its SRV record, STARTTLS, dialback; Prosody checks the key by
/// dialing back through Parley's SRV record), and the answer comes back the other way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_10_4_parley_and_prosody_exchange_messages() {
    let w = world();
    let p = &w.prosody;
    let mut dave = dave(&w).await;
    dave.available().await;
    let mut pat = pat(p).await;
    pat.available().await;
    common::messages_both_ways(&mut dave, &mut pat, PROSODY, &|| p.log()).await;
}

/// RFC 6121 §3.1 with a real peer, both directions: each side's request reaches the other,
/// each approval comes back, and both rosters end with `both`; presence then flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_3_1_subscriptions_with_prosody_both_ways() {
    let w = world();
    let p = &w.prosody;
    let log = || p.log();
    let mut dave = dave(&w).await;
    ok(dave.roster().await, &log);
    dave.available().await;
    let mut pat = pat(p).await;
    ok(pat.roster().await, &log);
    pat.available().await;
    common::subscriptions_both_ways(&mut dave, &mut pat, PROSODY, &log).await;
}

/// XEP-0199 with a real peer: each server answers a ping from the other's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0199_pings_cross_between_parley_and_prosody() {
    let w = world();
    let p = &w.prosody;
    let mut dave = dave(&w).await;
    let mut pat = pat(p).await;
    common::pings_cross(&mut dave, &mut pat, PROSODY, &|| p.log()).await;
}

/// The cluster rules with a real peer: a 3-node Parley cluster serving
/// `parley.example` (any node accepts Prosody's stream: its SRV records name all three)
/// federates with Prosody. Users on every node exchange messages with Prosody's user, and
/// the stanzas to `prosody.example` all leave through one node's stream, the owner by
/// rendezvous placement: the others forward them over the node links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_a_three_node_cluster_federates_with_prosody_through_one_owner() {
    use parley_testkit::cluster::{add_users_at, wait_members, ClusterNode, Extra};
    let db = parley_testkit::shared_pg().database();
    let users = ["dave", "erin", "fay"];
    add_users_at(&db, PARLEY, &users);
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("s2s");
    let prosody_port = free_port();
    let extra = Extra {
        hosts: vec![PARLEY.into()],
        s2s: Some(format!(
            "routes = {{ \"{PROSODY}\" = \"127.0.0.1:{prosody_port}\" }}"
        )),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=3)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 3);
    let mut records: Vec<DnsRecord> = nodes
        .iter()
        .map(|n| DnsRecord::Srv {
            name: format!("_xmpp-server._tcp.{PARLEY}"),
            target: Some((PARLEY.into(), n.s2s.port())),
            priority: 0,
            weight: 10,
        })
        .collect();
    records.push(DnsRecord::A {
        name: PARLEY.into(),
        ip: [127, 0, 0, 1].into(),
    });
    let dns = Dnsmasq::start_zone("example", &records);
    let prosody = Prosody::start_on(PROSODY, dns.addr, &[("pat", "pw")], prosody_port);
    let p = &prosody;
    let mut pat = pat(p).await;
    pat.available().await;

    let log = || prosody.log();
    let mut clients = common::cluster_exchange(&nodes, &users, &mut pat, PROSODY, &log).await;

    // One node carried every stanza to prosody.example.
    let carriers = common::carriers(&nodes, PROSODY);
    assert_eq!(carriers.len(), 1, "streams carrying stanzas: {carriers:?}");

    // The owner dies: once the membership shows it, the next node in the ranking takes
    // the stream, and every survivor reaches Prosody through it.
    let mut nodes = nodes;
    let owner = nodes.iter().position(|n| n.id == carriers[0]).unwrap();
    nodes[owner].kill();
    let survivors: Vec<ClusterNode> = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != owner)
        .map(|(_, n)| n)
        .collect();
    wait_members(&survivors, 2);
    for (i, c) in clients.iter_mut().enumerate().filter(|(i, _)| *i != owner) {
        let text = format!("after the owner, {i}");
        c.send(&parley_testkit::im::chat(
            "pat@prosody.example",
            "chat",
            &text,
        ))
        .await;
        ok(pat.expect_message_body(&text).await, &log);
    }
}
