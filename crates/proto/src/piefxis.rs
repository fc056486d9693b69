//! XEP-0227 (Portable Import/Export Format for XMPP-IM Servers, "PIEFXIS") files: one
//! typed view of what a file holds, read from an already parsed element and written back.
//!
//! A file's root is `<server-data/>` (hosts), or, when another file includes it through
//! XInclude (`<xi:include href=…/>`, as ejabberd's export splits itself), a `<host/>` or
//! a `<user/>`. The caller resolves includes; this module only hands back their `href`s,
//! refusing any that is not a plain file name beside the including file (no directory, no
//! `..`), so that an import can never be pointed at another file of the machine.
//!
//! Credentials travel as §4.2's SCRAM data (`urn:xmpp:pie:0#scram`, what Prosody writes
//! and what Parley exports: it never holds a password) or, from older exporters, as a
//! plaintext `password` attribute, which the importer derives keys from.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use parley_xml::Element;

use crate::sasl::{ScramCredentials, ScramHash};

/// The format's namespace.
pub const NS: &str = "urn:xmpp:pie:0";
/// §4.2: SCRAM credentials of a user.
pub const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
/// XInclude, with which a file includes others.
pub const NS_XINCLUDE: &str = "http://www.w3.org/2001/XInclude";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_VCARD: &str = "vcard-temp";
const NS_CLIENT: &str = "jabber:client";

/// Why a file cannot be read as PIEFXIS. Each names what it is about.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiefxisError {
    /// The root is none of `server-data`, `host`, `user` in the format's namespace.
    #[error("not a XEP-0227 file: the root element is <{0}/>")]
    Root(String),
    /// A required attribute is missing or empty.
    #[error("<{element}/> without its '{attr}' attribute")]
    Missing {
        /// The element.
        element: &'static str,
        /// The attribute.
        attr: &'static str,
    },
    /// An include names something else than a file beside the including one.
    #[error("xi:include href {0:?} is not a plain file name (no directories, no '..')")]
    Include(String),
    /// SCRAM data that cannot be used.
    #[error("user {user:?}: SCRAM credentials: {reason}")]
    Scram {
        /// The user's name as written.
        user: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What one file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// `<server-data/>`: hosts, and files of hosts to include.
    ServerData {
        /// The hosts written inline.
        hosts: Vec<Host>,
        /// `href`s of included files (each a `<host/>`, or a `<server-data/>`).
        includes: Vec<String>,
    },
    /// A `<host/>` file (included by a `<server-data/>`).
    Host(Host),
    /// A `<user/>` file (included by a `<host/>`). Boxed: a user carries far more than the
    /// other parts' vectors.
    User(Box<User>),
}

/// One virtual host and its users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    /// Its domain, as written.
    pub jid: String,
    /// Users written inline.
    pub users: Vec<User>,
    /// `href`s of included files (each a `<user/>`).
    pub includes: Vec<String>,
}

/// One account and its data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    /// The localpart, as written.
    pub name: String,
    /// A plaintext password (§4.2 discourages it; older exports have nothing else).
    pub password: Option<String>,
    /// SCRAM credentials, one per hash Parley knows (SHA-1, SHA-256); others are skipped.
    pub scram: Vec<ScramCredentials>,
    /// Mechanisms of SCRAM data that were skipped (a hash Parley does not support).
    pub skipped_mechanisms: Vec<String>,
    /// §4.3 roster items.
    pub roster: Vec<RosterEntry>,
    /// §4.6 the vCard (`vcard-temp`).
    pub vcard: Option<Element>,
    /// §4.5 private XML storage (XEP-0049): one element per namespace.
    pub private: Vec<Element>,
    /// §4.4 offline messages, as stored (with their `<delay/>`).
    pub offline: Vec<Element>,
    /// §4.8 incoming subscription requests not answered yet: `<presence type='subscribe'/>`
    /// with a `from`, in `jabber:client`.
    pub pending_in: Vec<Element>,
}

/// One roster item (RFC 6121 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterEntry {
    /// The contact's JID, as written.
    pub jid: String,
    /// The handle the user gave it.
    pub name: Option<String>,
    /// `none`, `to`, `from` or `both` (anything else reads as `none`).
    pub subscription: String,
    /// A subscription request of the user is pending (`ask='subscribe'`).
    pub ask: bool,
    /// Its groups, in order.
    pub groups: Vec<String>,
}

