//! Issue 10, HTTP: attacks on the BOSH endpoint, on forwarding headers and on the admin
//! API, each answered with its exact wire refusal, over real HTTP. The memory targets run
//! the real `parley` binary and measure its RSS from /proc.
//!
//! Refusals on the wire:
//! - more than `hold`+1 requests on a SID, or its bytes awaiting processing past
//!   `bosh_session_pending_bytes`, or a session creation past the per-IP bucket or
//!   `bosh_max_sessions`: `<body type='terminate' condition='policy-violation'/>`
//!   (XEP-0124 §11);
//! - a body over `bosh_max_body_bytes`: HTTP 413 (no session is known before parsing);
//! - the admin API: 400 with a JSON error naming the field; `/metrics` with
//!   `metrics_auth`: 401.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use parley_proto::ns;
use parley_testkit::TestServer;
use parley_xml::{Element, Limits};

#[path = "http_hardening/process.rs"]
mod process;

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const TOKEN: &str = "hardening-admin-token-0123456789";

/// One HTTP/1.1 request on a fresh connection; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: parley.test\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write head");
    // The server may answer (413) and close before the whole body is written.
    let _ = s.write_all(body.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {out:?}"));
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// POSTs a BOSH body with extra headers; the parsed answer (which must be a 200).
async fn post_with(http_addr: SocketAddr, headers: &str, body: String) -> Element {
    let headers = format!("Content-Type: text/xml; charset=utf-8\r\n{headers}");
    tokio::task::spawn_blocking(move || {
        let (status, payload) = http(http_addr, "POST", "/http-bind", &headers, &body);
        assert_eq!(status, 200, "{payload}");
        Element::parse(payload.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("not a body: {payload}: {e}"))
    })
    .await
    .unwrap()
}

async fn post(http_addr: SocketAddr, body: String) -> Element {
    post_with(http_addr, "", body).await
}

fn create_body(rid: u64) -> String {
    format!(
        "<body xmlns='{HTTPBIND}' content='text/xml; charset=utf-8' to='localhost' rid='{rid}' \
         wait='5' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
    )
}

fn body(sid: &str, rid: u64, children: &str) -> String {
    format!("<body xmlns='{HTTPBIND}' sid='{sid}' rid='{rid}'>{children}</body>")
}

fn terminated_with(b: &Element, condition: &str) {
    assert!(b.is("body", HTTPBIND), "{b}");
    assert_eq!(b.attr("type"), Some("terminate"), "{b}");
    assert_eq!(b.attr("condition"), Some(condition), "{b}");
}

/// A new session's SID (the answer must not be a refusal).
async fn create(http_addr: SocketAddr, headers: &str, rid: u64) -> String {
    let b = post_with(http_addr, headers, create_body(rid)).await;
    assert_ne!(b.attr("type"), Some("terminate"), "{b}");
    b.attr("sid").expect("sid").to_owned()
}

/// A value of `/metrics`, by the start of its line.
fn metric(admin: SocketAddr, token: Option<&str>, line_start: &str) -> Option<u64> {
    let (_, text) = parley_testkit::cluster::http_get(admin, "/metrics", token)?;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// How often `/metrics` says the server refused for `reason`.
fn refusals(admin: SocketAddr, reason: &str) -> u64 {
    let (_, text) = parley_testkit::cluster::http_get(admin, "/metrics", None).expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("parley_refusals_total{"))
        .find(|l| l.contains(&format!("reason=\"{reason}\"")))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until the server answers `n` BOSH requests at once.
fn requests_in_flight(admin: SocketAddr, n: u64) {
    parley_testkit::poll_until(
        &format!("{n} BOSH requests in flight"),
        Duration::from_secs(10),
        || (metric(admin, None, "parley_bosh_requests_in_flight{") == Some(n)).then_some(()),
    );
}

// ----- BOSH ----------------------------------------------------------------------------------

/// XEP-0124 §11: a client with more than `hold`+1 requests open on one SID (here three
/// copies of a request waiting for its turn) has the session ended with policy-violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0124_11_more_than_hold_plus_one_requests_end_the_session_with_policy_violation() {
    let server = TestServer::start(|_| {});
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    let sid = create(http_addr, "", 100).await;
    // RID 102 waits for 101, which never comes: it stays open.
    let waiting: Vec<_> = (1..=2u64)
        .map(|n| {
            let request = tokio::spawn(post(http_addr, body(&sid, 102, "")));
            requests_in_flight(admin, n);
            request
        })
        .collect();
    terminated_with(
        &post(http_addr, body(&sid, 102, "")).await,
        "policy-violation",
    );
    // The session is gone: the waiting requests end, and so does anything after.
    for w in waiting {
        terminated_with(&w.await.unwrap(), "item-not-found");
    }
    terminated_with(
        &post(http_addr, body(&sid, 101, "")).await,
        "item-not-found",
    );
    assert!(refusals(admin, "bosh_requests_per_session") >= 1);
}

/// A body over `bosh_max_body_bytes` is refused with HTTP 413 before it is parsed, whether
/// its length is declared or it is chunked; the session it names lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_bosh_body_gets_413_before_it_is_parsed() {
    let server = TestServer::start(|c| c.http.bosh_max_body_bytes = 4096);
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    let sid = create(http_addr, "", 10).await;
    let big = body(
        &sid,
        11,
        &format!(
            "<presence xmlns='jabber:client'><status>{}</status></presence>",
            "x".repeat(5000)
        ),
    );
    let (status, text) = tokio::task::spawn_blocking(move || {
        http(
            http_addr,
            "POST",
            "/http-bind",
            "Content-Type: text/xml\r\n",
            &big,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{text}");
    // Chunked: no length to check up front; the cap holds while reading.
    let (status, text) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(http_addr).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let chunk = "y".repeat(1000);
        for _ in 0..8 {
            if write!(s, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                break;
            }
        }
        let _ = write!(s, "0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, out)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{text}");
    // The session was not touched.
    let b = post(http_addr, body(&sid, 11, "")).await;
    assert_ne!(b.attr("type"), Some("terminate"), "{b}");
    assert!(refusals(admin, "bosh_body_bytes") >= 2);
}

/// XEP-0124 §11: input awaiting processing on one SID is bounded in bytes: a body that
/// would take it past `bosh_session_pending_bytes` ends the session with policy-violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bosh_input_past_the_session_byte_bound_ends_the_session_with_policy_violation() {
    let server = TestServer::start(|c| {
        c.http.bosh_max_body_bytes = 4096;
        c.http.bosh_session_pending_bytes = 4096;
    });
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    let sid = create(http_addr, "", 20).await;
    let status = |n: usize| {
        format!(
            "<presence xmlns='jabber:client'><status>{}</status></presence>",
            "z".repeat(n)
        )
    };
    // 3 KB waits for RID 21 (its turn has not come): it counts as pending.
    let early = tokio::spawn(post(http_addr, body(&sid, 22, &status(3000))));
    requests_in_flight(admin, 1);
    // 2 KB more would hold 5 KB for this session.
    terminated_with(
        &post(http_addr, body(&sid, 21, &status(2000))).await,
        "policy-violation",
    );
    terminated_with(&early.await.unwrap(), "item-not-found");
    assert!(refusals(admin, "bosh_session_pending_bytes") >= 1);
    // Nothing stays counted once the session is gone.
    parley_testkit::poll_until("pending bytes released", Duration::from_secs(10), || {
        (metric(admin, None, "parley_bosh_pending_bytes{") == Some(0)).then_some(())
    });
}

/// The node-wide budget of BOSH input (`bosh_pending_bytes`): a body that does not fit while
/// others wait is refused with HTTP 503 and `Retry-After` (the client may repeat it,
/// XEP-0124 §14.3); the sessions live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bosh_input_past_the_node_budget_gets_503_retry_after() {
    let server = TestServer::start(|c| {
        c.http.bosh_max_body_bytes = 4096;
        c.http.bosh_session_pending_bytes = 4096;
        c.http.bosh_pending_bytes = 4096;
    });
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    let a = create(http_addr, "", 40).await;
    let b = create(http_addr, "", 60).await;
    let status = |n: usize| {
        format!(
            "<presence xmlns='jabber:client'><status>{}</status></presence>",
            "q".repeat(n)
        )
    };
    // 3 KB of session a's input waits for RID 41.
    let early = tokio::spawn(post(http_addr, body(&a, 42, &status(3000))));
    requests_in_flight(admin, 1);
    let big = body(&b, 61, &status(2000));
    let (code, head_and_body) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(http_addr).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let code: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out)
    })
    .await
    .unwrap();
    assert_eq!(code, 503, "{head_and_body}");
    assert!(
        head_and_body
            .to_ascii_lowercase()
            .contains("retry-after: 1"),
        "{head_and_body}"
    );
    assert!(refusals(admin, "bosh_pending_bytes") >= 1);
    // Session b was not touched, and once a's input is through the budget has room.
    // (Session a's presence before authentication ends it, XEP-0206 §6: beside the point.)
    let answer = post(http_addr, body(&a, 41, "")).await;
    assert!(
        !matches!(
            answer.attr("condition"),
            Some("item-not-found" | "policy-violation")
        ),
        "{answer}"
    );
    early.await.unwrap();
    // A wrong password: answered at once, and the session goes on.
    let wrong = format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>",
        ns::SASL,
        base64::engine::general_purpose::STANDARD.encode("\0alice\0wrong")
    );
    let answer = post(http_addr, body(&b, 61, &wrong)).await;
    assert!(answer.has_child("failure", ns::SASL), "{answer}");
}

