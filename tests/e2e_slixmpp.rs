//! End to end with a real client library: the `parley` binary, configured by a file and
//! provisioned with `parley user add`, serves two slixmpp clients (tests/clients/chat.py) that
//! log in over STARTTLS with SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 6120 §5, §6; RFC 5802, RFC
//! 7677), bind, send presence and chat between their full JIDs (RFC 6121 §8.5.3.1); and three
//! slixmpp clients (tests/clients/roster_presence.py) that exercise roster pushes and a mutual
//! presence subscription (RFC 6121 §2, §3, §4); slixmpp's XEP-0313 and XEP-0441 plugins
//! reading the archive back (tests/clients/mam.py); and two slixmpp-omemo clients exchanging
//! OMEMO messages over PEP (tests/clients/omemo_chat.py).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use parley_testkit::process::{deploy, deploy_with, run_with_limit};

/// How long the chat script may take in total; it stops itself within 30 s.
const SCRIPT_LIMIT: Duration = Duration::from_secs(45);

/// The workspace root (tests/ is one level below it).
fn workspace_root() -> PathBuf {
    parley_testkit::workspace_root()
}

/// Fails (never skips) when slixmpp is missing, saying how to get it.
fn require_slixmpp() {
    let probe = Command::new("python3")
        .args(["-c", "import slixmpp"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 cannot import slixmpp ({}). Run the test command from the README \
             (tests/run), which installs it.",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 is not available ({e}). Run the test command from the README (tests/run), \
             which installs python3 and slixmpp."
        ),
    }
}

#[test]
fn slixmpp_clients_chat_over_starttls_with_scram_sha1_and_sha256() {
    require_slixmpp();
    let binary = parley_testkit::parley_binary();
    let users = [
        ("alice@localhost", "correct horse 1"),
        ("bob@localhost", "battery staple 2"),
    ];
    let mut deployment = deploy(&binary, &users);
    let c2s_port = deployment.c2s_port;
    let server = &mut deployment.server;

    let script = workspace_root().join("tests/clients/chat.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--host", "127.0.0.1", "--port", &c2s_port.to_string()])
        .args([
            "--jid1",
            &format!("{}/sha1", users[0].0),
            "--password1",
            users[0].1,
        ])
        .args([
            "--jid2",
            &format!("{}/sha256", users[1].0),
            "--password2",
            users[1].1,
        ])
        .args(["--deadline", "30"]);
    let started = Instant::now();
    let (status, output) = run_with_limit(cmd, SCRIPT_LIMIT);
    let elapsed = started.elapsed();
    server.stop();
    let server_log = server.log();

    let status = status.unwrap_or_else(|| {
        panic!(
            "chat.py did not stop within {SCRIPT_LIMIT:?}:\n{output}\n--- server log ---\n{server_log}"
        )
    });
    assert!(
        status.success(),
        "chat.py failed ({status}) after {elapsed:?}:\n{output}\n--- server log ---\n{server_log}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "chat.py took {elapsed:?}, more than its 30 s budget"
    );
    eprintln!("chat.py ({elapsed:?}):\n{output}");
    // The script prints what it verified; make sure the run really went through both logins.
    assert!(output.contains("(SCRAM-SHA-1)"), "{output}");
    assert!(output.contains("(SCRAM-SHA-256)"), "{output}");
    assert!(output.trim_end().ends_with("OK"), "{output}");
}

