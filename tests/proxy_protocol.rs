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

/// Sends `prefix` then one HTTP request from `source` to `addr`; the whole answer, empty
/// when the server closed the connection without one.
async fn http_exchange(
    addr: std::net::SocketAddr,
    source: IpAddr,
    prefix: &[u8],
    request: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(prefix).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn bosh_create(to: &str) -> String {
    let body = format!(
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1000' to='{to}' wait='10' \
         hold='1' ver='1.6' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>"
    );
    format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The web listener behind a TCP balancer (`[http] proxy_protocol_from`): through a real
/// HAProxy with `send-proxy-v2`, a BOSH session's record shows the client's own address; a
/// v1 header by hand is read exactly (the HTTP request behind it is answered); a peer that
/// is not a listed balancer, and a balancer's connection without a header, get no HTTP
/// answer at all and are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_listener_behind_haproxy_sees_the_clients_own_address() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.http.proxy_protocol_from = vec!["127.0.0.1".into()];
    });
    let http = server.handle.http.unwrap();
    let lb = Haproxy::start_with(
        "tcp",
        &[("n1", http, server.handle.admin.unwrap())],
        "send-proxy-v2",
    );
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
    let answer = http_exchange(lb.addr, client, b"", &bosh_create("localhost")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("sid="), "{answer}");
    let (_, json) = parley_testkit::admin_json(
        server.handle.admin.unwrap(),
        ADMIN,
        "GET",
        "/api/v1/sessions?unbound=true",
        "",
    );
    let records = json["sessions"].as_array().cloned().unwrap_or_default();
    assert!(
        records.iter().any(|r| r["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.6:"))),
        "no BOSH session from the client's own address: {records:?}"
    );

    // A v1 header by hand: exactly the header is taken, the request behind it answered.
    let header = format!(
        "PROXY TCP4 198.51.100.7 127.0.0.1 40002 {}\r\n",
        http.port()
    );
    let request =
        "GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let answer = http_exchange(http, loopback, header.as_bytes(), request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("xmpp-websocket"), "{answer}");

    // Not a balancer: no answer. A balancer's connection without a header: no answer.
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(http_exchange(http, stranger, b"", request).await, "");
    assert_eq!(http_exchange(http, loopback, b"", request).await, "");
    let text = parley_testkit::http_request(server.handle.admin.unwrap(), "GET", "/metrics", None)
        .expect("scrape")
        .1;
    for outcome in ["proxy_untrusted", "proxy_malformed"] {
        assert!(
            text.contains(&format!("listener=\"http\",result=\"{outcome}\"}} 1")),
            "{outcome} in {text}"
        );
    }
}

/// A hostile `[http] proxy_protocol_from` entry is refused naming the key.
#[test]
fn a_bad_web_balancer_address_names_the_key() {
    let e = parley::config::Config::from_toml_str(
        "[http]\nproxy_protocol_from = [\"10.0.0.0/33\"]\n",
        "test.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("http.proxy_protocol_from[0]"), "{e}");
}
