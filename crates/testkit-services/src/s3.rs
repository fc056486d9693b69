//! A real S3-compatible object store for tests: `s3s-fs`, the file-system server of the
//! s3s project (an S3 protocol implementation in Rust: SigV4 authentication, multipart
//! uploads, conditional writes, ranged GETs), installed by `tests/run` with `cargo
//! install`. It runs on a free loopback port with a test key pair, over a temporary
//! directory, under the same watchdog as [`crate::PgServer`].
//!
//! s3s-fs keeps each bucket as a directory of the root and each object as a file in it, and
//! the multipart uploads in progress as `.upload-*` files in the root; so a test can see
//! exactly what is stored, and that nothing of a refused upload stays, without a client of
//! its own.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::pg::{random_hex, Watched};

/// How long s3s-fs may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The version `tests/run` installs.
pub const S3S_FS_VERSION: &str = "0.14.1";
/// The test key pair and region.
pub const S3_ACCESS_KEY: &str = "parley-test-key";
pub const S3_SECRET_KEY: &str = "parley-test-secret-0123456789";
pub const S3_REGION: &str = "us-east-1";

/// `s3s-fs` on `PATH` or in cargo's bin directory.
fn s3s_fs_binary() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"));
    let dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    match dirs
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
    {
        Some(path) => path,
        None => panic!(
            "s3s-fs not found on PATH or in ~/.cargo/bin: install it with `cargo install \
             --locked s3s-fs --version {S3S_FS_VERSION} --features binary` (tests/run does)"
        ),
    }
}

/// A running s3s-fs, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    root: PathBuf,
    process: Watched,
    dir: TempDir,
}

impl S3Server {
    /// Starts s3s-fs on a free loopback port with [`S3_ACCESS_KEY`] and [`S3_SECRET_KEY`],
    /// and waits until it accepts connections. Panics with an install hint if it is not
    /// installed.
    pub fn start() -> S3Server {
        let binary = s3s_fs_binary();
        let dir = tempfile::Builder::new()
            .prefix("parley-s3-")
            .tempdir()
            .expect("temp dir for s3s-fs");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("s3s-fs root");
        let port = crate::free_port();
        let args: Vec<String> = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            S3_ACCESS_KEY,
            "--secret-key",
            S3_SECRET_KEY,
            &root.display().to_string(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let log = dir.path().join("s3s-fs.log");
        let mut process = Watched::spawn(dir.path(), log, "KILL", &binary, &args);
        let report = process.log_reader();
        crate::poll_until_reporting(
            "s3s-fs accepting connections",
            START_TIMEOUT,
            || {
                if process.exited() {
                    panic!("s3s-fs exited on start:\n{}", process.log());
                }
                TcpStream::connect(("127.0.0.1", port)).ok()
            },
            report,
        );
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            root,
            process,
            dir,
        }
    }

    /// A new, empty bucket of its own for one test.
    pub fn create_bucket(&self) -> String {
        let name = format!("parley-{}", random_hex());
        std::fs::create_dir(self.root.join(&name)).expect("create a bucket");
        name
    }

    /// The keys of the objects in `bucket`, sorted.
    pub fn objects(&self, bucket: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(key) = path.strip_prefix(base) {
                    out.push(key.to_string_lossy().into_owned());
                }
            }
        }
        let base = self.root.join(bucket);
        let mut keys = Vec::new();
        walk(&base, &base, &mut keys);
        keys.sort();
        keys
    }

    /// The multipart uploads begun and neither completed nor aborted, in any bucket
    /// (s3s-fs's `.upload-ID.json` files; their parts go with them).
    pub fn open_multipart_uploads(&self) -> Vec<String> {
        let mut open: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-") && n.ends_with(".json"))
            .collect();
        open.sort();
        open
    }

    /// The `[upload.s3]` section of a Parley config for `bucket` (with `prefix`).
    pub fn upload_config(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "[upload.s3]\nendpoint = \"{}\"\nallow_http = true\nbucket = \"{bucket}\"\n\
             region = \"{S3_REGION}\"\naccess_key_id = \"{S3_ACCESS_KEY}\"\n\
             secret_access_key = \"{S3_SECRET_KEY}\"\nprefix = \"{prefix}\"\n",
            self.endpoint
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temporary directory (the root and the log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its output so far, for failure messages.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.process.stop("KILL");
    }
}

/// One s3s-fs for the whole test binary, started on first use; tests keep apart by
/// bucket ([`S3Server::create_bucket`]). The watchdog kills it when the binary exits.
pub fn shared_s3() -> &'static S3Server {
    static SHARED: OnceLock<S3Server> = OnceLock::new();
    SHARED.get_or_init(S3Server::start)
}
