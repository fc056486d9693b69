//! Per-account quotas and user-actor bounds (issue 10) over real sockets: each bound of
//! `[quotas]` refused with its stanza error (RFC 6120 §8.3.3), carbons that respect the
//! blocklist (XEP-0280 with XEP-0191), and stanzas to accounts that do not exist answered
//! without starting a user actor each — measured on a real `parley` process (RSS and the
//! `parley_user_actors` metric).
//!
//! "Nothing arrives" is checked after a barrier that the server orders after the thing that
//! must not come (see each test), then over a short window for what is already in flight.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use parley_proto::ns;
use parley_testkit::cluster::http_get;
use parley_testkit::im::{carbon_kind, chat, error_condition, next_id, roster_item};
use parley_testkit::{free_port, parley_binary, poll_until, Client, TestServer};
use parley_xml::Element;

fn bare(user: &str) -> String {
    format!("{user}@localhost")
}

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = Client::login(server.c2s(), user, Some(resource)).await;
    c.roster().await.expect("roster get");
    c.available().await;
    c.sync().await.expect("sync");
    c
}

fn is_error_with(el: &Element, name: &str, condition: &str) -> bool {
    el.name() == name
        && el.attr("type") == Some("error")
        && error_condition(el).as_deref() == Some(condition)
}

/// RFC 6120 §7.6.2.1: past `quotas.resources_per_account` bound resources, binding one more
/// is refused with `<resource-constraint/>` on the bind iq; a freed slot can be used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_7_6_2_1_binding_past_the_resource_quota_is_a_resource_constraint() {
    let server = TestServer::start(|c| c.quotas.resources_per_account = 2);
    let _one = Client::login(server.c2s(), "alice", Some("one")).await;
    let mut two = Client::login(server.c2s(), "alice", Some("two")).await;
    let mut third = Client::authed(server.c2s(), "alice").await;
    let err = third.bind(Some("three")).await.expect_err("a third bind");
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("resource-constraint"),
        "{err}"
    );
    // Another account is not affected.
    let _bob = Client::login(server.c2s(), "bob", Some("one")).await;
    // A resource that goes frees its slot.
    two.send_raw("</stream:stream>").await.unwrap();
    two.expect_eof().await.unwrap();
    poll_until(
        "alice's second resource to go",
        Duration::from_secs(10),
        || {
            let n = server
                .handle
                .router
                .bound()
                .iter()
                .filter(|(j, _)| j.node().is_some_and(|n| n.as_str() == "alice"))
                .count();
            (n < 2).then_some(())
        },
    );
    let mut again = Client::authed(server.c2s(), "alice").await;
    again
        .bind(Some("three"))
        .await
        .expect("bind after a slot freed");
}

/// RFC 6121 §2.3.3: an item naming more groups than `quotas.roster_groups_per_item`, or a
/// group name longer than `quotas.roster_name_bytes`, is `<not-acceptable/>` and not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_2_3_3_too_many_groups_or_too_long_a_group_is_not_acceptable() {
    let server = TestServer::start(|c| {
        c.quotas.roster_groups_per_item = 2;
        c.quotas.roster_name_bytes = 16;
    });
    let mut alice = online(&server, "alice", "a").await;
    let three = roster_item("x@localhost", None, &["a", "b", "c"]);
    let reply = alice.roster_set(three).await.unwrap();
    assert!(is_error_with(&reply, "iq", "not-acceptable"), "{reply}");
    let long = "g".repeat(17);
    let reply = alice
        .roster_set(roster_item("y@localhost", None, &[&long]))
        .await
        .unwrap();
    assert!(is_error_with(&reply, "iq", "not-acceptable"), "{reply}");
    // Within the bounds it works; nothing refused was stored.
    alice
        .roster_set_and_push(roster_item("z@localhost", None, &["a", "b"]))
        .await
        .unwrap();
    let roster = alice.roster().await.unwrap();
    assert!(roster.item("x@localhost").is_none() && roster.item("y@localhost").is_none());
    assert!(roster.item("z@localhost").is_some());
}

