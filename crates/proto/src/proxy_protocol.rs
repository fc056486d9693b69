//! The PROXY protocol header (HAProxy's specification, versions 1 and 2) a load balancer
//! sends first on each connection it opens to a backend, naming the client it carries: so
//! the real client address reaches sessions, logs and per-address limits. Pure: bytes in,
//! what they say out. Which peers may send one is the listener's business (a header from
//! anyone else is never believed).
//!
//! * v1: `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`, at most 107 bytes.
//! * v2: a 12-byte signature, version/command, family/protocol, a length, then the
//!   addresses and TLVs (ignored). `LOCAL` (the balancer's own health check) and the
//!   `UNSPEC` family carry no client: the connection's own address stands.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (the specification's bound, CRLF included).
pub const V1_MAX: usize = 107;
/// The longest v2 header this parser takes: addresses plus generous TLVs (the
/// specification asks receivers for at least 216 bytes).
pub const V2_MAX: usize = 16 + 1024;

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Bytes it takes at the start of the stream; what follows is the client's.
    pub len: usize,
    /// The client's address, when the header names one (not for `LOCAL`, `UNKNOWN`,
    /// `UNSPEC` or a non-TCP protocol).
    pub source: Option<SocketAddr>,
}

/// Why the start of a stream is not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// It does not start like one (v1's `PROXY ` or v2's signature).
    #[error("no PROXY protocol header")]
    Missing,
    /// It starts like one but breaks the specification.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// Parses the header at the start of `buf`: Ok(None) while more bytes are needed (never
/// past [`V1_MAX`] or [`V2_MAX`] bytes).
pub fn parse(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let common = buf.len().min(V2_SIGNATURE.len());
    if buf[..common] == V2_SIGNATURE[..common] {
        return if common < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let common = buf.len().min(6);
    if buf[..common] == b"PROXY "[..common] {
        return if common < 6 { Ok(None) } else { parse_v1(buf) };
    }
    Err(ProxyError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::Malformed("v1 header longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[6..end])
        .map_err(|_| ProxyError::Malformed("v1 header is not ASCII"))?;
    let len = end + 2;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["UNKNOWN", ..] => None,
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let src: IpAddr = src
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 source address"))?;
            let dst: IpAddr = dst
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 destination address"))?;
            let v4 = *proto == "TCP4";
            if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
                return Err(ProxyError::Malformed("v1 address of the wrong family"));
            }
            let port = |p: &str| -> Result<u16, ProxyError> {
                // Decimal without a sign or leading zeros, as the specification writes it.
                if p.is_empty()
                    || (p.len() > 1 && p.starts_with('0'))
                    || !p.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ProxyError::Malformed("v1 port"));
                }
                p.parse().map_err(|_| ProxyError::Malformed("v1 port"))
            };
            let sport = port(sport)?;
            port(dport)?;
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(ProxyError::Malformed("v1 header fields")),
    };
    Ok(Some(ProxyHeader { len, source }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Err(ProxyError::Malformed("v2 header too long"));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let family = buf[13] >> 4;
    let protocol = buf[13] & 0x0f;
    let addr = &buf[16..len];
    let source = match (command, family, protocol) {
        // LOCAL: the balancer speaking for itself (a health check).
        (0, _, _) => None,
        (1, 1, 1) => {
            if addr.len() < 12 {
                return Err(ProxyError::Malformed("v2 IPv4 addresses"));
            }
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([addr[8], addr[9]]),
            ))
        }
        (1, 2, 1) => {
            if addr.len() < 36 {
                return Err(ProxyError::Malformed("v2 IPv6 addresses"));
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([addr[32], addr[33]]),
            ))
        }
        // UNSPEC, UDP, UNIX sockets: no client address to believe.
        (1, _, _) => None,
        _ => return Err(ProxyError::Malformed("v2 command")),
    };
    Ok(Some(ProxyHeader { len, source }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers_name_the_client_and_their_length() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 52114 5222\r\n<stream:stream";
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.source, Some("203.0.113.7:52114".parse().unwrap()));
        assert_eq!(&h[got.len..], b"<stream:stream");
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 5222\r\n";
        assert_eq!(
            parse(h).unwrap().unwrap().source,
            Some("[2001:db8::7]:40000".parse().unwrap())
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        // Any prefix waits for more.
        let full = b"PROXY TCP4 203.0.113.7 192.0.2.1 52114 5222\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "{cut}");
        }
        for bad in [
            &b"PROXY TCP4 203.0.113.7 192.0.2.1 52114\r\n"[..],
            b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 070 5222\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 70000 5222\r\n",
            b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(parse(&[b'P'; 200]), Err(ProxyError::Missing));
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(parse(&long), Err(ProxyError::Malformed(_))));
        assert_eq!(parse(b"<?xml version='1.0'?>"), Err(ProxyError::Missing));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_headers_name_the_client_and_skip_tlvs() {
        let mut body = vec![203, 0, 113, 7, 192, 0, 2, 1];
        body.extend_from_slice(&52114u16.to_be_bytes());
        body.extend_from_slice(&5222u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a TLV
        let h = v2(1, 0x11, &body);
        let got = parse(&h).unwrap().unwrap();
        assert_eq!(got.source, Some("203.0.113.7:52114".parse().unwrap()));
        assert_eq!(got.len, h.len());
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "{cut}");
        }
        let mut body6 = vec![0x20, 0x01, 0x0d, 0xb8];
        body6.extend_from_slice(&[0; 11]);
        body6.push(7);
        body6.extend_from_slice(&[0; 16]);
        body6.extend_from_slice(&40000u16.to_be_bytes());
        body6.extend_from_slice(&5222u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &body6)).unwrap().unwrap().source,
            Some("[2001:db8::7]:40000".parse().unwrap())
        );
        // LOCAL: the balancer's own check, no client.
        assert_eq!(parse(&v2(0, 0x11, &body)).unwrap().unwrap().source, None);
        assert!(matches!(
            parse(&v2(1, 0x11, &body[..6])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(5, 0x11, &body)),
            Err(ProxyError::Malformed(_))
        ));
        let mut wrong_version = v2(1, 0x11, &body);
        wrong_version[12] = 0x11;
        assert!(matches!(
            parse(&wrong_version),
            Err(ProxyError::Malformed(_))
        ));
        let huge = v2(1, 0x11, &vec![0; 2000]);
        assert!(matches!(parse(&huge), Err(ProxyError::Malformed(_))));
    }
}
