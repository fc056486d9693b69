//! `csi`: what Client State Indication (XEP-0352) saves an inactive client, such as a phone
//! with its screen off, whose contacts keep changing their presence.
//!
//! One watcher account with N contacts (mutual `both` subscriptions, provisioned
//! beforehand as for `presence`: the watcher is user `first_user`, its contacts the N
//! after it). Everyone logs in and is available; then, once with the watcher active (no
//! CSI element sent) and once after its `<inactive/>`, the contacts change their presence
//! at a fixed total rate, alternating `away` and `chat`, and some of them send chat states
//! (`<active/>` without a body) to the watcher. Per phase the watcher counts the stanzas
//! and bytes it received and the socket reads that returned data: a read takes whatever
//! the server wrote at once (the buffer is larger than any burst), so reads stand for the
//! times the server woke the client's radio. With the server's pid the phase also has the
//! server's CPU seconds, `syscw` of `/proc/PID/io` and, with `perf`, its socket writes.
//! Both server figures include the contacts' own sessions (presence echoes, roster
//! answers), which are the same in both phases.
//!
//! At the end of the inactive phase the watcher says `<active/>` and pings the server:
//! what arrives before the pong is the flush, and after it the watcher must hold every
//! contact's latest presence (a mismatch is a stanza lost or reordered by the hold).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use parley_proto::{csi::NS as NS_CSI, ns};
use parley_xml::Element;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{Incoming, ReadCounters, Session, SessionReader, SessionWriter, STEP_TIMEOUT};
use crate::idle::close_all;
use crate::perf::{SyscallCounter, SyscallCounts};
use crate::proc::proc_io;
use crate::stats::{Meter, Usage};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;

/// The watcher's read buffer: larger than anything a server writes at once here (a flush
/// of a few hundred stanzas is well under 100 KiB), so that one burst is one read.
const WATCHER_READ_CHUNK: usize = 256 * 1024;

/// A phase's wait after `<inactive/>` before the contacts start. XEP-0352 has no answer
/// to it, and anything the watcher sent to learn that it was taken in would itself be the
/// client activity that ends Prosody's hold (`mod_csi_simple` flushes on any bytes in).
const INACTIVE_SETTLE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsiOpts {
    /// Contacts: users `first_user + 1 ..= first_user + contacts`; the watcher is
    /// `first_user`.
    pub contacts: usize,
    /// Presence updates per second, all contacts together (round-robin).
    pub rate: f64,
    /// Chat-state messages without a body per second to the watcher, all contacts
    /// together (round-robin), on top of the presence updates; 0 for none.
    pub chat_state_rate: f64,
    /// Seconds of sending per phase.
    pub duration_s: f64,
    /// Logins in flight while setting up.
    pub concurrency: usize,
    /// Count the server's socket-writing system calls with `perf stat` (needs the pid).
    pub count_syscalls: bool,
    /// Seconds to wait for presences still on their way: after the active phase, and
    /// after a flush that left the watcher with an old presence.
    pub settle_s: f64,
}

impl Default for CsiOpts {
    fn default() -> Self {
        CsiOpts {
            contacts: 200,
            rate: 200.0,
            chat_state_rate: 20.0,
            duration_s: 10.0,
            concurrency: 50,
            count_syscalls: false,
            settle_s: 5.0,
        }
    }
}

/// Whether the watcher told the server it is inactive (XEP-0352 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsiMode {
    /// No CSI element sent (or `<active/>`): every stanza at once.
    Active,
    /// `<inactive/>` sent: the server may hold what is not urgent.
    Inactive,
}

impl CsiMode {
    pub fn name(self) -> &'static str {
        match self {
            CsiMode::Active => "active",
            CsiMode::Inactive => "inactive",
        }
    }
}

/// What reached the watcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub stanzas: u64,
    pub bytes: u64,
    /// Socket reads that returned data.
    pub reads: u64,
}

impl Received {
    fn since(self, earlier: Received) -> Received {
        Received {
            stanzas: self.stanzas - earlier.stanzas,
            bytes: self.bytes - earlier.bytes,
            reads: self.reads - earlier.reads,
        }
    }
}

