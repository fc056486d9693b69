//! Unit tests of the SCRAM state machines: the RFC 5802 and RFC 7677 test vectors, channel
//! binding and its downgrade rules, malformed messages, and client against server.

use super::*;

const SHA1_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const SHA1_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const SHA1_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SHA1_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

const SHA256_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SHA256_SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
     s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const SHA256_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
     p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SHA256_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn creds(hash: ScramHash, password: &str, salt_b64: &str) -> ScramCredentials {
    ScramCredentials::derive(hash, password, &B64.decode(salt_b64).unwrap(), 4096).unwrap()
}

fn no_cb() -> ChannelBindings {
    ChannelBindings::default()
}

fn tls() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(b"exporter-keying-material-32-byte".to_vec()),
        tls_server_end_point: Some(vec![0x5a; 32]),
    }
}

/// Runs a whole exchange between a client and a server; returns the
/// first failure, from whichever side detected it.
fn exchange(
    client: &mut ScramClient,
    server: &mut ScramServer,
    creds: &ScramCredentials,
) -> Result<ClientFirst, SaslFailure> {
    let first = server.client_first(&client.client_first())?;
    let challenge = server.server_first(creds);
    let response = client.client_final(&challenge)?;
    let outcome = server.client_final(&response)?;
    client.verify_server_final(&outcome)?;
    Ok(first)
}

/// Starts a server and feeds it a client-first message.
fn server_after(
    hash: ScramHash,
    plus: bool,
    cb: &ChannelBindings,
    supports_plus: bool,
    client_first: &str,
) -> Result<ClientFirst, SaslFailure> {
    ScramServer::new(hash, plus, cb, supports_plus).client_first(client_first.as_bytes())
}

