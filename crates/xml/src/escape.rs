//! Character-level rules: escaping for output, entity expansion and character
//! validation for input (XML 1.0 §2.2, §2.3, §2.11, §3.3.3, §4.1, §4.6; RFC 6120 §11.1).
//!
//! The escaping is public, so that every crate writing XML by hand (stream headers, the
//! load generator's stanzas) escapes exactly as the serializer does: [`text`] and [`attr`]
//! for a string, borrowed when nothing needs escaping; [`write_text`] and [`write_attr`]
//! to append to a byte buffer, as [`Element::write_to`](crate::Element::write_to) does.

use std::borrow::Cow;

use crate::XmlError;

/// Where a run of character data came from; each context has its own normalization.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Element content: references expanded, line ends normalized (XML 1.0 §2.11).
    Text,
    /// CDATA section: no references, line ends normalized.
    Cdata,
    /// Attribute value: references expanded, whitespace normalized (XML 1.0 §3.3.3).
    AttrValue,
}

/// Byte classes that force the slow path; everything else is copied verbatim.
const AMP: u8 = 1;
const CR: u8 = 2;
const TAB_LF: u8 = 4;
const LT: u8 = 8;
const CONTROL: u8 = 16;
/// Lead byte of U+F000..U+FFFF, the block holding the non-characters U+FFFE/U+FFFF.
const EF: u8 = 32;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = CONTROL;
        i += 1;
    }
    t[b'\t' as usize] = TAB_LF;
    t[b'\n' as usize] = TAB_LF;
    t[b'\r' as usize] = CR;
    t[b'&' as usize] = AMP;
    t[b'<' as usize] = LT;
    t[0xEF] = EF;
    t
};

const fn mask(ctx: Context) -> u8 {
    match ctx {
        Context::Text => AMP | CR | CONTROL | EF,
        Context::Cdata => CR | CONTROL | EF,
        Context::AttrValue => AMP | CR | TAB_LF | LT | CONTROL | EF,
    }
}

/// Expands references and normalizes `raw` for its context, refusing characters XML
/// forbids and any entity other than the five predefined ones (RFC 6120 §11.1).
/// Input needing no change is returned as is, without copying.
pub(crate) fn unescape<'a>(
    raw: impl Into<Cow<'a, str>>,
    ctx: Context,
) -> Result<Cow<'a, str>, XmlError> {
    let raw = raw.into();
    let m = mask(ctx);
    let Some(first) = first_special(raw.as_bytes(), m) else {
        return Ok(raw);
    };
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut i = first;
    loop {
        match bytes[i] {
            b'&' => {
                out.push_str(&raw[last..i]);
                let end = memchr::memchr(b';', &bytes[i + 1..])
                    .map(|n| i + 1 + n)
                    .ok_or_else(|| XmlError::nwf("'&' without a terminating ';'"))?;
                expand_reference(&raw[i + 1..end], &mut out)?;
                i = end + 1;
                last = i;
            }
            b'\r' => {
                out.push_str(&raw[last..i]);
                out.push(if ctx == Context::AttrValue { ' ' } else { '\n' });
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                last = i;
            }
            b'\t' | b'\n' => {
                out.push_str(&raw[last..i]);
                out.push(' ');
                i += 1;
                last = i;
            }
            b'<' => return Err(XmlError::nwf("'<' in attribute value")),
            0xEF => {
                if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                {
                    return Err(XmlError::nwf("non-character U+FFFE/U+FFFF"));
                }
                i += 1;
            }
            b => {
                return Err(XmlError::nwf(format!(
                    "forbidden control character 0x{b:02x}"
                )))
            }
        }
        match first_special(&bytes[i..], m) {
            Some(n) => i += n,
            None => break,
        }
    }
    out.push_str(&raw[last..]);
    Ok(Cow::Owned(out))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Nonzero iff some byte of `x` is below `n` (`n` <= 0x80); exact as a yes/no answer.
fn has_less(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO * u64::from(n)) & !x & HI
}

