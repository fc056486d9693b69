//! SCRAM stored credentials (RFC 5802 §3) and the hash primitives SCRAM is
//! built from.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{SaslFailure, ScramHash};

/// Salt length for new credentials: 128 bits, as RFC 5802 §5.1's example
/// and common practice use.
const SALT_LEN: usize = 16;

/// `HMAC(key, data)` for the given hash.
pub(crate) fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so construction cannot fail.
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

/// `H(data)` for the given hash.
pub(crate) fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// SASLprep (RFC 4013) for a password or user name; a string SASLprep
/// rejects can never authenticate.
pub(crate) fn saslprep(s: &str) -> Result<String, SaslFailure> {
    stringprep::saslprep(s)
        .map(|p| p.into_owned())
        .map_err(|_| SaslFailure::MalformedRequest)
}

/// `SaltedPassword := Hi(Normalize(password), salt, i)` (RFC 5802 §3),
/// where `Hi` is PBKDF2 with HMAC-`hash`.
///
/// Public so that a client which caches SaltedPassword (see
/// [`ScramClient::client_final_with`](super::ScramClient::client_final_with))
/// derives it exactly as the server does. Fails with `malformed-request`
/// when SASLprep rejects the password or `iterations` is zero.
pub fn salted_password(
    hash: ScramHash,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, SaslFailure> {
    // Hi is undefined for zero iterations (RFC 5802 §2.2 requires i >= 1).
    if iterations == 0 {
        return Err(SaslFailure::MalformedRequest);
    }
    let password = saslprep(password)?;
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

/// `(ClientKey, ServerKey)` from a SaltedPassword (RFC 5802 §3).
pub(crate) fn client_and_server_keys(hash: ScramHash, salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (
        hmac(hash, salted, b"Client Key"),
        hmac(hash, salted, b"Server Key"),
    )
}

/// What the server stores for a SCRAM account (RFC 5802 §3/§5.1): enough
/// to verify a client proof, not enough to recover the password or to
/// impersonate the client.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub hash: ScramHash,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives credentials from a password: `StoredKey = H(HMAC(SaltedPassword,
    /// "Client Key"))`, `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    /// Fails with `malformed-request` when SASLprep rejects the password or
    /// `iterations` is zero.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslFailure> {
        let salted = salted_password(hash, password, salt, iterations)?;
        let (client_key, server_key) = client_and_server_keys(hash, &salted);
        Ok(ScramCredentials {
            hash,
            salt: salt.to_vec(),
            iterations,
            stored_key: digest(hash, &client_key),
            server_key,
        })
    }

    /// New credentials for a password with a fresh random 16-byte salt.
    pub fn generate(hash: ScramHash, password: &str, iterations: u32) -> Result<Self, SaslFailure> {
        let mut salt = [0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive(hash, password, &salt, iterations)
    }

    /// Whether `password` matches, comparing keys in constant time so the
    /// check does not leak how much of a key matched.
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(other) = Self::derive(self.hash, password, &self.salt, self.iterations) else {
            return false;
        };
        let stored = other.stored_key.ct_eq(&self.stored_key);
        let server = other.server_key.ct_eq(&self.server_key);
        (stored & server).into()
    }

    /// Credentials to run SCRAM against for a user that does not exist, so
    /// that the exchange looks like a real one and does not reveal which
    /// accounts exist (the user-enumeration concern of RFC 5802 §9).
    ///
    /// The salt is `HMAC-SHA-256(server_secret, hash name || 0 || username)`
    /// truncated to 16 bytes: probing the same unknown name twice shows the
    /// same salt, as a real account would, while the secret keeps salts
    /// unpredictable. The keys are random, so no password ever matches.
    pub fn fake(hash: ScramHash, server_secret: &[u8], username: &str, iterations: u32) -> Self {
        let mut input = Vec::with_capacity(hash.name().len() + 1 + username.len());
        input.extend_from_slice(hash.name().as_bytes());
        input.push(0);
        input.extend_from_slice(username.as_bytes());
        let mut salt = hmac(ScramHash::Sha256, server_secret, &input);
        salt.truncate(SALT_LEN);
        let mut rng = rand::thread_rng();
        let mut stored_key = vec![0u8; hash.output_len()];
        let mut server_key = vec![0u8; hash.output_len()];
        rng.fill_bytes(&mut stored_key);
        rng.fill_bytes(&mut server_key);
        ScramCredentials {
            hash,
            salt,
            iterations: iterations.max(1),
            stored_key,
            server_key,
        }
    }
}

