//! The markdown of `parley-bench scale report`: the fill node by node, what each session
//! costs etcd and the other nodes, and the login rate against the number of nodes.

use std::fmt::Write as _;

use super::{FillResult, Snapshot};
use crate::LoginResult;

const MIB: f64 = 1024.0 * 1024.0;

/// A `run login` result against a cluster of `nodes` nodes.
#[derive(Debug, Clone)]
pub struct LoginRun {
    pub nodes: usize,
    /// Busy CPU cores of the whole machine during the run (from /proc/stat), when known.
    pub busy_cores: Option<f64>,
    pub result: LoginResult,
}

/// Figures per session and per login derived from a fill, for the text and for tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    pub held: usize,
    pub keys_per_session: f64,
    pub key_bytes_per_session: f64,
    pub value_bytes_per_session: f64,
    pub db_bytes_per_session: f64,
    pub db_in_use_bytes_per_session: f64,
    pub etcd_rss_bytes_per_session: f64,
    pub puts_per_login: f64,
    pub txns_per_login: f64,
    pub revisions_per_login: f64,
    /// Events etcd sent to all watchers per login, and per node.
    pub watch_events_per_login: f64,
    pub watch_events_per_login_per_node: f64,
    pub etcd_cpu_ms_per_login: f64,
    /// CPU of the node the client logged in to, per login (mean over the steps).
    pub home_cpu_ms_per_login: f64,
    /// CPU of each other node per login elsewhere (watch events, the user actors it owns).
    pub other_cpu_ms_per_login: f64,
    /// Registry cache bytes per entry (the node's own figure), at the full fill.
    pub cache_bytes_per_entry: f64,
    /// Node 1's RSS growth per session bound on the other nodes (after node 1 was full).
    pub remote_rss_bytes_per_session: f64,
    /// Node 1's RSS growth per session bound on node 1 itself (its fill step).
    pub local_rss_bytes_per_session: f64,
}

pub fn derive(f: &FillResult) -> Derived {
    let s = &f.snapshots;
    let (Some(first), Some(full)) = (s.first(), s.get(f.steps.len())) else {
        return Derived::default();
    };
    let held = full.held.max(1) as f64;
    let d = |get: &dyn Fn(&Snapshot) -> f64| (get(full) - get(first)) / held;
    let nodes = f.nodes.max(1) as f64;
    let (mut home, mut other, mut steps) = (0.0, 0.0, 0.0);
    for (i, step) in f.steps.iter().enumerate() {
        let (a, b) = (&s[i], &s[i + 1]);
        if step.opened == 0 || a.nodes.len() != b.nodes.len() {
            continue;
        }
        let n = step.opened as f64;
        let cpu: Vec<f64> = a
            .nodes
            .iter()
            .zip(&b.nodes)
            .map(|(x, y)| y.cpu_s - x.cpu_s)
            .collect();
        home += cpu[step.node - 1] / n;
        if cpu.len() > 1 {
            let rest: f64 = cpu.iter().sum::<f64>() - cpu[step.node - 1];
            other += rest / (cpu.len() - 1) as f64 / n;
        }
        steps += 1.0;
    }
    let node1 = |snap: &Snapshot| {
        snap.nodes
            .first()
            .map_or(0.0, |n| n.rss_kib as f64 * 1024.0)
    };
    let (after1, remote_held) = s
        .get(1)
        .map_or((0.0, 0.0), |s1| (node1(s1), (full.held - s1.held) as f64));
    let cache = full
        .nodes
        .iter()
        .filter(|n| n.registry_sessions > 0.0)
        .map(|n| n.registry_cache_bytes / n.registry_sessions)
        .sum::<f64>()
        / full.nodes.len().max(1) as f64;
    let watch = d(&|x| x.etcd.watch_events);
    Derived {
        held: full.held,
        keys_per_session: full.etcd.session_keys as f64 / held,
        key_bytes_per_session: full.etcd.session_key_bytes as f64 / held,
        value_bytes_per_session: full.etcd.session_value_bytes as f64 / held,
        db_bytes_per_session: d(&|x| x.etcd.db_total_bytes),
        db_in_use_bytes_per_session: d(&|x| x.etcd.db_in_use_bytes),
        etcd_rss_bytes_per_session: d(&|x| x.etcd.rss_bytes),
        puts_per_login: d(&|x| x.etcd.puts),
        txns_per_login: d(&|x| x.etcd.txns),
        revisions_per_login: d(&|x| x.etcd.revision as f64),
        watch_events_per_login: watch,
        watch_events_per_login_per_node: watch / nodes,
        etcd_cpu_ms_per_login: d(&|x| x.etcd.cpu_s) * 1000.0,
        home_cpu_ms_per_login: if steps > 0.0 {
            home / steps * 1000.0
        } else {
            0.0
        },
        other_cpu_ms_per_login: if steps > 0.0 {
            other / steps * 1000.0
        } else {
            0.0
        },
        cache_bytes_per_entry: cache,
        remote_rss_bytes_per_session: if remote_held > 0.0 {
            (node1(full) - after1) / remote_held
        } else {
            0.0
        },
        local_rss_bytes_per_session: match (s.first(), s.get(1)) {
            (Some(a), Some(b)) if b.held > 0 => (node1(b) - node1(a)) / b.held as f64,
            _ => 0.0,
        },
    }
}

