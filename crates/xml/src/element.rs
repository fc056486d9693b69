//! The element tree stanzas are parsed into and built from, with its serializer.

use std::borrow::Cow;
use std::fmt;

use crate::escape::{write_attr, write_text};
use crate::scope::Ns;
use crate::{Limits, XmlError};

/// A child of an element: a nested element or a run of character data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, already unescaped; adjacent runs are always merged into one.
    Text(String),
}

/// An XML element with its namespace resolved: names are local, prefixes are gone
/// (except in attribute names, which keep the form they were written in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: Cow<'static, str>,
    /// Shared with the other elements of a parsed stanza in the same namespace.
    ns: Ns,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// Prefix bindings that prefixed attributes (other than `xml:`) depend on, so the
    /// element still means the same thing when serialized away from its ancestors.
    prefixes: Vec<(String, Ns)>,
}

impl Element {
    /// Creates an empty element named `name` in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Element {
        Element {
            name: Cow::Owned(name.into()),
            ns: Ns::new(&ns.into()),
            attrs: Vec::new(),
            children: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder form of [`Element::push_child`].
    pub fn with_child(mut self, child: Element) -> Self {
        self.push_child(child);
        self
    }

    /// Builder form of [`Element::push_text`].
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace URI (empty when the element is in no namespace).
    pub fn ns(&self) -> &str {
        self.ns.as_str()
    }

    /// Whether this element has local name `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns.as_str() == ns
    }

    /// The value of the attribute written as `name` (e.g. `"type"` or `"xml:lang"`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an attribute, replacing its value in place if it exists so order is kept.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((name.to_owned(), value)),
        }
    }

    /// Moves this element and every descendant in namespace `from` to namespace `to`: a
    /// stanza read on a stream whose content namespace is not `jabber:client` (a
    /// component's `jabber:component:accept`, a server's `jabber:server`) becomes the same
    /// stanza in the namespace the server routes.
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if self.ns.as_str() == from {
            self.ns = Ns::new(to);
        }
        for child in &mut self.children {
            if let Node::Element(e) = child {
                e.rename_ns(from, to);
            }
        }
    }

    /// Removes an attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }

    /// Attributes in document order (namespace declarations are not attributes).
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All children, elements and text, in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Element children only, in document order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first element child.
    pub fn first_child(&self) -> Option<&Element> {
        self.children().next()
    }

    /// The first element child named `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|e| e.is(name, ns))
    }

    /// Mutable form of [`Element::get_child`].
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(name, ns) => Some(e),
            _ => None,
        })
    }

    /// Whether an element child named `name` in namespace `ns` exists.
    pub fn has_child(&self, name: &str, ns: &str) -> bool {
        self.get_child(name, ns).is_some()
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        // Most elements have one child: the first gets a slot of its own instead of
        // the four a `Vec` starts with (a Node is 128 bytes, so a deep or wide stanza
        // of nested empty elements cost 512 bytes of memory per 7 input bytes).
        if self.children.capacity() == 0 {
            self.children.reserve_exact(1);
        }
        self.children.push(Node::Element(child));
    }

    /// Appends character data, merging it into a directly preceding text node so the
    /// tree has one shape however the text was split; empty text adds nothing.
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        match self.children.last_mut() {
            Some(Node::Text(t)) => t.push_str(&text),
            _ => {
                if self.children.capacity() == 0 {
                    self.children.reserve_exact(1);
                }
                self.children.push(Node::Text(text));
            }
        }
    }

    /// Removes and returns the first element child named `name` in namespace `ns`.
    pub fn remove_child(&mut self, name: &str, ns: &str) -> Option<Element> {
        let i = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(name, ns)))?;
        match self.children.remove(i) {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    /// The concatenation of the direct text children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Serialize; emits xmlns='…' only where the namespace differs from `parent_ns`.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: Option<&str>) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        let ns = self.ns.as_str();
        // A child inherits its parent's copy of the namespace: compared by address
        // first, it costs nothing however long the namespace is.
        if !parent_ns.is_some_and(|p| Ns::same(p, ns)) {
            out.extend_from_slice(b" xmlns='");
            write_attr(out, ns);
            out.push(b'\'');
        }
        for (prefix, uri) in &self.prefixes {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(b"='");
            write_attr(out, uri.as_str());
            out.push(b'\'');
        }
        for (k, v) in &self.attrs {
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"='");
            write_attr(out, v);
            out.push(b'\'');
        }
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_to(out, Some(ns)),
                Node::Text(t) => write_text(out, t),
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serializes into a fresh buffer; see [`Element::write_to`].
    pub fn to_bytes_in(&self, parent_ns: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_to(&mut out, parent_ns);
        out
    }

    /// Parse one standalone element (a whole document), under the same restrictions and limits as the stream parser.
    ///
    /// An XML declaration and surrounding whitespace are allowed; anything else
    /// beside the one element is refused.
    pub fn parse(xml: &[u8], limits: &Limits) -> Result<Element, XmlError> {
        crate::stream::parse_document(xml, limits)
    }

    pub(crate) fn from_parts(
        name: &str,
        ns: Ns,
        attrs: Vec<(String, String)>,
        prefixes: Vec<(String, Ns)>,
    ) -> Element {
        Element {
            name: intern(name),
            ns,
            attrs,
            children: Vec::new(),
            prefixes,
        }
    }
}

