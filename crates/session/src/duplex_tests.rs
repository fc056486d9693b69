//! Session tests over a real actor: a [`Connection`] over `tokio::io::duplex`, an in-memory
//! SQLite store, the router and user registry a node runs. Each test waits on what the
//! session writes (a bounded read is only a guard against a hang), never on the clock.

use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::Actor;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use parley_proto::sasl::{ChannelBindings, ScramCredentials, ScramHash};
use parley_proto::stream_error::StreamCondition;
use parley_router::Router;
use parley_user::{UserConfig, Users};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use crate::auth_limits::{AuthLimitConfig, AuthLimits};
use crate::limits::{ConnLimiter, ConnLimits};
use crate::{Connection, Framing, Security, Session, SessionConfig, SessionEnv, Unit};

/// Guard against a hang: a test that sees nothing for this long fails.
const GUARD: Duration = Duration::from_secs(20);

/// The server's end of a duplex pipe. Framed connections record each unit's kind.
struct DuplexConn {
    io: DuplexStream,
    security: Security,
    framing: Framing,
    units: Arc<Mutex<Vec<Unit>>>,
}

impl Connection for DuplexConn {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_write_unit(
        &mut self,
        cx: &mut Context<'_>,
        unit: Unit,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, data);
        if let Poll::Ready(Ok(_)) = written {
            self.units.lock().push(unit);
        }
        written
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn security(&self) -> Security {
        self.security
    }
    fn can_starttls(&self) -> bool {
        false
    }
    fn start_tls(&mut self) -> io::Result<()> {
        Err(io::Error::other("no TLS on a duplex pipe"))
    }
    fn channel_bindings(&self) -> ChannelBindings {
        ChannelBindings::default()
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 5222)))
    }
    fn framing(&self) -> Framing {
        self.framing
    }
}

/// The environment of a node serving `localhost`, with alice (password `secret`).
async fn env(require_encryption: bool) -> Arc<SessionEnv> {
    let storage = parley_storage::open("sqlite::memory:")
        .await
        .expect("storage");
    let creds = [ScramHash::Sha1, ScramHash::Sha256]
        .map(|h| ScramCredentials::generate(h, "secret", 4096).expect("credentials"));
    storage
        .create_account("alice", "localhost", &creds)
        .await
        .expect("account");
    let router = Arc::new(Router::new(["localhost".to_owned()]));
    let users = Users::new(
        router.clone(),
        storage.clone(),
        UserConfig::default(),
        vec![actix::Arbiter::current()],
    );
    Arc::new(SessionEnv {
        node: "test".into(),
        config: SessionConfig {
            require_encryption,
            scram_iterations: 4096,
            ..SessionConfig::default()
        },
        router,
        users,
        server_secret: storage.server_secret().await.expect("secret"),
        storage,
        tls_available: false,
        auth_limits: Arc::new(AuthLimits::new(AuthLimitConfig::default())),
        external_auth: None,
        conn_limiter: ConnLimiter::new(ConnLimits::default()),
        resumptions: Arc::new(crate::resumption::Resumptions::new("test", 16)),
        s2s: None,
        started_ms: 0,
        server_caps: Default::default(),
        archive: None,
        account_sessions: Default::default(),
        signup: Arc::new(crate::signup::SignupLimiter::new(Default::default())),
        components: crate::env::ComponentSettings::default(),
    })
}

/// The client's end, reading what the session writes.
struct Client {
    io: DuplexStream,
    seen: String,
}

impl Client {
    async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.expect("write");
    }

    /// Reads until `needle` has been written by the session (after what was seen before);
    /// returns everything up to and including it.
    async fn until(&mut self, needle: &str) -> String {
        let read = async {
            loop {
                if let Some(i) = self.seen.find(needle) {
                    let rest = self.seen.split_off(i + needle.len());
                    return std::mem::replace(&mut self.seen, rest);
                }
                let mut buf = [0u8; 4096];
                let n = self.io.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "the session closed before {needle:?}; got {:?}",
                    self.seen
                );
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        tokio::time::timeout(GUARD, read)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} from the session; got {:?}", self.seen))
    }
}

fn start(
    env: Arc<SessionEnv>,
    security: Security,
    framing: Framing,
) -> (Client, Arc<Mutex<Vec<Unit>>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let units = Arc::new(Mutex::new(Vec::new()));
    let conn = DuplexConn {
        io: server,
        security,
        framing,
        units: units.clone(),
    };
    Session::new(env, Box::new(conn)).start();
    (
        Client {
            io: client,
            seen: String::new(),
        },
        units,
    )
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fn plain_auth(user: &str, password: &str) -> String {
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        B64.encode(format!("\0{user}\0{password}"))
    )
}

/// Authenticates alice with PLAIN and restarts the stream (RFC 6120 §6.4.6).
async fn authenticated(c: &mut Client) {
    c.send(HEADER).await;
    c.until("</stream:features>").await;
    c.send(&plain_auth("alice", "secret")).await;
    c.until("<success").await;
    c.send(HEADER).await;
    let features = c.until("</stream:features>").await;
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{features}"
    );
}

