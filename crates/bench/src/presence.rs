//! `presence`: one user with R online contacts (mutual `both` subscriptions, provisioned
//! beforehand) becomes available; how long until every contact has its presence
//! (RFC 6121 §4.2.2 broadcast), and until it has every contact's presence (§4.2.2 probes
//! answered by the server, §4.3); with the server's pid, also the server's CPU per round.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{Incoming, Session, SessionReader, STEP_TIMEOUT};
use crate::idle::close_all;
use crate::stats::{median_max, run_pool, Meter, Usage};
use crate::target::{Shared, Target, TargetEcho};
use crate::BenchError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceOpts {
    /// Contacts: users `first_user + 1 ..= first_user + contacts`; the user itself is
    /// `first_user`.
    pub contacts: usize,
    pub rounds: usize,
    /// Logins in flight while setting up.
    pub concurrency: usize,
}

impl Default for PresenceOpts {
    fn default() -> Self {
        PresenceOpts {
            contacts: 100,
            rounds: 5,
            concurrency: 50,
        }
    }
}

/// One round: the user logs in, sends initial presence, and later logs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceRound {
    /// Initial presence sent to the last contact having received it.
    pub contacts_all_ms: f64,
    /// Initial presence sent to the median contact having received it.
    pub contacts_p50_ms: f64,
    /// Initial presence sent to the user having every contact's presence.
    pub user_all_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceResult {
    pub scenario: String,
    pub config: PresenceOpts,
    pub target: TargetEcho,
    pub rounds: Vec<PresenceRound>,
    pub contacts_all_ms_p50: f64,
    pub contacts_all_ms_max: f64,
    pub user_all_ms_p50: f64,
    pub user_all_ms_max: f64,
    /// Server CPU milliseconds per round (the user's login, its presence to every contact
    /// and theirs back, its logout and the unavailable presence to every contact), the
    /// rounds' CPU over their number: one round is often below the kernel's 10 ms CPU
    /// accounting tick, several together are not.
    #[serde(default)]
    pub server_cpu_ms_per_round: Option<f64>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// What a contact saw of the user: (available or not, when).
type Seen = (bool, Instant);

/// Logs the contacts in, then runs the rounds.
pub async fn presence(target: &Target, opts: &PresenceOpts) -> Result<PresenceResult, BenchError> {
    let shared = Shared::new(target)?;
    if opts.contacts == 0 || opts.rounds == 0 {
        return Err(BenchError::Options(
            "presence needs contacts and rounds above 0".into(),
        ));
    }
    let owner_bare = target.bare_jid(0);
    eprintln!("presence: logging in {} contacts", opts.contacts);
    let contacts = login_contacts(&shared, opts.contacts, opts.concurrency).await?;

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::with_capacity(contacts.len());
    for c in contacts {
        let (reader, writer) = c.split();
        let task = tokio::spawn(watch_owner(
            reader,
            owner_bare.clone(),
            seen_tx.clone(),
            stop_rx.clone(),
        ));
        watchers.push((task, writer));
    }
    drop(seen_tx);

    let meter = Meter::start_all(target.server_pids())?;
    let mut rounds = Vec::with_capacity(opts.rounds);
    let outcome = async {
        for round in 0..opts.rounds {
            // Leftovers (the previous round's unavailable, probe answers) are not this round's.
            while seen_rx.try_recv().is_ok() {}
            let r = run_round(&shared, &owner_bare, opts.contacts, &mut seen_rx).await?;
            eprintln!(
                "presence: round {}: contacts all {:.1} ms, user all {:.1} ms",
                round + 1,
                r.contacts_all_ms,
                r.user_all_ms
            );
            rounds.push(r);
        }
        Ok::<_, BenchError>(())
    }
    .await;
    let usage = meter.finish()?;

    let _ = stop_tx.send(true);
    let mut sessions = Vec::with_capacity(watchers.len());
    for (task, writer) in watchers {
        let reader = task.await.expect("presence watcher panicked");
        sessions.push(reader.unsplit(writer));
    }
    close_all(sessions, opts.concurrency).await;
    outcome?;

    let contacts_all: Vec<f64> = rounds.iter().map(|r| r.contacts_all_ms).collect();
    let user_all: Vec<f64> = rounds.iter().map(|r| r.user_all_ms).collect();
    let (contacts_all_ms_p50, contacts_all_ms_max) = median_max(&contacts_all);
    let (user_all_ms_p50, user_all_ms_max) = median_max(&user_all);
    let server_cpu_ms_per_round = usage
        .server_cpu_s
        .filter(|_| !rounds.is_empty())
        .map(|cpu| cpu * 1000.0 / rounds.len() as f64);
    Ok(PresenceResult {
        scenario: "presence".into(),
        config: opts.clone(),
        target: target.echo(),
        rounds,
        contacts_all_ms_p50,
        contacts_all_ms_max,
        user_all_ms_p50,
        user_all_ms_max,
        server_cpu_ms_per_round,
        usage,
    })
}

async fn run_round(
    shared: &Shared,
    owner_bare: &str,
    contacts: usize,
    seen_rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> Result<PresenceRound, BenchError> {
    let mut owner = Session::login(shared, 0, "owner").await?;
    let t0 = Instant::now();
    owner.send(b"<presence/>").await?;
    let deadline = t0 + STEP_TIMEOUT;
    let contacts_seen = async {
        let mut times = Vec::with_capacity(contacts);
        while times.len() < contacts {
            match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
                Ok(Some((true, at))) => times.push(at.duration_since(t0)),
                Ok(Some((false, _))) => {}
                Ok(None) => return Err(BenchError::Closed("a contact lost its connection".into())),
                Err(_) => {
                    return Err(BenchError::Timeout(format!(
                        "only {} of {contacts} contacts got the user's presence",
                        times.len()
                    )))
                }
            }
        }
        Ok(times)
    };
    let user_seen = async {
        // Each contact's presence, told apart by bare JID (the user's own echo is not one).
        let mut from = HashSet::with_capacity(contacts);
        while from.len() < contacts {
            let el = owner
                .stanza_until(deadline, "contacts' presence", |el| {
                    el.name() == "presence" && el.attr("type").is_none()
                })
                .await?;
            let bare = el
                .attr("from")
                .map(|f| f.split('/').next().unwrap_or(f).to_owned())
                .unwrap_or_default();
            if bare != owner_bare {
                from.insert(bare);
            }
        }
        Ok::<_, BenchError>(t0.elapsed())
    };
    let (mut times, user_all) = tokio::try_join!(contacts_seen, user_seen)?;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let round = PresenceRound {
        contacts_all_ms: ms(times[times.len() - 1]),
        contacts_p50_ms: ms(times[times.len() / 2]),
        user_all_ms: ms(user_all),
    };
    owner.close().await?;
    // Every contact sees the user leave before the next round starts.
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut gone = 0;
    while gone < contacts {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some((false, _))) => gone += 1,
            Ok(Some((true, _))) => {}
            Ok(None) => return Err(BenchError::Closed("a contact lost its connection".into())),
            Err(_) => {
                return Err(BenchError::Timeout(format!(
                    "only {gone} of {contacts} contacts saw the user leave"
                )))
            }
        }
    }
    Ok(round)
}

