//! The glue behind `parley user …` and `parley token …`: reads passwords from the terminal,
//! opens the configured storage on a small single-threaded runtime and calls
//! `parley-accounts`, the same code the admin API runs. Passwords are never printed or
//! logged.

use std::future::Future;
use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use parley_accounts::{admin, import, piefxis, tokens, AccountError, AccountJid, ImportSummary};
use parley_storage::{AccountInfo, Storage, StorageError, TokenRecord};

use super::admin_client::{self, encode, AdminCallError};
use crate::config::Config;

/// Why an account or token command failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// What the account operation said (its message names the account).
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The storage could not be opened.
    #[error("cannot open storage: {0}")]
    Open(StorageError),
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// The running server's admin API refused (its own words).
    #[error("{0}")]
    Admin(String),
}

impl From<parley_accounts::AccountJidError> for UserError {
    fn from(e: parley_accounts::AccountJidError) -> Self {
        UserError::Account(e.into())
    }
}

/// Creates `jid` with `password` (prompted for when `None`, see [`obtain_password`]).
pub fn add(config: &Config, jid: &str, password: Option<String>) -> Result<AccountJid, UserError> {
    let account = config.account_jid(jid)?;
    let password = obtain_password(password)?;
    let credentials = parley_accounts::derive_credentials(&password, config.sasl.scram_iterations)?;
    with_storage(config, |storage| async move {
        admin::create(&*storage, &account, &credentials).await?;
        Ok(account)
    })
}

/// How an account change reached the running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Through the admin API of a running node: its sessions on every node were ended.
    Live {
        /// Sessions ended.
        sessions: u64,
    },
    /// No server answered: the storage was changed directly (no live session to end on
    /// the configured node; `why` says what was tried).
    StorageOnly {
        /// Why the admin API was not used.
        why: String,
    },
}

/// Deletes `jid` and everything stored for it, ending its sessions on every node through
/// the running server's admin API; with no server running, in the storage directly.
pub fn delete(config: &Config, jid: &str) -> Result<(AccountJid, Reach), UserError> {
    let account = config.account_jid(jid)?;
    let path = format!("/api/v1/users/{}", encode(&account.to_string()));
    match admin_client::call(config, "DELETE", &path, None) {
        Ok(answer) => Ok((account, live(&answer))),
        Err(AdminCallError::Unreachable(why)) => with_storage(config, |storage| async move {
            admin::delete(&*storage, &account).await?;
            Ok((account, Reach::StorageOnly { why }))
        }),
        Err(e) => Err(admin_failure(&account, e)),
    }
}

/// Replaces the credentials of `jid` with ones for `password` (prompted for when `None`);
/// through a running server, its sessions, tokens and earlier JWTs end on every node.
pub fn passwd(
    config: &Config,
    jid: &str,
    password: Option<String>,
) -> Result<(AccountJid, Reach), UserError> {
    let account = config.account_jid(jid)?;
    let password = obtain_password(password)?;
    let path = format!("/api/v1/users/{}/password", encode(&account.to_string()));
    let body = serde_json::json!({ "password": password });
    match admin_client::call(config, "PUT", &path, Some(&body)) {
        Ok(answer) => Ok((account, live(&answer))),
        Err(AdminCallError::Unreachable(why)) => {
            let credentials =
                parley_accounts::derive_credentials(&password, config.sasl.scram_iterations)?;
            with_storage(config, |storage| async move {
                admin::set_credentials(&*storage, &account, &credentials).await?;
                Ok((account, Reach::StorageOnly { why }))
            })
        }
        Err(e) => Err(admin_failure(&account, e)),
    }
}

fn live(answer: &serde_json::Value) -> Reach {
    Reach::Live {
        sessions: answer["sessions"].as_u64().unwrap_or(0),
    }
}

/// An admin API refusal in the words the storage path would use where they mean the same.
fn admin_failure(account: &AccountJid, e: AdminCallError) -> UserError {
    match e {
        AdminCallError::Status { status: 404, .. } => UserError::Account(AccountError::account(
            "change",
            account,
            StorageError::NotFound {
                username: account.username.clone(),
                host: account.host.clone(),
            },
        )),
        e => UserError::Admin(e.to_string()),
    }
}

