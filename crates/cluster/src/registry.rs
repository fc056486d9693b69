//! The cluster registry in etcd: its key layout, its values, and the local cache a watch
//! keeps.
//!
//! Layout under a cluster prefix (e.g. `/parley/<cluster>`):
//! - `…/nodes/<node id>` → [`NodeInfo`], under the node's lease;
//! - `…/sessions/<bare JID>/<resource>` → [`SessionEntry`], one key per bound resource, under
//!   the owning node's lease (so a dead node's sessions vanish with its lease).
//!
//! Values are JSON so that an operator can read them with `etcdctl get --prefix`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A node as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Where its node link listens (`peer_advertise`).
    pub addr: String,
    /// Its software version.
    pub version: String,
    /// When it started (unix milliseconds).
    pub started_ms: i64,
}

/// A bound resource as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// The node that owns the session.
    pub node: String,
    /// The session id on that node.
    pub session: u64,
    /// Presence priority (RFC 6121 §4.7.2.3).
    pub priority: i8,
    /// Sent initial presence.
    pub available: bool,
    /// Asked for the roster.
    pub interested: bool,
    /// XEP-0280 carbons enabled.
    #[serde(default)]
    pub carbons: bool,
}

/// What a registry key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `…/nodes/<id>`.
    Node(&'a str),
    /// `…/sessions/<bare>/<resource>`.
    Session {
        /// The bare JID.
        bare: &'a str,
        /// The resource (may itself contain `/`).
        resource: &'a str,
    },
}

/// Key construction and parsing for one cluster prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout under `prefix` (no trailing slash).
    pub fn new(prefix: impl Into<String>) -> Layout {
        Layout {
            prefix: prefix.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The prefix of everything of this cluster.
    pub fn prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The key of a node.
    pub fn node(&self, id: &str) -> String {
        format!("{}/nodes/{id}", self.prefix)
    }

    /// The prefix of all nodes.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// The key of a bound resource.
    pub fn session(&self, bare: &str, resource: &str) -> String {
        format!("{}/sessions/{bare}/{resource}", self.prefix)
    }

    /// The prefix of all sessions.
    pub fn sessions(&self) -> String {
        format!("{}/sessions/", self.prefix)
    }

    /// What `key` names, if it is one of ours.
    pub fn parse<'a>(&self, key: &'a str) -> Option<Key<'a>> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        if let Some(id) = rest.strip_prefix("nodes/") {
            return (!id.is_empty() && !id.contains('/')).then_some(Key::Node(id));
        }
        let rest = rest.strip_prefix("sessions/")?;
        let (bare, resource) = rest.split_once('/')?;
        (!bare.is_empty() && !resource.is_empty()).then_some(Key::Session { bare, resource })
    }
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key was written.
    Put {
        /// The key.
        key: String,
        /// Its JSON value.
        value: Vec<u8>,
    },
    /// A key was deleted (or its lease expired).
    Delete {
        /// The key.
        key: String,
    },
}

/// What changed in the cache, for the node to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The set of live nodes changed (user ownership may have moved).
    NodesChanged,
    /// A bound resource disappeared from the registry.
    SessionRemoved {
        /// Its bare JID.
        bare: String,
        /// Its resource.
        resource: String,
        /// What the registry held for it.
        entry: SessionEntry,
    },
}

/// The local view of the registry, rebuilt by a list and kept by a watch.
#[derive(Debug, Default)]
pub struct Cache {
    revision: i64,
    nodes: BTreeMap<String, NodeInfo>,
    /// bare JID → resource → entry.
    sessions: HashMap<String, BTreeMap<String, SessionEntry>>,
    /// A test's fault point ([`ClusterSettings::stale_owners`]): a session's move to
    /// another node is never applied.
    ///
    /// [`ClusterSettings::stale_owners`]: crate::node::ClusterSettings::stale_owners
    stale_owners: bool,
}

impl Cache {
    /// An empty cache that never applies a session's move to another node (a test's fault
    /// point: the view of a node whose watch trails behind).
    pub fn with_stale_owners() -> Cache {
        Cache {
            stale_owners: true,
            ..Cache::default()
        }
    }

    /// The etcd revision the cache reflects; a watch resumes at `revision() + 1`.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Replaces everything with a fresh list taken at `revision` (after start-up, a
    /// reconnect, or a compacted watch).
    /// Returns what the re-list removed, as if the watch had seen it.
    pub fn reset(
        &mut self,
        layout: &Layout,
        kvs: Vec<(String, Vec<u8>)>,
        revision: i64,
    ) -> Vec<Event> {
        let old_nodes = std::mem::take(&mut self.nodes);
        let old_sessions = std::mem::take(&mut self.sessions);
        for (key, value) in kvs {
            self.put(layout, &key, &value);
        }
        self.revision = revision;
        let mut events = Vec::new();
        if old_nodes.keys().ne(self.nodes.keys()) {
            events.push(Event::NodesChanged);
        }
        for (bare, list) in old_sessions {
            for (resource, entry) in list {
                let now = self.lookup(&bare, &resource);
                if now.is_none_or(|e| e.node != entry.node || e.session != entry.session) {
                    events.push(Event::SessionRemoved {
                        bare: bare.clone(),
                        resource,
                        entry,
                    });
                }
            }
        }
        events
    }

