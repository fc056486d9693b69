//! Site logins without XMPP passwords: HS256 JWTs shared with a web site (RFC 7519; the
//! algorithm pinned per RFC 8725 §3.1) and delegated authentication against a small HTTP
//! backend that the test runs, failing closed on errors and timeouts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parley_proto::jwt::sign_hs256;
use parley_proto::ns;
use parley_proto::sasl::{Mechanism, SaslFailure};
use parley_testkit::{Client, ClientError, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "jwt-secret-shared-with-the-site-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn plain(server: &TestServer, user: &str, password: &str) -> Result<Client, ClientError> {
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(Mechanism::Plain, user, password).await.map(|()| c)
}

fn failure(r: Result<Client, ClientError>) -> SaslFailure {
    match r {
        Err(ClientError::Sasl(f, _)) => f,
        Err(e) => panic!("expected a SASL failure: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// RFC 7519 / RFC 7518 §3.2: an HS256 JWT for the account logs in as the PLAIN password;
/// another algorithm, an expired token, a bad signature, or a JWT for another account do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7519_hs256_jwt_logins_with_the_algorithm_pinned() {
    let server = TestServer::start(|c| c.auth.jwt_secret = Some(SECRET.into()));
    let good = sign_hs256(
        &serde_json::json!({"sub": "alice@localhost", "iat": now(), "exp": now() + 300}),
        SECRET.as_bytes(),
    );
    let mut c = plain(&server, "alice", &good).await.expect("a valid JWT");
    c.open().await.unwrap();
    assert_eq!(c.bind(Some("jwt")).await.unwrap(), "alice@localhost/jwt");

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = b64.encode(format!(
        r#"{{"sub":"alice@localhost","exp":{}}}"#,
        now() + 300
    ));
    let none_alg = format!("{}.{claims}.", b64.encode(r#"{"alg":"none"}"#));
    let hs512 = format!("{}.{claims}.AAAA", b64.encode(r#"{"alg":"HS512"}"#));
    let expired = sign_hs256(
        &serde_json::json!({"sub": "alice@localhost", "exp": now() - 120}),
        SECRET.as_bytes(),
    );
    let forged = sign_hs256(
        &serde_json::json!({"sub": "alice@localhost", "exp": now() + 300}),
        b"not the shared secret at all, no no no",
    );
    let other = sign_hs256(
        &serde_json::json!({"sub": "bob@localhost", "exp": now() + 300}),
        SECRET.as_bytes(),
    );
    for (what, jwt) in [
        (
            "alg none",
            none_alg.trim_end_matches('.').to_owned() + ".c2ln",
        ),
        ("HS512", hs512),
        ("expired", expired),
        ("bad signature", forged),
        ("another account", other),
    ] {
        assert_eq!(
            failure(plain(&server, "alice", &jwt).await),
            SaslFailure::NotAuthorized,
            "{what}"
        );
    }
}

/// A tiny backend: 200 for password "right", 401 otherwise; "slow" never answers.
async fn backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() < len {
                            continue;
                        }
                        seen.fetch_add(1, Ordering::SeqCst);
                        let json: serde_json::Value = serde_json::from_str(body).unwrap();
                        assert_eq!(json["user"], "alice");
                        assert_eq!(json["host"], "localhost");
                        let status = match json["password"].as_str() {
                            Some("right") => "200 OK",
                            Some("slow") => {
                                // Never answers: the server's timeout must end it.
                                std::future::pending::<()>().await;
                                return;
                            }
                            _ => "401 Unauthorized",
                        };
                        let _ = s
                            .write_all(
                                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (addr, calls)
}

/// Delegated authentication: the backend decides; SCRAM is not offered (the server has no
/// keys for such users); a timeout or an unreachable backend refuses the login with
/// `<temporary-auth-failure/>` (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_authentication_fails_closed() {
    let (addr, calls) = backend().await;
    let server = TestServer::start(|c| {
        c.auth.delegate_url = Some(format!("http://{addr}/xmpp-auth"));
        c.auth.delegate_timeout_ms = 500;
    });
    let mut probe = Client::connect(server.c2s()).await;
    probe.open().await.unwrap();
    probe.starttls().await.unwrap();
    let features = probe.open().await.unwrap();
    let mechs: Vec<String> = features
        .get_child("mechanisms", ns::SASL)
        .unwrap()
        .children()
        .map(|m| m.text())
        .collect();
    assert_eq!(mechs, ["PLAIN", "OAUTHBEARER"], "{features}");

    let mut c = plain(&server, "alice", "right")
        .await
        .expect("the backend said yes");
    c.open().await.unwrap();
    c.bind(Some("delegated")).await.unwrap();
    assert_eq!(
        failure(plain(&server, "alice", "wrong").await),
        SaslFailure::NotAuthorized
    );
    assert_eq!(
        failure(plain(&server, "alice", "slow").await),
        SaslFailure::TemporaryAuthFailure,
        "a backend past its timeout fails closed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A backend that is not there.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], parley_testkit::free_port()));
    let server = TestServer::start(|c| c.auth.delegate_url = Some(format!("http://{dead}/x")));
    assert_eq!(
        failure(plain(&server, "alice", "right").await),
        SaslFailure::TemporaryAuthFailure
    );
}
