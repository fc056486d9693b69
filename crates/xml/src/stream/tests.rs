//! Unit tests of the stream parser: input cut at every byte, stream headers, restricted XML,
//! limits, framed (RFC 7395) input and the errors each violation gives.

use super::*;

const STREAMS: &str = "http://etherx.jabber.org/streams";
const HEADER: &str = "<?xml version='1.0'?><stream:stream to='im.example.com' version='1.0' \
    xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// A client's side of a session: SASL with a pipelined restart header, resource
/// binding, chat with entities, multi-byte characters, CDATA, quotes holding `>`,
/// whitespace keepalives, prefixed attributes and a stream-namespaced element.
const TRANSCRIPT: &str = concat!(
    "<?xml version='1.0'?>\n",
    "<stream:stream to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' ",
    "xmlns:stream='http://etherx.jabber.org/streams'>\n",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    "<?xml version='1.0'?><stream:stream to='im.example.com' version='1.0' xmlns='jabber:client' ",
    "xmlns:stream='http://etherx.jabber.org/streams'>",
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
    "<resource>balcony</resource></bind></iq>\r\n",
    "<presence/> \n\t ",
    "<message to='romeo@example.net' type='chat' id='m1' xml:lang='en'><body>Art thou not Romeo, ",
    "&amp; a Montague? &lt;3 \u{2603} \u{1F600} &#x263A;</body>",
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n",
    "<message to=\"romeo@example.net\" id='m2'><body><![CDATA[<b>bold</b> ]] ]]]]></body>",
    "<x xmlns:foo='urn:foo' foo:bar='1 > 0/' xmlns='jabber:x:oob'><url>http://x/?a=1&amp;b=2</url></x></message>",
    " ",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "</stream:stream >",
);

/// Feeds `chunks` in order, restarting the stream after `<auth/>` as a server
/// would after SASL success, and collects every event.
fn drive<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Event>, XmlError> {
    let mut p = StreamParser::new(Limits::default());
    let mut events = Vec::new();
    for chunk in chunks {
        p.feed(chunk);
        while let Some(ev) = p.next_event()? {
            if matches!(&ev, Event::Stanza(e) if e.name() == "auth") {
                p.restart();
            }
            events.push(ev);
        }
    }
    assert_eq!(p.buffered_len(), 0);
    Ok(events)
}

fn events_of(xml: &str) -> Result<Vec<Event>, XmlError> {
    drive([xml.as_bytes()])
}

