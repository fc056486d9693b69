//! The session actor's side of a web transport. WebSocket and BOSH differ only in how
//! elements reach and leave the client; to the session both are a framed [`Connection`]
//! (one element per write) over a [`Channel`] that the transport shares with it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use parley_proto::sasl::ChannelBindings;
use parley_session::{Connection, Framing, Security, Unit};
use tokio::io::ReadBuf;

/// The transport's half, shared with the session's connection.
pub(crate) trait Channel: Send + Sync + 'static {
    /// Input for the session, as for [`Connection::poll_read`]; EOF when the client left.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// One serialized element from the session, and what it is (bounded: Pending while the
    /// transport holds too much).
    fn poll_write(&self, cx: &mut Context<'_>, unit: Unit, data: &[u8]) -> Poll<io::Result<usize>>;
    /// The session is done writing (closed its stream, or is gone).
    fn shutdown(&self);
    /// Whether the session may offer Stream Management (XEP-0198) over this transport.
    fn stream_management(&self) -> bool {
        true
    }
    /// `websocket` or `bosh` ([`Connection::transport`]).
    fn transport(&self) -> &'static str;
}

/// A framed connection over a web transport.
pub(crate) struct FramedConnection<C: Channel> {
    channel: Arc<C>,
    peer: Option<SocketAddr>,
    secure: bool,
}

impl<C: Channel> FramedConnection<C> {
    /// `secure`: whether the client counts as encrypted ([http] consider_secure).
    pub(crate) fn new(channel: Arc<C>, peer: Option<SocketAddr>, secure: bool) -> Self {
        FramedConnection {
            channel,
            peer,
            secure,
        }
    }
}

impl<C: Channel> Connection for FramedConnection<C> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.channel.poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.channel.poll_write(cx, Unit::Element, data)
    }

    fn poll_write_unit(
        &mut self,
        cx: &mut Context<'_>,
        unit: Unit,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.channel.poll_write(cx, unit, data)
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.channel.shutdown();
        Poll::Ready(Ok(()))
    }

    fn security(&self) -> Security {
        if self.secure {
            Security::Tls
        } else {
            Security::Plain
        }
    }

    fn can_starttls(&self) -> bool {
        false
    }

    fn start_tls(&mut self) -> io::Result<()> {
        Err(io::Error::other(
            "STARTTLS does not exist on web transports",
        ))
    }

    fn channel_bindings(&self) -> ChannelBindings {
        ChannelBindings::default()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn framing(&self) -> Framing {
        Framing::Framed
    }

    fn stream_management(&self) -> bool {
        self.channel.stream_management()
    }

    fn transport(&self) -> &'static str {
        self.channel.transport()
    }
}

impl<C: Channel> Drop for FramedConnection<C> {
    fn drop(&mut self) {
        self.channel.shutdown();
    }
}