/// RFC 6121 §2.6 with pruned removal records: with `quotas.roster_tombstones = 1`, a client
/// whose version predates the oldest kept record gets the whole roster, not a replay that
/// would silently miss a removal; a newer version still gets the exact replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_2_6_a_version_older_than_the_kept_removals_gets_the_whole_roster() {
    let server = TestServer::start(|c| c.quotas.roster_tombstones = 1);
    let mut alice = online(&server, "alice", "a").await;
    for jid in ["c1@localhost", "c2@localhost", "c3@localhost"] {
        alice
            .roster_set_and_push(roster_item(jid, None, &[]))
            .await
            .unwrap();
    }
    // Versions 4 and 5 remove c1 and c2; only the record of 5 is kept.
    for jid in ["c1@localhost", "c2@localhost"] {
        let reply = alice.roster_remove(jid).await.unwrap();
        assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    }
    let old = alice.roster_get(Some("3")).await.unwrap();
    let query = old
        .get_child("query", ns::ROSTER)
        .unwrap_or_else(|| panic!("a client at version 3 must get the whole roster: {old}"));
    let jids: Vec<&str> = query.children().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, ["c3@localhost"]);
    assert_eq!(query.attr("ver"), Some("5"));
    let recent = alice.roster_get(Some("4")).await.unwrap();
    assert!(
        recent.get_child("query", ns::ROSTER).is_none(),
        "a replay: {recent}"
    );
}

/// XEP-0191 with `quotas.blocklist_items`: a block that would pass the quota is refused
/// with `<resource-constraint/>` and changes nothing; items already blocked cost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_a_block_past_the_blocklist_quota_is_a_resource_constraint() {
    let server = TestServer::start(|c| c.quotas.blocklist_items = 3);
    let mut alice = online(&server, "alice", "a").await;
    let reply = alice
        .block(&["a@example.org", "b@example.org", "c@example.org"])
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let reply = alice.block(&["c@example.org", "d@example.org"]).await;
    assert!(
        is_error_with(&reply, "iq", "resource-constraint"),
        "{reply}"
    );
    let reply = alice.block(&["c@example.org", "C@Example.org"]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let mut list = alice.blocklist().await;
    list.sort();
    assert_eq!(list, ["a@example.org", "b@example.org", "c@example.org"]);
}

fn refusals(reason: &str) -> u64 {
    parley_router::metrics::refusals()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| n)
}

/// RFC 6121 §3.1.3 with quotas on stored requests: a request larger than
/// `quotas.subscription_request_bytes` is refused `<not-acceptable/>`, and past
/// `quotas.pending_subscriptions` unanswered requests a new one `<resource-constraint/>`;
/// neither is stored nor shown to the user. (The error goes to the requester's bare JID,
/// whose server drops presence errors there by RFC 6121 §8.5.2.1.2, so the refusal counter
/// is what shows it here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_3_1_3_subscription_requests_past_the_quotas_are_refused() {
    let server = TestServer::start(|c| {
        c.quotas.pending_subscriptions = 1;
        c.quotas.subscription_request_bytes = 1024;
    });
    server.add_user("dave", "password");
    let mut alice = online(&server, "alice", "a").await;
    let mut dave = online(&server, "dave", "d").await;
    let (too_big, too_many) = (
        refusals("subscription_request_bytes"),
        refusals("pending_subscriptions"),
    );
    let mut big = parley_testkit::im::presence_to(&bare("alice"), Some("subscribe"));
    big.push_child(Element::new("status", ns::CLIENT).with_text("s".repeat(2000)));
    dave.send(&big).await;
    poll_until("the big request refused", Duration::from_secs(10), || {
        (refusals("subscription_request_bytes") > too_big).then_some(())
    });

    let mut bob = online(&server, "bob", "b").await;
    bob.subscribe(&bare("alice")).await;
    alice
        .expect_presence_from(&bare("bob"), "subscribe")
        .await
        .unwrap();
    let mut carol = online(&server, "carol", "c").await;
    carol.subscribe(&bare("alice")).await;
    poll_until(
        "the second request refused",
        Duration::from_secs(10),
        || (refusals("pending_subscriptions") > too_many).then_some(()),
    );
    // Alice's actor handled both refusals before answering this: nothing was shown.
    alice.roster().await.unwrap();
    alice
        .expect_none_yet("a refused request", |el| {
            el.attr("type") == Some("subscribe")
                && matches!(el.attr("from"), Some("dave@localhost" | "carol@localhost"))
        })
        .await
        .unwrap();
    // Answering bob frees the slot: carol may ask again.
    alice.approve(&bare("bob")).await;
    alice.sync().await.unwrap();
    carol.subscribe(&bare("alice")).await;
    alice
        .expect_presence_from(&bare("carol"), "subscribe")
        .await
        .unwrap();
}

