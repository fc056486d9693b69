//! How a connection reaches the server: a TCP socket, or the pipe to a WebSocket
//! ([`super::ws`]) or BOSH ([`super::bosh`]) driver when the target names a web transport
//! (its addresses are then the server's HTTP listener).

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::{bosh, ws, Stream, STEP_TIMEOUT};
use crate::target::{Shared, Transport};
use crate::BenchError;

/// Connects to `addr` (from `source`) over the target's transport.
pub(super) async fn connect(
    shared: &Shared,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<Stream, BenchError> {
    let target = &shared.target;
    // Some servers (Prosody) choose the virtual host by the `Host` header.
    let host = || format!("{}:{}", target.domain, addr.port());
    match &target.transport {
        Transport::Tcp => Ok(Stream::Plain(tcp_connect(addr, source).await?)),
        Transport::Ws { path } => ws::connect(addr, source, &host(), path).await,
        Transport::Bosh { path } => {
            bosh::connect(bosh::Endpoint {
                addr,
                source,
                host: host(),
                path: path.clone(),
                counters: shared.web.clone(),
            })
            .await
        }
    }
}

/// A TCP connection to `addr`, optionally from `source`, with Nagle off.
pub(crate) async fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<TcpStream, BenchError> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| BenchError::io("creating a socket", e))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| BenchError::io(format!("binding to {ip}"), e))?;
    }
    let stream = tokio::time::timeout(STEP_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| BenchError::Timeout(format!("connecting to {addr}")))?
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
    // Stanzas are small and latency is measured: never wait for Nagle.
    stream
        .set_nodelay(true)
        .map_err(|e| BenchError::io("TCP_NODELAY", e))?;
    Ok(stream)
}
