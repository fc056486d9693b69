//! A server's socket-writing system calls during an interval, counted by `perf stat` on
//! the syscall tracepoints of its process.
//!
//! `/proc/<pid>/io` `syscw` is not enough for this: it counts the write(2) family (write,
//! writev, pwrite) but not send(2), sendto(2) or sendmsg(2), and that is how most servers
//! write to sockets (Rust's `TcpStream::write` and LuaSocket both call send, which is
//! sendto underneath). Counting tracepoints costs the server next to nothing, unlike
//! strace, so its CPU figures stay comparable. Needs `perf` and root (or a low
//! `perf_event_paranoid`).

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::BenchError;

/// The system calls counted, by tracepoint name (`syscalls:sys_enter_NAME`).
pub const SYSCALLS: [&str; 4] = ["write", "writev", "sendto", "sendmsg"];

/// How many times each of [`SYSCALLS`] was entered, all threads of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallCounts {
    pub write: u64,
    pub writev: u64,
    pub sendto: u64,
    pub sendmsg: u64,
}

impl SyscallCounts {
    pub fn total(&self) -> u64 {
        self.write + self.writev + self.sendto + self.sendmsg
    }
}

/// A running `perf stat -p PID`.
pub struct SyscallCounter {
    child: Child,
}

impl SyscallCounter {
    /// Starts counting the system calls of `pid`.
    pub async fn start(pid: u32) -> Result<SyscallCounter, BenchError> {
        let events = SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &events, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io("starting perf stat", e))?;
        // perf says nothing once it is attached; it takes well under this on an idle
        // machine, and nothing is measured yet.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = child
            .try_wait()
            .map_err(|e| BenchError::io("perf stat", e))?
        {
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| BenchError::io("perf stat", e))?;
            return Err(BenchError::Options(format!(
                "perf stat exited at once ({status}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(SyscallCounter { child })
    }

    /// Stops counting (SIGINT, on which perf prints its counts) and returns the counts.
    pub async fn finish(self) -> Result<SyscallCounts, BenchError> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| BenchError::Options("perf stat already ended".into()))?;
        // Without libc (unsafe is forbidden here) a signal goes through kill(1); the pid is
        // our own child's.
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await
            .map_err(|e| BenchError::io("kill -INT perf", e))?;
        if !status.success() {
            return Err(BenchError::Options(format!("kill -INT {pid} failed")));
        }
        let out = tokio::time::timeout(Duration::from_secs(10), self.child.wait_with_output())
            .await
            .map_err(|_| BenchError::Timeout("perf stat to print its counts".into()))?
            .map_err(|e| BenchError::io("perf stat", e))?;
        let text = String::from_utf8_lossy(&out.stderr);
        parse_perf_csv(&text)
            .ok_or_else(|| BenchError::Options(format!("unreadable perf stat output: {text}")))
    }
}

/// The counts in `perf stat -x ,` output (`VALUE,UNIT,EVENT,…` per line); an event perf
/// could not count (`<not counted>`: the process never ran) is 0, one that is missing
/// altogether makes the output unreadable.
pub(crate) fn parse_perf_csv(text: &str) -> Option<SyscallCounts> {
    let count = |name: &str| -> Option<u64> {
        let event = format!("syscalls:sys_enter_{name}");
        let line = text
            .lines()
            .find(|l| l.split(',').nth(2) == Some(event.as_str()))?;
        let value = line.split(',').next()?.trim();
        if value == "<not counted>" {
            Some(0)
        } else {
            value.parse().ok()
        }
    };
    Some(SyscallCounts {
        write: count("write")?,
        writev: count("writev")?,
        sendto: count("sendto")?,
        sendmsg: count("sendmsg")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv_counts_are_read_by_event() {
        let out = "\n 12,,syscalls:sys_enter_write,3197543,100.00,,\n\
                   <not counted>,,syscalls:sys_enter_writev,0,100.00,,\n\
                   4000,,syscalls:sys_enter_sendto,3197543,100.00,,\n\
                   7,,syscalls:sys_enter_sendmsg,3197543,100.00,,\n";
        let c = parse_perf_csv(out).unwrap();
        assert_eq!(
            c,
            SyscallCounts {
                write: 12,
                writev: 0,
                sendto: 4000,
                sendmsg: 7
            }
        );
        assert_eq!(c.total(), 4019);
        assert_eq!(
            parse_perf_csv("12,,syscalls:sys_enter_write,1,100.00,,\n"),
            None
        );
        assert_eq!(
            parse_perf_csv("Error:\nNo permissions to read tracepoints\n"),
            None
        );
    }
}
