//! XEP-0227 (PIEFXIS) import and export: accounts with their SCRAM credentials, rosters,
//! vCards, private XML and offline messages, to move users from Prosody, ejabberd and other
//! servers, or away from Parley. Behind `parley user import --piefxis` and
//! `parley user export`.
//!
//! Reading follows a file's XInclude `href`s only to plain file names in its own directory
//! (checked in `parley_proto::piefxis`), reads each file once, and bounds every file's size
//! and the number of files ([`ReadLimits`]). An import never touches an account that exists
//! already, nor a host the server does not serve: each is reported and counted.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use parley_proto::piefxis::{self, Part, RosterEntry, ScramEncoding, User};
use parley_proto::sasl::ScramHash;
use parley_storage::{NewAccount, OfflineMessage, RosterItem, Storage, Subscription};
use parley_xml::{Element, Limits};

use crate::account::{served_host, AccountJid};
use crate::credentials::derive_credentials;
use crate::import::{existing, IMPORT_BATCH};
use crate::AccountError;

/// Bounds on what an import reads (`parley user import --piefxis` flags).
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest file read (`--max-file-bytes`).
    pub max_file_bytes: u64,
    /// Most files read, includes counted (`--max-files`).
    pub max_files: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_bytes: 256 * 1024 * 1024,
            max_files: 100_000,
        }
    }
}

/// Users read from files, by host as written.
pub type Data = BTreeMap<String, Vec<User>>;

/// Reads `path`: one file, or every `*.xml` file of a directory whose root is
/// `<server-data/>` (Prosody's migrator writes one per user; files that are only included
/// are read through their includer).
pub fn read_path(path: &Path, limits: ReadLimits) -> Result<Data, AccountError> {
    let mut reader = Reader {
        limits,
        files: 0,
        seen: HashSet::new(),
        data: Data::new(),
    };
    if path.is_dir() {
        let mut roots = Vec::new();
        let entries = std::fs::read_dir(path).map_err(|e| read_error(path, e))?;
        for entry in entries {
            let file = entry.map_err(|e| read_error(path, e))?.path();
            if file.extension().is_some_and(|x| x == "xml") && file.is_file() {
                roots.push(file);
            }
        }
        roots.sort();
        for file in roots {
            if reader.seen.contains(&file) {
                continue;
            }
            let part = reader.load(&file)?;
            if matches!(part, Part::ServerData { .. }) {
                reader.server_data(&file, part)?;
            }
        }
    } else {
        let part = reader.load(path)?;
        reader.server_data(path, part)?;
    }
    Ok(reader.data)
}

fn read_error(path: &Path, source: std::io::Error) -> AccountError {
    AccountError::Piefxis {
        file: path.display().to_string(),
        reason: source.to_string(),
    }
}

struct Reader {
    limits: ReadLimits,
    files: usize,
    seen: HashSet<PathBuf>,
    data: Data,
}

