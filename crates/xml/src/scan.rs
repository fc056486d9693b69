//! Byte-level boundary scanner: finds where a complete element ends in input that
//! may stop at any byte, enforcing the limits as it goes so hostile input is refused
//! before it is fully buffered (RFC 6120 §13.9.4). It does not build anything; a
//! complete element's bytes are then handed to the tree builder.

use crate::escape::{is_name_start, is_xml_ws};
use crate::{Limits, XmlError};

/// What a `<` introduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Markup {
    StartTag,
    EndTag,
    Cdata,
    /// `<?xml ` — the XML declaration.
    XmlDecl,
    /// Any other `<?…` processing instruction.
    Pi,
    Comment,
    /// `<!DOCTYPE`, `<!ENTITY` and the other markup declarations.
    Dtd,
}

const CDATA_OPEN: &[u8] = b"<![CDATA[";

/// Classifies the markup at the start of `data` (which begins with `<`).
/// `Ok(None)` means more bytes are needed to tell.
pub(crate) fn classify(data: &[u8]) -> Result<Option<Markup>, XmlError> {
    debug_assert_eq!(data.first(), Some(&b'<'));
    let Some(&second) = data.get(1) else {
        return Ok(None);
    };
    Ok(Some(match second {
        b'/' => Markup::EndTag,
        b'?' => {
            const DECL: &[u8] = b"<?xml";
            if data.len() <= DECL.len() {
                if !DECL.starts_with(data) {
                    return Ok(Some(Markup::Pi));
                }
                return Ok(None);
            }
            if data.starts_with(DECL) && is_xml_ws(data[DECL.len()]) {
                Markup::XmlDecl
            } else {
                Markup::Pi
            }
        }
        b'!' => match data.get(2) {
            None => return Ok(None),
            Some(b'-') => match data.get(3) {
                None => return Ok(None),
                Some(b'-') => Markup::Comment,
                Some(_) => return Err(XmlError::nwf("malformed markup after '<!-'")),
            },
            Some(b'[') => {
                let n = data.len().min(CDATA_OPEN.len());
                if data[..n] != CDATA_OPEN[..n] {
                    return Err(XmlError::nwf("malformed markup after '<!['"));
                }
                if n < CDATA_OPEN.len() {
                    return Ok(None);
                }
                Markup::Cdata
            }
            Some(_) => Markup::Dtd,
        },
        b if is_name_start(b) => Markup::StartTag,
        _ => return Err(XmlError::nwf("'<' not followed by a name")),
    }))
}

/// Turns markup that RFC 6120 §11.1 forbids everywhere into its error.
pub(crate) fn restricted(markup: Markup) -> Option<XmlError> {
    match markup {
        Markup::Comment => Some(XmlError::restricted("comment")),
        Markup::Pi => Some(XmlError::restricted("processing instruction")),
        Markup::Dtd => Some(XmlError::restricted("DTD or markup declaration")),
        Markup::XmlDecl => Some(XmlError::restricted(
            "XML declaration not at the start of the stream",
        )),
        Markup::StartTag | Markup::EndTag | Markup::Cdata => None,
    }
}

/// Finds the end of a complete item (a `?>` or `>`-terminated declaration or end tag)
/// within the stanza size limit: `Ok(Some(end))` with `end` just past the terminator.
pub(crate) fn find_terminator(
    data: &[u8],
    from: usize,
    term: &[u8],
    limits: &Limits,
) -> Result<Option<usize>, XmlError> {
    let window = &data[..data.len().min(limits.max_stanza_bytes)];
    if window.len() > from {
        if let Some(i) = memchr::memmem::find(&window[from..], term) {
            return Ok(Some(from + i + term.len()));
        }
    }
    if data.len() > limits.max_stanza_bytes {
        return Err(XmlError::policy("element exceeds the size limit"));
    }
    Ok(None)
}

/// Which quote, if any, the scanner is inside within a start tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    Outside,
    Inside(u8),
}

/// Where inside an element the scanner stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the `<` at `pos`, waiting to learn what it opens.
    Markup,
    StartTag {
        quote: Quote,
        attrs: usize,
    },
    /// In an end tag whose name starts at `name`.
    EndTag {
        name: usize,
    },
    Cdata,
    Text,
}

/// What the caller wants the scanner to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Goal {
    /// The end of the first start tag (a stream header).
    StartTag,
    /// The end of the whole element (a stanza).
    Element,
}

/// The name at the start of `tag` (after `<` or `</`): up to whitespace, `/` or `>`.
fn tag_name(tag: &[u8]) -> &[u8] {
    let end = tag
        .iter()
        .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(tag.len());
    &tag[..end]
}

