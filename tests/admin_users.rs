//! Day-two account administration (issue 17): `parley user del` and `parley user passwd`
//! end the account's live sessions (and tokens) through the running server, `/api/v1/users`
//! creates, pages, re-keys and deletes accounts, and the admin API refuses what it does not
//! understand with an RFC 9457 problem naming the field.

use std::net::SocketAddr;
use std::path::Path;

use parley_proto::sasl::Mechanism;
use parley_testkit::{Client, TestServer};

const ADMIN: &str = "users-admin-token-0123456789abcdef";

fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    parley_testkit::admin_json(addr, ADMIN, method, path, body)
}

/// The status, content type and JSON body of one request (for the problem format).
fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

async fn login_works(addr: SocketAddr, user: &str, password: &str) -> bool {
    let mut c = Client::connect(addr).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(Mechanism::ScramSha256, user, password).await.is_ok()
}

/// Runs the real `parley` binary with a config naming the server's admin listener and data
/// directory, but no `[admin] token`: the local credential is what it uses.
fn parley(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(parley_testkit::parley_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run parley");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_config(server: &TestServer, admin: SocketAddr) -> std::path::PathBuf {
    let path = server.dir.path().join("cli.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\
             [sasl]\nscram_iterations = 4096\n[admin]\nlisten = \"{admin}\"\n",
            server.dir.path().display()
        ),
    )
    .unwrap();
    path
}

/// `parley user del` while the user is connected: the session ends with
/// `<not-authorized/>` (RFC 6120 §4.9.3.12) and the account is gone; the CLI used the
/// node's local credential (no token in its config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_user_del_ends_the_live_session() {
    let server = TestServer::start(|_| {});
    let admin = server.handle.admin.unwrap();
    let config = cli_config(&server, admin);
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    let (ok, stdout, stderr) = parley(&config, &["user", "del", "alice@localhost"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("deleted alice@localhost; ended 1 live session"),
        "{stdout}"
    );
    let (condition, text) = alice.stream_error_after_traffic().await;
    assert_eq!(condition, "not-authorized");
    assert_eq!(text.as_deref(), Some("the account was removed"));
    assert!(!login_works(server.c2s(), "alice", "password").await);
    // Twice: the API's 404 in the CLI's words.
    let (ok, _, stderr) = parley(&config, &["user", "del", "alice@localhost"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// `parley user passwd`: every session of the account ends, its tokens stop working, the
/// old password fails and the new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_user_passwd_ends_sessions_and_tokens() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let config = cli_config(&server, admin);
    let (status, issued) = api(admin, "POST", "/api/v1/users/bob@localhost/tokens", "");
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let mut phone = Client::login(server.c2s(), "bob", Some("phone")).await;
    let mut laptop = Client::login(server.c2s(), "bob", Some("laptop")).await;
    let (ok, stdout, stderr) = parley(
        &config,
        &[
            "user",
            "passwd",
            "bob@localhost",
            "--password",
            "new secret",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ended 2 live session"), "{stdout}");
    for c in [&mut phone, &mut laptop] {
        let (condition, text) = c.stream_error_after_traffic().await;
        assert_eq!(condition, "not-authorized");
        assert_eq!(text.as_deref(), Some("the account's password was changed"));
    }
    assert!(!login_works(server.c2s(), "bob", "password").await);
    assert!(login_works(server.c2s(), "bob", "new secret").await);
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    assert!(
        c.auth(Mechanism::OAuthBearer, "bob@localhost", &token)
            .await
            .is_err(),
        "a token issued before the change is revoked"
    );
}

/// With no server running, the CLI changes the storage and says nobody was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_running_server_the_cli_changes_the_storage_and_says_so() {
    let server = TestServer::start(|_| {});
    let dir = server.dir.path().to_owned();
    let db = format!("sqlite://{}/parley.db", dir.display());
    // A port nothing listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.join("offline.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n[storage]\nurl = \"{db}\"\n\
             [sasl]\nscram_iterations = 4096\n[admin]\nlisten = \"{closed}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = parley(&config, &["user", "del", "carol@localhost"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("deleted carol@localhost in the storage"),
        "{stdout}"
    );
    assert!(stderr.contains("no running server was told"), "{stderr}");
    assert!(stderr.contains(&closed.to_string()), "{stderr}");
    assert!(!login_works(server.c2s(), "carol", "password").await);
}

/// `/api/v1/users`: create (201, then 409), page through with `next`, change the password,
/// delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_paged_rekeyed_and_deleted_over_rest() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let (status, made) = api(
        admin,
        "POST",
        "/api/v1/users",
        r#"{"jid": "Dave@LocalHost", "password": "dave pw"}"#,
    );
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["jid"], "dave@localhost");
    assert!(
        made["created"].as_str().unwrap().ends_with('Z'),
        "ISO 8601: {made}"
    );
    assert!(login_works(server.c2s(), "dave", "dave pw").await);
    let (status, _) = api(
        admin,
        "POST",
        "/api/v1/users",
        r#"{"jid": "dave@localhost", "password": "x"}"#,
    );
    assert_eq!(status, 409);

    // alice, bob, carol, dave: pages of 3 then 1.
    let (status, first) = api(admin, "GET", "/api/v1/users?host=localhost&limit=3", "");
    assert_eq!(status, 200, "{first}");
    let names: Vec<&str> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["jid"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alice@localhost", "bob@localhost", "carol@localhost"]
    );
    assert_eq!(first["next"], "carol@localhost");
    let (_, second) = api(
        admin,
        "GET",
        "/api/v1/users?limit=3&after=carol@localhost",
        "",
    );
    assert_eq!(second["users"][0]["jid"], "dave@localhost");
    assert_eq!(second["users"].as_array().unwrap().len(), 1);
    assert!(second["next"].is_null(), "the last page: {second}");

    let (status, changed) = api(
        admin,
        "PUT",
        "/api/v1/users/dave@localhost/password",
        r#"{"password": "second"}"#,
    );
    assert_eq!(status, 200, "{changed}");
    assert!(login_works(server.c2s(), "dave", "second").await);
    let (status, gone) = api(admin, "DELETE", "/api/v1/users/dave@localhost", "");
    assert_eq!(status, 200, "{gone}");
    let (status, _) = api(
        admin,
        "PUT",
        "/api/v1/users/dave@localhost/password",
        r#"{"password": "third"}"#,
    );
    assert_eq!(status, 404);
}