fn stanza(ev: &Event) -> &Element {
    match ev {
        Event::Stanza(e) => e,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

fn first_error(xml: &[u8]) -> XmlError {
    let mut p = StreamParser::new(Limits::default());
    p.feed(xml);
    loop {
        match p.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error for {}", String::from_utf8_lossy(xml)),
            Err(e) => return e,
        }
    }
}

fn in_stream(stanzas: &str) -> Vec<u8> {
    format!("{HEADER}{stanzas}").into_bytes()
}

#[test]
fn rfc6120_4_session_transcript_parses_to_expected_events() {
    let events = events_of(TRANSCRIPT).unwrap();
    assert_eq!(events.len(), 9, "{events:#?}");
    let Event::StreamOpen(h) = &events[0] else {
        panic!("expected a header, got {:?}", events[0]);
    };
    assert_eq!(h.attr("xml:lang"), Some("en"));
    assert!(stanza(&events[1]).is("auth", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert!(matches!(&events[2], Event::StreamOpen(h) if h.attr("xml:lang").is_none()));
    let iq = stanza(&events[3]);
    assert!(iq.is("iq", "jabber:client"));
    let bind = iq
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .unwrap();
    assert_eq!(
        bind.get_child("resource", "urn:ietf:params:xml:ns:xmpp-bind")
            .unwrap()
            .text(),
        "balcony"
    );
    assert!(stanza(&events[4]).is("presence", "jabber:client"));
    let m1 = stanza(&events[5]);
    assert_eq!(
        m1.get_child("body", "jabber:client").unwrap().text(),
        "Art thou not Romeo, & a Montague? <3 \u{2603} \u{1F600} \u{263A}"
    );
    let m2 = stanza(&events[6]);
    assert_eq!(m2.attr("to"), Some("romeo@example.net"));
    assert_eq!(
        m2.get_child("body", "jabber:client").unwrap().text(),
        "<b>bold</b> ]] ]]"
    );
    let x = m2.get_child("x", "jabber:x:oob").unwrap();
    assert_eq!(x.attr("foo:bar"), Some("1 > 0/"));
    assert_eq!(
        x.get_child("url", "jabber:x:oob").unwrap().text(),
        "http://x/?a=1&b=2"
    );
    let err = stanza(&events[7]);
    assert!(err.is("error", STREAMS));
    assert!(err.has_child("conflict", "urn:ietf:params:xml:ns:xmpp-streams"));
    assert_eq!(events[8], Event::StreamClose);
}

#[test]
fn rfc6120_4_incremental_parse_is_identical_at_every_split_point() {
    let bytes = TRANSCRIPT.as_bytes();
    let whole = drive([bytes]).unwrap();
    for i in 0..=bytes.len() {
        let split = drive([&bytes[..i], &bytes[i..]]).unwrap();
        assert_eq!(split, whole, "split at {i}");
    }
}

#[test]
fn rfc6120_4_incremental_parse_one_byte_at_a_time() {
    let bytes = TRANSCRIPT.as_bytes();
    assert_eq!(drive(bytes.chunks(1)).unwrap(), drive([bytes]).unwrap());
    assert_eq!(drive(bytes.chunks(7)).unwrap(), drive([bytes]).unwrap());
}

#[test]
fn rfc6120_4_7_stream_header_fields() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    let Some(Event::StreamOpen(h)) = p.next_event().unwrap() else {
        panic!("expected a stream header");
    };
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, STREAMS);
    assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    assert_eq!(
        h.attrs,
        vec![
            ("to".to_owned(), "im.example.com".to_owned()),
            ("version".to_owned(), "1.0".to_owned()),
            ("xml:lang".to_owned(), "en".to_owned()),
        ]
    );
    assert_eq!(h.attr("to"), Some("im.example.com"));
    assert_eq!(h.attr("from"), None);
}

#[test]
fn rfc6120_4_7_header_without_default_namespace() {
    let events =
        events_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message/>")
            .unwrap();
    assert!(
        matches!(&events[0], Event::StreamOpen(h) if h.default_ns.is_none() && h.ns == STREAMS)
    );
    assert!(stanza(&events[1]).is("message", ""));
}

#[test]
fn rfc6120_4_8_stanzas_inherit_stream_namespaces() {
    let events = events_of(&format!(
        "{HEADER}<message><body>x</body></message><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    ))
    .unwrap();
    let m = stanza(&events[1]);
    assert!(m.is("message", "jabber:client"));
    assert!(m.has_child("body", "jabber:client"));
    let f = stanza(&events[2]);
    assert!(f.is("features", STREAMS));
    assert!(f.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
}

#[test]
fn rfc6120_4_4_closing_tag_ends_stream_and_later_input_is_ignored() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(&in_stream("<presence/></stream:stream><message/>garbage"));
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(_))));
    assert_eq!(p.next_event().unwrap(), Some(Event::StreamClose));
    assert_eq!(p.next_event().unwrap(), None);
    p.feed(b"<message/>");
    assert_eq!(p.next_event().unwrap(), None);
    assert_eq!(p.buffered_len(), 0);
}

#[test]
fn rfc6120_4_4_mismatched_closing_tag_is_not_well_formed() {
    for close in ["</stream:strem>", "</stream>", "</message>"] {
        assert!(
            matches!(first_error(&in_stream(close)), XmlError::NotWellFormed(_)),
            "{close}"
        );
    }
}

