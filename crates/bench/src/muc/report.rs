//! The markdown tables of the group chat benchmark (`parley-bench muc`, `muc-report`):
//! fan-out latency and CPU per message at each offered load, then joins and memory, one
//! row per server (and load).

use std::fmt::Write as _;

use super::MucResult;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn mib(kib: &[u64]) -> f64 {
    kib.iter().sum::<u64>() as f64 / 1024.0
}

/// Both tables for `rows` (label, result).
pub fn report(rows: &[(String, MucResult)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| server | offered msg/s | messages (sent at msg/s) | reached all occupants | fan-out p50 / p99 / max (ms) | mean delivery (ms) | server CPU per message (ms): all / less idle | server CPU busy | PostgreSQL + etcd CPU per message (ms) | generator CPU busy | machine: CPU 0 / CPU 1 busy (every process) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, r) in rows {
        for l in &r.levels {
            let busy = |cpu: Option<f64>| {
                cpu.filter(|_| l.wall_s > 0.0).map_or_else(
                    || "–".to_owned(),
                    |c| format!("{:.0} %", 100.0 * c / l.wall_s),
                )
            };
            let mut reached = format!("{} / {}", l.complete, l.sent);
            if l.missing_deliveries > 0 {
                let _ = write!(reached, " ({} deliveries missing)", l.missing_deliveries);
            }
            if l.errors > 0 {
                let _ = write!(reached, ", {} errors", l.errors);
            }
            let machine = l
                .machine_cpu_busy_s
                .iter()
                .map(|&c| busy(Some(c)))
                .collect::<Vec<_>>()
                .join(" / ");
            let _ = writeln!(
                out,
                "| {label} | {} | {} ({:.1}) | {reached} | {} / {} / {} | {:.1} | {} / {} | {} | {} | {} | {machine} |",
                l.offered_per_s,
                l.sent,
                l.achieved_per_s,
                ms(l.fanout.p50_us),
                ms(l.fanout.p99_us),
                ms(l.fanout.max_us),
                l.delivery_mean_ms,
                opt(l.server_cpu_ms_per_message, 2),
                opt(l.server_cpu_ms_per_message_less_idle, 2),
                busy(l.server_cpu_s),
                opt(l.aux_cpu_s.map(|c| c * 1000.0 / l.sent.max(1) as f64), 2),
                busy(Some(l.client_cpu_s)),
            );
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "| server | occupants (per c2s address) | all logged in (s) | all joined (s) | one join p50 / p99 (ms) | room presences received / N², storm over after (s) | server CPU for the joins (s) | server CPU, room full and silent | server RSS before → after the joins (MiB) | RSS growth per process (MiB) | RSS per occupant (KiB) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, r) in rows {
        let spread = r
            .occupants_by_addr
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" + ");
        let growth = r
            .server_rss_kib_after_join
            .iter()
            .zip(&r.server_rss_kib_before_join)
            .map(|(a, b)| format!("{:+.1}", (*a as f64 - *b as f64) / 1024.0))
            .collect::<Vec<_>>()
            .join(" / ");
        let idle = r
            .idle_server_cpu_per_s
            .map_or_else(|| "–".to_owned(), |c| format!("{:.1} %", 100.0 * c));
        let _ = writeln!(
            out,
            "| {label} | {} ({spread}) | {:.1} | {:.1} | {} / {} | {} / {}, {:.1} | {} | {idle} | {:.1} → {:.1} | {growth} | {} |",
            r.occupants,
            r.login_s,
            r.join_s,
            ms(r.join_latency.p50_us),
            ms(r.join_latency.p99_us),
            r.join_presences,
            r.join_presences_expected,
            r.join_settle_s,
            opt(r.join_server_cpu_s, 2),
            mib(&r.server_rss_kib_before_join),
            mib(&r.server_rss_kib_after_join),
            opt(r.rss_per_occupant_kib, 1),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muc::{MucLevel, MucOpts};
    use crate::stats::LatencySummary;
    use crate::target::Target;

    fn result() -> MucResult {
        MucResult {
            scenario: "muc".into(),
            config: MucOpts::default(),
            target: Target::new(vec!["127.0.0.1:5222".parse().unwrap()]).echo(),
            room: "bench@conference.localhost".into(),
            occupants: 1000,
            occupants_by_addr: vec![334, 333, 333],
            login_s: 2.0,
            join_s: 10.0,
            join_latency: LatencySummary {
                p50_us: 1500,
                p99_us: 20_000,
                ..LatencySummary::default()
            },
            join_settle_s: 11.0,
            join_presences: 1_000_000,
            join_presences_expected: 1_000_000,
            join_server_cpu_s: Some(5.0),
            join_aux_cpu_s: None,
            idle_server_cpu_per_s: Some(0.015),
            server_rss_kib_before_join: vec![20_480, 20_480, 20_480],
            server_rss_kib_after_join: vec![22_528, 20_480, 20_480],
            rss_per_occupant_kib: Some(2.048),
            levels: vec![MucLevel {
                offered_per_s: 10.0,
                sent: 200,
                achieved_per_s: 10.0,
                complete: 200,
                missing_deliveries: 0,
                duplicate_deliveries: 0,
                errors: 0,
                fanout: LatencySummary {
                    p50_us: 4200,
                    p99_us: 9000,
                    max_us: 12_000,
                    ..LatencySummary::default()
                },
                fanout_ms_by_message: vec![Some(4.2)],
                delivery_mean_ms: 2.5,
                wall_s: 20.0,
                server_cpu_s: Some(4.0),
                server_cpu_s_by_pid: vec![2.0, 1.0, 1.0],
                server_cpu_ms_per_message: Some(20.0),
                server_cpu_ms_per_message_less_idle: Some(18.5),
                machine_cpu_busy_s: vec![5.0, 3.0],
                aux_cpu_s: Some(0.2),
                client_cpu_s: 2.0,
            }],
            dropped_connections: 0,
        }
    }

    #[test]
    fn one_row_per_load_and_one_per_server() {
        let text = report(&[("Parley, 3 nodes".into(), result())]);
        assert!(text.contains(
            "| Parley, 3 nodes | 10 | 200 (10.0) | 200 / 200 | 4.2 / 9.0 / 12.0 | 2.5 | 20.00 / 18.50 | 20 % | 1.00 | 10 % | 25 % / 15 % |"
        ), "{text}");
        assert!(text.contains(
            "| Parley, 3 nodes | 1000 (334 + 333 + 333) | 2.0 | 10.0 | 1.5 / 20.0 | 1000000 / 1000000, 11.0 | 5.00 | 1.5 % | 60.0 → 62.0 | +2.0 / +0.0 / +0.0 | 2.0 |"
        ), "{text}");
    }
}
