//! A test playing another XMPP server: the raw server-to-server stream (RFC 6120 with
//! `jabber:server`, XEP-0220 dialback) from the peer's side, and an authority that Parley
//! dials to check a dialback key, answering what the test tells it to.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use parley_proto::{dialback, ns};
use parley_xml::Element;
use tokio::net::TcpListener;

use crate::client::{Client, ClientError, Received};

/// A server stream's header from `from` to `to`, with the dialback prefix declared.
pub fn header(from: &str, to: &str, id: Option<&str>) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}' from='{from}' to='{to}'{id} version='1.0'>",
        ns::SERVER,
        ns::STREAM,
        dialback::NS
    )
}

/// Opens a server stream from `from` to `to` at `addr`: the client, the stream id the
/// server gave, and its features.
pub async fn open(
    addr: SocketAddr,
    from: &str,
    to: &str,
) -> Result<(Client, String, Element), ClientError> {
    let mut c = Client::connect(addr).await;
    c.send_raw(header(from, to, None))
        .await
        .map_err(ClientError::Io)?;
    let id = match c.recv().await? {
        Received::Header(h) => h.attr("id").unwrap_or_default().to_owned(),
        other => {
            return Err(ClientError::Unexpected(format!(
                "expected a header, got {other:?}"
            )))
        }
    };
    let features = c.recv_element().await?;
    Ok((c, id, features))
}

/// Asks to be accepted for `from` with `key` (XEP-0220 §2.1.1) and returns the answer
/// (`<db:result type=…/>`), or the stream error the server closed with.
pub async fn dialback(
    c: &mut Client,
    from: &str,
    to: &str,
    key: &str,
) -> Result<Element, ClientError> {
    c.send(&dialback::result_request(from, to, key)).await;
    c.recv_element().await
}

/// An authoritative server for `domain` that Parley dials (give it a static route to
/// [`FakeAuthority::addr`]): it offers dialback (no TLS: run Parley with
/// `s2s.require_encryption = false`), answers every `<db:verify/>` with `verdict`, and
/// accepts Parley's own `<db:result/>`. The checks it was asked are kept.
pub struct FakeAuthority {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `<db:verify/>` requests it answered.
    pub checks: Arc<Mutex<Vec<Element>>>,
    /// Stanzas Parley sent it once accepted.
    pub stanzas: Arc<Mutex<Vec<Element>>>,
}

impl FakeAuthority {
    /// Starts listening on loopback.
    pub async fn start(domain: &str, verdict: &'static str) -> FakeAuthority {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let checks = Arc::new(Mutex::new(Vec::new()));
        let stanzas = Arc::new(Mutex::new(Vec::new()));
        let (domain, seen, got) = (domain.to_owned(), checks.clone(), stanzas.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (domain, seen, got) = (domain.clone(), seen.clone(), got.clone());
                tokio::spawn(async move {
                    let _ = serve(Client::accepted(stream), &domain, verdict, seen, got).await;
                });
            }
        });
        FakeAuthority {
            addr,
            checks,
            stanzas,
        }
    }
}

async fn serve(
    mut c: Client,
    domain: &str,
    verdict: &str,
    seen: Arc<Mutex<Vec<Element>>>,
    got: Arc<Mutex<Vec<Element>>>,
) -> Result<(), ClientError> {
    let peer = match c.recv().await? {
        Received::Header(h) => h.attr("from").unwrap_or_default().to_owned(),
        _ => return Ok(()),
    };
    c.send_raw(header(domain, &peer, Some("fake-authority-stream")))
        .await
        .map_err(ClientError::Io)?;
    c.send_raw(format!(
        "<stream:features><dialback xmlns='{}'/></stream:features>",
        dialback::FEATURE_NS
    ))
    .await
    .map_err(ClientError::Io)?;
    loop {
        let el = match c.recv().await? {
            Received::Element(el) => el,
            _ => return Ok(()),
        };
        if el.is("verify", dialback::NS) {
            let (from, to, id) = (
                el.attr("from").unwrap_or_default().to_owned(),
                el.attr("to").unwrap_or_default().to_owned(),
                el.attr("id").unwrap_or_default().to_owned(),
            );
            seen.lock().push(el);
            c.send_raw(format!(
                "<db:verify from='{to}' to='{from}' id='{id}' type='{verdict}'/>"
            ))
            .await
            .map_err(ClientError::Io)?;
        } else if el.is("result", dialback::NS) {
            let from = el.attr("from").unwrap_or_default().to_owned();
            c.send_raw(format!(
                "<db:result from='{domain}' to='{from}' type='valid'/>"
            ))
            .await
            .map_err(ClientError::Io)?;
        } else {
            got.lock().push(el);
        }
    }
}
