//! What to load: server addresses, the transport, the domain, how to authenticate, which
//! users.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parley_proto::sasl::ScramHash;
use serde::{Deserialize, Serialize};

use crate::client::WebCounters;
use crate::scram::ScramCache;
use crate::BenchError;

/// The SASL mechanism the generator authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mech {
    /// SCRAM-SHA-1 (RFC 5802).
    #[serde(rename = "scram-sha-1")]
    #[value(name = "scram-sha-1")]
    ScramSha1,
    /// SCRAM-SHA-256 (RFC 7677).
    #[serde(rename = "scram-sha-256")]
    #[value(name = "scram-sha-256")]
    ScramSha256,
    /// PLAIN (RFC 4616).
    Plain,
}

impl Mech {
    /// The registered SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
            Mech::Plain => "PLAIN",
        }
    }

    /// The SCRAM hash, `None` for PLAIN.
    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mech::ScramSha1 => Some(ScramHash::Sha1),
            Mech::ScramSha256 => Some(ScramHash::Sha256),
            Mech::Plain => None,
        }
    }
}

/// How sessions reach the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Transport {
    /// RFC 6120 over TCP (optionally STARTTLS).
    #[default]
    Tcp,
    /// RFC 7395 XMPP over WebSocket at `path` of the HTTP listener the target addresses name.
    Ws { path: String },
    /// XEP-0206 XMPP over BOSH at `path` of the HTTP listener the target addresses name.
    Bosh { path: String },
}

impl Transport {
    /// `tcp`, `ws` or `bosh`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws { .. } => "ws",
            Transport::Bosh { .. } => "bosh",
        }
    }

    /// The transport called `name`, at `path` or the usual path of Parley and Prosody.
    pub fn parse(name: &str, path: Option<&str>) -> Result<Transport, BenchError> {
        let path = |default: &str| path.unwrap_or(default).to_owned();
        match name {
            "tcp" if path("").is_empty() => Ok(Transport::Tcp),
            "tcp" => Err(BenchError::Options(
                "a path needs --transport ws or bosh".into(),
            )),
            "ws" => Ok(Transport::Ws {
                path: path("/xmpp-websocket"),
            }),
            "bosh" => Ok(Transport::Bosh {
                path: path("/http-bind"),
            }),
            other => Err(BenchError::Options(format!(
                "unknown transport `{other}` (tcp, ws, bosh)"
            ))),
        }
    }
}

/// The server(s) under load and the accounts to use on them.
///
/// Sessions are spread round-robin over `addrs` (several nodes of a cluster, or several
/// listeners) and, when given, over `source_ips` (each source address has its own
/// ephemeral port range, so many of them allow more connections than one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    /// The XMPP domain: `to` of stream headers and the domain part of user JIDs.
    pub domain: String,
    /// Negotiate STARTTLS (RFC 6120 §5) before authenticating.
    pub starttls: bool,
    pub mechanism: Mech,
    /// User K is `{user_prefix}{K}@{domain}`.
    pub user_prefix: String,
    /// The first user number scenarios use.
    pub first_user: usize,
    /// Every user's password. Never printed (see the `Serialize` note on [`TargetEcho`]).
    #[serde(skip_serializing, default)]
    pub password: String,
    /// The server process to sample CPU and RSS of.
    pub server_pid: Option<u32>,
    /// The server's other processes (a cluster's other nodes), metered with it by the
    /// scenarios that report server CPU per operation.
    #[serde(default)]
    pub also_pids: Vec<u32>,
    pub source_ips: Vec<IpAddr>,
    /// Place user K on `addrs[K % len]` instead of round-robin by connection, so that a
    /// scenario decides which node each user sits on (the `cluster` scenario).
    #[serde(default)]
    pub place_by_user: bool,
    /// TCP, WebSocket or BOSH; for the web ones `addrs` are HTTP listeners.
    #[serde(default)]
    pub transport: Transport,
}

impl Target {
    /// Every server process to meter: `server_pid` and `also_pids`.
    pub fn server_pids(&self) -> Vec<u32> {
        self.server_pid
            .into_iter()
            .chain(self.also_pids.iter().copied())
            .collect()
    }

    /// A target with Prosody's benchmark conventions: `user1..userN`, password `pw`,
    /// domain `localhost`, SCRAM-SHA-1 over plain TCP.
    pub fn new(addrs: Vec<SocketAddr>) -> Target {
        Target {
            addrs,
            domain: "localhost".into(),
            starttls: false,
            mechanism: Mech::ScramSha1,
            user_prefix: "user".into(),
            first_user: 1,
            password: "pw".into(),
            server_pid: None,
            also_pids: Vec::new(),
            source_ips: Vec::new(),
            place_by_user: false,
            transport: Transport::Tcp,
        }
    }

