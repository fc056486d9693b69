//! HMAC-signed login tokens: JWT (RFC 7519) with HS256 (RFC 7518 §3.2) only, so that a web
//! site that shares a secret with Parley can mint a login for its user without any call to
//! Parley. The algorithm is pinned — a header naming anything else (`none`, RS256, HS512)
//! is refused before the signature is even looked at — `exp` is required, `nbf` and `iat`
//! are checked with a leeway, `aud` and `iss` when the policy names them (RFC 7519 §4.1.1,
//! §4.1.3), the lifetime is bounded, and the JID is the `sub` claim (or `jid`).
//!
//! Nothing of the token's content ever reaches an error's text: the header and claims come
//! from an unauthenticated client, and errors end up in logs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a JWT was refused. No variant carries text from the token (it is unauthenticated
/// input and these end up in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("not a JWT")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("algorithm is not HS256")]
    Algorithm,
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
    /// `aud` is required and does not name this server.
    #[error("audience does not match")]
    Audience,
    /// `iss` is required and is not the expected issuer.
    #[error("issuer does not match")]
    Issuer,
    /// `exp - iat` (or `exp - now` without `iat`) is longer than allowed.
    #[error("lifetime longer than allowed")]
    TooLong,
}

/// What a JWT must satisfy besides its signature and `exp`.
#[derive(Clone, Default)]
pub struct JwtPolicy {
    /// The shared HMAC secret.
    pub secret: Vec<u8>,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_s: i64,
    /// When set, `aud` (a string or an array of strings) must contain it.
    pub audience: Option<String>,
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, `exp - iat` (or `exp - now` when there is no `iat`) may not exceed it.
    pub max_lifetime_s: Option<i64>,
}

// The secret is never printed.
impl std::fmt::Debug for JwtPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtPolicy")
            .field("leeway_s", &self.leeway_s)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("max_lifetime_s", &self.max_lifetime_s)
            .finish_non_exhaustive()
    }
}

/// The claims of a JWT that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaims {
    /// `sub` (or `jid`), as given: the caller normalizes and compares it.
    pub jid: String,
    /// `exp`, unix seconds: a session opened with it ends then.
    pub exp: i64,
    /// `iat`, unix seconds, when present: compared with the account's sign-out time.
    pub iat: Option<i64>,
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
    let policy = JwtPolicy {
        secret: secret.to_vec(),
        leeway_s,
        ..JwtPolicy::default()
    };
    verify(token, &policy, now_s).map(|c| c.jid)
}

