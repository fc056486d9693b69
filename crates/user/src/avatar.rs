//! The account's avatar in both forms (XEP-0398): its hash in the account's presence for
//! vCard-based clients (XEP-0153), and its image in the account's vCard when a client
//! publishes a PEP avatar (XEP-0084). The other way (a vCard photo becoming the PEP avatar)
//! starts in the session that stores the vCard, which publishes it here like any client.
//!
//! The hash is added only to presence that names none (a XEP-0153 client speaks for
//! itself). When the avatar changes, each available resource whose presence carried the
//! old hash (or none) broadcasts again with the new one, as a XEP-0153 client would.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::avatar;
use parley_xml::{Element, Limits};
use tracing::warn;

use crate::actor::UserActor;

/// The avatar that `newest`, the newest item of an account's metadata node, names.
pub(crate) fn avatar_of(newest: &parley_storage::PepItemRow) -> Option<String> {
    Element::parse(newest.payload.as_bytes(), &Limits::trusted_copies())
        .ok()
        .and_then(|p| avatar::metadata_info(&p))
        .map(|(id, _)| id)
}

impl UserActor {
    /// `presence` with the avatar's hash, unless it names one or there is no avatar.
    pub(crate) fn with_avatar_hash(&self, presence: Element) -> Element {
        match &self.avatar {
            Some(hash) if !avatar::has_update(&presence) => avatar::with_update(&presence, hash),
            _ => presence,
        }
    }

    /// A publication to the metadata node (`payload` its item): the new avatar goes into
    /// presence and into the vCard.
    pub(crate) fn avatar_published(&mut self, payload: &Element, ctx: &mut Context<Self>) {
        let info = avatar::metadata_info(payload);
        let new = info.as_ref().map(|(id, _)| id.clone());
        if new == self.avatar {
            return;
        }
        let old = std::mem::replace(&mut self.avatar, new);
        // XEP-0398 §4: the vCard's photo follows.
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let work = async move {
            let photo = match &info {
                Some((id, mime)) => {
                    let rows = storage
                        .pep_items(
                            &user,
                            &host,
                            avatar::DATA_NODE,
                            None,
                            std::slice::from_ref(id),
                        )
                        .await?;
                    let data = rows.first().and_then(|r| {
                        Element::parse(r.payload.as_bytes(), &Limits::trusted_copies()).ok()
                    });
                    match data.and_then(|d| avatar::photo_from_data(&d, mime)) {
                        Some(p) if p.sha1 == *id => Some(p),
                        // No data under that id (or it does not match): nothing to copy.
                        _ => return Ok(()),
                    }
                }
                None => None,
            };
            let card = crate::vcard::read_vcard(&*storage, &user, &host).await?;
            let same =
                avatar::photo_of(&card).map(|p| p.sha1) == photo.as_ref().map(|p| p.sha1.clone());
            if !same {
                let updated = avatar::with_photo(&card, photo.as_ref());
                storage
                    .private_set(
                        &user,
                        &host,
                        parley_proto::ns::VCARD,
                        &updated.to_string(),
                        usize::MAX,
                    )
                    .await?;
            }
            Ok::<_, parley_storage::StorageError>(())
        };
        // Waited for, so that whoever sees the new hash and asks for the vCard gets the
        // new photo; then the presence goes out again.
        ctx.wait(wrap_future::<_, Self>(work).map(move |res, act, ctx| {
            if let Err(e) = res {
                warn!(user = %act.jid, error = %e, "copying the avatar into the vCard failed");
            }
            act.rebroadcast_avatar(old, ctx);
        }));
    }

    /// Resources whose presence carried the old hash (or none) broadcast again with the new.
    fn rebroadcast_avatar(&mut self, old: Option<String>, ctx: &mut Context<Self>) {
        let again: Vec<(String, Element)> = self
            .resources
            .iter()
            .filter(|r| r.available)
            .filter_map(|r| r.presence.as_ref().map(|p| (r.name().to_owned(), p)))
            .filter(|(_, p)| avatar::update_hash(p) == old || !avatar::has_update(p))
            .map(|(name, p)| (name, avatar::without_update(p)))
            .collect();
        for (name, presence) in again {
            self.broadcast_presence(&name, presence, true, ctx);
        }
    }
}
