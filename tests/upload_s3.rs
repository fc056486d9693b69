//! HTTP file upload (XEP-0363) end to end on an S3-compatible object store: the scenarios
//! of `upload/scenarios.rs`, each with a real S3 server (s3s-fs, started on loopback by the
//! test) holding the files, down to a two-node cluster that shares no directory at all.
//! What is stored, and that nothing of a refused body stays (multipart uploads aborted),
//! is read from the S3 server's own files.

#[path = "upload/common.rs"]
mod common;
#[path = "upload/scenarios.rs"]
mod scenarios;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_4_slot_put_and_get_round_trip_on_s3() {
    scenarios::round_trip(Store::s3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_5_slot_requests_are_checked_on_s3() {
    scenarios::slot_requests_are_checked(Store::s3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_bad_puts_store_nothing_on_s3() {
    scenarios::bad_puts_store_nothing(Store::s3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_a_body_longer_than_its_slot_stores_nothing_on_s3() {
    scenarios::a_body_longer_than_its_slot_stores_nothing(Store::s3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_uploads_in_progress_are_bounded_and_cleaned_up_on_s3() {
    scenarios::uploads_in_progress_are_bounded_and_cleaned_up(Store::s3()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_slots_work_on_any_node_of_a_cluster_without_a_shared_directory() {
    scenarios::slots_work_on_any_node_of_a_cluster(Store::s3()).await;
}

/// A node whose key the store refuses (a wrong secret) still starts (the store may be
/// fixed meanwhile); an upload to it fails with 500 and stores nothing, and nothing is
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_an_internal_error_and_stores_nothing() {
    let store = Store::s3();
    let server = server(&store, |c| {
        let s3 = c.upload.s3.as_mut().expect("[upload.s3]");
        s3.secret_access_key = Some("not-the-secret".into());
    });
    let http_addr = server.handle.http.unwrap();
    let dir = uploads_dir(&server);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let (put, get) = urls(&request_slot(&mut alice, "n.txt", "3", Some("text/plain")).await);
    let headers = [("Content-Length", "3"), ("Content-Type", "text/plain")];
    assert_eq!(
        http(http_addr, "PUT", &target(&put), &headers, b"abc").0,
        500
    );
    assert_eq!(http(http_addr, "GET", &target(&get), &[], b"").0, 404);
    assert!(store.stored(&dir).is_empty(), "{:?}", store.stored(&dir));
    assert!(store.pending(&dir).is_empty(), "{:?}", store.pending(&dir));
}
