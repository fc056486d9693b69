//! Real web clients: Converse.js (from npm) in Debian's Chromium, driven by playwright-core
//! (tests/browser/converse.mjs), logs in to Parley over WebSocket (RFC 7395) and chats with a
//! slixmpp user (tests/clients/echo.py) connected over TCP.
//!
//! One test drops Converse's WebSocket under it and checks that Converse resumes its XEP-0198
//! session: same full JID, nothing lost, nothing twice. Another sends a file (XEP-0363) that
//! the slixmpp user's side downloads intact. In another, two Converse.js users, each in their
//! own page, create and join a room (XEP-0045), chat in it, and one sends a file into it that
//! the other downloads intact.
//!
//! The last test is the issue's "done when": a new user opens the cluster's own chat page
//! (`[http] web_client`) through a round-robin HAProxy in front of three nodes and chats.
//!
//! Needs node, npm packages in tests/browser (npm ci) and /usr/bin/chromium: tests/run
//! installs them. A missing piece fails the test with the command that fixes it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use parley_testkit::cluster::{add_users, http_get, wait_members, ClusterNode, Extra};
use parley_testkit::im::{chat, next_id};
use parley_testkit::{
    free_port, poll_until, shared_etcd, shared_pg, workspace_root, Client, Haproxy, TestServer,
};

/// A helper process, stopped with the test: its standard input closes (the echo user
/// leaves on that), then it is killed if still there.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_browser_kit() {
    let root = workspace_root();
    assert!(
        root.join("tests/browser/node_modules/converse.js/dist/converse.min.js")
            .is_file()
            && root
                .join("tests/browser/node_modules/playwright-core")
                .is_dir(),
        "Converse.js and playwright-core are not installed: run tests/run (or `npm ci` in tests/browser)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is not installed: run tests/run (apt-get install chromium)"
    );
}

