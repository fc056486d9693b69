//! Frames from peers' links: each is judged first ([`crate::trust`]: may the sender ask
//! this in its own name?), then acted on, refused (counted, logged once per peer, never
//! acted on), or held in its user's order until the registry shows the sender's claim.
//!
//! This runs on the links thread: what it does is hand messages to actors (thread-safe
//! `do_send`s) and parse stanzas, never wait on etcd. A frame that waits for the registry
//! waits in a line of its sender and user (`held.rs`), not in its link.

use parley_router::metrics::refuse;

use super::held::{user_of, Joined};
use super::*;
use crate::peer::FrameWait;
use crate::trust::{judge, Verdict, NOT_IN_REGISTRY};

/// A frame's kind, for logs (never its content).
fn kind(body: &Body) -> &'static str {
    match body {
        Body::Hello { .. } => "Hello",
        Body::Welcome { .. } => "Welcome",
        Body::Proof { .. } => "Proof",
        Body::ToSession { .. } => "ToSession",
        Body::ToSessions { .. } => "ToSessions",
        Body::ToUser { msg, .. } => match msg {
            UserWire::Attach { .. } => "ToUser/Attach",
            UserWire::Detach { .. } => "ToUser/Detach",
            UserWire::FromClient { .. } => "ToUser/FromClient",
            UserWire::Inbound { .. } => "ToUser/Inbound",
            UserWire::CarbonReceived { .. } => "ToUser/CarbonReceived",
        },
        Body::Close { .. } => "Close",
        Body::Query { .. } => "Query",
        Body::Answer { .. } => "Answer",
        Body::BoshRequest { .. } => "BoshRequest",
        Body::BoshResponse { .. } => "BoshResponse",
        Body::ResumeTake { .. } => "ResumeTake",
        Body::ResumeState { .. } => "ResumeState",
        Body::ResumeCommit { .. } => "ResumeCommit",
        Body::ToDomain { .. } => "ToDomain",
        Body::ToRoom { .. } => "ToRoom",
        Body::RoomReload { .. } => "RoomReload",
        Body::RoomControl { .. } => "RoomControl",
        Body::Sync { .. } => "Sync",
        Body::Synced { .. } => "Synced",
        Body::Ping(_) => "Ping",
        Body::Pong(_) => "Pong",
    }
}

impl Node {
    /// A frame (`bytes` long on the wire) from the authenticated node `from`: acted on now,
    /// refused, or held in its user's line ([`super::held`]). Only when that peer's held
    /// frames are at their bound is there a wait, which the link runs before it reads on.
    pub(super) fn on_frame(&self, from: &str, body: Body, bytes: usize) -> FrameWait {
        self.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        match self.admit(from, body, bytes) {
            Ok(()) => None,
            Err(body) => {
                let node = self.me_weak.upgrade()?;
                let from = from.to_owned();
                Some(Box::pin(async move {
                    let mut body = body;
                    loop {
                        node.held.room(&from, bytes).await;
                        match node.admit(&from, body, bytes) {
                            Ok(()) => return,
                            Err(again) => body = again,
                        }
                    }
                }))
            }
        }
    }

    /// Acts on, refuses, or holds a frame; gives it back when its peer has no room to hold it.
    fn admit(&self, from: &str, body: Body, bytes: usize) -> Result<(), Body> {
        let body = match self.held.join(from, body, bytes) {
            Joined::Queued => return Ok(()),
            Joined::Full(body) => return Err(body),
            Joined::Free(body) => body,
        };
        match self.judge(from, &body) {
            Verdict::Accept => self.act(from, body),
            Verdict::Refuse(reason) => self.refused(from, reason, kind(&body)),
            Verdict::Wait => {
                // Only frames about a user wait (see `trust::judge`).
                let user = user_of(&body).unwrap_or_default().to_owned();
                if !self.held.open(from, &user, bytes) {
                    return Err(body);
                }
                let Some(node) = self.me_weak.upgrade() else {
                    return Ok(());
                };
                let from = from.to_owned();
                tokio::spawn(async move { node.work_line(from, user, body, bytes).await });
            }
        }
        Ok(())
    }

