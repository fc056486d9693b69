//! Writes the checked-in seed corpus, `fuzz/seeds/<target>/`: small, realistic inputs
//! the fuzzer mutates from. Run from `fuzz/` with `cargo run --example make_seeds`.
//! Deterministic, so re-running it changes nothing unless this file changed.
//!
//! Inputs of the targets that cut their input (see `parley_fuzz::split_input`) get a
//! cut header; the XML ones are cut inside tags, quotes, entities and multi-byte
//! characters, where an incremental parser is most likely to go wrong.

use std::fs;
use std::path::Path;

use parley_cluster::link::{encode, Body, RemoteClose, NONCE_LEN};
use parley_proto::jwt::sign_hs256;
use parley_proto::sasl::{ChannelBindingType, ScramClient, ScramServer};
use parley_user::{SyncDepth, UserWire, WireState};
use serde_json::json;

// Shared with the `scram` target; this example uses only part of it.
#[allow(dead_code)]
#[path = "../src/scram_fixture.rs"]
mod scram_fixture;
use scram_fixture::*;

const JWT_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// `payload` with a cut header asking for cuts at `cuts`.
fn with_cuts(cuts: &[usize], payload: &[u8]) -> Vec<u8> {
    assert!(cuts.len() <= 15 && payload.len() <= usize::from(u16::MAX));
    let mut out = vec![cuts.len() as u8];
    for &c in cuts {
        out.extend_from_slice(&(c as u16).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Cuts at a few places inside `payload`: after each `split` marker's first byte.
fn cut_inside(payload: &str, markers: &[&str]) -> Vec<u8> {
    let cuts: Vec<usize> = markers
        .iter()
        .filter_map(|m| payload.find(m).map(|i| i + 1))
        .collect();
    with_cuts(&cuts, payload.as_bytes())
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("create seed dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' \
    xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn stream_parser() {
    let session = [
        HEADER,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>",
        "biwsbj1qdWxpZXQscj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0w=</auth>",
        "<stream:stream to='example.com' version='1.0' xmlns='jabber:client' ",
        "xmlns:stream='http://etherx.jabber.org/streams'>",
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
        "<resource>balcony</resource></bind></iq>\n",
        "<presence><show>away</show><priority>5</priority></presence> \n",
        "<message to='romeo@example.net/orchard' type='chat' id='m1' xml:lang='en'>",
        "<body>Art thou not Romeo, &amp; a Montague? &lt;3 \u{2603} \u{1F600} &#x263A;</body>",
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to=\"romeo@example.net\" id='m2'><body><![CDATA[<b>bold</b> ]]]]></body>",
        "<x xmlns:foo='urn:foo' foo:bar='1 &gt; 0' xmlns='jabber:x:oob'><url>http://x/?a=1&amp;b=2</url></x></message>",
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>",
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        "</stream:stream>",
    ]
    .concat();
    write(
        "stream_parser",
        "session",
        &cut_inside(
            &session,
            &[
                "stream:stream",
                "mechanism",
                "&amp;",
                "\u{2603}",
                "CDATA",
                "foo:bar",
                "</stream:stream",
            ],
        ),
    );
    write(
        "stream_parser",
        "header_only",
        &with_cuts(&[], HEADER.as_bytes()),
    );
    let starttls = format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    write(
        "stream_parser",
        "starttls",
        &cut_inside(&starttls, &["tls"]),
    );
    let restricted =
        format!("{HEADER}<!-- comment --><message><body>&ent;</body></message><?pi x?>");
    write(
        "stream_parser",
        "restricted",
        &with_cuts(&[], restricted.as_bytes()),
    );
    let dtd = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]><stream:stream/>";
    write("stream_parser", "dtd", &with_cuts(&[], dtd.as_bytes()));
    let deep = format!("{HEADER}{}{}", "<a>".repeat(12), "</a>".repeat(12));
    write("stream_parser", "deep", &with_cuts(&[], deep.as_bytes()));
    let prefixes = format!(
        "{HEADER}<iq type='set' id='p'><x:query xmlns:x='urn:x' x:a='1' xml:lang='de'><x:y/></x:query></iq>"
    );
    write(
        "stream_parser",
        "prefixes",
        &cut_inside(&prefixes, &["x:a", "<x:y"]),
    );
}

const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

fn websocket_framing() {
    let messages = [
        format!("<open xmlns='{FRAMING}' to='example.com' version='1.0'/>"),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>"
            .to_owned(),
        format!("<open xmlns='{FRAMING}' to='example.com' version='1.0'/>"),
        "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
            .to_owned(),
        "<message xmlns='jabber:client' to='romeo@example.net' type='chat'><body>é &amp; \u{1F600}</body></message>"
            .to_owned(),
        format!("<close xmlns='{FRAMING}'/>"),
    ];
    let mut cuts = Vec::new();
    let mut all = String::new();
    for m in &messages {
        all.push_str(m);
        cuts.push(all.len());
    }
    cuts.pop();
    write(
        "websocket_framing",
        "session",
        &with_cuts(&cuts, all.as_bytes()),
    );
    let odd = format!(
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'/><foo xmlns='{FRAMING}'/>"
    );
    write(
        "websocket_framing",
        "not_framing",
        &with_cuts(&[], odd.as_bytes()),
    );
    let two = "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'><show>dnd</show></presence>";
    write(
        "websocket_framing",
        "two_in_one",
        &with_cuts(&[20], two.as_bytes()),
    );
}

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

fn bosh_body() {
    let seeds = [
        ("create", format!(
            "<body content='text/xml; charset=utf-8' hold='1' rid='1573741820' to='example.com' \
             wait='60' xml:lang='en' xmpp:version='1.0' xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh'/>"
        )),
        ("auth", format!(
            "<body rid='1573741821' sid='SomeSID' xmlns='{HTTPBIND}'>\
             <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>\
             biwsbj1qdWxpZXQscj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0w=</auth></body>"
        )),
        ("restart", format!(
            "<body rid='1573741822' sid='SomeSID' to='example.com' xml:lang='en' xmpp:restart='true' \
             xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh'/>"
        )),
        ("stanzas", format!(
            "<body rid='1573741823' sid='SomeSID' xmlns='{HTTPBIND}'>\
             <iq xmlns='jabber:client' type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>httpclient</resource></bind></iq>\
             <message xmlns='jabber:client' to='romeo@example.net' xml:lang='en'><body>I said &quot;Hi&quot; &lt;3</body></message>\
             <presence xmlns='jabber:client'/></body>"
        )),
        ("prefixed", format!(
            "<b:body xmlns:b='{HTTPBIND}' rid='5' sid='s'><m:message xmlns:m='jabber:client' m:x='1'/></b:body>"
        )),
        ("terminate", format!(
            "<body rid='1573741824' sid='SomeSID' type='terminate' xmlns='{HTTPBIND}'>\
             <presence type='unavailable' xmlns='jabber:client'/></body>"
        )),
        ("poll", format!("<body rid='1573741825' sid='SomeSID' xmlns='{HTTPBIND}'/>")),
    ];
    for (name, body) in seeds {
        write("bosh_body", name, body.as_bytes());
    }
}

/// A complete exchange by the real client, in the raw format of the `scram` target.
fn scram_exchange(flags: u8, user: &str, password: &str) -> Vec<u8> {
    let offered = bindings(flags);
    let supports_plus = flags & SERVER_SUPPORTS_PLUS != 0;
    let cb = offered
        .tls_exporter
        .clone()
        .map(|d| (ChannelBindingType::TlsExporter, d));
    let mut client = ScramClient::new(hash(flags), user, password, cb, supports_plus)
        .with_client_nonce(CLIENT_NONCE);
    let plus = client.mechanism().is_plus();
    let mut server = ScramServer::new(hash(flags), plus, &offered, supports_plus)
        .with_server_nonce(SERVER_NONCE);
    let first = client.client_first();
    server.client_first(&first).expect("valid client-first");
    let challenge = server.server_first(&credentials(hash(flags)));
    let last = client.client_final(&challenge).expect("valid server-first");
    let flags = (flags & !PLUS) | if plus { PLUS } else { 0 };
    let mut out = vec![flags];
    out.extend_from_slice(&first);
    out.push(0);
    out.extend_from_slice(&last);
    out
}

fn scram() {
    write("scram", "sha1", &scram_exchange(0, USER, PASSWORD));
    write("scram", "sha256", &scram_exchange(SHA256, USER, PASSWORD));
    let plus = SHA256 | SERVER_SUPPORTS_PLUS | CONNECTION_HAS_BINDINGS;
    write(
        "scram",
        "sha256_plus",
        &scram_exchange(plus, USER, PASSWORD),
    );
    write(
        "scram",
        "downgrade_y",
        &scram_exchange(CONNECTION_HAS_BINDINGS, USER, PASSWORD),
    );
    write(
        "scram",
        "wrong_password",
        &scram_exchange(SHA256, USER, "pencil2"),
    );
    write(
        "scram",
        "authzid",
        b"\x01n,a=juliet@example.com,n=juliet,r=abc,e=x\0c=biws,r=abc3rfcNHYJY1ZVvWVs7j,p=AAAA",
    );
    write("scram", "structured", b"\x11juliet\0pencil\0\0");
    write(
        "scram",
        "structured_plus",
        b"\x1fjuliet\0pencil\0juliet@example.com\0n0nce",
    );
    write(
        "scram",
        "structured_escapes",
        b"\x10jul=iet,\0pen\xc2\xadcil\0a,b=c\0",
    );
}

fn jwt() {
    let token = |name: &str, claims: serde_json::Value| {
        let mut seed = vec![0];
        seed.extend_from_slice(sign_hs256(&claims, JWT_KEY).as_bytes());
        write("jwt", name, &seed);
    };
    token(
        "valid",
        json!({"sub": "juliet@example.com", "exp": 1_700_003_600, "iat": 1_700_000_000}),
    );
    token(
        "jid_claim",
        json!({"jid": "romeo@example.net", "exp": 1_700_003_600, "nbf": 1_699_999_000}),
    );
    token(
        "expired",
        json!({"sub": "juliet@example.com", "exp": 1_600_000_000}),
    );
    token(
        "not_yet",
        json!({"sub": "juliet@example.com", "exp": 1_800_000_000, "nbf": 1_750_000_000}),
    );
    // RFC 8725 §2.1: `{"alg":"none"}` over a signed token's claims, no signature.
    let signed = sign_hs256(&json!({"sub": "a@b", "exp": 9_999_999_999_i64}), JWT_KEY);
    let claims = signed.split('.').nth(1).expect("three parts");
    let none = format!("\0eyJhbGciOiJub25lIn0.{claims}.");
    write("jwt", "alg_none", none.as_bytes());
    let claims =
        br#"{"sub":"juliet@example.com","exp":1700003600,"iat":1700000000,"nbf":1699990000}"#;
    let mut seed = vec![1];
    seed.extend_from_slice(claims);
    write("jwt", "claims", &seed);
}

fn node_link() {
    let bodies = vec![
        Body::Hello { node: "n1".into(), software: "0.1.0".into(), nonce: [7; NONCE_LEN] },
        Body::Welcome { node: "n2".into(), nonce: [9; NONCE_LEN], proof: vec![1; 32] },
        Body::Proof { proof: vec![2; 32] },
        Body::ToSession {
            jid: "juliet@example.com/balcony".into(),
            session: 7,
            xml: "<message xmlns='jabber:client' to='juliet@example.com/balcony'><body>é</body></message>".into(),
        },
        Body::ToUser {
            user: "juliet@example.com".into(),
            msg: UserWire::Attach {
                resource: "phone".into(),
                session: 11,
                state: WireState {
                    available: true,
                    priority: -3,
                    presence: Some("<presence xmlns='jabber:client'/>".into()),
                    interested: true,
                    carbons: false,
                    directed: vec!["romeo@example.net/orchard".into()],
                },
            },
        },
        Body::ToUser {
            user: "juliet@example.com".into(),
            msg: UserWire::Inbound { xml: "<presence xmlns='jabber:client' type='probe'/>".into(), start: true },
        },
        Body::Close {
            jid: "juliet@example.com/balcony".into(),
            session: 9,
            reason: RemoteClose::Error { condition: "conflict".into(), text: Some("replaced".into()) },
            status: Some("revoked".into()),
        },
        Body::Query { id: 4, what: r#"{"user":"juliet@example.com"}"#.into() },
        Body::Answer { id: 4, json: "[]".into() },
        Body::BoshRequest { id: 5, body: format!("<body xmlns='{HTTPBIND}' rid='1' sid='n1.abc'/>") },
        Body::BoshResponse { id: 5, body: format!("<body xmlns='{HTTPBIND}'/>") },
        Body::ToSessions {
            targets: vec![("juliet@example.com/balcony".into(), 7), ("romeo@example.net/x".into(), 8)],
            xml: "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>".into(),
        },
        Body::ResumeTake { id: 6, previd: "c21pZA".into(), user: "juliet@example.com".into() },
        Body::ResumeState { id: 6, state: vec![1, 2, 3] },
        Body::ResumeCommit { previd: "c21pZA".into(), ok: true },
        Body::ToDomain { xml: "<message xmlns='jabber:client' to='romeo@example.net'/>".into() },
        Body::ToRoom { xml: "<presence xmlns='jabber:client' to='room@conference.example.com/j'/>".into() },
        Body::RoomReload { room: "room@conference.example.com".into() },
        Body::RoomControl { room: "room@conference.example.com".into(), op: "destroy".into() },
        Body::Sync {
            id: 10,
            users: vec!["juliet@example.com".into(), "romeo@example.com".into()],
            depth: SyncDepth::Barrier { origin: "n1".into() },
        },
        Body::Sync { id: 11, users: vec!["juliet@example.com".into()], depth: SyncDepth::Fence },
        Body::Sync { id: 12, users: vec![], depth: SyncDepth::Link },
        Body::Synced { id: 10 },
        Body::Ping(3),
        Body::Pong(u64::MAX),
    ];
    let mut all = Vec::new();
    let mut cuts = Vec::new();
    for b in &bodies {
        let bytes = encode(b).expect("encode");
        cuts.push(all.len() + 2);
        all.extend_from_slice(&bytes);
    }
    write(
        "node_link",
        "all_frames",
        &with_cuts(&cuts[..15.min(cuts.len())], &all),
    );
    for (i, b) in bodies.iter().enumerate() {
        write(
            "node_link",
            &format!("frame_{i:02}"),
            &with_cuts(&[], &encode(b).expect("encode")),
        );
    }
    // A length prefix announcing more than is sent, and one past the limit.
    write("node_link", "short", &with_cuts(&[], &[0, 0, 1, 0, 3, 0]));
    write(
        "node_link",
        "too_large",
        &with_cuts(&[], &[0, 0x40, 0, 1, 3]),
    );
}

fn main() {
    // Files are overwritten, never removed: some targets' directories also hold seeds
    // written by hand (remove a generated file by hand when its name goes from here).
    stream_parser();
    websocket_framing();
    bosh_body();
    scram();
    jwt();
    node_link();
}