// Keys are password-equivalent for offline guessing, so they are never
// printed.
impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;

    fn rfc5802_salt() -> Vec<u8> {
        B64.decode("QSXCR+Q6sek8bf92").unwrap()
    }

    #[test]
    fn rfc5802_3_derived_credentials_verify_only_their_password() {
        let creds =
            ScramCredentials::derive(ScramHash::Sha1, "pencil", &rfc5802_salt(), 4096).unwrap();
        assert_eq!(creds.salt, rfc5802_salt());
        assert_eq!(creds.iterations, 4096);
        assert_eq!(creds.stored_key.len(), 20);
        assert_eq!(creds.server_key.len(), 20);
        assert!(creds.verify_password("pencil"));
        assert!(!creds.verify_password("pencil2"));
        assert!(!creds.verify_password(""));
    }

    #[test]
    fn rfc5802_3_generate_uses_fresh_salt() {
        let a = ScramCredentials::generate(ScramHash::Sha256, "secret", 4096).unwrap();
        let b = ScramCredentials::generate(ScramHash::Sha256, "secret", 4096).unwrap();
        assert_eq!(a.salt.len(), 16);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
        assert_eq!(a.stored_key.len(), 32);
        assert!(a.verify_password("secret"));
        assert!(b.verify_password("secret"));
    }

    #[test]
    fn rfc5802_2_2_zero_iterations_are_refused() {
        assert_eq!(
            ScramCredentials::derive(ScramHash::Sha1, "pencil", b"salt", 0),
            Err(SaslFailure::MalformedRequest)
        );
    }

    #[test]
    fn rfc4013_3_password_is_saslprepped_before_hashing() {
        // RFC 4013 §3 examples: SOFT HYPHEN maps to nothing, U+2168 (ROMAN
        // NUMERAL NINE) normalizes to "IX", BEL is prohibited.
        let creds = ScramCredentials::derive(ScramHash::Sha256, "IX", b"salt", 16).unwrap();
        assert!(creds.verify_password("I\u{ad}X"));
        assert!(creds.verify_password("\u{2168}"));
        assert_eq!(
            ScramCredentials::derive(ScramHash::Sha256, "a\u{7}", b"salt", 16),
            Err(SaslFailure::MalformedRequest)
        );
        assert!(!creds.verify_password("a\u{7}"));
    }

    #[test]
    fn rfc5802_9_fake_credentials_have_stable_salt_per_user() {
        let secret = b"server secret";
        let a1 = ScramCredentials::fake(ScramHash::Sha256, secret, "ghost", 4096);
        let a2 = ScramCredentials::fake(ScramHash::Sha256, secret, "ghost", 4096);
        let b = ScramCredentials::fake(ScramHash::Sha256, secret, "phantom", 4096);
        let a_sha1 = ScramCredentials::fake(ScramHash::Sha1, secret, "ghost", 4096);
        let a_other_secret = ScramCredentials::fake(ScramHash::Sha256, b"other", "ghost", 4096);
        assert_eq!(a1.salt.len(), 16);
        assert_eq!(a1.salt, a2.salt);
        assert_ne!(a1.salt, b.salt);
        assert_ne!(a1.salt, a_sha1.salt);
        assert_ne!(a1.salt, a_other_secret.salt);
        assert_eq!(a1.iterations, 4096);
        assert_eq!(a1.hash, ScramHash::Sha256);
        assert_eq!(a1.stored_key.len(), 32);
        assert_eq!(a_sha1.stored_key.len(), 20);
        // Random keys: two fakes for the same user differ, and no password
        // we try matches.
        assert_ne!(a1.stored_key, a2.stored_key);
        for pw in ["", "ghost", "password", "pencil"] {
            assert!(!a1.verify_password(pw));
        }
    }

    #[test]
    fn credentials_debug_hides_keys() {
        let creds = ScramCredentials::derive(ScramHash::Sha1, "pencil", b"salt", 1).unwrap();
        let dbg = format!("{creds:?}");
        assert!(dbg.contains("Sha1"));
        assert!(!dbg.contains("stored_key"));
        assert!(!dbg.contains("server_key"));
    }
}