/// RFC 6121 §4.6 with `quotas.directed_presence`: a resource remembers whom it sent
/// directed presence to; past the quota a new target is refused with
/// `<resource-constraint/>` instead of being sent and forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_4_6_directed_presence_past_the_quota_is_a_resource_constraint() {
    let server = TestServer::start(|c| c.quotas.directed_presence = 2);
    server.add_user("dave", "password");
    let mut alice = online(&server, "alice", "a").await;
    let mut dave = online(&server, "dave", "d").await;
    for to in ["bob@localhost", "carol@localhost", "bob@localhost"] {
        alice.send_presence_to(to, None).await;
    }
    alice.send_presence_to("dave@localhost/d", None).await;
    let err = alice
        .expect_match("the refused directed presence", |el| {
            el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert!(
        is_error_with(&err, "presence", "resource-constraint"),
        "{err}"
    );
    assert_eq!(err.attr("from"), Some("dave@localhost/d"));
    // Alice has the refusal, made in the step that would have handed dave's session the
    // presence: a ping to dave's session comes back after it.
    dave.sync().await.unwrap();
    dave.expect_none_yet("the refused presence", |el| {
        el.name() == "presence" && el.attr("from") == Some("alice@localhost/a")
    })
    .await
    .unwrap();
}

/// XEP-0280 §6 with XEP-0191 §3.5: a message from a blocked sender, sent straight to one of
/// the user's resources (which refuses it), must not reach the user's other resources as a
/// `<received/>` carbon copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0280_a_blocked_senders_message_is_never_carbon_copied() {
    let server = TestServer::start(|_| {});
    let mut alice = online(&server, "alice", "a").await;
    let mut b1 = online(&server, "bob", "b1").await;
    let mut b2 = online(&server, "bob", "b2").await;
    let reply = b2.carbons(true).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let reply = b1.block(&[&bare("alice")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    // b2 has its push too, so the block is in force on both sessions.
    b2.sync().await.unwrap();
    let condition = alice.refused_chat("bob@localhost/b1", "secret").await;
    assert_eq!(condition, "service-unavailable");
    // Alice's session asked bob's actor for copies before b1 refused the message; b2's
    // roster get reaches that actor after it, so a copy would be here by its answer.
    b2.roster().await.unwrap();
    b2.expect_none_yet("a carbon of a blocked sender's message", |el| {
        carbon_kind(el).is_some()
    })
    .await
    .unwrap();
}

/// XEP-0160 with `quotas.offline_bytes`: offline storage is bounded in bytes as well as in
/// messages; past it the sender gets `<service-unavailable/>` (RFC 6121 §8.5.2.2.1) and the
/// stored messages are intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0160_offline_storage_past_the_byte_quota_is_refused() {
    let server = TestServer::start(|c| c.quotas.offline_bytes = 1024);
    let mut alice = online(&server, "alice", "a").await;
    // Two fit in 1024 bytes with their markup and <stanza-id/> (XEP-0359), three do not.
    let text = |i: usize| format!("{i}{}", "x".repeat(300));
    for i in 0..2 {
        alice.send(&chat(&bare("bob"), "chat", &text(i))).await;
    }
    let condition = alice.refused_chat(&bare("bob"), &text(2)).await;
    assert_eq!(condition, "service-unavailable");
    alice
        .expect_none_yet("another refusal", |el| el.attr("type") == Some("error"))
        .await
        .unwrap();
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    for i in 0..2 {
        bob.expect_message_body(&text(i)).await.unwrap();
    }
}

/// User-actor mailboxes are bounded (`users.mailbox_stanzas`): a client that pipelines
/// roster sets faster than its actor can store them gets `<resource-constraint/>` for what
/// does not fit (RFC 6120 §8.3.3.18) instead of an ever growing queue; every set is
/// answered, and the actor keeps working. (Each set waits for a storage write in the actor,
/// while the session forwards a parsed set in microseconds: with 1,000 pipelined sets and
/// room for 16, the bound is always reached.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_toward_one_user_actor_is_refused_with_resource_constraint() {
    let server = TestServer::start(|c| c.users.mailbox_stanzas = 16);
    let mut alice = online(&server, "alice", "a").await;
    const SETS: usize = 1000;
    let ids: Vec<String> = (0..SETS).map(|_| next_id("flood")).collect();
    for (i, id) in ids.iter().enumerate() {
        let name = format!("n{i}");
        let item = roster_item("x@localhost", Some(&name), &[]);
        alice
            .send(&parley_testkit::im::roster_set_iq(id, vec![item]))
            .await;
    }
    let (mut ok, mut refused) = (0, 0);
    for id in &ids {
        let reply = alice
            .expect_match(&format!("the answer to {id}"), |el| {
                el.name() == "iq" && el.attr("id") == Some(id.as_str())
            })
            .await
            .unwrap();
        match reply.attr("type") {
            Some("result") => ok += 1,
            _ if is_error_with(&reply, "iq", "resource-constraint") => refused += 1,
            _ => panic!("unexpected answer: {reply}"),
        }
    }
    eprintln!("{SETS} pipelined roster sets: {ok} stored, {refused} refused");
    assert!(refused > 0, "the mailbox bound was never reached");
    assert!(ok > 0);
    // The actor drained and still works.
    let roster = alice.roster().await.unwrap();
    assert!(roster.item("x@localhost").is_some());
}

