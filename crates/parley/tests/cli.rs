//! Runs the real `parley` binary against a throw-away config and SQLite database:
//! account round trips, bulk import and `check config`, including how bad input is
//! reported (stderr text and exit codes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use parley_proto::sasl::ScramHash;

/// A temp directory holding a config whose storage lives in the same directory.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A loopback address nothing listens on (bound a moment ago, then let go).
fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("parley.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = [\"localhost\", \"Example.org\"]\ndata_dir = {:?}\n\n\
                 [storage]\nurl = \"sqlite://{}\"\n\n[sasl]\nscram_iterations = 4096\n\n\
                 [admin]\nlisten = \"{}\"\n",
                dir.path().join("data").display().to_string(),
                dir.path().join("parley.db").display(),
                // No server runs here: account commands change the storage and say so.
                closed_port()
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    /// Runs `parley ARGS --config FILE` with `stdin` piped in (empty when `None`).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_parley(args, Some(&self.config), stdin)
    }

    /// `parley user list --json`: the JIDs, in the listed order.
    fn list(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["user", "list", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args, None);
        assert_success(&out);
        let records: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        records
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| r["jid"].as_str().expect("jid").to_owned())
            .collect()
    }

    /// Checks a password straight against the store, both hashes.
    fn password_works(&self, username: &str, password: &str) -> bool {
        let url = format!("sqlite://{}", self.dir.path().join("parley.db").display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let storage = parley_storage::open(&url).await.unwrap();
            let mut all = true;
            for hash in [ScramHash::Sha1, ScramHash::Sha256] {
                let creds = storage
                    .credentials(username, "localhost", hash)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{username} has no {hash:?} credentials"));
                assert_eq!(creds.iterations, 4096);
                all &= creds.verify_password(password);
            }
            all
        })
    }
}

