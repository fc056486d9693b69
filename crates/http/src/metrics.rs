//! `/metrics`: what the node counts, written in the Prometheus text format (version 0.0.4)
//! by `prometheus-client`'s registry and encoder. The full list is in docs/metrics.md.
//!
//! The counters stay where they are counted: relaxed atomics in the router (stanzas,
//! refusals, routing latency), in the session crate (throttled reads) and in the node (etcd,
//! links, fences). Counting a stanza is therefore one atomic add, with no lock and nothing
//! allocated; `prometheus-client`'s own `Histogram` takes a mutex per observation, and its
//! counters live behind an `Arc` that those crates would have to carry. A scrape takes a
//! [`Snapshot`] of the counters and of the gauges the node can tell on the spot (sessions, user
//! actors, readiness, BOSH, the registry cache), registers it as a collector, and the library
//! writes it out: `_total` and unit suffixes, label-value escaping, float formatting and
//! cumulative histogram buckets.
//!
//! `prometheus-client` rather than `metrics` + `metrics-exporter-prometheus`: it is the
//! Prometheus project's own client, its registry is an explicit value (no process-wide
//! recorder that tests would share) and it can write values read at scrape time through its
//! `Collector` trait, which is all this node needs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::AdminState;

/// Every metric name starts with this and an underscore.
const PREFIX: &str = "parley";

/// What one scrape shows, read in one go so that the text is written without holding a lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// This node's id: the `node` label of every sample.
    pub node: String,
    /// Bound components' connections per node (XEP-0114), in the same order as `sessions`.
    pub components: Vec<(String, u64)>,
    /// Authenticated server-to-server streams of this node, both directions (they bind no
    /// JID, so the registry does not show other nodes').
    pub s2s: u64,
    /// Bound client sessions per node: this node's first, then (in a cluster) every other
    /// node as the registry shows it.
    pub sessions: Vec<(String, u64)>,
    /// Running user actors on this node.
    pub user_actors: u64,
    /// Whether the node accepts clients.
    pub ready: bool,
    /// Whether the node is draining now.
    pub draining: bool,
    /// Drains started on this node (0 or 1 in one process: a drain ends with an exit).
    pub drains: u64,
    /// BOSH figures, when the client HTTP listener runs.
    pub bosh: Option<Bosh>,
    /// Stanzas received from clients.
    pub stanzas_in: u64,
    /// Stanzas queued to clients.
    pub stanzas_out: u64,
    /// Refusals by reason, sorted by reason.
    pub refusals: Vec<(&'static str, u64)>,
    /// Times a session stopped reading because of the read-rate limit.
    pub reads_throttled: u64,
    /// Stream Management (XEP-0198).
    pub sm: StreamManagement,
    /// Message archive (XEP-0313): records archived, batches committed, batches failed.
    pub archive: (u64, u64, u64),
    /// The archive's log, where the store keeps one (a SQLite file's).
    pub archive_log: Option<parley_storage::ArchiveLogStatus>,
    /// In-band registrations: accounts created, refused after their checks.
    pub signups: (u64, u64),
    /// HTTP uploads (XEP-0363): stored, refused, bytes stored.
    pub uploads: (u64, u64, u64),
    /// Push notifications sent to app servers (XEP-0357).
    pub pushes: u64,
    /// Multi-user chat (XEP-0045).
    pub muc: crate::metrics_muc::Muc,
    /// Routing latency: per bucket (upper bound in seconds, count in that bucket alone; the
    /// last bound is +Inf) and the sum of all observations in seconds.
    pub routing: (Vec<(f64, u64)>, f64),
    /// Node figures, in a cluster.
    pub cluster: Option<Cluster>,
    /// Connections by (listener, outcome).
    pub connections: Vec<((&'static str, &'static str), u64)>,
    /// SASL outcomes by (mechanism, result).
    pub auth: Vec<((&'static str, &'static str), u64)>,
    /// The process's own figures (Linux).
    pub process: Option<crate::metrics_process::Process>,
}

/// The Stream Management part of a [`Snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamManagement {
    /// Sessions waiting for a resume now.
    pub hibernating: u64,
    /// Stanzas unacknowledged in all queues now.
    pub unacked: u64,
    /// Sessions resumed on this node that it held.
    pub resumes_local: u64,
    /// Sessions resumed on this node that another node held.
    pub resumes_remote: u64,
    /// Resumes answered with `<failed/>`.
    pub resumes_failed: u64,
}

