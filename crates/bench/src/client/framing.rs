//! Translation between the TCP form of an XMPP stream, which [`super::Conn`] writes and
//! parses, and the framed forms of the web transports: RFC 7395 WebSocket messages and
//! XEP-0206 BOSH bodies.
//!
//! The web transports are pipes behind the client (see [`super::ws`], [`super::bosh`]):
//! everything above them — login, the scenarios — stays the TCP code. Outbound, the bytes
//! the client writes are cut at top-level boundaries ([`Splitter`]): the stream header
//! becomes `<open/>` or a BOSH session creation or restart, `</stream:stream>` becomes
//! `<close/>` or a BOSH terminate, and each stanza travels alone (RFC 7395 §3.3.3) or
//! batched in a body. Inbound, `<open/>` and `<close/>` become a stream header and
//! `</stream:stream>`, and a BOSH body's children are passed on as they are.
//!
//! The scanner handles what the generator writes and what servers send (attributes in
//! either quote, self-closing tags, comments, CDATA, XML declarations), not arbitrary XML.

/// RFC 7395 §3.3.2: the namespace of `<open/>` and `<close/>`.
pub(crate) const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// XEP-0124: the namespace of `<body/>`.
pub(crate) const HTTPBIND_NS: &str = "http://jabber.org/protocol/httpbind";

/// What the client's parser gets where the server opened a stream: the namespaces the
/// framed elements will need (`stream:` for features and errors) and nothing else it reads.
pub(crate) const STREAM_HEADER: &str = "<stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// What the client's parser gets where the server closed the stream.
pub(crate) const STREAM_CLOSE: &str = "</stream:stream>";

/// One top-level item the client wrote.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A stream header; its `to` attribute as written (still escaped).
    Open { to: String },
    /// A complete top-level element, with `xmlns='jabber:client'` added when it declared
    /// no default namespace (a framed element inherits none, RFC 7395 §3.3.3).
    Element(String),
    /// `</stream:stream>`.
    Close,
}

/// Cuts the client's output into [`Piece`]s; bytes of an incomplete item wait for more.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    pos: usize,
}

