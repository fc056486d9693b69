//! `parley-bench scale`: fill a cluster past what one generator process can hold and
//! measure what every session costs the registry (issue 16, docs/scaling.md).
//!
//! A process may open at most 20,000 files, so the sessions are spread over several
//! generator processes, each with its own 127.0.x.y source addresses:
//!
//! - `scale hold` is one generator: it logs in `--count` sessions (STARTTLS, SCRAM, bind,
//!   initial presence) on one node, prints one JSON line ([`HoldReady`]), keeps them alive
//!   with a whitespace keep-alive (so that the node's dead-peer pings never fire) and ends
//!   when its standard input closes (or after `--max-hold`);
//! - `scale fill` fills the nodes one after the other, each with `--procs-per-node` child
//!   `hold` processes of this same binary, and takes a [`Snapshot`] before, after every
//!   node and after the release: etcd's `/metrics` (database size, keys, puts, watch
//!   events, CPU), the session keys and their bytes (a paged range read on etcd's JSON
//!   gateway, the same as `etcdctl get --prefix`), every node's `/metrics` (registry cache,
//!   etcd requests, node-link frames) and every process's CPU seconds and RSS from `/proc`;
//!   `--while-full` runs a command while every session is held (run-scale.sh starts one
//!   more node with it);
//! - `scale report` renders a fill and `run login` results (1, 2, 3 nodes) as markdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::client::Session;
use crate::cluster::metric;
use crate::stats::run_pool;
use crate::target::{parse_source_ips, Shared, Target};
use crate::BenchError;

/// `parley-bench scale …`
#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(subcommand)]
    pub command: ScaleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScaleCommand {
    /// One generator process: open sessions on one node, print a JSON line, hold them
    /// until standard input closes.
    Hold(HoldArgs),
    /// Fill the nodes one after the other with child `hold` processes and snapshot etcd
    /// and the nodes after each; prints the JSON result.
    Fill(FillArgs),
    /// Render a `fill` result and `run login --json` results as markdown.
    Report(ReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Negotiate STARTTLS (cluster/local requires it).
    #[arg(long)]
    pub starttls: bool,
    #[arg(long, default_value = "user")]
    pub user_prefix: String,
    #[arg(long, default_value = "pw", env = "PARLEY_BENCH_PASSWORD")]
    pub password: String,
    /// Logins in flight per generator process.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// The node's c2s address.
    #[arg(long)]
    pub target: SocketAddr,
    /// The first user number.
    #[arg(long, default_value_t = 1)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
    /// Local source addresses, e.g. 127.0.10.1-127.0.10.4.
    #[arg(long)]
    pub source_ips: Option<String>,
    /// Give up holding after this many seconds even if standard input stays open.
    #[arg(long, default_value_t = 3600.0)]
    pub max_hold: f64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct FillArgs {
    /// Every node's c2s address, comma-separated; filled in this order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub targets: Vec<SocketAddr>,
    /// Every node's admin endpoint (for /metrics), in --targets order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub admins: Vec<SocketAddr>,
    /// Every node's pid, in --targets order (CPU seconds and RSS from /proc).
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<u32>,
    /// etcd's pid.
    #[arg(long)]
    pub etcd_pid: Option<u32>,
    /// etcd's client address (its /metrics and its JSON gateway, /v3/kv/range).
    #[arg(long, default_value = "127.0.0.1:23790")]
    pub etcd: SocketAddr,
    /// The cluster's etcd prefix (`[cluster] prefix`).
    #[arg(long, default_value = "/parley")]
    pub prefix: String,
    /// Sessions per node.
    #[arg(long, default_value_t = 19_000)]
    pub per_node: usize,
    /// Generator processes per node (each below 20,000 open files).
    #[arg(long, default_value_t = 2)]
    pub procs_per_node: usize,
    /// Source addresses per generator process: process P uses 127.0.(10+P).1 to .N.
    #[arg(long, default_value_t = 4)]
    pub ips_per_proc: usize,
    /// Most seconds to wait, after each step, for the cluster to settle before the snapshot:
    /// etcd holds one key per held session and every node's registry cache has applied
    /// etcd's revision (`parley_registry_revision`).
    #[arg(long, default_value_t = 120.0)]
    pub settle: f64,
    /// A shell command to run while every session is held (e.g. start one more node and
    /// see whether it can list the registry); its output goes into the result.
    #[arg(long)]
    pub while_full: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The JSON `scale fill` printed.
    #[arg(long)]
    pub fill: std::path::PathBuf,
    /// NODES=FILE: the JSON `run login --json` printed against a cluster of NODES nodes.
    #[arg(long, value_delimiter = ',')]
    pub logins: Vec<String>,
    /// The command line to print as the one that reproduces the figures.
    #[arg(long, default_value = "crates/bench/run-scale.sh")]
    pub command: String,
}

/// What a `hold` process prints once its sessions are open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldReady {
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub open_s: f64,
}

/// etcd's own figures, from its `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdFigures {
    pub db_total_bytes: f64,
    pub db_in_use_bytes: f64,
    /// `etcd_debugging_mvcc_keys_total`: live keys.
    pub keys: f64,
    pub puts: f64,
    pub deletes: f64,
    pub txns: f64,
    /// `etcd_debugging_mvcc_events_total`: events sent to watchers.
    pub watch_events: f64,
    pub watchers: f64,
    pub cpu_s: f64,
    pub rss_bytes: f64,
    /// The store revision (from the range read's header).
    pub revision: i64,
    /// Keys under `PREFIX/sessions/`, and their bytes.
    pub session_keys: u64,
    pub session_key_bytes: u64,
    pub session_value_bytes: u64,
}