impl Reader {
    fn load(&mut self, file: &Path) -> Result<Part, AccountError> {
        let fail = |reason: String| AccountError::Piefxis {
            file: file.display().to_string(),
            reason,
        };
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(fail(format!(
                "more than {} files (--max-files)",
                self.limits.max_files
            )));
        }
        self.seen.insert(file.to_owned());
        let size = std::fs::metadata(file)
            .map_err(|e| read_error(file, e))?
            .len();
        if size > self.limits.max_file_bytes {
            return Err(fail(format!(
                "{size} bytes, over {} (--max-file-bytes)",
                self.limits.max_file_bytes
            )));
        }
        let bytes = std::fs::read(file).map_err(|e| read_error(file, e))?;
        let xml_limits = Limits {
            max_stanza_bytes: usize::try_from(self.limits.max_file_bytes).unwrap_or(usize::MAX),
            max_depth: 64,
            ..Limits::default()
        };
        let root = Element::parse(&bytes, &xml_limits).map_err(|e| fail(e.to_string()))?;
        piefxis::read(&root).map_err(|e| fail(e.to_string()))
    }

    /// The file `href` beside `from`, unless it was read already.
    fn include(&mut self, from: &Path, href: &str) -> Result<Option<Part>, AccountError> {
        let file = from.parent().unwrap_or(Path::new(".")).join(href);
        if self.seen.contains(&file) {
            return Ok(None);
        }
        self.load(&file).map(Some)
    }

    fn server_data(&mut self, file: &Path, part: Part) -> Result<(), AccountError> {
        match part {
            Part::ServerData { hosts, includes } => {
                for host in hosts {
                    self.host(file, host)?;
                }
                for href in includes {
                    let Some(part) = self.include(file, &href)? else {
                        continue;
                    };
                    let included = file.parent().unwrap_or(Path::new(".")).join(&href);
                    match part {
                        Part::Host(host) => self.host(&included, host)?,
                        Part::ServerData { .. } => self.server_data(&included, part)?,
                        Part::User(_) => {
                            return Err(AccountError::Piefxis {
                                file: included.display().to_string(),
                                reason: "a <user/> file included by <server-data/>: only a \
                                         <host/> may include users"
                                    .into(),
                            })
                        }
                    }
                }
                Ok(())
            }
            Part::Host(host) => self.host(file, host),
            Part::User(_) => Err(AccountError::Piefxis {
                file: file.display().to_string(),
                reason: "a <user/> file on its own: give the file that includes it".into(),
            }),
        }
    }

    fn host(&mut self, file: &Path, host: piefxis::Host) -> Result<(), AccountError> {
        let users = self.data.entry(host.jid.clone()).or_default();
        users.extend(host.users);
        for href in host.includes {
            match self.include(file, &href)? {
                None => {}
                Some(Part::User(user)) => {
                    self.data.entry(host.jid.clone()).or_default().push(*user)
                }
                Some(_) => {
                    return Err(AccountError::Piefxis {
                        file: file
                            .parent()
                            .unwrap_or(Path::new("."))
                            .join(&href)
                            .display()
                            .to_string(),
                        reason: "a <host/> may only include <user/> files".into(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Accounts created.
    pub created: usize,
    /// Accounts that existed and were left untouched (with their data).
    pub skipped_existing: usize,
    /// Users of hosts the server does not serve, left out.
    pub skipped_other_hosts: usize,
    /// Users left out: an invalid name, or no credentials Parley can use.
    pub invalid: usize,
    /// Roster items stored.
    pub roster_items: usize,
    /// vCards and other private XML elements stored.
    pub private: usize,
    /// Offline messages stored.
    pub offline: usize,
    /// Offline messages refused (over `[offline]` bounds, or not well-formed).
    pub offline_refused: usize,
    /// Incoming subscription requests stored (§4.8).
    pub pending_in: usize,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} accounts ({} roster items, {} vCards and private XML elements, {} \
             offline messages, {} subscription requests), skipped {} existing, {} of other \
             hosts, {} invalid, {} offline messages refused",
            self.created,
            self.roster_items,
            self.private,
            self.offline,
            self.pending_in,
            self.skipped_existing,
            self.skipped_other_hosts,
            self.invalid,
            self.offline_refused
        )
    }
}

/// Where imported data must fit.
#[derive(Debug, Clone, Copy)]
pub struct ImportBounds {
    /// PBKDF2 iterations for keys derived from a plaintext password (`[sasl]`).
    pub scram_iterations: u32,
    /// `[offline] max_per_user`.
    pub offline_max: usize,
    /// `[quotas] offline_bytes`.
    pub offline_max_bytes: usize,
    /// `[quotas] private_namespaces`.
    pub private_max_namespaces: usize,
    /// `[roster] max_items`.
    pub roster_max_items: usize,
    /// `[quotas] pending_subscriptions`.
    pub pending_max: usize,
}

/// Stores `data` for the hosts in `hosts`; each user left out is reported on `errors` with
/// why (never a password).
pub async fn import<H: AsRef<str>>(
    storage: &dyn Storage,
    hosts: &[H],
    data: Data,
    bounds: ImportBounds,
    errors: &mut dyn Write,
) -> Result<ImportReport, AccountError> {
    let mut report = ImportReport::default();
    let mut accounts: Vec<(NewAccount, User)> = Vec::new();
    let mut seen = HashSet::new();
    for (host, users) in data {
        let Some(served) = served_host(hosts, &host) else {
            let _ = writeln!(
                errors,
                "host {host}: not in [server] hosts; its {} users skipped",
                users.len()
            );
            report.skipped_other_hosts += users.len();
            continue;
        };
        for user in users {
            let account = match AccountJid::parse(&format!("{}@{served}", user.name), &[&served]) {
                Ok(a) => a,
                Err(e) => {
                    let _ = writeln!(errors, "{e}");
                    report.invalid += 1;
                    continue;
                }
            };
            if !seen.insert(account.clone()) {
                let _ = writeln!(errors, "{account}: given twice; the first is imported");
                report.invalid += 1;
                continue;
            }
            let credentials = if !user.scram.is_empty() {
                user.scram.clone()
            } else if let Some(password) = user.password.as_deref().filter(|p| !p.is_empty()) {
                match derive_credentials(password, bounds.scram_iterations) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = writeln!(errors, "{account}: {e}");
                        report.invalid += 1;
                        continue;
                    }
                }
            } else {
                let _ = writeln!(
                    errors,
                    "{account}: no password and no SCRAM-SHA-1 or SCRAM-SHA-256 data{}",
                    if user.skipped_mechanisms.is_empty() {
                        String::new()
                    } else {
                        format!(" (only {})", user.skipped_mechanisms.join(", "))
                    }
                );
                report.invalid += 1;
                continue;
            };
            accounts.push((
                NewAccount {
                    username: account.username,
                    host: account.host,
                    credentials,
                },
                user,
            ));
        }
    }
    let host_set = accounts
        .iter()
        .map(|(a, _)| a.host.clone())
        .collect::<std::collections::BTreeSet<_>>();
    let present = existing(storage, &host_set).await?;
    accounts.retain(|(a, _)| {
        let keep = !present.contains(&(a.username.clone(), a.host.clone()));
        if !keep {
            report.skipped_existing += 1;
        }
        keep
    });
    for batch in accounts.chunks(IMPORT_BATCH) {
        let news: Vec<NewAccount> = batch.iter().map(|(a, _)| a.clone()).collect();
        let done = storage
            .import_accounts(&news)
            .await
            .map_err(|source| AccountError::Import {
                created: report.created,
                source,
            })?;
        report.created += done.created;
        report.skipped_existing += done.skipped_existing;
        for (account, user) in batch {
            store_data(storage, account, user, bounds, &mut report, errors).await?;
        }
    }
    tracing::info!(
        created = report.created,
        skipped_existing = report.skipped_existing,
        "XEP-0227 import"
    );
    Ok(report)
}

async fn store_data(
    storage: &dyn Storage,
    account: &NewAccount,
    user: &User,
    bounds: ImportBounds,
    report: &mut ImportReport,
    errors: &mut dyn Write,
) -> Result<(), AccountError> {
    let (u, h) = (account.username.as_str(), account.host.as_str());
    let failed = |action: &'static str| {
        move |source| AccountError::Account {
            action,
            jid: format!("{u}@{h}"),
            source,
        }
    };
    if user.roster.len() > bounds.roster_max_items {
        let _ = writeln!(
            errors,
            "{u}@{h}: {} roster items, over [roster] max_items: the first {} imported",
            user.roster.len(),
            bounds.roster_max_items
        );
    }
    for entry in user.roster.iter().take(bounds.roster_max_items) {
        match roster_item(entry) {
            Some(item) => {
                storage
                    .roster_put(u, h, &item)
                    .await
                    .map_err(failed("import roster"))?;
                report.roster_items += 1;
            }
            None => {
                let _ = writeln!(errors, "{u}@{h}: roster item {:?} is not a JID", entry.jid);
            }
        }
    }
    let private = user.vcard.iter().chain(user.private.iter());
    for el in private {
        let stored = storage
            .private_set(
                u,
                h,
                el.ns(),
                &el.to_string(),
                bounds.private_max_namespaces,
            )
            .await
            .map_err(failed("import private XML"))?;
        if stored {
            report.private += 1;
        } else {
            let _ = writeln!(
                errors,
                "{u}@{h}: private XML {} left out: over max_private_namespaces",
                el.ns()
            );
        }
    }
    // §4.8: the requests still waiting for the user's answer, shown at the next login.
    if user.pending_in.len() > bounds.pending_max {
        let _ = writeln!(
            errors,
            "{u}@{h}: {} subscription requests, over [quotas] pending_subscriptions: the \
             first {} imported",
            user.pending_in.len(),
            bounds.pending_max
        );
    }
    for presence in user.pending_in.iter().take(bounds.pending_max) {
        let from = presence
            .attr("from")
            .and_then(|f| jid::Jid::new(f).ok())
            .map(|j| j.to_bare().to_string());
        let Some(from) = from else {
            let _ = writeln!(
                errors,
                "{u}@{h}: a subscription request without a valid from"
            );
            continue;
        };
        storage
            .pending_in_put(u, h, &from, &presence.to_string())
            .await
            .map_err(failed("import subscription requests"))?;
        report.pending_in += 1;
    }
    for message in &user.offline {
        let (stanza, stamp_ms) = offline_message(message);
        let stored = storage
            .offline_push(
                u,
                h,
                &OfflineMessage { stamp_ms, stanza },
                bounds.offline_max,
                bounds.offline_max_bytes,
            )
            .await
            .map_err(failed("import offline messages"))?;
        if stored {
            report.offline += 1;
        } else {
            report.offline_refused += 1;
        }
    }
    Ok(())
}

