//! The table of this node's BOSH sessions: creation within its bounds, SIDs (naming the
//! owning node in a cluster), the inactivity sweep, and the counts `/metrics` shows.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::sync::Notify;

use super::{BoshSession, Inner, INACTIVITY};
use crate::bosh_limits::{BoshLimits, ByteBudget, CreationRate};

/// The BOSH sessions of this node.
pub struct BoshTable {
    pub(super) sessions: Mutex<HashMap<String, Arc<BoshSession>>>,
    pub(super) limits: BoshLimits,
    /// Bytes of BOSH input held node-wide.
    pub(super) budget: Arc<ByteBudget>,
    /// Session creations per client IP.
    pub(super) rate: CreationRate,
    /// Large bodies being parsed off the HTTP worker.
    pub(super) parsers: tokio::sync::Semaphore,
    /// In a cluster: this node's id (SIDs start with it) and the node, to forward requests
    /// for sessions of other nodes.
    pub(super) cluster: std::sync::OnceLock<Arc<parley_cluster::node::Node>>,
    /// HTTP requests being answered (held, waiting their turn, or forwarded).
    pub(super) in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a request in flight for as long as it lives.
pub(super) struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    pub(super) fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for BoshTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoshTable").finish_non_exhaustive()
    }
}

impl Default for BoshTable {
    fn default() -> Self {
        BoshTable::new(BoshLimits::default())
    }
}

impl BoshTable {
    /// An empty table with these bounds.
    pub fn new(limits: BoshLimits) -> BoshTable {
        BoshTable {
            sessions: Mutex::default(),
            budget: ByteBudget::new(limits.pending_bytes),
            rate: CreationRate::new(&limits),
            parsers: tokio::sync::Semaphore::new(limits.parse_threads),
            limits,
            cluster: std::sync::OnceLock::new(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Bytes of BOSH input held now (bodies read or waiting, input not yet read).
    pub fn pending_bytes(&self) -> usize {
        self.budget.used()
    }

    pub(super) fn get(&self, sid: &str) -> Option<Arc<BoshSession>> {
        self.sessions.lock().get(sid).cloned()
    }

    pub(super) fn remove(&self, sid: &str) {
        if let Some(s) = self.sessions.lock().remove(sid) {
            s.end_input();
        }
    }

    /// Ends sessions idle past the inactivity bound. Called every second.
    pub fn sweep(&self) {
        let idle: Vec<String> = {
            let map = self.sessions.lock();
            map.values()
                .filter(|s| {
                    let i = s.inner.lock();
                    i.held.is_empty()
                        && i.last_request
                            .is_some_and(|t| t.elapsed() > Duration::from_secs(INACTIVITY))
                })
                .map(|s| s.sid.clone())
                .collect()
        };
        for sid in idle {
            self.remove(&sid);
        }
        self.rate.sweep(Instant::now());
    }

    /// Number of BOSH sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// HTTP requests being answered now (for `/metrics`).
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

impl BoshTable {
    /// Joins the table to the cluster: SIDs name their node, and requests for another
    /// node's sessions are forwarded to it over the node link (no sticky balancing needed).
    pub fn set_cluster(&self, node: Arc<parley_cluster::node::Node>) {
        let _ = self.cluster.set(node);
    }

    /// A new session for `host`, expecting RID `next_rid`, registered in the table; None
    /// when the table holds `bosh_max_sessions` already.
    pub(super) fn open(
        &self,
        host: &str,
        next_rid: u64,
        wait: u64,
    ) -> Option<(String, Arc<BoshSession>)> {
        let sid = self.new_sid();
        let session = Arc::new(BoshSession {
            sid: sid.clone(),
            host: host.to_owned(),
            inner: Mutex::new(Inner {
                next_rid,
                wait,
                last_request: Some(Instant::now()),
                ..Inner::default()
            }),
            notify: Notify::new(),
            budget: self.budget.clone(),
        });
        let mut map = self.sessions.lock();
        if map.len() >= self.limits.max_sessions {
            return None;
        }
        map.insert(sid.clone(), session.clone());
        Some((sid, session))
    }

    /// A new SID: 128 random bits, after the owning node's id in a cluster.
    fn new_sid(&self) -> String {
        let mut b = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut b);
        match self.cluster.get() {
            Some(node) => format!("{}.{}", hex(node.id().as_bytes()), hex(&b)),
            None => hex(&b),
        }
    }

    /// The node that owns `sid`, when it is another one.
    pub(super) fn remote_owner(
        &self,
        sid: &str,
    ) -> Option<(Arc<parley_cluster::node::Node>, String)> {
        let node = self.cluster.get()?;
        let (tag, _) = sid.split_once('.')?;
        let bytes: Option<Vec<u8>> = (0..tag.len())
            .step_by(2)
            .map(|i| {
                tag.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        let owner = String::from_utf8(bytes?).ok()?;
        (!node.is_me(&owner)).then(|| (node.clone(), owner))
    }
}
