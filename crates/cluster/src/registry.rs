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

/// The local view of the registry, rebuilt by a list and kept by a watch.
#[derive(Debug, Default)]
pub struct Cache {
    revision: i64,
    nodes: BTreeMap<String, NodeInfo>,
    /// bare JID → resource → entry.
    sessions: HashMap<String, BTreeMap<String, SessionEntry>>,
}

impl Cache {
    /// The etcd revision the cache reflects; a watch resumes at `revision() + 1`.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Replaces everything with a fresh list taken at `revision` (after start-up, a
    /// reconnect, or a compacted watch).
    pub fn reset(&mut self, layout: &Layout, kvs: Vec<(String, Vec<u8>)>, revision: i64) {
        self.nodes.clear();
        self.sessions.clear();
        for (key, value) in kvs {
            self.put(layout, &key, &value);
        }
        self.revision = revision;
    }

    /// Applies watch events of `revision`. Events at or below the cache's revision were
    /// already seen (a re-list overtook the watch) and are ignored.
    pub fn apply(&mut self, layout: &Layout, changes: &[Change], revision: i64) {
        if revision <= self.revision {
            return;
        }
        for change in changes {
            match change {
                Change::Put { key, value } => self.put(layout, key, value),
                Change::Delete { key } => self.delete(layout, key),
            }
        }
        self.revision = revision;
    }

    fn put(&mut self, layout: &Layout, key: &str, value: &[u8]) {
        match layout.parse(key) {
            Some(Key::Node(id)) => {
                if let Ok(info) = serde_json::from_slice(value) {
                    self.nodes.insert(id.to_owned(), info);
                }
            }
            Some(Key::Session { bare, resource }) => {
                if let Ok(entry) = serde_json::from_slice(value) {
                    self.sessions
                        .entry(bare.to_owned())
                        .or_default()
                        .insert(resource.to_owned(), entry);
                }
            }
            None => {}
        }
    }

    fn delete(&mut self, layout: &Layout, key: &str) {
        match layout.parse(key) {
            Some(Key::Node(id)) => {
                self.nodes.remove(id);
            }
            Some(Key::Session { bare, resource }) => {
                if let Some(list) = self.sessions.get_mut(bare) {
                    list.remove(resource);
                    if list.is_empty() {
                        self.sessions.remove(bare);
                    }
                }
            }
            None => {}
        }
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
            r#"{"node":"n1","session":7,"priority":0,"available":true,"interested":false}"#
        );
    }
}
