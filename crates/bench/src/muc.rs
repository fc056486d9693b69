//! `muc`: one multi-user chat room (XEP-0045) with N occupants and one of them talking
//! (issue 15): how long a groupchat message takes to reach the last occupant, what each
//! message costs the server in CPU, and what each occupant costs it in memory.
//!
//! N users log in (spread over the target's addresses: every node of a cluster), all
//! readers start, the first user creates the room (an instant room, §10.1.2, when the
//! server locks new rooms) and the others join, one at a time unless told otherwise. The
//! server's RSS is read before and after the joins. Then the first occupant sends messages at each offered load
//! (messages per second), and every reader notes when each message reached it: the
//! message's fan-out latency is from its send to its arrival at the last of the N
//! occupants (the sender's own copy included). Server CPU is summed over every server
//! process given (`--pids`: all the nodes), so it is the whole cluster's cost.
//!
//! The generator runs all N sessions in one process; each delivery costs it a parse, so
//! at high loads its own CPU (reported) is part of what the latency shows.
//!
//! `muc/runner.rs` starts the servers of the recorded comparison (a Parley cluster, the
//! reference Prosody with `mod_muc`) and runs this scenario against each;
//! `muc/report.rs` renders the tables.

mod meter;
mod reader;
pub mod report;
pub mod runner;

pub use report::report;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_xml::escape;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Session, SessionWriter};
use crate::idle::close_all;
use crate::proc::proc_sample;
use crate::stats::{run_pool, Latencies, LatencySummary};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;
use meter::{cpu_of, machine_cpu_busy_s, rss_of, usage};
use reader::{read_loop, Board, Event, Slot, BODY_MARK};

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// How long one join may take: late joiners of a big room wait behind the presence
/// storm the earlier joins caused.
const JOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the presence storm of the joins may take to settle, at most.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// The storm counts as over when no presence arrived for this long.
const SETTLE_QUIET: Duration = Duration::from_secs(3);
/// Pause before RSS is read, so that freed buffers and the allocator settle.
const RSS_PAUSE: Duration = Duration::from_secs(2);
/// How long the server's CPU is read with the room full and silent: what it spends
/// anyway (timers, leases, keep-alives), to set apart from what the messages cost.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct MucOpts {
    /// Occupants: users FIRST .. FIRST+N-1; the first creates the room and talks.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Offered loads: messages per second from the talking occupant, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,50")]
    pub rates: Vec<f64>,
    /// Seconds of sending at each load.
    #[arg(long = "duration", default_value_t = 20.0)]
    pub duration_s: f64,
    /// The room's local part.
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// The conference service (default: conference.DOMAIN).
    #[arg(long)]
    pub service: Option<String>,
    /// Logins in flight while setting up.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Joins in flight. One at a time by default, as people enter a room: many at once
    /// pile the presence storm up in the server's buffers, which its allocator keeps and
    /// the RSS per occupant would count.
    #[arg(long, default_value_t = 1)]
    pub join_concurrency: usize,
    /// Seconds to wait, after a load's last send, for its messages to reach everyone.
    #[arg(long = "drain", default_value_t = 30.0)]
    pub drain_s: f64,
    /// Filler characters per body.
    #[arg(long, default_value_t = 0)]
    pub body_pad: usize,
    /// Server processes whose CPU and RSS are summed (every node of a cluster); default
    /// the target's --server-pid.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Processes the server leans on (PostgreSQL, etcd): their CPU, children included,
    /// is reported apart.
    #[arg(long, value_delimiter = ',')]
    pub aux_pids: Vec<u32>,
}

impl Default for MucOpts {
    fn default() -> Self {
        MucOpts {
            users: 1000,
            rates: vec![1.0, 5.0, 10.0, 50.0],
            duration_s: 20.0,
            room: "bench".into(),
            service: None,
            concurrency: 50,
            join_concurrency: 1,
            drain_s: 30.0,
            body_pad: 0,
            pids: Vec::new(),
            aux_pids: Vec::new(),
        }
    }
}

