//! Parse cost of hostile 256 KiB stanzas (RFC 6120 §13.9.4), one benchmark each; the
//! target is under 20 ms apiece. Run with
//! `cargo bench -p parley-xml --bench hostile -- --warm-up-time 1 --measurement-time 3`.
//! An input the parser refuses is timed up to its refusal.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use parley_xml::{Event, Limits, StreamParser};

mod hostile_inputs;

const HEADER: &str = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";

fn parse_one(xml: &[u8]) -> usize {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    p.feed(xml);
    let mut n = 0;
    loop {
        match p.next_event() {
            Ok(Some(Event::Stanza(e))) => {
                // Serializing is part of the cost a stanza imposes (routing, storage).
                n += e.to_bytes_in(Some("jabber:client")).len();
                black_box(e);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return n,
        }
    }
}

fn hostile(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostile");
    g.sample_size(10);
    for h in hostile_inputs::all() {
        g.throughput(Throughput::Bytes(h.xml.len() as u64));
        g.bench_function(h.name, |b| b.iter(|| parse_one(h.xml.as_bytes())));
    }
    g.finish();
}

criterion_group!(benches, hostile);
criterion_main!(benches);
