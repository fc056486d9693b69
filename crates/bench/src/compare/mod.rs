//! `parley-bench compare`: the side-by-side runner that produces docs/benchmarks.md.
//!
//! For each server (Parley, the reference Prosody, ejabberd from Debian when installed) it
//! provisions the same accounts (SCRAM-SHA-1, 4096 iterations, password `pw`) and rosters,
//! starts the server pinned to CPU 0 (`taskset -c 0`), runs every scenario as a
//! `taskset -c 1 parley-bench run … --json` child so that server and generator never share
//! a core, stops the server, and finally writes the report with tables, ratios and SVG plots.
//! All servers get the same settings: plain TCP (STARTTLS offered, not required), no shapers
//! or rate limits, local storage.

pub mod ejabberd;
pub mod prosody;
pub mod svg;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::{BenchError, ChatResult, IdleResult, LoginResult, PresenceResult, Target};

/// The servers the runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// This project.
    Parley,
    /// Prosody 0.12 through `../shared/reference/prosody`.
    Prosody,
    /// ejabberd 23.01 from Debian.
    Ejabberd,
}

impl Server {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Server::Parley => "Parley",
            Server::Prosody => "Prosody",
            Server::Ejabberd => "ejabberd",
        }
    }

    /// Below Linux's ephemeral range (32768–60999): the generator's own 20 000 connections
    /// leave TIME_WAIT sockets all over that range, and a server started next could find
    /// its port taken.
    fn port(self) -> u16 {
        match self {
            Server::Parley => 15222,
            Server::Prosody => 25222,
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
    /// The reference Prosody launcher (`run-prosody.sh`); its `prosody.cfg.lua` is used.
    pub prosody_launcher: PathBuf,
    /// Where the report goes (SVGs beside it, in `benchmarks/`).
    pub out: PathBuf,
    /// The command line that produced the report, for the record.
    pub command_line: String,
}

/// Figures of one server.
#[derive(Debug, Default)]
pub struct Figures {
    idle: Option<IdleResult>,
    login: Option<LoginResult>,
    chat_max: Option<ChatResult>,
    chat_rates: Vec<ChatResult>,
    presence: Vec<PresenceResult>,
    errors: Vec<String>,
    provision_s: f64,
}

struct Sizes {
    idle: &'static str,
    login: usize,
    pairs: usize,
    duration: f64,
    rates: &'static [u32],
    rate_duration: f64,
    presence: [(usize, usize); 2],
}

fn sizes(quick: bool, users: usize) -> Sizes {
    if quick {
        let half = users / 2;
        Sizes {
            idle: "200,600",
            login: 500,
            pairs: 20,
            duration: 3.0,
            rates: &[500, 2000],
            rate_duration: 3.0,
            presence: [(half + 1, 20), (half + 101, 200)],
        }
    } else {
        Sizes {
            idle: "1000,5000",
            login: 5000,
            pairs: 100,
            duration: 10.0,
            rates: &[1000, 2500, 5000, 10000],
            rate_duration: 5.0,
            presence: [(10001, 100), (11001, 1000)],
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

/// A server started for the run.
struct Started {
    pid: u32,
    child: Option<Child>,
    stop: Box<dyn FnOnce()>,
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
        match provision(server, opts, &s) {
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
        let started = match start(server, opts) {
            Ok(st) => st,
            Err(e) => {
                figures.errors.push(format!("starting: {e}"));
                results.push((server, figures));
                continue;
            }
        };
        run_all(server, started.pid, &s, &mut figures);
        let Started { child, stop, .. } = started;
        stop();
        if let Some(mut c) = child {
            let _ = c.wait();
        }
        results.push((server, figures));
    }
    let mut report = render(opts, &results, started_at.elapsed());
    // The cluster figures come from their own run (crates/bench/run-cluster.sh); the report
    // carries the latest of them.
    let cluster = opts
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .join("benchmarks")
        .join("cluster.md");
    if let Ok(section) = std::fs::read_to_string(&cluster) {
        report.push('\n');
        report.push_str(&section);
    }
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir.join("benchmarks")).map_err(|e| BenchError::io("out", e))?;
    }
    for (name, chart) in charts(&results) {
        let path = opts
            .out
            .parent()
            .unwrap_or(Path::new("."))
            .join("benchmarks")
            .join(name);
        std::fs::write(&path, chart.render()).map_err(|e| BenchError::io("svg", e))?;
    }
    std::fs::write(&opts.out, report).map_err(|e| BenchError::io("report", e))?;
    eprintln!("wrote {}", opts.out.display());
    Ok(())
}

fn parley_dir(opts: &CompareOpts) -> PathBuf {
    opts.workdir.join("parley")
}

fn parley_config(opts: &CompareOpts) -> PathBuf {
    parley_dir(opts).join("parley.toml")
}

fn ejabberd(opts: &CompareOpts) -> ejabberd::Ejabberd {
    ejabberd::Ejabberd {
        dir: opts.workdir.join("ejabberd"),
        c2s_port: Server::Ejabberd.port(),
        api_port: 27280,
        node: "parleybench@localhost".into(),
    }
}

fn usernames(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("user{i}")).collect()
}

fn provision(server: Server, opts: &CompareOpts, s: &Sizes) -> Result<(), BenchError> {
    match server {
        Server::Parley => {
            let dir = parley_dir(opts);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("parley dir", e))?;
            let config = format!(
                "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{dir}\"\n\n[c2s]\nlisten = [\"127.0.0.1:{port}\"]\ndirect_tls = []\nrequire_encryption = false\n\n[sasl]\nscram_iterations = 4096\n\n[limits]\nmax_connections_per_ip = 10000000\nconnection_rate_per_ip = 10000000\nconnection_burst_per_ip = 10000000\nmax_sessions = 10000000\nread_bytes_per_s = 1073741824\nread_burst_bytes = 1073741824\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n",
                dir = dir.display(),
                port = Server::Parley.port()
            );
            std::fs::write(parley_config(opts), config).map_err(|e| BenchError::io("config", e))?;
            let mut child = Command::new(&opts.parley_bin)
                .arg("--config")
                .arg(parley_config(opts))
                .args(["user", "import"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("parley user import", e))?;
            {
                let mut stdin = child.stdin.take().expect("piped");
                let mut lines = String::new();
                for i in 1..=opts.users {
                    let _ = writeln!(lines, "user{i}@localhost pw");
                }
                stdin
                    .write_all(lines.as_bytes())
                    .map_err(|e| BenchError::io("import input", e))?;
            }
            let status = child.wait().map_err(|e| BenchError::io("import", e))?;
            if !status.success() {
                return Err(other(format!("parley user import exited with {status}")));
            }
            let url = format!("sqlite://{}/parley.db", dir.display());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BenchError::io("runtime", e))?;
            rt.block_on(async {
                let storage = crate::provision::open(&url).await?;
                for (first, n) in s.presence {
                    let mut t = Target::new(vec![SocketAddr::from(([127, 0, 0, 1], 1))]);
                    t.first_user = first;
                    crate::provision::presence_rosters(storage.as_ref(), &t, n).await?;
                }
                Ok::<(), BenchError>(())
            })
        }
        Server::Prosody => {
            let dir = opts.workdir.join("prosody");
            let _ = std::fs::remove_dir_all(&dir);
            let data = dir.join("data");
            prosody::provision_accounts(&data, "localhost", &usernames(opts.users), "pw", 4096)
                .map_err(|e| BenchError::io("prosody accounts", e))?;
            for (first, n) in s.presence {
                let owner = format!("user{first}");
                let contacts: Vec<String> = (first + 1..=first + n)
                    .map(|i| format!("user{i}@localhost"))
                    .collect();
                prosody::write_roster(&data, "localhost", &owner, &contacts)
                    .map_err(|e| BenchError::io("prosody roster", e))?;
                for i in first + 1..=first + n {
                    prosody::write_roster(
                        &data,
                        "localhost",
                        &format!("user{i}"),
                        &[format!("{owner}@localhost")],
                    )
                    .map_err(|e| BenchError::io("prosody roster", e))?;
                }
            }
            Ok(())
        }
        Server::Ejabberd => {
            if !ejabberd::installed() {
                return Err(other(
                    "ejabberd is not installed (apt-get install ejabberd)",
                ));
            }
            let e = ejabberd(opts);
            e.stop();
            e.start()
                .map_err(|err| BenchError::io("ejabberd start", err))?;
            let result = (|| {
                e.register(&usernames(opts.users), "pw", 8)?;
                for (first, n) in s.presence {
                    let contacts: Vec<String> = (first + 1..=first + n)
                        .map(|i| format!("user{i}"))
                        .collect();
                    e.befriend(&format!("user{first}"), &contacts)?;
                }
                Ok::<(), std::io::Error>(())
            })();
            e.stop();
            result.map_err(|err| BenchError::io("ejabberd provisioning", err))
        }
    }
}