/// Expands to a `match` returning the static copy of `$s` if it is one of the listed
/// strings; `match` on string literals compiles to length dispatch plus one compare.
macro_rules! known {
    ($s:expr, [$($lit:literal),* $(,)?]) => {
        match $s {
            $($lit => Some($lit),)*
            _ => None,
        }
    };
}

/// Shares the names nearly every stanza uses instead of allocating a copy per
/// element; parsing and cloning stanzas both get cheaper.
fn intern(s: &str) -> Cow<'static, str> {
    match known(s) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(s.to_owned()),
    }
}

/// The static copy of a name or namespace nearly every stanza uses, if `s` is one.
pub(crate) fn known(s: &str) -> Option<&'static str> {
    known!(
        s,
        [
            "",
            "jabber:client",
            "jabber:server",
            "http://etherx.jabber.org/streams",
            "urn:ietf:params:xml:ns:xmpp-stanzas",
            "urn:ietf:params:xml:ns:xmpp-streams",
            "urn:ietf:params:xml:ns:xmpp-sasl",
            "urn:ietf:params:xml:ns:xmpp-tls",
            "urn:ietf:params:xml:ns:xmpp-bind",
            "urn:ietf:params:xml:ns:xmpp-session",
            "urn:ietf:params:xml:ns:xmpp-framing",
            "jabber:iq:roster",
            "jabber:x:data",
            "vcard-temp",
            "http://jabber.org/protocol/chatstates",
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/muc#user",
            "urn:xmpp:receipts",
            "urn:xmpp:ping",
            "urn:xmpp:delay",
            "urn:xmpp:sm:3",
            "urn:xmpp:carbons:2",
            "urn:xmpp:forward:0",
            "urn:xmpp:mam:2",
            "urn:xmpp:sid:0",
            "urn:xmpp:hints",
            "urn:xmpp:chat-markers:0",
            "message",
            "presence",
            "iq",
            "body",
            "subject",
            "thread",
            "show",
            "status",
            "priority",
            "error",
            "query",
            "item",
            "group",
            "active",
            "composing",
            "paused",
            "inactive",
            "gone",
            "request",
            "received",
            "ping",
            "c",
            "x",
            "delay",
            "bind",
            "resource",
            "jid",
            "session",
            "features",
            "text",
            "r",
            "a",
            "enable",
            "enabled",
            "origin-id",
            "stanza-id",
            "store",
            "no-store",
            "markable",
            "displayed",
        ]
    )
}

impl fmt::Display for Element {
    /// Writes the element with its `xmlns`, as it would stand on its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes_in(None);
        // Every piece written came from a `String`, so this cannot fail.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "jabber:client";