#[test]
fn rfc5802_5_sha1_example_server() {
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false)
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    assert_eq!(server.mechanism(), Mechanism::ScramSha1);
    let first = server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(
        first,
        ClientFirst {
            username: "user".into(),
            authzid: None
        }
    );
    let challenge = server.server_first(&creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
    assert_eq!(challenge, SHA1_SERVER_FIRST.as_bytes());
    let outcome = server.client_final(SHA1_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(outcome, SHA1_SERVER_FINAL.as_bytes());
    assert!(server.is_success());
}

#[test]
fn rfc5802_5_sha1_example_client() {
    let mut client = ScramClient::new(ScramHash::Sha1, "user", "pencil", None, false)
        .with_client_nonce("fyko+d2lbbFgONRv9qkxdawL");
    assert_eq!(client.mechanism(), Mechanism::ScramSha1);
    assert_eq!(client.client_first(), SHA1_CLIENT_FIRST.as_bytes());
    let response = client.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(response, SHA1_CLIENT_FINAL.as_bytes());
    assert_eq!(
        client.verify_server_final(SHA1_SERVER_FINAL.as_bytes()),
        Ok(())
    );
}

#[test]
fn rfc7677_3_sha256_example_server() {
    let mut server = ScramServer::new(ScramHash::Sha256, false, &no_cb(), false)
        .with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let first = server.client_first(SHA256_CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(first.username, "user");
    let challenge = server.server_first(&creds(
        ScramHash::Sha256,
        "pencil",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
    ));
    assert_eq!(challenge, SHA256_SERVER_FIRST.as_bytes());
    let outcome = server.client_final(SHA256_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(outcome, SHA256_SERVER_FINAL.as_bytes());
}

#[test]
fn rfc7677_3_sha256_example_client() {
    let mut client = ScramClient::new(ScramHash::Sha256, "user", "pencil", None, false)
        .with_client_nonce("rOprNGfwEbeRWgbNEkqO");
    assert_eq!(client.mechanism(), Mechanism::ScramSha256);
    assert_eq!(client.client_first(), SHA256_CLIENT_FIRST.as_bytes());
    let response = client.client_final(SHA256_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(response, SHA256_CLIENT_FINAL.as_bytes());
    assert_eq!(
        client.verify_server_final(SHA256_SERVER_FINAL.as_bytes()),
        Ok(())
    );
}

#[test]
fn rfc5802_6_plus_full_exchange_with_tls_exporter() {
    let cb = tls();
    let data = cb.tls_exporter.clone().unwrap();
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "juliet",
        "r0m30myr0m30",
        Some((ChannelBindingType::TlsExporter, data.clone())),
        true,
    );
    assert_eq!(client.mechanism(), Mechanism::ScramSha256Plus);
    let mut server = ScramServer::new(ScramHash::Sha256, true, &cb, true);
    let creds = ScramCredentials::generate(ScramHash::Sha256, "r0m30myr0m30", 4096).unwrap();

    let first_msg = client.client_first();
    assert!(first_msg.starts_with(b"p=tls-exporter,,n=juliet,r="));
    assert_eq!(server.client_first(&first_msg).unwrap().username, "juliet");
    let response = client.client_final(&server.server_first(&creds)).unwrap();
    // c= carries gs2-header || cb-data (RFC 5802 §7, channel-binding).
    let mut expected_cb = b"p=tls-exporter,,".to_vec();
    expected_cb.extend_from_slice(&data);
    let c = format!("c={},", B64.encode(&expected_cb));
    assert!(response.starts_with(c.as_bytes()));
    let outcome = server.client_final(&response).unwrap();
    assert_eq!(client.verify_server_final(&outcome), Ok(()));
    assert!(server.is_success());
}

#[test]
fn rfc5802_6_plus_full_exchange_with_tls_server_end_point() {
    let cb = tls();
    let data = cb.tls_server_end_point.clone().unwrap();
    let mut client = ScramClient::new(
        ScramHash::Sha1,
        "juliet",
        "r0m30myr0m30",
        Some((ChannelBindingType::TlsServerEndPoint, data)),
        true,
    );
    assert_eq!(client.mechanism(), Mechanism::ScramSha1Plus);
    let mut server = ScramServer::new(ScramHash::Sha1, true, &cb, true);
    assert_eq!(server.mechanism(), Mechanism::ScramSha1Plus);
    let creds = ScramCredentials::generate(ScramHash::Sha1, "r0m30myr0m30", 4096).unwrap();
    assert!(exchange(&mut client, &mut server, &creds).is_ok());
}

#[test]
fn rfc5802_6_mismatched_channel_binding_data_is_not_authorized() {
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "juliet",
        "pw",
        Some((
            ChannelBindingType::TlsExporter,
            b"what the client sees".to_vec(),
        )),
        true,
    );
    let mut server = ScramServer::new(ScramHash::Sha256, true, &tls(), true);
    let creds = ScramCredentials::generate(ScramHash::Sha256, "pw", 4096).unwrap();
    assert_eq!(
        exchange(&mut client, &mut server, &creds),
        Err(SaslFailure::NotAuthorized)
    );
    assert!(!server.is_success());
}

#[test]
fn rfc5802_6_gs2_header_must_match_in_client_final() {
    // Client-first said `n`, client-final claims `y` ("eSws" = "y,,").
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false)
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
    let tampered = SHA1_CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert_eq!(
        server.client_final(tampered.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_6_p_flag_with_non_plus_mechanism_fails() {
    assert_eq!(
        server_after(
            ScramHash::Sha256,
            false,
            &tls(),
            true,
            "p=tls-exporter,,n=user,r=abc"
        ),
        Err(SaslFailure::MalformedRequest)
    );
}

#[test]
fn rfc5802_6_p_flag_with_type_not_offered_is_not_authorized() {
    let endpoint_only = ChannelBindings {
        tls_exporter: None,
        tls_server_end_point: Some(vec![1; 32]),
    };
    assert_eq!(
        server_after(
            ScramHash::Sha256,
            true,
            &endpoint_only,
            true,
            "p=tls-exporter,,n=user,r=abc"
        ),
        Err(SaslFailure::NotAuthorized)
    );
    assert_eq!(
        server_after(
            ScramHash::Sha256,
            true,
            &tls(),
            true,
            "p=tls-unique,,n=user,r=abc"
        ),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_6_y_flag_while_server_advertises_plus_is_downgrade() {
    assert_eq!(
        server_after(ScramHash::Sha256, false, &tls(), true, "y,,n=user,r=abc"),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_6_y_flag_without_plus_on_offer_succeeds() {
    // The client could bind but the server offers no -PLUS: `y` is sent,
    // and c= is base64("y,,") = "eSws".
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "user",
        "pencil",
        Some((ChannelBindingType::TlsExporter, vec![7; 32])),
        false,
    );
    assert_eq!(client.mechanism(), Mechanism::ScramSha256);
    let mut server = ScramServer::new(ScramHash::Sha256, false, &no_cb(), false);
    let first = client.client_first();
    assert!(first.starts_with(b"y,,n=user,r="));
    server.client_first(&first).unwrap();
    let creds = ScramCredentials::generate(ScramHash::Sha256, "pencil", 4096).unwrap();
    let response = client.client_final(&server.server_first(&creds)).unwrap();
    assert!(response.starts_with(b"c=eSws,"));
    let outcome = server.client_final(&response).unwrap();
    assert_eq!(client.verify_server_final(&outcome), Ok(()));
}

#[test]
fn rfc5802_6_n_flag_on_plus_mechanism_fails() {
    assert_eq!(
        server_after(ScramHash::Sha1, true, &tls(), true, "n,,n=user,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );
    assert_eq!(
        server_after(ScramHash::Sha1, true, &tls(), true, "y,,n=user,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );
}

#[test]
fn rfc5802_6_n_flag_is_fine_when_server_supports_plus() {
    // A client without TLS binding data never saw -PLUS matter.
    let mut client = ScramClient::new(ScramHash::Sha256, "user", "pencil", None, true);
    assert_eq!(client.mechanism(), Mechanism::ScramSha256);
    let mut server = ScramServer::new(ScramHash::Sha256, false, &tls(), true);
    let creds = ScramCredentials::generate(ScramHash::Sha256, "pencil", 4096).unwrap();
    assert!(exchange(&mut client, &mut server, &creds).is_ok());
}

#[test]
fn rfc5802_5_wrong_password_is_not_authorized() {
    let mut client = ScramClient::new(ScramHash::Sha1, "user", "pencil2", None, false);
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    let creds = creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92");
    assert_eq!(
        exchange(&mut client, &mut server, &creds),
        Err(SaslFailure::NotAuthorized)
    );
    // The exchange is over: nothing more is accepted.
    assert_eq!(
        server.client_final(SHA1_CLIENT_FINAL.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
    assert_eq!(
        server.client_first(SHA1_CLIENT_FIRST.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_9_fake_credentials_look_real_but_never_authenticate() {
    let secret = b"per-server secret";
    let salt_seen = |password: &str| {
        let mut client = ScramClient::new(ScramHash::Sha256, "ghost", password, None, false);
        let mut server = ScramServer::new(ScramHash::Sha256, false, &no_cb(), false);
        let first = server.client_first(&client.client_first()).unwrap();
        let fake = ScramCredentials::fake(ScramHash::Sha256, secret, &first.username, 4096);
        let challenge = server.server_first(&fake);
        let response = client.client_final(&challenge).unwrap();
        assert_eq!(
            server.client_final(&response),
            Err(SaslFailure::NotAuthorized)
        );
        let challenge = String::from_utf8(challenge).unwrap();
        challenge.split(',').nth(1).unwrap().to_owned()
    };
    let first_probe = salt_seen("ghost");
    assert!(first_probe.starts_with("s="));
    assert_eq!(salt_seen("password"), first_probe);
}

#[test]
fn rfc5802_5_1_nonce_must_be_the_combined_nonce() {
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false)
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
    let wrong_nonce = SHA1_CLIENT_FINAL.replace("VvWVs7j", "VvWVs7k");
    assert_eq!(
        server.client_final(wrong_nonce.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_5_1_saslname_escapes_and_authzid() {
    let first = server_after(
        ScramHash::Sha1,
        false,
        &no_cb(),
        false,
        "n,a=admin=2Cx=3Dy@example.com,n=us=2Cer=3D,r=abc",
    )
    .unwrap();
    assert_eq!(first.username, "us,er=");
    assert_eq!(first.authzid.as_deref(), Some("admin,x=y@example.com"));

    let mut client = ScramClient::new(ScramHash::Sha1, "us,er=", "pw", None, false)
        .with_authzid("us,er=@example.com")
        .with_client_nonce("abc");
    assert_eq!(
        client.client_first(),
        b"n,a=us=2Cer=3D@example.com,n=us=2Cer=3D,r=abc"
    );
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    let creds = ScramCredentials::generate(ScramHash::Sha1, "pw", 4096).unwrap();
    let first = exchange(&mut client, &mut server, &creds).unwrap();
    assert_eq!(first.username, "us,er=");
    assert_eq!(first.authzid.as_deref(), Some("us,er=@example.com"));
}

#[test]
fn rfc4013_username_is_saslprepped() {
    let first = server_after(
        ScramHash::Sha1,
        false,
        &no_cb(),
        false,
        "n,,n=I\u{ad}X,r=abc",
    )
    .unwrap();
    assert_eq!(first.username, "IX");
    assert_eq!(
        server_after(ScramHash::Sha1, false, &no_cb(), false, "n,,n=a\u{7},r=abc"),
        Err(SaslFailure::MalformedRequest)
    );
}

#[test]
fn rfc5802_7_malformed_client_first_is_refused() {
    for msg in [
        "",
        "n",
        "n,",
        "n,,",
        "x,,n=user,r=abc",
        "p=,,n=user,r=abc",
        "p=tls exporter,,n=user,r=abc",
        "n,b=x,n=user,r=abc",
        "n,a=,n=user,r=abc",
        "n,,r=abc",
        "n,,n=user",
        "n,,n=,r=abc",
        "n,,n=us=er,r=abc",
        "n,,n=us=2,r=abc",
        "n,,n=user,r=",
        "n,,n=user,r=a\u{e9}",
        "n,,n=user,nonce=abc",
        "n,,n=user,r=abc,,",
        "n,,m=ext,n=user,r=abc",
    ] {
        assert_eq!(
            server_after(ScramHash::Sha1, false, &no_cb(), false, msg),
            Err(SaslFailure::MalformedRequest),
            "{msg:?}"
        );
    }
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    assert_eq!(
        server.client_first(b"n,,n=\xff,r=abc"),
        Err(SaslFailure::MalformedRequest)
    );
}

#[test]
fn rfc5802_7_client_first_extensions_are_ignored() {
    let first = server_after(
        ScramHash::Sha1,
        false,
        &no_cb(),
        false,
        "n,,n=user,r=abc,x=ext",
    )
    .unwrap();
    assert_eq!(first.username, "user");
}

fn server_awaiting_final() -> ScramServer {
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false)
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    server.server_first(&creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
    server
}

#[test]
fn rfc6120_6_5_4_bad_base64_is_incorrect_encoding() {
    let bad_cb = SHA1_CLIENT_FINAL.replace("c=biws", "c=bi!ws");
    assert_eq!(
        server_awaiting_final().client_final(bad_cb.as_bytes()),
        Err(SaslFailure::IncorrectEncoding)
    );
    let bad_proof = SHA1_CLIENT_FINAL.replace("p=v0X8", "p=v0X*");
    assert_eq!(
        server_awaiting_final().client_final(bad_proof.as_bytes()),
        Err(SaslFailure::IncorrectEncoding)
    );
}

#[test]
fn rfc5802_7_malformed_client_final_is_refused() {
    let r = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    for msg in [
        String::new(),
        format!("c=biws,{r}"),
        format!("{r},c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        "c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=".to_owned(),
    ] {
        assert_eq!(
            server_awaiting_final().client_final(msg.as_bytes()),
            Err(SaslFailure::MalformedRequest),
            "{msg:?}"
        );
    }
    // A proof of the wrong length can never verify.
    let short = format!("c=biws,{r},p=AAAA");
    assert_eq!(
        server_awaiting_final().client_final(short.as_bytes()),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn server_steps_out_of_order_fail() {
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    assert_eq!(
        server.client_final(SHA1_CLIENT_FINAL.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );

    // Credentials for the wrong hash are a caller bug.
    let mut server = ScramServer::new(ScramHash::Sha256, false, &no_cb(), false);
    server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    let sha1 = creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92");
    assert!(server.server_first(&sha1).is_empty());
    assert_eq!(
        server.client_final(SHA1_CLIENT_FINAL.as_bytes()),
        Err(SaslFailure::TemporaryAuthFailure)
    );

    // Skipping server_first is a caller bug too.
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    server.client_first(SHA1_CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(
        server.client_final(SHA1_CLIENT_FINAL.as_bytes()),
        Err(SaslFailure::TemporaryAuthFailure)
    );

    // After success, more client data is a protocol violation.
    let mut server = server_awaiting_final();
    server.client_final(SHA1_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(
        server.client_final(SHA1_CLIENT_FINAL.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
    assert_eq!(
        server.client_first(SHA1_CLIENT_FIRST.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
}

fn client_after_first() -> ScramClient {
    let mut client = ScramClient::new(ScramHash::Sha1, "user", "pencil", None, false)
        .with_client_nonce("fyko+d2lbbFgONRv9qkxdawL");
    client.client_first();
    client
}

#[test]
fn rfc5802_3_client_rejects_wrong_server_signature() {
    let mut client = client_after_first();
    client.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        client.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_7_client_reports_server_error() {
    let mut client = client_after_first();
    client.client_final(SHA1_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        client.verify_server_final(b"e=invalid-proof"),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_5_1_client_rejects_server_nonce_not_extending_its_own() {
    let mut client = client_after_first();
    assert_eq!(
        client.client_final(b"r=someoneelse123,s=QSXCR+Q6sek8bf92,i=4096"),
        Err(SaslFailure::NotAuthorized)
    );
    let mut client = client_after_first();
    assert_eq!(
        client.client_final(b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096"),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn rfc5802_7_client_rejects_malformed_server_first() {
    let nonce = "r=fyko+d2lbbFgONRv9qkxdawL3rfc";
    for (msg, failure) in [
        (format!("{nonce},i=4096"), SaslFailure::MalformedRequest),
        (
            format!("{nonce},s=QSXCR+Q6sek8bf92"),
            SaslFailure::MalformedRequest,
        ),
        (
            format!("{nonce},s=QSXCR+Q6sek8bf92,i=lots"),
            SaslFailure::MalformedRequest,
        ),
        (
            format!("{nonce},s=QSXCR+Q6sek8bf92,i=0"),
            SaslFailure::MalformedRequest,
        ),
        (
            format!("{nonce},s=!!,i=4096"),
            SaslFailure::IncorrectEncoding,
        ),
        (
            format!("m=x,{nonce},s=QSXCR+Q6sek8bf92,i=4096"),
            SaslFailure::MalformedRequest,
        ),
    ] {
        assert_eq!(
            client_after_first().client_final(msg.as_bytes()),
            Err(failure),
            "{msg}"
        );
    }
    let mut fresh = ScramClient::new(ScramHash::Sha1, "user", "pencil", None, false);
    assert_eq!(
        fresh.client_final(SHA1_SERVER_FIRST.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
    assert_eq!(
        fresh.verify_server_final(SHA1_SERVER_FINAL.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
}

/// RFC 5802 §5: with SaltedPassword supplied from outside, the client
/// still produces the published client-final and accepts the published
/// server-final; the supplier sees exactly the §3 `Hi` inputs, once.
#[test]
fn rfc5802_5_client_final_with_supplied_salted_password() {
    let mut calls = Vec::new();
    let mut derive = |hash: ScramHash, password: &str, salt: &[u8], i: u32| {
        calls.push((hash, password.to_owned(), salt.to_vec(), i));
        salted_password(hash, password, salt, i)
    };
    let mut client = client_after_first();
    let response = client
        .client_final_with(SHA1_SERVER_FIRST.as_bytes(), &mut derive)
        .unwrap();
    assert_eq!(response, SHA1_CLIENT_FINAL.as_bytes());
    client
        .verify_server_final(SHA1_SERVER_FINAL.as_bytes())
        .unwrap();
    assert_eq!(
        calls,
        [(
            ScramHash::Sha1,
            "pencil".to_owned(),
            B64.decode("QSXCR+Q6sek8bf92").unwrap(),
            4096
        )]
    );
}

/// RFC 5802 §5.1: a server-first that does not extend the client nonce
/// is refused before any key is derived, and a supplier's failure ends
/// the exchange with that failure.
#[test]
fn rfc5802_5_1_client_final_with_derives_only_for_a_valid_challenge() {
    let mut calls = 0;
    let mut client = client_after_first();
    assert_eq!(
        client.client_final_with(
            b"r=someoneelse123,s=QSXCR+Q6sek8bf92,i=4096",
            &mut |_, _, _, _| {
                calls += 1;
                Ok(vec![0; 20])
            }
        ),
        Err(SaslFailure::NotAuthorized)
    );
    assert_eq!(calls, 0);
    let mut client = client_after_first();
    assert_eq!(
        client.client_final_with(SHA1_SERVER_FIRST.as_bytes(), &mut |_, _, _, _| {
            calls += 1;
            Err(SaslFailure::TemporaryAuthFailure)
        }),
        Err(SaslFailure::TemporaryAuthFailure)
    );
    assert_eq!(calls, 1);
    assert_eq!(
        client.verify_server_final(SHA1_SERVER_FINAL.as_bytes()),
        Err(SaslFailure::MalformedRequest)
    );
}

/// A wrong SaltedPassword from the supplier yields a proof the server
/// refuses (RFC 5802 §3), so a stale cache cannot pass unnoticed.
#[test]
fn rfc5802_3_client_final_with_wrong_salted_password_is_not_authorized() {
    let mut server = ScramServer::new(ScramHash::Sha1, false, &no_cb(), false);
    let mut client = ScramClient::new(ScramHash::Sha1, "user", "pencil", None, false);
    server.client_first(&client.client_first()).unwrap();
    let challenge = server.server_first(&creds(ScramHash::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
    let response = client
        .client_final_with(&challenge, &mut |_, _, _, _| Ok(vec![7; 20]))
        .unwrap();
    assert_eq!(
        server.client_final(&response),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn client_debug_hides_password() {
    let client = ScramClient::new(ScramHash::Sha1, "user", "hunter2", None, false);
    let dbg = format!("{client:?}");
    assert!(dbg.contains("user"));
    assert!(!dbg.contains("hunter2"));
}
