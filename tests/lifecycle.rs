//! The session lifecycle: every status reached by its real cause, with its times, through
//! the admin API (`GET /api/v1/sessions?status=…`, `GET/DELETE /api/v1/sessions/{id}`,
//! `POST /api/v1/users/{jid}/signout`, `DELETE /api/v1/users/{jid}`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parley_testkit::{Client, TestServer};

const ADMIN: &str = "lifecycle-admin-token-0123456789";

fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    parley_testkit::admin_json(addr, ADMIN, method, path, body)
}

/// Waits until the record of `jid` with `status` shows up; returns it.
fn record(admin: SocketAddr, jid: &str, status: &str) -> serde_json::Value {
    parley_testkit::poll_until(
        &format!("a {status} record for {jid}"),
        Duration::from_secs(10),
        || {
            let (_, json) = api(
                admin,
                "GET",
                &format!("/api/v1/sessions?status={status}&limit=1000"),
                "",
            );
            json["sessions"]
                .as_array()
                .and_then(|l| l.iter().find(|r| r["jid"] == jid))
                .cloned()
        },
    )
}

fn times_ok(r: &serde_json::Value) {
    let created = r["created"].as_i64().expect("created");
    let last = r["last_active"].as_i64().expect("last_active");
    let updated = r["updated"].as_i64().expect("updated");
    assert!(created <= last && last <= updated + 1, "{r}");
}

/// active → ended (the client closed), abandoned (the connection dropped), replaced
/// (resource conflict), revoked (DELETE with a condition and a reason), removed (the
/// account was deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_by_its_real_cause() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();

    let mut a = Client::login(server.c2s(), "alice", Some("ends")).await;
    let live = record(admin, "alice@localhost/ends", "active");
    times_ok(&live);
    let (status, one) = api(
        admin,
        "GET",
        &format!("/api/v1/sessions/{}", live["session"].as_str().unwrap()),
        "",
    );
    assert_eq!((status, one["status"].as_str()), (200, Some("active")));
    a.send_raw("</stream:stream>").await.unwrap();
    let ended = record(admin, "alice@localhost/ends", "ended");
    assert_eq!(ended["connected"], false);
    times_ok(&ended);

    let b = Client::login(server.c2s(), "alice", Some("drops")).await;
    drop(b);
    let abandoned = record(admin, "alice@localhost/drops", "abandoned");
    assert!(abandoned["abandoned"].as_i64().is_some(), "{abandoned}");

    let mut old = Client::login(server.c2s(), "alice", Some("twice")).await;
    let _new = Client::login(server.c2s(), "alice", Some("twice")).await;
    assert_eq!(old.stream_error_after_traffic().await.0, "conflict");
    record(admin, "alice@localhost/twice", "replaced");

    let mut bob = Client::login(server.c2s(), "bob", Some("revoked")).await;
    let id = record(admin, "bob@localhost/revoked", "active")["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = api(
        admin,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        r#"{"condition":"policy-violation","reason":"spam"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        bob.stream_error_after_traffic().await,
        ("policy-violation".to_owned(), Some("spam".to_owned()))
    );
    record(admin, "bob@localhost/revoked", "revoked");
    let (status, gone) = api(admin, "GET", &format!("/api/v1/sessions/{id}"), "");
    assert_eq!((status, gone["status"].as_str()), (200, Some("revoked")));
    assert_eq!(
        api(admin, "GET", "/api/v1/sessions?status=sleepy", "").0,
        400
    );
}

/// expired: past the maximum lifetime, idle too long, or past its token's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_by_lifetime_idleness_and_token() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.c2s.max_session_lifetime_s = 1;
    });
    let admin = server.handle.admin.unwrap();
    let mut c = Client::login(server.c2s(), "alice", Some("life")).await;
    assert_eq!(c.stream_error_after_traffic().await.0, "policy-violation");
    let r = record(admin, "alice@localhost/life", "expired");
    assert!(r["expires"].as_i64().is_some(), "{r}");

    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.c2s.idle_timeout_s = 1;
    });
    let admin = server.handle.admin.unwrap();
    let mut c = Client::login(server.c2s(), "alice", Some("idle")).await;
    assert_eq!(c.stream_error_after_traffic().await.0, "connection-timeout");
    record(admin, "alice@localhost/idle", "expired");

    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let (_, t) = api(
        admin,
        "POST",
        "/api/v1/users/alice@localhost/tokens",
        r#"{"ttl_s":1}"#,
    );
    let token = t["token"].as_str().unwrap();
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(parley_proto::sasl::Mechanism::OAuthBearer, "", token)
        .await
        .unwrap();
    c.open().await.unwrap();
    c.bind(Some("tok")).await.unwrap();
    // While it lives, the session shows its token's expiry as its own.
    let live = record(admin, "alice@localhost/tok", "active");
    assert_eq!(live["expires"], t["expires"], "{live} {t}");
    assert_eq!(c.stream_error_after_traffic().await.0, "policy-violation");
    let r = record(admin, "alice@localhost/tok", "expired");
    assert_eq!(r["expires"], t["expires"], "{r}");
}