/// Nonzero iff some byte of `x` equals `b`.
fn has_byte(x: u64, b: u8) -> u64 {
    has_less(x ^ (LO * u64::from(b)), 1)
}

/// Index of the first byte whose class intersects `m`. Eight bytes are screened at a
/// time for anything that could be special, since most text has nothing to do.
fn first_special(bytes: &[u8], m: u8) -> Option<usize> {
    let exact = |chunk: &[u8]| chunk.iter().position(|&b| CLASS[b as usize] & m != 0);
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if has_less(x, 0x20) | has_byte(x, b'&') | has_byte(x, b'<') | has_byte(x, 0xEF) != 0 {
            if let Some(i) = exact(chunk) {
                return Some(base + i);
            }
        }
        base += 8;
    }
    exact(chunks.remainder()).map(|i| base + i)
}

/// Appends the expansion of `&name;` (without `&` and `;`).
fn expand_reference(name: &str, out: &mut String) -> Result<(), XmlError> {
    let expansion = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            if let Some(num) = name.strip_prefix('#') {
                char_reference(num)?
            } else if is_qname(name) && !name.contains(':') {
                return Err(XmlError::restricted(format!("entity reference &{name};")));
            } else {
                return Err(XmlError::nwf("malformed entity reference"));
            }
        }
    };
    out.push(expansion);
    Ok(())
}

/// Decodes the digits of `&#…;` / `&#x…;` into an XML `Char` (XML 1.0 §4.1, §2.2).
fn char_reference(num: &str) -> Result<char, XmlError> {
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    let bad = || XmlError::nwf("invalid character reference");
    // from_str_radix would accept a leading '+', which XML does not.
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| (b as char).is_digit(radix))
    {
        return Err(bad());
    }
    let code = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
    let c = char::from_u32(code).ok_or_else(bad)?;
    if is_xml_char(c) {
        Ok(c)
    } else {
        Err(bad())
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

const NAME_START: u8 = 1;
const NAME_CHAR: u8 = 2;
const COLON: u8 = 4;

/// ASCII name classes; every non-ASCII byte is accepted, since the exact Unicode name
/// classes buy no safety here and cost speed.
const NAME: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            t[i] = NAME_START | NAME_CHAR;
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            t[i] = NAME_CHAR;
        } else if b == b':' {
            t[i] = COLON;
        }
        i += 1;
    }
    t
};

/// Whether `b` may start an XML name.
pub(crate) fn is_name_start(b: u8) -> bool {
    NAME[b as usize] & NAME_START != 0
}

/// Whether `s` is a namespace-well-formed `QName`: one or two names joined by a
/// colon (Namespaces in XML 1.0 §4).
pub(crate) fn is_qname(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    // One predictable pass over the bytes; the colon rules are checked after.
    if !is_name_start(first)
        || !b
            .iter()
            .all(|&c| NAME[c as usize] & (NAME_CHAR | COLON) != 0)
    {
        return false;
    }
    match memchr::memchr(b':', b) {
        None => true,
        Some(i) => {
            b.get(i + 1).is_some_and(|&c| is_name_start(c))
                && memchr::memchr(b':', &b[i + 1..]).is_none()
        }
    }
}

/// Whitespace as XML defines it (`S`, XML 1.0 §2.3).
pub(crate) fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Escapes element text: `&`, `<`, `>` (so `]]>` cannot appear), and CR, which a
/// parser would otherwise fold into LF. Characters XML cannot carry at all become U+FFFD.
/// Returns `s` itself when nothing needs escaping.
///
/// ```
/// assert_eq!(parley_xml::escape::text("a < b & c"), "a &lt; b &amp; c");
/// assert!(matches!(parley_xml::escape::text("plain"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn text(s: &str) -> Cow<'_, str> {
    escaped(s, false)
}

