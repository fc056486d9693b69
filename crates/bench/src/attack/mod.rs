//! Attack runs for docs/security.md: what each hostile client of issue 10 costs the server.
//!
//! `parley-bench attack --parley-bin PATH --label before|after` starts a fresh Parley process
//! (SQLite, loopback listeners, default limits) for every attack, so that one attack's memory
//! never counts against the next, samples the server's RSS every 20 ms while the attack runs
//! and reports the peak growth over the settled baseline, the server CPU it cost, and what
//! the server did (refused, disconnected, answered). The attacks are the ones issue 10 names:
//! floods of SASL `<auth/>` and framing `<open/>` from clients that never read, oversized and
//! concurrent BOSH requests, a BOSH session-creation storm, crafted XML before TLS, stanzas to
//! non-existent accounts, one account filling storage, and a connection flood from one IP.
//!
//! Each attack is bounded in count and time and targets only the loopback server it started.
//! The same command runs against an older binary (the "before" column) and a newer one.

mod http;
mod scenarios;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{proc_sample, BenchError};

pub use scenarios::ALL;

/// Options of one attack run.
#[derive(Debug, Clone)]
pub struct AttackOpts {
    /// The `parley` binary to attack.
    pub parley_bin: PathBuf,
    /// Scratch directory for data and configs.
    pub workdir: PathBuf,
    /// Attacks to run (names from [`ALL`]); empty: all.
    pub only: Vec<String>,
    /// How long a flood lasts at most, in seconds.
    pub seconds: f64,
    /// First of the ports the servers listen on (c2s, http, admin: three in a row).
    pub base_port: u16,
}

/// What one attack cost and how the server answered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackResult {
    /// The attack's name.
    pub attack: String,
    /// Peak server RSS during the attack minus RSS before it, KiB.
    pub rss_growth_kib: u64,
    /// Server CPU (user + system) the attack cost, milliseconds.
    pub cpu_ms: f64,
    /// How long the attack ran, seconds.
    pub seconds: f64,
    /// What the server did, in a few words.
    pub outcome: String,
}

/// A running server under attack.
pub struct Victim {
    child: Child,
    /// Its pid, for /proc.
    pub pid: u32,
    /// The STARTTLS c2s listener.
    pub c2s: SocketAddr,
    /// The client HTTP listener (WebSocket, BOSH).
    pub http: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The admin bearer token.
    pub admin_token: String,
    /// The data directory (for storage growth).
    pub data_dir: PathBuf,
}

/// The account attacks that need one log in as (`user1@localhost`, password `pw`: the
/// generator's conventions).
pub const ATTACKER: &str = "user1@localhost";

