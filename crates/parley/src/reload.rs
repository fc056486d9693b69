//! What SIGHUP changes while the server runs.
//!
//! * The TLS certificate and key (`[tls] cert`, `key`, or the self-signed pair in the data
//!   directory), for the client and server ports. Certificates are renewed every few weeks
//!   (ACME); a reload must not cost anyone their session, so only connections accepted
//!   afterwards get the new pair, each keeping the one it started with
//!   ([`parley_transport::TlsCell`]). A pair that does not load leaves the old one in place,
//!   and the log says why.
//! * From the config file, read again: `[log] level` (unless `RUST_LOG` set it), the
//!   connection limits (`[limits] max_connections_per_ip`, `connection_rate_per_ip`,
//!   `connection_burst_per_ip`, `max_sessions`: open connections stay, and count against
//!   the new limits) and the web listener's `[http] origins`. A file that does not load
//!   changes nothing.
//! * Every other setting is read once at start: a section that changed in the file is named
//!   in a warning ("applies at the next start"), so a reload never silently ignores an edit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use parley_http::web_state::WebState;
use parley_session::limits::{ConnLimiter, ConnLimits};
use parley_transport::{TlsCell, TlsSetup};
use tracing::{info, warn};

use crate::config::Config;

/// How to load the certificate again, the limiter the connection limits go to, and the
/// settings in force.
#[derive(Debug)]
pub struct Reload {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    data_dir: PathBuf,
    hosts: Vec<String>,
    /// `[s2s] ca_file`, for the server ports' variant.
    ca_file: Option<PathBuf>,
    c2s: Arc<TlsCell>,
    s2s: Option<Arc<TlsCell>>,
    limiter: Arc<ConnLimiter>,
    /// The web listener, when it runs (its allowed origins).
    web: OnceLock<Arc<WebState>>,
    /// The config as it is in force: the start's, with what reloads applied since.
    running: Mutex<Config>,
}

impl Reload {
    /// The reload of what `config` loaded into `c2s` (and `s2s`, when federation is on),
    /// and of the limits `limiter` enforces.
    pub fn new(
        config: &Config,
        c2s: Arc<TlsCell>,
        s2s: Option<Arc<TlsCell>>,
        limiter: Arc<ConnLimiter>,
    ) -> Reload {
        Reload {
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
            data_dir: config.server.data_dir.clone(),
            hosts: config.server.hosts.clone(),
            ca_file: config.s2s.ca_file.clone(),
            c2s,
            s2s,
            limiter,
            web: OnceLock::new(),
            running: Mutex::new(config.clone()),
        }
    }

    /// The web listener whose `[http] origins` a reload replaces.
    pub fn set_web(&self, web: Arc<WebState>) {
        let _ = self.web.set(web);
    }

    /// Everything a SIGHUP does: the certificate, then the settings of the config file at
    /// `path` (the default file when None), each outcome logged.
    pub fn on_sighup(&self, path: Option<&Path>) {
        match self.reload() {
            Ok(()) => info!("SIGHUP: certificate reloaded; new connections use it"),
            Err(e) => warn!(error = %e, "SIGHUP: certificate not reloaded; the old one stays"),
        }
        match Config::load(path) {
            Ok(new) => self.apply(&new),
            Err(e) => warn!(
                error = %e,
                "SIGHUP: the config does not load; its settings stay as they were"
            ),
        }
    }

