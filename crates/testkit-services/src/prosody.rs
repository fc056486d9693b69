//! A real Prosody (Debian's `prosody` 0.12) for federation tests: one virtual host on
//! loopback ports, with server-to-server on (TLS required, a self-signed certificate, so
//! that dialback authenticates it, as between most servers on the network), resolving
//! through the test's dnsmasq (Prosody uses libunbound, told to forward every query there;
//! the names must not be under `.test`, which unbound answers itself as a local zone).
//!
//! For migration tests it can keep its data in XEP-0227 files instead
//! ([`Prosody::start_xep0227`]).
//!
//! Like PostgreSQL it runs as its own user when the tests run as root (`setpriv`, which
//! execs, so the pid signalled is Prosody's), under the same watchdog.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::pg::{running_as_root, Watched};

/// A running Prosody, stopped (and its directory removed) on drop.
pub struct Prosody {
    process: Watched,
    _dir: TempDir,
    /// Its domain.
    pub domain: String,
    /// Where clients connect (plain TCP allowed, PLAIN over it allowed: test clients).
    pub c2s: SocketAddr,
    /// Where servers connect (STARTTLS).
    pub s2s: SocketAddr,
}

impl std::fmt::Debug for Prosody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prosody")
            .field("domain", &self.domain)
            .field("c2s", &self.c2s)
            .field("s2s", &self.s2s)
            .finish()
    }
}

/// Prosody's file-name encoding of a host or user (`util.datamanager`): every byte that
/// is not alphanumeric becomes `%xx`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

impl Prosody {
    /// Starts Prosody serving `domain` with `users` (name, password), asking the DNS
    /// server at `dns` for every name. Panics with an install hint if Prosody is missing.
    pub fn start(domain: &str, dns: SocketAddr, users: &[(&str, &str)]) -> Prosody {
        Prosody::start_on(domain, dns, users, crate::free_port())
    }

    /// [`Prosody::start`] with its server-to-server port chosen by the caller (who put it
    /// in DNS first).
    pub fn start_on(domain: &str, dns: SocketAddr, users: &[(&str, &str)], s2s: u16) -> Prosody {
        Prosody::start_with(domain, dns, users, s2s, None)
    }

    /// A Prosody keeping everything in XEP-0227 files in `xep0227_data` (its
    /// `mod_storage_xep0227`, one `user@host.xml` per account; hashed passwords, so a login
    /// turns a plaintext password into SCRAM-SHA-1 data): what a migration to or from
    /// Prosody reads and writes. `users` are written there unless a file exists already.
    pub fn start_xep0227(
        domain: &str,
        dns: SocketAddr,
        users: &[(&str, &str)],
        xep0227_data: &Path,
    ) -> Prosody {
        Prosody::start_with(domain, dns, users, crate::free_port(), Some(xep0227_data))
    }

