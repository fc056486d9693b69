//! TLS set-up: the certificate from config, or a self-signed one generated in the data dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio_rustls::TlsAcceptor;
use tracing::info;

/// Errors setting up listeners and TLS. Each names the file or address involved.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate and key do not make a usable TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A TLS acceptor and what channel bindings need from the server certificate.
#[derive(Clone)]
pub struct TlsSetup {
    pub(crate) acceptor: TlsAcceptor,
    /// RFC 5929 §4.1 `tls-server-end-point`: the certificate's hash.
    pub(crate) server_end_point: Vec<u8>,
    /// The certificate chain and key, for the server-stream variant of this set-up and
    /// for the certificate outgoing server streams present (XEP-0178).
    pub(crate) identity: Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// On a server-to-server port: what a peer's certificate is checked against
    /// (XEP-0178), see `s2s_tls.rs`. None elsewhere.
    pub(crate) peer_check: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

/// The TLS set-up new connections take, replaceable while the server runs (SIGHUP reloads
/// the certificate): each connection keeps the one it started with, so its channel binding
/// (`tls-server-end-point`) and its session are untouched by a reload.
#[derive(Debug)]
pub struct TlsCell(std::sync::RwLock<Arc<TlsSetup>>);

impl TlsCell {
    /// A cell holding `setup`.
    pub fn new(setup: Arc<TlsSetup>) -> Arc<TlsCell> {
        Arc::new(TlsCell(std::sync::RwLock::new(setup)))
    }

    /// What a connection accepted now uses.
    pub fn current(&self) -> Arc<TlsSetup> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// From now on, new connections use `setup`.
    pub fn replace(&self, setup: Arc<TlsSetup>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = setup;
    }
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup").finish_non_exhaustive()
    }
}

impl TlsSetup {
    /// Loads `cert` and `key` (PEM). With neither, uses (and if needed creates) a self-signed
    /// certificate for `hosts` under `data_dir/tls/`.
    pub fn load(
        cert: Option<&Path>,
        key: Option<&Path>,
        data_dir: &Path,
        hosts: &[String],
    ) -> Result<Arc<TlsSetup>, TransportError> {
        let (cert_path, key_path) = match (cert, key) {
            (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
            _ => self_signed(data_dir, hosts)?,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| file_err(&cert_path, format!("reading certificates: {e}")))?;
        if certs.is_empty() {
            return Err(file_err(
                &cert_path,
                "no certificate found in the file".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| file_err(&key_path, format!("reading the private key: {e}")))?;
        let server_end_point = end_point_hash(&certs[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| {
                TransportError::Tls(format!(
                    "{} and {}: {e}",
                    cert_path.display(),
                    key_path.display()
                ))
            })?;
        Ok(Arc::new(TlsSetup {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            server_end_point,
            identity: Arc::new((certs, key)),
            peer_check: None,
        }))
    }
}

fn file_err(path: &Path, reason: String) -> TransportError {
    TransportError::File {
        path: path.to_owned(),
        reason,
    }
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash, SHA-256 for MD5/SHA-1 and
/// for signatures without one (Ed25519).
fn end_point_hash(cert: &CertificateDer<'_>) -> Vec<u8> {
    let alg = x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.signature_algorithm.algorithm.to_id_string())
        .unwrap_or_default();
    match alg.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Sha384::digest(cert).to_vec(),
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Sha512::digest(cert).to_vec(),
        _ => Sha256::digest(cert).to_vec(),
    }
}

/// The self-signed pair under `data_dir/tls`, regenerated when it does not cover every host.
fn self_signed(data_dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TransportError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("self-signed.crt");
    let key_path = dir.join("self-signed.key");
    if cert_path.exists() && key_path.exists() && covers(&cert_path, hosts) {
        return Ok((cert_path, key_path));
    }
    fs::create_dir_all(&dir).map_err(|e| file_err(&dir, format!("creating directory: {e}")))?;
    let (cert_pem, key_pem) = generate(hosts)
        .map_err(|e| TransportError::Tls(format!("generating a certificate: {e}")))?;
    fs::write(&cert_path, cert_pem).map_err(|e| file_err(&cert_path, format!("writing: {e}")))?;
    write_private(&key_path, key_pem.as_bytes())?;
    info!(cert = %cert_path.display(), hosts = ?hosts, "generated a self-signed certificate");
    Ok((cert_path, key_path))
}

/// A self-signed certificate named after the first host (clients show the common name when
/// asking the user to trust it), valid for ten years from today.
fn generate(hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(
        rcgen::DnType::CommonName,
        hosts.first().map_or("localhost", String::as_str),
    );
    name.push(rcgen::DnType::OrganizationName, "Parley self-signed");
    params.distinguished_name = name;
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (y, m, d) = parley_proto::datetime::civil_from_days(days as i64);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 10, m, d.min(28));
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn covers(cert_path: &Path, hosts: &[String]) -> bool {
    let Ok(der) = CertificateDer::from_pem_file(cert_path) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    hosts.iter().all(|h| names.iter().any(|n| n == h))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> Result<(), TransportError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, format!("writing: {e}")))?;
    f.write_all(data)
        .map_err(|e| file_err(path, format!("writing: {e}")))
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> Result<(), TransportError> {
    fs::write(path, data).map_err(|e| file_err(path, format!("writing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_reuses_a_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["localhost".to_owned(), "example.org".to_owned()];
        TlsSetup::load(None, None, dir.path(), &hosts).unwrap();
        let cert = dir.path().join("tls/self-signed.crt");
        let first = fs::read(&cert).unwrap();
        TlsSetup::load(None, None, dir.path(), &hosts).unwrap();
        assert_eq!(
            first,
            fs::read(&cert).unwrap(),
            "reused when it covers the hosts"
        );
        let more = vec!["localhost".to_owned(), "other.example".to_owned()];
        TlsSetup::load(None, None, dir.path(), &more).unwrap();
        assert_ne!(
            first,
            fs::read(&cert).unwrap(),
            "regenerated for a new host"
        );
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = TlsSetup::load(
            Some(Path::new("/nonexistent/cert.pem")),
            Some(Path::new("/nonexistent/key.pem")),
            dir.path(),
            &["localhost".to_owned()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
