//! TLS on server-to-server streams (XEP-0178): the server side asks the connecting server
//! for its certificate, and the client side presents ours, so that a peer whose certificate
//! is valid for its domain can authenticate with SASL EXTERNAL instead of dialback.
//!
//! The TLS handshake itself accepts any client certificate (after proving the peer holds
//! its key): most servers present a self-signed one and are authenticated by dialback, and
//! refusing them at the TLS layer would leave them no way in. Whether the certificate is
//! valid for the domain the peer claims is decided afterwards, by the session, through
//! [`parley_session::Connection::peer_certificate_valid_for`], against the trust anchors
//! (`[s2s] ca_file`, else the system's CA bundle) with the server-authentication rules of
//! RFC 6125 (the name is the domain, as RFC 6120 §13.7.2 and XEP-0178 §3 say).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::tls::{TlsSetup, TransportError};

/// The system's CA bundle on Debian and Ubuntu (`ca-certificates`).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The trust anchors for remote servers: `ca_file`, else the system's bundle (an unreadable
/// `ca_file` is an error; a missing system bundle only means nothing validates).
pub(crate) fn load_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = ca_file.map_or_else(
        || std::path::PathBuf::from(SYSTEM_CA_BUNDLE),
        Path::to_owned,
    );
    match CertificateDer::pem_file_iter(&bundle) {
        Ok(certs) => {
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
        }
        Err(e) if ca_file.is_some() => {
            return Err(TransportError::File {
                path: bundle,
                reason: format!("reading CA certificates: {e}"),
            })
        }
        Err(e) => debug!(error = %e, "no system CA bundle: no remote certificate validates"),
    }
    Ok(roots)
}

/// A certificate check against `roots` (None when there is none to check against).
pub(crate) fn verifier(
    roots: rustls::RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<WebPkiServerVerifier>>, TransportError> {
    if roots.is_empty() {
        return Ok(None);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(Some)
        .map_err(|e| TransportError::Tls(e.to_string()))
}

/// Whether `chain` (end entity first) is valid for `domain` under `check`.
pub(crate) fn valid_for(
    check: &WebPkiServerVerifier,
    chain: &[CertificateDer<'static>],
    domain: &str,
) -> bool {
    use rustls::client::danger::ServerCertVerifier;
    let (Some(end_entity), Ok(name)) = (chain.first(), ServerName::try_from(domain.to_owned()))
    else {
        return false;
    };
    check
        .verify_server_cert(end_entity, &chain[1..], &name, &[], UnixTime::now())
        .is_ok()
}

impl TlsSetup {
    /// The variant for server-to-server ports: the same certificate, and the connecting
    /// server is asked for its own (optional; judged later, see the module doc).
    pub fn for_servers(&self, ca_file: Option<&Path>) -> Result<Arc<TlsSetup>, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let peer_check = verifier(load_roots(ca_file)?, provider.clone())?;
        let (certs, key) = &*self.identity;
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_client_cert_verifier(Arc::new(AnyClientCert { provider }))
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        Ok(Arc::new(TlsSetup {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            server_end_point: self.server_end_point.clone(),
            identity: self.identity.clone(),
            peer_check,
        }))
    }

    /// The certificate chain and key outgoing server streams present.
    pub fn client_identity(
        &self,
    ) -> (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        (self.identity.0.clone(), self.identity.1.clone_key())
    }
}

/// Asks for a client certificate, accepts any (its signature over the handshake is still
/// checked: the peer holds the key), and leaves the judgement of its names to the session.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_signature(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.provider)
    }
}

/// The handshake-signature checks every verifier of ours leaves to the crypto provider:
/// whatever a certificate's standing, the peer must prove it holds the key.
pub(crate) fn tls12_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

/// See [`tls12_signature`].
pub(crate) fn tls13_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

/// The signature schemes the provider checks.
pub(crate) fn schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}
