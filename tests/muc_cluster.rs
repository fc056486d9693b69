//! Multi-user chat (XEP-0045) across a cluster, with a real client library (issue 15): three
//! `parley` processes sharing a real etcd and PostgreSQL, and slixmpp clients
//! (tests/clients/muc_bot.py, its `xep_0045` plugin) connected to different nodes, all in one
//! room. The room lives on one node, its owner by rendezvous hashing of `muc/<room>` over the
//! live nodes; the other nodes forward to it.
//!
//! Each test names the section whose rule it checks: occupants on different nodes see each
//! other and every message once with one `<stanza-id/>` (§7.2.3, §7.4, XEP-0359); when the
//! room's node restarts, its occupants stay and no message is lost — each one either reaches
//! every other occupant or comes back to its sender as an error (§7.4, §7.2.3); and the
//! room's archive and history still hold what was said (XEP-0313 for MUC, §7.2.14).
//!
//! The clients print one line per event; the test keeps every line of every client in one
//! place and waits on a condition variable for what it expects, never on the clock.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parley_testkit::cluster::{add_users, random_prefix, wait_members, ClusterNode, Extra};
use parley_testkit::{shared_etcd, shared_pg};

const SERVICE: &str = "conference.localhost";
/// How long the test waits for any one thing the clients should see.
const WAIT: Duration = Duration::from_secs(30);
/// Between two messages of a talking client: many in flight while a node goes and comes.
const PACE_MS: u32 = 20;
/// `[muc]` for every node: an occupant may send far faster than the talking clients do, so
/// that no message is refused for its pace (the defaults allow 5 a second).
const MUC_CONFIG: &str = "[muc]\nmessages_per_minute = 600000\nmessage_burst = 100000\n";

/// One cluster at a time in this file: a 3-node cluster and its clients load a 2-core
/// machine enough.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn one_cluster() -> MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// A groupchat message as one client received it.
#[derive(Debug, Clone)]
struct Groupchat {
    from: String,
    stanza_id: String,
    delayed: bool,
    body: String,
}

/// Everything one client printed.
#[derive(Debug, Default)]
struct Seen {
    lines: Vec<String>,
    groupchat: Vec<Groupchat>,
    /// (id, condition) of message errors.
    errors: Vec<(String, String)>,
    /// (from, available|unavailable, status codes).
    presences: Vec<(String, String, String)>,
    /// Bodies (= ids) of the groupchat messages it sent, in order.
    sent: Vec<String>,
    /// Answers to commands not read yet (JOINED, CONFIGURED, HUSHED, MAM...).
    replies: Vec<String>,
    disconnected: bool,
}

impl Seen {
    fn got(&self, body: &str) -> usize {
        self.groupchat
            .iter()
            .filter(|g| !g.delayed && g.body == body)
            .count()
    }

    fn errored(&self, id: &str) -> bool {
        self.errors.iter().any(|(i, _)| i == id)
    }
}

/// The clients' lines, also after a panic elsewhere (the panic is the report).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every client printed, by user, and the signal that one more line came.
#[derive(Default)]
struct World {
    seen: Mutex<HashMap<String, Seen>>,
    changed: Condvar,
}

impl World {
    /// Waits (up to `limit`) until `done` finds what it looks for in the clients' lines.
    fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&HashMap<String, Seen>) -> Option<T>,
    ) -> T {
        let end = Instant::now() + limit;
        let mut seen = lock(&self.seen);
        loop {
            if let Some(t) = done(&seen) {
                return t;
            }
            let now = Instant::now();
            if now >= end {
                let mut report = String::new();
                for (user, s) in seen.iter() {
                    let tail = s.lines.len().saturating_sub(40);
                    report.push_str(&format!(
                        "--- {user} (last lines of {}):\n{}\n",
                        s.lines.len(),
                        s.lines[tail..].join("\n")
                    ));
                }
                panic!("timed out waiting for {what}\n{report}");
            }
            seen = self
                .changed
                .wait_timeout(seen, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&HashMap<String, Seen>) -> T) -> T {
        f(&lock(&self.seen))
    }
}