impl Splitter {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete item, `Ok(None)` when more input is needed.
    pub(crate) fn next_piece(&mut self) -> Result<Option<Piece>, String> {
        loop {
            let rest = &self.buf[self.pos..];
            // Whitespace (keepalives) between top-level items carries nothing.
            let Some(lt) = rest.iter().position(|&b| b == b'<') else {
                self.pos = self.buf.len();
                return Ok(None);
            };
            let start = self.pos + lt;
            let Some(item) = markup_at(&self.buf, start)? else {
                self.pos = start;
                return Ok(None);
            };
            match item.kind {
                Markup::Skip => {
                    self.pos = item.end;
                    continue;
                }
                Markup::End => {
                    let name = tag_name(&self.buf[start + 2..item.end - 1]);
                    self.pos = item.end;
                    if name == b"stream:stream" {
                        return Ok(Some(Piece::Close));
                    }
                    return Err(format!(
                        "a closing tag </{}> at the top level",
                        String::from_utf8_lossy(name)
                    ));
                }
                Markup::Start { empty } => {
                    let tag = utf8(&self.buf[start + 1..item.end - 1])?;
                    if tag_name(tag.as_bytes()) == b"stream:stream" {
                        let to = attr(tag, "to").unwrap_or_default().to_owned();
                        self.pos = item.end;
                        return Ok(Some(Piece::Open { to }));
                    }
                    let end = if empty {
                        item.end
                    } else {
                        match element_end(&self.buf, item.end)? {
                            Some(end) => end,
                            None => {
                                self.pos = start;
                                return Ok(None);
                            }
                        }
                    };
                    let element = with_client_ns(utf8(&self.buf[start..end])?);
                    self.pos = end;
                    return Ok(Some(Piece::Element(element)));
                }
            }
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "output that is not UTF-8".to_owned())
}

/// `element` (a whole element as text) with `xmlns='jabber:client'` on its start tag
/// unless that declares a default namespace already.
fn with_client_ns(element: &str) -> String {
    let gt = start_tag_len(element).unwrap_or(element.len());
    let tag = &element[1..gt];
    if attr(tag, "xmlns").is_some() {
        return element.to_owned();
    }
    let name_end = 1 + tag_name(tag.as_bytes()).len();
    let mut out = String::with_capacity(element.len() + 24);
    out.push_str(&element[..name_end]);
    out.push_str(" xmlns='jabber:client'");
    out.push_str(&element[name_end..]);
    out
}

/// Where the `>` that ends the start tag at the beginning of `element` is.
fn start_tag_len(element: &str) -> Option<usize> {
    tag_close(element.as_bytes(), 1).map(|end| end - 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// An XML declaration, processing instruction or comment.
    Skip,
    /// `</…>`.
    End,
    /// `<…>` or `<…/>`.
    Start { empty: bool },
}

struct Item {
    kind: Markup,
    /// Just past the markup.
    end: usize,
}

/// The markup at `buf[start]` (a `<`), `None` when it is not complete yet.
fn markup_at(buf: &[u8], start: usize) -> Result<Option<Item>, String> {
    let rest = &buf[start..];
    let skip_to = |close: &[u8]| {
        find(rest, close).map(|i| Item {
            kind: Markup::Skip,
            end: start + i + close.len(),
        })
    };
    if rest.starts_with(b"<?") {
        return Ok(skip_to(b"?>"));
    }
    if rest.starts_with(b"<!--") {
        return Ok(skip_to(b"-->"));
    }
    if rest.len() < 4 && (b"<!--".starts_with(rest) || b"<![CDATA[".starts_with(rest)) {
        return Ok(None);
    }
    if rest.starts_with(b"<!") {
        return Err("a DOCTYPE or CDATA at the top level".into());
    }
    let Some(end) = tag_close(buf, start + 1) else {
        return Ok(None);
    };
    let kind = if rest.starts_with(b"</") {
        Markup::End
    } else {
        Markup::Start {
            empty: buf[end - 2] == b'/',
        }
    };
    Ok(Some(Item { kind, end }))
}

/// Just past the `>` that closes the tag whose body starts at `from`, skipping quoted
/// attribute values (which may hold `>`).
fn tag_close(buf: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(from) {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Just past the end tag matching the start tag that ended at `from`; `None` if the
/// element is not complete yet.
fn element_end(buf: &[u8], from: usize) -> Result<Option<usize>, String> {
    let mut depth = 1usize;
    let mut pos = from;
    while let Some(lt) = buf[pos..].iter().position(|&b| b == b'<') {
        let start = pos + lt;
        if buf[start..].starts_with(b"<![CDATA[") {
            match find(&buf[start..], b"]]>") {
                Some(i) => pos = start + i + 3,
                None => return Ok(None),
            }
            continue;
        }
        let Some(item) = markup_at(buf, start)? else {
            return Ok(None);
        };
        match item.kind {
            Markup::Skip | Markup::Start { empty: true } => {}
            Markup::Start { empty: false } => depth += 1,
            Markup::End => {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(item.end));
                }
            }
        }
        pos = item.end;
    }
    Ok(None)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The element name at the start of a tag's inside (`message type='chat'` → `message`).
fn tag_name(tag: &[u8]) -> &[u8] {
    let tag = tag.strip_prefix(b"/").unwrap_or(tag);
    let end = tag
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .unwrap_or(tag.len());
    &tag[..end]
}

/// The raw (still escaped) value of attribute `name` in a tag's inside, the element
/// name first (`body sid='x' rid='1'/`).
pub(crate) fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag.trim_start_matches('<');
    // Past the element name.
    rest = rest.trim_start_matches(|c: char| !c.is_ascii_whitespace() && c != '/' && c != '>');
    loop {
        rest = rest.trim_start();
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        rest = rest[eq + 1..].trim_start();
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let close = rest[1..].find(quote)? + 1;
        if key == name {
            return Some(&rest[1..close]);
        }
        rest = &rest[close + 1..];
    }
}

/// What a WebSocket text message from the server stands for in the TCP form.
pub(crate) fn ws_inbound(frame: &str) -> &str {
    let trimmed = frame.trim_start();
    let name = tag_name(trimmed.strip_prefix('<').unwrap_or("").as_bytes());
    match name {
        b"open" => STREAM_HEADER,
        b"close" => STREAM_CLOSE,
        _ => frame,
    }
}

/// RFC 7395 §3.3.2: the `<open/>` for a client header addressed `to` (escaped).
pub(crate) fn ws_open(to: &str) -> String {
    format!("<open xmlns='{FRAMING_NS}' to='{to}' version='1.0'/>")
}

/// RFC 7395 §3.6: the client's `<close/>`.
pub(crate) fn ws_close() -> String {
    format!("<close xmlns='{FRAMING_NS}'/>")
}

/// A BOSH response body, cut up: the start tag's inside and the children's text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) tag: &'a str,
    pub(crate) children: &'a str,
}

impl<'a> Body<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<Body<'a>, String> {
        let mut rest = text.trim_start();
        if rest.starts_with("<?") {
            let end = rest.find("?>").ok_or("an unterminated XML declaration")?;
            rest = rest[end + 2..].trim_start();
        }
        if tag_name(rest.strip_prefix('<').unwrap_or("").as_bytes()) != b"body" {
            return Err(format!(
                "a response that is not a <body/>: {}",
                &rest[..rest.len().min(80)]
            ));
        }
        let end = tag_close(rest.as_bytes(), 1).ok_or("an unterminated <body> tag")?;
        let tag = &rest[1..end - 1];
        if let Some(tag) = tag.strip_suffix('/') {
            return Ok(Body { tag, children: "" });
        }
        let close = rest.rfind("</body>").ok_or("a <body> without </body>")?;
        if close < end {
            return Err("a <body> without </body>".into());
        }
        Ok(Body {
            tag,
            children: &rest[end..close],
        })
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&'a str> {
        attr(self.tag, name)
    }
}

