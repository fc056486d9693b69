//! `resume`: XEP-0198 stream resumption latency and correctness. Each iteration logs in,
//! binds, sends initial presence, enables resumption, sends itself M messages that it
//! receives and does not acknowledge, cuts its TCP connection (a reset, no stream close),
//! reconnects (to the same address, or to `resume_target`: another node of a cluster),
//! authenticates, and sends `<resume h='0'/>`. Measured: `<resume/>` → `<resumed/>`,
//! `<resume/>` → the last of the M messages delivered again, and TCP connect → that last
//! message. Checked: every resume succeeds, each of the M messages comes back exactly once
//! and nothing else of ours does.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use parley_proto::ns;
use parley_xml::Element;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::{Incoming, Session, Unbound};
use crate::stats::{Latencies, LatencySummary, Meter, Usage};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;

/// Errors kept verbatim in the result, beyond the counts.
const KEPT_ERRORS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeOpts {
    /// Iterations in total, shared by the clients.
    pub iterations: usize,
    /// Clients at once; client `w` is always user number `w`, so two clients never
    /// resume the same account.
    pub concurrency: usize,
    /// Messages unacknowledged at the cut, which the resume must deliver again.
    pub messages: usize,
    /// Where to resume; `None`: the address the session was on.
    pub resume_target: Option<SocketAddr>,
    /// How long to wait for the messages after `<resume/>` before counting them missing.
    pub wait_s: f64,
    /// How long the session stays connected after the M messages arrived, before the
    /// cut (0: cut at once, the harshest case for a cluster whose registry writes are
    /// batched).
    #[serde(default)]
    pub hold_ms: u64,
}