#[actix_rt::test]
async fn rfc6120_4_3_2_header_is_answered_with_header_and_features() {
    let (mut c, _) = start(env(true).await, Security::Tls, Framing::Stream);
    c.send(HEADER).await;
    let answer = c.until("</stream:features>").await;
    assert!(answer.contains("<stream:stream"), "{answer}");
    assert!(answer.contains("from='localhost'"), "{answer}");
    assert!(answer.contains("<mechanism>PLAIN</mechanism>"), "{answer}");
    assert!(
        answer.contains("<mechanism>SCRAM-SHA-256</mechanism>"),
        "{answer}"
    );
    assert!(!answer.contains("starttls"), "TLS is up: {answer}");
}

#[actix_rt::test]
async fn rfc6120_4_9_3_6_unknown_host_is_host_unknown() {
    let (mut c, _) = start(env(true).await, Security::Tls, Framing::Stream);
    c.send(&HEADER.replace("to='localhost'", "to='elsewhere.example'"))
        .await;
    c.until("<host-unknown").await;
    c.until("</stream:stream>").await;
}

#[actix_rt::test]
async fn rfc6120_5_4_2_2_starttls_not_offered_is_refused_with_failure() {
    let (mut c, _) = start(env(false).await, Security::Plain, Framing::Stream);
    c.send(HEADER).await;
    let features = c.until("</stream:features>").await;
    assert!(!features.contains("starttls"), "{features}");
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    c.until("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    c.until("</stream:stream>").await;
}

#[actix_rt::test]
async fn rfc6120_5_3_1_plain_connection_must_negotiate_tls_first() {
    let (mut c, _) = start(env(true).await, Security::Plain, Framing::Stream);
    c.send(HEADER).await;
    let features = c.until("</stream:features>").await;
    assert!(
        !features.contains("mechanisms"),
        "no SASL before TLS: {features}"
    );
    c.send(&plain_auth("alice", "secret")).await;
    c.until("<encryption-required/>").await;
}

#[actix_rt::test]
async fn rfc6120_6_4_5_wrong_password_is_not_authorized() {
    let (mut c, _) = start(env(true).await, Security::Tls, Framing::Stream);
    c.send(HEADER).await;
    c.until("</stream:features>").await;
    c.send(&plain_auth("alice", "wrong")).await;
    let failure = c.until("</failure>").await;
    assert!(failure.contains("<not-authorized/>"), "{failure}");
}

#[actix_rt::test]
async fn rfc6120_7_6_plain_success_then_bind_a_resource() {
    let (mut c, _) = start(env(true).await, Security::Tls, Framing::Stream);
    authenticated(&mut c).await;
    c.send(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>phone</resource></bind></iq>",
    )
    .await;
    let bound = c.until("</iq>").await;
    assert!(bound.contains("type='result'"), "{bound}");
    assert!(
        bound.contains("<jid>alice@localhost/phone</jid>"),
        "{bound}"
    );
    // Bound: the server answers its own iqs (XEP-0199).
    c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.until("<iq").await;
    let pong = c.until("/>").await;
    assert!(
        pong.contains("id='p1'") && pong.contains("type='result'"),
        "{pong}"
    );
}

#[actix_rt::test]
async fn rfc6120_7_1_stanza_before_bind_is_refused() {
    let (mut c, _) = start(env(true).await, Security::Tls, Framing::Stream);
    authenticated(&mut c).await;
    c.send("<message to='bob@localhost'><body>early</body></message>")
        .await;
    c.until("<not-authorized").await;
    c.until("</stream:stream>").await;
}

#[actix_rt::test]
async fn rfc7395_3_6_framed_session_tells_its_connection_how_the_stream_ended() {
    let (mut c, units) = start(env(true).await, Security::Tls, Framing::Framed);
    c.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
        .await;
    c.until("</stream:features>").await;
    c.send("<message xmlns='jabber:client' to='bob@localhost'/>")
        .await;
    c.until("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    let units = units.lock().clone();
    assert_eq!(
        units,
        [
            Unit::Header,
            Unit::Element,
            Unit::StreamError(StreamCondition::NotAuthorized),
            Unit::Close
        ]
    );
}

#[actix_rt::test]
async fn xep0206_prebound_session_starts_bound() {
    let env = env(true).await;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = DuplexConn {
        io: server,
        security: Security::Tls,
        framing: Framing::Framed,
        units: Arc::default(),
    };
    let (reply, bound) = tokio::sync::oneshot::channel();
    let user = jid::BareJid::new("alice@localhost").unwrap();
    Session::prebound(env.clone(), Box::new(conn), user, Some("web".into()), reply).start();
    let jid = tokio::time::timeout(GUARD, bound)
        .await
        .expect("a bind answer")
        .expect("the session answers")
        .expect("bound");
    assert_eq!(jid.to_string(), "alice@localhost/web");
    assert!(env.router.lookup(&jid).is_some(), "routable at once");
    // The client attaches to a bound session: its first stanza is a stanza.
    let mut c = Client {
        io: client,
        seen: String::new(),
    };
    c.send("<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = c.until("id='p1'").await;
    assert!(
        !pong.contains("<open"),
        "nothing of a negotiation is written: {pong}"
    );
}
