//! In-band registration (XEP-0077) and registration by invitation (XEP-0401, XEP-0445):
//! what a `jabber:iq:register` or `urn:xmpp:pars:0` iq asks for, the forms the server
//! answers with, and the invitation tokens an operator hands out.
//!
//! An invitation is 256 random bits, base64url without padding (43 characters, safe in the
//! `xmpp:HOST?register;preauth=TOKEN` URI of XEP-0401); storage keeps its SHA-256 (hex),
//! never the token, and a separate random public id for listings. 256 bits make the hash a
//! safe lookup key: nobody can guess a token or learn one from the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::ns;
use parley_xml::Element;

/// XEP-0077 `jabber:iq:register`.
pub const NS: &str = "jabber:iq:register";
/// XEP-0077 §8: the stream feature.
pub const FEATURE_NS: &str = "http://jabber.org/features/iq-register";
/// XEP-0445 §3: the stream feature announcing registration by invitation.
pub const INVITE_FEATURE_NS: &str = "urn:xmpp:invite";
/// XEP-0401 / XEP-0379: `<preauth token='…'/>`.
pub const PARS_NS: &str = "urn:xmpp:pars:0";

/// Longest username or password read from a form: far past any real one (the stanza bound
/// applies too), short enough that checking it costs nothing.
pub const MAX_FIELD_CHARS: usize = 1023;

/// What a registration iq asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// §3.1 / §3.2: `get`: the form.
    Form,
    /// §3.1 (a new account) or §3.3 (a password change): `<username/>` and `<password/>`.
    Register { username: String, password: String },
    /// §3.2: `<remove/>`.
    Remove,
    /// XEP-0445 §4: `<preauth token='…'/>` before registering.
    Preauth { token: String },
}

/// Why a registration iq is malformed (answered `<bad-request/>` with this text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("expected <query xmlns='jabber:iq:register'/> or <preauth xmlns='urn:xmpp:pars:0'/>")]
    NoQuery,
    #[error("a registration takes <username/> and <password/>; a removal <remove/>")]
    MissingFields,
    #[error("a field is longer than 1023 characters")]
    TooLong,
    #[error("<preauth/> takes a token attribute")]
    NoToken,
    #[error("a registration is an iq of type get or set")]
    BadType,
}

/// Reads a registration iq (`jabber:client` iq with one `query` or `preauth` child).
pub fn parse(iq: &Element) -> Result<Request, RequestError> {
    let ty = iq.attr("type");
    let child = iq.first_child().ok_or(RequestError::NoQuery)?;
    if child.is("preauth", PARS_NS) {
        if ty != Some("set") {
            return Err(RequestError::BadType);
        }
        return match child.attr("token") {
            Some(t) if !t.is_empty() && t.len() <= MAX_FIELD_CHARS => Ok(Request::Preauth {
                token: t.to_owned(),
            }),
            Some(t) if t.len() > MAX_FIELD_CHARS => Err(RequestError::TooLong),
            _ => Err(RequestError::NoToken),
        };
    }
    if !child.is("query", NS) {
        return Err(RequestError::NoQuery);
    }
    match ty {
        Some("get") => return Ok(Request::Form),
        Some("set") => {}
        _ => return Err(RequestError::BadType),
    }
    if child.has_child("remove", NS) {
        return Ok(Request::Remove);
    }
    let field = |name: &str| child.get_child(name, NS).map(Element::text);
    match (field("username"), field("password")) {
        (Some(u), Some(p))
            if u.chars().count() > MAX_FIELD_CHARS || p.len() > 4 * MAX_FIELD_CHARS =>
        {
            Err(RequestError::TooLong)
        }
        (Some(username), Some(password)) => Ok(Request::Register { username, password }),
        _ => Err(RequestError::MissingFields),
    }
}

/// §3.1: the form for a new account: instructions and the two fields.
pub fn form_new(instructions: &str) -> Element {
    Element::new("query", NS)
        .with_child(Element::new("instructions", NS).with_text(instructions))
        .with_child(Element::new("username", NS))
        .with_child(Element::new("password", NS))
}

/// §3.2: the form of a registered account.
pub fn form_registered(username: &str) -> Element {
    Element::new("query", NS)
        .with_child(Element::new("registered", NS))
        .with_child(Element::new("username", NS).with_text(username))
}

/// The stream features (§8 and XEP-0445 §3) offered before authentication.
pub fn features(invites: bool) -> Vec<Element> {
    let mut f = vec![Element::new("register", FEATURE_NS)];
    if invites {
        f.push(Element::new("register", INVITE_FEATURE_NS));
    }
    f
}

/// A freshly made invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    /// The token for the invitee. Never log it.
    pub token: String,
    /// Public id, for listings and revocation.
    pub id: String,
    /// What storage keeps: [`invite_hash`] of the token.
    pub secret_hash: String,
}

/// A new invitation token, its id and its hash.
pub fn new_invite() -> NewInvite {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let mut id = [0u8; 9];
    rand::thread_rng().fill_bytes(&mut id);
    let token = URL_SAFE_NO_PAD.encode(secret);
    NewInvite {
        secret_hash: invite_hash(&token),
        id: URL_SAFE_NO_PAD.encode(id),
        token,
    }
}

/// SHA-256 of an invitation token, lowercase hex.
pub fn invite_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// XEP-0401 §5: the URI that hands an invitation to a client.
pub fn invite_uri(host: &str, token: &str) -> String {
    format!("xmpp:{host}?register;preauth={token}")
}

/// Whether `el` is an iq this module reads (before authentication, nothing else is).
pub fn is_request(el: &Element) -> bool {
    el.is("iq", ns::CLIENT)
        && el
            .first_child()
            .is_some_and(|c| c.is("query", NS) || c.is("preauth", PARS_NS))
}

#[cfg(test)]
mod tests;
