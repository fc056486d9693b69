//! The client side of SCRAM (RFC 5802, RFC 7677) with a shared SaltedPassword cache.
//!
//! The exchange is `parley_proto::sasl::ScramClient`, the same state machine the test kit
//! uses and the server is checked against. Only its SaltedPassword comes from here: a
//! [`ScramCache`] shared by all connections of a run. Deriving it (PBKDF2, thousands of
//! HMAC rounds) on every login would make the generator spend its core on its own PBKDF2
//! and measure itself, not the server; real clients cache the derived key too.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_proto::sasl::{salted_password, SaslFailure, ScramClient, ScramHash};

/// The client side of SCRAM refused the exchange, for the reason `ScramClient` gives:
/// `malformed-request` (a malformed server message, a step out of order, a password
/// SASLprep refuses), `incorrect-encoding` (bad base64), or `not-authorized` (a server
/// nonce that does not extend ours, a wrong server signature, or `e=` from the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused the server's SCRAM messages ({0})")]
pub struct ScramError(pub SaslFailure);

type CacheKey = (ScramHash, String, Vec<u8>, u32);

/// SaltedPassword values by (hash, password, salt, iterations), shared between
/// connections (clone it freely: clones share the map).
#[derive(Clone, Default)]
pub struct ScramCache {
    inner: Arc<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: Mutex<HashMap<CacheKey, Vec<u8>>>,
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
    /// per distinct input with `parley_proto::sasl::salted_password`. Concurrent first
    /// requests for the same key may both derive it; the lock is never held across
    /// PBKDF2, so other keys are not held up.
    pub fn salted_password(
        &self,
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Vec<u8>, SaslFailure> {
        let key = (hash, password.to_owned(), salt.to_vec(), iterations);
        if let Some(found) = self.lock().get(&key) {
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(found.clone());
        }
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
        let derived = salted_password(hash, password, salt, iterations)?;
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

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<CacheKey, Vec<u8>>> {
        // parking_lot does not poison: a panic while holding the lock cannot leave the map
        // inconsistent (inserts are single calls), so there is nothing to recover from.
        self.inner.map.lock()
    }
}

/// One client-side SCRAM exchange without channel binding (GS2 flag `n`: the generator
/// does not offer `-PLUS`, so `n` is the honest flag even over TLS, RFC 5802 §6).
/// `Debug` shows neither the password nor the cached keys.
#[derive(Debug)]
pub struct ScramExchange {
    client: ScramClient,
    cache: ScramCache,
}

impl ScramExchange {
    /// A new exchange with a random nonce.
    pub fn new(hash: ScramHash, username: &str, password: &str, cache: ScramCache) -> Self {
        ScramExchange {
            client: ScramClient::new(hash, username, password, None, false),
            cache,
        }
    }

    /// Replaces the client nonce, to reproduce published test vectors.
    pub fn with_nonce(mut self, nonce: &str) -> Self {
        self.client = self.client.with_client_nonce(nonce);
        self
    }

    /// The client-first message: `n,,n=USER,r=NONCE`.
    pub fn client_first(&mut self) -> Vec<u8> {
        self.client.client_first()
    }

    /// The client-final message answering the server-first challenge, with
    /// SaltedPassword taken from (or added to) the cache.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let cache = &self.cache;
        self.client
            .client_final_with(server_first, &mut |hash, password, salt, iterations| {
                cache.salted_password(hash, password, salt, iterations)
            })
            .map_err(ScramError)
    }

    /// Checks the server-final message (`v=…`): the server proves it knows the keys.
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), ScramError> {
        self.client.verify_server_final(msg).map_err(ScramError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
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
        assert_eq!(
            ex.client_first(),
            format!("n,,n=user,r={SHA1_NONCE}").as_bytes()
        );
        assert_eq!(
            ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap(),
            SHA1_CLIENT_FINAL.as_bytes()
        );
        assert_eq!(ex.verify_server_final(SHA1_SERVER_FINAL.as_bytes()), Ok(()));
        assert_eq!((cache.hits(), cache.misses()), (0, 1));
    }

    #[test]
    fn rfc7677_3_sha256_example_exchange() {
        let cache = ScramCache::new();
        let mut ex = ScramExchange::new(ScramHash::Sha256, "user", "pencil", cache.clone())
            .with_nonce(SHA256_NONCE);
        assert_eq!(
            ex.client_first(),
            format!("n,,n=user,r={SHA256_NONCE}").as_bytes()
        );
        assert_eq!(
            ex.client_final(SHA256_SERVER_FIRST.as_bytes()).unwrap(),
            SHA256_CLIENT_FINAL.as_bytes()
        );
        assert_eq!((cache.hits(), cache.misses()), (0, 1));
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
                SHA1_CLIENT_FINAL.as_bytes(),
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
                let first = server.client_first(&client.client_first()).unwrap();
                assert_eq!(first.username, "user7");
                let challenge = server.server_first(&creds);
                let response = client.client_final(&challenge).unwrap();
                let outcome = server.client_final(&response).unwrap();
                assert!(server.is_success());
                client.verify_server_final(&outcome).unwrap();
            }
        }
        assert_eq!(cache.misses(), 2);
        assert_eq!(cache.hits(), 2);
    }

    /// RFC 5802 §5.1: a server nonce that does not extend ours is refused, and no key
    /// is derived (or cached) for such a challenge.
    #[test]
    fn rfc5802_5_1_server_nonce_must_extend_the_client_nonce() {
        let cache = ScramCache::new();
        for server_first in [
            &b"r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096"[..],
            b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", cache.clone())
                .with_nonce("abc");
            ex.client_first();
            assert_eq!(
                ex.client_final(server_first),
                Err(ScramError(SaslFailure::NotAuthorized))
            );
        }
        assert_eq!((cache.hits(), cache.misses()), (0, 0));
    }

    #[test]
    fn rfc5802_7_malformed_server_first_and_errors() {
        let cases: [(&[u8], SaslFailure); 5] = [
            (b"m=ext,r=abcd,s=QQ==,i=1", SaslFailure::MalformedRequest),
            (b"s=QQ==,r=abcd,i=1", SaslFailure::MalformedRequest),
            (b"r=abcd,s=***,i=1", SaslFailure::IncorrectEncoding),
            (b"r=abcd,s=QQ==,i=x", SaslFailure::MalformedRequest),
            // RFC 5802 §2.2: Hi is undefined for i = 0; refused by the derivation the
            // cache runs, and nothing is cached.
            (b"r=abcd,s=QQ==,i=0", SaslFailure::MalformedRequest),
        ];
        let cache = ScramCache::new();
        for (case, failure) in cases {
            let mut ex =
                ScramExchange::new(ScramHash::Sha1, "u", "p", cache.clone()).with_nonce("ab");
            ex.client_first();
            assert_eq!(
                ex.client_final(case),
                Err(ScramError(failure)),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        assert!(cache.lock().is_empty());
        // RFC 5802 §7 server-error in the server-final message.
        let mut ex = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce(SHA1_NONCE);
        ex.client_first();
        ex.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            ex.verify_server_final(b"e=invalid-proof"),
            Err(ScramError(SaslFailure::NotAuthorized))
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
            Err(ScramError(SaslFailure::NotAuthorized))
        );
        // And steps out of order are refused rather than guessed at.
        assert_eq!(
            ex.verify_server_final(SHA1_SERVER_FINAL.as_bytes()),
            Err(ScramError(SaslFailure::MalformedRequest))
        );
        let mut fresh = ScramExchange::new(ScramHash::Sha1, "user", "pencil", ScramCache::new())
            .with_nonce(SHA1_NONCE);
        assert_eq!(
            fresh.client_final(SHA1_SERVER_FIRST.as_bytes()),
            Err(ScramError(SaslFailure::MalformedRequest))
        );
    }

    #[test]
    fn rfc5802_5_1_username_is_escaped_as_saslname() {
        let mut ex =
            ScramExchange::new(ScramHash::Sha256, "a,b=c", "p", ScramCache::new()).with_nonce("n");
        assert_eq!(ex.client_first(), b"n,,n=a=2Cb=3Dc,r=n");
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