fn start(server: Server, opts: &CompareOpts) -> Result<Started, BenchError> {
    match server {
        Server::Parley => {
            let cmd = format!(
                "ulimit -n 20000; exec taskset -c 0 {} --config {} serve",
                opts.parley_bin.display(),
                parley_config(opts).display()
            );
            let child = Command::new("sh")
                .args(["-c", &cmd])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("parley serve", e))?;
            let pid = child.id();
            wait_port(Server::Parley.port(), Duration::from_secs(20))?;
            Ok(Started {
                pid,
                child: Some(child),
                stop: Box::new(move || {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }),
            })
        }
        Server::Prosody => {
            // Not through run-prosody.sh: its `runuser` goes through PAM, which resets the
            // open-file limit to 1024 and caps Prosody near 1000 sessions. `setpriv` keeps the
            // limit; the config is the reference one.
            let dir = opts.workdir.join("prosody");
            let config = opts
                .prosody_launcher
                .parent()
                .unwrap_or(Path::new("."))
                .join("prosody.cfg.lua");
            let chown = Command::new("chown")
                .args(["-R", "prosody:prosody"])
                .arg(&dir)
                .status()
                .map_err(|e| BenchError::io("chown prosody dir", e))?;
            if !chown.success() {
                return Err(other("chown of the Prosody directory failed"));
            }
            let cmd = format!(
                "ulimit -n 20000; exec taskset -c 0 setpriv --reuid=prosody --regid=prosody --init-groups prosody --config {}",
                config.display()
            );
            let child = Command::new("sh")
                .args(["-c", &cmd])
                .env("PROSODY_DIR", &dir)
                .env("PROSODY_C2S", Server::Prosody.port().to_string())
                .env("PROSODY_HTTP", "25280")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("prosody", e))?;
            let pid = child.id();
            wait_port(Server::Prosody.port(), Duration::from_secs(30))?;
            Ok(Started {
                pid,
                child: Some(child),
                stop: Box::new(move || {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }),
            })
        }
        Server::Ejabberd => {
            let e = ejabberd(opts);
            e.start_pinned()
                .map_err(|err| BenchError::io("ejabberd start", err))?;
            let pid = e
                .pid()
                .ok_or_else(|| other("ejabberd started but its beam.smp pid was not found"))?;
            Ok(Started {
                pid,
                child: None,
                stop: Box::new(move || e.stop()),
            })
        }
    }
}