/// Session creation is bounded per client IP (a token bucket) and in total; past either the
/// creation is answered with policy-violation and no session is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bosh_session_creation_flood_is_refused_per_ip_and_in_total() {
    let server = TestServer::start(|c| {
        c.http.bosh_sessions_per_ip_burst = 3;
        c.http.bosh_sessions_per_ip_per_minute = 1;
    });
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    for rid in 0..3 {
        create(http_addr, "", 1000 * rid).await;
    }
    terminated_with(
        &post(http_addr, create_body(5000)).await,
        "policy-violation",
    );
    assert_eq!(metric(admin, None, "parley_bosh_sessions{"), Some(3));

    let server = TestServer::start(|c| c.http.bosh_max_sessions = 2);
    let http_addr = server.handle.http.unwrap();
    create(http_addr, "", 1).await;
    create(http_addr, "", 2).await;
    terminated_with(&post(http_addr, create_body(3)).await, "policy-violation");
}

// ----- Forwarding headers --------------------------------------------------------------------

/// Logs alice in over BOSH with `headers` on every request (SASL PLAIN, restart, bind).
async fn bosh_login(http_addr: SocketAddr, headers: &str) {
    let sid = create(http_addr, headers, 300).await;
    let creds = base64::engine::general_purpose::STANDARD.encode("\0alice\0password");
    let auth = format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
        ns::SASL
    );
    let b = post_with(http_addr, headers, body(&sid, 301, &auth)).await;
    assert!(b.has_child("success", ns::SASL), "{b}");
    let restart = format!(
        "<body xmlns='{HTTPBIND}' sid='{sid}' rid='302' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='localhost'/>"
    );
    post_with(http_addr, headers, restart).await;
    let bind = "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>";
    let b = post_with(http_addr, headers, body(&sid, 303, bind)).await;
    assert!(
        b.to_string().contains("type='result'") || b.to_string().contains("type=\"result\""),
        "{b}"
    );
}