/// The BOSH part of a [`Snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bosh {
    /// BOSH sessions on this node.
    pub sessions: u64,
    /// Bytes of BOSH input held.
    pub pending_bytes: u64,
    /// BOSH HTTP requests being answered.
    pub requests_in_flight: u64,
}

pub use crate::metrics_cluster::Cluster;

pub(crate) fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Snapshot {
    /// Reads everything `/metrics` shows from the node's state and the process counters.
    pub fn take(state: &AdminState) -> Snapshot {
        use parley_router::metrics as m;
        let node = state.node.clone();
        // This node's own sessions only, so that a sum over every node's scrape is the
        // cluster's (the cluster-wide view is the admin API's).
        let (clients, comps) = state.router.session_counts();
        let sessions = vec![(node.clone(), clients as u64)];
        let components = vec![(node.clone(), comps as u64)];
        let (buckets, sum_us) = m::routing_buckets();
        let bounds = m::LATENCY_BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let cluster = state.cluster.as_deref().map(Cluster::take);
        let s2s = state
            .router
            .server_streams()
            .iter()
            .filter(|(_, meta)| meta.auth().is_some())
            .count() as u64;
        Snapshot {
            sessions,
            components,
            s2s,
            user_actors: state.users.running() as u64,
            ready: crate::is_ready(state),
            draining: crate::draining(state),
            drains: load(&m::DRAINS),
            bosh: state.web.as_ref().map(|web| Bosh {
                sessions: web.bosh.len() as u64,
                pending_bytes: web.bosh.pending_bytes() as u64,
                requests_in_flight: web.bosh.requests_in_flight() as u64,
            }),
            stanzas_in: load(&m::STANZAS_IN),
            stanzas_out: load(&m::STANZAS_OUT),
            refusals: m::refusals(),
            reads_throttled: load(&parley_session::limits::READS_THROTTLED),
            archive: (
                load(&m::ARCHIVED),
                load(&m::ARCHIVE_BATCHES),
                load(&m::ARCHIVE_FAILED_BATCHES),
            ),
            archive_log: state.storage.archive_log_status(),
            signups: (load(&m::SIGNUPS), load(&m::SIGNUPS_FAILED)),
            pushes: load(&m::PUSHES),
            muc: crate::metrics_muc::Muc::take(),
            uploads: (
                load(&m::UPLOADS),
                load(&m::UPLOADS_REFUSED),
                load(&m::UPLOAD_BYTES),
            ),
            sm: StreamManagement {
                hibernating: load(&m::SM_HIBERNATING),
                unacked: load(&m::SM_UNACKED),
                resumes_local: load(&m::SM_RESUMES_LOCAL),
                resumes_remote: load(&m::SM_RESUMES_REMOTE),
                resumes_failed: load(&m::SM_RESUMES_FAILED),
            },
            routing: (bounds.zip(buckets).collect(), sum_us as f64 / 1e6),
            cluster,
            connections: m::CONNECTIONS.snapshot(),
            auth: m::AUTH.snapshot(),
            process: crate::metrics_process::Process::read(),
            node,
        }
    }

    /// The exposition text.
    pub fn render(mut self) -> String {
        let process = self.process.take();
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        // Writing into a String cannot fail; an Err could only come from an encoder bug,
        // and a partial page is still better for an operator than none.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        // The standard `process_*` names carry no prefix: a registry of their own.
        if let Some(process) = process {
            let mut plain = Registry::default();
            plain.register_collector(Box::new(crate::metrics_process::ProcessCollector(process)));
            if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &plain)
            {
                tracing::warn!(error = %e, "metrics encoding failed");
            }
        }
        text
    }
}

/// The `/metrics` answer (after the caller has checked `[admin] metrics_auth`).
pub(crate) fn response(state: &AdminState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
        .body(Snapshot::take(state).render())
}

