//! The scenarios over the web transports against a Parley started in-process: idle and
//! chat over WebSocket (RFC 7395) and chat over BOSH (XEP-0206), on the server's HTTP
//! listener. The assertions are about delivery (every session up, every message there
//! once), not speed.

use parley_bench::{chat, idle, ChatMode, ChatOpts, IdleOpts, Target, Transport};
use parley_testkit::TestServer;
// Each test binary compiles the shared helpers; this one needs only some of them.
#[allow(dead_code)]
mod common;

use common::{server_with, target_for, wait_until_no_sessions};

/// A server whose HTTP listener lets one address create many BOSH sessions at once (all
/// the test's clients come from 127.0.0.1).
fn web_server(users: usize) -> TestServer {
    server_with(users, |c| {
        c.http.bosh_sessions_per_ip_burst = 10_000;
        c.http.bosh_sessions_per_ip_per_minute = 10_000;
    })
}

fn web_target(server: &TestServer, transport: &str) -> Target {
    let mut t = target_for(server);
    t.addrs = vec![server
        .handle
        .http
        .expect("the test server has an HTTP listener")];
    t.transport = Transport::parse(transport, None).unwrap();
    t
}

fn small_chat(mode: ChatMode) -> ChatOpts {
    ChatOpts {
        pairs: 3,
        mode,
        duration_s: 1.0,
        body_pad: 10,
        concurrency: 6,
        drain_s: 20.0,
    }
}

/// RFC 7395 §3.3.3: one stanza per message both ways; every chat message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7395_chat_over_websocket_delivers_every_message() {
    let server = web_server(6);
    let target = web_target(&server, "ws");
    for mode in [ChatMode::Max { window: 8 }, ChatMode::Rate { rate: 150.0 }] {
        let r = chat(&target, &small_chat(mode)).await.unwrap();
        assert!(r.sent > 0, "{mode:?}");
        assert_eq!(r.delivered, r.sent, "{mode:?}: every message arrives");
        assert_eq!((r.lost, r.errors), (0, 0), "{mode:?}");
        assert_eq!(r.latency.count, r.delivered);
        assert_eq!(r.http_requests, None, "WebSocket counts no requests");
        assert_eq!(r.target.transport, target.transport);
        wait_until_no_sessions(&server).await;
    }
}

/// XEP-0206: session creation, SASL, restart, bind, chat through long polls, terminate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0206_chat_over_bosh_delivers_every_message() {
    let server = web_server(6);
    let target = web_target(&server, "bosh");
    for mode in [ChatMode::Max { window: 8 }, ChatMode::Rate { rate: 150.0 }] {
        let r = chat(&target, &small_chat(mode)).await.unwrap();
        assert!(r.sent > 0, "{mode:?}");
        assert_eq!(r.delivered, r.sent, "{mode:?}: every message arrives");
        assert_eq!((r.lost, r.errors), (0, 0), "{mode:?}");
        // At least one response brought messages to each receiver.
        let requests = r.http_requests.expect("BOSH counts its requests");
        assert!(requests >= 3, "{mode:?}: {requests} requests");
        assert!(r.http_requests_per_s.unwrap() > 0.0);
        wait_until_no_sessions(&server).await;
    }
}

/// Idle sessions over WebSocket are bound and available, and closed cleanly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_over_websocket_all_come_up() {
    let server = web_server(8);
    let opts = IdleOpts {
        sessions: vec![3, 8],
        concurrency: 4,
        hold_s: 0.1,
    };
    let r = idle(&web_target(&server, "ws"), &opts).await.unwrap();
    assert_eq!(r.levels.len(), 2);
    assert_eq!(r.levels[0].opened, 3);
    assert_eq!(r.levels[1].opened, 5);
    assert_eq!(r.levels[1].login_latency.count, 5);
    wait_until_no_sessions(&server).await;
}
