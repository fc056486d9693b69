//! Node links over TCP: a listener that accepts peers' frames, and an outgoing link per peer
//! with a bounded queue, reconnection with backoff, and a hold bound.
//!
//! Every connection runs the [`crate::auth`] handshake first, within a timeout; no frame of a
//! peer is handed on before it has proven the cluster secret (or mutual TLS did). The
//! listener also caps the connections open at once from one address, so that a stranger
//! cannot tie up the node with half-open handshakes.
//!
//! A frame queued while its link is down waits for the link to come back; if the link stays
//! down longer than the hold bound, every waiting frame is handed to the `undeliverable`
//! callback so that its stanza can be bounced with an error. Nothing is dropped silently: a
//! full queue (by frames or by bytes) or a frame over the size bound is refused at once, and
//! the caller bounces it.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_router::metrics::refuse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::auth::{self, ClusterSecret, HandshakeError};
use crate::link::{decode_one, encode_bounded, Body, Decoder, LinkError, MAX_FRAME};
use crate::link_tls::LinkTls;

/// Settings of an outgoing link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Frames that may wait in the queue.
    pub max_queued: usize,
    /// Bytes (encoded frames) that may wait in the queue (`cluster.send_queue_bytes`).
    pub max_queued_bytes: usize,
    /// Largest frame body sent or received (`cluster.max_frame_bytes`).
    pub max_frame: usize,
    /// How long the handshake may take (`cluster.handshake_timeout_ms`).
    pub handshake_timeout: Duration,
    /// How long frames wait for a link that is down before they are given up.
    pub hold: Duration,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            max_queued: 10_000,
            max_queued_bytes: 64 << 20,
            max_frame: MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            hold: Duration::from_secs(5),
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// How a node authenticates its links: the cluster secret, mutual TLS, or both.
#[derive(Debug, Clone)]
pub struct LinkAuth {
    /// This node's id, proven in every handshake.
    pub me: String,
    /// The cluster secret (None: mutual TLS alone).
    pub secret: Option<Arc<ClusterSecret>>,
    /// Mutual TLS (None: plain TCP, then the secret is required).
    pub tls: Option<Arc<LinkTls>>,
}

/// Returned when a frame is refused (queue full by frames or bytes, or the frame is larger
/// than the frame bound): the caller bounces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull(pub Body);

type Undeliverable = Arc<dyn Fn(Body) + Send + Sync>;

struct Queue {
    /// Encoded frames, so that the byte bound counts what will be written.
    frames: VecDeque<Vec<u8>>,
    /// Their total size.
    bytes: usize,
    /// When the link went down (None while up).
    down_since: Option<Instant>,
    /// Told whenever the writer takes the last queued frames (a leaving node waits for
    /// its queues to empty: [`PeerLink::notify_drained`]).
    drained: Option<Arc<Notify>>,
}

impl Queue {
    fn drain_bodies(&mut self) -> Vec<Body> {
        self.bytes = 0;
        self.frames
            .drain(..)
            .filter_map(|f| decode_one(&f).ok())
            .collect()
    }
}

/// An outgoing link to one peer.
pub struct PeerLink {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    config: LinkConfig,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink").finish_non_exhaustive()
    }
}