/// What came when the watcher said `<active/>` again, up to the answer of the ping sent
/// right after it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Flush {
    pub received: Received,
    /// `<active/>` sent to the pong read.
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsiPhase {
    pub mode: CsiMode,
    pub presence_sent: u64,
    pub chat_states_sent: u64,
    /// First update to the last one sent.
    pub sending_s: f64,
    /// The measured interval: from the first update until the server had taken in the
    /// last one (every contact's roster round trip after its updates) and, when active,
    /// the watcher had every contact's latest presence.
    pub phase_s: f64,
    pub received: Received,
    /// Server write(2)-family calls in the phase (`/proc/PID/io` `syscw`): not send(2)
    /// and its kin, so most socket writes are missing here.
    pub server_syscw: Option<u64>,
    /// Server socket-writing calls in the phase, counted by `perf` (`--count-syscalls`).
    pub server_syscalls: Option<SyscallCounts>,
    /// Inactive phase: the flush on `<active/>`.
    pub flush: Option<Flush>,
    /// Contacts whose latest presence (its `<show/>`) the watcher did not hold at the end
    /// of the phase: active, once everything sent had arrived (or `settle_s` passed);
    /// inactive, at the end of the flush.
    pub mismatches: usize,
    /// The same, `settle_s` later at most (only waited for when there were mismatches).
    pub mismatches_settled: usize,
    #[serde(flatten)]
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsiResult {
    pub scenario: String,
    pub config: CsiOpts,
    pub target: TargetEcho,
    pub phases: Vec<CsiPhase>,
    /// Why `server_syscalls` is missing although asked for.
    pub perf_error: Option<String>,
}

/// One thing a contact sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Update {
    /// A presence change by contact index.
    Presence(usize),
    /// A chat state to the watcher by contact index.
    ChatState(usize),
}

/// Every update of a phase with its time from the phase start: presence update k at
/// k/rate from contact k mod N, chat state m half a period later than m/chat_state_rate
/// (so that the two kinds interleave) from contact m mod N.
pub(crate) fn schedule(
    contacts: usize,
    rate: f64,
    chat_state_rate: f64,
    duration_s: f64,
) -> Vec<(Duration, Update)> {
    let count = |r: f64| {
        if r > 0.0 {
            (r * duration_s).round() as usize
        } else {
            0
        }
    };
    let mut out = Vec::with_capacity(count(rate) + count(chat_state_rate));
    for k in 0..count(rate) {
        out.push((
            Duration::from_secs_f64(k as f64 / rate),
            Update::Presence(k % contacts),
        ));
    }
    for m in 0..count(chat_state_rate) {
        out.push((
            Duration::from_secs_f64((m as f64 + 0.5) / chat_state_rate),
            Update::ChatState(m % contacts),
        ));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// The `<show/>` of a contact's `nth` update (from 0): `away` and `chat` in turn, so that
/// every update differs from the one before.
pub(crate) fn show_for(nth: u64) -> &'static str {
    if nth % 2 == 0 {
        "away"
    } else {
        "chat"
    }
}

/// What the watcher should hold of a contact that has sent `sent` updates: its initial
/// `<presence/>` (no `<show/>`) before any.
pub(crate) fn expected_show(sent: u64) -> &'static str {
    match sent {
        0 => "",
        n => show_for(n - 1),
    }
}

fn presence_xml(nth: u64) -> String {
    format!(
        "<presence><show>{}</show><status>csi update {nth}</status></presence>",
        show_for(nth)
    )
}

/// A presence broadcast's sender (bare JID) and show: `""` for plain available,
/// `unavailable`; None for anything else (subscriptions, errors, other stanzas).
pub(crate) fn presence_show(el: &Element) -> Option<(String, String)> {
    if el.name() != "presence" {
        return None;
    }
    let from = el.attr("from")?;
    let bare = from.split('/').next().unwrap_or(from).to_owned();
    let show = match el.attr("type") {
        None => el
            .get_child("show", ns::CLIENT)
            .map(|s| s.text().trim().to_owned())
            .unwrap_or_default(),
        Some("unavailable") => "unavailable".to_owned(),
        Some(_) => return None,
    };
    Some((bare, show))
}

