//! RFC 6120 §10.1 through the user layer: a session's broadcast presence reaches its
//! contacts' sessions before anything its client sends next.
//!
//! The broadcast takes the long road (the session, the user's actor, each contact's actor,
//! the contact's sessions); a message to a contact's full JID takes the short one (straight
//! to the contact's session). So after a broadcast the session reads no more input until its
//! user's actor answers a [`Fence`], which it does once every copy sits in the contacts'
//! sessions' queues:
//!
//! - each contact's actor handles a [`Barrier`] queued behind its copy: a mailbox message
//!   on this node; on another node a [`SyncDepth::Barrier`] over the same ordered link the
//!   copy took (one per node, naming all the contacts there);
//! - when the fencing session runs on another node than the actor that delivers a copy, the
//!   copy and the client's next stanza travel different links: that actor's node then syncs
//!   ([`SyncDepth::Link`]) with each node its resources' sessions run on. When it is the
//!   session's node, both travel the same ordered link and nothing more is needed. Copies
//!   for contacts on other servers are handled alike with the node that owns the outgoing
//!   stream to their domain;
//! - a session whose user's actor runs on another node sends its fence there as a
//!   [`SyncDepth::Fence`], behind the broadcast it forwarded on the same link.
//!
//! Every wait is bounded ([`SYNC_LIMIT`]): a lost peer delays a session's input a little,
//! never stops it. Not covered: a copy the receiving node holds for a registry claim (the
//! cluster crate's `held.rs`, the moments after a bind) when a barrier names several users.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Context, Handler, ResponseFuture};
use futures_util::future::join_all;
use jid::BareJid;

use crate::actor::UserActor;
use crate::messages::{Barrier, Fence};
use crate::placement::{SyncDepth, SyncFuture};
use crate::presence::has_from;
use crate::registry::Users;

/// The longest a session waits for its fence, and a node for a peer's answer to a sync.
pub const SYNC_LIMIT: Duration = Duration::from_secs(2);

/// Users one [`SyncDepth::Barrier`] names at most: a node refuses larger ones, so a sync
/// stays far below the frame bound whatever the roster bound.
pub const MAX_SYNC_USERS: usize = 1024;

impl Users {
    /// `jid`'s actor's [`Fence`], on this node or (as a [`SyncDepth::Fence`]) the one
    /// that owns the user; None when the actor does not run.
    pub(crate) fn fence(&self, jid: &BareJid) -> Option<SyncFuture> {
        if let Some(p) = self.placement() {
            if let Some(node) = p.remote_owner(jid) {
                return Some(p.sync(&node, vec![jid.clone()], SyncDepth::Fence));
            }
        }
        let addr = self.local_addr(jid)?;
        let asked = addr.send(Fence { origin: None });
        Some(Box::pin(async move {
            let _ = asked.await;
        }))
    }

    /// Resolves once each of `users`' actors, wherever it runs, has handled everything
    /// queued to it before this call; and, when the fencing session's node `origin` is not
    /// this one (Some), once what they handed to sessions on other nodes got there, as
    /// well as anything this node sent to the nodes in `flush`. Actors that do not run are
    /// skipped: nothing was handed to them.
    pub(crate) fn barriers(
        &self,
        users: impl IntoIterator<Item = BareJid>,
        origin: Option<Arc<str>>,
        mut flush: Vec<Arc<str>>,
    ) -> SyncFuture {
        let placement = self.placement().cloned();
        let mut local = Vec::new();
        let mut remote: HashMap<Arc<str>, Vec<BareJid>> = HashMap::new();
        for jid in users {
            match placement.as_ref().and_then(|p| p.remote_owner(&jid)) {
                Some(node) => remote.entry(node).or_default().push(jid),
                None => {
                    if let Some(addr) = self.local_addr(&jid) {
                        // Queued now, behind the copy.
                        local.push(addr.send(Barrier {
                            flush: origin.is_some(),
                        }));
                    }
                }
            }
        }
        let Some(placement) = placement else {
            return Box::pin(async move {
                join_all(local).await;
            });
        };
        let origin_name = origin
            .clone()
            .unwrap_or_else(|| placement.node_id())
            .to_string();
        let mut waits: Vec<SyncFuture> = Vec::new();
        for (node, jids) in remote {
            for chunk in jids.chunks(MAX_SYNC_USERS) {
                let depth = SyncDepth::Barrier {
                    origin: origin_name.clone(),
                };
                waits.push(placement.sync(&node, chunk.to_vec(), depth));
            }
        }
        Box::pin(async move {
            for nodes in join_all(local).await.into_iter().flatten() {
                flush.extend(nodes);
            }
            flush.sort_unstable();
            flush.dedup();
            let links = flush
                .iter()
                .map(|node| placement.sync(node, Vec::new(), SyncDepth::Link));
            join_all(waits.into_iter().chain(links)).await;
        })
    }