impl MucOpts {
    /// The scenario's command-line arguments (after `run … muc`), for a child process.
    pub fn to_args(&self) -> Vec<String> {
        let join = |v: &[String]| v.join(",");
        let mut args = vec![
            "--users".to_owned(),
            self.users.to_string(),
            "--rates".to_owned(),
            join(&self.rates.iter().map(f64::to_string).collect::<Vec<_>>()),
            "--duration".to_owned(),
            self.duration_s.to_string(),
            "--room".to_owned(),
            self.room.clone(),
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--join-concurrency".to_owned(),
            self.join_concurrency.to_string(),
            "--drain".to_owned(),
            self.drain_s.to_string(),
            "--body-pad".to_owned(),
            self.body_pad.to_string(),
        ];
        if let Some(s) = &self.service {
            args.extend(["--service".to_owned(), s.clone()]);
        }
        for (flag, pids) in [("--pids", &self.pids), ("--aux-pids", &self.aux_pids)] {
            if !pids.is_empty() {
                let list: Vec<String> = pids.iter().map(u32::to_string).collect();
                args.extend([flag.to_owned(), join(&list)]);
            }
        }
        args
    }

    /// Messages sent at load `rate`: at least one.
    pub fn messages_at(&self, rate: f64) -> usize {
        ((rate * self.duration_s).round() as usize).max(1)
    }
}

/// One offered load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MucLevel {
    /// Messages per second asked of the sender.
    pub offered_per_s: f64,
    pub sent: u64,
    /// `sent` over the time the sends took.
    pub achieved_per_s: f64,
    /// Messages that reached every occupant before the drain ended.
    pub complete: u64,
    /// Deliveries missing at the end (occupants that never got a message).
    pub missing_deliveries: u64,
    /// Deliveries beyond one per occupant and message.
    pub duplicate_deliveries: u64,
    /// Error messages the sender got back during the load (e.g. a rate limit).
    pub errors: u64,
    /// Send to arrival at the last occupant, over complete messages.
    pub fanout: LatencySummary,
    /// The same for each message in sending order, in milliseconds (None: incomplete), to
    /// see whether slow ones come together (something else took the CPU) or spread.
    pub fanout_ms_by_message: Vec<Option<f32>>,
    /// Mean of send to arrival over every delivery, in milliseconds.
    pub delivery_mean_ms: f64,
    /// From the first send until every message arrived everywhere (or the drain ended).
    pub wall_s: f64,
    /// Server CPU seconds over the interval, every process of `--pids` together.
    pub server_cpu_s: Option<f64>,
    /// The same per process, in `--pids` order.
    pub server_cpu_s_by_pid: Vec<f64>,
    /// Server CPU per message that reached everyone, in milliseconds: `server_cpu_s` over
    /// the deliveries made, times the occupants. Per delivery, so that a server that falls
    /// behind (and delivers part of the load in the interval) is not credited with the
    /// rest.
    pub server_cpu_ms_per_message: Option<f64>,
    /// The same less the server's idle CPU (`MucResult::idle_server_cpu_per_s`) over the
    /// interval.
    pub server_cpu_ms_per_message_less_idle: Option<f64>,
    /// Busy seconds of each CPU of the machine over the interval (`/proc/stat`: all
    /// processes, this generator and other users of the machine included, and time the
    /// hypervisor took), to see what else competed with the server.
    pub machine_cpu_busy_s: Vec<f64>,
    /// CPU seconds of the `--aux-pids` process trees.
    pub aux_cpu_s: Option<f64>,
    /// The generator's CPU seconds over the interval.
    pub client_cpu_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MucResult {
    pub scenario: String,
    pub config: MucOpts,
    pub target: TargetEcho,
    /// The room's JID.
    pub room: String,
    pub occupants: usize,
    /// Sessions per target address, in target order.
    pub occupants_by_addr: Vec<usize>,
    /// Logging in every user (SASL, bind, initial presence).
    pub login_s: f64,
    /// From the first join request to the last occupant's self-presence.
    pub join_s: f64,
    /// One join: request to self-presence (status 110).
    pub join_latency: LatencySummary,
    /// From the first join until the presence storm was over.
    pub join_settle_s: f64,
    /// Room presences the occupants received by then, and N² (each sees everyone).
    pub join_presences: u64,
    pub join_presences_expected: u64,
    /// Server CPU seconds from before the first join to the end of the storm.
    pub join_server_cpu_s: Option<f64>,
    pub join_aux_cpu_s: Option<f64>,
    /// Server CPU seconds per second with the room full and nobody talking.
    pub idle_server_cpu_per_s: Option<f64>,
    /// Server RSS per process (`--pids` order) with every user logged in, before joining,
    /// and after every join (the storm settled).
    pub server_rss_kib_before_join: Vec<u64>,
    pub server_rss_kib_after_join: Vec<u64>,
    /// `(Σ after − Σ before) / occupants`.
    pub rss_per_occupant_kib: Option<f64>,
    pub levels: Vec<MucLevel>,
    /// Connections the server closed during the run.
    pub dropped_connections: u64,
}

