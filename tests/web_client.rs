//! The built-in chat page (`[http] web_client`): a Converse.js page at `/` that logs in over
//! the listener's own WebSocket or BOSH endpoint, Converse.js served from a local copy of
//! its `dist` directory (and nothing outside it), and the same-origin rule (RFC 6454 §5)
//! that lets that page open a WebSocket while other sites' pages stay refused.
//! The page driven by a real Converse.js in a browser is in tests/browser.rs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use parley_testkit::TestServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A raw HTTP/1.1 GET, the path sent exactly as given: (status, head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A fake Converse.js dist directory next to a file that must never be served.
fn dist() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("locales")).unwrap();
    std::fs::write(dist.join("converse.min.js"), "window.converse = {};").unwrap();
    std::fs::write(dist.join("converse.min.css"), "body {}").unwrap();
    std::fs::write(dist.join("locales/de-LC_MESSAGES-converse-po.js"), "//de").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    (dir, dist)
}

#[test]
fn the_chat_page_loads_converse_from_the_local_dist_and_logs_in_here() {
    let (_dir, dist) = dist();
    let server = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.converse_dist = Some(dist.clone());
    });
    let http = server.handle.http.unwrap();
    let (status, head, page) = get(http, "/");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        page.contains(r#"<script src="/converse/dist/converse.min.js""#),
        "{page}"
    );
    assert!(page.contains(r#"default_domain: "localhost""#), "{page}");
    // Same-origin endpoints, worked out by the page from its own location.
    assert!(
        page.contains("'/xmpp-websocket'") && page.contains("'/http-bind'"),
        "{page}"
    );
    assert!(page.contains("converse.initialize(settings)"), "{page}");

    let (status, head, js) = get(http, "/converse/dist/converse.min.js");
    assert_eq!((status, js.as_str()), (200, "window.converse = {};"));
    assert!(head.contains("content-type: text/javascript"), "{head}");
    let (status, head, _) = get(http, "/converse/dist/converse.min.css");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css"), "{head}");
    let (status, _, de) = get(http, "/converse/dist/locales/de-LC_MESSAGES-converse-po.js");
    assert_eq!((status, de.as_str()), (200, "//de"));
}

#[test]
fn nothing_outside_the_dist_directory_is_served() {
    let (_dir, dist) = dist();
    let server = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.converse_dist = Some(dist.clone());
    });
    let http = server.handle.http.unwrap();
    for path in [
        "/converse/dist/../secret.txt",
        "/converse/dist/%2e%2e/secret.txt",
        "/converse/dist/locales/%2e%2e/%2e%2e/secret.txt",
        "/converse/dist/..%2fsecret.txt",
        "/converse/dist/%2Fetc%2Fpasswd",
        "/converse/dist/missing.js",
        "/converse/dist/",
    ] {
        let (status, _, body) = get(http, path);
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(!body.contains("do not serve"), "{path}");
    }
    // The server is still up and serving.
    assert_eq!(get(http, "/converse/dist/converse.min.js").0, 200);
}

#[test]
fn the_chat_page_is_off_unless_configured_and_can_load_converse_from_a_cdn() {
    let server = TestServer::start(|_| {});
    let http = server.handle.http.unwrap();
    assert_eq!(get(http, "/").0, 404);
    assert_eq!(get(http, "/converse/dist/converse.min.js").0, 404);

    let server = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.public_url = Some("https://chat.example.org".into());
        c.http.converse_url = Some("https://cdn.conversejs.org/12.0.0/dist".into());
    });
    let (status, _, page) = get(server.handle.http.unwrap(), "/");
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"src="https://cdn.conversejs.org/12.0.0/dist/converse.min.js""#),
        "{page}"
    );
    // With a public URL, the page uses it (a proxy may rewrite Host).
    assert!(
        page.contains(r#"const ws = "wss://chat.example.org/xmpp-websocket";"#),
        "{page}"
    );
}

/// By default the page needs no Internet: the Converse.js bundled into the binary is
/// served by every node, and a page whose Converse.js fails to load or start says so.
#[test]
fn by_default_the_bundled_converse_is_served_and_a_failure_is_shown() {
    let server = TestServer::start(|c| c.http.web_client = true);
    let http = server.handle.http.unwrap();
    let (_, _, page) = get(http, "/");
    assert!(
        page.contains(r#"<script src="/converse/dist/converse.min.js""#),
        "{page}"
    );
    assert!(
        page.contains("onerror=\"parleyFail('could not be loaded')\""),
        "{page}"
    );
    assert!(page.contains("id=\"parley-error\""), "{page}");
    let (status, head, js) = get(http, "/converse/dist/converse.min.js");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(
        js.len() > 1_000_000 && js.contains("VERSION_NAME"),
        "{}",
        js.len()
    );
    for file in [
        "converse.min.css",
        "emoji.json",
        "images/logo/conversejs-filled.svg",
    ] {
        let (status, _, _) = get(http, &format!("/converse/dist/{file}"));
        assert_eq!(status, 200, "{file}");
    }
    assert_eq!(get(http, "/converse/dist/../Cargo.toml").0 / 100, 4);
    assert_eq!(get(http, "/converse/dist/nothing.js").0, 404);
}

async fn ws_status(http: SocketAddr, origin: &str) -> Result<(), u16> {
    let mut req = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    req.headers_mut()
        .insert("Origin", HeaderValue::from_str(origin).unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket connect: {e}"),
    }
}

/// RFC 6454 §5 (same origin: scheme, host and port): a page served by this listener — the
/// chat page — may open a WebSocket without being listed in `[http] origins`, whether its
/// origin is the request's Host or `public_url`'s; a page from another port of the same host
/// or another scheme is another origin and stays refused (RFC 7395 §3.1 leaves Origin policy
/// to the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6454_a_same_origin_page_may_open_a_websocket() {
    let server = TestServer::start(|c| c.http.web_client = true);
    let http = server.handle.http.unwrap();
    assert_eq!(ws_status(http, &format!("http://{http}")).await, Ok(()));
    assert_eq!(
        ws_status(http, &format!("http://{}:1", http.ip())).await,
        Err(403)
    );
    assert_eq!(ws_status(http, "https://evil.example").await, Err(403));

    // Behind a proxy that rewrites Host, `public_url` names the pages' origin.
    let proxied = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.public_url = Some("https://chat.example.org/xmpp".into());
    });
    let http = proxied.handle.http.unwrap();
    assert_eq!(ws_status(http, "https://chat.example.org").await, Ok(()));
    assert_eq!(ws_status(http, "http://chat.example.org").await, Err(403));
}
