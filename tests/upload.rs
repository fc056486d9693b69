//! HTTP file upload (XEP-0363) end to end: slot requests over XMPP to `upload.localhost`,
//! then the PUT and GET over the server's HTTP listener, with raw XML and raw HTTP. Bad
//! input (oversize, forged or expired slots, wrong lengths, paths outside the store) gets
//! its error and stores nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use parley_testkit::{Client, TestServer};
use parley_xml::Element;

const NS: &str = "urn:xmpp:http:upload:0";

fn next_id() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("up{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn server() -> TestServer {
    TestServer::start(|c| {
        c.upload.enabled = true;
        c.upload.max_file_bytes = 1000;
        c.upload.quota_bytes = 1500;
        c.upload.allowed_types = vec!["image/*".into(), "text/plain".into()];
    })
}

/// One HTTP request; the status, the headers (lowercased names) and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(parley_testkit::TIMEOUT)).unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, out[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The path and query of a URL on the test server (`http://127.0.0.1:port/...`).
fn target(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}

async fn request_slot(
    client: &mut Client,
    filename: &str,
    size: &str,
    ty: Option<&str>,
) -> Element {
    let mut request = Element::new("request", NS)
        .with_attr("filename", filename)
        .with_attr("size", size);
    if let Some(ty) = ty {
        request = request.with_attr("content-type", ty);
    }
    client
        .iq(&Element::new("iq", "jabber:client")
            .with_attr("id", next_id())
            .with_attr("type", "get")
            .with_attr("to", "upload.localhost")
            .with_child(request))
        .await
        .expect("an answer to the slot request")
}

fn urls(reply: &Element) -> (String, String) {
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let slot = reply.get_child("slot", NS).expect("a slot");
    let put = slot
        .get_child("put", NS)
        .and_then(|p| p.attr("url"))
        .unwrap();
    let get = slot
        .get_child("get", NS)
        .and_then(|g| g.attr("url"))
        .unwrap();
    (put.to_owned(), get.to_owned())
}

fn condition(reply: &Element) -> String {
    assert_eq!(reply.attr("type"), Some("error"), "{reply}");
    let error = reply.get_child("error", "jabber:client").expect("an error");
    error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap()
}

/// XEP-0363 §3 and XEP-0030: the server lists the service, which names itself and its
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_3_the_service_is_discovered_with_its_limit() {
    let server = server();
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let items = alice
        .iq(&Element::new("iq", "jabber:client")
            .with_attr("id", next_id())
            .with_attr("type", "get")
            .with_attr("to", "localhost")
            .with_child(Element::new(
                "query",
                "http://jabber.org/protocol/disco#items",
            )))
        .await
        .unwrap();
    assert!(
        items.to_string().contains("jid=\"upload.localhost\"")
            || items.to_string().contains("jid='upload.localhost'"),
        "{items}"
    );
    let info = alice
        .iq(&Element::new("iq", "jabber:client")
            .with_attr("id", next_id())
            .with_attr("type", "get")
            .with_attr("to", "upload.localhost")
            .with_child(Element::new(
                "query",
                "http://jabber.org/protocol/disco#info",
            )))
        .await
        .unwrap();
    let text = info.to_string();
    assert!(
        text.contains("category=\"store\"") || text.contains("category='store'"),
        "{text}"
    );
    assert!(text.contains(NS), "{text}");
    assert!(text.contains(">1000<"), "max-file-size in the form: {text}");
}

