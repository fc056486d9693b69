//! The incremental stream parser (RFC 6120 §4, §11; RFC 7395 framing).
//!
//! Bytes are buffered until the scanner sees a complete top-level item; only then is
//! it parsed, so each item is parsed exactly once however the input was split.

use crate::escape::is_xml_ws;
use crate::scan::{classify, find_terminator, restricted, ElementScanner, Goal, Markup};
use crate::tree::{build_element, parse_header, Bindings};
use crate::{Element, Limits, XmlError};

/// The opening `<stream:stream …>` tag (RFC 6120 §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name (`stream` for a well-behaved peer).
    pub name: String,
    /// Resolved namespace of the element (`http://etherx.jabber.org/streams`).
    pub ns: String,
    /// The `xmlns='…'` value, i.e. the content namespace (`jabber:client`, `jabber:server`).
    pub default_ns: Option<String>,
    /// Attributes other than namespace declarations, prefixed ones as written (`xml:lang`).
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    /// The value of the attribute written as `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One parsed top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A stream header (TCP framing only).
    StreamOpen(StreamHeader),
    /// A complete child of the stream (or, with RFC 7395 framing, any top-level element).
    Stanza(Element),
    /// `</stream:stream>` (TCP framing only).
    StreamClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// RFC 6120 TCP binding: one long-lived `<stream:stream>` document.
    Tcp,
    /// RFC 7395 WebSocket binding: a sequence of standalone elements.
    WebSocket,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a stream header; an XML declaration may still come first.
    AwaitHeader { decl_allowed: bool },
    /// Inside a stream. Stanzas inherit `bindings`; `close` is the header's written
    /// name, which the closing tag must repeat.
    Open { bindings: Bindings, close: String },
    /// RFC 7395: every top-level element is a stanza with no inherited bindings.
    Framed,
    /// The stream was closed; later input is discarded.
    Closed,
    /// An error was reported; it is repeated forever.
    Failed(XmlError),
}

/// The top-level item whose bytes are being collected, starting at `buf[pos]`.
#[derive(Debug)]
enum Pending {
    Idle,
    Decl,
    Header(ElementScanner),
    Stanza(ElementScanner),
    Close,
}

/// Incremental, allocation-frugal XMPP stream parser; see the crate documentation.
#[derive(Debug)]
pub struct StreamParser {
    limits: Limits,
    framing: Framing,
    phase: Phase,
    pending: Pending,
    /// Input not yet consumed starts at `pos`; the bytes before it are dead and are
    /// dropped on the next `feed` rather than shifted after every event.
    buf: Vec<u8>,
    pos: usize,
}

impl StreamParser {
    /// TCP streams (RFC 6120 §4): an optional XML declaration and a `<stream:stream>`
    /// header, then stanzas at depth 1, then `</stream:stream>`.
    pub fn new(limits: Limits) -> Self {
        Self::with_framing(limits, Framing::Tcp)
    }

    /// RFC 7395 WebSocket framing: every top-level element (including `<open/>` and
    /// `<close/>`) is returned as [`Event::Stanza`], with no inherited namespaces; there
    /// are no `StreamOpen`/`StreamClose` events, and an XML declaration is refused.
    pub fn new_framed(limits: Limits) -> Self {
        Self::with_framing(limits, Framing::WebSocket)
    }