/// RFC 6121 with a real client library (tests/clients/roster_presence.py): two slixmpp
/// clients of alice and one of bob request the roster (§2.2, interested); a roster add by one
/// of alice's clients is pushed to both (§2.1.6, §2.3.2); a subscription request answered by
/// slixmpp's default handlers (auto-approve, subscribe back) ends with `both` on both sides
/// (§3.1) and each side seeing the other's presence (§3.1.5, §4.2, §4.3).
#[test]
fn slixmpp_roster_pushes_and_mutual_subscription_rfc6121() {
    require_slixmpp();
    let binary = parley_testkit::parley_binary();
    let users = [
        ("alice@localhost", "correct horse 3"),
        ("bob@localhost", "battery staple 4"),
    ];
    let mut deployment = deploy(&binary, &users);
    let script = workspace_root().join("tests/clients/roster_presence.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &deployment.c2s_port.to_string(),
        ])
        .args(["--alice-password", users[0].1, "--bob-password", users[1].1])
        .args(["--deadline", "30"]);
    let started = Instant::now();
    let (status, output) = run_with_limit(cmd, SCRIPT_LIMIT);
    let elapsed = started.elapsed();
    deployment.server.stop();
    let server_log = deployment.server.log();

    let status = status.unwrap_or_else(|| {
        panic!(
            "roster_presence.py did not stop within {SCRIPT_LIMIT:?}:\n{output}\n\
             --- server log ---\n{server_log}"
        )
    });
    assert!(
        status.success(),
        "roster_presence.py failed ({status}) after {elapsed:?}:\n{output}\n\
         --- server log ---\n{server_log}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "roster_presence.py took {elapsed:?}, more than its 30 s budget"
    );
    eprintln!("roster_presence.py ({elapsed:?}):\n{output}");
    // The script prints each check it passed; make sure the run really went through them.
    for line in [
        "alice@localhost/one got the roster push for bob@localhost",
        "alice@localhost/two got the roster push for bob@localhost",
        "ok: bob sees alice@localhost online",
        "ok: alice/two sees bob@localhost online",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    assert!(output.trim_end().ends_with("OK"), "{output}");
}

/// Runs `tests/clients/{script}` as alice and bob (both with `password`) against a fresh
/// server, within `deadline` seconds, and checks that it succeeded and printed every line of
/// `expect` (each a step it verified) and `OK` last.
fn run_pair_script(script: &str, password: &str, deadline: u64, expect: &[&str]) {
    run_pair_script_with(script, password, deadline, expect, "")
}

/// [`run_pair_script`] with `extra` TOML sections in the server's config.
fn run_pair_script_with(script: &str, password: &str, deadline: u64, expect: &[&str], extra: &str) {
    require_slixmpp();
    let binary = parley_testkit::parley_binary();
    let users = [("alice@localhost", password), ("bob@localhost", password)];
    let mut deployment = deploy_with(&binary, &users, extra);
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/clients").join(script))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &deployment.c2s_port.to_string(),
        ])
        .args([
            "--alice",
            users[0].0,
            "--bob",
            users[1].0,
            "--password",
            password,
        ])
        .args(["--deadline", &deadline.to_string()]);
    let limit = Duration::from_secs(deadline + 20);
    let (status, output) = run_with_limit(cmd, limit);
    deployment.server.stop();
    let server_log = deployment.server.log();
    let status = status.unwrap_or_else(|| {
        panic!(
            "{script} did not stop within {limit:?}:\n{output}\n--- server log ---\n{server_log}"
        )
    });
    assert!(
        status.success(),
        "{script} failed ({status}):\n{output}\n--- server log ---\n{server_log}"
    );
    for line in expect {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    assert!(output.trim_end().ends_with("OK"), "{output}");
}

/// XEP-0313, XEP-0359, XEP-0059 and XEP-0441 with a real client library
/// (tests/clients/mam.py): slixmpp's plugins read the conversation back from a new client,
/// page by page; the recipient's archive ids equal the stanza-ids it was given; and
/// preferences set through slixmpp are obeyed.
#[test]
fn slixmpp_reads_the_archive_with_its_xep0313_and_xep0441_plugins() {
    run_pair_script(
        "mam.py",
        "correct horse 5",
        30,
        &[
            "bob received 5 messages with stanza-ids",
            "alice's new client read 5 archived messages in pages of 2",
            "bob's archive ids equal the stanza-ids he was given",
            "preferences set through XEP-0441 are obeyed",
        ],
    );
}

