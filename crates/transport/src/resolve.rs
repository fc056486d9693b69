//! Where a remote XMPP server is (RFC 6120 §3.2 with XEP-0368): the first step of an
//! outgoing server-to-server connection.
//!
//! A static route from the configuration wins (private federations, tests). Otherwise the
//! domain's SRV records for `_xmpps-server._tcp` (TLS from the first byte) and
//! `_xmpp-server._tcp` (STARTTLS) are merged and ordered by RFC 2782 — lowest priority
//! first, weighted random order within a priority, direct TLS first on a tie (XEP-0368 §3) —
//! and a target of `.` means the domain offers no XMPP service (RFC 2782, RFC 6120
//! §3.2.1 step 2). With no SRV records at all (or an SRV query that fails) the domain itself
//! on port 5269 is the fallback (§3.2.2). DNS is asked through hickory-resolver, with the system's name servers
//! or the ones given.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// The port of RFC 6120 §3.2.2's fallback.
pub const DEFAULT_S2S_PORT: u16 = 5269;

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// TLS from the first byte (`_xmpps-server`, XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
}

/// Why a domain cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Its SRV records say it offers no XMPP service (a target of `.`).
    #[error("{0} offers no XMPP server-to-server service (SRV target '.')")]
    NoService(String),
    /// DNS failed or knows nothing of it.
    #[error("cannot resolve {domain}: {reason}")]
    Dns {
        /// The domain.
        domain: String,
        /// What the resolver said.
        reason: String,
    },
}

/// An SRV record, as far as ordering needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower first.
    pub priority: u16,
    /// Share within its priority.
    pub weight: u16,
    /// The target host (`.` for none).
    pub target: String,
    /// Its port.
    pub port: u16,
    /// From `_xmpps-server` (direct TLS).
    pub direct_tls: bool,
}

