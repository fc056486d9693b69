//! Records the git commit the crate is built from as `PARLEY_COMMIT` (for
//! `parley_build_info`): `unknown` outside a checkout, e.g. a container build without
//! `.git`, or without git. And lists the bundled Converse.js files (`assets/converse/`) for
//! `include_bytes!`, so that the chat page works with no Internet (`web_client.rs`).

/// Writes `$OUT_DIR/converse_assets.rs`: every file under `assets/converse` (its path with
/// `/` separators, its bytes), sorted, and the bundle's version.
fn converse_assets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/converse");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("assets/converse") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out =
        String::from("/// The bundled Converse.js files: path under the bundle, bytes.\n");
    out.push_str("pub(crate) static CONVERSE_FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    out.push_str("];\n");
    let version = std::fs::read_to_string(root.join("VERSION")).expect("assets/converse/VERSION");
    out.push_str(&format!(
        "/// Its Converse.js version.\npub(crate) const CONVERSE_VERSION: &str = {:?};\n",
        version.trim()
    ));
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR"))
        .join("converse_assets.rs");
    std::fs::write(dest, out).expect("write converse_assets.rs");
}

fn main() {
    converse_assets();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PARLEY_COMMIT={commit}");
    // A new commit changes HEAD (or the branch it points to).
    for path in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
