//! A c2s connection over TCP, with STARTTLS or direct TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parley_proto::sasl::ChannelBindings;
use parley_session::{Connection, Security};
use rustls::ProtocolVersion;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::Accept;

use crate::tls::TlsSetup;

enum State {
    Plain(TcpStream),
    Handshaking(Box<Accept<TcpStream>>),
    Tls(Box<TlsStream<TcpStream>>),
    Failed,
}

/// A client TCP connection, plain until STARTTLS, or TLS from the first byte (XEP-0368).
pub struct TcpConnection {
    state: State,
    tls: Option<Arc<TlsSetup>>,
    peer: Option<SocketAddr>,
    bindings: ChannelBindings,
    /// The certificate chain the peer presented (server ports ask for one, XEP-0178).
    peer_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl TcpConnection {
    /// A plain connection; STARTTLS is possible when `tls` is given.
    pub fn plain(stream: TcpStream, tls: Option<Arc<TlsSetup>>) -> TcpConnection {
        TcpConnection {
            peer: stream.peer_addr().ok(),
            state: State::Plain(stream),
            tls,
            bindings: ChannelBindings::default(),
            peer_certs: Vec::new(),
        }
    }

    /// A direct-TLS connection (XEP-0368): the handshake starts at once.
    pub fn direct_tls(stream: TcpStream, tls: Arc<TlsSetup>) -> TcpConnection {
        TcpConnection {
            peer: stream.peer_addr().ok(),
            state: State::Handshaking(Box::new(tls.acceptor.accept(stream))),
            tls: Some(tls),
            bindings: ChannelBindings::default(),
            peer_certs: Vec::new(),
        }
    }

    /// Drives a pending handshake. Ready(Ok) once the stream is usable.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Handshaking(accept) = &mut self.state {
            match Pin::new(accept.as_mut()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(stream)) => {
                    self.bindings = self.compute_bindings(&stream);
                    if self.tls.as_ref().is_some_and(|t| t.peer_check.is_some()) {
                        self.peer_certs = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default();
                    }
                    self.state = State::Tls(Box::new(stream));
                }
            }
        }
        match self.state {
            State::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn compute_bindings(&self, stream: &TlsStream<TcpStream>) -> ChannelBindings {
        let (_, conn) = stream.get_ref();
        // RFC 9266: tls-exporter is defined for TLS 1.3.
        let tls_exporter = (conn.protocol_version() == Some(ProtocolVersion::TLSv1_3))
            .then(|| {
                conn.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .ok()
                    .map(|k| k.to_vec())
            })
            .flatten();
        ChannelBindings {
            tls_exporter,
            tls_server_end_point: self.tls.as_ref().map(|t| t.server_end_point.clone()),
        }
    }
}

impl Connection for TcpConnection {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match &mut self.state {
            State::Plain(s) => Pin::new(s).poll_read(cx, buf),
            State::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            State::Handshaking(_) | State::Failed => Poll::Pending,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match &mut self.state {
            State::Plain(s) => Pin::new(s).poll_write(cx, data),
            State::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            State::Handshaking(_) | State::Failed => Poll::Pending,
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Plain(s) => Pin::new(s).poll_flush(cx),
            State::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            State::Handshaking(_) | State::Failed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Plain(s) => Pin::new(s).poll_shutdown(cx),
            State::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            State::Handshaking(_) | State::Failed => Poll::Ready(Ok(())),
        }
    }

    fn security(&self) -> Security {
        match self.state {
            State::Plain(_) => Security::Plain,
            _ => Security::Tls,
        }
    }

    fn can_starttls(&self) -> bool {
        matches!(self.state, State::Plain(_)) && self.tls.is_some()
    }

    fn start_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.clone() else {
            return Err(io::Error::other("no TLS configuration"));
        };
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Plain(stream) => {
                self.state = State::Handshaking(Box::new(tls.acceptor.accept(stream)));
                Ok(())
            }
            other => {
                self.state = other;
                Err(io::Error::other("TLS is already active"))
            }
        }
    }

    fn channel_bindings(&self) -> ChannelBindings {
        self.bindings.clone()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn peer_certificate_valid_for(&self, domain: &str) -> bool {
        match self.tls.as_ref().and_then(|t| t.peer_check.as_ref()) {
            Some(check) => crate::s2s_tls::valid_for(check, &self.peer_certs, domain),
            None => false,
        }
    }
}
