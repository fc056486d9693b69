//! Node-link frame decoding (`parley_cluster::link::Decoder`): what a node reads from a
//! peer, fed at cut points the input chooses (see `parley_fuzz::split_input`). With mutual
//! TLS off (or a stolen certificate) the peer may be anyone on the cluster network.
//!
//! Invariants: no panic and no allocation beyond what was received (libFuzzer's
//! `-rss_limit_mb`/`-malloc_limit_mb` catch a length prefix believed); the frames and the
//! first error are the same however the bytes were cut; every decoded frame encodes and
//! decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_cluster::link::{encode, Body, Decoder, LinkError};
use parley_fuzz::split_input;

fn drive(pieces: &[&[u8]]) -> (Vec<Body>, Option<LinkError>) {
    let mut d = Decoder::default();
    let mut frames = Vec::new();
    for piece in pieces {
        d.feed(piece);
        loop {
            match d.next_frame() {
                Ok(Some(body)) => frames.push(body),
                Ok(None) => break,
                // The link is closed on the first error.
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let (pieces, whole) = split_input(data);
    let cut = drive(&pieces);
    let one = drive(&[whole]);
    assert_eq!(cut, one, "the result depends on where the input was cut");
    for body in &one.0 {
        let bytes = encode(body).expect("a decoded frame encodes");
        let mut d = Decoder::default();
        d.feed(&bytes);
        assert_eq!(d.next_frame(), Ok(Some(body.clone())));
        assert_eq!(d.next_frame(), Ok(None));
    }
});
