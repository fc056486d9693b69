//! `[cluster]` rules: etcd endpoints, node identity, lease, mutual TLS files, and the
//! node-link secret and bounds (node links must be authenticated).

use super::{Quoted, Violation};
use crate::config::ClusterConfig;

impl ClusterConfig {
    pub(in crate::config) fn check(&self) -> Result<(), Violation> {
        if self.etcd.is_empty() {
            return Err(Violation::new(
                "cluster.etcd",
                "[]",
                "needs at least one etcd endpoint such as \"http://127.0.0.1:2379\"",
            ));
        }
        for (i, url) in self.etcd.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Violation::new(
                    &format!("cluster.etcd[{i}]"),
                    Quoted(url),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(id) = &self.node_id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                return Err(Violation::new(
                    "cluster.node_id",
                    Quoted(id),
                    "must be 1-64 characters of letters, digits, '-', '_' or '.'",
                ));
            }
        }
        if let Some(adv) = &self.peer_advertise {
            let ok = adv
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(Violation::new(
                    "cluster.peer_advertise",
                    Quoted(adv),
                    "must be \"host:port\" as other nodes reach this one",
                ));
            }
        }
        if self.peer_advertise.is_none() && self.peer_listen.ip().is_unspecified() {
            return Err(Violation::new(
                "cluster.peer_advertise",
                "unset",
                "must be set when peer_listen is a wildcard address",
            ));
        }
        if !(2..=300).contains(&self.lease_ttl_s) {
            return Err(Violation::new(
                "cluster.lease_ttl_s",
                self.lease_ttl_s,
                "must be from 2 to 300 seconds",
            ));
        }
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => {}
            (Some(cert), Some(key), Some(ca)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key), ("tls_ca", ca)] {
                    if !path.is_file() {
                        return Err(Violation::new(
                            &format!("cluster.{name}"),
                            Quoted(path.display()),
                            "no such file",
                        ));
                    }
                }
            }
            _ => {
                return Err(Violation::new(
                    "cluster.tls_cert",
                    "…",
                    "set tls_cert, tls_key and tls_ca together (mutual TLS on node links), or none",
                ))
            }
        }
        self.check_links()?;
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return Err(Violation::new(
                "cluster.prefix",
                Quoted(&self.prefix),
                "must start with '/' and not end with one, e.g. \"/parley\"",
            ));
        }
        self.check_trust()
    }

    /// Node-link trust and bounds (issue 10): authentication is required.
    fn check_links(&self) -> Result<(), Violation> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return Err(Violation::new(
                    "cluster.secret",
                    "\"…\"",
                    "set cluster.secret or cluster.secret_file, not both",
                ))
            }
            (Some(s), None) if s.len() < 32 => {
                return Err(Violation::new(
                    "cluster.secret",
                    "\"…\"",
                    "must be at least 32 bytes (generate one with `openssl rand -hex 32`)",
                ))
            }
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Err(e) => {
                    return Err(Violation::new(
                        "cluster.secret_file",
                        Quoted(path.display()),
                        format!("cannot be read: {e}"),
                    ))
                }
                Ok(text) if text.trim().len() < 32 => return Err(Violation::new(
                    "cluster.secret_file",
                    Quoted(path.display()),
                    "must hold a secret of at least 32 bytes (white space around it is trimmed)",
                )),
                Ok(_) => {}
            },
            (None, None) if self.tls_cert.is_none() => {
                return Err(Violation::new(
                    "cluster.secret",
                    "unset",
                    "node links must be authenticated: set cluster.secret or cluster.secret_file \
                     (a shared secret of at least 32 bytes), or cluster.tls_cert, cluster.tls_key \
                     and cluster.tls_ca (mutual TLS)",
                ))
            }
            _ => {}
        }
        if !(100..=60_000).contains(&self.handshake_timeout_ms) {
            return Err(Violation::new(
                "cluster.handshake_timeout_ms",
                self.handshake_timeout_ms,
                "must be from 100 to 60000 milliseconds",
            ));
        }
        if !(1..=1024).contains(&self.max_links_per_address) {
            return Err(Violation::new(
                "cluster.max_links_per_address",
                self.max_links_per_address,
                "must be from 1 to 1024",
            ));
        }
        if !((64 << 10)..=(64 << 20)).contains(&self.max_frame_bytes) {
            return Err(Violation::new(
                "cluster.max_frame_bytes",
                self.max_frame_bytes,
                "must be from 65536 (64 KiB) to 67108864 (64 MiB)",
            ));
        }
        if self.send_queue_bytes < self.max_frame_bytes || self.send_queue_bytes > (4 << 30) {
            return Err(Violation::new(
                "cluster.send_queue_bytes",
                self.send_queue_bytes,
                "must be at least cluster.max_frame_bytes and at most 4 GiB",
            ));
        }
        if !(100..=30_000).contains(&self.registry_wait_ms) {
            return Err(Violation::new(
                "cluster.registry_wait_ms",
                self.registry_wait_ms,
                "must be from 100 to 30000 milliseconds",
            ));
        }
        if !(1..=1_000_000).contains(&self.registry_wait_frames) {
            return Err(Violation::new(
                "cluster.registry_wait_frames",
                self.registry_wait_frames,
                "must be from 1 to 1000000",
            ));
        }
        // From etcd-client's own 4 MiB (issue 16: exceeded by the watch response of a
        // leaving node with ~80k sessions) to 2 GiB, past which gRPC framing cannot go.
        let max = parley_cluster::etcd_access::MIN_MAX_MESSAGE_BYTES..=(2 << 30);
        if !max.contains(&self.etcd_max_message_bytes) {
            return Err(Violation::new(
                "cluster.etcd_max_message_bytes",
                self.etcd_max_message_bytes,
                "must be from 4194304 (4 MiB) to 2147483648 (2 GiB)",
            ));
        }
        if self.registry_wait_bytes < self.max_frame_bytes || self.registry_wait_bytes > (4 << 30) {
            return Err(Violation::new(
                "cluster.registry_wait_bytes",
                self.registry_wait_bytes,
                "must be at least cluster.max_frame_bytes and at most 4 GiB",
            ));
        }
        Ok(())
    }
}