impl PeerLink {
    /// Starts a link to node `peer` at `addr`, authenticated as `auth` says. Its task runs on
    /// the current Tokio runtime (the node enters its link runtime first).
    pub fn start(
        auth: LinkAuth,
        peer: String,
        addr: String,
        config: LinkConfig,
        undeliverable: impl Fn(Body) + Send + Sync + 'static,
    ) -> PeerLink {
        let queue = Arc::new(Mutex::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            down_since: Some(Instant::now()),
            drained: None,
        }));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            auth,
            peer,
            addr,
            config.clone(),
            queue.clone(),
            wake.clone(),
            Arc::new(undeliverable),
        ));
        PeerLink {
            queue,
            wake,
            config,
            task,
        }
    }

    /// Queues a frame. Refused (and handed back) when the queue is full by frames or bytes,
    /// or when the frame is larger than the frame bound.
    pub fn send(&self, body: Body) -> Result<(), QueueFull> {
        let Ok(bytes) = encode_bounded(&body, self.config.max_frame) else {
            return Err(QueueFull(body));
        };
        {
            let mut q = self.queue.lock();
            if q.frames.len() >= self.config.max_queued
                || q.bytes + bytes.len() > self.config.max_queued_bytes
            {
                return Err(QueueFull(body));
            }
            q.bytes += bytes.len();
            q.frames.push_back(bytes);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// From now on `notify` is told whenever the writer has taken every queued frame.
    pub fn notify_drained(&self, notify: Arc<Notify>) {
        self.queue.lock().drained = Some(notify);
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.lock().frames.len()
    }

    /// Takes every frame still queued (the peer left the cluster), for bouncing.
    pub fn take_queued(&self) -> Vec<Body> {
        self.queue.lock().drain_bodies()
    }

    /// Whether the link is connected (and authenticated).
    pub fn is_up(&self) -> bool {
        self.queue.lock().down_since.is_none()
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Gives up the waiting frames if the link has been down longer than the hold bound.
fn expire(queue: &Mutex<Queue>, hold: Duration, undeliverable: &Undeliverable) {
    let expired: Vec<Body> = {
        let mut q = queue.lock();
        match q.down_since {
            Some(since) if since.elapsed() >= hold => q.drain_bodies(),
            _ => Vec::new(),
        }
    };
    for body in expired {
        undeliverable(body);
    }
}

async fn run(
    auth: LinkAuth,
    peer: String,
    addr: String,
    config: LinkConfig,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    undeliverable: Undeliverable,
) {
    let mut backoff = config.backoff;
    loop {
        // Resolved at every attempt: a peer's advertised name may move (Kubernetes pods).
        match TcpStream::connect(addr.as_str()).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let served = match &auth.tls {
                    None => serve(&auth, &peer, &config, stream, &queue, &wake).await,
                    Some(tls) => match tls.connect(&addr, stream).await {
                        Ok(stream) => serve(&auth, &peer, &config, stream, &queue, &wake).await,
                        Err(e) => Err(e.into()),
                    },
                };
                match served {
                    // It was up: reconnect at once.
                    Err(Served::Lost(e)) => {
                        backoff = config.backoff;
                        debug!(%addr, error = %e, "node link lost");
                    }
                    Err(Served::Refused(e)) => {
                        if refuse(e.reason(), &addr) {
                            warn!(%addr, %peer, error = %e, "node link handshake failed");
                        }
                    }
                }
                let mut q = queue.lock();
                q.down_since.get_or_insert_with(Instant::now);
            }
            Err(e) => debug!(%addr, error = %e, "node link connect failed"),
        }
        expire(&queue, config.hold, &undeliverable);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// How an outgoing connection ended.
enum Served {
    /// The handshake failed.
    Refused(HandshakeError),
    /// The connection failed after the handshake.
    Lost(std::io::Error),
}

impl From<std::io::Error> for Served {
    fn from(e: std::io::Error) -> Self {
        Served::Refused(HandshakeError::Io(e))
    }
}

/// Runs the handshake, then sends queued frames as they come, until the connection fails.
async fn serve(
    auth: &LinkAuth,
    peer: &str,
    config: &LinkConfig,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    queue: &Mutex<Queue>,
    wake: &Notify,
) -> Result<std::convert::Infallible, Served> {
    auth::connect(
        &mut stream,
        &auth.me,
        peer,
        auth.secret.as_deref(),
        config.handshake_timeout,
    )
    .await
    .map_err(Served::Refused)?;
    queue.lock().down_since = None;
    let mut probe = [0u8; 1];
    // Frames queued meanwhile go out in one write, so that a burst costs one syscall.
    const BATCH: usize = 256;
    let mut out = Vec::new();
    loop {
        let (batch, drained) = {
            let mut q = queue.lock();
            let n = q.frames.len().min(BATCH);
            let batch: Vec<Vec<u8>> = q.frames.drain(..n).collect();
            q.bytes -= batch.iter().map(Vec::len).sum::<usize>();
            let drained = q.frames.is_empty().then(|| q.drained.clone()).flatten();
            (batch, drained)
        };
        if let Some(d) = drained {
            d.notify_waiters();
        }
        if batch.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                // The peer never sends on this direction after its Welcome; a read that
                // returns means it closed (or reset) the connection.
                r = stream.read(&mut probe) => {
                    return Err(Served::Lost(match r {
                        Ok(_) => std::io::Error::other("peer closed the link"),
                        Err(e) => e,
                    }));
                }
            }
            continue;
        }
        out.clear();
        for frame in &batch {
            out.extend_from_slice(frame);
        }
        if let Err(e) = stream.write_all(&out).await {
            // Not known to be sent: back to the front, to go out on the next connection.
            let mut q = queue.lock();
            for frame in batch.into_iter().rev() {
                q.bytes += frame.len();
                q.frames.push_front(frame);
            }
            return Err(Served::Lost(e));
        }
    }
}

/// Settings of the listener for peers' links.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// How links are authenticated.
    pub auth: LinkAuth,
    /// Largest frame body accepted after the handshake (`cluster.max_frame_bytes`).
    pub max_frame: usize,
    /// How long a peer has to complete the handshake (`cluster.handshake_timeout_ms`).
    pub handshake_timeout: Duration,
    /// Connections open at once from one IP address (`cluster.max_links_per_address`).
    pub max_per_address: usize,
    /// Peers' links open now (their handshake done): a node that leaves waits until its
    /// peers have closed theirs, having sent all they had for it.
    pub open: Arc<OpenLinks>,
}