/// A finished scan: the element (or tag) occupies `data[..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub end: usize,
    pub self_closing: bool,
}

/// Resumable scan over the bytes of one top-level element; `pos` is the offset of
/// the first byte not yet examined, relative to the element's `<`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElementScanner {
    goal: Goal,
    state: State,
    pos: usize,
    /// Where the name of each open element starts (offsets into the element's bytes), so
    /// that an end tag naming another element is refused when it is read (RFC 6120
    /// §4.9.3.13, XML 1.0 [GIMatch]) rather than taken for some later one's, which left a
    /// client's `<a><b></a>` waiting for more input.
    open: Vec<usize>,
}

impl ElementScanner {
    pub(crate) fn new(goal: Goal) -> Self {
        ElementScanner {
            goal,
            state: State::Markup,
            pos: 0,
            open: Vec::new(),
        }
    }

    /// Continues scanning `data`, which starts at the element's `<` and holds every
    /// byte seen so far (earlier calls may have seen a prefix of it).
    pub(crate) fn scan(&mut self, data: &[u8], limits: &Limits) -> Result<Option<Found>, XmlError> {
        // Looking no further than the limit bounds the work on a flood, and a stanza
        // still open at the limit is refused right away.
        let window = &data[..data.len().min(limits.max_stanza_bytes)];
        match self.scan_window(window, limits)? {
            Some(found) => Ok(Some(found)),
            None if data.len() > limits.max_stanza_bytes => Err(XmlError::policy(format!(
                "element exceeds {} bytes",
                limits.max_stanza_bytes
            ))),
            None => Ok(None),
        }
    }