/// Reads one file's root element.
pub fn read(root: &Element) -> Result<Part, PiefxisError> {
    if root.ns() != NS {
        return Err(PiefxisError::Root(root.name().to_owned()));
    }
    match root.name() {
        "server-data" => {
            let mut hosts = Vec::new();
            let mut includes = Vec::new();
            for child in root.children() {
                if child.is("host", NS) {
                    hosts.push(read_host(child)?);
                } else if let Some(href) = include(child)? {
                    includes.push(href);
                }
            }
            Ok(Part::ServerData { hosts, includes })
        }
        "host" => Ok(Part::Host(read_host(root)?)),
        "user" => Ok(Part::User(Box::new(read_user(root)?))),
        other => Err(PiefxisError::Root(other.to_owned())),
    }
}

/// The `href` of an `<xi:include/>`, checked; None for any other element.
fn include(el: &Element) -> Result<Option<String>, PiefxisError> {
    if !el.is("include", NS_XINCLUDE) {
        return Ok(None);
    }
    let href = el.attr("href").unwrap_or_default();
    let plain = !href.is_empty()
        && href.len() <= 255
        && href != "."
        && href != ".."
        && !href.contains(['/', '\\', '\0', ':']);
    if plain {
        Ok(Some(href.to_owned()))
    } else {
        Err(PiefxisError::Include(href.to_owned()))
    }
}

fn read_host(el: &Element) -> Result<Host, PiefxisError> {
    let jid = required(el, "host", "jid")?;
    let mut host = Host {
        jid,
        ..Host::default()
    };
    for child in el.children() {
        if child.is("user", NS) {
            host.users.push(read_user(child)?);
        } else if let Some(href) = include(child)? {
            host.includes.push(href);
        }
    }
    Ok(host)
}

fn required(
    el: &Element,
    element: &'static str,
    attr: &'static str,
) -> Result<String, PiefxisError> {
    match el.attr(attr) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(PiefxisError::Missing { element, attr }),
    }
}

fn read_user(el: &Element) -> Result<User, PiefxisError> {
    let name = required(el, "user", "name")?;
    let mut user = User {
        password: el.attr("password").map(str::to_owned),
        ..User::default()
    };
    for child in el.children() {
        match (child.name(), child.ns()) {
            ("scram-credentials", NS_SCRAM) => {
                let mechanism = child.attr("mechanism").unwrap_or_default();
                match hash_of(mechanism) {
                    Some(hash) => {
                        let creds =
                            read_scram(child, hash).map_err(|reason| PiefxisError::Scram {
                                user: name.clone(),
                                reason,
                            })?;
                        if !user.scram.iter().any(|c| c.hash == hash) {
                            user.scram.push(creds);
                        }
                    }
                    None => user.skipped_mechanisms.push(mechanism.to_owned()),
                }
            }
            ("query", NS_ROSTER) => {
                user.roster.extend(
                    child
                        .children()
                        .filter(|i| i.is("item", NS_ROSTER))
                        .filter_map(read_item),
                );
            }
            ("vCard", NS_VCARD) => user.vcard = Some(child.clone()),
            ("query", NS_PRIVATE) => user.private.extend(child.children().cloned()),
            // §4.8; Prosody 0.12 writes them without a namespace of their own, so in the
            // file's.
            ("presence", NS_CLIENT | NS)
                if child.attr("type") == Some("subscribe")
                    && child.attr("from").is_some_and(|f| !f.is_empty()) =>
            {
                let mut presence = child.clone();
                presence.rename_ns(NS, NS_CLIENT);
                user.pending_in.push(presence);
            }
            ("offline-messages", NS) => user.offline.extend(
                child
                    .children()
                    .filter(|m| m.is("message", NS_CLIENT))
                    .cloned(),
            ),
            _ => {}
        }
    }
    user.name = name;
    Ok(user)
}

fn hash_of(mechanism: &str) -> Option<ScramHash> {
    match mechanism {
        "SCRAM-SHA-1" => Some(ScramHash::Sha1),
        "SCRAM-SHA-256" => Some(ScramHash::Sha256),
        _ => None,
    }
}

