//! A real etcd with TLS, client-certificate authentication and etcd's own user/password
//! authentication, as a production deployment runs it: certificates come from a test CA
//! made with rcgen, auth is enabled through the v3 JSON gateway while etcd still listens
//! on plain loopback HTTP, and etcd is then restarted on the same data with
//! `--cert-file/--key-file/--trusted-ca-file/--client-cert-auth`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::etcd::EtcdServer;

/// The etcd user Parley logs in as (role `parley`: readwrite on every key under `/`).
pub const ETCD_USER: &str = "parley";
/// Its password.
pub const ETCD_PASSWORD: &str = "parley-etcd-test-password-0123";

/// The files a node needs to reach the secure etcd, plus some wrong ones for tests of
/// refusals.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// The CA that signed etcd's server certificate and the client certificates.
    pub ca: PathBuf,
    /// A client certificate signed by that CA (CN `parley-node`, which is no etcd user:
    /// the certificate alone grants nothing).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// Another CA, which signed nothing etcd presents.
    pub other_ca: PathBuf,
    /// A file holding [`ETCD_PASSWORD`].
    pub password_file: PathBuf,
    /// A file holding a wrong password.
    pub wrong_password_file: PathBuf,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).expect("CA certificate"), key)
}

fn leaf(
    cn: Option<&str>,
    names: &[&str],
    usage: Vec<ExtendedKeyUsagePurpose>,
    (ca, ca_key): &(Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.extended_key_usages = usage;
    let cert = params
        .signed_by(&key, ca, ca_key)
        .expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write TLS file");
    path
}

/// What [`EtcdServer::start_secure`] sets up: the flags etcd restarts with, the gateway
/// client's TLS config, and the node's files.
pub(crate) struct SecureSetup {
    pub args: Vec<String>,
    pub client: Arc<rustls::ClientConfig>,
    pub files: EtcdTlsFiles,
}

/// Makes the CAs and certificates in `dir`.
pub(crate) fn make_certs(dir: &Path) -> SecureSetup {
    let authority = ca("parley test etcd CA");
    let (other, _) = ca("some other CA");
    let (server_pem, server_key) = leaf(
        // etcd's JSON gateway dials etcd's own gRPC with this certificate as its client
        // certificate: it needs clientAuth too, and no CommonName (which etcd would take
        // for a user name).
        None,
        &["localhost", "127.0.0.1"],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &authority,
    );
    let (client_pem, client_key) = leaf(
        Some("parley-node"),
        &[],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        &authority,
    );
    // etcd's JSON gateway refuses client certificates with a CommonName under
    // --client-cert-auth, so the test's own gateway client has none.
    let (gateway_pem, gateway_key) = leaf(
        None,
        &["gateway.test"],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        &authority,
    );
    let files = EtcdTlsFiles {
        ca: write(dir, "ca.pem", &authority.0.pem()),
        client_cert: write(dir, "client.pem", &client_pem),
        client_key: write(dir, "client-key.pem", &client_key),
        other_ca: write(dir, "other-ca.pem", &other.pem()),
        password_file: write(dir, "etcd-password", &format!("{ETCD_PASSWORD}\n")),
        wrong_password_file: write(dir, "wrong-password", "not-the-password\n"),
    };
    let server_cert = write(dir, "server.pem", &server_pem);
    let server_key = write(dir, "server-key.pem", &server_key);
    let args = vec![
        format!("--cert-file={}", server_cert.display()),
        format!("--key-file={}", server_key.display()),
        format!("--trusted-ca-file={}", files.ca.display()),
        "--client-cert-auth".to_owned(),
    ];
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&files.ca).expect("CA"))
        .expect("CA in root store");
    let chain = vec![CertificateDer::from_pem_slice(gateway_pem.as_bytes()).expect("gateway cert")];
    let key = PrivateKeyDer::from_pem_slice(gateway_key.as_bytes()).expect("gateway key");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    SecureSetup {
        args,
        client: Arc::new(client),
        files,
    }
}

/// Creates root (role root), role `parley` (readwrite on `/`…`0`, i.e. every key that
/// starts with `/`), user `parley` with that role, and enables auth — through the JSON
/// gateway of the still-plain etcd.
pub(crate) fn enable_auth(etcd: &EtcdServer) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let steps = [
        ("/v3/auth/role/add", r#"{"name":"root"}"#.to_owned()),
        (
            "/v3/auth/user/add",
            r#"{"name":"root","password":"root-test-password"}"#.to_owned(),
        ),
        (
            "/v3/auth/user/grant",
            r#"{"user":"root","role":"root"}"#.to_owned(),
        ),
        ("/v3/auth/role/add", r#"{"name":"parley"}"#.to_owned()),
        (
            "/v3/auth/role/grant",
            format!(
                r#"{{"name":"parley","perm":{{"permType":"READWRITE","key":"{}","range_end":"{}"}}}}"#,
                b64("/"),
                b64("0")
            ),
        ),
        (
            "/v3/auth/user/add",
            format!(r#"{{"name":"{ETCD_USER}","password":"{ETCD_PASSWORD}"}}"#),
        ),
        (
            "/v3/auth/user/grant",
            format!(r#"{{"user":"{ETCD_USER}","role":"parley"}}"#),
        ),
        ("/v3/auth/enable", "{}".to_owned()),
    ];
    for (path, body) in steps {
        let (status, answer) = etcd.http("POST", path, &body).expect("etcd gateway");
        assert_eq!(status, 200, "{path}: {answer}");
    }
}

/// One HTTP/1.1 exchange over TLS with the test client certificate.
pub(crate) fn tls_exchange(
    client: &Arc<rustls::ClientConfig>,
    addr: &str,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("127.0.0.1").expect("IP server name");
    let conn = rustls::ClientConnection::new(client.clone(), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request)?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => Ok(response),
        // A peer that closes without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// A test CA and a certificate from it for each of some XMPP domains, in a directory of
/// its own (server-to-server tests of XEP-0178).
pub struct DomainPki {
    /// The CA certificate (PEM): `[s2s] ca_file`.
    pub ca: PathBuf,
    /// For each domain given, in order: its certificate and key (PEM), for `[tls]`.
    pub leaves: Vec<(PathBuf, PathBuf)>,
    _dir: tempfile::TempDir,
}

impl DomainPki {
    /// Makes the CA and one certificate per domain (server and client authentication, as
    /// a server's certificate serves both ends of server-to-server TLS).
    pub fn new(domains: &[&str]) -> DomainPki {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let authority = ca("parley test XMPP CA");
        let ca_path = write(dir.path(), "ca.pem", &authority.0.pem());
        let leaves = domains
            .iter()
            .map(|d| {
                let (pem, key) = leaf(
                    Some(d),
                    &[d],
                    vec![
                        ExtendedKeyUsagePurpose::ServerAuth,
                        ExtendedKeyUsagePurpose::ClientAuth,
                    ],
                    &authority,
                );
                (
                    write(dir.path(), &format!("{d}.crt"), &pem),
                    write(dir.path(), &format!("{d}.key"), &key),
                )
            })
            .collect();
        DomainPki {
            ca: ca_path,
            leaves,
            _dir: dir,
        }
    }
}
