//! Fencing: a node that cannot renew its lease in time stops acting for the cluster before
//! its keys expire, and registers again with a new lease once etcd answers (see the module
//! doc of [`super`] and [`crate::fence`] for the timing).

use super::*;

impl Node {
    async fn fence(&self) {
        if self.fenced.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.fences.fetch_add(1, Ordering::Relaxed);
        self.ready.store(false, Ordering::Release);
        warn!(node = %self.me, "lease not renewed in time: fencing this node");
        self.registry.write().take();
        let _ = self.writes.send(WriteOp::Reset);
        // No two owners of one full JID: our keys are about to expire, so our sessions go
        // first. Their clients reconnect through the load balancer to a healthy node.
        for handle in self.router.all_sessions() {
            handle.close(CloseReason::with_text(
                StreamCondition::Reset,
                "this cluster node lost the cluster registry; please reconnect",
            ));
        }
    }

    async fn rejoin(&self) -> bool {
        match register(&self.settings, &self.layout).await {
            Ok(reg) => {
                let reg = Arc::new(reg);
                if self.load_registry(&reg).await.is_err() {
                    return false;
                }
                *self.registry.write() = Some(reg);
                self.start_sync();
                self.membership_changed();
                self.fenced.store(false, Ordering::Release);
                if !self.stopping.load(Ordering::Acquire) {
                    self.ready.store(true, Ordering::Release);
                }
                info!(node = %self.me, "registered again with a new lease");
                true
            }
            Err(e) => {
                debug!(error = %e, "registering again failed");
                false
            }
        }
    }
}

pub(super) async fn register(
    settings: &ClusterSettings,
    layout: &Layout,
) -> Result<EtcdRegistry, ClusterError> {
    let info = NodeInfo {
        addr: settings.peer_advertise.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_ms: parley_router::now_ms(),
    };
    let ttl = Duration::from_secs(settings.lease_ttl_s.max(1) as u64);
    tokio::time::timeout(
        ttl,
        EtcdRegistry::register(
            &settings.etcd,
            &settings.etcd_access,
            layout.clone(),
            &settings.node_id,
            &info,
            settings.lease_ttl_s,
        ),
    )
    .await
    .map_err(|_| ClusterError::Timeout(settings.etcd.join(",")))?
}

pub(super) async fn fence_loop(node: Weak<Node>) {
    let Some(ttl) = node
        .upgrade()
        .map(|n| Duration::from_secs(n.settings.lease_ttl_s.max(1) as u64))
    else {
        return;
    };
    let fence = Fence::for_ttl(ttl);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(node) = node.upgrade() else {
            return;
        };
        if node.stopping.load(Ordering::Acquire) {
            return;
        }
        match node.current() {
            Some(reg) => {
                if fence.check(reg.since_renewal(), reg.lease_lost()) == Standing::Fenced {
                    node.fence().await;
                }
            }
            None => {
                if !node.rejoin().await {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                }
            }
        }
    }
}
