//! A c2s connection over TCP, with STARTTLS or direct TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use parley_proto::sasl::ChannelBindings;
use parley_session::{Connection, Security};
use rustls::ProtocolVersion;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::Accept;

use crate::tls::TlsSetup;
use crate::tls_state::TlsState;

type State = TlsState<Accept<TcpStream>, TlsStream<TcpStream>>;

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
            state: TlsState::Plain(stream),
            tls,
            bindings: ChannelBindings::default(),
            peer_certs: Vec::new(),
        }
    }

    /// The client is `peer` (named by a PROXY protocol header), not the TCP peer.
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> TcpConnection {
        self.peer = Some(peer);
        self
    }

    /// A direct-TLS connection (XEP-0368): the handshake starts at once.
    pub fn direct_tls(stream: TcpStream, tls: Arc<TlsSetup>) -> TcpConnection {
        TcpConnection {
            peer: stream.peer_addr().ok(),
            state: TlsState::Handshaking(Box::new(tls.acceptor.accept(stream))),
            tls: Some(tls),
            bindings: ChannelBindings::default(),
            peer_certs: Vec::new(),
        }
    }

    /// Drives a pending handshake. Ready(Ok) once the stream is usable; what the
    /// handshake established (channel bindings, the peer's certificates) is read then.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = match self.state.poll_handshake(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(Some(stream))) => {
                let certs = self
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.peer_check.is_some())
                    .then(|| {
                        stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default()
                    });
                (compute_bindings(self.tls.as_deref(), stream), certs)
            }
        };
        self.bindings = done.0;
        if let Some(certs) = done.1 {
            self.peer_certs = certs;
        }
        Poll::Ready(Ok(()))
    }
}

/// RFC 9266 `tls-exporter` (TLS 1.3 only) and RFC 5929 `tls-server-end-point`, from a
/// completed handshake.
fn compute_bindings(tls: Option<&TlsSetup>, stream: &TlsStream<TcpStream>) -> ChannelBindings {
    let (_, conn) = stream.get_ref();
    let tls_exporter = (conn.protocol_version() == Some(ProtocolVersion::TLSv1_3))
        .then(|| {
            conn.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                .ok()
                .map(|k| k.to_vec())
        })
        .flatten();
    ChannelBindings {
        tls_exporter,
        tls_server_end_point: tls.map(|t| t.server_end_point.clone()),
    }
}

impl Connection for TcpConnection {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.state.poll_read(cx, buf),
            other => other,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.state.poll_write(cx, data),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.poll_shutdown(cx)
    }

    fn security(&self) -> Security {
        if self.state.is_plain() {
            Security::Plain
        } else {
            Security::Tls
        }
    }

    fn can_starttls(&self) -> bool {
        self.state.is_plain() && self.tls.is_some()
    }

    fn start_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.clone() else {
            return Err(io::Error::other("no TLS configuration"));
        };
        self.state.start(|stream| tls.acceptor.accept(stream))
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
