//! `cluster`: what clustering costs, measured against a running cluster (for example
//! `cluster/local up 3`):
//!
//! - one-way chat latency at one offered rate between users on the **same node** and between
//!   users on **different nodes** (the second pays the node link and the owner hop);
//! - a login storm spread over the nodes, with the etcd requests each login cost, read from
//!   the nodes' `/metrics` before and after (claims are one transaction each; presence flags
//!   and releases go in batched transactions);
//! - the registry cache's size per session entry with many sessions bound, from `/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chat::{chat, ChatMode, ChatOpts};
use crate::client::Session;
use crate::idle::close_all;
use crate::login::{login, LoginOpts};
use crate::stats::{run_pool, LatencySummary};
use crate::target::{Shared, Target};
use crate::BenchError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterOpts {
    /// Admin endpoints of the nodes, in the same order as the target's c2s addresses.
    pub admins: Vec<SocketAddr>,
    /// The admin bearer token is not needed: `/metrics` is open.
    pub pairs: usize,
    /// Total messages per second in each chat run.
    pub rate: f64,
    pub duration_s: f64,
    /// Logins in the storm.
    pub logins: usize,
    /// Sessions held while the registry cache is measured.
    pub hold: usize,
    pub concurrency: usize,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            admins: Vec::new(),
            pairs: 50,
            rate: 2000.0,
            duration_s: 10.0,
            logins: 2000,
            hold: 5000,
            concurrency: 50,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterResult {
    pub scenario: String,
    pub config: ClusterOpts,
    pub nodes: usize,
    /// Both users of every pair on the first node.
    pub same_node: LatencySummary,
    pub same_node_lost: u64,
    /// The sender on the first node, the receiver on the second.
    pub cross_node: LatencySummary,
    pub cross_node_lost: u64,
    /// cross-node p99 / same-node p99 (the target is at most 2).
    pub p99_ratio: f64,
    pub logins_completed: usize,
    pub logins_per_s: f64,
    /// etcd claim transactions per login (bind).
    pub claims_per_login: f64,
    /// Batched write transactions per login (presence flags on login, releases on logout).
    pub batches_per_login: f64,
    /// All etcd write requests per login.
    pub etcd_writes_per_login: f64,
    /// Keys the batches wrote or deleted per login.
    pub batched_keys_per_login: f64,
    /// Sessions bound cluster-wide while the cache was measured.
    pub registry_sessions: u64,
    /// Approximate heap bytes of the first node's registry cache per session entry.
    pub registry_bytes_per_entry: f64,
}

/// Sums of the cluster counters over every node.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    claims: f64,
    batches: f64,
    keys: f64,
}

pub async fn cluster(target: &Target, opts: &ClusterOpts) -> Result<ClusterResult, BenchError> {
    if target.addrs.len() < 2 || opts.admins.len() != target.addrs.len() {
        return Err(BenchError::Options(
            "cluster needs at least two nodes (--target a,b) and one --admin per node".into(),
        ));
    }
    let chat_opts = ChatOpts {
        pairs: opts.pairs,
        mode: ChatMode::Rate { rate: opts.rate },
        duration_s: opts.duration_s,
        body_pad: 0,
        concurrency: opts.concurrency,
        drain_s: 10.0,
    };
    eprintln!("cluster: same-node chat on {}", target.addrs[0]);
    let mut same = target.clone();
    same.addrs = vec![target.addrs[0]];
    let same = chat(&same, &chat_opts).await?;
    eprintln!(
        "cluster: cross-node chat {} -> {}",
        target.addrs[0], target.addrs[1]
    );
    let mut cross = target.clone();
    cross.addrs = vec![target.addrs[0], target.addrs[1]];
    cross.place_by_user = true;
    let cross = chat(&cross, &chat_opts).await?;

    eprintln!(
        "cluster: login storm of {} over {} nodes",
        opts.logins,
        target.addrs.len()
    );
    let before = counters(&opts.admins)?;
    let storm = login(
        target,
        &LoginOpts {
            count: opts.logins,
            concurrency: opts.concurrency,
            duration_s: Some(600.0),
            users: None,
            prime: true,
        },
    )
    .await?;
    // Releases of the storm's last sessions are batched after their close: let them land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = counters(&opts.admins)?;
    let n = storm.completed.max(1) as f64;

    eprintln!("cluster: holding {} sessions", opts.hold);
    let shared = Shared::new(target)?;
    let sh = shared.clone();
    let held = run_pool(opts.hold, opts.concurrency, move |i| {
        let sh = sh.clone();
        async move {
            let mut s = Session::login(&sh, i, "held").await?;
            s.available().await?;
            Ok::<_, BenchError>(s)
        }
    })
    .await;
    let held: Vec<Session> = held.into_iter().filter_map(Result::ok).collect();
    // The watch reaches every node within a round trip; give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = scrape(opts.admins[0])?;
    let entries = metric(&metrics, "parley_registry_sessions", None);
    let bytes = metric(&metrics, "parley_registry_cache_bytes", None);
    close_all(held, opts.concurrency).await;

    let ratio = if same.latency.p99_us > 0 {
        cross.latency.p99_us as f64 / same.latency.p99_us as f64
    } else {
        0.0
    };
    let claims = (after.claims - before.claims) / n;
    let batches = (after.batches - before.batches) / n;
    Ok(ClusterResult {
        scenario: "cluster".into(),
        config: opts.clone(),
        nodes: target.addrs.len(),
        same_node: same.latency,
        same_node_lost: same.lost,
        cross_node: cross.latency,
        cross_node_lost: cross.lost,
        p99_ratio: ratio,
        logins_completed: storm.completed,
        logins_per_s: storm.logins_per_s,
        claims_per_login: claims,
        batches_per_login: batches,
        etcd_writes_per_login: claims + batches,
        batched_keys_per_login: (after.keys - before.keys) / n,
        registry_sessions: entries as u64,
        registry_bytes_per_entry: if entries > 0.0 { bytes / entries } else { 0.0 },
    })
}

