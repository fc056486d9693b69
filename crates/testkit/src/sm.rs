//! XEP-0198 Stream Management for tests: the nonzas a client sends, built by hand so that a
//! test can say exactly what a rule is about (a wrong `h`, a foreign `previd`), readers for
//! the server's answers, and client steps that wait for them.
//!
//! The counting of handled stanzas is left to the tests: each one knows exactly which
//! stanzas it made the server send, and writing the number down is the assertion.

use parley_proto::ns;
use parley_xml::Element;

use crate::{Client, ClientError};

/// The Stream Management namespace, version 3. Spelled out here rather than taken from the
/// server's crates, so that a typo on the server side cannot agree with itself.
pub const NS: &str = "urn:xmpp:sm:3";

/// §3: `<enable/>`, with `resume='true'` when asked.
pub fn enable(resume: bool) -> Element {
    let el = Element::new("enable", NS);
    if resume {
        el.with_attr("resume", "true")
    } else {
        el
    }
}

/// §3: `<enable resume='true' max=…/>`: resumption, with the client's preferred maximum
/// resumption time in seconds.
pub fn enable_with_max(max: u64) -> Element {
    enable(true).with_attr("max", max.to_string())
}

/// §4: `<a h=…/>`.
pub fn ack(h: u32) -> Element {
    Element::new("a", NS).with_attr("h", h.to_string())
}

/// §4: `<r/>`.
pub fn request() -> Element {
    Element::new("r", NS)
}

/// §5: `<resume previd=… h=…/>`.
pub fn resume(previd: &str, h: u32) -> Element {
    Element::new("resume", NS)
        .with_attr("previd", previd)
        .with_attr("h", h.to_string())
}

/// Whether `el` is the Stream Management element `name`.
pub fn is(el: &Element, name: &str) -> bool {
    el.is(name, NS)
}

/// Whether `el` is in the Stream Management namespace at all (a server's `<r/>` may come at
/// any point once acks are on; tests that count stanzas skip these).
pub fn is_nonza(el: &Element) -> bool {
    el.ns() == NS
}

/// The `h` of an `<a/>`, `<resumed/>` or `<failed/>`, parsed; `None` when absent or not a
/// number.
pub fn h(el: &Element) -> Option<u32> {
    el.attr("h").and_then(|h| h.parse().ok())
}

/// The defined condition of a `<failed/>` (§6: a stanza error condition as a child).
pub fn failed_condition(el: &Element) -> Option<String> {
    el.children()
        .find(|c| c.ns() == ns::STANZA_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// Whether `features` advertises Stream Management (§2).
pub fn offered(features: &Element) -> bool {
    features.has_child("sm", NS)
}

impl Client {
    /// Waits for the Stream Management element `name` (stanzas and other elements that come
    /// first are stashed, as [`Client::expect_match`] does).
    pub async fn expect_sm(&mut self, name: &str) -> Result<Element, ClientError> {
        let name = name.to_owned();
        self.expect_match(&format!("<{name} xmlns='{NS}'/>"), move |el| is(el, &name))
            .await
    }

    /// Sends `<enable/>` (with `resume='true'` when asked) and returns the answer, which is
    /// either `<enabled/>` or `<failed/>`.
    pub async fn sm_enable(&mut self, resume: bool) -> Result<Element, ClientError> {
        self.sm_send_for_answer(&enable(resume)).await
    }

    /// Sends `el` (`<enable/>` or `<resume/>`) and waits for `<enabled/>`, `<resumed/>` or
    /// `<failed/>`, whichever comes.
    pub async fn sm_send_for_answer(&mut self, el: &Element) -> Result<Element, ClientError> {
        self.send(el).await;
        self.expect_match("<enabled/>, <resumed/> or <failed/>", |el| {
            is(el, "enabled") || is(el, "resumed") || is(el, "failed")
        })
        .await
    }

    /// Sends `<enable resume='true'/>`, asserts `<enabled/>` and returns its `id`.
    pub async fn sm_enable_resumable(&mut self) -> Result<String, ClientError> {
        let answer = self.sm_enable(true).await?;
        if !is(&answer, "enabled") {
            return Err(ClientError::Unexpected(format!(
                "expected <enabled/>, got {answer}"
            )));
        }
        answer
            .attr("id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Unexpected(format!("no resumption id in {answer}")))
    }

    /// Sends `<r/>` and returns the `h` of the `<a/>` that answers it. The server handles a
    /// client's input in order, so everything sent before has been counted (and any `<a/>`
    /// sent before has been applied) when this returns.
    pub async fn sm_server_count(&mut self) -> Result<u32, ClientError> {
        self.send(&request()).await;
        let a = self.expect_sm("a").await?;
        h(&a).ok_or_else(|| ClientError::Unexpected(format!("no numeric h in {a}")))
    }
}
