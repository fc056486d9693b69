//! How the node follows the registry: the watcher applies etcd events to the cache, and a
//! change of the live nodes moves user actors to their new owners and opens or closes links.

use super::*;

impl Node {
    pub(super) async fn watcher(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Vec<Event>>) {
        while let Some(events) = rx.recv().await {
            self.cache_changed.notify_waiters();
            if events.contains(&Event::NodesChanged) {
                self.membership_changed();
            }
            for event in events {
                if let Event::SessionRemoved {
                    bare,
                    resource,
                    entry,
                } = event
                {
                    self.session_removed(bare, resource, entry);
                }
            }
        }
    }

    /// A key vanished. If its node is gone too (lease expired or revoked), the session
    /// ended without a goodbye: the user's owner announces it unavailable.
    fn session_removed(&self, bare: String, resource: String, entry: SessionEntry) {
        if *entry.node == *self.me {
            return;
        }
        let node_alive = self.cache.read().has_node(&entry.node);
        if node_alive {
            // A live node released it; its Detach travels over the link.
            return;
        }
        if self.owner_of(&bare).as_deref() != Some(&*self.me) {
            return;
        }
        let Ok(jid) = BareJid::new(&bare) else {
            return;
        };
        if !self.router.serves(jid.domain().as_str()) {
            // A component's connection (XEP-0114): no user, nobody to tell.
            return;
        }
        debug!(user = %jid, %resource, node = %entry.node, "session of a lost node vanished");
        self.users.vanished(
            &jid,
            Vanished {
                resource,
                session: SessionId(entry.session),
                available: entry.available,
            },
        );
    }

    /// The set of live nodes changed: links follow, user actors move to their new owners.
    pub(super) fn membership_changed(&self) {
        let (new, addrs): (Vec<Arc<str>>, HashMap<String, String>) = {
            let cache = self.cache.read();
            let mut ids: Vec<Arc<str>> = cache.nodes().map(|(id, _)| Arc::from(id)).collect();
            ids.sort();
            let addrs = cache
                .nodes()
                .map(|(id, info)| (id.to_owned(), info.addr.clone()))
                .collect();
            (ids, addrs)
        };
        let old = std::mem::replace(&mut *self.members.write(), new.clone());
        info!(node = %self.me, members = ?new, "cluster membership");
        // Links: one per live peer, at its advertised address.
        let mut given_up = Vec::new();
        {
            // Link tasks run on the links runtime.
            let _links_rt = self.links_rt.handle().enter();
            let mut links = self.links.write();
            links.retain(|id, (addr, link)| {
                let keep = addrs.get(&**id) == Some(addr);
                if !keep {
                    given_up.extend(link.take_queued());
                }
                keep
            });
            for id in new.iter().filter(|id| ***id != *self.me) {
                if links.contains_key(id) {
                    continue;
                }
                let Some(addr) = addrs.get(&**id) else {
                    continue;
                };
                let weak = self.me_weak.clone();
                let link = PeerLink::start(
                    self.link_auth(),
                    id.to_string(),
                    addr.clone(),
                    self.settings.link.clone(),
                    move |body| {
                        if let Some(node) = weak.upgrade() {
                            node.undeliverable(body);
                        }
                    },
                );
                links.insert(id.clone(), (addr.clone(), link));
            }
        }
        for body in given_up {
            self.undeliverable(body);
        }
        if old == new {
            return;
        }
        // Actors whose user now belongs elsewhere leave; local sessions whose user's owner
        // changed attach again (with their state) to the new owner.
        let me = self.me.clone();
        let moved = self.users.hand_off(|jid| {
            owner(jid.as_str(), new.iter().map(|m| &**m)).is_none_or(|o| *o == *me)
        });
        self.metrics
            .handed_off
            .fetch_add(moved as u64, Ordering::Relaxed);
        // A leaving node hands its rooms over itself, waiting for them (`Node::hand_over`).
        let host = self.rooms.read().clone();
        let host = host.filter(|_| !self.leaving.load(Ordering::Acquire));
        if let Some(host) = host {
            let me = self.me.clone();
            host.hand_off(&|room| {
                owner(&super::room_key(room), new.iter().map(|m| &**m)).is_none_or(|o| *o == *me)
            });
        }
        for (jid, handle) in self.router.bound_handles() {
            let bare = jid.to_bare();
            let before = owner(bare.as_str(), old.iter().map(|m| &**m));
            let after = owner(bare.as_str(), new.iter().map(|m| &**m));
            if before != after {
                handle.resync();
            }
        }
    }
}
