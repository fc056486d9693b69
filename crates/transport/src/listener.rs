//! c2s listeners: accept, then hand each connection to a session on a worker arbiter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Actor;
use actix_rt::ArbiterHandle;
use parley_session::{Session, SessionEnv};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::conn::TcpConnection;
use crate::tls::{TlsSetup, TransportError};

/// Which kind of c2s port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP with STARTTLS (RFC 6120 §5).
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

/// Binds a listening socket (with SO_REUSEADDR, as servers do).
pub fn bind_listener(addr: SocketAddr) -> Result<std::net::TcpListener, TransportError> {
    let bind_err = |e: std::io::Error| TransportError::Bind {
        addr,
        reason: e.to_string(),
    };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket.bind(addr).map_err(bind_err)?;
    let listener = socket.listen(1024).map_err(bind_err)?;
    listener.into_std().map_err(bind_err)
}

/// Accepts connections forever, starting one session per connection on the worker arbiters
/// in turn. The socket is re-registered on the worker's own reactor, so that the accepting
/// thread never carries other threads' I/O.
pub async fn serve_c2s(
    listener: std::net::TcpListener,
    kind: ListenerKind,
    env: Arc<SessionEnv>,
    tls: Option<Arc<TlsSetup>>,
    workers: Arc<Vec<ArbiterHandle>>,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot use the listening socket");
            return;
        }
    };
    let next = AtomicUsize::new(0);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: keep serving the sessions we have, retry shortly.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        debug!(%peer, "accepted");
        let _ = stream.set_nodelay(true);
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot detach accepted socket");
                continue;
            }
        };
        let worker = &workers[next.fetch_add(1, Ordering::Relaxed) % workers.len()];
        let env = env.clone();
        let tls = tls.clone();
        worker.spawn_fn(move || {
            let stream = match tokio::net::TcpStream::from_std(std_stream) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot register socket");
                    return;
                }
            };
            let conn = match (kind, tls) {
                (ListenerKind::DirectTls, Some(tls)) => TcpConnection::direct_tls(stream, tls),
                (ListenerKind::DirectTls, None) => return,
                (ListenerKind::StartTls, tls) => TcpConnection::plain(stream, tls),
            };
            Session::new(env, Box::new(conn)).start();
        });
    }
}