    /// Works through the line of `user` from `from`, starting with its head: each frame
    /// waits for its claim if it must, then is acted on (or refused), in order.
    async fn work_line(&self, from: String, user: String, head: Body, bytes: usize) {
        let mut next = Some((head, bytes));
        while let Some((body, bytes)) = next {
            self.wait_then_act(&from, body).await;
            self.held.done(&from, bytes);
            next = self.held.next(&from, &user);
        }
    }

    fn judge(&self, from: &str, body: &Body) -> Verdict {
        judge(&self.cache.read(), from, body)
    }

    /// Waits (up to `cluster.registry_wait_ms`) for the registry to show the sender's claim.
    async fn wait_then_act(&self, from: &str, body: Body) {
        let deadline = tokio::time::Instant::now() + self.settings.registry_wait;
        loop {
            // Registered before looking, so that a change in between is not missed.
            let changed = self.cache_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.judge(from, &body) {
                Verdict::Accept => return self.act(from, body),
                Verdict::Refuse(reason) => return self.refused(from, reason, kind(&body)),
                Verdict::Wait => {}
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.refused(from, NOT_IN_REGISTRY, kind(&body));
            }
        }
    }

    /// Counts a refused frame; logs it once per peer and reason (its kind, not its content).
    fn refused(&self, from: &str, reason: &'static str, kind: &'static str) {
        if refuse(reason, from) {
            warn!(peer = %from, reason, frame = kind, "node link frame refused");
        }
    }

