//! Archiving on a message's way in (XEP-0313, XEP-0359): the session that receives a
//! message from its peer — a client, a server or a component — removes the stanza ids our
//! server stamps (nobody may forge them), chooses the archive ids of the message's local
//! parties, routes it at once with the recipient's `<stanza-id/>`, and hands the records to
//! the node's archive writer.
//!
//! Every node shares one database, so the sender's session writes the recipient's copy
//! too, wherever the recipient's sessions are. The client's XEP-0198 `<a/>` that counts a
//! message is sent only once the message is committed (`ack_when_archived`), so an
//! acknowledged message is in both archives; delivery never waits for the database.
//! Carbons, offline storage and the archive carry the same id because it exists before the
//! message is routed. A client that closes its stream gets our closing tag once its
//! messages are committed, so its next session reads them back (`close_after_archiving`).
//!
//! At most `[mam] max_in_flight_per_session` (64) of a session's messages wait for the
//! writer; past it the session reads nothing more until one commits. A failed write leaves the message
//! delivered and unarchived (counted and logged): losing the message because its copy
//! could not be kept would be worse.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::mam::{self, With};
use parley_router::CloseReason;
use parley_storage::ArchiveRecord;
use parley_xml::Element;

use crate::session::Session;

pub mod writer;

/// The local accounts a message is archived for (bare JIDs, `user@domain`).
#[derive(Debug, Default)]
pub(crate) struct Parties {
    /// The sender, when it is our client: its copy is outgoing, `with` its recipient.
    pub sender: Option<String>,
    /// The recipient, when it is an account here: its copy is incoming, `with` its sender.
    pub recipient: Option<String>,
}

/// What the archive answered for a message, besides the recipient's `<stanza-id/>` already
/// in it: the id of the sender's copy, when kept (for the sender's carbons).
#[derive(Debug, Default)]
pub(crate) struct Stamped {
    pub sender_id: Option<String>,
}

fn split(bare: &str) -> (String, String) {
    match bare.split_once('@') {
        Some((user, host)) => (user.to_owned(), host.to_owned()),
        None => (String::new(), bare.to_owned()),
    }
}

impl Session {
    /// XEP-0359 §3: removes the `<stanza-id/>`s whose `by` is one of our domains or an
    /// account on them, whoever put them there.
    pub(crate) fn strip_forged_ids(&self, el: &mut Element) {
        let router = &self.env.router;
        mam::strip_stanza_ids(el, |by| {
            let bare = by.split('/').next().unwrap_or(by);
            let domain = bare.rsplit('@').next().unwrap_or(bare);
            router.serves(&domain.to_ascii_lowercase())
        });
    }

    /// Archives `el` for `parties` when it is worth keeping, handing it to `then` at once
    /// stamped with the recipient's `<stanza-id/>` (for a message to oneself, the one
    /// copy's); the records go to the writer.
    pub(crate) fn archive_then<F>(
        &mut self,
        mut el: Element,
        mut parties: Parties,
        ctx: &mut Context<Self>,
        then: F,
    ) where
        F: FnOnce(&mut Session, Element, Stamped, &mut Context<Session>),
    {
        let writer = match &self.env.archive {
            Some(w) if el.name() == "message" && mam::archivable(&el) => w.clone(),
            _ => return then(self, el, Stamped::default(), ctx),
        };
        let to_self = parties.sender.is_some() && parties.sender == parties.recipient;
        if to_self {
            parties.recipient = None;
        }
        let from = el.attr("from").and_then(With::parse);
        let to = el.attr("to").and_then(With::parse);
        let stanza = el.to_string();
        let now = parley_proto::clock::now_ms();
        let record = |owner: &str, with: With| {
            let (username, host) = split(owner);
            ArchiveRecord {
                username,
                host,
                id: mam::new_id(),
                with,
                stamp_ms: now,
                // Filled below: the last record takes the serialized stanza itself.
                stanza: String::new(),
            }
        };
        let mut records = Vec::with_capacity(2);
        let mut stamped = Stamped::default();
        if let Some(owner) = parties.sender.as_deref() {
            // No `to`: the sender's own bare JID (RFC 6120 §10.3.1).
            if let Some(with) = to.clone().or_else(|| With::parse(owner)) {
                let r = record(owner, with);
                stamped.sender_id = Some(r.id.clone());
                if to_self {
                    el.push_child(mam::stanza_id(owner, &r.id));
                }
                records.push(r);
            }
        }
        if let (Some(owner), Some(with)) = (parties.recipient.as_deref(), from) {
            let r = record(owner, with);
            el.push_child(mam::stanza_id(owner, &r.id));
            records.push(r);
        }
        if let Some((last, others)) = records.split_last_mut() {
            for r in others {
                r.stanza.clone_from(&stanza);
            }
            last.stanza = stanza;
        }
        then(self, el, stamped, ctx);
        if !records.is_empty() {
            self.archive_submit(&writer, records, ctx);
        }
    }