#[test]
fn rfc6120_11_whitespace_between_stanzas_ignored_but_text_is_not_well_formed() {
    let events = events_of(&format!("{HEADER} \r\n\t<presence/>\n\n")).unwrap();
    assert_eq!(events.len(), 2);
    assert!(matches!(
        first_error(&in_stream("<presence/>hello")),
        XmlError::NotWellFormed(_)
    ));
    assert!(matches!(first_error(b"hello"), XmlError::NotWellFormed(_)));
    assert!(matches!(
        first_error(&in_stream("<![CDATA[x]]>")),
        XmlError::NotWellFormed(_)
    ));
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_comment() {
    assert!(matches!(
        first_error(&in_stream("<!-- hi -->")),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        first_error(&in_stream("<message><!-- hi --></message>")),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        first_error(b"<!-- hi --><stream:stream>"),
        XmlError::RestrictedXml(_)
    ));
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_processing_instruction() {
    assert!(matches!(
        first_error(&in_stream("<?pi data?>")),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        first_error(&in_stream("<message><?pi?></message>")),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        first_error(b"<?xml-stylesheet href='x'?>"),
        XmlError::RestrictedXml(_)
    ));
}

#[test]
fn rfc6120_11_1_xml_declaration_allowed_only_before_stream_header() {
    assert!(matches!(
        first_error(&in_stream("<?xml version='1.0'?>")),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        first_error(b"<?xml version='1.0'?><?xml version='1.0'?>"),
        XmlError::RestrictedXml(_)
    ));
    assert!(events_of(&format!("\n{HEADER}")).is_ok());
}

#[test]
fn rfc6120_11_6_non_utf8_encoding_declaration_is_unsupported_encoding() {
    assert!(matches!(
        first_error(b"<?xml version='1.0' encoding='UTF-16'?><stream:stream>"),
        XmlError::BadEncoding(_)
    ));
    assert!(events_of("<?xml version=\"1.0\" encoding=\"utf-8\"?><s xmlns='urn:s'>").is_ok());
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_billion_laughs() {
    let lolz = concat!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n",
        " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n",
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n",
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n",
        " <!ENTITY lol9 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n",
        "]>\n<lolz>&lol9;</lolz>"
    );
    assert!(matches!(
        first_error(lolz.as_bytes()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        Element::parse(lolz.as_bytes(), &Limits::default()),
        Err(XmlError::RestrictedXml(_))
    ));
    // The same attack from inside an established stream.
    let inside = in_stream(lolz.trim_start_matches("<?xml version=\"1.0\"?>\n"));
    assert!(matches!(first_error(&inside), XmlError::RestrictedXml(_)));
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_quadratic_blowup() {
    let big = "a".repeat(10_000);
    let refs = "&a;".repeat(1_000);
    let with_dtd = format!("<!DOCTYPE kaboom [<!ENTITY a \"{big}\">]><kaboom>{refs}</kaboom>");
    assert!(matches!(
        first_error(with_dtd.as_bytes()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        Element::parse(with_dtd.as_bytes(), &Limits::default()),
        Err(XmlError::RestrictedXml(_))
    ));
    // Without the DTD the references are undeclared entities, refused all the same.
    let bare = in_stream(&format!("<message><body>{refs}</body></message>"));
    assert!(matches!(first_error(&bare), XmlError::RestrictedXml(_)));
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_undeclared_entity_in_text() {
    let xml = in_stream("<message><body>caf&eacute;</body></message>");
    assert!(matches!(first_error(&xml), XmlError::RestrictedXml(_)));
}

#[test]
fn rfc6120_11_1_restricted_xml_rejects_undeclared_entity_in_attribute() {
    let xml = in_stream("<message to='&foo;'/>");
    assert!(matches!(first_error(&xml), XmlError::RestrictedXml(_)));
    let header = b"<stream:stream to='&foo;' xmlns:stream='http://etherx.jabber.org/streams'>";
    assert!(matches!(first_error(header), XmlError::RestrictedXml(_)));
}

#[test]
fn rfc6120_4_9_3_16_oversize_stanza_refused_before_fully_fed() {
    let limits = Limits {
        max_stanza_bytes: 1_000,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    p.feed(b"<message><body>");
    let mut fed = 0;
    let err = loop {
        p.feed(&[b'a'; 100]);
        fed += 100;
        assert!(fed < 10_000, "limit never enforced");
        match p.next_event() {
            Ok(None) => {}
            Ok(Some(ev)) => panic!("unexpected {ev:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, XmlError::PolicyViolation(_)));
    assert!(fed <= 1_100, "refused only after {fed} bytes");
    // Poisoned: the buffer is gone and the error repeats.
    assert_eq!(p.buffered_len(), 0);
    p.feed(b"</body></message>");
    assert_eq!(p.next_event(), Err(err));
}

#[test]
fn rfc6120_4_9_3_16_stanza_exactly_at_size_limit_is_accepted() {
    let stanza = b"<message><body>xxxxxxxx</body></message>";
    let limits = Limits {
        max_stanza_bytes: stanza.len(),
        ..Limits::default()
    };
    let mut p = StreamParser::new_framed(limits.clone());
    p.feed(stanza);
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(_))));
    let mut p = StreamParser::new_framed(limits);
    p.feed(b"<message><body>xxxxxxxxx</body></message>");
    assert!(matches!(p.next_event(), Err(XmlError::PolicyViolation(_))));
}

#[test]
fn rfc6120_4_9_3_16_stream_header_counts_against_size_limit() {
    let limits = Limits {
        max_stanza_bytes: 64,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Err(XmlError::PolicyViolation(_))));
}

#[test]
fn rfc6120_4_9_3_16_depth_33_is_policy_violation() {
    let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    assert!(events_of(&format!("{HEADER}{}", nest(32))).is_ok());
    assert!(matches!(
        first_error(&in_stream(&nest(33))),
        XmlError::PolicyViolation(_)
    ));
    // Refused as soon as the 33rd start tag opens, before anything closes.
    assert!(matches!(
        first_error(&in_stream(&"<a>".repeat(33))),
        XmlError::PolicyViolation(_)
    ));
    assert!(Element::parse(nest(32).as_bytes(), &Limits::default()).is_ok());
    assert!(matches!(
        Element::parse(nest(33).as_bytes(), &Limits::default()),
        Err(XmlError::PolicyViolation(_))
    ));
}

#[test]
fn rfc6120_4_9_3_16_65_attributes_is_policy_violation() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}='{i}'")).collect::<String>();
    let ok = events_of(&format!("{HEADER}<message{}/>", attrs(64))).unwrap();
    assert_eq!(stanza(&ok[1]).attrs().count(), 64);
    assert!(matches!(
        first_error(&in_stream(&format!("<message{}/>", attrs(65)))),
        XmlError::PolicyViolation(_)
    ));
    assert!(matches!(
        first_error(&in_stream(&format!("<message><x{}/></message>", attrs(65)))),
        XmlError::PolicyViolation(_)
    ));
}

#[test]
fn rfc6120_4_9_3_2_undeclared_prefix_is_bad_namespace_prefix() {
    assert!(matches!(
        first_error(&in_stream("<foo:message/>")),
        XmlError::BadNamespacePrefix(_)
    ));
    assert!(matches!(
        first_error(&in_stream("<message foo:x='1'/>")),
        XmlError::BadNamespacePrefix(_)
    ));
    assert!(matches!(
        first_error(b"<stream:stream xmlns='jabber:client'>"),
        XmlError::BadNamespacePrefix(_)
    ));
}

#[test]
fn rfc6120_4_9_3_13_mismatched_tags_are_not_well_formed() {
    let xml = in_stream("<message><body></message></body>");
    assert!(matches!(first_error(&xml), XmlError::NotWellFormed(_)));
}

#[test]
fn rfc6120_4_9_3_13_duplicate_attribute_is_not_well_formed() {
    assert!(matches!(
        first_error(&in_stream("<a b='1' b='2'/>")),
        XmlError::NotWellFormed(_)
    ));
    let header = b"<stream:stream to='a' to='b' xmlns:stream='http://etherx.jabber.org/streams'>";
    assert!(matches!(first_error(header), XmlError::NotWellFormed(_)));
}

#[test]
fn rfc6120_4_9_3_22_invalid_utf8_is_unsupported_encoding() {
    let mut xml = in_stream("<message><body>");
    xml.extend_from_slice(b"\xff\xfe</body></message>");
    assert!(matches!(first_error(&xml), XmlError::BadEncoding(_)));
    // A multi-byte sequence cut short by markup.
    let mut xml = in_stream("<message><body>");
    xml.extend_from_slice(b"\xe2\x98</body></message>");
    assert!(matches!(first_error(&xml), XmlError::BadEncoding(_)));
    let mut xml =
        b"<stream:stream to='\xc3' xmlns:stream='http://etherx.jabber.org/streams'>".to_vec();
    xml.push(b' ');
    assert!(matches!(first_error(&xml), XmlError::BadEncoding(_)));
}

#[test]
fn rfc6120_4_9_3_13_malformed_markup_is_not_well_formed() {
    for bad in [
        "<>",
        "< message/>",
        "<a b=1/>",
        "<a b='1'c/>",
        "<a <b/>",
        "<a>&#0;</a>",
        "<a>x & y</a>",
        "<a\"b\"/>",
    ] {
        assert!(
            matches!(first_error(&in_stream(bad)), XmlError::NotWellFormed(_)),
            "{bad}"
        );
    }
    assert!(matches!(first_error(b"<>"), XmlError::NotWellFormed(_)));
    assert!(matches!(
        first_error(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>"),
        XmlError::NotWellFormed(_)
    ));
}

#[test]
fn parser_stays_poisoned_after_an_error() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(&in_stream("<!-- x --><message/>"));
    assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
    let err = p.next_event().unwrap_err();
    assert!(matches!(err, XmlError::RestrictedXml(_)));
    p.feed(b"<presence/>");
    assert_eq!(p.next_event(), Err(err.clone()));
    p.restart();
    assert_eq!(p.next_event(), Err(err));
}

#[test]
fn rfc6120_6_4_6_restart_keeps_pipelined_header() {
    let second = "<stream:stream to='im.example.com' version='1.0' xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    let mut p = StreamParser::new(Limits::default());
    p.feed(
        format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth><?xml version='1.0'?>{second}<presence/>")
            .as_bytes(),
    );
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.name() == "auth"));
    p.restart();
    assert!(p.buffered_len() > 0);
    let Some(Event::StreamOpen(h)) = p.next_event().unwrap() else {
        panic!("pipelined header lost");
    };
    assert_eq!(h.attr("xml:lang"), None);
    assert!(
        matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.is("presence", "jabber:client"))
    );
}

#[test]
fn rfc6120_4_3_3_restart_in_the_middle_of_a_partial_header() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(
        format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><stream:str").as_bytes(),
    );
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(_))));
    p.restart();
    assert_eq!(p.next_event().unwrap(), None);
    p.feed(b"eam xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    assert!(
        matches!(p.next_event().unwrap(), Some(Event::StreamOpen(h)) if h.default_ns.as_deref() == Some("jabber:client"))
    );
}

