//! Bulk import of `JID PASSWORD` lines: parsing (with line-numbered rejections that never
//! echo the password), credential derivation on every core, and storing in batches.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::num::NonZeroUsize;

use parley_storage::{NewAccount, Storage};

use crate::account::AccountJid;
use crate::credentials::derive_credentials;
use crate::AccountError;

/// Accounts handed to [`Storage::import_accounts`] per call: large enough to amortize a
/// transaction, small enough that one failing batch loses little work.
pub const IMPORT_BATCH: usize = 1000;

/// The outcome of an import.
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

/// Accounts ready to store, their credentials derived.
#[derive(Debug, Default)]
pub struct Prepared {
    /// In input order.
    pub accounts: Vec<NewAccount>,
    /// Lines rejected (already reported).
    pub invalid: usize,
}

/// Reads `JID PASSWORD` lines from `input` and derives their credentials.
///
/// Blank lines and `#` comments are skipped; the password is the rest of the line after
/// the first run of whitespace. Invalid lines are reported to `errors` as `line N: why`
/// (never echoing the password) and skipped. Credentials are derived on every core; this
/// is the slow part, done before any store is opened.
pub fn prepare<H: AsRef<str>>(
    hosts: &[H],
    iterations: u32,
    input: &mut dyn BufRead,
    errors: &mut dyn Write,
) -> Result<Prepared, AccountError> {
    let mut invalid = 0;
    let mut report = |line: usize, why: &dyn std::fmt::Display| {
        invalid += 1;
        // A closed stderr must not stop the import; the count still reaches the summary.
        let _ = writeln!(errors, "line {line}: {why}");
    };
    let (entries, rejected) = parse(hosts, input)?;
    for (line, why) in &rejected {
        report(*line, why);
    }
    let mut accounts = Vec::with_capacity(entries.len());
    for derived in derive_parallel(&entries, iterations) {
        match derived {
            Ok(account) => accounts.push(account),
            Err((line, why)) => report(line, &why),
        }
    }
    Ok(Prepared { accounts, invalid })
}

/// Stores prepared accounts in batches of [`IMPORT_BATCH`]; existing accounts are left
/// alone. The summary's `invalid` is the prepared count.
pub async fn store(
    storage: &dyn Storage,
    prepared: &Prepared,
) -> Result<ImportSummary, AccountError> {
    let mut stored = ImportSummary {
        invalid: prepared.invalid,
        ..ImportSummary::default()
    };
    for batch in prepared.accounts.chunks(IMPORT_BATCH) {
        let result =
            storage
                .import_accounts(batch)
                .await
                .map_err(|source| AccountError::Import {
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
fn parse<H: AsRef<str>>(
    hosts: &[H],
    input: &mut dyn BufRead,
) -> Result<(Vec<ImportEntry>, Vec<Rejection>), AccountError> {
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    let mut first_seen: HashMap<AccountJid, usize> = HashMap::new();
    let mut raw = Vec::new();
    let mut line = 0;
    loop {
        raw.clear();
        let read = input
            .read_until(b'\n', &mut raw)
            .map_err(|source| AccountError::Read {
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
        let account = match AccountJid::parse(jid, hosts) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: [&str; 2] = ["localhost", "example.org"];

    #[test]
    fn import_line_format() {
        let input: &[u8] = b"# comment\n\n  alice@localhost  two words \r\nbob@localhost\n\
                     carol@nowhere.test pw\nALICE@localhost again\n\xff\n";
        let (entries, rejected) = parse(&HOSTS, &mut &input[..]).unwrap();
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
        let input = "carol@nowhere.test s3cret-pw\nalice@localhost/res s3cret-pw\n";
        let (_, rejected) = parse(&HOSTS, &mut input.as_bytes()).unwrap();
        assert_eq!(rejected.len(), 2);
        for (_, why) in rejected {
            assert!(!why.contains("s3cret"), "{why}");
        }
    }

    #[test]
    fn parallel_derivation_keeps_order_and_reports_lines() {
        let input: String = (0..9)
            .map(|i| {
                if i == 4 {
                    format!("u{i}@localhost bad\u{7}\n")
                } else {
                    format!("u{i}@localhost pw{i}\n")
                }
            })
            .collect();
        let (entries, _) = parse(&HOSTS, &mut input.as_bytes()).unwrap();
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

    #[tokio::test]
    async fn import_skips_existing_and_counts_invalid() {
        let storage = parley_storage::open("sqlite::memory:").await.unwrap();
        let a = AccountJid::parse("a@localhost", &HOSTS).unwrap();
        let creds = derive_credentials("x", 4096).unwrap();
        crate::admin::create(&*storage, &a, &creds).await.unwrap();
        let input = "a@localhost pw\nb@localhost pw\nc@example.org pw\nd@else.where pw\n";
        let mut errors = Vec::new();
        let prepared = prepare(&HOSTS, 4096, &mut input.as_bytes(), &mut errors).unwrap();
        let summary = store(&*storage, &prepared).await.unwrap();
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
