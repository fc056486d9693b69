//! XMPP over WebSocket (RFC 7395) for the load generator: the HTTP upgrade with the `xmpp`
//! subprotocol, then a pump task per connection between the WebSocket and an in-memory
//! pipe that the client reads and writes as if it were a TCP stream ([`super::framing`]
//! translates).
//!
//! The pump costs the generator one task wake-up per message each way; the generator has
//! a core of its own in the comparisons, and every server pays the same, so the figures
//! stay comparable.

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::framing::{self, Piece, Splitter};
use super::{tcp_connect, Stream, PIPE_BYTES, STEP_TIMEOUT};
use crate::BenchError;

/// Connects to `addr` (from `source`), upgrades `path` to an RFC 7395 WebSocket with
/// `Host: host`, and returns the client's end of the pipe.
pub(crate) async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    host: &str,
    path: &str,
) -> Result<Stream, BenchError> {
    let tcp = tcp_connect(addr, source).await?;
    let mut request = format!("ws://{host}{path}")
        .into_client_request()
        .map_err(|e| BenchError::Options(format!("WebSocket URL ws://{host}{path}: {e}")))?;
    // RFC 7395 §3.1: the subprotocol is required; servers refuse the upgrade without it.
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(request, tcp))
        .await
        .map_err(|_| BenchError::Timeout(format!("WebSocket upgrade at {addr}")))?
        .map_err(|e| BenchError::Protocol(format!("WebSocket upgrade at {addr}{path}: {e}")))?;
    let (client, pump_end) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(pump(ws, pump_end));
    Ok(Stream::Piped(client))
}

/// Moves the client's pieces out as text messages and the server's messages in as the TCP
/// form, until either side ends. The client sees the end as EOF; the server sees a close
/// frame (after the `<close/>` the client wrote, when it closed cleanly).
async fn pump(mut ws: WebSocketStream<TcpStream>, mut pipe: DuplexStream) {
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = pipe.read(&mut buf) => {
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                splitter.feed(&buf[..n]);
                if send_pieces(&mut ws, &mut splitter).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    // Control frames are answered by tungstenite; nothing else is XMPP.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Binary(_))) => break,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if pipe.write_all(framing::ws_inbound(&text).as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    // Best effort both ways: the other side may be gone already.
    let _ = pipe.shutdown().await;
    let _ = ws.close(None).await;
}

/// Sends every complete piece, one message each (RFC 7395 §3.3.3), then flushes once.
async fn send_pieces(
    ws: &mut WebSocketStream<TcpStream>,
    splitter: &mut Splitter,
) -> Result<(), ()> {
    let mut fed = false;
    loop {
        let text = match splitter.next_piece() {
            Ok(Some(Piece::Open { to })) => framing::ws_open(&to),
            Ok(Some(Piece::Element(el))) => el,
            Ok(Some(Piece::Close)) => framing::ws_close(),
            Ok(None) => break,
            Err(e) => {
                eprintln!("websocket: cannot frame the client's output: {e}");
                return Err(());
            }
        };
        ws.feed(Message::text(text)).await.map_err(|_| ())?;
        fed = true;
    }
    if fed {
        ws.flush().await.map_err(|_| ())?;
    }
    Ok(())
}
