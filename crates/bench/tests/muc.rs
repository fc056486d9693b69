//! The group chat scenario (XEP-0045), short, against a Parley started in-process: every
//! occupant joins and sees everyone, every message reaches everyone, and what the room
//! refuses (its per-occupant rate limit) shows up as errors and incomplete messages
//! rather than as latency.

use parley_bench::{muc, MucOpts};
mod common;

use common::{server_with, server_with_users, target_for, wait_until_no_sessions};

fn opts(users: usize, rates: Vec<f64>) -> MucOpts {
    MucOpts {
        users,
        rates,
        duration_s: 1.0,
        concurrency: 8,
        drain_s: 3.0,
        ..MucOpts::default()
    }
}

/// §7.2.3 and §7.4: each of N occupants gets N presences (everyone, itself included) and
/// every groupchat message, its sender included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0045_every_occupant_sees_everyone_and_every_message() {
    let n = 24;
    // 15 messages in all: within the room's default burst of 20, no limit to raise.
    let server = server_with_users(n);
    let target = target_for(&server);
    let r = muc(&target, &opts(n, vec![5.0, 10.0])).await.unwrap();
    assert_eq!(r.occupants, n);
    assert_eq!(r.occupants_by_addr, [n]);
    assert_eq!(r.join_presences, (n * n) as u64);
    assert_eq!(r.join_latency.count, n as u64);
    assert_eq!(r.server_rss_kib_after_join.len(), 1);
    assert!(r.rss_per_occupant_kib.is_some());
    assert_eq!(r.levels.len(), 2);
    for (l, sent) in r.levels.iter().zip([5, 10]) {
        assert_eq!(l.sent, sent);
        assert_eq!(l.complete, sent, "{l:?}");
        assert_eq!(
            (l.missing_deliveries, l.duplicate_deliveries, l.errors),
            (0, 0, 0)
        );
        assert_eq!(l.fanout.count, sent);
        assert!(l.fanout.p50_us > 0 && l.fanout.max_us < 3_000_000, "{l:?}");
        assert!(l.delivery_mean_ms * 1000.0 <= l.fanout.max_us as f64);
        assert!(l.server_cpu_ms_per_message.unwrap() > 0.0);
    }
    assert_eq!(r.dropped_connections, 0);
    wait_until_no_sessions(&server).await;
}

/// The room's default rate limit (5 a second after a burst of 20) refuses most of a
/// faster load: the refusals are counted, and refused messages are not complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_errors_not_latency() {
    let n = 4;
    let server = server_with(n, |c| c.muc.messages_per_minute = 300);
    let target = target_for(&server);
    let r = muc(&target, &opts(n, vec![60.0])).await.unwrap();
    let l = &r.levels[0];
    assert_eq!(l.sent, 60);
    assert!(l.errors >= 30, "{l:?}");
    assert_eq!(l.complete + l.errors, 60, "{l:?}");
    assert_eq!(l.missing_deliveries, l.errors * n as u64);
    wait_until_no_sessions(&server).await;
}
