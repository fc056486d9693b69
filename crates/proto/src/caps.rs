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

/// XEP-0115 §5.1 for a disco#info `<query/>`: identities `category/type/lang/name` sorted,
/// then features sorted, then each extended form (XEP-0128, sorted by FORM_TYPE) as its
/// FORM_TYPE, then its other fields sorted by var, each var followed by its values sorted;
/// every part followed by `<`, hashed with SHA-1 and base64-encoded. Clients announce
/// software information forms (`urn:xmpp:dataforms:softwareinfo`), so a hash without them
/// would not verify.
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
    const DATA: &str = "jabber:x:data";
    let values = |field: &Element| -> Vec<String> {
        let mut v: Vec<String> = field
            .children()
            .filter(|c| c.is("value", DATA))
            .map(Element::text)
            .collect();
        v.sort();
        v
    };
    /// (var, values) of one field.
    type Field = (String, Vec<String>);
    let mut forms: Vec<(String, Vec<Field>)> = info
        .children()
        .filter(|c| c.is("x", DATA))
        .filter_map(|form| {
            let fields: Vec<&Element> = form.children().filter(|c| c.is("field", DATA)).collect();
            // §5.4: a form without FORM_TYPE is not part of the hash.
            let form_type = fields
                .iter()
                .find(|f| f.attr("var") == Some("FORM_TYPE"))
                .map(|f| values(f).join("<"))?;
            let mut rest: Vec<Field> = fields
                .iter()
                .filter(|f| f.attr("var") != Some("FORM_TYPE"))
                .map(|f| (f.attr("var").unwrap_or("").to_owned(), values(f)))
                .collect();
            rest.sort();
            Some((form_type, rest))
        })
        .collect();
    forms.sort();
    for (form_type, fields) in forms {
        s.push_str(&form_type);
        s.push('<');
        for (var, vals) in fields {
            s.push_str(&var);
            s.push('<');
            for v in vals {
                s.push_str(&v);
                s.push('<');
            }
        }
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

    /// XEP-0115 §5.3, the complex example: two identities with languages, and a
    /// software information form, hash to `q07IKJEyjvHSyhy//CH0CxmKi8w=`.
    #[test]
    fn xep0115_5_3_the_complex_example_with_a_form_hashes_as_the_xep_says() {
        let xml = "<query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
            <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/>\
            <x xmlns='jabber:x:data' type='result'>\
              <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
              <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
              <field var='os'><value>Mac</value></field>\
              <field var='os_version'><value>10.5.1</value></field>\
              <field var='software'><value>Psi</value></field>\
              <field var='software_version'><value>0.11</value></field>\
            </x></query>";
        let info = Element::parse(xml.as_bytes(), &parley_xml::Limits::default()).unwrap();
        assert_eq!(ver(&info), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }

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
