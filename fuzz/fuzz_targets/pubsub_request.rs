//! A personal eventing request (XEP-0163 on XEP-0060) as an account's service reads it:
//! bytes through the XML parser with small limits, then `pubsub::parse`, each request's
//! options applied to a node configuration (XEP-0223) and checked as preconditions, and the
//! same element as a disco#info answer through `caps::ver` (XEP-0115 §5.1, with forms) and
//! `pubsub::notify_nodes`.
//!
//! Invariants: no panic; a parsed request names a non-empty node; a configuration that
//! accepted the options satisfies them as preconditions, stays within the item bound, and
//! comes back unchanged through its form; a caps hash is 28 base64 characters.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::caps;
use parley_proto::pubsub::{self, form_fields, NodeConfig, Request};
use parley_xml::Element;

const MAX_ITEMS: u64 = 256;

fuzz_target!(|data: &[u8]| {
    let Ok(el) = Element::parse(data, &small_limits()) else {
        return;
    };
    if let Ok(request) = pubsub::parse(&el) {
        let (node, options) = match &request {
            Request::Publish { node, options, .. } => (node, options.clone()),
            Request::Create { node, config } | Request::ConfigureSet { node, config } => {
                (node, config.clone())
            }
            Request::Retract { node, .. }
            | Request::Items { node, .. }
            | Request::ConfigureGet { node }
            | Request::Delete { node }
            | Request::Purge { node } => (node, Vec::new()),
        };
        assert!(!node.is_empty());
        let mut config = NodeConfig::pep_default();
        if config.apply(&options, MAX_ITEMS).is_ok() {
            assert!(config.satisfies(&options, MAX_ITEMS));
            assert!((1..=MAX_ITEMS).contains(&config.max_items));
            let mut back = NodeConfig::pep_default();
            back.apply(&form_fields(&config.to_form()), MAX_ITEMS).unwrap();
            assert_eq!(back, config);
        }
    }
    assert_eq!(caps::ver(&el).len(), 28);
    let _ = pubsub::notify_nodes(&el);
    let _ = pubsub::caps_of(&el);
});
