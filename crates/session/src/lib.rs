//! The session actor: one per client connection, whatever the transport.
//!
//! A [`Session`] owns its [`Connection`] (the transport's byte pipe), its incremental stream
//! parser and its bounded outbound queue. It negotiates the stream (RFC 6120 §4–§7: stream
//! headers, STARTTLS, SASL, resource binding), answers the stanzas the server handles itself,
//! and hands everything else to the [`parley_router::Router`]. It never reads another session's
//! state: other sessions are only reachable through their handles.
//!
//! The phase of a session is a type ([`Phase`]): unauthed → authed → bound → established.

mod actor;
pub mod archive;
mod auth;
pub mod auth_limits;
mod bind;
mod bounds;
mod component;
mod connection;
mod csi;
mod driver;
mod env;
pub mod faults;
pub mod limits;
pub mod mam;
mod negotiation;
mod outbox;
mod output;
mod pep_sync;
mod phase;
mod private;
mod push;
mod register;
mod remote;
mod resume;
pub mod resumption;
pub mod s2s;
mod sasl;
mod server_iq;
mod session;
pub mod signup;
mod sm;
mod stanzas;

pub mod tokens;
pub use bind::{BindError, PrebindReply};
pub use connection::{Connection, Framing, Security, Unit};
pub use env::{
    ComponentSettings, ExternalAuth, ExternalServices, JwtSettings, SessionConfig, SessionEnv,
    SmConfig,
};
pub use register::AccountSessions;
pub use remote::{read_state, BoxFuture, RemoteResume};
pub use resumption::Resumptions;
pub use session::{Bound, EndCause, Phase, Session, SessionType, Unauthed};

#[cfg(test)]
mod duplex_tests;