/// The markdown section of docs/benchmarks.md for a cluster run.
pub fn report(r: &ClusterResult, command: &str) -> String {
    use std::fmt::Write as _;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out = String::new();
    let _ = writeln!(out, "## Cluster\n");
    let _ = writeln!(
        out,
        "{} Parley nodes, etcd, PostgreSQL and HAProxy on one machine ({}), started by \
         `cluster/local up {}`; the generator on the same machine, unpinned. Command:\n\n    {command}\n",
        r.nodes,
        crate::compare::machine(),
        r.nodes
    );
    let _ = writeln!(
        out,
        "| one-way chat latency at {:.0} msg/s ({} pairs, {:.0} s) | p50 | p90 | p99 | p99.9 | lost |\n|---|---|---|---|---|---|",
        r.config.rate, r.config.pairs, r.config.duration_s
    );
    for (name, l, lost) in [
        ("same node", &r.same_node, r.same_node_lost),
        ("across nodes", &r.cross_node, r.cross_node_lost),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {lost} |",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us)
        );
    }
    let _ = writeln!(
        out,
        "\nCross-node p99 is **{:.2}×** same-node p99 (target: at most 2×).\n",
        r.p99_ratio
    );
    let _ = writeln!(
        out,
        "| login storm ({} logins, {} at a time, over all nodes, STARTTLS + SCRAM + bind + presence + logout) | figure |\n|---|---|",
        r.logins_completed, r.config.concurrency
    );
    let _ = writeln!(out, "| logins/s | {:.0} |", r.logins_per_s);
    let _ = writeln!(
        out,
        "| etcd write requests per login (target: about one) | **{:.2}** |",
        r.etcd_writes_per_login
    );
    let _ = writeln!(
        out,
        "| of which claim transactions | {:.2} |",
        r.claims_per_login
    );
    let _ = writeln!(
        out,
        "| of which batched flag/release transactions | {:.2} (carrying {:.2} keys) |",
        r.batches_per_login, r.batched_keys_per_login
    );
    let _ = writeln!(
        out,
        "| registry cache per session entry ({} sessions bound) | {:.0} bytes |",
        r.registry_sessions, r.registry_bytes_per_entry
    );
    let _ = writeln!(
        out,
        "\nNo reference figures: Prosody has no clustering, and an ejabberd (Mnesia) cluster is not \
         part of this run."
    );
    out.push_str(SCALE_SECTION);
    out
}

/// The pointer to the scale figures, which come from their own run (crates/bench/run-scale.sh).
const SCALE_SECTION: &str = "
## Scale

A 3-node cluster on this machine filled to 19,000 sessions per node (57,000; several generator
processes and 127.0.x.y source addresses, as a process may open at most 20,000 files): etcd
keys, bytes and database growth per session, the watch events and CPU every other node spends
per login, registry cache memory per node, and the login rate against 1, 2 and 3 nodes.
Figures: [benchmarks/scale.md](benchmarks/scale.md), from `crates/bench/run-scale.sh`. What
they mean for 10 million sessions on 100 nodes, the first ceiling (a node cannot list a
registry above about 23,500 sessions) and the proposed fixes: [scaling.md](scaling.md).
";

fn counters(admins: &[SocketAddr]) -> Result<Counters, BenchError> {
    let mut c = Counters::default();
    for admin in admins {
        let m = scrape(*admin)?;
        c.claims += metric(&m, "parley_etcd_requests_total", Some("op=\"claim\""));
        c.batches += metric(&m, "parley_etcd_requests_total", Some("op=\"batch\""));
        c.keys += metric(&m, "parley_etcd_batched_keys_total", None);
    }
    Ok(c)
}

/// `GET /metrics` over a plain socket (loopback only, like every target).
fn scrape(admin: SocketAddr) -> Result<String, BenchError> {
    use std::io::{Read, Write};
    if !admin.ip().is_loopback() {
        return Err(BenchError::Options(format!(
            "admin address {admin} is not on loopback"
        )));
    }
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(5))
        .map_err(|e| BenchError::io(format!("connecting to the admin endpoint {admin}"), e))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| BenchError::io("read timeout", e))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| BenchError::io(format!("admin endpoint {admin}"), e))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| BenchError::io(format!("admin endpoint {admin}"), e))?;
    Ok(out)
}

/// The sum of a metric's samples whose labels contain `label` (all samples when None).
pub(crate) fn metric(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, labels) = key.split_once('{').unwrap_or((key, ""));
            (metric == name && label.is_none_or(|want| labels.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_matching_samples() {
        let text = "# HELP x y\n\
                    parley_etcd_requests_total{node=\"n1\",op=\"claim\"} 10\n\
                    parley_etcd_requests_total{node=\"n1\",op=\"batch\"} 4\n\
                    parley_registry_sessions{node=\"n1\"} 7\n";
        assert_eq!(
            metric(text, "parley_etcd_requests_total", Some("op=\"claim\"")),
            10.0
        );
        assert_eq!(metric(text, "parley_etcd_requests_total", None), 14.0);
        assert_eq!(metric(text, "parley_registry_sessions", None), 7.0);
        assert_eq!(metric(text, "missing", None), 0.0);
    }
}