/// XEP-0363 §4 and §6: a slot, a PUT of exactly its size, then the GET serves the same
/// bytes with the type, length, ranges and safe headers; the slot cannot be used twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_4_slot_put_and_get_round_trip() {
    let server = server();
    let http_addr = server.handle.http.expect("HTTP listener");
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let body: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
    let reply = request_slot(&mut alice, "photo 1 é.png", "600", Some("image/png")).await;
    let (put, get) = urls(&reply);
    assert!(
        get.starts_with(&format!("http://{http_addr}/upload/")),
        "{get}"
    );
    // Before the PUT nothing is there.
    assert_eq!(http(http_addr, "GET", &target(&get), &[], b"").0, 404);
    let (status, _, _) = http(
        http_addr,
        "PUT",
        &target(&put),
        &[("Content-Length", "600"), ("Content-Type", "image/png")],
        &body,
    );
    assert_eq!(status, 201);
    let (status, headers, got) = http(http_addr, "GET", &target(&get), &[], b"");
    assert_eq!(status, 200);
    assert_eq!(got, body, "the same bytes come back");
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    assert_eq!(header(&headers, "content-length"), Some("600"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert!(header(&headers, "content-disposition").is_some_and(|d| d.starts_with("inline")));
    // Ranges (RFC 9110 §14).
    let (status, _, part) = http(
        http_addr,
        "GET",
        &target(&get),
        &[("Range", "bytes=10-19")],
        b"",
    );
    assert_eq!(status, 206);
    assert_eq!(part, &body[10..20]);
    // The same slot again: refused, the file unchanged.
    let (status, _, _) = http(
        http_addr,
        "PUT",
        &target(&put),
        &[("Content-Length", "600"), ("Content-Type", "image/png")],
        &vec![0u8; 600],
    );
    assert_eq!(status, 409);
    assert_eq!(http(http_addr, "GET", &target(&get), &[], b"").2, body);
    // Counted for operators (docs/metrics.md).
    let (_, metrics) =
        parley_testkit::http_get(server.handle.admin.unwrap(), "/metrics", None).expect("metrics");
    for want in [
        "parley_uploads_total{",
        "result=\"stored\"",
        "parley_upload_bytes_total{",
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
}

/// XEP-0363 §5: too large (with the limit), a type not allowed, a bad name, and the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_5_slot_requests_are_checked() {
    let server = server();
    let http_addr = server.handle.http.unwrap();
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let big = request_slot(&mut alice, "big.png", "1001", Some("image/png")).await;
    assert_eq!(condition(&big), "not-acceptable");
    assert!(big.to_string().contains("file-too-large"), "{big}");
    assert!(big.to_string().contains(">1000<"), "{big}");
    let exe = request_slot(&mut alice, "x.exe", "10", Some("application/x-msdownload")).await;
    assert_eq!(condition(&exe), "not-acceptable");
    for name in ["../../etc/passwd", "a/b", "."] {
        let bad = request_slot(&mut alice, name, "10", Some("text/plain")).await;
        assert_eq!(condition(&bad), "bad-request", "{name}");
    }
    let bad_size = request_slot(&mut alice, "a.txt", "-5", Some("text/plain")).await;
    assert_eq!(condition(&bad_size), "bad-request");
    // Quota 1500: 1000 stored, then a 600-byte slot is refused.
    let (put, _) = urls(&request_slot(&mut alice, "a.txt", "1000", Some("text/plain")).await);
    let (status, _, _) = http(
        http_addr,
        "PUT",
        &target(&put),
        &[("Content-Length", "1000"), ("Content-Type", "text/plain")],
        &[b'a'; 1000],
    );
    assert_eq!(status, 201);
    let over = request_slot(&mut alice, "b.txt", "600", Some("text/plain")).await;
    assert_eq!(condition(&over), "resource-constraint");
    // Another account has its own quota.
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    urls(&request_slot(&mut bob, "b.txt", "600", Some("text/plain")).await);
}

/// Hostile PUTs: a forged or altered signature, a body longer or shorter than the slot, a
/// path outside the store, another type: each refused, and nothing is served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_bad_puts_store_nothing() {
    let server = server();
    let http_addr = server.handle.http.unwrap();
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let (put, get) = urls(&request_slot(&mut alice, "n.txt", "10", Some("text/plain")).await);
    let put_t = target(&put);
    let headers = [("Content-Length", "10"), ("Content-Type", "text/plain")];
    // A larger size signed for 10 bytes.
    let stretched = put_t.replace("size=10", "size=1000");
    assert_eq!(
        http(
            http_addr,
            "PUT",
            &stretched,
            &[("Content-Length", "1000")],
            &[0; 1000]
        )
        .0,
        403
    );
    // A forged signature.
    let sig_at = put_t.find("sig=").unwrap() + 4;
    let mut forged = put_t.clone();
    forged.replace_range(sig_at..sig_at + 4, "AAAA");
    assert_eq!(http(http_addr, "PUT", &forged, &headers, &[1; 10]).0, 403);
    // Another file name on the same signature.
    let renamed = put_t.replacen("/n.txt?", "/m.txt?", 1);
    assert_eq!(http(http_addr, "PUT", &renamed, &headers, &[1; 10]).0, 403);
    // Declared lengths other than the slot's.
    assert_eq!(
        http(
            http_addr,
            "PUT",
            &put_t,
            &[("Content-Length", "11")],
            &[1; 11]
        )
        .0,
        400
    );
    assert_eq!(
        http(
            http_addr,
            "PUT",
            &put_t,
            &[("Content-Length", "9")],
            &[1; 9]
        )
        .0,
        400
    );
    // Another type than the slot's.
    assert_eq!(
        http(
            http_addr,
            "PUT",
            &put_t,
            &[("Content-Length", "10"), ("Content-Type", "text/html")],
            &[1; 10]
        )
        .0,
        400
    );
    // Paths outside the store.
    for path in [
        "/upload/../../etc/passwd",
        "/upload/%2e%2e/%2e%2e/etc/passwd",
        "/upload/..%2f..%2fparley.db/x",
    ] {
        let (status, _, body) = http(http_addr, "GET", path, &[], b"");
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(
        http(http_addr, "GET", &target(&get), &[], b"").0,
        404,
        "nothing stored"
    );
    // The real upload still works after all that.
    assert_eq!(
        http(http_addr, "PUT", &put_t, &headers, b"0123456789").0,
        201
    );
    let (status, headers, body) = http(http_addr, "GET", &target(&get), &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
    assert!(
        header(&headers, "content-disposition").is_some_and(|d| d.starts_with("attachment")),
        "{headers:?}"
    );
}

/// A slot's expiry cannot be moved: the signature covers it (a slot whose own time has
/// passed is refused the same way, 403, as `parley-upload`'s unit tests show without
/// waiting for one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_a_slot_expiry_cannot_be_moved() {
    let server = TestServer::start(|c| {
        c.upload.enabled = true;
        c.upload.slot_ttl_s = 10;
    });
    let http_addr = server.handle.http.unwrap();
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let (put, _) = urls(&request_slot(&mut alice, "n.txt", "3", None).await);
    let put_t = target(&put);
    let at = put_t.find("expires=").unwrap() + 8;
    let end = put_t[at..].find('&').unwrap() + at;
    let mut past = put_t.clone();
    past.replace_range(at..end, "1");
    assert_eq!(
        http(http_addr, "PUT", &past, &[("Content-Length", "3")], b"abc").0,
        403
    );
    let far = put.replace(&put_t[at..end], "99999999999999");
    assert_eq!(
        http(
            http_addr,
            "PUT",
            &target(&far),
            &[("Content-Length", "3")],
            b"abc"
        )
        .0,
        403
    );
}

/// Cluster: a slot one node hands out is taken by another (the secret is the cluster's,
/// the directory shared), and the file is served by either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_slots_work_on_any_node_of_a_cluster() {
    use parley_testkit::cluster::{add_users, random_prefix, wait_members, ClusterNode};
    let db = parley_testkit::shared_pg().database();
    add_users(&db, &["alice"]);
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = random_prefix("upload");
    let files = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[upload]\nenabled = true\ndir = \"{}\"\n",
        files.path().display()
    );
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 2);
    let mut alice = Client::login(nodes[0].c2s, "alice", Some("n1")).await;
    let (put, get) = urls(&request_slot(&mut alice, "a.txt", "5", Some("text/plain")).await);
    assert!(put.contains(&nodes[0].http.to_string()), "{put}");
    let headers = [("Content-Length", "5"), ("Content-Type", "text/plain")];
    assert_eq!(
        http(nodes[1].http, "PUT", &target(&put), &headers, b"hello").0,
        201
    );
    for node in &nodes {
        let (status, _, body) = http(node.http, "GET", &target(&get), &[], b"");
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"hello"[..]),
            "{}",
            node.id
        );
    }
}

