//! Node-link authentication: the handshake that every link runs before any frame is acted on.
//!
//! A link is one TCP (or mutual-TLS) connection from a *connector* to an *acceptor*:
//!
//! 1. connector → acceptor: [`Body::Hello`] with its node id and a fresh random nonce;
//! 2. acceptor → connector: [`Body::Welcome`] with its node id, its own fresh nonce and its
//!    proof: HMAC-SHA256 keyed with the cluster secret over the protocol version, the
//!    acceptor's direction label, both node ids and both nonces;
//! 3. connector → acceptor: [`Body::Proof`], the same HMAC with the connector's label.
//!
//! Each side checks the other's proof in constant time. Fresh nonces on both sides make every
//! proof good for one connection only (no replay), the direction labels stop a proof being
//! reflected back, and the node ids inside the MAC stop it being moved to another identity.
//! The connector also checks that the acceptor is the node it meant to reach, and proves
//! nothing to an acceptor that could not prove itself first, so a stranger listening on a
//! node's address learns nothing and receives no frame.
//!
//! Without a secret the cluster relies on mutual TLS (the certificate check already happened
//! under the TLS layer); the proofs are then empty, and a node that has a secret refuses a
//! peer that sends an empty proof.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::link::{
    encode, Body, Decoder, LinkError, HANDSHAKE_MAX_FRAME, NONCE_LEN, PROTOCOL_VERSION,
};

/// The shortest accepted cluster secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The shared secret of a cluster. Its bytes never reach a log: `Debug` hides them.
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

/// Why a secret cannot be used; each names the config key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`].
    #[error("{key}: the cluster secret must be at least {MIN_SECRET_LEN} bytes (it has {len})")]
    TooShort {
        /// `cluster.secret` or `cluster.secret_file`.
        key: &'static str,
        /// Its length.
        len: usize,
    },
    /// The file could not be read.
    #[error("cluster.secret_file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ClusterSecret {
    /// A secret given inline (`cluster.secret`).
    pub fn new(secret: &str) -> Result<ClusterSecret, SecretError> {
        Self::checked("cluster.secret", secret.as_bytes())
    }

    /// A secret read from a file (`cluster.secret_file`, e.g. a mounted Kubernetes Secret):
    /// its content with surrounding white space trimmed.
    pub fn from_file(path: &Path) -> Result<ClusterSecret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::checked("cluster.secret_file", text.trim().as_bytes())
    }

    fn checked(key: &'static str, bytes: &[u8]) -> Result<ClusterSecret, SecretError> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort {
                key,
                len: bytes.len(),
            });
        }
        Ok(ClusterSecret(bytes.to_vec()))
    }

    fn mac(&self, role: Role, ids: (&str, &str), nonces: (&[u8], &[u8])) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"parley node link\0");
        mac.update(&PROTOCOL_VERSION.to_be_bytes());
        mac.update(role.label());
        for id in [ids.0, ids.1] {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            mac.update(&(id.len() as u32).to_be_bytes());
            mac.update(id.as_bytes());
        }
        mac.update(nonces.0);
        mac.update(nonces.1);
        mac
    }

    /// The proof `role` gives on a link from `connector` to `acceptor` with these nonces.
    fn proof(&self, role: Role, ids: (&str, &str), nonces: (&[u8], &[u8])) -> Vec<u8> {
        self.mac(role, ids, nonces).finalize().into_bytes().to_vec()
    }

    /// Whether `proof` is `role`'s proof; compared in constant time.
    fn verify(&self, role: Role, ids: (&str, &str), nonces: (&[u8], &[u8]), proof: &[u8]) -> bool {
        self.mac(role, ids, nonces).verify_slice(proof).is_ok()
    }
}

/// Which end of a link a proof comes from (its direction label).
#[derive(Debug, Clone, Copy)]
enum Role {
    Connector,
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Connector => b"connector\0",
            Role::Acceptor => b"acceptor\0",
        }
    }
}

