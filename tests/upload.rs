//! HTTP file upload (XEP-0363) end to end on the directory store: slot requests over XMPP
//! to `upload.localhost`, then the PUT and GET over the server's HTTP listener, with raw
//! XML and raw HTTP. Bad input (oversize, forged or expired slots, wrong lengths, paths
//! outside the store) gets its error and stores nothing. The scenarios that must hold on
//! any store are in `upload/scenarios.rs` (`upload_s3.rs` runs them on an object store).

#[path = "upload/common.rs"]
mod common;
#[path = "upload/scenarios.rs"]
mod scenarios;

use common::*;

/// XEP-0363 §3 and XEP-0030: the server lists the service, which names itself and its
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_3_the_service_is_discovered_with_its_limit() {
    let server = server(&Store::Dir, |_| {});
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_4_slot_put_and_get_round_trip() {
    scenarios::round_trip(Store::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_5_slot_requests_are_checked() {
    scenarios::slot_requests_are_checked(Store::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_bad_puts_store_nothing() {
    scenarios::bad_puts_store_nothing(Store::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_a_body_longer_than_its_slot_stores_nothing() {
    scenarios::a_body_longer_than_its_slot_stores_nothing(Store::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_uploads_in_progress_are_bounded_and_cleaned_up() {
    scenarios::uploads_in_progress_are_bounded_and_cleaned_up(Store::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0363_slots_work_on_any_node_of_a_cluster() {
    scenarios::slots_work_on_any_node_of_a_cluster(Store::Dir).await;
}