fn read_scram(el: &Element, hash: ScramHash) -> Result<ScramCredentials, &'static str> {
    let text = |name: &str| {
        el.children()
            .find(|c| c.is(name, NS_SCRAM))
            .map(|c| c.text().trim().to_owned())
    };
    let iterations = text("iter-count")
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .ok_or("iter-count missing or not a positive number")?;
    let b64 = |name: &str| -> Result<Vec<u8>, &'static str> {
        let t = text(name).ok_or("salt, server-key or stored-key missing")?;
        BASE64
            .decode(t)
            .map_err(|_| "salt, server-key or stored-key is not base64")
    };
    let mut salt = b64("salt")?;
    let mut server_key = b64("server-key")?;
    let mut stored_key = b64("stored-key")?;
    let len = match hash {
        ScramHash::Sha1 => 20,
        ScramHash::Sha256 => 32,
    };
    // ejabberd 23.01 keeps its keys base64-encoded and encodes them once more on export
    // (see [`ScramEncoding::Base64Twice`]): decoded once they are base64 text of a key of
    // the right length. Read them as it means them.
    let again = |b: &[u8]| BASE64.decode(b).ok();
    if server_key.len() != len && stored_key.len() != len {
        if let (Some(sk), Some(st), Some(sa)) =
            (again(&server_key), again(&stored_key), again(&salt))
        {
            if sk.len() == len && st.len() == len {
                (server_key, stored_key, salt) = (sk, st, sa);
            }
        }
    }
    if salt.is_empty() || server_key.len() != len || stored_key.len() != len {
        return Err("a key of the wrong length for its hash, or an empty salt");
    }
    Ok(ScramCredentials {
        hash,
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

fn read_item(item: &Element) -> Option<RosterEntry> {
    let jid = item.attr("jid").filter(|j| !j.is_empty())?.to_owned();
    if item.attr("subscription") == Some("remove") {
        return None;
    }
    Some(RosterEntry {
        jid,
        name: item
            .attr("name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        subscription: match item.attr("subscription") {
            Some(s @ ("to" | "from" | "both")) => s.to_owned(),
            _ => "none".to_owned(),
        },
        ask: item.attr("ask") == Some("subscribe"),
        groups: item
            .children()
            .filter(|g| g.is("group", NS_ROSTER))
            .map(Element::text)
            .collect(),
    })
}

/// How SCRAM salts and keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScramEncoding {
    /// §4.2: base64 of the bytes (Prosody, and everyone else).
    #[default]
    Standard,
    /// Base64 of the base64 text of the bytes: what ejabberd 23.01 (Debian 12) writes and
    /// expects, since it keeps its keys base64-encoded and its XEP-0227 code encodes them
    /// again. Reading accepts both without being told.
    Base64Twice,
}

/// The `<user/>` element of `user` (never a plaintext password: Parley has none to give).
pub fn user_element(user: &User) -> Element {
    user_element_encoded(user, ScramEncoding::Standard)
}

/// [`user_element`] with the SCRAM data written as `encoding` says.
pub fn user_element_encoded(user: &User, encoding: ScramEncoding) -> Element {
    let encode = |bytes: &[u8]| match encoding {
        ScramEncoding::Standard => BASE64.encode(bytes),
        ScramEncoding::Base64Twice => BASE64.encode(BASE64.encode(bytes)),
    };
    let mut el = Element::new("user", NS).with_attr("name", user.name.as_str());
    for c in &user.scram {
        let child = |name: &str, text: String| Element::new(name, NS_SCRAM).with_text(text);
        el.push_child(
            Element::new("scram-credentials", NS_SCRAM)
                .with_attr("mechanism", format!("SCRAM-{}", c.hash.name()))
                .with_child(child("iter-count", c.iterations.to_string()))
                .with_child(child("salt", encode(&c.salt)))
                .with_child(child("server-key", encode(&c.server_key)))
                .with_child(child("stored-key", encode(&c.stored_key))),
        );
    }
    if !user.roster.is_empty() {
        let mut query = Element::new("query", NS_ROSTER);
        for r in &user.roster {
            let mut item = Element::new("item", NS_ROSTER)
                .with_attr("jid", r.jid.as_str())
                .with_attr("subscription", r.subscription.as_str());
            if let Some(name) = &r.name {
                item.set_attr("name", name.as_str());
            }
            if r.ask {
                item.set_attr("ask", "subscribe");
            }
            for g in &r.groups {
                item.push_child(Element::new("group", NS_ROSTER).with_text(g.as_str()));
            }
            query.push_child(item);
        }
        el.push_child(query);
    }
    if let Some(vcard) = &user.vcard {
        el.push_child(vcard.clone());
    }
    if !user.private.is_empty() {
        let mut query = Element::new("query", NS_PRIVATE);
        for p in &user.private {
            query.push_child(p.clone());
        }
        el.push_child(query);
    }
    for presence in &user.pending_in {
        el.push_child(presence.clone());
    }
    if !user.offline.is_empty() {
        let mut box_ = Element::new("offline-messages", NS);
        for m in &user.offline {
            box_.push_child(m.clone());
        }
        el.push_child(box_);
    }
    el
}

#[cfg(test)]
mod tests;
