//! RFC 6121 helpers for tests: roster iqs and their parsed form, presence builders,
//! subscription steps, and waiting for (or collecting) what the server pushes to a client.
//!
//! Servers interleave roster pushes, presence broadcasts and replies in an order RFC 6121
//! leaves open, so the waiting helpers match by predicate, keep what they read past in a
//! per-client stash that their later calls look at first, and report everything unconsumed
//! when the match never comes: a failing test then says what the server did instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parley_proto::ns;
use parley_proto::stanza_error::StanzaError;
use parley_xml::Element;
use tokio::time::Instant;

use crate::{Client, ClientError, Received, TIMEOUT};

/// XEP-0237 / RFC 6121 §2.6.1: the stream feature that advertises roster versioning.
pub const ROSTER_VER_FEATURE: &str = "urn:xmpp:features:rosterver";

/// A fresh iq id, unique within the test process, with a readable prefix.
pub fn next_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A predicate over received elements, for [`Client::expect_each`].
pub type Matcher<'p> = Box<dyn Fn(&Element) -> bool + Send + Sync + 'p>;

/// One `<item/>` of a roster (RFC 6121 §2.1.2), as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's JID.
    pub jid: String,
    /// The handle the user gave the contact.
    pub name: Option<String>,
    /// `none`, `to`, `from`, `both` or (in a push) `remove`; `none` when absent (§2.1.2.5).
    pub subscription: String,
    /// `subscribe` while an outbound request is pending (§2.1.2.2).
    pub ask: Option<String>,
    /// The `<group/>` names, in document order.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// Reads an `<item xmlns='jabber:iq:roster'/>`.
    pub fn from_element(el: &Element) -> RosterItem {
        RosterItem {
            jid: el.attr("jid").unwrap_or_default().to_owned(),
            name: el.attr("name").map(str::to_owned),
            subscription: el.attr("subscription").unwrap_or("none").to_owned(),
            ask: el.attr("ask").map(str::to_owned),
            groups: el
                .children()
                .filter(|c| c.is("group", ns::ROSTER))
                .map(|c| c.text())
                .collect(),
        }
    }
}

/// The `<query/>` of a roster result or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The `ver` attribute (RFC 6121 §2.6).
    pub ver: Option<String>,
    /// The items, in document order.
    pub items: Vec<RosterItem>,
}

impl Roster {
    /// Reads the roster `<query/>` of an iq; `None` when it has none (an empty result, as
    /// RFC 6121 §2.6.3 sends for an up-to-date cached version).
    pub fn from_iq(iq: &Element) -> Option<Roster> {
        let query = iq.get_child("query", ns::ROSTER)?;
        Some(Roster {
            ver: query.attr("ver").map(str::to_owned),
            items: query
                .children()
                .filter(|c| c.is("item", ns::ROSTER))
                .map(RosterItem::from_element)
                .collect(),
        })
    }

    /// The item for `jid`, if any.
    pub fn item(&self, jid: &str) -> Option<&RosterItem> {
        self.items.iter().find(|i| i.jid == jid)
    }
}

/// `<presence/>` (available, no `to`): initial presence or a broadcast update.
pub fn presence() -> Element {
    Element::new("presence", ns::CLIENT)
}

/// Available presence with `<priority/>` (RFC 6121 §4.7.2.3).
pub fn presence_with_priority(priority: i8) -> Element {
    presence().with_child(Element::new("priority", ns::CLIENT).with_text(priority.to_string()))
}

/// Presence to `to`, with `type` when given (`subscribe`, `unavailable`, …); `None` is
/// directed available presence.
pub fn presence_to(to: &str, ty: Option<&str>) -> Element {
    let mut el = presence().with_attr("to", to);
    if let Some(ty) = ty {
        el.set_attr("type", ty);
    }
    el
}

/// A roster `<item/>` for a roster set, with an optional handle and groups.
pub fn roster_item(jid: &str, name: Option<&str>, groups: &[&str]) -> Element {
    let mut item = Element::new("item", ns::ROSTER).with_attr("jid", jid);
    if let Some(name) = name {
        item.set_attr("name", name);
    }
    for group in groups {
        item.push_child(Element::new("group", ns::ROSTER).with_text(*group));
    }
    item
}

