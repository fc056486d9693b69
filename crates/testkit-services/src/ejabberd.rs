//! A real ejabberd (Debian's `ejabberd` 23.01) for federation tests: one virtual host on
//! loopback ports, server-to-server on with TLS required and a self-signed certificate, so
//! that dialback (`mod_s2s_dialback`) authenticates it, as with Prosody.
//!
//! The Erlang VM runs directly (`erl -s ejabberd`, not `ejabberdctl foreground`, whose shell
//! would stay the parent and outlive a signal), so the pid the watchdog signals is the VM's,
//! and SIGTERM stops ejabberd cleanly. Names resolve through the test's dnsmasq: an `inetrc`
//! of its own names that server (with its port) for Erlang's resolver. Accounts are made
//! through `ejabberd_ctl` over Erlang distribution on a port of its own, without epmd, so
//! nothing outlives the test. Like Prosody it runs as its own user when the tests run as
//! root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::pg::{running_as_root, Watched};

/// A running ejabberd, stopped (and its directory removed) on drop.
pub struct Ejabberd {
    process: Watched,
    dir: TempDir,
    /// Its Erlang node (`name@localhost`).
    node: String,
    /// Erlang distribution port (instead of epmd).
    dist_port: u16,
    /// Its domain.
    pub domain: String,
    /// Where clients connect (plain TCP allowed, PLAIN over it: test clients).
    pub c2s: SocketAddr,
    /// Where servers connect (STARTTLS required).
    pub s2s: SocketAddr,
}

impl std::fmt::Debug for Ejabberd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ejabberd")
            .field("domain", &self.domain)
            .field("c2s", &self.c2s)
            .field("s2s", &self.s2s)
            .finish()
    }
}

impl Ejabberd {
    /// Starts ejabberd serving `domain` with `users` (name, password), its server-to-server
    /// port `s2s` chosen by the caller (who put it in DNS first), asking the DNS server at
    /// `dns` for every name. Panics with an install hint if ejabberd is missing.
    pub fn start_on(domain: &str, dns: SocketAddr, users: &[(&str, &str)], s2s: u16) -> Ejabberd {
        Ejabberd::start_with(domain, dns, users, s2s, false)
    }

