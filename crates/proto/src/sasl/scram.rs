//! SCRAM (RFC 5802, RFC 7677) server and client state machines, including
//! the GS2 channel-binding rules of RFC 5802 §6/§7 that make the `-PLUS`
//! variants resistant to downgrade and man-in-the-middle attacks.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::credentials::{client_and_server_keys, digest, hmac, salted_password, saslprep};
use super::{
    ChannelBindingType, ChannelBindings, Mechanism, SaslFailure, ScramCredentials, ScramHash,
};

/// Random bytes in a nonce; 18 bytes encode to 24 base64 characters
/// without padding, all of them legal nonce characters.
const NONCE_BYTES: usize = 18;

fn random_nonce() -> String {
    let mut raw = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

/// RFC 5802 §7 `printable`: any visible ASCII character except `,`.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a `saslname` (RFC 5802 §7): `=2C` is `,` and `=3D` is `=`; any
/// other `=` is malformed, as is an empty name.
fn decode_saslname(s: &str) -> Result<String, SaslFailure> {
    if s.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslFailure::MalformedRequest),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a `saslname` (RFC 5802 §5.1): `,` and `=` are escaped.
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

fn utf8(msg: &[u8]) -> Result<&str, SaslFailure> {
    std::str::from_utf8(msg).map_err(|_| SaslFailure::MalformedRequest)
}

fn b64_decode(s: &str) -> Result<Vec<u8>, SaslFailure> {
    B64.decode(s).map_err(|_| SaslFailure::IncorrectEncoding)
}

/// Splits `k=value` for a single-letter attribute name `k`.
fn attr(field: &str, key: char) -> Result<&str, SaslFailure> {
    field
        .strip_prefix(key)
        .and_then(|v| v.strip_prefix('='))
        .ok_or(SaslFailure::MalformedRequest)
}

/// The `gs2-cbind-flag` of a client-first message (RFC 5802 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CbFlag {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but believes the server does not.
    ClientOnly,
    /// `p=…`: the client binds to this channel.
    Bound(ChannelBindingType),
}

/// The syntactic content of a client-first message.
struct ParsedClientFirst<'a> {
    gs2_header: &'a str,
    flag: Result<CbFlag, SaslFailure>,
    authzid: Option<String>,
    bare: &'a str,
    username: String,
    nonce: &'a str,
}

/// Parses `gs2-header client-first-message-bare` (RFC 5802 §7). A `p=` with
/// an unknown type is reported through `flag` so the caller can judge it
/// after the syntax is known to be sound.
fn parse_client_first(msg: &str) -> Result<ParsedClientFirst<'_>, SaslFailure> {
    let first_comma = msg.find(',').ok_or(SaslFailure::MalformedRequest)?;
    let second_comma = msg[first_comma + 1..]
        .find(',')
        .map(|i| first_comma + 1 + i)
        .ok_or(SaslFailure::MalformedRequest)?;
    let flag = match &msg[..first_comma] {
        "n" => Ok(CbFlag::NotSupported),
        "y" => Ok(CbFlag::ClientOnly),
        other => {
            let name = attr(other, 'p')?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(SaslFailure::MalformedRequest);
            }
            // A well-formed but unsupported type is a binding we cannot
            // verify, so authentication cannot succeed.
            ChannelBindingType::from_name(name)
                .map(CbFlag::Bound)
                .ok_or(SaslFailure::NotAuthorized)
        }
    };
    let authzid = match &msg[first_comma + 1..second_comma] {
        "" => None,
        a => Some(decode_saslname(attr(a, 'a')?)?),
    };
    let gs2_header = &msg[..=second_comma];
    let bare = &msg[second_comma + 1..];
    let mut fields = bare.split(',');
    let user_field = fields.next().ok_or(SaslFailure::MalformedRequest)?;
    // `m=` announces a mandatory extension; none is defined, so RFC 5802
    // §5.1 requires failing the exchange.
    if user_field.starts_with("m=") {
        return Err(SaslFailure::MalformedRequest);
    }
    let username = saslprep(&decode_saslname(attr(user_field, 'n')?)?)?;
    if username.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    let nonce = attr(fields.next().ok_or(SaslFailure::MalformedRequest)?, 'r')?;
    if !is_valid_nonce(nonce) {
        return Err(SaslFailure::MalformedRequest);
    }
    // Optional extensions are ignored, but must still look like attributes.
    for ext in fields {
        if !ext.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            || ext.as_bytes().get(1) != Some(&b'=')
        {
            return Err(SaslFailure::MalformedRequest);
        }
    }
    Ok(ParsedClientFirst {
        gs2_header,
        flag,
        authzid,
        bare,
        username,
        nonce,
    })
}

