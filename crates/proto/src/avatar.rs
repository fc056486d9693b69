//! User avatars in their two forms (XEP-0398): PEP avatars (XEP-0084: the image in the
//! `urn:xmpp:avatar:data` node, its description in `urn:xmpp:avatar:metadata`, both under
//! the image's SHA-1) and vCard avatars (XEP-0054 `<PHOTO/>`, announced in presence by
//! `<x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x>`, XEP-0153). Pure conversions.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use parley_xml::Element;
use sha1::{Digest, Sha1};

use crate::ns;

/// XEP-0084's data node and namespace.
pub const DATA_NODE: &str = "urn:xmpp:avatar:data";
/// XEP-0084's metadata node and namespace.
pub const METADATA_NODE: &str = "urn:xmpp:avatar:metadata";
/// XEP-0153's presence element namespace.
pub const UPDATE_NS: &str = "vcard-temp:x:update";
/// XEP-0398 §3: the feature of an account whose server converts between the two.
pub const CONVERSION_FEATURE: &str = "urn:xmpp:pep-vcard-conversion:0";

/// A vCard's photo: its type, its base64 (whitespace removed) and its SHA-1 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub mime: String,
    pub base64: String,
    pub bytes: usize,
    pub sha1: String,
}

/// SHA-1 of `data`, lowercase hex (the id of an avatar in both forms).
pub fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The photo of a vCard (`<PHOTO><TYPE/><BINVAL/></PHOTO>`), if it has one that decodes.
pub fn photo_of(vcard: &Element) -> Option<Photo> {
    let photo = vcard.get_child("PHOTO", ns::VCARD)?;
    let b64: String = photo
        .get_child("BINVAL", ns::VCARD)?
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let data = STANDARD.decode(b64.as_bytes()).ok()?;
    if data.is_empty() {
        return None;
    }
    let mime = photo
        .get_child("TYPE", ns::VCARD)
        .map(|t| t.text())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".to_owned());
    Some(Photo {
        mime,
        bytes: data.len(),
        sha1: sha1_hex(&data),
        base64: b64,
    })
}

/// `vcard` with its photo replaced by `photo` (or removed, with None).
pub fn with_photo(vcard: &Element, photo: Option<&Photo>) -> Element {
    let mut out = Element::new("vCard", ns::VCARD);
    for (k, v) in vcard.attrs() {
        if k != "xmlns" {
            out.set_attr(k, v);
        }
    }
    for c in vcard.children().filter(|c| !c.is("PHOTO", ns::VCARD)) {
        out.push_child(c.clone());
    }
    if let Some(p) = photo {
        out.push_child(
            Element::new("PHOTO", ns::VCARD)
                .with_child(Element::new("TYPE", ns::VCARD).with_text(p.mime.as_str()))
                .with_child(Element::new("BINVAL", ns::VCARD).with_text(p.base64.as_str())),
        );
    }
    out
}

/// XEP-0084 §4.1: the data item's payload.
pub fn data_payload(photo: &Photo) -> Element {
    Element::new("data", DATA_NODE).with_text(photo.base64.as_str())
}

/// XEP-0084 §4.2: the metadata item's payload.
pub fn metadata_payload(photo: &Photo) -> Element {
    Element::new("metadata", METADATA_NODE).with_child(
        Element::new("info", METADATA_NODE)
            .with_attr("id", photo.sha1.as_str())
            .with_attr("bytes", photo.bytes.to_string())
            .with_attr("type", photo.mime.as_str()),
    )
}

/// What a metadata payload says: Some(id, type) of its first image, or None for an empty
/// one (XEP-0084 §4.6: the avatar is disabled).
pub fn metadata_info(payload: &Element) -> Option<(String, String)> {
    let info = payload.get_child("info", METADATA_NODE)?;
    let id = info.attr("id").filter(|i| !i.is_empty())?;
    let mime = info.attr("type").unwrap_or("image/png");
    Some((id.to_owned(), mime.to_owned()))
}

/// The photo that a data item (`<data>BASE64</data>`) of type `mime` holds.
pub fn photo_from_data(data: &Element, mime: &str) -> Option<Photo> {
    let b64: String = data
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let raw = STANDARD.decode(b64.as_bytes()).ok()?;
    (!raw.is_empty()).then(|| Photo {
        mime: mime.to_owned(),
        bytes: raw.len(),
        sha1: sha1_hex(&raw),
        base64: b64,
    })
}

/// Whether a presence carries XEP-0153's element (the client speaks for itself).
pub fn has_update(presence: &Element) -> bool {
    presence.has_child("x", UPDATE_NS)
}

/// The hash a presence's XEP-0153 element names, if any.
pub fn update_hash(presence: &Element) -> Option<String> {
    presence
        .get_child("x", UPDATE_NS)?
        .get_child("photo", UPDATE_NS)
        .map(|p| p.text())
}

/// `presence` with XEP-0153's element naming `hash` (replacing any).
pub fn with_update(presence: &Element, hash: &str) -> Element {
    let mut out = without_update(presence);
    out.push_child(
        Element::new("x", UPDATE_NS).with_child(Element::new("photo", UPDATE_NS).with_text(hash)),
    );
    out
}

/// `presence` without XEP-0153's element.
pub fn without_update(presence: &Element) -> Element {
    let mut out = presence.clone();
    while out.remove_child("x", UPDATE_NS).is_some() {}
    out
}

#[cfg(test)]
mod tests {
    use parley_xml::Limits;

    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    /// XEP-0398 §4 with XEP-0084 §4 and XEP-0153 §3: one image, one SHA-1 in every form.
    #[test]
    fn xep0398_4_a_photo_converts_both_ways_under_one_hash() {
        let card = el(
            "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE>\
            <BINVAL>iVBO\nRw0K</BINVAL></PHOTO></vCard>",
        );
        let photo = photo_of(&card).unwrap();
        let raw = STANDARD.decode("iVBORw0K").unwrap();
        assert_eq!(photo.sha1, sha1_hex(&raw));
        assert_eq!(photo.bytes, raw.len());
        assert_eq!(photo.mime, "image/png");
        let meta = metadata_payload(&photo);
        assert_eq!(
            metadata_info(&meta),
            Some((photo.sha1.clone(), "image/png".to_owned()))
        );
        let back = photo_from_data(&data_payload(&photo), "image/png").unwrap();
        assert_eq!(back, photo);
        let card2 = with_photo(&card, Some(&back));
        assert_eq!(photo_of(&card2).unwrap().sha1, photo.sha1);
        assert!(card2.has_child("FN", ns::VCARD), "other fields stay");
        assert!(photo_of(&with_photo(&card, None)).is_none());
        assert_eq!(
            metadata_info(&el("<metadata xmlns='urn:xmpp:avatar:metadata'/>")),
            None
        );
        assert!(photo_of(&el(
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>@@</BINVAL></PHOTO></vCard>"
        ))
        .is_none());
    }

    /// XEP-0153 §3: the hash rides in presence, replacing any earlier one.
    #[test]
    fn xep0153_3_presence_carries_the_hash() {
        let p = el("<presence xmlns='jabber:client'><show>away</show></presence>");
        assert!(!has_update(&p));
        let with = with_update(&p, "abc");
        assert_eq!(update_hash(&with).as_deref(), Some("abc"));
        let again = with_update(&with, "def");
        assert_eq!(again.children().filter(|c| c.is("x", UPDATE_NS)).count(), 1);
        assert_eq!(update_hash(&again).as_deref(), Some("def"));
        assert!(!has_update(&without_update(&again)));
        assert!(again.has_child("show", "jabber:client"));
    }
}
