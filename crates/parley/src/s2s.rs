//! Wiring of federation (`[s2s]`): the resolver, the dialer and the outgoing routes, from
//! the configuration. Nothing here runs a stream; it only connects the parts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_rt::ArbiterHandle;
use parley_session::s2s::{S2sRoutes, S2sSettings, SecureDomains};
use parley_transport::resolve::{S2sResolver, Target};
use parley_transport::TcpDialer;
use parley_xml::Limits;

use crate::config::Config;
use crate::server::ServerError;

/// The outgoing routes when federation is on (`[s2s] listen` or `direct_tls` set).
pub(crate) fn routes(
    config: &Config,
    workers: Vec<ArbiterHandle>,
    tls: &parley_transport::TlsSetup,
) -> Result<Option<Arc<S2sRoutes>>, ServerError> {
    let s = &config.s2s;
    if !s.enabled() {
        return Ok(None);
    }
    let err = |what: &str, e: &dyn std::fmt::Display| ServerError::Start(format!("{what}: {e}"));
    let mut static_routes: HashMap<String, Vec<Target>> = HashMap::new();
    for (domain, host, port) in config.s2s_routes() {
        static_routes.entry(domain).or_default().push(Target {
            host,
            port,
            direct_tls: false,
        });
    }
    let resolver = S2sResolver::new(&s.name_servers, static_routes)
        .map_err(|e| err("s2s.name_servers", &e))?;
    let secure = SecureDomains {
        default: s.require_valid_certificates,
        overrides: s
            .require_valid_certificates_for
            .iter()
            .map(|(d, v)| (d.to_ascii_lowercase(), *v))
            .collect(),
    };
    let connect_timeout = Duration::from_secs(s.connect_timeout_s);
    let dialer = TcpDialer::new(
        Arc::new(resolver),
        s.ca_file.as_deref(),
        secure.clone(),
        // Our certificate goes out as a client certificate, for SASL EXTERNAL (XEP-0178).
        Some(tls),
        connect_timeout,
    )
    .map_err(|e| err("s2s.ca_file", &e))?;
    let c2s = &config.c2s;
    let settings = S2sSettings {
        limits: Limits {
            max_stanza_bytes: s.max_stanza_bytes,
            max_depth: c2s.max_depth,
            max_attrs: c2s.max_attributes,
            max_namespace_declarations: c2s.max_namespace_declarations,
        },
        require_encryption: s.require_encryption,
        queue_stanzas: s.queue_stanzas,
        queue_bytes: s.queue_bytes,
        connect_timeout,
        idle_timeout: Duration::from_secs(s.idle_timeout_s),
        max_pending_verifications: s.max_pending_verifications,
        secure_domains: secure,
    };
    Ok(Some(S2sRoutes::new(settings, Arc::new(dialer), workers)))
}

/// The cluster's side of federation: outgoing streams placed on one node per remote
/// domain, stanzas forwarded to it over the node links.
struct ClusterPlacement(Arc<parley_cluster::node::Node>);

impl parley_session::s2s::S2sPlacement for ClusterPlacement {
    fn owner(&self, remote: &str) -> Option<Arc<str>> {
        self.0.domain_owner(remote)
    }

    fn forward(&self, node: &str, stanza: parley_xml::Element) -> Result<(), parley_xml::Element> {
        self.0.forward_to_domain(node, stanza)
    }
}

/// Wires the routes into the cluster: placement one way, forwarded stanzas the other
/// (refused ones bounce to their senders).
pub(crate) fn join_cluster(
    routes: &Arc<S2sRoutes>,
    node: &Arc<parley_cluster::node::Node>,
    router: &Arc<parley_router::Router>,
) {
    routes.set_placement(Arc::new(ClusterPlacement(node.clone())));
    let (routes, router) = (routes.clone(), router.clone());
    node.set_foreign_handler(Arc::new(move |stanza| {
        if let Err(refused) = routes.send_here(stanza) {
            router.bounce(&refused.stanza, refused.error);
        }
    }));
}
