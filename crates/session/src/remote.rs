//! Resumption on another node (XEP-0198 §5 in a cluster): the client's new connection
//! lands on any node behind the load balancer, and the session follows it there.
//!
//! The node that holds the session (O) and the node the client resumed on (N) talk over
//! the node link, through the [`RemoteResume`] seam that the cluster layer implements:
//!
//! 1. N asks O for the session (`take`). O's actor, in one handler, drops its connection
//!    if it still had one, stops its hibernation timer and answers with its state (bound
//!    JID, presence and flags, blocklist copy, directed presence, both counters and the
//!    unacknowledged queue). From then on it is *exporting*: stanzas that still reach it are
//!    kept, after what it exported.
//! 2. N binds the full JID in its own table under the session's id, then moves the
//!    cluster-wide claim from O to itself in one etcd transaction (`adopt`). Only then
//!    does it re-attach the resource to the user's actor (same id: the actor swaps the
//!    handle and keeps the rest), tell O the hand-over committed, and answer `<resumed/>`.
//! 3. O, told it committed, forgets the full JID locally, forwards what it kept to N in
//!    order, and stops without ending the session. Told it failed (or hearing nothing in
//!    time), it goes back to hibernating with everything it had: nothing was lost.
//!
//! Exactly one winner: O hands its state to the first `take` only (a second finds it
//! exporting and gets nothing), and the etcd transaction fails for a claim that moved.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{ActorContext, AsyncContext, Context, Handler, Message};
use jid::{BareJid, FullJid};
use parley_proto::sm::Unacked;
use parley_router::{BindOutcome, ResourceConflict, SessionHandle, SessionId, SessionMeta};
use parley_user::AttachState;
use parley_xml::{Element, Limits};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::driver::Io;
use crate::faults::Fault;
use crate::phase::{Bound, EndCause, Phase};
use crate::resume::Transfer;
use crate::session::Session;
use crate::sm::{Ask, Queued, Resumption, Sm, SmState};

/// How long an exporting session waits for the commit before it hibernates again.
const EXPORT_GRACE: Duration = Duration::from_secs(15);

/// How long a session that moved to another node still forwards what reaches it.
const FORWARD_GRACE: Duration = Duration::from_secs(5);

/// A boxed future the cluster layer returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a node needs of the cluster to resume sessions held elsewhere, and to give up its
/// own. Installed by the binary (the cluster layer implements it); a single node has none.
pub trait RemoteResume: Send + Sync + 'static {
    /// Asks the cluster for session `previd` of `user` (first `hint`, the node its id
    /// names, then the others): its exported state, or None when no node has it to give.
    /// Returns the node that gave it.
    fn take(
        &self,
        hint: Option<&str>,
        previd: &str,
        user: &BareJid,
    ) -> BoxFuture<Option<(String, Vec<u8>)>>;
    /// Moves the cluster-wide claim on `jid`, session `session`, from node `from` to this
    /// node, in one transaction; false when the claim is no longer `from`'s.
    fn adopt(&self, jid: &FullJid, session: SessionId, from: &str) -> BoxFuture<bool>;
    /// Tells `node` whether the hand-over of `previd` committed.
    fn commit(&self, node: &str, previd: &str, ok: bool);
    /// A handle that reaches session `session` on `node` (None while this node stops).
    fn handle(&self, node: &str, jid: &FullJid, session: SessionId) -> Option<SessionHandle>;
}

/// A session's state on the wire between nodes (postcard, inside a node-link frame whose
/// protocol version covers it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireState {
    jid: String,
    session: u64,
    created_ms: i64,
    established: bool,
    priority: i8,
    presence: Option<String>,
    interested: bool,
    carbons: bool,
    blocked: Vec<String>,
    blocklist_requested: bool,
    blocklist_synced: bool,
    held_back: Vec<String>,
    directed: Vec<String>,
    inbound: u32,
    acked: u32,
    ever_acked: u64,
    queue: Vec<(String, i64)>,
    timeout_ms: u64,
}

/// Asks the actor holding a resumable session for its state (step 1 of the module doc).
#[derive(Message)]
#[rtype(result = "Option<Vec<u8>>")]
pub(crate) struct Export {
    pub(crate) user: BareJid,
}

/// The other node's word on an export (step 3).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Commit {
    pub(crate) ok: bool,
    /// The node the session went to.
    pub(crate) node: String,
}

