//! `login`: sessions established per second at a fixed concurrency, each from TCP
//! connect to the server's answer after initial presence (optionally after a roster
//! fetch, as a real client does), then closed cleanly; with the server's pid, also the
//! server's CPU per login.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{Conn, Session, STEP_TIMEOUT};
use crate::stats::{run_pool, Latencies, LatencySummary, Meter, Usage};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginOpts {
    /// Logins to perform in total (the count bound).
    pub count: usize,
    /// Logins in flight at once.
    pub concurrency: usize,
    /// Stop starting new logins after this long (the time bound; `None` leaves only the
    /// count and the per-step timeouts).
    pub duration_s: Option<f64>,
    /// Distinct accounts to cycle through; `None` means `count` of them.
    pub users: Option<usize>,
    /// Derive every account's SCRAM key before the timed phase ([`Conn::prime`]), as a
    /// client that logged in before has it. Without this the generator spends most of
    /// its time in PBKDF2 on the first login of each account.
    pub prime: bool,
}

impl Default for LoginOpts {
    fn default() -> Self {
        LoginOpts {
            count: 2000,
            concurrency: 50,
            duration_s: Some(600.0),
            users: None,
            prime: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginResult {
    pub scenario: String,
    pub config: LoginOpts,
    pub target: TargetEcho,
    /// Accounts whose SCRAM key was derived before the timed phase.
    pub primed: usize,
    /// Wall time of that priming, not part of `elapsed_s`.
    pub prime_s: f64,
    /// PBKDF2 runs by the generator during the timed phase (0 when priming covered
    /// every account): each costs the generator milliseconds the server did not cause.
    pub timed_key_derivations: u64,
    pub completed: usize,
    pub failed: usize,
    /// The first failure, for diagnosis.
    pub first_error: Option<String>,
    pub elapsed_s: f64,
    pub logins_per_s: f64,
    /// TCP connect to the answer of the ping sent after initial presence.
    pub latency: LatencySummary,
    /// Whether each login fetched its roster (RFC 6121 §2.2) before initial presence.
    #[serde(default)]
    pub roster: bool,
    /// Server CPU milliseconds per completed login (connect, SASL, bind, the roster when
    /// fetched, presence, close), when the server's pid is known.
    #[serde(default)]
    pub server_cpu_ms_per_login: Option<f64>,
    #[serde(flatten)]
    pub usage: Usage,
}

struct Tally {
    lat: Latencies,
    completed: usize,
    failed: usize,
    first_error: Option<String>,
}

/// Runs `count` logins (or fewer, if the time bound ends first), `concurrency` at a time.
pub async fn login(target: &Target, opts: &LoginOpts) -> Result<LoginResult, BenchError> {
    login_with(target, opts, false).await
}

/// [`login`], each login fetching its roster between bind and initial presence when
/// `roster` is set: what a client does, and what `parley-bench compare` measures. A
/// separate flag rather than a [`LoginOpts`] field, so that the other runners' options
/// (the cluster's login storm) keep their meaning.
pub async fn login_with(
    target: &Target,
    opts: &LoginOpts,
    roster: bool,
) -> Result<LoginResult, BenchError> {
    let shared = Shared::new(target)?;
    if opts.count == 0 || opts.concurrency == 0 {
        return Err(BenchError::Options(
            "login needs a count and a concurrency above 0".into(),
        ));
    }
    let users = opts.users.unwrap_or(opts.count).max(1);
    let deadline = opts
        .duration_s
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally {
        lat: Latencies::new(),
        completed: 0,
        failed: 0,
        first_error: None,
    }));
    eprintln!(
        "login: {} logins, {} at a time, over {users} accounts",
        opts.count, opts.concurrency
    );
    let primed = if opts.prime && target.mechanism.scram_hash().is_some() {
        users.min(opts.count)
    } else {
        0
    };
    let prime_started = Instant::now();
    if primed > 0 {
        eprintln!("login: deriving SCRAM keys of {primed} accounts first");
        let sh = shared.clone();
        let results = run_pool(primed, opts.concurrency, move |i| {
            let sh = sh.clone();
            async move { Conn::prime(&sh, i).await }
        })
        .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    let prime_s = prime_started.elapsed().as_secs_f64();
    let misses_before = shared.scram.misses();
    let meter = Meter::start_all(target.server_pids())?;
    let started = Instant::now();
    let workers: Vec<_> = (0..opts.concurrency.min(opts.count))
        .map(|w| {
            let (shared, next, tally) = (shared.clone(), next.clone(), tally.clone());
            let count = opts.count;
            tokio::spawn(async move {
                let mut local = Latencies::new();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let t0 = Instant::now();
                    let result = async {
                        let mut s = Session::login(&shared, i % users, &format!("l{w}")).await?;
                        if roster {
                            fetch_roster(&mut s).await?;
                        }
                        s.available().await?;
                        let took = t0.elapsed();
                        s.close().await?;
                        Ok::<_, BenchError>(took)
                    }
                    .await;
                    match result {
                        Ok(took) => local.record(took),
                        Err(e) => {
                            let mut t = tally.lock();
                            t.failed += 1;
                            if t.first_error.is_none() {
                                eprintln!("login: first failure: {e}");
                                t.first_error = Some(e.to_string());
                            }
                        }
                    }
                }
                let mut t = tally.lock();
                t.completed += local.len() as usize;
                t.lat.merge(&local);
            })
        })
        .collect();
    for w in workers {
        w.await.expect("login worker panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let t = tally.lock();
    eprintln!(
        "login: {} done, {} failed in {elapsed:.2} s",
        t.completed, t.failed
    );
    Ok(LoginResult {
        scenario: "login".into(),
        config: opts.clone(),
        target: target.echo(),
        primed,
        prime_s,
        timed_key_derivations: shared.scram.misses() - misses_before,
        completed: t.completed,
        failed: t.failed,
        first_error: t.first_error.clone(),
        elapsed_s: elapsed,
        logins_per_s: t.completed as f64 / elapsed.max(1e-9),
        latency: t.lat.summary(),
        roster,
        server_cpu_ms_per_login: per_login_ms(usage.server_cpu_s, t.completed),
        usage,
    })
}

/// Server CPU milliseconds per completed login; none without the CPU or without logins.
pub fn per_login_ms(server_cpu_s: Option<f64>, completed: usize) -> Option<f64> {
    server_cpu_s
        .filter(|_| completed > 0)
        .map(|cpu| cpu * 1000.0 / completed as f64)
}

/// RFC 6121 §2.1.3: the roster get a client sends after binding; waits for the answer
/// (a result, or an error from a server without rosters: an answer either way).
async fn fetch_roster(s: &mut Session) -> Result<(), BenchError> {
    s.send(b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
        .await?;
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    s.stanza_until(deadline, "roster answer", |el| {
        el.name() == "iq" && el.attr("id") == Some("roster1")
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_login() {
        assert_eq!(per_login_ms(Some(2.0), 1000), Some(2.0));
        assert_eq!(per_login_ms(Some(2.0), 0), None);
        assert_eq!(per_login_ms(None, 10), None);
    }
}