/// The session's `ip` and `secure` as the admin API shows them.
fn session_ip_and_secure(admin: SocketAddr) -> (String, bool) {
    let (status, text) = parley_testkit::cluster::http_get(
        admin,
        "/api/v1/users/alice@localhost/sessions",
        Some(TOKEN),
    )
    .expect("admin answer");
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = &json["sessions"][0];
    (
        s["ip"].as_str().unwrap_or_default().to_owned(),
        s["secure"].as_bool().unwrap_or_default(),
    )
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy is a client's own claim: it
/// neither escapes the per-IP creation limit nor shows up as the session's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(TOKEN.into());
        c.http.bosh_sessions_per_ip_burst = 3;
        c.http.bosh_sessions_per_ip_per_minute = 1;
    });
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    bosh_login(
        http_addr,
        "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: http\r\n",
    )
    .await;
    let (ip, secure) = session_ip_and_secure(admin);
    assert_eq!(ip, "127.0.0.1");
    assert!(
        secure,
        "loopback counts as encrypted (consider_secure), whatever the header says"
    );
    create(http_addr, "X-Forwarded-For: 198.51.100.2\r\n", 1).await;
    create(http_addr, "Forwarded: for=198.51.100.3\r\n", 2).await;
    // Three from 127.0.0.1, whatever each claimed: the fourth is refused.
    let b = post_with(
        http_addr,
        "X-Forwarded-For: 198.51.100.4\r\n",
        create_body(3),
    )
    .await;
    terminated_with(&b, "policy-violation");
}

