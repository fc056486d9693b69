//! One outgoing stream per (local, remote) domain pair, as Prosody keeps
//! `hosts[from].s2sout[to]`: the router's [`Foreign`] hook for domains we do not serve.
//!
//! A lane is created with its outgoing session actor on the first stanza (or dialback
//! check) for the pair, and holds what waits for the stream: stanzas, bounded in items and
//! bytes (`[s2s] queue_stanzas`, `queue_bytes`; past them `resource-constraint`), and
//! `db:verify` requests, bounded too. The queue lives here, not in the actor's mailbox, so
//! that when the stream ends (failed, refused, idle, closed) the actor removes its lane and
//! bounces what is left: nothing sent to a remote domain is lost silently. The actor is
//! told that its lane has work by one [`Flush`] message at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use actix::{Actor, Addr, Message, Recipient};
use actix_rt::ArbiterHandle;
use jid::Jid;
use parley_proto::dialback::Verdict;
use parley_proto::ns;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_router::{Foreign, Refused, SessionId};
use parley_xml::Element;
use tracing::debug;

use super::{Dialer, S2sPlacement, S2sSettings};
use crate::env::SessionEnv;
use crate::session::Session;

/// A (local, remote) pair of domains.
pub(crate) type Pair = (String, String);

/// A stanza waiting for its stream: the element (to bounce it) and its bytes as the
/// stream will carry them (written once, counted against the byte bound).
pub(crate) struct Queued {
    pub stanza: Element,
    pub bytes: Vec<u8>,
}

/// A dialback check to send to an authority (XEP-0220 §2.2.1) on our stream to it, and who
/// waits for the answer.
pub(crate) struct VerifyRequest {
    /// The stream id the key was given on (our incoming stream's).
    pub id: String,
    /// The key to check.
    pub key: String,
    /// The incoming session waiting.
    pub reply: Recipient<VerifyDone>,
}

/// Tells an outgoing session that its lane has work.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// The authority's answer to a dialback check, for the incoming session that asked.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct VerifyDone {
    /// The domain that asked to be accepted (the authority's).
    pub remote: String,
    /// Our domain it asked for.
    pub local: String,
    /// The stream id.
    pub id: String,
    /// What the authority said (`Error` when it could not be asked).
    pub verdict: Verdict,
}

struct Lane {
    id: SessionId,
    addr: Addr<Session>,
    queue: VecDeque<Queued>,
    bytes: usize,
    verifies: VecDeque<VerifyRequest>,
    /// A [`Flush`] is on its way, or the stream is not ready to take one.
    notified: bool,
}

/// What a lane held when its stream ended.
pub(crate) struct Leftover {
    pub stanzas: Vec<Queued>,
    pub verifies: Vec<VerifyRequest>,
}

/// The outgoing streams of this node.
pub struct S2sRoutes {
    settings: S2sSettings,
    dialer: Arc<dyn Dialer>,
    env: OnceLock<Weak<SessionEnv>>,
    workers: Vec<ArbiterHandle>,
    next: AtomicUsize,
    lanes: Mutex<HashMap<Pair, Lane>>,
    placement: OnceLock<Arc<dyn S2sPlacement>>,
}