/// Why a handshake failed. The link is closed without a word in every case.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer did not complete the handshake in time.
    #[error("no complete handshake within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be read (wrong version, too large, garbage).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The peer sent something other than the next handshake frame.
    #[error("expected {0} during the handshake")]
    Unexpected(&'static str),
    /// The acceptor is not the node the connector meant to reach.
    #[error("reached node {got:?}, not {expected:?}")]
    WrongPeer {
        /// Who we meant to reach.
        expected: String,
        /// Who answered.
        got: String,
    },
    /// The peer's proof of the cluster secret is wrong or missing.
    #[error("the peer did not prove the cluster secret")]
    BadProof,
}

impl HandshakeError {
    /// The refusal reason counted for it (`parley_refusals_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Timeout(_) => "link_handshake_timeout",
            HandshakeError::BadProof | HandshakeError::WrongPeer { .. } => "link_bad_proof",
            HandshakeError::Io(_) => "link_handshake_io",
            HandshakeError::Link(_) | HandshakeError::Unexpected(_) => "link_malformed",
        }
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Reads the next frame; only handshake-sized frames are accepted.
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    decoder: &mut Decoder,
) -> Result<Body, HandshakeError> {
    let mut buf = [0u8; 512];
    loop {
        if let Some(body) = decoder.next_frame()? {
            return Ok(body);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        decoder.feed(&buf[..n]);
    }
}

/// The connector's side: proves the secret to `expected` (the node it dials) once that node
/// has proven it. Within `timeout`.
pub async fn connect(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    me: &str,
    expected: &str,
    secret: Option<&ClusterSecret>,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    tokio::time::timeout(timeout, connect_inner(stream, me, expected, secret))
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
}

async fn connect_inner(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    me: &str,
    expected: &str,
    secret: Option<&ClusterSecret>,
) -> Result<(), HandshakeError> {
    let ours = nonce();
    let hello = Body::Hello {
        node: me.to_owned(),
        software: env!("CARGO_PKG_VERSION").to_owned(),
        nonce: ours,
    };
    stream.write_all(&encode(&hello)?).await?;
    let mut decoder = Decoder::with_limit(HANDSHAKE_MAX_FRAME);
    let Body::Welcome { node, nonce, proof } = read_frame(stream, &mut decoder).await? else {
        return Err(HandshakeError::Unexpected("Welcome"));
    };
    if node != expected {
        return Err(HandshakeError::WrongPeer {
            expected: expected.to_owned(),
            got: node,
        });
    }
    let ids = (me, expected);
    let nonces = (&ours[..], &nonce[..]);
    let proof = match secret {
        Some(secret) => {
            if !secret.verify(Role::Acceptor, ids, nonces, &proof) {
                return Err(HandshakeError::BadProof);
            }
            secret.proof(Role::Connector, ids, nonces)
        }
        // Mutual TLS alone: an acceptor that asks for a secret we do not have refuses us
        // anyway; say so here, where it is clear.
        None if !proof.is_empty() => return Err(HandshakeError::BadProof),
        None => Vec::new(),
    };
    stream.write_all(&encode(&Body::Proof { proof })?).await?;
    stream.flush().await?;
    Ok(())
}

/// The acceptor's side: the connecting node's id once it has proven the secret. Frames the
/// peer sent right after its proof stay in `decoder`. Within `timeout`.
pub async fn accept(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    decoder: &mut Decoder,
    me: &str,
    secret: Option<&ClusterSecret>,
    timeout: Duration,
) -> Result<String, HandshakeError> {
    tokio::time::timeout(timeout, accept_inner(stream, decoder, me, secret))
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
}

async fn accept_inner(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    decoder: &mut Decoder,
    me: &str,
    secret: Option<&ClusterSecret>,
) -> Result<String, HandshakeError> {
    decoder.set_limit(HANDSHAKE_MAX_FRAME);
    let Body::Hello {
        node: peer,
        nonce: theirs,
        ..
    } = read_frame(stream, decoder).await?
    else {
        return Err(HandshakeError::Unexpected("Hello"));
    };
    let ours = nonce();
    let ids = (peer.as_str(), me);
    let nonces = (&theirs[..], &ours[..]);
    let welcome = Body::Welcome {
        node: me.to_owned(),
        nonce: ours,
        proof: secret.map_or_else(Vec::new, |s| s.proof(Role::Acceptor, ids, nonces)),
    };
    stream.write_all(&encode(&welcome)?).await?;
    stream.flush().await?;
    let Body::Proof { proof } = read_frame(stream, decoder).await? else {
        return Err(HandshakeError::Unexpected("Proof"));
    };
    if let Some(secret) = secret {
        if !secret.verify(Role::Connector, ids, nonces, &proof) {
            return Err(HandshakeError::BadProof);
        }
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(&s.repeat(32)).unwrap()
    }

    async fn run(
        a: Option<ClusterSecret>,
        b: Option<ClusterSecret>,
        expected: &str,
    ) -> (Result<(), HandshakeError>, Result<String, HandshakeError>) {
        let (mut c, mut s) = tokio::io::duplex(4096);
        let t = Duration::from_secs(5);
        let acceptor = tokio::spawn(async move {
            let mut d = Decoder::default();
            accept(&mut s, &mut d, "n2", b.as_ref(), t).await
        });
        let connector = connect(&mut c, "n1", expected, a.as_ref(), t).await;
        drop(c);
        (connector, acceptor.await.unwrap())
    }

    #[tokio::test]
    async fn the_same_secret_authenticates_both_ways() {
        let (c, a) = run(Some(secret("x")), Some(secret("x")), "n2").await;
        c.unwrap();
        assert_eq!(a.unwrap(), "n1");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_the_connector_before_it_proves_anything() {
        let (c, a) = run(Some(secret("x")), Some(secret("y")), "n2").await;
        assert!(matches!(c, Err(HandshakeError::BadProof)), "{c:?}");
        assert!(a.is_err());
    }

    #[tokio::test]
    async fn a_peer_without_a_secret_is_refused_by_one_that_has_one() {
        // The connector sees that the acceptor wants a secret and gives up; the acceptor
        // never gets a proof.
        let (c, a) = run(None, Some(secret("x")), "n2").await;
        assert!(matches!(c, Err(HandshakeError::BadProof)), "{c:?}");
        assert!(a.is_err(), "{a:?}");
        let (c, _) = run(Some(secret("x")), None, "n2").await;
        assert!(matches!(c, Err(HandshakeError::BadProof)), "{c:?}");
    }

    #[tokio::test]
    async fn the_connector_refuses_a_node_it_did_not_dial() {
        let (c, _) = run(Some(secret("x")), Some(secret("x")), "n3").await;
        assert!(matches!(c, Err(HandshakeError::WrongPeer { .. })), "{c:?}");
    }

    #[test]
    fn proofs_are_bound_to_direction_ids_and_nonces() {
        let s = secret("x");
        let (n1, n2) = ([1u8; 32], [2u8; 32]);
        let p = s.proof(Role::Connector, ("a", "b"), (&n1, &n2));
        assert!(s.verify(Role::Connector, ("a", "b"), (&n1, &n2), &p));
        assert!(!s.verify(Role::Acceptor, ("a", "b"), (&n1, &n2), &p));
        assert!(!s.verify(Role::Connector, ("b", "a"), (&n1, &n2), &p));
        assert!(!s.verify(Role::Connector, ("a", "b"), (&n2, &n1), &p));
        assert!(!s.verify(Role::Connector, ("a", "b"), (&n1, &n2), &p[..16]));
    }

    #[test]
    fn short_secrets_are_refused_naming_the_key() {
        let e = ClusterSecret::new("short").unwrap_err();
        assert!(e.to_string().contains("cluster.secret"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("  {}\n", "k".repeat(32))).unwrap();
        assert!(ClusterSecret::from_file(&path).is_ok());
        std::fs::write(&path, "  short\n").unwrap();
        let e = ClusterSecret::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("cluster.secret_file"), "{e}");
    }
}
