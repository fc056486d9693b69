//! `parley-bench compare`: the side-by-side runner that produces docs/benchmarks.md.
//!
//! For each server (Parley, the reference Prosody, ejabberd from Debian when installed) it
//! provisions the same accounts (SCRAM-SHA-1, 4096 iterations, password `pw`) and rosters,
//! then runs each phase (`Phase`) on a freshly started server (same data, pinned to CPU 0 with
//! `taskset -c 0`), every scenario as a `taskset -c 1 parley-bench run … --json` child so
//! that server and generator never share a core, and finally writes the report with
//! tables, ratios against the targets and SVG plots. All servers get the same settings:
//! plain TCP (STARTTLS offered with a self-signed certificate, not required), no shapers or
//! rate limits, local storage; Prosody runs Debian's default configuration with only that
//! changed (servers.rs, prosody.rs).

pub mod ejabberd;
pub mod prosody;
mod report;
mod sections;
mod servers;
pub mod svg;
mod targets;
pub mod web;

pub(crate) use report::machine;
use report::{charts, render};

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::{BenchError, ChatResult, IdleResult, LoginResult, PresenceResult};

/// The servers the runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// This project.
    Parley,
    /// This project's baseline build (`--baseline-bin`, e.g. the last release), run with the
    /// same settings so that a change is judged against the old code in the same run.
    ParleyBaseline,
    /// This project's binary with the message archive off (`[mam] enabled = false`), so
    /// that the archive's cost per stanza is measured in the same run.
    ParleyNoArchive,
    /// Prosody 0.12 through `../shared/reference/prosody`.
    Prosody,
    /// The same Prosody with `mod_mam` added to its modules (its default storage and
    /// policy), so that Parley's archive is measured beside another archive.
    ProsodyMam,
    /// ejabberd 23.01 from Debian.
    Ejabberd,
}

impl Server {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Server::Parley => "Parley",
            Server::ParleyBaseline => "Parley (baseline)",
            Server::ParleyNoArchive => "Parley (archive off)",
            Server::Prosody => "Prosody",
            Server::ProsodyMam => "Prosody with mod_mam",
            Server::Ejabberd => "ejabberd",
        }
    }

    /// Its scratch directory under the work directory.
    fn dir_name(self) -> &'static str {
        match self {
            Server::ProsodyMam => "prosody-mam",
            _ => "prosody",
        }
    }

    /// Below Linux's ephemeral range (32768–60999): the generator's own 20 000 connections
    /// leave TIME_WAIT sockets all over that range, and a server started next could find
    /// its port taken.
    fn port(self) -> u16 {
        match self {
            Server::Parley => 15222,
            Server::ParleyBaseline => 16222,
            Server::ParleyNoArchive => 18222,
            Server::Prosody => 25222,
            Server::ProsodyMam => 26222,
            Server::Ejabberd => 27222,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CompareOpts {
    /// Servers, in order.
    pub servers: Vec<Server>,
    /// Accounts provisioned on each server (user1..userN).
    pub users: usize,
    /// Smaller sizes for a quick check (not for the record).
    pub quick: bool,
    /// Scratch directory for data dirs and configs.
    pub workdir: PathBuf,
    /// The Parley release binary.
    pub parley_bin: PathBuf,
    /// The baseline build's binary (for [`Server::ParleyBaseline`]).
    pub baseline_bin: Option<PathBuf>,
    /// The reference Prosody launcher (`run-prosody.sh`). Not used by the comparison any
    /// more: its Prosody runs Debian's default configuration (servers.rs), started with
    /// `setpriv` as the launcher's README describes; kept for the command line.
    pub prosody_launcher: PathBuf,
    /// Where the report goes (SVGs beside it, in `benchmarks/`).
    pub out: PathBuf,
    /// The command line that produced the report, for the record.
    pub command_line: String,
}

/// Figures of one server.
#[derive(Debug, Default)]
pub struct Figures {
    /// Idle sessions over plain TCP.
    idle: Option<IdleResult>,
    /// Idle sessions over STARTTLS.
    idle_tls: Option<IdleResult>,
    login: Option<LoginResult>,
    chat_max: Option<ChatResult>,
    chat_rates: Vec<ChatResult>,
    presence: Vec<PresenceResult>,
    errors: Vec<String>,
    web: web::WebFigures,
    provision_s: f64,
}

/// The parts of a server's run, each on a freshly started process on the same data: a
/// runtime's state after one phase must not tilt the next. Prosody's cost per chat
/// stanza rises four- to sixfold after the idle and login phases, whose heap its Lua
/// collector keeps walking (docs/benchmarks/prosody-reference.md); sessions closed by one
/// idle phase would leave freed memory for the next one's to reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Idle sessions over plain TCP (and the RSS with none).
    IdleTcp,
    /// Idle sessions over STARTTLS.
    IdleTls,
    /// Logins, 50 in flight.
    Login,
    /// Chat at saturation, then at each fixed load, then presence, on one process.
    Chat,
    /// The web transports (web.rs).
    Web,
}

impl Phase {
    pub(crate) const ALL: [Phase; 5] = [
        Phase::IdleTcp,
        Phase::IdleTls,
        Phase::Login,
        Phase::Chat,
        Phase::Web,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::IdleTcp => "idle over TCP",
            Phase::IdleTls => "idle over STARTTLS",
            Phase::Login => "login",
            Phase::Chat => "chat and presence",
            Phase::Web => "web transports",
        }
    }
}

