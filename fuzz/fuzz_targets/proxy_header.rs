//! The PROXY protocol header parser (`parley_proto::proxy_protocol::parse`), which reads the
//! first bytes of every connection on a listener behind a load balancer (`[c2s]
//! proxy_protocol_from`) — before anything else is known of the peer.
//!
//! Invariants: no panic; a header is never longer than the input nor than the v1/v2 bounds;
//! parsing just the header gives the same answer (nothing after it was looked at), and a
//! strict prefix of a complete header asks for more bytes instead of deciding; a v1 source
//! address is of the family its line names.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::proxy_protocol::{parse, ProxyHeader, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(ProxyHeader { len, source })) = parse(data) else {
        return;
    };
    assert!(len <= data.len(), "a header longer than the input");
    assert!(len <= V1_MAX.max(V2_MAX), "a header past the bounds");
    assert_eq!(
        parse(&data[..len]),
        Ok(Some(ProxyHeader { len, source })),
        "the bytes after the header changed the answer"
    );
    for cut in [0, 1, len / 2, len.saturating_sub(1)] {
        if cut < len {
            assert_eq!(parse(&data[..cut]), Ok(None), "a prefix of {cut} bytes decided");
        }
    }
    if data.starts_with(b"PROXY TCP4 ") {
        assert!(source.is_none_or(|s| s.is_ipv4()));
    }
    if data.starts_with(b"PROXY TCP6 ") {
        assert!(source.is_none_or(|s| s.is_ipv6()));
    }
});