    fn sample() -> Element {
        Element::new("message", CLIENT)
            .with_attr("to", "juliet@example.com")
            .with_attr("type", "chat")
            .with_child(Element::new("body", CLIENT).with_text("Wherefore"))
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            ))
    }

    #[test]
    fn element_accessors_report_name_ns_and_attrs() {
        let m = sample();
        assert_eq!(m.name(), "message");
        assert_eq!(m.ns(), CLIENT);
        assert!(m.is("message", CLIENT));
        assert!(!m.is("message", "jabber:server"));
        assert_eq!(m.attr("to"), Some("juliet@example.com"));
        assert_eq!(m.attr("from"), None);
        assert_eq!(
            m.attrs().collect::<Vec<_>>(),
            vec![("to", "juliet@example.com"), ("type", "chat")]
        );
    }

    #[test]
    fn rename_ns_moves_the_stanza_and_its_children_in_that_namespace_only() {
        let mut m = Element::new("message", "jabber:component:accept")
            .with_child(Element::new("body", "jabber:component:accept").with_text("hi"))
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            ));
        m.rename_ns("jabber:component:accept", CLIENT);
        assert!(m.is("message", CLIENT));
        assert!(m.get_child("body", CLIENT).is_some());
        assert!(m
            .get_child("active", "http://jabber.org/protocol/chatstates")
            .is_some());
    }

    #[test]
    fn element_set_attr_replaces_in_place_and_remove_attr_returns_value() {
        let mut m = sample();
        m.set_attr("to", "romeo@example.net");
        m.set_attr("id", "x1");
        assert_eq!(
            m.attrs().collect::<Vec<_>>(),
            vec![("to", "romeo@example.net"), ("type", "chat"), ("id", "x1")]
        );
        assert_eq!(m.remove_attr("type").as_deref(), Some("chat"));
        assert_eq!(m.remove_attr("type"), None);
        assert_eq!(m.attrs().count(), 2);
        let replaced = Element::new("a", "")
            .with_attr("k", "1")
            .with_attr("k", "2");
        assert_eq!(replaced.attrs().collect::<Vec<_>>(), vec![("k", "2")]);
    }

    #[test]
    fn element_child_navigation() {
        let mut m = sample().with_text("tail");
        assert_eq!(m.children().count(), 2);
        assert_eq!(m.nodes().len(), 3);
        assert_eq!(m.first_child().map(Element::name), Some("body"));
        assert!(m.has_child("active", "http://jabber.org/protocol/chatstates"));
        assert!(!m.has_child("active", CLIENT));
        assert_eq!(
            m.get_child("body", CLIENT).map(Element::text).as_deref(),
            Some("Wherefore")
        );
        m.get_child_mut("body", CLIENT)
            .unwrap()
            .push_text(" art thou");
        assert_eq!(
            m.get_child("body", CLIENT).unwrap().text(),
            "Wherefore art thou"
        );
        let body = m.remove_child("body", CLIENT).unwrap();
        assert_eq!(body.text(), "Wherefore art thou");
        assert!(m.remove_child("body", CLIENT).is_none());
        assert_eq!(m.first_child().map(Element::name), Some("active"));
    }

    #[test]
    fn element_text_concatenates_direct_text_and_merges_adjacent_runs() {
        let e = Element::new("a", "")
            .with_text("x")
            .with_text("")
            .with_text("y")
            .with_child(Element::new("b", "").with_text("ignored"))
            .with_text("z");
        assert_eq!(e.text(), "xyz");
        assert_eq!(e.nodes().len(), 3);
        assert_eq!(e.nodes()[0], Node::Text("xy".into()));
    }

    #[test]
    fn element_serializes_xmlns_only_where_namespace_changes() {
        let m = sample();
        assert_eq!(
            String::from_utf8(m.to_bytes_in(Some(CLIENT))).unwrap(),
            "<message to='juliet@example.com' type='chat'><body>Wherefore</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        );
        assert_eq!(
            m.to_string(),
            "<message xmlns='jabber:client' to='juliet@example.com' type='chat'><body>Wherefore</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        );
        let mut out = b"prefix".to_vec();
        Element::new("x", "").write_to(&mut out, Some(""));
        assert_eq!(out, b"prefix<x/>");
        assert_eq!(Element::new("x", "").to_string(), "<x xmlns=''/>");
    }

    #[test]
    fn xml_2_4_serialization_escapes_text_and_attribute_values() {
        let e = Element::new("body", CLIENT)
            .with_attr("a", "'\"&<>")
            .with_text("1 < 2 && 3 > 2 ]]> '\"");
        assert_eq!(
            e.to_bytes_in(Some(CLIENT)),
            b"<body a='&apos;&quot;&amp;&lt;>'>1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt; '\"</body>"
        );
    }
}
