//! Prebind: a BOSH session the admin API creates, authenticated and bound, for a web site
//! to hand to its page (Converse.js `prebind_url`).
//!
//! The bind is the session's own ([`Session::prebound`]): this module only creates the BOSH
//! session, starts the actor on it and waits for the actor to say which full JID it bound.

use std::time::Duration;

use parley_session::Session;

use super::{open::refused, MAX_WAIT};
use crate::framed::FramedConnection;
use crate::web_state::WebState;

/// How long a prebind waits for its session to bind (a cluster claim included).
const BIND_WAIT: Duration = Duration::from_secs(10);

/// A BOSH session created for a user the caller vouches for (XEP-0124 §7 session,
/// authenticated and bound without the client): Converse.js `prebind_url` attaches to it.
/// Returns the bound full JID, the SID, and the RID the client uses next.
pub async fn prebind(
    state: &WebState,
    user: jid::BareJid,
    resource: Option<String>,
) -> Result<(String, String, u64), String> {
    let host = user.domain().as_str().to_owned();
    let rid = u64::from(rand::random::<u32>()) + 1;
    let Some((sid, session)) = state.bosh.open(&host, rid, MAX_WAIT) else {
        refused("bosh_max_sessions", None);
        return Err("the node holds [http] bosh_max_sessions BOSH sessions".into());
    };
    let conn = FramedConnection::new(session, None, true);
    let env = state.env.clone();
    let (reply, bound) = tokio::sync::oneshot::channel();
    state.next_worker().spawn_fn(move || {
        use actix::Actor;
        Session::prebound(env, Box::new(conn), user, resource, reply).start();
    });
    match tokio::time::timeout(BIND_WAIT, bound).await {
        Ok(Ok(Ok(jid))) => Ok((jid.to_string(), sid, rid)),
        Ok(Ok(Err(e))) => {
            state.bosh.remove(&sid);
            Err(format!("binding failed: {e}"))
        }
        Ok(Err(_)) | Err(_) => {
            state.bosh.remove(&sid);
            Err("the session ended before it was bound".into())
        }
    }
}
