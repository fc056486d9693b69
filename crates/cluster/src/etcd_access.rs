//! How a node reaches etcd securely: TLS for `https://` endpoints (a CA, optionally a client
//! certificate) and etcd's own authentication (user and password).
//!
//! Everything is loaded once, at start, so that a missing file or an unusable certificate
//! is an error that names its `[cluster]` key before the node talks to anyone. Before the
//! first request, [`EtcdAccess::connect`] shakes hands with each `https://` endpoint itself:
//! etcd-client's balanced channel keeps retrying an endpoint whose handshake fails, so a
//! wrong CA or a refused client certificate would otherwise surface only as a timeout.
//! The password never appears in `Debug` output, logs or errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::etcd::ClusterError;

/// Where distributions keep the system's CA bundle; the first that exists is used when
/// `https://` endpoints are configured without `etcd_ca`.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// How long the start-up handshake with one endpoint may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message this node decodes from etcd by default (`cluster.etcd_max_message_bytes`).
/// etcd-client's own bound is 4 MiB, which one watch response overruns when a node holding
/// ~80k sessions leaves (etcd sends all its deletes at once, issue 16); reads are paged
/// ([`crate::etcd_sync`]), but a watch response cannot be.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The smallest bound accepted: etcd-client's own default, below which nothing gains.
pub const MIN_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The system CA bundle, if this host has one.
pub fn system_ca_bundle() -> Option<PathBuf> {
    SYSTEM_CA_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The `[cluster]` etcd keys as configured (paths not yet read).
#[derive(Clone, Default)]
pub struct EtcdAccessConfig<'a> {
    /// `etcd_ca`: PEM CA bundle that signs etcd's server certificate.
    pub ca: Option<&'a Path>,
    /// `etcd_cert`: this node's client certificate chain (PEM).
    pub cert: Option<&'a Path>,
    /// `etcd_key`: its private key (PEM).
    pub key: Option<&'a Path>,
    /// `etcd_user`.
    pub user: Option<&'a str>,
    /// `etcd_password`.
    pub password: Option<&'a str>,
    /// `etcd_password_file`: the password, one line.
    pub password_file: Option<&'a Path>,
}

/// Why the etcd access material cannot be used; each names its `[cluster]` key.
#[derive(Debug, thiserror::Error)]
#[error("{key} {path}: {reason}")]
pub struct EtcdAccessError {
    /// The config key, e.g. `cluster.etcd_ca`.
    pub key: &'static str,
    /// The file (or empty).
    pub path: String,
    /// Why.
    pub reason: String,
}

fn file_error(key: &'static str, path: &Path, reason: impl Into<String>) -> EtcdAccessError {
    EtcdAccessError {
        key,
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// TLS material for `https://` endpoints.
#[derive(Clone)]
struct EtcdTls {
    /// The CA bundle as PEM, for tonic.
    ca_pem: Vec<u8>,
    /// Client certificate chain and key as PEM, for tonic.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The same trust as a rustls connector, for the start-up handshake.
    probe: TlsConnector,
}

/// How this node connects to etcd; cheap to clone, password redacted in `Debug`.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    tls: Option<EtcdTls>,
    login: Option<(String, String)>,
    /// The bound on a decoded message; None: [`DEFAULT_MAX_MESSAGE_BYTES`].
    max_message: Option<usize>,
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("tls", &self.tls.is_some())
            .field(
                "client_cert",
                &self.tls.as_ref().is_some_and(|t| t.identity.is_some()),
            )
            .field("user", &self.login.as_ref().map(|(u, _)| u))
            .field("max_message_bytes", &self.max_message_bytes())
            .finish_non_exhaustive()
    }
}

impl EtcdAccess {
    /// Plain, unauthenticated access (`http://` endpoints, no user).
    pub fn plain() -> EtcdAccess {
        EtcdAccess::default()
    }

