//! Validation: the rules a type alone cannot express, each failure a [`Violation`] naming
//! the dotted key it is about. Cluster rules are in [`cluster`], exposure and trust rules in
//! `trust.rs`, HTTP bounds in `http_limits.rs`.

use std::fmt;

use super::{normalize_host, AuthConfig, Config, LimitsConfig, QuotasConfig, UsersConfig};

mod cluster;
mod component;
mod drain;
mod s2s;

/// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
pub const MIN_STANZA_BYTES: usize = 10_000;
/// RFC 7677 §4: SCRAM-SHA-256 iteration counts should be at least 4096.
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// Below this a legitimate stanza (message > body, x-data forms) cannot be expressed.
pub const MIN_DEPTH: usize = 8;
/// Below this common stanzas (`<message from to id type xml:lang>`) are refused.
pub const MIN_ATTRIBUTES: usize = 8;
/// Below this a stream header (2) and a stanza with a few payload namespaces
/// (Jingle nests 5 or 6) are refused.
pub const MIN_NAMESPACE_DECLARATIONS: usize = 16;

/// Below this a login (a few kilobytes) takes seconds.
pub const MIN_READ_BYTES_PER_S: u32 = 1024;

/// A broken rule, before the origin is attached.
pub(super) struct Violation {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) reason: String,
}

impl Violation {
    pub(super) fn new(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Violation {
            key: key.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Displays a value as a TOML string.
pub(super) struct Quoted<T>(pub(super) T);

impl<T: fmt::Display> fmt::Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.to_string())
    }
}