/// Peers' links open now, and who is told when one closes.
#[derive(Debug, Default)]
pub struct OpenLinks {
    count: AtomicUsize,
    /// Told whenever a link closes.
    pub closed: Arc<Notify>,
}

impl OpenLinks {
    /// Counts open links, telling `closed` when one closes.
    pub fn new(closed: Arc<Notify>) -> OpenLinks {
        OpenLinks {
            count: AtomicUsize::new(0),
            closed,
        }
    }

    /// Links open now.
    pub fn open(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// Counts one open link in [`ListenConfig::open`] while it lives.
struct Open(Arc<OpenLinks>);

impl Open {
    fn new(links: &Arc<OpenLinks>) -> Open {
        links.count.fetch_add(1, Ordering::AcqRel);
        Open(links.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_waiters();
    }
}

/// What the listener does with a frame (given with its length on the wire): handled at once
/// (None), or a future the link awaits before it reads the peer's next frame (back-pressure,
/// e.g. while the frames held for the registry are at their bound).
pub type FrameWait = Option<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Counts the connections open per address; the slot is given back on drop.
struct Slot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut c = counts.lock();
        let n = c.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// Accepts peers' links and, once a peer has completed the handshake, hands every frame to
/// `on_frame` with the sender's node id. A peer that fails the handshake, or does not finish
/// it in time, or speaks another protocol version, or announces an oversize frame, is
/// disconnected (and counted with `refuse`). Runs on the current Tokio runtime.
pub async fn listen(
    addr: SocketAddr,
    config: ListenConfig,
    on_frame: impl Fn(&str, Body, usize) -> FrameWait + Send + Sync + 'static,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let on_frame = Arc::new(on_frame);
    let config = Arc::new(config);
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let Some(slot) = Slot::take(&counts, peer.ip(), config.max_per_address) else {
                // Closed at once, before a byte is read.
                drop(stream);
                if refuse("link_too_many_connections", &peer.ip().to_string()) {
                    warn!(%peer, max = config.max_per_address, "too many node-link connections from one address");
                }
                continue;
            };
            let on_frame = on_frame.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = stream.set_nodelay(true);
                // One deadline for the TLS handshake and the link handshake together.
                let deadline = tokio::time::Instant::now() + config.handshake_timeout;
                let received = match config.auth.tls.clone() {
                    None => receive(stream, &config, deadline, &*on_frame).await,
                    Some(tls) => {
                        match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
                            Ok(Ok(stream)) => receive(stream, &config, deadline, &*on_frame).await,
                            Ok(Err(e)) => Err(Received::Refused(HandshakeError::Io(e))),
                            Err(_) => Err(Received::Refused(HandshakeError::Timeout(
                                config.handshake_timeout,
                            ))),
                        }
                    }
                };
                match received {
                    Ok(()) => {}
                    Err(Received::Refused(e)) => {
                        if refuse(e.reason(), &peer.ip().to_string()) {
                            warn!(%peer, error = %e, "node link refused");
                        }
                    }
                    Err(Received::Closed(e @ LinkError::TooLarge(_))) => {
                        if refuse("link_frame_too_large", &peer.ip().to_string()) {
                            warn!(%peer, error = %e, "node link cut off");
                        }
                    }
                    Err(Received::Closed(e)) => warn!(%peer, error = %e, "node link closed"),
                }
            });
        }
    });
    Ok((local, task))
}