/// Reports each presence from the user's bare JID until told to stop; returns the
/// reader for a clean close.
async fn watch_owner(
    mut reader: SessionReader,
    owner_bare: String,
    seen: mpsc::UnboundedSender<Seen>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> SessionReader {
    loop {
        let item = tokio::select! {
            item = reader.recv(Instant::now() + Duration::from_secs(3600)) => item,
            _ = stop.changed() => return reader,
        };
        let el = match item {
            Ok(Incoming::Stanza(el)) => el,
            Ok(Incoming::Header(_)) => continue,
            // The sender side of the channel drops with this task: the round sees it.
            Ok(Incoming::Close) | Ok(Incoming::Eof) | Err(_) => return reader,
        };
        if el.name() != "presence" {
            continue;
        }
        let from = el.attr("from").unwrap_or_default();
        if from.split('/').next() != Some(owner_bare.as_str()) {
            continue;
        }
        let available = match el.attr("type") {
            None => true,
            Some("unavailable") => false,
            Some(_) => continue,
        };
        let _ = seen.send((available, Instant::now()));
    }
}

/// Logs in users 1..=`n` (resource `contact`) and makes each available, `concurrency` at a
/// time; on any failure the ones logged in are closed and the first error returned.
pub(crate) async fn login_contacts(
    shared: &Shared,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Session>, BenchError> {
    let sh = shared.clone();
    let logins = run_pool(n, concurrency, move |i| {
        let sh = sh.clone();
        async move {
            let mut s = Session::login(&sh, i + 1, "contact").await?;
            s.available().await?;
            Ok::<_, BenchError>(s)
        }
    })
    .await;
    let mut contacts = Vec::with_capacity(n);
    let mut failure = None;
    for r in logins {
        match r {
            Ok(s) => contacts.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        close_all(contacts, concurrency).await;
        return Err(e);
    }
    Ok(contacts)
}
