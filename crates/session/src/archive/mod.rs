//! Archiving on a message's way in (XEP-0313, XEP-0359): the session that receives a
//! message from its peer — a client, a server or a component — removes the stanza ids our
//! server stamps (nobody may forge them), archives the message for its local parties, and
//! only then routes it, with the recipient's `<stanza-id/>`.
//!
//! Every node shares one database, so the sender's session writes the recipient's copy
//! too, wherever the recipient's sessions are. Input pauses meanwhile (and only input): the
//! client's next
//! stanza, and its `<r/>` (XEP-0198), wait for the write, so an acknowledged message is in
//! both archives. Carbons, offline storage and the archive then carry the same id.
//!
//! A failed write delivers the message unarchived (counted and logged): losing the
//! message because its copy could not be kept would be worse.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::mam::{self, With};
use parley_storage::ArchiveRecord;
use parley_xml::Element;
use tracing::warn;

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

    /// Archives `el` for `parties` when it is worth keeping, then hands it to `then`
    /// stamped with the recipient's `<stanza-id/>`; `then` runs at once when there is
    /// nothing to archive.
    pub(crate) fn archive_then<F>(
        &mut self,
        mut el: Element,
        mut parties: Parties,
        ctx: &mut Context<Self>,
        then: F,
    ) where
        F: FnOnce(&mut Session, Element, Stamped, &mut Context<Session>) + 'static,
    {
        let writer = match &self.env.archive {
            Some(w) if el.name() == "message" && mam::archivable(&el) => w.clone(),
            _ => return then(self, el, Stamped::default(), ctx),
        };
        // A message to oneself is one conversation: one copy, its id on the delivery.
        let to_self = parties.sender.is_some() && parties.sender == parties.recipient;
        if to_self {
            parties.recipient = None;
        }
        let from = el.attr("from").and_then(With::parse);
        let to = el.attr("to").and_then(With::parse);
        let stanza = el.to_string();
        let now = parley_proto::clock::now_ms();
        let mut records = Vec::with_capacity(2);
        let record = |owner: &str, with: With| {
            let (username, host) = split(owner);
            ArchiveRecord {
                username,
                host,
                with,
                stamp_ms: now,
                stanza: stanza.clone(),
            }
        };
        let sender = parties.sender.as_deref().and_then(|owner| {
            // No `to`: the sender's own bare JID (RFC 6120 §10.3.1).
            let with = to.clone().or_else(|| With::parse(owner))?;
            records.push(record(owner, with));
            Some((records.len() - 1, owner.to_owned()))
        });
        let recipient = parties.recipient.as_deref().and_then(|owner| {
            records.push(record(owner, from.clone()?));
            Some((records.len() - 1, owner.to_owned()))
        });
        if records.is_empty() {
            return then(self, el, Stamped::default(), ctx);
        }
        self.pause();
        let work = async move { writer.append(records).await };
        // Only input waits (`pause`): stanzas routed to this session meanwhile are still
        // delivered, so that archiving one's own message never holds up what one receives
        // (nor fills this session's mailbox).
        ctx.spawn(wrap_future::<_, Self>(work).map(move |answer, act, ctx| {
            act.resume();
            let ids = match answer {
                Ok(ids) => ids,
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "message delivered unarchived"));
                    Vec::new()
                }
            };
            let id_of = |slot: &Option<(usize, String)>| {
                slot.as_ref()
                    .and_then(|(i, owner)| Some((ids.get(*i)?.clone()?, owner.clone())))
            };
            let sent = id_of(&sender);
            // The recipient sees its own archive's id (for a message to oneself, the one
            // copy's).
            let delivered = if to_self {
                sent.clone()
            } else {
                id_of(&recipient)
            };
            if let Some((id, owner)) = delivered {
                el.push_child(mam::stanza_id(&owner, &id));
            }
            then(
                act,
                el,
                Stamped {
                    sender_id: sent.map(|(id, _)| id),
                },
                ctx,
            );
        }));
    }
}
