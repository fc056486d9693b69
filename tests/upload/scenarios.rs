//! The upload behaviours that must not depend on the store: each scenario takes a
//! [`Store`] and is run by `upload.rs` on the directory and by `upload_s3.rs` on a real
//! S3-compatible server. Every refusal is checked on the wire and in the store: nothing of
//! a refused body stays there.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use parley_testkit::TIMEOUT;

use crate::common::*;

/// XEP-0363 §4 and §6: a slot, a PUT of exactly its size, then the GET serves the same
/// bytes with the type, length, validators, ranges (RFC 9110 §14) and safe headers; HEAD
/// the same headers; the slot cannot be used twice.
pub async fn round_trip(store: Store) {
    let server = server(&store, |_| {});
    let http_addr = server.handle.http.expect("HTTP listener");
    let dir = uploads_dir(&server);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let body = body(600);
    let reply = request_slot(&mut alice, "photo 1 é.png", "600", Some("image/png")).await;
    let (put, get) = urls(&reply);
    assert!(
        get.starts_with(&format!("http://{http_addr}/upload/")),
        "{get}"
    );
    let get_t = target(&get);
    // Before the PUT nothing is there.
    assert_eq!(http(http_addr, "GET", &get_t, &[], b"").0, 404);
    let put_headers = [("Content-Length", "600"), ("Content-Type", "image/png")];
    assert_eq!(
        http(http_addr, "PUT", &target(&put), &put_headers, &body).0,
        201
    );
    assert_eq!(store.stored(&dir), [file_id(&get)]);
    assert!(store.pending(&dir).is_empty(), "{:?}", store.pending(&dir));

    let (status, headers, got) = http(http_addr, "GET", &get_t, &[], b"");
    assert_eq!(status, 200);
    assert_eq!(got, body, "the same bytes come back");
    for (name, value) in [
        ("content-type", "image/png"),
        ("content-length", "600"),
        ("accept-ranges", "bytes"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
    ] {
        assert_eq!(header(&headers, name), Some(value), "{name}: {headers:?}");
    }
    assert!(header(&headers, "content-disposition").is_some_and(|d| d.starts_with("inline")));
    assert!(header(&headers, "last-modified").is_some());
    let etag = header(&headers, "etag").expect("an ETag").to_owned();

    // HEAD: the same headers, no body.
    let (status, headers, nothing) = http(http_addr, "HEAD", &get_t, &[], b"");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("600"));
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    assert!(nothing.is_empty());

    // Ranges: a middle, a suffix, and one past the end.
    let (status, headers, part) = http(http_addr, "GET", &get_t, &[("Range", "bytes=10-19")], b"");
    assert_eq!(status, 206);
    assert_eq!(part, &body[10..20]);
    assert_eq!(header(&headers, "content-range"), Some("bytes 10-19/600"));
    let (status, _, part) = http(http_addr, "GET", &get_t, &[("Range", "bytes=-5")], b"");
    assert_eq!((status, part.as_slice()), (206, &body[595..]));
    let (status, headers, _) = http(http_addr, "GET", &get_t, &[("Range", "bytes=600-")], b"");
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */600"));

    // Validators (RFC 9110 §13): the client's copy is current; a range of another copy is
    // not served as a range.
    let (status, _, nothing) = http(http_addr, "GET", &get_t, &[("If-None-Match", &etag)], b"");
    assert_eq!((status, nothing.len()), (304, 0));
    let stale = [("Range", "bytes=10-19"), ("If-Range", "\"another\"")];
    let (status, _, whole) = http(http_addr, "GET", &get_t, &stale, b"");
    assert_eq!((status, whole), (200, body.clone()));
    let current = [("Range", "bytes=10-19"), ("If-Range", etag.as_str())];
    assert_eq!(http(http_addr, "GET", &get_t, &current, b"").0, 206);

    // The same slot again: refused, the file unchanged.
    assert_eq!(
        http(http_addr, "PUT", &target(&put), &put_headers, &[0; 600]).0,
        409
    );
    assert_eq!(http(http_addr, "GET", &get_t, &[], b"").2, body);
    assert_eq!(store.stored(&dir), [file_id(&get)]);
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
pub async fn slot_requests_are_checked(store: Store) {
    let server = server(&store, |_| {});
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
/// path outside the store, another type: each refused, and nothing is stored or served.
pub async fn bad_puts_store_nothing(store: Store) {
    let server = server(&store, |_| {});
    let http_addr = server.handle.http.unwrap();
    let dir = uploads_dir(&server);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let (put, get) = urls(&request_slot(&mut alice, "n.txt", "10", Some("text/plain")).await);
    let put_t = target(&put);
    let headers = [("Content-Length", "10"), ("Content-Type", "text/plain")];
    // A larger size signed for 10 bytes.
    let stretched = put_t.replace("size=10", "size=1000");
    let long = [("Content-Length", "1000")];
    assert_eq!(http(http_addr, "PUT", &stretched, &long, &[0; 1000]).0, 403);
    // A forged signature.
    let sig_at = put_t.find("sig=").unwrap() + 4;
    let mut forged = put_t.clone();
    forged.replace_range(sig_at..sig_at + 4, "AAAA");
    assert_eq!(http(http_addr, "PUT", &forged, &headers, &[1; 10]).0, 403);
    // Another file name on the same signature.
    let renamed = put_t.replacen("/n.txt?", "/m.txt?", 1);
    assert_eq!(http(http_addr, "PUT", &renamed, &headers, &[1; 10]).0, 403);
    // Declared lengths other than the slot's.
    let eleven = [("Content-Length", "11")];
    assert_eq!(http(http_addr, "PUT", &put_t, &eleven, &[1; 11]).0, 400);
    let nine = [("Content-Length", "9")];
    assert_eq!(http(http_addr, "PUT", &put_t, &nine, &[1; 9]).0, 400);
    // Another type than the slot's.
    let html = [("Content-Length", "10"), ("Content-Type", "text/html")];
    assert_eq!(http(http_addr, "PUT", &put_t, &html, &[1; 10]).0, 400);
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
        "nothing served"
    );
    assert!(store.stored(&dir).is_empty(), "{:?}", store.stored(&dir));
    assert!(store.pending(&dir).is_empty(), "{:?}", store.pending(&dir));
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
    assert_eq!(store.stored(&dir), [file_id(&get)]);
}

/// A chunked PUT (no declared length) whose body streams past its slot's size is cut off
/// with 400 once it does, after a part of it went to the store: nothing of it stays (the
/// object store's multipart upload is aborted). The slot, unused, still takes its file.
pub async fn a_body_longer_than_its_slot_stores_nothing(store: Store) {
    let server = server(&store, |c| {
        c.upload.max_file_bytes = 8 << 20;
        c.upload.quota_bytes = 64 << 20;
    });
    let http_addr = server.handle.http.unwrap();
    let dir = uploads_dir(&server);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let size = LARGE.to_string();
    let (put, get) = urls(&request_slot(&mut alice, "big.txt", &size, Some("text/plain")).await);
    let too_long = body(LARGE + 1000);
    assert_eq!(chunked_put(http_addr, &target(&put), &too_long), 400);
    parley_testkit::poll_until("nothing of the refused body stays", TIMEOUT, || {
        store.pending(&dir).is_empty().then_some(())
    });
    assert!(store.stored(&dir).is_empty(), "{:?}", store.stored(&dir));
    assert_eq!(http(http_addr, "GET", &target(&get), &[], b"").0, 404);

    assert_eq!(
        chunked_put(http_addr, &target(&put), &too_long[..LARGE]),
        201
    );
    assert_eq!(store.stored(&dir), [file_id(&get)]);
    // A range across the first part's end.
    let (from, to) = (5 * 1024 * 1024 - 100, 5 * 1024 * 1024 + 100);
    let range = format!("bytes={from}-{to}");
    let (status, _, part) = http(http_addr, "GET", &target(&get), &[("Range", &range)], b"");
    assert_eq!((status, part.as_slice()), (206, &too_long[from..=to]));
}

/// PUTs `body` with chunked transfer coding, 64 KiB a chunk; the status.
fn chunked_put(addr: SocketAddr, target: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "PUT {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut wire = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    // A server that refuses early may stop reading; its answer is what counts.
    let _ = s.write_all(&wire);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    status.unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&out)))
}