pub(crate) struct Sizes {
    pub(crate) idle: &'static str,
    login: usize,
    pub(crate) pairs: usize,
    pub(crate) duration: f64,
    rates: &'static [u32],
    pub(crate) rate_duration: f64,
    presence: [(usize, usize); 2],
    presence_rounds: usize,
}

/// The fixed chat loads of the recorded run (msg/s offered, all pairs together): the
/// loads issue 16 sets targets at. 2500 and 10000 would fill in the curve at about two
/// minutes more for five servers (a lagging Prosody drains for 10 s after each load),
/// which takes the run past a quarter of an hour.
const FULL_RATES: &[u32] = &[1000, 5000, 20000];

fn sizes(quick: bool, users: usize) -> Sizes {
    if quick {
        let half = users / 2;
        Sizes {
            idle: "200,600",
            login: 500,
            pairs: 20,
            duration: 3.0,
            // The loads the targets name, so that every figure of the report renders.
            rates: &[1000, 5000, 20000],
            rate_duration: 3.0,
            presence: [(half + 1, 20), (half + 101, 200)],
            presence_rounds: 5,
        }
    } else {
        Sizes {
            idle: "1000,5000",
            login: 5000,
            pairs: 100,
            duration: 10.0,
            rates: FULL_RATES,
            rate_duration: 5.0,
            presence: [(10001, 100), (11001, 1000)],
            // Ten rounds: one round of a fast server is a few of the kernel's 10 ms CPU
            // ticks, and the CPU per round is the rounds' total over their number.
            presence_rounds: 10,
        }
    }
}

fn users_needed(s: &Sizes) -> usize {
    s.presence
        .iter()
        .map(|(first, n)| first + n)
        .max()
        .unwrap_or(0)
        .max(s.login)
        .max(
            s.idle
                .split(',')
                .filter_map(|n| n.parse::<usize>().ok())
                .max()
                .unwrap_or(0),
        )
}

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Options(e.to_string())
}

