//! An external component (XEP-0114) as tests play it: a raw [`Client`] that opens a
//! `jabber:component:accept` stream and proves a domain's secret.
//!
//! Elements sent with [`Client::send`] in `jabber:client` go out without a namespace
//! declaration and so arrive in the stream's namespace, as a component library writes them;
//! elements received are in `jabber:component:accept`.

use std::net::SocketAddr;

use parley_proto::component::handshake_digest;
use parley_proto::ns;
use parley_xml::Element;

use crate::{Client, ClientError, Received};

/// Connects to `addr` and opens a component stream to `domain`; returns the client and the
/// server's stream id (None when the server answered with something else than a header).
pub async fn open(addr: SocketAddr, domain: &str) -> (Client, Option<String>) {
    let mut c = Client::connect(addr).await;
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>",
        ns::COMPONENT
    );
    c.send_raw(header).await.expect("send the component header");
    let id = match c.recv().await {
        Ok(Received::Header(h)) => h.attr("id").map(str::to_owned),
        _ => None,
    };
    (c, id)
}

/// Opens a component stream to `domain` and sends the handshake for `secret`; returns the
/// client and what the server answered (`<handshake/>` when it accepted).
pub async fn handshake(
    addr: SocketAddr,
    domain: &str,
    secret: &str,
) -> (Client, Result<Element, ClientError>) {
    let (mut c, id) = open(addr, domain).await;
    let id = id.expect("the server's header has an id");
    let proof = Element::new("handshake", ns::COMPONENT).with_text(handshake_digest(&id, secret));
    c.send_raw(proof.to_bytes_in(Some(ns::COMPONENT)))
        .await
        .expect("send the handshake");
    let answer = c.recv_element().await;
    (c, answer)
}

/// A component connected for `domain` with `secret`; panics if the server refuses it.
pub async fn connect(addr: SocketAddr, domain: &str, secret: &str) -> Client {
    let (c, answer) = handshake(addr, domain, secret).await;
    match answer {
        Ok(el) if el.is("handshake", ns::COMPONENT) => c,
        other => panic!("XEP-0114 §3: expected <handshake/>, got {other:?}"),
    }
}

/// Reads the component's stream until a message whose body is `text` (in the component's
/// namespace) arrives; returns it.
pub async fn message(c: &mut Client, text: &str) -> Result<Element, ClientError> {
    loop {
        let el = c.recv_element().await?;
        let body = el.get_child("body", ns::COMPONENT).map(Element::text);
        if el.name() == "message" && body.as_deref() == Some(text) {
            return Ok(el);
        }
    }
}