/// Contacts whose show in `view` is not the expected one (missing counts too).
pub(crate) fn mismatches(view: &HashMap<String, String>, expected: &[(String, &str)]) -> usize {
    expected
        .iter()
        .filter(|(jid, show)| view.get(jid).map(String::as_str) != Some(*show))
        .count()
}

/// What the watcher's reading task shares.
struct Watch {
    counters: Arc<ReadCounters>,
    stanzas: AtomicU64,
    /// Each contact's (bare JID) latest show.
    view: Mutex<HashMap<String, String>>,
}

impl Watch {
    fn received(&self) -> Received {
        let (reads, bytes) = self.counters.get();
        Received {
            stanzas: self.stanzas.load(Ordering::Relaxed),
            bytes,
            reads,
        }
    }
}

/// An iq answer to the watcher, with what it had received before it and its view then.
struct Answer {
    id: String,
    received: Received,
    view: HashMap<String, String>,
}

/// Reads the watcher's stream until told to stop or the stream ends; returns the reader
/// for a clean close.
async fn watch_loop(
    mut reader: SessionReader,
    own_bare: String,
    state: Arc<Watch>,
    tick: watch::Sender<u64>,
    answers: mpsc::UnboundedSender<Answer>,
    mut stop: watch::Receiver<bool>,
) -> SessionReader {
    loop {
        let item = tokio::select! {
            item = reader.recv(Instant::now() + Duration::from_secs(3600)) => item,
            _ = stop.changed() => return reader,
        };
        let el = match item {
            Ok(Incoming::Stanza(el)) => el,
            Ok(Incoming::Header(_)) => continue,
            // Dropping `tick` here tells the waiters.
            Ok(Incoming::Close) | Ok(Incoming::Eof) | Err(_) => return reader,
        };
        if el.name() == "iq" && matches!(el.attr("type"), Some("result" | "error")) {
            // Snapshots taken here, in stream order, so that what follows the answer in
            // the same read does not count as before it.
            let _ = answers.send(Answer {
                id: el.attr("id").unwrap_or_default().to_owned(),
                received: state.received(),
                view: state.view.lock().clone(),
            });
        } else if let Some((bare, show)) = presence_show(&el) {
            if bare != own_bare {
                state.view.lock().insert(bare, show);
            }
        }
        let n = state.stanzas.fetch_add(1, Ordering::Relaxed) + 1;
        tick.send_replace(n);
    }
}

