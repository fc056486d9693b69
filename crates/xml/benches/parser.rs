//! Throughput of the stream parser on a long run of typical chat traffic, and of
//! stanza serialization. Run with `cargo bench -p parley-xml --bench parser`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parley_xml::{Element, Event, Limits, StreamParser};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='im.example.com' version='1.0' \
    xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// About 1 MiB of the stanzas a busy client sends: chat messages with chat states
/// and receipts, presence, and the odd iq, with the entities real text contains.
fn chat_stream() -> Vec<u8> {
    let mut s = String::from(HEADER);
    let mut i = 0usize;
    while s.len() < 1 << 20 {
        match i % 10 {
            0 => s.push_str(&format!(
                "<presence id='p{i}'><show>away</show><status>Gone fishing &amp; back soon</status>\
                 <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' \
                 ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\n"
            )),
            1 => s.push_str(&format!(
                "<iq type='get' id='ping{i}' to='im.example.com'><ping xmlns='urn:xmpp:ping'/></iq>"
            )),
            _ => s.push_str(&format!(
                "<message to='romeo@example.net/orchard' from='juliet@example.com/balcony' type='chat' \
                 id='msg-{i}' xml:lang='en'><body>O Romeo, Romeo! wherefore art thou Romeo? Deny thy \
                 father and refuse thy name &lt;3 \u{2764}\u{FE0F} message number {i}</body>\
                 <active xmlns='http://jabber.org/protocol/chatstates'/>\
                 <request xmlns='urn:xmpp:receipts'/></message>\r\n"
            )),
        }
        i += 1;
    }
    s.into_bytes()
}

fn drain(p: &mut StreamParser) -> usize {
    let mut n = 0;
    while let Some(ev) = p.next_event().expect("benchmark input is valid") {
        n += 1;
        black_box(ev);
    }
    n
}

fn parse(c: &mut Criterion) {
    let input = chat_stream();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("chat_stream_whole", |b| {
        b.iter(|| {
            let mut p = StreamParser::new(Limits::default());
            p.feed(&input);
            drain(&mut p)
        })
    });
    // Socket-sized reads cut stanzas at arbitrary points.
    g.bench_function("chat_stream_4k_reads", |b| {
        b.iter(|| {
            let mut p = StreamParser::new(Limits::default());
            let mut n = 0;
            for chunk in input.chunks(4096) {
                p.feed(chunk);
                n += drain(&mut p);
            }
            n
        })
    });
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let mut p = StreamParser::new(Limits::default());
    p.feed(chat_stream().as_slice());
    let mut stanzas: Vec<Element> = Vec::new();
    while let Some(ev) = p.next_event().expect("benchmark input is valid") {
        if let Event::Stanza(e) = ev {
            stanzas.push(e);
        }
    }
    let mut out = Vec::new();
    for s in &stanzas {
        s.write_to(&mut out, Some("jabber:client"));
    }
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("chat_stanzas", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(out.len()),
            |buf| {
                for s in &stanzas {
                    s.write_to(buf, Some("jabber:client"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parse, serialize);
criterion_main!(benches);
