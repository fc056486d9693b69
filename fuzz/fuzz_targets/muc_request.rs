//! What an occupant sends a chat room (XEP-0045) as Parley reads it: bytes through the XML
//! parser with small limits, then every reader of the room's input — a join's password and
//! history request (§7.2), an admin query's items (§8–§9), invitations (§7.8), a
//! configuration form (§10.2) — and the stripping of room-only payloads (XEP-0421 §4).
//!
//! Invariants: no panic; an admin query has 1 to `MAX_ADMIN_ITEMS` items with a role or an
//! affiliation, reasons and passwords stay within `MAX_REASON_BYTES`, invitations within
//! the cap asked for; an accepted configuration keeps its occupant and history caps and
//! is unlocked; after stripping no room payload is left.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_fuzz::small_limits;
use parley_muc::RoomConfig;
use parley_proto::muc::{self, MAX_ADMIN_ITEMS, MAX_REASON_BYTES};
use parley_xml::Element;

fuzz_target!(|data: &[u8]| {
    let Ok(el) = Element::parse(data, &small_limits()) else {
        return;
    };
    if let Some(join) = muc::parse_join(&el) {
        assert!(join.password.is_none_or(|p| p.len() <= MAX_REASON_BYTES));
    }
    if let Ok(items) = muc::parse_admin(&el) {
        assert!(!items.is_empty() && items.len() <= MAX_ADMIN_ITEMS);
        for item in items {
            assert!(item.role.is_some() || item.affiliation.is_some());
            assert!(item.reason.is_none_or(|r| r.len() <= MAX_REASON_BYTES));
        }
    }
    assert!(muc::parse_invitations(&el, 3).len() <= 3);
    // As a room starts: within the service's caps (100 occupants, 50 history messages).
    let before = RoomConfig {
        locked: true,
        max_occupants: 50,
        history_length: 20,
        ..RoomConfig::default()
    };
    for form in std::iter::once(&el).chain(el.children()) {
        if let Ok(next) = before.apply(form, 100, 50) {
            assert!((1..=100).contains(&next.max_occupants));
            assert!(next.history_length <= 50);
            assert!(!next.locked);
            assert!(next
                .password
                .as_ref()
                .is_none_or(|p| !p.is_empty() && p.len() <= MAX_REASON_BYTES));
            let json = next.to_json();
            assert_eq!(RoomConfig::from_json(&json), Some(next));
        }
    }
    let mut stripped = el.clone();
    muc::strip_room_payloads(&mut stripped);
    assert!(!stripped.has_child("x", muc::NS_USER));
    assert!(!stripped.has_child("occupant-id", muc::NS_OCCUPANT_ID));
});
