//! The admin endpoint (cluster issue, single-node part): open health, readiness and metrics;
//! a bearer-token API listing sessions; 401 without the token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use parley_testkit::{Client, TestServer};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A tiny HTTP/1.1 GET over a real socket: (status, body).
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the admin endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_are_open() {
    let server = TestServer::start(|c| c.admin.token = Some(TOKEN.into()));
    let admin = server.handle.admin.expect("admin endpoint");
    let _alice = Client::login(server.c2s(), "alice", Some("a")).await;
    assert_eq!(get(admin, "/health", None).0, 200);
    assert_eq!(get(admin, "/ready", None).0, 200);
    let (status, body) = get(admin, "/metrics", None);
    assert_eq!(status, 200);
    assert!(body.contains("parley_sessions{type=\"c2s\""), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("parley_sessions{") && l.ends_with(" 1")),
        "one bound session: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_bearer_token() {
    let server = TestServer::start(|c| c.admin.token = Some(TOKEN.into()));
    let admin = server.handle.admin.expect("admin endpoint");
    let _alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let _bob = Client::login(server.c2s(), "bob", Some("b")).await;
    assert_eq!(get(admin, "/api/v1/sessions", None).0, 401);
    assert_eq!(
        get(admin, "/api/v1/sessions", Some("wrong-token-0123456789")).0,
        401
    );
    let (status, body) = get(admin, "/api/v1/sessions", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let jids: Vec<&str> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["jid"].as_str().unwrap())
        .collect();
    assert_eq!(jids, vec!["alice@localhost/a", "bob@localhost/b"]);
    let (status, body) = get(admin, "/api/v1/users/alice@localhost/sessions", Some(TOKEN));
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(json["sessions"][0]["jid"], "alice@localhost/a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_api_is_closed() {
    let server = TestServer::start(|_| {});
    let admin = server.handle.admin.expect("admin endpoint");
    assert_eq!(
        get(admin, "/api/v1/sessions", Some("anything-at-all-12345")).0,
        401
    );
    assert_eq!(get(admin, "/health", None).0, 200);
}

/// `parley sessions list` goes through the admin API of the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_sessions_list_uses_the_admin_api() {
    let server = TestServer::start(|c| c.admin.token = Some(TOKEN.into()));
    let admin = server.handle.admin.expect("admin endpoint");
    let alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let config = server.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(parley_testkit::parley_binary())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run parley")
    };
    let out = run(&["sessions", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An aligned table: a header, then one row per session.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].starts_with("JID "), "{stdout}");
    let cols: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(cols[0], "alice@localhost/phone", "{stdout}");
    assert_eq!(&cols[3..5], ["c2s", "tls"], "type and transport: {stdout}");
    assert!(
        cols[5].starts_with("127.0.0.1:"),
        "address with port: {stdout}"
    );
    assert_eq!(cols[6], "active", "{stdout}");
    assert!(cols[7].ends_with('Z'), "ISO 8601 start: {stdout}");
    assert_eq!(
        rows[0].find("SESSION"),
        rows[1].find(cols[1]),
        "columns aligned: {stdout}"
    );
    // --json: the admin API's records.
    let out = run(&["sessions", "list", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records[0]["jid"], "alice@localhost/phone");
    assert_eq!(records[0]["transport"], "tls");
    let id = records[0]["session"].as_str().unwrap().to_owned();
    let out = run(&["sessions", "list", "--user", "bob@localhost"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "bob has no sessions: only the header"
    );
    // `parley sessions kick`: the client is told why; the record says revoked.
    let out = run(&["sessions", "kick", &id, "--reason", "go away"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alice = alice;
    assert_eq!(
        alice.stream_error_after_traffic().await,
        ("policy-violation".to_owned(), Some("go away".to_owned()))
    );
}
