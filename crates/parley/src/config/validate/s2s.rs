//! Federation rules (`[s2s]`): routes that name a domain and an address, bounds a server
//! can live with, and a trust-anchor file that can be read.

use super::{normalize_host, Quoted, Violation, MIN_STANZA_BYTES};
use crate::config::Config;

impl Config {
    /// `[external_services]` (XEP-0215): entries that parse, a secret long enough to
    /// matter, a credential lifetime from a minute to a week.
    pub(super) fn check_external_services(&self) -> Result<(), Violation> {
        let e = &self.external_services;
        for (i, s) in e.services.iter().enumerate() {
            if parley_proto::extdisco::Service::parse(s).is_none() {
                return Err(Violation::new(
                    &format!("external_services.services[{i}]"),
                    Quoted(s),
                    "must be \"type:host:port\" or \"type:host:port:transport\" (type stun, stuns, turn or turns; transport udp or tcp)",
                ));
            }
        }
        if e.turn_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(Violation::new(
                "external_services.turn_secret",
                "\"…\"",
                "must be at least 16 bytes",
            ));
        }
        if !(60..=604_800).contains(&e.credential_ttl_s) {
            return Err(Violation::new(
                "external_services.credential_ttl_s",
                e.credential_ttl_s,
                "must be from 60 to 604800 seconds",
            ));
        }
        Ok(())
    }

    pub(super) fn check_s2s(&self) -> Result<(), Violation> {
        let s = &self.s2s;
        for (domain, target) in &s.routes {
            let key = format!("s2s.routes.\"{domain}\"");
            let normalized = normalize_host(domain)
                .map_err(|reason| Violation::new(&key, Quoted(domain), reason))?;
            if self.server.hosts.contains(&normalized) {
                return Err(Violation::new(
                    &key,
                    Quoted(domain),
                    "is one of server.hosts: a route is for a remote domain",
                ));
            }
            if parse_route(target).is_none() {
                return Err(Violation::new(
                    &key,
                    Quoted(target),
                    "must be \"host:port\" (a name or an IP address, and a port)",
                ));
            }
        }
        for domain in s.require_valid_certificates_for.keys() {
            let key = format!("s2s.require_valid_certificates_for.\"{domain}\"");
            normalize_host(domain)
                .map_err(|reason| Violation::new(&key, Quoted(domain), reason))?;
        }
        if !(MIN_STANZA_BYTES..=16 << 20).contains(&s.max_stanza_bytes) {
            return Err(Violation::new(
                "s2s.max_stanza_bytes",
                s.max_stanza_bytes,
                format!("must be from {MIN_STANZA_BYTES} to 16777216 bytes"),
            ));
        }
        if s.queue_stanzas == 0 {
            return Err(Violation::new("s2s.queue_stanzas", 0, "must be at least 1"));
        }
        if s.queue_bytes < s.max_stanza_bytes {
            return Err(Violation::new(
                "s2s.queue_bytes",
                s.queue_bytes,
                "must hold at least one stanza of s2s.max_stanza_bytes",
            ));
        }
        for (key, value) in [
            ("s2s.connect_timeout_s", s.connect_timeout_s),
            ("s2s.idle_timeout_s", s.idle_timeout_s),
        ] {
            if !(1..=86_400).contains(&value) {
                return Err(Violation::new(
                    key,
                    value,
                    "must be from 1 to 86400 seconds",
                ));
            }
        }
        if !(1..=10_000).contains(&s.max_pending_verifications) {
            return Err(Violation::new(
                "s2s.max_pending_verifications",
                s.max_pending_verifications,
                "must be from 1 to 10000",
            ));
        }
        if let Some(path) = &s.ca_file {
            if let Err(e) = std::fs::metadata(path) {
                return Err(Violation::new(
                    "s2s.ca_file",
                    Quoted(path.display()),
                    format!("cannot be read: {e}"),
                ));
            }
        }
        self.check_frame_room("s2s.max_stanza_bytes", s.max_stanza_bytes)
    }

    /// The static routes, domains normalized (call after validation).
    pub fn s2s_routes(&self) -> Vec<(String, String, u16)> {
        self.s2s
            .routes
            .iter()
            .filter_map(|(domain, target)| {
                let (host, port) = parse_route(target)?;
                Some((normalize_host(domain).ok()?, host, port))
            })
            .collect()
    }
}

/// `host:port` or `[v6]:port`.
fn parse_route(target: &str) -> Option<(String, u16)> {
    if let Ok(addr) = target.parse::<std::net::SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!host.is_empty() && !host.contains(['/', ' ', '[', ']'])).then(|| (host.to_owned(), port))
}
