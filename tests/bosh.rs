//! BOSH (XEP-0124, XEP-0206) on the HTTP listener with raw HTTP requests: session creation,
//! SASL and the stream restart, binding, chat with a TCP client through a held request, the
//! RID window (in order, repeated, too high, too low), an unknown SID, and termination.

use std::net::SocketAddr;

use base64::Engine as _;
use parley_proto::ns;
use parley_testkit::im::chat;
use parley_testkit::{Client, TestServer};
use parley_xml::{Element, Limits};

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// POSTs a body to /http-bind; returns the parsed answer.
async fn post(http: SocketAddr, body: String) -> Element {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, payload) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        Element::parse(payload.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("not a body: {payload}: {e}"))
    })
    .await
    .unwrap()
}

/// Waits until the server answers `n` BOSH requests at once (its `/metrics`), so that a
/// test acts while a request is known to be held.
async fn requests_in_flight(server: &TestServer, n: usize) {
    let admin = server.handle.admin.expect("admin endpoint");
    parley_testkit::poll_until(
        &format!("{n} BOSH requests in flight"),
        std::time::Duration::from_secs(10),
        || {
            let metrics = parley_testkit::cluster::http_get(admin, "/metrics", None)
                .map(|(_, b)| b)
                .unwrap_or_default();
            let now = metrics
                .lines()
                .find(|l| l.starts_with("parley_bosh_requests_in_flight{"))
                .and_then(|l| l.rsplit_once(' '))
                .and_then(|(_, v)| v.parse::<usize>().ok());
            (now == Some(n)).then_some(())
        },
    );
}

fn body(sid: &str, rid: u64, extra: &str, children: &str) -> String {
    format!("<body xmlns='{HTTPBIND}' sid='{sid}' rid='{rid}' {extra}>{children}</body>")
}

fn terminated_with(b: &Element, condition: &str) {
    assert!(b.is("body", HTTPBIND), "{b}");
    assert_eq!(b.attr("type"), Some("terminate"), "{b}");
    assert_eq!(b.attr("condition"), Some(condition), "{b}");
}

/// XEP-0124 §7.1 / XEP-0206 §3: a new session answers with its parameters and the stream
/// features.
async fn create(http: SocketAddr, rid: u64) -> (String, Element) {
    let b = post(
        http,
        format!(
            "<body xmlns='{HTTPBIND}' content='text/xml; charset=utf-8' to='localhost' rid='{rid}' \
             wait='5' hold='1' ver='1.6' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
        ),
    )
    .await;
    assert!(b.is("body", HTTPBIND), "{b}");
    let sid = b.attr("sid").expect("sid").to_owned();
    assert_eq!(sid.len(), 32, "128 random bits: {sid}");
    assert_eq!(b.attr("requests"), Some("2"));
    assert_eq!(b.attr("hold"), Some("1"));
    assert_eq!(b.attr("wait"), Some("5"));
    assert_eq!(b.attr("xmpp:version"), Some("1.0"));
    let features = b
        .children()
        .find(|c| c.is("features", ns::STREAM))
        .expect("stream features in the first answer")
        .clone();
    (sid, features)
}

