//! Bulk import of `JID PASSWORD` lines: parsing (with line-numbered rejections that never
//! echo the password), credential derivation on every core, and storing in batches.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Accounts left out before derivation because they already existed.
    pub skipped_existing: usize,
}

/// Import lines read and checked, their credentials not yet derived (the slow part).
#[derive(Default)]
pub struct Parsed {
    entries: Vec<ImportEntry>,
    invalid: usize,
    skipped_existing: usize,
}

impl Parsed {
    /// Accounts to import.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is nothing to import.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hosts the accounts are on.
    pub fn hosts(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .map(|e| e.account.host.clone())
            .collect()
    }

    /// Leaves out the accounts `existing` holds (`(username, host)`), before any key
    /// derivation: re-running an import of a million lines costs a read, not a million
    /// PBKDF2 runs.
    pub fn skip_existing(&mut self, existing: &HashSet<(String, String)>) {
        let before = self.entries.len();
        self.entries
            .retain(|e| !existing.contains(&(e.account.username.clone(), e.account.host.clone())));
        self.skipped_existing += before - self.entries.len();
    }
}

/// Reads `JID PASSWORD` lines from `input`.
///
/// Blank lines and `#` comments are skipped; the password is the rest of the line after
/// the first run of whitespace. Invalid lines are reported to `errors` as `line N: why`
/// (never echoing the password) and skipped.
pub fn parse_input<H: AsRef<str>>(
    hosts: &[H],
    input: &mut dyn BufRead,
    errors: &mut dyn Write,
) -> Result<Parsed, AccountError> {
    let (entries, rejected) = parse(hosts, input)?;
    for (line, why) in &rejected {
        // A closed stderr must not stop the import; the count still reaches the summary.
        let _ = writeln!(errors, "line {line}: {why}");
    }
    Ok(Parsed {
        entries,
        invalid: rejected.len(),
        skipped_existing: 0,
    })
}

/// The accounts that exist on `hosts`, read a page at a time.
pub async fn existing(
    storage: &dyn Storage,
    hosts: &BTreeSet<String>,
) -> Result<HashSet<(String, String)>, AccountError> {
    const PAGE: usize = 10_000;
    let mut out = HashSet::new();
    for host in hosts {
        let mut after: Option<String> = None;
        loop {
            let page = storage
                .accounts_page(
                    Some(host),
                    after.as_deref().map(|u| (host.as_str(), u)),
                    PAGE,
                )
                .await
                .map_err(AccountError::List)?;
            let full = page.len() == PAGE;
            after = page.last().map(|a| a.username.clone());
            out.extend(page.into_iter().map(|a| (a.username, a.host)));
            if !full {
                break;
            }
        }
    }
    Ok(out)
}

/// Derives the credentials of `parsed` on every core; `progress(done, total)` is called
/// from the calling thread as derivations finish (for a progress line), at most every
/// `tick`. Lines whose password cannot be used are reported to `errors`.
pub fn derive(
    parsed: Parsed,
    iterations: u32,
    errors: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize),
    tick: std::time::Duration,
) -> Prepared {
    let mut prepared = Prepared {
        accounts: Vec::with_capacity(parsed.entries.len()),
        invalid: parsed.invalid,
        skipped_existing: parsed.skipped_existing,
    };
    for derived in derive_parallel(&parsed.entries, iterations, progress, tick) {
        match derived {
            Ok(account) => prepared.accounts.push(account),
            Err((line, why)) => {
                prepared.invalid += 1;
                let _ = writeln!(errors, "line {line}: {why}");
            }
        }
    }
    prepared
}

/// [`parse_input`] then [`derive()`], with no existing accounts left out first and no
/// progress shown.
pub fn prepare<H: AsRef<str>>(
    hosts: &[H],
    iterations: u32,
    input: &mut dyn BufRead,
    errors: &mut dyn Write,
) -> Result<Prepared, AccountError> {
    let parsed = parse_input(hosts, input, errors)?;
    Ok(derive(
        parsed,
        iterations,
        errors,
        &mut |_, _| {},
        std::time::Duration::from_secs(3600),
    ))
}

/// Stores prepared accounts in batches of [`IMPORT_BATCH`]; existing accounts are left
/// alone (an account created since the check is skipped here).
pub async fn store(
    storage: &dyn Storage,
    prepared: &Prepared,
) -> Result<ImportSummary, AccountError> {
    let mut stored = ImportSummary {
        invalid: prepared.invalid,
        skipped_existing: prepared.skipped_existing,
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
/// Results keep the input order. The calling thread reports progress meanwhile.
fn derive_parallel(
    entries: &[ImportEntry],
    iterations: u32,
    progress: &mut dyn FnMut(usize, usize),
    tick: std::time::Duration,
) -> Vec<Result<NewAccount, Rejection>> {
    if entries.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(entries.len());
    let chunk = entries.len().div_ceil(workers);
    let done = AtomicUsize::new(0);
    let (finished, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|chunk| {
                let done = &done;
                let finished = finished.clone();
                scope.spawn(move || {
                    let out = chunk
                        .iter()
                        .map(|entry| {
                            let r = derive_credentials(&entry.password, iterations)
                                .map(|credentials| NewAccount {
                                    username: entry.account.username.clone(),
                                    host: entry.account.host.clone(),
                                    credentials,
                                })
                                .map_err(|e| (entry.line, format!("`{}`: {e}", entry.account)));
                            done.fetch_add(1, Ordering::Relaxed);
                            r
                        })
                        .collect::<Vec<_>>();
                    // Dropping the sender tells the waiting thread one worker is through.
                    drop(finished);
                    out
                })
            })
            .collect();
        drop(finished);
        // Every worker's sender gone: the channel disconnects and the loop ends.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(tick) {
            progress(done.load(Ordering::Relaxed), entries.len());
        }
        progress(entries.len(), entries.len());
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
        let mut calls = 0;
        let derived = derive_parallel(
            &entries,
            4096,
            &mut |done, total| {
                calls += 1;
                assert!(done <= total && total == 9);
            },
            std::time::Duration::from_secs(3600),
        );
        assert_eq!(calls, 1, "the last call, when every worker is done");
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
        let mut parsed = parse_input(&HOSTS, &mut input.as_bytes(), &mut errors).unwrap();
        let existing = existing(&*storage, &parsed.hosts()).await.unwrap();
        parsed.skip_existing(&existing);
        assert_eq!(parsed.len(), 2, "a@localhost left out before derivation");
        let prepared = derive(
            parsed,
            4096,
            &mut errors,
            &mut |_, _| {},
            std::time::Duration::from_secs(3600),
        );
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
