//! HMAC-signed login tokens: JWT (RFC 7519) with HS256 (RFC 7518 §3.2) only, so that a web
//! site that shares a secret with Parley can mint a login for its user without any call to
//! Parley. The algorithm is pinned — a header naming anything else (`none`, RS256, HS512)
//! is refused before the signature is even looked at — `exp` is required, `nbf` and `iat`
//! are checked with a leeway, and the JID is the `sub` claim (or `jid`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("not a JWT")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("algorithm {0} is not accepted (HS256 only)")]
    Algorithm(String),
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// `exp` is missing or past.
    #[error("expired (or no exp claim)")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("not valid yet")]
    NotYetValid,
    /// No `sub`/`jid` claim.
    #[error("no sub or jid claim")]
    NoJid,
}

/// Whether `s` has the shape of a JWT (three base64url parts), so that a PLAIN password
/// is tried as one.
pub fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Verifies an HS256 JWT with `secret` at unix time `now_s`; returns the JID it is for.
pub fn verify_hs256(
    token: &str,
    secret: &[u8],
    now_s: i64,
    leeway_s: i64,
) -> Result<String, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let json = |part: &str| -> Result<serde_json::Value, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
    };
    let header = json(h)?;
    let alg = header["alg"].as_str().unwrap_or("(none)");
    if alg != "HS256" {
        return Err(JwtError::Algorithm(alg.to_owned()));
    }
    let given = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::Signature)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let expected = mac.finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(JwtError::Signature);
    }
    let claims = json(p)?;
    // Saturating: `exp` is the signer's number and may be anything up to i64::MAX.
    match claims["exp"].as_i64() {
        Some(exp) if now_s < exp.saturating_add(leeway_s) => {}
        _ => return Err(JwtError::Expired),
    }
    for claim in ["nbf", "iat"] {
        if claims[claim]
            .as_i64()
            .is_some_and(|t| t > now_s.saturating_add(leeway_s))
        {
            return Err(JwtError::NotYetValid);
        }
    }
    claims["sub"]
        .as_str()
        .or_else(|| claims["jid"].as_str())
        .filter(|j| !j.is_empty())
        .map(str::to_owned)
        .ok_or(JwtError::NoJid)
}

/// Signs claims with HS256 (for tests and tools that mint logins).
pub fn sign_hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn rfc7519_hs256_token_gives_its_jid() {
        let t = sign_hs256(
            &json!({"sub": "alice@example.org", "exp": 2000, "iat": 1000}),
            KEY,
        );
        assert!(looks_like_jwt(&t));
        assert_eq!(verify_hs256(&t, KEY, 1500, 0).unwrap(), "alice@example.org");
        let t = sign_hs256(&json!({"jid": "bob@example.org", "exp": 2000}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 1500, 0).unwrap(), "bob@example.org");
    }

    #[test]
    fn rfc8725_3_1_the_algorithm_is_pinned() {
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"a@b","exp":9999999999}"#);
        for alg in ["none", "HS512", "RS256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let t = format!("{h}.{claims}.c2ln");
            assert_eq!(
                verify_hs256(&t, KEY, 0, 0),
                Err(JwtError::Algorithm(alg.into()))
            );
        }
    }

    #[test]
    fn expired_future_unsigned_and_forged_tokens_are_refused() {
        let t = sign_hs256(&json!({"sub": "a@b", "exp": 1000}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 1000, 0), Err(JwtError::Expired));
        assert_eq!(verify_hs256(&t, KEY, 1029, 30).unwrap(), "a@b");
        let t = sign_hs256(&json!({"sub": "a@b"}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 0, 0), Err(JwtError::Expired));
        let t = sign_hs256(&json!({"sub": "a@b", "exp": 5000, "nbf": 2000}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 1000, 0), Err(JwtError::NotYetValid));
        let t = sign_hs256(
            &json!({"sub": "a@b", "exp": 5000}),
            b"another key another key another!",
        );
        assert_eq!(verify_hs256(&t, KEY, 1000, 0), Err(JwtError::Signature));
        let t = sign_hs256(&json!({"exp": 5000}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 1000, 0), Err(JwtError::NoJid));
        assert_eq!(verify_hs256("a.b", KEY, 0, 0), Err(JwtError::Malformed));
        assert!(!looks_like_jwt("password"));
        assert!(!looks_like_jwt("secret-token:abc"));
    }

    /// Found writing the fuzz target `jwt` (its signed-claims mode reaches it): `exp +
    /// leeway` overflowed for an `exp` near `i64::MAX`, a panic with overflow checks (debug
    /// builds) and, wrapped, a refusal of a token that never expires.
    #[test]
    fn rfc7519_4_1_4_exp_at_the_end_of_time_neither_overflows_nor_expires() {
        let t = sign_hs256(&json!({"sub": "a@b", "exp": i64::MAX}), KEY);
        assert_eq!(verify_hs256(&t, KEY, 1000, 600).unwrap(), "a@b");
    }
}
