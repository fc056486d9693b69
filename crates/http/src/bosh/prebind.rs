//! Prebind: a BOSH session the admin API creates, authenticated and bound, for a web site
//! to hand to its page (Converse.js `prebind_url`).

use std::time::Duration;

use parley_proto::ns;
use parley_session::Session;
use parley_xml::{Element, Limits};

use super::{collect, open::refused, MAX_WAIT};
use crate::framed::FramedConnection;
use crate::listener::WebState;

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
    let conn = FramedConnection::new(session.clone(), None, true);
    let env = state.env.clone();
    state.next_worker().spawn_fn(move || {
        use actix::Actor;
        Session::new_authenticated(env, Box::new(conn), user).start();
    });
    session.feed_open();
    let resource = resource
        .map(|r| format!("<resource>{}</resource>", parley_xml::escape::text(&r)))
        .unwrap_or_default();
    session.feed(
        format!(
            "<iq xmlns='jabber:client' type='set' id='prebind'><bind xmlns='{}'>{resource}</bind></iq>",
            ns::BIND
        )
        .into_bytes(),
    );
    // The features and the bind answer go to nobody but this function.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // No client request exists yet: RID 0 is the oldest waiter.
        let (elements, end) = collect(&session, 0, Duration::from_secs(10)).await;
        for e in &elements {
            if let Ok(el) = Element::parse(e.as_bytes(), &Limits::default()) {
                if el.is("iq", ns::CLIENT) && el.attr("id") == Some("prebind") {
                    let jid = el
                        .get_child("bind", ns::BIND)
                        .and_then(|b| b.get_child("jid", ns::BIND))
                        .map(|j| j.text());
                    return match (el.attr("type"), jid) {
                        (Some("result"), Some(jid)) => Ok((jid, sid, rid)),
                        _ => {
                            state.bosh.remove(&sid);
                            Err(format!("binding failed: {el}"))
                        }
                    };
                }
            }
        }
        if end || tokio::time::Instant::now() >= deadline {
            state.bosh.remove(&sid);
            return Err("the session ended before it was bound".into());
        }
    }
}
