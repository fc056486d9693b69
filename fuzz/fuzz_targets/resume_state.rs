//! A session's state as another node sends it when a client resumes there (XEP-0198 §5
//! across nodes): `parley_session::read_state`, what the resuming node runs on the bytes
//! of a `ResumeState` frame before it adopts anything. The peer is authenticated, but a
//! node must not be taken down by one that is broken or compromised.
//!
//! Invariants: no panic and no allocation beyond what was received (libFuzzer's
//! `-rss_limit_mb`/`-malloc_limit_mb` catch a believed length prefix); an accepted state
//! names a full JID.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(jid) = parley_session::read_state(data) {
        assert!(jid.contains('/'), "a resumed session is bound to a full JID: {jid}");
    }
});