/// Escapes an attribute value for output between either quote character: both quotes
/// are escaped, and TAB/LF/CR are written as references because attribute normalization
/// would turn them into spaces. Characters XML cannot carry at all become U+FFFD. Returns
/// `s` itself when nothing needs escaping.
///
/// ```
/// assert_eq!(parley_xml::escape::attr("it's \"x\""), "it&apos;s &quot;x&quot;");
/// ```
pub fn attr(s: &str) -> Cow<'_, str> {
    escaped(s, true)
}

/// Appends `s` escaped as element text (see [`text`]) to `out`.
pub fn write_text(out: &mut Vec<u8>, s: &str) {
    escape(out, s, false);
}

/// Appends `s` escaped as an attribute value (see [`attr`]) to `out`.
pub fn write_attr(out: &mut Vec<u8>, s: &str) {
    escape(out, s, true);
}

/// Where escaped output goes: the serializer's byte buffer or a new string.
trait Sink {
    fn put(&mut self, s: &str);
}

impl Sink for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// Output classes: bytes that [`replacement`] may replace in text (`OUT_TEXT`) and in
/// attribute values (`OUT_ATTR`). Every byte for which it returns Some is marked here.
const OUT_TEXT: u8 = 1;
const OUT_ATTR: u8 = 2;
const OUT_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = OUT_TEXT | OUT_ATTR;
        i += 1;
    }
    t[b'\t' as usize] = OUT_ATTR;
    t[b'\n' as usize] = OUT_ATTR;
    t[b'&' as usize] = OUT_TEXT | OUT_ATTR;
    t[b'<' as usize] = OUT_TEXT | OUT_ATTR;
    t[b'>' as usize] = OUT_TEXT;
    t[b'\'' as usize] = OUT_ATTR;
    t[b'"' as usize] = OUT_ATTR;
    t[0xEF] = OUT_TEXT | OUT_ATTR;
    t
};

/// Whether the byte may need a replacement in this context (then [`replacement`] decides).
#[inline]
fn needs_look(b: u8, attr: bool) -> bool {
    OUT_CLASS[b as usize] & if attr { OUT_ATTR } else { OUT_TEXT } != 0
}

/// The reference or character that stands for the character at `s[i]`, and how many
/// bytes it replaces; None when the byte is written as it is.
fn replacement(s: &[u8], i: usize, attr: bool) -> Option<(&'static str, usize)> {
    Some(match s[i] {
        b'&' => ("&amp;", 1),
        b'<' => ("&lt;", 1),
        b'>' if !attr => ("&gt;", 1),
        b'\'' if attr => ("&apos;", 1),
        b'"' if attr => ("&quot;", 1),
        b'\t' if attr => ("&#x9;", 1),
        b'\n' if attr => ("&#xA;", 1),
        b'\r' => ("&#xD;", 1),
        // Characters XML 1.0 cannot carry at all, not even as references (§2.2): a
        // string the server built (an error text quoting the peer's bytes) may hold
        // them, and the element must stay XML, so they become U+FFFD.
        0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F => (REPLACEMENT, 1),
        0xEF if s.get(i + 1) == Some(&0xBF) && matches!(s.get(i + 2), Some(0xBE | 0xBF)) => {
            (REPLACEMENT, 3)
        }
        _ => return None,
    })
}

/// `s` escaped, borrowed when nothing needs escaping (the common case).
fn escaped(s: &str, attr: bool) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    match (0..bytes.len())
        .find(|&i| needs_look(bytes[i], attr) && replacement(bytes, i, attr).is_some())
    {
        None => Cow::Borrowed(s),
        Some(first) => {
            let mut out = String::with_capacity(s.len() + 16);
            out.push_str(&s[..first]);
            escape(&mut out, &s[first..], attr);
            Cow::Owned(out)
        }
    }
}

/// Every slice boundary falls on an ASCII byte or around a whole three-byte character, so
/// the `&str` slicing below never splits a character.
fn escape(out: &mut impl Sink, s: &str, attr: bool) {
    let bytes = s.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Most bytes of a body are plain: one table lookup each, and the full rules only
        // for the few that may need a reference.
        if !needs_look(bytes[i], attr) {
            i += 1;
            continue;
        }
        let Some((rep, len)) = replacement(bytes, i, attr) else {
            i += 1;
            continue;
        };
        out.put(&s[last..i]);
        out.put(rep);
        i += len;
        last = i;
    }
    out.put(&s[last..]);
}