/// Reads a session state another node sent as the resuming node does before adopting it:
/// the full JID it would bind, or None for bytes it refuses. Public for the fuzz target
/// (`fuzz/fuzz_targets/resume_state.rs`): the bytes come from a peer node.
pub fn read_state(bytes: &[u8]) -> Option<String> {
    let state: WireState = postcard::from_bytes(bytes).ok()?;
    let jid = FullJid::new(&state.jid).ok()?;
    let stanzas = state
        .presence
        .iter()
        .chain(&state.held_back)
        .chain(state.queue.iter().map(|(xml, _)| xml));
    for xml in stanzas {
        // Unreadable stanzas are skipped by the adoption, never trusted.
        let _ = parse(xml);
    }
    let _ = parley_proto::blocking::Blocklist::new(state.blocked);
    Some(jid.to_string())
}

fn parse(xml: &str) -> Option<Element> {
    // Written by a peer node from stanzas it had accepted under its limits.
    Element::parse(xml.as_bytes(), &Limits::trusted_copies()).ok()
}

impl Handler<Export> for Session {
    type Result = Option<Vec<u8>>;

    fn handle(&mut self, msg: Export, ctx: &mut Context<Self>) -> Self::Result {
        if self.env.config.faults.on(Fault::TimeoutAtTake) {
            self.hibernation_over(ctx);
        }
        if !self.can_hand_over() {
            return None;
        }
        // XEP-0352 holds join the SM queue that travels with the session.
        self.flush_csi(ctx);
        self.hibernate_on_close = false;
        let b = self.bound()?;
        if !self.resumable() || b.jid.to_bare() != msg.user {
            return None;
        }
        self.wake_from_hibernation(ctx);
        // The client is on another node now: this connection, if it still looked alive,
        // is dropped; what was queued on it is in the SM queue.
        self.conn = Box::new(crate::connection::Gone);
        self.outbox.clear();
        let established = matches!(self.phase, Phase::Established(_));
        let b = self.bound()?;
        let Sm::On(s) = &b.sm else {
            return None;
        };
        let Resumption::Yes { timeout, .. } = &s.resume else {
            return None;
        };
        let state = WireState {
            jid: b.jid.to_string(),
            session: self.id.0,
            created_ms: self.meta.created_ms,
            established,
            priority: b.priority,
            presence: b.presence.as_ref().map(|p| p.to_string()),
            interested: b.interested,
            carbons: b.carbons,
            blocked: b.blocked.items(),
            blocklist_requested: b.blocklist_requested,
            blocklist_synced: b.blocklist_synced,
            held_back: b.held_back.iter().map(|e| e.to_string()).collect(),
            directed: b.directed.clone(),
            inbound: s.inbound,
            acked: s.out.acked(),
            ever_acked: s.out.ever_acked(),
            queue: s
                .out
                .iter()
                .map(|q| (q.stanza.to_string(), q.at_ms))
                .collect(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let exported = s.out.len();
        let bytes = match postcard::to_allocvec(&state) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "encoding a session for another node failed");
                self.hibernate(ctx);
                return None;
            }
        };
        if let Some(s) = self.sm_mut() {
            if let Ask::Armed(h) = s.ask {
                ctx.cancel_future(h);
            }
            s.ask = Ask::Idle;
        }
        let timer = ctx.run_later(EXPORT_GRACE, |act, ctx| {
            if matches!(act.io, Io::Exporting { .. }) {
                act.span
                    .in_scope(|| warn!("no commit for an exported session: hibernating again"));
                act.io = Io::Running;
                act.hibernate(ctx);
            }
        });
        self.io = Io::Exporting { timer, exported };
        self.span.in_scope(|| info!("exported to a resuming node"));
        Some(bytes)
    }
}