/// How an incoming link ended badly.
enum Received {
    /// The handshake failed.
    Refused(HandshakeError),
    /// After the handshake: a bad frame or a failed connection.
    Closed(LinkError),
}

async fn receive(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    config: &ListenConfig,
    deadline: tokio::time::Instant,
    on_frame: &(dyn Fn(&str, Body, usize) -> FrameWait + Send + Sync),
) -> Result<(), Received> {
    let mut decoder = Decoder::with_limit(config.max_frame);
    let peer = auth::accept(
        &mut stream,
        &mut decoder,
        &config.auth.me,
        config.auth.secret.as_deref(),
        deadline.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await
    .map_err(Received::Refused)?;
    let _open = Open::new(&config.open);
    decoder.set_limit(config.max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut before = decoder.buffered();
        while let Some(body) = decoder.next_frame().map_err(Received::Closed)? {
            let bytes = before - decoder.buffered();
            before = decoder.buffered();
            if let Some(wait) = on_frame(&peer, body, bytes) {
                wait.await;
            }
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| Received::Closed(LinkError::Malformed(e.to_string())))?;
        if n == 0 {
            return Ok(());
        }
        decoder.feed(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::encode;
    use std::path::PathBuf;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn stanza(i: u64) -> Body {
        Body::ToSession {
            jid: "a@b/c".into(),
            session: i,
            xml: format!("<message xmlns='jabber:client'><body>{i}</body></message>"),
        }
    }

    const SECRET: &str = "test-cluster-secret-0123456789abcdef";

    fn auth(me: &str, secret: Option<&str>, tls: Option<Arc<LinkTls>>) -> LinkAuth {
        LinkAuth {
            me: me.to_owned(),
            secret: secret.map(|s| Arc::new(ClusterSecret::new(s).unwrap())),
            tls,
        }
    }

    fn listen_config(tls: Option<Arc<LinkTls>>) -> ListenConfig {
        ListenConfig {
            auth: auth("srv", Some(SECRET), tls),
            max_frame: MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            max_per_address: 8,
            open: Arc::default(),
        }
    }

    /// A link from `me` to the test listener (node "srv") with the test secret.
    fn link(
        me: &str,
        addr: SocketAddr,
        config: LinkConfig,
        undeliverable: impl Fn(Body) + Send + Sync + 'static,
    ) -> PeerLink {
        PeerLink::start(
            auth(me, Some(SECRET), None),
            "srv".into(),
            addr.to_string(),
            config,
            undeliverable,
        )
    }

    async fn free_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("within 5 s")
            .expect("channel open")
    }

    #[tokio::test]
    async fn frames_arrive_in_order_with_the_senders_node_id() {
        let (tx, mut rx) = unbounded_channel();
        let (addr, server) = listen(
            "127.0.0.1:0".parse().unwrap(),
            listen_config(None),
            move |peer, body, _| {
                let _ = tx.send((peer.to_owned(), body));
                None
            },
        )
        .await
        .unwrap();
        let link = link("n1", addr, LinkConfig::default(), |_| {
            panic!("nothing is undeliverable here")
        });
        for i in 0..100 {
            link.send(stanza(i)).unwrap();
        }
        for i in 0..100 {
            assert_eq!(next(&mut rx).await, ("n1".to_owned(), stanza(i)));
        }
        server.abort();
    }

    #[tokio::test]
    async fn frames_wait_for_a_link_that_comes_back() {
        let addr = free_addr().await;
        let link = link("n1", addr, LinkConfig::default(), |_| {
            panic!("held frames must not be given up within the hold bound")
        });
        link.send(stanza(1)).unwrap();
        link.send(stanza(2)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!link.is_up());
        let (tx, mut rx) = unbounded_channel();
        let (_, server) = listen(addr, listen_config(None), move |_, body, _| {
            let _ = tx.send(body);
            None
        })
        .await
        .unwrap();
        assert_eq!(next(&mut rx).await, stanza(1));
        assert_eq!(next(&mut rx).await, stanza(2));
        assert!(link.is_up());
        server.abort();
    }

    #[tokio::test]
    async fn frames_are_given_up_when_the_link_stays_down_past_the_hold_bound() {
        let addr = free_addr().await;
        let (tx, mut rx) = unbounded_channel();
        let config = LinkConfig {
            hold: Duration::from_millis(300),
            ..LinkConfig::default()
        };
        let _link = {
            let link = link("n1", addr, config, move |body| {
                let _ = tx.send(body);
            });
            link.send(stanza(7)).unwrap();
            link
        };
        assert_eq!(next(&mut rx).await, stanza(7), "handed back for a bounce");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let addr = free_addr().await;
        let config = LinkConfig {
            max_queued: 2,
            hold: Duration::from_secs(60),
            ..LinkConfig::default()
        };
        let link = link("n1", addr, config, |_| {});
        link.send(stanza(1)).unwrap();
        link.send(stanza(2)).unwrap();
        assert_eq!(link.send(stanza(3)), Err(QueueFull(stanza(3))));
    }

    #[tokio::test]
    async fn the_send_queue_is_bounded_by_bytes_too() {
        let addr = free_addr().await;
        let one = encode_bounded(&stanza(1), MAX_FRAME).unwrap().len();
        let config = LinkConfig {
            max_queued_bytes: 2 * one,
            hold: Duration::from_secs(60),
            ..LinkConfig::default()
        };
        let link = link("n1", addr, config, |_| {});
        link.send(stanza(1)).unwrap();
        link.send(stanza(2)).unwrap();
        assert_eq!(link.send(stanza(3)), Err(QueueFull(stanza(3))));
        assert_eq!(link.take_queued(), vec![stanza(1), stanza(2)]);
        link.send(stanza(3)).unwrap();
        let big = Body::ToSession {
            jid: "a@b/c".into(),
            session: 1,
            xml: "x".repeat(3 * one),
        };
        assert_eq!(
            link.send(big.clone()),
            Err(QueueFull(big)),
            "over the byte bound"
        );
    }

    #[tokio::test]
    async fn a_peer_that_does_not_say_hello_is_disconnected() {
        let (tx, mut rx) = unbounded_channel::<Body>();
        let (addr, server) = listen(
            "127.0.0.1:0".parse().unwrap(),
            listen_config(None),
            move |_, body, _| {
                let _ = tx.send(body);
                None
            },
        )
        .await
        .unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&encode(&stanza(1)).unwrap()).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the listener closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(rx.try_recv().is_err(), "nothing was handed on");
        server.abort();
    }

    /// A CA and a certificate it signs for 127.0.0.1, as files in `dir`: (cert, key, ca).
    fn pki(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let paths = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}-ca.pem")),
        );
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        std::fs::write(&paths.2, ca.pem()).unwrap();
        paths
    }

    fn tls(paths: &(PathBuf, PathBuf, PathBuf)) -> Arc<LinkTls> {
        LinkTls::load(&paths.0, &paths.1, &paths.2).unwrap()
    }

    /// Node links with mutual TLS: a peer with a certificate of the cluster CA gets its
    /// frames through; a peer of another CA, and a peer speaking plain TCP, get nothing in.
    #[tokio::test]
    async fn mutual_tls_admits_only_peers_of_the_cluster_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ours = pki(dir.path(), "ours");
        let (tx, mut rx) = unbounded_channel();
        let mut config = listen_config(Some(tls(&ours)));
        config.auth.secret = None;
        let (addr, server) = listen("127.0.0.1:0".parse().unwrap(), config, move |p, b, _| {
            let _ = tx.send((p.to_owned(), b));
            None
        })
        .await
        .unwrap();
        // Another node of the same cluster: same CA (here: the same certificate).
        let good = PeerLink::start(
            auth("n1", None, Some(tls(&ours))),
            "srv".into(),
            addr.to_string(),
            LinkConfig::default(),
            |_| {},
        );
        good.send(stanza(1)).unwrap();
        assert_eq!(next(&mut rx).await, ("n1".to_owned(), stanza(1)));

        let theirs = pki(dir.path(), "theirs");
        let config = LinkConfig {
            hold: Duration::from_secs(60),
            ..LinkConfig::default()
        };
        let stranger = PeerLink::start(
            auth("evil", None, Some(tls(&theirs))),
            "srv".into(),
            addr.to_string(),
            config.clone(),
            |_| {},
        );
        stranger.send(stanza(2)).unwrap();
        let plain = PeerLink::start(
            auth("plain", None, None),
            "srv".into(),
            addr.to_string(),
            config,
            |_| {},
        );
        plain.send(stanza(3)).unwrap();
        let got = tokio::time::timeout(Duration::from_millis(800), rx.recv()).await;
        assert!(
            got.is_err(),
            "nothing may get in without the cluster CA: {got:?}"
        );
        assert!(!stranger.is_up());
        server.abort();
    }
}