    /// Refuses anything that could send load off this machine, and empty address lists.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.addrs.is_empty() {
            return Err(BenchError::Options("no target address".into()));
        }
        for addr in &self.addrs {
            if !addr.ip().is_loopback() {
                return Err(BenchError::NotLoopback(addr.to_string()));
            }
        }
        for ip in &self.source_ips {
            if !ip.is_loopback() {
                return Err(BenchError::NotLoopback(ip.to_string()));
            }
        }
        if self.domain.is_empty() {
            return Err(BenchError::Options("empty domain".into()));
        }
        match &self.transport {
            Transport::Tcp => {}
            // The web transports run over plain HTTP here: TLS would measure TLS twice over.
            Transport::Ws { .. } | Transport::Bosh { .. } if self.starttls => {
                return Err(BenchError::Options(
                    "--starttls is for TCP; the web transports run over plain HTTP".into(),
                ))
            }
            Transport::Ws { path } | Transport::Bosh { path } if !path.starts_with('/') => {
                return Err(BenchError::Options(format!(
                    "the web path `{path}` must start with /"
                )))
            }
            Transport::Ws { .. } | Transport::Bosh { .. } => {}
        }
        Ok(())
    }

    /// The local part of user number `offset` counted from `first_user`.
    pub fn username(&self, offset: usize) -> String {
        format!("{}{}", self.user_prefix, self.first_user + offset)
    }

    /// The bare JID of user number `offset` counted from `first_user`.
    pub fn bare_jid(&self, offset: usize) -> String {
        format!("{}@{}", self.username(offset), self.domain)
    }

    /// What results echo of the target (no password).
    pub fn echo(&self) -> TargetEcho {
        TargetEcho {
            addrs: self.addrs.iter().map(ToString::to_string).collect(),
            domain: self.domain.clone(),
            starttls: self.starttls,
            mechanism: self.mechanism,
            user_prefix: self.user_prefix.clone(),
            first_user: self.first_user,
            server_pid: self.server_pid,
            source_ips: self.source_ips.iter().map(ToString::to_string).collect(),
            transport: self.transport.clone(),
        }
    }
}

/// The target as results report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEcho {
    pub addrs: Vec<String>,
    pub domain: String,
    pub starttls: bool,
    pub mechanism: Mech,
    pub user_prefix: String,
    pub first_user: usize,
    pub server_pid: Option<u32>,
    pub source_ips: Vec<String>,
    #[serde(default)]
    pub transport: Transport,
}