fn run_parley(args: &[&str], config: Option<&Path>, stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

fn assert_exit_1(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn user_add_list_passwd_del_round_trip() {
    let env = Env::new();
    let out = env.run(
        &["user", "add", "Alice@LOCALHOST", "--password", "old pw"],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "added alice@localhost\n");

    // Without --password and with a non-terminal stdin, the first line is the password.
    let out = env.run(&["user", "add", "bob@localhost"], Some("bob's pw\n"));
    assert_success(&out);
    let out = env.run(
        &["user", "add", "carol@example.org", "--password", "c"],
        None,
    );
    assert_success(&out);

    assert_eq!(
        env.list(&[]),
        ["carol@example.org", "alice@localhost", "bob@localhost"]
    );
    assert_eq!(env.list(&["--host", "EXAMPLE.org"]), ["carol@example.org"]);
    assert!(env.password_works("alice", "old pw"));
    assert!(env.password_works("bob", "bob's pw"));

    let out = env.run(
        &["user", "passwd", "alice@localhost", "--password", "new pw"],
        None,
    );
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "changed the password of alice@localhost in the storage\n"
    );
    assert!(
        stderr(&out).contains("no running server was told"),
        "{}",
        stderr(&out)
    );
    assert!(env.password_works("alice", "new pw"));
    assert!(!env.password_works("alice", "old pw"));

    let out = env.run(&["user", "del", "bob@localhost"], None);
    assert_success(&out);
    assert_eq!(stdout(&out), "deleted bob@localhost in the storage\n");
    assert_eq!(env.list(&["--host", "localhost"]), ["alice@localhost"]);
}

#[test]
fn adding_an_account_twice_fails_naming_it() {
    let env = Env::new();
    assert_success(&env.run(&["user", "add", "dave@localhost", "--password", "x"], None));
    let out = env.run(&["user", "add", "DAVE@localhost", "--password", "y"], None);
    assert_exit_1(&out);
    assert_eq!(
        stderr(&out),
        "error: account dave@localhost already exists\n"
    );
    assert!(env.password_works("dave", "x"), "the first password stays");
}

#[test]
fn bad_account_commands_say_why() {
    let env = Env::new();
    let out = env.run(&["user", "add", "eve@example.net", "--password", "x"], None);
    assert_exit_1(&out);
    assert_eq!(
        stderr(&out),
        "error: `eve@example.net`: host `example.net` is not in [server] hosts \
         (localhost, example.org)\n"
    );

    let out = env.run(
        &["user", "add", "eve@localhost/phone", "--password", "x"],
        None,
    );
    assert_exit_1(&out);
    assert!(stderr(&out).contains("has a resource"), "{}", stderr(&out));

    let out = env.run(&["user", "del", "nobody@localhost"], None);
    assert_exit_1(&out);
    assert_eq!(
        stderr(&out),
        "error: account nobody@localhost does not exist\n"
    );

    let out = env.run(
        &["user", "passwd", "nobody@localhost", "--password", "x"],
        None,
    );
    assert_exit_1(&out);
    assert!(stderr(&out).contains("nobody@localhost does not exist"));

    let out = env.run(&["user", "add", "eve@localhost"], Some(""));
    assert_exit_1(&out);
    assert!(
        stderr(&out).starts_with("error: password: none given"),
        "{}",
        stderr(&out)
    );

    let out = env.run(&["user", "list", "--host", "example.net"], None);
    assert_exit_1(&out);
    assert!(
        stderr(&out).contains("host `example.net` is not in [server] hosts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn import_2000_lines_with_one_invalid() {
    let env = Env::new();
    let mut input = String::from("# exported from the old server\n\n");
    for i in 0..2000 {
        if i == 1234 {
            input.push_str("user1234@nowhere.test secret-1234\n");
        } else {
            input.push_str(&format!("user{i}@localhost pass word {i}\n"));
        }
    }
    let out = env.run(&["user", "import"], Some(&input));
    assert_exit_1(&out);
    let summary = stdout(&out);
    assert!(
        summary.starts_with("imported 1999, skipped 0 existing, 1 invalid in ")
            && summary.ends_with(" s\n"),
        "{summary}"
    );
    // Two header lines come first, so entry 1234 is on line 1237.
    assert_eq!(
        stderr(&out),
        "line 1237: `user1234@nowhere.test`: host `nowhere.test` is not in [server] hosts \
         (localhost, example.org)\n"
    );
    assert!(
        !stderr(&out).contains("secret"),
        "passwords are never echoed"
    );

    let listed = env.list(&[]);
    assert_eq!(listed.len(), 1999);
    for i in [0, 1, 1233, 1235, 1999] {
        assert!(listed.contains(&format!("user{i}@localhost")), "user{i}");
    }
    assert!(!listed.iter().any(|jid| jid.starts_with("user1234@")));
    assert!(env.password_works("user7", "pass word 7"));

    // Importing again creates only what is new and exits 0 when every line is valid.
    let out = env.run(
        &["user", "import"],
        Some("user0@localhost pass word 0\nnewbie@localhost pw\n"),
    );
    assert_success(&out);
    assert!(
        stdout(&out).starts_with("imported 1, skipped 1 existing, 0 invalid in "),
        "{}",
        stdout(&out)
    );
    assert_eq!(stderr(&out), "");
}

#[test]
fn check_config_accepts_a_good_file() {
    let env = Env::new();
    let out = env.run(&["check", "config"], None);
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        format!("config OK: {}\n", env.config.display())
    );

    let out = run_parley(&["check", "config"], None, None);
    assert_success(&out);
    assert_eq!(stdout(&out), "config OK: embedded default\n");

    let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/parley.toml");
    let out = run_parley(&["check", "config"], Some(&documented), None);
    assert_success(&out);
    assert!(stdout(&out).starts_with("config OK: "));
}

#[test]
fn check_config_rejects_a_bad_file_naming_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nhosts = [\"localhost\"]\n\n[c2s]\nlistn = []\n",
    )
    .unwrap();
    let out = run_parley(&["check", "config"], Some(&bad), None);
    assert_exit_1(&out);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: {}: unknown key `c2s.listn` (line 5)",
            bad.display()
        )),
        "{err}"
    );

    std::fs::write(&bad, "[c2s]\nmax_stanza_bytes = 100\n").unwrap();
    let out = run_parley(&["check", "config"], Some(&bad), None);
    assert_exit_1(&out);
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: c2s.max_stanza_bytes = 100: must be at least 10000 (RFC 6120 §13.12)\n",
            bad.display()
        )
    );

    let missing = dir.path().join("missing.toml");
    let out = run_parley(&["check", "config"], Some(&missing), None);
    assert_exit_1(&out);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: {}: cannot read config file",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );

    // Every command loads the config first, so a broken one stops them all the same way.
    std::fs::write(&bad, "[sasl]\nscram_iterations = \"many\"\n").unwrap();
    for args in [&["serve"][..], &["user", "list"][..]] {
        let out = run_parley(args, Some(&bad), None);
        assert_exit_1(&out);
        assert!(
            stderr(&out).contains("sasl.scram_iterations (line 2): invalid type"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
