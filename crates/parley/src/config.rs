//! The server configuration: a TOML file (documented in `config/parley.toml`), its defaults
//! and its validation.
//!
//! Every error names the file and the dotted key it is about (and the line, when the problem
//! was found while parsing), because an operator fixing a config at 3am should not have to
//! guess which of two `listen` keys is meant.
//!
//! This file loads; `schema` holds the serde structs and their defaults, `validate` (with
//! `validate/cluster`, `trust` and `http_limits`) the rules, each naming its key, and `error`
//! the errors and the mapping of toml spans to keys and lines.

use std::path::Path;

mod error;
#[cfg(test)]
mod federation_tests;
mod http_limits;
mod mam;
mod muc;
mod pep;
mod push;
mod register;
mod schema;
#[cfg(test)]
mod tests;
mod trust;
mod upload;
mod validate;

pub use error::ConfigError;
pub use mam::MamConfig;
pub use muc::{MucConfig, MucDefaults};
pub use parley_accounts::{normalize_host, AccountJid, AccountJidError};
pub use parley_http::ConsiderSecure;
pub use parley_router::ResourceConflict;
pub use pep::PepConfig;
pub use push::PushConfig;
pub use register::{RegisterConfig, RegisterMode};
pub use schema::*;
pub use upload::{UploadConfig, UploadS3Config, UploadStore};
use validate::{Quoted, Violation};
pub use validate::{
    MIN_ATTRIBUTES, MIN_DEPTH, MIN_NAMESPACE_DECLARATIONS, MIN_READ_BYTES_PER_S,
    MIN_SCRAM_ITERATIONS, MIN_STANZA_BYTES,
};

/// What [`Config::validate`] calls the configuration when it does not know the file.
const UNNAMED_ORIGIN: &str = "configuration";
/// What errors and `check config` call the built-in defaults.
pub const EMBEDDED_ORIGIN: &str = "embedded default";

impl Config {
    /// Reads and validates the file at `path`, or returns the (validated) defaults for `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => {
                let config = Config::default();
                config.validate_in(EMBEDDED_ORIGIN)?;
                Ok(config)
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_toml_str(&text, &path.display().to_string())
            }
        }
    }

    /// Parses, normalizes and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(s: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(s).map_err(|e| error::de_error(s, origin, &e))?;
        // Hosts are compared against JID domains, which the jid crate nameprep-normalizes;
        // invalid ones are left as they are for validate to report with their key.
        for host in &mut config.server.hosts {
            if let Ok(normalized) = normalize_host(host) {
                *host = normalized;
            }
        }
        config.validate_in(origin)?;
        Ok(config)
    }

    /// Checks every rule that a type alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in(UNNAMED_ORIGIN)
    }

    fn validate_in(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|v| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: v.key,
            value: v.value,
            reason: v.reason,
        })
    }
    /// The storage URL in effect: `storage.url`, or `sqlite://{data_dir}/parley.db`.
    pub fn storage_url(&self) -> String {
        match &self.storage.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("parley.db").display()
            ),
        }
    }
    /// The storage tuning in effect (`[storage]`).
    pub fn storage_options(&self) -> parley_storage::StorageOptions {
        parley_storage::StorageOptions {
            sqlite_writer_cache_kib: self.storage.sqlite_cache_mib.saturating_mul(1024),
            sqlite_user_queue: self.storage.sqlite_user_queue,
        }
    }
    /// Parses a user-supplied account JID: bare, with a node, on one of `server.hosts`;
    /// the result is normalized (nodeprep lowercases the node, nameprep the domain).
    pub fn account_jid(&self, input: &str) -> Result<AccountJid, AccountJidError> {
        AccountJid::parse(input, &self.server.hosts)
    }

    /// Returns the normalized form of `host` if it is one of `server.hosts`.
    pub fn served_host(&self, host: &str) -> Option<String> {
        parley_accounts::served_host(&self.server.hosts, host)
    }
}
