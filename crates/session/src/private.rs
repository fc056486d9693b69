//! Private XML storage (XEP-0049): a client keeps elements of its own namespaces on the
//! server (bookmarks of old clients, preferences), one per namespace, readable only by the
//! account itself. Stored in the shared storage, so any node answers. The account's own
//! vCard (XEP-0054) is kept the same way, under the reserved key `vcard-temp`; others read
//! it through the account's user actor.
//!
//! Each request pauses the session's input while storage answers, so that a `get` after a
//! `set` on one stream sees the `set`. Bounds: an element is at most a stanza
//! (`[c2s] max_stanza_bytes`), and an account stores at most `[quotas] private_namespaces`
//! namespaces (past it, `resource-constraint`).

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_xml::{Element, Limits};
use tracing::warn;

use crate::session::Session;

/// The namespace of `<query/>`.
pub(crate) const NS: &str = "jabber:iq:private";
/// XEP-0054's namespace, and the storage key of the account's vCard.
pub(crate) const VCARD: &str = ns::VCARD;

/// XEP-0049 §3: namespaces no client may store data under.
fn reserved(ns_name: &str) -> bool {
    ns_name.is_empty()
        || ns_name == NS
        || ns_name == VCARD
        || ns_name == ns::CLIENT
        || ns_name == ns::SERVER
        || ns_name.starts_with("jabber:iq:")
        || ns_name.starts_with("urn:ietf:params:xml:ns:xmpp")
}

impl Session {
    /// An iq whose payload is `<query xmlns='jabber:iq:private'/>`, to the user's own
    /// account (the caller checked).
    pub(crate) fn private_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Some(user) = self.user() else { return };
        let get = iq.attr("type") == Some("get");
        let Some(query) = iq.first_child() else {
            return;
        };
        let children: Vec<Element> = query.children().cloned().collect();
        let bad = children.is_empty()
            || (get && children.len() != 1)
            || children.iter().any(|c| reserved(c.ns()));
        if bad {
            // §3: a reserved namespace, no namespace, or not one element to get.
            return self.bounce_with(
                &iq,
                StanzaError::with_text(
                    StanzaCondition::NotAcceptable,
                    "private storage takes elements of the client's own namespaces",
                ),
                ctx,
            );
        }
        let storage = self.env.storage.clone();
        let max = self.env.config.private_namespaces;
        let (username, host) = account_parts(&user);
        // XEP-0411: while this session's own legacy write is being mirrored, private
        // storage has the newest bookmarks.
        let mirroring = self.bound().is_some_and(|b| b.pep_syncs > 0);
        self.pause();
        let work = async move {
            if get {
                let wanted = &children[0];
                let stored = storage.private_get(&username, &host, wanted.ns()).await?;
                let mut found = stored
                    .and_then(|xml| Element::parse(xml.as_bytes(), &Limits::trusted_copies()).ok());
                if crate::pep_sync::is_legacy(wanted) && !mirroring {
                    found =
                        crate::pep_sync::read_legacy(&*storage, &username, &host, found).await?;
                }
                let el = found.unwrap_or_else(|| wanted.clone());
                Ok(Answer::Payload(Element::new("query", NS).with_child(el)))
            } else {
                let mut sync = Vec::new();
                for child in &children {
                    let xml = child.to_string();
                    if !storage
                        .private_set(&username, &host, child.ns(), &xml, max)
                        .await?
                    {
                        return Ok(Answer::Full(
                            "too many private storage namespaces for this account",
                        ));
                    }
                    if crate::pep_sync::is_legacy(child) {
                        sync = crate::pep_sync::sync_payloads(&*storage, &username, &host, child)
                            .await?;
                    }
                }
                Ok(Answer::StoredThen(sync))
            }
        };
        self.answer_from_storage(iq, work, ctx);
    }

    /// XEP-0054 §3.1-§3.2: the account's own vCard, read or written (the caller checked
    /// that the iq is to the account itself).
    pub(crate) fn own_vcard_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let Some(user) = self.user() else { return };
        let Some(card) = iq.first_child().cloned() else {
            return;
        };
        let get = iq.attr("type") == Some("get");
        let storage = self.env.storage.clone();
        let (username, host) = account_parts(&user);
        self.pause();
        let work = async move {
            if get {
                Ok(Answer::Payload(
                    parley_user::read_vcard(&*storage, &username, &host).await?,
                ))
            } else {
                let before = parley_user::read_vcard(&*storage, &username, &host).await?;
                // The vCard is always kept: it does not compete with private namespaces.
                storage
                    .private_set(&username, &host, VCARD, &card.to_string(), usize::MAX)
                    .await?;
                // XEP-0398 §4: its photo becomes the PEP avatar too.
                let sync =
                    crate::pep_sync::avatar_sync(&*storage, &username, &host, &before, &card)
                        .await?;
                Ok(Answer::StoredThen(sync))
            }
        };
        self.answer_from_storage(iq, work, ctx);
    }

    /// Answers `iq` with what `work` finds in storage; input waits meanwhile.
    pub(crate) fn answer_from_storage(
        &mut self,
        iq: Element,
        work: impl std::future::Future<Output = Result<Answer, parley_storage::StorageError>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        ctx.wait(wrap_future::<_, Self>(work).map(
            move |answer: Result<Answer, parley_storage::StorageError>, act, ctx| {
                act.resume();
                match answer {
                    Ok(Answer::Payload(el)) => act.send(&iq_result(&iq).with_child(el), ctx),
                    Ok(Answer::StoredThen(sync)) => {
                        // Before the answer: what the client asks next comes after them.
                        act.send_pep_sync(sync, ctx);
                        act.send(&iq_result(&iq), ctx);
                    }
                    Ok(Answer::Full(text)) => act.bounce_with(
                        &iq,
                        StanzaError::with_text(StanzaCondition::ResourceConstraint, text),
                        ctx,
                    ),
                    Err(e) => {
                        act.span
                            .in_scope(|| warn!(error = %e, "private storage failed"));
                        act.bounce_with(
                            &iq,
                            StanzaError::new(StanzaCondition::InternalServerError),
                            ctx,
                        );
                    }
                }
            },
        ));
    }
}

/// What storage said.
pub(crate) enum Answer {
    /// The result's payload.
    Payload(Element),
    /// Stored: an empty result, after these payloads went to the account's PEP service
    /// (XEP-0411 bookmarks, XEP-0398 avatar; usually none).
    StoredThen(Vec<Element>),
    /// Past the account's bound (the error's text).
    Full(&'static str),
}

/// The storage keys of an account: its localpart and domain.
pub(crate) fn account_parts(user: &jid::BareJid) -> (String, String) {
    (
        user.node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        user.domain().as_str().to_owned(),
    )
}