/// Runs `parley-bench run ARGS --json` on CPU 1 and parses its last JSON line.
fn run_child<T: DeserializeOwned>(args: &[String]) -> Result<T, BenchError> {
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

fn run_all(server: Server, pid: u32, s: &Sizes, f: &mut Figures) {
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
    match run_child::<IdleResult>(&base(&["idle", "--sessions", s.idle])) {
        Ok(r) => f.idle = Some(r),
        Err(e) => record("idle", e, &mut f.errors),
    }
    let login = s.login.to_string();
    match run_child::<LoginResult>(&base(&["login", "--count", &login, "--concurrency", "50"])) {
        Ok(r) => f.login = Some(r),
        Err(e) => record("login", e, &mut f.errors),
    }
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
    for (first, n) in s.presence {
        let (first, n) = (first.to_string(), n.to_string());
        match run_child::<PresenceResult>(&base(&[
            "--first",
            &first,
            "presence",
            "--contacts",
            &n,
            "--rounds",
            "5",
        ])) {
            Ok(r) => f.presence.push(r),
            Err(e) => record(&format!("presence {n}"), e, &mut f.errors),
        }
    }
}

// ----- the report ----------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn presence_median(f: &Figures, contacts: usize) -> Option<f64> {
    f.presence
        .iter()
        .find(|p| p.config.contacts == contacts)
        .map(|p| median(p.rounds.iter().map(|r| r.contacts_all_ms).collect()))
}