/// Hostile: slots taken in advance and sent all at once. Uploads in progress count against
/// the quota and are bounded per account (`max_uploads_per_user`), so the fifth open PUT is
/// refused (429) before a byte is written; clients that go away mid-body leave no partial
/// files behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_uploads_in_progress_are_bounded_and_cleaned_up() {
    let server = TestServer::start(|c| c.upload.enabled = true);
    let http_addr = server.handle.http.unwrap();
    let uploads_dir = server.config.server.data_dir.join("uploads");
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut puts = Vec::new();
    for n in 0..5 {
        let name = format!("f{n}.txt");
        let (put, _) = urls(&request_slot(&mut alice, &name, "1000", Some("text/plain")).await);
        puts.push(put);
    }
    // Four PUTs that send their headers and half a body, then wait.
    let mut open = Vec::new();
    for put in &puts[..4] {
        let mut s = TcpStream::connect(http_addr).unwrap();
        write!(
            s,
            "PUT {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n",
            target(put)
        )
        .unwrap();
        s.write_all(&[b'x'; 500]).unwrap();
        open.push(s);
    }
    let partials = || {
        std::fs::read_dir(&uploads_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
                    .count()
            })
            .unwrap_or(0)
    };
    parley_testkit::poll_until("four uploads in progress", parley_testkit::TIMEOUT, || {
        (partials() == 4).then_some(())
    });
    let (status, _, _) = http(
        http_addr,
        "PUT",
        &target(&puts[4]),
        &[("Content-Length", "1000"), ("Content-Type", "text/plain")],
        &[b'y'; 1000],
    );
    assert_eq!(status, 429, "a fifth upload at once is refused");
    drop(open);
    parley_testkit::poll_until(
        "abandoned uploads cleaned up",
        parley_testkit::TIMEOUT,
        || (partials() == 0).then_some(()),
    );
    // Their places are free again.
    let (status, _, _) = http(
        http_addr,
        "PUT",
        &target(&puts[4]),
        &[("Content-Length", "1000"), ("Content-Type", "text/plain")],
        &[b'y'; 1000],
    );
    assert_eq!(status, 201);
}
