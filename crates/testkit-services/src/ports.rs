//! Ports for servers a test starts in another process (etcd, PostgreSQL, `parley` nodes).
//!
//! Asking the OS for port 0 and releasing it hands out ephemeral ports, and the kernel is
//! free to give the same one again at once — to the next such call, or as the source port
//! of any outgoing connection. A CI run once got one port for a node's c2s and its HTTP
//! listener. So ports come from below the ephemeral range instead, each handed out once per
//! test process, and only after a bind shows nobody holds it.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::net::TcpListener;

/// The band used; below Linux's default ephemeral range (32768–60999) and clear of the
/// ports `cluster/local` (15432, 16000–16500, 23790, 23800) and the benchmark comparison
/// (27222, 27280) use, so tests and a local cluster can run side by side.
const FIRST: u16 = 20_000;
const LAST: u16 = 23_500;

static HANDED_OUT: Mutex<Option<(u16, HashSet<u16>)>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 nobody holds now and this process has not handed out before.
///
/// Each process starts at an offset derived from its pid, so test binaries run side by
/// side rarely meet; when they do, the bind check skips the taken port.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock();
    let span = u32::from(LAST - FIRST);
    let (next, seen) = guard.get_or_insert_with(|| {
        let offset = (std::process::id().wrapping_mul(2_654_435_761) % span) as u16;
        (FIRST + offset, HashSet::new())
    });
    for _ in 0..span {
        let port = *next;
        *next = if port >= LAST { FIRST } else { port + 1 };
        if seen.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            seen.insert(port);
            return port;
        }
    }
    panic!("no free TCP port left in 127.0.0.1:{FIRST}-{LAST}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_and_are_bindable() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (FIRST..=LAST).contains(p)));
        // Bindable now, since nothing was started on them.
        for p in &ports[..5] {
            TcpListener::bind(("127.0.0.1", *p)).expect("bind a handed-out port");
        }
    }

    #[test]
    fn a_port_someone_holds_is_skipped() {
        let held = TcpListener::bind(("127.0.0.1", free_port())).expect("bind");
        let held_port = held.local_addr().unwrap().port();
        for _ in 0..50 {
            assert_ne!(free_port(), held_port);
        }
    }
}