/// Holds `LOCK TABLE roster_items` in a `psql` session until dropped, so that the user
/// actors' roster writes wait on storage: a deterministic way to keep an actor busy.
struct RosterLock(Child);

impl RosterLock {
    fn take(url: &str) -> RosterLock {
        use std::io::BufRead as _;
        let mut child = Command::new("psql")
            .arg(url)
            .args(["-X", "-q", "-A", "-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run psql");
        let stdin = child.stdin.as_mut().expect("psql stdin");
        stdin
            .write_all(
                b"BEGIN; LOCK TABLE roster_items IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n",
            )
            .expect("lock");
        stdin.flush().expect("flush");
        let stdout = child.stdout.take().expect("psql stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("psql answer");
        assert_eq!(line.trim(), "locked");
        RosterLock(child)
    }
}

impl Drop for RosterLock {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = stdin.write_all(b"COMMIT;\n");
        }
        let _ = self.0.wait();
    }
}

/// XEP-0191 §3.5 in a session's first moment: until the user actor's copy of the blocklist
/// arrives, a new session holds back what other sessions send it straight, up to 256
/// stanzas. Past that, stanzas are refused with `<resource-constraint/>` — never delivered
/// unchecked. The user actor is kept busy (its roster write waits on a table lock in
/// PostgreSQL) so that the list cannot arrive while a blocked sender floods the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0191_a_hold_back_overflow_is_refused_never_delivered_unchecked() {
    const SENT: usize = 300;
    const HELD: usize = 256;
    let db = parley_testkit::shared_pg().database();
    let server = TestServer::start(|c| c.storage.url = Some(db.clone()));
    let mut a1 = online(&server, "alice", "a1").await;
    let reply = a1.block(&[&bare("bob")]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let mut bob = online(&server, "bob", "b").await;
    let lock = RosterLock::take(&db);
    // Alice's actor now waits on storage, and handles nothing else until the lock goes.
    a1.send(&parley_testkit::im::roster_set_iq(
        &next_id("busy"),
        vec![roster_item("x@localhost", None, &[])],
    ))
    .await;
    a1.sync().await.unwrap();
    // This session's attach, and so its blocklist, queue behind that write.
    let mut a2 = Client::login(server.c2s(), "alice", Some("a2")).await;
    for i in 0..SENT {
        let mut m = chat("alice@localhost/a2", "chat", &format!("m{i}"));
        m.set_attr("id", format!("hold-{i}"));
        bob.send(&m).await;
    }
    let mut constrained = 0;
    for i in 0..SENT - HELD {
        let id = format!("hold-{}", HELD + i);
        let err = bob
            .expect_match(&format!("the refusal of {id}"), |el| {
                el.attr("id") == Some(id.as_str())
            })
            .await
            .unwrap();
        assert!(
            is_error_with(&err, "message", "resource-constraint"),
            "{err}"
        );
        constrained += 1;
    }
    drop(lock);
    // The list arrives: what was held back is checked, and bob is blocked (§3.5).
    for i in 0..HELD {
        let id = format!("hold-{i}");
        let err = bob
            .expect_match(&format!("the refusal of {id}"), |el| {
                el.attr("id") == Some(id.as_str())
            })
            .await
            .unwrap();
        assert!(
            is_error_with(&err, "message", "service-unavailable"),
            "{err}"
        );
    }
    // Bob has every refusal; alice's actor, which would have routed a copy to a2, answers a2's
    // roster get after those steps.
    a2.sync_user().await.unwrap();
    a2.expect_none_yet("a message from a blocked sender", |el| {
        el.name() == "message" && el.attr("from") == Some("bob@localhost/b")
    })
    .await
    .unwrap();
    assert_eq!(constrained, SENT - HELD);
}