/// One slixmpp client (tests/clients/muc_bot.py) connected to one node.
struct Bot {
    user: String,
    nick: String,
    node: String,
    child: Child,
    stdin: Option<ChildStdin>,
    world: Arc<World>,
}

impl Drop for Bot {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bot {
    /// `user` logs in on `node` (resource: the node's id) and is ready for commands.
    fn start(world: &Arc<World>, user: &str, node: &ClusterNode) -> Bot {
        let mut child = Command::new("python3")
            .arg(parley_testkit::workspace_root().join("tests/clients/muc_bot.py"))
            .args(["--port", &node.c2s.port().to_string()])
            .args(["--jid", &format!("{user}@localhost/{}", node.id)])
            .args(["--password", "password", "--deadline", "300"])
            // Debugging aid: MUC_BOT_VERBOSE=<user> shows that client's XML.
            .args(
                std::env::var("MUC_BOT_VERBOSE")
                    .ok()
                    .filter(|v| v == user)
                    .map(|_| "--verbose"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with slixmpp (tests/run installs it)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        lock(&world.seen).insert(user.to_owned(), Seen::default());
        let (w, u) = (world.clone(), user.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut seen = lock(&w.seen);
                let s = seen.get_mut(&u).expect("registered");
                record(s, &line);
                s.lines.push(line);
                drop(seen);
                w.changed.notify_all();
            }
        });
        let mut nick = user.to_owned();
        nick[..1].make_ascii_uppercase();
        let bot = Bot {
            user: user.to_owned(),
            nick,
            node: node.id.clone(),
            child,
            stdin,
            world: world.clone(),
        };
        bot.reply("READY");
        bot
    }

    fn cmd(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("muc_bot.py reads its commands");
        stdin.flush().expect("flush");
    }

    /// Waits for (and takes) the next answer that starts with `prefix`.
    fn reply(&self, prefix: &str) -> String {
        let user = self.user.clone();
        let got = self
            .world
            .wait(&format!("{prefix} from {user}"), WAIT, |seen| {
                let s = &seen[&user];
                s.replies
                    .iter()
                    .position(|l| l.starts_with(prefix) || l.starts_with("FAIL"))
            });
        let line = lock(&self.world.seen)
            .get_mut(&self.user)
            .unwrap()
            .replies
            .remove(got);
        assert!(!line.starts_with("FAIL"), "{}: {line}", self.user);
        line
    }

    /// §7.2: joins `room` under its nick; the status codes of its self-presence.
    fn join(&mut self, room: &str) -> Vec<u16> {
        self.cmd(&format!("JOIN {room} {}", self.nick));
        let line = self.reply("JOIN");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "JOINED", "{}: {line}", self.user);
        words[3].split(',').filter_map(|c| c.parse().ok()).collect()
    }

    fn say(&mut self, room: &str, body: &str) {
        self.cmd(&format!("SAY {room} {body} {body}"));
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        self.world.with(|w| f(&w[&self.user]))
    }
}

/// Files one line of a client under what it means.
fn record(s: &mut Seen, line: &str) {
    let mut words = line.splitn(6, ' ');
    match words.next().unwrap_or("") {
        "GROUPCHAT" => {
            let from = words.next().unwrap_or("").to_owned();
            let stanza_id = words.next().unwrap_or("-").to_owned();
            let _id = words.next();
            let delayed = words.next() == Some("1");
            let body = words.next().unwrap_or("").to_owned();
            s.groupchat.push(Groupchat {
                from,
                stanza_id,
                delayed,
                body,
            });
        }
        "ERROR" => {
            let id = words.next().unwrap_or("-").to_owned();
            let condition = words.next().unwrap_or("-").to_owned();
            s.errors.push((id, condition));
        }
        "PRESENCE" => {
            let from = words.next().unwrap_or("").to_owned();
            let kind = words.next().unwrap_or("").to_owned();
            let codes = words.next().unwrap_or("-").to_owned();
            s.presences.push((from, kind, codes));
        }
        "SENT" => s.sent.push(words.next().unwrap_or("").to_owned()),
        "DISCONNECTED" => s.disconnected = true,
        _ => s.replies.push(line.to_owned()),
    }
}