/// Parses `127.0.0.1-127.0.0.8` (an inclusive IPv4 range), a single address, or a
/// comma-separated list of either.
pub fn parse_source_ips(spec: &str) -> Result<Vec<IpAddr>, BenchError> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || BenchError::Options(format!("bad source address or range `{part}`"));
        match part.split_once('-') {
            Some((a, b)) => {
                let a: std::net::Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
                let b: std::net::Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b || b - a >= 65_536 {
                    return Err(bad());
                }
                out.extend((a..=b).map(|ip| IpAddr::V4(ip.into())));
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Per-run state every connection of a scenario shares: the TLS client configuration,
/// the SCRAM key cache and the round-robin cursors.
#[derive(Clone)]
pub struct Shared {
    pub target: Arc<Target>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub scram: ScramCache,
    /// What the web transports' drivers count (BOSH requests answered).
    pub web: Arc<WebCounters>,
    next_conn: Arc<AtomicUsize>,
}

impl Shared {
    /// Validates the target and prepares what its connections share.
    pub fn new(target: &Target) -> Result<Shared, BenchError> {
        target.validate()?;
        Ok(Shared {
            target: Arc::new(target.clone()),
            tls: target.starttls.then(crate::client::tls_config),
            scram: ScramCache::new(),
            web: Arc::new(WebCounters::default()),
            next_conn: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The endpoints for a connection of user number `offset`: by user when the target
    /// places users, else round-robin.
    pub(crate) fn endpoints_for(&self, offset: usize) -> (SocketAddr, Option<IpAddr>) {
        let (addr, source) = self.next_endpoints();
        if self.target.place_by_user {
            (self.target.addrs[offset % self.target.addrs.len()], source)
        } else {
            (addr, source)
        }
    }

    /// The server address and source address for the next connection, round-robin.
    pub(crate) fn next_endpoints(&self) -> (SocketAddr, Option<IpAddr>) {
        let n = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let t = &self.target;
        let addr = t.addrs[n % t.addrs.len()];
        let source = (!t.source_ips.is_empty()).then(|| t.source_ips[n % t.source_ips.len()]);
        (addr, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_targets_are_refused() {
        let mut t = Target::new(vec!["127.0.0.1:5222".parse().unwrap()]);
        assert!(t.validate().is_ok());
        t.addrs.push("10.0.0.5:5222".parse().unwrap());
        let err = t.validate().unwrap_err();
        assert!(matches!(err, BenchError::NotLoopback(ref a) if a == "10.0.0.5:5222"));
        assert!(err.to_string().contains("non-loopback"));
        let mut t = Target::new(vec!["[::1]:5222".parse().unwrap()]);
        assert!(t.validate().is_ok());
        t.source_ips = vec!["192.168.1.2".parse().unwrap()];
        assert!(matches!(t.validate(), Err(BenchError::NotLoopback(_))));
        assert!(matches!(
            Target::new(vec![]).validate(),
            Err(BenchError::Options(_))
        ));
    }

    #[test]
    fn source_ranges_expand_inclusively() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.4, 127.0.1.1").unwrap();
        assert_eq!(ips.len(), 5);
        assert_eq!(ips[0], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(ips[3], "127.0.0.4".parse::<IpAddr>().unwrap());
        assert_eq!(ips[4], "127.0.1.1".parse::<IpAddr>().unwrap());
        assert!(parse_source_ips("127.0.0.9-127.0.0.1").is_err());
        assert!(parse_source_ips("nope").is_err());
    }

    #[test]
    fn connections_round_robin_over_addresses_and_sources() {
        let mut t = Target::new(vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ]);
        t.source_ips = parse_source_ips("127.0.0.1-127.0.0.3").unwrap();
        let shared = Shared::new(&t).unwrap();
        let picks: Vec<(u16, String)> = (0..6)
            .map(|_| {
                let (a, s) = shared.next_endpoints();
                (a.port(), s.unwrap().to_string())
            })
            .collect();
        assert_eq!(
            picks.iter().map(|p| p.0).collect::<Vec<_>>(),
            [1, 2, 1, 2, 1, 2]
        );
        assert_eq!(picks[0].1, "127.0.0.1");
        assert_eq!(picks[2].1, "127.0.0.3");
        assert_eq!(picks[3].1, "127.0.0.1");
    }

    #[test]
    fn transports_take_their_usual_paths_and_refuse_tls() {
        assert_eq!(Transport::parse("tcp", None).unwrap(), Transport::Tcp);
        assert_eq!(
            Transport::parse("ws", None).unwrap(),
            Transport::Ws {
                path: "/xmpp-websocket".into()
            }
        );
        assert_eq!(
            Transport::parse("bosh", Some("/bosh")).unwrap(),
            Transport::Bosh {
                path: "/bosh".into()
            }
        );
        assert!(Transport::parse("tcp", Some("/x")).is_err());
        assert!(Transport::parse("xmpp", None).is_err());
        let mut t = Target::new(vec!["127.0.0.1:5280".parse().unwrap()]);
        t.transport = Transport::parse("ws", Some("ws")).unwrap();
        assert!(t.validate().is_err(), "a path without /");
        t.transport = Transport::parse("bosh", None).unwrap();
        assert!(t.validate().is_ok());
        t.starttls = true;
        assert!(t.validate().is_err(), "STARTTLS over BOSH");
        let echo = serde_json::to_value(t.echo()).unwrap();
        assert_eq!(echo["transport"]["kind"], "bosh");
        assert_eq!(echo["transport"]["path"], "/http-bind");
    }

    #[test]
    fn mechanism_names_match_the_command_line() {
        assert_eq!(
            serde_json::to_string(&Mech::ScramSha256).unwrap(),
            "\"scram-sha-256\""
        );
        assert_eq!(serde_json::to_string(&Mech::Plain).unwrap(), "\"plain\"");
        use clap::ValueEnum;
        assert_eq!(
            Mech::from_str("scram-sha-1", false).unwrap(),
            Mech::ScramSha1
        );
    }

    #[test]
    fn users_follow_the_prefix_convention_and_echo_hides_the_password() {
        let mut t = Target::new(vec!["127.0.0.1:5222".parse().unwrap()]);
        t.first_user = 10;
        t.password = "sekrit".into();
        assert_eq!(t.username(0), "user10");
        assert_eq!(t.bare_jid(5), "user15@localhost");
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("sekrit"));
        assert!(!serde_json::to_string(&t.echo()).unwrap().contains("sekrit"));
    }
}
