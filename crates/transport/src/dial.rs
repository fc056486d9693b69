//! Outgoing server-to-server connections: the transport's side of the session crate's
//! [`Dialer`] seam.
//!
//! A dial resolves the remote domain ([`S2sResolver`]: static routes, then SRV records,
//! then the domain itself), and tries each target's addresses in order until one accepts
//! the TCP connection. `_xmpps-server` targets get TLS from the first byte (XEP-0368, ALPN
//! `xmpp-server`); the others stay plain until the session's STARTTLS. TLS names the remote
//! domain, not the SRV target (RFC 6120 §13.7.2.1). The certificate is checked against the
//! system's trust anchors (or `[s2s] ca_file`); a domain that must present a valid one
//! (`[s2s] require_valid_certificates`) is refused otherwise, any other is accepted
//! encrypted, to be authenticated by dialback (XEP-0220), as Prosody does by default.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parley_proto::sasl::ChannelBindings;
use parley_session::s2s::{DialError, DialFuture, Dialed, Dialer, SecureDomains};
use parley_session::{Connection, Security};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{Connect, TlsConnector};
use tracing::debug;

use crate::resolve::S2sResolver;
use crate::tls::TransportError;
use crate::tls_state::TlsState;

/// Dials remote servers over TCP, with TLS.
pub struct TcpDialer {
    /// Our certificate chain, when it validates under the trust anchors: EXTERNAL is tried
    /// for the local domains it is valid for. A certificate we cannot validate ourselves
    /// (self-signed) would only buy a SASL failure, after which some servers (ejabberd)
    /// accept no dialback on the stream.
    presents: Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>>,
    own_check: Option<Arc<WebPkiServerVerifier>>,
    resolver: Arc<S2sResolver>,
    starttls: TlsConnector,
    direct: TlsConnector,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for TcpDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpDialer").finish_non_exhaustive()
    }
}

impl TcpDialer {
    /// A dialer resolving with `resolver`, trusting `ca_file` (else the system's CA
    /// bundle), insisting on valid certificates for `secure`, presenting `identity` (our
    /// certificate chain and key, for SASL EXTERNAL, XEP-0178) and giving each TCP attempt
    /// `attempt_timeout`.
    pub fn new(
        resolver: Arc<S2sResolver>,
        ca_file: Option<&std::path::Path>,
        secure: SecureDomains,
        identity: Option<&crate::TlsSetup>,
        attempt_timeout: Duration,
    ) -> Result<TcpDialer, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki =
            crate::s2s_tls::verifier(crate::s2s_tls::load_roots(ca_file)?, provider.clone())?;
        let own_check = webpki.clone();
        let verifier = Arc::new(S2sVerifier {
            webpki,
            secure,
            provider: provider.clone(),
        });
        let config = |alpn: Vec<Vec<u8>>| -> Result<TlsConnector, TransportError> {
            let c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TransportError::Tls(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone());
            let mut c = match identity {
                Some(tls) => {
                    let (chain, key) = tls.client_identity();
                    c.with_client_auth_cert(chain, key)
                        .map_err(|e| TransportError::Tls(e.to_string()))?
                }
                None => c.with_no_client_auth(),
            };
            c.alpn_protocols = alpn;
            Ok(TlsConnector::from(Arc::new(c)))
        };
        Ok(TcpDialer {
            presents: identity.map(|tls| Arc::new(tls.client_identity().0)),
            own_check,
            resolver,
            starttls: config(Vec::new())?,
            // XEP-0368 §3: direct TLS to a server names its protocol.
            direct: config(vec![b"xmpp-server".to_vec()])?,
            attempt_timeout,
        })
    }
}