/// The markdown: the fill table, the per-session figures, the login rate by node count.
pub fn report(f: &FillResult, logins: &[LoginRun], command: &str) -> String {
    let mut o = String::new();
    let d = derive(f);
    let _ = writeln!(
        o,
        "## Scale: a {}-node cluster filled on one machine\n",
        f.nodes
    );
    let _ = writeln!(
        o,
        "{} Parley nodes, etcd and PostgreSQL on one machine ({}), started by `cluster/local`; \
         {} sessions per node (STARTTLS, SCRAM-SHA-1, bind, initial presence) opened by {} \
         generator processes per node ({} logins in flight each, their own 127.0.x.y source \
         addresses), node after node. Command:\n\n    {command}\n",
        f.nodes, f.machine, f.per_node, f.procs_per_node, f.concurrency_per_proc
    );
    let _ = writeln!(
        o,
        "| snapshot | sessions held | logins/s of the step | session keys | key + value bytes | \
         etcd db MiB (in use) | etcd RSS MiB | etcd revision | watch events sent |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for (i, s) in f.snapshots.iter().enumerate() {
        let rate = i
            .checked_sub(1)
            .and_then(|k| f.steps.get(k))
            .map_or(String::from("—"), |st| {
                format!("{:.0} ({} failed)", st.logins_per_s, st.failed)
            });
        let _ = writeln!(
            o,
            "| {} | {} | {rate} | {} | {} + {} | {:.1} ({:.1}) | {:.0} | {} | {:.0} |",
            s.label,
            s.held,
            s.etcd.session_keys,
            s.etcd.session_key_bytes,
            s.etcd.session_value_bytes,
            s.etcd.db_total_bytes / MIB,
            s.etcd.db_in_use_bytes / MIB,
            s.etcd.rss_bytes / MIB,
            s.etcd.revision,
            s.etcd.watch_events
        );
    }
    let _ = writeln!(
        o,
        "\n| snapshot | per node: registry entries / cache KiB / RSS MiB / CPU s (cumulative) |\n|---|---|"
    );
    for s in &f.snapshots {
        let cells: Vec<String> = s
            .nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                format!(
                    "node{}: {:.0} / {:.0} / {:.0} / {:.1}",
                    k + 1,
                    n.registry_sessions,
                    n.registry_cache_bytes / 1024.0,
                    n.rss_kib as f64 / 1024.0,
                    n.cpu_s
                )
            })
            .collect();
        let _ = writeln!(o, "| {} | {} |", s.label, cells.join("; "));
    }
    let _ = writeln!(
        o,
        "\n| per session or login ({} sessions held) | figure |\n|---|---|",
        d.held
    );
    let rows: [(&str, String); 16] = [
        (
            "etcd keys per session",
            format!("{:.2}", d.keys_per_session),
        ),
        (
            "key + value bytes per session",
            format!(
                "{:.0} + {:.0}",
                d.key_bytes_per_session, d.value_bytes_per_session
            ),
        ),
        (
            "etcd db growth per session (total / in use)",
            format!(
                "{:.0} / {:.0} bytes",
                d.db_bytes_per_session, d.db_in_use_bytes_per_session
            ),
        ),
        (
            "etcd RSS growth per session",
            format!("{:.0} bytes", d.etcd_rss_bytes_per_session),
        ),
        ("etcd puts per login", format!("{:.2}", d.puts_per_login)),
        (
            "etcd write transactions per login",
            format!("{:.2}", d.txns_per_login),
        ),
        (
            "etcd revisions per login",
            format!("{:.2}", d.revisions_per_login),
        ),
        (
            "watch events etcd sent per login (all watchers)",
            format!("{:.2}", d.watch_events_per_login),
        ),
        (
            "watch events per login per node",
            format!("{:.2}", d.watch_events_per_login_per_node),
        ),
        (
            "etcd CPU per login",
            format!("{:.3} ms", d.etcd_cpu_ms_per_login),
        ),
        (
            "CPU of the node logged in to, per login",
            format!("{:.3} ms", d.home_cpu_ms_per_login),
        ),
        (
            "CPU of each other node per login elsewhere (watch events + the user actors it owns)",
            format!("{:.3} ms", d.other_cpu_ms_per_login),
        ),
        (
            "registry cache per entry (`parley_registry_cache_bytes`)",
            format!("{:.0} bytes", d.cache_bytes_per_entry),
        ),
        (
            "node1 RSS per session bound elsewhere (cache + owned user actors)",
            format!("{:.0} bytes", d.remote_rss_bytes_per_session),
        ),
        (
            "node1 RSS per session bound on node1",
            format!("{:.0} bytes", d.local_rss_bytes_per_session),
        ),
        (
            "etcd db after the release (total / in use, no compaction)",
            f.snapshots.last().map_or(String::new(), |s| {
                format!(
                    "{:.1} / {:.1} MiB, {} session keys left {:.1} s after the generators ended",
                    s.etcd.db_total_bytes / MIB,
                    s.etcd.db_in_use_bytes / MIB,
                    s.etcd.session_keys,
                    f.release_s
                )
            }),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    if let Some(w) = &f.while_full {
        let _ = writeln!(
            o,
            "\nWith every session held: `{}` (exit status {}):\n\n```\n{}\n```",
            w.command,
            w.status.map_or("none".into(), |c| c.to_string()),
            w.output.trim_end()
        );
    }
    if !logins.is_empty() {
        let _ = writeln!(
            o,
            "\n| login storm, same generator (one process), spread over | logins | logins/s | \
             p50 | p99 | failed | generator CPU s | machine busy cores (of {}) |\n\
             |---|---|---|---|---|---|---|---|",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        for run in logins {
            let (n, l) = (run.nodes, &run.result);
            let _ = writeln!(
                o,
                "| {n} node{} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2} | {} |",
                if n == 1 { "" } else { "s" },
                l.completed,
                l.logins_per_s,
                l.latency.p50_us as f64 / 1000.0,
                l.latency.p99_us as f64 / 1000.0,
                l.failed,
                l.usage.client_cpu_s,
                run.busy_cores.map_or("—".into(), |b| format!("{b:.2}"))
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::{EtcdFigures, FillStep, NodeFigures};

    fn snap(label: &str, held: usize, keys: u64, cpu: [f64; 2]) -> Snapshot {
        Snapshot {
            label: label.into(),
            held,
            etcd: EtcdFigures {
                session_keys: keys,
                watch_events: held as f64 * 4.0,
                db_total_bytes: 1000.0 + held as f64 * 500.0,
                ..EtcdFigures::default()
            },
            nodes: cpu
                .iter()
                .map(|c| NodeFigures {
                    cpu_s: *c,
                    registry_sessions: held as f64,
                    registry_cache_bytes: held as f64 * 160.0,
                    ..NodeFigures::default()
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn derives_per_session_figures() {
        let step = |node| FillStep {
            node,
            opened: 100,
            failed: 0,
            first_error: None,
            open_s: 1.0,
            logins_per_s: 100.0,
        };
        let f = FillResult {
            scenario: "scale".into(),
            nodes: 2,
            per_node: 100,
            procs_per_node: 1,
            concurrency_per_proc: 1,
            steps: vec![step(1), step(2)],
            snapshots: vec![
                snap("before", 0, 0, [0.0, 0.0]),
                snap("node 1 filled", 100, 100, [1.0, 0.2]),
                snap("node 2 filled", 200, 200, [1.2, 1.2]),
                snap("released", 0, 0, [1.5, 1.5]),
            ],
            release_s: 1.0,
            while_full: None,
            machine: "test".into(),
        };
        let d = derive(&f);
        assert_eq!(d.held, 200);
        assert_eq!(d.keys_per_session, 1.0);
        assert_eq!(d.db_bytes_per_session, 500.0);
        assert_eq!(d.watch_events_per_login, 4.0);
        assert_eq!(d.watch_events_per_login_per_node, 2.0);
        assert_eq!(d.cache_bytes_per_entry, 160.0);
        assert!((d.home_cpu_ms_per_login - 10.0).abs() < 1e-9);
        assert!((d.other_cpu_ms_per_login - 2.0).abs() < 1e-9);
        let text = report(&f, &[], "cmd");
        assert!(text.contains("| node 2 filled | 200 | 100 (0 failed) |"));
    }
}
