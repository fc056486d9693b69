//! Authentication tokens in the style of Prosody's mod_tokenauth: an id, a secret and the
//! account's JID, handed to the client as one string with the RFC 8959 `secret-token:`
//! prefix, so that secret scanners recognize it wherever it leaks.
//!
//! `secret-token:` + base64url(`id` `;` `secret` `;` `jid`), without padding. Storage keeps
//! the id, the JID and a SHA-256 of the secret — never the secret — so a copy of the
//! database cannot log anyone in. The secret has 256 random bits, so a plain hash is enough
//! (no password stretching is needed against guessing), and it is compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The RFC 8959 prefix.
pub const PREFIX: &str = "secret-token:";

/// A freshly made token: what the client gets and what storage keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The whole string for the client. Never log it.
    pub token: String,
    /// Its id (public: the key in storage, shown in listings).
    pub id: String,
    /// SHA-256 of the secret: all storage keeps of it.
    pub secret_hash: Vec<u8>,
}

/// The parts of a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The id to look up.
    pub id: String,
    /// The secret to check against the stored hash.
    pub secret: String,
    /// The JID the token says it is for (checked against the stored one).
    pub jid: String,
}

/// Makes a token for `jid` (a bare JID).
pub fn generate(jid: &str) -> NewToken {
    let mut id = [0u8; 12];
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut id);
    rand::thread_rng().fill_bytes(&mut secret);
    let id = URL_SAFE_NO_PAD.encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let token = format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!("{id};{secret};{jid}"))
    );
    NewToken {
        token,
        secret_hash: hash(&secret),
        id,
    }
}

/// Whether `s` looks like a token (so that a PLAIN password is checked as one).
pub fn is_token(s: &str) -> bool {
    s.starts_with(PREFIX)
}

/// Splits a presented token; None when it is not one of ours.
pub fn parse(s: &str) -> Option<Presented> {
    let body = s.strip_prefix(PREFIX)?;
    let decoded = URL_SAFE_NO_PAD.decode(body.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let mut parts = text.splitn(3, ';');
    let (id, secret, jid) = (parts.next()?, parts.next()?, parts.next()?);
    if id.is_empty() || secret.is_empty() || jid.is_empty() {
        return None;
    }
    Some(Presented {
        id: id.to_owned(),
        secret: secret.to_owned(),
        jid: jid.to_owned(),
    })
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `secret` matches `stored` (constant time).
pub fn verify(secret: &str, stored: &[u8]) -> bool {
    bool::from(hash(secret).as_slice().ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8959_tokens_carry_the_prefix_and_round_trip() {
        let t = generate("alice@example.org");
        assert!(t.token.starts_with("secret-token:"));
        assert!(is_token(&t.token));
        let p = parse(&t.token).unwrap();
        assert_eq!(p.id, t.id);
        assert_eq!(p.jid, "alice@example.org");
        assert!(verify(&p.secret, &t.secret_hash));
        assert!(!verify("not the secret", &t.secret_hash));
        // What storage keeps cannot be turned back into the token.
        assert!(!t.token.contains(&URL_SAFE_NO_PAD.encode(&t.secret_hash)));
    }

    #[test]
    fn malformed_tokens_are_not_ours() {
        for s in [
            "password",
            "secret-token:",
            "secret-token:!!!",
            &format!("secret-token:{}", URL_SAFE_NO_PAD.encode("only;two")),
            &format!("secret-token:{}", URL_SAFE_NO_PAD.encode(";;a@b")),
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    #[test]
    fn tokens_are_unpredictable() {
        let a = generate("a@b");
        let b = generate("a@b");
        assert_ne!(a.id, b.id);
        assert_ne!(a.token, b.token);
    }
}
