//! HTTP File Upload (XEP-0363, `urn:xmpp:http:upload:0`): the slot request and its answer,
//! the errors §4 names, and the grant a slot's URLs carry.
//!
//! A slot is not remembered anywhere: its PUT URL carries what it allows (file id, name,
//! size, type, owner, expiry) and an HMAC-SHA-256 over them with the server secret every
//! node shares, so whichever node the upload reaches can check it, and a client cannot
//! stretch its own slot. The GET URL is the file's unguessable id and name.

use base64::Engine;
use hmac::{Hmac, Mac};
use parley_xml::Element;
use rand::Rng;
use sha2::Sha256;

/// The namespace.
pub const NS: &str = "urn:xmpp:http:upload:0";

/// Longest file name accepted, in bytes (a common file system limit).
pub const MAX_FILENAME_BYTES: usize = 255;
/// Longest content type accepted, in bytes (RFC 6838 §4.2: 127 per part).
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Characters of a file id: lowercase letters and digits, 24 of them (124 bits).
pub const FILE_ID_LEN: usize = 24;

/// A slot request (XEP-0363 §4), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub size: u64,
    /// `type/subtype`, lowercased; None when the client gave none.
    pub content_type: Option<String>,
}

/// Why a request is refused as `bad-request`, for the error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request has no filename")]
    NoFilename,
    #[error("the filename is not a plain file name")]
    BadFilename,
    #[error("the size is missing or not a number of bytes")]
    BadSize,
    #[error("the content-type is not a media type")]
    BadContentType,
}

/// Reads `<request xmlns='urn:xmpp:http:upload:0' filename size content-type/>`.
pub fn parse_request(request: &Element) -> Result<Request, RequestError> {
    let filename = request.attr("filename").ok_or(RequestError::NoFilename)?;
    if !valid_filename(filename) {
        return Err(RequestError::BadFilename);
    }
    let size = request
        .attr("size")
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(RequestError::BadSize)?;
    let content_type = match request.attr("content-type") {
        None | Some("") => None,
        Some(t) => Some(media_type(t).ok_or(RequestError::BadContentType)?),
    };
    Ok(Request {
        filename: filename.to_owned(),
        size,
        content_type,
    })
}

/// A name that is one path segment and nothing more: not empty, not `.` or `..`, no
/// slash, backslash or control character, at most [`MAX_FILENAME_BYTES`].
pub fn valid_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILENAME_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// `type/subtype` (RFC 6838 §4.2 restricted names), lowercased; parameters are not kept.
pub fn media_type(s: &str) -> Option<String> {
    let essence = s.split(';').next()?.trim();
    let (ty, sub) = essence.split_once('/')?;
    let name = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (essence.len() <= MAX_CONTENT_TYPE_BYTES && name(ty) && name(sub))
        .then(|| essence.to_ascii_lowercase())
}

/// What a slot allows, signed into its PUT URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The file's id ([`new_file_id`]).
    pub id: String,
    pub filename: String,
    pub size: u64,
    /// The type the file will be served with.
    pub content_type: String,
    /// The uploader's bare JID (whose quota it counts against).
    pub owner: String,
    /// Unix ms after which the PUT URL is refused.
    pub expires_ms: i64,
}

impl Grant {
    /// The grant's signature: base64url of HMAC-SHA-256 over its fields, each length-
    /// prefixed so that no two grants sign the same bytes.
    pub fn sign(&self, secret: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(secret).finalize().into_bytes())
    }

    /// Whether `signature` is this grant's (in constant time).
    pub fn verify(&self, secret: &[u8], signature: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(secret).verify_slice(&raw).is_ok()
    }

    fn mac(&self, secret: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"parley-upload-v1");
        let size = self.size.to_string();
        let expires = self.expires_ms.to_string();
        for field in [
            self.id.as_str(),
            &self.filename,
            &size,
            &self.content_type,
            &self.owner,
            &expires,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

/// Reads a PUT URL's path segments and query (`size`, `type`, `owner`, `expires`, `sig`,
/// each once) back into the grant it claims and its signature; None for anything else.
/// The signature is not checked here ([`Grant::verify`]).
pub fn parse_put(id: &str, name: &str, query: &str) -> Option<(Grant, String)> {
    let filename = decode_segment(name)?;
    if !valid_file_id(id) || !valid_filename(&filename) {
        return None;
    }
    let mut fields: [Option<String>; 5] = Default::default();
    const KEYS: [&str; 5] = ["size", "type", "owner", "expires", "sig"];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        let slot = &mut fields[KEYS.iter().position(|key| *key == k)?];
        if slot.is_some() {
            return None;
        }
        *slot = Some(decode_segment(v)?);
    }
    let [Some(size), Some(content_type), Some(owner), Some(expires), Some(sig)] = fields else {
        return None;
    };
    let size = (!size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()))
        .then(|| size.parse().ok())
        .flatten()?;
    let expires_ms = expires.parse().ok()?;
    let grant = Grant {
        id: id.to_owned(),
        filename,
        size,
        content_type,
        owner,
        expires_ms,
    };
    Some((grant, sig))
}

