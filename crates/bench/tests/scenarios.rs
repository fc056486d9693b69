//! Each scenario, short, against a Parley started in-process on ephemeral ports.
//!
//! The server runs in the test process, so its pid is ours: CPU and RSS figures include
//! the generator's share. The assertions are about what the scenarios report being
//! real (every session up, every message delivered, sane latencies), not about speed.

use std::process::Command;

use parley_bench::{
    chat, idle, login, presence, provision, BenchError, ChatMode, ChatOpts, IdleOpts, LoginOpts,
    LoginResult, Mech, PresenceOpts, Target,
};
mod common;

use common::{server_with_users, target_for, wait_until_no_sessions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_completes_every_session_and_closes_it() {
    let server = server_with_users(25);
    let mut target = target_for(&server);
    target.mechanism = Mech::ScramSha256;
    // 50 logins over 25 accounts: each account logs in twice, which only works if the
    // first session was closed cleanly or its resource differs.
    let opts = LoginOpts {
        count: 50,
        concurrency: 10,
        duration_s: Some(30.0),
        users: Some(25),
        prime: true,
    };
    let r = login(&target, &opts).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.first_error);
    assert_eq!(r.completed, 50);
    assert_eq!(r.primed, 25);
    assert_eq!(r.timed_key_derivations, 0, "priming derived every key");
    assert_eq!(r.latency.count, 50);
    assert!(r.logins_per_s > 0.0);
    assert!(r.latency.p50_us > 0 && r.latency.p50_us <= r.latency.p99_us);
    assert!(r.latency.max_us < 30_000_000);
    assert!(r.usage.server_cpu_s.unwrap() > 0.0);
    wait_until_no_sessions(&server).await;
}

/// RFC 6120 §5 and §6: STARTTLS, then SCRAM-SHA-1 and PLAIN over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_5_login_over_starttls_with_scram_and_plain() {
    let server = server_with_users(5);
    for mech in [Mech::ScramSha1, Mech::Plain] {
        let mut target = target_for(&server);
        target.starttls = true;
        target.mechanism = mech;
        let opts = LoginOpts {
            count: 5,
            concurrency: 5,
            duration_s: None,
            users: None,
            prime: false,
        };
        let r = login(&target, &opts).await.unwrap();
        assert_eq!(
            (r.completed, r.failed),
            (5, 0),
            "{mech:?}: {:?}",
            r.first_error
        );
    }
}

/// RFC 6120 §6.5.10: a wrong password is `<not-authorized/>`, counted as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_6_5_10_wrong_password_fails_every_login() {
    let server = server_with_users(3);
    let mut target = target_for(&server);
    target.password = "wrong".into();
    let opts = LoginOpts {
        count: 3,
        concurrency: 3,
        duration_s: None,
        users: None,
        prime: true,
    };
    let r = login(&target, &opts).await.unwrap();
    assert_eq!((r.completed, r.failed), (0, 3));
    assert!(
        r.first_error.as_deref().unwrap().contains("not-authorized"),
        "{:?}",
        r.first_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_max_delivers_every_message() {
    let server = server_with_users(10);
    let opts = ChatOpts {
        pairs: 5,
        mode: ChatMode::Max { window: 16 },
        duration_s: 1.0,
        body_pad: 20,
        concurrency: 10,
        drain_s: 10.0,
    };
    let r = chat(&target_for(&server), &opts).await.unwrap();
    assert_eq!(r.mode, "max");
    assert!(r.sent > 0);
    assert!(r.delivered_in_window > 0 && r.delivered_per_s > 0.0);
    assert_eq!(r.delivered, r.sent, "every message arrives");
    assert_eq!((r.lost, r.errors), (0, 0));
    assert_eq!(r.latency.count, r.delivered);
    assert!(r.latency.max_us < 10_000_000, "{:?}", r.latency);
    assert!(r.server_cpu_s_per_100k.unwrap() > 0.0);
    wait_until_no_sessions(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rate_offers_the_requested_load() {
    let server = server_with_users(10);
    let opts = ChatOpts {
        pairs: 5,
        mode: ChatMode::Rate { rate: 500.0 },
        duration_s: 1.0,
        body_pad: 0,
        concurrency: 10,
        drain_s: 10.0,
    };
    let r = chat(&target_for(&server), &opts).await.unwrap();
    assert_eq!(r.mode, "rate");
    // 500 msg/s for 1 s: a tick or so per sender may fall past the stop, more on a
    // loaded machine, never more than the rate allows.
    assert!((425..=505).contains(&r.sent), "sent {}", r.sent);
    assert_eq!(r.delivered, r.sent);
    assert_eq!((r.lost, r.errors), (0, 0));
    assert!(r.latency.p50_us > 0);
    assert!(r.latency.p99_us < 1_000_000, "{:?}", r.latency);
}

/// RFC 6121 §4.2.2: initial presence reaches every contact with a `from`/`both`
/// subscription, and the server answers the user's probes with each contact's presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_4_2_2_presence_reaches_every_contact_and_back() {
    let server = server_with_users(11);
    let target = target_for(&server);
    let t = target.clone();
    server.with_storage(|storage| async move {
        provision::presence_rosters(storage.as_ref(), &t, 10)
            .await
            .expect("rosters");
    });
    let opts = PresenceOpts {
        contacts: 10,
        rounds: 3,
        concurrency: 10,
    };
    let r = presence(&target, &opts).await.unwrap();
    assert_eq!(r.rounds.len(), 3);
    for round in &r.rounds {
        assert!(round.contacts_all_ms > 0.0 && round.contacts_all_ms < 30_000.0);
        assert!(round.contacts_p50_ms <= round.contacts_all_ms);
        assert!(round.user_all_ms > 0.0 && round.user_all_ms < 30_000.0);
    }
    assert!(r.contacts_all_ms_p50 <= r.contacts_all_ms_max);
    assert!(r.user_all_ms_p50 <= r.user_all_ms_max);
    wait_until_no_sessions(&server).await;
}

#[tokio::test]
async fn non_loopback_targets_are_refused_by_every_scenario() {
    let target = Target::new(vec!["192.0.2.7:5222".parse().unwrap()]);
    assert!(matches!(
        login(&target, &LoginOpts::default()).await,
        Err(BenchError::NotLoopback(_))
    ));
    assert!(matches!(
        chat(&target, &ChatOpts::default()).await,
        Err(BenchError::NotLoopback(_))
    ));
    assert!(matches!(
        presence(&target, &PresenceOpts::default()).await,
        Err(BenchError::NotLoopback(_))
    ));
    let mut target = target;
    target.server_pid = Some(1);
    assert!(matches!(
        idle(&target, &IdleOpts::default()).await,
        Err(BenchError::NotLoopback(_))
    ));
}

/// The compare runner spawns `parley-bench run … --json` and parses its stdout.
#[test]
fn run_subcommand_prints_one_json_line_per_result() {
    let server = server_with_users(4);
    let out = Command::new(env!("CARGO_BIN_EXE_parley-bench"))
        .args([
            "run",
            "login",
            "--json",
            "--count",
            "4",
            "--concurrency",
            "2",
        ])
        .args(["--target", &server.c2s().to_string()])
        .args(["--server-pid", &std::process::id().to_string()])
        .output()
        .expect("run parley-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let r: LoginResult = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(r.scenario, "login");
    assert_eq!((r.completed, r.failed), (4, 0));
    let raw: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(raw["server_cpu_s"].as_f64().is_some());
    assert!(raw.get("password").is_none() && !stdout.contains("\"pw\""));
}