    /// [`Ejabberd::start_on`], storing passwords as SCRAM data (`auth_password_format:
    /// scram`, SHA-1) instead of plaintext when `scram`.
    pub fn start_with(
        domain: &str,
        dns: SocketAddr,
        users: &[(&str, &str)],
        s2s: u16,
        scram: bool,
    ) -> Ejabberd {
        assert!(
            Path::new("/usr/sbin/ejabberdctl").exists() && which("erl").is_some(),
            "ejabberd is not installed (Debian package ejabberd; tests/run installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("parley-ejabberd-")
            .tempdir()
            .expect("temp dir for ejabberd");
        let root = dir.path();
        std::fs::create_dir_all(root.join("db")).unwrap();
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let c2s = crate::free_port();
        let dist_port = crate::free_port();
        self_signed(root, domain);
        let mut config = config_text(root, domain, c2s, s2s);
        if scram {
            config = config.replace(
                "auth_method: internal\n",
                "auth_method: internal\nauth_password_format: scram\n",
            );
        }
        std::fs::write(root.join("ejabberd.yml"), config).unwrap();
        // Erlang's resolver: the test's DNS server only (with its port; without the empty
        // `resolv_conf` and `hosts_file` the system's files win over it), localhost for the
        // distribution between the VM and `ejabberd_ctl`.
        std::fs::write(
            root.join("inetrc"),
            format!(
                "{{lookup, [\"file\", \"dns\"]}}.\n{{host, {{127,0,0,1}}, [\"localhost\"]}}.\n\
                 {{resolv_conf, \"\"}}.\n{{hosts_file, \"\"}}.\n\
                 {{nameserver, {{{ip}}}, {port}}}.\n",
                ip = dns.ip().to_string().replace('.', ","),
                port = dns.port(),
            ),
        )
        .unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "ejabberd:ejabberd"])
                .arg(root)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown ejabberd {}", root.display());
        }
        // Unique per instance: tests of one process run several at once.
        let node = format!("parley{dist_port}@localhost");
        let mut args = erl_env(root);
        args.extend(
            [
                "erl",
                "-sname",
                &node,
                "-erl_epmd_port",
                &dist_port.to_string(),
                "-start_epmd",
                "false",
                "-mnesia",
                "dir",
                &format!("\"{}\"", root.join("db").display()),
                "-s",
                "ejabberd",
                "-noshell",
                "-noinput",
            ]
            .map(String::from),
        );
        let (program, args) = as_ejabberd(args);
        let process = Watched::spawn(root, root.join("stdout.log"), "TERM", &program, &args);
        let c2s_addr = SocketAddr::from(([127, 0, 0, 1], c2s));
        let s2s_addr = SocketAddr::from(([127, 0, 0, 1], s2s));
        let log = root.join("logs/ejabberd.log");
        let stdout = process.log_reader();
        crate::poll_until_reporting(
            "ejabberd listening",
            Duration::from_secs(30),
            || {
                [c2s_addr, s2s_addr]
                    .iter()
                    .all(|a| {
                        std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
                    })
                    .then_some(())
            },
            move || {
                format!(
                    "{}\n{}",
                    stdout(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            },
        );
        let ejabberd = Ejabberd {
            process,
            dir,
            node,
            dist_port,
            domain: domain.to_owned(),
            c2s: c2s_addr,
            s2s: s2s_addr,
        };
        // Its listeners can be up a moment before its tables: under load the first
        // `register` may find no `passwd` table yet (`no_exists`). Each is retried until its
        // tables are there.
        for (user, password) in users {
            let command = ["register", user, domain, password];
            let last = std::cell::RefCell::new(String::new());
            crate::poll_until_reporting(
                "ejabberd registering a user",
                Duration::from_secs(30),
                || match ejabberd.try_ctl(&command) {
                    Ok(_) => Some(()),
                    Err(e) => {
                        *last.borrow_mut() = e;
                        None
                    }
                },
                || format!("{}\n{}", last.borrow(), ejabberd.log()),
            );
        }
        ejabberd
    }

    /// Runs an `ejabberd_ctl` command on the running node; panics with its output and the
    /// log if it fails.
    pub fn ctl(&self, command: &[&str]) {
        self.run_ctl(command);
    }

    fn run_ctl(&self, command: &[&str]) -> String {
        self.try_ctl(command)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// Runs an `ejabberd_ctl` command: what it printed, or what it said when it failed.
    fn try_ctl(&self, command: &[&str]) -> Result<String, String> {
        let root = self.dir.path();
        let mut args = erl_env(root);
        args.extend(
            [
                "erl",
                "-sname",
                &format!("ctl{}@localhost", crate::free_port()),
                "-erl_epmd_port",
                &self.dist_port.to_string(),
                "-start_epmd",
                "false",
                "-dist_listen",
                "false",
                "-hidden",
                "-noinput",
                "-s",
                "ejabberd_ctl",
                "-extra",
                &self.node,
            ]
            .map(String::from),
        );
        args.extend(command.iter().map(|s| s.to_string()));
        let (program, args) = as_ejabberd(args);
        let out = Command::new(program)
            .args(&args)
            .current_dir(root)
            .output()
            .expect("run erl for ejabberd_ctl");
        if !out.status.success() {
            return Err(format!(
                "ejabberd_ctl {command:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A fresh directory ejabberd may write to (for `export_piefxis`) and read from.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "ejabberd:ejabberd"])
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown ejabberd {}", dir.display());
        }
        dir
    }

    /// Runs an `ejabberd_ctl` command and returns what it printed.
    pub fn ctl_output(&self, command: &[&str]) -> String {
        self.run_ctl(command)
    }

    /// ejabberd's log so far (info level), for failure messages.
    pub fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("logs/ejabberd.log")).unwrap_or_default();
        format!("{}\n{log}", self.process.log())
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.process.stop("TERM");
    }
}

/// A self-signed certificate for `domain` and its key, in one PEM file as ejabberd reads
/// them (`server.pem`). Made by `openssl req` (ECDSA P-256): ejabberd's certificate check
/// (`ejabberd_pkix`, Erlang's `public_key`) crashes on rcgen's, and then serves no
/// certificate at all (`TLS failed: no_certfile`).
fn self_signed(root: &Path, domain: &str) {
    let (key, crt) = (root.join("server.key"), root.join("server.crt"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", &format!("/CN={domain}")])
        .args(["-addext", &format!("subjectAltName=DNS:{domain}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pem = std::fs::read(&crt).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    std::fs::write(root.join("server.pem"), pem).unwrap();
}

/// `env NAME=value… ` for the VM: its config, log, resolver and cookie all in `root`.
fn erl_env(root: &Path) -> Vec<String> {
    let r = root.display();
    vec![
        "env".into(),
        format!("HOME={r}"),
        format!("EJABBERD_CONFIG_PATH={r}/ejabberd.yml"),
        format!("EJABBERD_LOG_PATH={r}/logs/ejabberd.log"),
        format!("ERL_INETRC={r}/inetrc"),
        format!("ERL_CRASH_DUMP={r}/logs/erl_crash.dump"),
        // Where Debian puts ejabberd's own Erlang applications.
        "ERL_LIBS=/usr/lib/x86_64-linux-gnu".into(),
    ]
}

/// The command that runs `args` as the `ejabberd` user when the tests run as root
/// (`setpriv`, which execs), else as is.
fn as_ejabberd(args: Vec<String>) -> (PathBuf, Vec<String>) {
    if running_as_root() {
        let mut all: Vec<String> = [
            "--reuid=ejabberd",
            "--regid=ejabberd",
            "--init-groups",
            "--",
        ]
        .map(String::from)
        .to_vec();
        all.extend(args);
        (PathBuf::from("setpriv"), all)
    } else {
        let mut args = args.into_iter();
        let program = PathBuf::from(args.next().expect("a program"));
        (program, args.collect())
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn config_text(root: &Path, domain: &str, c2s: u16, s2s: u16) -> String {
    let dir = root.display();
    format!(
        r#"# Written by parley-testkit-services for one federation test.
hosts:
  - "{domain}"
loglevel: info
certfiles:
  - "{dir}/server.pem"
auth_method: internal
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    starttls_required: false
  -
    port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
# The test's DNS server has A records only (it refuses AAAA queries, which ejabberd takes
# for a failed lookup).
outgoing_s2s_families:
  - ipv4
access_rules:
  c2s:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_version: {{}}
  mod_s2s_dialback: {{}}
  mod_vcard: {{}}
  mod_private: {{}}
  mod_offline: {{}}
  mod_admin_extra: {{}}
"#
    )
}
