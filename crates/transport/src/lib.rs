//! Sockets: the c2s, component and server-to-server TCP listeners, outgoing server
//! connections (`dial`, with DNS resolution in `resolve`), TLS (STARTTLS and XEP-0368 direct TLS), certificates and
//! channel bindings.
//!
//! This is the only crate (with parley-http) that touches sockets. Each accepted
//! connection becomes a [`TcpConnection`] and is handed to a new session actor on one of the
//! worker arbiters; from then on the session drives the connection itself.

mod conn;
pub mod dial;
mod listener;
pub mod resolve;
mod s2s_tls;
mod tls;
mod tls_state;

pub use conn::TcpConnection;
pub use dial::TcpDialer;
pub use listener::{
    bind_listener, proxy_refused, read_proxy_header, serve_c2s, ListenerKind, ProxyTrust,
};
pub use tls::{TlsCell, TlsSetup, TransportError};