/// XEP-0124 §7 and XEP-0206 §3: the session creation request.
pub(crate) fn bosh_create(rid: u64, to: &str, wait: u32) -> String {
    format!(
        "<body content='text/xml; charset=utf-8' hold='1' rid='{rid}' to='{to}' ver='1.6' \
         wait='{wait}' xml:lang='en' xmpp:version='1.0' xmlns='{HTTPBIND_NS}' \
         xmlns:xmpp='urn:xmpp:xbosh'/>"
    )
}

/// XEP-0206 §5: the stream restart after SASL.
pub(crate) fn bosh_restart(rid: u64, sid: &str, to: &str) -> String {
    format!(
        "<body rid='{rid}' sid='{sid}' to='{to}' xml:lang='en' xmpp:restart='true' \
         xmlns='{HTTPBIND_NS}' xmlns:xmpp='urn:xmpp:xbosh'/>"
    )
}

/// XEP-0124 §9–§10: a request carrying `payload` (possibly nothing: a poll), or the last
/// one of the session with `terminate`.
pub(crate) fn bosh_request(rid: u64, sid: &str, payload: &str, terminate: bool) -> String {
    let kind = if terminate { " type='terminate'" } else { "" };
    if payload.is_empty() {
        format!("<body rid='{rid}' sid='{sid}'{kind} xmlns='{HTTPBIND_NS}'/>")
    } else {
        format!("<body rid='{rid}' sid='{sid}'{kind} xmlns='{HTTPBIND_NS}'>{payload}</body>")
    }
}

#[cfg(test)]
mod tests;
