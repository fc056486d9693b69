//! systemd's readiness protocol (`sd_notify(3)`): with `Type=notify`, systemd passes
//! `NOTIFY_SOCKET` and waits for `READY=1` before it counts the service as started (so units
//! ordered after Parley, and `systemctl start` itself, wait until every listener is bound);
//! `RELOADING=1` … `READY=1` frames a SIGHUP reload and `STOPPING=1` announces the drain.
//! One datagram per state to the socket systemd named (a path, or `@` for the abstract
//! namespace). Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.
//!
//! By hand rather than the `sd-notify` crate: this build has no network for new crates, and
//! the protocol is one datagram.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`KEY=value` lines) to systemd, if it asked for notifications. Failures
/// are logged and otherwise ignored: a notification is never worth stopping the server.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(())
}
