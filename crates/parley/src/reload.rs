//! What SIGHUP changes while the server runs: the TLS certificate and key (`[tls] cert`,
//! `key`, or the self-signed pair in the data directory), for the client and server ports.
//! Certificates are renewed every few weeks (ACME); a reload must not cost anyone their
//! session, so only connections accepted afterwards get the new pair, each keeping the one it
//! started with ([`parley_transport::TlsCell`]). A pair that does not load leaves the old one
//! in place, and the log says why.
//!
//! The same SIGHUP re-reads the config file and applies its `[log] level` (`cli.rs`,
//! `reload_log_level`); the other settings are read once at start.

use std::path::PathBuf;
use std::sync::Arc;

use parley_transport::{TlsCell, TlsSetup};

/// How to load the pair again, and the cells the listeners take it from.
#[derive(Debug)]
pub struct TlsReload {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    data_dir: PathBuf,
    hosts: Vec<String>,
    /// `[s2s] ca_file`, for the server ports' variant.
    ca_file: Option<PathBuf>,
    c2s: Arc<TlsCell>,
    s2s: Option<Arc<TlsCell>>,
}

impl TlsReload {
    /// The reload of what `config` loaded into `c2s` (and `s2s`, when federation is on).
    pub fn new(
        config: &crate::config::Config,
        c2s: Arc<TlsCell>,
        s2s: Option<Arc<TlsCell>>,
    ) -> TlsReload {
        TlsReload {
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
            data_dir: config.server.data_dir.clone(),
            hosts: config.server.hosts.clone(),
            ca_file: config.s2s.ca_file.clone(),
            c2s,
            s2s,
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
}