/// A session the server closed with a stream error of its own is `failed`, with the
/// condition (and text) it sent as its reason — not `ended`, which is the user's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_closed_for_an_error_is_failed_with_its_reason() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let mut c = Client::login(server.c2s(), "alice", Some("broken")).await;
    // RFC 6120 §4.9.3.13: not well-formed XML.
    c.send_raw("<message to='bob@localhost'><body>hi</message></body>")
        .await
        .unwrap();
    assert_eq!(c.stream_error_after_traffic().await.0, "not-well-formed");
    let r = record(admin, "alice@localhost/broken", "failed");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("not-well-formed"), "{r}");
    // The client's own close stays `ended`, without a reason.
    let mut d = Client::login(server.c2s(), "alice", Some("leaves")).await;
    d.send_raw("</stream:stream>").await.unwrap();
    let r = record(admin, "alice@localhost/leaves", "ended");
    assert!(r.get("reason").is_none(), "{r}");
}

/// `POST /api/v1/sessions/{id}/remove`: the user signs one session out and it leaves their
/// list — a live one is closed and ends `removed`; an ended one's record becomes `removed`.
/// The admin's `?status=removed` still sees both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_signs_a_session_out_and_drops_it_from_the_users_list() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let mut live = Client::login(server.c2s(), "carol", Some("live")).await;
    let mut old = Client::login(server.c2s(), "carol", Some("old")).await;
    let _kept = Client::login(server.c2s(), "carol", Some("kept")).await;
    old.send_raw("</stream:stream>").await.unwrap();
    let ended = record(admin, "carol@localhost/old", "ended");
    let live_id = record(admin, "carol@localhost/live", "active")["session"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, json) = api(
        admin,
        "POST",
        &format!("/api/v1/sessions/{live_id}/remove"),
        "",
    );
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        live.stream_error_after_traffic().await,
        (
            "not-authorized".to_owned(),
            Some("the session was signed out".to_owned())
        )
    );
    let ended_id = ended["session"].as_str().unwrap();
    let (status, json) = api(
        admin,
        "POST",
        &format!("/api/v1/sessions/{ended_id}/remove"),
        "",
    );
    assert_eq!(status, 200, "{json}");
    record(admin, "carol@localhost/live", "removed");
    record(admin, "carol@localhost/old", "removed");

    let (_, list) = api(
        admin,
        "GET",
        "/api/v1/users/carol@localhost/sessions?history=true",
        "",
    );
    let jids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jid"].as_str().unwrap())
        .collect();
    assert_eq!(jids, ["carol@localhost/kept"], "{list}");
    let (status, _) = api(
        admin,
        "POST",
        "/api/v1/sessions/00000000deadbeef/remove",
        "",
    );
    assert_eq!(status, 404);
}

/// Sign-out everywhere revokes every session and every token of the user within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_revokes_every_session_and_token() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let (_, t) = api(admin, "POST", "/api/v1/users/alice@localhost/tokens", "");
    let token = t["token"].as_str().unwrap().to_owned();
    let mut one = Client::login(server.c2s(), "alice", Some("one")).await;
    let mut two = Client::login(server.c2s(), "alice", Some("two")).await;
    let started = Instant::now();
    let (status, json) = api(admin, "POST", "/api/v1/users/alice@localhost/signout", "");
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        (json["sessions"].as_u64(), json["tokens"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(one.stream_error_after_traffic().await.0, "policy-violation");
    assert_eq!(two.stream_error_after_traffic().await.0, "policy-violation");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    record(admin, "alice@localhost/one", "revoked");
    record(admin, "alice@localhost/two", "revoked");
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    assert!(c
        .auth(parley_proto::sasl::Mechanism::OAuthBearer, "", &token)
        .await
        .is_err());
}
