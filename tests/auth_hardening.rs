//! Authentication hardening (issue 10), over real sockets: the name a delegated backend is
//! asked about is the one bound; SCRAM answers for unknown users and case variants give
//! nothing away (RFC 5802 §5.1 salt and iteration count, RFC 6120 §6.5 failures); JWT
//! audience, issuer, lifetime, account existence, expiry at `exp` and sign-out everywhere
//! (RFC 7519 §4.1); and failed authentications limited per address and per account, with
//! growing delays and then `<temporary-auth-failure/>` (RFC 6120 §6.5), over TCP and
//! WebSocket.

use parking_lot::Mutex;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use parley_proto::jwt::sign_hs256;
use parley_proto::ns;
use parley_proto::sasl::{Mechanism, SaslFailure, ScramClient, ScramHash};
use parley_testkit::{Client, ClientError, TestServer};
use parley_xml::{Element, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "auth-hardening-admin-token-0123456789";
const SECRET: &str = "jwt-secret-shared-with-the-site-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One HTTP/1.1 request to the admin endpoint: (status, body).
fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// STARTTLS from `source`, then SASL with `mechanism`.
async fn login_from(
    server: &TestServer,
    source: &str,
    mechanism: Mechanism,
    user: &str,
    password: &str,
) -> Result<Client, ClientError> {
    let mut c = Client::connect_from(server.c2s(), ip(source)).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(mechanism, user, password).await.map(|()| c)
}

async fn plain(server: &TestServer, user: &str, password: &str) -> Result<Client, ClientError> {
    login_from(server, "127.0.0.1", Mechanism::Plain, user, password).await
}

fn failure(r: Result<Client, ClientError>) -> SaslFailure {
    match r {
        Err(ClientError::Sasl(f, _)) => f,
        Err(e) => panic!("expected a SASL failure: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

// ----- delegated authentication ------------------------------------------------------------

/// A backend with a case-sensitive user store: `ALICE` (not `alice`) and `bob` have the
/// password "right". It records the user names it is asked about.
async fn case_sensitive_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    let json: serde_json::Value = serde_json::from_str(body).unwrap();
                    let user = json["user"].as_str().unwrap_or_default().to_owned();
                    let ok =
                        matches!(user.as_str(), "ALICE" | "bob") && json["password"] == "right";
                    seen.lock().push(user);
                    let status = if ok { "200 OK" } else { "401 Unauthorized" };
                    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                    let _ = s.write_all(reply.as_bytes()).await;
                    return;
                }
            });
        }
    });
    (addr, asked)
}

/// The backend's yes binds exactly the localpart it was asked about: a client that logs in
/// as `ALICE` is asked about as `alice` (nodeprep, RFC 7622 §3.3), so `ALICE`'s yes at the
/// backend can never open a session for `alice`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_backend_is_asked_about_the_normalized_localpart_it_binds() {
    let (addr, asked) = case_sensitive_backend().await;
    let server = TestServer::start(|c| c.auth.delegate_url = Some(format!("http://{addr}/x")));
    assert_eq!(
        failure(plain(&server, "ALICE", "right").await),
        SaslFailure::NotAuthorized,
        "a yes for ALICE must not bind alice"
    );
    let mut c = plain(&server, "Bob", "right").await.expect("bob said yes");
    c.open().await.unwrap();
    assert_eq!(c.bind(Some("d")).await.unwrap(), "bob@localhost/d");
    assert_eq!(*asked.lock(), ["alice", "bob"]);
}

// ----- SCRAM ---------------------------------------------------------------------------------

