//! A cheap estimate of the memory a stanza holds, for the user-actor mailbox and the
//! Stream Management queue bounds: names,
//! namespaces, attributes and text, counted without serializing anything.

use crate::{Element, Node};

/// Per-element overhead of the tree (vectors, string headers) beyond its bytes of text.
const ELEMENT_OVERHEAD: usize = 64;

/// About how many bytes `el` occupies in memory.
pub fn approx_bytes(el: &Element) -> usize {
    let mut total = ELEMENT_OVERHEAD + el.name().len() + el.ns().len();
    for (k, v) in el.attrs() {
        total += k.len() + v.len() + 2 * std::mem::size_of::<String>();
    }
    for node in el.nodes() {
        total += match node {
            Node::Element(child) => approx_bytes(child),
            Node::Text(t) => t.len() + std::mem::size_of::<String>(),
        };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    #[test]
    fn the_estimate_grows_with_the_text_and_is_at_least_the_serialized_size() {
        let small = Element::parse(
            b"<message xmlns='jabber:client'><body>x</body></message>",
            &Limits::default(),
        )
        .unwrap();
        let body = "y".repeat(10_000);
        let xml = format!("<message xmlns='jabber:client' to='a@b'><body>{body}</body></message>");
        let big = Element::parse(xml.as_bytes(), &Limits::default()).unwrap();
        assert!(approx_bytes(&big) >= xml.len());
        assert!(approx_bytes(&big) > approx_bytes(&small) + 9_000);
    }
}
