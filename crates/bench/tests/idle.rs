//! The idle scenario against an in-process Parley, alone in its test binary: RSS is a
//! per-process figure, and other tests' allocations in the same process (freed heap
//! reused, pages touched) would drown the growth 20 sessions cause.

mod common;

use common::{server_with_users, target_for, wait_until_no_sessions};
use parley_bench::{idle, IdleOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reports_rss_per_session_between_two_levels() {
    let server = server_with_users(40);
    let opts = IdleOpts {
        sessions: vec![20, 40],
        concurrency: 10,
        hold_s: 0.5,
    };
    let r = idle(&target_for(&server), &opts).await.unwrap();
    assert_eq!(r.scenario, "idle");
    assert_eq!(r.levels.len(), 2);
    assert_eq!(r.levels[0].sessions, 20);
    assert_eq!(r.levels[1].opened, 20);
    for level in &r.levels {
        assert_eq!(level.login_latency.count, level.opened as u64);
        assert!(level.logins_per_s > 0.0);
        assert!(level.login_latency.p50_us > 0);
    }
    assert!(
        r.rss_per_session_kib > 0.0 && r.rss_per_session_kib < 1024.0,
        "RSS slope {} KiB per session",
        r.rss_per_session_kib
    );
    // Every idle session was closed: the server holds no route any more.
    wait_until_no_sessions(&server).await;
}