    /// What a peer asked with [`crate::Placement::sync`] (`from` sent it): resolves when
    /// it may be answered. Only actors running here are waited on: the sender's view of
    /// the owners may be a moment behind, and a sync is never passed further on.
    pub fn synced(&self, from: &str, users: Vec<BareJid>, depth: SyncDepth) -> SyncFuture {
        match depth {
            // In order on the link, so every earlier frame was acted on.
            SyncDepth::Link => Box::pin(std::future::ready(())),
            SyncDepth::Barrier { origin } => {
                let here = self
                    .placement()
                    .is_some_and(|p| *p.node_id() == *origin.as_str());
                let local: Vec<BareJid> = users
                    .into_iter()
                    .filter(|jid| self.local_addr(jid).is_some())
                    .collect();
                let origin = (!here).then(|| Arc::<str>::from(origin));
                self.barriers(local, origin, Vec::new())
            }
            SyncDepth::Fence => {
                let Some(addr) = users.first().and_then(|jid| self.local_addr(jid)) else {
                    return Box::pin(std::future::ready(()));
                };
                let asked = addr.send(Fence {
                    origin: Some(Arc::from(from)),
                });
                Box::pin(async move {
                    let _ = asked.await;
                })
            }
        }
    }
}

impl UserActor {
    /// The other nodes this user's sessions run on.
    fn remote_nodes(&self) -> Vec<Arc<str>> {
        let mut nodes: Vec<Arc<str>> = self
            .resources
            .iter()
            .filter_map(|r| r.handle.node().map(Arc::from))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// The broadcast this actor handled before reached every contact's sessions' queues.
impl Handler<Fence> for UserActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Fence, _ctx: &mut Context<Self>) -> Self::Result {
        let mut contacts = Vec::new();
        let mut flush = Vec::new();
        let placement = self.users.placement().cloned();
        for item in self.roster.items.values() {
            if !has_from(item.subscription) {
                continue;
            }
            let Ok(jid) = BareJid::new(&item.jid) else {
                continue;
            };
            if self.users.router.serves(jid.domain().as_str()) {
                contacts.push(jid);
            } else if msg.origin.is_some() {
                // Another server's contact: the copy went to the node that owns the stream
                // to its domain (from here; the client's next stanza from its own node).
                if let Some(owner) = placement
                    .as_ref()
                    .and_then(|p| p.domain_owner(jid.domain().as_str()))
                {
                    flush.push(owner);
                }
            }
        }
        if msg.origin.is_some() {
            // §4.2.2: the user's own other resources got a copy from here too.
            flush.extend(self.remote_nodes());
        }
        self.users.barriers(contacts, msg.origin, flush)
    }
}

/// Everything queued to this actor before was handled (so its copies went on).
impl Handler<Barrier> for UserActor {
    type Result = Vec<Arc<str>>;

    fn handle(&mut self, msg: Barrier, _ctx: &mut Context<Self>) -> Self::Result {
        if msg.flush {
            self.remote_nodes()
        } else {
            Vec::new()
        }
    }
}
