//! XEP-0227 migrations with real servers, both ways: accounts, their credentials and their
//! rosters move from Prosody 0.12 (its own `mod_storage_xep0227` files) and from ejabberd
//! 23.01 (`ejabberdctl export_piefxis`) into Parley with `parley user import --piefxis`,
//! and from Parley (`parley user export`) back into each; the user logs in with the same
//! password on the other side and finds the same roster (and, in ejabberd, the message
//! Parley held offline for her).

use std::net::SocketAddr;

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::im::{chat, roster_item};
use parley_testkit::process::{deploy, run_cli, Deployment};
use parley_testkit::{parley_binary, Client, ClientError, Ejabberd, Prosody};
use parley_xml::Element;

/// Nothing in these tests federates; Prosody and ejabberd still want a resolver.
fn no_dns() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

fn ok<T>(r: Result<T, ClientError>, log: impl FnOnce() -> String) -> T {
    r.unwrap_or_else(|e| panic!("{e}\n--- log ---\n{}", log()))
}

/// Logs in on any server of `localhost` with `mechanism` (after STARTTLS where offered,
/// which ejabberd and Prosody here do not require).
async fn login(
    addr: SocketAddr,
    tls: bool,
    mechanism: Mechanism,
    user: &str,
    pw: &str,
) -> Result<Client, ClientError> {
    let mut c = Client::connect(addr).await;
    c.open().await?;
    if tls {
        c.starttls().await?;
        c.open().await?;
    }
    c.auth(mechanism, user, pw).await?;
    c.open().await?;
    c.bind(Some("migrated"))
        .await
        .map_err(|e| ClientError::Unexpected(e.to_string()))?;
    Ok(c)
}

fn cli(d: &Deployment, args: &[&str]) -> String {
    let config = d.config.to_str().unwrap();
    let mut all = args.to_vec();
    all.extend(["--config", config]);
    let out = run_cli(&parley_binary(), &all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "parley {args:?}: {text}");
    text
}

fn parley(d: &Deployment) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], d.c2s_port))
}

/// Prosody → Parley → Prosody. Pat logs in on Prosody (which turns the plaintext password
/// into SCRAM-SHA-1 data in Pat's XEP-0227 file) and adds a contact; Parley imports that
/// file, Pat logs in there with SCRAM-SHA-1 (the only keys Prosody had) and finds the
/// contact, adds another; Parley exports one file per user, and a fresh Prosody reading
/// them lets Pat in with the same password and shows both contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0227_accounts_and_rosters_move_from_prosody_to_parley_and_back() {
    let from = tempfile::tempdir().unwrap();
    let prosody = Prosody::start_xep0227("localhost", no_dns(), &[("pat", "pw")], from.path());
    let mut pat = ok(
        login(prosody.c2s, false, Mechanism::Plain, "pat", "pw").await,
        || prosody.log(),
    );
    let set = pat
        .roster_set(roster_item("quinn@localhost", Some("Quinn"), &["Friends"]))
        .await;
    assert_eq!(ok(set, || prosody.log()).attr("type"), Some("result"));
    drop(pat);
    drop(prosody);
    let file = std::fs::read_to_string(from.path().join("pat@localhost.xml")).unwrap();
    assert!(
        file.contains("urn:xmpp:pie:0#scram") && file.contains("quinn@localhost"),
        "Prosody's own XEP-0227 file: {file}"
    );

    let d = deploy(&parley_binary(), &[]);
    let said = cli(
        &d,
        &["user", "import", "--piefxis", from.path().to_str().unwrap()],
    );
    assert!(
        said.contains("imported 1 accounts (1 roster items"),
        "{said}"
    );
    let mut pat = ok(
        login(parley(&d), true, Mechanism::ScramSha1, "pat", "pw").await,
        || d.server.log(),
    );
    let roster = ok(pat.roster().await, || d.server.log());
    let quinn = roster.item("quinn@localhost").expect("Prosody's contact");
    assert_eq!(quinn.name.as_deref(), Some("Quinn"));
    assert_eq!(quinn.groups, ["Friends"]);
    let set = pat
        .roster_set(roster_item("romeo@localhost", Some("Romeo"), &[]))
        .await;
    assert_eq!(ok(set, || d.server.log()).attr("type"), Some("result"));
    // A wrong password still fails: the keys are Pat's, not a door left open.
    assert!(
        login(parley(&d), true, Mechanism::ScramSha1, "pat", "wrong")
            .await
            .is_err()
    );
    // PLAIN is checked against the SHA-1 keys when there are no others; SCRAM-SHA-256 can
    // never pass with them (why `[sasl] mechanisms` can leave it out, docs/migration.md).
    ok(
        login(parley(&d), true, Mechanism::Plain, "pat", "pw").await,
        || d.server.log(),
    );
    assert!(login(parley(&d), true, Mechanism::ScramSha256, "pat", "pw")
        .await
        .is_err());

    let back = tempfile::tempdir().unwrap();
    let out = back.path().join("export");
    let said = cli(&d, &["user", "export", "--per-user", out.to_str().unwrap()]);
    assert!(
        said.contains("exported 1 accounts (2 roster items, 0 offline messages)"),
        "{said}"
    );
    let prosody = Prosody::start_xep0227("localhost", no_dns(), &[], &out);
    let mut pat = ok(
        login(prosody.c2s, false, Mechanism::ScramSha1, "pat", "pw").await,
        || prosody.log(),
    );
    let roster = ok(pat.roster().await, || prosody.log());
    assert!(
        roster.item("quinn@localhost").is_some(),
        "{:?}",
        roster.items
    );
    assert_eq!(
        roster
            .item("romeo@localhost")
            .and_then(|r| r.name.as_deref()),
        Some("Romeo")
    );
}

