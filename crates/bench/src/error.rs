//! The one error type of the load generator.

use std::net::SocketAddr;

use parley_proto::sasl::SaslFailure;

use crate::scram::ScramError;

/// Why a scenario (or one of its connections) failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Only loopback servers are ever targets: load is never sent off the machine.
    #[error("refusing non-loopback address {0}: parley-bench only targets 127.0.0.0/8 or ::1")]
    NotLoopback(String),
    /// A socket error, with what the generator was doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The server sent XML the parser refused.
    #[error("bad XML from {addr}: {source}")]
    Xml {
        addr: SocketAddr,
        #[source]
        source: parley_xml::XmlError,
    },
    /// SASL `<failure/>` from the server.
    #[error("SASL failure for {user}: {condition}")]
    Sasl {
        user: String,
        condition: SaslFailure,
    },
    /// The client side of SCRAM refused the server's messages.
    #[error("SCRAM for {user}: {source}")]
    Scram {
        user: String,
        #[source]
        source: ScramError,
    },
    /// The server sent something the protocol does not allow at that point.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server closed the stream or connection unexpectedly.
    #[error("connection closed by the server: {0}")]
    Closed(String),
    /// Something expected did not arrive in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Options that cannot work together.
    #[error("invalid options: {0}")]
    Options(String),
    /// Reading /proc failed.
    #[error("/proc/{pid}: {reason}")]
    Proc { pid: u32, reason: String },
    /// Provisioning through the server's storage failed.
    #[error("storage: {0}")]
    Storage(#[from] parley_storage::StorageError),
}

impl BenchError {
    /// A socket or system error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}
