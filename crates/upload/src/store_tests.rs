//! Unit tests of [`Uploads`], each run against both stores: a directory, and a bucket of a
//! real S3-compatible server (s3s-fs on loopback, started per test so that what one test
//! leaves is not another's). What is stored is read from the directory, or from s3s-fs's
//! own files, never through the code under test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use parley_proto::upload::{self, Grant};
use parley_testkit_services::{S3Server, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY};
use tempfile::TempDir;

use super::*;
use crate::files::s3::PART_BYTES;
use crate::{S3Settings, StoreSettings};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Dir,
    S3,
}

/// The objects of the S3 tests live under this prefix.
const PREFIX: &str = "files";

struct Fixture {
    u: Arc<Uploads>,
    dir: TempDir,
    s3: Option<(S3Server, String)>,
}

impl Fixture {
    async fn new(kind: Kind) -> Fixture {
        Fixture::with(kind, |_| {}).await
    }

    async fn with(kind: Kind, tweak: impl FnOnce(&mut UploadSettings)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (store, s3) = match kind {
            Kind::Dir => (StoreSettings::Dir(dir.path().join("files")), None),
            Kind::S3 => {
                let server = S3Server::start();
                let bucket = server.create_bucket();
                let settings = S3Settings {
                    endpoint: Some(server.endpoint.clone()),
                    bucket: bucket.clone(),
                    region: S3_REGION.into(),
                    access_key_id: S3_ACCESS_KEY.into(),
                    secret_access_key: S3_SECRET_KEY.into(),
                    prefix: format!("{PREFIX}/"),
                    allow_http: true,
                };
                (StoreSettings::S3(settings), Some((server, bucket)))
            }
        };
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        let mut settings = UploadSettings {
            max_file_bytes: 100,
            quota_bytes: 150,
            quota_files: 10,
            max_uploads_per_user: 4,
            max_in_flight_bytes: 1000,
            max_slot_lookups: 4,
            expire_after: Duration::from_secs(60),
            slot_ttl: Duration::from_secs(60),
            allowed_types: vec![],
            store,
        };
        tweak(&mut settings);
        let u = Uploads::new(settings, b"secret".to_vec(), storage).unwrap();
        u.set_base_url("http://h".into());
        Fixture { u, dir, s3 }
    }

    /// The ids with bytes in the store, sorted.
    fn stored(&self) -> Vec<String> {
        match &self.s3 {
            None => names(&self.dir.path().join("files"))
                .into_iter()
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Some((server, bucket)) => server
                .objects(bucket)
                .into_iter()
                .filter_map(|k| k.strip_prefix(&format!("{PREFIX}/")).map(str::to_owned))
                .filter(|k| !k.contains('/'))
                .collect(),
        }
    }

    /// What bodies not (or not yet) stored have in the store: partial files; multipart
    /// uploads and staging objects.
    fn pending(&self) -> Vec<String> {
        match &self.s3 {
            None => names(&self.dir.path().join("files"))
                .into_iter()
                .filter(|n| n.starts_with(".partial-"))
                .collect(),
            Some((server, bucket)) => {
                let mut pending = server.open_multipart_uploads();
                pending.extend(
                    server
                        .objects(bucket)
                        .into_iter()
                        .filter(|k| k.starts_with(&format!("{PREFIX}/partial/"))),
                );
                pending
            }
        }
    }