/// Starts the slixmpp echo user and waits until it is online.
fn echo_user(c2s: std::net::SocketAddr, jid: &str) -> Reaped {
    let mut child = Command::new("python3")
        .arg(workspace_root().join("tests/clients/echo.py"))
        .args(["--port", &c2s.port().to_string(), "--jid", jid])
        .args(["--password", "password", "--deadline", "300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with slixmpp (tests/run installs it)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("echo.py: {line}");
            if line.trim() == "READY" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the slixmpp echo user came online");
    Reaped(child)
}

/// Runs the Converse.js driver; panics with its output unless it succeeded.
fn converse(args: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new("node")
        .arg(workspace_root().join("tests/browser/converse.mjs"))
        .args(args)
        .output()
        .expect("node (tests/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "Converse.js failed after {:?}:\n{text}",
        started.elapsed()
    );
    assert!(text.contains("OK"), "{text}");
    text
}

const ADMIN: &str = "browser-admin-token-0123456789";

/// A Parley server as a web site uses it: the page's origin allowed, the admin API on, and
/// the slixmpp echo user online.
struct Site {
    server: TestServer,
    page_port: u16,
    _bob: Reaped,
}

impl Site {
    fn start() -> Site {
        require_browser_kit();
        let page_port = parley_testkit::free_port();
        let origin = format!("http://127.0.0.1:{page_port}");
        let server = TestServer::start(|c| {
            c.http.origins = vec![origin.clone()];
            c.admin.token = Some(ADMIN.into());
        });
        let _bob = echo_user(server.c2s(), "bob@localhost");
        Site {
            server,
            page_port,
            _bob,
        }
    }

    fn websocket(&self) -> String {
        format!("ws://{}/xmpp-websocket", self.server.handle.http.unwrap())
    }

    fn bosh(&self) -> String {
        format!("http://{}/http-bind", self.server.handle.http.unwrap())
    }

    fn admin_api(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.handle.admin.unwrap())
    }

    /// Runs Converse.js with `args` (transport and login), chatting with bob.
    fn converse(&self, args: &[&str]) -> String {
        let page_port = self.page_port.to_string();
        let mut all = vec!["--page-port", &page_port, "--peer", "bob@localhost"];
        all.extend(["--admin-token", ADMIN]);
        all.extend(args);
        converse(&all)
    }
}

/// RFC 7395 with a real browser client: Converse.js logs in over WebSocket from its own
/// origin (allowed by [http] origins) and exchanges messages with a slixmpp user.
#[test]
fn converse_js_over_websocket_chats_with_a_slixmpp_user() {
    let site = Site::start();
    site.converse(&[
        "--ws",
        &site.websocket(),
        "--jid",
        "alice@localhost/converse",
        "--password",
        "password",
    ]);
}

/// XEP-0313 with a real browser client: after Converse.js chatted with the slixmpp user,
/// a fresh browser profile (no local cache) logs in again and the opened chat shows the
/// conversation, which Converse fetched from the server's archive.
#[test]
fn converse_js_shows_archived_history_after_a_reload_with_no_local_cache() {
    let site = Site::start();
    let out = site.converse(&[
        "--ws",
        &site.websocket(),
        "--jid",
        "alice@localhost/converse",
        "--password",
        "password",
        "--history",
        "1",
    ]);
    assert!(
        out.contains("history shown from the archive after a reload with no local cache"),
        "{out}"
    );
}

/// XEP-0363 with a real browser client (the issue's "send a file that the other user
/// downloads intact"): Converse.js finds the upload service, gets a slot, PUTs a file
/// from its page's origin and sends its URL to the slixmpp user, whose download of it is
/// byte for byte what Converse sent.
#[test]
fn converse_js_sends_a_file_that_the_peer_downloads_intact() {
    require_browser_kit();
    let page_port = parley_testkit::free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = TestServer::start(|c| {
        c.http.origins = vec![origin.clone()];
        c.admin.token = Some(ADMIN.into());
        c.upload.enabled = true;
    });
    let _bob = echo_user(server.c2s(), "bob@localhost");
    let site = Site {
        server,
        page_port,
        _bob,
    };
    let out = site.converse(&[
        "--ws",
        &site.websocket(),
        "--jid",
        "alice@localhost/converse",
        "--password",
        "password",
        "--upload",
        "1",
    ]);
    assert!(out.contains("the peer's download is intact"), "{out}");
}

/// XEP-0045 §10.1.2, §7.2 and §7.4 with XEP-0363 §4 and §6 in a room, from real web clients
/// (the issue's "join a room, chat, and send a file that the other user downloads intact"):
/// alice and bob, each in their own Converse.js page (Chromium, separate profiles), over
/// WebSocket. Alice opens a room that does not exist: Parley creates it locked (status 201,
/// `[muc] lock_new_rooms` left at its default, true) and Converse 12 submits the instant-room
/// form itself (`muc_instant_rooms`), which Parley accepts. Bob then enters the room, and
/// each page lists the other. Each types a groupchat message that the other's page shows,
/// from the sender's nick; the room's reflection to the sender (same id, the room's XEP-0359
/// stanza-id) is taken by Converse for the message it sent, shown once. Alice picks a file with the room's file input: Converse gets a
/// slot from upload.localhost, PUTs the file from the page's origin (CORS) and sends its URL
/// to the room; bob's page shows the link, and his click on it downloads the file (an
/// attachment), byte for byte (and SHA-256) the one alice sent, under its name. Every step
/// waits on the pages (tests/browser/converse.mjs, `--room`).
#[test]
fn converse_js_users_chat_in_a_room_and_share_a_file_xep0045_10_1_2_7_4_xep0363_4_6() {
    require_browser_kit();
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = TestServer::start(|c| {
        c.http.origins = vec![origin.clone()];
        c.upload.enabled = true;
    });
    let ws = format!("ws://{}/xmpp-websocket", server.handle.http.unwrap());
    let room = format!("{}@conference.localhost", next_id("converse-room"));
    let out = converse(&[
        "--page-port",
        &page_port.to_string(),
        "--ws",
        &ws,
        "--room",
        &room,
        "--jid",
        "alice@localhost/room",
        "--peer",
        "bob@localhost/room",
        "--password",
        "password",
        "--deadline",
        "90",
    ]);
    for step in [
        "Converse submitted the instant-room form (result)",
        "both pages list both occupants",
        "bob sees alice's groupchat message",
        "alice's Converse took the room's reflection for its message (shown once)",
        "alice sees bob's groupchat message",
        "bob's Converse took the room's reflection for its message (shown once)",
        "bob downloaded the file intact from the room",
    ] {
        assert!(out.contains(step), "no \"{step}\" in:\n{out}");
    }
}

/// How a web site logs its users in without storing XMPP passwords: Converse.js fetches
/// `credentials_url` from the site, which asks Parley's admin API for a token and answers
/// `{jid, password: token}`; the token logs in with SASL OAUTHBEARER (over WebSocket), and
/// again after a page reload.
#[test]
fn converse_js_logs_in_with_a_credentials_url_token_and_again_after_a_reload() {
    let site = Site::start();
    site.converse(&[
        "--ws",
        &site.websocket(),
        "--jid",
        "alice@localhost",
        "--token-url",
        &site.admin_api("/api/v1/users/alice@localhost/tokens"),
    ]);
}

/// XEP-0124/0206 with a real browser client: Converse.js logs in over BOSH (cross-origin,
/// with CORS for the allowed origin) and exchanges messages with a slixmpp user.
#[test]
fn converse_js_over_bosh_chats_with_a_slixmpp_user() {
    let site = Site::start();
    site.converse(&[
        "--bosh",
        &site.bosh(),
        "--jid",
        "alice@localhost/bosh",
        "--password",
        "password",
    ]);
}

/// BOSH prebind as a site does it: Converse.js fetches `prebind_url` from the site, whose
/// backend asks Parley's admin API (`POST /api/v1/prebind`) for an authenticated, bound
/// session and hands `{jid, sid, rid}` over; the page attaches, chats, and attaches to a new
/// prebound session after a reload.
#[test]
fn converse_js_attaches_to_a_prebound_session_and_again_after_a_reload() {
    let site = Site::start();
    site.converse(&[
        "--bosh",
        &site.bosh(),
        "--jid",
        "alice@localhost",
        "--prebind-api",
        &site.admin_api("/api/v1/prebind"),
    ]);
}

/// tests/browser/converse.mjs in its `--resume` dialogue: the test reads its event lines
/// and answers with commands on its standard input (see the script for the steps).
struct Dialogue {
    child: Reaped,
    lines: Receiver<String>,
    deadline: Instant,
}

impl Dialogue {
    fn start(args: &[&str], within: Duration) -> Dialogue {
        let mut child = Command::new("node")
            .arg(workspace_root().join("tests/browser/converse.mjs"))
            .args(["--resume", "1", "--deadline", &within.as_secs().to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (tests/run installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("converse.mjs: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dialogue {
            child: Reaped(child),
            lines,
            deadline: Instant::now() + within,
        }
    }

    /// The rest of the next line, which must start with `word` (the script's own failure
    /// report is on the test's stderr, above the panic).
    fn expect(&mut self, word: &str) -> String {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => match line.strip_prefix(word) {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest.trim().to_owned(),
                _ => panic!("converse.mjs said {line:?}, expected {word}"),
            },
            Err(RecvTimeoutError::Timeout) => panic!("no {word} from converse.mjs in time"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.0.wait();
                panic!("converse.mjs ended ({status:?}) before {word}")
            }
        }
    }

    fn say(&mut self, command: &str) {
        let stdin = self.child.0.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("converse.mjs reads its commands");
    }

    /// `expect <text>`: how many times the chat shows `text` once it shows it.
    fn shown(&mut self, text: &str) -> usize {
        self.say(&format!("expect {text}"));
        let line = self.expect("SHOWN");
        let (count, shown) = line.split_once(' ').unwrap_or((&line, ""));
        assert_eq!(shown, text, "{line}");
        count.parse().expect("a count")
    }
}

/// The admin API's record of `jid`'s session with `status` (`active`, `hibernating`), once
/// it has one: the server's view of the connection (its resource, its session id).
fn session_record(admin: SocketAddr, jid: &str, status: &str) -> serde_json::Value {
    poll_until(
        &format!("the admin API listing {jid} as {status}"),
        Duration::from_secs(10),
        || {
            let (_, text) = http_get(
                admin,
                &format!("/api/v1/sessions?status={status}&limit=1000"),
                Some(ADMIN),
            )?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json["sessions"]
                .as_array()?
                .iter()
                .find(|r| r["jid"] == jid)
                .cloned()
        },
    )
}

/// The sessions of `user` on the admin API, whatever their status.
fn user_sessions(admin: SocketAddr, user: &str) -> Vec<serde_json::Value> {
    let (status, text) = http_get(
        admin,
        &format!("/api/v1/users/{user}/sessions"),
        Some(ADMIN),
    )
    .expect("the admin API answers");
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    json["sessions"].as_array().cloned().unwrap_or_default()
}

/// The value of the `/metrics` sample whose name and labels start with `prefix` (0 when the
/// server has not counted any yet).
fn metric(admin: SocketAddr, prefix: &str) -> u64 {
    let (_, text) = http_get(admin, "/metrics", None).expect("/metrics answers");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().expect("a counter"))
}

/// XEP-0198 §5 with a real web client: Converse.js (`enable_smacks`, `auto_reconnect`) logs
/// in over WebSocket and enables resumption; its network then fails (a TCP relay in
/// converse.mjs resets both ends and refuses new connections, so the server sees the
/// connection die without `<close/>` and Converse sees its WebSocket fail). While it is
/// down, bob sends alice two messages, to her full JID and to her bare JID. When the network
/// is back, Converse reconnects and sends `<resume/>` instead of binding: the server counts
/// a local resume, the session (id, full JID) is the one from before, and both messages are
/// shown in Converse's chat with bob exactly once, before one bob sends afterwards.
#[test]
fn converse_resumes_its_session_after_the_websocket_drops_xep0198_5() {
    require_browser_kit();
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = TestServer::start(|c| {
        c.http.origins = vec![origin.clone()];
        c.admin.token = Some(ADMIN.into());
    });
    let admin = server.handle.admin.unwrap();
    let ws = format!("ws://{}/xmpp-websocket", server.handle.http.unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut bob = rt.block_on(Client::login(server.c2s(), "bob", Some("peer")));
    let resumes = r#"parley_sm_resumes_total{node="#;
    let local_resumes = || {
        let (_, text) = http_get(admin, "/metrics", None).expect("/metrics answers");
        text.lines()
            .filter(|l| l.starts_with(resumes) && l.contains(r#"where="local""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let resumes_before = local_resumes();
    let failed_before = metric(admin, "parley_sm_resumes_failed_total");

    let page_port = page_port.to_string();
    let mut converse = Dialogue::start(
        &[
            "--page-port",
            &page_port,
            "--ws",
            &ws,
            "--jid",
            "alice@localhost/converse",
            "--password",
            "password",
            "--peer",
            "bob@localhost",
        ],
        Duration::from_secs(90),
    );
    let ready = converse.expect("READY");
    let (jid, sm_id) = ready.split_once(' ').expect("READY <jid> <id>");
    let (jid, sm_id) = (jid.to_owned(), sm_id.to_owned());
    assert_eq!(jid, "alice@localhost/converse");
    let before = session_record(admin, &jid, "active");

    converse.say("drop");
    converse.expect("DROPPED");
    // The server noticed the connection die and keeps the session for resumption.
    let hibernating = session_record(admin, &jid, "hibernating");
    assert_eq!(hibernating["session"], before["session"], "{hibernating}");

    let to_full = format!("to the full JID while away {}", next_id("m"));
    let to_bare = format!("to the bare JID while away {}", next_id("m"));
    rt.block_on(async {
        bob.send(&chat(&jid, "chat", &to_full)).await;
        bob.send(&chat("alice@localhost", "chat", &to_bare)).await;
        // Alice's user actor has routed the bare-JID message (to the hibernating resource)
        // when this returns: both were sent, and handled, while the connection was down.
        bob.sync_via("alice@localhost")
            .await
            .expect("sync via alice");
    });

    converse.say("back");
    let resumed = converse.expect("RESUMED");
    assert_eq!(
        resumed,
        format!("{jid} {sm_id}"),
        "the same full JID and SM id after the resume"
    );
    assert_eq!(
        local_resumes(),
        resumes_before + 1,
        "the server counted one local resume"
    );
    assert_eq!(
        metric(admin, "parley_sm_resumes_failed_total"),
        failed_before,
        "and no failed one"
    );
    // The record goes on too: same session, same creation time, and the state the client
    // had (its presence was re-sent after the resume).
    let after = session_record(admin, &jid, "active");
    assert_eq!(
        after["session"], before["session"],
        "the session that hibernated is the one that goes on: {after}"
    );
    assert_eq!(
        after["created"], before["created"],
        "the record is the session's: {after}"
    );
    assert_eq!(after["available"], before["available"], "{after}");
    let sessions = user_sessions(admin, "alice@localhost");
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s["status"] == "active" || s["status"] == "hibernating")
            .count(),
        1,
        "one session of alice, not a new binding beside the old one: {sessions:?}"
    );

    let later = format!("after the resume {}", next_id("m"));
    rt.block_on(bob.send(&chat("alice@localhost", "chat", &later)));
    // The message sent after the resume is shown; by then the resent ones were handled.
    assert_eq!(converse.shown(&later), 1);
    assert_eq!(converse.shown(&to_full), 1, "shown exactly once: {to_full}");
    assert_eq!(converse.shown(&to_bare), 1, "shown exactly once: {to_bare}");
    rt.block_on(async {
        bob.sync().await.expect("sync");
        bob.expect_none_yet("an error for a message to alice", |el| {
            el.attr("type") == Some("error")
        })
        .await
        .expect("no error");
    });
    converse.say("done");
    converse.expect("OK");
}

/// A new user, the way `cluster/local up 3` serves them: three nodes (real etcd and
/// PostgreSQL) behind HAProxy balancing every HTTP request round-robin. The user opens the
/// cluster's own Converse.js page (`[http] web_client`, the Converse.js bundled into the
/// binary), logs in through its form, opens a
/// chat and types — once over WebSocket (RFC 7395) after adding a contact, once over BOSH
/// (XEP-0206), whose requests HAProxy spreads over all three nodes, with "Start a new chat"
/// (which Converse.js 12 opens only once the server answered its XEP-0191 blocklist). The contact is the
/// slixmpp echo user, connected to the third node directly.
#[test]
fn a_new_user_chats_from_the_clusters_own_converse_page_behind_round_robin_haproxy() {
    require_browser_kit();
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob", "carol"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = format!("/browser-{}-{:?}", std::process::id(), Instant::now());
    // The page's Converse.js is the copy bundled into the binary (no converse_dist): the
    // browser here has no Internet, so this also proves the page works offline.
    let extra = Extra {
        http: "web_client = true".to_owned(),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=3)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 3);
    let servers: Vec<_> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.http, n.admin))
        .collect();
    let lb = Haproxy::start("http", &servers);
    let _bob = echo_user(nodes[2].c2s, "bob@localhost");
    let site = format!("http://{}/", lb.addr);
    let user = |jid: &str, transport: &str, open: &str| {
        converse(&[
            "--site",
            &site,
            "--transport",
            transport,
            "--jid",
            jid,
            "--password",
            "password",
            "--peer",
            "bob@localhost",
            "--open",
            open,
        ]);
    };

    user("alice@localhost", "websocket", "add-contact");
    let before = lb.sent_to_servers();
    user("carol@localhost", "bosh", "new-chat");
    let after = lb.sent_to_servers();
    assert_eq!(after.len(), 3, "{after:?}");
    for (name, sent) in &after {
        let earlier = before
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, s)| *s);
        assert!(
            *sent > earlier,
            "HAProxy sent none of the BOSH session's requests to {name}: {before:?} -> {after:?}"
        );
    }
}