/// What the server learned from the client-first message: who wants to
/// authenticate, and as whom they want to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The authentication identity, `=2C`/`=3D`-decoded and SASLprep'd.
    pub username: String,
    /// The requested authorization identity, if any. The caller decides
    /// whether it is acceptable (usually only the user's own bare JID is);
    /// refusing it is `invalid-authzid`.
    pub authzid: Option<String>,
}

enum ServerState {
    AwaitingClientFirst,
    ClientFirstReceived {
        /// `gs2-header || cb-data`: what `c=` must decode to.
        expected_cb: Vec<u8>,
        client_first_bare: String,
        client_nonce: String,
    },
    ServerFirstSent {
        expected_cb: Vec<u8>,
        /// `client-first-message-bare "," server-first-message ","`.
        auth_message_prefix: String,
        nonce: String,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    },
    Succeeded,
    /// The exchange is over; every further step reports this failure.
    Failed(SaslFailure),
}

/// The server side of one SCRAM exchange.
///
/// Call order: [`client_first`](Self::client_first), then look up the
/// user's credentials (or [`ScramCredentials::fake`] for unknown users) and
/// call [`server_first`](Self::server_first), then
/// [`client_final`](Self::client_final). Any failure ends the exchange.
pub struct ScramServer {
    hash: ScramHash,
    plus: bool,
    bindings: ChannelBindings,
    server_supports_plus: bool,
    server_nonce: String,
    state: ServerState,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism())
            .field("server_supports_plus", &self.server_supports_plus)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Starts an exchange for `SCRAM-<hash>[-PLUS]`. `offered` is the
    /// channel binding data this connection can provide;
    /// `server_supports_plus` is whether any `-PLUS` mechanism was
    /// advertised, which decides how a `y` flag is judged.
    pub fn new(
        hash: ScramHash,
        plus: bool,
        offered: &ChannelBindings,
        server_supports_plus: bool,
    ) -> Self {
        ScramServer {
            hash,
            plus,
            bindings: offered.clone(),
            server_supports_plus,
            server_nonce: random_nonce(),
            state: ServerState::AwaitingClientFirst,
        }
    }

    /// Replaces the random server nonce, so that published test vectors can
    /// be reproduced. Never use outside tests: a predictable nonce enables
    /// replay.
    #[doc(hidden)]
    pub fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.server_nonce = nonce.to_owned();
        self
    }

    pub fn mechanism(&self) -> Mechanism {
        Mechanism::scram(self.hash, self.plus)
    }

    /// Whether the exchange completed successfully.
    pub fn is_success(&self) -> bool {
        matches!(self.state, ServerState::Succeeded)
    }

    fn fail(&mut self, failure: SaslFailure) -> SaslFailure {
        self.state = ServerState::Failed(failure);
        failure
    }

    /// Processes the client-first message (the `<auth/>` payload).
    ///
    /// GS2 rules (RFC 5802 §6, §7): `p=` only with a `-PLUS` mechanism and a
    /// type this connection offers; `y` while the server advertises `-PLUS`
    /// means someone stripped `-PLUS` from the feature list (a downgrade) and
    /// is refused with `not-authorized`; a `-PLUS` mechanism requires `p=`.
    pub fn client_first(&mut self, msg: &[u8]) -> Result<ClientFirst, SaslFailure> {
        match self.state {
            ServerState::AwaitingClientFirst => {}
            ServerState::Failed(f) => return Err(f),
            _ => return Err(self.fail(SaslFailure::MalformedRequest)),
        }
        match self.process_client_first(msg) {
            Ok((first, state)) => {
                self.state = state;
                Ok(first)
            }
            Err(f) => Err(self.fail(f)),
        }
    }

    fn process_client_first(&self, msg: &[u8]) -> Result<(ClientFirst, ServerState), SaslFailure> {
        let parsed = parse_client_first(utf8(msg)?)?;
        let cb_data: &[u8] = match (parsed.flag?, self.plus) {
            (CbFlag::Bound(ty), true) => self.bindings.get(ty).ok_or(SaslFailure::NotAuthorized)?,
            // The client chose a non-PLUS mechanism yet sent binding data.
            (CbFlag::Bound(_), false) => return Err(SaslFailure::MalformedRequest),
            // A -PLUS mechanism without binding is a contradiction.
            (CbFlag::NotSupported | CbFlag::ClientOnly, true) => {
                return Err(SaslFailure::MalformedRequest)
            }
            (CbFlag::ClientOnly, false) if self.server_supports_plus => {
                return Err(SaslFailure::NotAuthorized)
            }
            (CbFlag::ClientOnly | CbFlag::NotSupported, false) => &[],
        };
        let mut expected_cb = parsed.gs2_header.as_bytes().to_vec();
        expected_cb.extend_from_slice(cb_data);
        Ok((
            ClientFirst {
                username: parsed.username,
                authzid: parsed.authzid,
            },
            ServerState::ClientFirstReceived {
                expected_cb,
                client_first_bare: parsed.bare.to_owned(),
                client_nonce: parsed.nonce.to_owned(),
            },
        ))
    }

    /// Builds the server-first message (`r=…,s=…,i=…`) from the user's
    /// credentials.
    ///
    /// Calling this out of order, or with credentials for another hash, is
    /// a bug in the caller, not the client: the exchange is then failed with
    /// `temporary-auth-failure` (reported by the next `client_final`) and an
    /// empty challenge is returned.
    pub fn server_first(&mut self, creds: &ScramCredentials) -> Vec<u8> {
        // Until the new state is set, the exchange counts as broken.
        let state = std::mem::replace(
            &mut self.state,
            ServerState::Failed(SaslFailure::TemporaryAuthFailure),
        );
        let ServerState::ClientFirstReceived {
            expected_cb,
            client_first_bare,
            client_nonce,
        } = state
        else {
            self.state = match state {
                ServerState::Failed(f) => ServerState::Failed(f),
                _ => ServerState::Failed(SaslFailure::TemporaryAuthFailure),
            };
            return Vec::new();
        };
        if creds.hash != self.hash {
            self.state = ServerState::Failed(SaslFailure::TemporaryAuthFailure);
            return Vec::new();
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&creds.salt),
            creds.iterations
        );
        self.state = ServerState::ServerFirstSent {
            expected_cb,
            auth_message_prefix: format!("{client_first_bare},{server_first},"),
            nonce,
            stored_key: creds.stored_key.clone(),
            server_key: creds.server_key.clone(),
        };
        server_first.into_bytes()
    }

    /// Verifies the client-final message and returns the server-final
    /// message (`v=ServerSignature`) to send in `<success/>`.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        let result = match &self.state {
            ServerState::ServerFirstSent {
                expected_cb,
                auth_message_prefix,
                nonce,
                stored_key,
                server_key,
            } => self.verify_client_final(
                msg,
                expected_cb,
                auth_message_prefix,
                nonce,
                stored_key,
                server_key,
            ),
            ServerState::Failed(f) => Err(*f),
            ServerState::ClientFirstReceived { .. } => Err(SaslFailure::TemporaryAuthFailure),
            ServerState::AwaitingClientFirst | ServerState::Succeeded => {
                Err(SaslFailure::MalformedRequest)
            }
        };
        self.state = match &result {
            Ok(_) => ServerState::Succeeded,
            Err(f) => ServerState::Failed(*f),
        };
        result
    }

    fn verify_client_final(
        &self,
        msg: &[u8],
        expected_cb: &[u8],
        auth_message_prefix: &str,
        nonce: &str,
        stored_key: &[u8],
        server_key: &[u8],
    ) -> Result<Vec<u8>, SaslFailure> {
        let msg = utf8(msg)?;
        // The proof is always the last attribute (RFC 5802 §7).
        let proof_at = msg.rfind(",p=").ok_or(SaslFailure::MalformedRequest)?;
        let without_proof = &msg[..proof_at];
        let proof_b64 = &msg[proof_at + 3..];
        let mut fields = without_proof.split(',');
        let cb_b64 = attr(fields.next().ok_or(SaslFailure::MalformedRequest)?, 'c')?;
        let client_nonce = attr(fields.next().ok_or(SaslFailure::MalformedRequest)?, 'r')?;
        let cb = b64_decode(cb_b64)?;
        let proof = b64_decode(proof_b64)?;
        // RFC 5802 §6: c= must carry exactly the GS2 header and, for -PLUS,
        // this connection's binding data; compared in constant time since
        // the binding data is secret to the TLS session.
        if !bool::from(cb.ct_eq(expected_cb)) {
            return Err(SaslFailure::NotAuthorized);
        }
        if client_nonce != nonce {
            return Err(SaslFailure::NotAuthorized);
        }
        if proof.len() != self.hash.output_len() {
            return Err(SaslFailure::NotAuthorized);
        }
        let auth_message = format!("{auth_message_prefix}{without_proof}");
        let client_signature = hmac(self.hash, stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(digest(self.hash, &client_key).ct_eq(stored_key)) {
            return Err(SaslFailure::NotAuthorized);
        }
        let server_signature = hmac(self.hash, server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// How the client handles channel binding, decided once at construction.
#[derive(Clone)]
enum ClientBinding {
    /// `n`: nothing to bind to.
    None,
    /// `y`: we could bind, but the server did not advertise `-PLUS`.
    ServerLacksPlus,
    /// `p=`: bind to this data with a `-PLUS` mechanism.
    Bound(ChannelBindingType, Vec<u8>),
}

enum ClientState {
    Initial,
    FirstSent { client_first_bare: String },
    FinalSent { server_signature: Vec<u8> },
    Done,
}

/// `(hash, password, salt, iterations) -> SaltedPassword`, as
/// [`salted_password`] computes it.
type DeriveSaltedPassword<'a> =
    dyn FnMut(ScramHash, &str, &[u8], u32) -> Result<Vec<u8>, SaslFailure> + 'a;

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    authzid: Option<String>,
    binding: ClientBinding,
    client_nonce: String,
    state: ClientState,
}

// Never print the password or binding data.
impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Prepares an exchange. With `cb` data and a server that advertises
    /// `-PLUS`, the client binds (`p=`) and uses the `-PLUS` mechanism; with
    /// data but no `-PLUS` on offer it sends `y` so a server that does
    /// support binding can detect the downgrade; without data it sends `n`.
    ///
    /// The user name is SASLprep'd here; if SASLprep rejects it, it is sent
    /// as given and the server will refuse it.
    pub fn new(
        hash: ScramHash,
        username: &str,
        password: &str,
        cb: Option<(ChannelBindingType, Vec<u8>)>,
        server_supports_plus: bool,
    ) -> Self {
        let binding = match cb {
            Some((ty, data)) if server_supports_plus => ClientBinding::Bound(ty, data),
            Some(_) => ClientBinding::ServerLacksPlus,
            None => ClientBinding::None,
        };
        ScramClient {
            hash,
            username: saslprep(username).unwrap_or_else(|_| username.to_owned()),
            password: password.to_owned(),
            authzid: None,
            binding,
            client_nonce: random_nonce(),
            state: ClientState::Initial,
        }
    }

    /// Requests an authorization identity (`a=` in the GS2 header).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(authzid.to_owned());
        self
    }

    /// Replaces the random client nonce, so that published test vectors can
    /// be reproduced. Never use outside tests.
    #[doc(hidden)]
    pub fn with_client_nonce(mut self, nonce: &str) -> Self {
        self.client_nonce = nonce.to_owned();
        self
    }

    /// The mechanism to name in `<auth mechanism='…'/>`.
    pub fn mechanism(&self) -> Mechanism {
        Mechanism::scram(self.hash, matches!(self.binding, ClientBinding::Bound(..)))
    }

    fn gs2_header(&self) -> String {
        let flag = match &self.binding {
            ClientBinding::None => "n".to_owned(),
            ClientBinding::ServerLacksPlus => "y".to_owned(),
            ClientBinding::Bound(ty, _) => format!("p={}", ty.name()),
        };
        let authzid = self
            .authzid
            .as_deref()
            .map(|a| format!("a={}", encode_saslname(a)))
            .unwrap_or_default();
        format!("{flag},{authzid},")
    }

    /// The client-first message (the `<auth/>` payload). Calling it again
    /// restarts the exchange.
    pub fn client_first(&mut self) -> Vec<u8> {
        let client_first_bare = format!(
            "n={},r={}",
            encode_saslname(&self.username),
            self.client_nonce
        );
        let msg = format!("{}{client_first_bare}", self.gs2_header());
        self.state = ClientState::FirstSent { client_first_bare };
        msg.into_bytes()
    }

    /// Answers the server-first challenge with the client-final message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        self.client_final_with(server_first, &mut salted_password)
    }

    /// [`client_final`](Self::client_final) with SaltedPassword supplied by
    /// `derive(hash, password, salt, iterations)` instead of computed here.
    ///
    /// SaltedPassword depends only on those four inputs (RFC 5802 §3), so a
    /// client that logs in repeatedly, such as a load generator, can take it
    /// from a cache rather than spend thousands of HMAC rounds per login.
    /// `derive` must return what [`salted_password`] would; it is called at
    /// most once, and only after the server-first message has been checked.
    /// Its error ends the exchange and is returned as is.
    pub fn client_final_with(
        &mut self,
        server_first: &[u8],
        derive: &mut DeriveSaltedPassword<'_>,
    ) -> Result<Vec<u8>, SaslFailure> {
        let state = std::mem::replace(&mut self.state, ClientState::Done);
        let ClientState::FirstSent { client_first_bare } = state else {
            return Err(SaslFailure::MalformedRequest);
        };
        let server_first = utf8(server_first)?;
        let mut fields = server_first.split(',');
        let first = fields.next().ok_or(SaslFailure::MalformedRequest)?;
        if first.starts_with("m=") {
            return Err(SaslFailure::MalformedRequest);
        }
        let nonce = attr(first, 'r')?;
        let salt = b64_decode(attr(
            fields.next().ok_or(SaslFailure::MalformedRequest)?,
            's',
        )?)?;
        let iterations: u32 = attr(fields.next().ok_or(SaslFailure::MalformedRequest)?, 'i')?
            .parse()
            .map_err(|_| SaslFailure::MalformedRequest)?;
        // The server must extend our nonce (RFC 5802 §5.1); anything else
        // suggests a replayed or forged challenge.
        if !is_valid_nonce(nonce)
            || nonce.len() <= self.client_nonce.len()
            || !nonce.starts_with(&self.client_nonce)
        {
            return Err(SaslFailure::NotAuthorized);
        }

        let mut cb_input = self.gs2_header().into_bytes();
        if let ClientBinding::Bound(_, data) = &self.binding {
            cb_input.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={nonce}", B64.encode(&cb_input));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");

        let salted = derive(self.hash, &self.password, &salt, iterations)?;
        let (client_key, server_key) = client_and_server_keys(self.hash, &salted);
        let stored_key = digest(self.hash, &client_key);
        let client_signature = hmac(self.hash, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = ClientState::FinalSent {
            server_signature: hmac(self.hash, &server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (the `<success/>` payload): the
    /// server proves it knew the credentials too (RFC 5802 §3), so a
    /// mismatch means we talked to an impostor.
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), SaslFailure> {
        let state = std::mem::replace(&mut self.state, ClientState::Done);
        let ClientState::FinalSent { server_signature } = state else {
            return Err(SaslFailure::MalformedRequest);
        };
        let msg = utf8(msg)?;
        let first = msg.split(',').next().unwrap_or_default();
        if first.starts_with("e=") {
            return Err(SaslFailure::NotAuthorized);
        }
        let signature = b64_decode(attr(first, 'v')?)?;
        if bool::from(signature.ct_eq(&server_signature)) {
            Ok(())
        } else {
            Err(SaslFailure::NotAuthorized)
        }
    }
}

#[cfg(test)]
mod tests {
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
    const SHA256_CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
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
}
