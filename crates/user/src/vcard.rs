//! vCard-temp (XEP-0054) as others see it: a `get` to an account's bare JID is answered
//! by the server on the account's behalf (RFC 6121 §8.5.2.1.3), from the vCard its owner
//! stored (the owner's own reads and writes go through its session).

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_router::Wake;
use parley_xml::{Element, Limits};

use crate::actor::UserActor;

/// XEP-0054 §3.1: the stored vCard, or an empty one (the §3.1 alternative to
/// `item-not-found` that clients take best).
pub async fn read_vcard(
    storage: &dyn parley_storage::Storage,
    username: &str,
    host: &str,
) -> Result<Element, parley_storage::StorageError> {
    let stored = storage.private_get(username, host, ns::VCARD).await?;
    Ok(stored
        .and_then(|xml| Element::parse(xml.as_bytes(), &Limits::trusted_copies()).ok())
        .unwrap_or_else(|| Element::new("vCard", ns::VCARD)))
}

impl UserActor {
    /// Another entity's `<iq type='get'><vCard xmlns='vcard-temp'/></iq>` to this account.
    pub(crate) fn vcard_get(&self, iq: Element, ctx: &mut Context<Self>) {
        let storage = self.users.storage.clone();
        let (user, host) = (self.username().to_owned(), self.host().to_owned());
        let read = async move { read_vcard(&*storage, &user, &host).await };
        ctx.spawn(
            wrap_future::<_, Self>(read).map(move |card, act, _ctx| match card {
                Ok(card) => act.route_out(iq_result(&iq).with_child(card), Wake::IfRunning),
                Err(_) => act.bounce(&iq, StanzaError::new(StanzaCondition::InternalServerError)),
            }),
        );
    }
}