/// Waits until `pred` holds of the watcher's view; false at `deadline` or when the
/// watcher's stream ended.
async fn wait_view(
    state: &Watch,
    tick: &mut watch::Receiver<u64>,
    deadline: Instant,
    pred: impl Fn(&HashMap<String, String>) -> bool,
) -> bool {
    loop {
        // Marked seen before the check, so that a stanza read during it wakes us.
        tick.borrow_and_update();
        if pred(&state.view.lock()) {
            return true;
        }
        match tokio::time::timeout_at(deadline, tick.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

/// Everything a run holds between phases.
struct Bench<'a> {
    target: &'a Target,
    opts: &'a CsiOpts,
    contacts: &'a mut [Session],
    writer: &'a mut SessionWriter,
    state: Arc<Watch>,
    tick: watch::Receiver<u64>,
    answers: mpsc::UnboundedReceiver<Answer>,
    schedule: Vec<(Duration, Update)>,
    /// The contacts' bare JIDs, by index.
    jids: Vec<String>,
    /// Presence updates each contact has sent so far.
    sent: Vec<u64>,
    chat_state: String,
    perf_error: Option<String>,
}

impl Bench<'_> {
    fn expected(&self) -> Vec<(String, &'static str)> {
        self.jids
            .iter()
            .zip(&self.sent)
            .map(|(j, &n)| (j.clone(), expected_show(n)))
            .collect()
    }

    /// Returns once the server has taken in every update sent: a roster query from each
    /// contact, which servers answer after the presences sent before it (in Parley the
    /// contact's user actor handles both, in order).
    async fn barrier(&mut self) -> Result<(), BenchError> {
        for (i, c) in self.contacts.iter_mut().enumerate() {
            c.send(
                format!("<iq type='get' id='csi-sync-{i}'><query xmlns='jabber:iq:roster'/></iq>")
                    .as_bytes(),
            )
            .await?;
        }
        let deadline = Instant::now() + STEP_TIMEOUT;
        for (i, c) in self.contacts.iter_mut().enumerate() {
            let id = format!("csi-sync-{i}");
            c.stanza_until(deadline, "roster answer", |el| {
                el.name() == "iq" && el.attr("id") == Some(id.as_str())
            })
            .await?;
        }
        Ok(())
    }

    async fn answer(&mut self, id: &str) -> Result<Answer, BenchError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.answers.recv()).await {
                Ok(Some(a)) if a.id == id => return Ok(a),
                Ok(Some(_)) => {}
                Ok(None) => return Err(BenchError::Closed("the watcher's stream ended".into())),
                Err(_) => return Err(BenchError::Timeout(format!("the answer to `{id}`"))),
            }
        }
    }

    async fn phase(&mut self, mode: CsiMode) -> Result<CsiPhase, BenchError> {
        let pid = self.target.server_pid;
        if mode == CsiMode::Inactive {
            self.writer
                .send(format!("<inactive xmlns='{NS_CSI}'/>").as_bytes())
                .await?;
            tokio::time::sleep(INACTIVE_SETTLE).await;
        }
        let perf = match pid.filter(|_| self.opts.count_syscalls) {
            Some(pid) => match SyscallCounter::start(pid).await {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("csi: not counting system calls: {e}");
                    self.perf_error = Some(e.to_string());
                    None
                }
            },
            None => None,
        };
        let io_before = pid.map(proc_io).transpose()?;
        let meter = Meter::start(pid)?;
        let before = self.state.received();
        let t0 = Instant::now();
        let (mut presence_sent, mut chat_states_sent) = (0, 0);
        for &(at, update) in &self.schedule {
            tokio::time::sleep_until(t0 + at).await;
            match update {
                Update::Presence(i) => {
                    let xml = presence_xml(self.sent[i]);
                    self.contacts[i].send(xml.as_bytes()).await?;
                    self.sent[i] += 1;
                    presence_sent += 1;
                }
                Update::ChatState(i) => {
                    self.contacts[i].send(self.chat_state.as_bytes()).await?;
                    chat_states_sent += 1;
                }
            }
        }
        let sending_s = t0.elapsed().as_secs_f64();
        self.barrier().await?;
        let expected = self.expected();
        let mut mismatched = 0;
        if mode == CsiMode::Active {
            let deadline = Instant::now() + Duration::from_secs_f64(self.opts.settle_s);
            wait_view(&self.state, &mut self.tick, deadline, |v| {
                mismatches(v, &expected) == 0
            })
            .await;
            mismatched = mismatches(&self.state.view.lock(), &expected);
        }
        let end = self.state.received();
        let usage = meter.finish()?;
        let io_after = pid.map(proc_io).transpose()?;
        let phase_s = t0.elapsed().as_secs_f64();
        let server_syscalls = match perf {
            Some(p) => match p.finish().await {
                Ok(c) => Some(c),
                Err(e) => {
                    self.perf_error = Some(e.to_string());
                    None
                }
            },
            None => None,
        };
        let mut settled = mismatched;
        let flush = if mode == CsiMode::Inactive {
            let id = "csi-flush";
            let t = Instant::now();
            self.writer
                .send(
                    format!(
                        "<active xmlns='{NS_CSI}'/><iq type='get' id='{id}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
                        parley_xml::escape::attr(&self.target.domain)
                    )
                    .as_bytes(),
                )
                .await?;
            let answer = self.answer(id).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            mismatched = mismatches(&answer.view, &expected);
            settled = mismatched;
            if mismatched > 0 {
                let deadline = Instant::now() + Duration::from_secs_f64(self.opts.settle_s);
                wait_view(&self.state, &mut self.tick, deadline, |v| {
                    mismatches(v, &expected) == 0
                })
                .await;
                settled = mismatches(&self.state.view.lock(), &expected);
            }
            Some(Flush {
                received: answer.received.since(end),
                ms,
            })
        } else {
            None
        };
        if mismatched > 0 {
            eprintln!(
                "csi: FAILURE: {mismatched} contacts' latest presence missing at the end of the {} phase ({settled} still after waiting)",
                mode.name()
            );
        }
        Ok(CsiPhase {
            mode,
            presence_sent,
            chat_states_sent,
            sending_s,
            phase_s,
            received: end.since(before),
            server_syscw: io_before.zip(io_after).map(|(a, b)| b.syscw - a.syscw),
            server_syscalls,
            flush,
            mismatches: mismatched,
            mismatches_settled: settled,
            usage,
        })
    }
}

