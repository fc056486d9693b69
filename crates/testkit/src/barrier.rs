//! Barriers for "nothing arrives" checks: round trips that an unwanted stanza would have had
//! to come before (a ping to the session, a roster get to the user's actor, a ping to another
//! user's account), and the check of what has arrived by then. They replace fixed quiet
//! windows, so a check is about the rule and not about timing.

use std::time::Duration;

use parley_proto::ns;
use parley_xml::Element;

use crate::im::{next_id, roster_get_iq};
use crate::{Client, ClientError};

impl Client {
    /// Round-trips a ping to the server, stashing whatever arrives before its result. The
    /// server handles one client's stanzas in order, so whatever this client sent before has
    /// been processed by its session when this returns (not necessarily by other actors).
    pub async fn sync(&mut self) -> Result<(), ClientError> {
        self.request(
            &Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", next_id("sync"))
                .with_child(Element::new("ping", ns::PING)),
        )
        .await
        .map(|_| ())
    }

    /// Round-trips a roster get, which the user's actor answers (RFC 6121 §2.1.3), stashing
    /// whatever arrives before its result: everything this client sent before has reached
    /// that actor, and everything the actor had sent this session before (a push, a message
    /// it routed) has arrived, when this returns. It makes the session interested in roster
    /// pushes (RFC 6121 §2.1.6), so it is for sessions that already asked for the roster.
    pub async fn sync_user(&mut self) -> Result<(), ClientError> {
        self.request(&roster_get_iq(&next_id("sync-user"), None))
            .await
            .map(|_| ())
    }

    /// Round-trips a ping to another user's bare JID, which that user's actor answers for the
    /// account (RFC 6121 §8.5.1), stashing whatever arrives before the answer. Stanzas this
    /// client sent to that bare JID before have been handled by that actor, and whatever it
    /// sent back for them (a bounce) has arrived, when this returns.
    pub async fn sync_via(&mut self, bare: &str) -> Result<(), ClientError> {
        self.request(
            &Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", next_id("sync-via"))
                .with_attr("to", bare)
                .with_child(Element::new("ping", ns::PING)),
        )
        .await
        .map(|_| ())
    }

    /// Fails if anything matching `pred` has arrived by now (it is stashed), without waiting:
    /// for "nothing arrives" once a barrier ([`Client::sync`], [`Client::sync_user`], or an
    /// awaited stanza sent after it on the same path) has shown it would have come before.
    /// Consumes nothing.
    pub async fn expect_none_yet(
        &mut self,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Result<(), ClientError> {
        // A zero window takes only what is already readable: a barrier's answer was read
        // after everything before it.
        self.expect_none_within(Duration::ZERO, what, pred).await
    }

    /// [`Client::sync`], then [`Client::expect_none_yet`]: nothing matching `pred` came before
    /// the server answered a ping. Valid when the unwanted stanza would have been handed to
    /// this session before the ping was sent (by this client's own earlier input, or in a
    /// step whose other effects the test has already seen).
    pub async fn expect_none_before_ping(
        &mut self,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Result<(), ClientError> {
        self.sync().await?;
        self.expect_none_yet(what, pred).await
    }

    /// [`Client::sync_user`], then [`Client::expect_none_yet`]: nothing matching `pred` came
    /// before this user's actor answered a roster get. Valid when the unwanted stanza would
    /// have come from that actor, caused by what this client sent before or by a step whose
    /// other effects the test has already seen.
    pub async fn expect_none_before_user_sync(
        &mut self,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Result<(), ClientError> {
        self.sync_user().await?;
        self.expect_none_yet(what, pred).await
    }
}