/// The owner of a room among `nodes`, as every node computes it.
fn owner_of<'a>(room: &str, nodes: &[&'a str]) -> &'a str {
    parley_cluster::owner::owner(&format!("muc/{room}"), nodes.iter().copied())
        .expect("a live node")
}

/// The first room `<stem>N@conference.localhost` that `pick` accepts, given its owner
/// among the three nodes.
fn room_where(stem: &str, pick: impl Fn(&str) -> bool) -> String {
    (0..1000)
        .map(|i| format!("{stem}{i}@{SERVICE}"))
        .find(|r| pick(owner_of(r, &["n1", "n2", "n3"])))
        .expect("some room name places as asked")
}

/// Three nodes sharing a fresh database and etcd prefix, with accounts for `users`.
fn cluster(users: &[&str]) -> Vec<ClusterNode> {
    let db = shared_pg().database();
    add_users(&db, users);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = random_prefix("muc");
    // The `[cluster]` extra is the last section the kit writes: `[muc]` follows it.
    let extra = Extra {
        cluster: format!("\n{MUC_CONFIG}"),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=3)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 3);
    nodes
}

fn node<'a>(nodes: &'a [ClusterNode], id: &str) -> &'a ClusterNode {
    nodes
        .iter()
        .find(|n| n.id == id)
        .expect("a node of the cluster")
}

/// The first bot creates `room` (§10.1.1), makes it persistent (§10.1.3, which also
/// unlocks it), and everyone joins; returns once each occupant has seen every other one
/// arrive (§7.2.3).
fn open_room(bots: &mut [Bot], room: &str) {
    let (first, rest) = bots.split_first_mut().expect("a bot");
    let codes = first.join(room);
    assert!(
        codes.contains(&110) && codes.contains(&201),
        "§10.1.1: the first join creates the room: {codes:?}"
    );
    first.cmd(&format!(
        "CONFIGURE {room} muc#roomconfig_persistentroom=1 muc#roomconfig_enablearchiving=1"
    ));
    let line = first.reply("CONFIG");
    assert!(line.starts_with("CONFIGURED"), "§10.1.3: {line}");
    for b in rest.iter_mut() {
        let codes = b.join(room);
        assert!(codes.contains(&110) && !codes.contains(&201), "{codes:?}");
    }
    let nicks: Vec<String> = bots.iter().map(|b| b.nick.clone()).collect();
    for b in bots.iter() {
        let others: Vec<String> = nicks
            .iter()
            .filter(|n| **n != b.nick)
            .map(|n| format!("{room}/{n}"))
            .collect();
        b.world.wait(
            &format!("{} seeing every other occupant", b.user),
            WAIT,
            |seen| {
                let s = &seen[&b.user];
                others
                    .iter()
                    .all(|o| {
                        s.presences
                            .iter()
                            .any(|(from, kind, _)| from == o && kind == "available")
                    })
                    .then_some(())
            },
        );
    }
}

/// What became of the messages the bots sent.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    /// Reached every other occupant (and came back to its sender).
    delivered: usize,
    /// Came back to their sender as an error (whoever else got them): body and condition.
    errors: Vec<String>,
    /// Neither: reached only some occupants, or none, without an error.
    lost: Vec<String>,
    duplicates: Vec<String>,
    /// Bodies whose copies carried different (or no) stanza-ids.
    ids_differ: Vec<String>,
}

