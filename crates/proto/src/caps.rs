//! Entity capabilities (XEP-0115): the verification string of a disco#info answer (§5.1),
//! so that a peer can cache what an entity supports by one hash. The server announces its
//! own in its stream features (§6.3) and answers disco#info for `node#ver` (§6.2).

use base64::Engine;
use parley_xml::Element;
use sha1::{Digest, Sha1};

use crate::ns;

/// The namespace of `<c/>`.
pub const NS: &str = "http://jabber.org/protocol/caps";
/// The node Parley names itself by.
pub const NODE: &str = "https://parley.im";

/// XEP-0115 §5.1 for a disco#info `<query/>` without data forms: identities
/// `category/type/lang/name` sorted, then features sorted, each followed by `<`, hashed
/// with SHA-1 and base64-encoded.
pub fn ver(info: &Element) -> String {
    let mut identities: Vec<String> = info
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.attr("category").unwrap_or(""),
                i.attr("type").unwrap_or(""),
                i.attr("xml:lang").unwrap_or(""),
                i.attr("name").unwrap_or("")
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<&str> = info
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .collect();
    features.sort_unstable();
    let mut s = String::new();
    for part in identities.iter().map(String::as_str).chain(features) {
        s.push_str(part);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// The `<c/>` announcing `info` (XEP-0115 §6.3).
pub fn element(info: &Element) -> Element {
    Element::new("c", NS)
        .with_attr("hash", "sha-1")
        .with_attr("node", NODE)
        .with_attr("ver", ver(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2, the simple example: Exodus 0.9.1 hashes to `QgayPKawpkPSDYmwT/WM94uAlu0=`.
    #[test]
    fn xep0115_5_2_the_simple_example_hashes_as_the_xep_says() {
        let mut info = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "client")
                .with_attr("type", "pc")
                .with_attr("name", "Exodus 0.9.1"),
        );
        // Out of order on purpose: the algorithm sorts.
        for f in [
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#items",
        ] {
            info.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        assert_eq!(ver(&info), "QgayPKawpkPSDYmwT/WM94uAlu0=");
        let c = element(&info);
        assert_eq!(c.attr("hash"), Some("sha-1"));
        assert_eq!(c.attr("ver"), Some("QgayPKawpkPSDYmwT/WM94uAlu0="));
    }
}