/// U+FFFD REPLACEMENT CHARACTER in UTF-8.
const REPLACEMENT: &str = "\u{FFFD}";

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path skips only bytes that `replacement` would leave alone, in both contexts
    /// and whatever follows them.
    #[test]
    fn output_class_covers_every_replaced_byte() {
        for b in 0..=255u8 {
            for next in [[0xBF, 0xBE], [0xBF, 0xBF], [b'a', b'a']] {
                let s = [b, next[0], next[1]];
                for attr in [false, true] {
                    if replacement(&s, 0, attr).is_some() {
                        assert!(needs_look(b, attr), "byte {b:#x} attr {attr}");
                    }
                }
            }
        }
    }

    /// Found by the fuzz targets `stream_parser` and `websocket_framing`: the stream error
    /// for a mismatched end tag quoted the peer's control characters in its `<text/>`,
    /// and the server sent a `<stream:error/>` that is not XML (XML 1.0 §2.2 Char).
    #[test]
    fn xml_1_0_2_2_serializer_never_writes_a_character_xml_forbids() {
        let nasty = "a\u{0}b\u{1}\u{8}\u{b}\u{c}\u{1f}\u{fffe}\u{ffff}c\t\n\r&<>'\"\u{fffd}";
        for attr in [false, true] {
            let mut out = Vec::new();
            escape(&mut out, nasty, attr);
            let out = String::from_utf8(out).unwrap();
            let cow = if attr {
                super::attr(nasty)
            } else {
                super::text(nasty)
            };
            assert_eq!(cow, out);
            assert!(
                !out.chars().any(|c| (c < ' ' && !"\t\n\r".contains(c))
                    || c == '\u{fffe}'
                    || c == '\u{ffff}'),
                "{out:?}"
            );
            let context = if attr {
                Context::AttrValue
            } else {
                Context::Text
            };
            let decoded = unescape(&out, context).unwrap();
            assert_eq!(decoded, "a\u{fffd}b\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}c\t\n\r&<>'\"\u{fffd}");
        }
    }

    fn text(s: &str) -> Result<String, XmlError> {
        unescape(s, Context::Text).map(Cow::into_owned)
    }

    #[test]
    fn xml_4_6_predefined_entities_expand() {
        assert_eq!(
            text("a &lt;b&gt; &amp; &quot;c&apos;").unwrap(),
            "a <b> & \"c'"
        );
    }

    #[test]
    fn xml_4_1_character_references_expand() {
        assert_eq!(text("&#65;&#x42;&#x1F600;").unwrap(), "AB\u{1F600}");
    }

    #[test]
    fn xml_2_2_character_reference_to_forbidden_char_is_not_well_formed() {
        for bad in [
            "&#0;",
            "&#x1;",
            "&#xD800;",
            "&#xFFFE;",
            "&#x110000;",
            "&#;",
            "&#x;",
            "&#+5;",
            "&#99999999999;",
        ] {
            assert!(
                matches!(text(bad), Err(XmlError::NotWellFormed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rfc6120_11_1_undeclared_entity_is_restricted() {
        assert!(matches!(text("x &foo; y"), Err(XmlError::RestrictedXml(_))));
        assert!(matches!(
            unescape("&nbsp;", Context::AttrValue),
            Err(XmlError::RestrictedXml(_))
        ));
    }

    #[test]
    fn xml_4_1_malformed_reference_is_not_well_formed() {
        for bad in ["a & b", "&;", "&a b;", "tail &amp"] {
            assert!(
                matches!(text(bad), Err(XmlError::NotWellFormed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn xml_2_2_control_characters_and_nonchars_are_not_well_formed() {
        assert!(matches!(text("a\u{1}b"), Err(XmlError::NotWellFormed(_))));
        assert!(matches!(text("a\u{FFFF}"), Err(XmlError::NotWellFormed(_))));
        assert_eq!(text("\u{FF21}\u{F900}").unwrap(), "\u{FF21}\u{F900}");
    }

    #[test]
    fn xml_2_11_line_ends_normalized_in_text_and_cdata() {
        assert_eq!(text("a\r\nb\rc\n").unwrap(), "a\nb\nc\n");
        assert_eq!(unescape("a\r\n&amp;", Context::Cdata).unwrap(), "a\n&amp;");
    }

    #[test]
    fn xml_3_3_3_attribute_whitespace_normalized_but_references_kept() {
        assert_eq!(
            unescape("a\tb\r\nc\nd&#xA;", Context::AttrValue).unwrap(),
            "a b c d\n"
        );
        assert!(matches!(
            unescape("a<b", Context::AttrValue),
            Err(XmlError::NotWellFormed(_))
        ));
    }

    #[test]
    fn xml_2_4_escaping_round_trips_through_unescape() {
        let s = "<a href=\"x\">'&'</a>]]>\r\n\t";
        let mut out = Vec::new();
        write_text(&mut out, s);
        assert_eq!(out, b"&lt;a href=\"x\"&gt;'&amp;'&lt;/a&gt;]]&gt;&#xD;\n\t");
        assert_eq!(text(std::str::from_utf8(&out).unwrap()).unwrap(), s);
        let mut out = Vec::new();
        write_attr(&mut out, s);
        assert_eq!(
            out,
            b"&lt;a href=&quot;x&quot;>&apos;&amp;&apos;&lt;/a>]]>&#xD;&#xA;&#x9;"
        );
        assert_eq!(
            unescape(std::str::from_utf8(&out).unwrap(), Context::AttrValue).unwrap(),
            s
        );
    }

    #[test]
    fn strings_with_nothing_to_escape_are_borrowed() {
        for s in [
            "",
            "user1@localhost/r",
            "héllo wörld \u{1F600}",
            "a>b",
            "\u{FFFD}",
        ] {
            assert!(matches!(super::attr(s), Cow::Borrowed(_)), "{s}");
        }
        for s in ["", "it's \"quoted\"\tand\nsplit", "\u{FF21}\u{F900}"] {
            assert!(matches!(super::text(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn xml_2_4_markup_and_quotes_are_escaped_for_their_context() {
        assert_eq!(super::text("a<b>&'\"c"), "a&lt;b&gt;&amp;'\"c");
        assert_eq!(super::attr("a<b>&'\"c"), "a&lt;b>&amp;&apos;&quot;c");
        // The escaped part may start after multi-byte characters.
        assert_eq!(super::attr("é€\u{1F600}&"), "é€\u{1F600}&amp;");
        assert_eq!(super::text("é\u{FFFF}x"), "é\u{FFFD}x");
        let mut out = b"<a x='".to_vec();
        write_attr(&mut out, "1'2");
        assert_eq!(out, b"<a x='1&apos;2");
    }

    #[test]
    fn namespaces_4_qname_shape() {
        for ok in ["a", "stream:stream", "xml:lang", "_x-1.2", "é"] {
            assert!(is_qname(ok), "{ok}");
        }
        for bad in [
            "", ":a", "a:", "a:b:c", "1a", "a b", "a/b", "a\"", "-a", "a:1",
        ] {
            assert!(!is_qname(bad), "{bad}");
        }
    }

    #[test]
    fn word_screen_agrees_with_bytewise_classification() {
        for ctx in [Context::Text, Context::Cdata, Context::AttrValue] {
            let m = mask(ctx);
            for b in 0..=255u8 {
                for at in 0..20 {
                    let mut bytes = vec![b'a'; 20];
                    bytes[at] = b;
                    let naive = bytes.iter().position(|&c| CLASS[c as usize] & m != 0);
                    assert_eq!(first_special(&bytes, m), naive, "byte {b:#x} at {at}");
                }
            }
        }
    }
}