impl Default for ResumeOpts {
    fn default() -> Self {
        ResumeOpts {
            iterations: 200,
            concurrency: 1,
            messages: 5,
            resume_target: None,
            wait_s: 10.0,
            hold_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeResult {
    pub scenario: String,
    pub config: ResumeOpts,
    pub target: TargetEcho,
    /// Iterations that ran to the end with every check passed.
    pub completed: usize,
    /// Iterations with any failure below (each counts once here).
    pub failed: usize,
    /// Iterations that failed before the cut (login, enable, the first delivery): no
    /// resume was tried.
    pub setup_failures: usize,
    /// Resumes answered with `<failed/>`, or that broke before `<resumed/>`.
    pub resume_failures: usize,
    /// Messages of the M not delivered again within `wait_s` of `<resume/>`.
    pub missing_messages: usize,
    /// Messages delivered again more than once.
    pub duplicate_messages: usize,
    /// Messages of ours that were not among the M of this iteration (an earlier
    /// iteration's), or came back as errors.
    pub unexpected_messages: usize,
    /// Messages of an earlier iteration that arrived on a later login before its cut:
    /// the queue of a session whose resume failed, delivered to the next session of the
    /// same full JID. Not lost, so not a failure of that later iteration; counted so that
    /// nothing goes unseen.
    pub stale_before_cut: usize,
    /// The first few failures, for diagnosis.
    pub errors: Vec<String>,
    pub elapsed_s: f64,
    /// `<resume/>` sent → `<resumed/>` received.
    pub resumed: LatencySummary,
    /// `<resume/>` sent → the last of the M messages received.
    pub redelivered: LatencySummary,
    /// TCP connect (STARTTLS and SASL included) → the last of the M messages received.
    pub reconnect: LatencySummary,
    #[serde(flatten)]
    pub usage: Usage,
}

#[derive(Default)]
struct Tally {
    resumed: Latencies,
    redelivered: Latencies,
    reconnect: Latencies,
    completed: usize,
    failed: usize,
    setup_failures: usize,
    resume_failures: usize,
    missing: usize,
    duplicates: usize,
    unexpected: usize,
    stale: usize,
    errors: Vec<String>,
}

impl Tally {
    fn error(&mut self, e: String) {
        if self.errors.is_empty() {
            eprintln!("resume: first failure: {e}");
        }
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(e);
        }
    }
}

/// How one iteration went.
enum Outcome {
    Setup(BenchError),
    Resume(BenchError),
    Done(Resumed),
}

/// A session ready to be cut.
struct Prepared {
    session: Session,
    previd: String,
}

/// What a resume delivered.
struct Resumed {
    resumed: Duration,
    /// Both `None` when some of the M never came.
    redelivered: Option<Duration>,
    reconnect: Option<Duration>,
    missing: usize,
    duplicates: usize,
    unexpected: usize,
    /// Closing the resumed session failed (the figures stand; the failure is reported).
    close_error: Option<BenchError>,
}

/// Runs `iterations` cut-and-resume cycles, `concurrency` clients at a time.
pub async fn resume(target: &Target, opts: &ResumeOpts) -> Result<ResumeResult, BenchError> {
    let shared = Shared::new(target)?;
    if opts.iterations == 0 || opts.concurrency == 0 || opts.messages == 0 {
        return Err(BenchError::Options(
            "resume needs iterations, a concurrency and messages above 0".into(),
        ));
    }
    if let Some(addr) = opts.resume_target {
        if !addr.ip().is_loopback() {
            return Err(BenchError::NotLoopback(addr.to_string()));
        }
    }
    let clients = opts.concurrency.min(opts.iterations);
    eprintln!(
        "resume: {} iterations, {clients} at a time, {} messages each, resuming on {}",
        opts.iterations,
        opts.messages,
        opts.resume_target
            .map_or_else(|| "the same address".to_owned(), |a| a.to_string())
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let meter = Meter::start(target.server_pid)?;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (shared, next, tally, opts) =
                (shared.clone(), next.clone(), tally.clone(), opts.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= opts.iterations {
                        break;
                    }
                    let (outcome, stale) = iteration(&shared, &opts, w, i).await;
                    let mut t = tally.lock();
                    t.stale += stale;
                    match outcome {
                        Outcome::Setup(e) => {
                            t.failed += 1;
                            t.setup_failures += 1;
                            t.error(format!("iteration {i}, before the cut: {e}"));
                        }
                        Outcome::Resume(e) => {
                            t.failed += 1;
                            t.resume_failures += 1;
                            t.error(format!("iteration {i}, resume: {e}"));
                        }
                        Outcome::Done(r) => {
                            t.resumed.record(r.resumed);
                            if let Some(d) = r.redelivered {
                                t.redelivered.record(d);
                            }
                            if let Some(d) = r.reconnect {
                                t.reconnect.record(d);
                            }
                            t.missing += r.missing;
                            t.duplicates += r.duplicates;
                            t.unexpected += r.unexpected;
                            let bad = r.missing + r.duplicates + r.unexpected > 0;
                            if bad {
                                t.error(format!(
                                    "iteration {i}: {} missing, {} duplicate, {} unexpected \
                                     messages after the resume",
                                    r.missing, r.duplicates, r.unexpected
                                ));
                            }
                            if let Some(e) = &r.close_error {
                                t.error(format!("iteration {i}, closing after the resume: {e}"));
                            }
                            if bad || r.close_error.is_some() {
                                t.failed += 1;
                            } else {
                                t.completed += 1;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("resume worker panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let t = tally.lock();
    eprintln!(
        "resume: {} completed, {} failed ({} before the cut, {} resumes failed, {} missing, \
         {} duplicate, {} unexpected messages) in {elapsed:.2} s",
        t.completed,
        t.failed,
        t.setup_failures,
        t.resume_failures,
        t.missing,
        t.duplicates,
        t.unexpected
    );
    Ok(ResumeResult {
        scenario: "resume".into(),
        config: opts.clone(),
        target: target.echo(),
        completed: t.completed,
        failed: t.failed,
        setup_failures: t.setup_failures,
        resume_failures: t.resume_failures,
        missing_messages: t.missing,
        duplicate_messages: t.duplicates,
        unexpected_messages: t.unexpected,
        stale_before_cut: t.stale,
        errors: t.errors.clone(),
        elapsed_s: elapsed,
        resumed: t.resumed.summary(),
        redelivered: t.redelivered.summary(),
        reconnect: t.reconnect.summary(),
        usage,
    })
}

/// The body of message `j` of iteration `i`: both numbers, so that a message from another
/// iteration or a second copy is told apart.
fn body(i: usize, j: usize) -> String {
    format!("rb {i} {j}")
}

/// `(iteration, index)` of one of our bodies.
fn parse_body(el: &Element) -> Option<(usize, usize)> {
    let text = el.get_child("body", ns::CLIENT)?.text();
    let mut parts = text.split(' ');
    if parts.next()? != "rb" {
        return None;
    }
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn is_sm(el: &Element, name: &str) -> bool {
    el.is(name, ns::SM)
}

/// Whether `el` is a stanza (what XEP-0198 counts in `h`), not a nonza.
fn is_stanza(el: &Element) -> bool {
    el.ns() == ns::CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

/// Tracks which of an iteration's M messages arrived.
struct Seen {
    iteration: usize,
    got: HashSet<usize>,
    want: usize,
    duplicates: usize,
    unexpected: usize,
}

impl Seen {
    fn new(iteration: usize, want: usize) -> Seen {
        Seen {
            iteration,
            got: HashSet::with_capacity(want),
            want,
            duplicates: 0,
            unexpected: 0,
        }
    }

    /// Notes a received stanza; non-messages are ignored.
    fn note(&mut self, el: &Element) {
        if el.name() != "message" {
            return;
        }
        if el.attr("type") == Some("error") {
            self.unexpected += 1;
            return;
        }
        match parse_body(el) {
            // Not ours (a server's notice, say): no business of this check.
            None => {}
            Some((i, j)) if i != self.iteration || j >= self.want => self.unexpected += 1,
            // A second copy of one already seen is a duplicate.
            Some((_, j)) => self.duplicates += usize::from(!self.got.insert(j)),
        }
    }

    fn complete(&self) -> bool {
        self.got.len() == self.want
    }
}

/// Reads stanzas into `seen` until all M are there or `deadline`; returns the stanzas
/// counted for `h`. Nonzas (the server's `<r/>`) are not answered: nothing is acked.
async fn collect(
    s: &mut Session,
    seen: &mut Seen,
    deadline: Instant,
) -> Result<(u32, bool), BenchError> {
    let mut stanzas = 0;
    while !seen.complete() {
        match s.recv(deadline).await {
            Ok(Incoming::Stanza(el)) if el.is("error", ns::STREAM) => {
                return Err(BenchError::Closed(format!("stream error: {el}")))
            }
            Ok(Incoming::Stanza(el)) => {
                if is_stanza(&el) {
                    stanzas += 1;
                }
                seen.note(&el);
            }
            Ok(Incoming::Header(_)) => {}
            Ok(Incoming::Close) | Ok(Incoming::Eof) => {
                return Err(BenchError::Closed("while waiting for the messages".into()))
            }
            Err(BenchError::Timeout(_)) => return Ok((stanzas, false)),
            Err(e) => return Err(e),
        }
    }
    Ok((stanzas, true))
}

/// One cut-and-resume cycle, and the stale messages its preparation saw.
async fn iteration(shared: &Shared, opts: &ResumeOpts, user: usize, i: usize) -> (Outcome, usize) {
    // Before the cut: a session with resumption on and M messages received, unacked.
    let mut stale = 0;
    let p = match prepare(shared, opts, user, i, &mut stale).await {
        Ok(p) => p,
        Err(e) => return (Outcome::Setup(e), stale),
    };
    let addr = opts.resume_target.unwrap_or(p.session.addr());
    let jid = p.session.jid.clone();
    p.session.abort();
    let outcome = match resume_once(shared, opts, user, i, addr, jid, &p.previd).await {
        Ok(r) => Outcome::Done(r),
        Err(e) => Outcome::Resume(e),
    };
    (outcome, stale)
}

/// Logs in, sends initial presence, enables resumption and receives M messages from
/// itself (to its own full JID). `stale` counts earlier iterations' messages seen on the
/// way (also when this fails).
async fn prepare(
    shared: &Shared,
    opts: &ResumeOpts,
    user: usize,
    i: usize,
    stale: &mut usize,
) -> Result<Prepared, BenchError> {
    let mut s = Session::login(shared, user, "resume").await?;
    // Presence before <enable/>, so that the replay holds the M messages and at most
    // the server's echo of this presence (Parley sends it to this very resource through
    // the user's routing, so it may come after the ping's answer; Prosody does not send
    // it at all). Only messages are checked, so the echo changes no count.
    s.available().await?;
    let deadline = Instant::now() + crate::client::STEP_TIMEOUT;
    let mut is_stale = |el: &Element| {
        if el.name() == "message" && parse_body(el).is_some() {
            *stale += 1;
        }
    };
    s.send(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await?;
    let enabled = s
        .stanza_until(deadline, "<enabled/>", |el| {
            is_stale(el);
            is_sm(el, "enabled") || is_sm(el, "failed")
        })
        .await?;
    if !is_sm(&enabled, "enabled") {
        return Err(BenchError::Protocol(format!(
            "<enable/> answered with {enabled}"
        )));
    }
    let previd = enabled
        .attr("id")
        .filter(|_| matches!(enabled.attr("resume"), Some("true" | "1")))
        .ok_or_else(|| BenchError::Protocol(format!("resumption not granted: {enabled}")))?
        .to_owned();
    let to = parley_xml::escape::attr(&s.jid).into_owned();
    let mut out = String::new();
    for j in 0..opts.messages {
        let _ = write!(
            out,
            "<message type='chat' to='{to}' id='rb{i}-{j}'><body>{}</body></message>",
            body(i, j)
        );
    }
    s.send(out.as_bytes()).await?;
    let mut seen = Seen::new(i, opts.messages);
    let collected = collect(&mut s, &mut seen, deadline).await;
    // Before the cut, another iteration's message is stale, not unexpected.
    *stale += seen.unexpected;
    let (_, complete) = collected?;
    if !complete {
        return Err(BenchError::Timeout(format!(
            "{} of {} messages to itself before the cut",
            seen.got.len(),
            opts.messages
        )));
    }
    if opts.hold_ms > 0 {
        tokio::time::sleep(Duration::from_millis(opts.hold_ms)).await;
    }
    Ok(Prepared { session: s, previd })
}

/// Reconnects to `addr`, resumes `previd` with h=0 and waits for the M messages; then
/// acknowledges everything and closes cleanly, so that the session ends and the account
/// is free for the next iteration.
async fn resume_once(
    shared: &Shared,
    opts: &ResumeOpts,
    user: usize,
    i: usize,
    addr: SocketAddr,
    jid: String,
    previd: &str,
) -> Result<Resumed, BenchError> {
    let t_connect = Instant::now();
    let mut u = Unbound::connect(shared, addr, user).await?;
    if !u.features.has_child("sm", ns::SM) {
        return Err(BenchError::Protocol(
            "no Stream Management in the features after authentication".into(),
        ));
    }
    let resume = format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
        parley_xml::escape::attr(previd)
    );
    let t_resume = Instant::now();
    u.send(resume.as_bytes()).await?;
    let deadline = t_resume + Duration::from_secs_f64(opts.wait_s);
    let answer = u
        .stanza_until(deadline, "<resumed/>", |el| {
            is_sm(el, "resumed") || is_sm(el, "failed")
        })
        .await?;
    let resumed = t_resume.elapsed();
    if !is_sm(&answer, "resumed") {
        return Err(BenchError::Protocol(format!(
            "<resume/> answered with {answer}"
        )));
    }
    let mut s = u.into_session(jid);
    let mut seen = Seen::new(i, opts.messages);
    let (mut h, complete) = collect(&mut s, &mut seen, deadline).await?;
    let done = Instant::now();
    // Counted now: one that turns up after `wait_s` is missing for the figures.
    let missing = opts.messages - seen.got.len();
    // A ping as a barrier: the server answers it after whatever it sent before, so a
    // second copy of a replayed message shows up before the answer.
    let ping_id = format!("rbp{i}");
    let ping = format!("<iq type='get' id='{ping_id}'><ping xmlns='urn:xmpp:ping'/></iq>");
    let close_error = async {
        s.send(ping.as_bytes()).await?;
        let ping_deadline = Instant::now() + crate::client::STEP_TIMEOUT;
        loop {
            match s.recv(ping_deadline).await? {
                Incoming::Stanza(el) if is_stanza(&el) => {
                    h += 1;
                    seen.note(&el);
                    if el.name() == "iq" && el.attr("id") == Some(ping_id.as_str()) {
                        break;
                    }
                }
                Incoming::Stanza(_) | Incoming::Header(_) => {}
                Incoming::Close | Incoming::Eof => {
                    return Err(BenchError::Closed(
                        "while waiting for the ping answer".into(),
                    ))
                }
            }
        }
        // Everything acknowledged before the close: nothing is left to bounce or to
        // store offline, and the next iteration starts clean.
        s.send(format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>").as_bytes())
            .await?;
        s.close().await
    }
    .await
    .err();
    Ok(Resumed {
        resumed,
        redelivered: complete.then(|| done - t_resume),
        reconnect: complete.then(|| done - t_connect),
        missing,
        duplicates: seen.duplicates,
        unexpected: seen.unexpected,
        close_error,
    })
}

/// The markdown table of several runs, one row per `(label, result)`: milliseconds, and
/// the correctness counts.
pub fn report(rows: &[(String, ResumeResult)]) -> String {
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    let quad = |l: &LatencySummary| {
        format!(
            "{} / {} / {} / {}",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.max_us)
        )
    };
    let mut out = String::from(
        "| run | clients | resumes ok / tried | `<resume/>` → `<resumed/>` p50 / p90 / p99 / max (ms) \
         | `<resume/>` → all M messages again (ms, same four) \
         | TCP connect → all M messages (ms, same four) \
         | failed resumes | missing / duplicate / unexpected / stale messages |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (label, r) in rows {
        let _ = writeln!(
            out,
            "| {label} | {} | {} / {} | {} | {} | {} | {} | {} / {} / {} / {} |",
            r.config.concurrency,
            r.completed,
            r.config.iterations,
            quad(&r.resumed),
            quad(&r.redelivered),
            quad(&r.reconnect),
            r.resume_failures + r.setup_failures,
            r.missing_messages,
            r.duplicate_messages,
            r.unexpected_messages,
            r.stale_before_cut
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_text: &str) -> Element {
        Element::parse(
            format!(
                "<message xmlns='jabber:client' type='chat'><body>{body_text}</body></message>"
            )
            .as_bytes(),
            &parley_xml::Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn bodies_name_their_iteration_and_index() {
        assert_eq!(parse_body(&message(&body(12, 3))), Some((12, 3)));
        assert_eq!(parse_body(&message("hello")), None);
        assert_eq!(parse_body(&message("rb x 1")), None);
    }

    #[test]
    fn seen_counts_duplicates_and_strays() {
        let mut seen = Seen::new(7, 3);
        seen.note(&message(&body(7, 0)));
        seen.note(&message(&body(7, 0)));
        seen.note(&message(&body(6, 1)));
        seen.note(&message(&body(7, 9)));
        seen.note(&message("not ours"));
        assert!(!seen.complete());
        seen.note(&message(&body(7, 1)));
        seen.note(&message(&body(7, 2)));
        assert!(seen.complete());
        assert_eq!(seen.duplicates, 1);
        assert_eq!(seen.unexpected, 2);
    }
}
