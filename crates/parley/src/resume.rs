//! Wiring of cross-node resumption (XEP-0198 §5 in a cluster): the session layer's
//! [`RemoteResume`] seam answered by the cluster node, and the node's [`ResumeHandler`]
//! answered by the session layer. Nothing here decides anything; see
//! `parley-session`'s `remote.rs` for the protocol.

use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use parley_cluster::node::{Node, ResumeHandler};
use parley_router::{SessionHandle, SessionId};
use parley_session::faults::Fault;
use parley_session::{BoxFuture, RemoteResume, SessionEnv};

/// How long a node waits for another's answer to a take.
const TAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects `env`'s resumptions and `node` both ways.
pub fn install(node: &Arc<Node>, env: &Arc<SessionEnv>) {
    env.resumptions
        .set_remote(Arc::new(ClusterResume(node.clone())));
    let (take_env, commit_env) = (env.clone(), env.clone());
    node.set_resume_handler(ResumeHandler {
        take: Arc::new(move |previd, user| {
            take_env.config.faults.exit_if(Fault::ExitAtTake);
            take_env.resumptions.export(&previd, &user)
        }),
        commit: Arc::new(move |previd, from, ok| {
            commit_env.config.faults.exit_if(Fault::ExitAtCommit);
            commit_env.resumptions.commit(&previd, &from, ok)
        }),
    });
}

struct ClusterResume(Arc<Node>);

impl RemoteResume for ClusterResume {
    fn take(
        &self,
        hint: Option<&str>,
        previd: &str,
        user: &BareJid,
    ) -> BoxFuture<Option<(String, Vec<u8>)>> {
        let node = self.0.clone();
        let (previd, user) = (previd.to_owned(), user.to_string());
        // The node the id names first; then the others, since a session that was resumed
        // once lives on under its first id wherever it went.
        let mut order: Vec<String> = hint.map(str::to_owned).into_iter().collect();
        order.extend(
            node.peers()
                .into_iter()
                .filter(|p| Some(p.as_str()) != hint),
        );
        Box::pin(async move {
            for peer in order {
                if let Some(state) = node.take_session(&peer, &previd, &user, TAKE_TIMEOUT).await {
                    return Some((peer, state));
                }
            }
            None
        })
    }

    fn adopt(&self, jid: &FullJid, session: SessionId, from: &str) -> BoxFuture<bool> {
        let (node, jid, from) = (self.0.clone(), jid.clone(), from.to_owned());
        Box::pin(async move { node.adopt_session(&jid, session, &from).await })
    }

    fn commit(&self, node: &str, previd: &str, ok: bool) {
        self.0.commit_session(node, previd, ok);
    }

    fn handle(&self, node: &str, jid: &FullJid, session: SessionId) -> Option<SessionHandle> {
        self.0.remote_session(node, jid, session)
    }
}