impl Config {
    pub(super) fn check(&self) -> Result<(), Violation> {
        self.check_server()?;
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
            // A maximal stanza and its frame envelope must fit in one node-link frame.
            if cluster.max_frame_bytes < self.c2s.max_stanza_bytes + 4096 {
                return Err(Violation::new(
                    "cluster.max_frame_bytes",
                    cluster.max_frame_bytes,
                    "must exceed c2s.max_stanza_bytes by at least 4096 bytes",
                ));
            }
        }
        if self.auth.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(Violation::new(
                "auth.jwt_secret",
                "\"…\"",
                "must be at least 32 characters (HS256 keys shorter than the hash are weak)",
            ));
        }
        if self.auth.jwt_leeway_s > 600 {
            return Err(Violation::new(
                "auth.jwt_leeway_s",
                self.auth.jwt_leeway_s,
                "must be at most 600 seconds",
            ));
        }
        if let Some(url) = &self.auth.delegate_url {
            let ok = url
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                return Err(Violation::new(
                    "auth.delegate_url",
                    Quoted(url),
                    "must be an http:// URL such as \"http://127.0.0.1:8080/xmpp-auth\"",
                ));
            }
        }
        if !(100..=60_000).contains(&self.auth.delegate_timeout_ms) {
            return Err(Violation::new(
                "auth.delegate_timeout_ms",
                self.auth.delegate_timeout_ms,
                "must be from 100 to 60000",
            ));
        }
        self.auth.check_limits()?;
        for (i, origin) in self.http.origins.iter().enumerate() {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = origin == "*"
                || host.is_some_and(|h| !h.is_empty() && !h.contains(['/', ' ', '*']));
            if !ok {
                return Err(Violation::new(
                    &format!("http.origins[{i}]"),
                    Quoted(origin),
                    "must be \"*\" or an origin such as \"https://example.org\" (scheme and host, no path)",
                ));
            }
        }
        if let Some(url) = &self.http.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Violation::new(
                    "http.public_url",
                    Quoted(url),
                    "must be an http:// or https:// URL such as \"https://chat.example.org\"",
                ));
            }
        }
        self.check_drain()?;
        self.check_components()?;
        self.check_s2s()?;
        self.check_external_services()?;
        self.mam.check()?;
        self.pep.check()?;
        self.register.check()?;
        self.upload.check(self.http.listen.is_some())?;
        self.push.check()?;
        self.muc.check()?;
        self.check_web_client()?;
        self.check_exposure()?;
        self.check_http_limits()?;
        self.check_admin_limits()?;
        self.check_c2s()?;
        self.check_tls()?;
        if self.sasl.scram_iterations < MIN_SCRAM_ITERATIONS {
            return Err(Violation::new(
                "sasl.scram_iterations",
                self.sasl.scram_iterations,
                format!("must be at least {MIN_SCRAM_ITERATIONS} (RFC 7677 §4)"),
            ));
        }
        if let Some(bad) = self
            .sasl
            .mechanisms
            .iter()
            .find(|n| parley_proto::sasl::Mechanism::from_name(n).is_none())
        {
            let known: Vec<&str> = parley_proto::sasl::Mechanism::ALL
                .iter()
                .map(|m| m.name())
                .collect();
            return Err(Violation::new(
                "sasl.mechanisms",
                format!("{bad:?}"),
                format!("is not a SASL mechanism Parley has ({})", known.join(", ")),
            ));
        }
        if self.sasl.mechanisms.is_empty() {
            return Err(Violation::new(
                "sasl.mechanisms",
                "[]",
                "must name at least one mechanism (else nobody can log in)",
            ));
        }
        if self.admin.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(Violation::new(
                "admin.token",
                "\"…\"",
                "must be at least 16 characters (it guards the whole server)",
            ));
        }
        if !(1..=65_536).contains(&self.storage.sqlite_cache_mib) {
            return Err(Violation::new(
                "storage.sqlite_cache_mib",
                self.storage.sqlite_cache_mib,
                "must be between 1 and 65536",
            ));
        }
        if !(1..=65_536).contains(&self.storage.sqlite_user_queue) {
            return Err(Violation::new(
                "storage.sqlite_user_queue",
                self.storage.sqlite_user_queue,
                "must be between 1 and 65536",
            ));
        }
        if !(1..=65_536).contains(&self.storage.sqlite_archive_log_rows) {
            return Err(Violation::new(
                "storage.sqlite_archive_log_rows",
                self.storage.sqlite_archive_log_rows,
                "must be between 1 and 65536",
            ));
        }
        if self.roster.max_items == 0 {
            return Err(Violation::new(
                "roster.max_items",
                self.roster.max_items,
                "must be at least 1",
            ));
        }
        self.quotas.check()?;
        self.users.check(self.c2s.max_stanza_bytes)?;
        if let Some(url) = &self.storage.url {
            // What `serve` would refuse when it opens the store, caught at check time.
            if let Err(e) = parley_storage::check_url(url) {
                let reason = match e {
                    parley_storage::StorageError::BadUrl { reason, .. } => reason,
                    other => other.to_string(),
                };
                return Err(Violation::new(
                    "storage.url",
                    Quoted(&parley_storage::redact_password(url)),
                    format!(
                        "{reason}; expected a URL such as \"sqlite://data/parley.db\", \
                         \"sqlite::memory:\" or \"postgres://user@host/db\""
                    ),
                ));
            }
        }
        if let Err(reason) = check_log_level(&self.log.level) {
            return Err(Violation::new("log.level", Quoted(&self.log.level), reason));
        }
        Ok(())
    }

    fn check_server(&self) -> Result<(), Violation> {
        let hosts = &self.server.hosts;
        if hosts.is_empty() {
            return Err(Violation::new(
                "server.hosts",
                "[]",
                "must list at least one domain",
            ));
        }
        let mut seen: Vec<String> = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.iter().enumerate() {
            let key = format!("server.hosts[{i}]");
            let normalized = normalize_host(host)
                .map_err(|reason| Violation::new(&key, Quoted(host), reason))?;
            if let Some(j) = seen.iter().position(|h| *h == normalized) {
                return Err(Violation::new(
                    &key,
                    Quoted(host),
                    format!("duplicate of server.hosts[{j}]"),
                ));
            }
            seen.push(normalized);
        }
        Ok(())
    }

    /// `[http] web_client` and where its Converse.js comes from.
    fn check_web_client(&self) -> Result<(), Violation> {
        let http = &self.http;
        if let Some(url) = http
            .converse_url
            .as_ref()
            .filter(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(Violation::new(
                "http.converse_url",
                Quoted(url),
                "must be an http:// or https:// URL of Converse.js's dist directory, such as \"https://cdn.conversejs.org/12.0.0/dist\"",
            ));
        }
        if let Some(dir) = &http.converse_dist {
            if !dir.join("converse.min.js").is_file() || !dir.join("converse.min.css").is_file() {
                return Err(Violation::new(
                    "http.converse_dist",
                    Quoted(&dir.display().to_string()),
                    "must be Converse.js's dist directory (holding converse.min.js and converse.min.css), e.g. node_modules/converse.js/dist; unset, the bundled copy is served",
                ));
            }
        }
        if http.web_client && http.listen.is_none() {
            return Err(Violation::new(
                "http.web_client",
                true,
                "needs [http] listen (the page is served by the HTTP listener)",
            ));
        }
        Ok(())
    }

    fn check_c2s(&self) -> Result<(), Violation> {
        let c2s = &self.c2s;
        if c2s.listen.is_empty() && c2s.direct_tls.is_empty() {
            return Err(Violation::new(
                "c2s.listen",
                "[]",
                "no client listener: set c2s.listen or c2s.direct_tls (or both)",
            ));
        }
        let all = c2s
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("c2s.listen[{i}]"), a))
            .chain(
                c2s.direct_tls
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("c2s.direct_tls[{i}]"), a)),
            )
            .collect::<Vec<_>>();
        for (n, (key, addr)) in all.iter().enumerate() {
            if let Some((other, _)) = all[..n].iter().find(|(_, a)| a == addr) {
                return Err(Violation::new(
                    key,
                    Quoted(addr),
                    format!("already used by {other}"),
                ));
            }
        }
        if c2s.max_stanza_bytes < MIN_STANZA_BYTES {
            return Err(Violation::new(
                "c2s.max_stanza_bytes",
                c2s.max_stanza_bytes,
                format!("must be at least {MIN_STANZA_BYTES} (RFC 6120 §13.12)"),
            ));
        }
        if c2s.max_depth < MIN_DEPTH {
            return Err(Violation::new(
                "c2s.max_depth",
                c2s.max_depth,
                format!("must be at least {MIN_DEPTH}"),
            ));
        }
        if c2s.max_attributes < MIN_ATTRIBUTES {
            return Err(Violation::new(
                "c2s.max_attributes",
                c2s.max_attributes,
                format!("must be at least {MIN_ATTRIBUTES}"),
            ));
        }
        if c2s.max_namespace_declarations < MIN_NAMESPACE_DECLARATIONS {
            return Err(Violation::new(
                "c2s.max_namespace_declarations",
                c2s.max_namespace_declarations,
                format!("must be at least {MIN_NAMESPACE_DECLARATIONS}"),
            ));
        }
        // Our own stored and forwarded copies are re-read under limits derived from
        // these ceilings (`Limits::for_copies`), so nothing accepted is refused later.
        let ceiling = parley_xml::Limits::CEILING;
        for (key, value, max) in [
            (
                "c2s.max_stanza_bytes",
                c2s.max_stanza_bytes,
                ceiling.max_stanza_bytes,
            ),
            ("c2s.max_depth", c2s.max_depth, ceiling.max_depth),
            ("c2s.max_attributes", c2s.max_attributes, ceiling.max_attrs),
            (
                "c2s.max_namespace_declarations",
                c2s.max_namespace_declarations,
                ceiling.max_namespace_declarations,
            ),
        ] {
            if value > max {
                return Err(Violation::new(key, value, format!("must be at most {max}")));
            }
        }
        if c2s.auth_timeout_s == 0 {
            return Err(Violation::new(
                "c2s.auth_timeout_s",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_auth_attempts == 0 {
            return Err(Violation::new(
                "c2s.max_auth_attempts",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_sasl_attempts == 0 {
            return Err(Violation::new(
                "c2s.max_sasl_attempts",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.max_stream_opens < 3 {
            return Err(Violation::new(
                "c2s.max_stream_opens",
                c2s.max_stream_opens,
                "must be at least 3: a client opens the stream, then restarts it after STARTTLS and after SASL",
            ));
        }
        for (key, value) in [
            ("c2s.resume_timeout_s", c2s.resume_timeout_s),
            ("c2s.max_resume_timeout_s", c2s.max_resume_timeout_s),
            ("c2s.sm_max_queue", c2s.sm_max_queue as u64),
            ("c2s.sm_max_queue_bytes", c2s.sm_max_queue_bytes as u64),
            ("c2s.csi_max_held", c2s.csi_max_held as u64),
            ("c2s.csi_max_held_bytes", c2s.csi_max_held_bytes as u64),
            ("c2s.sm_ack_every", u64::from(c2s.sm_ack_every)),
            ("c2s.sm_ack_delay_ms", c2s.sm_ack_delay_ms),
        ] {
            if value == 0 {
                return Err(Violation::new(key, 0, "must be greater than 0"));
            }
        }
        if c2s.ping_interval_s > 0 && c2s.ping_timeout_s == 0 {
            return Err(Violation::new(
                "c2s.ping_timeout_s",
                0,
                "must be greater than 0 while c2s.ping_interval_s is set",
            ));
        }
        self.limits.check(c2s.max_stanza_bytes)?;
        if c2s.send_queue_stanzas == 0 {
            return Err(Violation::new(
                "c2s.send_queue_stanzas",
                0,
                "must be greater than 0",
            ));
        }
        if c2s.send_queue_bytes < c2s.max_stanza_bytes {
            return Err(Violation::new(
                "c2s.send_queue_bytes",
                c2s.send_queue_bytes,
                format!(
                    "must be at least c2s.max_stanza_bytes ({}), or one stanza could never be queued",
                    c2s.max_stanza_bytes
                ),
            ));
        }
        Ok(())
    }

    fn check_tls(&self) -> Result<(), Violation> {
        match (&self.tls.cert, &self.tls.key) {
            (None, None) => Ok(()),
            (Some(cert), None) => Err(Violation::new(
                "tls.cert",
                Quoted(cert.display()),
                "tls.key is not set: set both tls.cert and tls.key, or neither for a self-signed certificate",
            )),
            (None, Some(key)) => Err(Violation::new(
                "tls.key",
                Quoted(key.display()),
                "tls.cert is not set: set both tls.cert and tls.key, or neither for a self-signed certificate",
            )),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    if let Err(e) = std::fs::metadata(path) {
                        return Err(Violation::new(
                            name,
                            Quoted(path.display()),
                            format!("cannot read: {e}"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl LimitsConfig {
    fn check(&self, max_stanza_bytes: usize) -> Result<(), Violation> {
        for (key, value) in [
            ("limits.max_connections_per_ip", self.max_connections_per_ip),
            (
                "limits.connection_rate_per_ip",
                self.connection_rate_per_ip as usize,
            ),
            (
                "limits.connection_burst_per_ip",
                self.connection_burst_per_ip as usize,
            ),
            ("limits.max_sessions", self.max_sessions),
        ] {
            if value == 0 {
                return Err(Violation::new(key, 0, "must be greater than 0"));
            }
        }
        if self.read_bytes_per_s < MIN_READ_BYTES_PER_S {
            return Err(Violation::new(
                "limits.read_bytes_per_s",
                self.read_bytes_per_s,
                format!("must be at least {MIN_READ_BYTES_PER_S}"),
            ));
        }
        if (self.read_burst_bytes as usize) < max_stanza_bytes {
            return Err(Violation::new(
                "limits.read_burst_bytes",
                self.read_burst_bytes,
                format!(
                    "must be at least c2s.max_stanza_bytes ({max_stanza_bytes}), so that one whole stanza can arrive at once"
                ),
            ));
        }
        Ok(())
    }
}

impl AuthConfig {
    /// The JWT rules and the failed-authentication limits.
    fn check_limits(&self) -> Result<(), Violation> {
        for (key, value) in [
            ("auth.jwt_audience", &self.jwt_audience),
            ("auth.jwt_issuer", &self.jwt_issuer),
        ] {
            if value.as_ref().is_some_and(|v| v.is_empty()) {
                return Err(Violation::new(
                    key,
                    "\"\"",
                    "must not be empty (leave it unset)",
                ));
            }
        }
        if !(60..=31_536_000).contains(&self.jwt_max_lifetime_s) {
            return Err(Violation::new(
                "auth.jwt_max_lifetime_s",
                self.jwt_max_lifetime_s,
                "must be from 60 to 31536000 (a year)",
            ));
        }
        if !(1..=86_400).contains(&self.failure_window_s) {
            return Err(Violation::new(
                "auth.failure_window_s",
                self.failure_window_s,
                "must be from 1 to 86400",
            ));
        }
        for (key, value) in [
            ("auth.failure_ip_refuse_after", self.failure_ip_refuse_after),
            (
                "auth.failure_account_refuse_after",
                self.failure_account_refuse_after,
            ),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(Violation::new(key, value, "must be from 1 to 1000000"));
            }
        }
        for (key, value, refuse) in [
            (
                "auth.failure_ip_delay_after",
                self.failure_ip_delay_after,
                self.failure_ip_refuse_after,
            ),
            (
                "auth.failure_account_delay_after",
                self.failure_account_delay_after,
                self.failure_account_refuse_after,
            ),
        ] {
            if value > refuse {
                return Err(Violation::new(
                    key,
                    value,
                    "must not exceed the matching *_refuse_after",
                ));
            }
        }
        if self.failure_delay_ms > 10_000 {
            return Err(Violation::new(
                "auth.failure_delay_ms",
                self.failure_delay_ms,
                "must be at most 10000",
            ));
        }
        if self.failure_max_delay_ms < self.failure_delay_ms || self.failure_max_delay_ms > 30_000 {
            return Err(Violation::new(
                "auth.failure_max_delay_ms",
                self.failure_max_delay_ms,
                "must be from auth.failure_delay_ms to 30000",
            ));
        }
        if !(1_000..=10_000_000).contains(&self.failure_table_size) {
            return Err(Violation::new(
                "auth.failure_table_size",
                self.failure_table_size,
                "must be from 1000 to 10000000",
            ));
        }
        Ok(())
    }
}

impl QuotasConfig {
    fn check(&self) -> Result<(), Violation> {
        let at_least = |key: &str, value: usize, min: usize| {
            if value < min {
                Err(Violation::new(
                    key,
                    value,
                    format!("must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least(
            "quotas.roster_groups_per_item",
            self.roster_groups_per_item,
            1,
        )?;
        at_least("quotas.roster_name_bytes", self.roster_name_bytes, 1)?;
        at_least("quotas.roster_tombstones", self.roster_tombstones, 1)?;
        at_least("quotas.blocklist_items", self.blocklist_items, 1)?;
        at_least(
            "quotas.pending_subscriptions",
            self.pending_subscriptions,
            1,
        )?;
        // A bare subscribe from a long JID is some 3 KiB; less would refuse honest ones.
        at_least(
            "quotas.subscription_request_bytes",
            self.subscription_request_bytes,
            1024,
        )?;
        at_least("quotas.directed_presence", self.directed_presence, 1)?;
        at_least(
            "quotas.resources_per_account",
            self.resources_per_account,
            1,
        )?;
        at_least("quotas.offline_bytes", self.offline_bytes, 1024)?;
        at_least("quotas.private_namespaces", self.private_namespaces, 1)?;
        Ok(())
    }
}

impl UsersConfig {
    /// `max_stanza_bytes`: the largest stanza a client may send, which must always fit.
    fn check(&self, max_stanza_bytes: usize) -> Result<(), Violation> {
        if self.mailbox_stanzas < 16 {
            return Err(Violation::new(
                "users.mailbox_stanzas",
                self.mailbox_stanzas,
                "must be at least 16",
            ));
        }
        // The mailbox counts an estimate of memory, up to a few times the wire size for a
        // stanza of many small elements: a legal stanza must fit an empty mailbox.
        let min = max_stanza_bytes.saturating_mul(4).max(65_536);
        if self.mailbox_bytes < min {
            return Err(Violation::new(
                "users.mailbox_bytes",
                self.mailbox_bytes,
                format!("must be at least {min} (4 × c2s.max_stanza_bytes)"),
            ));
        }
        if self.existence_checks == 0 {
            return Err(Violation::new(
                "users.existence_checks",
                self.existence_checks,
                "must be at least 1",
            ));
        }
        if self.absent_cache_ttl_ms > 300_000 {
            return Err(Violation::new(
                "users.absent_cache_ttl_ms",
                self.absent_cache_ttl_ms,
                "must be at most 300000 (accounts created elsewhere would stay unreachable)",
            ));
        }
        Ok(())
    }
}

/// `[log] level`: comma-separated directives, each a level (`trace`, `debug`, `info`,
/// `warn`, `error`, `off`) or `target=level`. A bare word that is not a level parses as a
/// *target* filter and would silence everything else, so it is refused here; so is anything
/// `tracing`'s own parser refuses.
pub(crate) fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |w: &str| LEVELS.contains(&w.trim().to_ascii_lowercase().as_str());
    if level.trim().is_empty() {
        return Err("must name a level: trace, debug, info, warn, error or off".to_owned());
    }
    for directive in level.split(',') {
        let directive = directive.trim();
        match directive.rsplit_once('=') {
            Some((target, lvl)) if !target.trim().is_empty() && is_level(lvl) => {}
            Some(_) => {
                return Err(format!(
                    "`{directive}` must be target=LEVEL with LEVEL one of {}",
                    LEVELS.join(", ")
                ))
            }
            None if is_level(directive) => {}
            None => {
                return Err(format!(
                    "unknown level `{directive}` (expected one of {}, or target=level \
                     directives)",
                    LEVELS.join(", ")
                ))
            }
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| format!("not a valid tracing filter directive: {e}"))
}
