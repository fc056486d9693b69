//! The client side of SCRAM (RFC 5802, RFC 7677) with a shared SaltedPassword cache.
//!
//! `parley_proto::sasl::ScramClient` derives `SaltedPassword` (PBKDF2, thousands of HMAC
//! rounds) on every exchange and does not expose it. A load generator that did the same
//! would spend its core on its own PBKDF2 and measure itself, not the server; real clients
//! cache the derived key too. So the exchange lives here, built from the same primitives,
//! and takes the key from a [`ScramCache`] shared by all connections of a run.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parley_proto::sasl::ScramHash;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Why a SCRAM exchange failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server's message does not follow RFC 5802 §7.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(&'static str),
    /// The server sent `e=…` (RFC 5802 §7 server-error).
    #[error("server error: {0}")]
    Server(String),
    /// The server nonce does not extend ours (RFC 5802 §5.1).
    #[error("server nonce does not extend the client nonce")]
    Nonce,
    /// The server signature is wrong: the server does not know the credentials.
    #[error("wrong server signature")]
    ServerSignature,
    /// SASLprep (RFC 4013) refused the password.
    #[error("password refused by SASLprep")]
    Saslprep,
    /// A method was called in the wrong state.
    #[error("SCRAM step out of order")]
    OutOfOrder,
}

type CacheKey = (ScramHash, String, Vec<u8>, u32);

/// SaltedPassword values by (hash, password, salt, iterations), shared between
/// connections (clone it freely: clones share the map).
#[derive(Clone, Default)]
pub struct ScramCache {
    inner: Arc<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: Mutex<HashMap<CacheKey, Arc<[u8]>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

// The map holds passwords and password-equivalent keys: only counts are shown.
impl fmt::Debug for ScramCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCache")
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish_non_exhaustive()
    }
}

impl ScramCache {
    pub fn new() -> ScramCache {
        ScramCache::default()
    }

