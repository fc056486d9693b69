//! The registry writer: this node's claims, presence-flag updates and releases, serialized
//! on one task. Claims of a login storm go in one transaction; updates and releases are
//! coalesced into one transaction per batch, each guarded by the value this node last wrote.

use super::*;

/// A write the node asks of the registry writer.
pub(super) enum WriteOp {
    Claim {
        jid: FullJid,
        session: SessionId,
        policy: ResourceConflict,
        reply: oneshot::Sender<ClaimOutcome>,
    },
    Claimed {
        key: (String, String),
        entry: SessionEntry,
    },
    Update {
        key: (String, String),
        session: u64,
        flags: SessionFlags,
    },
    Release {
        key: (String, String),
        session: u64,
    },
    Reset,
}

/// Whom a claim may take a full JID from when another session holds it.
#[derive(Clone, Copy)]
pub(super) enum Holder<'a> {
    /// A bind: the resource-conflict policy decides (our own stale key is always taken).
    Policy(ResourceConflict),
    /// A resumed session (XEP-0198 §5): only from this very session on node `from`, and
    /// without telling it to close (it handed itself over).
    Adopt { from: &'a str },
}

/// Guarded take-overs tried before a claim gives up: each retry follows a holder that
/// rewrote its entry in between (a batched flags update).
const TAKE_OVER_TRIES: usize = 5;

impl Node {
    /// The entry a claim writes: this node, `session`, no flags yet.
    fn fresh_entry(&self, session: SessionId) -> SessionEntry {
        SessionEntry {
            node: self.me.to_string(),
            session: session.0,
            priority: 0,
            available: false,
            interested: false,
            carbons: false,
        }
    }

    async fn claim_now(&self, jid: &FullJid, session: SessionId, may: Holder<'_>) -> ClaimOutcome {
        if self.fenced.load(Ordering::Acquire) || self.stopping.load(Ordering::Acquire) {
            return ClaimOutcome::Unavailable;
        }
        let Some(reg) = self.current() else {
            return ClaimOutcome::Unavailable;
        };
        let (bare, resource) = key_of(jid);
        let entry = self.fresh_entry(session);
        for _ in 0..TAKE_OVER_TRIES {
            self.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
            let (holder, raw) = match reg.claim(&bare, &resource, &entry).await {
                Ok(Claim::Won) => return self.claimed(bare, resource, entry),
                Ok(Claim::Taken(holder, raw)) => (holder, raw),
                Err(e) => {
                    self.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "claiming a resource failed");
                    return ClaimOutcome::Unavailable;
                }
            };
            // Our own key (a local session this bind already replaced, or one whose release
            // is still queued): the local table has decided, take it.
            let ours = *holder.node == *self.me;
            let (take, tell) = match may {
                Holder::Policy(policy) => (ours || policy == ResourceConflict::KickOld, !ours),
                Holder::Adopt { from } => {
                    (holder.node == from && holder.session == session.0, false)
                }
            };
            if !take {
                return ClaimOutcome::Taken;
            }
            self.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
            match reg.take_over(&bare, &resource, &raw, &entry).await {
                Ok(true) => {
                    if tell {
                        // RFC 6120 §7.7.2.2: the old session is told why it goes.
                        let _ = self.send_to(
                            &holder.node,
                            Body::Close {
                                jid: jid.to_string(),
                                session: holder.session,
                                reason: RemoteClose::Error {
                                    condition: "conflict".into(),
                                    text: Some(
                                        "replaced by a new connection for the same resource".into(),
                                    ),
                                },
                                status: None,
                            },
                        );
                    }
                    return self.claimed(bare, resource, entry);
                }
                // Changed meanwhile: look again.
                Ok(false) => continue,
                Err(e) => {
                    self.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "taking a resource over failed");
                    return ClaimOutcome::Unavailable;
                }
            }
        }
        ClaimOutcome::Taken
    }

    /// Moves the claim on `jid` from session `session` on node `from` to the same session
    /// on this node (a client resumed it here, XEP-0198 §5), in one transaction guarded by
    /// the holder's value: false when the claim is anyone else's by now. A claim released
    /// meanwhile (the old node's lease ran out) is simply ours.
    pub async fn adopt_session(&self, jid: &FullJid, session: SessionId, from: &str) -> bool {
        self.claim_now(jid, session, Holder::Adopt { from }).await == ClaimOutcome::Won
    }

    fn claimed(&self, bare: String, resource: String, entry: SessionEntry) -> ClaimOutcome {
        let _ = self.writes.send(WriteOp::Claimed {
            key: (bare, resource),
            entry,
        });
        ClaimOutcome::Won
    }
}

/// Batches of at most this many keys per transaction (etcd's default limit is 128 ops).
const MAX_BATCH: usize = 64;

/// How long the writer lingers for more work once it sees a burst.
const LINGER: Duration = Duration::from_millis(5);

fn drain(rx: &mut mpsc::UnboundedReceiver<WriteOp>, ops: &mut Vec<WriteOp>) {
    while ops.len() < 4 * MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
}

type ClaimReq = (
    FullJid,
    SessionId,
    ResourceConflict,
    oneshot::Sender<ClaimOutcome>,
);

