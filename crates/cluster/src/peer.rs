//! Node links over TCP: a listener that accepts peers' frames, and an outgoing link per peer
//! with a bounded queue, reconnection with backoff, and a hold bound.
//!
//! A frame queued while its link is down waits for the link to come back; if the link stays
//! down longer than the hold bound, every waiting frame is handed to the `undeliverable`
//! callback so that its stanza can be bounced with an error. Nothing is dropped silently: a
//! full queue refuses the frame at once, and the caller bounces it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::link::{encode, Body, Decoder, LinkError};
use crate::link_tls::LinkTls;

/// Settings of an outgoing link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Frames that may wait in the queue.
    pub max_queued: usize,
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
            hold: Duration::from_secs(5),
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Returned when the queue is full: the caller bounces the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull(pub Body);

type Undeliverable = Arc<dyn Fn(Body) + Send + Sync>;

struct Queue {
    frames: VecDeque<Body>,
    /// When the link went down (None while up).
    down_since: Option<Instant>,
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
    /// Starts a link from `node` to the peer at `addr`.
    pub fn start(
        node: String,
        addr: String,
        config: LinkConfig,
        tls: Option<Arc<LinkTls>>,
        undeliverable: impl Fn(Body) + Send + Sync + 'static,
    ) -> PeerLink {
        let queue = Arc::new(Mutex::new(Queue {
            frames: VecDeque::new(),
            down_since: Some(Instant::now()),
        }));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            node,
            addr,
            tls,
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

    /// Queues a frame. Refused (and handed back) when the queue is full.
    pub fn send(&self, body: Body) -> Result<(), QueueFull> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.frames.len() >= self.config.max_queued {
                return Err(QueueFull(body));
            }
            q.frames.push_back(body);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Takes every frame still queued (the peer left the cluster), for bouncing.
    pub fn take_queued(&self) -> Vec<Body> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.frames.drain(..).collect()
    }

    /// Whether the link is connected.
    pub fn is_up(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .down_since
            .is_none()
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
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        match q.down_since {
            Some(since) if since.elapsed() >= hold => q.frames.drain(..).collect(),
            _ => Vec::new(),
        }
    };
    for body in expired {
        undeliverable(body);
    }
}

async fn run(
    node: String,
    addr: String,
    tls: Option<Arc<LinkTls>>,
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
                backoff = config.backoff;
                let _ = stream.set_nodelay(true);
                let served = match &tls {
                    None => serve(&node, stream, &queue, &wake).await,
                    Some(tls) => match tls.connect(&addr, stream).await {
                        Ok(stream) => serve(&node, stream, &queue, &wake).await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = served {
                    debug!(%addr, error = %e, "node link lost");
                }
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                q.down_since.get_or_insert_with(Instant::now);
            }
            Err(e) => debug!(%addr, error = %e, "node link connect failed"),
        }
        expire(&queue, config.hold, &undeliverable);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Sends Hello, then queued frames as they come, until the connection fails.
async fn serve(
    node: &str,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    queue: &Mutex<Queue>,
    wake: &Notify,
) -> std::io::Result<()> {
    let hello = encode(&Body::Hello {
        node: node.to_owned(),
        software: env!("CARGO_PKG_VERSION").to_owned(),
    })
    .map_err(std::io::Error::other)?;
    stream.write_all(&hello).await?;
    queue.lock().unwrap_or_else(|e| e.into_inner()).down_since = None;
    let mut probe = [0u8; 1];
    // Frames queued meanwhile go out in one write, so that a burst costs one syscall.
    const BATCH: usize = 256;
    let mut out = Vec::new();
    loop {
        let batch: Vec<Body> = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            let n = q.frames.len().min(BATCH);
            q.frames.drain(..n).collect()
        };
        if batch.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                // The peer never sends on this direction; a read that returns means it
                // closed (or reset) the connection.
                r = stream.read(&mut probe) => {
                    return match r {
                        Ok(_) => Err(std::io::Error::other("peer closed the link")),
                        Err(e) => Err(e),
                    };
                }
            }
            continue;
        }
        out.clear();
        for body in &batch {
            match encode(body) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => warn!(error = %e, "a node link frame could not be encoded"),
            }
        }
        if let Err(e) = stream.write_all(&out).await {
            // Not known to be sent: back to the front, to go out on the next connection.
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            for body in batch.into_iter().rev() {
                q.frames.push_front(body);
            }
            return Err(e);
        }
    }
}

