//! The node behind the seams of the router and the user registry: [`RemoteSessions`]
//! (sessions on other nodes), [`Placement`] (which node runs a user's actor) and
//! [`Directory`] (remote lookups and claims), plus the conversions of close reasons for the
//! node link.

use super::*;

pub(super) fn from_remote_close(reason: RemoteClose) -> CloseReason {
    match reason {
        RemoteClose::Clean => CloseReason::Clean,
        RemoteClose::Error { condition, text } => {
            let condition = condition
                .parse::<StreamCondition>()
                .unwrap_or(StreamCondition::UndefinedCondition);
            match text {
                Some(t) => CloseReason::with_text(condition, t),
                None => CloseReason::condition(condition),
            }
        }
    }
}

pub(super) fn to_remote_close(reason: CloseReason) -> RemoteClose {
    match reason {
        CloseReason::Clean => RemoteClose::Clean,
        CloseReason::Error(e) => RemoteClose::Error {
            condition: e.condition.as_str().to_owned(),
            text: e.text,
        },
        CloseReason::Stanza(_) => RemoteClose::Error {
            condition: StreamCondition::UndefinedCondition.as_str().to_owned(),
            text: None,
        },
        // Drains are per node: a peer never moves another node's clients.
        CloseReason::Move { .. } => RemoteClose::Error {
            condition: StreamCondition::SystemShutdown.as_str().to_owned(),
            text: None,
        },
    }
}

/// Sessions one `ToSessions` frame names at most: a frame stays far below the frame bound
/// (`cluster.max_frame_bytes`) whatever the room, and no frame holds the link for long.
const MAX_TARGETS_PER_FRAME: usize = 256;

/// Stands in when the node is gone (shutdown): nothing can be reached.
pub(super) struct Detached;

impl RemoteSessions for Detached {
    fn deliver(
        &self,
        _: &str,
        _: &FullJid,
        _: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>> {
        Err(Undelivered::gone(stanza))
    }
    fn close(&self, _: &str, _: &FullJid, _: SessionId, _: CloseReason) {}
    fn alive(&self, _: &str) -> bool {
        false
    }
}

impl RemoteSessions for Node {
    fn deliver(
        &self,
        node: &str,
        jid: &FullJid,
        session: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>> {
        let body = Body::ToSession {
            jid: jid.to_string(),
            session: session.0,
            xml: stanza.to_string(),
        };
        let links = self.links.read();
        match links.get(node) {
            None => Err(Undelivered::gone(stanza)),
            Some((_, link)) => {
                self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                match link.send(body) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(Undelivered::overloaded(stanza)),
                }
            }
        }
    }

    /// One frame per 256 sessions (`MAX_TARGETS_PER_FRAME`), the stanza serialized once.
    fn deliver_many(
        &self,
        node: &str,
        targets: &[(FullJid, SessionId)],
        stanza: &Element,
    ) -> Vec<(FullJid, Box<Undelivered>)> {
        let addressed = |jid: &FullJid| {
            let mut copy = stanza.clone();
            copy.set_attr("to", jid.to_string());
            copy
        };
        let links = self.links.read();
        let Some((_, link)) = links.get(node) else {
            return targets
                .iter()
                .map(|(jid, _)| (jid.clone(), Undelivered::gone(addressed(jid))))
                .collect();
        };
        let xml = stanza.to_string();
        let mut refused = Vec::new();
        for chunk in targets.chunks(MAX_TARGETS_PER_FRAME) {
            let body = Body::ToSessions {
                targets: chunk.iter().map(|(j, s)| (j.to_string(), s.0)).collect(),
                xml: xml.clone(),
            };
            self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
            if link.send(body).is_err() {
                refused.extend(
                    chunk
                        .iter()
                        .map(|(jid, _)| (jid.clone(), Undelivered::overloaded(addressed(jid)))),
                );
            }
        }
        refused
    }

    fn close(&self, node: &str, jid: &FullJid, session: SessionId, reason: CloseReason) {
        let _ = self.send_to(
            node,
            Body::Close {
                jid: jid.to_string(),
                session: session.0,
                reason: to_remote_close(reason),
                status: None,
            },
        );
    }

    fn alive(&self, node: &str) -> bool {
        self.members.read().iter().any(|m| **m == *node)
    }
}

impl Placement for Node {
    fn remote_owner(&self, user: &BareJid) -> Option<Arc<str>> {
        self.owner_of(user.as_str()).filter(|o| **o != *self.me)
    }

    fn forward(&self, node: &str, user: &BareJid, msg: UserWire) -> Result<(), UserWire> {
        match self.send_to(
            node,
            Body::ToUser {
                user: user.to_string(),
                msg,
            },
        ) {
            Ok(()) => Ok(()),
            Err(Body::ToUser { msg, .. }) => Err(msg),
            Err(_) => unreachable!("send_to hands back the frame it was given"),
        }
    }

    fn node_id(&self) -> Arc<str> {
        self.me.clone()
    }

    fn domain_owner(&self, domain: &str) -> Option<Arc<str>> {
        Node::domain_owner(self, domain)
    }

    fn sync(
        &self,
        node: &str,
        users: Vec<BareJid>,
        depth: parley_user::SyncDepth,
    ) -> parley_user::SyncFuture {
        self.ask_sync(node, users, depth)
    }

    fn carbons_enabled(&self, user: &BareJid) -> usize {
        self.cache
            .read()
            .resources(user.as_str())
            .filter(|(_, e)| e.carbons)
            .count()
    }
}

impl Directory for Node {
    fn lookup(&self, jid: &FullJid) -> Option<SessionHandle> {
        let entry = {
            let cache = self.cache.read();
            let e = cache.lookup(jid.to_bare().as_str(), jid.resource().as_str())?;
            if *e.node == *self.me {
                // Ours: the local table is authoritative (it is gone or not yet claimed).
                return None;
            }
            (Arc::<str>::from(e.node.as_str()), e.session)
        };
        let me: Arc<dyn RemoteSessions> = self.me_weak.upgrade()?;
        Some(SessionHandle::remote(
            SessionId(entry.1),
            entry.0,
            jid.clone(),
            me,
        ))
    }

    fn claim(&self, jid: &FullJid, session: SessionId, policy: ResourceConflict) -> ClaimFuture {
        // Claims go through the writer, which puts a login storm's claims in one
        // transaction (falling back to one by one when any key is taken).
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send(WriteOp::Claim {
            jid: jid.clone(),
            session,
            policy,
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return ClaimOutcome::Unavailable;
            }
            answer.await.unwrap_or(ClaimOutcome::Unavailable)
        })
    }

    fn update(&self, jid: &FullJid, session: SessionId, flags: SessionFlags) {
        let _ = self.writes.send(WriteOp::Update {
            key: key_of(jid),
            session: session.0,
            flags,
        });
    }

    fn release(&self, jid: &FullJid, session: SessionId) {
        let _ = self.writes.send(WriteOp::Release {
            key: key_of(jid),
            session: session.0,
        });
    }
}

pub(super) fn key_of(jid: &FullJid) -> (String, String) {
    (
        jid.to_bare().to_string(),
        jid.resource().as_str().to_owned(),
    )
}