/// Claims in one transaction when several fresh keys are asked at once (a login storm):
/// every key must be absent, else nothing is written and each claim runs on its own, where
/// the conflict policy applies.
async fn claim_batch(
    node: &Arc<Node>,
    reg: Option<&EtcdRegistry>,
    claims: Vec<ClaimReq>,
    held: &mut HashMap<(String, String), SessionEntry>,
) {
    let unavailable = node.fenced.load(Ordering::Acquire) || node.stopping.load(Ordering::Acquire);
    let Some(reg) = reg.filter(|_| !unavailable) else {
        for (.., reply) in claims {
            let _ = reply.send(ClaimOutcome::Unavailable);
        }
        return;
    };
    let entry = |session: SessionId| node.fresh_entry(session);
    let mut claims = claims;
    let mut alone = Vec::new();
    while !claims.is_empty() {
        let rest = claims.split_off(claims.len().min(MAX_BATCH));
        let chunk = std::mem::replace(&mut claims, rest);
        let keys: Vec<(String, String)> = chunk.iter().map(|c| key_of(&c.0)).collect();
        let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
        if chunk.len() < 2 || !distinct {
            alone.extend(chunk);
            continue;
        }
        let batch: Vec<(String, String, SessionEntry)> = chunk
            .iter()
            .zip(keys)
            .map(|(c, (b, r))| (b, r, entry(c.1)))
            .collect();
        node.metrics.etcd_claims.fetch_add(1, Ordering::Relaxed);
        match reg.claim_all(&batch).await {
            Ok(true) => {
                for ((b, r, e), (.., reply)) in batch.into_iter().zip(chunk) {
                    held.insert((b, r), e);
                    let _ = reply.send(ClaimOutcome::Won);
                }
            }
            // Some key exists (or etcd failed): each claim on its own, with its policy.
            _ => alone.extend(chunk),
        }
    }
    let claims = alone;
    for (jid, session, policy, reply) in claims {
        let node = node.clone();
        tokio::spawn(async move {
            let _ = reply.send(node.claim_now(&jid, session, Holder::Policy(policy)).await);
        });
    }
}

/// Serializes this node's updates and releases, coalescing each batch into one transaction.
pub(super) async fn writer(node: Weak<Node>, mut rx: mpsc::UnboundedReceiver<WriteOp>) {
    // What this node last wrote for each key it holds.
    let mut held: HashMap<(String, String), SessionEntry> = HashMap::new();
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut ops = vec![first];
        drain(&mut rx, &mut ops);
        if ops.len() > 1 {
            // A storm: a moment more gathers a bigger batch. A lone login waits for nothing.
            tokio::time::sleep(LINGER).await;
            drain(&mut rx, &mut ops);
        }
        let Some(node) = node.upgrade() else {
            return;
        };
        let reg = node.current();
        let mut claims = Vec::new();
        // key → (previous value, new value or None for a delete)
        let mut changes: HashMap<(String, String), (SessionEntry, Option<SessionEntry>)> =
            HashMap::new();
        for op in ops {
            match op {
                WriteOp::Claim {
                    jid,
                    session,
                    policy,
                    reply,
                } => claims.push((jid, session, policy, reply)),
                WriteOp::Reset => {
                    held.clear();
                    changes.clear();
                }
                WriteOp::Claimed { key, entry } => {
                    changes.remove(&key);
                    held.insert(key, entry);
                }
                WriteOp::Update {
                    key,
                    session,
                    flags,
                } => {
                    let Some(cur) = held.get(&key).filter(|e| e.session == session) else {
                        continue;
                    };
                    let mut next = cur.clone();
                    next.priority = flags.priority;
                    next.available = flags.available;
                    next.interested = flags.interested;
                    next.carbons = flags.carbons;
                    let prev = changes
                        .remove(&key)
                        .map_or_else(|| cur.clone(), |(prev, _)| prev);
                    held.insert(key.clone(), next.clone());
                    changes.insert(key, (prev, Some(next)));
                }
                WriteOp::Release { key, session } => {
                    if held.get(&key).is_none_or(|e| e.session != session) {
                        continue;
                    }
                    let cur = held.remove(&key).expect("checked above");
                    let prev = changes.remove(&key).map_or(cur, |(prev, _)| prev);
                    changes.insert(key, (prev, None));
                }
            }
        }
        if !claims.is_empty() {
            claim_batch(&node, reg.as_deref(), claims, &mut held).await;
        }
        if changes.is_empty() {
            continue;
        }
        let Some(reg) = reg else {
            continue;
        };
        let changes: Vec<_> = changes.into_iter().collect();
        for chunk in changes.chunks(MAX_BATCH) {
            node.metrics.etcd_batches.fetch_add(1, Ordering::Relaxed);
            node.metrics
                .etcd_batched_keys
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            match reg.write_batch(chunk).await {
                Ok(true) => {}
                Ok(false) => {
                    // Some key changed hands (kick_old from another node): one by one, so
                    // that only the lost keys are skipped.
                    for one in chunk {
                        node.metrics.etcd_batches.fetch_add(1, Ordering::Relaxed);
                        if let Ok(false) = reg.write_batch(std::slice::from_ref(one)).await {
                            if one.1 .1.is_some() {
                                held.remove(&one.0);
                            }
                        }
                    }
                }
                Err(e) => {
                    node.metrics.etcd_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, keys = chunk.len(), "registry batch write failed");
                }
            }
        }
    }
}
