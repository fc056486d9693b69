//! Builds an [`Element`] from the bytes of one complete element, resolving namespace
//! prefixes against the enclosing stream's declarations (RFC 6120 §4.8, §11.2;
//! Namespaces in XML 1.0).
//!
//! quick-xml tokenizes the element and checks that tags nest and match; the contents
//! of each start tag (name, attributes) are taken apart here, straight from the
//! validated input, which is both stricter and cheaper than going through its
//! attribute iterator.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

use crate::escape::{is_qname, is_xml_ws, unescape, Context};
pub(crate) use crate::scope::Bindings;
use crate::scope::{Ns, Scope, XML_NS};
use crate::{Element, Limits, StreamHeader, XmlError};

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Up to this many attributes on one element are checked for duplicates pairwise;
/// beyond it a hash set keeps the check linear (`Limits::max_attrs` may be large).
const PAIRWISE: usize = 8;

/// The UTF-8-validated text being parsed. quick-xml hands out byte slices of it;
/// mapping them back by offset avoids validating every piece a second time.
#[derive(Clone, Copy)]
struct Source<'a> {
    text: &'a str,
}

impl<'a> Source<'a> {
    fn sub(&self, bytes: &[u8]) -> Result<&'a str, XmlError> {
        let base = self.text.as_ptr() as usize;
        let start = bytes.as_ptr() as usize;
        start
            .checked_sub(base)
            .and_then(|offset| self.text.get(offset..offset + bytes.len()))
            // quick-xml's slice reader always borrows from its input, so this is unreachable.
            .ok_or_else(|| XmlError::nwf("tokenizer returned data outside the input"))
    }
}

/// Bounds the namespace declarations the serializer will write beyond those in the
/// input. A parsed element forgets its prefix, so `<p:a/>` under `xmlns:p='…'` is
/// written as `<a xmlns='…'/>`, and a prefixed attribute takes its declaration with
/// it: without a bound, one long namespace used by many small elements makes the
/// forwarded or stored copy of a 256 KiB stanza gigabytes long. The bound is the
/// stanza size limit, so a copy is at most about twice as large as its input (plus
/// escaping), which `Limits::for_copies` allows for. It also bounds the work of
/// comparing namespaces that are equal but not one shared copy.
struct Budget {
    left: usize,
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<(), XmlError> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            XmlError::policy("namespace declarations would exceed the size limit when forwarded")
        })?;
        Ok(())
    }
}

fn skip_ws(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_xml_ws(b)).count();
    &s[n..]
}

/// Attributes of the tag being read, borrowed from the input. One list is reused for
/// every element of a stanza, so only the element's final list is allocated, at its
/// exact size.
type RawAttrs<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// Whether two of `items` have the same key: pairwise for a few, hashed for many, so
/// an element with many attributes costs linear time.
fn has_duplicate<'t, T, K: Eq + std::hash::Hash>(items: &'t [T], key: impl Fn(&'t T) -> K) -> bool {
    if items.len() <= PAIRWISE {
        return (1..items.len()).any(|i| {
            let k = key(&items[i]);
            items[..i].iter().any(|o| key(o) == k)
        });
    }
    let mut seen = HashSet::with_capacity(items.len());
    items.iter().any(|t| !seen.insert(key(t)))
}

