//! c2s and component listeners: accept, then hand each connection to a session on a worker
//! arbiter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Actor;
use actix_rt::ArbiterHandle;
use parley_session::limits::{self, Refusal};
use parley_session::{Session, SessionEnv};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::conn::TcpConnection;
use crate::tls::{TlsCell, TransportError};

/// Which kind of c2s port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP with STARTTLS (RFC 6120 §5).
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
    /// External components (XEP-0114): plain TCP, a component's stream, never a client's.
    Component,
    /// Other servers (RFC 6120 server-to-server): plain TCP with STARTTLS.
    S2s,
    /// Other servers with TLS from the first byte (XEP-0368 `_xmpps-server`).
    S2sDirectTls,
}

impl ListenerKind {
    /// The `listener` label of its connections in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::StartTls => "c2s",
            ListenerKind::DirectTls => "c2s_direct_tls",
            ListenerKind::Component => "component",
            ListenerKind::S2s => "s2s",
            ListenerKind::S2sDirectTls => "s2s_direct_tls",
        }
    }
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

/// Who may put a PROXY protocol header (v1 or v2) before a connection on this listener
/// (`[c2s] proxy_protocol_from`): the load balancers. From them a header is required and
/// its client address is what sessions, logs and per-address limits see; any other peer is
/// refused, since it could not be told from a client lying about its address.
pub struct ProxyTrust {
    /// Whether a peer is one of the balancers.
    pub trusted: Box<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>,
    /// How long a balancer may take to send the header.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for ProxyTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTrust")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What every accepted connection of one listener is started with.
struct Accepting {
    kind: ListenerKind,
    env: Arc<SessionEnv>,
    tls: Option<Arc<TlsCell>>,
    workers: Arc<Vec<ArbiterHandle>>,
    next: AtomicUsize,
}

/// Accepts connections forever, starting one session per connection on the worker arbiters
/// in turn. The socket is re-registered on the worker's own reactor, so that the accepting
/// thread never carries other threads' I/O. With `proxy`, each connection's PROXY header is
/// read first, on a task of its own (a slow balancer holds up nobody else).
pub async fn serve_c2s(
    listener: std::net::TcpListener,
    kind: ListenerKind,
    env: Arc<SessionEnv>,
    tls: Option<Arc<TlsCell>>,
    workers: Arc<Vec<ArbiterHandle>>,
    proxy: Option<Arc<ProxyTrust>>,
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
    let accepting = Arc::new(Accepting {
        kind,
        env,
        tls,
        workers,
        next: AtomicUsize::new(0),
    });
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
        let Some(proxy) = &proxy else {
            accepting.start(stream, peer);
            continue;
        };
        if !(proxy.trusted)(peer.ip()) {
            accepting.proxy_refused("proxy_untrusted", peer);
            continue;
        }
        let (accepting, proxy) = (accepting.clone(), proxy.clone());
        actix_rt::spawn(async move {
            let mut stream = stream;
            match tokio::time::timeout(proxy.timeout, read_proxy_header(&mut stream)).await {
                Ok(Ok(source)) => accepting.start(stream, source.unwrap_or(peer)),
                Ok(Err(_)) => accepting.proxy_refused("proxy_malformed", peer),
                Err(_) => accepting.proxy_refused("proxy_timeout", peer),
            }
        });
    }
}

/// Counts a connection of `listener` refused for its PROXY header (`reason`), and logs it
/// once per address, naming the config key that lists the balancers. The web listener
/// (parley-http) counts its own refusals here too.
pub fn proxy_refused(
    listener: &'static str,
    key: &'static str,
    reason: &'static str,
    ip: Option<std::net::IpAddr>,
) {
    parley_router::metrics::CONNECTIONS.inc(listener, reason);
    let ip = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if parley_router::metrics::refuse(reason, &ip) {
        warn!(%ip, reason, key, "connection refused: PROXY protocol");
    }
}

/// Reads exactly the PROXY header at the start of `stream` (never a byte of what follows,
/// which is the client's): the client's address, if the header names one. The web
/// listener (parley-http) reads its balancers' headers with it too.
pub async fn read_proxy_header(
    stream: &mut tokio::net::TcpStream,
) -> Result<Option<SocketAddr>, parley_proto::proxy_protocol::ProxyError> {
    use parley_proto::proxy_protocol::{parse, ProxyError, V2_MAX, V2_SIGNATURE};
    use tokio::io::AsyncReadExt;
    let io = |_| ProxyError::Malformed("the connection ended in the header");
    let mut buf = Vec::with_capacity(108);
    loop {
        if buf.len() == 16 && buf[..12] == V2_SIGNATURE {
            // v2: the length is known; the rest in one read.
            let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
            if total > V2_MAX {
                return Err(ProxyError::Malformed("v2 header too long"));
            }
            buf.resize(total, 0);
            stream.read_exact(&mut buf[16..]).await.map_err(io)?;
        } else {
            // v1 ends at a CRLF: byte by byte, so nothing after it is taken (a balancer's
            // header, once per connection).
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.map_err(io)?;
            buf.push(byte[0]);
        }
        if let Some(header) = parse(&buf)? {
            return Ok(header.source);
        }
    }
}

