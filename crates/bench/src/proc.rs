//! Server-side figures from `/proc/<pid>`: CPU seconds (user + system), resident memory
//! and I/O system call counts.

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// `utime + stime` in seconds, all threads, since the process started.
    pub cpu_seconds: f64,
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn proc_sample(pid: u32) -> Result<ProcSample, BenchError> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| BenchError::Proc {
            pid,
            reason: format!("{file}: {e}"),
        })
    };
    let ticks = parse_stat_ticks(&read("stat")?).ok_or_else(|| BenchError::Proc {
        pid,
        reason: "unreadable stat line".into(),
    })?;
    let rss_kib = parse_vm_rss(&read("status")?).ok_or_else(|| BenchError::Proc {
        pid,
        reason: "no VmRSS in status".into(),
    })?;
    Ok(ProcSample {
        cpu_seconds: ticks as f64 / clock_ticks_per_second() as f64,
        rss_kib,
    })
}

/// The system call counters of `/proc/<pid>/io` (proc(5)), all threads together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcIo {
    /// read(2)-family calls (read, readv, pread).
    pub syscr: u64,
    /// write(2)-family calls (write, writev, pwrite). Not send(2), sendto(2) or
    /// sendmsg(2): socket writes made with those do not count here.
    pub syscw: u64,
}

/// Reads `/proc/<pid>/io` (needs the same user as the process, or root).
pub fn proc_io(pid: u32) -> Result<ProcIo, BenchError> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/io")).map_err(|e| BenchError::Proc {
            pid,
            reason: format!("io: {e}"),
        })?;
    parse_io(&text).ok_or_else(|| BenchError::Proc {
        pid,
        reason: "no syscr/syscw in io".into(),
    })
}

pub(crate) fn parse_io(text: &str) -> Option<ProcIo> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(ProcIo {
        syscr: field("syscr")?,
        syscw: field("syscw")?,
    })
}

/// CPU seconds of `pid` and every live process below it, summed: PostgreSQL works in one
/// backend process per connection, none of which shows in the postmaster's own counters.
/// Children that already exited count only once their parent reaped them (`cutime`),
/// which the postmaster does: its `cutime + cstime` are added too.
pub fn proc_tree_cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let root =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| BenchError::Proc {
            pid,
            reason: format!("stat: {e}"),
        })?;
    let mut ticks =
        parse_stat_ticks(&root).unwrap_or(0) + parse_stat_child_ticks(&root).unwrap_or(0);
    // One pass over /proc for the parent links, then a walk down from `pid`.
    let mut children: std::collections::HashMap<u32, Vec<(u32, u64)>> = Default::default();
    let entries = std::fs::read_dir("/proc").map_err(|e| BenchError::Proc {
        pid,
        reason: format!("listing /proc: {e}"),
    })?;
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: it is simply not counted.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let (Some(ppid), Some(t)) = (parse_stat_ppid(&stat), parse_stat_ticks(&stat)) {
            children.entry(ppid).or_default().push((child, t));
        }
    }
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &(c, t) in children.get(&p).map_or(&[][..], Vec::as_slice) {
            ticks += t;
            todo.push(c);
        }
    }
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// The parent pid (field 4 of proc(5) stat).
pub(crate) fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `cutime + cstime` (fields 16 and 17): the reaped children's CPU, in clock ticks.
pub(crate) fn parse_stat_child_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(13);
    // Signed in proc(5), never negative in practice.
    let cutime: i64 = fields.next()?.parse().ok()?;
    let cstime: i64 = fields.next()?.parse().ok()?;
    Some((cutime + cstime).max(0) as u64)
}

/// `utime + stime` (fields 14 and 15 of proc(5) stat) in clock ticks. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th field here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:` line of proc(5) status, in KiB.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// `sysconf(_SC_CLK_TCK)` without libc (unsafe is forbidden here): the kernel hands it
/// to every process as `AT_CLKTCK` in the auxiliary vector. Falls back to 100, the value
/// on every mainstream Linux architecture.
pub fn clock_ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| auxv_value(&auxv, AT_CLKTCK))
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

const AT_CLKTCK: u64 = 17;

/// Looks `key` up in a native-endian auxiliary vector of (key, value) word pairs.
fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| -> u64 {
        let mut raw = [0u8; WORD];
        raw.copy_from_slice(b);
        usize::from_ne_bytes(raw) as u64
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .take_while(|&(k, _)| k != 0)
        .find(|&(k, _)| k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
        // majflt cmajflt utime stime …; the name here contains ") (" to mislead a naive split.
        let stat = "4242 (we) (ird) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parent_and_reaped_children_fields() {
        let stat = "4242 (a) b) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 75 30 12 20 0 9 0";
        assert_eq!(parse_stat_ppid(stat), Some(17));
        assert_eq!(parse_stat_child_ticks(stat), Some(42));
        assert_eq!(parse_stat_ppid("nope"), None);
    }

    #[test]
    fn a_process_tree_counts_its_children() {
        use std::io::BufRead;
        // The child burns CPU, says so, then waits for its stdin to close: the sample is
        // taken on its word, not after a guessed delay.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo busy; read _",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "busy");
        let own = proc_sample(std::process::id()).unwrap().cpu_seconds;
        let tree = proc_tree_cpu_seconds(std::process::id()).unwrap();
        drop(child.stdin.take());
        let _ = child.wait();
        assert!(tree > own, "tree {tree} own {own}");
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tparley\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn io_counters_are_read_by_name() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\nwrite_bytes: 0\n";
        assert_eq!(parse_io(io), Some(ProcIo { syscr: 3, syscw: 4 }));
        assert_eq!(parse_io("rchar: 10\n"), None);
        let own = proc_io(std::process::id()).unwrap();
        assert!(own.syscr > 0);
    }

    #[test]
    fn auxv_lookup_stops_at_at_null() {
        let mut auxv = Vec::new();
        for (k, v) in [(6usize, 4096usize), (17, 100), (0, 0), (17, 5)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(auxv_value(&auxv, AT_CLKTCK), Some(100));
        assert_eq!(auxv_value(&auxv, 99), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let a = proc_sample(std::process::id()).unwrap();
        // Burn a little CPU so the counter can only go up.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let b = proc_sample(std::process::id()).unwrap();
        assert!(a.rss_kib > 0);
        assert!(b.cpu_seconds >= a.cpu_seconds);
        assert!((1..=10_000).contains(&clock_ticks_per_second()));
    }
}