    fn act(&self, from: &str, body: Body) {
        match body {
            Body::ToSession { jid, session, xml } => {
                let (Ok(full), Some(stanza)) = (FullJid::new(&jid), parse(&xml)) else {
                    return;
                };
                // Through the router, which decides what a refusal means (§8.5.3.2 when the
                // session is gone or no longer owns the JID).
                self.router
                    .to_local_session(&full, SessionId(session), stanza);
            }
            Body::ToSessions { targets, xml } => {
                let Some(stanza) = parse(&xml) else {
                    return;
                };
                for (jid, session) in targets {
                    let Ok(full) = FullJid::new(&jid) else {
                        continue;
                    };
                    let mut copy = stanza.clone();
                    copy.set_attr("to", jid);
                    self.router
                        .to_local_session(&full, SessionId(session), copy);
                }
            }
            Body::ToUser { user, msg } => {
                let Ok(jid) = BareJid::new(&user) else {
                    return;
                };
                let node: Arc<str> = Arc::from(from);
                let me = self.me_weak.upgrade();
                self.users.deliver_wire(&jid, msg, move |id, full| {
                    let nodes: Arc<dyn RemoteSessions> = match me {
                        Some(me) => me,
                        None => Arc::new(Detached),
                    };
                    SessionHandle::remote(id, node, full, nodes)
                });
            }
            Body::Close {
                jid,
                session,
                reason,
                status,
            } => {
                if jid.is_empty() {
                    // A stream between servers (the admin API names it by its key).
                    let status = status
                        .as_deref()
                        .and_then(parley_router::SessionStatus::parse)
                        .unwrap_or(parley_router::SessionStatus::Revoked);
                    self.router
                        .close_stream(SessionId(session), from_remote_close(reason), status);
                    return;
                }
                let Ok(full) = FullJid::new(&jid) else {
                    return;
                };
                let status = status
                    .as_deref()
                    .and_then(parley_router::SessionStatus::parse);
                match self.router.lookup_local(&full) {
                    Some(h) if h.id.0 == session => {
                        if let (Some(status), Some(meta)) = (status, h.meta()) {
                            meta.end(status);
                        }
                        h.close(from_remote_close(reason));
                    }
                    // Removing an ended session's record (the admin API's remove).
                    _ if status == Some(parley_router::SessionStatus::Removed) => {
                        self.router.remove_ended(SessionId(session));
                    }
                    _ => {}
                }
            }
            Body::Query { id, what } => {
                let json = self
                    .answer
                    .read()
                    .as_ref()
                    .map_or_else(|| "null".to_owned(), |a| a(&what));
                let _ = self.send_to(from, Body::Answer { id, json });
            }
            Body::BoshRequest { id, body } => {
                let handler = self.bosh.read().clone();
                let Some(handler) = handler else {
                    return;
                };
                let me = self.me_weak.clone();
                let from = from.to_owned();
                // The HTTP layer's handler runs where the node started (actix), not on the
                // links thread.
                self.home.spawn(async move {
                    let body = handler(body).await;
                    if let Some(node) = me.upgrade() {
                        let _ = node.send_to(&from, Body::BoshResponse { id, body });
                    }
                });
            }
            Body::BoshResponse { id, body: json } | Body::Answer { id, json } => {
                // Only the node that was asked may answer; a late one is a stray.
                if !self.queries.answer(id, from, json) {
                    self.refused(from, "link_stray_answer", "Answer");
                }
            }
            Body::ResumeTake { id, previd, user } => {
                let handler = self.resume.read().clone();
                let me = self.me_weak.clone();
                let from = from.to_owned();
                // The session layer answers on the node's home runtime, not the links thread.
                self.home.spawn(async move {
                    let state = match handler {
                        Some(h) => (h.take)(previd, user).await.unwrap_or_default(),
                        None => Vec::new(),
                    };
                    if let Some(node) = me.upgrade() {
                        let _ = node.send_to(&from, Body::ResumeState { id, state });
                    }
                });
            }
            Body::ResumeState { id, state } => {
                if !self.takes.answer(id, from, state) {
                    self.refused(from, "link_stray_answer", "ResumeState");
                }
            }
            Body::ResumeCommit { previd, ok } => {
                if let Some(h) = self.resume.read().as_ref() {
                    (h.commit)(previd, from.to_owned(), ok);
                }
            }
            Body::ToDomain { xml } => {
                let Some(stanza) = parse(&xml) else {
                    return;
                };
                let handler = self.foreign.read().clone();
                match handler {
                    Some(h) => h(stanza),
                    None => self.router.bounce(
                        &stanza,
                        StanzaError::with_text(
                            StanzaCondition::RemoteServerNotFound,
                            "this node does not federate",
                        ),
                    ),
                }
            }
            Body::ToRoom { .. } | Body::RoomReload { .. } | Body::RoomControl { .. } => {
                self.room_frame(from, body);
            }
            Body::Sync { id, users, depth } => self.serve_sync(from, id, users, depth),
            Body::Synced { id } => {
                if !self.synced(from, id) {
                    self.refused(from, "link_stray_answer", "Synced");
                }
            }
            Body::Ping(n) => {
                let _ = self.send_to(from, Body::Pong(n));
            }
            // Refused by the judge before they get here.
            Body::Pong(_) | Body::Hello { .. } | Body::Welcome { .. } | Body::Proof { .. } => {}
        }
    }

    /// A frame for the chat-room service: to it, or held until it is plugged in.
    fn room_frame(&self, from: &str, body: Body) {
        let host = self.rooms.read().clone();
        let host = match host {
            Some(h) => h,
            None => {
                let mut early = self.early_rooms.lock();
                // Looked at again under the lock `set_room_host` takes.
                let host = self.rooms.read().clone();
                match (host, early.as_mut()) {
                    (Some(h), _) => h,
                    // Bounded like the frames waiting for a claim
                    // (`cluster.registry_wait_frames`); past it, refused as if no rooms ran.
                    (None, Some(held)) if held.len() < self.settings.registry_wait_frames => {
                        debug!(peer = %from, frame = kind(&body), "room frame held until the room service starts");
                        held.push((from.to_owned(), body));
                        return;
                    }
                    (None, _) => {
                        drop(early);
                        return self.no_rooms(body);
                    }
                }
            }
        };
        self.act_room(&host, from, body);
    }

