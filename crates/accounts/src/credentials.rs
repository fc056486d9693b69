//! SCRAM credentials from a password: what storage keeps instead of the password.

use parley_proto::sasl::{ScramCredentials, ScramHash};

use crate::AccountError;

/// SCRAM-SHA-1 and SCRAM-SHA-256 credentials for `password`, so that clients offering
/// either mechanism can log in.
pub fn derive_credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<ScramCredentials>, AccountError> {
    if password.is_empty() {
        return Err(AccountError::Password("must not be empty".to_owned()));
    }
    [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|hash| {
            ScramCredentials::generate(hash, password, iterations).map_err(|_| {
                AccountError::Password(
                    "contains characters that SASLprep (RFC 4013) prohibits".to_owned(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 / RFC 7677: both SCRAM-SHA-1 and SCRAM-SHA-256 credentials are stored.
    #[test]
    fn rfc7677_credentials_for_both_hashes() {
        let credentials = derive_credentials("pencil", 4096).unwrap();
        let hashes: Vec<ScramHash> = credentials.iter().map(|c| c.hash).collect();
        assert_eq!(hashes, [ScramHash::Sha1, ScramHash::Sha256]);
        assert!(credentials.iter().all(|c| c.iterations == 4096));
        assert!(credentials[1].verify_password("pencil"));
    }

    /// RFC 4013 §2.3: SASLprep prohibits control characters, so such passwords are refused.
    #[test]
    fn rfc4013_prohibited_password_is_refused() {
        let e = derive_credentials("bad\u{7}bell", 4096).unwrap_err();
        assert!(e.to_string().contains("SASLprep"), "{e}");
        assert!(derive_credentials("", 4096).is_err());
    }
}