impl std::fmt::Debug for S2sRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sRoutes")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S2sRoutes {
    /// Outgoing streams dialed by `dialer`, their actors started on `workers` in turn (the
    /// current arbiter when empty).
    pub fn new(
        settings: S2sSettings,
        dialer: Arc<dyn Dialer>,
        workers: Vec<ArbiterHandle>,
    ) -> Arc<S2sRoutes> {
        Arc::new(S2sRoutes {
            settings,
            dialer,
            env: OnceLock::new(),
            workers,
            next: AtomicUsize::new(0),
            lanes: Mutex::new(HashMap::new()),
            placement: OnceLock::new(),
        })
    }

    /// Gives the routes the environment their sessions run in (once, after it is built:
    /// the environment holds the routes).
    pub fn install(&self, env: &Arc<SessionEnv>) {
        let _ = self.env.set(Arc::downgrade(env));
    }

    /// Places outgoing streams on the cluster's nodes (once, at start-up, in a cluster).
    pub fn set_placement(&self, placement: Arc<dyn S2sPlacement>) {
        let _ = self.placement.set(placement);
    }

    /// The settings.
    pub fn settings(&self) -> &S2sSettings {
        &self.settings
    }

    pub(crate) fn dialer(&self) -> &Arc<dyn Dialer> {
        &self.dialer
    }

    /// Outgoing streams open or opening, by pair (for the admin view and tests).
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.lanes().keys().cloned().collect()
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<Pair, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lane for `pair`, its stream started if there is none. None when no session can
    /// be started (the node is shutting down).
    fn lane<'a>(&self, lanes: &'a mut HashMap<Pair, Lane>, pair: &Pair) -> Option<&'a mut Lane> {
        if !lanes.contains_key(pair) {
            let env = self.env.get().and_then(Weak::upgrade)?;
            let id = SessionId::random();
            let (local, remote) = pair.clone();
            let make =
                move |_: &mut actix::Context<Session>| Session::outgoing(env, id, local, remote);
            let addr = match self.workers.len() {
                // Off an arbiter (a node link's thread) there is nowhere to start it.
                0 => Session::start_in_arbiter(&actix_rt::Arbiter::try_current()?, make),
                n => {
                    let worker = &self.workers[self.next.fetch_add(1, Ordering::Relaxed) % n];
                    Session::start_in_arbiter(worker, make)
                }
            };
            debug!(local = %pair.0, remote = %pair.1, "outgoing s2s stream started");
            lanes.insert(
                pair.clone(),
                Lane {
                    id,
                    addr,
                    queue: VecDeque::new(),
                    bytes: 0,
                    verifies: VecDeque::new(),
                    notified: true,
                },
            );
        }
        lanes.get_mut(pair)
    }

    /// Asks `authority` (over our stream from `local` to it) whether `key` is the one it
    /// gave for stream `id` (XEP-0220 §2.2.1); the answer goes to `reply`. Err(()) when too
    /// many checks wait already or no stream can be started.
    pub(crate) fn verify(
        &self,
        local: &str,
        authority: &str,
        id: String,
        key: String,
        reply: Recipient<VerifyDone>,
    ) -> Result<(), ()> {
        let pair = (local.to_owned(), authority.to_owned());
        let mut lanes = self.lanes();
        let lane = self.lane(&mut lanes, &pair).ok_or(())?;
        if lane.verifies.len() >= self.settings.max_pending_verifications {
            return Err(());
        }
        lane.verifies.push_back(VerifyRequest { id, key, reply });
        notify(lane);
        Ok(())
    }

    /// Takes what waits for the stream `id` of `pair` (called once the stream is open):
    /// stanzas when `ready` (authenticated), dialback checks always. The next push sends a
    /// [`Flush`] again.
    pub(crate) fn take(
        &self,
        pair: &Pair,
        id: SessionId,
        ready: bool,
    ) -> (Vec<Queued>, Vec<VerifyRequest>) {
        let mut lanes = self.lanes();
        let Some(lane) = lanes.get_mut(pair).filter(|l| l.id == id) else {
            return (Vec::new(), Vec::new());
        };
        lane.notified = false;
        let verifies = lane.verifies.drain(..).collect();
        let stanzas = if ready {
            lane.bytes = 0;
            lane.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        (stanzas, verifies)
    }

    /// The stream `id` of `pair` ended: its lane goes, with what still waited in it.
    pub(crate) fn remove(&self, pair: &Pair, id: SessionId) -> Leftover {
        let mut lanes = self.lanes();
        match lanes.get(pair) {
            Some(lane) if lane.id == id => {}
            _ => {
                return Leftover {
                    stanzas: Vec::new(),
                    verifies: Vec::new(),
                }
            }
        }
        let lane = lanes.remove(pair).expect("checked above");
        Leftover {
            stanzas: lane.queue.into_iter().collect(),
            verifies: lane.verifies.into_iter().collect(),
        }
    }

    /// The domain a stanza for a remote domain is sent from: one we serve (a host, or a
    /// component's domain).
    fn local_domain(&self, env: &SessionEnv, stanza: &Element) -> Option<String> {
        let from = Jid::new(stanza.attr("from")?).ok()?;
        let domain = from.domain().as_str();
        (env.router.serves(domain) || env.router.is_component(domain)).then(|| domain.to_owned())
    }
}

/// Sends the lane's actor a [`Flush`] unless one is on its way.
fn notify(lane: &mut Lane) {
    if !lane.notified {
        lane.notified = true;
        lane.addr.do_send(Flush);
    }
}

impl S2sRoutes {
    /// A stanza another node of the cluster forwarded because this node owns the stream
    /// to its domain: it leaves from here, whatever this node now thinks of the placement
    /// (two views of a changing membership must not bounce it back and forth).
    pub fn send_here(&self, stanza: Element) -> Result<(), Box<Refused>> {
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        let Some(to) = to else {
            return Err(Refused::new(
                stanza,
                StanzaError::new(StanzaCondition::JidMalformed),
            ));
        };
        self.enqueue(&to, stanza)
    }

    fn enqueue(&self, to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        let refuse = |stanza, condition| Err(Refused::new(stanza, StanzaError::new(condition)));
        let Some(env) = self.env.get().and_then(Weak::upgrade) else {
            return refuse(stanza, StanzaCondition::RemoteServerNotFound);
        };
        let Some(local) = self.local_domain(&env, &stanza) else {
            return refuse(stanza, StanzaCondition::ServiceUnavailable);
        };
        let pair = (local, to.domain().as_str().to_owned());
        // Written once, as the stream carries it: the content namespace is implicit, so
        // that the peer reads it in jabber:server.
        let bytes = stanza.to_bytes_in(Some(ns::CLIENT));
        let mut lanes = self.lanes();
        let Some(lane) = self.lane(&mut lanes, &pair) else {
            return refuse(stanza, StanzaCondition::RemoteServerNotFound);
        };
        if lane.queue.len() >= self.settings.queue_stanzas
            || lane.bytes + bytes.len() > self.settings.queue_bytes
        {
            return refuse(stanza, StanzaCondition::ResourceConstraint);
        }
        lane.bytes += bytes.len();
        lane.queue.push_back(Queued { stanza, bytes });
        notify(lane);
        Ok(())
    }
}

impl Foreign for S2sRoutes {
    fn send(&self, to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        let owner = self
            .placement
            .get()
            .and_then(|p| Some((p, p.owner(to.domain().as_str())?)));
        let stanza = match owner {
            Some((placement, node)) => match placement.forward(&node, stanza) {
                Ok(()) => return Ok(()),
                // The owner is out of reach: this node takes the stream meanwhile.
                Err(stanza) => stanza,
            },
            None => stanza,
        };
        self.enqueue(to, stanza)
    }
}