#[test]
fn rfc6120_5_4_3_3_reset_discards_plaintext_after_starttls() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(
        in_stream("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='victim'><body>injected</body></message>")
            .as_slice(),
    );
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.name() == "starttls"));
    p.reset();
    assert_eq!(p.buffered_len(), 0);
    assert_eq!(p.next_event().unwrap(), None);
    p.feed(&in_stream("<presence/>"));
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.name() == "presence"));
    assert_eq!(p.next_event().unwrap(), None);
}

#[test]
fn rfc6120_5_4_3_3_reset_also_clears_a_failure() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(b"junk");
    assert!(p.next_event().is_err());
    p.reset();
    p.feed(HEADER.as_bytes());
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
}

#[test]
fn rfc7395_3_3_framed_mode_returns_every_element_as_stanza() {
    let frames = [
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
        "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
    ];
    for chunking in [1, 3, 1000] {
        let mut p = StreamParser::new_framed(Limits::default());
        let mut got = Vec::new();
        for frame in frames {
            for piece in frame.as_bytes().chunks(chunking) {
                p.feed(piece);
                while let Some(ev) = p.next_event().unwrap() {
                    got.push(ev);
                }
            }
        }
        assert_eq!(got.len(), 3);
        assert!(stanza(&got[0]).is("open", "urn:ietf:params:xml:ns:xmpp-framing"));
        assert_eq!(stanza(&got[0]).attr("to"), Some("example.com"));
        assert!(stanza(&got[1]).get_child("body", "jabber:client").is_some());
        assert!(stanza(&got[2]).is("close", "urn:ietf:params:xml:ns:xmpp-framing"));
    }
}