/// Takes apart the contents of a start tag (between `<` and `>` or `/>`): returns its
/// name, fills `attrs`, and declares its namespace declarations in `scope`
/// (XML 1.0 §3.1, Namespaces in XML 1.0 §3).
fn read_tag<'a>(
    content: &'a str,
    scope: &mut Scope<'a, '_>,
    attrs: &mut RawAttrs<'a>,
) -> Result<&'a str, XmlError> {
    let name_len = content.bytes().position(is_xml_ws).unwrap_or(content.len());
    let (qname, mut rest) = content.split_at(name_len);
    if !is_qname(qname) {
        return Err(XmlError::nwf("invalid element name"));
    }
    let mark = scope.mark();
    attrs.clear();
    loop {
        let trimmed = skip_ws(rest);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(XmlError::nwf("attributes must be separated by whitespace"));
        }
        let key_len = trimmed
            .bytes()
            .position(|b| b == b'=' || is_xml_ws(b))
            .ok_or_else(|| XmlError::nwf("attribute without a value"))?;
        let (key, after) = trimmed.split_at(key_len);
        let after = skip_ws(after)
            .strip_prefix('=')
            .map(skip_ws)
            .ok_or_else(|| XmlError::nwf("expected '=' after attribute name"))?;
        let quote = match after.as_bytes().first() {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(XmlError::nwf("attribute value must be quoted")),
        };
        let len = memchr::memchr(quote, &after.as_bytes()[1..])
            .ok_or_else(|| XmlError::nwf("unterminated attribute value"))?;
        let raw = &after[1..1 + len];
        rest = &after[len + 2..];

        if !is_qname(key) {
            return Err(XmlError::nwf("invalid attribute name"));
        }
        let value = unescape(raw, Context::AttrValue)?;
        let declared = if key == "xmlns" {
            Some("")
        } else {
            key.strip_prefix("xmlns:")
        };
        if let Some(prefix) = declared {
            // Namespaces in XML 1.0 §3: no undeclaring prefixes, no rebinding reserved ones.
            if (value.is_empty() && !prefix.is_empty())
                || prefix == "xmlns"
                || (prefix == "xml") != (value == XML_NS)
                || value == XMLNS_NS
            {
                return Err(XmlError::nwf(format!(
                    "illegal declaration of prefix '{prefix}'"
                )));
            }
            // XML 1.0 §3.1: no attribute, declarations included, appears twice in a
            // tag. Declarations are few (the cap), attributes need not be.
            if scope.declared_since(mark, prefix) {
                return Err(XmlError::nwf(format!("duplicate attribute '{key}'")));
            }
            scope.declare(prefix, &value)?;
        } else {
            attrs.push((key, value));
        }
    }
    if has_duplicate(attrs, |(k, _)| *k) {
        return Err(XmlError::nwf("duplicate attribute"));
    }
    Ok(qname)
}

/// Resolves the element's prefix; `xmlns` is never bound, so it is refused here too.
///
/// An element in the XML namespace (`<xml:a/>`) is refused as well: every element is
/// written back with a default-namespace declaration, and Namespaces in XML 1.0 §3 forbids
/// declaring that namespace as the default, so such an element could be read but never
/// forwarded or stored (found by the `websocket_framing` fuzz target).
fn resolve_name<'q>(qname: &'q str, scope: &Scope<'_, '_>) -> Result<(&'q str, Ns), XmlError> {
    let (prefix, name) = qname.split_once(':').unwrap_or(("", qname));
    let ns = scope.resolve(prefix)?;
    if ns.as_str() == XML_NS {
        return Err(XmlError::nwf("an element may not be in the XML namespace"));
    }
    Ok((name, ns))
}

/// Checks the prefixes of `attrs` and returns the bindings they rely on.
fn attr_prefixes(
    attrs: &RawAttrs<'_>,
    scope: &Scope<'_, '_>,
    budget: &mut Budget,
) -> Result<Vec<(String, Ns)>, XmlError> {
    let mut used: Vec<(String, Ns)> = Vec::new();
    let mut expanded: Vec<(Ns, &str)> = Vec::new();
    for (key, _) in attrs {
        let Some((prefix, name)) = key.split_once(':') else {
            continue;
        };
        let uri = scope.resolve(prefix)?;
        if prefix != "xml" && !used.iter().any(|(p, _)| p == prefix) {
            budget.spend(prefix.len() + uri.as_str().len() + 12)?;
            used.push((prefix.to_owned(), uri.clone()));
        }
        expanded.push((uri, name));
    }
    // Two prefixes for one namespace must not smuggle in a duplicate attribute.
    if has_duplicate(&expanded, |(u, n)| (u.as_str(), *n)) {
        return Err(XmlError::nwf(
            "duplicate attribute with the same expanded name",
        ));
    }
    Ok(used)
}

fn reader(xml: &[u8]) -> Reader<&[u8]> {
    let mut r = Reader::from_reader(xml);
    let c = r.config_mut();
    c.trim_text(false);
    c.check_end_names = true;
    c.expand_empty_elements = false;
    r
}

/// Parses a complete stream header start tag (`<stream:stream …>`), returning the
/// header, the bindings it declares, and its qualified name (for matching the close).
/// Its declarations count against the cap, since every stanza inherits them.
pub(crate) fn parse_header(
    tag: &[u8],
    limits: &Limits,
) -> Result<(StreamHeader, Bindings, String), XmlError> {
    let src = Source {
        text: std::str::from_utf8(tag)?,
    };
    let mut r = reader(tag);
    let start = match r.read_event()? {
        XmlEvent::Start(start) => start,
        XmlEvent::Empty(_) => return Err(XmlError::nwf("self-closing stream header")),
        _ => return Err(XmlError::nwf("expected a stream header")),
    };
    let none = Bindings::default();
    let mut scope = Scope::new(&none, limits.max_namespace_declarations);
    let mut attrs = Vec::new();
    let qname = read_tag(src.sub(&start)?, &mut scope, &mut attrs)?;
    let (name, ns) = resolve_name(qname, &scope)?;
    let mut budget = Budget {
        left: limits.max_stanza_bytes,
    };
    attr_prefixes(&attrs, &scope, &mut budget)?;
    let bindings = scope.into_bindings();
    let header = StreamHeader {
        name: name.to_owned(),
        ns: ns.as_str().to_owned(),
        default_ns: bindings.default_ns().map(|u| u.as_str().to_owned()),
        attrs: owned(&mut attrs),
    };
    Ok((header, bindings, qname.to_owned()))
}

