//! The node's resumable sessions, by Stream Management id (XEP-0198 §5).
//!
//! A session that enabled resumption registers here under an id that is unguessable (128
//! random bits) and names the node that holds it (`<random>.<node>`), so that a node the
//! client resumes on can tell whose session it is. A resume looks the id up here and asks
//! the holder for the session's state (`resume.rs`). Ids of sessions that ended are
//! remembered for a while (bounded by `[c2s] sm_remember_ended`), so that a late resume is
//! told the `h` the server had reached (§5: the client may then resend what was lost).

use std::collections::{HashMap, VecDeque};

use actix::Addr;
use jid::BareJid;
use parking_lot::Mutex;
use parley_router::SessionId;

use crate::remote::{BoxFuture, Commit, Export, RemoteResume};
use crate::session::Session;

/// Resumable sessions of this node.
pub struct Resumptions {
    node: String,
    inner: Mutex<Inner>,
    /// The cluster, when there is one: sessions held by other nodes.
    remote: std::sync::OnceLock<std::sync::Arc<dyn RemoteResume>>,
}

impl std::fmt::Debug for Resumptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Resumptions")
            .field("live", &inner.live.len())
            .field("ended", &inner.ended.len())
            .finish()
    }
}

struct Inner {
    live: HashMap<String, Live>,
    ended: HashMap<String, Ended>,
    /// Ended ids, oldest first, so that the oldest is forgotten first.
    order: VecDeque<String>,
    remember: usize,
}

struct Live {
    user: BareJid,
    session: SessionId,
    addr: Addr<Session>,
}

struct Ended {
    user: BareJid,
    h: u32,
}

/// What a resume finds under its id.
pub(crate) enum Lookup {
    /// The session is here (connected or hibernating).
    Live {
        session: SessionId,
        addr: Addr<Session>,
    },
    /// It ended; this was the count of stanzas the server had handled from the client.
    Ended { h: u32 },
    /// Never here, or forgotten, or another user's: the same answer for all three, so that
    /// ids of other users cannot be probed.
    Unknown,
}

impl Resumptions {
    /// An empty registry for node `node`, remembering at most `remember` ended ids.
    pub fn new(node: &str, remember: usize) -> Resumptions {
        Resumptions {
            node: node.to_owned(),
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                ended: HashMap::new(),
                order: VecDeque::new(),
                remember,
            }),
            remote: std::sync::OnceLock::new(),
        }
    }

    /// Installs the cluster's side of resumption (once, at start-up).
    pub fn set_remote(&self, remote: std::sync::Arc<dyn RemoteResume>) {
        let _ = self.remote.set(remote);
    }

    pub(crate) fn remote(&self) -> Option<std::sync::Arc<dyn RemoteResume>> {
        self.remote.get().cloned()
    }

    /// Another node asks for session `previd` of `user` (its client resumed there): the
    /// session's exported state, or None when this node does not hold it (or it is not
    /// that user's, or it is being exported already).
    pub fn export(&self, previd: &str, user: &str) -> BoxFuture<Option<Vec<u8>>> {
        let Ok(user) = BareJid::new(user) else {
            return Box::pin(async { None });
        };
        let Lookup::Live { addr, .. } = self.lookup(previd, &user) else {
            return Box::pin(async { None });
        };
        Box::pin(async move { addr.send(Export { user }).await.ok().flatten() })
    }

    /// The node `node` says whether it took session `previd` for good.
    pub fn commit(&self, previd: &str, node: &str, ok: bool) {
        let addr = self.inner.lock().live.get(previd).map(|l| l.addr.clone());
        if let Some(addr) = addr {
            addr.do_send(Commit {
                ok,
                node: node.to_owned(),
            });
        }
    }

    /// The session `id` moved to another node: this node no longer holds it, and has
    /// nothing to say about it later (the other node does).
    pub(crate) fn forget(&self, id: &str, session: SessionId) {
        let mut inner = self.inner.lock();
        if inner.live.get(id).is_some_and(|l| l.session == session) {
            inner.live.remove(id);
        }
    }

    /// A fresh id: 128 random bits, then this node's name.
    pub(crate) fn new_id(&self) -> String {
        let bytes: [u8; 16] = rand::random();
        let mut id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        id.push('.');
        id.push_str(&self.node);
        id
    }

    /// The node an id names (None for an id that is not one of ours in form).
    pub fn node_of(id: &str) -> Option<&str> {
        id.split_once('.').map(|(_, node)| node)
    }

    /// Records that `addr` holds the session `id` (on enable, and again when a resume moved
    /// it to another actor).
    pub(crate) fn register(
        &self,
        id: &str,
        user: BareJid,
        session: SessionId,
        addr: Addr<Session>,
    ) {
        self.inner.lock().live.insert(
            id.to_owned(),
            Live {
                user,
                session,
                addr,
            },
        );
    }

    /// Looks up `id` for `user`, who has authenticated on the resuming stream.
    pub(crate) fn lookup(&self, id: &str, user: &BareJid) -> Lookup {
        let inner = self.inner.lock();
        if let Some(live) = inner.live.get(id) {
            if &live.user == user {
                return Lookup::Live {
                    session: live.session,
                    addr: live.addr.clone(),
                };
            }
            return Lookup::Unknown;
        }
        match inner.ended.get(id) {
            Some(e) if &e.user == user => Lookup::Ended { h: e.h },
            _ => Lookup::Unknown,
        }
    }

    /// The session `id` ended (session `session`: a resume keeps the id): it cannot be
    /// resumed any more; `h` is remembered.
    pub(crate) fn ended(&self, id: &str, session: SessionId, h: u32) {
        let mut inner = self.inner.lock();
        let Some(live) = inner.live.get(id) else {
            return;
        };
        if live.session != session {
            return;
        }
        let user = live.user.clone();
        inner.live.remove(id);
        if inner.remember == 0 {
            return;
        }
        while inner.order.len() >= inner.remember {
            if let Some(old) = inner.order.pop_front() {
                inner.ended.remove(&old);
            }
        }
        inner.order.push_back(id.to_owned());
        inner.ended.insert(id.to_owned(), Ended { user, h });
    }

    /// Resumable sessions held now (connected or hibernating).
    pub fn live(&self) -> usize {
        self.inner.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0198_5_ids_are_unguessable_and_name_their_node() {
        let r = Resumptions::new("node-a", 2);
        let (a, b) = (r.new_id(), r.new_id());
        assert_ne!(a, b);
        assert_eq!(Resumptions::node_of(&a), Some("node-a"));
        // 128 bits of hex before the node.
        assert_eq!(a.split_once('.').map(|(r, _)| r.len()), Some(32));
    }
}