/// Reads from `s` until `marker`; returns what came up to and including it.
async fn read_until(s: &mut TcpStream, pending: &mut Vec<u8>, marker: &str) -> String {
    loop {
        if let Some(at) = String::from_utf8_lossy(pending).find(marker) {
            let end = at + marker.len();
            let text = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end);
            return text;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the server closed; got {}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// One SCRAM-SHA-256 exchange over plain TCP (encryption not required): the server-first
/// message, and the exact bytes of the server's last answer.
async fn scram(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    )
    .await
    .unwrap();
    read_until(&mut s, &mut pending, "</stream:features>").await;
    let mut client = ScramClient::new(ScramHash::Sha256, user, password, None, false);
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode(client.client_first())
    );
    s.write_all(auth.as_bytes()).await.unwrap();
    let challenge = read_until(&mut s, &mut pending, "</challenge>").await;
    let b64 = challenge
        .rsplit_once('>')
        .map(|(before, _)| before)
        .and_then(|c| c.rsplit_once("</challenge").map(|(b, _)| b))
        .and_then(|c| c.rsplit_once('>').map(|(_, t)| t))
        .unwrap();
    let server_first = B64.decode(b64).unwrap();
    let last = client.client_final(&server_first).unwrap();
    let response = format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(last)
    );
    s.write_all(response.as_bytes()).await.unwrap();
    let answer = read_until(&mut s, &mut pending, "</failure>").await;
    let answer = answer[answer.find("<failure").unwrap()..].to_owned();
    (String::from_utf8(server_first).unwrap(), answer)
}

/// `s=` and `i=` of a server-first message (RFC 5802 §5.1).
fn salt_and_iterations(server_first: &str) -> (String, String) {
    let field = |k: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_owned()
    };
    (field("s="), field("i="))
}

/// RFC 5802 §5.1 and RFC 6120 §6.5: the salt and iteration count are those of the account
/// the name normalizes to, real or fake — `Nobody` and `nobody` get the same fake ones,
/// `ALICE` gets alice's — and every failure is the same bytes: unknown user, wrong password,
/// case variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5802_5_1_scram_answers_do_not_reveal_accounts_through_case_variants() {
    let server = TestServer::start(|c| c.c2s.require_encryption = false);
    let (nobody_upper, fail_nobody_upper) = scram(server.c2s(), "Nobody", "x").await;
    let (nobody, fail_nobody) = scram(server.c2s(), "nobody", "x").await;
    let (alice_upper, fail_alice_upper) = scram(server.c2s(), "ALICE", "wrong").await;
    let (alice, fail_alice) = scram(server.c2s(), "alice", "wrong").await;
    assert_eq!(
        salt_and_iterations(&nobody_upper),
        salt_and_iterations(&nobody),
        "unknown user, case variants"
    );
    assert_eq!(
        salt_and_iterations(&alice_upper),
        salt_and_iterations(&alice),
        "existing user, case variants"
    );
    assert_ne!(
        salt_and_iterations(&nobody).0,
        salt_and_iterations(&alice).0
    );
    assert_eq!(
        salt_and_iterations(&nobody).1,
        salt_and_iterations(&alice).1
    );
    let expected = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
    for (what, bytes) in [
        ("Nobody", fail_nobody_upper),
        ("nobody", fail_nobody),
        ("ALICE, wrong password", fail_alice_upper),
        ("alice, wrong password", fail_alice),
    ] {
        assert_eq!(bytes, expected, "{what}");
    }
}

// ----- JWT -----------------------------------------------------------------------------------

fn jwt(claims: serde_json::Value) -> String {
    sign_hs256(&claims, SECRET.as_bytes())
}

/// RFC 7519 §4.1.1 and §4.1.3: with `jwt_issuer` and `jwt_audience` set, `iss` must match
/// and `aud` must name this server; `exp - iat` may not exceed `jwt_max_lifetime_s`; and a
/// valid JWT for an account that does not exist opens no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7519_jwt_issuer_audience_lifetime_and_account_are_enforced() {
    let server = TestServer::start(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.auth.jwt_audience = Some("chat.example.org".into());
        c.auth.jwt_issuer = Some("https://example.org".into());
        c.auth.jwt_max_lifetime_s = 3600;
    });
    let t = now();
    let good = jwt(
        serde_json::json!({"sub": "alice@localhost", "iss": "https://example.org",
        "aud": ["chat.example.org"], "iat": t, "exp": t + 300}),
    );
    let mut c = plain(&server, "alice", &good).await.expect("a valid JWT");
    c.open().await.unwrap();
    c.bind(Some("jwt")).await.unwrap();
    for (what, claims, user) in [
        (
            "wrong audience",
            serde_json::json!({"sub": "alice@localhost", "iss": "https://example.org",
                "aud": "elsewhere.example", "iat": t, "exp": t + 300}),
            "alice",
        ),
        (
            "no issuer",
            serde_json::json!({"sub": "alice@localhost", "aud": "chat.example.org",
                "iat": t, "exp": t + 300}),
            "alice",
        ),
        (
            "too long",
            serde_json::json!({"sub": "alice@localhost", "iss": "https://example.org",
                "aud": "chat.example.org", "iat": t, "exp": t + 7200}),
            "alice",
        ),
        (
            "no such account",
            serde_json::json!({"sub": "nobody@localhost", "iss": "https://example.org",
                "aud": "chat.example.org", "iat": t, "exp": t + 300}),
            "nobody",
        ),
    ] {
        assert_eq!(
            failure(plain(&server, user, &jwt(claims)).await),
            SaslFailure::NotAuthorized,
            "{what}"
        );
    }
}