/// One metric family: its help and type, then one sample per label set.
pub(crate) fn family<L, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue + EncodeCounterValue,
{
    let mut metric = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        let mut sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// Samples labelled with this node and one more label.
pub(crate) fn labelled<'a>(
    node: &'a str,
    key: &'static str,
    samples: impl IntoIterator<Item = (&'a str, u64)> + 'a,
) -> impl Iterator<Item = ([(&'static str, &'a str); 2], u64)> + 'a {
    samples
        .into_iter()
        .map(move |(label, value)| ([("node", node), (key, label)], value))
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let node = self.node.as_str();
        let here = |value: u64| std::iter::once(([("node", node)], value));
        family(
            &mut enc,
            "sessions",
            "Bound sessions held by this node, by type (c2s, component; s2s: authenticated server streams); sum over nodes for the cluster.",
            None,
            Gauge,
            self.sessions
                .iter()
                .map(|(n, count)| ([("type", "c2s"), ("node", n.as_str())], *count))
                .chain(
                    self.components
                        .iter()
                        .map(|(n, count)| ([("type", "component"), ("node", n.as_str())], *count)),
                )
                .chain(std::iter::once(([("type", "s2s"), ("node", node)], self.s2s))),
        )?;
        family(
            &mut enc,
            "build_info",
            "The build: its version and the git commit it was built from (always 1).",
            None,
            Gauge,
            std::iter::once((
                {
                    let [version, commit] = crate::metrics_process::build_labels();
                    [("node", node), version, commit]
                },
                1u64,
            )),
        )?;
        family(
            &mut enc,
            "connections",
            "Connections by listener (c2s, c2s_direct_tls, component, s2s, s2s_direct_tls, websocket, bosh) and outcome (accepted, or the refusal's reason).",
            None,
            Counter,
            self.connections.iter().map(|((listener, outcome), n)| {
                ([("node", node), ("listener", *listener), ("result", *outcome)], *n)
            }),
        )?;
        family(
            &mut enc,
            "auth",
            "SASL authentications by mechanism and result (success; failure: a credential check failed; refused: before any credential check; throttled: by the failed-login limits).",
            None,
            Counter,
            self.auth.iter().map(|((mechanism, result), n)| {
                ([("node", node), ("mechanism", *mechanism), ("result", *result)], *n)
            }),
        )?;
        family(
            &mut enc,
            "user_actors",
            "Running user actors on this node.",
            None,
            Gauge,
            here(self.user_actors),
        )?;
        family(
            &mut enc,
            "ready",
            "Whether the node accepts clients.",
            None,
            Gauge,
            here(u64::from(self.ready)),
        )?;
        family(
            &mut enc,
            "draining",
            "Whether the node is draining (refusing new clients, asking its clients to move).",
            None,
            Gauge,
            here(u64::from(self.draining)),
        )?;
        family(
            &mut enc,
            "drains",
            "Drains started on this node (SIGTERM, the admin API or `parley node drain`).",
            None,
            Counter,
            here(self.drains),
        )?;
        family(
            &mut enc,
            "archived_messages",
            "Messages archived (XEP-0313), one per local party.",
            None,
            Counter,
            here(self.archive.0),
        )?;
        family(
            &mut enc,
            "archive_batches",
            "Archive writer transactions, by outcome (a failed one's messages were delivered unarchived).",
            None,
            Counter,
            labelled(
                node,
                "result",
                [("ok", self.archive.1), ("failed", self.archive.2)],
            ),
        )?;
        if let Some(log) = self.archive_log {
            family(
                &mut enc,
                "archive_log_records",
                "Records in the archive's log, not yet merged into the indexed archive (SQLite; at most about [storage] sqlite_archive_log_rows while merges succeed).",
                None,
                Gauge,
                here(log.records),
            )?;
            family(
                &mut enc,
                "archive_log_merges",
                "Merges of the archive's log into the indexed archive, by outcome (a failed one is retried after the next batch).",
                None,
                Counter,
                labelled(
                    node,
                    "result",
                    [("ok", log.merges), ("failed", log.merge_failures)],
                ),
            )?;
            family(
                &mut enc,
                "archive_log_refused_batches",
                "Archive batches refused because the log reached four times [storage] sqlite_archive_log_rows while merges failed (their messages were delivered unarchived).",
                None,
                Counter,
                here(log.refused_batches),
            )?;
        }
        family(
            &mut enc,
            "registrations",
            "Accounts registered in band (XEP-0077), by outcome (failed: name taken, invitation spent, storage).",
            None,
            Counter,
            labelled(
                node,
                "result",
                [("ok", self.signups.0), ("failed", self.signups.1)],
            ),
        )?;
        family(
            &mut enc,
            "uploads",
            "HTTP uploads (XEP-0363) by outcome of their PUT (refused: not a slot, forged or expired, size, type, used, quota, busy, storage).",
            None,
            Counter,
            labelled(
                node,
                "result",
                [("stored", self.uploads.0), ("refused", self.uploads.1)],
            ),
        )?;
        family(
            &mut enc,
            "upload",
            "Bytes of the files stored by HTTP upload (XEP-0363).",
            Some(&Unit::Bytes),
            Counter,
            here(self.uploads.2),
        )?;
        family(
            &mut enc,
            "push_notifications",
            "Push notifications (XEP-0357) sent to app servers.",
            None,
            Counter,
            here(self.pushes),
        )?;
        self.muc.encode(&mut enc, node)?;
        family(
            &mut enc,
            "sm_hibernating_sessions",
            "Sessions whose connection died, waiting for a resume (XEP-0198).",
            None,
            Gauge,
            here(self.sm.hibernating),
        )?;
        family(
            &mut enc,
            "sm_unacked_stanzas",
            "Stanzas sent to clients and not yet acknowledged (XEP-0198), in all queues.",
            None,
            Gauge,
            here(self.sm.unacked),
        )?;
        family(
            &mut enc,
            "sm_resumes",
            "Sessions resumed (XEP-0198 §5), by where the session was held.",
            None,
            Counter,
            labelled(
                node,
                "where",
                [
                    ("local", self.sm.resumes_local),
                    ("remote", self.sm.resumes_remote),
                ],
            ),
        )?;
        family(
            &mut enc,
            "sm_resumes_failed",
            "Resumes answered with <failed/> (unknown, expired or another user's id).",
            None,
            Counter,
            here(self.sm.resumes_failed),
        )?;
        if let Some(b) = &self.bosh {
            family(
                &mut enc,
                "bosh_sessions",
                "BOSH sessions on this node.",
                None,
                Gauge,
                here(b.sessions),
            )?;
            family(
                &mut enc,
                "bosh_pending",
                "Bytes of BOSH input held (bodies read or waiting their turn, input sessions have not read).",
                Some(&Unit::Bytes),
                Gauge,
                here(b.pending_bytes),
            )?;
            family(
                &mut enc,
                "bosh_requests_in_flight",
                "BOSH HTTP requests being answered (held for data, waiting their turn, forwarded).",
                None,
                Gauge,
                here(b.requests_in_flight),
            )?;
        }
        family(
            &mut enc,
            "stanzas_in",
            "Stanzas received from clients.",
            None,
            Counter,
            here(self.stanzas_in),
        )?;
        family(
            &mut enc,
            "stanzas_out",
            "Stanzas queued to clients.",
            None,
            Counter,
            here(self.stanzas_out),
        )?;
        family(
            &mut enc,
            "refusals",
            "Clients and peers turned away by a limit, quota or authentication check, by reason.",
            None,
            Counter,
            labelled(node, "reason", self.refusals.iter().copied()),
        )?;
        family(
            &mut enc,
            "reads_throttled",
            "Times a session stopped reading because it was over [limits] read_bytes_per_s.",
            None,
            Counter,
            here(self.reads_throttled),
        )?;
        let (buckets, sum) = &self.routing;
        enc.encode_descriptor(
            "routing",
            "Time to route one client stanza to its destination.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_family(&[("node", node)])?
        .encode_histogram::<NoLabelSet>(
            *sum,
            buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            None,
        )?;
        match &self.cluster {
            Some(c) => c.encode(&mut enc, node),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_node() -> Snapshot {
        Snapshot {
            node: "n1".into(),
            sessions: vec![("n1".into(), 2)],
            user_actors: 1,
            ready: true,
            drains: 1,
            stanzas_in: 7,
            stanzas_out: 9,
            refusals: vec![("auth_failures_ip", 3), ("c2s_conn_per_ip", 1)],
            reads_throttled: 4,
            archive: (6, 2, 1),
            archive_log: Some(parley_storage::ArchiveLogStatus {
                records: 96,
                merges: 5,
                merge_failures: 2,
                refused_batches: 0,
            }),
            signups: (4, 1),
            uploads: (3, 2, 1000),
            pushes: 7,
            muc: crate::metrics_muc::Muc::default(),
            sm: StreamManagement {
                hibernating: 2,
                unacked: 5,
                resumes_local: 3,
                resumes_remote: 2,
                resumes_failed: 1,
            },
            routing: (
                parley_router::metrics::LATENCY_BOUNDS_US
                    .iter()
                    .map(|us| *us as f64 / 1e6)
                    .chain([f64::INFINITY])
                    .enumerate()
                    .map(|(i, le)| (le, u64::from(i == 1) * 2 + u64::from(i == 10)))
                    .collect(),
                0.25,
            ),
            connections: vec![(("c2s", "accepted"), 5), (("websocket", "conn_per_ip"), 1)],
            auth: vec![(("SCRAM-SHA-256", "failure"), 2)],
            process: Some(crate::metrics_process::Process {
                cpu_seconds: 1.5,
                open_fds: 12,
                ..Default::default()
            }),
            ..Snapshot::default()
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn samples_keep_their_names_and_label_order() {
        let text = single_node().render();
        let l = lines(&text);
        for want in [
            "# TYPE parley_sessions gauge",
            "parley_sessions{type=\"c2s\",node=\"n1\"} 2",
            "parley_user_actors{node=\"n1\"} 1",
            "parley_ready{node=\"n1\"} 1",
            "parley_draining{node=\"n1\"} 0",
            "# TYPE parley_drains_total counter",
            "parley_drains_total{node=\"n1\"} 1",
            "# TYPE parley_stanzas_in_total counter",
            "parley_stanzas_in_total{node=\"n1\"} 7",
            "parley_stanzas_out_total{node=\"n1\"} 9",
            "parley_refusals_total{node=\"n1\",reason=\"auth_failures_ip\"} 3",
            "parley_refusals_total{node=\"n1\",reason=\"c2s_conn_per_ip\"} 1",
            "parley_reads_throttled_total{node=\"n1\"} 4",
            "parley_sm_hibernating_sessions{node=\"n1\"} 2",
            "parley_sm_unacked_stanzas{node=\"n1\"} 5",
            "parley_sm_resumes_total{node=\"n1\",where=\"local\"} 3",
            "parley_sm_resumes_total{node=\"n1\",where=\"remote\"} 2",
            "parley_sm_resumes_failed_total{node=\"n1\"} 1",
            "parley_archived_messages_total{node=\"n1\"} 6",
            "parley_archive_batches_total{node=\"n1\",result=\"ok\"} 2",
            "parley_archive_batches_total{node=\"n1\",result=\"failed\"} 1",
            "parley_archive_log_records{node=\"n1\"} 96",
            "parley_archive_log_merges_total{node=\"n1\",result=\"ok\"} 5",
            "parley_archive_log_merges_total{node=\"n1\",result=\"failed\"} 2",
            "parley_archive_log_refused_batches_total{node=\"n1\"} 0",
            "parley_registrations_total{node=\"n1\",result=\"ok\"} 4",
            "parley_registrations_total{node=\"n1\",result=\"failed\"} 1",
            "parley_uploads_total{node=\"n1\",result=\"stored\"} 3",
            "parley_uploads_total{node=\"n1\",result=\"refused\"} 2",
            "parley_upload_bytes_total{node=\"n1\"} 1000",
            "parley_push_notifications_total{node=\"n1\"} 7",
            "# TYPE parley_routing_seconds histogram",
            "parley_connections_total{node=\"n1\",listener=\"c2s\",result=\"accepted\"} 5",
            "parley_connections_total{node=\"n1\",listener=\"websocket\",result=\"conn_per_ip\"} 1",
            "parley_auth_total{node=\"n1\",mechanism=\"SCRAM-SHA-256\",result=\"failure\"} 2",
            "process_open_fds 12",
            "process_cpu_seconds_total 1.5",
        ] {
            assert!(l.contains(&want), "{want} in\n{text}");
        }
        assert!(
            l.iter()
                .any(|x| x.starts_with("parley_build_info{node=\"n1\",version=\"")),
            "{text}"
        );
        // Nothing of BOSH or the cluster when they do not run.
        assert!(!text.contains("parley_bosh"), "{text}");
        assert!(!text.contains("etcd"), "{text}");
    }

    /// Prometheus `le` semantics: each bucket counts every observation up to its bound, and
    /// the +Inf bucket equals `_count`.
    #[test]
    fn routing_buckets_are_cumulative_and_in_seconds() {
        let text = single_node().render();
        let l = lines(&text);
        for want in [
            "parley_routing_seconds_bucket{node=\"n1\",le=\"1e-05\"} 0",
            "parley_routing_seconds_bucket{node=\"n1\",le=\"2.5e-05\"} 2",
            "parley_routing_seconds_bucket{node=\"n1\",le=\"0.1\"} 2",
            "parley_routing_seconds_bucket{node=\"n1\",le=\"+Inf\"} 3",
            "parley_routing_seconds_sum{node=\"n1\"} 0.25",
            "parley_routing_seconds_count{node=\"n1\"} 3",
        ] {
            assert!(l.contains(&want), "{want} in\n{text}");
        }
        assert_eq!(
            l.iter()
                .filter(|s| s.starts_with("parley_routing_seconds_bucket"))
                .count(),
            parley_router::metrics::LATENCY_BOUNDS_US.len() + 1
        );
    }

    #[test]
    fn bosh_and_cluster_figures_follow_the_naming_convention() {
        let snapshot = Snapshot {
            sessions: vec![("n1".into(), 1), ("n2".into(), 5)],
            bosh: Some(Bosh {
                sessions: 2,
                pending_bytes: 100,
                requests_in_flight: 1,
            }),
            cluster: Some(Cluster {
                etcd_claims: 3,
                etcd_batches: 2,
                etcd_errors: 0,
                etcd_batched_keys: 8,
                links: vec![("n2".into(), true), ("n3".into(), false)],
                frames_out: 11,
                frames_in: 12,
                bounced: 1,
                fences: 0,
                handed_off: 6,
                registry_cache_bytes: 4096,
                registry_sessions: 6,
                registry_sync_failures: 2,
                registry_watch_restarts: 3,
                registry_revision: 42,
            }),
            ..single_node()
        };
        let text = snapshot.render();
        let l = lines(&text);
        for want in [
            "parley_sessions{type=\"c2s\",node=\"n2\"} 5",
            "parley_bosh_sessions{node=\"n1\"} 2",
            "parley_bosh_pending_bytes{node=\"n1\"} 100",
            "parley_bosh_requests_in_flight{node=\"n1\"} 1",
            "parley_etcd_requests_total{node=\"n1\",op=\"claim\"} 3",
            "parley_etcd_requests_total{node=\"n1\",op=\"batch\"} 2",
            "parley_etcd_requests_total{node=\"n1\",op=\"error\"} 0",
            "parley_etcd_batched_keys_total{node=\"n1\"} 8",
            "parley_node_link_up{node=\"n1\",peer=\"n2\"} 1",
            "parley_node_link_up{node=\"n1\",peer=\"n3\"} 0",
            "parley_node_link_frames_total{node=\"n1\",direction=\"out\"} 11",
            "parley_node_link_frames_total{node=\"n1\",direction=\"in\"} 12",
            "parley_node_link_bounced_total{node=\"n1\"} 1",
            "parley_fences_total{node=\"n1\"} 0",
            "parley_user_actors_handed_off_total{node=\"n1\"} 6",
            "# TYPE parley_registry_cache_bytes gauge",
            "parley_registry_cache_bytes{node=\"n1\"} 4096",
            "parley_registry_sessions{node=\"n1\"} 6",
            "parley_registry_sync_failures_total{node=\"n1\"} 2",
            "parley_registry_watch_restarts_total{node=\"n1\"} 3",
            "parley_registry_revision{node=\"n1\"} 42",
        ] {
            assert!(l.contains(&want), "{want} in\n{text}");
        }
    }

    /// A node id is configuration, but the text must stay parseable whatever it holds.
    #[test]
    fn label_values_are_escaped() {
        let snapshot = Snapshot {
            node: "a\"b\\c\nd".into(),
            ..Snapshot::default()
        };
        let text = snapshot.render();
        assert!(
            text.contains("parley_user_actors{node=\"a\\\"b\\\\c\\nd\"} 0"),
            "{text}"
        );
    }

    /// Every family has its help and type, and every sample line is `name{labels} value`
    /// with a name of the family it follows.
    #[test]
    fn every_sample_belongs_to_a_described_family() {
        let text = single_node().render();
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} after {family}");
                let (_, value) = line.rsplit_once(' ').unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
    }
}
