//! Namespace prefix resolution (Namespaces in XML 1.0 §5; RFC 6120 §4.9.3.2) in
//! constant time per name, under a cap on the declarations in scope, and the shared
//! namespace strings elements point at.
//!
//! Why: resolving a prefix by scanning the declarations in scope made every name cost
//! O(declarations), so one stanza nesting 32 elements of 64 declarations each (2 048
//! bindings) and then using a prefix thousands of times cost O(n²). Here a small
//! scope is scanned (it fits a cache line or two), a larger one gets a hash index
//! from prefix to its innermost declaration, and each declaration remembers the one
//! it shadows so leaving an element restores the index in O(1) per declaration.
//!
//! A namespace URI is allocated once per declaration and shared (by reference count)
//! by every element in it: copying it into each element let a 120 KiB URI inherited
//! by 30 000 empty children cost gigabytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::XmlError;

/// Up to this many declarations are scanned; beyond it the hash index is used.
const LINEAR: usize = 8;

/// Prefix equality without a `memcmp` call for the empty prefix, which nearly every
/// element name has (the call showed up as 10% of the cost of many small elements).
fn same_prefix(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A namespace URI: a static string for the well-known ones, else one shared copy.
#[derive(Clone)]
pub(crate) enum Ns {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Ns {
    pub(crate) fn new(s: &str) -> Ns {
        match crate::element::known(s) {
            Some(s) => Ns::Static(s),
            None => Ns::Shared(Arc::from(s)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Ns::Static(s) => s,
            Ns::Shared(s) => s,
        }
    }

    /// Equality that is O(1) when both point at one copy, as a child that inherits
    /// its namespace does, and a byte compare otherwise.
    pub(crate) fn same(a: &str, b: &str) -> bool {
        std::ptr::eq(a, b) || a == b
    }
}

impl PartialEq for Ns {
    fn eq(&self, other: &Ns) -> bool {
        Ns::same(self.as_str(), other.as_str())
    }
}

impl Eq for Ns {}

impl fmt::Debug for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A stream header's declarations, which every stanza of the stream inherits.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    list: Vec<(String, Ns)>,
    /// Built when the list is too long to scan; boxed, because an idle parser
    /// holds one of these and most streams declare two prefixes.
    #[allow(clippy::box_collection)] // 8 bytes instead of 48 in every idle parser
    index: Option<Box<HashMap<String, usize>>>,
}

impl Bindings {
    pub(crate) fn new(list: Vec<(String, Ns)>) -> Bindings {
        let index = (list.len() > LINEAR).then(|| {
            Box::new(
                list.iter()
                    .enumerate()
                    .map(|(i, (p, _))| (p.clone(), i))
                    .collect(),
            )
        });
        Bindings { list, index }
    }

    pub(crate) fn get(&self, prefix: &str) -> Option<&Ns> {
        if let Some(index) = &self.index {
            return index.get(prefix).map(|&i| &self.list[i].1);
        }
        self.list
            .iter()
            .find(|(p, _)| same_prefix(p, prefix))
            .map(|(_, u)| u)
    }

    pub(crate) fn default_ns(&self) -> Option<&Ns> {
        self.get("")
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// One declaration of an open element.
struct Decl<'a> {
    prefix: &'a str,
    uri: Ns,
    /// The index of the declaration of the same prefix this one shadows, if any.
    shadows: Option<usize>,
}

/// The element-local declarations of a stanza, layered over the inherited ones.
pub(crate) struct Scope<'a, 'b> {
    base: &'b Bindings,
    /// Declarations of the open elements, outermost first.
    local: Vec<Decl<'a>>,
    /// Prefix → index in `local` of its innermost declaration, kept only while
    /// `indexed` (once `local` outgrew a scan during this stanza).
    index: HashMap<&'a str, usize>,
    indexed: bool,
    /// Most declarations in scope at once, `Limits::max_namespace_declarations`.
    cap: usize,
}

/// The namespace the `xml` prefix is bound to by definition.
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

impl<'a, 'b> Scope<'a, 'b> {
    pub(crate) fn new(base: &'b Bindings, cap: usize) -> Self {
        Scope {
            base,
            local: Vec::new(),
            index: HashMap::new(),
            indexed: false,
            cap,
        }
    }

    /// A mark to [`Scope::leave`] back to, taken before an element's declarations.
    pub(crate) fn mark(&self) -> usize {
        self.local.len()
    }

    /// Whether `prefix` was declared on the element whose declarations began at `mark`.
    pub(crate) fn declared_since(&self, mark: usize, prefix: &str) -> bool {
        self.local[mark..]
            .iter()
            .any(|d| same_prefix(d.prefix, prefix))
    }

    /// Declares `prefix` for the element being opened. Refuses a declaration past the
    /// cap with `<policy-violation/>` (RFC 6120 §4.9.3.14): the XML is well-formed, it
    /// only exceeds what this server accepts.
    pub(crate) fn declare(&mut self, prefix: &'a str, uri: &str) -> Result<(), XmlError> {
        if self.local.len() + self.base.len() >= self.cap {
            return Err(XmlError::policy(format!(
                "more than {} namespace declarations in scope",
                self.cap
            )));
        }
        let at = self.local.len();
        let shadows = if self.indexed {
            self.index.insert(prefix, at)
        } else {
            self.local
                .iter()
                .rposition(|d| same_prefix(d.prefix, prefix))
        };
        self.local.push(Decl {
            prefix,
            uri: Ns::new(uri),
            shadows,
        });
        if !self.indexed && self.local.len() > LINEAR {
            self.indexed = true;
            for (i, d) in self.local.iter().enumerate() {
                self.index.insert(d.prefix, i);
            }
        }
        Ok(())
    }

    /// Drops the declarations made since `mark` (the element closed).
    pub(crate) fn leave(&mut self, mark: usize) {
        while self.local.len() > mark {
            let Some(d) = self.local.pop() else { break };
            if self.indexed {
                match d.shadows {
                    Some(i) => self.index.insert(d.prefix, i),
                    None => self.index.remove(d.prefix),
                };
            }
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&Ns> {
        let local = if self.indexed {
            self.index.get(prefix).map(|&i| &self.local[i].uri)
        } else {
            self.local
                .iter()
                .rev()
                .find(|d| same_prefix(d.prefix, prefix))
                .map(|d| &d.uri)
        };
        local.or_else(|| self.base.get(prefix))
    }

    /// The namespace `prefix` stands for; `xml` is bound by definition and an
    /// unprefixed name with no declaration in force is in no namespace.
    pub(crate) fn resolve(&self, prefix: &str) -> Result<Ns, XmlError> {
        if prefix == "xml" {
            return Ok(Ns::Static(XML_NS));
        }
        match self.lookup(prefix) {
            Some(ns) => Ok(ns.clone()),
            None if prefix.is_empty() => Ok(Ns::Static("")),
            None => Err(XmlError::BadNamespacePrefix(prefix.to_owned())),
        }
    }

    /// The element-local declarations, for a stream header.
    pub(crate) fn into_bindings(self) -> Bindings {
        Bindings::new(
            self.local
                .into_iter()
                .map(|d| (d.prefix.to_owned(), d.uri))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_5_inner_declaration_shadows_and_leaving_restores() {
        let base = Bindings::new(vec![(String::new(), Ns::new("jabber:client"))]);
        let mut s = Scope::new(&base, 1_000);
        assert_eq!(s.resolve("").unwrap().as_str(), "jabber:client");
        // Enough declarations to switch to the index, then shadow and unwind.
        let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        let outer = s.mark();
        for n in &names {
            s.declare(n, &format!("urn:{n}")).unwrap();
        }
        let inner = s.mark();
        s.declare("p3", "urn:inner").unwrap();
        s.declare("", "urn:default").unwrap();
        assert_eq!(s.resolve("p3").unwrap().as_str(), "urn:inner");
        assert_eq!(s.resolve("").unwrap().as_str(), "urn:default");
        s.leave(inner);
        assert_eq!(s.resolve("p3").unwrap().as_str(), "urn:p3");
        assert_eq!(s.resolve("").unwrap().as_str(), "jabber:client");
        s.leave(outer);
        assert!(matches!(
            s.resolve("p3"),
            Err(XmlError::BadNamespacePrefix(_))
        ));
        assert_eq!(s.resolve("xml").unwrap().as_str(), XML_NS);
    }

    #[test]
    fn rfc6120_4_9_3_14_declarations_past_the_cap_are_policy_violation() {
        let base = Bindings::new(vec![(String::new(), Ns::new("jabber:client"))]);
        let mut s = Scope::new(&base, 4);
        for p in ["a", "b", "c"] {
            s.declare(p, "urn:x").unwrap();
        }
        assert!(matches!(
            s.declare("d", "urn:x"),
            Err(XmlError::PolicyViolation(_))
        ));
    }

    #[test]
    fn inherited_namespace_is_one_shared_copy() {
        let base = Bindings::default();
        let mut s = Scope::new(&base, 10);
        s.declare("", "urn:some-long-namespace").unwrap();
        let (a, b) = (s.resolve("").unwrap(), s.resolve("").unwrap());
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
    }
}