/// A roster get (RFC 6121 §2.1.3), with `ver` when given (§2.6.2).
pub fn roster_get_iq(id: &str, ver: Option<&str>) -> Element {
    let mut query = Element::new("query", ns::ROSTER);
    if let Some(ver) = ver {
        query.set_attr("ver", ver);
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_child(query)
}

/// A roster set (RFC 6121 §2.1.5) carrying `items` as given (tests send zero or two items on
/// purpose).
pub fn roster_set_iq(id: &str, items: Vec<Element>) -> Element {
    let mut query = Element::new("query", ns::ROSTER);
    for item in items {
        query.push_child(item);
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_child(query)
}

/// Whether `el` is a roster push (RFC 6121 §2.1.6): an iq set with a roster query.
pub fn is_roster_push(el: &Element) -> bool {
    el.is("iq", ns::CLIENT)
        && el.attr("type") == Some("set")
        && el.get_child("query", ns::ROSTER).is_some()
}

/// The single item of a roster push, if `el` is one.
pub fn push_item(el: &Element) -> Option<RosterItem> {
    if !is_roster_push(el) {
        return None;
    }
    Roster::from_iq(el).and_then(|r| r.items.into_iter().next())
}

/// Whether `el` is a roster push for `jid`.
pub fn is_push_for(el: &Element, jid: &str) -> bool {
    push_item(el).is_some_and(|i| i.jid == jid)
}

/// The presence type, `available` when the attribute is absent (RFC 6121 §4.7.1).
pub fn presence_type(el: &Element) -> &str {
    el.attr("type").unwrap_or("available")
}

/// Whether `el` is presence from exactly `from` of type `ty` (`available` for none).
pub fn is_presence_from(el: &Element, from: &str, ty: &str) -> bool {
    el.is("presence", ns::CLIENT) && el.attr("from") == Some(from) && presence_type(el) == ty
}

/// The defined condition of a stanza error, e.g. `service-unavailable`; `None` when `el` is
/// not an error.
pub fn error_condition(el: &Element) -> Option<String> {
    if el.attr("type") != Some("error") {
        return None;
    }
    StanzaError::from_element(el).map(|e| e.condition.as_str().to_owned())
}

/// The `<body/>` text of a message, empty without one.
pub fn body(el: &Element) -> String {
    el.get_child("body", ns::CLIENT)
        .map(|b| b.text())
        .unwrap_or_default()
}

/// A message with a body.
pub fn chat(to: &str, ty: &str, text: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", ty)
        .with_child(Element::new("body", ns::CLIENT).with_text(text))
}

/// Short, readable forms of elements for failure messages.
fn summarize<'a>(seen: impl Iterator<Item = &'a Element>) -> String {
    let all: Vec<String> = seen
        .map(|e| {
            let mut s = e.to_string();
            if s.len() > 400 {
                let mut cut = 400;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push('…');
            }
            s
        })
        .collect();
    if all.is_empty() {
        "nothing".to_owned()
    } else {
        all.join("\n  ")
    }
}

impl Client {
    /// Sends `iq` and waits for its reply (result or error), keeping everything else in the
    /// stash.
    pub async fn request(&mut self, iq: &Element) -> Result<Element, ClientError> {
        let id = iq.attr("id").expect("iq id").to_owned();
        self.send(iq).await;
        self.expect_match(&format!("the reply to iq {id}"), |el| is_reply_to(el, &id))
            .await
    }

    /// Sends a roster get (with `ver` when given) and returns the reply iq.
    pub async fn roster_get(&mut self, ver: Option<&str>) -> Result<Element, ClientError> {
        self.request(&roster_get_iq(&next_id("roster-get"), ver))
            .await
    }

    /// Requests the roster without a version and parses it; fails on an error or on a result
    /// without `<query/>`. Makes the resource *interested* (RFC 6121 §2.1.6).
    pub async fn roster(&mut self) -> Result<Roster, ClientError> {
        let reply = self.roster_get(None).await?;
        if reply.attr("type") != Some("result") {
            return Err(ClientError::Unexpected(format!(
                "roster get failed: {reply}"
            )));
        }
        Roster::from_iq(&reply).ok_or_else(|| {
            ClientError::Unexpected(format!("roster result without <query/>: {reply}"))
        })
    }

    /// Sends a roster set with the one `item` and returns the reply iq (result or error).
    pub async fn roster_set(&mut self, item: Element) -> Result<Element, ClientError> {
        self.request(&roster_set_iq(&next_id("roster-set"), vec![item]))
            .await
    }

    /// Sends a roster set for `item` and waits for both its result and the push for the same
    /// JID (RFC 6121 §2.3.2: the sender, being interested, is pushed to too), in either order.
    /// Acknowledges and returns the push. Fails if the reply is an error.
    pub async fn roster_set_and_push(&mut self, item: Element) -> Result<Element, ClientError> {
        let jid = item.attr("jid").unwrap_or_default().to_owned();
        let id = next_id("roster-set");
        self.send(&roster_set_iq(&id, vec![item])).await;
        let found = self
            .expect_each(
                &format!("roster set result and push for {jid}"),
                vec![
                    Box::new(|el: &Element| is_reply_to(el, &id)),
                    Box::new(|el: &Element| is_push_for(el, &jid)),
                ],
            )
            .await?;
        let [reply, push]: [Element; 2] = found.try_into().expect("two matches");
        if reply.attr("type") != Some("result") {
            return Err(ClientError::Unexpected(format!(
                "roster set failed: {reply}"
            )));
        }
        self.ack_push(&push).await;
        Ok(push)
    }

    /// Removes `jid` from the roster (`subscription='remove'`, RFC 6121 §2.5) and returns the
    /// reply iq.
    pub async fn roster_remove(&mut self, jid: &str) -> Result<Element, ClientError> {
        self.roster_set(
            Element::new("item", ns::ROSTER)
                .with_attr("jid", jid)
                .with_attr("subscription", "remove"),
        )
        .await
    }

    /// Answers a roster push with an empty result, as RFC 6121 §2.1.6 asks of clients.
    pub async fn ack_push(&mut self, push: &Element) {
        let mut result = Element::new("iq", ns::CLIENT).with_attr("type", "result");
        if let Some(id) = push.attr("id") {
            result.set_attr("id", id);
        }
        if let Some(from) = push.attr("from") {
            result.set_attr("to", from);
        }
        self.send(&result).await;
    }

    /// Waits for the next roster push for `jid`, acknowledges it and returns the push iq.
    pub async fn expect_roster_push(&mut self, jid: &str) -> Result<Element, ClientError> {
        let push = self
            .expect_match(&format!("a roster push for {jid}"), |el| {
                is_push_for(el, jid)
            })
            .await?;
        self.ack_push(&push).await;
        Ok(push)
    }

    /// Sends presence of `ty` (`subscribe`, `subscribed`, `unsubscribe`, `unsubscribed`,
    /// `unavailable`, `probe`) or, for `None`, directed available presence, to `to`.
    pub async fn send_presence_to(&mut self, to: &str, ty: Option<&str>) {
        self.send(&presence_to(to, ty)).await;
    }

    /// RFC 6121 §3.1.1: asks for a subscription to `to`'s presence.
    pub async fn subscribe(&mut self, to: &str) {
        self.send_presence_to(to, Some("subscribe")).await;
    }

    /// RFC 6121 §3.1.4: approves `to`'s subscription request.
    pub async fn approve(&mut self, to: &str) {
        self.send_presence_to(to, Some("subscribed")).await;
    }

    /// Sends initial (or updated) available presence with `<priority/>`.
    pub async fn available_with_priority(&mut self, priority: i8) {
        self.send(&presence_with_priority(priority)).await;
    }

    /// Waits for presence from exactly `from` of type `ty` (`available` for none).
    pub async fn expect_presence_from(
        &mut self,
        from: &str,
        ty: &str,
    ) -> Result<Element, ClientError> {
        self.expect_match(&format!("presence type={ty} from {from}"), |el| {
            is_presence_from(el, from, ty)
        })
        .await
    }

    /// Waits for a message whose body is `text`.
    pub async fn expect_message_body(&mut self, text: &str) -> Result<Element, ClientError> {
        self.expect_match(&format!("a message with body {text:?}"), |el| {
            el.is("message", ns::CLIENT) && body(el) == text
        })
        .await
    }

    /// Sends an iq and returns its reply together with everything received before the reply
    /// and not yet consumed, for rules about what comes first (RFC 6121 §2.6.3: the empty
    /// result, then the pushes). Those elements stay in the stash.
    pub async fn iq_collect(
        &mut self,
        iq: &Element,
    ) -> Result<(Element, Vec<Element>), ClientError> {
        let id = iq.attr("id").expect("iq id").to_owned();
        self.send(iq).await;
        self.expect_match_with_skipped(&format!("the reply to iq {id}"), |el| is_reply_to(el, &id))
            .await
    }

    /// [`Client::expect_match`], also returning (copies of) the unconsumed elements that came
    /// before the match, oldest first.
    pub async fn expect_match_with_skipped<'p>(
        &mut self,
        what: &str,
        pred: impl Fn(&Element) -> bool + Send + Sync + 'p,
    ) -> Result<(Element, Vec<Element>), ClientError> {
        let found = self.expect_match(what, pred).await?;
        let before = self.stash.iter().cloned().collect();
        Ok((found, before))
    }

    /// Waits (up to [`TIMEOUT`] in total) for an element matching `pred`: the oldest stashed
    /// one, else the next to arrive; what arrives first and does not match is stashed. On
    /// failure the error lists `what` and everything unconsumed.
    pub async fn expect_match<'p>(
        &mut self,
        what: &str,
        pred: impl Fn(&Element) -> bool + Send + Sync + 'p,
    ) -> Result<Element, ClientError> {
        let found = self.expect_each(what, vec![Box::new(pred)]).await?;
        Ok(found.into_iter().next().expect("one match"))
    }

    /// Waits (up to [`TIMEOUT`] in total) until every predicate has matched a distinct
    /// element, in any order; returns the matches in predicate order. Each element satisfies
    /// at most one predicate, the first unmatched one it fits. Stashed elements are looked at
    /// first (oldest first); new ones that match nothing are stashed.
    pub async fn expect_each<'p>(
        &mut self,
        what: &str,
        preds: Vec<Matcher<'p>>,
    ) -> Result<Vec<Element>, ClientError> {
        let mut found: Vec<Option<Element>> = vec![None; preds.len()];
        let slot_for = |found: &[Option<Element>], el: &Element| {
            preds
                .iter()
                .zip(found.iter())
                .position(|(p, f)| f.is_none() && p(el))
        };
        let mut kept = std::collections::VecDeque::new();
        while let Some(el) = self.stash.pop_front() {
            match slot_for(&found, &el) {
                Some(i) => found[i] = Some(el),
                None => kept.push_back(el),
            }
        }
        self.stash = kept;
        let deadline = Instant::now() + TIMEOUT;
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left).await? {
                Some(Received::Element(el)) => match slot_for(&found, &el) {
                    Some(i) => found[i] = Some(el),
                    None => self.stash.push_back(el),
                },
                Some(other) => {
                    return Err(ClientError::Unexpected(format!(
                        "waiting for {what}: the stream ended ({other:?}); unconsumed:\n  {}",
                        summarize(self.stash.iter())
                    )))
                }
                None => {
                    return Err(ClientError::Timeout(format!(
                        "{what} did not arrive within {TIMEOUT:?}; matched {} of {}; \
                         unconsumed:\n  {}",
                        found.iter().filter(|f| f.is_some()).count(),
                        found.len(),
                        summarize(self.stash.iter())
                    )))
                }
            }
        }
        Ok(found.into_iter().map(|f| f.expect("all found")).collect())
    }

    /// Takes everything stashed plus everything that arrives within `window` (one deadline
    /// for the whole window, so a steady trickle cannot stretch it).
    pub async fn collect_within(&mut self, window: Duration) -> Result<Vec<Element>, ClientError> {
        self.read_into_stash(window).await?;
        Ok(self.stash.drain(..).collect())
    }

    /// Fails if anything matching `pred` is stashed or arrives within `window`. Consumes
    /// nothing: for asserting that something does *not* arrive, with a short window after the
    /// point where it would have been sent.
    pub async fn expect_none_within(
        &mut self,
        window: Duration,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Result<(), ClientError> {
        self.read_into_stash(window).await?;
        if let Some(bad) = self.stash.iter().find(|el| pred(el)) {
            return Err(ClientError::Unexpected(format!(
                "expected no {what} within {window:?}, got {bad}; unconsumed:\n  {}",
                summarize(self.stash.iter())
            )));
        }
        Ok(())
    }

    async fn read_into_stash(&mut self, window: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left).await? {
                Some(Received::Element(el)) => self.stash.push_back(el),
                Some(other) => {
                    return Err(ClientError::Unexpected(format!(
                        "the stream ended ({other:?}); unconsumed:\n  {}",
                        summarize(self.stash.iter())
                    )))
                }
                None => return Ok(()),
            }
        }
    }

    /// Forgets everything stashed.
    pub fn clear_stash(&mut self) {
        self.stash.clear();
    }

    /// XEP-0280 §4: enables (or disables) carbons and returns the reply.
    pub async fn carbons(&mut self, enable: bool) -> Result<Element, ClientError> {
        let name = if enable { "enable" } else { "disable" };
        self.request(
            &Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", next_id(name))
                .with_child(Element::new(name, ns::CARBONS)),
        )
        .await
    }

    /// Ends the connection the rude way: TCP reset (SO_LINGER 0), no `</stream:stream>`, no
    /// TLS close_notify, no unavailable presence. Dropping a [`Client`] instead ends it with
    /// a plain FIN, equally without closing the stream.
    pub fn abort(self) {
        self.reset_on_drop();
        drop(self);
    }
}