/// A `parley serve` process with one account (`alice`), for measurements of the server's own
/// memory; killed on drop.
struct Process {
    child: Child,
    c2s: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Process {
    fn start() -> Process {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}/parley.db", dir.path().display());
        parley_testkit::cluster::add_users(&db, &["alice"]);
        let c2s = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        // Its own web port too: the default (5280) may be another server's on this machine.
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.path().join("parley.toml");
        let mut f = std::fs::File::create(&config).expect("config");
        write!(
            f,
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{data}\"\nworkers = 2\n\
             [c2s]\nlisten = [\"{c2s}\"]\ndirect_tls = []\n[sasl]\nscram_iterations = 4096\n\
             [admin]\nlisten = \"{admin}\"\n[http]\nlisten = \"{http}\"\n[storage]\nurl = \"{db}\"\n\
             [log]\nlevel = \"warn\"\n",
            data = dir.path().display(),
        )
        .expect("write config");
        let child = Command::new(parley_binary())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn parley");
        poll_until("parley to be ready", Duration::from_secs(30), || {
            http_get(admin, "/ready", None)
                .filter(|(status, _)| *status == 200)
                .map(|_| ())
        });
        Process {
            child,
            c2s,
            admin,
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    fn user_actors(&self) -> u64 {
        let (_, body) = http_get(self.admin, "/metrics", None).expect("metrics");
        body.lines()
            .find(|l| l.starts_with("parley_user_actors"))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .expect("parley_user_actors")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends iqs to `n` distinct accounts that do not exist, `batch` at a time, and checks that
/// each is answered `service-unavailable` (RFC 6121 §8.5.1).
async fn iqs_to_missing_accounts(c: &mut Client, tag: &str, n: usize, batch: usize) {
    for start in (0..n).step_by(batch) {
        let mut ids = Vec::new();
        for i in start..(start + batch).min(n) {
            let id = next_id(tag);
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", id.as_str())
                .with_attr("to", format!("nobody-{tag}-{i}@localhost"))
                .with_child(Element::new("query", ns::VERSION));
            c.send(&iq).await;
            ids.push(id);
        }
        for id in ids {
            let reply = c
                .expect_match(&format!("the answer to {id}"), |el| {
                    el.attr("id") == Some(id.as_str())
                })
                .await
                .unwrap();
            assert!(
                is_error_with(&reply, "iq", "service-unavailable"),
                "{reply}"
            );
        }
    }
}

/// RFC 6121 §8.5.1 under a spray of addresses: 3,000 iqs to distinct accounts that do not
/// exist are all answered `service-unavailable`, start fewer than 100 user actors and grow
/// the server's RSS by less than 32 MiB (a real `parley` process, VmRSS from /proc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6121_8_5_1_stanzas_to_missing_accounts_start_no_actors_and_stay_within_memory() {
    let server = Process::start();
    let mut alice = Client::login(server.c2s, "alice", Some("a")).await;
    // Warm up allocator arenas and caches, so that the measure is of growth per address.
    iqs_to_missing_accounts(&mut alice, "warm", 200, 100).await;
    let before = server.rss_kib();
    iqs_to_missing_accounts(&mut alice, "spray", 3000, 100).await;
    let actors = server.user_actors();
    let grown = server.rss_kib().saturating_sub(before);
    eprintln!("3000 iqs to missing accounts: {actors} user actors, RSS +{grown} KiB");
    assert!(actors < 100, "{actors} user actors running");
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    // The same addresses again come from the absent-account cache: same answers.
    iqs_to_missing_accounts(&mut alice, "spray", 100, 100).await;
}
