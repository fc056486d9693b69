//! The account and fixed randomness the `scram` target runs against; shared with the
//! seed generator (`examples/make_seeds.rs`) so that its seeds are complete, valid
//! exchanges the fuzzer can mutate from.

use parley_proto::sasl::{ChannelBindings, ScramCredentials, ScramHash};

pub const USER: &str = "juliet";
pub const PASSWORD: &str = "pencil";
pub const SALT: &[u8] = b"QSXCR+Q6sek8bf92";
pub const ITERATIONS: u32 = 4096;
pub const SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";
pub const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
/// The server secret behind fake credentials for unknown users.
pub const SERVER_SECRET: &[u8] = b"fuzz-server-secret";

/// Input byte 0: which exchange to run.
pub const SHA256: u8 = 1;
pub const PLUS: u8 = 2;
pub const SERVER_SUPPORTS_PLUS: u8 = 4;
pub const CONNECTION_HAS_BINDINGS: u8 = 8;
/// Structured mode: the payload is `user NUL password NUL authzid NUL nonce` for a
/// real `ScramClient`, instead of raw client messages.
pub const STRUCTURED: u8 = 16;

pub fn hash(flags: u8) -> ScramHash {
    if flags & SHA256 != 0 {
        ScramHash::Sha256
    } else {
        ScramHash::Sha1
    }
}

/// The channel bindings of the connection, when `flags` says it has any.
pub fn bindings(flags: u8) -> ChannelBindings {
    if flags & CONNECTION_HAS_BINDINGS == 0 {
        return ChannelBindings::default();
    }
    ChannelBindings {
        tls_exporter: Some(b"exporter-keying-material-32-byte".to_vec()),
        tls_server_end_point: Some(b"certificate-hash-of-32-bytes-abc".to_vec()),
    }
}

/// The stored credentials of [`USER`] (PBKDF2 with [`ITERATIONS`]).
pub fn credentials(hash: ScramHash) -> ScramCredentials {
    ScramCredentials::derive(hash, PASSWORD, SALT, ITERATIONS).expect("valid password")
}