impl Victim {
    /// Writes a config, creates the attacker's account and starts `parley serve`, returning
    /// once the c2s port accepts connections.
    pub fn start(opts: &AttackOpts, name: &str) -> Result<Victim, BenchError> {
        let dir = opts.workdir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("creating the workdir", e))?;
        let p = opts.base_port;
        let (c2s, http, admin) = (
            SocketAddr::from(([127, 0, 0, 1], p)),
            SocketAddr::from(([127, 0, 0, 1], p + 1)),
            SocketAddr::from(([127, 0, 0, 1], p + 2)),
        );
        let token = "attack-bench-admin-token-0123456789".to_owned();
        let data_dir = dir.join("data");
        // Only keys that every Parley build since the web transports understands, so that the
        // older binary of a before/after run reads the same file; everything else is default.
        // The SASL flood needs SASL offered on the plain socket (as behind a TLS-terminating
        // proxy); every other attack meets the default, TLS-required listener.
        let plain = if name == "sasl-auth-flood" {
            "require_encryption = false\n"
        } else {
            ""
        };
        let config = format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[c2s]\nlisten = [\"{c2s}\"]\ndirect_tls = []\n{plain}\n[admin]\nlisten = \"{admin}\"\ntoken = \"{token}\"\n\n[http]\nlisten = \"{http}\"\n\n[log]\nlevel = \"warn\"\n",
            data_dir.display()
        );
        let config_path = dir.join("parley.toml");
        std::fs::write(&config_path, config).map_err(|e| BenchError::io("writing config", e))?;
        let status = Command::new(&opts.parley_bin)
            .arg("--config")
            .arg(&config_path)
            .args(["user", "add", ATTACKER, "--password", "pw"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| BenchError::io("running parley user add", e))?;
        if !status.success() {
            return Err(BenchError::Options(format!(
                "parley user add failed: {status}"
            )));
        }
        let log = std::fs::File::create(dir.join("server.log"))
            .map_err(|e| BenchError::io("creating the server log", e))?;
        let child = Command::new(&opts.parley_bin)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::io("starting parley", e))?;
        let pid = child.id();
        let victim = Victim {
            child,
            pid,
            c2s,
            http,
            admin,
            admin_token: token,
            data_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(c2s).is_err()
            || std::net::TcpStream::connect(http).is_err()
        {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!(
                    "parley did not listen on {c2s} (see {})",
                    dir.join("server.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(victim)
    }

    /// Bytes in the data directory (SQLite database and its journal).
    pub fn storage_bytes(&self) -> u64 {
        dir_bytes(&self.data_dir)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Samples a process's RSS every 20 ms until stopped, keeping the peak.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(sample) = proc_sample(pid) {
                    p.fetch_max(sample.rss_kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakRss {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Runs the selected attacks, each against its own fresh server.
pub async fn run(opts: &AttackOpts) -> Result<Vec<AttackResult>, BenchError> {
    let mut results = Vec::new();
    for (name, attack) in scenarios::ALL {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("attack {name} …");
        let victim = Victim::start(opts, name)?;
        // The baseline is read once the server says it is ready (start-up done), not after
        // a guessed delay.
        let ready_by = Instant::now() + Duration::from_secs(30);
        while !matches!(http::get(victim.admin, "/ready", &victim.admin_token).await,
            Ok(a) if a.status == 200)
        {
            if Instant::now() > ready_by {
                return Err(BenchError::Timeout(format!(
                    "{name}: /ready never answered 200"
                )));
            }
            tokio::task::yield_now().await;
        }
        let before = proc_sample(victim.pid)?;
        let peak = PeakRss::start(victim.pid);
        let started = Instant::now();
        let outcome = attack(&victim, opts.seconds).await;
        let seconds = started.elapsed().as_secs_f64();
        let after = proc_sample(victim.pid);
        let peak_kib = peak.finish();
        let (outcome, cpu_ms, peak_kib) = match after {
            Ok(a) => (
                outcome.unwrap_or_else(|e| format!("attack error: {e}")),
                (a.cpu_seconds - before.cpu_seconds) * 1000.0,
                peak_kib.max(a.rss_kib),
            ),
            Err(_) => ("the server died".to_owned(), f64::NAN, peak_kib),
        };
        let result = AttackResult {
            attack: (*name).to_owned(),
            rss_growth_kib: peak_kib.saturating_sub(before.rss_kib),
            cpu_ms,
            seconds,
            outcome,
        };
        eprintln!("  {result:?}");
        results.push(result);
    }
    Ok(results)
}

/// A markdown table of a before and an after run, side by side.
pub fn report(before: &[AttackResult], after: &[AttackResult]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "| attack | before: server RSS growth | before: server CPU | before: what happened | after: server RSS growth | after: server CPU | after: what happened |\n|---|---:|---:|---|---:|---:|---|\n",
    );
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    for (name, _) in scenarios::ALL {
        let b = before.iter().find(|r| r.attack == *name);
        let a = after.iter().find(|r| r.attack == *name);
        let cell = |r: Option<&AttackResult>| match r {
            Some(r) => (
                mib(r.rss_growth_kib),
                format!("{:.0} ms", r.cpu_ms),
                r.outcome.clone(),
            ),
            None => ("–".into(), "–".into(), "not run".into()),
        };
        let (b1, b2, b3) = cell(b);
        let (a1, a2, a3) = cell(a);
        let _ = writeln!(
            out,
            "| `{name}` | {b1} | {b2} | {b3} | {a1} | {a2} | {a3} |"
        );
    }
    out
}
