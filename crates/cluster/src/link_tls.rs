//! Mutual TLS for node links: every node presents a certificate signed by the cluster's CA
//! and accepts only peers that do the same. Without it, anyone who can reach `peer_listen`
//! could inject stanzas, so a cluster on a shared network should set it.
//!
//! The client side verifies the peer's certificate against the CA and the host name (or IP
//! address) of its advertised address; the server side requires a client certificate that
//! chains to the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Errors loading the link certificates; each names the file and the config key.
#[derive(Debug, thiserror::Error)]
pub enum LinkTlsError {
    /// A file could not be read or holds nothing usable.
    #[error("cluster.{key} {path}: {reason}")]
    File {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the material.
    #[error("cluster TLS: {0}")]
    Tls(String),
}

/// The acceptor and connector of a node's links.
pub struct LinkTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTls")
    }
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkTlsError> {
    let err = |reason: String| LinkTlsError::File {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(format!("reading certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err("no certificate found in the file".into()));
    }
    Ok(certs)
}

impl LinkTls {
    /// Loads the node's certificate chain and key and the cluster CA (all PEM).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Arc<LinkTls>, LinkTlsError> {
        let chain = certs("tls_cert", cert)?;
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| LinkTlsError::File {
            key: "tls_key",
            path: key.to_owned(),
            reason: format!("reading the private key: {e}"),
        })?;
        let mut roots = RootCertStore::empty();
        for c in certs("tls_ca", ca)? {
            roots.add(c).map_err(|e| LinkTlsError::File {
                key: "tls_ca",
                path: ca.to_owned(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| LinkTlsError::Tls(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| LinkTlsError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| LinkTlsError::Tls(format!("tls_cert and tls_key: {e}")))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| LinkTlsError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private)
            .map_err(|e| LinkTlsError::Tls(format!("tls_cert and tls_key: {e}")))?;
        Ok(Arc::new(LinkTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        }))
    }

    /// Accepts a peer's link: it must present a certificate of the cluster CA.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// Opens a link to the peer advertised as `addr` (`host:port`), verifying its
    /// certificate for `host`.
    pub async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::other(format!("peer name {host}: {e}")))?;
        self.connector.connect(name, stream).await
    }
}
