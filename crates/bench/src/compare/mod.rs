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
mod report;
pub mod svg;

pub(crate) use report::machine;
use report::{charts, render};

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
    let dir = opts
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .join("benchmarks");
    // The cluster, stream resumption, CSI and group chat figures come from their own runs
    // (crates/bench/run-cluster.sh, run-resume.sh, run-csi.sh, run-muc.sh); the report
    // carries the latest of them.
    for name in ["cluster.md", "resume.md", "csi.md", "muc.md"] {
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

/// The binary and scratch directory of Parley or its baseline build.
fn parley_build(server: Server, opts: &CompareOpts) -> Result<(&Path, PathBuf), BenchError> {
    match server {
        Server::ParleyBaseline => {
            let bin = opts
                .baseline_bin
                .as_deref()
                .ok_or_else(|| other("--servers parley-baseline needs --baseline-bin"))?;
            Ok((bin, opts.workdir.join("parley-baseline")))
        }
        Server::ParleyNoArchive => Ok((&opts.parley_bin, opts.workdir.join("parley-noarchive"))),
        _ => Ok((&opts.parley_bin, opts.workdir.join("parley"))),
    }
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
        Server::Parley | Server::ParleyBaseline | Server::ParleyNoArchive => {
            let (bin, dir) = parley_build(server, opts)?;
            let config_path = dir.join("parley.toml");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("parley dir", e))?;
            let config = format!(
                "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{dir}\"\n\n[c2s]\nlisten = [\"127.0.0.1:{port}\"]\ndirect_tls = []\nrequire_encryption = false\n\n[sasl]\nscram_iterations = 4096\n\n[limits]\nmax_connections_per_ip = 10000000\nconnection_rate_per_ip = 10000000\nconnection_burst_per_ip = 10000000\nmax_sessions = 10000000\nread_bytes_per_s = 1073741824\nread_burst_bytes = 1073741824\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n{archive}",
                dir = dir.display(),
                port = server.port(),
                archive = if server == Server::ParleyNoArchive {
                    "\n[mam]\nenabled = false\n"
                } else {
                    ""
                },
            );
            std::fs::write(&config_path, config).map_err(|e| BenchError::io("config", e))?;
            let mut child = Command::new(bin)
                .arg("--config")
                .arg(&config_path)
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
        Server::Prosody | Server::ProsodyMam => {
            let dir = opts.workdir.join(server.dir_name());
            let _ = std::fs::remove_dir_all(&dir);
            let data = dir.join("data");
            prosody::provision_accounts(&data, "localhost", &usernames(opts.users), "pw", 4096)
                .map_err(|e| BenchError::io("prosody accounts", e))?;
            for (first, n) in s.presence {
                prosody::presence_rosters(&data, "localhost", "user", first, n)
                    .map_err(|e| BenchError::io("prosody roster", e))?;
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
        Server::Parley | Server::ParleyBaseline | Server::ParleyNoArchive => {
            let (bin, dir) = parley_build(server, opts)?;
            let cmd = format!(
                "ulimit -n 20000; exec taskset -c 0 {} --config {} serve",
                bin.display(),
                dir.join("parley.toml").display()
            );
            let child = Command::new("sh")
                .args(["-c", &cmd])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("parley serve", e))?;
            let pid = child.id();
            wait_port(server.port(), Duration::from_secs(20))?;
            Ok(Started {
                pid,
                child: Some(child),
                stop: Box::new(move || {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }),
            })
        }
        Server::Prosody | Server::ProsodyMam => {
            // Not through run-prosody.sh: its `runuser` goes through PAM, which resets the
            // open-file limit to 1024 and caps Prosody near 1000 sessions. `setpriv` keeps the
            // limit; the config is the reference one (with `mam` added for ProsodyMam).
            let dir = opts.workdir.join(server.dir_name());
            let reference = opts
                .prosody_launcher
                .parent()
                .unwrap_or(Path::new("."))
                .join("prosody.cfg.lua");
            let config = if server == Server::ProsodyMam {
                let text = std::fs::read_to_string(&reference)
                    .map_err(|e| BenchError::io("prosody config", e))?;
                let with_mam = prosody::with_module(&text, "mam")
                    .ok_or_else(|| other("no modules_enabled list in the Prosody config"))?;
                let path = dir.join("prosody-mam.cfg.lua");
                std::fs::write(&path, with_mam).map_err(|e| BenchError::io("config", e))?;
                path
            } else {
                reference
            };
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
                .env("PROSODY_C2S", server.port().to_string())
                .env("PROSODY_HTTP", server.port().wrapping_add(58).to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("prosody", e))?;
            let pid = child.id();
            wait_port(server.port(), Duration::from_secs(30))?;
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