    /// Reads the configured files. `https` says whether the endpoints are `https://`
    /// (config validation has refused a mix); TLS material is only used then.
    pub fn load(https: bool, c: &EtcdAccessConfig<'_>) -> Result<EtcdAccess, EtcdAccessError> {
        let tls = if https { Some(load_tls(c)?) } else { None };
        let password = match (c.password, c.password_file) {
            (Some(p), _) => Some(p.to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| file_error("cluster.etcd_password_file", path, e.to_string()))?;
                let line = text.lines().next().unwrap_or("").to_owned();
                if line.is_empty() {
                    return Err(file_error(
                        "cluster.etcd_password_file",
                        path,
                        "the file is empty",
                    ));
                }
                Some(line)
            }
            (None, None) => None,
        };
        let login = match (c.user, password) {
            (Some(user), Some(password)) => Some((user.to_owned(), password)),
            (None, None) => None,
            _ => {
                return Err(EtcdAccessError {
                    key: "cluster.etcd_user",
                    path: String::new(),
                    reason: "set etcd_user together with etcd_password or etcd_password_file"
                        .into(),
                })
            }
        };
        Ok(EtcdAccess {
            tls,
            login,
            max_message: None,
        })
    }

    /// Bounds the messages this node decodes from etcd (a range page, a watch response) to
    /// `bytes` (`cluster.etcd_max_message_bytes`, validated with the configuration).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> EtcdAccess {
        self.max_message = Some(bytes);
        self
    }

    /// The bound on a message decoded from etcd.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// Whether a user logs in.
    pub fn has_login(&self) -> bool {
        self.login.is_some()
    }

    /// Checks TLS on every `https://` endpoint, then connects (and logs in, when a user
    /// is set). Errors name the config key to fix.
    pub async fn connect(&self, endpoints: &[String]) -> Result<Client, ClusterError> {
        let mut options = ConnectOptions::new().with_connect_timeout(PROBE_TIMEOUT);
        if let Some(tls) = &self.tls {
            for endpoint in endpoints {
                probe(&tls.probe, endpoint).await?;
            }
            let mut opts = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                opts = opts.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(opts);
        }
        if let Some((user, password)) = &self.login {
            // etcd's simple tokens expire; without the refresh a quiet node would lose
            // its login minutes after start.
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| login_error(e, endpoints))
    }
}

fn pem_certs(
    key: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), EtcdAccessError> {
    let pem = std::fs::read(path).map_err(|e| file_error(key, path, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, format!("reading certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in the file"));
    }
    Ok((pem, certs))
}

fn load_tls(c: &EtcdAccessConfig<'_>) -> Result<EtcdTls, EtcdAccessError> {
    let ca_path = match c.ca {
        Some(path) => path.to_owned(),
        None => system_ca_bundle().ok_or_else(|| EtcdAccessError {
            key: "cluster.etcd_ca",
            path: String::new(),
            reason: "https:// etcd endpoints need etcd_ca: this host has no system CA bundle"
                .into(),
        })?,
    };
    let (ca_pem, ca_certs) = pem_certs("cluster.etcd_ca", &ca_path)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(ca_certs);
    if added == 0 {
        return Err(file_error(
            "cluster.etcd_ca",
            &ca_path,
            "no usable CA certificate in the file",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error("cluster.etcd_ca", &ca_path, e.to_string()))?
        .with_root_certificates(roots);
    let (config, identity) = match (c.cert, c.key) {
        (None, None) => (builder.with_no_client_auth(), None),
        (Some(cert), Some(key)) => {
            let (cert_pem, chain) = pem_certs("cluster.etcd_cert", cert)?;
            let key_pem = std::fs::read(key)
                .map_err(|e| file_error("cluster.etcd_key", key, e.to_string()))?;
            let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                file_error(
                    "cluster.etcd_key",
                    key,
                    format!("reading the private key: {e}"),
                )
            })?;
            let config = builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| file_error("cluster.etcd_key", key, format!("with etcd_cert: {e}")))?;
            (config, Some((cert_pem, key_pem)))
        }
        (Some(cert), None) => {
            return Err(file_error(
                "cluster.etcd_cert",
                cert,
                "etcd_key is not set: set both, or neither",
            ))
        }
        (None, Some(key)) => {
            return Err(file_error(
                "cluster.etcd_key",
                key,
                "etcd_cert is not set: set both, or neither",
            ))
        }
    };
    Ok(EtcdTls {
        ca_pem,
        identity,
        probe: TlsConnector::from(Arc::new(config)),
    })
}