impl Handler<Commit> for Session {
    type Result = ();

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) {
        let Io::Exporting { timer, exported } = self.io else {
            return;
        };
        ctx.cancel_future(timer);
        if !msg.ok {
            // Nothing moved: the session waits here again, with all it had.
            self.io = Io::Running;
            self.hibernate(ctx);
            return;
        }
        let Some(remote) = self.env.resumptions.remote() else {
            return;
        };
        let Some(b) = self.bound_mut() else {
            return;
        };
        let jid = b.jid.clone();
        let user = jid.to_bare();
        let kept: Vec<Queued> = match &mut b.sm {
            Sm::On(s) => s.out.drain().into_iter().skip(exported).collect(),
            Sm::Off => Vec::new(),
        };
        parley_router::metrics::sm_unacked(exported + kept.len(), 0);
        let id = self.id;
        let next = remote.handle(&msg.node, &jid, id);
        // The claim is the other node's now: this node only gives up its own table entry
        // (the directory's release is guarded by what this node wrote, so it deletes
        // nothing the new owner wrote). Until this actor stops, what peers still send here
        // for the JID (their registry caches not yet told) follows the session there —
        // through this actor's mailbox, behind what reached it before the hand-over, so
        // that a later stanza never overtakes an earlier one (RFC 6120 §10.1).
        let own = self.env.router.lookup_local(&jid).filter(|h| h.id == id);
        match (&next, own) {
            (Some(_), Some(own)) => self.env.router.moved(&jid, id, own),
            (Some(next), None) => self.env.router.moved(&jid, id, next.clone()),
            (None, _) => self.env.router.unbind(&jid, id),
        }
        if let Some(dir) = self.env.router.directory() {
            dir.release(&jid, id);
        }
        if let Some(previd) = self.resume_id() {
            self.env.resumptions.forget(&previd, id);
        }
        for q in kept {
            match &next {
                Some(next) => self.env.router.deliver(next, q.stanza),
                None => self.undeliverable(q.stanza),
            }
        }
        self.phase = Phase::Authed { user };
        self.io = Io::Moved;
        self.successor = next;
        self.end = Some(EndCause::Resumed);
        self.span
            .in_scope(|| info!(node = msg.node.as_str(), "session moved to another node"));
        ctx.run_later(FORWARD_GRACE, |_, ctx| ctx.stop());
    }
}

impl Session {
    /// The session's SM id, when it is resumable.
    pub(crate) fn resume_id(&self) -> Option<String> {
        match &self.sm()?.resume {
            Resumption::Yes { id, .. } => Some(id.clone()),
            Resumption::No => None,
        }
    }