/// One node's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    pub registry_sessions: f64,
    pub registry_cache_bytes: f64,
    pub user_actors: f64,
    pub claims: f64,
    pub batches: f64,
    pub batched_keys: f64,
    pub link_frames_in: f64,
    pub link_frames_out: f64,
    pub cpu_s: f64,
    pub rss_kib: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub label: String,
    /// Seconds since the fill started.
    pub at_s: f64,
    /// Sessions the generators hold.
    pub held: usize,
    pub etcd: EtcdFigures,
    pub nodes: Vec<NodeFigures>,
}

/// One node filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillStep {
    /// 1-based node number.
    pub node: usize,
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub open_s: f64,
    pub logins_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillResult {
    pub scenario: String,
    pub nodes: usize,
    pub per_node: usize,
    pub procs_per_node: usize,
    pub concurrency_per_proc: usize,
    pub steps: Vec<FillStep>,
    /// Before, after each node, and after every generator ended ("released").
    pub snapshots: Vec<Snapshot>,
    /// From the end of the generators to the last session key gone from etcd.
    #[serde(default)]
    pub release_s: f64,
    /// The `--while-full` command, its exit status and the end of its output.
    pub while_full: Option<WhileFull>,
    pub machine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhileFull {
    pub command: String,
    pub status: Option<i32>,
    pub output: String,
}

/// Runs `parley-bench scale …` (its own runtime where it needs one).
pub fn main(args: &ScaleArgs) -> Result<(), BenchError> {
    match &args.command {
        ScaleCommand::Hold(h) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| BenchError::io("starting the runtime", e))?;
            rt.block_on(hold(h))
        }
        ScaleCommand::Fill(f) => {
            let result = fill(f)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&result)
                    .map_err(|e| BenchError::Options(format!("encoding the result: {e}")))?
            );
            Ok(())
        }
        ScaleCommand::Report(r) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| BenchError::io(format!("reading {}", p.display()), e))
            };
            let fill: FillResult = serde_json::from_str(&read(&r.fill)?)
                .map_err(|e| BenchError::Options(format!("{}: {e}", r.fill.display())))?;
            let mut logins = Vec::new();
            for spec in &r.logins {
                let (n, path) = spec
                    .split_once('=')
                    .ok_or_else(|| BenchError::Options(format!("`{spec}`: want NODES=FILE")))?;
                let n: usize = n
                    .parse()
                    .map_err(|_| BenchError::Options(format!("`{spec}`: bad node count")))?;
                let bad = |e: serde_json::Error| BenchError::Options(format!("{path}: {e}"));
                let v: serde_json::Value =
                    serde_json::from_str(&read(path.as_ref())?).map_err(bad)?;
                // run-scale.sh adds the machine's busy cores during the run.
                let busy = v["machine_busy_cores"].as_f64();
                logins.push(LoginRun {
                    nodes: n,
                    busy_cores: busy,
                    result: serde_json::from_value(v).map_err(bad)?,
                });
            }
            print!("{}", report(&fill, &logins, &r.command));
            Ok(())
        }
    }
}

