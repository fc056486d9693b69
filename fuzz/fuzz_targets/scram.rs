//! SCRAM-SHA-1/256(-PLUS) server (RFC 5802, RFC 7677; `parley_proto::sasl::ScramServer`):
//! client-first and client-final messages against a server state, for the account and
//! fixed nonces of `parley_fuzz::scram_fixture`.
//!
//! Byte 0 picks hash, `-PLUS`, whether the server advertises `-PLUS`, whether the
//! connection has channel bindings, and the mode:
//! - raw: the payload is `client-first NUL client-final`, judged by the server;
//! - structured: the payload is `user NUL password NUL authzid NUL nonce`, played by the
//!   real `ScramClient` against the server.
//!
//! Invariants: no panic; only the real account with its password ever succeeds (an unknown
//! user runs against fake credentials, which no proof matches); a failed exchange stays
//! failed with the same condition; in structured mode the exchange succeeds exactly when
//! the user name and password SASLprep to the account's and the nonce is legal, the
//! authorization identity arrives unchanged, and the client accepts the server's proof.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parley_fuzz::scram_fixture::*;
use parley_proto::sasl::{
    ChannelBindingType, ScramClient, ScramCredentials, ScramHash, ScramServer,
};

fn stored(hash: ScramHash) -> &'static ScramCredentials {
    static SHA1: OnceLock<ScramCredentials> = OnceLock::new();
    static SHA256: OnceLock<ScramCredentials> = OnceLock::new();
    match hash {
        ScramHash::Sha1 => SHA1.get_or_init(|| credentials(ScramHash::Sha1)),
        ScramHash::Sha256 => SHA256.get_or_init(|| credentials(ScramHash::Sha256)),
    }
}

/// What the session does after client-first: the user's credentials, or fake ones.
fn lookup(hash: ScramHash, username: &str) -> ScramCredentials {
    if username == USER {
        stored(hash).clone()
    } else {
        ScramCredentials::fake(hash, SERVER_SECRET, username, ITERATIONS)
    }
}

fn raw(flags: u8, payload: &[u8]) {
    let hash = hash(flags);
    let mut server = ScramServer::new(
        hash,
        flags & PLUS != 0,
        &bindings(flags),
        flags & SERVER_SUPPORTS_PLUS != 0,
    )
    .with_server_nonce(SERVER_NONCE);
    let (first, last) = match payload.iter().position(|&b| b == 0) {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &b""[..]),
    };
    match server.client_first(first) {
        Err(f) => {
            // Failed for good: later steps report the same condition.
            assert!(server.server_first(stored(hash)).is_empty());
            assert_eq!(server.client_final(last), Err(f));
            assert!(!server.is_success());
        }
        Ok(cf) => {
            let challenge = server.server_first(&lookup(hash, &cf.username));
            assert!(!challenge.is_empty());
            match server.client_final(last) {
                Ok(server_final) => {
                    assert_eq!(cf.username, USER, "fake credentials accepted a proof");
                    assert!(server.is_success());
                    assert!(server_final.starts_with(b"v="));
                }
                Err(f) => {
                    assert!(!server.is_success());
                    assert_eq!(server.client_final(last), Err(f));
                }
            }
        }
    }
}

fn structured(flags: u8, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let mut fields = text.split('\0');
    let (user, password) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    let authzid = fields.next().filter(|a| !a.is_empty());
    let nonce = fields
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(CLIENT_NONCE);
    let hash = hash(flags);
    let offered = bindings(flags);
    let supports_plus = flags & SERVER_SUPPORTS_PLUS != 0;
    let cb = offered
        .tls_exporter
        .clone()
        .map(|d| (ChannelBindingType::TlsExporter, d));
    let mut client =
        ScramClient::new(hash, user, password, cb, supports_plus).with_client_nonce(nonce);
    if let Some(a) = authzid {
        client = client.with_authzid(a);
    }
    let plus = client.mechanism().is_plus();
    let mut server =
        ScramServer::new(hash, plus, &offered, supports_plus).with_server_nonce(SERVER_NONCE);
    // Few iterations: this mode derives keys on every run.
    let creds = |u: &str| {
        if u == USER {
            ScramCredentials::derive(hash, PASSWORD, SALT, 2).expect("valid password")
        } else {
            ScramCredentials::fake(hash, SERVER_SECRET, u, 2)
        }
    };
    let prepped = |s: &str| stringprep::saslprep(s).ok().map(|p| p.into_owned());
    let nonce_ok = nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',');
    let expect_success = prepped(user).as_deref() == Some(USER)
        && prepped(password).as_deref() == Some(PASSWORD)
        && nonce_ok;

    let outcome = (|| {
        let cf = server.client_first(&client.client_first())?;
        if let Some(name) = prepped(user) {
            assert_eq!(cf.username, name, "the user name changed on the wire");
        }
        assert_eq!(
            cf.authzid.as_deref(),
            authzid,
            "the authzid changed on the wire"
        );
        let challenge = server.server_first(&creds(&cf.username));
        let last = client.client_final(&challenge)?;
        let server_final = server.client_final(&last)?;
        client
            .verify_server_final(&server_final)
            .map(|()| server_final)
    })();
    assert_eq!(
        outcome.is_ok(),
        expect_success,
        "user {user:?} nonce {nonce:?}: {outcome:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    if flags & STRUCTURED != 0 {
        structured(flags, payload);
    } else {
        raw(flags, payload);
    }
});