/// Hostile: slots taken in advance and sent all at once. Uploads in progress count against
/// the quota and are bounded per account (`max_uploads_per_user`), so the fifth open PUT is
/// refused (429) before a byte is written; clients that go away mid-body (past the first
/// part of a multipart upload on the object store) leave nothing behind.
pub async fn uploads_in_progress_are_bounded_and_cleaned_up(store: Store) {
    let server = server(&store, |c| {
        c.upload.max_file_bytes = 8 << 20;
        c.upload.quota_bytes = 64 << 20;
    });
    let http_addr = server.handle.http.unwrap();
    let dir = uploads_dir(&server);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut puts = Vec::new();
    for n in 0..5 {
        let name = format!("f{n}.txt");
        let size = LARGE.to_string();
        let (put, _) = urls(&request_slot(&mut alice, &name, &size, Some("text/plain")).await);
        puts.push(put);
    }
    // Four PUTs that send their headers and most of the body, then wait.
    let open: Vec<TcpStream> = puts[..4]
        .iter()
        .map(|put| start_put(http_addr, put, LARGE, LARGE - 50_000))
        .collect();
    parley_testkit::poll_until("four uploads in progress", TIMEOUT, || {
        (store.pending(&dir).len() == 4).then_some(())
    });
    let headers = [
        ("Content-Length", &*LARGE.to_string()),
        ("Content-Type", "text/plain"),
    ];
    // Refused on its headers: no byte of the body is sent, none is wanted.
    let (status, _, _) = http(http_addr, "PUT", &target(&puts[4]), &headers, b"");
    assert_eq!(status, 429, "a fifth upload at once is refused");
    drop(open);
    parley_testkit::poll_until("abandoned uploads cleaned up", TIMEOUT, || {
        store.pending(&dir).is_empty().then_some(())
    });
    assert!(store.stored(&dir).is_empty(), "{:?}", store.stored(&dir));
    // Their places are free again.
    let whole = body(LARGE);
    let (status, _, _) = http(http_addr, "PUT", &target(&puts[4]), &headers, &whole);
    assert_eq!(status, 201);
    assert_eq!(store.stored(&dir).len(), 1);
}

