//! The PROXY protocol (v1 or v2) on the web listener (`[http] proxy_protocol_from`): a TCP
//! load balancer in front of WebSocket and BOSH puts the client's address before the HTTP
//! bytes, as it does on the client ports (`[c2s] proxy_protocol_from`).
//!
//! From a listed balancer a header is required; any other peer is refused before a byte of
//! HTTP is read (it could not be told from a client lying about its address), and so is a
//! balancer's connection whose header is broken or late. Each refusal is counted
//! (`parley_connections_total{listener="http"}`, `parley_refusals_total`) and logged once
//! per peer. The client the header names becomes the request's client for per-address
//! limits, session records and logs (`WebState::client_addr`); whether
//! the connection counts as encrypted is still judged on the balancer's own connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::Extensions;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::proxy::TrustedProxies;

/// Who may put a PROXY header before a web connection, and how long it may take.
#[derive(Debug)]
pub struct WebProxy {
    /// The balancers (`[http] proxy_protocol_from`).
    pub trusted: TrustedProxies,
    /// `[http] proxy_header_timeout_s`.
    pub timeout: Duration,
}

/// A connection as the HTTP layer reads it, with the client its balancer named.
pub(crate) struct Proxied {
    io: TcpStream,
    client: Option<SocketAddr>,
}

/// The client a balancer's PROXY header named for this request's connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProxiedClient(pub(crate) SocketAddr);

/// Puts the header's client into the connection's data, for every request on it.
pub(crate) fn on_connect(io: &Proxied, data: &mut Extensions) {
    if let Some(client) = io.client {
        data.insert(ProxiedClient(client));
    }
}

/// Takes a new connection from `peer`: as it is without `proxy`; else, from a balancer,
/// with the client its header names (the balancer itself for `LOCAL`/`UNSPEC`). Any other
/// connection is refused.
pub(crate) async fn accept(
    mut io: TcpStream,
    peer: Option<SocketAddr>,
    proxy: Option<&WebProxy>,
) -> Result<Proxied, DispatchError> {
    let Some(proxy) = proxy else {
        return Ok(Proxied { io, client: None });
    };
    let Some(peer) = peer else {
        return Err(refused("proxy_untrusted", None));
    };
    if !proxy.trusted.contains(peer.ip()) {
        return Err(refused("proxy_untrusted", Some(peer)));
    }
    match tokio::time::timeout(proxy.timeout, parley_transport::read_proxy_header(&mut io)).await {
        Ok(Ok(source)) => Ok(Proxied {
            io,
            client: Some(source.unwrap_or(peer)),
        }),
        Ok(Err(_)) => Err(refused("proxy_malformed", Some(peer))),
        Err(_) => Err(refused("proxy_timeout", Some(peer))),
    }
}

/// Counts and logs (once per peer) a connection refused for `reason`; what the HTTP layer
/// gets instead of the connection.
fn refused(reason: &'static str, peer: Option<SocketAddr>) -> DispatchError {
    parley_transport::proxy_refused(
        "http",
        "http.proxy_protocol_from",
        reason,
        peer.map(|p| p.ip()),
    );
    DispatchError::Io(io::Error::new(io::ErrorKind::PermissionDenied, reason))
}

impl AsyncRead for Proxied {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Proxied {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