/// Issue 17: a chat page whose Converse.js cannot start says so in real Chromium instead of
/// staying blank — a `converse_dist` copy that is not Converse.js (an incompatible build), and
/// a `converse_url` nobody can reach (this machine has no Internet).
#[test]
fn a_chat_page_without_a_working_converse_says_so() {
    require_browser_kit();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("converse.min.js"),
        "window.notConverse = 1;",
    )
    .unwrap();
    std::fs::write(dir.path().join("converse.min.css"), "body {}").unwrap();
    let broken = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.converse_dist = Some(dir.path().to_owned());
    });
    let out = converse(&[
        "--site",
        &format!("http://{}/", broken.handle.http.unwrap()),
        "--expect-error",
        "is missing or is not a version this page can start",
        "--deadline",
        "30",
    ]);
    assert!(out.contains("[http] converse_dist"), "{out}");
    let unreachable = TestServer::start(|c| {
        c.http.web_client = true;
        c.http.converse_url = Some("http://127.0.0.1:9/dist".into());
    });
    converse(&[
        "--site",
        &format!("http://{}/", unreachable.handle.http.unwrap()),
        "--expect-error",
        "could not be loaded",
        "--deadline",
        "30",
    ]);
}

/// Issue 17: the live admin page (`/admin` on the admin listener) in Chromium, as an
/// operator uses it: a wrong token refused, the right one logs in; a resource made of markup
/// shown as text; alice's session found by
/// the search box and kicked (her client gets the stream error, the row leaves the live
/// list by itself and shows up under "revoked"); carol signed out from the Users view (her
/// session ends too); the node listed. With `PARLEY_SCREENSHOT=FILE` the sessions view is
/// saved there (the README's picture: docs/admin-page.png).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_lists_kicks_and_signs_out_live() {
    require_browser_kit();
    let server = TestServer::start(|c| c.admin.token = Some(ADMIN.into()));
    let admin = server.handle.admin.unwrap();
    let (status, page) = parley_testkit::http_request(admin, "GET", "/admin", None).unwrap();
    assert_eq!(status, 200, "served without the token: it holds no data");
    assert!(page.contains("/admin/admin.js"), "{page}");
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    // Hostile input: a resource made of markup.
    let _bob = Client::login(server.c2s(), "bob", Some("<b>bold</b>")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("tablet")).await;
    let mut args = vec![
        "--admin".to_owned(),
        format!("http://{admin}"),
        "--token".into(),
        ADMIN.into(),
        "--user".into(),
        "alice@localhost/phone".into(),
        "--signout".into(),
        "carol@localhost".into(),
        "--hostile".into(),
        "bob@localhost/<b>bold</b>".into(),
    ];
    if let Some(path) = std::env::var_os("PARLEY_SCREENSHOT") {
        args.push("--screenshot".into());
        args.push(path.to_string_lossy().into_owned());
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(workspace_root().join("tests/browser/admin.mjs"))
            .args(&args)
            .output()
            .expect("node (tests/run installs it)")
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("OK"), "{text}");
    for client in [&mut alice, &mut carol] {
        assert_eq!(
            client.stream_error_after_traffic().await.0,
            "policy-violation"
        );
    }
}