/// XEP-0384 over XEP-0163 with real clients (tests/clients/omemo_chat.py): two slixmpp clients
/// with the slixmpp-omemo plugin become mutual contacts, publish their OMEMO device lists
/// and bundles to their PEP services (open access, through publish-options), fetch each
/// other's, and exchange encrypted messages that each decrypts.
#[test]
fn slixmpp_omemo_clients_exchange_encrypted_messages_over_pep() {
    run_pair_script(
        "omemo_chat.py",
        "correct horse 6",
        40,
        &[
            "both clients published their OMEMO device lists and bundles",
            "each client got the other's device list from the PEP service",
            "bob decrypted alice's message",
            "alice decrypted bob's answer",
        ],
    );
}

/// XEP-0077 with a real client library (tests/clients/register.py): slixmpp's plugin
/// registers a new account in band (`[register] mode = "open"`), which then logs in and
/// chats; its password change works and its removal ends the account.
#[test]
fn slixmpp_registers_changes_and_removes_an_account_with_its_xep0077_plugin() {
    run_pair_script_with(
        "register.py",
        "correct horse 7",
        30,
        &[
            "carl registered in band and logged in",
            "alice received carl's message",
            "carl changed his password and logged in with the new one",
            "carl removed his account and can no longer log in",
        ],
        "[register]\nmode = \"open\"\n",
    );
}

/// XEP-0054, XEP-0084 (with XEP-0115 +notify), XEP-0402 and XEP-0352 with a real client
/// library (tests/clients/account_data.py): each step through slixmpp's own plugin.
#[test]
fn slixmpp_vcard_avatar_bookmarks_and_csi_plugins_work() {
    run_pair_script(
        "account_data.py",
        "correct horse 8",
        40,
        &[
            "bob read alice's vCard (XEP-0054)",
            "bob got alice's avatar through PEP (XEP-0084)",
            "alice stored and read back a bookmark (XEP-0402)",
            "bob, inactive, got only alice's latest presence, flushed by her message (XEP-0352)",
        ],
    );
}

/// Debian's python3-slixmpp 1.8.3 (poezio's library) as `tests/run` unpacked it.
fn slixmpp_1_8_3() -> PathBuf {
    parley_testkit::process::unpacked_deb("slixmpp-1.8.3").join("usr/lib/python3/dist-packages")
}

/// Issue 17 / RFC 6120 §6.4.5: Debian's slixmpp 1.8.3 (what poezio runs on), left to pick
/// its SASL mechanism, offers `tls-unique` on both -PLUS mechanisms (undefined on TLS 1.3),
/// then SCRAM with the `y` flag (refused by RFC 5802 §6 while -PLUS is offered), then PLAIN.
/// None of the refusals checked a credential, so none counts against `max_auth_attempts`:
/// it logs in on its first connection instead of being cut off after three.
#[test]
fn rfc6120_6_4_5_debian_slixmpp_1_8_3_logs_in_on_its_first_connection() {
    require_slixmpp();
    let slixmpp = slixmpp_1_8_3();
    let binary = parley_testkit::parley_binary();
    let users = [("dave@localhost", "poezio pw 1")];
    let mut deployment = deploy(&binary, &users);
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/clients/login.py"))
        .env("PYTHONPATH", &slixmpp)
        .args(["--host", "127.0.0.1"])
        .args(["--port", &deployment.c2s_port.to_string()])
        .args(["--jid", users[0].0, "--password", users[0].1])
        .args(["--deadline", "20"]);
    let (status, output) = run_with_limit(cmd, Duration::from_secs(40));
    deployment.server.stop();
    let server_log = deployment.server.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "login.py failed:\n{output}\n--- server log ---\n{server_log}"
    );
    assert!(output.contains("slixmpp 1.8.3"), "{output}");
    // It did walk down the refusals (else this test would prove nothing).
    assert!(
        output.contains("tried: SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256"),
        "{output}"
    );
    assert!(output.trim_end().ends_with("OK"), "{output}");
}
