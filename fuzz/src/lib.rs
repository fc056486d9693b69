//! Helpers shared by Parley's fuzz targets (see `fuzz_targets/` and
//! docs/security.md).
//!
//! Incremental decoders must give the same result however the network cut their input,
//! so several targets read cut points from the first bytes of the fuzz input: the fuzzer
//! then explores the cuts together with the content, instead of us trying a fixed few.

use parley_xml::{Element, Limits};

/// Most cut points one input may ask for; enough to split every interesting token.
const MAX_CUTS: usize = 15;

/// Splits a fuzz input into `(pieces, whole)`.
///
/// Layout: byte 0 is the number of cuts `n` (mod 16), then `n` big-endian `u16` offsets,
/// taken modulo the payload length; the rest is the payload. The pieces are the payload
/// cut at the sorted, de-duplicated offsets; concatenated they give `whole` back. Too
/// short an input is all payload, uncut, so plain text seeds still work.
pub fn split_input(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let n = data.first().map_or(0, |&b| usize::from(b) % (MAX_CUTS + 1));
    if data.len() < 1 + 2 * n {
        return (vec![data], data);
    }
    let (header, payload) = data.split_at(1 + 2 * n);
    if payload.is_empty() {
        return (vec![payload], payload);
    }
    let mut cuts: Vec<usize> = header[1..]
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % payload.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for cut in cuts {
        pieces.push(&payload[at..cut]);
        at = cut;
    }
    pieces.push(&payload[at..]);
    (pieces, payload)
}

/// Small limits, so that inputs of a few KiB (libFuzzer's default length) reach them.
pub fn small_limits() -> Limits {
    Limits {
        max_stanza_bytes: 2048,
        max_depth: 8,
        max_attrs: 8,
        max_namespace_declarations: 8,
    }
}

/// Limits that never bind: for re-parsing what the server itself serialized, which may be
/// longer than the input (escaping) but must still mean the same.
pub fn no_limits() -> Limits {
    Limits {
        max_stanza_bytes: usize::MAX / 2,
        max_depth: usize::MAX / 2,
        max_attrs: usize::MAX / 2,
        max_namespace_declarations: usize::MAX / 2,
    }
}

/// What every accepted element must satisfy: serialized on its own (as the server
/// forwards it: to another session, over a node link, into a BOSH or WebSocket frame) it
/// parses back to the very same element. Otherwise a crafted stanza could change meaning
/// (or split into two) on its way through the server.
pub fn assert_round_trips(el: &Element) {
    let xml = el.to_string();
    match Element::parse(xml.as_bytes(), &no_limits()) {
        Ok(back) => assert_eq!(&back, el, "serialized as {xml:?}"),
        Err(e) => panic!("the server's own serialization {xml:?} does not parse: {e}"),
    }
}

pub mod scram_fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_input_pieces_concatenate_to_the_payload() {
        let data = [2u8, 0, 3, 0, 1, b'a', b'b', b'c', b'd', b'e'];
        let (pieces, whole) = split_input(&data);
        assert_eq!(whole, b"abcde");
        assert_eq!(pieces, vec![&b"a"[..], b"bc", b"de"]);
        let (pieces, whole) = split_input(b"<a/>");
        assert_eq!(pieces.concat(), whole);
    }
}
