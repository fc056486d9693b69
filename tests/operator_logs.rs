//! What an operator reads (issue 17): the real `parley serve` process's log, as a journal or a
//! file gets it (not a terminal). Failed logins are logged at info with the account, address,
//! mechanism and reason and never the password; admin actions leave an audit line; no ANSI
//! colour codes; `[log] format = "json"` gives one JSON object per line. The shipped fail2ban
//! filter (`cluster/fail2ban/filter.d/parley.conf`) is run by Debian's own `fail2ban-regex`
//! over those logs and must find the offender's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use parley_proto::sasl::Mechanism;
use parley_testkit::process::{deploy_with, run_cli, unpacked_deb, Deployment};
use parley_testkit::Client;

const WRONG: &str = "hunter2-wrong-password";

/// Fails one SCRAM login as `user` from loopback address `source`.
async fn fail_login(deployment: &Deployment, source: Ipv4Addr, user: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], deployment.c2s_port));
    let mut c = Client::connect_from(addr, IpAddr::V4(source)).await;
    c.open().await.expect("open");
    c.starttls().await.expect("starttls");
    c.open().await.expect("open after TLS");
    assert!(c.auth(Mechanism::ScramSha256, user, WRONG).await.is_err());
}

/// Waits (bounded) until the server's log holds `needle`; the log.
fn log_with(deployment: &Deployment, needle: &str) -> String {
    parley_testkit::poll_until(
        &format!("{needle:?} in the server's log"),
        Duration::from_secs(10),
        || {
            let log = deployment.server.log();
            log.contains(needle).then_some(log)
        },
    )
}

/// `fail2ban-regex -o ip LOG FILTER`: the addresses the shipped filter finds.
fn fail2ban_ips(log: &Path) -> Vec<String> {
    let f2b = unpacked_deb("fail2ban");
    let filter = parley_testkit::workspace_root().join("cluster/fail2ban/filter.d/parley.conf");
    let out = Command::new("python3")
        .arg(f2b.join("usr/bin/fail2ban-regex"))
        .args(["-o", "ip"])
        .arg(log)
        .arg(&filter)
        .env("PYTHONPATH", f2b.join("usr/lib/python3/dist-packages"))
        .output()
        .expect("run fail2ban-regex");
    assert!(
        out.status.success(),
        "fail2ban-regex failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Text logs: the failed login's line with its fields, the audit line of `parley user del`,
/// no colour codes, no password; fail2ban finds the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_admin_actions_are_logged_plainly_for_fail2ban() {
    let binary = parley_testkit::parley_binary();
    let deployment = deploy_with(&binary, &[("alice@localhost", "right pw")], "");
    fail_login(&deployment, Ipv4Addr::new(127, 0, 0, 3), "alice").await;
    let log = log_with(&deployment, "authentication failed");
    let line = log
        .lines()
        .find(|l| l.contains("parley::auth: authentication failed"))
        .unwrap_or_else(|| panic!("no parley::auth line in:\n{log}"));
    for field in [
        "user=alice@localhost",
        "ip=127.0.0.3",
        "mechanism=SCRAM-SHA-256",
        "reason=not-authorized",
    ] {
        assert!(line.contains(field), "{field} missing from: {line}");
    }

    let config = deployment.config.to_str().unwrap();
    let out = run_cli(
        &binary,
        &["user", "del", "alice@localhost", "--config", config],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = log_with(&deployment, "parley::audit");
    let audit = log.lines().find(|l| l.contains("parley::audit")).unwrap();
    for field in [
        "action=user.delete",
        "target=alice@localhost",
        "who=127.0.0.1",
    ] {
        assert!(audit.contains(field), "{field} missing from: {audit}");
    }

    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log that is not a terminal"
    );
    assert!(!log.contains(WRONG), "the password was logged");
    let file = deployment.dir.path().join("server.log");
    assert_eq!(fail2ban_ips(&file), ["127.0.0.3"]);
}

/// `[log] format = "json"`: every line is one JSON object; the failed login's fields are
/// JSON fields; fail2ban's second pattern finds the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_for_fail2ban() {
    let binary = parley_testkit::parley_binary();
    let deployment = deploy_with(
        &binary,
        &[("bob@localhost", "right pw")],
        "[log]\nformat = \"json\"\n",
    );
    fail_login(&deployment, Ipv4Addr::new(127, 0, 0, 4), "bob").await;
    let log = log_with(&deployment, "authentication failed");
    let mut auth = None;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        if v["target"] == "parley::auth" {
            auth = Some(v);
        }
    }
    let auth = auth.unwrap_or_else(|| panic!("no parley::auth object in:\n{log}"));
    assert_eq!(auth["level"], "INFO");
    assert_eq!(auth["fields"]["ip"], "127.0.0.4");
    assert_eq!(auth["fields"]["user"], "bob@localhost");
    assert_eq!(auth["fields"]["mechanism"], "SCRAM-SHA-256");
    assert!(!log.contains(WRONG), "the password was logged");
    let file = deployment.dir.path().join("server.log");
    assert_eq!(fail2ban_ips(&file), ["127.0.0.4"]);
}

/// Config loading as an operator meets it: without `--config` the binary finds
/// `./parley.toml` and says which file it read; a `PARLEY_SECTION__KEY` variable overrides a
/// key and an error about it names the variable; a secret comes from its `_file` key.
#[test]
fn the_config_is_found_overridden_from_the_environment_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "token-from-a-secret-file-0123\n").unwrap();
    std::fs::write(
        dir.path().join("parley.toml"),
        format!(
            "[server]\nhosts = [\"example.org\"]\n[admin]\ntoken_file = {:?}\n",
            secret.display()
        ),
    )
    .unwrap();
    let run = |vars: &[(&str, &str)]| {
        let out = Command::new(parley_testkit::parley_binary())
            .args(["check", "config"])
            .current_dir(dir.path())
            .env_remove("PARLEY_CONFIG")
            .envs(vars.iter().copied())
            .output()
            .expect("run parley");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("config OK: parley.toml"), "{out}");
    let (ok, out) = run(&[("PARLEY_C2S__MAX_AUTH_ATTEMPTS", "0")]);
    assert!(!ok);
    assert!(
        out.contains("environment variable PARLEY_C2S__MAX_AUTH_ATTEMPTS (c2s.max_auth_attempts)"),
        "{out}"
    );
    let (ok, out) = run(&[("PARLEY_LOG__LEVEL", "infoo")]);
    assert!(
        !ok && out.contains("PARLEY_LOG__LEVEL") && out.contains("unknown level"),
        "{out}"
    );
}
