//! XMPP over BOSH (XEP-0124, XEP-0206) for the load generator: a driver task per session
//! between an in-memory pipe, which the client reads and writes as if it were a TCP
//! stream (`framing` translates), and up to two kept-alive HTTP/1.1 connections.
//!
//! It behaves like the common web clients: `hold='1'`, so once the session exists one
//! request always waits at the server for data (the long poll), and output goes out on the
//! other connection as soon as the server's `requests` limit allows, everything written
//! meanwhile batched into one body. Responses are handed to the client in RID order,
//! whichever connection they came back on. Each HTTP response counts in
//! [`WebCounters::http_requests`], which `chat` reports per second.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::task::JoinSet;

use super::framing::{self, Body, Piece, Splitter};
use super::{tcp_connect, Stream, PIPE_BYTES, STEP_TIMEOUT};
use crate::BenchError;

/// What the generator asks the server to hold a request for, seconds (XEP-0124 §7).
const WAIT_S: u32 = 60;

/// Largest payload put in one request body; the rest waits for the next request.
const MAX_PAYLOAD: usize = 64 * 1024;

/// Counts over all web sessions of a run.
#[derive(Debug, Default)]
pub struct WebCounters {
    /// BOSH HTTP requests answered.
    pub http_requests: AtomicU64,
}

type Sender = SendRequest<Full<Bytes>>;

/// Where BOSH requests go.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) source: Option<IpAddr>,
    /// The `Host` header: some servers (Prosody) pick the virtual host by it.
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) counters: Arc<WebCounters>,
}

/// Opens the first HTTP connection (so that a refused connection fails the login at once,
/// as on TCP) and starts the driver; returns the client's end of the pipe.
pub(crate) async fn connect(endpoint: Endpoint) -> Result<Stream, BenchError> {
    let first = open_http(&endpoint).await?;
    let (client, driver_end) = tokio::io::duplex(PIPE_BYTES);
    let driver = Driver {
        endpoint,
        conns: [Some(first), None],
        busy: [false; 2],
        sid: None,
        to: String::new(),
        // XEP-0124 §7: a random start, far below 2^53 so it never wraps in a session.
        rid: u64::from(rand::random::<u32>()) + 1,
        next_answer: 0,
        answers: BTreeMap::new(),
        inflight: JoinSet::new(),
        requests: 1,
        out: Vec::new(),
        create: false,
        restart: false,
        terminate: false,
        terminate_sent: false,
        client_gone: false,
        ended: false,
    };
    tokio::spawn(driver.run(driver_end));
    Ok(Stream::Piped(client))
}

async fn open_http(endpoint: &Endpoint) -> Result<Sender, BenchError> {
    let tcp = tcp_connect(endpoint.addr, endpoint.source).await?;
    let (sender, conn) = tokio::time::timeout(
        STEP_TIMEOUT,
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)),
    )
    .await
    .map_err(|_| BenchError::Timeout(format!("HTTP connection to {}", endpoint.addr)))?
    .map_err(|e| BenchError::Protocol(format!("HTTP connection to {}: {e}", endpoint.addr)))?;
    // The connection task ends when the sender is dropped or the server hangs up.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One answered request: its RID, the connection slot, the connection (to reuse, unless
/// it failed) and the response body or why there is none.
type Answer = (u64, usize, Option<Sender>, Result<Bytes, String>);

struct Driver {
    endpoint: Endpoint,
    /// Idle connections by slot; `None` while one is in use or not open.
    conns: [Option<Sender>; 2],
    busy: [bool; 2],
    sid: Option<String>,
    /// The client's `to` (escaped), for creation and restarts.
    to: String,
    /// The next RID to send.
    rid: u64,
    /// The RID whose answer goes to the client next.
    next_answer: u64,
    /// Answers that came back before an older one.
    answers: BTreeMap<u64, Result<Bytes, String>>,
    inflight: JoinSet<Answer>,
    /// Requests the server lets a client have open (its `requests`; 1 until it says).
    requests: usize,
    /// Stanzas waiting for a request, in order.
    out: Vec<String>,
    create: bool,
    restart: bool,
    terminate: bool,
    terminate_sent: bool,
    /// The client shut or dropped its end.
    client_gone: bool,
    /// The session is over (terminated, refused, failed).
    ended: bool,
}

