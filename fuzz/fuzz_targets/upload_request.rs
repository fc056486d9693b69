//! HTTP file upload (XEP-0363) input as Parley reads it: a slot request's XML through the
//! parser with small limits and `upload::parse_request`, and a PUT URL's id, name and query
//! (the input split at its first two `\n`) through `upload::parse_put`.
//!
//! Invariants: no panic; a request read has a plain file name (one path segment, at most
//! `MAX_FILENAME_BYTES`) that survives URL encoding, and a lowercase media type; a PUT URL
//! read names a valid file id and a plain file name, and its grant's URL parts read back to
//! the same grant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::upload::{self, MAX_FILENAME_BYTES};
use parley_xml::Element;

fuzz_target!(|data: &[u8]| {
    if let Ok(el) = Element::parse(data, &small_limits()) {
        if let Ok(r) = upload::parse_request(&el) {
            assert!(upload::valid_filename(&r.filename));
            assert!(r.filename.len() <= MAX_FILENAME_BYTES && !r.filename.contains('/'));
            let encoded = upload::path_segment(&r.filename);
            assert!(!encoded.contains(['/', '?', '#', '&']));
            assert_eq!(upload::decode_segment(&encoded).as_deref(), Some(r.filename.as_str()));
            if let Some(t) = &r.content_type {
                assert_eq!(upload::media_type(t).as_deref(), Some(t.as_str()));
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (Some(id), Some(name), Some(query)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if let Some((grant, sig)) = upload::parse_put(id, name, query) {
        assert!(upload::valid_file_id(&grant.id));
        assert!(upload::valid_filename(&grant.filename));
        let query = format!(
            "size={}&type={}&owner={}&expires={}&sig={}",
            grant.size,
            upload::path_segment(&grant.content_type),
            upload::path_segment(&grant.owner),
            grant.expires_ms,
            upload::path_segment(&sig)
        );
        let again = upload::parse_put(&grant.id, &upload::path_segment(&grant.filename), &query);
        assert_eq!(again, Some((grant, sig)));
    }
});