/// Logs everyone in, runs the active and the inactive phase, and logs out.
pub async fn csi(target: &Target, opts: &CsiOpts) -> Result<CsiResult, BenchError> {
    let shared = Shared::new(target)?;
    if opts.contacts == 0 || opts.rate <= 0.0 || opts.duration_s <= 0.0 {
        return Err(BenchError::Options(
            "csi needs contacts, rate and duration above 0".into(),
        ));
    }
    if opts.chat_state_rate < 0.0 || opts.settle_s < 0.0 {
        return Err(BenchError::Options(
            "--chat-state-rate and --settle cannot be negative".into(),
        ));
    }
    if opts.count_syscalls && target.server_pid.is_none() {
        return Err(BenchError::Options(
            "--count-syscalls needs --server-pid".into(),
        ));
    }
    eprintln!("csi: logging in {} contacts", opts.contacts);
    let mut contacts =
        crate::presence::login_contacts(&shared, opts.contacts, opts.concurrency).await?;
    let watcher = match Session::login(&shared, 0, "watcher").await {
        Ok(w) => w,
        Err(e) => {
            close_all(contacts, opts.concurrency).await;
            return Err(e);
        }
    };
    let chat_state = format!(
        "<message type='chat' to='{}'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        parley_xml::escape::attr(&watcher.jid)
    );
    let own_bare = watcher.bare_jid().to_owned();
    let (mut reader, mut writer) = watcher.split();
    let state = Arc::new(Watch {
        counters: reader.count_reads(WATCHER_READ_CHUNK),
        stanzas: AtomicU64::new(0),
        view: Mutex::new(HashMap::new()),
    });
    let (tick_tx, tick) = watch::channel(0u64);
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(watch_loop(
        reader,
        own_bare,
        state.clone(),
        tick_tx,
        answers_tx,
        stop_rx,
    ));

    let mut bench = Bench {
        target,
        opts,
        contacts: &mut contacts,
        writer: &mut writer,
        state,
        tick,
        answers,
        schedule: schedule(
            opts.contacts,
            opts.rate,
            opts.chat_state_rate,
            opts.duration_s,
        ),
        jids: (1..=opts.contacts).map(|i| target.bare_jid(i)).collect(),
        sent: vec![0; opts.contacts],
        chat_state,
        perf_error: None,
    };
    let outcome = async {
        bench.writer.send(b"<presence/>").await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let jids = bench.jids.clone();
        let all = |v: &HashMap<String, String>| jids.iter().all(|j| v.contains_key(j));
        if !wait_view(&bench.state, &mut bench.tick, deadline, all).await {
            let seen = bench.state.view.lock().len();
            return Err(BenchError::Timeout(format!(
                "the watcher has the presence of {seen} of {} contacts",
                opts.contacts
            )));
        }
        eprintln!("csi: the watcher has every contact's presence");
        let mut phases = Vec::with_capacity(2);
        for mode in [CsiMode::Active, CsiMode::Inactive] {
            let p = bench.phase(mode).await?;
            eprintln!(
                "csi: {}: {} stanzas, {} bytes in {} reads; server syscw {:?}, perf {:?}, CPU {:?} s",
                mode.name(),
                p.received.stanzas,
                p.received.bytes,
                p.received.reads,
                p.server_syscw,
                p.server_syscalls.map(|c| c.total()),
                p.usage.server_cpu_s
            );
            phases.push(p);
        }
        Ok(phases)
    }
    .await;
    let perf_error = bench.perf_error.take();
    drop(bench);

    let _ = stop_tx.send(true);
    let reader = task.await.expect("csi watcher panicked");
    let _ = reader.unsplit(writer).close().await;
    close_all(contacts, opts.concurrency).await;
    Ok(CsiResult {
        scenario: "csi".into(),
        config: opts.clone(),
        target: target.echo(),
        phases: outcome?,
        perf_error,
    })
}