/// A fresh file id: [`FILE_ID_LEN`] random lowercase letters and digits.
pub fn new_file_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..FILE_ID_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether `id` has the form of [`new_file_id`]'s (so it is safe as a file name).
pub fn valid_file_id(id: &str) -> bool {
    id.len() == FILE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `<slot><put url/><get url/></slot>` (§4).
pub fn slot(put: &str, get: &str) -> Element {
    Element::new("slot", NS)
        .with_child(Element::new("put", NS).with_attr("url", put))
        .with_child(Element::new("get", NS).with_attr("url", get))
}

/// `<file-too-large><max-file-size>N</max-file-size></file-too-large>` (§5.1), the
/// application condition of a `not-acceptable` error.
pub fn file_too_large(max: u64) -> Element {
    Element::new("file-too-large", NS)
        .with_child(Element::new("max-file-size", NS).with_text(max.to_string()))
}

/// Percent-encodes `s` for one URL path segment (RFC 3986 unreserved characters stay).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The opposite of [`path_segment`] (any percent-encoding); None for a bad escape or bytes
/// that are not UTF-8.
pub fn decode_segment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(attrs: &[(&str, &str)]) -> Element {
        let mut el = Element::new("request", NS);
        for (k, v) in attrs {
            el = el.with_attr(k, *v);
        }
        el
    }

    /// XEP-0363 §4: filename and size are required, content-type optional.
    #[test]
    fn xep0363_4_request_is_read_and_checked() {
        let r = parse_request(&request(&[
            ("filename", "très cool.jpg"),
            ("size", "23456"),
            ("content-type", "Image/JPEG; charset=x"),
        ]))
        .unwrap();
        assert_eq!(r.filename, "très cool.jpg");
        assert_eq!(r.size, 23456);
        assert_eq!(r.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            parse_request(&request(&[("size", "1")])),
            Err(RequestError::NoFilename)
        );
        for bad in ["", ".", "..", "a/b", "..\\x", "a\u{0}b", &"x".repeat(256)] {
            assert_eq!(
                parse_request(&request(&[("filename", bad), ("size", "1")])),
                Err(RequestError::BadFilename),
                "{bad:?}"
            );
        }
        for bad in ["", "-1", "1e3", "18446744073709551616", " 1"] {
            assert_eq!(
                parse_request(&request(&[("filename", "a"), ("size", bad)])),
                Err(RequestError::BadSize),
                "{bad:?}"
            );
        }
        for bad in ["text", "text/", "/html", "te xt/html", "a/b/c"] {
            assert_eq!(
                parse_request(&request(&[
                    ("filename", "a"),
                    ("size", "1"),
                    ("content-type", bad)
                ])),
                Err(RequestError::BadContentType),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_grant_verifies_only_unchanged_and_with_its_secret() {
        let grant = Grant {
            id: new_file_id(),
            filename: "a.png".into(),
            size: 10,
            content_type: "image/png".into(),
            owner: "alice@localhost".into(),
            expires_ms: 1_000,
        };
        let sig = grant.sign(b"secret");
        assert!(grant.verify(b"secret", &sig));
        assert!(!grant.verify(b"other", &sig));
        assert!(!grant.verify(b"secret", "not base64 !"));
        let bigger = Grant {
            size: 11,
            ..grant.clone()
        };
        assert!(!bigger.verify(b"secret", &sig));
        let later = Grant {
            expires_ms: 2_000,
            ..grant.clone()
        };
        assert!(!later.verify(b"secret", &sig));
        // Fields shifted between each other sign different bytes.
        let shifted = Grant {
            filename: "a.pn".into(),
            content_type: "gimage/png".into(),
            ..grant.clone()
        };
        assert!(!shifted.verify(b"secret", &sig));
    }

    #[test]
    fn put_urls_read_back_to_their_grant() {
        let id = new_file_id();
        let q = "size=600&type=image%2Fpng&owner=alice%40localhost&expires=17&sig=AbC";
        let (g, sig) = parse_put(&id, "photo%201.png", q).unwrap();
        assert_eq!(
            (g.filename.as_str(), g.size, g.content_type.as_str()),
            ("photo 1.png", 600, "image/png")
        );
        assert_eq!(
            (g.owner.as_str(), g.expires_ms, sig.as_str()),
            ("alice@localhost", 17, "AbC")
        );
        for bad in [
            "size=600&type=image%2Fpng&owner=a%40b&expires=17",
            "size=600&size=600&type=image%2Fpng&owner=a%40b&expires=17&sig=x",
            "size=-1&type=image%2Fpng&owner=a%40b&expires=17&sig=x",
            "size=600&type=image%2Fpng&owner=a%40b&expires=17&sig=x&more=1",
            "size=600&type=%zz&owner=a%40b&expires=17&sig=x",
        ] {
            assert_eq!(parse_put(&id, "a", bad), None, "{bad}");
        }
        assert_eq!(parse_put("short", "a", q), None);
        assert_eq!(parse_put(&id, "..", q), None);
        assert_eq!(parse_put(&id, "a%2Fb", q), None);
    }

    #[test]
    fn file_ids_are_safe_names() {
        let id = new_file_id();
        assert!(valid_file_id(&id), "{id}");
        assert!(!valid_file_id("../../etc/passwd"));
        assert!(!valid_file_id(&id.to_uppercase()));
    }

    #[test]
    fn path_segments_round_trip() {
        for name in ["très cool.jpg", "a%2Fb", "a b?c#d", "plain-name_1.txt"] {
            let enc = path_segment(name);
            assert!(!enc.contains(['/', ' ', '?', '#']), "{enc}");
            assert_eq!(decode_segment(&enc).as_deref(), Some(name));
        }
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%"), None);
        assert_eq!(decode_segment("%ff"), None);
    }
}
