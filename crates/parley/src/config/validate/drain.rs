//! Drain rules: where a draining node sends its clients (`c2s.redirect_host`,
//! `http.redirect_ws_uri`) and how long it waits for them (`cluster.drain_timeout_s`).
//! The addresses are written to clients verbatim, so they must be what RFC 6120 §4.9.3.19
//! and RFC 7395 §3.6.1 allow, not merely non-empty.

use super::{Quoted, Violation};
use crate::config::Config;

/// The longest drain: longer ones outlast any orchestrator's grace period.
const MAX_DRAIN_TIMEOUT_S: u64 = 3600;

impl Config {
    pub(super) fn check_drain(&self) -> Result<(), Violation> {
        if let Some(cluster) = &self.cluster {
            if !(1..=MAX_DRAIN_TIMEOUT_S).contains(&cluster.drain_timeout_s) {
                return Err(Violation::new(
                    "cluster.drain_timeout_s",
                    cluster.drain_timeout_s,
                    format!("must be from 1 to {MAX_DRAIN_TIMEOUT_S} seconds"),
                ));
            }
        }
        let host = &self.c2s.redirect_host;
        if !host.is_empty() && !host_port(host) {
            return Err(Violation::new(
                "c2s.redirect_host",
                Quoted(host),
                "must be empty, a host name or IP address, optionally with \":port\" \
                 (an IPv6 address in brackets), e.g. \"xmpp.example.org:5222\"",
            ));
        }
        if let Some(uri) = &self.http.redirect_ws_uri {
            let rest = uri
                .strip_prefix("wss://")
                .or_else(|| uri.strip_prefix("ws://"));
            let authority = rest.map(|r| r.split_once('/').map_or(r, |(a, _)| a));
            let ok = authority.is_some_and(host_port)
                && !uri
                    .chars()
                    .any(|c| c.is_whitespace() || "\"'<>".contains(c));
            if !ok {
                return Err(Violation::new(
                    "http.redirect_ws_uri",
                    Quoted(uri),
                    "must be a ws:// or wss:// URI such as \"wss://xmpp.example.org/xmpp-websocket\"",
                ));
            }
        }
        Ok(())
    }
}

/// `host`, `host:port` or `[v6]:port`, with a port from 1 to 65535 when present.
fn host_port(s: &str) -> bool {
    let (host, port) = match s.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match rest {
                    "" => return true,
                    r => ("v6", r.strip_prefix(':').unwrap_or("x")),
                }
            }
            None => return false,
        },
        None => match s.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (s, "1"),
        },
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn redirect_hosts_are_what_see_other_host_allows() {
        for ok in [
            "lb",
            "xmpp.example.org",
            "xmpp.example.org:5222",
            "192.0.2.1:5222",
            "[2001:db8::1]",
            "[2001:db8::1]:5222",
        ] {
            assert!(host_port(ok), "{ok}");
        }
        for bad in [
            "",
            ":5222",
            "host:",
            "host:0",
            "host:99999",
            "a b",
            "a<b",
            "[nope]:1",
            "[::1]x",
            "2001:db8::1",
        ] {
            assert!(!host_port(bad), "{bad}");
        }
    }
}
