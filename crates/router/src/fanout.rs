//! One stanza to many sessions: a chat room's message or presence to its occupants. The
//! same road as [`Router::send`] for each recipient (a local session, a session on another
//! node, else the user's rules), decided here and nowhere else, but recipients on another
//! node are reached with one frame per node ([`RemoteSessions::deliver_many`]) instead of
//! one per recipient, and a stanza is copied only for the recipients on this node.

use std::collections::HashMap;
use std::sync::Arc;

use jid::FullJid;
use parley_xml::Element;

use super::{Router, Wake};
use crate::handle::RemoteSessions;
use crate::table::Local;
use crate::SessionId;

type ByNode = HashMap<Arc<str>, (Arc<dyn RemoteSessions>, Vec<(FullJid, SessionId)>)>;

impl Router {
    /// Sends `stanza` (without a `to`) to each of `recipients`, each copy addressed to its
    /// recipient; refusals are answered to the stanza's sender, as for [`Router::send`].
    pub fn fan_out(&self, stanza: &Element, recipients: &[&FullJid], wake: Wake) {
        let mut by_node: ByNode = HashMap::new();
        for jid in recipients {
            let jid = *jid;
            let mut copy = stanza.clone();
            copy.set_attr("to", jid.to_string());
            let copy = match self.deliver_local(jid, copy, None, None) {
                Local::Delivered => continue,
                Local::Failed(undelivered) => {
                    if let Err(refused) = self.undelivered(*undelivered, Some(jid), wake) {
                        self.answer(*refused);
                    }
                    continue;
                }
                Local::Absent(copy) | Local::Loopback(copy) => copy,
            };
            let handle = self.directory().and_then(|d| d.lookup(jid));
            match handle
                .as_ref()
                .and_then(|h| Some((h.id, h.remote_reach()?)))
            {
                Some((id, (node, nodes))) => {
                    by_node
                        .entry(node.clone())
                        .or_insert_with(|| (nodes.clone(), Vec::new()))
                        .1
                        .push((jid.clone(), id));
                }
                None => self.send(copy, wake),
            }
        }
        for (node, (nodes, targets)) in by_node {
            for (jid, undelivered) in nodes.deliver_many(&node, &targets, stanza) {
                if let Err(refused) = self.undelivered(*undelivered, Some(&jid), wake) {
                    self.answer(*refused);
                }
            }
        }
    }
}