    /// Hands `records` to the writer; this session's acks wait for them.
    fn archive_submit(
        &mut self,
        writer: &writer::ArchiveWriter,
        records: Vec<ArchiveRecord>,
        ctx: &mut Context<Self>,
    ) {
        self.archiving.submitted += 1;
        let seq = self.archiving.submitted;
        let progress = self.archiving.progress.clone();
        if let Err(queue) = writer.submit(records, progress, seq) {
            // The queue is full: this message goes in when there is room; input waits.
            ctx.spawn(wrap_future::<_, Self>(queue));
        }
        if self.archiving.in_flight() >= self.env.config.mam.max_in_flight && !self.archiving.paused
        {
            self.archiving.paused = true;
            self.pause();
            self.wait_for_archive(ctx);
        }
    }

    /// Wakes this session when every message it handed over so far is written: for paused
    /// input, deferred acks and waiting queries. One waiter at a time.
    fn wait_for_archive(&mut self, ctx: &mut Context<Self>) {
        if self.archiving.waiting {
            return;
        }
        self.archiving.waiting = true;
        let target = self.archiving.submitted;
        let reached = self.archiving.progress.clone().reached(target);
        ctx.spawn(wrap_future::<_, Self>(reached).map(|(), act, ctx| {
            act.archiving.waiting = false;
            act.archive_caught_up(ctx);
        }));
    }

    /// Some of this session's messages are written: acks, queries and input that waited.
    fn archive_caught_up(&mut self, ctx: &mut Context<Self>) {
        if self.archiving.paused
            && !self.archiving.closing
            && self.archiving.in_flight() < self.env.config.mam.max_in_flight
        {
            self.archiving.paused = false;
            self.resume();
        }
        let committed = self.archiving.committed();
        while let Some(&(upto, h)) = self.archiving.deferred.front() {
            if upto > committed {
                break;
            }
            self.archiving.deferred.pop_front();
            self.send_nonza(&parley_proto::sm::ack(h));
        }
        if self.archiving.in_flight() == 0 {
            for iq in std::mem::take(&mut self.archiving.queries) {
                self.mam_iq(iq, ctx);
            }
            if std::mem::take(&mut self.archiving.closing) {
                return self.close(CloseReason::Clean, ctx);
            }
        }
        if !self.archiving.deferred.is_empty()
            || !self.archiving.queries.is_empty()
            || self.archiving.paused
            || self.archiving.closing
        {
            self.wait_for_archive(ctx);
        }
    }

    /// The client closed its stream (RFC 6120 §4.4): ours closes once every message this
    /// session handed to the archive is written, so that the client's next session (often
    /// opened at once, on any node) finds them in its archive; what waits for them (acks,
    /// queries) goes out first. Nothing more is read meanwhile. True when the close waits.
    pub(crate) fn close_after_archiving(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.archiving.in_flight() == 0 {
            return false;
        }
        self.archiving.closing = true;
        self.pause();
        self.wait_for_archive(ctx);
        true
    }

    /// Read-your-writes: an archive query waits until this session's own messages are
    /// committed; true when `iq` was kept for then.
    pub(crate) fn query_after_archiving(&mut self, iq: &Element, ctx: &mut Context<Self>) -> bool {
        if self.archiving.in_flight() == 0
            || self.archiving.queries.len() >= self.env.config.mam.max_in_flight
        {
            return false;
        }
        self.archiving.queries.push(iq.clone());
        self.wait_for_archive(ctx);
        true
    }

    /// XEP-0198 §4 with XEP-0313: answers `<r/>` with `h` once every message handled before
    /// it is committed.
    pub(crate) fn ack_when_archived(&mut self, h: u32, ctx: &mut Context<Self>) {
        if self.archiving.in_flight() == 0 && self.archiving.deferred.is_empty() {
            return self.send_nonza(&parley_proto::sm::ack(h));
        }
        let upto = self.archiving.submitted;
        if self.archiving.deferred.len() >= self.env.config.mam.max_in_flight {
            // A client asking faster than the database commits: the newest answer covers
            // the older ones (h only grows), so the oldest waiting one is dropped.
            self.archiving.deferred.pop_front();
        }
        self.archiving.deferred.push_back((upto, h));
        self.wait_for_archive(ctx);
    }
}

/// A session's messages on their way to the archive, and the acks that wait for them.
#[derive(Debug, Default)]
pub(crate) struct Archiving {
    /// Messages handed to the writer, in order; the writer raises `progress` as it writes.
    submitted: u64,
    progress: std::sync::Arc<writer::Progress>,
    /// A waiter for `progress` is spawned.
    waiting: bool,
    /// Input paused because too many wait.
    paused: bool,
    /// `<a h/>` answers waiting for the messages handed over before their `<r/>`.
    deferred: std::collections::VecDeque<(u64, u32)>,
    /// Archive queries waiting for this session's own messages to be committed.
    queries: Vec<Element>,
    /// The client closed its stream; ours closes once its messages are written.
    closing: bool,
}

impl Archiving {
    fn committed(&self) -> u64 {
        self.progress
            .committed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn in_flight(&self) -> usize {
        usize::try_from(self.submitted.saturating_sub(self.committed())).unwrap_or(usize::MAX)
    }
}
