//! Hostile stanzas of about 256 KiB, each aimed at one cost of the parser or of the
//! tree it builds (RFC 6120 §13.9.4 denial of service). Shared by the criterion bench
//! (`benches/hostile.rs`) and the socket test (`tests/xml_hostile.rs`, via `#[path]`),
//! so what is measured is what is tested.
//!
//! Every input is one stanza whose bytes stay under the default `max_stanza_bytes`
//! (262 144), written for a stream whose header declares `jabber:client`.

#![allow(dead_code)]

/// The size every input is built up to (a little under the default stanza limit, so
/// the closing tags still fit).
pub const TARGET: usize = 256 * 1024 - 1024;

/// What the server must answer a hostile input with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Parsed and routed like any stanza.
    Accepted,
    /// `<policy-violation/>` (RFC 6120 §4.9.3.14): a configured bound was exceeded.
    PolicyViolation,
}

/// One hostile input.
pub struct Hostile {
    pub name: &'static str,
    pub xml: String,
    pub expect: Expect,
}

/// Fills a `<message>` with copies of `unit` until it reaches `TARGET`.
fn message_of(open: &str, unit: &str, close: &str) -> String {
    let mut s = format!("<message to='nobody@localhost' id='h'>{open}");
    while s.len() + unit.len() + close.len() + 10 < TARGET {
        s.push_str(unit);
    }
    s.push_str(close);
    s.push_str("</message>");
    s
}

/// `n` distinct prefix declarations `xmlns:p0='urn:0' …` starting at `from`.
fn decls(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!(" xmlns:p{i}='urn:{i}'"))
        .collect()
}

/// The inputs; each is named after what it attacks.
pub fn all() -> Vec<Hostile> {
    let long_uri = format!("urn:{}", "u".repeat(120 * 1024));
    let mut v = vec![
        Hostile {
            name: "tiny_elements",
            xml: message_of("", "<a/>", ""),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "max_attributes_per_element",
            xml: message_of(
                "",
                &format!(
                    "<a{}/>",
                    (0..64).map(|i| format!(" a{i}=''")).collect::<String>()
                ),
                "",
            ),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "max_depth_nesting",
            xml: message_of(
                "",
                &format!("{}{}", "<a>".repeat(31), "</a>".repeat(31)),
                "",
            ),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "char_and_entity_refs",
            xml: message_of("<body>", "&#x41;&amp;&#66;&lt;", "</body>"),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "whitespace_in_tags",
            xml: message_of(
                "",
                &format!("<a{}b=''{}/>", " ".repeat(500), "\n".repeat(500)),
                "",
            ),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "long_names",
            xml: {
                let name = "n".repeat(60 * 1024);
                format!("<message to='nobody@localhost'><{name} {name}='1'></{name}></message>")
            },
            expect: Expect::Accepted,
        },
        Hostile {
            name: "cdata_sections",
            xml: message_of("<body>", "<![CDATA[x]]>", "</body>"),
            expect: Expect::Accepted,
        },
        Hostile {
            name: "duplicate_check_long_attr_names",
            xml: {
                let stem = "k".repeat(3_000);
                let attrs: String = (0..64).map(|i| format!(" {stem}{i}=''")).collect();
                format!("<message to='nobody@localhost'><a{attrs}/></message>")
            },
            expect: Expect::Accepted,
        },
        Hostile {
            name: "prefix_churn",
            xml: message_of(
                "",
                "<p:a xmlns:p='urn:a'><p:b xmlns:p='urn:b' p:c=''/></p:a>",
                "",
            ),
            expect: Expect::Accepted,
        },
        // Within the cap (64 declarations in scope, the header's 2 included): 56
        // bindings, which a scan per name used to walk, then thousands of lookups.
        Hostile {
            name: "lookups_under_max_declarations",
            xml: {
                let open: String = (0..7)
                    .map(|d| format!("<d{d}{}>", decls(d * 8, 8)))
                    .collect();
                let close: String = (0..7).rev().map(|d| format!("</d{d}>")).collect();
                message_of(
                    &format!("{open}<p0:z>"),
                    "<p0:a b=''/>",
                    &format!("</p0:z>{close}"),
                )
            },
            expect: Expect::Accepted,
        },
        // Over the cap: 31 levels × 63 declarations would put 1 953 bindings in scope.
        Hostile {
            name: "declarations_over_cap_deep",
            xml: {
                let open: String = (0..31)
                    .map(|d| format!("<d{d}{}>", decls(d * 63, 63)))
                    .collect();
                let close: String = (0..31).rev().map(|d| format!("</d{d}>")).collect();
                message_of(&open, "<p0:a/>", &close)
            },
            expect: Expect::PolicyViolation,
        },
        // Over the cap one at a time: each level adds one declaration.
        Hostile {
            name: "declarations_over_cap_one_per_level",
            xml: {
                let open: String = (0..31)
                    .map(|d| format!("<d{d}{}>", decls(d * 3, 3)))
                    .collect();
                let close: String = (0..31).rev().map(|d| format!("</d{d}>")).collect();
                message_of(&open, "<p0:a/>", &close)
            },
            expect: Expect::PolicyViolation,
        },
        // Many declarations, but never many at once: each element declares a fresh
        // prefix and closes.
        Hostile {
            name: "fresh_prefix_per_element",
            xml: {
                let mut s = String::from("<message to='nobody@localhost'>");
                let mut i = 0;
                while s.len() < TARGET {
                    s.push_str(&format!("<p{i}:a xmlns:p{i}='urn:{i}'/>"));
                    i += 1;
                }
                s + "</message>"
            },
            expect: Expect::Accepted,
        },
        // One long namespace, inherited by many small children: copying it into
        // each child would cost O(n²) time and memory.
        Hostile {
            name: "long_default_namespace_inherited",
            xml: message_of(&format!("<x xmlns='{long_uri}'>"), "<a/>", "</x>"),
            expect: Expect::Accepted,
        },
        // The same through a prefix on element names.
        Hostile {
            name: "long_prefixed_namespace_on_names",
            xml: message_of(&format!("<x xmlns:p='{long_uri}'>"), "<p:a/>", "</x>"),
            expect: Expect::PolicyViolation,
        },
        // The same through prefixed attributes.
        Hostile {
            name: "long_prefixed_namespace_on_attributes",
            xml: message_of(&format!("<x xmlns:p='{long_uri}'>"), "<a p:b=''/>", "</x>"),
            expect: Expect::PolicyViolation,
        },
    ];
    for h in &mut v {
        assert!(
            h.xml.len() <= 262_144,
            "{} is {} bytes",
            h.name,
            h.xml.len()
        );
    }
    v.retain(|h| !h.xml.is_empty());
    v
}
