//! The PROXY protocol on the client ports (issue 17, `[c2s] proxy_protocol_from`): behind a
//! real HAProxy with `send-proxy-v2` the session's record shows the client's own address;
//! a v1 header by hand works too; a peer that is not a listed balancer, and a balancer's
//! connection without a valid header, get no session and are counted.

use std::net::{IpAddr, Ipv4Addr};

use parley_testkit::{Client, Haproxy, Received, TestServer};

const ADMIN: &str = "proxy-admin-token-0123456789abcdef";

fn sessions(server: &TestServer) -> Vec<serde_json::Value> {
    let (_, json) = parley_testkit::admin_json(
        server.handle.admin.unwrap(),
        ADMIN,
        "GET",
        "/api/v1/sessions",
        "",
    );
    json["sessions"].as_array().cloned().unwrap_or_default()
}

fn address_of(server: &TestServer, jid: &str) -> String {
    sessions(server)
        .into_iter()
        .find(|r| r["jid"] == jid)
        .and_then(|r| r["address"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no record for {jid}"))
}

/// Whether the server closes `c` without a word (no session was started for it).
async fn closed_silently(mut c: Client) -> bool {
    matches!(c.recv().await, Ok(Received::Eof) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_sessions_see_the_clients_own_address() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.c2s.proxy_protocol_from = vec!["127.0.0.1".into()];
    });
    let lb = Haproxy::start_with(
        "tcp",
        &[("n1", server.c2s(), server.handle.admin.unwrap())],
        "send-proxy-v2",
    );
    // The client comes from 127.0.0.5; HAProxy connects to Parley from 127.0.0.1.
    let mut c = Client::connect_from(lb.addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(
        parley_proto::sasl::Mechanism::ScramSha256,
        "alice",
        "password",
    )
    .await
    .unwrap();
    c.open().await.unwrap();
    c.bind(Some("lb")).await.unwrap();
    assert!(
        address_of(&server, "alice@localhost/lb").starts_with("127.0.0.5:"),
        "{:?}",
        sessions(&server)
    );

    // A v1 header, as an older balancer writes it.
    let header = format!(
        "PROXY TCP4 198.51.100.9 127.0.0.1 40001 {}\r\n",
        server.c2s().port()
    );
    let mut c = Client::connect_after(server.c2s(), header.as_bytes()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(
        parley_proto::sasl::Mechanism::ScramSha256,
        "bob",
        "password",
    )
    .await
    .unwrap();
    c.open().await.unwrap();
    c.bind(Some("v1")).await.unwrap();
    assert_eq!(
        address_of(&server, "bob@localhost/v1"),
        "198.51.100.9:40001"
    );

    // Not a balancer: refused. A balancer's connection without a header: refused.
    let untrusted =
        Client::connect_from(server.c2s(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))).await;
    assert!(closed_silently(untrusted).await);
    let headless = Client::connect_after(server.c2s(), b"<?xml version='1.0'?>\n").await;
    assert!(closed_silently(headless).await);
    let text = parley_testkit::http_request(server.handle.admin.unwrap(), "GET", "/metrics", None)
        .expect("scrape")
        .1;
    for outcome in ["proxy_untrusted", "proxy_malformed"] {
        assert!(
            text.contains(&format!("listener=\"c2s\",result=\"{outcome}\"}} 1")),
            "{outcome} in {text}"
        );
    }
    // No address outside the balancer ever reached a session.
    assert!(sessions(&server)
        .iter()
        .all(|r| !r["address"].as_str().unwrap_or("").starts_with("127.0.0.3")));
}

/// A hostile `proxy_protocol_from` entry is refused naming the key.
#[test]
fn a_bad_balancer_address_names_the_key() {
    let e = parley::config::Config::from_toml_str(
        "[c2s]\nproxy_protocol_from = [\"10.0.0.0/33\"]\n",
        "test.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c2s.proxy_protocol_from[0]"), "{e}");
}
