//! Federation with a second real peer: Debian's ejabberd 23.01 serving `ejabberd.example` on
//! loopback, Parley serving `parley.example`, each finding the other through SRV records on
//! the test's DNS server (dnsmasq). ejabberd requires TLS between servers and holds a
//! self-signed certificate, as does Parley: both sides authenticate with dialback
//! (XEP-0220, ejabberd's `mod_s2s_dialback`). Messages, presence subscriptions both ways
//! with the rosters they leave, iq across the two servers, and a 3-node cluster — the same
//! exchanges as with Prosody (`tests/federation/common.rs`), against another implementation.

use std::net::SocketAddr;

use parley_proto::ns;
use parley_testkit::{free_port, Client, DnsRecord, Dnsmasq, Ejabberd, TestServer};
use parley_xml::Element;

#[path = "federation/common.rs"]
mod common;
use common::{ok, PARLEY};

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

async fn pat(ejabberd: &Ejabberd) -> Client {
    common::pat(ejabberd.c2s, EJABBERD, &|| ejabberd.log()).await
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
    common::messages_both_ways(&mut dave, &mut pat, EJABBERD, &|| e.log()).await;
}

/// RFC 6121 §3.1 with ejabberd, both directions: each side's request reaches the other,
/// each approval comes back, and both rosters end with `both`; presence then flows both
/// ways (§4.2 initial presence and probes across the two servers), and (§4.5) Dave's going
/// offline reaches Pat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_3_1_subscriptions_with_ejabberd_both_ways() {
    let w = world();
    let e = &w.ejabberd;
    let log = || e.log();
    let mut dave = dave(&w).await;
    ok(dave.roster().await, &log);
    dave.available().await;
    let mut pat = pat(e).await;
    ok(pat.roster().await, &log);
    pat.available().await;
    common::subscriptions_both_ways(&mut dave, &mut pat, EJABBERD, &log).await;

    dave.send(&Element::new("presence", ns::CLIENT).with_attr("type", "unavailable"))
        .await;
    ok(
        pat.expect_presence_from("dave@parley.example/laptop", "unavailable")
            .await,
        &log,
    );
}

/// XEP-0199 with ejabberd: each server answers a ping from the other's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0199_pings_cross_between_parley_and_ejabberd() {
    let w = world();
    let e = &w.ejabberd;
    let mut dave = dave(&w).await;
    let mut pat = pat(e).await;
    common::pings_cross(&mut dave, &mut pat, EJABBERD, &|| e.log()).await;
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
    let log = || ejabberd.log();
    let mut pat = pat(&ejabberd).await;
    pat.available().await;
    common::cluster_exchange(&nodes, &users, &mut pat, EJABBERD, &log).await;
    let carriers = common::carriers(&nodes, EJABBERD);
    assert_eq!(carriers.len(), 1, "streams carrying stanzas: {carriers:?}");
}
