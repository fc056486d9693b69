//! Component rules (`[component]`, XEP-0114): each domain a valid domain that is not one of
//! ours, with exactly one secret that a component can be given (inline or in a readable
//! file), and a stanza bound a server must accept.

use super::{normalize_host, Quoted, Violation, MIN_STANZA_BYTES};
use crate::config::Config;

/// Shorter secrets are guessable by anyone who can reach the component port.
const MIN_SECRET_BYTES: usize = 16;

impl Config {
    pub(super) fn check_components(&self) -> Result<(), Violation> {
        let c = &self.component;
        let entries = c
            .secrets
            .keys()
            .map(|d| (d, "component.secrets"))
            .chain(c.secret_files.keys().map(|d| (d, "component.secret_files")));
        let mut seen: Vec<String> = Vec::new();
        for (domain, table) in entries {
            let key = format!("{table}.\"{domain}\"");
            let normalized = normalize_host(domain)
                .map_err(|reason| Violation::new(&key, Quoted(domain), reason))?;
            if self.server.hosts.contains(&normalized) {
                return Err(Violation::new(
                    &key,
                    Quoted(domain),
                    "is one of server.hosts: a component needs a domain of its own \
                     (e.g. a subdomain such as \"bot.example.org\")",
                ));
            }
            if seen.contains(&normalized) {
                return Err(Violation::new(
                    &key,
                    Quoted(domain),
                    "has a secret already: give each component domain one secret, inline or \
                     in a file",
                ));
            }
            seen.push(normalized);
        }
        for (domain, secret) in &c.secrets {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(Violation::new(
                    &format!("component.secrets.\"{domain}\""),
                    "\"…\"",
                    format!("must be at least {MIN_SECRET_BYTES} bytes (generate one with `openssl rand -hex 16`)"),
                ));
            }
        }
        for (domain, path) in &c.secret_files {
            let key = format!("component.secret_files.\"{domain}\"");
            match std::fs::read_to_string(path) {
                Err(e) => {
                    return Err(Violation::new(
                        &key,
                        Quoted(path.display()),
                        format!("cannot be read: {e}"),
                    ))
                }
                Ok(text) if first_line(&text).len() < MIN_SECRET_BYTES => {
                    return Err(Violation::new(
                        &key,
                        Quoted(path.display()),
                        format!(
                            "must hold a secret of at least {MIN_SECRET_BYTES} bytes on its \
                             first line"
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if !(MIN_STANZA_BYTES..=16 << 20).contains(&c.max_stanza_bytes) {
            return Err(Violation::new(
                "component.max_stanza_bytes",
                c.max_stanza_bytes,
                format!("must be from {MIN_STANZA_BYTES} to 16777216 bytes"),
            ));
        }
        if !c.listen.is_empty() && seen.is_empty() {
            return Err(Violation::new(
                "component.listen",
                format!(
                    "{:?}",
                    c.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>()
                ),
                "a component port needs at least one component: set component.secrets or \
                 component.secret_files",
            ));
        }
        self.check_frame_room("component.max_stanza_bytes", c.max_stanza_bytes)
    }

    /// A stanza of `bytes` (the bound named `key`) must fit a node-link frame with room
    /// for its envelope, since any stanza may cross to another node.
    pub(super) fn check_frame_room(&self, key: &str, bytes: usize) -> Result<(), Violation> {
        match &self.cluster {
            Some(cluster) if cluster.max_frame_bytes < bytes + 4096 => Err(Violation::new(
                "cluster.max_frame_bytes",
                cluster.max_frame_bytes,
                format!("must exceed {key} by at least 4096 bytes"),
            )),
            _ => Ok(()),
        }
    }

    /// Every component domain (normalized) with its secret, files read. Call after
    /// validation; an unreadable file then (it changed since) is an error naming its key.
    pub fn component_secrets(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (domain, secret) in &self.component.secrets {
            out.push((
                normalize_host(domain).unwrap_or_else(|_| domain.clone()),
                secret.clone(),
            ));
        }
        for (domain, path) in &self.component.secret_files {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "component.secret_files.\"{domain}\": {}: {e}",
                    path.display()
                )
            })?;
            out.push((
                normalize_host(domain).unwrap_or_else(|_| domain.clone()),
                first_line(&text).to_owned(),
            ));
        }
        Ok(out)
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}
