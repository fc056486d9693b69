//! The rolling restart of issue 12 against real processes: three `parley` nodes behind
//! HAProxy (health-checking `/ready`), a real etcd and PostgreSQL, and 20 pairs of clients
//! with Stream Management (XEP-0198) resumption exchanging numbered messages while every
//! node in turn is drained (SIGTERM), exits and starts again.
//!
//! Each client is a small XEP-0198 client of its own: it counts what it handles, answers
//! `<r/>`, and when its connection is closed (the drain's `<see-other-host/>`) or dropped it
//! reconnects through the load balancer and resumes with its count, sending again only what
//! the server's `<resumed h/>` says it never handled. The test then counts, per pair: every
//! number received exactly once (0 lost, 0 duplicates), and no client that had to log in
//! again (every resume succeeded).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_proto::ns;
use parley_testkit::cluster::{add_users, ClusterNode};
use parley_testkit::im::{body, chat};
use parley_testkit::{shared_etcd, shared_pg, sm, Client, ClientError, Haproxy, Received};
use parley_xml::Element;

/// Client pairs.
const PAIRS: usize = 20;
/// Between two messages of one client: a steady trickle while nodes restart.
const PACE: Duration = Duration::from_millis(150);
/// Messages each client receives between two restarts (and before the first, after the
/// last).
const TRAFFIC: usize = 30;

/// What one client saw.
#[derive(Debug, Default)]
struct Report {
    received: HashSet<u32>,
    duplicates: u32,
    relogins: u32,
    resumes: u32,
    /// Own messages the server had not confirmed when the client gave up waiting.
    unconfirmed: usize,
}

struct Shared {
    /// Senders stop sending once set.
    stop: AtomicBool,
    /// Clients that have seen `stop` (and so send nothing more): a receiver's count of what
    /// its partner sent is final only once all have.
    stopped: std::sync::atomic::AtomicUsize,
    /// Clients logged in so far, and the signal that one more did.
    ready: std::sync::atomic::AtomicUsize,
    ready_changed: tokio::sync::Notify,
    /// Messages received by all clients, and the signal that one more was.
    received: std::sync::atomic::AtomicUsize,
    received_changed: tokio::sync::Notify,
    /// Numbers each client sent (1..=n), by client index.
    sent: Vec<AtomicU32>,
}

/// One connected XEP-0198 session of a client.
struct Conn {
    c: Client,
    previd: String,
}

struct SmClient {
    lb: SocketAddr,
    user: String,
    partner: String,
    /// Stanzas handled from the server since `<enable/>` (mod 2^32).
    h_in: u32,
    /// The server's count of our stanzas that we know of, and what we sent after it.
    out_acked: u32,
    out: VecDeque<u32>,
    report: Report,
}

impl SmClient {
    fn message(&self, n: u32) -> Element {
        chat(
            &format!("{}@localhost/r", self.partner),
            "chat",
            &n.to_string(),
        )
        .with_attr("id", format!("{}-{n}", self.user))
    }

    async fn write(conn: &mut Conn, el: &Element) -> Result<(), ClientError> {
        conn.c
            .send_raw(el.to_bytes_in(Some(ns::CLIENT)))
            .await
            .map_err(ClientError::Io)
    }

