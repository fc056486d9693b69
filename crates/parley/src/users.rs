//! Account administration behind `parley user …`: add, delete, change password, list and
//! bulk import.
//!
//! These run outside the server, straight against the storage named by the config, on a
//! small single-threaded tokio runtime. Passwords only ever exist here long enough to
//! derive SCRAM credentials (SHA-1 and SHA-256, `sasl.scram_iterations`); they are never
//! printed or logged, not even when a line of an import is rejected.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::sync::Arc;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use parley_storage::{AccountInfo, NewAccount, Storage, StorageError};

use crate::config::{AccountJid, AccountJidError, Config};

/// Accounts handed to [`Storage::import_accounts`] per call: large enough to amortize a
/// transaction, small enough that one failing batch loses little work.
pub const IMPORT_BATCH: usize = 1000;

/// Why an account command failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The JID is not an account of this server.
    #[error(transparent)]
    Jid(#[from] AccountJidError),
    /// `user list --host` named a host that is not served.
    #[error("host `{host}` is not in [server] hosts ({hosts})")]
    UnknownHost {
        /// The host given.
        host: String,
        /// The configured hosts, comma-separated.
        hosts: String,
    },
    /// The storage could not be opened.
    #[error("cannot open storage: {0}")]
    Open(StorageError),
    /// A storage operation on one account failed.
    #[error("{}", account_failure(action, jid, source))]
    Account {
        /// What was being done, e.g. `add`.
        action: &'static str,
        /// The normalized account.
        jid: String,
        /// What the store said.
        source: StorageError,
    },
    /// Listing accounts failed.
    #[error("cannot list accounts: {0}")]
    List(StorageError),
    /// A batch of an import failed; earlier batches are stored.
    #[error("import stopped after {created} accounts were created: {source}")]
    Import {
        /// Accounts created before the failure.
        created: usize,
        /// What the store said.
        source: StorageError,
    },
    /// The password cannot be used (empty, mismatched, rejected by SASLprep).
    #[error("password: {0}")]
    Password(String),
    /// Standard input or the terminal could not be read.
    #[error("cannot read {what}: {source}")]
    Read {
        /// `the password` or `the import input`.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
}

/// The store's own messages already name the account for the common cases.
fn account_failure(action: &str, jid: &str, source: &StorageError) -> String {
    match source {
        StorageError::AlreadyExists { .. } | StorageError::NotFound { .. } => source.to_string(),
        _ => format!("cannot {action} {jid}: {source}"),
    }
}

/// The outcome of [`import`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Accounts created.
    pub imported: usize,
    /// Accounts that already existed and were left untouched.
    pub skipped_existing: usize,
    /// Input lines rejected (each reported with its line number).
    pub invalid: usize,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {}, skipped {} existing, {} invalid",
            self.imported, self.skipped_existing, self.invalid
        )
    }
}

/// Creates `jid` with `password` (prompted for when `None`, see [`obtain_password`]).
pub fn add(config: &Config, jid: &str, password: Option<String>) -> Result<AccountJid, UserError> {
    let account = config.account_jid(jid)?;
    let password = obtain_password(password)?;
    let credentials = derive_credentials(&password, config.sasl.scram_iterations)?;
    with_storage(config, |storage| async move {
        storage
            .create_account(&account.username, &account.host, &credentials)
            .await
            .map_err(|source| UserError::Account {
                action: "add",
                jid: account.to_string(),
                source,
            })?;
        tracing::info!(jid = %account, "account created");
        Ok(account)
    })
}

/// Deletes `jid` and its credentials.
pub fn delete(config: &Config, jid: &str) -> Result<AccountJid, UserError> {
    let account = config.account_jid(jid)?;
    with_storage(config, |storage| async move {
        storage
            .delete_account(&account.username, &account.host)
            .await
            .map_err(|source| UserError::Account {
                action: "delete",
                jid: account.to_string(),
                source,
            })?;
        tracing::info!(jid = %account, "account deleted");
        Ok(account)
    })
}

/// Replaces the credentials of `jid` with ones for `password` (prompted for when `None`).
pub fn passwd(
    config: &Config,
    jid: &str,
    password: Option<String>,
) -> Result<AccountJid, UserError> {
    let account = config.account_jid(jid)?;
    let password = obtain_password(password)?;
    let credentials = derive_credentials(&password, config.sasl.scram_iterations)?;
    with_storage(config, |storage| async move {
        storage
            .set_credentials(&account.username, &account.host, &credentials)
            .await
            .map_err(|source| UserError::Account {
                action: "change the password of",
                jid: account.to_string(),
                source,
            })?;
        tracing::info!(jid = %account, "password changed");
        Ok(account)
    })
}

/// All accounts, or those of `host`, sorted by host then username.
pub fn list(config: &Config, host: Option<&str>) -> Result<Vec<AccountInfo>, UserError> {
    let host = host
        .map(|h| {
            config.served_host(h).ok_or_else(|| UserError::UnknownHost {
                host: h.to_owned(),
                hosts: config.server.hosts.join(", "),
            })
        })
        .transpose()?;
    with_storage(config, |storage| async move {
        storage
            .list_accounts(host.as_deref())
            .await
            .map_err(UserError::List)
    })
}