fn roster_item(entry: &RosterEntry) -> Option<RosterItem> {
    let jid = jid::BareJid::new(&entry.jid).ok()?;
    Some(RosterItem {
        jid: jid.to_string(),
        name: entry.name.clone(),
        subscription: match entry.subscription.as_str() {
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => Subscription::None,
        },
        ask: entry.ask,
        groups: entry.groups.clone(),
    })
}

/// The stanza to store and when it arrived: its XEP-0203 `<delay/>` stamp (removed, since
/// Parley stamps a delivered offline message itself), else now.
fn offline_message(message: &Element) -> (String, i64) {
    let mut message = message.clone();
    let stamp = message
        .remove_child("delay", parley_proto::ns::DELAY)
        .and_then(|d| {
            d.attr("stamp")
                .and_then(parley_proto::datetime::parse_xep0082)
        });
    let stamp_ms = stamp.unwrap_or_else(parley_proto::clock::now_ms);
    (message.to_string(), stamp_ms)
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Accounts written.
    pub accounts: usize,
    /// Roster items written.
    pub roster_items: usize,
    /// Offline messages written (kept stored).
    pub offline: usize,
}

/// Writes every account of `host` (or of every host) to `out` as one XEP-0227
/// `<server-data/>` document: SCRAM credentials (Parley has no password to write), roster,
/// pending subscription requests, vCard, private XML and offline messages (each with the
/// `<delay/>` of its arrival; they stay stored, and are still delivered here).
pub async fn export(
    storage: &dyn Storage,
    host: Option<&str>,
    encoding: ScramEncoding,
    out: &mut dyn Write,
) -> Result<ExportReport, AccountError> {
    let io = |source: std::io::Error| AccountError::Read {
        what: "the export output",
        source,
    };
    let accounts = storage
        .list_accounts(host)
        .await
        .map_err(AccountError::List)?;
    let mut by_host: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in &accounts {
        by_host.entry(&a.host).or_default().push(&a.username);
    }
    let mut report = ExportReport::default();
    out.write_all(
        b"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n",
    )
    .map_err(io)?;
    for (h, users) in by_host {
        let mut open = b"<host jid='".to_vec();
        parley_xml::escape::write_attr(&mut open, h);
        open.extend_from_slice(b"'>\n");
        out.write_all(&open).map_err(io)?;
        for u in users {
            let user = user_data(storage, u, h).await?;
            report.accounts += 1;
            report.roster_items += user.roster.len();
            report.offline += user.offline.len();
            let mut bytes =
                piefxis::user_element_encoded(&user, encoding).to_bytes_in(Some(piefxis::NS));
            bytes.push(b'\n');
            out.write_all(&bytes).map_err(io)?;
        }
        out.write_all(b"</host>\n").map_err(io)?;
    }
    out.write_all(b"</server-data>\n").map_err(io)?;
    out.flush().map_err(io)?;
    Ok(report)
}