/// A logged-in occupant: its writer (shared with its reader, which answers the server's
/// pings), the reader's events, and the reader task.
struct Occupant {
    writer: Arc<Mutex<SessionWriter>>,
    events: mpsc::UnboundedReceiver<Event>,
    reader: JoinHandle<()>,
}

impl Occupant {
    async fn send(&self, data: &str) -> Result<(), BenchError> {
        self.writer.lock().await.send(data.as_bytes()).await
    }

    /// The next event, or an error at `deadline` or when the reader stopped.
    async fn event(&mut self, deadline: Instant, what: &str) -> Result<Event, BenchError> {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Err(_) => Err(BenchError::Timeout(what.to_owned())),
            Ok(None) => Err(BenchError::Closed(format!("the connection ended: {what}"))),
            Ok(Some(e)) => Ok(e),
        }
    }
}

/// Runs the scenario: logins, joins, each load, and closes every session.
pub async fn muc(target: &Target, opts: &MucOpts) -> Result<MucResult, BenchError> {
    let mut target = target.clone();
    // User K on address K mod len: the spread over the nodes is known, not luck.
    target.place_by_user = true;
    let shared = Shared::new(&target)?;
    let n = opts.users;
    if n < 2 || opts.rates.is_empty() || opts.duration_s <= 0.0 {
        return Err(BenchError::Options(
            "muc needs at least 2 users, one rate and a duration above 0".into(),
        ));
    }
    if opts.rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        return Err(BenchError::Options("muc rates must be above 0".into()));
    }
    let pids = if opts.pids.is_empty() {
        target.server_pid.into_iter().collect()
    } else {
        opts.pids.clone()
    };
    let service = opts
        .service
        .clone()
        .unwrap_or_else(|| format!("conference.{}", target.domain));
    let room = format!("{}@{service}", opts.room);

    eprintln!(
        "muc: logging in {n} users over {} addresses",
        target.addrs.len()
    );
    let t = Instant::now();
    let sh = shared.clone();
    let logins = run_pool(n, opts.concurrency, move |i| {
        let sh = sh.clone();
        async move {
            let mut s = Session::login(&sh, i, "muc").await?;
            s.available().await?;
            Ok::<_, BenchError>(s)
        }
    })
    .await;
    let login_s = t.elapsed().as_secs_f64();
    let mut sessions = Vec::with_capacity(n);
    let mut failure = None;
    for r in logins {
        match r {
            Ok(s) => sessions.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        close_all(sessions, opts.concurrency).await;
        return Err(e);
    }
    let mut occupants_by_addr = vec![0; target.addrs.len()];
    for s in &sessions {
        if let Some(k) = target.addrs.iter().position(|a| *a == s.addr()) {
            occupants_by_addr[k] += 1;
        }
    }

    let slots = opts.rates.iter().map(|&r| opts.messages_at(r)).sum();
    let board = Arc::new(Board {
        t0: Instant::now(),
        slots: (0..slots).map(|_| Slot::default()).collect(),
        presences: AtomicU64::new(0),
        message_errors: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        closing: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let occupants: Vec<Occupant> = sessions
        .into_iter()
        .map(|s| {
            let (r, w) = s.split();
            let writer = Arc::new(Mutex::new(w));
            let (tx, events) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_loop(
                r,
                room.clone(),
                board.clone(),
                writer.clone(),
                tx,
                stop_rx.clone(),
            ));
            Occupant {
                writer,
                events,
                reader,
            }
        })
        .collect();

    let setup = Setup {
        target: target.echo(),
        login_s,
        occupants_by_addr,
    };
    let outcome = run_room(&room, opts, &pids, board.clone(), occupants, setup).await;
    board.closing.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let (mut result, occupants) = outcome;
    // Readers have stopped; a stream close each, not waited for: the servers are stopped
    // next (or time the sessions out), and each departure is a presence to everyone left.
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut closes = Vec::with_capacity(occupants.len());
    for mut o in occupants {
        let sem = sem.clone();
        closes.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let _ = (&mut o.reader).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), o.send("</stream:stream>")).await;
        }));
    }
    for c in closes {
        let _ = c.await;
    }
    if let Ok(r) = &mut result {
        r.dropped_connections = board.dropped.load(Ordering::Relaxed);
    }
    result
}