/// ejabberd → Parley → ejabberd → Parley. ejabberd keeps plaintext passwords (its default)
/// and exports Pat with Pat's contact; Parley imports the export's directory (the main file
/// and, through its XInclude, the host file), derives keys from the password and lets Pat
/// in with SCRAM-SHA-256; Parley's export (SCRAM data, no password; encoded twice, as
/// ejabberd 23.01 reads it) goes into an ejabberd that stores SCRAM-SHA-1 data, which lets
/// Pat in with the same password and shows the roster; that ejabberd's own export of the
/// SCRAM data imports into Parley again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0227_accounts_and_rosters_move_from_ejabberd_to_parley_and_back() {
    let ejabberd = Ejabberd::start_on(
        "localhost",
        no_dns(),
        &[("pat", "pw")],
        parley_testkit::free_port(),
    );
    ejabberd.ctl(&[
        "add_rosteritem",
        "pat",
        "localhost",
        "quinn",
        "localhost",
        "Quinn",
        "Friends",
        "both",
    ]);
    let export = ejabberd.scratch_dir("export");
    ejabberd.ctl(&["export_piefxis", export.to_str().unwrap()]);

    let d = deploy(&parley_binary(), &[]);
    let said = cli(
        &d,
        &["user", "import", "--piefxis", export.to_str().unwrap()],
    );
    assert!(
        said.contains("imported 1 accounts (1 roster items"),
        "{said}"
    );
    let mut pat = ok(
        login(parley(&d), true, Mechanism::ScramSha256, "pat", "pw").await,
        || d.server.log(),
    );
    let roster = ok(pat.roster().await, || d.server.log());
    let quinn = roster.item("quinn@localhost").expect("ejabberd's contact");
    assert_eq!(quinn.subscription, "both");
    assert_eq!(quinn.groups, ["Friends"]);
    // A message for Pat while no resource of hers is available (this one sent no presence):
    // stored offline (RFC 6121 §8.5.2.2.1), and exported with its arrival stamp.
    pat.send(&chat("pat@localhost", "chat", "kept for later"))
        .await;
    ok(pat.sync().await, || d.server.log());
    drop(pat);

    let file = tempfile::NamedTempFile::new().unwrap();
    // ejabberd 23.01 reads SCRAM data base64-encoded twice (as it writes it). The offline
    // message is stored by Pat's user actor after the ping's answer: export until it is in.
    let said = parley_testkit::poll_until(
        "the offline message in the export",
        std::time::Duration::from_secs(10),
        || {
            let said = cli(
                &d,
                &[
                    "user",
                    "export",
                    "--scram-base64-twice",
                    file.path().to_str().unwrap(),
                ],
            );
            said.contains("1 offline messages").then_some(said)
        },
    );
    assert!(
        said.contains("exported 1 accounts (1 roster items, 1 offline messages)"),
        "{said}"
    );
    let target = Ejabberd::start_with(
        "localhost",
        no_dns(),
        &[],
        parley_testkit::free_port(),
        true,
    );
    let dir = target.scratch_dir("import");
    let copy = dir.join("parley.xml");
    std::fs::copy(file.path(), &copy).unwrap();
    // ejabberd runs as its own user: the copy must be readable to it (a temp file is 0600).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    target.ctl(&["import_piefxis", copy.to_str().unwrap()]);
    let mut pat = ok(
        login(target.c2s, false, Mechanism::ScramSha1, "pat", "pw").await,
        || target.log(),
    );
    let roster = ok(pat.roster().await, || target.log());
    assert_eq!(
        roster
            .item("quinn@localhost")
            .map(|q| q.subscription.as_str()),
        Some("both"),
        "{:?}",
        roster.items
    );
    // XEP-0227 §4.4: the offline message reached ejabberd, which delivers it on Pat's
    // initial presence with the stamp of its arrival at Parley.
    pat.send(&Element::new("presence", ns::CLIENT)).await;
    let kept = ok(
        pat.expect_match("the offline message", |el| {
            el.name() == "message" && parley_testkit::im::body(el) == "kept for later"
        })
        .await,
        || target.log(),
    );
    assert!(
        kept.get_child("delay", ns::DELAY).is_some_and(|d| d
            .attr("stamp")
            .and_then(parley_proto::datetime::parse_xep0082)
            .is_some()),
        "{kept}"
    );

    // And what that ejabberd exports of its SCRAM data (encoded twice) reads in Parley as
    // ejabberd means it: Pat's password still works.
    let again = target.scratch_dir("again");
    target.ctl(&["export_piefxis", again.to_str().unwrap()]);
    let d2 = deploy(&parley_binary(), &[]);
    let said = cli(
        &d2,
        &["user", "import", "--piefxis", again.to_str().unwrap()],
    );
    assert!(said.contains("imported 1 accounts"), "{said}");
    ok(
        login(parley(&d2), true, Mechanism::ScramSha1, "pat", "pw").await,
        || d2.server.log(),
    );
}