async fn hold(a: &HoldArgs) -> Result<(), BenchError> {
    let mut target = Target::new(vec![a.target]);
    target.domain = a.common.domain.clone();
    target.starttls = a.common.starttls;
    target.user_prefix = a.common.user_prefix.clone();
    target.password = a.common.password.clone();
    target.first_user = a.first;
    if let Some(spec) = &a.source_ips {
        target.source_ips = parse_source_ips(spec)?;
    }
    let shared = Shared::new(&target)?;
    let started = Instant::now();
    let sh = shared.clone();
    let results = run_pool(a.count, a.common.concurrency, move |i| {
        let sh = sh.clone();
        async move {
            let mut s = Session::login(&sh, i, "scale").await?;
            s.available().await?;
            Ok::<_, BenchError>(s)
        }
    })
    .await;
    let open_s = started.elapsed().as_secs_f64();
    let mut sessions = Vec::with_capacity(a.count);
    let (mut failed, mut first_error) = (0, None);
    for r in results {
        match r {
            Ok(s) => sessions.push(s),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let ready = HoldReady {
        opened: sessions.len(),
        failed,
        first_error,
        open_s,
    };
    let line =
        serde_json::to_string(&ready).map_err(|e| BenchError::Options(format!("encoding: {e}")))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(|e| BenchError::io("stdout", e))?;
        out.flush().map_err(|e| BenchError::io("stdout", e))?;
    }
    // Hold until standard input closes (the fill ends us) or the time bound.
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.max_hold);
    loop {
        tokio::select! {
            _ = &mut rx => break,
            _ = tokio::time::sleep_until(deadline) => break,
            // Below the node's ping interval (120 s): a read resets its dead-peer timer.
            _ = tokio::time::sleep(Duration::from_secs(45)) => {
                for s in sessions.iter_mut() {
                    let _ = s.send(b" ").await;
                }
            }
        }
    }
    // Dropping the sockets ends the sessions; the nodes release their keys.
    Ok(())
}