/// From a trusted proxy (`[http] trusted_proxies`), the right-most untrusted address of the
/// chain is the client: limits count it and the session record shows it; the proxy's
/// `X-Forwarded-Proto` decides `secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_for_limits_and_session_records() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(TOKEN.into());
        c.http.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.http.bosh_sessions_per_ip_burst = 2;
        c.http.bosh_sessions_per_ip_per_minute = 1;
    });
    let (http_addr, admin) = (server.handle.http.unwrap(), server.handle.admin.unwrap());
    // The client wrote 192.0.2.99 itself; the proxy appended what it saw.
    bosh_login(
        http_addr,
        "X-Forwarded-For: 192.0.2.99, 198.51.100.7\r\nX-Forwarded-Proto: https\r\n",
    )
    .await;
    let (ip, secure) = session_ip_and_secure(admin);
    assert_eq!(ip, "198.51.100.7");
    assert!(secure);
    // 198.51.100.7 has used one creation of two; another client has its own bucket.
    create(http_addr, "X-Forwarded-For: 198.51.100.7\r\n", 1).await;
    let b = post_with(
        http_addr,
        "X-Forwarded-For: 198.51.100.7\r\n",
        create_body(2),
    )
    .await;
    terminated_with(&b, "policy-violation");
    create(http_addr, "X-Forwarded-For: 198.51.100.8\r\n", 3).await;
}

/// XEP-0156: discovery advertises a forwarded host and scheme only when a trusted proxy sent
/// them; from anyone else, the connection's own `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0156_discovery_never_advertises_a_forwarded_host_from_an_untrusted_peer() {
    let forged = "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: host=evil.example;proto=https\r\n";
    let server =
        TestServer::start(|c| c.http.consider_secure = parley::config::ConsiderSecure::Never);
    let http_addr = server.handle.http.unwrap();
    let (status, text) = http(http_addr, "GET", "/.well-known/host-meta.json", forged, "");
    assert_eq!(status, 200);
    assert!(!text.contains("evil.example"), "{text}");
    assert!(text.contains("ws://parley.test/xmpp-websocket"), "{text}");
    let (_, text) = http(http_addr, "GET", "/.well-known/host-meta", forged, "");
    assert!(!text.contains("evil.example"), "{text}");

    let server = TestServer::start(|c| c.http.trusted_proxies = vec!["127.0.0.1".into()]);
    let http_addr = server.handle.http.unwrap();
    let (_, text) = http(http_addr, "GET", "/.well-known/host-meta.json", forged, "");
    assert!(text.contains("wss://evil.example/xmpp-websocket"), "{text}");
}

// ----- Admin API -----------------------------------------------------------------------------

/// Every number the admin API takes is bounded: out of range (or not a number) is a 400
/// naming the field — a `ttl_s` of 2^64-1 once overflowed the token's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_numbers_out_of_range_are_refused_with_400_naming_the_field() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(TOKEN.into());
        c.admin.max_token_ttl_s = 3600;
    });
    let admin = server.handle.admin.unwrap();
    let auth = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    let tokens = "/api/v1/users/alice@localhost/tokens";
    for ttl in ["18446744073709551615", "3601", "0", "-1", "1.5", "\"60\""] {
        let (status, text) = http(
            admin,
            "POST",
            tokens,
            &auth,
            &format!("{{\"ttl_s\":{ttl}}}"),
        );
        assert_eq!(status, 400, "ttl_s {ttl}: {text}");
        assert!(text.contains("ttl_s"), "{text}");
    }
    let (status, text) = http(admin, "POST", tokens, &auth, "{\"ttl_s\":3600}");
    assert_eq!(status, 201, "{text}");
    let (status, text) = http(
        admin,
        "POST",
        tokens,
        &auth,
        &format!("{{\"purpose\":\"{}\"}}", "p".repeat(65)),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("purpose"), "{text}");
    // A body that does not parse is refused, never taken as empty (a token without expiry).
    let (status, text) = http(admin, "POST", tokens, &auth, "{\"ttl_s\":60,");
    assert_eq!(status, 400, "{text}");
    for limit in ["0", "1001", "99999999999999999999999", "ten"] {
        let (status, text) = http(
            admin,
            "GET",
            &format!("/api/v1/sessions?limit={limit}"),
            &auth,
            "",
        );
        assert_eq!(status, 400, "limit {limit}: {text}");
        assert!(text.contains("limit"), "{text}");
    }
    let (status, _) = http(admin, "GET", "/api/v1/sessions?limit=1000", &auth, "");
    assert_eq!(status, 200);
    let huge = format!("{{\"reason\":\"{}\"}}", "r".repeat(64 * 1024));
    let (status, _) = http(
        admin,
        "POST",
        "/api/v1/users/alice@localhost/signout",
        &auth,
        &huge,
    );
    assert_eq!(status, 413, "a JSON body past 16 KiB is not read");
}

