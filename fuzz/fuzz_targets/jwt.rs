//! HS256 JWT verification (RFC 7519, RFC 7518 §3.2; `parley_proto::jwt::verify_hs256`),
//! which sees any password a client sends with PLAIN that looks like a JWT.
//!
//! Byte 0 picks the mode:
//! - even: the rest is a token, as a client would send it;
//! - odd: the rest is a claims set, signed here with the server's key, so the claim
//!   checks behind the signature (`exp`, `nbf`, `iat`, `sub`/`jid`) are reached too; the
//!   key holder (the web site minting logins) is trusted with logins, not with crashing
//!   the server.
//!
//! Invariants: no panic (debug assertions are on, so an overflow is one); a token is
//! accepted only when an independent HMAC-SHA-256 over `header.payload` matches its
//! signature, its header says HS256, and its `exp` is in the future (within the leeway);
//! the JID returned is its `sub` (or `jid`) claim.

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use parley_proto::jwt::{looks_like_jwt, verify_hs256};
use serde_json::Value;
use sha2::Sha256;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_700_000_000;
/// The largest `auth.jwt_leeway_s` the configuration accepts.
const LEEWAY: i64 = 600;

fn mac(signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("any key length");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn json(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .expect("accepted part is base64url");
    serde_json::from_slice(&bytes).expect("accepted part is JSON")
}

fn check(token: &str) {
    let _ = looks_like_jwt(token);
    let Ok(jid) = verify_hs256(token, KEY, NOW, LEEWAY) else {
        return;
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .expect("signature is base64url");
    assert_eq!(
        sig,
        mac(&format!("{}.{}", parts[0], parts[1])),
        "forged signature accepted"
    );
    assert_eq!(json(parts[0])["alg"], "HS256");
    let claims = json(parts[1]);
    let exp = claims["exp"]
        .as_i64()
        .expect("accepted without an integer exp");
    assert!(
        i128::from(NOW) < i128::from(exp) + i128::from(LEEWAY),
        "expired token accepted"
    );
    assert!(!jid.is_empty());
    assert!(
        [claims["sub"].as_str(), claims["jid"].as_str()].contains(&Some(jid.as_str())),
        "JID {jid:?} is not the token's"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            check(token);
        }
    } else {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(rest);
        let s = URL_SAFE_NO_PAD.encode(mac(&format!("{h}.{p}")));
        check(&format!("{h}.{p}.{s}"));
    }
});