    /// §5 for a session this node does not hold: ask the cluster for it.
    pub(crate) fn resume_remote(
        &mut self,
        previd: String,
        h: u32,
        user: BareJid,
        ctx: &mut Context<Self>,
    ) {
        let Some(remote) = self.env.resumptions.remote() else {
            return self.resume_failed(None);
        };
        let hint = crate::resumption::Resumptions::node_of(&previd)
            .filter(|n| *n != self.env.node)
            .map(str::to_owned);
        self.pause();
        let take = remote.take(hint.as_deref(), &previd, &user);
        ctx.wait(wrap_future::<_, Self>(take).map(move |got, act, ctx| {
            let Some((node, bytes)) = got else {
                act.resume();
                return act.resume_failed(None);
            };
            match postcard::from_bytes::<WireState>(&bytes) {
                Ok(state) => act.adopt_remote(node, previd, h, user, state, ctx),
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "a peer's session state is unreadable"));
                    if let Some(remote) = act.env.resumptions.remote() {
                        remote.commit(&node, &previd, false);
                    }
                    act.resume();
                    act.resume_failed(None);
                }
            }
        }));
    }

    /// Step 2 of the module doc, on the resuming node.
    fn adopt_remote(
        &mut self,
        node: String,
        previd: String,
        h: u32,
        user: BareJid,
        state: WireState,
        ctx: &mut Context<Self>,
    ) {
        let Some(remote) = self.env.resumptions.remote() else {
            return;
        };
        let refuse = |act: &mut Session, remote: &std::sync::Arc<dyn RemoteResume>| {
            remote.commit(&node, &previd, false);
            act.resume();
            act.resume_failed(None);
        };
        let Ok(jid) = FullJid::new(&state.jid) else {
            return refuse(self, &remote);
        };
        if jid.to_bare() != user {
            return refuse(self, &remote);
        }
        let id = SessionId(state.session);
        let handle = self.session_handle_as(id, ctx);
        let resource = jid.resource().to_owned();
        // This node's table first, so that what the old node forwards finds the session;
        // the claim below is the cluster's word.
        match self.env.router.bind(
            &user,
            Some(&resource),
            handle.clone(),
            ResourceConflict::KickOld,
            || resource.clone(),
        ) {
            BindOutcome::Bound { replaced, .. } => {
                if let Some(old) = replaced {
                    old.close(parley_router::CloseReason::with_text(
                        parley_proto::stream_error::StreamCondition::Conflict,
                        "replaced by a resumed session",
                    ));
                }
            }
            _ => return refuse(self, &remote),
        }
        let adopt = remote.adopt(&jid, id, &node);
        ctx.wait(wrap_future::<_, Self>(adopt).map(move |won, act, ctx| {
            let Some(remote) = act.env.resumptions.remote() else {
                return;
            };
            if !won {
                act.env.router.unbind(&jid, id);
                remote.commit(&node, &previd, false);
                act.resume();
                return act.resume_failed(None);
            }
            act.resume();
            let presence = state.presence.as_deref().and_then(parse);
            let link = act.env.users.attach(
                &user,
                jid.resource().as_str(),
                handle,
                AttachState {
                    available: presence.is_some(),
                    priority: state.priority,
                    presence: presence.clone(),
                    interested: state.interested,
                    carbons: state.carbons,
                    directed: state.directed.clone(),
                },
            );
            remote.commit(&node, &previd, true);
            let mut bound = Bound::new(jid.clone(), link);
            bound.priority = state.priority;
            bound.presence = presence;
            bound.interested = state.interested;
            bound.carbons = state.carbons;
            bound.blocked = parley_proto::blocking::Blocklist::new(state.blocked);
            bound.blocklist_requested = state.blocklist_requested;
            bound.blocklist_synced = state.blocklist_synced;
            bound.held_back = state.held_back.iter().filter_map(|x| parse(x)).collect();
            bound.directed = state.directed;
            let queue = state.queue.iter().filter_map(|(xml, at_ms)| {
                let stanza = parse(xml)?;
                let size = parley_user::size::approx_bytes(&stanza);
                Some((
                    Queued {
                        stanza,
                        at_ms: *at_ms,
                    },
                    size,
                ))
            });
            let out = Unacked::restore(state.acked, state.ever_acked, queue);
            parley_router::metrics::sm_unacked(0, out.len());
            bound.sm = Sm::On(Box::new(SmState {
                inbound: state.inbound,
                out,
                resume: Resumption::Yes {
                    id: previd.clone(),
                    timeout: Duration::from_millis(state.timeout_ms),
                },
                ask: Ask::Idle,
                since_request: 0,
            }));
            let mut meta = SessionMeta::new("c2s", act.ip(), act.secure(), None);
            meta.created_ms = state.created_ms;
            if let Some(method) = act.meta.auth() {
                // The resuming connection's own login.
                meta.set_auth(method);
            }
            parley_router::metrics::SM_RESUMES_REMOTE
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let t = Transfer::new(id, std::sync::Arc::new(meta), bound, state.established);
            act.resumed(&previd, h, t, ctx);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> WireState {
        WireState {
            jid: "alice@localhost/phone".into(),
            session: 7,
            created_ms: 1_700_000_000_000,
            established: true,
            priority: 5,
            presence: Some("<presence xmlns='jabber:client'><show>away</show></presence>".into()),
            interested: true,
            carbons: false,
            blocked: vec!["spam@example.org".into()],
            blocklist_requested: false,
            blocklist_synced: true,
            held_back: Vec::new(),
            directed: vec!["room@conference.localhost/me".into()],
            inbound: 3,
            acked: u32::MAX,
            ever_acked: 4_294_967_295,
            queue: vec![(
                "<message xmlns='jabber:client' to='alice@localhost/phone'><body>1</body></message>"
                    .into(),
                1_700_000_000_500,
            )],
            timeout_ms: 300_000,
        }
    }

    /// XEP-0198 §5 across nodes: what one node exports, the other reads back; bytes that
    /// are not a state, or a state for a bare JID, are refused.
    #[test]
    fn xep0198_5_a_state_reads_back_and_garbage_is_refused() {
        let bytes = postcard::to_allocvec(&state()).unwrap();
        assert_eq!(read_state(&bytes).as_deref(), Some("alice@localhost/phone"));
        assert_eq!(read_state(b""), None);
        assert_eq!(read_state(&bytes[..bytes.len() / 2]), None);
        let bare = WireState {
            jid: "alice@localhost".into(),
            ..state()
        };
        assert_eq!(read_state(&postcard::to_allocvec(&bare).unwrap()), None);
        // The fuzz target starts from this state (fuzz/seeds/resume_state).
        if let Ok(dir) = std::env::var("PARLEY_FUZZ_SEED_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("state"), &bytes).unwrap();
        }
    }
}
