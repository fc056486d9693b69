//! The reference Prosody 0.12: its configuration (Debian's default one, with only what the
//! benchmark needs changed, see [`debian_config`]), and provisioning directly on disk:
//! `internal_hashed` account files (SCRAM-SHA-1 keys, hex) and roster files, in its
//! `internal` storage format. Creating 20,000 accounts through `prosodyctl` (one process
//! each) would take most of an hour.

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

/// `modules_enabled` of Debian 12's `/etc/prosody/prosody.cfg.lua` (package prosody
/// 0.12.3-1+deb12u1), in its order: what a stock install loads.
pub const DEBIAN_MODULES: [&str; 26] = [
    "disco",
    "roster",
    "saslauth",
    "tls",
    "blocklist",
    "bookmarks",
    "carbons",
    "dialback",
    "limits",
    "pep",
    "private",
    "smacks",
    "vcard4",
    "vcard_legacy",
    "csi_simple",
    "invites",
    "invites_adhoc",
    "invites_register",
    "ping",
    "register",
    "time",
    "uptime",
    "version",
    "admin_adhoc",
    "admin_shell",
    "posix",
];

/// Debian's config file, to check [`DEBIAN_MODULES`] against the installed package.
pub const DEBIAN_CONFIG_PATH: &str = "/etc/prosody/prosody.cfg.lua";

/// Where one benchmark Prosody listens (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub c2s: u16,
    /// Debian's config leaves s2s on (mod_dialback loaded): moved off 5269.
    pub s2s: u16,
    /// BOSH and WebSocket, for the web-transport scenarios.
    pub http: u16,
}

/// Debian 12's default `/etc/prosody/prosody.cfg.lua`, as an operator who installed the
/// package runs it, with only what the benchmark needs changed, each change marked
/// `-- bench:` in the text. Kept: the 26 modules, mod_limits (its s2s limit too),
/// `info` to a log file and `error` to an error file and syslog, `internal` storage,
/// `internal_hashed` authentication, Prosody's default garbage collector. Changed: paths
/// into `dir` (data, pid file, logs, a self-signed certificate in `dir/certs`), loopback
/// ports, plain TCP allowed (as for every server in the comparison), the
/// c2s rate limit raised from 10kb/s (which would measure the shaper), and `bosh` and
/// `websocket` (the web-transport scenarios) plus `extra_modules` (`mam` for the archive
/// variant) appended to the modules. The `Include "conf.d/*.cfg.lua"` line is left out:
/// Debian's conf.d only declares `VirtualHost "localhost"` again.
pub fn debian_config(dir: &Path, ports: Ports, extra_modules: &[&str]) -> String {
    let dir = dir.display();
    let mut modules = String::new();
    for m in DEBIAN_MODULES {
        let _ = writeln!(modules, "\t{};", lua_str(m));
    }
    for m in ["bosh", "websocket"].iter().chain(extra_modules) {
        let _ = writeln!(
            modules,
            "\t{}; -- bench: added (not in Debian's list)",
            lua_str(m)
        );
    }
    format!(
        r#"-- Debian 12's /etc/prosody/prosody.cfg.lua (prosody 0.12.3-1+deb12u1) without its comments;
-- lines marked "bench:" are what parley-bench compare changes or adds.
admins = {{ }}
plugin_paths = {{ "/usr/local/lib/prosody/modules" }}
modules_enabled = {{
{modules}}}
modules_disabled = {{
}}
pidfile = "{dir}/prosody.pid"; -- bench: Debian's is /run/prosody/prosody.pid
s2s_secure_auth = true
limits = {{
	c2s = {{
		rate = "100mb/s"; -- bench: Debian's is 10kb/s, a shaper the load would measure
	}};
	s2sin = {{
		rate = "30kb/s";
	}};
}}
authentication = "internal_hashed"
archive_expires_after = "1w" -- Remove archived messages after 1 week
log = {{
	info = "{dir}/prosody.log"; -- bench: Debian's is /var/log/prosody/prosody.log
	error = "{dir}/prosody.err"; -- bench: Debian's is /var/log/prosody/prosody.err
	{{ levels = {{ "error" }}; to = "syslog";  }};
}}
certificates = "{dir}/certs" -- bench: Debian's is /etc/prosody/certs (empty); here a self-signed localhost one
-- bench: the following are added (in the foreground with -F, as Debian's prosody.service starts it)
data_path = "{dir}/data"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ {s2s} }}
http_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http} }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_bosh_secure = true
consider_websocket_secure = true
VirtualHost "localhost"
"#,
        c2s = ports.c2s,
        s2s = ports.s2s,
        http = ports.http,
    )
}

/// The quoted names in a config's `modules_enabled = { ... }` list, comments skipped;
/// None without such a list.
pub fn modules_enabled(config: &str) -> Option<Vec<String>> {
    let start = config.find("modules_enabled")?;
    let open = start + config[start..].find('{')? + 1;
    let close = open + config[open..].find('}')?;
    let names = config[open..close]
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .flat_map(|l| l.split(';'))
        .filter_map(|item| {
            let item = item.trim().trim_end_matches(',');
            let q = item.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            item.strip_prefix(q)?.strip_suffix(q).map(str::to_owned)
        })
        .collect();
    Some(names)
}

/// Whether the installed Debian config loads [`DEBIAN_MODULES`]: a sentence for the report.
pub fn debian_modules_check() -> String {
    match std::fs::read_to_string(DEBIAN_CONFIG_PATH) {
        Ok(text) => match modules_enabled(&text) {
            Some(m) if m == DEBIAN_MODULES => {
                format!("the same list as this machine's {DEBIAN_CONFIG_PATH}")
            }
            Some(m) => format!(
                "**this machine's {DEBIAN_CONFIG_PATH} differs**: it lists {}",
                m.join(", ")
            ),
            None => format!("no modules_enabled list found in {DEBIAN_CONFIG_PATH}"),
        },
        Err(_) => format!("{DEBIAN_CONFIG_PATH} is not on this machine to check against"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_config_keeps_debian_modules_and_adds_only_marked_ones() {
        let ports = Ports {
            c2s: 25222,
            s2s: 25269,
            http: 25280,
        };
        let cfg = debian_config(Path::new("/tmp/p"), ports, &["mam"]);
        let mut expected: Vec<String> = DEBIAN_MODULES.iter().map(|m| (*m).to_owned()).collect();
        expected.extend(["bosh", "websocket", "mam"].map(str::to_owned));
        assert_eq!(modules_enabled(&cfg).unwrap(), expected);
        assert!(cfg.contains("c2s_ports = { 25222 }"));
        assert!(cfg.contains("s2s_ports = { 25269 }"));
        assert!(cfg.contains("rate = \"100mb/s\""));
        assert!(cfg.contains("rate = \"30kb/s\""));
        assert!(cfg.contains("info = \"/tmp/p/prosody.log\""));
        assert!(cfg.contains("c2s_require_encryption = false"));
        // No GC tuning: the reference runs with Prosody's defaults.
        assert!(!cfg.contains("gc ="));
    }

    #[test]
    fn modules_enabled_reads_debians_layout() {
        let cfg = "modules_enabled = {\n\t\t\"disco\"; -- Service discovery\n\t\t\"roster\"; -- Allow \"x\"\n\t\t-- \"bosh\";\n}\nmodules_disabled = { \"s2s\"; }\n";
        assert_eq!(modules_enabled(cfg).unwrap(), vec!["disco", "roster"]);
        assert_eq!(modules_enabled("admins = { }"), None);
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
