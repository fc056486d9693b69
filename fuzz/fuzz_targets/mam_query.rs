//! A message archive request (XEP-0313) as Parley reads it: bytes through the XML parser
//! with small limits, then the query (`mam::parse_query`: its form, XEP-0082 times and
//! XEP-0059 paging), the preferences (`mam::Prefs::parse`), and the stanza-id removal of
//! XEP-0359 on the same element as if it were a message.
//!
//! Invariants: no panic; a query's page is never larger than the server's maximum, and its
//! start is never after its end; preferences list at most the bound of JIDs and come back
//! unchanged through their element; after the removal no `<stanza-id/>` that we stamp is
//! left, and every other child is kept in order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_proto::datetime;
use parley_proto::mam::{self, Prefs};
use parley_xml::Element;

const MAX_PAGE: usize = 100;
const MAX_JIDS: usize = 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(ms) = datetime::parse_xep0082(text) {
            // What we read we can write, and read back the same.
            assert_eq!(datetime::parse_xep0082(&datetime::xep0082(ms)), Some(ms));
        }
    }
    let Ok(el) = Element::parse(data, &small_limits()) else {
        return;
    };
    if let Ok(q) = mam::parse_query(&el, 50, MAX_PAGE) {
        assert!(q.max <= MAX_PAGE);
        assert!(q.start.zip(q.end).is_none_or(|(s, e)| s <= e));
    }
    if let Ok(p) = Prefs::parse(&el, MAX_JIDS) {
        assert!(p.always.len() + p.never.len() <= MAX_JIDS);
        assert_eq!(Prefs::parse(&p.to_element(), MAX_JIDS).as_ref(), Ok(&p));
    }
    let ours = |by: &str| by.ends_with("example.org");
    let others: Vec<Element> = el
        .children()
        .filter(|c| !(c.is("stanza-id", mam::SID) && c.attr("by").is_none_or(ours)))
        .cloned()
        .collect();
    let mut msg = el.clone();
    mam::strip_stanza_ids(&mut msg, ours);
    assert_eq!(msg.children().cloned().collect::<Vec<_>>(), others);
});