/// `host` and `port` of an `https://host:port[/…]` endpoint (IPv6 in brackets).
fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let rest = endpoint.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 2379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// One TLS handshake and one HTTP/1.1 request to `endpoint`. A certificate problem is an
/// error naming the key to fix; an unreachable endpoint is not (etcd may be starting, or
/// one member of several down): the connection proper deals with that.
async fn probe(connector: &TlsConnector, endpoint: &str) -> Result<(), ClusterError> {
    let trust = |key: &'static str, reason: String| ClusterError::Trust {
        key,
        endpoint: endpoint.to_owned(),
        reason,
    };
    let (host, port) = host_port(endpoint)
        .ok_or_else(|| trust("cluster.etcd", "not an https://host:port URL".into()))?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| trust("cluster.etcd", format!("host {host:?}: {e}")))?;
    let attempt = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let mut tls = connector.connect(name, tcp).await?;
        // With TLS 1.3 the server judges the client certificate after the client finished
        // its handshake: its verdict arrives with the first read.
        tls.write_all(
            format!("GET /version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut head = [0u8; 12];
        tls.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(e)) => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(why)) => Err(trust(
                "cluster.etcd_ca",
                format!("etcd's server certificate is not trusted ({why:?}): check etcd_ca and the endpoint's host name"),
            )),
            Some(rustls::Error::AlertReceived(alert)) if refuses_client_cert(*alert) => {
                Err(trust(
                    "cluster.etcd_cert",
                    format!("etcd refused this node's client certificate (TLS alert {alert:?}): set etcd_cert and etcd_key to a certificate of etcd's --trusted-ca-file"),
                ))
            }
            Some(other) => Err(trust("cluster.etcd", format!("TLS with etcd failed: {other}"))),
            None => Ok(()),
        },
    }
}

fn refuses_client_cert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::HandshakeFailure
    )
}

/// Names the key behind a refused login or a missing permission.
fn login_error(e: etcd_client::Error, endpoints: &[String]) -> ClusterError {
    let endpoint = endpoints.join(",");
    if let etcd_client::Error::GRpcStatus(status) = &e {
        let message = status.message();
        if message.contains("authentication failed") {
            return ClusterError::Trust {
                key: "cluster.etcd_password",
                endpoint,
                reason: "etcd refused the login (wrong etcd_user or password)".into(),
            };
        }
        if message.contains("authentication is not enabled") {
            return ClusterError::Trust {
                key: "cluster.etcd_user",
                endpoint,
                reason: "etcd has authentication disabled: enable it (etcdctl auth enable) or unset etcd_user".into(),
            };
        }
        if message.contains("permission denied") || message.contains("user name is empty") {
            return ClusterError::Trust {
                key: "cluster.etcd_user",
                endpoint,
                reason: format!("etcd denied access ({message}): grant the user a role with readwrite on the cluster prefix"),
            };
        }
    }
    ClusterError::Etcd(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_host_and_port() {
        assert_eq!(
            host_port("https://127.0.0.1:2379"),
            Some(("127.0.0.1".into(), 2379))
        );
        assert_eq!(
            host_port("https://etcd.internal"),
            Some(("etcd.internal".into(), 2379))
        );
        assert_eq!(
            host_port("https://[::1]:23790/"),
            Some(("::1".into(), 23790))
        );
        assert_eq!(host_port("http://127.0.0.1:2379"), None);
    }

    #[test]
    fn password_never_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2-secret\n").unwrap();
        let access = EtcdAccess::load(
            false,
            &EtcdAccessConfig {
                user: Some("parley"),
                password_file: Some(&file),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(access.has_login());
        let shown = format!("{access:?}");
        assert!(
            shown.contains("parley") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn each_unusable_file_names_its_key() {
        let missing = Path::new("/nonexistent/x.pem");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let cases: [(EtcdAccessConfig<'_>, &str); 4] = [
            (
                EtcdAccessConfig {
                    ca: Some(missing),
                    ..Default::default()
                },
                "cluster.etcd_ca",
            ),
            (
                EtcdAccessConfig {
                    ca: Some(&ca),
                    cert: Some(missing),
                    key: Some(missing),
                    ..Default::default()
                },
                "cluster.etcd_cert",
            ),
            (
                EtcdAccessConfig {
                    password_file: Some(missing),
                    user: Some("u"),
                    ..Default::default()
                },
                "cluster.etcd_password_file",
            ),
            (
                EtcdAccessConfig {
                    user: Some("u"),
                    ..Default::default()
                },
                "cluster.etcd_user",
            ),
        ];
        for (config, key) in cases {
            let https = config.ca.is_some();
            let e = EtcdAccess::load(https, &config).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }
}
