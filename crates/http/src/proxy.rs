//! Who the client is behind a reverse proxy: `X-Forwarded-*` and `Forwarded` (RFC 7239) are
//! believed only when the TCP peer is one of `[http] trusted_proxies`.
//!
//! Any client can send these headers, so trusting them from anyone would let an attacker
//! pick the IP address that per-IP limits count and session records show, claim TLS it does
//! not have (`secure`, which gates PLAIN logins under `require_encryption`), and make
//! discovery (XEP-0156) advertise a host of its choosing to whatever caches the answer.
//! From an untrusted peer, everything comes from the connection itself.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::HeaderMap;

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address (`10.0.0.5`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// Why a `trusted_proxies` entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an IP address or a CIDR block such as \"10.0.0.0/8\" or \"2001:db8::/32\"")]
pub struct BadCidr;

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| BadCidr)?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(BadCidr)?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let whole = usize::from(prefix / 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// `[http] trusted_proxies`: the peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses the configured list; the error gives the index of the bad entry.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, (usize, BadCidr)> {
        list.iter()
            .enumerate()
            .map(|(i, s)| s.parse().map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether the TCP peer of a request is a trusted proxy.
    pub fn trusts(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.contains(p.ip()))
    }

    /// The client's address: the peer's, or — when the peer is a trusted proxy — the
    /// right-most address of the forwarding chain that is not itself a trusted proxy (the
    /// left-most entries were written by the client and prove nothing).
    pub fn client_addr(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<SocketAddr> {
        let peer = peer?;
        if !self.contains(peer.ip()) {
            return Some(peer);
        }
        let chain = forwarded_for(headers);
        let client = chain
            .iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or_else(|| chain.first())
            .copied();
        // Port 0: the proxy's port says nothing about the client.
        Some(client.map_or(peer, |ip| SocketAddr::new(ip, 0)))
    }

    /// The scheme the client used, as a trusted proxy reports it (`Forwarded: proto=`, else
    /// `X-Forwarded-Proto`); None from an untrusted peer or when it says nothing.
    pub fn forwarded_https(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<bool> {
        if !self.trusts(peer) {
            return None;
        }
        let proto = forwarded_param(headers, "proto").or_else(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
        })?;
        Some(proto.eq_ignore_ascii_case("https") || proto.eq_ignore_ascii_case("wss"))
    }
}

/// The addresses of `Forwarded: for=` (RFC 7239 §5.2), or else of `X-Forwarded-For`, in
/// order (client first). Obfuscated identifiers and `unknown` are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let from_forwarded: Vec<IpAddr> = headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| node_ip(v))?
        })
        .collect();
    if !from_forwarded.is_empty() {
        return from_forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(node_ip)
        .collect()
}

/// The first `Forwarded` value of parameter `name`, unquoted.
fn forwarded_param(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .flat_map(|element| element.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_owned())
        })
}

/// An address as a node of RFC 7239 §6 (`192.0.2.43`, `"[2001:db8::1]:4711"`,
/// `192.0.2.43:80`) or of `X-Forwarded-For`.
fn node_ip(raw: &str) -> Option<IpAddr> {
    let v = raw.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    // "[2001:db8::1]" without a port.
    v.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn cidr_blocks_match_their_addresses_only() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        let c: Cidr = "192.0.2.128/25".parse().unwrap();
        assert!(c.contains("192.0.2.200".parse().unwrap()));
        assert!(!c.contains("192.0.2.100".parse().unwrap()));
        let c: Cidr = "::1".parse().unwrap();
        assert!(c.contains("::1".parse().unwrap()));
        let c: Cidr = "127.0.0.1".parse().unwrap();
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.org", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            t.client_addr(peer("203.0.113.9:5000"), &h),
            peer("203.0.113.9:5000")
        );
        assert_eq!(t.forwarded_https(peer("203.0.113.9:5000"), &h), None);
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_address() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // The client wrote 1.2.3.4 itself; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(
            t.client_addr(peer("10.0.0.2:5000"), &h),
            peer("198.51.100.7:0")
        );
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(
            t.client_addr(peer("10.0.0.2:5000"), &h),
            peer("[2001:db8::7]:0")
        );
        let h = headers(&[("forwarded", "for=192.0.2.1;proto=https")]);
        assert_eq!(t.forwarded_https(peer("10.0.0.2:1"), &h), Some(true));
        // Nothing forwarded: the proxy itself.
        assert_eq!(
            t.client_addr(peer("10.0.0.2:5000"), &HeaderMap::new()),
            peer("10.0.0.2:5000")
        );
    }
}
