//! Pure (no I/O, no async) incremental XMPP stream parser and element tree, built on
//! quick-xml (RFC 6120 §4 streams, §11 XML usage; RFC 7395 WebSocket framing).
//!
//! [`StreamParser`] takes bytes cut at any point and yields [`Event`]s: the stream
//! header, complete stanzas as [`Element`] trees, and the stream close. Feeding the
//! same bytes in any split gives the same events.
//!
//! How it works: a small byte scanner finds where each complete top-level item ends,
//! tracking nesting, quotes and CDATA, and enforces [`Limits`] while bytes accumulate,
//! so an oversized or over-deep stanza is refused before it is fully buffered. Only a
//! complete item is handed to quick-xml and built into a tree, with namespace prefixes
//! resolved against the stream header's declarations so stanzas inherit its default
//! namespace. Restricted XML (RFC 6120 §11.1: DTDs, comments, processing
//! instructions, entity references beyond the predefined ones) is refused.
//!
//! An idle parser (all input consumed) owns no input buffer: connections spend most of
//! their life idle, so its footprint is the struct plus the stream's namespace
//! bindings, a few hundred bytes.

mod element;
mod error;
pub mod escape;
mod scan;
mod scope;
pub mod size;
mod stream;
mod tree;

pub use element::{Element, Node};
pub use error::{Limits, XmlError};
pub use stream::{Event, StreamHeader, StreamParser};