fn offered_rate(r: &ChatResult) -> Option<f64> {
    match r.config.mode {
        crate::ChatMode::Rate { rate } => Some(rate),
        crate::ChatMode::Max { .. } => None,
    }
}

fn rate_result(f: &Figures, rate: u32) -> Option<&ChatResult> {
    f.chat_rates
        .iter()
        .find(|r| offered_rate(r) == Some(f64::from(rate)))
}

fn cpu_per_100k(r: &ChatResult) -> Option<f64> {
    let cpu = r.usage.server_cpu_s?;
    (r.delivered > 0).then(|| cpu / r.delivered as f64 * 100_000.0)
}

/// One row: a label and one formatted cell per server.
fn row(out: &mut String, label: &str, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.collect();
    let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {} GiB RAM", kib / 1024 / 1024)
        });
    format!("{cores} × {cpu}{mem}, Linux {kernel}")
}

fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn render(opts: &CompareOpts, results: &[(Server, Figures)], took: Duration) -> String {
    let mut out = String::new();
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `parley-bench compare` (crates/bench) in {:.0} s. Do not edit by hand: \
         rerun the command below. Every figure of every server comes from the same run, on the \
         same machine, with the same settings.\n",
        took.as_secs_f64()
    );
    let _ = writeln!(out, "## Machine and method\n");
    let _ = writeln!(out, "- Machine: {}.", machine());
    let _ = writeln!(
        out,
        "- Servers: Parley {} (release build), Prosody {}, ejabberd {}.",
        env!("CARGO_PKG_VERSION"),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "prosody"]),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "ejabberd"]),
    );
    let _ = writeln!(
        out,
        "- Pinning: each server runs on CPU 0 (`taskset -c 0`), the load generator on CPU 1 \
         (`taskset -c 1`), so \"per core\" figures are the whole figures.\n\
         - Same settings for all: plain TCP with STARTTLS offered but not required, SCRAM-SHA-1 \
         with 4096 iterations stored per account (password `pw`), no shapers or rate limits, \
         local storage (SQLite, Prosody's files, Mnesia), open-file limit 20000. The generator \
         caches SCRAM SaltedPasswords, as real clients do, so logins measure the server.\n\
         - {} accounts (user1…user{}) provisioned on each server; presence rosters are mutual \
         `both` subscriptions written to each server's storage.\n",
        opts.users, opts.users
    );
    let _ = writeln!(
        out,
        "Command (from the repository root, release build first):\n"
    );
    let _ = writeln!(out, "    cargo build --release -p parley -p parley-bench");
    let _ = writeln!(out, "    {}\n", opts.command_line);
    let _ = writeln!(out, "## Figures\n");
    let _ = writeln!(out, "| figure | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    let f = |g: &dyn Fn(&Figures) -> String| -> std::vec::IntoIter<String> {
        results
            .iter()
            .map(|(_, x)| g(x))
            .collect::<Vec<_>>()
            .into_iter()
    };
    row(
        &mut out,
        "idle: RSS per session (KiB)",
        f(&|x| fmt_opt(x.idle.as_ref().map(|i| i.rss_per_session_kib), 1)),
    );
    row(
        &mut out,
        "idle: server RSS with no sessions (MiB)",
        f(&|x| {
            fmt_opt(
                x.idle
                    .as_ref()
                    .map(|i| i.server_rss_kib_idle as f64 / 1024.0),
                1,
            )
        }),
    );
    row(
        &mut out,
        "login: sessions/s (connect → presence answered)",
        f(&|x| fmt_opt(x.login.as_ref().map(|l| l.logins_per_s), 0)),
    );
    row(
        &mut out,
        "login: p50 / p99 (ms)",
        f(&|x| match &x.login {
            Some(l) => format!(
                "{:.1} / {:.1}",
                l.latency.p50_us as f64 / 1000.0,
                l.latency.p99_us as f64 / 1000.0
            ),
            None => "–".into(),
        }),
    );
    row(
        &mut out,
        "chat: max delivered stanzas/s",
        f(&|x| fmt_opt(x.chat_max.as_ref().map(|c| c.delivered_per_s), 0)),
    );
    row(
        &mut out,
        "chat: server CPU s per 100k stanzas (max load)",
        f(&|x| fmt_opt(x.chat_max.as_ref().and_then(cpu_per_100k), 2)),
    );
    row(
        &mut out,
        "chat at 5k msg/s: one-way p50 / p99 / p99.9 (ms)",
        f(&|x| match rate_result(x, 5000) {
            Some(r) => format!(
                "{:.2} / {:.2} / {:.2}",
                r.latency.p50_us as f64 / 1000.0,
                r.latency.p99_us as f64 / 1000.0,
                r.latency.p999_us as f64 / 1000.0
            ),
            None => "–".into(),
        }),
    );
    row(
        &mut out,
        "chat at 5k msg/s: server CPU s per 100k stanzas",
        f(&|x| fmt_opt(rate_result(x, 5000).and_then(cpu_per_100k), 2)),
    );
    let sz = sizes(opts.quick, opts.users);
    for (_, n) in sz.presence {
        row(
            &mut out,
            &format!("presence: {n} contacts all have it (ms, median of 5)"),
            f(&|x| fmt_opt(presence_median(x, n), 2)),
        );
    }
    let biggest = sz.presence[1].1;
    let _ = writeln!(out);
    // Ratios against each reference.
    let parley = results
        .iter()
        .find(|(s, _)| *s == Server::Parley)
        .map(|(_, f)| f);
    for (server, reference) in results.iter().filter(|(s, _)| *s != Server::Parley) {
        let Some(p) = parley else { break };
        let _ = writeln!(out, "## Parley against {}\n", server.name());
        let _ = writeln!(out, "| figure | ratio | target | met |");
        let _ = writeln!(out, "|---|---|---|---|");
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
            _ => None,
        };
        let mut target_row = |label: &str, r: Option<f64>, target: &str, ok: Option<bool>| {
            let verdict = match ok {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {target} | {verdict} |",
                fmt_opt(r, 2)
            );
        };
        let rss = ratio(
            p.idle.as_ref().map(|i| i.rss_per_session_kib),
            reference.idle.as_ref().map(|i| i.rss_per_session_kib),
        );
        let is_prosody = *server == Server::Prosody;
        target_row(
            "RSS per idle session, Parley ÷ reference",
            rss,
            if is_prosody { "≤ 0.25" } else { "(none)" },
            rss.filter(|_| is_prosody).map(|r| r <= 0.25),
        );
        let logins = ratio(
            p.login.as_ref().map(|l| l.logins_per_s),
            reference.login.as_ref().map(|l| l.logins_per_s),
        );
        target_row(
            "logins/s, Parley ÷ reference",
            logins,
            if is_prosody { "≥ 4" } else { "(none)" },
            logins.filter(|_| is_prosody).map(|r| r >= 4.0),
        );
        let chat = ratio(
            p.chat_max.as_ref().map(|c| c.delivered_per_s),
            reference.chat_max.as_ref().map(|c| c.delivered_per_s),
        );
        let chat_target = if is_prosody { 5.0 } else { 2.0 };
        target_row(
            "delivered chat stanzas/s per core, Parley ÷ reference",
            chat,
            if is_prosody { "≥ 5" } else { "≥ 2" },
            chat.map(|r| r >= chat_target),
        );
        let presence = ratio(
            presence_median(reference, biggest),
            presence_median(p, biggest),
        );
        target_row(
            &format!("presence fan-out speed ({biggest} contacts), Parley ÷ reference"),
            presence,
            if is_prosody { "≥ 5" } else { "(none)" },
            presence.filter(|_| is_prosody).map(|r| r >= 5.0),
        );
        let _ = writeln!(out);
    }
    if let Some(p) = parley {
        let _ = writeln!(out, "## Absolute targets for Parley\n");
        let _ = writeln!(out, "| figure | value | target | met |\n|---|---|---|---|");
        let rss = p.idle.as_ref().map(|i| i.rss_per_session_kib);
        let _ = writeln!(
            out,
            "| RSS per idle session over plain TCP (KiB) | {} | ≤ 16 | {} |",
            fmt_opt(rss, 1),
            rss.map_or("–", |r| if r <= 16.0 { "yes" } else { "**no**" })
        );
        let p99 = rate_result(p, 5000).map(|r| r.latency.p99_us as f64 / 1000.0);
        let _ = writeln!(
            out,
            "| one-way chat latency p99 at 5k msg/s (ms) | {} | ≤ 5 | {} |\n",
            fmt_opt(p99, 2),
            p99.map_or("–", |r| if r <= 5.0 { "yes" } else { "**no**" })
        );
    }
    let _ = writeln!(out, "## Plots\n");
    let _ = writeln!(
        out,
        "![one-way latency p99 against offered load](benchmarks/latency.svg)\n"
    );
    let _ = writeln!(
        out,
        "![server RSS against idle sessions](benchmarks/rss.svg)\n"
    );
    let _ = writeln!(out, "## Latency against offered load (one-way, ms)\n");
    let _ = writeln!(out, "| offered msg/s | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for rate in sizes(opts.quick, opts.users).rates {
        row(
            &mut out,
            &rate.to_string(),
            results.iter().map(|(_, x)| match rate_result(x, *rate) {
                Some(r) => format!(
                    "p50 {:.2}, p99 {:.2}, p99.9 {:.2}",
                    r.latency.p50_us as f64 / 1000.0,
                    r.latency.p99_us as f64 / 1000.0,
                    r.latency.p999_us as f64 / 1000.0
                ),
                None => "–".into(),
            }),
        );
    }
    let _ = writeln!(out);
    let errors: Vec<String> = results
        .iter()
        .flat_map(|(s, f)| f.errors.iter().map(move |e| format!("- {}: {e}", s.name())))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "## What failed in this run\n\n{}\n", errors.join("\n"));
    }
    let _ = writeln!(
        out,
        "## Provisioning\n\nParley imports with `parley user import` (SCRAM keys derived on all \
         cores); Prosody's account and roster files are written directly in its storage format; \
         ejabberd registers through its own HTTP API (`mod_http_api` `register`, 8 connections), \
         which ejabberd serializes — Debian's build lacks the Lua support that its Prosody \
         importer (`import_prosody`) needs.\n"
    );
    for (s, f) in results {
        let _ = writeln!(
            out,
            "- {}: {} accounts in {:.1} s.",
            s.name(),
            opts.users,
            f.provision_s
        );
    }
    let _ = writeln!(out);
    out.push_str(include_str!("../../notes.md"));
    out
}

