//! The process's own figures in `/metrics`, under the names every Prometheus client library
//! uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`), so that stock dashboards and alerts
//! work; and `parley_build_info`. Read from `/proc/self` at scrape time: nothing runs between
//! scrapes. Off Linux (no `/proc`) the process family is simply absent.
//!
//! The clock-tick and page sizes come from the process's auxiliary vector
//! (`/proc/self/auxv`), the kernel's own answer, since `sysconf` would need `unsafe`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::metrics::family;

/// What `/proc/self` says of this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on them.
    pub max_fds: u64,
    /// When the process started, unix seconds.
    pub start_time_seconds: f64,
}

/// `AT_PAGESZ` and `AT_CLKTCK` in the auxiliary vector (`<elf.h>`).
const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// The values of `keys` in `/proc/self/auxv` (native-endian `usize` pairs), read once.
fn auxv<const N: usize>(keys: [u64; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    let Ok(bytes) = std::fs::read("/proc/self/auxv") else {
        return out;
    };
    let width = std::mem::size_of::<usize>();
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..width].copy_from_slice(b);
        u64::from_ne_bytes(w)
    };
    for pair in bytes.chunks_exact(2 * width) {
        let key = word(&pair[..width]);
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = Some(word(&pair[width..]));
        }
    }
    out
}

impl Process {
    /// Reads it now; None where there is no `/proc`.
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces), from field 3 (state).
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let [ticks, page] = auxv([AT_CLKTCK, AT_PAGESZ]);
        let ticks = ticks.filter(|t| *t > 0).unwrap_or(100) as f64;
        let page = page.filter(|p| *p > 0).unwrap_or(4096);
        let cpu_seconds = (field(14)? + field(15)?) as f64 / ticks;
        let virtual_bytes = field(23)?;
        let resident_bytes = field(24)? * page;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let start_time_seconds = boot as f64 + field(22)? as f64 / ticks;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or(0);
        Some(Process {
            cpu_seconds,
            resident_bytes,
            virtual_bytes,
            open_fds,
            max_fds,
            start_time_seconds,
        })
    }

    /// Writes the `process_*` families (without the `parley_` prefix: the standard names).
    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        const NO_LABELS: [(&str, &str); 0] = [];
        let none = |v: f64| std::iter::once((NO_LABELS, v));
        let int = |v: u64| std::iter::once((NO_LABELS, v));
        family(
            enc,
            "process_cpu",
            "Total user and system CPU time spent.",
            Some(&Unit::Seconds),
            Counter,
            none(self.cpu_seconds),
        )?;
        family(
            enc,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            Gauge,
            int(self.resident_bytes),
        )?;
        family(
            enc,
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            Gauge,
            int(self.virtual_bytes),
        )?;
        family(
            enc,
            "process_open_fds",
            "Open file descriptors.",
            None,
            Gauge,
            int(self.open_fds),
        )?;
        family(
            enc,
            "process_max_fds",
            "The soft limit on open file descriptors.",
            None,
            Gauge,
            int(self.max_fds),
        )?;
        family(
            enc,
            "process_start_time",
            "Start time of the process since the unix epoch.",
            Some(&Unit::Seconds),
            Gauge,
            none(self.start_time_seconds),
        )
    }
}

/// The `process_*` families as a collector of a registry without the `parley_` prefix.
#[derive(Debug)]
pub(crate) struct ProcessCollector(pub Process);

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.0.encode(&mut enc)
    }
}

/// The build: version (the workspace's) and the git commit it was built from (`unknown`
/// outside a checkout, e.g. a container build without `.git`).
pub fn build_labels() -> [(&'static str, &'static str); 2] {
    [
        ("version", env!("CARGO_PKG_VERSION")),
        ("commit", env!("PARLEY_COMMIT")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        let p = Process::read().expect("Linux /proc");
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3 && p.max_fds >= p.open_fds, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0,
            "{p:?}"
        );
        assert!(auxv([AT_PAGESZ])[0].is_some_and(|p| p >= 4096));
    }
}
