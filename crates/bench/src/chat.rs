//! `chat`: one-to-one messages between pairs of logged-in users, at maximum throughput
//! (a window of messages in flight per sender) or at a fixed offered rate, with one-way
//! latency from a send timestamp carried in each body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_proto::ns;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Incoming, Session, SessionReader, SessionWriter};
use crate::idle::close_all;
use crate::stats::{run_pool, unix_nanos, Latencies, LatencySummary, Meter, Usage};
use crate::target::{Shared, Target, TargetEcho, Transport};
use crate::BenchError;

/// Marks the last message of a sender, so its receiver knows it has seen everything:
/// messages between one pair of full JIDs are delivered in order (RFC 6120 §10.1).
const END_MARK: &str = "end";

/// How senders load the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ChatMode {
    /// Each sender keeps `window` messages in flight: delivered throughput.
    Max { window: usize },
    /// `rate` messages per second in total, spread evenly over the senders: latency.
    Rate { rate: f64 },
}

impl ChatMode {
    pub fn name(self) -> &'static str {
        match self {
            ChatMode::Max { .. } => "max",
            ChatMode::Rate { .. } => "rate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatOpts {
    /// Pairs of users; in each, the first sends to the second's full JID.
    pub pairs: usize,
    #[serde(flatten)]
    pub mode: ChatMode,
    /// How long senders send.
    pub duration_s: f64,
    /// Filler characters appended to each body, to model bigger messages.
    pub body_pad: usize,
    /// Logins in flight while setting up.
    pub concurrency: usize,
    /// How long to wait for messages still in flight after the senders stop.
    pub drain_s: f64,
}

impl Default for ChatOpts {
    fn default() -> Self {
        ChatOpts {
            pairs: 100,
            mode: ChatMode::Max { window: 64 },
            duration_s: 10.0,
            body_pad: 0,
            concurrency: 50,
            drain_s: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResult {
    pub scenario: String,
    /// `max` or `rate`.
    pub mode: String,
    pub config: ChatOpts,
    pub target: TargetEcho,
    /// Measured interval: from the first send to the senders' stop.
    pub duration_s: f64,
    pub sent: u64,
    /// Delivered by the end of the interval.
    pub delivered_in_window: u64,
    /// Delivered in total, after the drain.
    pub delivered: u64,
    /// Sent but never delivered before the drain ended.
    pub lost: u64,
    /// Error stanzas received instead of messages.
    pub errors: u64,
    /// `delivered_in_window / duration_s`.
    pub delivered_per_s: f64,
    /// `sent / duration_s`: what the senders managed to offer.
    pub sent_per_s: f64,
    /// Send timestamp (in the body) to receipt, for every delivered message.
    pub latency: LatencySummary,
    /// Server CPU seconds per 100 000 messages delivered in the interval.
    pub server_cpu_s_per_100k: Option<f64>,
    /// Over BOSH: HTTP requests the server answered in the interval, polls included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests: Option<u64>,
    /// `http_requests / duration_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests_per_s: Option<f64>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// What a receiver saw.
#[derive(Default)]
struct Received {
    lat: Latencies,
    errors: u64,
}

/// Logs in `2 * pairs` users, runs the senders for the duration, drains, and closes.
pub async fn chat(target: &Target, opts: &ChatOpts) -> Result<ChatResult, BenchError> {
    let shared = Shared::new(target)?;
    if opts.pairs == 0 || opts.duration_s <= 0.0 {
        return Err(BenchError::Options(
            "chat needs pairs and a duration above 0".into(),
        ));
    }
    match opts.mode {
        ChatMode::Max { window: 0 } => {
            return Err(BenchError::Options(
                "chat max needs a window above 0".into(),
            ))
        }
        ChatMode::Rate { rate } if rate <= 0.0 || !rate.is_finite() => {
            return Err(BenchError::Options("chat rate must be above 0".into()))
        }
        _ => {}
    }
    eprintln!("chat: logging in {} users", 2 * opts.pairs);
    let sh = shared.clone();
    let logins = run_pool(2 * opts.pairs, opts.concurrency, move |i| {
        let sh = sh.clone();
        async move {
            let mut s = Session::login(&sh, i, "chat").await?;
            s.available().await?;
            Ok::<_, BenchError>(s)
        }
    })
    .await;
    let mut sessions = Vec::with_capacity(logins.len());
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

    let delivered = Arc::new(AtomicU64::new(0));
    let pad = "x".repeat(opts.body_pad);
    let mut pairs = Vec::with_capacity(opts.pairs);
    let mut iter = sessions.into_iter();
    while let (Some(a), Some(b)) = (iter.next(), iter.next()) {
        pairs.push((a, b));
    }
    eprintln!(
        "chat {}: {} pairs for {} s",
        opts.mode.name(),
        opts.pairs,
        opts.duration_s
    );
    let meter = Meter::start_all(target.server_pids())?;
    let requests_before = shared.web.http_requests.load(Ordering::Relaxed);
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(opts.duration_s);
    let hard_stop = stop + Duration::from_secs_f64(opts.drain_s.max(0.0));
    let mut tasks = Vec::with_capacity(pairs.len());
    for (k, (a, b)) in pairs.into_iter().enumerate() {
        let (a_read, a_write) = a.split();
        let (b_read, b_write) = b.split();
        let window = match opts.mode {
            ChatMode::Max { window } => Some(Arc::new(Semaphore::new(window))),
            ChatMode::Rate { .. } => None,
        };
        let pacing = match opts.mode {
            ChatMode::Max { .. } => None,
            ChatMode::Rate { rate } => {
                let period = Duration::from_secs_f64(opts.pairs as f64 / rate);
                // Senders start spread over one period, so the load is even, not bursty.
                let offset = period.mul_f64(k as f64 / opts.pairs as f64);
                Some((period, offset))
            }
        };
        let to = b_read.jid.clone();
        let sender = tokio::spawn(send_loop(
            a_write,
            to,
            pad.clone(),
            window.clone(),
            pacing,
            start,
            stop,
        ));
        let receiver = tokio::spawn(receive_loop(b_read, window, delivered.clone(), hard_stop));
        tasks.push((a_read, b_write, sender, receiver));
    }

    tokio::time::sleep_until(stop).await;
    let in_window = delivered.load(Ordering::Relaxed);
    let requests = shared.web.http_requests.load(Ordering::Relaxed) - requests_before;
    let usage = meter.finish()?;
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!("chat: senders stopped; {in_window} delivered so far, draining");

    let mut sent = 0;
    let mut received = Received::default();
    let mut sessions = Vec::new();
    let mut failure = None;
    for (a_read, b_write, sender, receiver) in tasks {
        let (a_write, n) = sender.await.expect("chat sender panicked");
        let (b_read, r) = receiver.await.expect("chat receiver panicked");
        sent += n;
        match r {
            Ok(r) => {
                received.lat.merge(&r.lat);
                received.errors += r.errors;
            }
            Err(e) => failure = failure.or(Some(e)),
        }
        if let Some(a_write) = a_write {
            sessions.push(a_read.unsplit(a_write));
        }
        sessions.push(b_read.unsplit(b_write));
    }
    close_all(sessions, opts.concurrency).await;
    if let Some(e) = failure {
        return Err(e);
    }
    let total = received.lat.len();
    eprintln!("chat: {sent} sent, {total} delivered");
    Ok(ChatResult {
        scenario: "chat".into(),
        mode: opts.mode.name().into(),
        config: opts.clone(),
        target: target.echo(),
        duration_s: elapsed,
        sent,
        delivered_in_window: in_window,
        delivered: total,
        lost: sent.saturating_sub(total),
        errors: received.errors,
        delivered_per_s: in_window as f64 / elapsed.max(1e-9),
        sent_per_s: sent as f64 / elapsed.max(1e-9),
        latency: received.lat.summary(),
        server_cpu_s_per_100k: usage
            .server_cpu_s
            .filter(|_| in_window > 0)
            .map(|cpu| cpu * 100_000.0 / in_window as f64),
        http_requests: matches!(target.transport, Transport::Bosh { .. }).then_some(requests),
        http_requests_per_s: matches!(target.transport, Transport::Bosh { .. })
            .then(|| requests as f64 / elapsed.max(1e-9)),
        usage,
    })
}

/// Appends one message to `out`: `<body>` is the send time in unix nanoseconds, then
/// the padding.
fn push_message(out: &mut Vec<u8>, to_escaped: &str, pad: &str) {
    use std::io::Write;
    let _ = write!(
        out,
        "<message type='chat' to='{to_escaped}'><body>{} {pad}</body></message>",
        unix_nanos()
    );
}

/// Sends until `stop`, then the end marker. Returns the writer (unless the connection
/// failed) and how many messages were sent, the marker not included.
async fn send_loop(
    mut w: SessionWriter,
    to: String,
    pad: String,
    window: Option<Arc<Semaphore>>,
    pacing: Option<(Duration, Duration)>,
    start: Instant,
    stop: Instant,
) -> (Option<SessionWriter>, u64) {
    let to = parley_xml::escape::attr(&to).into_owned();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let ok = match (window, pacing) {
        (Some(window), _) => loop {
            // Wait for room in the window, then fill all the room there is in one write.
            let permit = tokio::select! {
                p = window.acquire() => p,
                () = tokio::time::sleep_until(stop) => break true,
            };
            let Ok(permit) = permit else { break true };
            permit.forget();
            let mut batch = 1;
            while batch < 256 {
                match window.try_acquire() {
                    Ok(p) => {
                        p.forget();
                        batch += 1;
                    }
                    Err(_) => break,
                }
            }
            buf.clear();
            for _ in 0..batch {
                push_message(&mut buf, &to, &pad);
            }
            if w.send(&buf).await.is_err() {
                break false;
            }
            sent += batch;
            if Instant::now() >= stop {
                break true;
            }
        },
        (None, Some((period, offset))) => {
            let mut ticks = tokio::time::interval_at(start + offset, period);
            // Missed ticks are sent late rather than skipped: the offered load stays fixed.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = tokio::time::sleep_until(stop) => break true,
                }
                if Instant::now() >= stop {
                    break true;
                }
                buf.clear();
                push_message(&mut buf, &to, &pad);
                if w.send(&buf).await.is_err() {
                    break false;
                }
                sent += 1;
            }
        }
        (None, None) => true,
    };
    if !ok {
        return (None, sent);
    }
    buf.clear();
    use std::io::Write;
    let _ = write!(
        buf,
        "<message type='chat' to='{to}'><body>{END_MARK}</body></message>"
    );
    let ok = w.send(&buf).await.is_ok();
    (ok.then_some(w), sent)
}

/// Receives until the sender's end marker (or `hard_stop`), recording latencies and
/// opening the sender's window by one per message.
async fn receive_loop(
    mut r: SessionReader,
    window: Option<Arc<Semaphore>>,
    delivered: Arc<AtomicU64>,
    hard_stop: Instant,
) -> (SessionReader, Result<Received, BenchError>) {
    let mut out = Received::default();
    let result = loop {
        let el = match r.recv(hard_stop).await {
            Ok(Incoming::Stanza(el)) => el,
            Ok(Incoming::Header(_)) => continue,
            Ok(Incoming::Close) | Ok(Incoming::Eof) => {
                break Err(BenchError::Closed(format!(
                    "{} lost its connection during chat",
                    r.jid
                )))
            }
            // Still missing messages at the hard stop: they count as lost.
            Err(BenchError::Timeout(_)) => break Ok(()),
            Err(e) => break Err(e),
        };
        if el.name() != "message" {
            continue;
        }
        if el.attr("type") == Some("error") {
            out.errors += 1;
            continue;
        }
        // Stored offline during an earlier run against the same data (the server's
        // delayed-delivery stamp, XEP-0203): its send time is not this run's latency.
        if el.get_child("delay", "urn:xmpp:delay").is_some() {
            continue;
        }
        let Some(body) = el.get_child("body", ns::CLIENT) else {
            continue;
        };
        let body = body.text();
        let stamp = body.split(' ').next().unwrap_or_default();
        if stamp == END_MARK {
            break Ok(());
        }
        let Ok(sent_at) = stamp.parse::<u64>() else {
            continue;
        };
        out.lat
            .record_us(unix_nanos().saturating_sub(sent_at) / 1000);
        delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = &window {
            w.add_permits(1);
        }
    };
    if let Some(w) = &window {
        // A sender still waiting on a window that will never reopen must not hang.
        w.close();
    }
    (r, result.map(|()| out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_carries_the_send_time_in_its_body() {
        let mut buf = Vec::new();
        let before = unix_nanos();
        push_message(&mut buf, "user2@localhost/chat", "xx");
        let after = unix_nanos();
        let el = parley_xml::Element::parse(
            format!(
                "<wrap xmlns='jabber:client'>{}</wrap>",
                String::from_utf8(buf).unwrap()
            )
            .as_bytes(),
            &parley_xml::Limits::default(),
        )
        .unwrap();
        let msg = el.first_child().unwrap();
        assert_eq!(msg.attr("type"), Some("chat"));
        assert_eq!(msg.attr("to"), Some("user2@localhost/chat"));
        let body = msg.get_child("body", ns::CLIENT).unwrap().text();
        let (stamp, pad) = body.split_once(' ').unwrap();
        let stamp: u64 = stamp.parse().unwrap();
        assert!((before..=after).contains(&stamp));
        assert_eq!(pad, "xx");
    }

    #[test]
    fn mode_serializes_flat_with_its_name() {
        let opts = ChatOpts {
            mode: ChatMode::Rate { rate: 500.0 },
            ..ChatOpts::default()
        };
        let json = serde_json::to_value(&opts).unwrap();
        assert_eq!(json["mode"], "rate");
        assert_eq!(json["rate"], 500.0);
        let back: ChatOpts = serde_json::from_value(json).unwrap();
        assert_eq!(back, opts);
    }
}