/// Hostile admin input: a misspelled field, a wrong type, broken JSON, an unknown query
/// parameter and an unknown route each get a 4xx RFC 9457 problem naming what was wrong;
/// never a token that never expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9457_strict_input_is_refused_naming_the_field() {
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let cases = [
        (
            "POST",
            "/api/v1/users/alice@localhost/tokens",
            r#"{"ttl": 60}"#,
            "ttl",
        ),
        (
            "POST",
            "/api/v1/users/alice@localhost/tokens",
            r#"{"ttl_s": "60"}"#,
            "ttl_s",
        ),
        (
            "POST",
            "/api/v1/users/alice@localhost/tokens",
            r#"{"ttl_s": 6"#,
            "JSON",
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"jid": "e@localhost", "pasword": "x"}"#,
            "pasword",
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"jid": "e@localhost", "password": 5}"#,
            "invalid type",
        ),
        (
            "PUT",
            "/api/v1/users/alice@localhost/password",
            r#"{}"#,
            "password",
        ),
        ("POST", "/api/v1/invites", r#"{"usess": 2}"#, "usess"),
        (
            "DELETE",
            "/api/v1/sessions/00",
            r#"{"conditon": "conflict"}"#,
            "conditon",
        ),
        ("GET", "/api/v1/sessions?limt=5", "", "limt"),
        ("GET", "/api/v1/users?limit=0", "", "limit"),
        (
            "POST",
            "/api/v1/prebind",
            r#"{"jid": "alice@localhost", "x": 1}"#,
            "`x`",
        ),
    ];
    for (method, path, body, named) in cases {
        let (status, content_type, problem) = raw(admin, method, path, body);
        assert_eq!(status, 400, "{method} {path} {body}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["title"], "Bad Request");
        assert_eq!(problem["type"], "about:blank");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{method} {path} {body}: {detail}");
    }
    // No token was issued by any of them.
    let (_, tokens) = api(admin, "GET", "/api/v1/users/alice@localhost/tokens", "");
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 0, "{tokens}");
    // Unknown routes and a missing token are problems too.
    let (status, content_type, problem) = raw(admin, "GET", "/api/v1/nothing", "");
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing"));
    let (status, json) = parley_testkit::admin_json(admin, "wrong", "GET", "/api/v1/users", "");
    assert_eq!(status, 401);
    assert_eq!(json["status"], 401);
}