fn wait_port(port: u16, limit: Duration) -> Result<(), BenchError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(other(format!("nothing listens on {addr} after {limit:?}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Runs everything and writes the report.
pub fn compare(opts: &CompareOpts) -> Result<(), BenchError> {
    let s = sizes(opts.quick, opts.users);
    if opts.users < users_needed(&s) {
        return Err(other(format!(
            "--users {} is too few: the scenarios use users up to {}",
            opts.users,
            users_needed(&s)
        )));
    }
    std::fs::create_dir_all(&opts.workdir).map_err(|e| BenchError::io("workdir", e))?;
    let started_at = Instant::now();
    let mut results = Vec::new();
    for &server in &opts.servers {
        eprintln!("== {}", server.name());
        let mut figures = Figures::default();
        let t = Instant::now();
        match servers::provision(server, opts, &s) {
            Ok(()) => {}
            Err(e) => {
                figures.errors.push(format!("provisioning: {e}"));
                results.push((server, figures));
                continue;
            }
        }
        figures.provision_s = t.elapsed().as_secs_f64();
        eprintln!(
            "   provisioned {} users in {:.1} s",
            opts.users, figures.provision_s
        );
        for phase in Phase::ALL {
            eprintln!("   -- {} (fresh start)", phase.name());
            let started = match servers::start(server, opts) {
                Ok(st) => st,
                Err(e) => {
                    figures
                        .errors
                        .push(format!("starting for {}: {e}", phase.name()));
                    break;
                }
            };
            run_phase(phase, server, started.pid, &s, &mut figures);
            started.stop();
        }
        results.push((server, figures));
    }
    let mut report = render(opts, &results, started_at.elapsed());
    let dir = opts
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .join("benchmarks");
    // The cluster, stream resumption, CSI, group chat, §10.1 fence and web listener figures
    // come from their own runs (crates/bench/run-cluster.sh, run-resume.sh, run-csi.sh,
    // run-muc.sh, run-fence.sh, run-web-ab.sh); the report carries the latest of them.
    for name in [
        "cluster.md",
        "resume.md",
        "csi.md",
        "muc.md",
        "fence.md",
        "web-listener.md",
    ] {
        if let Ok(section) = std::fs::read_to_string(dir.join(name)) {
            report.push('\n');
            report.push_str(&section);
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("out", e))?;
    for (name, chart) in charts(&results) {
        std::fs::write(dir.join(name), chart.render()).map_err(|e| BenchError::io("svg", e))?;
    }
    std::fs::write(&opts.out, report).map_err(|e| BenchError::io("report", e))?;
    eprintln!("wrote {}", opts.out.display());
    Ok(())
}

/// Runs `parley-bench run ARGS --json` on CPU 1 and parses its last JSON line.
pub(crate) fn run_child<T: DeserializeOwned>(args: &[String]) -> Result<T, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("current_exe", e))?;
    // A scenario that cannot finish (a server that stops accepting) must not stall the run.
    let mut cmd = format!(
        "ulimit -n 20000; exec timeout 300 taskset -c 1 {} run --json",
        exe.display()
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    eprintln!("   {}", args.join(" "));
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::io("parley-bench run", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match (out.status.success(), line) {
        (true, Some(line)) => {
            serde_json::from_str(line).map_err(|e| other(format!("result of {args:?}: {e}")))
        }
        _ => Err(other(format!(
            "`parley-bench run {}` failed ({})",
            args.join(" "),
            out.status
        ))),
    }
}

/// Runs one phase's scenarios against the started server; failures go to the figures'
/// errors, and the run goes on.
fn run_phase(phase: Phase, server: Server, pid: u32, s: &Sizes, f: &mut Figures) {
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--target".to_owned(),
            format!("127.0.0.1:{}", server.port()),
            "--server-pid".to_owned(),
            pid.to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let record = |what: &str, e: BenchError, errors: &mut Vec<String>| {
        eprintln!("   {what} failed: {e}");
        errors.push(format!("{what}: {e}"));
    };
    match phase {
        Phase::IdleTcp => match run_child::<IdleResult>(&base(&["idle", "--sessions", s.idle])) {
            Ok(r) => f.idle = Some(r),
            Err(e) => record("idle", e, &mut f.errors),
        },
        Phase::IdleTls => {
            match run_child::<IdleResult>(&base(&["--starttls", "idle", "--sessions", s.idle])) {
                Ok(r) => f.idle_tls = Some(r),
                Err(e) => record("idle over STARTTLS", e, &mut f.errors),
            }
        }
        Phase::Login => {
            let login = s.login.to_string();
            match run_child::<LoginResult>(&base(&[
                "login",
                "--count",
                &login,
                "--concurrency",
                "50",
                "--roster",
            ])) {
                Ok(r) => f.login = Some(r),
                Err(e) => record("login", e, &mut f.errors),
            }
        }
        Phase::Chat => {
            let pairs = s.pairs.to_string();
            let duration = s.duration.to_string();
            match run_child::<ChatResult>(&base(&[
                "chat",
                "--pairs",
                &pairs,
                "--window",
                "64",
                "--duration",
                &duration,
            ])) {
                Ok(r) => f.chat_max = Some(r),
                Err(e) => record("chat max", e, &mut f.errors),
            }
            let rate_duration = s.rate_duration.to_string();
            for rate in s.rates {
                let rate = rate.to_string();
                match run_child::<ChatResult>(&base(&[
                    "chat",
                    "--pairs",
                    &pairs,
                    "--rate",
                    &rate,
                    "--duration",
                    &rate_duration,
                ])) {
                    Ok(r) => f.chat_rates.push(r),
                    Err(e) => record(&format!("chat rate {rate}"), e, &mut f.errors),
                }
            }
            let rounds = s.presence_rounds.to_string();
            for (first, n) in s.presence {
                let (first, n) = (first.to_string(), n.to_string());
                match run_child::<PresenceResult>(&base(&[
                    "--first",
                    &first,
                    "presence",
                    "--contacts",
                    &n,
                    "--rounds",
                    &rounds,
                ])) {
                    Ok(r) => f.presence.push(r),
                    Err(e) => record(&format!("presence {n}"), e, &mut f.errors),
                }
            }
        }
        Phase::Web => f.web = web::run(server, pid, s, &mut f.errors),
    }
}
