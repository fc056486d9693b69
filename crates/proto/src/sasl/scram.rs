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
mod tests;
