//! What the HTTP file upload tests share: raw HTTP and slot requests, and the scenarios
//! that must hold whichever store keeps the bytes ([`Store`]: the directory, or a bucket of
//! a real S3-compatible server on loopback). `upload.rs` runs them on the directory,
//! `upload_s3.rs` on the object store; what is stored is read from the directory or from
//! the S3 server's own files, never through Parley.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

pub use parley::config::Config;
pub use parley_testkit::{Client, TestServer};
pub use parley_testkit_services::S3Server;
pub use parley_xml::Element;

pub const NS: &str = "urn:xmpp:http:upload:0";
/// Object keys start with this in the S3 tests.
pub const PREFIX: &str = "up/";
/// A body past the first part of a multipart upload (5 MiB) on the object store.
pub const LARGE: usize = 5 * 1024 * 1024 + 300_000;

pub fn next_id() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("up{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Where a test's files live.
pub enum Store {
    /// The default: `DATA_DIR/uploads`, or the directory given to cluster nodes.
    Dir,
    /// A bucket of its own on an s3s-fs of its own (started per test, so that the multipart
    /// uploads it sees are this test's).
    S3 { server: S3Server, bucket: String },
}

impl Store {
    pub fn s3() -> Store {
        let server = S3Server::start();
        let bucket = server.create_bucket();
        Store::S3 { server, bucket }
    }

    /// `[upload]` keys choosing this store (the directory `dir` for [`Store::Dir`]), to
    /// follow the section's other keys: the S3 store's own section comes last.
    pub fn toml(&self, dir: Option<&Path>) -> String {
        match self {
            Store::Dir => dir.map_or(String::new(), |d| format!("dir = \"{}\"\n", d.display())),
            Store::S3 { server, bucket } => {
                format!("store = \"s3\"\n{}", server.upload_config(bucket, PREFIX))
            }
        }
    }

    /// Points `c`'s upload service at this store.
    pub fn apply(&self, c: &mut Config) {
        let parsed = Config::from_toml_str(
            &format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[upload]\nenabled = true\n{}",
                self.toml(None)
            ),
            "test",
        )
        .expect("the store's config");
        c.upload.store = parsed.upload.store;
        c.upload.s3 = parsed.upload.s3;
    }

    /// The ids of the files in the store (`dir`: the directory store's directory).
    pub fn stored(&self, dir: &Path) -> Vec<String> {
        match self {
            Store::Dir => names(dir)
                .into_iter()
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Store::S3 { server, bucket } => server
                .objects(bucket)
                .into_iter()
                .filter_map(|k| k.strip_prefix(PREFIX).map(str::to_owned))
                .filter(|k| !k.contains('/'))
                .collect(),
        }
    }

    /// What bodies not stored (yet) have in the store: partial files; multipart uploads
    /// and staging objects.
    pub fn pending(&self, dir: &Path) -> Vec<String> {
        match self {
            Store::Dir => names(dir)
                .into_iter()
                .filter(|n| n.starts_with(".partial-"))
                .collect(),
            Store::S3 { server, bucket } => {
                let mut pending = server.open_multipart_uploads();
                let staging = format!("{PREFIX}partial/");
                pending.extend(
                    server
                        .objects(bucket)
                        .into_iter()
                        .filter(|k| k.starts_with(&staging)),
                );
                pending
            }
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A server with uploads on `store` (1000-byte files, a 1500-byte quota, images and text),
/// then `tweak`.
pub fn server(store: &Store, tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start(|c| {
        c.upload.enabled = true;
        c.upload.max_file_bytes = 1000;
        c.upload.quota_bytes = 1500;
        c.upload.allowed_types = vec!["image/*".into(), "text/plain".into()];
        store.apply(c);
        tweak(c);
    })
}

/// The directory store's directory of `server`.
pub fn uploads_dir(server: &TestServer) -> PathBuf {
    server.config.server.data_dir.join("uploads")
}

/// One HTTP request; the status, the headers (lowercased names) and the body.
pub fn http(
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
    // A server that refuses early may stop reading; its answer is what counts.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

fn parse_response(out: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
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

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The path and query of a URL on the test server (`http://127.0.0.1:port/...`).
pub fn target(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}

/// The file id in a GET URL (`…/upload/ID/NAME`).
pub fn file_id(get: &str) -> String {
    let rest = &get[get.find("/upload/").expect("an upload URL") + 8..];
    rest.split('/').next().unwrap().to_owned()
}

pub async fn request_slot(
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

pub fn urls(reply: &Element) -> (String, String) {
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

pub fn condition(reply: &Element) -> String {
    assert_eq!(reply.attr("type"), Some("error"), "{reply}");
    let error = reply.get_child("error", "jabber:client").expect("an error");
    error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap()
}

/// `n` bytes that are not all alike, so that a misplaced range shows.
pub fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Opens a PUT of `put` declaring `length` bytes of text and sends `sent` of them; the
/// connection stays open (the upload in progress) until dropped.
pub fn start_put(http_addr: SocketAddr, put: &str, length: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(http_addr).unwrap();
    write!(
        s,
        "PUT {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\
         Content-Type: text/plain\r\n\r\n",
        target(put)
    )
    .unwrap();
    s.write_all(&body(sent)).unwrap();
    s
}