impl Accepting {
    /// A connection from a balancer that gets no session (counted, logged once per peer).
    fn proxy_refused(&self, reason: &'static str, peer: SocketAddr) {
        proxy_refused(
            self.kind.label(),
            "c2s.proxy_protocol_from",
            reason,
            Some(peer.ip()),
        );
    }

    /// Admits a connection from `peer` (the client, behind a balancer) and starts its
    /// session on the next worker.
    fn start(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let kind = self.kind;
        let permit = match self.env.conn_limiter.acquire(Some(peer.ip())) {
            Ok(permit) => permit,
            Err(refusal) => {
                parley_router::metrics::CONNECTIONS.inc(kind.label(), refusal.reason());
                refuse_connection(stream, peer, kind, refusal, &self.env);
                return;
            }
        };
        parley_router::metrics::CONNECTIONS.inc(kind.label(), "accepted");
        let _ = stream.set_nodelay(true);
        keepalive(&stream, &self.env);
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot detach accepted socket");
                return;
            }
        };
        let workers = &self.workers;
        let worker = &workers[self.next.fetch_add(1, Ordering::Relaxed) % workers.len()];
        let env = self.env.clone();
        // The certificate as of this accept: a reload (SIGHUP) changes the next ones.
        let tls = self.tls.as_ref().map(|cell| cell.current());
        worker.spawn_fn(move || {
            let stream = match tokio::net::TcpStream::from_std(std_stream) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot register socket");
                    return;
                }
            };
            let session = match (kind, tls) {
                (ListenerKind::DirectTls, Some(tls)) => Session::new(
                    env,
                    Box::new(TcpConnection::direct_tls(stream, tls).with_peer(peer)),
                ),
                (ListenerKind::DirectTls | ListenerKind::S2sDirectTls, None) => return,
                (ListenerKind::StartTls, tls) => Session::new(
                    env,
                    Box::new(TcpConnection::plain(stream, tls).with_peer(peer)),
                ),
                (ListenerKind::Component, _) => {
                    Session::component(env, Box::new(TcpConnection::plain(stream, None)))
                }
                (ListenerKind::S2s, tls) => {
                    Session::s2s_incoming(env, Box::new(TcpConnection::plain(stream, tls)))
                }
                (ListenerKind::S2sDirectTls, Some(tls)) => {
                    Session::s2s_incoming(env, Box::new(TcpConnection::direct_tls(stream, tls)))
                }
            };
            session.with_permit(permit).start();
        });
    }
}

/// Refused connections still waiting for the client's side of the close, at most; past it a
/// refused connection is dropped at once (a flood must not buy itself tasks).
const MAX_LINGERING: usize = 256;
/// How long a refused connection waits for the client's side of the close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Turns a connection away without starting a session. On the STARTTLS port the client gets
/// a whole stream with the error (RFC 6120 §4.9.3.14 `<policy-violation/>` or §4.9.3.17
/// `<resource-constraint/>`, see [`Refusal::condition`]; while the node drains, §4.9.3.19
/// `<see-other-host/>` naming `[c2s] redirect_host` when set, else `<system-shutdown/>`),
/// written in one non-blocking write into the fresh socket's empty buffer. A direct-TLS connection is closed without a word:
/// saying why would cost a TLS handshake per refused attempt, which is what a flood wants.
fn refuse_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    refusal: Refusal,
    env: &SessionEnv,
) {
    if parley_router::metrics::refuse(refusal.reason(), &peer.ip().to_string()) {
        warn!(ip = %peer.ip(), reason = refusal.reason(), "connection refused");
    }
    if matches!(kind, ListenerKind::DirectTls | ListenerKind::S2sDirectTls) {
        return;
    }
    let host = env.router.hosts().next().unwrap_or("localhost").to_owned();
    let _ = stream.try_write(&limits::refusal_stream(
        &host,
        refusal,
        env.conn_limiter.redirect(),
        match kind {
            ListenerKind::Component => parley_proto::ns::COMPONENT,
            ListenerKind::S2s | ListenerKind::S2sDirectTls => parley_proto::ns::SERVER,
            ListenerKind::StartTls | ListenerKind::DirectTls => parley_proto::ns::CLIENT,
        },
    ));
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    // Closing a socket with unread input resets it, and the reset can destroy the error
    // before the client reads it: half-close, then take (and drop) what the client sends
    // until it closes too, for a short while.
    actix_rt::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

/// TCP keepalive on a client socket, so that the kernel too finds a peer that vanished
/// (a phone that lost its network sends no FIN): probes start after `[c2s] ping_interval_s`
/// of silence (the XEP-0199 pings cover the same ground at the XMPP level) and repeat
/// every third of `ping_timeout_s`.
fn keepalive(stream: &tokio::net::TcpStream, env: &parley_session::SessionEnv) {
    let Some(idle) = env.config.ping_interval else {
        return;
    };
    let every = (env.config.ping_timeout / 3).max(std::time::Duration::from_secs(1));
    let ka = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(every);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        debug!(error = %e, "cannot set TCP keepalive");
    }
}