/// Waits until every message the bots sent either reached every bot (its sender included)
/// or came back to its sender as an error, then tallies them. A message that never settles
/// is counted lost once `WAIT` has passed.
fn settle(bots: &[Bot]) -> Tally {
    let world = &bots[0].world;
    let users: Vec<String> = bots.iter().map(|b| b.user.clone()).collect();
    let settled = |seen: &HashMap<String, Seen>| {
        users.iter().all(|sender| {
            seen[sender].sent.iter().all(|body| {
                seen[sender].errored(body) || users.iter().all(|u| seen[u].got(body) >= 1)
            })
        })
    };
    let end = Instant::now() + WAIT;
    let mut guard = lock(&world.seen);
    while !settled(&guard) && Instant::now() < end {
        guard = world
            .changed
            .wait_timeout(guard, end.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    let seen = &*guard;
    let mut t = Tally::default();
    for sender in &users {
        for body in &seen[sender].sent {
            t.sent += 1;
            let everywhere = users.iter().all(|u| seen[u].got(body) >= 1);
            if let Some((_, condition)) = seen[sender].errors.iter().find(|(i, _)| i == body) {
                t.errors.push(format!("{body}: {condition}"));
            } else if everywhere {
                t.delivered += 1;
            } else {
                let missing: Vec<&String> =
                    users.iter().filter(|u| seen[*u].got(body) == 0).collect();
                t.lost.push(format!("{body} (missing at {missing:?})"));
            }
            if users.iter().any(|u| seen[u].got(body) > 1) {
                t.duplicates.push(body.clone());
            }
            let ids: HashSet<&str> = users
                .iter()
                .flat_map(|u| {
                    seen[u]
                        .groupchat
                        .iter()
                        .filter(|g| !g.delayed && &g.body == body)
                        .map(|g| g.stanza_id.as_str())
                })
                .collect();
            if ids.len() > 1 || ids.contains("-") {
                t.ids_differ.push(format!("{body}: {ids:?}"));
            }
        }
    }
    t
}

/// Every bot says `tag` once; returns once all of them got all of those messages, with no
/// error back to any sender.
fn round(bots: &mut [Bot], room: &str, tag: &str) {
    let bodies: Vec<String> = bots.iter().map(|b| format!("{}-{tag}", b.user)).collect();
    for (b, body) in bots.iter_mut().zip(&bodies) {
        b.say(room, body);
    }
    let users: Vec<String> = bots.iter().map(|b| b.user.clone()).collect();
    bots[0].world.wait(
        &format!("every occupant receiving the round {tag:?}"),
        WAIT,
        |seen| {
            for u in &users {
                for body in &bodies {
                    assert!(!seen[u].errored(body), "{body} came back as an error");
                }
            }
            users
                .iter()
                .all(|u| bodies.iter().all(|b| seen[u].got(b) >= 1))
                .then_some(())
        },
    );
}

/// No occupant saw another leave (§7.2.3's unavailable presence, or 333 for a lost seat).
fn nobody_left(bots: &[Bot]) {
    for b in bots {
        let left: Vec<(String, String, String)> = b.seen(|s| {
            s.presences
                .iter()
                .filter(|(_, kind, _)| kind != "available")
                .cloned()
                .collect()
        });
        assert!(left.is_empty(), "{} saw occupants leave: {left:?}", b.user);
        assert!(
            !b.seen(|s| s.disconnected),
            "{} lost its connection",
            b.user
        );
    }
}

/// XEP-0045 §7.2.3 and §7.4 across nodes, with XEP-0359 §3: three occupants, each on its
/// own node (the room's creator on a node that does not own the room), see each other
/// arrive, and every groupchat message reaches every occupant (its sender too) exactly
/// once, from the sender's occupant JID, with the same `<stanza-id by=room/>` everywhere.
#[test]
fn xep0045_7_4_a_room_spans_nodes_and_relays_each_message_once_with_one_stanza_id() {
    let _one = one_cluster();
    let nodes = cluster(&["alice", "bob", "carol"]);
    let room = room_where("span", |owner| owner == "n2");
    eprintln!("room {room} lives on n2");
    let world = Arc::new(World::default());
    let mut bots = vec![
        Bot::start(&world, "alice", node(&nodes, "n1")),
        Bot::start(&world, "bob", node(&nodes, "n2")),
        Bot::start(&world, "carol", node(&nodes, "n3")),
    ];
    open_room(&mut bots, &room);

    for i in 1..=3 {
        round(&mut bots, &room, &format!("m{i}"));
    }
    // A last round: whatever was repeated of the first three came before it on each
    // node's one ordered road from the room.
    round(&mut bots, &room, "last");
    let t = settle(&bots);
    eprintln!("{t:?}");
    assert_eq!(t.sent, 12);
    assert_eq!(
        t.delivered, 12,
        "§7.4: every message reaches every occupant"
    );
    assert!(t.duplicates.is_empty(), "shown twice: {:?}", t.duplicates);
    assert!(
        t.ids_differ.is_empty(),
        "XEP-0359: one stanza-id per message: {:?}",
        t.ids_differ
    );
    // From the sender's occupant JID, and every stanza-id unique.
    let mut ids = HashSet::new();
    for g in bots[0].seen(|s| s.groupchat.clone()) {
        let sender = g.body.split('-').next().unwrap().to_owned();
        let nick = bots.iter().find(|b| b.user == sender).unwrap().nick.clone();
        assert_eq!(
            g.from,
            format!("{room}/{nick}"),
            "§7.4: from the occupant JID"
        );
        assert!(ids.insert(g.stanza_id.clone()), "stanza-id reused: {g:?}");
    }
    nobody_left(&bots);
}

/// Talks on every bot until each has received `more` new messages from every other
/// talker, counted from now.
fn talk_until_heard(bots: &mut [Bot], room: &str, prefix: &str, more: usize) {
    let users: Vec<String> = bots.iter().map(|b| b.user.clone()).collect();
    let before: HashMap<String, usize> = bots[0].world.with(|seen| {
        users
            .iter()
            .map(|u| (u.clone(), seen[u].groupchat.len()))
            .collect()
    });
    for b in bots.iter_mut() {
        let name = format!("{}-{prefix}", b.user);
        b.cmd(&format!("TALK {room} {name} {PACE_MS}"));
    }
    bots[0].world.wait(
        &format!("{more} messages of every talker after {prefix}"),
        WAIT,
        |seen| {
            users
                .iter()
                .all(|u| {
                    let fresh = &seen[u].groupchat[before[u]..];
                    users.iter().all(|talker| {
                        let nick_prefix = format!("{talker}-{prefix}-");
                        fresh
                            .iter()
                            .filter(|g| g.body.starts_with(&nick_prefix))
                            .count()
                            >= more
                    })
                })
                .then_some(())
        },
    );
}

fn hush(bots: &mut [Bot]) {
    for b in bots.iter_mut() {
        b.cmd("HUSH");
    }
    for b in bots.iter() {
        b.reply("HUSHED");
    }
}

/// Messages each bot sent since it had sent `from[user]`.
fn sent_since(bots: &[Bot], from: &HashMap<String, usize>) -> Vec<(String, String)> {
    bots[0].world.with(|seen| {
        bots.iter()
            .flat_map(|b| {
                seen[&b.user].sent[from[&b.user]..]
                    .iter()
                    .map(|m| (b.user.clone(), m.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

fn sent_counts(bots: &[Bot]) -> HashMap<String, usize> {
    bots[0].world.with(|seen| {
        bots.iter()
            .map(|b| (b.user.clone(), seen[&b.user].sent.len()))
            .collect()
    })
}

/// XEP-0045 §7.4 and §7.2.3 through a restart of the room's node: four occupants on the two
/// other nodes keep talking while the room's owner node is drained (SIGTERM), leaves and
/// starts again. Nobody loses their seat (the room is read again from PostgreSQL on its new
/// owner, occupants included), no message is lost (each reaches every occupant or comes
/// back to its sender as an error, and the errors are counted), nothing is shown twice, and
/// every message sent after each membership change — the node gone, then back and the
/// room moved home — reaches everyone without an error.
#[test]
fn xep0045_7_4_a_room_survives_a_restart_of_its_node_with_nothing_lost() {
    let _one = one_cluster();
    let users = ["alice", "bob", "carol", "dave"];
    let mut nodes = cluster(&users);
    let room = room_where("stay", |owner| owner == "n3");
    let successor = owner_of(&room, &["n1", "n2"]);
    eprintln!("room {room} lives on n3, then on {successor}");
    let world = Arc::new(World::default());
    let mut bots = vec![
        Bot::start(&world, "alice", node(&nodes, "n1")),
        Bot::start(&world, "bob", node(&nodes, "n1")),
        Bot::start(&world, "carol", node(&nodes, "n2")),
        Bot::start(&world, "dave", node(&nodes, "n2")),
    ];
    assert!(bots.iter().all(|b| b.node != "n3"));
    open_room(&mut bots, &room);
    round(&mut bots, &room, "hello");

    // The owner goes, mid-conversation.
    talk_until_heard(&mut bots, &room, "a", 3);
    let i = nodes.iter().position(|n| n.id == "n3").unwrap();
    let mut owner = nodes.remove(i);
    let exit = owner.terminate();
    dump(&owner, "first");
    eprintln!("n3 exited {exit:?} after SIGTERM");
    wait_members(&nodes, 2);
    let after_leave = sent_counts(&bots);
    // The conversation goes on under the new owner: everyone hears everyone again.
    let heard_at_leave: HashMap<String, usize> = world.with(|seen| {
        users
            .iter()
            .map(|u| (u.to_string(), seen[*u].groupchat.len()))
            .collect()
    });
    world.wait(
        "every talker heard by everyone after n3 left",
        WAIT,
        |seen| {
            users
                .iter()
                .all(|u| {
                    let fresh = &seen[*u].groupchat[heard_at_leave[*u]..];
                    users.iter().all(|talker| {
                        let p = format!("{talker}-a-");
                        fresh.iter().filter(|g| g.body.starts_with(&p)).count() >= 3
                    })
                })
                .then_some(())
        },
    );
    hush(&mut bots);
    round(&mut bots, &room, "after-leave");
    let t = settle(&bots);
    eprintln!("after n3 left: {t:?}");
    for (user, body) in sent_since(&bots, &after_leave) {
        let errored = bots
            .iter()
            .find(|b| b.user == user)
            .unwrap()
            .seen(|s| s.errored(&body));
        assert!(
            !errored,
            "{body}, sent after the membership change, came back as an error"
        );
    }
    check(&t);
    nobody_left(&bots);

    // The node comes back: the room moves home again, mid-conversation.
    talk_until_heard(&mut bots, &room, "b", 3);
    let started = Instant::now();
    owner.restart();
    eprintln!("n3 ready again after {:?}", started.elapsed());
    nodes.push(owner);
    wait_members(&nodes, 3);
    let after_join = sent_counts(&bots);
    talk_until_heard(&mut bots, &room, "c", 3);
    hush(&mut bots);
    round(&mut bots, &room, "after-join");
    let t = settle(&bots);
    eprintln!("after n3 came back: {t:?}");
    for (user, body) in sent_since(&bots, &after_join) {
        let errored = bots
            .iter()
            .find(|b| b.user == user)
            .unwrap()
            .seen(|s| s.errored(&body));
        assert!(
            !errored,
            "{body}, sent after n3 came back, came back as an error"
        );
    }
    for n in &nodes {
        dump(n, "end");
    }
    check(&t);
    nobody_left(&bots);
}

/// Debugging aid: with `MUC_DUMP=<dir>`, the node's log goes there.
fn dump(n: &ClusterNode, tag: &str) {
    if let Ok(dir) = std::env::var("MUC_DUMP") {
        let _ = std::fs::write(format!("{dir}/{}-{tag}.log", n.id), n.log());
    }
}

fn check(t: &Tally) {
    assert!(
        t.lost.is_empty(),
        "§7.4: messages neither delivered to every occupant nor refused: {:?}",
        t.lost
    );
    assert!(t.duplicates.is_empty(), "shown twice: {:?}", t.duplicates);
    assert!(
        t.ids_differ.is_empty(),
        "XEP-0359: one stanza-id per message: {:?}",
        t.ids_differ
    );
    assert_eq!(t.sent, t.delivered + t.errors.len());
}

/// The room's archive as `bot` reads it (XEP-0313 for MUC): body → archive id.
fn archive(bot: &mut Bot, room: &str) -> HashMap<String, String> {
    bot.cmd(&format!("MAM {room}"));
    let end = bot.reply("MAM-");
    assert!(end.starts_with("MAM-END"), "XEP-0313: {end}");
    let mut seen = lock(&bot.world.seen);
    let replies = &mut seen.get_mut(&bot.user).expect("registered").replies;
    let mut out = HashMap::new();
    replies.retain(|l| {
        let mut w = l.splitn(4, ' ');
        if w.next() != Some("MAM") {
            return true;
        }
        let id = w.next().unwrap_or("").to_owned();
        let _from = w.next();
        out.insert(w.next().unwrap_or("").to_owned(), id);
        false
    });
    out
}

/// Three rounds of messages in a room on n3, with occupants on n1 and n2: the bots, the
/// nodes (n3 last), the room, and what the occupants were given (body → stanza-id).
fn three_rounds(
    world: &Arc<World>,
    users: &[&str],
    stem: &str,
) -> (Vec<Bot>, Vec<ClusterNode>, String, HashMap<String, String>) {
    let mut nodes = cluster(users);
    let room = room_where(stem, |owner| owner == "n3");
    let successor = owner_of(&room, &["n1", "n2"]);
    eprintln!("room {room} lives on n3, then on {successor}");
    let mut bots = vec![
        Bot::start(world, "alice", node(&nodes, "n1")),
        Bot::start(world, "bob", node(&nodes, "n2")),
    ];
    open_room(&mut bots, &room);
    for i in 1..=3 {
        round(&mut bots, &room, &format!("h{i}"));
    }
    let given: HashMap<String, String> = bots[0].seen(|s| {
        s.groupchat
            .iter()
            .map(|g| (g.body.clone(), g.stanza_id.clone()))
            .collect()
    });
    assert_eq!(given.len(), 6);
    let i = nodes.iter().position(|n| n.id == "n3").expect("n3");
    let owner = nodes.remove(i);
    nodes.push(owner);
    (bots, nodes, room, given)
}

/// The room archive (XEP-0313 for MUC) and the history sent on join (XEP-0045 §7.2.14)
/// after the room's node is drained (SIGTERM) right after the last message — nothing waits
/// for the node's archive writer, whose last batch the room's hand-over must write before
/// the node exits: the room's new owner answers an archive query with every message and
/// the stanza-ids the occupants were given, and a newcomer gets them all as the history,
/// which the new owner read from the archive when the room started there.
#[test]
fn xep0045_7_2_14_history_and_archive_survive_a_drain_of_the_rooms_node() {
    let _one = one_cluster();
    let world = Arc::new(World::default());
    let (mut bots, mut nodes, room, given) =
        three_rounds(&world, &["alice", "bob", "erin"], "kept");
    let mut owner = nodes.pop().expect("n3");
    owner.terminate();
    wait_members(&nodes, 2);

    assert_eq!(
        archive(&mut bots[0], &room),
        given,
        "XEP-0313: the archive holds every message, with the ids given"
    );
    let mut erin = Bot::start(&world, "erin", node(&nodes, "n1"));
    erin.cmd(&format!("JOIN {room} Erin 20"));
    let line = erin.reply("JOIN");
    assert!(line.starts_with("JOINED"), "{line}");
    let history: HashMap<String, String> = erin.seen(|s| {
        s.groupchat
            .iter()
            .filter(|g| g.delayed)
            .map(|g| (g.body.clone(), g.stanza_id.clone()))
            .collect()
    });
    assert_eq!(
        history, given,
        "§7.2.14: the history holds every message, with the ids given"
    );
    nobody_left(&bots);
}