fn charts(results: &[(Server, Figures)]) -> Vec<(&'static str, svg::Chart)> {
    let latency = svg::Chart {
        title: "One-way chat latency p99 against offered load".into(),
        x_label: "offered load (messages/s)".into(),
        y_label: "p99 latency (ms, log scale)".into(),
        log_y: true,
        series: results
            .iter()
            .map(|(s, f)| svg::Series {
                name: s.name().into(),
                points: f
                    .chat_rates
                    .iter()
                    .filter_map(|r| Some((offered_rate(r)?, r.latency.p99_us as f64 / 1000.0)))
                    .collect(),
            })
            .collect(),
    };
    let rss = svg::Chart {
        title: "Server RSS against idle sessions".into(),
        x_label: "sessions".into(),
        y_label: "RSS (MiB)".into(),
        log_y: false,
        series: results
            .iter()
            .map(|(s, f)| svg::Series {
                name: s.name().into(),
                points: f
                    .idle
                    .iter()
                    .flat_map(|i| {
                        std::iter::once((0.0, i.server_rss_kib_idle as f64 / 1024.0)).chain(
                            i.levels
                                .iter()
                                .map(|l| (l.sessions as f64, l.server_rss_kib as f64 / 1024.0)),
                        )
                    })
                    .collect(),
            })
            .collect(),
    };
    vec![("latency.svg", latency), ("rss.svg", rss)]
}