/// A JWT session ends at the token's `exp` (status expired), as a token session does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_session_ends_at_exp_with_status_expired() {
    let server = TestServer::start(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.admin.token = Some(ADMIN.into());
    });
    let t = now();
    let short = jwt(serde_json::json!({"sub": "alice@localhost", "iat": t, "exp": t + 4}));
    let mut c = plain(&server, "alice", &short).await.expect("a valid JWT");
    c.open().await.unwrap();
    c.bind(Some("short")).await.unwrap();
    assert_eq!(c.expect_stream_error().await.unwrap(), "policy-violation");
    let admin_addr = server.handle.admin.unwrap();
    parley_testkit::poll_until(
        "the session recorded as expired",
        Duration::from_secs(10),
        || {
            let (_, body) = admin(
                admin_addr,
                "GET",
                "/api/v1/sessions?status=expired&limit=100",
            );
            body.contains("alice@localhost/short").then_some(())
        },
    );
}

/// Sign-out everywhere also ends JWT logins: a JWT issued before it, or one without `iat`,
/// is refused afterwards; one issued after it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_everywhere_refuses_jwts_issued_before_it() {
    let server = TestServer::start(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.admin.token = Some(ADMIN.into());
    });
    let t = now();
    let before = jwt(serde_json::json!({"sub": "alice@localhost", "iat": t - 5, "exp": t + 300}));
    let no_iat = jwt(serde_json::json!({"sub": "alice@localhost", "exp": t + 300}));
    plain(&server, "alice", &before)
        .await
        .expect("valid before the sign-out");
    plain(&server, "alice", &no_iat)
        .await
        .expect("valid before the sign-out");
    let (status, body) = admin(
        server.handle.admin.unwrap(),
        "POST",
        "/api/v1/users/alice@localhost/signout",
    );
    assert_eq!(status, 200, "{body}");
    for (what, token) in [("issued before", &before), ("without iat", &no_iat)] {
        assert_eq!(
            failure(plain(&server, "alice", token).await),
            SaslFailure::NotAuthorized,
            "{what}"
        );
    }
    // Issued after (iat a little ahead is within the leeway).
    let after = jwt(
        serde_json::json!({"sub": "alice@localhost", "iat": now() + 2,
        "exp": now() + 300}),
    );
    plain(&server, "alice", &after)
        .await
        .expect("a JWT issued after the sign-out");
}

// ----- failed-authentication limits ----------------------------------------------------------

fn refusals(server: &TestServer, reason: &str) -> u64 {
    let (_, body) = admin(server.handle.admin.unwrap(), "GET", "/metrics");
    let label = format!("reason=\"{reason}\"}}");
    body.lines()
        .filter(|l| l.starts_with("parley_refusals_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next text message, parsed (RFC 7395 §3.3.1: one element per message).
async fn next(ws: &mut Ws) -> Element {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            return Element::parse(text.as_bytes(), &Limits::default()).unwrap();
        }
    }
}

/// A PLAIN login over WebSocket (RFC 7395) from 127.0.0.1: the SASL answer element.
async fn websocket_plain(http: SocketAddr, user: &str, password: &str) -> Element {
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
    ))
    .await
    .unwrap();
    next(&mut ws).await;
    let features = next(&mut ws).await;
    assert!(features.has_child("mechanisms", ns::SASL), "{features}");
    let payload = B64.encode(format!("\0{user}\0{password}"));
    ws.send(Message::text(format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
    )))
    .await
    .unwrap();
    next(&mut ws).await
}