/// Imports `JID PASSWORD` lines from `input`.
///
/// Blank lines and `#` comments are skipped; the password is the rest of the line after
/// the first run of whitespace. Invalid lines are reported to `errors` as `line N: why`
/// (never echoing the password) and skipped; the rest are imported. Credentials are
/// derived on every core, then stored in batches of [`IMPORT_BATCH`].
pub fn import(
    config: &Config,
    input: &mut dyn BufRead,
    errors: &mut dyn Write,
) -> Result<ImportSummary, UserError> {
    let mut summary = ImportSummary::default();
    let mut report = |line: usize, why: &dyn std::fmt::Display| {
        summary.invalid += 1;
        // A closed stderr must not stop the import; the count still reaches the summary.
        let _ = writeln!(errors, "line {line}: {why}");
    };

    let (entries, rejected) = parse_import(config, input)?;
    for (line, why) in &rejected {
        report(*line, why);
    }
    let iterations = config.sasl.scram_iterations;
    let mut accounts = Vec::with_capacity(entries.len());
    for derived in derive_parallel(&entries, iterations) {
        match derived {
            Ok(account) => accounts.push(account),
            Err((line, why)) => report(line, &why),
        }
    }
    drop(entries);

    let stored = with_storage(config, |storage| async move {
        let mut stored = ImportSummary::default();
        for batch in accounts.chunks(IMPORT_BATCH) {
            let result =
                storage
                    .import_accounts(batch)
                    .await
                    .map_err(|source| UserError::Import {
                        created: stored.imported,
                        source,
                    })?;
            stored.imported += result.created;
            stored.skipped_existing += result.skipped_existing;
        }
        tracing::info!(
            created = stored.imported,
            skipped_existing = stored.skipped_existing,
            "accounts imported"
        );
        Ok(stored)
    })?;
    summary.imported = stored.imported;
    summary.skipped_existing = stored.skipped_existing;
    Ok(summary)
}

/// A parsed import line, its credentials not yet derived.
struct ImportEntry {
    line: usize,
    account: AccountJid,
    password: String,
}

/// A rejected input line: its 1-based number and why (never containing the password).
type Rejection = (usize, String);

/// Splits the input into valid entries and rejections.
fn parse_import(
    config: &Config,
    input: &mut dyn BufRead,
) -> Result<(Vec<ImportEntry>, Vec<Rejection>), UserError> {
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    let mut first_seen: HashMap<AccountJid, usize> = HashMap::new();
    let mut raw = Vec::new();
    let mut line = 0;
    loop {
        raw.clear();
        let read = input
            .read_until(b'\n', &mut raw)
            .map_err(|source| UserError::Read {
                what: "the import input",
                source,
            })?;
        if read == 0 {
            break;
        }
        line += 1;
        let Ok(text) = std::str::from_utf8(&raw) else {
            rejected.push((line, "not valid UTF-8".to_owned()));
            continue;
        };
        let text = text.trim_end_matches(['\n', '\r']).trim_start();
        if text.trim_end().is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((jid, password)) = text.split_once(char::is_whitespace) else {
            rejected.push((
                line,
                format!("`{text}`: no password (expected `JID PASSWORD`)"),
            ));
            continue;
        };
        let password = password.trim_start();
        if password.is_empty() {
            rejected.push((
                line,
                format!("`{jid}`: no password (expected `JID PASSWORD`)"),
            ));
            continue;
        }
        let account = match config.account_jid(jid) {
            Ok(account) => account,
            Err(e) => {
                rejected.push((line, e.to_string()));
                continue;
            }
        };
        if let Some(first) = first_seen.get(&account) {
            rejected.push((line, format!("`{account}` already appears on line {first}")));
            continue;
        }
        first_seen.insert(account.clone(), line);
        entries.push(ImportEntry {
            line,
            account,
            password: password.to_owned(),
        });
    }
    Ok((entries, rejected))
}