    /// `SaltedPassword := Hi(Normalize(password), salt, i)` (RFC 5802 §3), derived once
    /// per distinct input. Concurrent first requests for the same key may both derive it;
    /// the lock is never held across PBKDF2, so other keys are not held up.
    pub fn salted_password(
        &self,
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Arc<[u8]>, ScramError> {
        let key = (hash, password.to_owned(), salt.to_vec(), iterations);
        if let Some(found) = self.lock().get(&key) {
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(found.clone());
        }
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
        let derived: Arc<[u8]> = hi(hash, password, salt, iterations)?.into();
        self.lock().insert(key, derived.clone());
        Ok(derived)
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    /// Lookups that ran PBKDF2.
    pub fn misses(&self) -> u64 {
        self.inner.misses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<[u8]>>> {
        // A panic while holding the lock cannot leave the map inconsistent (inserts are
        // single calls), so a poisoned lock is still usable.
        self.inner
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// PBKDF2 with HMAC-`hash` over the SASLprep'd password.
fn hi(
    hash: ScramHash,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, ScramError> {
    // RFC 5802 §2.2: Hi is undefined for i < 1.
    if iterations == 0 {
        return Err(ScramError::Malformed("zero iterations"));
    }
    let password = stringprep::saslprep(password).map_err(|_| ScramError::Saslprep)?;
    let mut out = vec![0u8; hash.output_len()];
    match hash {
        ScramHash::Sha1 => {
            pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut out)
        }
        ScramHash::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out)
        }
    }
    Ok(out)
}

fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so construction cannot fail.
    match hash {
        ScramHash::Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        ScramHash::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// RFC 5802 §5.1 saslname: `=` and `,` are escaped.
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// The value of `key=` in one comma-separated field.
fn attr(field: &str, key: char) -> Result<&str, ScramError> {
    let mut chars = field.chars();
    if chars.next() == Some(key) && chars.next() == Some('=') {
        Ok(&field[2..])
    } else {
        Err(ScramError::Malformed("unexpected attribute"))
    }
}

enum State {
    Initial,
    FirstSent { client_first_bare: String },
    FinalSent { server_signature: Vec<u8> },
    Done,
}

/// One client-side SCRAM exchange without channel binding (GS2 flag `n`: the generator
/// does not offer `-PLUS`, so `n` is the honest flag even over TLS, RFC 5802 §6).
pub struct ScramExchange {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    cache: ScramCache,
    state: State,
}

// Never print the password.
impl fmt::Debug for ScramExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramExchange")
            .field("hash", &self.hash)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ScramExchange {
    /// A new exchange with a random 24-character nonce.
    pub fn new(hash: ScramHash, username: &str, password: &str, cache: ScramCache) -> Self {
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        ScramExchange {
            hash,
            username: stringprep::saslprep(username)
                .map(|u| u.into_owned())
                .unwrap_or_else(|_| username.to_owned()),
            password: password.to_owned(),
            nonce: B64.encode(raw),
            cache,
            state: State::Initial,
        }
    }

    /// Replaces the client nonce, to reproduce published test vectors.
    pub fn with_nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_owned();
        self
    }

    /// The client-first message: `n,,n=USER,r=NONCE`.
    pub fn client_first(&mut self) -> String {
        let bare = format!("n={},r={}", encode_saslname(&self.username), self.nonce);
        let msg = format!("n,,{bare}");
        self.state = State::FirstSent {
            client_first_bare: bare,
        };
        msg
    }

    /// The client-final message answering the server-first challenge.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, ScramError> {
        let State::FirstSent { client_first_bare } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut fields = server_first.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(ScramError::Malformed("mandatory extension"));
        }
        let nonce = attr(first, 'r')?;
        let salt = B64
            .decode(attr(fields.next().unwrap_or_default(), 's')?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = attr(fields.next().unwrap_or_default(), 'i')?
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count"))?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        // "biws" is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let salted = self
            .cache
            .salted_password(self.hash, &self.password, &salt, iterations)?;
        let client_key = hmac(self.hash, &salted, b"Client Key");
        let server_key = hmac(self.hash, &salted, b"Server Key");
        let stored_key = digest(self.hash, &client_key);
        let signature = hmac(self.hash, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = State::FinalSent {
            server_signature: hmac(self.hash, &server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final message (`v=…`): the server proves it knows the keys.
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), ScramError> {
        let State::FinalSent { server_signature } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let first = msg.split(',').next().unwrap_or_default();
        if let Some(err) = first.strip_prefix("e=") {
            return Err(ScramError::Server(err.to_owned()));
        }
        let got = B64
            .decode(attr(first, 'v')?)
            .map_err(|_| ScramError::Malformed("verifier is not base64"))?;
        // A benchmark client has no secret to protect against timing, but the check must
        // still be exact.
        if got == server_signature {
            Ok(())
        } else {
            Err(ScramError::ServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::sasl::{ChannelBindings, ScramCredentials, ScramServer};

    const SHA1_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
    const SHA1_SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const SHA1_CLIENT_FINAL: &str =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    const SHA1_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

    const SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SHA256_SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const SHA256_CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SHA256_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    #[test]
    fn rfc5802_5_sha1_example_exchange() {
        let cache = ScramCache::new();
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", cache.clone())
            .with_nonce(SHA1_NONCE);
        assert_eq!(ex.client_first(), format!("n,,n=user,r={SHA1_NONCE}"));
        assert_eq!(
            ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap(),
            SHA1_CLIENT_FINAL
        );
        assert_eq!(ex.verify_server_final(SHA1_SERVER_FINAL.as_bytes()), Ok(()));
        assert_eq!((cache.hits(), cache.misses()), (0, 1));
    }

    #[test]
    fn rfc7677_3_sha256_example_exchange() {
        let cache = ScramCache::new();
        let mut ex = ScramExchange::new(ScramHash::Sha256, "user", "pencil", cache.clone())
            .with_nonce(SHA256_NONCE);
        assert_eq!(ex.client_first(), format!("n,,n=user,r={SHA256_NONCE}"));
        assert_eq!(
            ex.client_final(SHA256_SERVER_FIRST.as_bytes()).unwrap(),
            SHA256_CLIENT_FINAL
        );
        assert_eq!(
            ex.verify_server_final(SHA256_SERVER_FINAL.as_bytes()),
            Ok(())
        );
    }

    /// RFC 5802 §3: SaltedPassword depends only on (hash, password, salt, i), so the
    /// cached value must reproduce the vectors on the second and later exchanges.
    #[test]
    fn rfc5802_3_cached_salted_password_reproduces_the_vectors() {
        let cache = ScramCache::new();
        for round in 0..3 {
            let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", cache.clone())
                .with_nonce(SHA1_NONCE);
            ex.client_first();
            assert_eq!(
                ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap(),
                SHA1_CLIENT_FINAL,
                "round {round}"
            );
            assert_eq!(ex.verify_server_final(SHA1_SERVER_FINAL.as_bytes()), Ok(()));
        }
        assert_eq!(cache.misses(), 1);
        assert_eq!(cache.hits(), 2);
        // Another hash, password, salt or count is another entry.
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let a = cache
            .salted_password(ScramHash::Sha1, "pencil", &salt, 4096)
            .unwrap();
        let b = cache
            .salted_password(ScramHash::Sha256, "pencil", &salt, 4096)
            .unwrap();
        let c = cache
            .salted_password(ScramHash::Sha1, "pencil2", &salt, 4096)
            .unwrap();
        let d = cache
            .salted_password(ScramHash::Sha1, "pencil", &salt, 4097)
            .unwrap();
        assert_eq!(a.len(), 20);
        assert_eq!(b.len(), 32);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(cache.misses(), 4);
    }

    /// RFC 5802 §5: the exchange interoperates with the server state machine Parley runs.
    #[test]
    fn rfc5802_5_exchange_against_parley_server_side() {
        let cache = ScramCache::new();
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            let creds = ScramCredentials::generate(hash, "pw", 4096).unwrap();
            for _ in 0..2 {
                let mut server = ScramServer::new(hash, false, &ChannelBindings::default(), false);
                let mut client = ScramExchange::new(hash, "user7", "pw", cache.clone());
                let first = server
                    .client_first(client.client_first().as_bytes())
                    .unwrap();
                assert_eq!(first.username, "user7");
                let challenge = server.server_first(&creds);
                let response = client.client_final(&challenge).unwrap();
                let outcome = server.client_final(response.as_bytes()).unwrap();
                assert!(server.is_success());
                client.verify_server_final(&outcome).unwrap();
            }
        }
        assert_eq!(cache.misses(), 2);
        assert_eq!(cache.hits(), 2);
    }

    #[test]
    fn rfc5802_5_1_server_nonce_must_extend_the_client_nonce() {
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce("abc");
        ex.client_first();
        assert_eq!(
            ex.client_final(b"r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(ScramError::Nonce)
        );
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce("abc");
        ex.client_first();
        assert_eq!(
            ex.client_final(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(ScramError::Nonce)
        );
    }

    #[test]
    fn rfc5802_7_malformed_server_first_and_errors() {
        let cases: [&[u8]; 5] = [
            b"m=ext,r=abcd,s=QQ==,i=1",
            b"s=QQ==,r=abcd,i=1",
            b"r=abcd,s=***,i=1",
            b"r=abcd,s=QQ==,i=x",
            b"r=abcd,s=QQ==,i=0",
        ];
        for case in cases {
            let mut ex =
                ScramExchange::new(ScramHash::Sha1, "u", "p", ScramCache::new()).with_nonce("ab");
            ex.client_first();
            assert!(
                matches!(ex.client_final(case), Err(ScramError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce(SHA1_NONCE);
        ex.client_first();
        ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            ex.verify_server_final(b"e=invalid-proof"),
            Err(ScramError::Server("invalid-proof".into()))
        );
    }

    #[test]
    fn rfc5802_3_wrong_server_signature_is_refused() {
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce(SHA1_NONCE);
        ex.client_first();
        ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            ex.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError::ServerSignature)
        );
        // And steps out of order are refused rather than guessed at.
        assert_eq!(
            ex.verify_server_final(SHA1_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn rfc5802_5_1_username_is_escaped_as_saslname() {
        let mut ex =
            ScramExchange::new(ScramHash::Sha256, "a,b=c", "p", ScramCache::new()).with_nonce("n");
        assert_eq!(ex.client_first(), "n,,n=a=2Cb=3Dc,r=n");
    }

    #[test]
    fn debug_hides_the_password() {
        let cache = ScramCache::new();
        let ex = ScramExchange::new(ScramHash::Sha1, "user", "sekrit", cache.clone());
        assert!(!format!("{ex:?}").contains("sekrit"));
        cache
            .salted_password(ScramHash::Sha1, "sekrit", b"salt", 1)
            .unwrap();
        assert!(!format!("{cache:?}").contains("sekrit"));
    }
}
