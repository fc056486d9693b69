//! A real PostgreSQL server for tests, started from the distribution's binaries on a free
//! loopback port in a temporary directory.
//!
//! PostgreSQL refuses to run as root, so when the tests do, the data directory is handed
//! to the `postgres` user and the server runs as that user through `setpriv`, which execs
//! (unlike `runuser`, which forks) so that the pid we signal is the postmaster itself.
//!
//! Every server runs under a small shell watchdog that stops it once the test process is
//! gone: the server shared by a test binary lives in a static that is never dropped, and
//! a test binary killed mid-run must not leave servers behind either.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The superuser `initdb` creates; trusted on loopback, so URLs carry no password.
const SUPERUSER: &str = "parley";

/// Runs `"$@"` (the service) in the background, records its pid in `$pidfile`, and stops
/// it with signal `$sig` once the process `$test_pid` is gone, exiting with the service's
/// status. The data directory is removed only in that case: while the test runs, it owns the directory (a stopped
/// service may be restarted on the same data).
const WATCHDOG: &str = r#"
test_pid=$1; dir=$2; log=$3; pidfile=$4; sig=$5; shift 5
"$@" >>"$log" 2>&1 </dev/null &
child=$!
echo "$child" >"$pidfile"
( while kill -0 "$test_pid" 2>/dev/null; do sleep 1; done; kill "-$sig" "$child" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
monitor=$!
wait "$child"
status=$?
kill "$monitor" 2>/dev/null
if ! kill -0 "$test_pid" 2>/dev/null; then rm -rf "$dir"; fi
exit "$status"
"#;

/// A service process under the watchdog.
#[derive(Debug)]
pub(crate) struct Watched {
    watchdog: Child,
    /// The service's own pid.
    pub(crate) pid: u32,
    log: PathBuf,
}

impl Watched {
    /// Starts `program args…` under the watchdog; `stop_signal` is what the watchdog sends
    /// when the test process dies. Its output goes to `log`.
    pub(crate) fn spawn(
        dir: &Path,
        log: PathBuf,
        stop_signal: &str,
        program: &Path,
        args: &[String],
    ) -> Watched {
        let pidfile = dir.join(format!("watched-{}.pid", random_hex()));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(dir)
            .arg(&log)
            .arg(&pidfile)
            .arg(stop_signal)
            .arg(program)
            .args(args)
            // initdb complains when it cannot read its working directory, which the
            // postgres user may not be allowed to.
            .current_dir(dir)
            // The watchdog outlives the test when it is killed; inheriting the test's
            // pipes would keep whoever reads them waiting.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for the service watchdog");
        let pid = crate::poll_until(
            &format!("the watchdog starting {}", program.display()),
            Duration::from_secs(10),
            || {
                std::fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
            },
        );
        Watched { watchdog, pid, log }
    }

    /// Whether the service has exited (the watchdog exits right after it).
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.watchdog.try_wait(), Ok(None))
    }

    /// Waits for the service to exit by itself; whether it succeeded.
    pub(crate) fn wait(&mut self) -> bool {
        self.watchdog.wait().is_ok_and(|status| status.success())
    }

    /// Sends `signal` to the service and waits for it to exit.
    pub(crate) fn stop(&mut self, signal: &str) {
        if !self.exited() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid.to_string())
                .status();
        }
        let _ = self.watchdog.wait();
    }

    /// The service's output so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Reads the log later, without holding on to the service (for a failure report
    /// while the service is being polled).
    pub(crate) fn log_reader(&self) -> impl FnOnce() -> String {
        let path = self.log.clone();
        move || read_log(&path)
    }
}

/// Removes `dir` once the test process is gone, for directories that outlive their
/// service's watchdog (a stopped etcd keeps its data for a restart). Waits a little
/// first so that a service stopped by its own watchdog at the same moment is gone.
pub(crate) fn remove_when_test_exits(dir: &Path) {
    let keeper = Command::new("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; sleep 2; rm -rf "$2""#)
        .arg("dir-keeper")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // Without it only a killed test binary leaks the directory; not worth failing for.
    if let Err(e) = keeper {
        eprintln!("cannot watch {}: {e}", dir.display());
    }
}

/// 16 random hex digits, for unique names; `RandomState` is seeded from the OS.
pub(crate) fn random_hex() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

/// Whether this process runs as root; `/proc/self` belongs to the effective user.
pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The `bin` directory of the newest PostgreSQL under `/usr/lib/postgresql`.
fn pg_bin_dir() -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin/initdb): \
             install postgresql (tests/run does)"
        ),
    }
}

/// `program args…`, as the `postgres` user when we are root.
fn as_pg_user(as_root: bool, program: &Path) -> (PathBuf, Vec<String>) {
    if as_root {
        (
            PathBuf::from("setpriv"),
            vec![
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--init-groups".into(),
                "--".into(),
                program.display().to_string(),
            ],
        )
    } else {
        (program.to_owned(), Vec::new())
    }
}

/// A running PostgreSQL server for tests, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct PgServer {
    /// `postgres://parley@127.0.0.1:PORT/DB` of the database created at start.
    pub url: String,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    process: Watched,
    dir: TempDir,
}

impl PgServer {
    /// Initialises a cluster in a temporary directory, starts it on a free loopback port
    /// and creates one fresh database, named by [`PgServer::url`].
    ///
    /// Panics with an install hint if PostgreSQL is not installed.
    pub fn start() -> PgServer {
        let bin = pg_bin_dir();
        let as_root = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("parley-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        if as_root {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");

        let (program, mut args) = as_pg_user(as_root, &bin.join("initdb"));
        args.extend([
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "--auth=trust".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
            "--no-sync".into(),
        ]);
        // Under the watchdog too: a test binary killed during initdb must not leave the
        // directory behind.
        let log = dir.path().join("initdb.log");
        let mut initdb = Watched::spawn(dir.path(), log, "KILL", &program, &args);
        assert!(initdb.wait(), "initdb failed:\n{}", initdb.log());

        let port = crate::free_port();
        let (program, mut args) = as_pg_user(as_root, &bin.join("postgres"));
        args.extend([
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            format!("unix_socket_directories={}", dir.path().display()),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "synchronous_commit=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=200".into(),
        ]);
        // SIGQUIT is PostgreSQL's immediate shutdown (what `pg_ctl stop -m immediate`
        // sends): nothing in a test database is worth a checkpoint.
        let log = dir.path().join("postgres.log");
        let mut process = Watched::spawn(dir.path(), log, "QUIT", &program, &args);

        // pg_isready is the server's own answer to "accepting connections?"; nothing
        // announces it, so it is asked until it says yes.
        let report = process.log_reader();
        crate::poll_until_reporting(
            &format!("PostgreSQL accepting connections on port {port}"),
            START_TIMEOUT,
            || {
                let ready = Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                if !ready && process.exited() {
                    panic!("PostgreSQL exited on start:\n{}", process.log());
                }
                ready.then_some(())
            },
            report,
        );

        let mut server = PgServer {
            url: String::new(),
            port,
            bin,
            process,
            dir,
        };
        server.url = server.database();
        server
    }

    /// Creates another empty database on this server and returns its URL.
    pub fn database(&self) -> String {
        let name = format!("parley_{}", random_hex());
        let output = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, &name])
            .output()
            .expect("run createdb");
        assert!(
            output.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's data and socket directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.process.stop("QUIT");
    }
}

/// One server for the whole test binary, started on first use; each test takes its own
/// database from it with [`PgServer::database`]. The watchdog stops it when the binary
/// exits, since statics are never dropped.
pub fn shared_pg() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(PgServer::start)
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}
