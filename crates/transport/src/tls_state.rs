//! The one state machine of a TCP connection that may become TLS, shared by accepted
//! connections (`conn.rs`, the server side of the handshake) and dialed ones (`dial.rs`,
//! the client side): plain, handshaking, TLS, or failed. Reads and writes wait while the
//! handshake runs; a failed handshake fails every later operation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where a connection's TLS is. `H` is the handshake future, `S` the TLS stream it yields.
pub(crate) enum TlsState<H, S> {
    Plain(TcpStream),
    Handshaking(Box<H>),
    Tls(Box<S>),
    Failed,
}

impl<H, S> TlsState<H, S>
where
    H: Future<Output = io::Result<S>> + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Drives a pending handshake. Ready(Ok(Some(stream))) the moment it completes (for the
    /// caller to read what the handshake established), Ready(Ok(None)) when there is
    /// nothing to drive.
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<&S>>> {
        if let TlsState::Handshaking(handshake) = self {
            match Pin::new(handshake.as_mut()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    *self = TlsState::Failed;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(stream)) => {
                    *self = TlsState::Tls(Box::new(stream));
                    let TlsState::Tls(stream) = self else {
                        unreachable!("just set")
                    };
                    return Poll::Ready(Ok(Some(stream)));
                }
            }
        }
        match self {
            TlsState::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(None)),
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            TlsState::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TlsState::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            TlsState::Handshaking(_) | TlsState::Failed => Poll::Pending,
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            TlsState::Plain(s) => Pin::new(s).poll_write(cx, data),
            TlsState::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            TlsState::Handshaking(_) | TlsState::Failed => Poll::Pending,
        }
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            TlsState::Plain(s) => Pin::new(s).poll_flush(cx),
            TlsState::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            TlsState::Handshaking(_) | TlsState::Failed => Poll::Ready(Ok(())),
        }
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            TlsState::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TlsState::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            TlsState::Handshaking(_) | TlsState::Failed => Poll::Ready(Ok(())),
        }
    }

    /// Whether the connection is still plain.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, TlsState::Plain(_))
    }

    /// Starts the handshake `start` makes from the plain stream (after STARTTLS's
    /// `<proceed/>`); an error when the connection is not plain.
    pub(crate) fn start(&mut self, start: impl FnOnce(TcpStream) -> H) -> io::Result<()> {
        match std::mem::replace(self, TlsState::Failed) {
            TlsState::Plain(stream) => {
                *self = TlsState::Handshaking(Box::new(start(stream)));
                Ok(())
            }
            other => {
                *self = other;
                Err(io::Error::other("TLS is already active"))
            }
        }
    }
}
