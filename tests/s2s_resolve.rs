//! Finding a remote server (RFC 6120 §3.2, XEP-0368, RFC 2782) against a real DNS server
//! (dnsmasq on loopback, authoritative for the test's records only): SRV records for both
//! services merged and ordered, the fallback to the domain itself on port 5269 when there
//! are none, a `.` target meaning no service, and the addresses of a target.

use std::collections::HashMap;
use std::net::SocketAddr;

use parley_testkit::{DnsRecord, Dnsmasq};
use parley_transport::resolve::{ResolveError, S2sResolver, Target};

fn srv(name: &str, target: Option<(&str, u16)>, priority: u16) -> DnsRecord {
    DnsRecord::Srv {
        name: name.into(),
        target: target.map(|(h, p)| (h.into(), p)),
        priority,
        weight: 0,
    }
}

fn a(name: &str, ip: [u8; 4]) -> DnsRecord {
    DnsRecord::A {
        name: name.into(),
        ip: ip.into(),
    }
}

fn dns() -> Dnsmasq {
    Dnsmasq::start(&[
        // Both services, direct TLS at the better priority, STARTTLS on two hosts.
        srv(
            "_xmpps-server._tcp.both.test",
            Some(("tls.both.test", 5270)),
            5,
        ),
        srv(
            "_xmpp-server._tcp.both.test",
            Some(("b.both.test", 5269)),
            20,
        ),
        srv(
            "_xmpp-server._tcp.both.test",
            Some(("a.both.test", 5269)),
            10,
        ),
        a("tls.both.test", [127, 0, 0, 3]),
        a("a.both.test", [127, 0, 0, 1]),
        a("b.both.test", [127, 0, 0, 2]),
        // No SRV: the domain's own address.
        a("plain.test", [127, 0, 0, 4]),
        // Explicitly no service.
        srv("_xmpp-server._tcp.none.test", None, 0),
    ])
}

/// RFC 6120 §3.2.1 with XEP-0368 §3: both SRV services, in priority order.
#[tokio::test]
async fn rfc6120_3_2_1_srv_records_of_both_services_in_priority_order() {
    let dns = dns();
    let r = S2sResolver::new(&[dns.addr], HashMap::new()).unwrap();
    let targets = r.targets("both.test").await.unwrap();
    assert_eq!(
        targets,
        [
            Target {
                host: "tls.both.test".into(),
                port: 5270,
                direct_tls: true
            },
            Target {
                host: "a.both.test".into(),
                port: 5269,
                direct_tls: false
            },
            Target {
                host: "b.both.test".into(),
                port: 5269,
                direct_tls: false
            },
        ]
    );
    assert_eq!(
        r.addresses(&targets[0]).await.unwrap(),
        ["127.0.0.3:5270".parse::<SocketAddr>().unwrap()]
    );
}

/// RFC 6120 §3.2.2: no SRV records: the domain itself on port 5269.
#[tokio::test]
async fn rfc6120_3_2_2_without_srv_the_domain_on_5269() {
    let dns = dns();
    let r = S2sResolver::new(&[dns.addr], HashMap::new()).unwrap();
    let targets = r.targets("plain.test").await.unwrap();
    assert_eq!(
        targets,
        [Target {
            host: "plain.test".into(),
            port: 5269,
            direct_tls: false
        }]
    );
    assert_eq!(
        r.addresses(&targets[0]).await.unwrap(),
        ["127.0.0.4:5269".parse::<SocketAddr>().unwrap()]
    );
    // A domain DNS knows nothing of: the fallback, whose address lookup then fails.
    let targets = r.targets("nowhere.test").await.unwrap();
    assert!(matches!(
        r.addresses(&targets[0]).await,
        Err(ResolveError::Dns { .. })
    ));
}

/// RFC 2782 and RFC 6120 §3.2.1: a target of `.` says the domain offers no service.
#[tokio::test]
async fn rfc2782_a_dot_target_means_no_service() {
    let dns = dns();
    let r = S2sResolver::new(&[dns.addr], HashMap::new()).unwrap();
    assert_eq!(
        r.targets("none.test").await,
        Err(ResolveError::NoService("none.test".into()))
    );
}
