//! Real web clients: Converse.js (from npm) in Debian's Chromium, driven by playwright-core
//! (tests/browser/converse.mjs), logs in to Parley over WebSocket (RFC 7395) and chats with a
//! slixmpp user (tests/clients/echo.py) connected over TCP.
//!
//! The last test is the "done when": a new user opens the cluster's own chat page
//! (`[http] web_client`) through a round-robin HAProxy in front of three nodes and chats.
//!
//! Needs node, npm packages in tests/browser (npm ci) and /usr/bin/chromium: tests/run
//! installs them. A missing piece fails the test with the command that fixes it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_testkit::cluster::{add_users, wait_members, ClusterNode, Extra};
use parley_testkit::{shared_etcd, shared_pg, workspace_root, Haproxy, TestServer};

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
fn converse(args: &[&str]) {
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
    fn converse(&self, args: &[&str]) {
        let page_port = self.page_port.to_string();
        let mut all = vec!["--page-port", &page_port, "--peer", "bob@localhost"];
        all.extend(["--admin-token", ADMIN]);
        all.extend(args);
        converse(&all);
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

/// A new user, the way `cluster/local up 3` serves them: three nodes (real etcd and
/// PostgreSQL) behind HAProxy balancing every HTTP request round-robin. The user opens the
/// cluster's own Converse.js page (`[http] web_client`), logs in through its form, opens a
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
    let dist = workspace_root().join("tests/browser/node_modules/converse.js/dist");
    let extra = Extra {
        http: format!("web_client = true\nconverse_dist = \"{}\"", dist.display()),
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
