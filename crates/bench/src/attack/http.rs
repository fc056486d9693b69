//! Just enough HTTP/1.1 and WebSocket (RFC 6455) client for the attacks: requests written
//! byte for byte, so that an attack can send exactly what a hostile client would (pipelined,
//! never reading, oversized), and answers read with a bound.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BenchError;

/// How long one read of an answer may take before the attack moves on.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The bytes of a `POST path` with `body`, on a keep-alive connection.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code (0 if the connection closed before a status line).
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// Reads one HTTP/1.1 answer (Content-Length framed), or what there is when the connection
/// closes or [`READ_TIMEOUT`] passes.
pub async fn read_answer(stream: &mut TcpStream) -> Result<Answer, BenchError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut header_end = None;
    loop {
        if let Some(end) = header_end {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[end..end + len]).into_owned();
                buf.drain(..end + len);
                return Ok(Answer { status, body });
            }
        }
        let n = match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => 0,
        };
        if n == 0 {
            return Ok(Answer {
                status: 0,
                body: String::from_utf8_lossy(&buf).into_owned(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if header_end.is_none() {
            header_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
    }
}

/// One request on a fresh connection, and its answer.
pub async fn request(addr: SocketAddr, path: &str, body: &str) -> Result<Answer, BenchError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
    stream
        .write_all(&post(addr, path, body))
        .await
        .map_err(|e| BenchError::io("writing a request", e))?;
    read_answer(&mut stream).await
}

/// A `GET` with a bearer token; the answer's body.
pub async fn get(addr: SocketAddr, path: &str, token: &str) -> Result<Answer, BenchError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| BenchError::io("writing a request", e))?;
    read_answer(&mut stream).await
}

/// Opens a WebSocket with the `xmpp` subprotocol (RFC 7395 §3.1); the status of the answer
/// (101 when upgraded) and the stream.
pub async fn websocket(addr: SocketAddr) -> Result<(u16, TcpStream), BenchError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
    let req = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| BenchError::io("writing the upgrade", e))?;
    // Read only the head: frames may follow it at once.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, stream))
}

/// A masked text frame (clients must mask, RFC 6455 §5.3; the all-zero key leaves the
/// payload as it is, which is allowed).
pub fn ws_text(payload: &str) -> Vec<u8> {
    let p = payload.as_bytes();
    let mut out = vec![0x81];
    match p.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(p);
    out
}

/// The value of attribute `name` in the first element of `xml` that has it (enough for a
/// BOSH `sid`).
pub fn attr(xml: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!("{name}={quote}");
        if let Some(i) = xml.find(&key) {
            let rest = &xml[i + key.len()..];
            return rest.find(quote).map(|j| rest[..j].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_frame_is_masked_with_a_seven_bit_length() {
        let f = ws_text("<open/>");
        assert_eq!(&f[..2], &[0x81, 0x80 | 7]);
        assert_eq!(&f[6..], b"<open/>");
    }

    #[test]
    fn attr_finds_either_quote() {
        assert_eq!(
            attr("<body sid='ab' x=\"1\"/>", "sid").as_deref(),
            Some("ab")
        );
        assert_eq!(attr("<body x=\"1\"/>", "x").as_deref(), Some("1"));
        assert_eq!(attr("<body/>", "sid"), None);
    }
}
