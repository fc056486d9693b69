//! A raw XMPP client for tests: real TCP and TLS sockets, explicit steps, strict timeouts.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use parley_proto::ns;
use parley_proto::sasl::{ChannelBindingType, Mechanism, SaslFailure, ScramClient};
use parley_xml::{Element, Event, Limits, StreamHeader, StreamParser, XmlError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::TIMEOUT;

/// What the client read next.
#[derive(Debug)]
pub enum Received {
    /// The server's stream header.
    Header(StreamHeader),
    /// A top-level element (stanza or nonza, `<stream:features/>` and `<stream:error/>` too).
    Element(Element),
    /// `</stream:stream>`.
    Close,
    /// The server closed the connection.
    Eof,
}

/// Test failures with a description of what was expected.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing arrived in time.
    Timeout(String),
    /// A socket error.
    Io(std::io::Error),
    /// The server sent bad XML.
    Xml(XmlError),
    /// Something else arrived than expected.
    Unexpected(String),
    /// SASL failed with this condition and text.
    Sasl(SaslFailure, Option<String>),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// How [`Client::send_raw`] hands bytes to the socket. RFC 6120 §4.2: a stream is a byte
/// stream, so a server must behave the same however the client's writes are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// One write per call.
    #[default]
    Whole,
    /// One write (and flush) per byte.
    Bytewise,
    /// Writes cut at pseudo-random points into chunks of 1..=`max_chunk` bytes (a xorshift
    /// sequence from `seed`, so a failure can be replayed), with a short pause after each
    /// chunk so that the pieces reach the server separately.
    RandomCuts {
        /// Seeds the cut points.
        seed: u64,
        /// The largest chunk.
        max_chunk: usize,
    },
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// One client connection.
pub struct Client {
    io: Io,
    parser: StreamParser,
    /// The host the client asks for in its headers.
    pub host: String,
    /// The bound JID, after [`Client::bind`].
    pub jid: Option<String>,
    /// The last `<stream:features/>` received.
    pub features: Option<Element>,
    tls_exporter: Option<Vec<u8>>,
    server_end_point: Option<Vec<u8>>,
    write_mode: WriteMode,
    /// State of the xorshift that picks [`WriteMode::RandomCuts`] chunk sizes.
    cut_state: u64,
    /// Elements the waiting helpers of [`crate::im`] read past, kept for their later calls
    /// (servers may interleave pushes, presence and replies in any order). [`Client::recv`]
    /// and [`Client::recv_until`] do not look here.
    pub(crate) stash: std::collections::VecDeque<Element>,
}

impl Client {
    /// A plain TCP connection to `addr` for host `localhost`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client::over(stream)
    }

    /// [`Client::connect`] from the loopback address `source` (any of 127.0.0.0/8), so
    /// that a test can play several client addresses.
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind the source address");
        Client::over(socket.connect(addr).await.expect("connect"))
    }

    /// Connects and sends `prefix` before anything of XMPP (a PROXY protocol header, as a
    /// load balancer would).
    pub async fn connect_after(addr: SocketAddr, prefix: &[u8]) -> Client {
        use tokio::io::AsyncWriteExt;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(prefix).await.expect("write the prefix");
        Client::over(stream)
    }

    fn over(stream: TcpStream) -> Client {
        stream.set_nodelay(true).ok();
        Client {
            io: Io::Plain(stream),
            parser: StreamParser::new(big_limits()),
            host: "localhost".into(),
            jid: None,
            features: None,
            tls_exporter: None,
            server_end_point: None,
            write_mode: WriteMode::Whole,
            cut_state: 1,
            stash: std::collections::VecDeque::new(),
        }
    }

    /// Changes how later writes are cut (see [`WriteMode`]).
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        if let WriteMode::RandomCuts { seed, .. } = mode {
            // xorshift never leaves zero.
            self.cut_state = seed.max(1);
        }
        self.write_mode = mode;
    }

    /// A direct-TLS connection (XEP-0368).
    pub async fn connect_tls(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.handshake().await.expect("TLS handshake");
        c
    }

    /// Sends raw bytes, cut as the [`WriteMode`] says.
    pub async fn send_raw(&mut self, data: impl AsRef<[u8]>) -> std::io::Result<()> {
        let mut rest = data.as_ref();
        let max_chunk = match self.write_mode {
            WriteMode::Whole => return self.write_chunk(rest).await,
            WriteMode::Bytewise => 1,
            WriteMode::RandomCuts { max_chunk, .. } => max_chunk.max(1),
        };
        while !rest.is_empty() {
            let n = match self.write_mode {
                WriteMode::RandomCuts { .. } => {
                    let mut x = self.cut_state;
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    self.cut_state = x;
                    1 + (x % max_chunk as u64) as usize
                }
                _ => 1,
            };
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            self.write_chunk(chunk).await?;
            rest = tail;
            if matches!(self.write_mode, WriteMode::RandomCuts { .. }) {
                // Pacing, not waiting for an outcome: the server answers no single chunk, so
                // no event can show it was read alone; a pause makes separate reads likely.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        Ok(())
    }

    async fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Io::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Io::Gone => Err(std::io::Error::other("connection gone")),
        }
    }

    /// Sends an element (in `jabber:client`).
    pub async fn send(&mut self, el: &Element) {
        self.send_raw(el.to_bytes_in(Some(ns::CLIENT)))
            .await
            .expect("send");
    }

    /// Sends a client stream header for [`Client::host`].
    pub async fn send_header(&mut self) {
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            self.host
        );
        self.send_raw(header).await.expect("send header");
    }

    /// Reads the next thing the server sends.
    pub async fn recv(&mut self) -> Result<Received, ClientError> {
        loop {
            match self.parser.next_event() {
                Ok(Some(Event::StreamOpen(h))) => return Ok(Received::Header(h)),
                Ok(Some(Event::Stanza(el))) => return Ok(Received::Element(el)),
                Ok(Some(Event::StreamClose)) => return Ok(Received::Close),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Xml(e)),
            }
            let mut buf = [0u8; 8192];
            let read = match &mut self.io {
                Io::Plain(s) => timeout(TIMEOUT, s.read(&mut buf)).await,
                Io::Tls(s) => timeout(TIMEOUT, s.read(&mut buf)).await,
                Io::Gone => return Ok(Received::Eof),
            };
            match read {
                Err(_) => return Err(ClientError::Timeout("waiting for data".into())),
                Ok(Ok(0)) => return Ok(Received::Eof),
                Ok(Ok(n)) => self.parser.feed(&buf[..n]),
                // A reset after the server closed counts as the end of the connection.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(Received::Eof)
                }
                Ok(Err(e)) => return Err(ClientError::Io(e)),
            }
        }
    }

    /// Reads the next element, failing on anything else.
    pub async fn recv_element(&mut self) -> Result<Element, ClientError> {
        match self.recv().await? {
            Received::Element(el) => Ok(el),
            other => Err(ClientError::Unexpected(format!(
                "expected an element, got {other:?}"
            ))),
        }
    }

    /// Reads elements until one matches `pred`, skipping others (e.g. presence).
    pub async fn recv_until(
        &mut self,
        mut pred: impl FnMut(&Element) -> bool,
    ) -> Result<Element, ClientError> {
        loop {
            let el = self.recv_element().await?;
            if pred(&el) {
                return Ok(el);
            }
        }
    }

    /// Sends a header and reads the server's header and features.
    pub async fn open(&mut self) -> Result<Element, ClientError> {
        self.send_header().await;
        match self.recv().await? {
            Received::Header(_) => {}
            other => {
                return Err(ClientError::Unexpected(format!(
                    "expected a header, got {other:?}"
                )))
            }
        }
        let features = self.recv_element().await?;
        if !features.is("features", ns::STREAM) {
            return Err(ClientError::Unexpected(format!(
                "expected features, got {features}"
            )));
        }
        self.features = Some(features.clone());
        Ok(features)
    }

    /// Expects the server to close with a stream error; returns its condition. Also checks
    /// that `</stream:stream>` and the end of the connection follow (RFC 6120 §4.9.1.1).
    pub async fn expect_stream_error(&mut self) -> Result<String, ClientError> {
        let el = self.expect_stream_error_element().await?;
        let condition = el
            .children()
            .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
            .map(|c| c.name().to_owned());
        condition.ok_or_else(|| ClientError::Unexpected(format!("no condition in {el}")))
    }

    /// Reads past whatever else the server still sends (stanzas, pushes) to the stream
    /// error that ends the stream; its condition and `<text/>`. For sessions the server ends
    /// in the middle of their life (revoked, removed, signed out).
    pub async fn stream_error_after_traffic(&mut self) -> (String, Option<String>) {
        loop {
            match self.recv().await.expect("reading until the stream error") {
                Received::Element(el) if el.is("error", ns::STREAM) => {
                    let condition = el
                        .children()
                        .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default();
                    let text = el.get_child("text", ns::STREAM_ERRORS).map(|t| t.text());
                    return (condition, text);
                }
                Received::Eof | Received::Close => panic!("closed without a stream error"),
                _ => {}
            }
        }
    }

    /// [`Client::expect_stream_error`], returning the whole `<stream:error/>` for rules about
    /// its text or application-specific condition (RFC 6120 §4.9.4).
    pub async fn expect_stream_error_element(&mut self) -> Result<Element, ClientError> {
        let error = loop {
            match self.recv().await? {
                Received::Header(_) => continue,
                Received::Element(el) if el.is("error", ns::STREAM) => break el,
                Received::Element(el) if el.is("features", ns::STREAM) => continue,
                other => {
                    return Err(ClientError::Unexpected(format!(
                        "expected a stream error, got {other:?}"
                    )))
                }
            }
        };
        match self.recv().await? {
            Received::Close => {}
            other => {
                return Err(ClientError::Unexpected(format!(
                    "expected </stream:stream> after the error, got {other:?}"
                )))
            }
        }
        self.expect_eof().await?;
        Ok(error)
    }

    /// Expects the connection to end (after the client closes its side too).
    pub async fn expect_eof(&mut self) -> Result<(), ClientError> {
        // Close our side, as a polite client does, so that the server can finish.
        let _ = self.send_raw("</stream:stream>").await;
        loop {
            match self.recv().await {
                Ok(Received::Eof) => return Ok(()),
                Ok(Received::Close) => continue,
                Ok(other) => {
                    return Err(ClientError::Unexpected(format!(
                        "expected EOF, got {other:?}"
                    )))
                }
                Err(ClientError::Io(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let Io::Plain(stream) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(ClientError::Unexpected("TLS is already up".into()));
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
        let connector = TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(self.host.clone()).expect("server name");
        let tls = timeout(TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| ClientError::Timeout("TLS handshake".into()))?
            .map_err(ClientError::Io)?;
        let (_, conn) = tls.get_ref();
        self.tls_exporter = (conn.protocol_version() == Some(ProtocolVersion::TLSv1_3))
            .then(|| {
                conn.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .ok()
                    .map(|k| k.to_vec())
            })
            .flatten();
        self.server_end_point = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Sha256::digest(c.as_ref()).to_vec());
        self.io = Io::Tls(Box::new(tls));
        self.parser = StreamParser::new(big_limits());
        Ok(())
    }

    /// RFC 6120 §5: `<starttls/>`, `<proceed/>`, handshake.
    pub async fn starttls(&mut self) -> Result<(), ClientError> {
        self.send(&Element::new("starttls", ns::TLS)).await;
        let answer = self.recv_element().await?;
        if !answer.is("proceed", ns::TLS) {
            return Err(ClientError::Unexpected(format!(
                "expected <proceed/>, got {answer}"
            )));
        }
        self.handshake().await
    }

    /// RFC 6120 §5.4.3.3: sends `<starttls/>` followed by `extra` in the same write (as an
    /// attacker injecting plaintext would), expects `<proceed/>` and runs the handshake.
    pub async fn starttls_pipelined(&mut self, extra: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let mut data = Element::new("starttls", ns::TLS).to_bytes_in(Some(ns::CLIENT));
        data.extend_from_slice(extra.as_ref());
        self.send_raw(data).await.map_err(ClientError::Io)?;
        let answer = self.recv_element().await?;
        if !answer.is("proceed", ns::TLS) {
            return Err(ClientError::Unexpected(format!(
                "expected <proceed/>, got {answer}"
            )));
        }
        self.handshake().await
    }

    /// RFC 6120 §6.4.6: expect a fresh server stream header, keeping bytes already read. For
    /// tests that run SASL by hand ([`Client::auth`] does this itself on `<success/>`).
    pub fn restart_parser(&mut self) {
        self.parser.restart();
    }

    /// Channel-binding data of this connection, as the client computes it.
    pub fn binding(&self, ty: ChannelBindingType) -> Option<Vec<u8>> {
        match ty {
            ChannelBindingType::TlsExporter => self.tls_exporter.clone(),
            ChannelBindingType::TlsServerEndPoint => self.server_end_point.clone(),
        }
    }

    /// Authenticates with `mechanism`. For -PLUS mechanisms `cb` names the binding type
    /// (tls-exporter when None).
    pub async fn auth(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        self.auth_with(mechanism, user, password, ChannelBindingType::TlsExporter)
            .await
    }

    /// [`Client::auth`] with an explicit channel-binding type.
    pub async fn auth_with(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
        cb: ChannelBindingType,
    ) -> Result<(), ClientError> {
        if mechanism == Mechanism::OAuthBearer {
            // RFC 7628 §3.1: `password` is the bearer token; `user` the authzid (or empty).
            let authzid = if user.is_empty() {
                String::new()
            } else {
                format!("a={user}")
            };
            let payload = format!("n,{authzid},\x01auth=Bearer {password}\x01\x01");
            self.send(
                &Element::new("auth", ns::SASL)
                    .with_attr("mechanism", "OAUTHBEARER")
                    .with_text(B64.encode(payload)),
            )
            .await;
            return match self.sasl_outcome().await? {
                // §3.2.2: an error challenge (JSON); the client answers \x01 and fails.
                Some(challenge) if !challenge.is_empty() => {
                    self.send(&Element::new("response", ns::SASL).with_text(B64.encode("\x01")))
                        .await;
                    self.sasl_outcome()
                        .await
                        .map(|_| ())
                        .and(Err(ClientError::Sasl(
                            parley_proto::sasl::SaslFailure::NotAuthorized,
                            Some(String::from_utf8_lossy(&challenge).into_owned()),
                        )))
                }
                _ => Ok(()),
            };
        }
        let Some(hash) = mechanism.hash() else {
            let payload = format!("\0{user}\0{password}");
            self.send(
                &Element::new("auth", ns::SASL)
                    .with_attr("mechanism", "PLAIN")
                    .with_text(B64.encode(payload)),
            )
            .await;
            return self.sasl_outcome().await.map(|_| ());
        };
        let binding = if mechanism.is_plus() {
            Some((cb, self.binding(cb).expect("binding data over TLS")))
        } else {
            None
        };
        let mut scram = ScramClient::new(hash, user, password, binding, mechanism.is_plus());
        let first = scram.client_first();
        self.send(
            &Element::new("auth", ns::SASL)
                .with_attr("mechanism", mechanism.name())
                .with_text(B64.encode(first)),
        )
        .await;
        let challenge = self.sasl_outcome().await?;
        let server_first = challenge.expect("challenge");
        let last = scram
            .client_final(&server_first)
            .map_err(|f| ClientError::Sasl(f, Some("client_final".into())))?;
        self.send(&Element::new("response", ns::SASL).with_text(B64.encode(last)))
            .await;
        let success = self.sasl_outcome().await?;
        scram
            .verify_server_final(&success.unwrap_or_default())
            .map_err(|f| ClientError::Sasl(f, Some("server signature".into())))?;
        Ok(())
    }

    /// Reads a SASL answer: Ok(Some(data)) for a challenge or success with data.
    async fn sasl_outcome(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let el = self.recv_element().await?;
        if el.ns() != ns::SASL {
            return Err(ClientError::Unexpected(format!(
                "expected a SASL answer, got {el}"
            )));
        }
        if el.name() == "success" {
            // RFC 6120 §6.4.6: the server opens a fresh stream once the client restarts.
            self.parser.restart();
        }
        match el.name() {
            "challenge" | "success" => {
                let text = el.text();
                let data = B64
                    .decode(text.trim())
                    .map_err(|e| ClientError::Unexpected(format!("bad base64: {e}")))?;
                Ok(Some(data))
            }
            "failure" => {
                let (failure, text) = SaslFailure::from_element(&el)
                    .ok_or_else(|| ClientError::Unexpected(format!("bad failure {el}")))?;
                Err(ClientError::Sasl(failure, text))
            }
            other => Err(ClientError::Unexpected(format!(
                "unexpected SASL element {other}"
            ))),
        }
    }

    /// RFC 6120 §7: binds `resource` (or a generated one); returns the full JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> Result<String, Element> {
        let mut bind = Element::new("bind", ns::BIND);
        if let Some(r) = resource {
            bind.push_child(Element::new("resource", ns::BIND).with_text(r));
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", "bind-1")
            .with_child(bind);
        self.send(&iq).await;
        let reply = self
            .recv_until(|el| el.attr("id") == Some("bind-1"))
            .await
            .expect("bind reply");
        if reply.attr("type") != Some("result") {
            return Err(reply);
        }
        let jid = reply
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(|j| j.text())
            .expect("bound jid");
        self.jid = Some(jid.clone());
        Ok(jid)
    }

    /// Connects, negotiates STARTTLS and authenticates with SCRAM-SHA-256 (password
    /// `password`), leaving the restarted stream open and unbound.
    pub async fn authed(addr: SocketAddr, user: &str) -> Client {
        Client::connect(addr).await.authenticate(user).await
    }

    /// [`Client::authed`] from the loopback address `source` (any of 127.0.0.0/8).
    pub async fn authed_from(addr: SocketAddr, source: std::net::IpAddr, user: &str) -> Client {
        Client::connect_from(addr, source)
            .await
            .authenticate(user)
            .await
    }

    /// STARTTLS and SCRAM-SHA-256 on a fresh connection; panics on any failure.
    async fn authenticate(mut self, user: &str) -> Client {
        self.open().await.expect("open");
        self.starttls().await.expect("starttls");
        self.open().await.expect("open after TLS");
        self.auth(Mechanism::ScramSha256, user, "password")
            .await
            .expect("auth");
        self.open().await.expect("open after SASL");
        self
    }

    /// [`Client::authed`] that reports instead of panicking: for clients that reconnect
    /// while nodes come and go (a refused or dropped connection is an answer, not a bug).
    pub async fn try_authed(addr: SocketAddr, user: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await.map_err(ClientError::Io)?;
        let mut c = Client::over(stream);
        c.open().await?;
        c.starttls().await?;
        c.open().await?;
        c.auth(Mechanism::ScramSha256, user, "password").await?;
        c.open().await?;
        Ok(c)
    }

    /// [`Client::login`] as `user@host` (a server serving `host` besides, or instead of,
    /// `localhost`).
    pub async fn login_at(
        addr: SocketAddr,
        host: &str,
        user: &str,
        resource: Option<&str>,
    ) -> Client {
        let mut c = Client::connect(addr).await;
        c.host = host.to_owned();
        let mut c = c.authenticate(user).await;
        c.bind(resource).await.expect("bind");
        c
    }

    /// Elements received and not consumed yet (stashed by the `expect_*` helpers while
    /// they looked for something else), oldest first.
    pub fn stashed(&self) -> impl Iterator<Item = &Element> {
        self.stash.iter()
    }

    /// A connection accepted by the test itself (a test playing a server that Parley
    /// dials).
    pub fn accepted(stream: TcpStream) -> Client {
        Client::over(stream)
    }

    /// [`Client::authed`], then binds `resource`.
    pub async fn login(addr: SocketAddr, user: &str, resource: Option<&str>) -> Client {
        let mut c = Client::authed(addr, user).await;
        c.bind(resource).await.expect("bind");
        c
    }

    /// Sends an iq and waits for the reply with the same id.
    pub async fn iq(&mut self, iq: &Element) -> Result<Element, ClientError> {
        let id = iq.attr("id").expect("iq id").to_owned();
        self.send(iq).await;
        self.recv_until(|el| el.is("iq", ns::CLIENT) && el.attr("id") == Some(id.as_str()))
            .await
    }

    /// Sends initial presence.
    pub async fn available(&mut self) {
        self.send(&Element::new("presence", ns::CLIENT)).await;
    }

    /// Like [`Client::recv`], but waits at most `wait` for more data; `Ok(None)` when nothing
    /// complete arrived in time. `Duration::ZERO` only takes what is already there, which lets
    /// a test that sends a lot keep draining what the server answers without blocking.
    pub async fn recv_within(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<Option<Received>, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.parser.next_event() {
                Ok(Some(Event::StreamOpen(h))) => return Ok(Some(Received::Header(h))),
                Ok(Some(Event::Stanza(el))) => return Ok(Some(Received::Element(el))),
                Ok(Some(Event::StreamClose)) => return Ok(Some(Received::Close)),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Xml(e)),
            }
            let mut buf = [0u8; 8192];
            // A timed-out read consumed nothing, so no data is lost between calls.
            let read = match &mut self.io {
                Io::Plain(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Io::Tls(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Io::Gone => return Ok(Some(Received::Eof)),
            };
            match read {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Ok(Some(Received::Eof)),
                Ok(Ok(n)) => self.parser.feed(&buf[..n]),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(Some(Received::Eof))
                }
                Ok(Err(e)) => return Err(ClientError::Io(e)),
            }
        }
    }
}

impl Client {
    /// Makes dropping this client reset the TCP connection (SO_LINGER 0) instead of closing
    /// it, for tests about connections that die abruptly.
    pub(crate) fn reset_on_drop(&self) {
        let tcp = match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
            Io::Gone => return,
        };
        // SO_LINGER is deprecated in tokio because a non-zero linger blocks the dropping
        // thread; a zero linger never blocks, it makes the kernel send RST at once.
        #[allow(deprecated)]
        tcp.set_linger(Some(std::time::Duration::ZERO))
            .expect("SO_LINGER 0");
    }
}

fn big_limits() -> Limits {
    Limits {
        max_stanza_bytes: 16 << 20,
        max_depth: 64,
        max_attrs: 256,
        max_namespace_declarations: 4096,
    }
}

/// Tests talk to a self-signed server certificate.
#[derive(Debug)]
struct AcceptAnyCert;

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