    /// Puts a leftover of an upload cut short by a crash where the store keeps them.
    fn leave_a_crashed_upload(&self) {
        let path = match &self.s3 {
            None => self.dir.path().join("files/.partial-crashed"),
            Some((server, bucket)) => {
                let dir = server
                    .dir()
                    .join("root")
                    .join(bucket)
                    .join(PREFIX)
                    .join("partial");
                std::fs::create_dir_all(&dir).unwrap();
                dir.join("crashed")
            }
        };
        std::fs::write(path, b"half a body").unwrap();
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

fn grant(size: u64, expires_ms: i64) -> Grant {
    Grant {
        id: upload::new_file_id(),
        filename: "a b.txt".into(),
        size,
        content_type: "text/plain".into(),
        owner: "alice@localhost".into(),
        expires_ms,
    }
}

/// The PUT URL `urls` builds, split as the listener sees it.
fn put_parts(u: &Uploads, g: &Grant) -> (String, String, String) {
    let (put, _) = u.urls(g);
    let path = put.strip_prefix("http://h/upload/").unwrap();
    let (path, query) = path.split_once('?').unwrap();
    let (id, name) = path.split_once('/').unwrap();
    (id.to_owned(), name.to_owned(), query.to_owned())
}

/// File `g`'s bytes (or `range` of them) as served.
async fn served(u: &Uploads, g: &Grant, now_ms: i64, range: Option<Range<u64>>) -> Vec<u8> {
    let name = upload::path_segment(&g.filename);
    let file = u
        .file(&g.id, &name, now_ms)
        .await
        .unwrap()
        .expect("recorded");
    let body = u
        .read(&file, range)
        .await
        .unwrap()
        .expect("bytes in the store");
    body.try_fold(Vec::new(), |mut all, chunk| async move {
        all.extend_from_slice(&chunk);
        Ok(all)
    })
    .await
    .unwrap()
}

/// Stores `body` under `g` in chunks of 64 KiB, as the listener does.
async fn put(u: &Uploads, g: &Grant, body: &[u8]) -> Result<(), PutError> {
    let mut p = u.begin(g.clone(), 0).await?;
    for chunk in body.chunks(64 * 1024) {
        if let Err(e) = p.write(chunk).await {
            u.abandon(p).await;
            return Err(e);
        }
    }
    u.finish(p, 0).await
}

/// A body larger than one part of a multipart upload (and than the quotas above).
fn big_body() -> Vec<u8> {
    (0..2 * PART_BYTES + 1000)
        .map(|i| (i % 251) as u8)
        .collect()
}

fn roomy(s: &mut UploadSettings) {
    s.max_file_bytes = 64 << 20;
    s.quota_bytes = 64 << 20;
    s.max_in_flight_bytes = 64 << 20;
}

#[tokio::test]
async fn a_slot_is_refused_once_its_time_is_over() {
    let f = Fixture::new(Kind::Dir).await;
    let g = grant(3, 1_000);
    let (id, name, query) = put_parts(&f.u, &g);
    assert_eq!(
        f.u.check_put(&id, &name, &query, Some(3), None, 999)
            .unwrap(),
        g
    );
    assert!(matches!(
        f.u.check_put(&id, &name, &query, Some(3), None, 1_000),
        Err(PutError::Expired)
    ));
}

#[tokio::test]
async fn malformed_put_urls_are_not_slots() {
    let f = Fixture::new(Kind::Dir).await;
    let g = grant(3, i64::MAX);
    let (id, name, query) = put_parts(&f.u, &g);
    for (id, name, query) in [
        ("../x", name.as_str(), query.as_str()),
        (id.as_str(), "..", query.as_str()),
        (id.as_str(), "%zz", query.as_str()),
        (id.as_str(), name.as_str(), "size=3"),
        (id.as_str(), name.as_str(), &format!("{query}&size=3")),
        (id.as_str(), name.as_str(), "garbage"),
    ] {
        assert!(
            matches!(
                f.u.check_put(id, name, query, None, None, 0),
                Err(PutError::BadUrl)
            ),
            "{id} {name} {query}"
        );
    }
}

/// A body shorter or longer than the slot leaves nothing behind, neither bytes nor a
/// record; a whole one is stored, counted, served whole or in part, and expires with its
/// bytes.
async fn only_whole_bodies_are_kept_and_they_expire(kind: Kind) {
    let f = Fixture::new(kind).await;
    let u = &f.u;
    let short = grant(5, i64::MAX);
    let mut p = u.begin(short.clone(), 0).await.unwrap();
    p.write(b"abc").await.unwrap();
    assert!(matches!(u.finish(p, 0).await, Err(PutError::WrongSize)));
    assert!(f.stored().is_empty() && f.pending().is_empty());

    let long = grant(2, i64::MAX);
    let mut p = u.begin(long, 0).await.unwrap();
    assert!(matches!(p.write(b"abc").await, Err(PutError::WrongSize)));
    u.abandon(p).await;
    assert!(f.stored().is_empty() && f.pending().is_empty());

    let whole = grant(3, i64::MAX);
    let mut p = u.begin(whole.clone(), 0).await.unwrap();
    p.write(b"abc").await.unwrap();
    u.finish(p, 1_000).await.unwrap();
    assert_eq!(f.stored(), std::slice::from_ref(&whole.id));
    assert_eq!(served(u, &whole, 1_000, None).await, b"abc");
    assert_eq!(served(u, &whole, 1_000, Some(1..2)).await, b"b");
    assert!(u
        .file(&whole.id, "other.txt", 1_000)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        u.storage()
            .upload_usage("alice", "localhost", 1_000)
            .await
            .unwrap(),
        (3, 1)
    );

    // 60 s later it is gone, bytes and all.
    let name = upload::path_segment(&whole.filename);
    assert!(u.file(&whole.id, &name, 61_000).await.unwrap().is_none());
    assert_eq!(u.expire(61_000).await.unwrap(), 1);
    assert!(f.stored().is_empty());
}

#[tokio::test]
async fn only_whole_bodies_are_kept_and_they_expire_in_a_directory() {
    only_whole_bodies_are_kept_and_they_expire(Kind::Dir).await;
}

#[tokio::test]
async fn only_whole_bodies_are_kept_and_they_expire_in_s3() {
    only_whole_bodies_are_kept_and_they_expire(Kind::S3).await;
}

/// Two PUTs of one slot at once: one is stored, the other refused, and the bytes are the
/// stored one's; for small bodies (one write) and for bodies of several parts.
async fn a_slot_used_twice_at_once_keeps_the_first_file(kind: Kind) {
    let f = Fixture::with(kind, roomy).await;
    let u = &f.u;
    let big = big_body();
    let other: Vec<u8> = big.iter().map(|b| b ^ 0xff).collect();
    for (one, two) in [(&b"one"[..], &b"two"[..]), (&big[..], &other[..])] {
        let g = grant(one.len() as u64, i64::MAX);
        let mut first = u.begin(g.clone(), 0).await.unwrap();
        let mut second = u.begin(g.clone(), 0).await.unwrap();
        first.write(one).await.unwrap();
        second.write(two).await.unwrap();
        u.finish(first, 0).await.unwrap();
        assert!(matches!(u.finish(second, 0).await, Err(PutError::Exists)));
        assert!(
            served(u, &g, 0, None).await == one,
            "the first body is kept"
        );
        assert!(f.pending().is_empty(), "{:?}", f.pending());
    }
    assert_eq!(f.stored().len(), 2);
}

#[tokio::test]
async fn a_slot_used_twice_at_once_keeps_the_first_file_in_a_directory() {
    a_slot_used_twice_at_once_keeps_the_first_file(Kind::Dir).await;
}

#[tokio::test]
async fn a_slot_used_twice_at_once_keeps_the_first_file_in_s3() {
    a_slot_used_twice_at_once_keeps_the_first_file(Kind::S3).await;
}

/// Bodies of several parts: stored whole and served in ranges across parts; one longer
/// than its slot is refused and its parts go (the multipart upload is aborted); one whose
/// request goes away mid-body leaves nothing either.
async fn large_bodies_stream_and_leave_nothing_when_refused(kind: Kind) {
    let f = Fixture::with(kind, roomy).await;
    let u = &f.u;
    let body = big_body();
    let g = grant(body.len() as u64, i64::MAX);
    put(u, &g, &body).await.unwrap();
    assert_eq!(f.stored(), std::slice::from_ref(&g.id));
    assert!(served(u, &g, 0, None).await == body);
    let across = PART_BYTES as u64 - 10..PART_BYTES as u64 + 10;
    let expected = &body[PART_BYTES - 10..PART_BYTES + 10];
    assert_eq!(served(u, &g, 0, Some(across)).await, expected);

    let short_slot = grant(body.len() as u64 - 1, i64::MAX);
    assert!(matches!(
        put(u, &short_slot, &body).await,
        Err(PutError::WrongSize)
    ));
    assert_eq!(f.stored(), std::slice::from_ref(&g.id));
    assert!(f.pending().is_empty(), "{:?}", f.pending());

    // Past the first part, then the request goes away (the sink is dropped unfinished).
    let mut p = u
        .begin(grant(body.len() as u64, i64::MAX), 0)
        .await
        .unwrap();
    p.write(&body[..PART_BYTES + 1]).await.unwrap();
    assert!(!f.pending().is_empty(), "the body is on its way");
    drop(p);
    parley_testkit_services::poll_until(
        "the dropped upload's leftovers are gone",
        Duration::from_secs(10),
        || f.pending().is_empty().then_some(()),
    );
    assert_eq!(f.stored(), std::slice::from_ref(&g.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_and_leave_nothing_when_refused_in_a_directory() {
    large_bodies_stream_and_leave_nothing_when_refused(Kind::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_and_leave_nothing_when_refused_in_s3() {
    large_bodies_stream_and_leave_nothing_when_refused(Kind::S3).await;
}

/// What an upload cut short by a crash left is swept by the expiry once it is old, and
/// not before.
async fn the_expiry_sweeps_what_crashed_uploads_left(kind: Kind) {
    let f = Fixture::new(kind).await;
    f.leave_a_crashed_upload();
    let now_ms = parley_proto::clock::now_ms();
    assert_eq!(f.u.expire(now_ms).await.unwrap(), 0);
    assert_eq!(f.pending().len(), 1, "young: maybe still in progress");
    f.u.expire(now_ms + 2 * 3600 * 1000).await.unwrap();
    assert!(f.pending().is_empty(), "{:?}", f.pending());
}

#[tokio::test]
async fn the_expiry_sweeps_what_crashed_uploads_left_in_a_directory() {
    the_expiry_sweeps_what_crashed_uploads_left(Kind::Dir).await;
}

#[tokio::test]
async fn the_expiry_sweeps_what_crashed_uploads_left_in_s3() {
    the_expiry_sweeps_what_crashed_uploads_left(Kind::S3).await;
}

/// The quota counts recorded files and uploads in progress: a second upload that would
/// pass it is refused before a byte is written, even while the first is still coming in;
/// uploads in progress are bounded per owner; dropped uploads (the client went away) leave
/// nothing and give their places back.
async fn uploads_in_progress_count_against_the_quota_and_are_bounded(kind: Kind) {
    let f = Fixture::new(kind).await;
    let u = &f.u;
    let first = u.begin(grant(100, i64::MAX), 0).await.unwrap();
    assert!(matches!(
        u.begin(grant(60, i64::MAX), 0).await,
        Err(PutError::OverQuota)
    ));
    let mut first = first;
    first.write(&[b'x'; 100]).await.unwrap();
    u.finish(first, 0).await.unwrap();
    assert!(matches!(
        u.begin(grant(60, i64::MAX), 0).await,
        Err(PutError::OverQuota)
    ));
    let mut fits = u.begin(grant(50, i64::MAX), 0).await.unwrap();
    fits.write(&[b'y'; 50]).await.unwrap();
    u.finish(fits, 0).await.unwrap();
    assert_eq!(f.stored().len(), 2);

    // Four at once for one owner (`max_uploads_per_user`), then busy.
    let other = |size| Grant {
        owner: "bob@localhost".into(),
        ..grant(size, i64::MAX)
    };
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut p = u.begin(other(2), 0).await.unwrap();
        p.write(b"z").await.unwrap();
        open.push(p);
    }
    assert!(matches!(u.begin(other(1), 0).await, Err(PutError::Busy)));
    drop(open);
    assert!(f.pending().is_empty(), "dropped uploads leave nothing");
    assert_eq!(f.stored().len(), 2);
    assert_eq!(u.in_flight.bytes(), 0);
    assert!(u.begin(other(1), 0).await.is_ok());
}

#[tokio::test]
async fn uploads_in_progress_count_against_the_quota_and_are_bounded_in_a_directory() {
    uploads_in_progress_count_against_the_quota_and_are_bounded(Kind::Dir).await;
}

#[tokio::test]
async fn uploads_in_progress_count_against_the_quota_and_are_bounded_in_s3() {
    uploads_in_progress_count_against_the_quota_and_are_bounded(Kind::S3).await;
}

/// A store that cannot be opened is named: a prefix that is not a key path.
#[test]
fn a_bad_prefix_is_refused_when_the_store_opens() {
    let settings = S3Settings {
        endpoint: Some("http://127.0.0.1:1".into()),
        bucket: "b".into(),
        region: S3_REGION.into(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        prefix: "a//b".into(),
        allow_http: true,
    };
    let e = crate::FileStore::open(&StoreSettings::S3(settings)).unwrap_err();
    assert!(e.to_string().contains("prefix"), "{e}");
}