/// XEP-0206: login, restart, bind, and chat with a TCP client both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0206_login_restart_bind_and_chat() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.unwrap();
    let (sid, features) = create(http, 1000).await;
    assert!(features.has_child("mechanisms", ns::SASL), "{features}");
    let creds = base64::engine::general_purpose::STANDARD.encode("\0alice\0password");
    let b = post(
        http,
        body(
            &sid,
            1001,
            "",
            &format!(
                "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
                ns::SASL
            ),
        ),
    )
    .await;
    assert!(b.has_child("success", ns::SASL), "{b}");
    // XEP-0206 §5: the restart answers with the new features.
    let b = post(
        http,
        body(
            &sid,
            1002,
            "xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='localhost'",
            "",
        ),
    )
    .await;
    let features = b
        .children()
        .find(|c| c.is("features", ns::STREAM))
        .expect("features");
    assert!(features.has_child("bind", ns::BIND), "{b}");
    let b = post(
        http,
        body(
            &sid,
            1003,
            "",
            "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bosh</resource></bind></iq>",
        ),
    )
    .await;
    let iq = b
        .children()
        .find(|c| c.is("iq", ns::CLIENT))
        .expect("bind result");
    assert_eq!(iq.attr("type"), Some("result"), "{b}");

    let mut bob = Client::login(server.c2s(), "bob", Some("tcp")).await;
    let b = post(
        http,
        body(
            &sid,
            1004,
            "",
            "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>via bosh</body></message>",
        ),
    )
    .await;
    assert!(b.is("body", HTTPBIND));
    let got = bob.expect_message_body("via bosh").await.unwrap();
    assert_eq!(got.attr("from"), Some("alice@localhost/bosh"));

    // A held request receives what arrives meanwhile.
    let held = tokio::spawn(post(http, body(&sid, 1005, "", "")));
    requests_in_flight(&server, 1).await;
    bob.send(&chat("alice@localhost/bosh", "chat", "to bosh"))
        .await;
    let b = held.await.unwrap();
    let m = b
        .children()
        .find(|c| c.is("message", ns::CLIENT))
        .expect("the message");
    assert_eq!(
        m.get_child("body", ns::CLIENT).map(|x| x.text()),
        Some("to bosh".to_owned())
    );

    // §14.3: a client that gives up on a held request and repeats it gets the same answer
    // once there is one (and the session lives on).
    let first = tokio::spawn(post(http, body(&sid, 1006, "", "")));
    requests_in_flight(&server, 1).await;
    let repeat = tokio::spawn(post(http, body(&sid, 1006, "", "")));
    requests_in_flight(&server, 2).await;
    bob.send(&chat("alice@localhost/bosh", "chat", "once"))
        .await;
    let (first, repeat) = (first.await.unwrap(), repeat.await.unwrap());
    assert_eq!(first.to_string(), repeat.to_string());
    assert!(first.to_string().contains("once"), "{first}");

    let b = post(http, body(&sid, 1007, "type='terminate'", "")).await;
    assert_eq!(b.attr("type"), Some("terminate"), "{b}");
}

/// XEP-0206 §6: a stream error ends the BOSH session with condition remote-stream-error
/// and the error as payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0206_6_stream_errors_end_the_session() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.unwrap();
    let (sid, _) = create(http, 7).await;
    let b = post(
        http,
        body(
            &sid,
            8,
            "",
            "<message xmlns='jabber:client' to='bob@localhost'><body>too early</body></message>",
        ),
    )
    .await;
    terminated_with(&b, "remote-stream-error");
    let err = b
        .children()
        .find(|c| c.is("error", ns::STREAM))
        .expect("the stream error");
    assert!(err.has_child("not-authorized", ns::STREAM_ERRORS), "{b}");
}

/// XEP-0124 §14: a repeated RID gets the same answer; RIDs above the window or below what
/// is cached end the session with item-not-found, the same for both; §17.2: an unknown SID
/// gets item-not-found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0124_14_rid_window() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.unwrap();

    let (sid, _) = create(http, 50).await;
    let wrong = format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>",
        ns::SASL,
        base64::engine::general_purpose::STANDARD.encode("\0alice\0wrong")
    );
    let first = post(http, body(&sid, 51, "", &wrong)).await;
    assert!(first.has_child("failure", ns::SASL), "{first}");
    let again = post(http, body(&sid, 51, "", &wrong)).await;
    assert_eq!(
        first.to_string(),
        again.to_string(),
        "§14.3: the cached answer"
    );
    terminated_with(&post(http, body(&sid, 60, "", "")).await, "item-not-found");
    // The session is gone after that.
    terminated_with(&post(http, body(&sid, 52, "", "")).await, "item-not-found");

    let (sid, _) = create(http, 500).await;
    terminated_with(&post(http, body(&sid, 10, "", "")).await, "item-not-found");

    terminated_with(
        &post(http, body("0123456789abcdef0123456789abcdef", 1, "", "")).await,
        "item-not-found",
    );
    terminated_with(&post(http, "<nonsense/>".into()).await, "bad-request");
}