/// Builds the element whose complete bytes are `xml`, inheriting `base` bindings.
pub(crate) fn build_element(
    xml: &[u8],
    base: &Bindings,
    limits: &Limits,
) -> Result<Element, XmlError> {
    // One pass over the whole stanza is cheaper than validating piece by piece, and
    // guarantees no invalid byte hides in markup that is never turned into a string.
    let src = Source {
        text: std::str::from_utf8(xml)?,
    };
    let mut r = reader(xml);
    let mut scope = Scope::new(base, limits.max_namespace_declarations);
    let mut budget = Budget {
        left: limits.max_stanza_bytes,
    };
    // Open elements, each with the scope mark taken before its declarations.
    let mut stack: Vec<(Element, usize)> = Vec::new();
    let mut attrs = Vec::new();
    let mut root = None;
    loop {
        match r.read_event()? {
            ev @ (XmlEvent::Start(_) | XmlEvent::Empty(_)) => {
                if root.is_some() {
                    return Err(XmlError::nwf("content after the root element"));
                }
                let (start, empty) = match &ev {
                    XmlEvent::Empty(start) => (start, true),
                    XmlEvent::Start(start) => (start, false),
                    _ => unreachable!("matched Start or Empty above"),
                };
                let mark = scope.mark();
                let e = open(src.sub(start)?, &mut scope, &mut attrs, &stack, &mut budget)?;
                if empty {
                    // An empty element closes at once: its declarations go out of scope.
                    scope.leave(mark);
                    attach(&mut stack, &mut root, e);
                } else {
                    stack.push((e, mark));
                }
            }
            XmlEvent::End(_) => {
                let (e, mark) = stack
                    .pop()
                    .ok_or_else(|| XmlError::nwf("unmatched end tag"))?;
                scope.leave(mark);
                attach(&mut stack, &mut root, e);
            }
            XmlEvent::Text(t) => {
                let raw = src.sub(&t)?;
                match stack.last_mut() {
                    Some((e, _)) => e.push_text(unescape(raw, Context::Text)?),
                    None if raw.bytes().all(is_xml_ws) => {}
                    None => return Err(XmlError::nwf("text outside the root element")),
                }
            }
            XmlEvent::CData(c) => {
                let text = unescape(src.sub(&c)?, Context::Cdata)?;
                match stack.last_mut() {
                    Some((e, _)) => e.push_text(text),
                    None => return Err(XmlError::nwf("CDATA outside the root element")),
                }
            }
            XmlEvent::Comment(_) => return Err(XmlError::restricted("comment")),
            XmlEvent::PI(_) | XmlEvent::Decl(_) => {
                return Err(XmlError::restricted("processing instruction"))
            }
            XmlEvent::DocType(_) => return Err(XmlError::restricted("DTD")),
            XmlEvent::Eof => break,
        }
    }
    match (root, stack.is_empty()) {
        (Some(root), true) => Ok(root),
        _ => Err(XmlError::nwf("unclosed element")),
    }
}

fn open<'a>(
    content: &'a str,
    scope: &mut Scope<'a, '_>,
    attrs: &mut RawAttrs<'a>,
    stack: &[(Element, usize)],
    budget: &mut Budget,
) -> Result<Element, XmlError> {
    let qname = read_tag(content, scope, attrs)?;
    let (name, ns) = resolve_name(qname, scope)?;
    if let Some((parent, _)) = stack.last() {
        // The serializer writes `xmlns` wherever the namespace is not the parent's
        // copy; a stanza's root is written once, whatever it declares.
        if !std::ptr::eq(parent.ns(), ns.as_str()) {
            budget.spend(ns.as_str().len() + 10)?;
        }
    }
    let prefixes = attr_prefixes(attrs, scope, budget)?;
    Ok(Element::from_parts(name, ns, owned(attrs), prefixes))
}

fn owned(attrs: &mut RawAttrs<'_>) -> Vec<(String, String)> {
    attrs
        .drain(..)
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect()
}