    fn with_framing(limits: Limits, framing: Framing) -> Self {
        StreamParser {
            limits,
            framing,
            phase: initial_phase(framing),
            pending: Pending::Idle,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Appends input. Input after the stream closed or failed is dropped unread.
    pub fn feed(&mut self, data: &[u8]) {
        if matches!(self.phase, Phase::Closed | Phase::Failed(_)) {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next event: `Ok(None)` means more input is needed. After an `Err` the parser
    /// is poisoned: its buffer is released and it keeps returning the same error.
    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        let result = self.step();
        if let Err(e) = &result {
            self.phase = Phase::Failed(e.clone());
            self.pending = Pending::Idle;
            self.buf = Vec::new();
            self.pos = 0;
        }
        if self.pos == self.buf.len() {
            // An idle connection should own no buffer at all (see the crate docs).
            self.buf = Vec::new();
            self.pos = 0;
        }
        result
    }

    /// RFC 6120 §4.3.3 stream restart (after SASL success): expect a new header but
    /// keep buffered bytes, which may already hold the peer's pipelined header.
    /// A failed parser stays failed.
    pub fn restart(&mut self) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        self.pending = Pending::Idle;
        self.phase = initial_phase(self.framing);
    }

    /// RFC 6120 §5.4.3.3 (after STARTTLS): discard everything buffered, since plaintext
    /// injected behind `<starttls/>` must never be processed, and expect a new header.
    /// This also clears a failure.
    pub fn reset(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
        self.pending = Pending::Idle;
        self.phase = initial_phase(self.framing);
    }

    /// Bytes fed but not yet consumed by an event.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn step(&mut self) -> Result<Option<Event>, XmlError> {
        loop {
            match &mut self.pending {
                Pending::Idle => {
                    match &self.phase {
                        Phase::Failed(e) => return Err(e.clone()),
                        Phase::Closed => {
                            self.pos = self.buf.len();
                            return Ok(None);
                        }
                        _ => {}
                    }
                    // Whitespace between stanzas (keepalives) is insignificant.
                    let ws = self.buf[self.pos..]
                        .iter()
                        .take_while(|&&b| is_xml_ws(b))
                        .count();
                    self.pos += ws;
                    let data = &self.buf[self.pos..];
                    let Some(&first) = data.first() else {
                        return Ok(None);
                    };
                    if first != b'<' {
                        return Err(XmlError::nwf("character data at stream level"));
                    }
                    let Some(markup) = classify(data)? else {
                        return Ok(None);
                    };
                    self.pending = match (markup, &self.phase) {
                        (Markup::XmlDecl, Phase::AwaitHeader { decl_allowed: true }) => {
                            Pending::Decl
                        }
                        (Markup::StartTag, Phase::AwaitHeader { .. }) => {
                            Pending::Header(ElementScanner::new(Goal::StartTag))
                        }
                        (Markup::StartTag, _) => {
                            Pending::Stanza(ElementScanner::new(Goal::Element))
                        }
                        (Markup::EndTag, Phase::Open { .. }) => Pending::Close,
                        (m, _) => {
                            return Err(restricted(m).unwrap_or_else(|| {
                                XmlError::nwf("unexpected markup at stream level")
                            }))
                        }
                    };
                }
                Pending::Decl => {
                    let data = &self.buf[self.pos..];
                    let Some(end) = find_terminator(data, 5, b"?>", &self.limits)? else {
                        return Ok(None);
                    };
                    check_decl(&data[..end])?;
                    self.pos += end;
                    self.phase = Phase::AwaitHeader {
                        decl_allowed: false,
                    };
                    self.pending = Pending::Idle;
                }
                Pending::Header(scanner) => {
                    let data = &self.buf[self.pos..];
                    let Some(found) = scanner.scan(data, &self.limits)? else {
                        return Ok(None);
                    };
                    if found.self_closing {
                        return Err(XmlError::nwf("self-closing stream header"));
                    }
                    let (header, bindings, close) = parse_header(&data[..found.end], &self.limits)?;
                    self.pos += found.end;
                    self.phase = Phase::Open { bindings, close };
                    self.pending = Pending::Idle;
                    return Ok(Some(Event::StreamOpen(header)));
                }
                Pending::Stanza(scanner) => {
                    let data = &self.buf[self.pos..];
                    let Some(found) = scanner.scan(data, &self.limits)? else {
                        return Ok(None);
                    };
                    let none = Bindings::default();
                    let bindings = match &self.phase {
                        Phase::Open { bindings, .. } => bindings,
                        _ => &none,
                    };
                    let element = build_element(&data[..found.end], bindings, &self.limits)?;
                    self.pos += found.end;
                    self.pending = Pending::Idle;
                    return Ok(Some(Event::Stanza(element)));
                }
                Pending::Close => {
                    let data = &self.buf[self.pos..];
                    let Some(end) = find_terminator(data, 2, b">", &self.limits)? else {
                        return Ok(None);
                    };
                    let name = trim_ws_end(&data[2..end - 1]);
                    match &self.phase {
                        Phase::Open { close, .. } if close.as_bytes() == name => {}
                        _ => {
                            return Err(XmlError::nwf(
                                "closing tag does not match the stream header",
                            ))
                        }
                    }
                    self.pos += end;
                    self.phase = Phase::Closed;
                    self.pending = Pending::Idle;
                    return Ok(Some(Event::StreamClose));
                }
            }
        }
    }
}

fn initial_phase(framing: Framing) -> Phase {
    match framing {
        Framing::Tcp => Phase::AwaitHeader { decl_allowed: true },
        Framing::WebSocket => Phase::Framed,
    }
}

fn trim_ws_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_xml_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Checks a complete `<?xml …?>`: it must carry a version, and any declared encoding
/// must be UTF-8 (RFC 6120 §11.6).
fn check_decl(decl: &[u8]) -> Result<(), XmlError> {
    let body = std::str::from_utf8(&decl[5..decl.len() - 2])?;
    if !body.trim_start().starts_with("version") {
        return Err(XmlError::nwf("XML declaration without a version"));
    }
    if let Some(i) = body.find("encoding") {
        let rest = body[i + "encoding".len()..].trim_start();
        let rest = rest
            .strip_prefix('=')
            .map(str::trim_start)
            .unwrap_or_default();
        let value = match rest.as_bytes().first() {
            Some(&q @ (b'\'' | b'"')) => rest[1..].split(q as char).next().unwrap_or_default(),
            _ => return Err(XmlError::nwf("malformed encoding declaration")),
        };
        if !value.eq_ignore_ascii_case("UTF-8") {
            return Err(XmlError::BadEncoding(format!(
                "encoding {value} is not UTF-8"
            )));
        }
    }
    Ok(())
}

fn skip_ws(xml: &[u8], from: usize) -> usize {
    from + xml[from..].iter().take_while(|&&b| is_xml_ws(b)).count()
}

/// `Element::parse`: one element as a whole document, optionally preceded by an XML
/// declaration, checked with the same scanner, limits and restrictions as a stream.
pub(crate) fn parse_document(xml: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    let mut pos = skip_ws(xml, 0);
    let rest = &xml[pos..];
    if rest.first() == Some(&b'<') && classify(rest)? == Some(Markup::XmlDecl) {
        let end = find_terminator(rest, 5, b"?>", limits)?
            .ok_or_else(|| XmlError::nwf("unterminated XML declaration"))?;
        check_decl(&rest[..end])?;
        pos = skip_ws(xml, pos + end);
    }
    let rest = &xml[pos..];
    if rest.first() != Some(&b'<') {
        return Err(XmlError::nwf("expected an element"));
    }
    match classify(rest)? {
        Some(Markup::StartTag) => {}
        Some(m) => {
            return Err(restricted(m).unwrap_or_else(|| XmlError::nwf("expected an element")))
        }
        None => return Err(XmlError::nwf("truncated document")),
    }
    let found = ElementScanner::new(Goal::Element)
        .scan(rest, limits)?
        .ok_or_else(|| XmlError::nwf("truncated element"))?;
    let element = build_element(&rest[..found.end], &Bindings::default(), limits)?;
    let tail = &rest[skip_ws(rest, found.end)..];
    if tail.is_empty() {
        return Ok(element);
    }
    if tail[0] == b'<' {
        if let Ok(Some(m)) = classify(tail) {
            if let Some(err) = restricted(m) {
                return Err(err);
            }
        }
    }
    Err(XmlError::nwf("content after the root element"))
}

#[cfg(test)]
mod tests;
