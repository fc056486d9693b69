//! The one interface between a session and its transport.
//!
//! Transports (TCP, TLS, later WebSocket and BOSH) implement [`Connection`]; the session drives
//! it from its own actor task with plain poll functions, so a connection costs no extra task,
//! no channel and no buffer of its own while idle.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use parley_proto::sasl::ChannelBindings;
use parley_proto::stream_error::StreamCondition;
use tokio::io::ReadBuf;

/// How the bytes of a connection are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP.
    Plain,
    /// TLS, negotiated with STARTTLS or directly (XEP-0368).
    Tls,
}

/// How the XML stream is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One byte stream: `<stream:stream>` … `</stream:stream>` (RFC 6120).
    Stream,
    /// One element per message: `<open/>` … `<close/>` (RFC 7395, WebSocket; also BOSH's
    /// bodies carry whole elements). `poll_write` then always gets exactly one element.
    Framed,
}

/// What one unit the session writes is: a transport that speaks the start and the end of
/// the stream itself (BOSH: they are attributes of its `<body/>`, XEP-0206 §5–§6) learns
/// them from here, never by reading the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The stream header: `<open/>` (RFC 7395 §3.3.2) or `<stream:stream>` (RFC 6120 §4.7).
    Header,
    /// A stanza or a negotiation element (features, SASL, STARTTLS answers).
    Element,
    /// The stream error the stream ends with (RFC 6120 §4.9), with its condition.
    StreamError(StreamCondition),
    /// The end of the stream: `<close/>` (RFC 7395 §3.6) or `</stream:stream>` (RFC 6120
    /// §4.4). Nothing is written after it.
    Close,
}

/// A client connection as a session sees it.
pub trait Connection: Unpin + 'static {
    /// Reads whatever is available into `buf` (RFC 6120 streams are byte streams: any cut is fine).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// Writes a prefix of `data`.
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;
    /// Writes a prefix of one unit of the session's output, saying what it is. A framed
    /// connection ([`Framing::Framed`]) gets exactly one whole unit per call; a byte stream
    /// may get several at once (then `unit` is the first one's kind). The default ignores
    /// the kind: bytes are bytes.
    fn poll_write_unit(
        &mut self,
        cx: &mut Context<'_>,
        unit: Unit,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let _ = unit;
        self.poll_write(cx, data)
    }
    /// Flushes buffered output (TLS records).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write side down after the final `</stream:stream>`.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Current protection of the connection.
    fn security(&self) -> Security;
    /// Whether STARTTLS (RFC 6120 §5) can be offered now.
    fn can_starttls(&self) -> bool;
    /// Starts the TLS handshake after `<proceed/>` was flushed. Later polls drive the handshake.
    fn start_tls(&mut self) -> io::Result<()>;
    /// Channel-binding data for SCRAM-PLUS (RFC 5929, RFC 9266); empty before TLS.
    fn channel_bindings(&self) -> ChannelBindings;
    /// The client's address.
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// How the stream is carried.
    fn framing(&self) -> Framing {
        Framing::Stream
    }
    /// What carries the stream, as the admin API shows it: `tcp` (TLS or not: the record's
    /// `secure` and its transport `tls` say), `websocket` or `bosh`.
    fn transport(&self) -> &'static str {
        "tcp"
    }
    /// Whether Stream Management (XEP-0198) is offered on this transport. BOSH has its own
    /// recovery (RIDs, XEP-0124 §14) and says no.
    fn stream_management(&self) -> bool {
        true
    }
    /// Server streams (XEP-0178): whether the peer presented, over TLS, a certificate valid
    /// for `domain` under the configured trust anchors. False where there is none.
    fn peer_certificate_valid_for(&self, domain: &str) -> bool {
        let _ = domain;
        false
    }
    /// Server streams (XEP-0178): whether this (outgoing) connection presents our
    /// certificate to the peer, so that SASL EXTERNAL can be tried.
    fn presents_certificate(&self) -> bool {
        false
    }
}

/// What a session holds while it has no connection: the socket of a hibernating one
/// (XEP-0198 §5) was released when it died, and reads end, writes fail; an outgoing server
/// stream is still being dialed, and nothing is read or written until the real connection
/// replaces this one (the driver is woken then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoConnection {
    Gone,
    Dialing,
}

pub(crate) use NoConnection::{Dialing, Gone};

impl Connection for NoConnection {
    fn poll_read(&mut self, _cx: &mut Context<'_>, _buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Gone => Poll::Ready(Ok(())),
            Dialing => Poll::Pending,
        }
    }
    fn poll_write(&mut self, _cx: &mut Context<'_>, _data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            Dialing => Poll::Pending,
        }
    }
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn security(&self) -> Security {
        Security::Plain
    }
    fn can_starttls(&self) -> bool {
        false
    }
    fn start_tls(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::NotConnected.into())
    }
    fn channel_bindings(&self) -> ChannelBindings {
        ChannelBindings::default()
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
}