/// All accounts, or those of `host`, sorted by host then username.
pub fn list(config: &Config, host: Option<&str>) -> Result<Vec<AccountInfo>, UserError> {
    let host = admin::host_filter(&config.server.hosts, host)?;
    with_storage(config, |storage| async move {
        Ok(admin::list(&*storage, host.as_deref()).await?)
    })
}

/// Imports `JID PASSWORD` lines from `input`, reporting rejected lines to `errors` (see
/// [`parley_accounts::import::parse_input`]). Accounts that exist already are left out
/// before their keys are derived; derivation shows its progress on `errors` when that is a
/// terminal.
pub fn import(
    config: &Config,
    input: &mut dyn BufRead,
    errors: &mut dyn Write,
) -> Result<ImportSummary, UserError> {
    let mut parsed = import::parse_input(&config.server.hosts, input, errors)?;
    let iterations = config.sasl.scram_iterations;
    let terminal = io::stderr().is_terminal();
    with_storage(config, |storage| async move {
        let existing = import::existing(&*storage, &parsed.hosts()).await?;
        parsed.skip_existing(&existing);
        let mut progress = |done: usize, total: usize| {
            if terminal {
                let _ = write!(io::stderr(), "\rderiving keys: {done}/{total}");
            }
        };
        let prepared = import::derive(
            parsed,
            iterations,
            errors,
            &mut progress,
            Duration::from_millis(250),
        );
        if terminal {
            let _ = writeln!(io::stderr());
        }
        Ok(import::store(&*storage, &prepared).await?)
    })
}

/// Imports the XEP-0227 file or directory `path` (see [`parley_accounts::piefxis`]);
/// what is left out is reported on `errors`.
pub fn import_piefxis(
    config: &Config,
    path: &std::path::Path,
    limits: piefxis::ReadLimits,
    errors: &mut dyn Write,
) -> Result<piefxis::ImportReport, UserError> {
    let data = piefxis::read_path(path, limits)?;
    let bounds = piefxis::ImportBounds {
        scram_iterations: config.sasl.scram_iterations,
        offline_max: config.offline.max_per_user,
        offline_max_bytes: config.quotas.offline_bytes,
        private_max_namespaces: config.quotas.private_namespaces,
        roster_max_items: config.roster.max_items,
        pending_max: config.quotas.pending_subscriptions,
    };
    let hosts = config.server.hosts.clone();
    with_storage(config, |storage| async move {
        Ok(piefxis::import(&*storage, &hosts, data, bounds, errors).await?)
    })
}

/// Writes the accounts (of `host`, or all) to `file` as XEP-0227 (`-`: standard output),
/// or with `per_user` one file per account into the directory `file`.
pub fn export_piefxis(
    config: &Config,
    file: &std::path::Path,
    host: Option<&str>,
    per_user: bool,
    encoding: parley_proto::piefxis::ScramEncoding,
) -> Result<piefxis::ExportReport, UserError> {
    let host = admin::host_filter(&config.server.hosts, host)?;
    if per_user {
        let dir = file.to_owned();
        return with_storage(config, |storage| async move {
            Ok(piefxis::export_per_user(&*storage, host.as_deref(), encoding, &dir).await?)
        });
    }
    let mut out: Box<dyn Write> = if file == std::path::Path::new("-") {
        Box::new(io::BufWriter::new(io::stdout().lock()))
    } else {
        let f = std::fs::File::create(file).map_err(|source| {
            UserError::Account(AccountError::Piefxis {
                file: file.display().to_string(),
                reason: source.to_string(),
            })
        })?;
        Box::new(io::BufWriter::new(f))
    };
    with_storage(config, |storage| async move {
        Ok(piefxis::export(&*storage, host.as_deref(), encoding, &mut *out).await?)
    })
}

/// Issues a token for `jid`; returns the token string (printed once, never stored).
pub fn token_issue(
    config: &Config,
    jid: &str,
    ttl: Option<Duration>,
    purpose: &str,
) -> Result<(String, TokenRecord), UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        let issued = tokens::issue(&*storage, &account, ttl, purpose)
            .await
            .map_err(|e| AccountError::account("token issue", &account, e))?;
        Ok((issued.token, issued.record))
    })
}

/// The tokens of `jid`.
pub fn token_list(config: &Config, jid: &str) -> Result<Vec<TokenRecord>, UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        Ok(tokens::list(&*storage, &account)
            .await
            .map_err(|e| AccountError::account("token list", &account, e))?)
    })
}