/// Verifies an HS256 JWT against `policy` at unix time `now_s`.
pub fn verify(token: &str, policy: &JwtPolicy, now_s: i64) -> Result<JwtClaims, JwtError> {
    let leeway_s = policy.leeway_s;
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
    if header["alg"].as_str() != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let given = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&policy.secret).map_err(|_| JwtError::Signature)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let expected = mac.finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(JwtError::Signature);
    }
    let claims = json(p)?;
    let exp = match claims["exp"].as_i64() {
        Some(exp) if now_s < exp.saturating_add(leeway_s) => exp,
        _ => return Err(JwtError::Expired),
    };
    for claim in ["nbf", "iat"] {
        if claims[claim]
            .as_i64()
            .is_some_and(|t| t > now_s.saturating_add(leeway_s))
        {
            return Err(JwtError::NotYetValid);
        }
    }
    let iat = claims["iat"].as_i64();
    if let Some(max) = policy.max_lifetime_s {
        // Without iat the token's age is unknown; what is left of it must fit.
        let lifetime = exp.saturating_sub(iat.unwrap_or(now_s));
        if lifetime > max {
            return Err(JwtError::TooLong);
        }
    }
    if let Some(want) = &policy.issuer {
        if claims["iss"].as_str() != Some(want.as_str()) {
            return Err(JwtError::Issuer);
        }
    }
    if let Some(want) = &policy.audience {
        // RFC 7519 §4.1.3: a single string or an array of strings.
        let ok = match &claims["aud"] {
            serde_json::Value::String(s) => s == want,
            serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(want.as_str())),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Audience);
        }
    }
    let jid = claims["sub"]
        .as_str()
        .or_else(|| claims["jid"].as_str())
        .filter(|j| !j.is_empty())
        .map(str::to_owned)
        .ok_or(JwtError::NoJid)?;
    Ok(JwtClaims { jid, exp, iat })
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
            assert_eq!(verify_hs256(&t, KEY, 0, 0), Err(JwtError::Algorithm));
            // The header is unauthenticated input: nothing of it reaches the error's text.
            let shown = verify_hs256(&t, KEY, 0, 0).unwrap_err().to_string();
            assert!(!shown.contains(alg), "{shown}");
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

    fn policy() -> JwtPolicy {
        JwtPolicy {
            secret: KEY.to_vec(),
            leeway_s: 0,
            audience: Some("chat.example.org".into()),
            issuer: Some("https://example.org".into()),
            max_lifetime_s: Some(3600),
        }
    }

    #[test]
    fn rfc7519_4_1_1_and_4_1_3_issuer_and_audience_are_checked_when_configured() {
        let ok = json!({"sub": "a@b", "exp": 2000, "iat": 1000,
            "iss": "https://example.org", "aud": ["other", "chat.example.org"]});
        let claims = verify(&sign_hs256(&ok, KEY), &policy(), 1500).unwrap();
        assert_eq!(
            claims,
            JwtClaims {
                jid: "a@b".into(),
                exp: 2000,
                iat: Some(1000)
            }
        );
        let single = json!({"sub": "a@b", "exp": 2000, "iss": "https://example.org",
            "aud": "chat.example.org"});
        assert!(verify(&sign_hs256(&single, KEY), &policy(), 1500).is_ok());
        for (claims, why) in [
            (
                json!({"sub": "a@b", "exp": 2000, "aud": "chat.example.org"}),
                JwtError::Issuer,
            ),
            (
                json!({"sub": "a@b", "exp": 2000, "iss": "https://evil.example",
                    "aud": "chat.example.org"}),
                JwtError::Issuer,
            ),
            (
                json!({"sub": "a@b", "exp": 2000, "iss": "https://example.org"}),
                JwtError::Audience,
            ),
            (
                json!({"sub": "a@b", "exp": 2000, "iss": "https://example.org",
                    "aud": ["other"]}),
                JwtError::Audience,
            ),
        ] {
            assert_eq!(verify(&sign_hs256(&claims, KEY), &policy(), 1500), Err(why));
        }
        // Without a policy on them, aud and iss are not required.
        assert!(verify_hs256(
            &sign_hs256(&json!({"sub": "a@b", "exp": 2000}), KEY),
            KEY,
            1500,
            0
        )
        .is_ok());
    }

    #[test]
    fn lifetime_is_bounded_by_exp_minus_iat_or_exp_minus_now() {
        let p = JwtPolicy {
            audience: None,
            issuer: None,
            ..policy()
        };
        let long = json!({"sub": "a@b", "iat": 1000, "exp": 1000 + 3601});
        assert_eq!(
            verify(&sign_hs256(&long, KEY), &p, 1500),
            Err(JwtError::TooLong)
        );
        let fits = json!({"sub": "a@b", "iat": 1000, "exp": 1000 + 3600});
        assert!(verify(&sign_hs256(&fits, KEY), &p, 1500).is_ok());
        // No iat: what is left from now counts.
        let no_iat = json!({"sub": "a@b", "exp": 10_000});
        assert_eq!(
            verify(&sign_hs256(&no_iat, KEY), &p, 1500),
            Err(JwtError::TooLong)
        );
        assert!(verify(&sign_hs256(&no_iat, KEY), &p, 7000).is_ok());
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
