//! External service discovery (XEP-0215, `urn:xmpp:extdisco:2`): the STUN and TURN
//! servers a client may use for calls, and time-limited TURN credentials derived from a
//! secret shared with the TURN server (the "TURN REST API" scheme coturn and others
//! implement: the username is `expiry:jid`, the password `base64(HMAC-SHA1(secret,
//! username))`), so that no long-lived TURN password is handed out.

use base64::Engine;
use hmac::{Hmac, Mac};
use parley_xml::Element;
use sha1::Sha1;

/// The namespace.
pub const NS: &str = "urn:xmpp:extdisco:2";

/// One configured service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `stun`, `stuns`, `turn` or `turns`.
    pub kind: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `udp` or `tcp`, when given.
    pub transport: Option<String>,
}

impl Service {
    /// Reads `kind:host:port[:transport]` (e.g. `turn:turn.example.org:3478:udp`).
    pub fn parse(s: &str) -> Option<Service> {
        let mut parts = s.split(':');
        let kind = parts.next()?.to_ascii_lowercase();
        let host = parts.next()?.to_owned();
        let port = parts.next()?.parse::<u16>().ok().filter(|p| *p > 0)?;
        let transport = parts.next().map(str::to_ascii_lowercase);
        let kinds = ["stun", "stuns", "turn", "turns"];
        let transports = [None, Some("udp"), Some("tcp")];
        (parts.next().is_none()
            && kinds.contains(&kind.as_str())
            && !host.is_empty()
            && transports.contains(&transport.as_deref()))
        .then_some(Service {
            kind,
            host,
            port,
            transport,
        })
    }

    /// Whether it needs credentials (TURN).
    pub fn is_turn(&self) -> bool {
        self.kind.starts_with("turn")
    }
}

/// TURN REST API credentials for `user` valid until `expires_s` (unix seconds).
pub fn turn_credentials(secret: &[u8], user: &str, expires_s: i64) -> (String, String) {
    let username = format!("{expires_s}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// XEP-0215 §3.1: the `<services/>` answer, filtered by `type` when the request names one;
/// TURN entries carry credentials for `user` when a secret is configured (`restricted`
/// then says they are limited in time, §3.2), with their expiry as XEP-0082 time.
pub fn services_element(
    services: &[Service],
    only: Option<&str>,
    turn: Option<(&[u8], &str, i64)>,
) -> Element {
    let mut out = Element::new("services", NS);
    for s in services.iter().filter(|s| only.is_none_or(|t| t == s.kind)) {
        let mut el = Element::new("service", NS)
            .with_attr("type", s.kind.as_str())
            .with_attr("host", s.host.as_str())
            .with_attr("port", s.port.to_string());
        if let Some(t) = &s.transport {
            el.set_attr("transport", t.as_str());
        }
        if let (true, Some((secret, user, expires_s))) = (s.is_turn(), turn) {
            let (username, password) = turn_credentials(secret, user, expires_s);
            el.set_attr("username", username);
            el.set_attr("password", password);
            el.set_attr("expires", crate::datetime::xep0082(expires_s * 1000));
            el.set_attr("restricted", "1");
        }
        out.push_child(el);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0215_services_read_from_config_strings() {
        assert_eq!(
            Service::parse("turn:turn.example.org:3478:udp"),
            Some(Service {
                kind: "turn".into(),
                host: "turn.example.org".into(),
                port: 3478,
                transport: Some("udp".into())
            })
        );
        assert!(Service::parse("stun:stun.example.org:3478").is_some());
        for bad in [
            "ftp:x:1",
            "turn:x",
            "turn:x:0",
            "turn:x:3478:sctp",
            "turn::3478",
            "turn:x:1:udp:more",
        ] {
            assert_eq!(Service::parse(bad), None, "{bad}");
        }
    }

    /// The TURN REST API password, against an independent computation (Python:
    /// `base64.b64encode(hmac.new(b"secret", b"1700000000:alice@example.org", sha1).digest())`).
    #[test]
    fn xep0215_turn_credentials_are_the_rest_api_hmac() {
        let (user, pass) = turn_credentials(b"secret", "alice@example.org", 1_700_000_000);
        assert_eq!(user, "1700000000:alice@example.org");
        assert_eq!(pass, "ilWZzF8c6jFH+3PGJYYE0l3dlMI=");
    }

    #[test]
    fn xep0215_3_1_the_answer_lists_services_filtered_by_type_with_turn_credentials() {
        let services = [
            Service::parse("stun:stun.example.org:3478:udp").unwrap(),
            Service::parse("turn:turn.example.org:3478:udp").unwrap(),
        ];
        let all = services_element(&services, None, Some((b"s", "a@x", 100)));
        let list: Vec<&Element> = all.children().collect();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].attr("username"), None, "STUN needs no credentials");
        assert_eq!(list[1].attr("username"), Some("100:a@x"));
        assert_eq!(list[1].attr("restricted"), Some("1"));
        let turn_only = services_element(&services, Some("turn"), None);
        assert_eq!(turn_only.children().count(), 1);
        assert_eq!(turn_only.children().next().unwrap().attr("password"), None);
    }
}
