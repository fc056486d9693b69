//! Locating the real `parley` binary for tests that run it as a process.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (where Cargo.toml and tests/ live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit sits two levels below the workspace root")
        .to_owned()
}

/// `target/<profile>/parley`, next to the running test binary (`target/<profile>/deps/…`).
/// Built once with cargo, into the same target directory, if it is not there yet.
pub fn parley_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary directory");
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile directory")
    } else {
        deps
    };
    let binary = profile_dir.join(format!("parley{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        return binary;
    }
    let target_dir = profile_dir.parent().expect("target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(["build", "-p", "parley", "--bin", "parley"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("running `{cargo} build -p parley --bin parley`: {e}"));
    assert!(
        status.success() && binary.is_file(),
        "`cargo build -p parley --bin parley` did not produce {} ({status})",
        binary.display()
    );
    binary
}