impl Driver {
    async fn run(mut self, mut pipe: DuplexStream) {
        let mut splitter = Splitter::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Err(e) = self.dispatch().await {
                eprintln!("bosh: {e}");
                break;
            }
            if self.ended || (self.client_gone && self.inflight.is_empty()) {
                break;
            }
            tokio::select! {
                n = pipe.read(&mut buf), if !self.client_gone => {
                    match n {
                        Ok(0) | Err(_) => {
                            self.client_gone = true;
                            // Gone without `</stream:stream>`: end the session anyway.
                            self.terminate = self.sid.is_some();
                        }
                        Ok(n) => {
                            splitter.feed(&buf[..n]);
                            if let Err(e) = self.take_pieces(&mut splitter, &mut pipe).await {
                                eprintln!("bosh: cannot frame the client's output: {e}");
                                break;
                            }
                        }
                    }
                }
                Some(joined) = self.inflight.join_next() => {
                    let Ok((rid, slot, sender, result)) = joined else {
                        self.end(&mut pipe, "a request task failed").await;
                        continue;
                    };
                    self.busy[slot] = false;
                    self.conns[slot] = sender;
                    self.answers.insert(rid, result);
                    self.deliver(&mut pipe).await;
                }
            }
        }
        // The client sees EOF once it has read everything before.
        let _ = pipe.shutdown().await;
    }

    async fn take_pieces(
        &mut self,
        splitter: &mut Splitter,
        pipe: &mut DuplexStream,
    ) -> Result<(), String> {
        while let Some(piece) = splitter.next_piece()? {
            match piece {
                Piece::Open { to } => {
                    // The client's parser expects a header before the features; they come
                    // in the answer to this creation or restart, after everything
                    // delivered so far.
                    let _ = pipe.write_all(framing::STREAM_HEADER.as_bytes()).await;
                    self.to = to;
                    if self.sid.is_none() {
                        self.create = true;
                    } else {
                        self.restart = true;
                    }
                }
                Piece::Element(el) => self.out.push(el),
                Piece::Close => self.terminate = true,
            }
        }
        Ok(())
    }

    /// Sends whatever may go now: a creation, a restart, output (terminate included), or
    /// the poll that keeps one request waiting at the server.
    async fn dispatch(&mut self) -> Result<(), BenchError> {
        while !self.ended && self.inflight.len() < self.requests {
            let Some(sid) = self.sid.clone() else {
                if self.create && self.inflight.is_empty() {
                    self.create = false;
                    let body = framing::bosh_create(self.rid, &self.to, WAIT_S);
                    self.send(body).await?;
                }
                return Ok(());
            };
            let body = if self.restart {
                self.restart = false;
                framing::bosh_restart(self.rid, &sid, &self.to)
            } else if self.terminate && !self.terminate_sent {
                self.terminate_sent = true;
                let payload = self.out.concat();
                self.out.clear();
                framing::bosh_request(self.rid, &sid, &payload, true)
            } else if !self.out.is_empty() {
                let mut take = 0;
                let mut bytes = 0;
                while take < self.out.len()
                    && (take == 0 || bytes + self.out[take].len() <= MAX_PAYLOAD)
                {
                    bytes += self.out[take].len();
                    take += 1;
                }
                let payload: String = self.out.drain(..take).collect();
                framing::bosh_request(self.rid, &sid, &payload, false)
            } else if self.inflight.is_empty() && !self.terminate_sent {
                framing::bosh_request(self.rid, &sid, "", false)
            } else {
                return Ok(());
            };
            self.send(body).await?;
        }
        Ok(())
    }

    /// Sends `body` with the next RID on a free connection, opening one if need be.
    async fn send(&mut self, body: String) -> Result<(), BenchError> {
        let slot = self
            .busy
            .iter()
            .position(|b| !b)
            .ok_or_else(|| BenchError::Protocol("no free HTTP connection".into()))?;
        let sender = match self.conns[slot].take() {
            Some(s) if !s.is_closed() => s,
            _ => open_http(&self.endpoint).await?,
        };
        self.busy[slot] = true;
        let rid = self.rid;
        if self.next_answer == 0 {
            self.next_answer = rid;
        }
        self.rid += 1;
        let request = Request::post(self.endpoint.path.as_str())
            .header(HOST, self.endpoint.host.as_str())
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError::Options(format!("BOSH request: {e}")))?;
        let counters = self.endpoint.counters.clone();
        // A held request comes back after `wait` at the latest; past that the server is
        // stuck, and the session is given up on.
        let limit = Duration::from_secs(u64::from(WAIT_S)) + STEP_TIMEOUT;
        self.inflight.spawn(async move {
            let mut sender = sender;
            let result = tokio::time::timeout(limit, async {
                sender.ready().await.map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                counters.http_requests.fetch_add(1, Ordering::Relaxed);
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(format!("HTTP {status}"))
                }
            })
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()));
            let sender = result.is_ok().then_some(sender);
            (rid, slot, sender, result)
        });
        Ok(())
    }

    /// Hands the answers that are next in RID order to the client.
    async fn deliver(&mut self, pipe: &mut DuplexStream) {
        while let Some(answer) = self.answers.remove(&self.next_answer) {
            self.next_answer += 1;
            let text = match answer {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.end(pipe, &format!("request failed: {e}")).await;
                    return;
                }
            };
            let Ok(text) = std::str::from_utf8(&text) else {
                self.end(pipe, "a response that is not UTF-8").await;
                return;
            };
            let body = match Body::parse(text) {
                Ok(body) => body,
                Err(e) => {
                    self.end(pipe, &e).await;
                    return;
                }
            };
            // A refused creation (a limit, a host it does not serve) has no sid: the
            // terminate below says why.
            if self.sid.is_none() && body.attr("type") != Some("terminate") {
                let Some(sid) = body.attr("sid") else {
                    self.end(pipe, "the session creation response has no sid")
                        .await;
                    return;
                };
                self.sid = Some(sid.to_owned());
                // Two at least, so that output never waits behind the held request.
                self.requests = body
                    .attr("requests")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(2)
                    .clamp(1, 2);
            }
            if !body.children.is_empty() && !self.client_gone {
                let _ = pipe.write_all(body.children.as_bytes()).await;
            }
            if body.attr("type") == Some("terminate") {
                let why = if self.terminate_sent {
                    String::new()
                } else {
                    format!(
                        "the server ended the session ({})",
                        body.attr("condition").unwrap_or("no condition")
                    )
                };
                self.end(pipe, &why).await;
                return;
            }
        }
    }

    /// Closes the client's stream; `why` is printed unless the client asked for the end.
    async fn end(&mut self, pipe: &mut DuplexStream, why: &str) {
        if !why.is_empty() && !self.terminate_sent && !self.client_gone {
            eprintln!("bosh: {why}");
        }
        self.ended = true;
        if !self.client_gone {
            let _ = pipe.write_all(framing::STREAM_CLOSE.as_bytes()).await;
        }
    }
}
