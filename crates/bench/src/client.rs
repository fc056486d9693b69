//! A lean XMPP client (RFC 6120/6121) for load generation: raw XML over a tokio socket,
//! optional STARTTLS, SASL (SCRAM-SHA-1, SCRAM-SHA-256, PLAIN), resource binding,
//! presence and raw stanza I/O.
//!
//! The target's transport may be WebSocket (RFC 7395, `ws`) or BOSH (XEP-0206,
//! [`bosh`]) instead of TCP: the client then talks to a pipe whose driver translates
//! (`framing`), so every scenario runs unchanged over either.
//!
//! Thousands of these are open at once, so a session holds only its socket, its parser
//! (which owns no buffer while idle) and its JID; read buffers live on the stack of
//! whoever is reading. Stanzas are written as preformatted strings rather than built as
//! trees: the generator must cost far less per stanza than the server it measures.
//!
//! Longer than 800 lines: the client's stream phases (connect, STARTTLS, SASL, bind) and its
//! raw stanza I/O share one socket and one parser; the transports are in modules of their own.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use parley_proto::ns;
use parley_proto::sasl::SaslFailure;
use parley_xml::{Element, Event, Limits, StreamHeader, StreamParser};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use tokio::time::Instant;
use tokio_rustls::TlsConnector;

pub mod bosh;
mod framing;
mod tls;
mod transport;
mod ws;

pub use bosh::WebCounters;
pub(crate) use tls::tls_config;
pub use tls::Stream;
use transport::tcp_connect;

use crate::scram::ScramExchange;
use crate::target::Shared;
use crate::BenchError;

/// How long any single protocol step may take before the session is given up on.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8192;

/// Bytes each way between the client and a web transport's driver: room for a window of
/// chat messages, so that neither side waits on the other in the common case.
const PIPE_BYTES: usize = 64 * 1024;

/// The server's stanzas are trusted to be sane; the limits only guard against a runaway.
fn limits() -> Limits {
    Limits {
        max_stanza_bytes: 16 << 20,
        max_depth: 64,
        max_attrs: 256,
        max_namespace_declarations: 4096,
    }
}

/// What the server sent next.
#[derive(Debug)]
pub enum Incoming {
    Header(StreamHeader),
    Stanza(Element),
    /// `</stream:stream>`.
    Close,
    /// The connection ended.
    Eof,
}

/// Socket reads that returned data, and their bytes, as one reader counts them (see
/// [`SessionReader::count_reads`]). Atomics, so that another task may sample them while
/// the reader runs.
#[derive(Debug, Default)]
pub struct ReadCounters {
    pub reads: AtomicU64,
    pub bytes: AtomicU64,
}