/// `csi` results as one markdown table, a row per server and phase.
pub fn report(rows: &[(String, CsiResult)]) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), |v| v.to_string());
    let mut out = String::from(
        "| server | mode | updates sent (presence + chat states) | stanzas received \
         | bytes received | reads with data | server socket writes (perf: write, writev, \
         sendto, sendmsg) | server write syscalls (`syscw`) | server CPU s \
         | flush on `<active/>`: stanzas / reads / ms | mismatches |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (label, r) in rows {
        for p in &r.phases {
            let flush = p.flush.map_or_else(
                || "–".to_owned(),
                |f| {
                    format!(
                        "{} / {} / {:.1}",
                        f.received.stanzas, f.received.reads, f.ms
                    )
                },
            );
            let mismatches = if p.mismatches == p.mismatches_settled {
                p.mismatches.to_string()
            } else {
                format!(
                    "**{}** ({} after {} s more)",
                    p.mismatches, p.mismatches_settled, r.config.settle_s
                )
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} + {} | {} | {} | {} | {} | {} | {} | {flush} | {mismatches} |",
                p.mode.name(),
                p.presence_sent,
                p.chat_states_sent,
                p.received.stanzas,
                p.received.bytes,
                p.received.reads,
                opt(p.server_syscalls.map(|c| c.total())),
                opt(p.server_syscw),
                p.usage
                    .server_cpu_s
                    .map_or_else(|| "–".to_owned(), |s| format!("{s:.2}")),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &parley_xml::Limits::default()).unwrap()
    }

    #[test]
    fn schedule_spreads_updates_over_contacts_at_the_rate() {
        let s = schedule(3, 10.0, 2.0, 1.0);
        let presences: Vec<_> = s
            .iter()
            .filter_map(|(at, u)| match u {
                Update::Presence(i) => Some((*at, *i)),
                Update::ChatState(_) => None,
            })
            .collect();
        assert_eq!(presences.len(), 10);
        assert_eq!(
            presences.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
        );
        assert_eq!(presences[4].0, Duration::from_millis(400));
        let states: Vec<_> = s
            .iter()
            .filter(|(_, u)| matches!(u, Update::ChatState(_)))
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(
            states,
            [Duration::from_millis(250), Duration::from_millis(750)]
        );
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(schedule(3, 10.0, 0.0, 1.0)
            .iter()
            .all(|(_, u)| matches!(u, Update::Presence(_))));
    }

    #[test]
    fn shows_alternate_and_the_last_one_is_expected() {
        assert_eq!(
            (0..4).map(show_for).collect::<Vec<_>>(),
            ["away", "chat", "away", "chat"]
        );
        assert_eq!(expected_show(0), "");
        assert_eq!(expected_show(1), "away");
        assert_eq!(expected_show(10), "chat");
        // What a contact sends, as the watcher gets it (namespace and sender added).
        let sent = presence_xml(3).replacen(
            "<presence>",
            "<presence xmlns='jabber:client' from='u2@x/r'>",
            1,
        );
        assert_eq!(
            presence_show(&el(&sent)),
            Some(("u2@x".into(), "chat".into()))
        );
    }

    #[test]
    fn the_view_follows_presence_broadcasts_only() {
        let avail = el("<presence xmlns='jabber:client' from='u2@x/r'/>");
        assert_eq!(presence_show(&avail), Some(("u2@x".into(), String::new())));
        let gone = el("<presence xmlns='jabber:client' type='unavailable' from='u2@x/r'/>");
        assert_eq!(presence_show(&gone).unwrap().1, "unavailable");
        // Prosody stamps what it held (XEP-0203); the show is still read.
        let held = el(
            "<presence xmlns='jabber:client' from='u2@x/r'><show>away</show>\
             <delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/></presence>",
        );
        assert_eq!(presence_show(&held).unwrap().1, "away");
        for other in [
            "<presence xmlns='jabber:client' type='subscribe' from='u2@x'/>",
            "<message xmlns='jabber:client' from='u2@x/r'><body>hi</body></message>",
            "<presence xmlns='jabber:client'/>",
        ] {
            assert_eq!(presence_show(&el(other)), None, "{other}");
        }
    }

    #[test]
    fn mismatches_count_wrong_and_missing_contacts() {
        let view: HashMap<String, String> = [("a@x", "away"), ("b@x", "chat"), ("c@x", "")]
            .into_iter()
            .map(|(j, s)| (j.to_owned(), s.to_owned()))
            .collect();
        let expected = |e: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
            e.iter().map(|(j, s)| ((*j).to_owned(), *s)).collect()
        };
        assert_eq!(
            mismatches(
                &view,
                &expected(&[("a@x", "away"), ("b@x", "chat"), ("c@x", "")])
            ),
            0
        );
        assert_eq!(
            mismatches(
                &view,
                &expected(&[("a@x", "chat"), ("b@x", "chat"), ("d@x", "away")])
            ),
            2
        );
    }

    fn phase(mode: CsiMode, stanzas: u64, flush: Option<Flush>, mismatches: usize) -> CsiPhase {
        CsiPhase {
            mode,
            presence_sent: 2000,
            chat_states_sent: 200,
            sending_s: 10.0,
            phase_s: 10.2,
            received: Received {
                stanzas,
                bytes: stanzas * 150,
                reads: stanzas / 2,
            },
            server_syscw: Some(3),
            server_syscalls: (mode == CsiMode::Active).then_some(SyscallCounts {
                write: 1,
                writev: 0,
                sendto: 4400,
                sendmsg: 0,
            }),
            flush,
            mismatches,
            mismatches_settled: 0,
            usage: Usage {
                server_cpu_s: Some(1.234),
                ..Usage::default()
            },
        }
    }

    #[test]
    fn report_has_a_row_per_server_and_mode() {
        let result = CsiResult {
            scenario: "csi".into(),
            config: CsiOpts::default(),
            target: Target::new(vec!["127.0.0.1:5222".parse().unwrap()]).echo(),
            phases: vec![
                phase(CsiMode::Active, 2200, None, 0),
                phase(
                    CsiMode::Inactive,
                    0,
                    Some(Flush {
                        received: Received {
                            stanzas: 400,
                            bytes: 60_000,
                            reads: 1,
                        },
                        ms: 2.345,
                    }),
                    2,
                ),
            ],
            perf_error: None,
        };
        let table = report(&[("Parley".into(), result)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].matches('|').count(), lines[1].matches('|').count());
        assert_eq!(
            lines[2],
            "| Parley | active | 2000 + 200 | 2200 | 330000 | 1100 | 4401 | 3 | 1.23 | – | 0 |"
        );
        assert_eq!(
            lines[3],
            "| Parley | inactive | 2000 + 200 | 0 | 0 | 0 | – | 3 | 1.23 | 400 / 1 / 2.3 | **2** (0 after 5 s more) |"
        );
        // The JSON a run prints is what the report reads back.
        let json = serde_json::to_string(&result_roundtrip()).unwrap();
        let back: CsiResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, result_roundtrip());
    }

    fn result_roundtrip() -> CsiResult {
        CsiResult {
            scenario: "csi".into(),
            config: CsiOpts::default(),
            target: Target::new(vec!["127.0.0.1:5222".parse().unwrap()]).echo(),
            phases: vec![phase(CsiMode::Active, 10, None, 0)],
            perf_error: Some("perf: not found".into()),
        }
    }
}