#[test]
fn rfc7395_3_3_framed_mode_has_no_stream_namespace_context() {
    let mut p = StreamParser::new_framed(Limits::default());
    p.feed(b"<message/><stream:features/>");
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.is("message", "")));
    assert!(matches!(
        p.next_event(),
        Err(XmlError::BadNamespacePrefix(_))
    ));
    let mut p = StreamParser::new_framed(Limits::default());
    p.feed(b"</stream:stream>");
    assert!(matches!(p.next_event(), Err(XmlError::NotWellFormed(_))));
    let mut p = StreamParser::new_framed(Limits::default());
    p.feed(b"<a><!-- c --></a>");
    assert!(matches!(p.next_event(), Err(XmlError::RestrictedXml(_))));
    let mut p = StreamParser::new_framed(Limits::default());
    p.feed(b"<?xml version='1.0'?><open/>");
    assert!(matches!(p.next_event(), Err(XmlError::RestrictedXml(_))));
}

#[test]
fn idle_parser_holds_no_buffer_and_is_small() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    p.next_event().unwrap();
    p.feed(format!("<message><body>{}</body></message>", "x".repeat(50_000)).as_bytes());
    assert!(p.next_event().unwrap().is_some());
    assert_eq!(p.next_event().unwrap(), None);
    assert_eq!(p.buffered_len(), 0);
    assert_eq!(p.buf.capacity(), 0);
    assert!(
        std::mem::size_of::<StreamParser>() <= 192,
        "{}",
        std::mem::size_of::<StreamParser>()
    );
}

