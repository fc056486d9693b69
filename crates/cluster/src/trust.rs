//! What an authenticated peer may ask in its own name.
//!
//! The handshake proves that a peer is a node of the cluster; it does not make every frame of
//! it legitimate. A frame that says it concerns a session of node X (attaches it to its
//! user's actor, speaks for it, detaches it, or closes it because X took its resource over) is
//! acted on only when the registry — the one source of truth, written under each node's own
//! lease — shows X holding that session, and X is the sender. The registry cache can trail a
//! claim by a watch round trip, so a frame whose evidence is not there yet waits (bounded,
//! `cluster.registry_wait_ms`) in its user's order; past that it is refused, counted and
//! logged once per peer, and never acted on.

use crate::link::Body;
use crate::registry::Cache;
use parley_user::UserWire;

/// What to do with a frame from an authenticated peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Act on it.
    Accept,
    /// Never act on it: the reason counted with `refuse`.
    Refuse(&'static str),
    /// The registry does not show it legitimate yet; ask again when it changes.
    Wait,
}

/// The refusal reason of a frame that waited in vain.
pub const NOT_IN_REGISTRY: &str = "link_not_own_session";

fn split_full(jid: &str) -> Option<(&str, &str)> {
    jid.split_once('/')
}

/// Judges `body` from node `from` against the registry `cache`.
pub fn judge(cache: &Cache, from: &str, body: &Body) -> Verdict {
    // Who holds `user`/`resource` in the registry, with which session.
    let holder = |user: &str, resource: &str| {
        cache
            .lookup(user, resource)
            .map(|e| (e.node.as_str() == from, e.session))
    };
    match body {
        Body::Hello { .. } | Body::Welcome { .. } | Body::Proof { .. } => {
            Verdict::Refuse("link_unexpected_handshake")
        }
        // Stanzas for our sessions and users, queries, BOSH forwarding, keep-alives: any node
        // may route them (answers are matched to the node they were asked of by the caller).
        Body::ToSession { .. }
        | Body::ToSessions { .. }
        | Body::Query { .. }
        | Body::Answer { .. }
        | Body::BoshRequest { .. }
        | Body::BoshResponse { .. }
        | Body::ResumeTake { .. }
        | Body::ResumeState { .. }
        | Body::ResumeCommit { .. }
        | Body::ToDomain { .. }
        | Body::ToRoom { .. }
        | Body::RoomReload { .. }
        | Body::RoomControl { .. }
        | Body::Synced { .. }
        | Body::Ping(_)
        | Body::Pong(_) => Verdict::Accept,
        // A sync only waits: any node may ask one, within the bound on its size.
        Body::Sync { users, .. } if users.len() <= parley_user::MAX_SYNC_USERS => Verdict::Accept,
        Body::Sync { .. } => Verdict::Refuse("link_sync_too_large"),
        Body::ToUser { user, msg } => match msg {
            // Stanzas for the user, and the carbon of a message the sender's node delivered
            // to one of the user's resources (XEP-0280 §5.2: sent by whichever node routed
            // it): routing, like ToSession.
            UserWire::Inbound { .. } | UserWire::CarbonReceived { .. } => Verdict::Accept,
            // A session bound on the sender, claimed in the registry under its name.
            UserWire::Attach {
                resource, session, ..
            } => match holder(user, resource) {
                Some((true, s)) if s == *session => Verdict::Accept,
                _ => Verdict::Wait,
            },
            // Speaking for a resource: only its holder. Its Attach came first on this link
            // and waited for the claim, so the entry is normally there already.
            UserWire::FromClient { resource, .. } => match holder(user, resource) {
                Some((true, _)) => Verdict::Accept,
                _ => Verdict::Wait,
            },
            // A release: its key may already be gone (or taken over), which is fine; what is
            // refused is detaching the session another node holds.
            UserWire::Detach { resource, session } => match holder(user, resource) {
                Some((false, s)) if s == *session => Verdict::Refuse(NOT_IN_REGISTRY),
                _ => Verdict::Accept,
            },
        },
        Body::Close {
            jid,
            status: Some(_),
            ..
        } => {
            // An admin's revocation: the admin API is cluster-wide, any node may ask. It
            // must name a session the registry shows on this node (checked by the caller
            // against the local table and its id).
            let _ = jid;
            Verdict::Accept
        }
        // Closing a session of ours because the sender took its resource over (kick_old):
        // the registry must show the sender holding it now.
        Body::Close { jid, .. } => match split_full(jid).and_then(|(u, r)| holder(u, r)) {
            Some((true, _)) => Verdict::Accept,
            _ => Verdict::Wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::RemoteClose;
    use crate::registry::{Layout, SessionEntry};

    fn cache_with(node: &str, session: u64) -> Cache {
        let layout = Layout::new("/p");
        let mut cache = Cache::default();
        let entry = SessionEntry {
            node: node.into(),
            session,
            priority: 0,
            available: false,
            interested: false,
            carbons: false,
        };
        let key = layout.session("a@b", "r");
        cache.reset(&layout, vec![(key, serde_json::to_vec(&entry).unwrap())], 1);
        cache
    }

    fn attach(session: u64) -> Body {
        Body::ToUser {
            user: "a@b".into(),
            msg: UserWire::Attach {
                resource: "r".into(),
                session,
                state: parley_user::WireState {
                    available: false,
                    priority: 0,
                    presence: None,
                    interested: false,
                    carbons: false,
                    directed: vec![],
                },
            },
        }
    }

    fn close(status: Option<&str>) -> Body {
        Body::Close {
            jid: "a@b/r".into(),
            session: 5,
            reason: RemoteClose::Clean,
            status: status.map(str::to_owned),
        }
    }

    #[test]
    fn a_node_may_attach_only_the_sessions_it_holds() {
        let c = cache_with("B", 5);
        assert_eq!(judge(&c, "B", &attach(5)), Verdict::Accept);
        assert_eq!(judge(&c, "C", &attach(5)), Verdict::Wait);
        assert_eq!(judge(&c, "B", &attach(6)), Verdict::Wait);
        assert_eq!(judge(&Cache::default(), "B", &attach(5)), Verdict::Wait);
    }

    #[test]
    fn a_node_may_not_detach_or_close_a_session_another_holds() {
        let c = cache_with("C", 5);
        let detach = Body::ToUser {
            user: "a@b".into(),
            msg: UserWire::Detach {
                resource: "r".into(),
                session: 5,
            },
        };
        assert_eq!(judge(&c, "B", &detach), Verdict::Refuse(NOT_IN_REGISTRY));
        assert_eq!(judge(&c, "C", &detach), Verdict::Accept);
        assert_eq!(judge(&c, "B", &close(None)), Verdict::Wait);
        assert_eq!(
            judge(&cache_with("B", 9), "B", &close(None)),
            Verdict::Accept
        );
    }

    #[test]
    fn handshake_frames_after_the_handshake_are_refused() {
        let proof = Body::Proof { proof: vec![] };
        assert!(matches!(
            judge(&Cache::default(), "B", &proof),
            Verdict::Refuse(_)
        ));
    }

    /// A sync only makes this node wait, so any node may ask one; but one naming more
    /// users than any roster needs is refused, not served.
    #[test]
    fn a_sync_is_accepted_within_its_bound_rfc6120_10_1() {
        let sync = |n: usize| Body::Sync {
            id: 1,
            users: vec!["u@localhost".to_owned(); n],
            depth: parley_user::SyncDepth::Fence,
        };
        let c = Cache::default();
        assert_eq!(judge(&c, "B", &sync(1)), Verdict::Accept);
        assert_eq!(
            judge(&c, "B", &sync(parley_user::MAX_SYNC_USERS)),
            Verdict::Accept
        );
        assert_eq!(
            judge(&c, "B", &sync(parley_user::MAX_SYNC_USERS + 1)),
            Verdict::Refuse("link_sync_too_large")
        );
    }
}