/// Derives the credentials of every entry, spreading the PBKDF2 work over all cores.
/// Results keep the input order.
fn derive_parallel(entries: &[ImportEntry], iterations: u32) -> Vec<Result<NewAccount, Rejection>> {
    if entries.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(entries.len());
    let chunk = entries.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|entry| {
                            derive_credentials(&entry.password, iterations)
                                .map(|credentials| NewAccount {
                                    username: entry.account.username.clone(),
                                    host: entry.account.host.clone(),
                                    credentials,
                                })
                                .map_err(|e| (entry.line, format!("`{}`: {e}", entry.account)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// SCRAM-SHA-1 and SCRAM-SHA-256 credentials for `password`, so that clients offering
/// either mechanism can log in.
pub fn derive_credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<ScramCredentials>, UserError> {
    if password.is_empty() {
        return Err(UserError::Password("must not be empty".to_owned()));
    }
    [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|hash| {
            ScramCredentials::generate(hash, password, iterations).map_err(|_| {
                UserError::Password(
                    "contains characters that SASLprep (RFC 4013) prohibits".to_owned(),
                )
            })
        })
        .collect()
}

/// The password given on the command line, or else one read from the terminal (twice,
/// compared) or, when standard input is not a terminal, its first line.
pub fn obtain_password(given: Option<String>) -> Result<String, UserError> {
    let read_error = |source| UserError::Read {
        what: "the password",
        source,
    };
    let password = match given {
        Some(password) => password,
        None if io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("Password: ").map_err(read_error)?;
            let again = rpassword::prompt_password("Repeat password: ").map_err(read_error)?;
            if first != again {
                return Err(UserError::Password("the two entries differ".to_owned()));
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
                return Err(UserError::Password(
                    "none given: use --password or write it to standard input".to_owned(),
                ));
            }
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(UserError::Password("must not be empty".to_owned()));
    }
    Ok(password)
}

/// Opens the configured storage on a fresh current-thread runtime and runs `f` on it.
pub(crate) fn with_storage<T, F, Fut>(config: &Config, f: F) -> Result<T, UserError>
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
        config
    }

    #[test]
    fn import_line_format() {
        let config = config_in(std::path::Path::new("/unused"));
        let input: &[u8] = b"# comment\n\n  alice@localhost  two words \r\nbob@localhost\n\
                     carol@nowhere.test pw\nALICE@localhost again\n\xff\n";
        let (entries, rejected) = parse_import(&config, &mut &input[..]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[0].account.to_string(), "alice@localhost");
        assert_eq!(entries[0].password, "two words ");
        let lines: Vec<usize> = rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6, 7]);
        assert!(rejected[0].1.contains("no password"), "{:?}", rejected[0]);
        assert!(rejected[1]
            .1
            .contains("host `nowhere.test` is not in [server] hosts"));
        assert!(rejected[2].1.contains("already appears on line 3"));
        assert!(rejected[3].1.contains("UTF-8"));
    }

    #[test]
    fn rejected_lines_never_echo_the_password() {
        let config = config_in(std::path::Path::new("/unused"));
        let input = "carol@nowhere.test s3cret-pw\nalice@localhost/res s3cret-pw\n";
        let (_, rejected) = parse_import(&config, &mut input.as_bytes()).unwrap();
        assert_eq!(rejected.len(), 2);
        for (_, why) in rejected {
            assert!(!why.contains("s3cret"), "{why}");
        }
    }

    /// RFC 5802 / RFC 7677: both SCRAM-SHA-1 and SCRAM-SHA-256 credentials are stored.
    #[test]
    fn rfc7677_credentials_for_both_hashes() {
        let credentials = derive_credentials("pencil", 4096).unwrap();
        let hashes: Vec<ScramHash> = credentials.iter().map(|c| c.hash).collect();
        assert_eq!(hashes, [ScramHash::Sha1, ScramHash::Sha256]);
        assert!(credentials.iter().all(|c| c.iterations == 4096));
        assert!(credentials[1].verify_password("pencil"));
    }

    /// RFC 4013 §2.3: SASLprep prohibits control characters, so such passwords are refused.
    #[test]
    fn rfc4013_prohibited_password_is_refused() {
        let e = derive_credentials("bad\u{7}bell", 4096).unwrap_err();
        assert!(e.to_string().contains("SASLprep"), "{e}");
        assert!(derive_credentials("", 4096).is_err());
    }

    #[test]
    fn parallel_derivation_keeps_order_and_reports_lines() {
        let config = config_in(std::path::Path::new("/unused"));
        let input: String = (0..9)
            .map(|i| {
                if i == 4 {
                    format!("u{i}@localhost bad\u{7}\n")
                } else {
                    format!("u{i}@localhost pw{i}\n")
                }
            })
            .collect();
        let (entries, _) = parse_import(&config, &mut input.as_bytes()).unwrap();
        let derived = derive_parallel(&entries, 4096);
        assert_eq!(derived.len(), 9);
        for (i, result) in derived.iter().enumerate() {
            match result {
                Ok(account) => {
                    assert_eq!(account.username, format!("u{i}"));
                    assert_eq!(account.credentials.len(), 2);
                }
                Err((line, why)) => {
                    assert_eq!((i, *line), (4, 5));
                    assert!(why.starts_with("`u4@localhost`:"), "{why}");
                }
            }
        }
    }

    #[test]
    fn account_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let created = add(&config, "Alice@LocalHost", Some("pw".into())).unwrap();
        assert_eq!(created.to_string(), "alice@localhost");
        let e = add(&config, "alice@localhost", Some("pw".into())).unwrap_err();
        assert_eq!(e.to_string(), "account alice@localhost already exists");
        passwd(&config, "alice@localhost", Some("new".into())).unwrap();
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
        let input = "a@localhost pw\nb@localhost pw\nc@example.org pw\nd@else.where pw\n";
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
    }
}