    /// Logs in afresh and enables resumption (the first time, and after a failed resume).
    async fn login(&mut self) -> Conn {
        let mut c = loop {
            match Client::try_authed(self.lb, &self.user).await {
                Ok(c) => break c,
                Err(e) => {
                    eprintln!("{}: login refused: {e}", self.user);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        c.bind(Some("r")).await.expect("bind");
        let previd = c.sm_enable_resumable().await.expect("enable resumption");
        self.h_in = 0;
        self.out_acked = 0;
        Conn { c, previd }
    }

    /// Reconnects through the load balancer until the session is resumed (or, failing
    /// that, logged in again, which the test counts as a failure).
    async fn reconnect(&mut self, previd: String) -> Conn {
        loop {
            let mut c = match Client::try_authed(self.lb, &self.user).await {
                Ok(c) => c,
                // A node that is draining refuses; HAProxy takes it out within moments.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if c.send_raw(sm::resume(&previd, self.h_in).to_bytes_in(None))
                .await
                .is_err()
            {
                continue;
            }
            let answer = loop {
                match c.recv().await {
                    Ok(Received::Element(el)) if sm::is_nonza(&el) => break Some(el),
                    Ok(Received::Element(_)) => {}
                    _ => break None,
                }
            };
            let Some(answer) = answer else {
                continue;
            };
            if sm::is(&answer, "resumed") {
                self.report.resumes += 1;
                let h = sm::h(&answer).expect("h in <resumed/>");
                let mut conn = Conn { c, previd };
                self.acked(h);
                // §5: what the server never handled is sent again, in order.
                let again: Vec<u32> = self.out.iter().copied().collect();
                for n in again {
                    let _ = Self::write(&mut conn, &self.message(n)).await;
                }
                return conn;
            }
            // The session is gone: a new login, which the test counts.
            self.report.relogins += 1;
            let _ = c.bind(Some("r")).await;
            let previd = c.sm_enable_resumable().await.expect("enable resumption");
            self.h_in = 0;
            self.out_acked = 0;
            self.out.clear();
            return Conn { c, previd };
        }
    }

    /// The server handled `h` of our stanzas in all.
    fn acked(&mut self, h: u32) {
        let newly = h.wrapping_sub(self.out_acked) as usize;
        assert!(
            newly <= self.out.len(),
            "the server acknowledged more than we sent"
        );
        self.out.drain(..newly);
        self.out_acked = h;
    }

    /// Handles one element from the server; false when the connection is over.
    async fn handle(&mut self, conn: &mut Conn, el: Element) -> bool {
        if sm::is(&el, "r") {
            return Self::write(conn, &sm::ack(self.h_in)).await.is_ok();
        }
        if sm::is(&el, "a") {
            if let Some(h) = sm::h(&el) {
                self.acked(h);
            }
            return true;
        }
        if el.is("error", ns::STREAM) {
            return false;
        }
        if matches!(el.name(), "message" | "presence" | "iq") {
            self.h_in = self.h_in.wrapping_add(1);
        }
        if el.is("message", ns::CLIENT) {
            if let Ok(n) = body(&el).parse::<u32>() {
                if !self.report.received.insert(n) {
                    self.report.duplicates += 1;
                }
            }
        }
        true
    }
}

async fn run_client(lb: SocketAddr, me: usize, partner: usize, shared: Arc<Shared>) -> Report {
    let mut cl = SmClient {
        lb,
        user: format!("u{me}"),
        partner: format!("u{partner}"),
        h_in: 0,
        out_acked: 0,
        out: VecDeque::new(),
        report: Report::default(),
    };
    let mut conn = cl.login().await;
    shared.ready.fetch_add(1, Ordering::AcqRel);
    shared.ready_changed.notify_waiters();
    // Nobody sends before everybody is bound: a message to a resource not yet bound would
    // go to offline storage, which these clients never read.
    loop {
        let changed = shared.ready_changed.notified();
        if shared.ready.load(Ordering::Acquire) == shared.sent.len() {
            break;
        }
        changed.await;
    }
    let mut tick = tokio::time::interval(PACE);
    let mut asked_last = false;
    let mut quiet = 0;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        if stopping && !asked_last {
            // The last messages: ask the server to confirm them rather than wait for it.
            asked_last = true;
            shared.stopped.fetch_add(1, Ordering::AcqRel);
            if SmClient::write(&mut conn, &sm::request()).await.is_err() {
                let previd = conn.previd.clone();
                conn = cl.reconnect(previd).await;
            }
        }
        // Read in this order: once every client has stopped, the partner's count is final.
        let all_stopped = shared.stopped.load(Ordering::Acquire) == shared.sent.len();
        let expected = shared.sent[partner].load(Ordering::Acquire);
        if all_stopped && cl.report.received.len() as u32 >= expected && cl.out.is_empty() {
            return cl.report;
        }
        let alive = tokio::select! {
            got = conn.c.recv() => match got {
                Ok(Received::Element(el)) => {
                    let before = cl.report.received.len();
                    let alive = cl.handle(&mut conn, el).await;
                    if cl.report.received.len() > before {
                        shared.received.fetch_add(1, Ordering::AcqRel);
                        shared.received_changed.notify_waiters();
                    }
                    alive
                }
                Ok(Received::Header(_)) => true,
                Ok(Received::Close | Received::Eof) | Err(ClientError::Io(_)) => false,
                // Quiet for the kit's bound: ask the server where it stands, and after
                // three such rounds report what is missing rather than wait for ever.
                Err(ClientError::Timeout(_)) if stopping => {
                    quiet += 1;
                    if quiet == 3 {
                        cl.report.unconfirmed = cl.out.len();
                        return cl.report;
                    }
                    SmClient::write(&mut conn, &sm::request()).await.is_ok()
                }
                Err(ClientError::Timeout(_)) => true,
                Err(e) => panic!("{}: {e}", cl.user),
            },
            _ = tick.tick(), if !stopping => {
                let n = shared.sent[me].load(Ordering::Acquire) + 1;
                cl.out.push_back(n);
                shared.sent[me].store(n, Ordering::Release);
                SmClient::write(&mut conn, &cl.message(n)).await.is_ok()
            }
        };
        if !alive {
            let previd = conn.previd.clone();
            conn = cl.reconnect(previd).await;
        }
    }
}

/// Issue 12's target: 20 pairs of resumable clients behind HAProxy keep chatting while all
/// three nodes are drained and restarted in turn: 0 messages lost, 0 duplicates, 0 clients
/// that had to log in again (XEP-0198 §5 across nodes, RFC 6120 §4.9.3.19 drains).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0198_5_a_rolling_restart_loses_nothing_and_logs_nobody_out() {
    let db = shared_pg().database();
    let users: Vec<String> = (0..2 * PAIRS).map(|i| format!("u{i}")).collect();
    add_users(&db, &users.iter().map(String::as_str).collect::<Vec<_>>());
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("rr");
    // The server asks for acks often, so that queues stay short while nodes come and go.
    let extra = "sm_ack_every = 3\nsm_ack_delay_ms = 500";
    let mut nodes: Vec<ClusterNode> = (1..=3)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, extra))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 3);
    let servers: Vec<_> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.c2s, n.admin))
        .collect();
    let haproxy = Haproxy::start("tcp", &servers);
    let lb = haproxy.addr;

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        stopped: std::sync::atomic::AtomicUsize::new(0),
        ready: std::sync::atomic::AtomicUsize::new(0),
        ready_changed: tokio::sync::Notify::new(),
        received: std::sync::atomic::AtomicUsize::new(0),
        received_changed: tokio::sync::Notify::new(),
        sent: (0..2 * PAIRS).map(|_| AtomicU32::new(0)).collect(),
    });
    let clients: Vec<_> = (0..2 * PAIRS)
        .map(|i| {
            let partner = i ^ 1;
            tokio::spawn(run_client(lb, i, partner, shared.clone()))
        })
        .collect();

    // Every client is in before the first node goes.
    loop {
        let changed = shared.ready_changed.notified();
        if shared.ready.load(Ordering::Acquire) == 2 * PAIRS {
            break;
        }
        changed.await;
    }
    eprintln!("rolling restart: {} clients in", 2 * PAIRS);
    // Every node in turn: drain (SIGTERM), wait for it to exit, start it again; between
    // two, the clients exchange a round of messages (each about TRAFFIC of them).
    let traffic = |shared: Arc<Shared>| async move {
        let target = shared.received.load(Ordering::Acquire) + 2 * PAIRS * TRAFFIC;
        loop {
            let changed = shared.received_changed.notified();
            if shared.received.load(Ordering::Acquire) >= target {
                return;
            }
            changed.await;
        }
    };
    for i in 0..nodes.len() {
        traffic(shared.clone()).await;
        eprintln!("rolling restart: draining node {}", i + 1);
        let mut node = nodes.remove(i);
        node = tokio::task::spawn_blocking(move || {
            node.signal_term();
            let status = node.wait_exit(Duration::from_secs(90));
            assert!(status.success(), "node {} exits 0 after its drain", node.id);
            node.restart();
            node
        })
        .await
        .expect("restart");
        eprintln!("rolling restart: node {} is back", i + 1);
        nodes.insert(i, node);
    }
    traffic(shared.clone()).await;
    shared.stop.store(true, Ordering::Release);

    let mut lost = 0;
    let (mut duplicates, mut relogins, mut resumes) = (0, 0, 0);
    let mut reports = Vec::new();
    for c in clients {
        reports.push(c.await.expect("client task"));
    }
    for (i, r) in reports.iter().enumerate() {
        let expected = shared.sent[i ^ 1].load(Ordering::Acquire);
        let missing: Vec<u32> = (1..=expected).filter(|n| !r.received.contains(n)).collect();
        if !missing.is_empty() || r.unconfirmed > 0 {
            eprintln!(
                "u{i}: missing {missing:?} of {expected}; {} of its own unconfirmed; {} resumes",
                r.unconfirmed, r.resumes
            );
        }
        lost += missing.len();
        duplicates += r.duplicates;
        relogins += r.relogins;
        resumes += r.resumes;
    }
    let total: u32 = shared.sent.iter().map(|s| s.load(Ordering::Acquire)).sum();
    eprintln!(
        "rolling restart: {total} messages, {lost} lost, {duplicates} duplicates, {relogins} re-logins, {resumes} resumes"
    );
    assert_eq!(lost, 0, "messages lost");
    assert_eq!(duplicates, 0, "duplicates shown");
    assert_eq!(relogins, 0, "clients that had to log in again");
    assert!(
        resumes as usize >= 2 * PAIRS,
        "every client was moved at least once: {resumes} resumes"
    );
}
