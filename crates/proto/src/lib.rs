//! XMPP protocol types shared by every Parley crate: namespaces, stream and
//! stanza errors, stanza helpers, the SASL (SCRAM with -PLUS, PLAIN, OAUTHBEARER)
//! state machines, token strings, HS256 JWT verification and XEP-0191 payloads.
//!
//! Everything here is pure: no sockets, no async, no actors, and no rule reads the clock
//! (callers pass the time in; `clock` is the workspace's one reading of it, for callers). That keeps the protocol rules testable from literal bytes and
//! reusable by the server, the test kit and the load generator alike.

pub mod avatar;
pub mod blocking;
pub mod bookmarks;
pub mod caps;
pub mod clock;
pub mod component;
pub mod csi;
pub mod datetime;
pub mod dialback;
pub mod extdisco;
pub mod jwt;
pub mod mam;
pub mod muc;
pub mod ns;
pub mod piefxis;
pub mod proxy_protocol;
pub mod pubsub;
pub mod push;
pub mod register;
pub mod s2s;
pub mod sasl;
pub mod sm;
pub mod stanza;
pub mod stanza_error;
pub mod stream_error;
pub mod token;
pub mod upload;

pub use stanza::{stanza_type, StanzaKind};
pub use stanza_error::{error_reply, iq_result, is_error, ErrorType, StanzaCondition, StanzaError};
pub use stream_error::{StreamCondition, StreamError};