    /// Applies watch events of `revision`. Events at or below the cache's revision were
    /// already seen (a re-list overtook the watch) and are ignored.
    /// Returns what changed.
    pub fn apply(&mut self, layout: &Layout, changes: &[Change], revision: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if revision <= self.revision {
            return events;
        }
        let mut nodes_changed = false;
        for change in changes {
            match change {
                Change::Put { key, value } => {
                    nodes_changed |= self.put(layout, key, value);
                }
                Change::Delete { key } => {
                    nodes_changed |= self.delete(layout, key, &mut events);
                }
            }
        }
        if nodes_changed {
            events.insert(0, Event::NodesChanged);
        }
        self.revision = revision;
        events
    }

    /// Returns whether the node set changed.
    fn put(&mut self, layout: &Layout, key: &str, value: &[u8]) -> bool {
        match layout.parse(key) {
            Some(Key::Node(id)) => {
                if let Ok(info) = serde_json::from_slice(value) {
                    return self.nodes.insert(id.to_owned(), info).is_none();
                }
            }
            Some(Key::Session { bare, resource }) => {
                if let Ok(entry) = serde_json::from_slice::<SessionEntry>(value) {
                    let list = self.sessions.entry(bare.to_owned()).or_default();
                    let moved = list.get(resource).is_some_and(|old| old.node != entry.node);
                    if !(self.stale_owners && moved) {
                        list.insert(resource.to_owned(), entry);
                    }
                }
            }
            None => {}
        }
        false
    }

    fn delete(&mut self, layout: &Layout, key: &str, events: &mut Vec<Event>) -> bool {
        match layout.parse(key) {
            Some(Key::Node(id)) => return self.nodes.remove(id).is_some(),
            Some(Key::Session { bare, resource }) => {
                if let Some(list) = self.sessions.get_mut(bare) {
                    if let Some(entry) = list.remove(resource) {
                        events.push(Event::SessionRemoved {
                            bare: bare.to_owned(),
                            resource: resource.to_owned(),
                            entry,
                        });
                    }
                    if list.is_empty() {
                        self.sessions.remove(bare);
                    }
                }
            }
            None => {}
        }
        false
    }