/// RFC 2782 order: by priority; within one, records of weight 0 first, then a weighted
/// random draw (`pick(total)` returns a number in `0..=total`); direct TLS before STARTTLS
/// on equal priority (XEP-0368 §3). Records with the target `.` are dropped (the caller
/// checks for them first).
pub fn order(mut records: Vec<Srv>, mut pick: impl FnMut(u32) -> u32) -> Vec<Target> {
    records.retain(|r| r.target != ".");
    records.sort_by_key(|r| (r.priority, !r.direct_tls, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records;
    while !rest.is_empty() {
        let (priority, tls) = (rest[0].priority, rest[0].direct_tls);
        let split = rest
            .iter()
            .position(|r| (r.priority, r.direct_tls) != (priority, tls))
            .unwrap_or(rest.len());
        let mut group: Vec<Srv> = rest.drain(..split).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = pick(total).min(total);
            let mut running = 0;
            let i = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            let r = group.remove(i);
            out.push(Target {
                host: r.target.trim_end_matches('.').to_owned(),
                port: r.port,
                direct_tls: r.direct_tls,
            });
        }
    }
    out
}

/// Finds remote servers.
pub struct S2sResolver {
    dns: TokioResolver,
    routes: HashMap<String, Vec<Target>>,
}

impl std::fmt::Debug for S2sResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sResolver")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl S2sResolver {
    /// A resolver asking `name_servers` (the system's when empty), with static `routes`
    /// (domain, lowercase → where to connect, tried in order).
    pub fn new(
        name_servers: &[SocketAddr],
        routes: HashMap<String, Vec<Target>>,
    ) -> Result<S2sResolver, ResolveError> {
        let failed = |e: &dyn std::fmt::Display| ResolveError::Dns {
            domain: "(resolver set-up)".into(),
            reason: e.to_string(),
        };
        let builder = if name_servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| failed(&e))?
        } else {
            let servers = name_servers
                .iter()
                .map(|addr| {
                    let conn = |mut c: ConnectionConfig| {
                        c.port = addr.port();
                        c
                    };
                    NameServerConfig::new(
                        addr.ip(),
                        true,
                        vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let dns = builder.build().map_err(|e| failed(&e))?;
        Ok(S2sResolver { dns, routes })
    }

    /// Where to try to reach `domain`'s server, in order.
    pub async fn targets(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        if let Some(route) = self.routes.get(domain) {
            return Ok(route.clone());
        }
        let mut records = Vec::new();
        for (service, direct_tls) in [("_xmpps-server._tcp", true), ("_xmpp-server._tcp", false)] {
            let name = format!("{service}.{domain}.");
            match self.dns.srv_lookup(name.as_str()).await {
                Ok(lookup) => records.extend(lookup.answers().iter().filter_map(|r| {
                    let RData::SRV(srv) = &r.data else {
                        return None;
                    };
                    Some(Srv {
                        priority: srv.priority,
                        weight: srv.weight,
                        target: srv.target.to_ascii(),
                        port: srv.port,
                        direct_tls,
                    })
                })),
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => {}
                // RFC 6120 §3.2.1: an SRV query that fails is as if there were none: the
                // fallback below still has its chance.
                Err(e) => {
                    tracing::debug!(%domain, service, error = %e, "SRV lookup failed");
                }
            }
        }
        if !records.is_empty() && records.iter().all(|r| r.target == ".") {
            return Err(ResolveError::NoService(domain.to_owned()));
        }
        if records.is_empty() {
            // RFC 6120 §3.2.2: no SRV records: the domain itself, on the default port.
            return Ok(vec![Target {
                host: domain.to_owned(),
                port: DEFAULT_S2S_PORT,
                direct_tls: false,
            }]);
        }
        Ok(order(records, |total| {
            if total == 0 {
                0
            } else {
                rand::random::<u32>() % (total + 1)
            }
        }))
    }

    /// The addresses of a target's host (itself, when it is an IP address).
    pub async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, ResolveError> {
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, target.port)]);
        }
        let name = format!("{}.", target.host);
        let found = self
            .dns
            .lookup_ip(name.as_str())
            .await
            .map_err(|e| ResolveError::Dns {
                domain: target.host.clone(),
                reason: e.to_string(),
            })?;
        Ok(found
            .iter()
            .map(|ip| SocketAddr::new(ip, target.port))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str, direct_tls: bool) -> Srv {
        Srv {
            priority,
            weight,
            target: target.into(),
            port: 5269,
            direct_tls,
        }
    }

    fn hosts(t: &[Target]) -> Vec<&str> {
        t.iter().map(|t| t.host.as_str()).collect()
    }

    /// RFC 2782: lower priority first, whatever the weights; XEP-0368 §3: direct TLS first
    /// on a tie; trailing dots dropped.
    #[test]
    fn rfc2782_lower_priority_first_and_xep0368_direct_tls_first_on_a_tie() {
        let t = order(
            vec![
                srv(20, 100, "c.example.", false),
                srv(10, 0, "b.example.", false),
                srv(10, 0, "a.example.", true),
            ],
            |_| 0,
        );
        assert_eq!(hosts(&t), ["a.example", "b.example", "c.example"]);
        assert!(t[0].direct_tls && !t[1].direct_tls);
    }

    /// RFC 2782: within a priority, the draw picks the first record whose running sum of
    /// weights reaches it; weight-0 records come first in the list so that they are picked
    /// only on a draw of 0 or when nothing else is left.
    #[test]
    fn rfc2782_weighted_order_within_a_priority() {
        let records = vec![
            srv(10, 60, "heavy.example.", false),
            srv(10, 0, "zero.example.", false),
            srv(10, 40, "light.example.", false),
        ];
        // Draws: 100 of 100 → the last of the running sums (light); then 60 of 60 → heavy.
        let mut draws = vec![100, 60, 0].into_iter();
        let t = order(records.clone(), |_| draws.next().unwrap());
        assert_eq!(
            hosts(&t),
            ["light.example", "heavy.example", "zero.example"]
        );
        // A draw of 0 takes the weight-0 record first.
        let t = order(records, |_| 0);
        assert_eq!(hosts(&t)[0], "zero.example");
    }

    #[test]
    fn rfc2782_a_dot_target_is_dropped() {
        let t = order(
            vec![srv(0, 0, ".", false), srv(5, 0, "x.example.", false)],
            |_| 0,
        );
        assert_eq!(hosts(&t), ["x.example"]);
    }

    /// A static route wins over DNS and is tried in its order.
    #[tokio::test]
    async fn a_static_route_wins() {
        let route = vec![
            Target {
                host: "127.0.0.1".into(),
                port: 15269,
                direct_tls: false,
            },
            Target {
                host: "127.0.0.2".into(),
                port: 15270,
                direct_tls: true,
            },
        ];
        let r = S2sResolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            HashMap::from([("example.org".to_owned(), route.clone())]),
        )
        .unwrap();
        assert_eq!(r.targets("example.org").await.unwrap(), route);
        assert_eq!(
            r.addresses(&route[0]).await.unwrap(),
            ["127.0.0.1:15269".parse::<SocketAddr>().unwrap()]
        );
    }
}