/// What the logins found out, for the result.
struct Setup {
    target: TargetEcho,
    login_s: f64,
    occupants_by_addr: Vec<usize>,
}

/// Joins and loads; gives the occupants back for closing whatever happened.
async fn run_room(
    room: &str,
    opts: &MucOpts,
    pids: &[u32],
    board: Arc<Board>,
    mut occupants: Vec<Occupant>,
    setup: Setup,
) -> (Result<MucResult, BenchError>, Vec<Occupant>) {
    let n = occupants.len();
    tokio::time::sleep(RSS_PAUSE).await;
    let rss_before = match rss_of(pids) {
        Ok(r) => r,
        Err(e) => return (Err(e), occupants),
    };
    let cpu_before = cpu_of(pids, &opts.aux_pids);
    eprintln!("muc: {n} users in; joining {room}");
    let t = Instant::now();
    let mut join_latency = Latencies::new();
    // The owner first: the room must exist (and be unlocked) before anyone else joins.
    let created = match join(&mut occupants[0], room, "n0").await {
        Ok((created, d)) => {
            join_latency.record(d);
            created
        }
        Err(e) => return (Err(e), occupants),
    };
    if created {
        if let Err(e) = instant_room(&mut occupants[0], room).await {
            return (Err(e), occupants);
        }
    }
    let sem = Arc::new(Semaphore::new(opts.join_concurrency.max(1)));
    let mut joins = Vec::with_capacity(n - 1);
    let owner = occupants.remove(0);
    for (i, mut o) in occupants.into_iter().enumerate() {
        let (sem, room) = (sem.clone(), room.to_owned());
        joins.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = join(&mut o, &room, &format!("n{}", i + 1)).await;
            (o, r)
        }));
    }
    let mut occupants = vec![owner];
    let mut failure = None;
    for j in joins {
        let (o, r) = j.await.expect("join task panicked");
        occupants.push(o);
        match r {
            Ok((_, d)) => join_latency.record(d),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return (Err(e), occupants);
    }
    let join_s = t.elapsed().as_secs_f64();
    eprintln!("muc: all {n} joined in {join_s:.1} s; waiting for the presence storm");
    let expected = (n * n) as u64;
    let settle_start = Instant::now();
    let mut last = (board.presences.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = board.presences.load(Ordering::Relaxed);
        if now >= expected || settle_start.elapsed() > SETTLE_LIMIT {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > SETTLE_QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join_settle_s = t.elapsed().as_secs_f64();
    let join_presences = board.presences.load(Ordering::Relaxed);
    let cpu_after = cpu_of(pids, &opts.aux_pids);
    tokio::time::sleep(RSS_PAUSE).await;
    let rss_after = match rss_of(pids) {
        Ok(r) => r,
        Err(e) => return (Err(e), occupants),
    };
    let rss_per_occupant = (!pids.is_empty()).then(|| {
        (rss_after.iter().sum::<u64>() as f64 - rss_before.iter().sum::<u64>() as f64) / n as f64
    });
    eprintln!(
        "muc: {join_presences} of {expected} presences in {join_settle_s:.1} s; {:.1} KiB RSS per occupant",
        rss_per_occupant.unwrap_or(f64::NAN)
    );
    let (join_server_cpu_s, join_aux_cpu_s) = usage(&cpu_before, &cpu_after);
    let idle_before = cpu_of(pids, &[]);
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_server_cpu_per_s = usage(&idle_before, &cpu_of(pids, &[]))
        .0
        .map(|c| c / IDLE_WINDOW.as_secs_f64());

    let mut levels = Vec::with_capacity(opts.rates.len());
    let mut first_seq = 0;
    for &rate in &opts.rates {
        let count = opts.messages_at(rate);
        let at = Load {
            rate,
            first_seq,
            count,
            idle_cpu_per_s: idle_server_cpu_per_s,
        };
        match level(&board, &occupants[0], room, opts, pids, at).await {
            Ok(l) => levels.push(l),
            Err(e) => return (Err(e), occupants),
        }
        first_seq += count;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let result = MucResult {
        scenario: "muc".into(),
        config: opts.clone(),
        target: setup.target,
        room: room.to_owned(),
        occupants: n,
        occupants_by_addr: setup.occupants_by_addr,
        login_s: setup.login_s,
        join_s,
        join_latency: join_latency.summary(),
        join_settle_s,
        join_presences,
        join_presences_expected: expected,
        join_server_cpu_s,
        join_aux_cpu_s,
        idle_server_cpu_per_s,
        server_rss_kib_before_join: rss_before,
        server_rss_kib_after_join: rss_after,
        rss_per_occupant_kib: rss_per_occupant,
        levels,
        dropped_connections: 0,
    };
    (Ok(result), occupants)
}

/// Sends a join (XEP-0045 §7.2.2) and waits for the self-presence: whether the room was
/// created by it, and how long it took.
async fn join(o: &mut Occupant, room: &str, nick: &str) -> Result<(bool, Duration), BenchError> {
    let t = Instant::now();
    let to = escape::attr(&format!("{room}/{nick}")).into_owned();
    o.send(&format!(
        "<presence to='{to}'><x xmlns='{NS_MUC}'/></presence>"
    ))
    .await?;
    let deadline = t + JOIN_TIMEOUT;
    let what = format!("joining {room} as {nick}");
    loop {
        match o.event(deadline, &what).await? {
            Event::Joined { created } => return Ok((created, t.elapsed())),
            Event::Refused(condition) => {
                return Err(BenchError::Protocol(format!("{what}: {condition}")))
            }
            Event::Iq { .. } => {}
        }
    }
}

/// §10.1.2: the owner accepts the default configuration, which unlocks the room.
async fn instant_room(o: &mut Occupant, room: &str) -> Result<(), BenchError> {
    let id = "muc-bench-instant";
    o.send(&format!(
        "<iq type='set' id='{id}' to='{}'><query xmlns='{NS_MUC_OWNER}'>\
         <x xmlns='jabber:x:data' type='submit'/></query></iq>",
        escape::attr(room)
    ))
    .await?;
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        if let Event::Iq { id: got, ok } = o.event(deadline, "the instant room's answer").await? {
            if got == id {
                return match ok {
                    true => Ok(()),
                    false => Err(BenchError::Protocol(format!(
                        "{room} refused the instant-room form"
                    ))),
                };
            }
        }
    }
}

/// One offered load: its messages' place on the board and the server's idle CPU.
struct Load {
    rate: f64,
    first_seq: usize,
    count: usize,
    idle_cpu_per_s: Option<f64>,
}

/// One offered load: `count` messages from `sender` at `rate` a second, then the wait for
/// them to reach everyone.
async fn level(
    board: &Board,
    sender: &Occupant,
    room: &str,
    opts: &MucOpts,
    pids: &[u32],
    load: Load,
) -> Result<MucLevel, BenchError> {
    let Load {
        rate,
        first_seq,
        count,
        idle_cpu_per_s,
    } = load;
    let n = opts.users as u32;
    eprintln!("muc: {count} messages at {rate} msg/s");
    let room_attr = escape::attr(room).into_owned();
    let pad = if opts.body_pad > 0 {
        format!(" {}", "x".repeat(opts.body_pad))
    } else {
        String::new()
    };
    let errors_before = board.message_errors.load(Ordering::Relaxed);
    let cpu_before = cpu_of(pids, &opts.aux_pids);
    let client_before = proc_sample(std::process::id())?.cpu_seconds;
    let machine_before = machine_cpu_busy_s();
    let start = Instant::now();
    let mut ticks = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / rate));
    // A late tick is sent late rather than skipped: the offered load stays what it says.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = String::with_capacity(256);
    for seq in first_seq..first_seq + count {
        ticks.tick().await;
        buf.clear();
        let _ = write!(
            buf,
            "<message type='groupchat' to='{room_attr}' id='mb{seq}'><body>{BODY_MARK}{seq}{pad}</body></message>"
        );
        board.slots[seq]
            .sent_ns
            .store(board.now_ns(), Ordering::Release);
        sender.send(&buf).await?;
    }
    let send_s = start.elapsed().as_secs_f64();
    let slots = &board.slots[first_seq..first_seq + count];
    let deadline = Instant::now() + Duration::from_secs_f64(opts.drain_s.max(0.0));
    while Instant::now() < deadline && slots.iter().any(|s| s.count.load(Ordering::Acquire) < n) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_after = cpu_of(pids, &opts.aux_pids);
    let client_cpu_s = proc_sample(std::process::id())?.cpu_seconds - client_before;
    let machine_cpu_busy_s = machine_cpu_busy_s()
        .iter()
        .zip(&machine_before)
        .map(|(b, a)| b - a)
        .collect();

    let mut fanout = Latencies::new();
    let mut series = Vec::with_capacity(count);
    let (mut complete, mut missing, mut duplicate, mut deliveries, mut sum_us) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for s in slots {
        let c = s.count.load(Ordering::Acquire);
        deliveries += u64::from(c);
        sum_us += s.sum_us.load(Ordering::Relaxed);
        missing += u64::from(n.saturating_sub(c));
        duplicate += u64::from(c.saturating_sub(n));
        if c >= n {
            complete += 1;
            let (sent, last) = (
                s.sent_ns.load(Ordering::Acquire),
                s.last_ns.load(Ordering::Acquire),
            );
            let us = last.saturating_sub(sent) / 1000;
            fanout.record_us(us);
            series.push(Some(us as f32 / 1000.0));
        } else {
            series.push(None);
        }
    }
    let (server_cpu_s, aux_cpu_s) = usage(&cpu_before, &cpu_after);
    let by_pid = match (&cpu_before, &cpu_after) {
        (Ok((a, _)), Ok((b, _))) => a.iter().zip(b).map(|(a, b)| b - a).collect(),
        _ => Vec::new(),
    };
    let fanout = fanout.summary();
    // N deliveries make one message delivered everywhere.
    let per_message = |cpu: Option<f64>| {
        cpu.filter(|_| deliveries > 0)
            .map(|c| c * 1000.0 * f64::from(n) / deliveries as f64)
    };
    eprintln!(
        "muc: {complete}/{count} reached all {n}; fan-out p50 {:.1} ms, p99 {:.1} ms; server CPU {:.2} s",
        fanout.p50_us as f64 / 1000.0,
        fanout.p99_us as f64 / 1000.0,
        server_cpu_s.unwrap_or(f64::NAN)
    );
    Ok(MucLevel {
        offered_per_s: rate,
        sent: count as u64,
        // Sends go out at 0, 1/rate, …: `count - 1` intervals between the first and last.
        achieved_per_s: if count > 1 {
            (count - 1) as f64 / send_s.max(1e-9)
        } else {
            rate
        },
        complete,
        missing_deliveries: missing,
        duplicate_deliveries: duplicate,
        errors: board.message_errors.load(Ordering::Relaxed) - errors_before,
        fanout,
        fanout_ms_by_message: series,
        delivery_mean_ms: sum_us as f64 / deliveries.max(1) as f64 / 1000.0,
        wall_s,
        server_cpu_ms_per_message: per_message(server_cpu_s),
        server_cpu_ms_per_message_less_idle: per_message(
            server_cpu_s
                .zip(idle_cpu_per_s)
                // CPU is counted in clock ticks: over a short load the idle share can
                // exceed what was measured, which says nothing below zero.
                .map(|(c, idle)| (c - idle * wall_s).max(0.0)),
        ),
        machine_cpu_busy_s,
        server_cpu_s,
        server_cpu_s_by_pid: by_pid,
        aux_cpu_s,
        client_cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_command_line() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            opts: MucOpts,
        }
        let opts = MucOpts {
            users: 30,
            rates: vec![1.0, 2.5],
            service: Some("muc.example".into()),
            pids: vec![1, 2, 3],
            aux_pids: vec![9],
            ..MucOpts::default()
        };
        let mut argv = vec!["x".to_owned()];
        argv.extend(opts.to_args());
        let back = <Wrap as clap::Parser>::try_parse_from(argv).unwrap().opts;
        assert_eq!(back, opts);
        assert_eq!(opts.messages_at(2.5), 50);
        assert_eq!(opts.messages_at(0.01), 1);
    }
}
