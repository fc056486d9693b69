//! `idle`: N authenticated, bound, available sessions held open; the server's RSS at
//! two or more values of N gives its memory per idle session.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::Session;
use crate::stats::{run_pool, Latencies, LatencySummary, Meter, Usage};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleOpts {
    /// Session counts to hold, ascending (e.g. `[1000, 5000]`); the slope is taken
    /// between the first and the last.
    pub sessions: Vec<usize>,
    /// Logins in flight while opening sessions.
    pub concurrency: usize,
    /// How long each level is held before the RSS is read, so it settles.
    pub hold_s: f64,
}

impl Default for IdleOpts {
    fn default() -> Self {
        IdleOpts {
            sessions: vec![1000, 5000],
            concurrency: 50,
            hold_s: 2.0,
        }
    }
}

/// One level of held sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleLevel {
    pub sessions: usize,
    /// Server RSS with `sessions` held, after the hold.
    pub server_rss_kib: u64,
    /// Sessions opened to reach this level from the previous one.
    pub opened: usize,
    /// Wall time to open them.
    pub open_s: f64,
    pub logins_per_s: f64,
    /// Connect to available (ping answered after initial presence), per session.
    pub login_latency: LatencySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleResult {
    pub scenario: String,
    pub config: IdleOpts,
    pub target: TargetEcho,
    pub levels: Vec<IdleLevel>,
    /// `(rss_last - rss_first) / (n_last - n_first)`, in KiB per session.
    pub rss_per_session_kib: f64,
    /// Server RSS before the first session was opened.
    pub server_rss_kib_idle: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

/// Opens sessions level by level, samples the server's RSS at each, then closes them.
/// Needs `target.server_pid`.
pub async fn idle(target: &Target, opts: &IdleOpts) -> Result<IdleResult, BenchError> {
    let shared = Shared::new(target)?;
    let pid = target
        .server_pid
        .ok_or_else(|| BenchError::Options("idle needs the server pid (--server-pid)".into()))?;
    if opts.sessions.len() < 2 || opts.sessions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(BenchError::Options(
            "idle needs at least two ascending session counts".into(),
        ));
    }
    let meter = Meter::start(Some(pid))?;
    let rss_idle = crate::proc::proc_sample(pid)?.rss_kib;
    let mut sessions: Vec<Session> = Vec::new();
    let mut levels = Vec::new();
    let outcome = async {
        for &level in &opts.sessions {
            let from = sessions.len();
            let opened = level - from;
            eprintln!("idle: opening sessions {from}..{level}");
            let started = Instant::now();
            let sh = shared.clone();
            let results = run_pool(opened, opts.concurrency, move |i| {
                let sh = sh.clone();
                async move {
                    let t0 = Instant::now();
                    let mut s = Session::login(&sh, from + i, "idle").await?;
                    s.available().await?;
                    Ok::<_, BenchError>((s, t0.elapsed()))
                }
            })
            .await;
            let open_s = started.elapsed().as_secs_f64();
            let mut lat = Latencies::new();
            for r in results {
                let (s, d) = r?;
                lat.record(d);
                sessions.push(s);
            }
            tokio::time::sleep(Duration::from_secs_f64(opts.hold_s)).await;
            let rss = crate::proc::proc_sample(pid)?.rss_kib;
            eprintln!("idle: {level} sessions, server RSS {rss} KiB");
            levels.push(IdleLevel {
                sessions: level,
                server_rss_kib: rss,
                opened,
                open_s,
                logins_per_s: opened as f64 / open_s.max(1e-9),
                login_latency: lat.summary(),
            });
        }
        Ok::<_, BenchError>(())
    }
    .await;
    let usage = meter.finish()?;
    close_all(sessions, opts.concurrency).await;
    outcome?;
    let (first, last) = (&levels[0], &levels[levels.len() - 1]);
    let slope = (last.server_rss_kib as f64 - first.server_rss_kib as f64)
        / (last.sessions - first.sessions) as f64;
    Ok(IdleResult {
        scenario: "idle".into(),
        config: opts.clone(),
        target: target.echo(),
        levels,
        rss_per_session_kib: slope,
        server_rss_kib_idle: rss_idle,
        usage,
    })
}

/// Closes sessions cleanly, `concurrency` at a time; failures only matter to the
/// server, which will time them out.
pub(crate) async fn close_all(sessions: Vec<Session>, concurrency: usize) {
    let n = sessions.len();
    let slots: Vec<parking_lot::Mutex<Option<Session>>> = sessions
        .into_iter()
        .map(|s| parking_lot::Mutex::new(Some(s)))
        .collect();
    let slots = std::sync::Arc::new(slots);
    run_pool(n, concurrency.max(1), move |i| {
        let s = slots[i].lock().take();
        async move {
            if let Some(s) = s {
                let _ = s.close().await;
            }
        }
    })
    .await;
}
