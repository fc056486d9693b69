//! Push notifications (XEP-0357 §7): when a message with a body reaches an account none of
//! whose sessions can show it (all offline, so it is stored, or the session it was sent to
//! hibernating), the server publishes a summary to each app server the account enabled.
//!
//! Per account, notifications are coalesced: the first goes at once, and the messages of
//! the next `[push] min_interval_s` go together in one notification at its end (their
//! count and last sender). The gate remembers at most `[push] max_tracked_accounts`
//! accounts on a node (past it, it starts afresh: at worst one notification more). The body
//! is never sent: XEP-0357 leaves it optional and no client can ask for it in the protocol.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jid::BareJid;
use parley_router::Wake;
use tracing::warn;

use crate::Users;

/// The ids of the server's notifications (answers to them are dropped by the account).
pub const ID_PREFIX: &str = "parley-push-";

/// `[push]` settings as the gate reads them.
#[derive(Debug, Clone, Copy)]
pub struct PushLimits {
    /// Registrations one account may have.
    pub max_registrations: usize,
    /// Least time between two notifications to one account.
    pub min_interval: Duration,
    /// Accounts the gate remembers at once.
    pub max_tracked: usize,
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            max_registrations: 5,
            min_interval: Duration::from_secs(10),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug)]
struct Pending {
    /// When the last notification went.
    last: Option<Instant>,
    /// Messages not yet in a notification, and the last one's sender.
    count: u64,
    sender: Option<String>,
    /// A notification is on its way (now or at the interval's end).
    scheduled: bool,
}

/// Per account: what the next notification will say, and when it may go.
#[derive(Debug, Default)]
pub(crate) struct PushGate {
    accounts: Mutex<HashMap<BareJid, Pending>>,
    next_id: AtomicU64,
    /// Notifications not answered yet: id → (account, app server, node), so that an app
    /// server's refusal removes the registration it names (bounded like `accounts`).
    sent: Mutex<HashMap<String, (BareJid, String, String)>>,
}

impl Users {
    /// The `[push]` bounds.
    pub fn push_limits(&self) -> PushLimits {
        self.config.push
    }

    /// A message from `sender` reached `user` while no session could show it: the account's
    /// app servers get a notification, now or with the next ones (module doc).
    pub fn push_notify(&self, user: &BareJid, sender: Option<&str>) {
        self.push_notify_n(user, sender, 1);
    }

    /// [`Users::push_notify`] for `count` messages, the last from `sender`.
    pub fn push_notify_n(&self, user: &BareJid, sender: Option<&str>, count: u64) {
        if count == 0 {
            return;
        }
        let limits = self.config.push;
        let wait = {
            let mut accounts = self.push.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if accounts.len() >= limits.max_tracked && !accounts.contains_key(user) {
                accounts.clear();
            }
            let p = accounts.entry(user.clone()).or_insert(Pending {
                last: None,
                count: 0,
                sender: None,
                scheduled: false,
            });
            p.count += count;
            p.sender = sender.map(str::to_owned);
            if p.scheduled {
                return;
            }
            p.scheduled = true;
            p.last.map_or(Duration::ZERO, |l| {
                limits.min_interval.saturating_sub(l.elapsed())
            })
        };
        let Some(me) = self.me.upgrade() else { return };
        let user = user.clone();
        tokio::spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            me.push_send(user).await;
        });
    }

    /// An app server's answer to a notification (an iq result or error to the account,
    /// with one of our ids): consumed here. XEP-0357 §8: an app server that refuses for
    /// good (an error of type `cancel` or `auth`: the device is gone, the secret wrong)
    /// no longer gets notifications for that node; the registration is removed.
    pub(crate) fn push_answer(&self, user: &BareJid, answer: &parley_xml::Element) -> bool {
        let Some(id) = answer.attr("id").filter(|i| i.starts_with(ID_PREFIX)) else {
            return false;
        };
        let Some((account, app, node)) = self
            .push
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        else {
            // Not one of ours (or forgotten): the account drops it as before.
            return false;
        };
        let from_app = answer
            .attr("from")
            .and_then(|f| jid::Jid::new(f).ok())
            .is_some_and(|f| f.to_bare().as_str() == app || f.domain().as_str() == app);
        if &account != user || !from_app {
            return false;
        }
        let refused = answer.attr("type") == Some("error")
            && parley_proto::stanza_error::StanzaError::from_element(answer).is_some_and(|e| {
                matches!(
                    e.error_type,
                    parley_proto::ErrorType::Cancel | parley_proto::ErrorType::Auth
                )
            });
        if refused {
            let storage = self.storage.clone();
            let (username, host) = (
                user.node().map_or("", |n| n.as_str()).to_owned(),
                user.domain().as_str().to_owned(),
            );
            let user = user.clone();
            tokio::spawn(async move {
                match storage
                    .push_disable(&username, &host, &app, Some(&node))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(%user, app_server = %app, "push registration removed: the app server refused")
                    }
                    Err(e) => warn!(%user, error = %e, "push registration not removed"),
                }
            });
        }
        true
    }

    async fn push_send(self: Arc<Self>, user: BareJid) {
        let (count, sender) = {
            let mut accounts = self.push.accounts.lock().unwrap_or_else(|e| e.into_inner());
            let Some(p) = accounts.get_mut(&user) else {
                return;
            };
            p.scheduled = false;
            p.last = Some(Instant::now());
            (std::mem::take(&mut p.count), p.sender.take())
        };
        if count == 0 {
            return;
        }
        let (username, host) = (
            user.node().map_or("", |n| n.as_str()).to_owned(),
            user.domain().as_str().to_owned(),
        );
        let registrations = match self.storage.push_registrations(&username, &host).await {
            Ok(r) => r,
            Err(e) => {
                warn!(user = %user, error = %e, "push registrations unreadable");
                return;
            }
        };
        for r in registrations {
            let options = r.options.as_deref().and_then(|xml| {
                parley_xml::Element::parse(xml.as_bytes(), &parley_xml::Limits::trusted_copies())
                    .ok()
            });
            let id = format!(
                "{ID_PREFIX}{}",
                self.push.next_id.fetch_add(1, Ordering::Relaxed)
            );
            let iq = parley_proto::push::notification(
                &id,
                user.as_str(),
                &r.jid,
                &r.node,
                count,
                sender.as_deref(),
                options,
            );
            {
                let mut sent = self.push.sent.lock().unwrap_or_else(|e| e.into_inner());
                if sent.len() >= self.config.push.max_tracked {
                    // Unanswered for long: their app servers never said; start afresh.
                    sent.clear();
                }
                sent.insert(id, (user.clone(), r.jid.clone(), r.node.clone()));
            }
            parley_router::metrics::push_sent();
            self.router.send(iq, Wake::IfRunning);
        }
    }
}