    fn start_with(
        domain: &str,
        dns: SocketAddr,
        users: &[(&str, &str)],
        s2s: u16,
        xep0227_data: Option<&Path>,
    ) -> Prosody {
        let dir = tempfile::Builder::new()
            .prefix("parley-prosody-")
            .tempdir()
            .expect("temp dir for Prosody");
        let root = dir.path();
        let c2s = crate::free_port();
        std::fs::create_dir_all(root.join("certs")).unwrap();
        match xep0227_data {
            None => {
                let accounts = root.join("data").join(encode(domain)).join("accounts");
                std::fs::create_dir_all(&accounts).unwrap();
                for (user, password) in users {
                    std::fs::write(
                        accounts.join(format!("{}.dat", encode(user))),
                        format!("return {{\n\t[\"password\"] = {password:?};\n}};\n"),
                    )
                    .unwrap();
                }
            }
            Some(data) => {
                std::fs::create_dir_all(data).unwrap();
                for (user, password) in users {
                    let file = data.join(format!("{user}@{domain}.xml"));
                    if !file.exists() {
                        std::fs::write(
                            file,
                            format!(
                                "<server-data xmlns='urn:xmpp:pie:0'><host jid='{domain}'>\
                                 <user name='{user}' password='{password}'/></host></server-data>"
                            ),
                        )
                        .unwrap();
                    }
                }
            }
        }
        let cert = rcgen::generate_simple_self_signed(vec![domain.to_owned()]).unwrap();
        std::fs::write(root.join(format!("certs/{domain}.crt")), cert.cert.pem()).unwrap();
        std::fs::write(
            root.join(format!("certs/{domain}.key")),
            cert.key_pair.serialize_pem(),
        )
        .unwrap();
        let config = root.join("prosody.cfg.lua");
        let data = xep0227_data.map_or_else(|| root.join("data"), Path::to_owned);
        let mut text = config_text(root, &data, domain, c2s, s2s, dns);
        if xep0227_data.is_some() {
            text = text.replace(
                "authentication = \"internal_plain\"\nstorage = \"internal\"",
                "authentication = \"internal_hashed\"\nstorage = \"xep0227\"",
            );
        }
        std::fs::write(&config, text).unwrap();
        let as_root = running_as_root();
        if as_root {
            for dir in [root, &data] {
                let status = Command::new("chown")
                    .args(["-R", "prosody:prosody"])
                    .arg(dir)
                    .status()
                    .expect("run chown");
                assert!(status.success(), "chown prosody {}", dir.display());
            }
        }
        let prosody = which("prosody")
            .expect("prosody is not installed (Debian package prosody; tests/run installs it)");
        let mut args: Vec<String> = Vec::new();
        let program = if as_root {
            args.extend(
                ["--reuid=prosody", "--regid=prosody", "--init-groups", "--"].map(String::from),
            );
            args.push(prosody.display().to_string());
            std::path::PathBuf::from("setpriv")
        } else {
            prosody
        };
        args.extend(["--config".into(), config.display().to_string()]);
        let log = root.join("stdout.log");
        let process = Watched::spawn(root, log, "TERM", &program, &args);
        let c2s_addr = SocketAddr::from(([127, 0, 0, 1], c2s));
        let s2s_addr = SocketAddr::from(([127, 0, 0, 1], s2s));
        let prosody_log = root.join("prosody.log");
        crate::poll_until_reporting(
            "Prosody listening",
            Duration::from_secs(20),
            || {
                [c2s_addr, s2s_addr]
                    .iter()
                    .all(|a| {
                        std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
                    })
                    .then_some(())
            },
            || {
                format!(
                    "{}\n{}",
                    process.log(),
                    std::fs::read_to_string(&prosody_log).unwrap_or_default()
                )
            },
        );
        Prosody {
            process,
            _dir: dir,
            domain: domain.to_owned(),
            c2s: c2s_addr,
            s2s: s2s_addr,
        }
    }

    /// Prosody's log so far (debug level), for failure messages.
    pub fn log(&self) -> String {
        let path = self._dir.path().join("prosody.log");
        let log = std::fs::read_to_string(path).unwrap_or_default();
        format!("{}\n{log}", self.process.log())
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.process.stop("TERM");
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn config_text(
    root: &Path,
    data: &Path,
    domain: &str,
    c2s: u16,
    s2s: u16,
    dns: SocketAddr,
) -> String {
    let dir = root.display();
    let data = data.display();
    format!(
        r#"-- Written by parley-testkit-services for one federation test.
data_path = "{data}"
pidfile = "{dir}/prosody.pid"
daemonize = false
certificates = "{dir}/certs"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "version"; }}
authentication = "internal_plain"
storage = "internal"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ {s2s} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = false
unbound = {{ forward = "{ip}@{port}"; resolvconf = false; hoststxt = false; }}
log = {{ debug = "{dir}/prosody.log" }}
VirtualHost "{domain}"
"#,
        ip = dns.ip(),
        port = dns.port(),
    )
}