/// Whether `el` is the result or error for the iq with `id`.
fn is_reply_to(el: &Element, id: &str) -> bool {
    el.is("iq", ns::CLIENT)
        && el.attr("id") == Some(id)
        && matches!(el.attr("type"), Some("result" | "error"))
}

/// Whether `el` is a XEP-0280 carbon (`<received/>` or `<sent/>`).
pub fn carbon_kind(el: &Element) -> Option<&'static str> {
    if !el.is("message", ns::CLIENT) {
        return None;
    }
    if el.get_child("received", ns::CARBONS).is_some() {
        Some("received")
    } else if el.get_child("sent", ns::CARBONS).is_some() {
        Some("sent")
    } else {
        None
    }
}

/// The forwarded message inside a carbon (XEP-0280 §5, XEP-0297).
pub fn carbon_inner(el: &Element) -> Option<&Element> {
    el.children()
        .find(|c| c.ns() == ns::CARBONS && (c.name() == "received" || c.name() == "sent"))?
        .get_child("forwarded", ns::FORWARD)?
        .get_child("message", ns::CLIENT)
}

/// Parses an RFC 3339 / XEP-0082 UTC timestamp (`YYYY-MM-DDThh:mm:ss[.fff]Z`) into seconds
/// since the Unix epoch; `None` if it is not exactly that form (offsets other than `Z` are
/// refused: XEP-0203 stamps are UTC).
pub fn parse_utc_stamp(stamp: &str) -> Option<f64> {
    let b = stamp.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = stamp.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, min, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let frac = match &stamp[19..stamp.len() - 1] {
        "" => 0.0,
        f if f.len() > 1 && f.starts_with('.') && f[1..].bytes().all(|c| c.is_ascii_digit()) => {
            format!("0{f}").parse().ok()?
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), valid for the proleptic
    // Gregorian calendar.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + min * 60 + sec) as f64 + frac)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// ----- XEP-0191 blocking and refused messages ------------------------------------------------

/// `<block/>`, `<unblock/>` or `<blocklist/>` (XEP-0191) with these item JIDs.
pub fn blocking_payload(name: &str, jids: &[&str]) -> Element {
    let mut el = Element::new(name, ns::BLOCKING);
    for jid in jids {
        el.push_child(Element::new("item", ns::BLOCKING).with_attr("jid", *jid));
    }
    el
}

/// Whether `el` is a blocking push (`block` or `unblock`) from the server.
pub fn is_blocking_push(el: &Element, name: &str) -> bool {
    el.is("iq", ns::CLIENT) && el.attr("type") == Some("set") && el.has_child(name, ns::BLOCKING)
}

impl Client {
    /// XEP-0191 §3.3: blocks `jids`; returns the reply iq.
    pub async fn block(&mut self, jids: &[&str]) -> Element {
        self.blocking_set("block", jids).await
    }

    /// XEP-0191 §3.4: unblocks `jids` (everything when empty); returns the reply iq.
    pub async fn unblock(&mut self, jids: &[&str]) -> Element {
        self.blocking_set("unblock", jids).await
    }

    async fn blocking_set(&mut self, name: &str, jids: &[&str]) -> Element {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", next_id("block"))
            .with_child(blocking_payload(name, jids));
        self.request(&iq).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// XEP-0191 §3.2: the blocklist's item JIDs (the resource then gets pushes).
    pub async fn blocklist(&mut self) -> Vec<String> {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", next_id("blocklist"))
            .with_child(Element::new("blocklist", ns::BLOCKING));
        let reply = self.request(&iq).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.attr("type"), Some("result"), "{reply}");
        reply
            .get_child("blocklist", ns::BLOCKING)
            .expect("<blocklist/>")
            .children()
            .filter_map(|i| i.attr("jid").map(str::to_owned))
            .collect()
    }

    /// Sends a chat message to `to` that must be refused, and returns the error's
    /// condition (asserting that an error came back for exactly that message).
    pub async fn refused_chat(&mut self, to: &str, text: &str) -> String {
        let id = next_id("refused");
        let mut m = chat(to, "chat", text);
        m.set_attr("id", id.as_str());
        self.send(&m).await;
        let err = self
            .expect_match(&format!("the error for message {id}"), |el| {
                el.attr("id") == Some(id.as_str())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(err.attr("type"), Some("error"), "{err}");
        error_condition(&err).unwrap_or_else(|| panic!("no condition in {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xep0082_utc_stamps() {
        assert_eq!(parse_utc_stamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_utc_stamp("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(
            parse_utc_stamp("2026-01-15T12:30:05.250Z"),
            Some(1_768_480_205.25)
        );
        assert_eq!(
            parse_utc_stamp("2024-02-29T23:59:59Z"),
            Some(1_709_251_199.0)
        );
    }

    #[test]
    fn refuses_non_utc_or_malformed_stamps() {
        for bad in [
            "2026-01-15T12:30:05+01:00",
            "2026-01-15 12:30:05Z",
            "2026-13-15T12:30:05Z",
            "2023-02-29T12:30:05Z",
            "2026-01-15T12:30:05.Z",
            "20260115T123005Z",
            "",
        ] {
            assert_eq!(parse_utc_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_roster_items_rfc6121_2_1_2() {
        let iq = roster_set_iq(
            "x",
            vec![roster_item("bob@localhost", Some("Bob"), &["A", "B"])
                .with_attr("subscription", "to")
                .with_attr("ask", "subscribe")],
        );
        assert!(is_roster_push(&iq));
        let item = push_item(&iq).expect("item");
        assert_eq!(item.jid, "bob@localhost");
        assert_eq!(item.name.as_deref(), Some("Bob"));
        assert_eq!(item.subscription, "to");
        assert_eq!(item.ask.as_deref(), Some("subscribe"));
        assert_eq!(item.groups, ["A", "B"]);
        let plain = Roster::from_iq(&roster_set_iq("y", vec![roster_item("c@d", None, &[])]))
            .expect("query");
        assert_eq!(plain.items[0].subscription, "none", "absent means none");
        assert_eq!(Roster::from_iq(&Element::new("iq", ns::CLIENT)), None);
    }
}
