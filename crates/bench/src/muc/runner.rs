//! `parley-bench muc`: the group chat comparison of docs/benchmarks.md. For each server it
//! provisions the accounts, starts the server pinned to CPU 0, runs `parley-bench run …
//! muc` pinned to CPU 1 (so that server and generator never share a core, as in
//! `compare`), stops the server, and finally writes the markdown section.
//!
//! - **Parley**: a cluster of `--nodes` nodes on loopback (all pinned to CPU 0 together),
//!   with etcd and PostgreSQL from `parley-testkit-services` (stopped with this process,
//!   whatever happens to it), plain TCP allowed and the limits of `compare` raised. The
//!   occupants are spread evenly over the nodes; the room lives on whichever node owns it.
//! - **Prosody**: the reference config of `../shared/reference/prosody` plus
//!   `Component "conference.localhost" "muc"` with `mod_muc`'s defaults.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_testkit_services::{free_port, http_get, EtcdServer, PgServer};

use super::{report, MucOpts, MucResult};
use crate::compare::prosody;
use crate::{BenchError, Target};

/// The servers the runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MucServer {
    /// A Parley cluster with the room archive on (the default).
    Parley,
    /// The same cluster with `[muc.defaults] archive = false`, like for like with a
    /// Prosody that keeps no room archive.
    ParleyNoArchive,
    /// The reference Prosody 0.12 with `mod_muc`.
    Prosody,
}

impl MucServer {
    pub fn parse(name: &str) -> Option<MucServer> {
        match name {
            "parley" => Some(MucServer::Parley),
            "parley-noarchive" => Some(MucServer::ParleyNoArchive),
            "prosody" => Some(MucServer::Prosody),
            _ => None,
        }
    }

    fn label(self, nodes: usize) -> String {
        match self {
            MucServer::Parley => format!("Parley, {nodes} nodes"),
            MucServer::ParleyNoArchive => format!("Parley, {nodes} nodes, room archive off"),
            MucServer::Prosody => "Prosody, mod_muc".to_owned(),
        }
    }
}

/// The command line of `parley-bench muc`.
#[derive(Debug, Clone, clap::Args)]
pub struct MucArgs {
    /// Servers, in order (parley, parley-noarchive, prosody).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "parley,parley-noarchive,prosody"
    )]
    pub servers: Vec<String>,
    /// Nodes of the Parley cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// The scenario (--pids and --aux-pids are filled in for each server).
    #[command(flatten)]
    pub scenario: MucOpts,
    /// Scratch directory (node directories, Prosody's data, logs, each server's JSON).
    #[arg(long, default_value = "/tmp/parley-muc")]
    pub workdir: PathBuf,
    /// The Parley binary.
    #[arg(long, default_value = "target/release/parley")]
    pub parley_bin: PathBuf,
    /// What the report says the Parley binary was built from (default: this working
    /// tree's commit, marked when the server's sources differ from it).
    #[arg(long)]
    pub parley_revision: Option<String>,
    /// The reference Prosody launcher (its prosody.cfg.lua is the base config).
    #[arg(long, default_value = "../shared/reference/prosody/run-prosody.sh")]
    pub prosody_launcher: PathBuf,
    /// Where the markdown section goes.
    #[arg(long, default_value = "docs/benchmarks/muc.md")]
    pub out: PathBuf,
    /// Appended to the section when it exists: the reading of the figures.
    #[arg(long, default_value = "crates/bench/muc-notes.md")]
    pub notes: PathBuf,
}