    /// Hands a room frame to the room service.
    pub(super) fn act_room(&self, host: &Arc<dyn RoomHost>, from: &str, body: Body) {
        match body {
            Body::ToRoom { xml } => {
                let Some(stanza) = parse(&xml) else {
                    return;
                };
                if self.leaving.load(Ordering::Acquire) {
                    // Peers see this node go a moment after it does: by this node's own
                    // view, which places rooms elsewhere once the lease is revoked.
                    host.reroute(stanza);
                } else {
                    host.accept(stanza, from);
                }
            }
            Body::RoomReload { room } => host.reload(&room),
            Body::RoomControl { room, op } => {
                let h = host.clone();
                // The room service acts on actors: on the node's home runtime.
                self.home.spawn(async move { h.control(&room, &op) });
            }
            _ => {}
        }
    }

    /// The room service never started here (the node runs no rooms): what peers sent for
    /// rooms is refused.
    pub(super) fn rooms_unwired(&self) {
        let held = self.early_rooms.lock().take();
        for (_, body) in held.into_iter().flatten() {
            self.no_rooms(body);
        }
    }

    fn no_rooms(&self, body: Body) {
        if let Body::ToRoom { xml } = body {
            if let Some(stanza) = parse(&xml) {
                self.router.bounce(
                    &stanza,
                    StanzaError::with_text(
                        StanzaCondition::ServiceUnavailable,
                        "this node runs no chat rooms",
                    ),
                );
            }
        }
    }

    /// A frame a link refused or gave up: its stanza is bounced, never dropped silently.
    pub(super) fn undeliverable(&self, body: Body) {
        if let Body::ToSessions { targets, xml } = body {
            // Each recipient's copy, as if it had gone alone.
            for (jid, session) in targets {
                self.undeliverable(Body::ToSession {
                    jid,
                    session,
                    xml: xml.clone(),
                });
            }
            return;
        }
        let stanza = match body {
            Body::ToSession { xml, .. } => parse(&xml),
            Body::ToUser { msg, .. } => msg.stanza(),
            Body::ToDomain { xml } => {
                // The owner of the stream is gone: this node takes the stanza out itself.
                if let Some(stanza) = parse(&xml) {
                    match self.foreign.read().clone() {
                        Some(h) => h(stanza),
                        None => {
                            self.metrics.bounced.fetch_add(1, Ordering::Relaxed);
                            self.router.bounce(
                                &stanza,
                                StanzaError::with_text(
                                    StanzaCondition::RemoteServerTimeout,
                                    "the cluster node holding the stream to that domain cannot be reached",
                                ),
                            );
                        }
                    }
                }
                return;
            }
            Body::ToRoom { xml } => {
                // The room's node is gone: placement (which changed with it) finds its new
                // owner, possibly this node.
                if let Some(stanza) = parse(&xml) {
                    match self.rooms.read().clone() {
                        Some(h) => h.reroute(stanza),
                        None => self.router.bounce(
                            &stanza,
                            StanzaError::new(StanzaCondition::ServiceUnavailable),
                        ),
                    }
                }
                return;
            }
            _ => None,
        };
        if let Some(stanza) = stanza {
            self.metrics.bounced.fetch_add(1, Ordering::Relaxed);
            self.router.bounce(
                &stanza,
                StanzaError::with_text(
                    StanzaCondition::RecipientUnavailable,
                    "the recipient's cluster node cannot be reached",
                ),
            );
        }
    }
}

/// Reads back a stanza a node serialized (ours or a peer's). It was accepted under
/// the configured limits, so it is read under the limits for copies, which no valid
/// configuration exceeds; a failure means a bug or a corrupt frame, and is logged.
fn parse(xml: &str) -> Option<Element> {
    match Element::parse(xml.as_bytes(), &Limits::trusted_copies()) {
        Ok(e) => Some(e),
        Err(e) => {
            if parley_router::metrics::refuse("copy_unparsable", "node_link") {
                warn!(error = %e, bytes = xml.len(), "a node-link stanza could not be read back");
            }
            None
        }
    }
}