/// Revokes the token with this id (or the id inside a whole token string).
pub fn token_revoke(config: &Config, id_or_token: &str) -> Result<bool, UserError> {
    let id = tokens::token_id(id_or_token);
    with_storage(config, |storage| async move {
        Ok(tokens::revoke(&*storage, &id)
            .await
            .map_err(|e| AccountError::account("token revoke", &id, e))?)
    })
}

/// Revokes every token of `jid`.
pub fn token_revoke_all(config: &Config, jid: &str) -> Result<u64, UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        Ok(tokens::revoke_all(&*storage, &account)
            .await
            .map_err(|e| AccountError::account("token revoke-all", &account, e))?)
    })
}

/// The password given on the command line, or else one read from the terminal (twice,
/// compared) or, when standard input is not a terminal, its first line.
pub fn obtain_password(given: Option<String>) -> Result<String, UserError> {
    let read_error = |source| AccountError::Read {
        what: "the password",
        source,
    };
    let password = match given {
        Some(password) => password,
        None if io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("Password: ").map_err(read_error)?;
            let again = rpassword::prompt_password("Repeat password: ").map_err(read_error)?;
            if first != again {
                return Err(AccountError::Password("the two entries differ".to_owned()).into());
            }
            first
        }
        None => {
            let mut line = String::new();
            let read = io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(read_error)?;
            if read == 0 {
                return Err(AccountError::Password(
                    "none given: use --password or write it to standard input".to_owned(),
                )
                .into());
            }
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(AccountError::Password("must not be empty".to_owned()).into());
    }
    Ok(password)
}

/// Opens the configured storage on a fresh current-thread runtime and runs `f` on it.
fn with_storage<T, F, Fut>(config: &Config, f: F) -> Result<T, UserError>
where
    F: FnOnce(Arc<dyn Storage>) -> Fut,
    Fut: Future<Output = Result<T, UserError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UserError::Runtime)?;
    let url = config.storage_url();
    runtime.block_on(async move {
        let storage = parley_storage::open(&url).await.map_err(UserError::Open)?;
        f(storage).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &std::path::Path) -> Config {
        let mut config = Config::default();
        config.server.hosts = vec!["localhost".into(), "example.org".into()];
        config.storage.url = Some(format!("sqlite://{}", dir.join("t.db").display()));
        config.sasl.scram_iterations = 4096;
        // No server in a unit test: account commands take the storage road.
        config.admin.listen = None;
        config
    }

    #[test]
    fn account_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let created = add(&config, "Alice@LocalHost", Some("pw".into())).unwrap();
        assert_eq!(created.to_string(), "alice@localhost");
        let e = add(&config, "alice@localhost", Some("pw".into())).unwrap_err();
        assert_eq!(e.to_string(), "account alice@localhost already exists");
        let (_, reach) = passwd(&config, "alice@localhost", Some("new".into())).unwrap();
        assert!(matches!(reach, Reach::StorageOnly { .. }), "{reach:?}");
        let listed = list(&config, Some("LOCALHOST")).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(list(&config, Some("example.net")).is_err());
        delete(&config, "alice@localhost").unwrap();
        let e = delete(&config, "alice@localhost").unwrap_err();
        assert_eq!(e.to_string(), "account alice@localhost does not exist");
    }

    #[test]
    fn import_skips_existing_and_counts_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        add(&config, "a@localhost", Some("x".into())).unwrap();
        // a@localhost exists: its line is left out before any key derivation, so its
        // password (a control character, which SASLprep refuses) is never even looked at.
        let input = "a@localhost bad\u{7}\nb@localhost pw\nc@example.org pw\nd@else.where pw\n";
        let mut errors = Vec::new();
        let summary = import(&config, &mut input.as_bytes(), &mut errors).unwrap();
        assert_eq!(
            summary,
            ImportSummary {
                imported: 2,
                skipped_existing: 1,
                invalid: 1
            }
        );
        assert_eq!(
            summary.to_string(),
            "imported 2, skipped 1 existing, 1 invalid"
        );
        let errors = String::from_utf8(errors).unwrap();
        assert!(errors.starts_with("line 4: "), "{errors}");
        let e = token_issue(&config, "nobody@localhost", None, "login").unwrap_err();
        assert_eq!(e.to_string(), "account nobody@localhost does not exist");
    }
}
