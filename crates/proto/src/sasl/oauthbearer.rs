//! SASL OAUTHBEARER (RFC 7628): the client sends a GS2 header and key-value pairs separated
//! by `\x01`, one of them `auth=Bearer <token>`. Parley's bearer tokens are its own
//! (`secret-token:…`, see [`crate::token`]); a failed token is answered with the RFC 7628
//! §3.2.2 error challenge, which the client acknowledges before the failure.

use super::SaslFailure;

/// A parsed OAUTHBEARER initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBearer {
    /// The authorization identity from the GS2 header (`a=`), if any.
    pub authzid: Option<String>,
    /// The bearer token.
    pub token: String,
}

/// The error challenge of RFC 7628 §3.2.2 for an invalid token.
pub const INVALID_TOKEN_CHALLENGE: &str = r#"{"status":"invalid_token"}"#;

/// Parses the client's initial response (RFC 7628 §3.1).
pub fn parse_oauthbearer(msg: &[u8]) -> Result<OAuthBearer, SaslFailure> {
    let text = std::str::from_utf8(msg).map_err(|_| SaslFailure::MalformedRequest)?;
    // gs2-header: "n," or "y," (no channel binding for OAUTHBEARER), then authzid, ",".
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or(SaslFailure::MalformedRequest)?;
    let mut fields = gs2.splitn(3, ',');
    let cb = fields.next().ok_or(SaslFailure::MalformedRequest)?;
    if cb != "n" && cb != "y" {
        return Err(SaslFailure::MalformedRequest);
    }
    let authzid = match fields.next() {
        Some("") => None,
        Some(a) => Some(
            a.strip_prefix("a=")
                .ok_or(SaslFailure::MalformedRequest)?
                // RFC 5801 §4: ',' and '=' are escaped in saslnames.
                .replace("=2C", ",")
                .replace("=3D", "="),
        ),
        None => return Err(SaslFailure::MalformedRequest),
    };
    if fields.next() != Some("") {
        return Err(SaslFailure::MalformedRequest);
    }
    // kvpairs, each followed by \x01, and a final \x01.
    let rest = rest
        .strip_suffix("\x01\x01")
        .ok_or(SaslFailure::MalformedRequest)?;
    let mut token = None;
    for kv in rest.split('\x01') {
        let (key, value) = kv.split_once('=').ok_or(SaslFailure::MalformedRequest)?;
        if key == "auth" {
            let (scheme, t) = value.split_once(' ').ok_or(SaslFailure::MalformedRequest)?;
            if !scheme.eq_ignore_ascii_case("bearer") || t.trim().is_empty() {
                return Err(SaslFailure::MalformedRequest);
            }
            token = Some(t.trim().to_owned());
        }
    }
    Ok(OAuthBearer {
        authzid,
        token: token.ok_or(SaslFailure::MalformedRequest)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7628_3_1_initial_response() {
        let msg = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        let p = parse_oauthbearer(msg).unwrap();
        assert_eq!(p.authzid.as_deref(), Some("user@example.com"));
        assert_eq!(p.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        let p = parse_oauthbearer(b"n,,\x01auth=Bearer t\x01\x01").unwrap();
        assert_eq!(p.authzid, None);
        assert_eq!(p.token, "t");
    }

    #[test]
    fn rfc7628_3_1_malformed_responses_are_refused() {
        for msg in [
            &b"n,,auth=Bearer t\x01\x01"[..],
            b"p=x,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01host=x\x01\x01",
            b"n,u=x,\x01auth=Bearer t\x01\x01",
            b"\xff",
        ] {
            assert_eq!(
                parse_oauthbearer(msg),
                Err(SaslFailure::MalformedRequest),
                "{msg:?}"
            );
        }
    }
}
