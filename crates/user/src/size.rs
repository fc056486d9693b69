//! The stanza size estimate the user layer bounds its queues with; it lives in
//! `parley-xml` so that every actor with a mailbox (rooms too) counts alike.

pub use parley_xml::size::approx_bytes;
