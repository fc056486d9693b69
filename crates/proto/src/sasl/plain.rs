//! The PLAIN mechanism message (RFC 4616 §2).

use std::fmt;

use super::credentials::saslprep;
use super::SaslFailure;

/// The decoded PLAIN message. The password is SASLprep'd, ready to check
/// against stored credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    pub authzid: Option<String>,
    pub username: String,
    pub password: String,
}

// Never print the password.
impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn utf8(b: &[u8]) -> Result<&str, SaslFailure> {
    std::str::from_utf8(b).map_err(|_| SaslFailure::MalformedRequest)
}

/// Parses `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
///
/// An empty authzid means "none". The user name and password go through
/// SASLprep (RFC 4616 §2 requires it of the server); the authzid, a JID in
/// XMPP, is left for JID preparation by the caller.
pub fn parse_plain(msg: &[u8]) -> Result<PlainCredentials, SaslFailure> {
    let mut parts = msg.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::MalformedRequest);
    };
    // RFC 4616 §2: authcid and passwd are 1*SAFE, i.e. non-empty.
    if authcid.is_empty() || passwd.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    let authzid = match utf8(authzid)? {
        "" => None,
        a => Some(a.to_owned()),
    };
    let username = saslprep(utf8(authcid)?)?;
    let password = saslprep(utf8(passwd)?)?;
    // SASLprep may map a non-empty input to nothing.
    if username.is_empty() || password.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok(PlainCredentials {
        authzid,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4616_4_example_without_authzid() {
        let creds = parse_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(creds.authzid, None);
        assert_eq!(creds.username, "tim");
        assert_eq!(creds.password, "tanstaaftanstaaf");
    }

    #[test]
    fn rfc4616_4_example_with_authzid() {
        let creds = parse_plain(b"Ursel\0Kurt\0xipj3plmq").unwrap();
        assert_eq!(creds.authzid.as_deref(), Some("Ursel"));
        assert_eq!(creds.username, "Kurt");
        assert_eq!(creds.password, "xipj3plmq");
    }

    #[test]
    fn rfc4616_2_malformed_messages_are_refused() {
        for msg in [
            &b""[..],
            b"timpassword",
            b"\0tim",
            b"\0tim\0pw\0extra",
            b"\0\0password",
            b"\0tim\0",
            b"\0t\xffm\0pw",
            b"\0tim\0p\xc3",
            b"\xff\0tim\0pw",
        ] {
            assert_eq!(
                parse_plain(msg),
                Err(SaslFailure::MalformedRequest),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn rfc4616_2_username_and_password_are_saslprepped() {
        let creds = parse_plain("\0I\u{ad}X\0\u{2168}".as_bytes()).unwrap();
        assert_eq!(creds.username, "IX");
        assert_eq!(creds.password, "IX");
        // RFC 4013 §3: BEL is prohibited output.
        assert_eq!(
            parse_plain("\0tim\0pass\u{7}".as_bytes()),
            Err(SaslFailure::MalformedRequest)
        );
        // A name SASLprep maps to nothing is as empty as no name.
        assert_eq!(
            parse_plain("\0\u{ad}\0pw".as_bytes()),
            Err(SaslFailure::MalformedRequest)
        );
    }

    #[test]
    fn plain_debug_hides_password() {
        let creds = parse_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert!(!format!("{creds:?}").contains("tanstaaf"));
    }
}