/// Cluster: a slot one node hands out is taken by another (the secret is the cluster's, the
/// store shared: one directory, or one bucket and no shared directory at all), and the
/// file, small or of several parts, is served by either.
pub async fn slots_work_on_any_node_of_a_cluster(store: Store) {
    use parley_testkit::cluster::{add_users, random_prefix, wait_members, ClusterNode};
    let db = parley_testkit::shared_pg().database();
    add_users(&db, &["alice"]);
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = random_prefix("upload");
    let files = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[upload]\nenabled = true\nmax_file_bytes = {}\n{}",
        8 << 20,
        store.toml(Some(files.path()))
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
    // Several parts, sent to the first node, read in part from the second.
    let size = LARGE.to_string();
    let (put, large) = urls(&request_slot(&mut alice, "b.txt", &size, Some("text/plain")).await);
    let whole = body(LARGE);
    let headers = [
        ("Content-Length", size.as_str()),
        ("Content-Type", "text/plain"),
    ];
    assert_eq!(
        http(nodes[0].http, "PUT", &target(&put), &headers, &whole).0,
        201
    );
    let range = [("Range", "bytes=5242000-5243000")];
    let (status, _, part) = http(nodes[1].http, "GET", &target(&large), &range, b"");
    assert_eq!(
        (status, part.as_slice()),
        (206, &whole[5_242_000..=5_243_000])
    );
    let mut stored = store.stored(files.path());
    stored.sort();
    let mut expected = [file_id(&get), file_id(&large)];
    expected.sort();
    assert_eq!(stored, expected);
}