    /// Loads the pair again and hands it to new connections; on any error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let setup = TlsSetup::load(
            self.cert.as_deref(),
            self.key.as_deref(),
            &self.data_dir,
            &self.hosts,
        )
        .map_err(|e| format!("tls: {e}"))?;
        let servers = match &self.s2s {
            Some(_) => Some(
                setup
                    .for_servers(self.ca_file.as_deref())
                    .map_err(|e| format!("s2s.ca_file: {e}"))?,
            ),
            None => None,
        };
        if let (Some(cell), Some(servers)) = (&self.s2s, servers) {
            cell.replace(servers);
        }
        self.c2s.replace(setup);
        Ok(())
    }

    /// Applies what can change of `new` and names what cannot.
    fn apply(&self, new: &Config) {
        let mut running = self.running.lock();
        if new.log.level != running.log.level {
            match crate::cli::reload_log_level(&new.log.level) {
                Ok(true) => {
                    info!(level = %new.log.level, "SIGHUP: log level applied");
                    running.log.level.clone_from(&new.log.level);
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "SIGHUP: log level not applied"),
            }
        }
        let limits = conn_limits(new);
        if limits != conn_limits(&running) {
            self.limiter.set_limits(limits);
            running.limits.max_connections_per_ip = new.limits.max_connections_per_ip;
            running.limits.connection_rate_per_ip = new.limits.connection_rate_per_ip;
            running.limits.connection_burst_per_ip = new.limits.connection_burst_per_ip;
            running.limits.max_sessions = new.limits.max_sessions;
            info!(
                max_connections_per_ip = limits.max_per_ip,
                connection_rate_per_ip = limits.rate_per_ip,
                connection_burst_per_ip = limits.burst_per_ip,
                max_sessions = limits.max_sessions,
                "SIGHUP: connection limits applied"
            );
        }
        if new.http.origins != running.http.origins {
            if let Some(web) = self.web.get() {
                web.set_origins(new.http.origins.clone());
                running.http.origins.clone_from(&new.http.origins);
                info!(origins = ?new.http.origins, "SIGHUP: [http] origins applied");
            }
        }
        let later = needs_restart(&running, new);
        if !later.is_empty() {
            warn!(
                sections = %later.join(", "),
                "SIGHUP: changed in the config file; applies at the next start"
            );
        }
    }
}

/// The connection limits of `config`'s `[limits]`.
pub fn conn_limits(config: &Config) -> ConnLimits {
    ConnLimits {
        max_per_ip: config.limits.max_connections_per_ip,
        rate_per_ip: config.limits.connection_rate_per_ip,
        burst_per_ip: config.limits.connection_burst_per_ip,
        max_sessions: config.limits.max_sessions,
    }
}

/// The sections of `new` that differ from `running` in settings a reload does not apply.
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    // What a reload applies is taken as it runs, so only the rest can differ.
    let mut rest = new.clone();
    rest.log.level.clone_from(&running.log.level);
    rest.limits.max_connections_per_ip = running.limits.max_connections_per_ip;
    rest.limits.connection_rate_per_ip = running.limits.connection_rate_per_ip;
    rest.limits.connection_burst_per_ip = running.limits.connection_burst_per_ip;
    rest.limits.max_sessions = running.limits.max_sessions;
    rest.http.origins.clone_from(&running.http.origins);
    rest.faults = running.faults.clone();
    let mut changed = Vec::new();
    macro_rules! sections {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if rest.$field != running.$field {
                changed.push($name);
            })*
        };
    }
    sections!(
        server => "[server]", c2s => "[c2s]", tls => "[tls]", sasl => "[sasl]",
        roster => "[roster]", offline => "[offline]", quotas => "[quotas]", users => "[users]",
        admin => "[admin]", http => "[http]", auth => "[auth]", storage => "[storage]",
        log => "[log]", limits => "[limits]", cluster => "[cluster]",
        component => "[component]", s2s => "[s2s]",
        external_services => "[external_services]", mam => "[mam]", pep => "[pep]",
        register => "[register]", push => "[push]", upload => "[upload]", muc => "[muc]",
    );
    if changed.is_empty() && rest != *running {
        // A section this list does not name yet.
        changed.push("other settings");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml, "t.toml").unwrap()
    }

    /// What a reload applies is not reported as waiting for a restart; the rest is, by
    /// section.
    #[test]
    fn a_reload_names_the_sections_it_cannot_apply() {
        let running = config("[limits]\nmax_connections_per_ip = 5\n");
        let same_but_reloadable = config(
            "[limits]\nmax_connections_per_ip = 9\nmax_sessions = 7\n[log]\nlevel = \"debug\"\n",
        );
        assert!(needs_restart(&running, &same_but_reloadable).is_empty());
        let more = config(
            "[limits]\nmax_connections_per_ip = 5\nread_bytes_per_s = 300000\n\
             [c2s]\nmax_stanza_bytes = 100000\n[muc]\nenabled = false\n",
        );
        assert_eq!(
            needs_restart(&running, &more),
            vec!["[c2s]", "[limits]", "[muc]"]
        );
    }
}