fn attach(stack: &mut [(Element, usize)], root: &mut Option<Element>, e: Element) {
    match stack.last_mut() {
        Some((parent, _)) => parent.push_child(e),
        None => *root = Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Node};

    const STREAMS: &str = "http://etherx.jabber.org/streams";

    fn stream_bindings() -> Bindings {
        Bindings::new(vec![
            (String::new(), Ns::new("jabber:client")),
            ("stream".to_owned(), Ns::new(STREAMS)),
        ])
    }

    fn parse(xml: &str) -> Result<Element, XmlError> {
        Element::parse(xml.as_bytes(), &Limits::default())
    }

    #[test]
    fn rfc6120_4_8_1_stanza_inherits_stream_default_namespace() {
        let e = build_element(
            b"<message to='a@b'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'><x/></active></message>",
            &stream_bindings(),
            &Limits::default(),
        )
        .unwrap();
        assert!(e.is("message", "jabber:client"));
        assert!(e.has_child("body", "jabber:client"));
        let active = e
            .get_child("active", "http://jabber.org/protocol/chatstates")
            .unwrap();
        assert!(active.has_child("x", "http://jabber.org/protocol/chatstates"));
    }

    #[test]
    fn rfc6120_4_8_5_stream_prefix_resolves_from_header_declarations() {
        let e = build_element(
            b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>",
            &stream_bindings(),
            &Limits::default(),
        )
        .unwrap();
        assert!(e.is("features", STREAMS));
        assert!(e.has_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));
    }

    #[test]
    fn rfc6120_11_2_namespace_declarations_are_not_attributes_but_xml_lang_is() {
        let e = parse(
            "<a xmlns='urn:a' xmlns:p='urn:p' xml:lang='en' p:q='1' r='2'><p:b/><c xmlns=''/></a>",
        )
        .unwrap();
        assert_eq!(
            e.attrs().collect::<Vec<_>>(),
            vec![("xml:lang", "en"), ("p:q", "1"), ("r", "2")]
        );
        assert!(e.has_child("b", "urn:p"));
        assert!(e.has_child("c", ""));
    }

    #[test]
    fn rfc6120_4_9_3_2_undeclared_prefix_is_bad_namespace_prefix() {
        for xml in [
            "<foo:bar/>",
            "<a foo:x='1'/>",
            "<a><b xmlns:foo='urn:f'/><foo:c/></a>",
            "<xmlns:a/>",
        ] {
            assert!(
                matches!(parse(xml), Err(XmlError::BadNamespacePrefix(_))),
                "{xml}"
            );
        }
    }

    #[test]
    fn namespaces_3_illegal_declarations_are_not_well_formed() {
        for xml in [
            "<a xmlns:p=''/>",
            "<a xmlns:xml='urn:x'/>",
            "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
            "<a xmlns:xmlns='urn:x'/>",
            "<a xmlns='http://www.w3.org/2000/xmlns/'/>",
        ] {
            assert!(
                matches!(parse(xml), Err(XmlError::NotWellFormed(_))),
                "{xml}"
            );
        }
        assert!(parse("<a xmlns:xml='http://www.w3.org/XML/1998/namespace'/>").is_ok());
        // Namespaces in XML 1.0 §3: the XML namespace is never a default namespace, and the
        // serializer writes every element with one, so no element may be in it.
        assert!(parse("<xml:a/>").is_err());
        assert!(parse("<a><xml:b/></a>").is_err());
        assert!(parse("<a xml:lang='en'/>").is_ok());
    }

    #[test]
    fn xml_3_1_attribute_syntax() {
        let e = parse("<a b = '1'\tc=\"2\"\n/>").unwrap();
        assert_eq!(e.attrs().collect::<Vec<_>>(), vec![("b", "1"), ("c", "2")]);
        for xml in [
            "<a b='1'c='2'/>",
            "<a b/>",
            "<a b=/>",
            "<a b=1/>",
            "<a b='1/>",
            "<a xmlns='x' xmlns='y'/>",
            "<a xmlns:p='x' xmlns:p='y'/>",
            "<a b='1' b='1'/>",
        ] {
            assert!(
                matches!(parse(xml), Err(XmlError::NotWellFormed(_))),
                "{xml}"
            );
        }
    }

    #[test]
    fn namespaces_6_3_same_expanded_attribute_twice_is_not_well_formed() {
        let err = parse("<a xmlns:p='urn:x' xmlns:q='urn:x' p:k='1' q:k='2'/>").unwrap_err();
        assert!(matches!(err, XmlError::NotWellFormed(_)));
    }

    #[test]
    fn rfc6120_11_4_entities_and_character_references_unescaped_in_text_and_attrs() {
        let e = parse("<a v='&lt;&amp;&#x41;&quot;'>x &gt; y &#233;&apos;</a>").unwrap();
        assert_eq!(e.attr("v"), Some("<&A\""));
        assert_eq!(e.text(), "x > y \u{e9}'");
    }

    #[test]
    fn rfc6120_11_1_cdata_sections_are_allowed_and_merge_with_text() {
        let e = parse("<body>a<![CDATA[<b>&amp;</b>]]>z</body>").unwrap();
        assert_eq!(e.nodes(), &[Node::Text("a<b>&amp;</b>z".into())]);
    }

    #[test]
    fn parse_then_serialize_then_parse_round_trips() {
        let docs = [
            "<message xmlns='jabber:client' to='romeo@example.net' type='chat' xml:lang='en'>\
             <body>Art thou &lt;3 &amp; \u{2603} \u{1F600} &#xD; \"q\" 'a'</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<iq xmlns='jabber:client' type='set' id='1'>\n  <query xmlns='jabber:iq:roster'>\n    \
             <item jid='a@b' name='A &apos;n&apos; &quot;B&quot;&#9;&#10;'><group>G</group></item>\n  </query>\n</iq>",
            "<x xmlns:foo='urn:foo' foo:bar='1' xmlns='urn:x'><y foo:z='2'/><![CDATA[]]]]></x>",
            "<a xmlns=''><b xmlns='urn:b'><c xmlns=''/></b></a>",
        ];
        for doc in docs {
            let first = parse(doc).unwrap();
            let bytes = first.to_bytes_in(None);
            let second = Element::parse(&bytes, &Limits::default()).unwrap();
            assert_eq!(first, second, "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(first.to_string().as_bytes(), bytes.as_slice());
        }
    }

    #[test]
    fn built_element_round_trips_through_parse() {
        let e = Element::new("message", "jabber:client")
            .with_attr("to", "a@b/c")
            .with_attr("xml:lang", "en")
            .with_child(Element::new("body", "jabber:client").with_text("1 < 2 & 'x' \r\n\t"))
            .with_child(Element::new("x", "").with_attr("k", "\t\n\r<>\"'&"));
        assert_eq!(parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn xml_2_11_line_ends_normalized_when_parsing() {
        assert_eq!(parse("<a>x\r\ny\rz</a>").unwrap().text(), "x\ny\nz");
    }

    #[test]
    fn element_parse_accepts_xml_declaration_and_whitespace() {
        let e = parse("<?xml version='1.0' encoding='utf-8'?>\n<a xmlns='urn:a'/>\n").unwrap();
        assert!(e.is("a", "urn:a"));
    }

    #[test]
    fn element_parse_rejects_anything_beside_one_element() {
        for xml in [
            "",
            "   ",
            "text",
            "<a/><b/>",
            "<a/>text",
            "<a>",
            "<a></a",
            "</a>",
            "<![CDATA[x]]>",
        ] {
            assert!(
                matches!(parse(xml), Err(XmlError::NotWellFormed(_))),
                "{xml:?}"
            );
        }
        for xml in [
            "<a/><!-- c -->",
            "<!-- c --><a/>",
            "<a/><?pi?>",
            "<?pi?><a/>",
        ] {
            assert!(
                matches!(parse(xml), Err(XmlError::RestrictedXml(_))),
                "{xml:?}"
            );
        }
    }

    #[test]
    fn rfc6120_11_6_non_utf8_encoding_declaration_is_unsupported_encoding() {
        let err = parse("<?xml version='1.0' encoding='ISO-8859-1'?><a/>").unwrap_err();
        assert!(matches!(err, XmlError::BadEncoding(_)));
    }

    #[test]
    fn rfc6120_13_9_4_element_parse_applies_limits() {
        let limits = Limits {
            max_stanza_bytes: 16,
            max_depth: 2,
            max_attrs: 1,
            ..Limits::default()
        };
        let e = |xml: &str| Element::parse(xml.as_bytes(), &limits);
        assert!(e("<a><b/></a>").is_ok());
        assert!(matches!(
            e("<a>0123456789abcdef</a>"),
            Err(XmlError::PolicyViolation(_))
        ));
        assert!(matches!(e("<a><b><c/>"), Err(XmlError::PolicyViolation(_))));
        assert!(matches!(
            e("<a x='' y=''/>"),
            Err(XmlError::PolicyViolation(_))
        ));
    }
}