#[test]
fn partial_stanza_is_kept_across_events_without_growth() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(format!("{HEADER}<presence/><mess").as_bytes());
    assert!(matches!(
        p.next_event().unwrap(),
        Some(Event::StreamOpen(_))
    ));
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(_))));
    assert_eq!(p.next_event().unwrap(), None);
    assert_eq!(p.buffered_len(), 5);
    p.feed(b"age/>");
    assert_eq!(p.buf.len(), 10);
    assert!(matches!(p.next_event().unwrap(), Some(Event::Stanza(e)) if e.name() == "message"));
}

#[test]
fn rfc6120_4_errors_do_not_depend_on_how_input_is_split() {
    let cases = [
        in_stream("<!-- c -->"),
        in_stream("<message><body>&foo;</body></message>"),
        in_stream("<message to='&bar;'/>"),
        in_stream("<foo:x/>"),
        in_stream("<a><b></a></b>"),
        in_stream("<a b='1' b='2'/>"),
        in_stream("<>"),
        in_stream("text"),
        in_stream(&"<a>".repeat(40)),
        b"<!DOCTYPE x [<!ENTITY a 'b'>]>".to_vec(),
        b"<?xml version='1.0' encoding='latin1'?>".to_vec(),
        [&in_stream("<a>")[..], b"\xc3\x28</a>"].concat(),
    ];
    for xml in cases {
        let whole = first_error(&xml);
        let mut p = StreamParser::new(Limits::default());
        let mut bytewise = None;
        for b in &xml {
            p.feed(std::slice::from_ref(b));
            match p.next_event() {
                Ok(_) => {}
                Err(e) => {
                    bytewise = Some(e);
                    break;
                }
            }
            // Drain any further events the byte completed.
            while let Ok(Some(_)) = p.next_event() {}
        }
        let bytewise = bytewise.or_else(|| p.next_event().err());
        assert_eq!(
            bytewise.map(|e| std::mem::discriminant(&e)),
            Some(std::mem::discriminant(&whole)),
            "{}",
            String::from_utf8_lossy(&xml)
        );
    }
}

/// RFC 6120 §4.9.3.13, XML 1.0 [GIMatch]: an end tag that names another element is
/// `not-well-formed` as soon as it is read, with nothing after it; matching names pass.
#[test]
fn rfc6120_4_9_3_13_a_mismatched_end_tag_is_refused_without_more_input() {
    for bad in [
        "<message><body>x</message>",
        "<a><b/><c></a>",
        "<a><b></bb>",
    ] {
        let mut p = StreamParser::new(Limits::default());
        p.feed(HEADER.as_bytes());
        p.feed(bad.as_bytes());
        assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
        assert!(
            matches!(p.next_event(), Err(XmlError::NotWellFormed(_))),
            "{bad}"
        );
    }
    let ok = events_of(&format!(
        "{HEADER}<a><b x='c&gt;'/><c>t</c ><d></d></a><e/>"
    ))
    .unwrap();
    assert_eq!(ok.len(), 3, "stream open and two stanzas: {ok:?}");
}