    fn scan_window(&mut self, w: &[u8], limits: &Limits) -> Result<Option<Found>, XmlError> {
        loop {
            match self.state {
                State::Markup => {
                    let Some(markup) = classify(&w[self.pos..])? else {
                        return Ok(None);
                    };
                    if let Some(err) = restricted(markup) {
                        return Err(err);
                    }
                    match markup {
                        Markup::StartTag => {
                            self.open.push(self.pos + 1);
                            if self.open.len() > limits.max_depth {
                                return Err(XmlError::policy(format!(
                                    "element nesting exceeds depth {}",
                                    limits.max_depth
                                )));
                            }
                            self.state = State::StartTag {
                                quote: Quote::Outside,
                                attrs: 0,
                            };
                            self.pos += 1;
                        }
                        Markup::EndTag if !self.open.is_empty() => {
                            self.state = State::EndTag { name: self.pos + 2 };
                            self.pos += 2;
                        }
                        Markup::Cdata if !self.open.is_empty() => {
                            self.state = State::Cdata;
                            self.pos += CDATA_OPEN.len();
                        }
                        _ => return Err(XmlError::nwf("expected a start tag")),
                    }
                }
                State::StartTag { quote, attrs } => {
                    if let Quote::Inside(q) = quote {
                        match memchr::memchr(q, &w[self.pos..]) {
                            Some(i) => {
                                self.pos += i + 1;
                                self.state = State::StartTag {
                                    quote: Quote::Outside,
                                    attrs,
                                };
                            }
                            None => {
                                self.pos = w.len();
                                return Ok(None);
                            }
                        }
                        continue;
                    }
                    let rest = &w[self.pos..];
                    let Some(i) = rest
                        .iter()
                        .position(|&b| matches!(b, b'\'' | b'"' | b'>' | b'<'))
                    else {
                        self.pos = w.len();
                        return Ok(None);
                    };
                    let at = self.pos + i;
                    self.pos = at + 1;
                    match w[at] {
                        b'>' => {
                            // The tag began with `<` and a name, so `at - 1` is inside it.
                            let self_closing = w[at - 1] == b'/';
                            if self_closing {
                                self.open.pop();
                            }
                            if self.goal == Goal::StartTag || self.open.is_empty() {
                                return Ok(Some(Found {
                                    end: self.pos,
                                    self_closing,
                                }));
                            }
                            self.state = State::Text;
                        }
                        b'<' => return Err(XmlError::nwf("'<' inside a tag")),
                        q => {
                            let attrs = attrs + 1;
                            if attrs > limits.max_attrs {
                                return Err(XmlError::policy(format!(
                                    "more than {} attributes on one element",
                                    limits.max_attrs
                                )));
                            }
                            self.state = State::StartTag {
                                quote: Quote::Inside(q),
                                attrs,
                            };
                        }
                    }
                }
                State::EndTag { name } => {
                    let Some(i) = memchr::memchr(b'>', &w[self.pos..]) else {
                        self.pos = w.len();
                        return Ok(None);
                    };
                    self.pos += i + 1;
                    // Entered only with an element open (see `Markup::EndTag` above).
                    let opened = self.open.pop().unwrap_or(1);
                    if tag_name(&w[name..]) != tag_name(&w[opened..]) {
                        return Err(XmlError::nwf("an end tag does not match its start tag"));
                    }
                    if self.open.is_empty() {
                        return Ok(Some(Found {
                            end: self.pos,
                            self_closing: false,
                        }));
                    }
                    self.state = State::Text;
                }
                State::Cdata => match memchr::memmem::find(&w[self.pos..], b"]]>") {
                    Some(i) => {
                        self.pos += i + 3;
                        self.state = State::Text;
                    }
                    None => {
                        // Keep the last two bytes: they may begin a `]]>` split across feeds.
                        self.pos = self.pos.max(w.len().saturating_sub(2));
                        return Ok(None);
                    }
                },
                State::Text => match memchr::memchr(b'<', &w[self.pos..]) {
                    Some(i) => {
                        self.pos += i;
                        self.state = State::Markup;
                    }
                    None => {
                        self.pos = w.len();
                        return Ok(None);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(xml: &[u8], limits: &Limits) -> Result<Option<Found>, XmlError> {
        ElementScanner::new(Goal::Element).scan(xml, limits)
    }

    fn scan_bytewise(xml: &[u8], limits: &Limits) -> Result<Option<Found>, XmlError> {
        let mut s = ElementScanner::new(Goal::Element);
        for n in 1..=xml.len() {
            if let Some(f) = s.scan(&xml[..n], limits)? {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    #[test]
    fn scanner_finds_element_end_despite_quotes_and_cdata() {
        let xml = b"<a x='>' y=\"/>\"><b/><![CDATA[</a>]]]]><c>t</c></a>tail";
        let expect = Some(Found {
            end: xml.len() - 4,
            self_closing: false,
        });
        assert_eq!(scan_all(xml, &Limits::default()).unwrap(), expect);
        assert_eq!(scan_bytewise(xml, &Limits::default()).unwrap(), expect);
    }

    #[test]
    fn scanner_header_goal_stops_at_first_tag() {
        let xml = b"<stream:stream to='a>b'><message>";
        let found = ElementScanner::new(Goal::StartTag)
            .scan(xml, &Limits::default())
            .unwrap();
        assert_eq!(
            found,
            Some(Found {
                end: 24,
                self_closing: false
            })
        );
    }

    #[test]
    fn rfc6120_13_9_4_scanner_refuses_oversize_before_end() {
        let limits = Limits {
            max_stanza_bytes: 16,
            ..Limits::default()
        };
        assert!(
            scan_all(b"<a>0123456789</a>", &limits).unwrap_err()
                == XmlError::policy("element exceeds 16 bytes")
        );
        assert!(scan_all(b"<a>012345678</a>", &limits).unwrap().is_some());
        // Incomplete, but already over the limit: refused without waiting for the end.
        assert!(matches!(
            scan_all(b"<a>0123456789abcdef", &limits),
            Err(XmlError::PolicyViolation(_))
        ));
    }

    #[test]
    fn rfc6120_11_1_scanner_rejects_restricted_markup_inside_elements() {
        for xml in [
            &b"<a><!-- x --></a>"[..],
            b"<a><?pi x?></a>",
            b"<a><!DOCTYPE a></a>",
        ] {
            assert!(matches!(
                scan_bytewise(xml, &Limits::default()),
                Err(XmlError::RestrictedXml(_))
            ));
        }
    }

    #[test]
    fn classify_waits_for_enough_bytes() {
        assert_eq!(classify(b"<").unwrap(), None);
        assert_eq!(classify(b"<?xm").unwrap(), None);
        assert_eq!(classify(b"<?xml").unwrap(), None);
        assert_eq!(classify(b"<?xml ").unwrap(), Some(Markup::XmlDecl));
        assert_eq!(classify(b"<?xml-stylesheet").unwrap(), Some(Markup::Pi));
        assert_eq!(classify(b"<?p").unwrap(), Some(Markup::Pi));
        assert_eq!(classify(b"<![CDA").unwrap(), None);
        assert_eq!(classify(b"<![CDATA[").unwrap(), Some(Markup::Cdata));
        assert!(classify(b"<![CDX").is_err());
        assert_eq!(classify(b"<!-").unwrap(), None);
        assert_eq!(classify(b"<!--").unwrap(), Some(Markup::Comment));
        assert_eq!(classify(b"<!D").unwrap(), Some(Markup::Dtd));
        assert!(matches!(classify(b"<>"), Err(XmlError::NotWellFormed(_))));
        assert!(matches!(classify(b"< a"), Err(XmlError::NotWellFormed(_))));
    }
}