impl Dialer for TcpDialer {
    fn dial(&self, local: &str, remote: &str) -> DialFuture {
        let resolver = self.resolver.clone();
        let (starttls, direct) = (self.starttls.clone(), self.direct.clone());
        let attempt_timeout = self.attempt_timeout;
        let presents = match (&self.presents, &self.own_check) {
            (Some(chain), Some(check)) => crate::s2s_tls::valid_for(check, chain, local),
            _ => false,
        };
        let remote = remote.to_owned();
        Box::pin(async move {
            let name = ServerName::try_from(remote.clone())
                .map_err(|_| DialError::NotFound(format!("{remote} is not a DNS name")))?;
            let targets = resolver
                .targets(&remote)
                .await
                .map_err(|e| DialError::NotFound(e.to_string()))?;
            let mut last = format!("{remote}: no address to try");
            let mut timed_out = false;
            for target in targets {
                let addrs = match resolver.addresses(&target).await {
                    Ok(a) => a,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
                for addr in addrs {
                    match tokio::time::timeout(attempt_timeout, TcpStream::connect(addr)).await {
                        Ok(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            let mut conn = if target.direct_tls {
                                OutgoingConnection::direct_tls(stream, &direct, name.clone())
                            } else {
                                OutgoingConnection::plain(stream, starttls.clone(), name.clone())
                            };
                            conn.presents = presents;
                            return Ok(Dialed {
                                conn: Box::new(conn),
                                target: format!("{}:{} ({addr})", target.host, target.port),
                            });
                        }
                        Ok(Err(e)) => last = format!("{addr}: {e}"),
                        Err(_) => {
                            timed_out = true;
                            last = format!("{addr}: no answer in {attempt_timeout:?}");
                        }
                    }
                }
            }
            Err(if timed_out {
                DialError::Timeout(last)
            } else {
                DialError::NotFound(last)
            })
        })
    }
}

/// Accepts a certificate that validates for the remote domain; any other one only for
/// domains that need not present a valid one (they are authenticated by dialback, over an
/// encrypted stream all the same).
#[derive(Debug)]
struct S2sVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    secure: SecureDomains,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for S2sVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::General("no trust anchors configured".into())),
        };
        let domain = match server_name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            other => other.to_str().into_owned(),
        };
        match checked {
            Ok(ok) => Ok(ok),
            Err(e) if self.secure.required(&domain) => Err(e),
            Err(e) => {
                debug!(%domain, error = %e, "remote certificate not valid: dialback decides");
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::s2s_tls::tls12_signature(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::s2s_tls::tls13_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::s2s_tls::schemes(&self.provider)
    }
}

type State = TlsState<Connect<TcpStream>, TlsStream<TcpStream>>;

/// Our connection to a remote server: plain until STARTTLS, or TLS from the first byte.
struct OutgoingConnection {
    state: State,
    /// Our certificate goes to the peer as a client certificate (XEP-0178).
    presents: bool,
    connector: Option<TlsConnector>,
    name: ServerName<'static>,
    peer: Option<SocketAddr>,
}

impl OutgoingConnection {
    fn plain(stream: TcpStream, connector: TlsConnector, name: ServerName<'static>) -> Self {
        OutgoingConnection {
            peer: stream.peer_addr().ok(),
            state: TlsState::Plain(stream),
            presents: false,
            connector: Some(connector),
            name,
        }
    }

    fn direct_tls(stream: TcpStream, connector: &TlsConnector, name: ServerName<'static>) -> Self {
        OutgoingConnection {
            peer: stream.peer_addr().ok(),
            state: TlsState::Handshaking(Box::new(connector.connect(name.clone(), stream))),
            presents: false,
            connector: None,
            name,
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.poll_handshake(cx).map_ok(|_| ())
    }
}

impl Connection for OutgoingConnection {
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
        self.state.is_plain() && self.connector.is_some()
    }

    fn start_tls(&mut self) -> io::Result<()> {
        let Some(connector) = self.connector.clone() else {
            return Err(io::Error::other("no TLS configuration"));
        };
        let name = self.name.clone();
        self.state.start(|stream| connector.connect(name, stream))
    }

    fn channel_bindings(&self) -> ChannelBindings {
        ChannelBindings::default()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn presents_certificate(&self) -> bool {
        self.presents && !self.state.is_plain()
    }
}