/// The children of a fill, killed (by their own handles) if the fill fails half-way.
struct Children(Vec<(Child, Option<ChildStdin>)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (child, stdin) in &mut self.0 {
            drop(stdin.take());
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

fn fill(a: &FillArgs) -> Result<FillResult, BenchError> {
    if a.targets.is_empty() || a.admins.len() != a.targets.len() || a.pids.len() != a.targets.len()
    {
        return Err(BenchError::Options(
            "fill needs one --admins and one --pids entry per --targets address".into(),
        ));
    }
    for addr in a.targets.iter().chain(&a.admins).chain([&a.etcd]) {
        if !addr.ip().is_loopback() {
            return Err(BenchError::NotLoopback(addr.to_string()));
        }
    }
    if a.procs_per_node == 0 || a.per_node < a.procs_per_node || a.ips_per_proc == 0 {
        return Err(BenchError::Options(
            "bad --per-node/--procs-per-node".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| BenchError::io("current_exe", e))?;
    let started = Instant::now();
    let snap = |label: &str, held: usize| -> Result<Snapshot, BenchError> {
        let mut s = snapshot(a)?;
        s.label = label.into();
        s.held = held;
        s.at_s = started.elapsed().as_secs_f64();
        eprintln!(
            "scale: {label}: {held} held, {} session keys, etcd db {:.1} MiB ({:.1} in use)",
            s.etcd.session_keys,
            s.etcd.db_total_bytes / 1048576.0,
            s.etcd.db_in_use_bytes / 1048576.0
        );
        Ok(s)
    };
    let mut snapshots = vec![snap("before", 0)?];
    let mut children = Children(Vec::new());
    let mut steps = Vec::new();
    let mut held = 0;
    let mut proc_no = 0;
    for (k, node) in a.targets.iter().enumerate() {
        eprintln!(
            "scale: filling node {} ({node}) with {} sessions from {} processes",
            k + 1,
            a.per_node,
            a.procs_per_node
        );
        let t0 = Instant::now();
        let mut mine = Vec::new();
        for p in 0..a.procs_per_node {
            let count =
                a.per_node / a.procs_per_node + usize::from(p < a.per_node % a.procs_per_node);
            let first = 1
                + k * a.per_node
                + p * (a.per_node / a.procs_per_node)
                + p.min(a.per_node % a.procs_per_node);
            let net = 10 + proc_no;
            proc_no += 1;
            if net > 255 {
                return Err(BenchError::Options("too many generator processes".into()));
            }
            let ips = format!("127.0.{net}.1-127.0.{net}.{}", a.ips_per_proc.min(254));
            let mut cmd = Command::new(&exe);
            cmd.args(["scale", "hold", "--target", &node.to_string()])
                .args(["--first", &first.to_string(), "--count", &count.to_string()])
                .args(["--source-ips", &ips])
                .args(["--domain", &a.common.domain])
                .args(["--user-prefix", &a.common.user_prefix])
                .args(["--concurrency", &a.common.concurrency.to_string()])
                .env("PARLEY_BENCH_PASSWORD", &a.common.password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if a.common.starttls {
                cmd.arg("--starttls");
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| BenchError::io("starting a generator process", e))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            children.0.push((child, stdin));
            mine.push(stdout);
        }
        let (mut opened, mut failed, mut first_error) = (0, 0, None);
        for out in mine.into_iter().flatten() {
            let mut line = String::new();
            BufReader::new(out)
                .read_line(&mut line)
                .map_err(|e| BenchError::io("reading a generator", e))?;
            let r: HoldReady = serde_json::from_str(line.trim()).map_err(|e| {
                BenchError::Options(format!("a generator process failed ({e}): `{line}`"))
            })?;
            opened += r.opened;
            failed += r.failed;
            if first_error.is_none() {
                first_error = r.first_error;
            }
        }
        let open_s = t0.elapsed().as_secs_f64();
        held += opened;
        eprintln!(
            "scale: node {}: {opened} opened, {failed} failed in {open_s:.1} s",
            k + 1
        );
        steps.push(FillStep {
            node: k + 1,
            opened,
            failed,
            first_error,
            open_s,
            logins_per_s: opened as f64 / open_s.max(1e-9),
        });
        settle(a, held as u64)?;
        snapshots.push(snap(&format!("node {} filled", k + 1), held)?);
    }
    let while_full = a.while_full.as_ref().map(|cmd| {
        eprintln!("scale: running `{cmd}` with {held} sessions held");
        match Command::new("sh").args(["-c", cmd]).output() {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let keep = text.len().saturating_sub(4000);
                let start = (keep..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                WhileFull {
                    command: cmd.clone(),
                    status: out.status.code(),
                    output: text[start..].to_string(),
                }
            }
            Err(e) => WhileFull {
                command: cmd.clone(),
                status: None,
                output: e.to_string(),
            },
        }
    });
    eprintln!("scale: releasing {held} sessions");
    let released = Instant::now();
    drop(children);
    // Until the nodes have deleted every key (their releases are batched) and every cache
    // has seen it.
    settle(a, 0)?;
    let release_s = released.elapsed().as_secs_f64();
    snapshots.push(snap("released", 0)?);
    Ok(FillResult {
        scenario: "scale".into(),
        nodes: a.targets.len(),
        per_node: a.per_node,
        procs_per_node: a.procs_per_node,
        concurrency_per_proc: a.common.concurrency,
        steps,
        snapshots,
        release_s,
        while_full,
        machine: crate::compare::machine(),
    })
}

/// Waits (at most `--settle` seconds) until etcd holds `keys` session keys and every node's
/// registry cache holds etcd's revision: the step's batched writes have landed and every
/// watch has applied them. Each check is a round of requests, so the loop follows the
/// cluster's progress rather than a fixed pause.
fn settle(a: &FillArgs, keys: u64) -> Result<(), BenchError> {
    let prefix = format!("{}/sessions/", a.prefix);
    let deadline = Instant::now() + Duration::from_secs_f64(a.settle);
    loop {
        let (n, _, _, revision) = session_keys(a.etcd, &prefix)?;
        let mut behind = 0;
        for admin in &a.admins {
            let m = http(*admin, "GET", "/metrics", None)?;
            if (metric(&m, "parley_registry_revision", None) as i64) < revision {
                behind += 1;
            }
        }
        if n == keys && behind == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!(
                "scale: not settled after {} s ({n} session keys for {keys}; {behind} node(s) behind revision {revision}); measuring anyway",
                a.settle
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn snapshot(a: &FillArgs) -> Result<Snapshot, BenchError> {
    let m = http(a.etcd, "GET", "/metrics", None)?;
    let g = |name: &str| metric(&m, name, None);
    let mut etcd = EtcdFigures {
        db_total_bytes: g("etcd_mvcc_db_total_size_in_bytes"),
        db_in_use_bytes: g("etcd_mvcc_db_total_size_in_use_in_bytes"),
        keys: g("etcd_debugging_mvcc_keys_total"),
        puts: g("etcd_mvcc_put_total"),
        deletes: g("etcd_mvcc_delete_total"),
        txns: g("etcd_mvcc_txn_total"),
        watch_events: g("etcd_debugging_mvcc_events_total"),
        watchers: g("etcd_debugging_mvcc_watcher_total"),
        cpu_s: g("process_cpu_seconds_total"),
        rss_bytes: g("process_resident_memory_bytes"),
        ..EtcdFigures::default()
    };
    if let Some(pid) = a.etcd_pid {
        etcd.cpu_s = crate::proc::proc_sample(pid)?.cpu_seconds;
    }
    let (n, kb, vb, rev) = session_keys(a.etcd, &format!("{}/sessions/", a.prefix))?;
    etcd.session_keys = n;
    etcd.session_key_bytes = kb;
    etcd.session_value_bytes = vb;
    etcd.revision = rev;
    let mut nodes = Vec::new();
    for (admin, pid) in a.admins.iter().zip(&a.pids) {
        let m = http(*admin, "GET", "/metrics", None)?;
        let g = |name: &str, label: Option<&str>| metric(&m, name, label);
        let p = crate::proc::proc_sample(*pid)?;
        nodes.push(NodeFigures {
            registry_sessions: g("parley_registry_sessions", None),
            registry_cache_bytes: g("parley_registry_cache_bytes", None),
            user_actors: g("parley_user_actors", None),
            claims: g("parley_etcd_requests_total", Some("op=\"claim\"")),
            batches: g("parley_etcd_requests_total", Some("op=\"batch\"")),
            batched_keys: g("parley_etcd_batched_keys_total", None),
            link_frames_in: g("parley_node_link_frames_total", Some("direction=\"in\"")),
            link_frames_out: g("parley_node_link_frames_total", Some("direction=\"out\"")),
            cpu_s: p.cpu_seconds,
            rss_kib: p.rss_kib,
        });
    }
    Ok(Snapshot {
        etcd,
        nodes,
        ..Snapshot::default()
    })
}

/// Counts the keys under `prefix` and their bytes with paged range reads (what
/// `etcdctl get --prefix` does), and the store revision.
fn session_keys(etcd: SocketAddr, prefix: &str) -> Result<(u64, u64, u64, i64), BenchError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let (mut n, mut kb, mut vb, mut rev) = (0u64, 0u64, 0u64, 0i64);
    let mut from = prefix.as_bytes().to_vec();
    loop {
        let body = serde_json::json!({
            "key": b64.encode(&from),
            "range_end": b64.encode(&end),
            "limit": 10000,
            "revision": rev,
        })
        .to_string();
        let text = http(etcd, "POST", "/v3/kv/range", Some(&body))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| BenchError::Options(format!("etcd range answer: {e}")))?;
        if rev == 0 {
            // Every later page reads the same revision.
            rev = v["header"]["revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
        }
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        let mut last = None;
        for kv in &kvs {
            let key = b64
                .decode(kv["key"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let value = b64
                .decode(kv["value"].as_str().unwrap_or(""))
                .unwrap_or_default();
            n += 1;
            kb += key.len() as u64;
            vb += value.len() as u64;
            last = Some(key);
        }
        match last {
            Some(mut key) if v["more"].as_bool() == Some(true) => {
                key.push(0);
                from = key;
            }
            _ => return Ok((n, kb, vb, rev)),
        }
    }
}

/// One HTTP/1.0 request on loopback (no chunked answers), returning the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, BenchError> {
    use std::net::TcpStream;
    if !addr.ip().is_loopback() {
        return Err(BenchError::NotLoopback(addr.to_string()));
    }
    let what = || format!("{method} http://{addr}{path}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| BenchError::io(what(), e))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| BenchError::io(what(), e))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| BenchError::io(what(), e))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| BenchError::io(what(), e))?;
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| BenchError::Options(format!("{}: no HTTP answer", what())))?;
    let status = head.split(' ').nth(1);
    if !head.starts_with("HTTP/1.") || status != Some("200") {
        return Err(BenchError::Options(format!(
            "{}: {}",
            what(),
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_string())
}

pub use report::{report, LoginRun};

mod report;
