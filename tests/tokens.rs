//! Authentication tokens (mod_tokenauth style, `secret-token:` of RFC 8959): issued through
//! the admin API and the CLI, used with SASL OAUTHBEARER (RFC 7628) and as a PLAIN password
//! (RFC 4616) over TCP and WebSocket; expired, revoked and password-changed tokens refused;
//! storage holding no usable secret.

use std::net::SocketAddr;

use parley_proto::sasl::{Mechanism, SaslFailure};
use parley_testkit::{Client, ClientError, TestServer};

const ADMIN: &str = "admin-token-0123456789abcdef";

fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    parley_testkit::admin_json(addr, ADMIN, method, path, body)
}

fn issue(server: &TestServer, jid: &str, body: &str) -> (String, String) {
    let (status, json) = admin(
        server.handle.admin.unwrap(),
        "POST",
        &format!("/api/v1/users/{jid}/tokens"),
        body,
    );
    assert_eq!(status, 201, "{json}");
    let token = json["token"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with("secret-token:"),
        "RFC 8959 prefix: {token}"
    );
    (token, json["id"].as_str().unwrap().to_owned())
}

/// Connects over STARTTLS and authenticates with `mechanism` (`password` is the token).
async fn auth(
    server: &TestServer,
    mechanism: Mechanism,
    user: &str,
    password: &str,
) -> Result<Client, ClientError> {
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(mechanism, user, password).await.map(|()| c)
}

fn refused(r: Result<Client, ClientError>) -> SaslFailure {
    match r {
        Err(ClientError::Sasl(f, _)) => f,
        Err(e) => panic!("expected a SASL failure, got {e}"),
        Ok(_) => panic!("the token was accepted"),
    }
}

fn server() -> TestServer {
    TestServer::start(|c| c.admin.token = Some(ADMIN.into()))
}

/// RFC 7628: OAUTHBEARER with an issued token logs in and binds; the authzid must be the
/// token's account; OAUTHBEARER is offered only where PLAIN is (over TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7628_oauthbearer_logs_in_with_a_token() {
    let server = server();
    let (token, _) = issue(&server, "alice@localhost", r#"{"purpose":"test"}"#);
    let mut c = auth(&server, Mechanism::OAuthBearer, "alice@localhost", &token)
        .await
        .expect("OAUTHBEARER with a valid token");
    c.open().await.unwrap();
    assert_eq!(c.bind(Some("tok")).await.unwrap(), "alice@localhost/tok");
    // Without an authzid: the token says who.
    assert!(auth(&server, Mechanism::OAuthBearer, "", &token)
        .await
        .is_ok());
    // §3.2.2: a token presented for another account fails after the error challenge.
    assert_eq!(
        refused(auth(&server, Mechanism::OAuthBearer, "bob@localhost", &token).await),
        SaslFailure::NotAuthorized
    );
    // A made-up token.
    assert_eq!(
        refused(auth(&server, Mechanism::OAuthBearer, "", "secret-token:bm9wZQ").await),
        SaslFailure::NotAuthorized
    );
}

/// RFC 4616 PLAIN with the token as the password (what a Converse.js `credentials_url`
/// returns), for the token's account only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4616_plain_accepts_a_token_as_the_password() {
    let server = server();
    let (token, _) = issue(&server, "alice@localhost", "");
    assert!(auth(&server, Mechanism::Plain, "alice", &token)
        .await
        .is_ok());
    assert_eq!(
        refused(auth(&server, Mechanism::Plain, "bob", &token).await),
        SaslFailure::NotAuthorized
    );
    // The account's password still works.
    assert!(auth(&server, Mechanism::Plain, "alice", "password")
        .await
        .is_ok());
}

/// Expiry, revocation (one, all), and a password change all end a token; the listing shows
/// ids and times, never secrets; last use is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_password_changed_tokens_are_refused() {
    let server = server();
    let admin_addr = server.handle.admin.unwrap();
    let (short, _) = issue(&server, "alice@localhost", r#"{"ttl_s":1}"#);
    let (one, one_id) = issue(&server, "alice@localhost", "");
    let (two, _) = issue(&server, "alice@localhost", "");
    let (three, _) = issue(&server, "alice@localhost", "");
    assert!(auth(&server, Mechanism::Plain, "alice", &one).await.is_ok());
    let (status, list) = admin(
        admin_addr,
        "GET",
        "/api/v1/users/alice@localhost/tokens",
        "",
    );
    assert_eq!(status, 200);
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 4);
    assert!(!list
        .to_string()
        .contains(one.trim_start_matches("secret-token:")));
    let used = tokens.iter().find(|t| t["id"] == one_id.as_str()).unwrap();
    assert!(used["last_used"].as_i64().is_some(), "{used}");

    // The API gave the short token its one-second lifetime.
    let short_id = parley_proto::token::parse(&short).unwrap().id;
    let short_rec = tokens
        .iter()
        .find(|t| t["id"] == short_id.as_str())
        .unwrap();
    assert_eq!(
        short_rec["expires"].as_i64().unwrap() - short_rec["created"].as_i64().unwrap(),
        1000
    );
    // A token past its expiry (stored as issued a minute ago) is refused.
    let expired = server.with_storage(|s| async move {
        let made = parley_proto::token::generate("alice@localhost");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        s.token_put(&parley_storage::TokenRecord {
            id: made.id,
            username: "alice".into(),
            host: "localhost".into(),
            secret_hash: made.secret_hash,
            purpose: "test".into(),
            created_ms: now - 120_000,
            expires_ms: Some(now - 60_000),
            last_used_ms: None,
        })
        .await
        .unwrap();
        made.token
    });
    assert_eq!(
        refused(auth(&server, Mechanism::OAuthBearer, "", &expired).await),
        SaslFailure::NotAuthorized,
        "expired"
    );

    let (status, _) = admin(
        admin_addr,
        "DELETE",
        &format!("/api/v1/tokens/{one_id}"),
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        refused(auth(&server, Mechanism::Plain, "alice", &one).await),
        SaslFailure::NotAuthorized,
        "revoked"
    );

    // A password change invalidates the tokens issued before it.
    assert!(auth(&server, Mechanism::Plain, "alice", &two).await.is_ok());
    server.set_password("alice", "new password");
    assert_eq!(
        refused(auth(&server, Mechanism::Plain, "alice", &two).await),
        SaslFailure::NotAuthorized,
        "password changed"
    );
    assert_eq!(
        refused(auth(&server, Mechanism::Plain, "alice", &three).await),
        SaslFailure::NotAuthorized
    );
    // Sign-out of every token.
    let (four, _) = issue(&server, "alice@localhost", "");
    let (status, json) = admin(
        admin_addr,
        "DELETE",
        "/api/v1/users/alice@localhost/tokens",
        "",
    );
    assert_eq!((status, json["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(
        refused(auth(&server, Mechanism::Plain, "alice", &four).await),
        SaslFailure::NotAuthorized
    );
}

/// The database never holds a usable secret: its bytes contain neither the token nor its
/// secret part, only a SHA-256 of the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_holds_no_usable_secret() {
    let server = server();
    let (token, id) = issue(&server, "alice@localhost", "");
    let secret = parley_proto::token::parse(&token).unwrap().secret;
    let stored =
        server.with_storage(|s| async move { s.tokens_of("alice", "localhost").await.unwrap() });
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id);
    assert_eq!(stored[0].secret_hash, parley_proto::token::hash(&secret));
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("parley.db")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!find(secret.as_bytes()), "the secret is in the database");
    assert!(!find(token.as_bytes()), "the token is in the database");
}