/// `[admin] metrics_auth`: `/metrics` answers 401 without the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_the_admin_token_refuse_anonymous_scrapes() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(TOKEN.into());
        c.admin.metrics_auth = true;
    });
    let admin = server.handle.admin.unwrap();
    let (status, _) = parley_testkit::cluster::http_get(admin, "/metrics", None).unwrap();
    assert_eq!(status, 401);
    let (status, _) =
        parley_testkit::cluster::http_get(admin, "/metrics", Some("wrong-token-0123456789"))
            .unwrap();
    assert_eq!(status, 401);
    let (status, text) = parley_testkit::cluster::http_get(admin, "/metrics", Some(TOKEN)).unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("parley_sessions"), "{text}");
    // Health and readiness stay open for load balancers.
    assert_eq!(
        parley_testkit::cluster::http_get(admin, "/health", None)
            .unwrap()
            .0,
        200
    );
}

/// `[admin] metrics_listen`: `/metrics` moves to a listener of its own and leaves the admin
/// listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_leave_the_admin_listener() {
    let port = parley_testkit::free_port();
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = TestServer::start(|c| c.admin.metrics_listen = Some(metrics_addr));
    let admin = server.handle.admin.unwrap();
    let (status, text) = parley_testkit::cluster::http_get(metrics_addr, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("parley_sessions"), "{text}");
    assert_eq!(
        parley_testkit::cluster::http_get(admin, "/metrics", None)
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        parley_testkit::cluster::http_get(metrics_addr, "/api/v1/nodes", None)
            .unwrap()
            .0,
        404
    );
}

// ----- Memory, measured on the real binary ---------------------------------------------------

/// 40 concurrent 256 KiB requests on one SID (XEP-0124 §11): all wait for a RID that never
/// comes, so past `hold`+1 open the session ends with policy-violation and the rest find it
/// gone; the server's peak RSS grows by less than 32 MiB.
#[test]
fn forty_concurrent_256k_bodies_on_one_sid_add_under_32_mib() {
    let server = process::Parley::start("");
    let http_addr = server.http;
    let sid = process::create_session(http_addr, 1);
    let filler = "w".repeat(256 * 1024 - 400);
    let stanza = format!(
        "<message xmlns='jabber:client' to='bob@localhost'><body>{filler}</body></message>"
    );
    let before = server.reset_peak_rss();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                // RID 3 waits for RID 2, which is never sent.
                let b = body(&sid, 3, &stanza);
                scope.spawn(move || {
                    http(
                        http_addr,
                        "POST",
                        "/http-bind",
                        "Content-Type: text/xml\r\n",
                        &b,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = server.peak_rss();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "40 × 256 KiB on one SID: RSS {} KiB before, peak {} KiB, growth {} KiB",
        before / 1024,
        peak / 1024,
        growth / 1024
    );
    let violations = answers
        .iter()
        .filter(|(_, text)| text.contains("condition='policy-violation'"))
        .count();
    let gone = answers
        .iter()
        .filter(|(status, text)| *status == 503 || text.contains("condition='item-not-found'"))
        .count();
    assert!(
        violations >= 1,
        "a third open request is refused: {answers:?}"
    );
    assert_eq!(violations + gone, 40, "{answers:?}");
    assert!(growth < 32 * 1024 * 1024, "peak RSS grew by {growth} bytes");
    // The server is up and serves others.
    process::create_session(http_addr, 100);
}

/// 2,000 session creations from one IP within seconds: past the bucket every one gets
/// policy-violation, and the server's peak RSS grows by less than 64 MiB.
#[test]
fn two_thousand_session_creations_from_one_ip_are_refused_past_the_cap_under_64_mib() {
    let server = process::Parley::start(
        "bosh_sessions_per_ip_burst = 20\nbosh_sessions_per_ip_per_minute = 1\n",
    );
    let http_addr = server.http;
    let before = server.reset_peak_rss();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    let mut conn = process::KeepAlive::new(http_addr);
                    let (mut made, mut refused) = (0, 0);
                    for i in 0..250u64 {
                        let answer = conn.post("/http-bind", &create_body(t * 10_000 + i * 10));
                        if answer.contains("condition='policy-violation'") {
                            refused += 1;
                        } else {
                            assert!(answer.contains(" sid='"), "{answer}");
                            made += 1;
                        }
                    }
                    (made, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = server.peak_rss();
    let growth = peak.saturating_sub(before);
    let made: usize = results.iter().map(|r| r.0).sum();
    let refused: usize = results.iter().map(|r| r.1).sum();
    eprintln!(
        "2000 creations from one IP: {made} made, {refused} refused; RSS {} KiB before, peak {} KiB, growth {} KiB",
        before / 1024,
        peak / 1024,
        growth / 1024
    );
    assert_eq!(made + refused, 2000);
    // The burst, plus one a minute (a slow run may see one refill).
    assert!((20..=22).contains(&made), "{made} sessions made");
    assert!(growth < 64 * 1024 * 1024, "peak RSS grew by {growth} bytes");
}
