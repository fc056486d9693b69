//! Locating the real `parley` binary for tests that run it as a process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (where Cargo.toml and tests/ live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit sits two levels below the workspace root")
        .to_owned()
}

/// `target/<profile>/parley`, next to the running test binary (`target/<profile>/deps/…`).
///
/// Brought up to date with cargo once per test process: `cargo test -p parley-tests` does
/// not rebuild another package's binary, and a stale one would test yesterday's code. A
/// no-op build takes a fraction of a second. Without cargo (a test binary run by hand) an
/// existing binary is used as it is.
pub fn parley_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_parley).clone()
}

fn build_parley() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary directory");
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile directory")
    } else {
        deps
    };
    let binary = profile_dir.join(format!("parley{}", std::env::consts::EXE_SUFFIX));
    let target_dir = profile_dir.parent().expect("target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "-p", "parley", "--bin", "parley"]);
    // What cargo set for this test process, not what the user set: build scripts (ring's)
    // track CARGO_MANIFEST_DIR, so passing it on would rebuild half the tree each time.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key == "OUT_DIR"
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_by_cargo {
            cmd.env_remove(key);
        }
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = match cmd
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace_root())
        .status()
    {
        Ok(status) => status,
        Err(e) if binary.is_file() => {
            eprintln!(
                "cannot run `{cargo} build` ({e}); using {} as it is",
                binary.display()
            );
            return binary;
        }
        Err(e) => panic!("running `{cargo} build -p parley --bin parley`: {e}"),
    };
    assert!(
        status.success() && binary.is_file(),
        "`cargo build -p parley --bin parley` did not produce {} ({status})",
        binary.display()
    );
    binary
}