/// RFC 6120 §6.5 temporary-auth-failure: after `failure_ip_refuse_after` failed attempts
/// from one address — whatever the mechanism (PLAIN, SCRAM, OAUTHBEARER) and account — its
/// next attempts are refused before any check, right password or not, over TCP and over
/// WebSocket alike; other addresses are unaffected. Each refusal is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_5_an_address_past_its_failures_gets_temporary_auth_failure() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.auth.failure_ip_delay_after = 4;
        c.auth.failure_ip_refuse_after = 4;
    });
    let attacker = "127.0.0.1";
    for (mechanism, user, password) in [
        (Mechanism::Plain, "alice", "wrong"),
        (Mechanism::ScramSha256, "bob", "wrong"),
        (Mechanism::OAuthBearer, "", "secret-token:not-a-real-one"),
        (Mechanism::Plain, "nobody", "wrong"),
    ] {
        assert_eq!(
            failure(login_from(&server, attacker, mechanism, user, password).await),
            SaslFailure::NotAuthorized,
            "{mechanism}"
        );
    }
    for mechanism in [Mechanism::ScramSha256, Mechanism::Plain] {
        assert_eq!(
            failure(login_from(&server, attacker, mechanism, "carol", "password").await),
            SaslFailure::TemporaryAuthFailure,
            "{mechanism} with the right password, from the refused address"
        );
    }
    let answer = websocket_plain(server.handle.http.unwrap(), "carol", "password").await;
    assert_eq!(
        SaslFailure::from_element(&answer).map(|f| f.0),
        Some(SaslFailure::TemporaryAuthFailure),
        "{answer}"
    );
    login_from(
        &server,
        "127.0.0.2",
        Mechanism::ScramSha256,
        "carol",
        "password",
    )
    .await
    .expect("another address is not refused");
    // The counter is process-wide; only this test refuses for this reason.
    assert!(refusals(&server, "auth_failures_ip") >= 3);
}

/// An account under attack is refused only to the addresses that failed on it: after
/// `failure_account_refuse_after` failures on alice from 127.0.0.2, that address gets
/// temporary-auth-failure for alice (even with her password) but not for bob, and alice
/// herself still logs in from 127.0.0.3 — the attacker cannot lock her out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacked_account_is_refused_only_to_the_addresses_that_failed_on_it() {
    let server = TestServer::start(|c| {
        c.admin.token = Some(ADMIN.into());
        c.auth.failure_account_delay_after = 3;
        c.auth.failure_account_refuse_after = 3;
    });
    for _ in 0..3 {
        assert_eq!(
            failure(login_from(&server, "127.0.0.2", Mechanism::Plain, "alice", "guess").await),
            SaslFailure::NotAuthorized
        );
    }
    assert_eq!(
        failure(login_from(&server, "127.0.0.2", Mechanism::Plain, "ALICE", "password").await),
        SaslFailure::TemporaryAuthFailure,
        "the attacking address, any case variant"
    );
    login_from(
        &server,
        "127.0.0.3",
        Mechanism::ScramSha256,
        "alice",
        "password",
    )
    .await
    .expect("the owner, from a clean address");
    login_from(&server, "127.0.0.2", Mechanism::Plain, "bob", "password")
        .await
        .expect("another account from the attacking address");
    assert!(refusals(&server, "auth_failures_account") >= 1);
}

/// Past `failure_ip_delay_after` failures the failure answer is held back (an actor timer,
/// not a blocked thread) for at least `failure_delay_ms`. Only a lower bound is checked:
/// nothing here depends on the machine being fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_answers_past_the_threshold_are_delayed() {
    let delay = Duration::from_millis(600);
    let server = TestServer::start(|c| {
        c.auth.failure_ip_delay_after = 1;
        c.auth.failure_delay_ms = delay.as_millis() as u64;
        c.auth.failure_max_delay_ms = delay.as_millis() as u64;
    });
    let mut c = Client::connect(server.c2s()).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    assert!(c.auth(Mechanism::Plain, "alice", "wrong").await.is_err());
    let started = Instant::now();
    assert_eq!(
        failure(
            c.auth(Mechanism::ScramSha256, "alice", "wrong")
                .await
                .map(|()| c)
        ),
        SaslFailure::NotAuthorized
    );
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
}
