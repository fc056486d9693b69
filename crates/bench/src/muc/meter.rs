//! What the group chat benchmark reads of the machine: the server processes' CPU and
//! RSS, the CPU of the process trees they lean on, and every CPU's busy time.

use crate::proc::{proc_sample, proc_tree_cpu_seconds};
use crate::BenchError;

/// CPU seconds of each server process, and the aux process trees together.
pub(super) type CpuReading = Result<(Vec<f64>, f64), BenchError>;

pub(super) fn cpu_of(pids: &[u32], aux: &[u32]) -> CpuReading {
    let servers = pids
        .iter()
        .map(|&p| proc_sample(p).map(|s| s.cpu_seconds))
        .collect::<Result<Vec<_>, _>>()?;
    let mut aux_s = 0.0;
    for &p in aux {
        aux_s += proc_tree_cpu_seconds(p)?;
    }
    Ok((servers, aux_s))
}

/// (server CPU seconds, aux CPU seconds) between two readings; None where unknown.
pub(super) fn usage(before: &CpuReading, after: &CpuReading) -> (Option<f64>, Option<f64>) {
    match (before, after) {
        (Ok((a, aux_a)), Ok((b, aux_b))) => (
            (!a.is_empty()).then(|| b.iter().sum::<f64>() - a.iter().sum::<f64>()),
            Some(aux_b - aux_a).filter(|_| *aux_a > 0.0 || *aux_b > 0.0),
        ),
        _ => (None, None),
    }
}

/// Busy seconds of each CPU since boot, from the `cpuN` lines of `/proc/stat`: user, nice,
/// system, irq, softirq and steal (not idle, not iowait). Empty when unreadable.
pub(super) fn machine_cpu_busy_s() -> Vec<f64> {
    let ticks = crate::proc::clock_ticks_per_second() as f64;
    std::fs::read_to_string("/proc/stat")
        .map(|stat| {
            parse_cpu_busy(&stat)
                .iter()
                .map(|&t| t as f64 / ticks)
                .collect()
        })
        .unwrap_or_default()
}

/// Busy ticks per CPU of a `/proc/stat` text, in CPU order.
fn parse_cpu_busy(stat: &str) -> Vec<u64> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal …
            [0, 1, 2, 5, 6, 7]
                .iter()
                .map(|&i| f.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect()
}

pub(super) fn rss_of(pids: &[u32]) -> Result<Vec<u64>, BenchError> {
    pids.iter()
        .map(|&p| proc_sample(p).map(|s| s.rss_kib))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_is_counted_per_cpu() {
        let stat = "cpu  10 0 5 100 3 1 1 2 0 0\ncpu0 4 0 2 50 1 1 0 1 0 0\ncpu1 6 0 3 50 2 0 1 1 0 0\nintr 5\n";
        assert_eq!(parse_cpu_busy(stat), [8, 11]);
        assert!(!machine_cpu_busy_s().is_empty());
    }
}
