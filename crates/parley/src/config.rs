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
mod layers;
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
    /// Reads and validates the file at `path` (or the defaults for `None`) with the
    /// environment's overrides (`PARLEY_SECTION__KEY`, see `config/layers.rs`).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with the given environment.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env = layers::env_overrides(vars);
        match path {
            None if env.is_empty() => {
                let config = Config::default();
                config.validate_in(EMBEDDED_ORIGIN)?;
                Ok(config)
            }
            None => Config::from_layers("", EMBEDDED_ORIGIN, &env),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_layers(&text, &path.display().to_string(), &env)
            }
        }
    }

    /// The config file to use without `--config`: `$PARLEY_CONFIG`, else `./parley.toml`,
    /// else `/etc/parley/parley.toml`, the first that is set or exists; None: the embedded
    /// defaults.
    pub fn default_path() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("PARLEY_CONFIG").filter(|p| !p.is_empty()) {
            return Some(p.into());
        }
        ["parley.toml", "/etc/parley/parley.toml"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
    }

    /// The file's text with the environment and secret-file layers over it. Errors about
    /// what the file says keep its line numbers; those about a variable name it.
    fn from_layers(
        text: &str,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        if env.is_empty() && !layers::mentions_secret_file(text) {
            return Config::from_toml_str(text, origin);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| error::de_error(text, origin, &e))?;
        let provenance = layers::apply(&mut table, origin, env)?;
        let layered = toml::to_string(&table).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: 1,
            message: e.to_string(),
        })?;
        Config::from_toml_str(&layered, origin).map_err(|e| remap(e, text, &provenance))
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
            sqlite_archive_log_rows: self.storage.sqlite_archive_log_rows,
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

/// An error about the layered text, told against what the user wrote: a key a variable set
/// names the variable; a key of the file gets its line in the file.
fn remap(e: ConfigError, text: &str, provenance: &layers::Provenance) -> ConfigError {
    let var_of = |key: &str| {
        provenance
            .env
            .iter()
            .find(|(k, _)| {
                k.as_str() == key
                    || k.starts_with(&format!("{key}."))
                    || key.starts_with(&format!("{k}."))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
    };
    match e {
        ConfigError::UnknownKey {
            ref key, ref hint, ..
        } => match var_of(key) {
            Some((dotted, var)) => ConfigError::Env {
                var,
                key: dotted,
                message: format!("unknown key `{key}`{hint}"),
            },
            None => match e {
                ConfigError::UnknownKey {
                    origin,
                    key,
                    line,
                    hint,
                } => ConfigError::UnknownKey {
                    line: error::line_of_key(text, &key).unwrap_or(line),
                    origin,
                    key,
                    hint,
                },
                other => other,
            },
        },
        ConfigError::BadValue {
            origin,
            key,
            line,
            message,
        } => match var_of(&key) {
            Some((dotted, var)) => ConfigError::Env {
                var,
                key: dotted,
                message,
            },
            None => ConfigError::BadValue {
                line: error::line_of_key(text, &key).unwrap_or(line),
                origin,
                key,
                message,
            },
        },
        ConfigError::Invalid {
            origin,
            key,
            value,
            reason,
        } => match var_of(&key) {
            Some((_, var)) => ConfigError::Env {
                var,
                key,
                message: format!("{value}: {reason}"),
            },
            None => ConfigError::Invalid {
                origin,
                key,
                value,
                reason,
            },
        },
        other => other,
    }
}