/// Accepts peers' links and hands every frame after their Hello to `on_frame` with the
/// sender's node id. A peer speaking another protocol version is disconnected.
/// With `tls`, a peer must complete mutual TLS first.
pub async fn listen(
    addr: SocketAddr,
    tls: Option<Arc<LinkTls>>,
    on_frame: impl Fn(&str, Body) + Send + Sync + 'static,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let on_frame = Arc::new(on_frame);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let on_frame = on_frame.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let received = match tls {
                    None => receive(stream, &*on_frame).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => receive(stream, &*on_frame).await,
                        Err(e) => Err(LinkError::Malformed(format!("TLS: {e}"))),
                    },
                };
                if let Err(e) = received {
                    warn!(%peer, error = %e, "node link closed");
                }
            });
        }
    });
    Ok((local, task))
}

async fn receive(
    mut stream: impl AsyncRead + Unpin,
    on_frame: &(dyn Fn(&str, Body) + Send + Sync),
) -> Result<(), LinkError> {
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut peer: Option<String> = None;
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| LinkError::Malformed(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        decoder.feed(&buf[..n]);
        while let Some(body) = decoder.next_frame()? {
            match (&peer, body) {
                (None, Body::Hello { node, .. }) => peer = Some(node),
                (None, _) => {
                    return Err(LinkError::Malformed("the first frame must be Hello".into()))
                }
                (Some(p), body) => on_frame(p, body),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn stanza(i: u64) -> Body {
        Body::ToSession {
            jid: "a@b/c".into(),
            session: i,
            xml: format!("<message xmlns='jabber:client'><body>{i}</body></message>"),
        }
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
        let (addr, server) = listen("127.0.0.1:0".parse().unwrap(), None, move |peer, body| {
            let _ = tx.send((peer.to_owned(), body));
        })
        .await
        .unwrap();
        let link = PeerLink::start(
            "n1".into(),
            addr.to_string(),
            LinkConfig::default(),
            None,
            |_| panic!("nothing is undeliverable here"),
        );
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
        let link = PeerLink::start(
            "n1".into(),
            addr.to_string(),
            LinkConfig::default(),
            None,
            |_| panic!("held frames must not be given up within the hold bound"),
        );
        link.send(stanza(1)).unwrap();
        link.send(stanza(2)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!link.is_up());
        let (tx, mut rx) = unbounded_channel();
        let (_, server) = listen(addr, None, move |_, body| {
            let _ = tx.send(body);
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
            let link = PeerLink::start("n1".into(), addr.to_string(), config, None, move |body| {
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
        let link = PeerLink::start("n1".into(), addr.to_string(), config, None, |_| {});
        link.send(stanza(1)).unwrap();
        link.send(stanza(2)).unwrap();
        assert_eq!(link.send(stanza(3)), Err(QueueFull(stanza(3))));
    }

    #[tokio::test]
    async fn a_peer_that_does_not_say_hello_is_disconnected() {
        let (tx, mut rx) = unbounded_channel::<Body>();
        let (addr, server) = listen("127.0.0.1:0".parse().unwrap(), None, move |_, body| {
            let _ = tx.send(body);
        })
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
        let (addr, server) = listen(
            "127.0.0.1:0".parse().unwrap(),
            Some(tls(&ours)),
            move |p, b| {
                let _ = tx.send((p.to_owned(), b));
            },
        )
        .await
        .unwrap();
        // Another node of the same cluster: same CA (here: the same certificate).
        let good = PeerLink::start(
            "n1".into(),
            addr.to_string(),
            LinkConfig::default(),
            Some(tls(&ours)),
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
            "evil".into(),
            addr.to_string(),
            config.clone(),
            Some(tls(&theirs)),
            |_| {},
        );
        stranger.send(stanza(2)).unwrap();
        let plain = PeerLink::start("plain".into(), addr.to_string(), config, None, |_| {});
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