/// [`export`] into the directory `dir`, one `<server-data/>` file per account named
/// `user@host.xml`: the layout Prosody's `mod_storage_xep0227` reads and writes.
pub async fn export_per_user(
    storage: &dyn Storage,
    host: Option<&str>,
    encoding: ScramEncoding,
    dir: &Path,
) -> Result<ExportReport, AccountError> {
    let io = |file: &Path| {
        let file = file.display().to_string();
        move |source: std::io::Error| AccountError::Piefxis {
            file: file.clone(),
            reason: source.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let accounts = storage
        .list_accounts(host)
        .await
        .map_err(AccountError::List)?;
    let mut report = ExportReport::default();
    for a in &accounts {
        let user = user_data(storage, &a.username, &a.host).await?;
        report.accounts += 1;
        report.roster_items += user.roster.len();
        report.offline += user.offline.len();
        let doc = Element::new("server-data", piefxis::NS).with_child(
            Element::new("host", piefxis::NS)
                .with_attr("jid", a.host.as_str())
                .with_child(piefxis::user_element_encoded(&user, encoding)),
        );
        let file = dir.join(format!("{}@{}.xml", a.username, a.host));
        let mut bytes = b"<?xml version='1.0' encoding='UTF-8'?>\n".to_vec();
        doc.write_to(&mut bytes, None);
        bytes.push(b'\n');
        std::fs::write(&file, bytes).map_err(io(&file))?;
    }
    Ok(report)
}

async fn user_data(storage: &dyn Storage, u: &str, h: &str) -> Result<User, AccountError> {
    let failed = |source| AccountError::Account {
        action: "export",
        jid: format!("{u}@{h}"),
        source,
    };
    let mut user = User {
        name: u.to_owned(),
        ..User::default()
    };
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        if let Some(c) = storage.credentials(u, h, hash).await.map_err(failed)? {
            user.scram.push(c);
        }
    }
    let roster = storage.roster(u, h).await.map_err(failed)?;
    user.roster = roster
        .items
        .into_iter()
        .map(|i| RosterEntry {
            jid: i.jid,
            name: i.name,
            subscription: match i.subscription {
                Subscription::To => "to",
                Subscription::From => "from",
                Subscription::Both => "both",
                Subscription::None => "none",
            }
            .to_owned(),
            ask: i.ask,
            groups: i.groups,
        })
        .collect();
    for (_, xml) in storage.pending_in(u, h).await.map_err(failed)? {
        if let Ok(el) = Element::parse(xml.as_bytes(), &Limits::trusted_copies()) {
            user.pending_in.push(el);
        }
    }
    // XEP-0227 §4.4: as they would be delivered, with the stamp of their arrival (an import,
    // ours or another server's, reads it back).
    for message in storage.offline_peek(u, h).await.map_err(failed)? {
        let Ok(mut el) = Element::parse(message.stanza.as_bytes(), &Limits::trusted_copies())
        else {
            continue;
        };
        if el.get_child("delay", parley_proto::ns::DELAY).is_none() {
            el.push_child(
                Element::new("delay", parley_proto::ns::DELAY)
                    .with_attr("from", h)
                    .with_attr("stamp", parley_proto::datetime::xep0082(message.stamp_ms)),
            );
        }
        user.offline.push(el);
    }
    for (ns, xml) in storage.private_all(u, h).await.map_err(failed)? {
        // Stored by Parley from accepted stanzas: read under the copy limits.
        let Ok(el) = Element::parse(xml.as_bytes(), &Limits::trusted_copies()) else {
            continue;
        };
        if ns == parley_proto::ns::VCARD {
            user.vcard = Some(el);
        } else {
            user.private.push(el);
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests;