impl MucArgs {
    /// Checks the arguments; `command_line` is what the report shows as the command.
    pub fn to_opts(&self, command_line: String) -> Result<MucRunOpts, BenchError> {
        let servers = self
            .servers
            .iter()
            .map(|s| {
                MucServer::parse(s).ok_or_else(|| {
                    other(format!(
                        "--servers: unknown server `{s}` (parley, parley-noarchive, prosody)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.nodes == 0 {
            return Err(other("--nodes must be at least 1"));
        }
        // Servers run in their own directories: paths must not depend on ours.
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(MucRunOpts {
            servers,
            nodes: self.nodes,
            scenario: self.scenario.clone(),
            workdir: self.workdir.clone(),
            parley_bin: absolute(&self.parley_bin),
            prosody_launcher: absolute(&self.prosody_launcher),
            out: Some(self.out.clone()),
            notes: self.notes.clone(),
            parley_revision: self.parley_revision.clone(),
            command_line,
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct MucRunOpts {
    pub servers: Vec<MucServer>,
    /// Parley nodes.
    pub nodes: usize,
    /// The scenario (its pids are filled in per server).
    pub scenario: MucOpts,
    /// Scratch directory (node directories, Prosody's data, logs, results).
    pub workdir: PathBuf,
    pub parley_bin: PathBuf,
    /// The reference Prosody launcher; its `prosody.cfg.lua` is the base config.
    pub prosody_launcher: PathBuf,
    /// Where the markdown section goes (also printed).
    pub out: Option<PathBuf>,
    /// Appended to the section when the file exists (the reading of the figures).
    pub notes: PathBuf,
    /// What the Parley binary was built from; None: this working tree's commit.
    pub parley_revision: Option<String>,
    /// The command line, for the record.
    pub command_line: String,
}

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Options(e.to_string())
}

/// The 1-minute load average now (other users of the machine show here).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A server started for one run: its processes and how to stop it.
struct Started {
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
    aux_pids: Vec<u32>,
    children: Vec<Child>,
    /// etcd and PostgreSQL, stopped when dropped.
    services: Option<(EtcdServer, PgServer)>,
}

impl Started {
    /// SIGTERM to every server process, SIGKILL after 30 s.
    fn stop(mut self) {
        for c in &self.children {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(self.services.take());
    }
}

/// Runs every server and writes the section; returns it.
pub fn run(opts: &MucRunOpts) -> Result<String, BenchError> {
    std::fs::create_dir_all(&opts.workdir).map_err(|e| BenchError::io("workdir", e))?;
    let started_at = Instant::now();
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    let mut errors = Vec::new();
    for &server in &opts.servers {
        let label = server.label(opts.nodes);
        eprintln!("== {label}");
        let load_before = load_average();
        match run_one(server, opts) {
            Ok(r) => {
                rows.push((label.clone(), r));
                loads.push(format!("{label}: {load_before} → {}", load_average()));
            }
            Err(e) => {
                eprintln!("   {label} failed: {e}");
                errors.push(format!("{label}: {e}"));
            }
        }
    }
    let section = render(opts, &rows, &loads, &errors, started_at.elapsed());
    if let Some(out) = &opts.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BenchError::io("out dir", e))?;
        }
        std::fs::write(out, &section).map_err(|e| BenchError::io("writing the section", e))?;
        eprintln!("wrote {}", out.display());
    }
    if rows.is_empty() {
        return Err(other(format!("every server failed: {}", errors.join("; "))));
    }
    Ok(section)
}

fn run_one(server: MucServer, opts: &MucRunOpts) -> Result<MucResult, BenchError> {
    let started = match server {
        MucServer::Parley | MucServer::ParleyNoArchive => start_parley(server, opts)?,
        MucServer::Prosody => start_prosody(opts)?,
    };
    let mut scenario = opts.scenario.clone();
    scenario.pids = started.pids.clone();
    scenario.aux_pids = started.aux_pids.clone();
    let targets: Vec<String> = started.addrs.iter().map(ToString::to_string).collect();
    let mut args = vec!["--target".to_owned(), targets.join(","), "muc".to_owned()];
    args.extend(scenario.to_args());
    let result = run_child(&args);
    started.stop();
    let result = result?;
    let name = match server {
        MucServer::Parley => "parley",
        MucServer::ParleyNoArchive => "parley-noarchive",
        MucServer::Prosody => "prosody",
    };
    // Kept beside the logs, so that `parley-bench muc-report` can render them again.
    if let Ok(json) = serde_json::to_string(&result) {
        let _ = std::fs::write(opts.workdir.join(format!("{name}.json")), json);
    }
    Ok(result)
}

/// `parley-bench run --json ARGS` on CPU 1; its last JSON line.
fn run_child(args: &[String]) -> Result<MucResult, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("current_exe", e))?;
    // Bounded: a server that stops answering must not stall the run forever.
    let mut cmd = format!(
        "ulimit -n 20000; exec timeout 3600 taskset -c 1 {} run --json",
        exe.display()
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    eprintln!("   run --json {}", args.join(" "));
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::io("parley-bench run muc", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match (
        out.status.success(),
        stdout.lines().rev().find(|l| l.starts_with('{')),
    ) {
        (true, Some(line)) => serde_json::from_str(line).map_err(|e| other(format!("result: {e}"))),
        _ => Err(other(format!(
            "`parley-bench run … muc` failed ({})",
            out.status
        ))),
    }
}

/// The `[muc]` settings the benchmark needs beyond the defaults, and why, for the config
/// and the report alike.
fn muc_settings(opts: &MucOpts) -> (u32, u32, usize, usize) {
    let top = opts.rates.iter().copied().fold(0.0, f64::max);
    // Twice the highest offered load, so that the per-occupant rate limit never refuses
    // the talking occupant; the burst covers a second of it (late ticks go out together).
    let per_minute = ((top * 120.0).ceil() as u32).max(300);
    let burst = (top.ceil() as u32).max(20);
    // A room holds 200 by default, the service 2000.
    let room_max = opts.users.max(200);
    let service_max = opts.users.max(2000);
    (per_minute, burst, room_max, service_max)
}

/// Starts etcd, PostgreSQL and the nodes; provisions the accounts first.
fn start_parley(server: MucServer, opts: &MucRunOpts) -> Result<Started, BenchError> {
    let base = opts.workdir.join(match server {
        MucServer::ParleyNoArchive => "parley-noarchive",
        _ => "parley",
    });
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).map_err(|e| BenchError::io("parley dir", e))?;
    // The test helpers panic with an install hint when a binary is missing.
    let etcd = std::panic::catch_unwind(EtcdServer::start)
        .map_err(|_| other("etcd did not start (is etcd-server installed?)"))?;
    let pg = std::panic::catch_unwind(PgServer::start)
        .map_err(|_| other("PostgreSQL did not start (is postgresql installed?)"))?;
    let aux_pids = [pg_postmaster_pid(&pg), etcd_pid(&etcd)]
        .into_iter()
        .flatten()
        .collect();

    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("runtime", e))?;
    rt.block_on(async {
        let storage = crate::provision::open(&pg.url).await?;
        let target = Target::new(Vec::new());
        crate::provision::accounts(storage.as_ref(), &target, opts.scenario.users, 4096).await
    })?;
    eprintln!(
        "   provisioned {} accounts in {:.1} s",
        opts.scenario.users,
        t.elapsed().as_secs_f64()
    );

    let secret = base.join("cluster-secret");
    let hex: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    std::fs::write(&secret, hex).map_err(|e| BenchError::io("cluster secret", e))?;
    let (per_minute, burst, room_max, service_max) = muc_settings(&opts.scenario);
    let mut children = Vec::new();
    let mut nodes = Vec::new();
    for k in 1..=opts.nodes {
        let dir = base.join(format!("node{k}"));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("node dir", e))?;
        let (c2s, admin, peer) = (free_port(), free_port(), free_port());
        let config = format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{dir}\"\n\n\
             [c2s]\nlisten = [\"127.0.0.1:{c2s}\"]\ndirect_tls = []\nrequire_encryption = false\n\n\
             [sasl]\nscram_iterations = 4096\n\n\
             [limits]\nmax_connections_per_ip = 10000000\nconnection_rate_per_ip = 10000000\n\
             connection_burst_per_ip = 10000000\nmax_sessions = 10000000\n\
             read_bytes_per_s = 1073741824\nread_burst_bytes = 1073741824\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nlevel = \"warn\"\n\n[storage]\nurl = \"{url}\"\n\n\
             [cluster]\netcd = [\"{etcd}\"]\nnode_id = \"node{k}\"\n\
             peer_listen = \"127.0.0.1:{peer}\"\nsecret_file = \"{secret}\"\ndrain_timeout_s = 5\n\n\
             [muc]\nmessages_per_minute = {per_minute}\nmessage_burst = {burst}\n\
             max_occupants = {service_max}\n\n[muc.defaults]\nmax_occupants = {room_max}\n{archive}",
            dir = dir.display(),
            url = pg.url,
            etcd = etcd.endpoint,
            secret = secret.display(),
            archive = if server == MucServer::ParleyNoArchive {
                "archive = false\n"
            } else {
                ""
            },
        );
        let config_path = dir.join("parley.toml");
        std::fs::write(&config_path, config).map_err(|e| BenchError::io("node config", e))?;
        let log = std::fs::File::create(dir.join("parley.log"))
            .map_err(|e| BenchError::io("node log", e))?;
        let log2 = log.try_clone().map_err(|e| BenchError::io("node log", e))?;
        let cmd = format!(
            "ulimit -n 20000; exec taskset -c 0 {} --config {} serve",
            opts.parley_bin.display(),
            config_path.display()
        );
        let child = Command::new("sh")
            .args(["-c", &cmd])
            .current_dir(&dir)
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| BenchError::io("parley serve", e))?;
        nodes.push((SocketAddr::from(([127, 0, 0, 1], c2s)), admin, dir));
        children.push(child);
    }
    let mut started = Started {
        addrs: nodes.iter().map(|n| n.0).collect(),
        pids: children.iter().map(Child::id).collect(),
        aux_pids,
        children,
        services: Some((etcd, pg)),
    };
    // They start together (migrations are serialized in PostgreSQL); each must be ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (k, (_, admin, dir)) in nodes.iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], *admin));
        loop {
            if http_get(addr, "/ready", None).is_some_and(|(code, _)| code == 200) {
                break;
            }
            let exited = matches!(started.children[k].try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("parley.log")).unwrap_or_default();
                started.stop();
                return Err(other(format!(
                    "node{} is not ready; its log:\n{}",
                    k + 1,
                    log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("   {} nodes ready: {:?}", opts.nodes, started.addrs);
    Ok(started)
}

/// The postmaster's pid: the first line of its `postmaster.pid`.
fn pg_postmaster_pid(pg: &PgServer) -> Option<u32> {
    std::fs::read_to_string(pg.dir().join("data/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// etcd's pid: the process named etcd with its data directory on the command line (the
/// watchdog shell above it has the directory there too, under another name).
fn etcd_pid(etcd: &EtcdServer) -> Option<u32> {
    let mark = etcd.dir().display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        let program = cmdline.split('\0').next()?;
        (program.ends_with("etcd") && cmdline.contains(&mark)).then_some(pid)
    })
}

/// The reference config with the conference component: `mod_muc` and its defaults.
pub fn prosody_muc_config(reference: &str, domain: &str) -> String {
    format!("{reference}\nComponent \"conference.{domain}\" \"muc\"\n")
}

fn start_prosody(opts: &MucRunOpts) -> Result<Started, BenchError> {
    let dir = opts.workdir.join("prosody");
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let users: Vec<String> = (1..=opts.scenario.users)
        .map(|i| format!("user{i}"))
        .collect();
    prosody::provision_accounts(&data, "localhost", &users, "pw", 4096)
        .map_err(|e| BenchError::io("prosody accounts", e))?;
    let reference = opts
        .prosody_launcher
        .parent()
        .unwrap_or(Path::new("."))
        .join("prosody.cfg.lua");
    let text =
        std::fs::read_to_string(&reference).map_err(|e| BenchError::io("prosody config", e))?;
    let config = dir.join("prosody-muc.cfg.lua");
    std::fs::write(&config, prosody_muc_config(&text, "localhost"))
        .map_err(|e| BenchError::io("prosody config", e))?;
    std::fs::create_dir_all(dir.join("certs")).map_err(|e| BenchError::io("certs dir", e))?;
    let chown = Command::new("chown")
        .args(["-R", "prosody:prosody"])
        .arg(&dir)
        .status()
        .map_err(|e| BenchError::io("chown prosody dir", e))?;
    if !chown.success() {
        return Err(other("chown of the Prosody directory failed"));
    }
    let (c2s, http) = (free_port(), free_port());
    // Not through run-prosody.sh: its `runuser` resets the open-file limit (see
    // `compare`); `setpriv` keeps it, and execs, so that the pid is Prosody's own.
    let cmd = format!(
        "ulimit -n 20000; exec taskset -c 0 setpriv --reuid=prosody --regid=prosody --init-groups prosody --config {}",
        config.display()
    );
    let log = std::fs::File::create(dir.join("stdout.log"))
        .map_err(|e| BenchError::io("prosody log", e))?;
    let child = Command::new("sh")
        .args(["-c", &cmd])
        .env("PROSODY_DIR", &dir)
        .env("PROSODY_C2S", c2s.to_string())
        .env("PROSODY_HTTP", http.to_string())
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::io("prosody", e))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], c2s));
    let started = Started {
        addrs: vec![addr],
        pids: vec![child.id()],
        aux_pids: Vec::new(),
        children: vec![child],
        services: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            started.stop();
            return Err(other(format!("Prosody does not listen on {addr}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started)
}

/// `git rev-parse --short HEAD`, marked when the server's sources differ from it.
fn parley_revision() -> String {
    let git = |args: &[&str]| Command::new("git").args(args).output().ok();
    let head = git(&["rev-parse", "--short", "HEAD"])
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let dirty = git(&[
        "diff",
        "--quiet",
        "HEAD",
        "--",
        "crates",
        ":!crates/bench",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_some_and(|o| !o.status.success());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

fn prosody_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "prosody"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "0.12".into())
}

fn render(
    opts: &MucRunOpts,
    rows: &[(String, MucResult)],
    loads: &[String],
    errors: &[String],
    took: Duration,
) -> String {
    let s = &opts.scenario;
    let (per_minute, burst, room_max, service_max) = muc_settings(s);
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let rates: Vec<String> = s.rates.iter().map(f64::to_string).collect();
    let mut out = String::from("## Group chat (XEP-0045)\n\n");
    let _ = writeln!(
        out,
        "Generated by `parley-bench muc` (which `crates/bench/run-muc.sh` builds and runs) on {date} in {:.0} s: {}. Servers on CPU 0 (the {} Parley nodes share it), the generator on CPU 1; etcd and PostgreSQL unpinned. Other engineers build on this machine: the 1-minute load average before → after each server's run was {}.\n",
        took.as_secs_f64(),
        crate::compare::machine(),
        opts.nodes,
        loads.join("; "),
    );
    let _ = writeln!(
        out,
        "One room, {} occupants (user1…user{}, plain TCP, SCRAM-SHA-1), all logged in and available before anyone joins; user1 creates the room (an instant room: the empty owner form of §10.1.2) and the others join {} at a time (each waits for its self-presence). Then user1 sends groupchat messages at each offered load ({} msg/s, {} s each, paced by a timer); every occupant notes when each message reached it. **Fan-out** is from a message's send to its arrival at the last of the {} occupants, the sender's own copy included; \"reached all\" counts the messages every occupant got within {} s of the load's last send. **Server CPU per message** is the server's CPU over the load (from the first send until every message arrived everywhere, or the wait ended), summed over the server processes (every Parley node), per message delivered to everyone (CPU × occupants / deliveries, so that a server falling behind is not credited with what it has not delivered yet); \"less idle\" takes off what the server spends anyway (its CPU over 5 s with the room full and silent, in the second table); \"busy\" is that CPU over the same wall time (100 % is the one core the servers share). The machine column is each CPU's busy time over the same interval from `/proc/stat`: every process, the servers, the generator, etcd and PostgreSQL and other users of the machine alike. **RSS per occupant** is the servers' summed RSS after every join (the presence storm over, 2 s later) minus before the first join, over the occupants: sessions cost nothing here, only the room's seats and what the joins left behind. The generator parses every delivery on its one core: its \"busy\" column shows how much of the latency may be its own.\n",
        s.users,
        s.users,
        s.join_concurrency,
        rates.join(", "),
        s.duration_s,
        s.users,
        s.drain_s,
    );
    let _ = writeln!(
        out,
        "Parley {} release build: a {}-node cluster (etcd, PostgreSQL for storage, node links with a shared secret), occupants spread evenly over the nodes' c2s ports, the room on whichever node owns it; the settings of the comparison above (plain TCP allowed, limits raised) and `[muc]` defaults except what one talking occupant and {} occupants need: `messages_per_minute = {per_minute}`, `message_burst = {burst}` (default 300 and 20: 5 msg/s would refuse the higher loads), `max_occupants = {service_max}` and `[muc.defaults] max_occupants = {room_max}` (a new room holds 200 by default). The room archive is on, as by default (one PostgreSQL row per message){}. Prosody {} with the reference config plus `Component \"conference.localhost\" \"muc\"` and nothing else: `mod_muc`'s defaults (rooms locked until configured, 20 messages of history, no occupant limit, no message rate limit, no room archive: `mod_muc_mam` is not loaded, as in Debian's example config).\n",
        opts.parley_revision.clone().unwrap_or_else(parley_revision),
        opts.nodes,
        s.users,
        if opts.servers.contains(&MucServer::ParleyNoArchive) {
            "; the \"room archive off\" rows add `[muc.defaults] archive = false`, like for like with Prosody"
        } else {
            ""
        },
        prosody_version(),
    );
    let _ = writeln!(out, "Command: `{}`.\n", opts.command_line);
    out.push_str(&report(rows));
    if !errors.is_empty() {
        out.push_str("\nFailed:\n\n");
        for e in errors {
            let _ = writeln!(out, "- {e}");
        }
    }
    if let Ok(notes) = std::fs::read_to_string(&opts.notes) {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_follows_the_reference_config() {
        let cfg = prosody_muc_config(
            "modules_enabled = { \"disco\"; }\nVirtualHost \"localhost\"\n",
            "localhost",
        );
        assert!(cfg.ends_with(
            "VirtualHost \"localhost\"\n\nComponent \"conference.localhost\" \"muc\"\n"
        ));
    }

    #[test]
    fn muc_limits_cover_the_offered_loads() {
        let opts = MucOpts {
            users: 1000,
            rates: vec![1.0, 10.0, 50.0],
            ..MucOpts::default()
        };
        assert_eq!(muc_settings(&opts), (6000, 50, 1000, 2000));
        let small = MucOpts {
            users: 30,
            rates: vec![1.0],
            ..MucOpts::default()
        };
        assert_eq!(muc_settings(&small), (300, 20, 200, 2000));
        assert_eq!(MucServer::parse("prosody"), Some(MucServer::Prosody));
        assert_eq!(MucServer::parse("ejabberd"), None);
    }
}
