//! `parley serve` as a real process for tests that need one (its own stdout and stderr, the
//! CLI beside it, signals): a config on free loopback ports, accounts made with `parley user
//! add`, and a waiter on the listening socket. Killed and reaped on drop.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{free_port, poll_until_reporting};

/// The server process; killed and reaped on drop so that a failing test leaves nothing behind.
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the server accepts connections on `addr`.
    pub fn wait_for(&mut self, addr: SocketAddr) {
        let log = self.log.clone();
        let child = &mut self.child;
        // A listening socket announces nothing: connecting is the only way to see it.
        poll_until_reporting(
            &format!("parley listening on {addr}"),
            Duration::from_secs(20),
            || {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    panic!(
                        "parley serve exited early ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .is_ok()
                    .then_some(())
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name `kill` knows: `HUP`, `TERM`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills and reaps the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `parley ARGS` to completion; its output.
pub fn run_cli(binary: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running parley {args:?}: {e}"))
}

/// Runs `cmd` to completion, killing it after `limit`.
pub fn run_with_limit(
    mut cmd: Command,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let out = tempfile::NamedTempFile::new().expect("output file");
    // One open file description for both streams, so that they share the write offset.
    let file = out.reopen().expect("reopen");
    let mut child = cmd
        .stdout(Stdio::from(file.try_clone().expect("clone")))
        .stderr(Stdio::from(file))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    // A thread waits for the exit, so the limit is a timeout on that event, not a poll.
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let status = match exit.recv_timeout(limit) {
        Ok(status) => Some(status.expect("wait")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            None
        }
    };
    waiter.join().expect("the waiting thread");
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    (status, text)
}

/// A `parley serve` process with its config, data dir and accounts.
pub struct Deployment {
    /// Declared before `dir` so that the process is stopped before its data dir goes away.
    pub server: ServerProcess,
    /// The STARTTLS client port.
    pub c2s_port: u16,
    /// The admin endpoint's port.
    pub admin_port: u16,
    /// The config file the server and the CLI read.
    pub config: PathBuf,
    /// The temporary directory: config, data dir, log.
    pub dir: tempfile::TempDir,
}

/// Writes a config on free loopback ports, creates `users` (JID, password) with
/// `parley user add`, starts `parley serve` and waits until it listens.
pub fn deploy(binary: &Path, users: &[(&str, &str)]) -> Deployment {
    deploy_with(binary, users, "")
}

/// [`deploy`] with `extra` appended to the config (whole TOML sections).
pub fn deploy_with(binary: &Path, users: &[(&str, &str)], extra: &str) -> Deployment {
    deploy_in(
        tempfile::tempdir().expect("tempdir"),
        binary,
        users,
        extra,
        &[],
    )
}

/// [`deploy_with`] in `dir` (which the caller may have prepared: a socket, files), with
/// `env` set for the server process.
pub fn deploy_in(
    dir: tempfile::TempDir,
    binary: &Path,
    users: &[(&str, &str)],
    extra: &str,
    env: &[(&str, &str)],
) -> Deployment {
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().expect("UTF-8 temp path");
    assert!(
        !data.contains('\''),
        "temp path {data} cannot be a TOML literal string"
    );
    let (c2s_port, tls_port, admin_port) = (free_port(), free_port(), free_port());
    let config_path = dir.path().join("parley.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = '{data}'\nworkers = 2\n\n\
             [c2s]\nlisten = [\"127.0.0.1:{c2s_port}\"]\ndirect_tls = [\"127.0.0.1:{tls_port}\"]\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
             [sasl]\nscram_iterations = 4096\n\n\
             [limits]\nmax_connections_per_ip = 100000\nconnection_rate_per_ip = 100000\nconnection_burst_per_ip = 100000\n\n{extra}"
        ),
    )
    .expect("write config");
    let config = config_path.to_str().expect("UTF-8 config path");

    for &(jid, password) in users {
        let out = run_cli(
            binary,
            &[
                "user",
                "add",
                jid,
                "--password",
                password,
                "--config",
                config,
            ],
        );
        assert!(
            out.status.success(),
            "parley user add {jid} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let log = dir.path().join("server.log");
    let log_file = File::create(&log).expect("server log");
    let child = Command::new(binary)
        .args(["serve", "--config", config])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().expect("clone log")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start parley serve");
    let mut server = ServerProcess { child, log };
    server.wait_for(SocketAddr::from(([127, 0, 0, 1], c2s_port)));
    Deployment {
        server,
        c2s_port,
        admin_port,
        config: config_path,
        dir,
    }
}

/// Where `tests/run` unpacked a Debian package a test runs as shipped (never installed):
/// `~/.cache/parley/{name}` (or under `$XDG_CACHE_HOME`). Fails, never skips, when it is
/// not there, saying how to get it.
pub fn unpacked_deb(name: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let root = cache.join("parley").join(name);
    assert!(
        root.join("usr").is_dir(),
        "{} is missing: run the test command from the README (tests/run), which fetches \
         and unpacks it",
        root.display()
    );
    root
}