    /// Whether `node` is a live member.
    pub fn has_node(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// Every bound resource cluster-wide: (bare JID, resource, entry), sorted.
    pub fn all_sessions(&self) -> Vec<(&str, &str, &SessionEntry)> {
        let mut out: Vec<_> = self
            .sessions
            .iter()
            .flat_map(|(b, m)| m.iter().map(move |(r, e)| (b.as_str(), r.as_str(), e)))
            .collect();
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out
    }

    /// Approximate heap bytes the session entries take (keys, values, map overhead), for
    /// the compactness figure the benchmarks report.
    pub fn approx_session_bytes(&self) -> usize {
        let per_map_entry = 3 * std::mem::size_of::<usize>();
        self.sessions
            .iter()
            .map(|(bare, list)| {
                bare.capacity()
                    + per_map_entry
                    + std::mem::size_of::<BTreeMap<String, SessionEntry>>()
                    + list
                        .iter()
                        .map(|(r, e)| {
                            r.capacity()
                                + e.node.capacity()
                                + std::mem::size_of::<(String, SessionEntry)>()
                                + per_map_entry
                        })
                        .sum::<usize>()
            })
            .sum()
    }

    /// Who owns a full JID.
    pub fn lookup(&self, bare: &str, resource: &str) -> Option<&SessionEntry> {
        self.sessions.get(bare)?.get(resource)
    }

    /// All bound resources of a user, cluster-wide.
    pub fn resources(&self, bare: &str) -> impl Iterator<Item = (&str, &SessionEntry)> {
        self.sessions
            .get(bare)
            .into_iter()
            .flat_map(|m| m.iter().map(|(r, e)| (r.as_str(), e)))
    }

    /// The live nodes.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &NodeInfo)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of bound resources cluster-wide.
    pub fn session_count(&self) -> usize {
        self.sessions.values().map(BTreeMap::len).sum()
    }
}

/// The JSON value of an entry, as written to etcd.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("/parley/test/")
    }

    fn entry(node: &str, session: u64) -> SessionEntry {
        SessionEntry {
            node: node.into(),
            session,
            priority: 0,
            available: true,
            interested: false,
            carbons: false,
        }
    }

    fn info() -> NodeInfo {
        NodeInfo {
            addr: "127.0.0.1:7400".into(),
            version: "0".into(),
            started_ms: 0,
        }
    }

    #[test]
    fn keys_round_trip_and_resources_may_contain_slashes() {
        let l = layout();
        assert_eq!(l.node("n1"), "/parley/test/nodes/n1");
        assert_eq!(l.parse(&l.node("n1")), Some(Key::Node("n1")));
        let k = l.session("alice@localhost", "phone/1");
        assert_eq!(
            l.parse(&k),
            Some(Key::Session {
                bare: "alice@localhost",
                resource: "phone/1"
            })
        );
        assert_eq!(l.parse("/parley/other/nodes/n1"), None);
        assert_eq!(l.parse("/parley/test/sessions/alice@localhost/"), None);
    }

    #[test]
    fn the_stale_owners_fault_keeps_a_moved_session_on_its_old_node_only() {
        let l = layout();
        let mut c = Cache::with_stale_owners();
        let put = |session: &str, e: SessionEntry| Change::Put {
            key: l.session("a@x", session),
            value: encode(&e),
        };
        c.apply(&l, &[put("r1", entry("n1", 1))], 1);
        // The same node rewriting its entry (presence flags) is applied...
        let mut away = entry("n1", 1);
        away.available = false;
        c.apply(&l, &[put("r1", away)], 2);
        assert_eq!(c.lookup("a@x", "r1").map(|e| e.available), Some(false));
        // ...a move to another node is not.
        c.apply(&l, &[put("r1", entry("n2", 1))], 3);
        assert_eq!(c.lookup("a@x", "r1").map(|e| e.node.as_str()), Some("n1"));
        // A plain cache follows it.
        let mut plain = Cache::default();
        plain.apply(&l, &[put("r1", entry("n1", 1))], 1);
        plain.apply(&l, &[put("r1", entry("n2", 1))], 2);
        assert_eq!(
            plain.lookup("a@x", "r1").map(|e| e.node.as_str()),
            Some("n2")
        );
    }

    #[test]
    fn watch_events_update_the_cache_and_stale_ones_are_ignored() {
        let l = layout();
        let mut c = Cache::default();
        c.reset(
            &l,
            vec![(l.session("a@x", "r1"), encode(&entry("n1", 1)))],
            10,
        );
        assert_eq!(c.lookup("a@x", "r1").map(|e| e.session), Some(1));
        c.apply(
            &l,
            &[Change::Put {
                key: l.session("a@x", "r2"),
                value: encode(&entry("n2", 2)),
            }],
            11,
        );
        assert_eq!(c.resources("a@x").count(), 2);
        // An event from before the list (revision 10) changes nothing.
        c.apply(
            &l,
            &[Change::Delete {
                key: l.session("a@x", "r1"),
            }],
            10,
        );
        assert!(c.lookup("a@x", "r1").is_some());
        c.apply(
            &l,
            &[Change::Delete {
                key: l.session("a@x", "r1"),
            }],
            12,
        );
        assert!(c.lookup("a@x", "r1").is_none());
        assert_eq!(c.revision(), 12);
        assert_eq!(c.session_count(), 1);
    }

    #[test]
    fn a_lost_lease_deletes_every_key_of_the_node() {
        let l = layout();
        let mut c = Cache::default();
        let info = NodeInfo {
            addr: "127.0.0.1:7000".into(),
            version: "0.1.0".into(),
            started_ms: 1,
        };
        c.reset(
            &l,
            vec![
                (l.node("n1"), encode(&info)),
                (l.session("a@x", "r"), encode(&entry("n1", 1))),
            ],
            5,
        );
        assert_eq!(c.nodes().count(), 1);
        c.apply(
            &l,
            &[
                Change::Delete { key: l.node("n1") },
                Change::Delete {
                    key: l.session("a@x", "r"),
                },
            ],
            6,
        );
        assert_eq!(c.nodes().count(), 0);
        assert_eq!(c.session_count(), 0);
    }

    #[test]
    fn values_are_readable_json() {
        let v = String::from_utf8(encode(&entry("n1", 7))).unwrap();
        assert_eq!(
            v,
            r#"{"node":"n1","session":7,"priority":0,"available":true,"interested":false,"carbons":false}"#
        );
    }

    #[test]
    fn events_name_removed_sessions_and_membership_changes() {
        let l = Layout::new("/p");
        let mut c = Cache::default();
        let events = c.reset(
            &l,
            vec![
                (l.node("n1"), encode(&info())),
                (l.session("a@x", "r"), encode(&entry("n1", 1))),
            ],
            5,
        );
        assert_eq!(events, vec![Event::NodesChanged]);
        // The lease of n1 expires: its node key and session key go in one revision.
        let events = c.apply(
            &l,
            &[
                Change::Delete { key: l.node("n1") },
                Change::Delete {
                    key: l.session("a@x", "r"),
                },
            ],
            6,
        );
        assert_eq!(
            events,
            vec![
                Event::NodesChanged,
                Event::SessionRemoved {
                    bare: "a@x".into(),
                    resource: "r".into(),
                    entry: entry("n1", 1),
                }
            ]
        );
        assert!(!c.has_node("n1"));
        // A re-list that lost a session reports it too.
        c.reset(
            &l,
            vec![(l.session("b@x", "r"), encode(&entry("n2", 2)))],
            7,
        );
        let events = c.reset(&l, vec![], 8);
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::SessionRemoved { bare, .. } if bare == "b@x")));
    }
}
