//! External components (XEP-0114) in a cluster, against real processes (two `parley` nodes,
//! a real etcd and PostgreSQL): a component connected to one node serves its domain to
//! users on every node, both ways; its connection is claimed cluster-wide, so a second one
//! for the same domain on another node is refused with `<conflict/>` until the first goes;
//! connections that have not authenticated are listed from any node on request.

use parley_proto::ns;
use parley_testkit::cluster::{add_users, ClusterNode, Extra};
use parley_testkit::component;
use parley_testkit::im::{chat, error_condition};
use parley_testkit::{shared_etcd, shared_pg, Client, Received};
use parley_xml::Element;

const BOT: &str = "bot.localhost";
const SECRET: &str = "cluster-component-secret-0123";

fn ok<T>(r: Result<T, parley_testkit::ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0114_a_component_on_one_node_serves_every_node_and_is_claimed_cluster_wide() {
    let db = shared_pg().database();
    add_users(&db, &["alice"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("comp");
    let extra = Extra {
        component: format!("secrets = {{ \"{BOT}\" = \"{SECRET}\" }}"),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);

    // Connections that have not authenticated are visible cluster-wide, on request.
    let (_unauthed, _) = component::open(nodes[0].component, BOT).await;
    let (_, text) = nodes[1].api("/api/v1/sessions?unbound=true");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed: Vec<(String, String)> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().into(),
                r["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("n1".to_owned(), "component_unauthed".to_owned())],
        "{json}"
    );

    let mut bot = component::connect(nodes[0].component, BOT, SECRET).await;
    let mut alice = Client::login(nodes[1].c2s, "alice", Some("phone")).await;
    alice
        .send(&chat("echo@bot.localhost", "chat", "across"))
        .await;
    let got = ok(component::message(&mut bot, "across").await);
    assert_eq!(got.attr("from"), Some("alice@localhost/phone"), "{got}");
    bot.send(
        &chat("alice@localhost/phone", "chat", "and back").with_attr("from", "echo@bot.localhost"),
    )
    .await;
    ok(alice.expect_message_body("and back").await);

    // The domain is claimed cluster-wide: another node refuses a second connection.
    let (mut second, answer) = component::handshake(nodes[1].component, BOT, SECRET).await;
    let el = ok(answer);
    assert!(
        el.is("error", ns::STREAM) && el.children().any(|c| c.name() == "conflict"),
        "{el}"
    );
    assert!(matches!(
        ok(second.recv().await),
        Received::Close | Received::Eof
    ));

    // The first goes; once its claim is released the other node takes the domain.
    bot.send_raw("</stream:stream>").await.unwrap();
    assert!(matches!(
        ok(bot.recv().await),
        Received::Close | Received::Eof
    ));
    let addr = nodes[1].component;
    let mut moved = None;
    for _ in 0..100 {
        let (c, answer) = component::handshake(addr, BOT, SECRET).await;
        match answer {
            Ok(el) if el.is("handshake", ns::COMPONENT) => {
                moved = Some(c);
                break;
            }
            // Still claimed by n1 (its release travels through etcd): refused, try again.
            Ok(el) if el.is("error", ns::STREAM) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            other => panic!("{other:?}"),
        }
    }
    let mut moved = moved.expect("n2 takes the domain once n1 released it");
    alice.send(&chat(BOT, "chat", "to n2")).await;
    ok(component::message(&mut moved, "to n2").await);
    // Gone from both nodes (the server closed its side, so it unbound the domain first):
    // service-unavailable, whichever node the registry still names.
    moved.send_raw("</stream:stream>").await.unwrap();
    assert!(matches!(
        ok(moved.recv().await),
        Received::Close | Received::Eof
    ));
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "gone")
        .with_attr("to", BOT)
        .with_child(Element::new("ping", ns::PING));
    let reply = ok(alice.iq(&iq).await);
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("service-unavailable"),
        "{reply}"
    );
}
