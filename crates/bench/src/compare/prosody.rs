//! Provisioning the reference Prosody 0.12 directly on disk: `internal_hashed` account files
//! (SCRAM-SHA-1 keys, hex) and roster files, in its `internal` storage format. Creating 20,000
//! accounts through `prosodyctl` (one process each) would take most of an hour.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parley_proto::sasl::{ScramCredentials, ScramHash};

/// Prosody's directory for `store` of `host` under its data path.
fn store_dir(data: &Path, host: &str, store: &str) -> PathBuf {
    // Prosody escapes non-alphanumerics as %XX in path components; "localhost" needs none.
    data.join(host.replace('.', "%2e")).join(store)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The account file of one user (what `mod_auth_internal_hashed` writes).
pub fn account_file(password: &str, salt: &str, iterations: u32) -> String {
    let creds = ScramCredentials::derive(ScramHash::Sha1, password, salt.as_bytes(), iterations)
        .expect("a plain ASCII password derives");
    format!(
        "return {{\n\t[\"iteration_count\"] = {iterations};\n\t[\"stored_key\"] = {};\n\t[\"salt\"] = {};\n\t[\"server_key\"] = {};\n}};\n",
        lua_str(&hex(&creds.stored_key)),
        lua_str(salt),
        lua_str(&hex(&creds.server_key)),
    )
}

/// Writes account files for `users` (e.g. "user1"…) on `host`, deriving keys on all cores.
/// Existing files are kept.
pub fn provision_accounts(
    data: &Path,
    host: &str,
    users: &[String],
    password: &str,
    iterations: u32,
) -> io::Result<usize> {
    let dir = store_dir(data, host, "accounts");
    fs::create_dir_all(&dir)?;
    let todo: Vec<&String> = users
        .iter()
        .filter(|u| !dir.join(format!("{u}.dat")).exists())
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = todo.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|scope| -> io::Result<()> {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                let dir = dir.clone();
                scope.spawn(move || -> io::Result<()> {
                    for u in part {
                        // A per-user salt, as Prosody makes (it uses a UUID).
                        let salt = format!("parley-bench-{u}");
                        fs::write(
                            dir.join(format!("{u}.dat")),
                            account_file(password, &salt, iterations),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| io::Error::other("provisioning thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(todo.len())
}

/// The roster file of one user whose every contact has a mutual (`both`) subscription.
pub fn roster_file(contacts: &[String]) -> String {
    let mut out = String::from(
        "return {\n\t[false] = {\n\t\t[\"version\"] = 1;\n\t\t[\"pending\"] = {};\n\t};\n",
    );
    for c in contacts {
        let _ = writeln!(
            out,
            "\t[{}] = {{\n\t\t[\"subscription\"] = \"both\";\n\t\t[\"groups\"] = {{}};\n\t}};",
            lua_str(c)
        );
    }
    out.push_str("};\n");
    out
}

/// Writes `owner`'s roster on `host` with `both` subscriptions to `contacts` (bare JIDs).
pub fn write_roster(data: &Path, host: &str, owner: &str, contacts: &[String]) -> io::Result<()> {
    let dir = store_dir(data, host, "roster");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(format!("{owner}.dat")), roster_file(contacts))
}

/// The presence scenario's rosters on disk: user `{prefix}{first}` and users
/// `{prefix}{first + 1}` ..= `{prefix}{first + contacts}` hold each other with `both`.
pub fn presence_rosters(
    data: &Path,
    host: &str,
    prefix: &str,
    first: usize,
    contacts: usize,
) -> io::Result<()> {
    let owner = format!("{prefix}{first}");
    let jids: Vec<String> = (first + 1..=first + contacts)
        .map(|i| format!("{prefix}{i}@{host}"))
        .collect();
    write_roster(data, host, &owner, &jids)?;
    for i in first + 1..=first + contacts {
        write_roster(
            data,
            host,
            &format!("{prefix}{i}"),
            &[format!("{owner}@{host}")],
        )?;
    }
    Ok(())
}

/// `config` (a Prosody config) with `module` added to its `modules_enabled` list; None
/// without such a list.
pub fn with_module(config: &str, module: &str) -> Option<String> {
    let start = config.find("modules_enabled = {")? + "modules_enabled = {".len();
    let mut out = String::with_capacity(config.len() + module.len() + 4);
    out.push_str(&config[..start]);
    out.push_str(&format!(" \"{module}\";"));
    out.push_str(&config[start..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_joins_the_enabled_list() {
        let cfg = "admins = { }\nmodules_enabled = { \"disco\"; \"roster\"; }\n";
        assert_eq!(
            with_module(cfg, "mam").unwrap(),
            "admins = { }\nmodules_enabled = { \"mam\"; \"disco\"; \"roster\"; }\n"
        );
        assert_eq!(with_module("admins = { }", "mam"), None);
    }

    /// The account file carries RFC 5802 keys: StoredKey = H(HMAC(SaltedPassword, "Client
    /// Key")), checked here against the RFC 5802 §5 example (user "user", password
    /// "pencil", salt QSXCR+Q6sek8bf92 base64, 4096 iterations).
    #[test]
    fn rfc5802_keys_in_prosody_format() {
        let salt_bytes = [
            0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a, 0xb1, 0xe9, 0x3c, 0x6d, 0xff, 0x76,
        ];
        let creds = ScramCredentials::derive(ScramHash::Sha1, "pencil", &salt_bytes, 4096).unwrap();
        // From the RFC's ClientProof/ServerSignature example, StoredKey and ServerKey are:
        assert_eq!(
            hex(&creds.stored_key),
            "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
        );
        assert_eq!(
            hex(&creds.server_key),
            "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
        );
        let file = account_file("pw", "s", 4096);
        assert!(file.starts_with("return {\n\t[\"iteration_count\"] = 4096;"));
        assert!(file.contains("[\"salt\"] = \"s\";"));
    }

    #[test]
    fn presence_rosters_are_mutual() {
        let dir = tempfile::tempdir().unwrap();
        presence_rosters(dir.path(), "localhost", "user", 5, 2).unwrap();
        let roster = |u: &str| {
            fs::read_to_string(dir.path().join(format!("localhost/roster/{u}.dat"))).unwrap()
        };
        assert_eq!(
            roster("user5"),
            roster_file(&["user6@localhost".into(), "user7@localhost".into()])
        );
        assert_eq!(roster("user7"), roster_file(&["user5@localhost".into()]));
        assert!(!dir.path().join("localhost/roster/user8.dat").exists());
    }

    #[test]
    fn roster_file_lists_contacts_with_both() {
        let f = roster_file(&["user2@localhost".into(), "user3@localhost".into()]);
        assert!(f.contains("[false] = {"));
        assert_eq!(f.matches("\"both\"").count(), 2);
        assert!(f.contains("[\"user3@localhost\"] = {"));
    }
}