/// Prebind: the admin API creates an authenticated, bound BOSH session for a real account
/// and answers `{jid, sid, rid}`; a client that attaches with them continues at `rid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebind_creates_a_bound_session_to_attach_to() {
    const ADMIN: &str = "prebind-admin-token-0123456789";
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let http = server.handle.http.unwrap();
    let admin = server.handle.admin.unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let body = r#"{"jid":"alice@localhost","resource":"web"}"#;
        let mut s = std::net::TcpStream::connect(admin).unwrap();
        write!(
            s,
            "POST /api/v1/prebind HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json: serde_json::Value =
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["jid"], "alice@localhost/web");
    let sid = json["sid"].as_str().unwrap().to_owned();
    let rid = json["rid"].as_u64().unwrap();
    let mut bob = Client::login(server.c2s(), "bob", Some("tcp")).await;
    // The request may be held up to `wait`: send it from a thread of its own.
    let request = body(
        &sid,
        rid,
        "",
        "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>prebound</body></message>",
    );
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(http) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(90)));
            let _ = write!(
                s,
                "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{request}",
                request.len()
            );
            // Keep the request open until it is answered.
            let _ = s.read_to_string(&mut String::new());
        }
    });
    let m = bob.expect_message_body("prebound").await.unwrap();
    assert_eq!(m.attr("from"), Some("alice@localhost/web"));
    // The admin API names each session's transport (issue 17).
    let (_, list) = parley_testkit::admin_json(
        admin,
        ADMIN,
        "GET",
        "/api/v1/users/alice@localhost/sessions",
        "",
    );
    assert_eq!(list["sessions"][0]["transport"], "bosh", "{list}");
    let (_, list) = parley_testkit::admin_json(
        admin,
        ADMIN,
        "GET",
        "/api/v1/users/bob@localhost/sessions",
        "",
    );
    assert_eq!(list["sessions"][0]["transport"], "tls", "{list}");
}

/// XEP-0124 §10/§12: with `hold='1'` a held request is answered as soon as a newer one
/// arrives, and output never goes to the newer while the older is still held — Strophe.js,
/// answered out of order, abandons and resends the older request. A request whose
/// connection went away before its answer can be repeated (§14.3) and is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0124_10_older_requests_are_answered_first_and_abandoned_ones_repeat() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.unwrap();
    let (sid, _) = create(http, 700).await;

    let held = tokio::spawn(post(http, body(&sid, 701, "", "")));
    requests_in_flight(&server, 1).await;
    let wrong = format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>",
        ns::SASL,
        base64::engine::general_purpose::STANDARD.encode("\0alice\0wrong")
    );
    let newer = post(http, body(&sid, 702, "", &wrong)).await;
    // The older one was answered when the newer arrived, long before its 5 s wait.
    let older = tokio::time::timeout(std::time::Duration::from_secs(3), held)
        .await
        .expect("the held request answered once a newer one came")
        .unwrap();
    let failure_in = |b: &Element| b.has_child("failure", ns::SASL);
    assert!(
        failure_in(&older) || failure_in(&newer),
        "the SASL failure reached one of them: {older} / {newer}"
    );

    // A held request whose client closes the connection, then repeats the RID.
    let raw = body(&sid, 703, "", "");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{raw}",
            raw.len()
        )
        .unwrap();
        // Dropped here: the connection closes before any answer.
    })
    .await
    .unwrap();
    requests_in_flight(&server, 0).await;
    let repeat = post(http, body(&sid, 703, "", "")).await;
    assert!(repeat.is("body", HTTPBIND), "{repeat}");
    assert_ne!(repeat.attr("type"), Some("terminate"), "{repeat}");
    // And the session goes on.
    let next = post(http, body(&sid, 704, "", &wrong)).await;
    assert_ne!(next.attr("type"), Some("terminate"), "{next}");
}