impl ReadCounters {
    /// `(reads, bytes)` now.
    pub fn get(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A reader that counts its reads, with a buffer of its own: large enough that one read
/// takes whatever the server wrote at once, so that a read stands for one wake-up.
struct Counting {
    counters: Arc<ReadCounters>,
    buf: Box<[u8]>,
}

/// The reading side: socket half (or whole socket) plus the stream parser.
pub struct Reader<R> {
    io: R,
    parser: StreamParser,
    addr: SocketAddr,
    counting: Option<Counting>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// The next item from the server, or [`BenchError::Timeout`] at `deadline`. A timeout
    /// loses nothing: bytes already read stay in the parser.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Incoming, BenchError> {
        loop {
            match self.parser.next_event() {
                Ok(Some(Event::StreamOpen(h))) => return Ok(Incoming::Header(h)),
                Ok(Some(Event::Stanza(el))) => return Ok(Incoming::Stanza(el)),
                Ok(Some(Event::StreamClose)) => return Ok(Incoming::Close),
                Ok(None) => {}
                Err(source) => {
                    return Err(BenchError::Xml {
                        addr: self.addr,
                        source,
                    })
                }
            }
            let mut stack = [0u8; READ_CHUNK];
            let buf: &mut [u8] = match &mut self.counting {
                Some(c) => &mut c.buf,
                None => &mut stack,
            };
            let n = match tokio::time::timeout_at(deadline, self.io.read(buf)).await {
                Err(_) => {
                    return Err(BenchError::Timeout(format!(
                        "waiting for data from {}",
                        self.addr
                    )))
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => 0,
                Ok(Err(e)) => return Err(BenchError::io(format!("reading from {}", self.addr), e)),
            };
            if n == 0 {
                return Ok(Incoming::Eof);
            }
            self.parser.feed(&buf[..n]);
            if let Some(c) = &self.counting {
                c.counters.reads.fetch_add(1, Ordering::Relaxed);
                c.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// The next stanza (or nonza); a stream error, close or EOF is an error here.
    pub async fn stanza(&mut self, deadline: Instant, what: &str) -> Result<Element, BenchError> {
        match self.recv(deadline).await {
            Ok(Incoming::Stanza(el)) if el.is("error", ns::STREAM) => {
                Err(BenchError::Closed(format!(
                    "stream error while waiting for {what}: {}",
                    stream_error_condition(&el)
                )))
            }
            Ok(Incoming::Stanza(el)) => Ok(el),
            Ok(Incoming::Header(_)) => Err(BenchError::Protocol(format!(
                "unexpected stream header while waiting for {what}"
            ))),
            Ok(Incoming::Close) | Ok(Incoming::Eof) => {
                Err(BenchError::Closed(format!("while waiting for {what}")))
            }
            Err(BenchError::Timeout(_)) => {
                Err(BenchError::Timeout(format!("{what} from {}", self.addr)))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads stanzas until `pred` accepts one, dropping the others (presence echoes and
    /// the like that arrive in between).
    pub async fn stanza_until(
        &mut self,
        deadline: Instant,
        what: &str,
        mut pred: impl FnMut(&Element) -> bool,
    ) -> Result<Element, BenchError> {
        loop {
            let el = self.stanza(deadline, what).await?;
            if pred(&el) {
                return Ok(el);
            }
        }
    }

    /// Reads until the server's `</stream:stream>` or EOF, dropping stanzas.
    pub async fn drain_to_close(&mut self, deadline: Instant) -> Result<(), BenchError> {
        loop {
            match self.recv(deadline).await {
                Ok(Incoming::Close) | Ok(Incoming::Eof) => return Ok(()),
                Ok(_) => {}
                // A socket torn down under us after we closed is as good as a close.
                Err(BenchError::Io { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn stream_error_condition(el: &Element) -> String {
    el.children()
        .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
        .map_or_else(|| "undefined".to_owned(), |c| c.name().to_owned())
}

/// How far [`Conn::authenticate`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthGoal {
    /// All the way to `<success/>`.
    Login,
    /// To the SCRAM challenge, then `<abort/>` (see [`Conn::prime`]).
    Prime,
}

/// A connection from TCP connect until its resource is bound.
pub struct Conn {
    stream: Stream,
    parser: StreamParser,
    addr: SocketAddr,
}

impl Conn {
    /// Connects to the next server address of the target, from the next source address
    /// when the target lists any.
    pub async fn connect(shared: &Shared) -> Result<Conn, BenchError> {
        let (addr, source) = shared.next_endpoints();
        Conn::open(shared, addr, source).await
    }

    /// Connects to `addr`, optionally bound to `source`.
    pub async fn connect_to(addr: SocketAddr, source: Option<IpAddr>) -> Result<Conn, BenchError> {
        Ok(Conn {
            stream: Stream::Plain(tcp_connect(addr, source).await?),
            parser: StreamParser::new(limits()),
            addr,
        })
    }

    /// Connects to `addr` over the target's transport (see [`transport`]).
    async fn open(
        shared: &Shared,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Conn, BenchError> {
        Ok(Conn {
            stream: transport::connect(shared, addr, source).await?,
            parser: StreamParser::new(limits()),
            addr,
        })
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), BenchError> {
        write_all(&mut self.stream, data, self.addr).await
    }

    async fn with_reader<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Reader<&mut Stream>) -> Result<T, BenchError>,
    ) -> Result<T, BenchError> {
        // The parser moves into a borrowing reader and back, so that whole sockets and
        // split halves share one copy of the receive logic.
        let mut reader = Reader {
            io: &mut self.stream,
            parser: std::mem::replace(&mut self.parser, StreamParser::new(limits())),
            addr: self.addr,
            counting: None,
        };
        let result = f(&mut reader).await;
        self.parser = reader.parser;
        result
    }

    /// Sends a stream header and reads the server's header and features.
    async fn open_stream(
        &mut self,
        domain: &str,
        deadline: Instant,
    ) -> Result<Element, BenchError> {
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
            parley_xml::escape::attr(domain)
        );
        self.send(header.as_bytes()).await?;
        self.with_reader(async |r| {
            match r.recv(deadline).await? {
                Incoming::Header(_) => {}
                Incoming::Stanza(el) if el.is("error", ns::STREAM) => {
                    return Err(BenchError::Closed(format!(
                        "stream error instead of a header: {}",
                        stream_error_condition(&el)
                    )))
                }
                other => {
                    return Err(BenchError::Protocol(format!(
                        "expected a stream header, got {other:?}"
                    )))
                }
            }
            let features = r.stanza(deadline, "stream features").await?;
            if !features.is("features", ns::STREAM) {
                return Err(BenchError::Protocol(format!(
                    "expected <stream:features/>, got <{}/>",
                    features.name()
                )));
            }
            Ok(features)
        })
        .await
    }

    /// RFC 6120 §5.4: `<starttls/>`, `<proceed/>`, TLS handshake, and a fresh stream.
    async fn starttls(
        mut self,
        shared: &Shared,
        deadline: Instant,
    ) -> Result<(Conn, Element), BenchError> {
        let domain = shared.target.domain.clone();
        let config = shared
            .tls
            .clone()
            .ok_or_else(|| BenchError::Options("STARTTLS without a TLS configuration".into()))?;
        self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await?;
        let answer = self
            .with_reader(async |r| r.stanza(deadline, "<proceed/>").await)
            .await?;
        if !answer.is("proceed", ns::TLS) {
            return Err(BenchError::Protocol(format!(
                "STARTTLS answered with <{}/>",
                answer.name()
            )));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(BenchError::Protocol("STARTTLS twice".into()));
        };
        let name = ServerName::try_from(domain.clone())
            .map_err(|_| BenchError::Options(format!("`{domain}` is not a TLS server name")))?;
        let tls = tokio::time::timeout_at(deadline, TlsConnector::from(config).connect(name, tcp))
            .await
            .map_err(|_| BenchError::Timeout(format!("TLS handshake with {}", self.addr)))?
            .map_err(|e| BenchError::io(format!("TLS handshake with {}", self.addr), e))?;
        let mut conn = Conn {
            stream: Stream::Tls(Box::new(tls)),
            // RFC 6120 §5.4.3.3: nothing from before the handshake is kept.
            parser: StreamParser::new(limits()),
            addr: self.addr,
        };
        let features = conn.open_stream(&domain, deadline).await?;
        Ok((conn, features))
    }

    /// Connects, opens the stream and negotiates STARTTLS when the target asks for it;
    /// returns the connection and the features to authenticate with.
    async fn establish(
        shared: &Shared,
        offset: usize,
        deadline: Instant,
    ) -> Result<(Conn, Element), BenchError> {
        let (addr, source) = shared.endpoints_for(offset);
        Conn::establish_at(shared, addr, source, deadline).await
    }

    /// [`Conn::establish`] to a given server address.
    async fn establish_at(
        shared: &Shared,
        addr: SocketAddr,
        source: Option<IpAddr>,
        deadline: Instant,
    ) -> Result<(Conn, Element), BenchError> {
        let target = &shared.target;
        let mut conn = Conn::open(shared, addr, source).await?;
        let features = conn.open_stream(&target.domain, deadline).await?;
        if !target.starttls {
            return Ok((conn, features));
        }
        if !features.has_child("starttls", ns::TLS) {
            return Err(BenchError::Protocol(
                "the server does not offer STARTTLS".into(),
            ));
        }
        conn.starttls(shared, deadline).await
    }

    /// Fills the SCRAM cache for user number `offset` without logging in: the exchange
    /// runs to the server's challenge (which carries the salt and iteration count), the
    /// key is derived, and the exchange is aborted (RFC 6120 §6.4.4). A scenario that
    /// times logins calls this first, so that it times the server and not the
    /// generator's PBKDF2, as for a client that has logged in before. Nothing to do for
    /// PLAIN.
    pub async fn prime(shared: &Shared, offset: usize) -> Result<(), BenchError> {
        if shared.target.mechanism.scram_hash().is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + STEP_TIMEOUT;
        let (mut conn, features) = Conn::establish(shared, offset, deadline).await?;
        let user = shared.target.username(offset);
        conn.authenticate(shared, &features, &user, AuthGoal::Prime, deadline)
            .await?;
        let _ = conn.send(b"</stream:stream>").await;
        conn.with_reader(async |r| r.drain_to_close(deadline).await)
            .await
    }

    /// RFC 6120 §6: authenticates as `user` with the target's mechanism.
    async fn authenticate(
        &mut self,
        shared: &Shared,
        features: &Element,
        user: &str,
        goal: AuthGoal,
        deadline: Instant,
    ) -> Result<(), BenchError> {
        let mech = shared.target.mechanism;
        let offered = features
            .get_child("mechanisms", ns::SASL)
            .is_some_and(|m| m.children().any(|c| c.text() == mech.name()));
        if !offered {
            return Err(BenchError::Protocol(format!(
                "the server does not offer {} here{}",
                mech.name(),
                if shared.target.starttls {
                    ""
                } else {
                    " (does it require TLS? try --starttls)"
                }
            )));
        }
        let password = &shared.target.password;
        let sasl_failure = |el: &Element| {
            let condition =
                SaslFailure::from_element(el).map_or(SaslFailure::NotAuthorized, |(c, _)| c);
            BenchError::Sasl {
                user: user.to_owned(),
                condition,
            }
        };
        let scram_err = |source| BenchError::Scram {
            user: user.to_owned(),
            source,
        };
        match mech.scram_hash() {
            None => {
                let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
                raw.push(0);
                raw.extend_from_slice(user.as_bytes());
                raw.push(0);
                raw.extend_from_slice(password.as_bytes());
                let auth = format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
                    B64.encode(raw)
                );
                self.send(auth.as_bytes()).await?;
                let answer = self
                    .with_reader(async |r| r.stanza(deadline, "SASL outcome").await)
                    .await?;
                if !answer.is("success", ns::SASL) {
                    return Err(sasl_failure(&answer));
                }
            }
            Some(hash) => {
                let mut ex = ScramExchange::new(hash, user, password, shared.scram.clone());
                let auth = format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
                    mech.name(),
                    B64.encode(ex.client_first())
                );
                self.send(auth.as_bytes()).await?;
                let challenge = self
                    .with_reader(async |r| r.stanza(deadline, "SASL challenge").await)
                    .await?;
                if !challenge.is("challenge", ns::SASL) {
                    return Err(sasl_failure(&challenge));
                }
                let server_first = decode_b64(&challenge)?;
                let response = ex.client_final(&server_first).map_err(scram_err)?;
                if goal == AuthGoal::Prime {
                    self.send(b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
                        .await?;
                    let answer = self
                        .with_reader(async |r| r.stanza(deadline, "SASL abort answer").await)
                        .await?;
                    return match SaslFailure::from_element(&answer) {
                        Some((SaslFailure::Aborted, _)) => Ok(()),
                        _ => Err(BenchError::Protocol(format!(
                            "<abort/> answered with <{}/>",
                            answer.name()
                        ))),
                    };
                }
                let response = format!(
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                    B64.encode(response)
                );
                self.send(response.as_bytes()).await?;
                let outcome = self
                    .with_reader(async |r| r.stanza(deadline, "SASL outcome").await)
                    .await?;
                if !outcome.is("success", ns::SASL) {
                    return Err(sasl_failure(&outcome));
                }
                ex.verify_server_final(&decode_b64(&outcome)?)
                    .map_err(scram_err)?;
            }
        }
        // RFC 6120 §6.4.6: a new stream, keeping bytes the server may have pipelined.
        self.parser.restart();
        Ok(())
    }

    /// RFC 6120 §7: binds `resource` and returns the full JID the server assigned.
    async fn bind(
        &mut self,
        features: &Element,
        resource: &str,
        deadline: Instant,
    ) -> Result<String, BenchError> {
        if !features.has_child("bind", ns::BIND) {
            return Err(BenchError::Protocol(
                "no <bind/> in the features after authentication".into(),
            ));
        }
        let bind = format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{}</resource></bind></iq>",
            parley_xml::escape::text(resource)
        );
        self.send(bind.as_bytes()).await?;
        let answer = self
            .with_reader(async |r| {
                r.stanza_until(deadline, "bind result", |el| {
                    el.name() == "iq" && el.attr("id") == Some("bind1")
                })
                .await
            })
            .await?;
        if answer.attr("type") != Some("result") {
            return Err(BenchError::Protocol(format!(
                "resource binding failed: {answer}"
            )));
        }
        let jid = answer
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(|j| j.text())
            .filter(|j| !j.is_empty())
            .ok_or_else(|| BenchError::Protocol("bind result without a <jid/>".into()))?;
        // RFC 3921 §3 session establishment, only for servers that still insist on it.
        let session = features.get_child("session", ns::SESSION);
        if session.is_some_and(|s| !s.has_child("optional", ns::SESSION)) {
            self.send(
                b"<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
            )
            .await?;
            self.with_reader(async |r| {
                r.stanza_until(deadline, "session result", |el| {
                    el.name() == "iq" && el.attr("id") == Some("sess1")
                })
                .await
            })
            .await?;
        }
        Ok(jid)
    }
}

fn decode_b64(el: &Element) -> Result<Vec<u8>, BenchError> {
    let text = el.text();
    let text = text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text)
        .map_err(|_| BenchError::Protocol(format!("<{}/> payload is not base64", el.name())))
}

async fn write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    data: &[u8],
    addr: SocketAddr,
) -> Result<(), BenchError> {
    match tokio::time::timeout(STEP_TIMEOUT, async {
        io.write_all(data).await?;
        io.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(BenchError::io(format!("writing to {addr}"), e)),
        Err(_) => Err(BenchError::Timeout(format!("writing to {addr}"))),
    }
}

/// An authenticated session with a bound resource.
pub struct Session {
    conn: Conn,
    /// The full JID the server bound.
    pub jid: String,
    /// Counter for iq ids.
    next_id: u32,
}

impl Session {
    /// Connects and logs in as user number `offset` (see [`crate::Target::username`]) with
    /// `resource`: stream, optional STARTTLS, SASL, stream restart, bind. No presence yet.
    pub async fn login(
        shared: &Shared,
        offset: usize,
        resource: &str,
    ) -> Result<Session, BenchError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let target = &shared.target;
        let user = target.username(offset);
        let (mut conn, features) = Conn::establish(shared, offset, deadline).await?;
        conn.authenticate(shared, &features, &user, AuthGoal::Login, deadline)
            .await?;
        let features = conn.open_stream(&target.domain, deadline).await?;
        let jid = conn.bind(&features, resource, deadline).await?;
        Ok(Session {
            conn,
            jid,
            next_id: 0,
        })
    }

    /// The server address this session is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.conn.addr
    }

    /// Drops the connection without closing the stream or TLS, and with a TCP reset
    /// rather than a FIN (`SO_LINGER` 0), as when a client's network goes away: the
    /// server sees the connection die, not a client that said goodbye, so a session under
    /// XEP-0198 resumption hibernates instead of ending.
    pub fn abort(self) {
        let tcp = match &self.conn.stream {
            Stream::Plain(tcp) => Some(tcp),
            Stream::Tls(tls) => Some(tls.get_ref().0),
            // A web transport's driver sees its pipe end and ends the session cleanly.
            Stream::Piped(_) => None,
        };
        // Without the reset the cut is still abrupt for XMPP (no `</stream:stream>`),
        // only a FIN instead of a RST: nothing to do about a failure here.
        if let Some(tcp) = tcp {
            let _ = tcp.set_zero_linger();
        }
        drop(self);
    }

    /// The bare part of [`Session::jid`].
    pub fn bare_jid(&self) -> &str {
        self.jid.split('/').next().unwrap_or(&self.jid)
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), BenchError> {
        self.conn.send(data).await
    }

    /// Reads the next item from the server.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Incoming, BenchError> {
        self.conn
            .with_reader(async |r| r.recv(deadline).await)
            .await
    }

    /// Reads stanzas until `pred` accepts one (see [`Reader::stanza_until`]).
    pub async fn stanza_until(
        &mut self,
        deadline: Instant,
        what: &str,
        pred: impl FnMut(&Element) -> bool,
    ) -> Result<Element, BenchError> {
        self.conn
            .with_reader(async |r| r.stanza_until(deadline, what, pred).await)
            .await
    }

    /// Sends a XEP-0199 ping to the server and waits for the answer. Since the server
    /// handles a client's stanzas in order, the pong also tells that everything sent
    /// before it was taken in.
    pub async fn ping(&mut self) -> Result<(), BenchError> {
        self.send_then_ping(b"").await
    }

    /// Sends `before`, then a ping in the same write, and waits for the pong (any error
    /// answer counts as an answer too: some servers refuse pings to the domain).
    pub async fn send_then_ping(&mut self, before: &[u8]) -> Result<(), BenchError> {
        self.next_id += 1;
        let id = format!("ping{}", self.next_id);
        let mut out = Vec::with_capacity(before.len() + 120);
        out.extend_from_slice(before);
        out.extend_from_slice(
            format!(
                "<iq type='get' id='{id}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
                parley_xml::escape::attr(self.domain())
            )
            .as_bytes(),
        );
        self.send(&out).await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        self.stanza_until(deadline, "ping answer", |el| {
            el.name() == "iq" && el.attr("id") == Some(id.as_str())
        })
        .await?;
        Ok(())
    }

    /// RFC 6121 §4.2: initial presence, followed by a ping whose answer shows the server
    /// has taken the presence in.
    pub async fn available(&mut self) -> Result<(), BenchError> {
        self.send_then_ping(b"<presence/>").await
    }

    fn domain(&self) -> &str {
        let bare = self.bare_jid();
        bare.split_once('@').map_or(bare, |(_, d)| d)
    }

    /// RFC 6120 §4.4: closes the stream and waits (bounded) for the server to close its
    /// side, so the account can log in again at once.
    pub async fn close(mut self) -> Result<(), BenchError> {
        // A server that already hung up makes this write fail; the close is still done.
        let _ = self.conn.send(b"</stream:stream>").await;
        let deadline = Instant::now() + STEP_TIMEOUT;
        self.conn
            .with_reader(async |r| r.drain_to_close(deadline).await)
            .await?;
        let _ = self.conn.stream.shutdown().await;
        Ok(())
    }

    /// Splits into a reader and a writer that separate tasks can own.
    pub fn split(self) -> (SessionReader, SessionWriter) {
        let (read, write) = tokio::io::split(self.conn.stream);
        (
            SessionReader {
                inner: Reader {
                    io: read,
                    parser: self.conn.parser,
                    addr: self.conn.addr,
                    counting: None,
                },
                jid: self.jid.clone(),
                next_id: self.next_id,
            },
            SessionWriter {
                io: write,
                addr: self.conn.addr,
            },
        )
    }
}

/// A connection that has authenticated and restarted its stream but bound no resource:
/// where a client resumes a XEP-0198 session (§5) instead of binding a new one.
pub struct Unbound {
    conn: Conn,
    /// The stream features after authentication (`<sm xmlns='urn:xmpp:sm:3'/>` among
    /// them when the server offers Stream Management).
    pub features: Element,
}

impl Unbound {
    /// Connects to `addr` (not round-robin: a resume goes to the node the caller chose),
    /// negotiates STARTTLS when the target asks for it, and authenticates as user number
    /// `offset`.
    pub async fn connect(
        shared: &Shared,
        addr: SocketAddr,
        offset: usize,
    ) -> Result<Unbound, BenchError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let target = &shared.target;
        let (_, source) = shared.next_endpoints();
        let (mut conn, features) = Conn::establish_at(shared, addr, source, deadline).await?;
        let user = target.username(offset);
        conn.authenticate(shared, &features, &user, AuthGoal::Login, deadline)
            .await?;
        let features = conn.open_stream(&target.domain, deadline).await?;
        Ok(Unbound { conn, features })
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), BenchError> {
        self.conn.send(data).await
    }

    /// Reads stanzas and nonzas until `pred` accepts one (see [`Reader::stanza_until`]).
    pub async fn stanza_until(
        &mut self,
        deadline: Instant,
        what: &str,
        pred: impl FnMut(&Element) -> bool,
    ) -> Result<Element, BenchError> {
        self.conn
            .with_reader(async |r| r.stanza_until(deadline, what, pred).await)
            .await
    }

    /// The session this connection took over once the server said `<resumed/>`; whatever
    /// the server sent after it is still in the parser.
    pub fn into_session(self, jid: String) -> Session {
        Session {
            conn: self.conn,
            jid,
            next_id: 0,
        }
    }
}

/// The reading half of a split [`Session`].
pub struct SessionReader {
    pub inner: Reader<ReadHalf<Stream>>,
    pub jid: String,
    next_id: u32,
}

impl SessionReader {
    /// Reads the next item from the server. Cancel-safe: bytes already read stay in the
    /// parser.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Incoming, BenchError> {
        self.inner.recv(deadline).await
    }

    /// From now on, counts every read that returns data and its bytes, reading up to
    /// `chunk` bytes at a time.
    pub fn count_reads(&mut self, chunk: usize) -> Arc<ReadCounters> {
        let counters = Arc::new(ReadCounters::default());
        self.inner.counting = Some(Counting {
            counters: counters.clone(),
            buf: vec![0; chunk.max(1)].into_boxed_slice(),
        });
        counters
    }

    /// Puts the halves back together.
    pub fn unsplit(self, writer: SessionWriter) -> Session {
        Session {
            conn: Conn {
                stream: self.inner.io.unsplit(writer.io),
                parser: self.inner.parser,
                addr: self.inner.addr,
            },
            jid: self.jid,
            next_id: self.next_id,
        }
    }
}

/// The writing half of a split [`Session`].
pub struct SessionWriter {
    io: WriteHalf<Stream>,
    addr: SocketAddr,
}

impl SessionWriter {
    pub async fn send(&mut self, data: &[u8]) -> Result<(), BenchError> {
        write_all(&mut self.io, data, self.addr).await
    }
}

#[cfg(test)]
mod tests;
