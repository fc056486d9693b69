//! Unit tests of the load generator's client: SASL payload encoding and the
//! reader's handling of stream errors and stanzas cut at any byte.

use super::*;

/// RFC 6120 §6.4.2: an empty initial response or challenge is sent as `=`.
#[test]
fn rfc6120_6_4_2_empty_payload_is_an_equals_sign() {
    let el = Element::new("success", ns::SASL).with_text("=");
    assert_eq!(decode_b64(&el).unwrap(), b"");
    let el = Element::new("challenge", ns::SASL).with_text("cj1hYmM=");
    assert_eq!(decode_b64(&el).unwrap(), b"r=abc");
    let el = Element::new("challenge", ns::SASL).with_text("***");
    assert!(decode_b64(&el).is_err());
}

#[test]
fn stream_error_condition_is_named() {
    let el = Element::parse(
        b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
          <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text></stream:error>",
        &limits(),
    )
    .unwrap();
    assert_eq!(stream_error_condition(&el), "conflict");
}

#[tokio::test]
async fn connections_leave_from_the_requested_source_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let ip: IpAddr = source.parse().unwrap();
        let conn = Conn::connect_to(addr, Some(ip)).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), ip);
        drop(conn);
    }
}

/// RFC 6120 §4.2: a reader yields the same stanzas however the bytes are cut.
#[tokio::test]
async fn rfc6120_4_2_reader_reassembles_split_input() {
    let (mut server, client) = tokio::io::duplex(64);
    let mut reader = Reader {
        io: client,
        parser: StreamParser::new(limits()),
        addr: "127.0.0.1:5222".parse().unwrap(),
        counting: None,
    };
    tokio::spawn(async move {
        let xml = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>\
            <message from='a@b/c'><body>hi</body></message></stream:stream>";
        for chunk in xml.chunks(7) {
            server.write_all(chunk).await.unwrap();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    assert!(matches!(
        reader.recv(deadline).await.unwrap(),
        Incoming::Header(_)
    ));
    let msg = reader.stanza(deadline, "message").await.unwrap();
    assert!(msg.is("message", ns::CLIENT));
    assert_eq!(
        msg.get_child("body", ns::CLIENT).map(|b| b.text()),
        Some("hi".into())
    );
    assert!(matches!(
        reader.recv(deadline).await.unwrap(),
        Incoming::Close
    ));
}

/// A counting reader counts socket reads, not stanzas: one write of several stanzas is
/// one read when the buffer holds it all.
#[tokio::test]
async fn counted_reads_carry_many_stanzas() {
    let (mut server, client) = tokio::io::duplex(1 << 16);
    let counters = Arc::new(ReadCounters::default());
    let mut reader = Reader {
        io: client,
        parser: StreamParser::new(limits()),
        addr: "127.0.0.1:5222".parse().unwrap(),
        counting: Some(Counting {
            counters: counters.clone(),
            buf: vec![0; 4096].into_boxed_slice(),
        }),
    };
    let burst = b"<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>\
        <presence from='a@b/c'/><presence from='d@b/c'/><presence from='e@b/c'/>";
    server.write_all(burst).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    assert!(matches!(
        reader.recv(deadline).await.unwrap(),
        Incoming::Header(_)
    ));
    for _ in 0..3 {
        reader.stanza(deadline, "presence").await.unwrap();
    }
    assert_eq!(counters.get(), (1, burst.len() as u64));
    server.write_all(b"<presence from='f@b/c'/>").await.unwrap();
    reader.stanza(deadline, "presence").await.unwrap();
    assert_eq!(counters.get().0, 2);
}
