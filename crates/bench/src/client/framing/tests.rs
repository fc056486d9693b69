//! The framing helpers on what the client writes and what Parley and Prosody send.

use super::*;

fn pieces(splitter: &mut Splitter) -> Vec<Piece> {
    let mut out = Vec::new();
    while let Some(p) = splitter.next_piece().unwrap() {
        out.push(p);
    }
    out
}

#[test]
fn the_client_output_is_cut_into_header_stanzas_and_close() {
    let mut s = Splitter::default();
    s.feed(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    );
    assert_eq!(
        pieces(&mut s),
        [Piece::Open {
            to: "localhost".into()
        }]
    );
    s.feed(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>\
          <presence/><message type='chat' to='a@b/c'><body>1 x</body></message> \
          </stream:stream>",
    );
    assert_eq!(
        pieces(&mut s),
        [
            Piece::Element(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
                    .into()
            ),
            Piece::Element("<presence xmlns='jabber:client'/>".into()),
            Piece::Element(
                "<message xmlns='jabber:client' type='chat' to='a@b/c'><body>1 x</body></message>"
                    .into()
            ),
            Piece::Close,
        ]
    );
}

#[test]
fn an_element_split_over_writes_waits_for_its_end() {
    let whole = b"<iq type='get' id='p1' to='x'><ping xmlns='urn:xmpp:ping'/></iq>";
    for cut in 1..whole.len() {
        let mut s = Splitter::default();
        s.feed(&whole[..cut]);
        assert_eq!(s.next_piece().unwrap(), None, "cut at {cut}");
        s.feed(&whole[cut..]);
        assert_eq!(
            pieces(&mut s),
            [Piece::Element(
                "<iq xmlns='jabber:client' type='get' id='p1' to='x'>\
                 <ping xmlns='urn:xmpp:ping'/></iq>"
                    .into()
            )]
        );
    }
}

#[test]
fn nesting_quotes_comments_and_cdata_do_not_end_an_element_early() {
    let mut s = Splitter::default();
    s.feed(
        b"<message to=\"a>b\" id='q\"'><x><x/></x><!-- </message> -->\
          <body><![CDATA[</message>]]></body></message><r/>",
    );
    let got = pieces(&mut s);
    assert_eq!(got.len(), 2);
    let Piece::Element(first) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(first.starts_with("<message xmlns='jabber:client' to=\"a>b\""));
    assert!(first.ends_with("]]></body></message>"));
    assert_eq!(got[1], Piece::Element("<r xmlns='jabber:client'/>".into()));
}

#[test]
fn a_stray_closing_tag_is_an_error() {
    let mut s = Splitter::default();
    s.feed(b"</message>");
    assert!(s.next_piece().is_err());
}

#[test]
fn attributes_are_read_in_either_quote_and_by_exact_name() {
    let tag = "body xmlns:stream=\"http://etherx.jabber.org/streams\" sid='ab=c' requests=\"2\"/";
    assert_eq!(attr(tag, "sid"), Some("ab=c"));
    assert_eq!(attr(tag, "requests"), Some("2"));
    assert_eq!(attr(tag, "xmlns"), None);
    assert_eq!(attr(tag, "stream"), None);
    assert_eq!(attr("presence/", "type"), None);
}

#[test]
fn rfc7395_open_and_close_become_the_tcp_stream_markers() {
    assert_eq!(
        ws_inbound(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='x' \
             version='1.0' xml:lang='en'/>"
        ),
        STREAM_HEADER
    );
    assert_eq!(
        ws_inbound("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        STREAM_CLOSE
    );
    let features = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>";
    assert_eq!(ws_inbound(features), features);
    assert_eq!(
        ws_open("localhost"),
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
    );
    // What the client's parser makes of the translation: a header, a stanza, the close.
    let mut p = parley_xml::StreamParser::new(super::super::limits());
    p.feed(STREAM_HEADER.as_bytes());
    p.feed(features.as_bytes());
    p.feed(STREAM_CLOSE.as_bytes());
    assert!(matches!(
        p.next_event(),
        Ok(Some(parley_xml::Event::StreamOpen(_)))
    ));
    match p.next_event() {
        Ok(Some(parley_xml::Event::Stanza(el))) => {
            assert!(el.is("features", "http://etherx.jabber.org/streams"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.next_event(),
        Ok(Some(parley_xml::Event::StreamClose))
    ));
}

#[test]
fn bosh_bodies_give_their_attributes_and_children() {
    let b = Body::parse(
        "<?xml version='1.0'?>\n<body xmlns='http://jabber.org/protocol/httpbind' \
         sid='s1' requests='2' wait='60' xmlns:stream='http://etherx.jabber.org/streams'>\
         <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\
         </body>",
    )
    .unwrap();
    assert_eq!(b.attr("sid"), Some("s1"));
    assert_eq!(b.attr("requests"), Some("2"));
    assert_eq!(
        b.children,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    );
    let empty = Body::parse("<body xmlns='http://jabber.org/protocol/httpbind'/>").unwrap();
    assert_eq!(empty.children, "");
    let end = Body::parse(
        "<body type='terminate' condition='item-not-found' \
         xmlns='http://jabber.org/protocol/httpbind'></body>",
    )
    .unwrap();
    assert_eq!(end.attr("type"), Some("terminate"));
    assert_eq!(end.children, "");
    assert!(Body::parse("<html>nope</html>").is_err());
    assert!(Body::parse("<body sid='x'>").is_err());
}

#[test]
fn bosh_requests_carry_rid_sid_and_their_kind() {
    assert_eq!(
        bosh_request(7, "s", "", false),
        "<body rid='7' sid='s' xmlns='http://jabber.org/protocol/httpbind'/>"
    );
    assert_eq!(
        bosh_request(8, "s", "<presence xmlns='jabber:client'/>", true),
        "<body rid='8' sid='s' type='terminate' xmlns='http://jabber.org/protocol/httpbind'>\
         <presence xmlns='jabber:client'/></body>"
    );
    let create = bosh_create(1, "localhost", 60);
    let parsed = Body::parse(&create).unwrap();
    assert_eq!(parsed.attr("hold"), Some("1"));
    assert_eq!(parsed.attr("xmpp:version"), Some("1.0"));
    let restart = bosh_restart(2, "s", "localhost");
    assert_eq!(
        Body::parse(&restart).unwrap().attr("xmpp:restart"),
        Some("true")
    );
}
