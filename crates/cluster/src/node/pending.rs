//! Requests to peers that wait for an answer (admin queries, forwarded BOSH requests,
//! session takes for cross-node resumption): random id → the node asked and the way back.
//!
//! Ids are random so that no other node can guess one, and an answer is taken only from
//! the node that was asked; anything else is a stray the caller counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The node a request went to, and where its answer goes.
type Waiting<T> = (Arc<str>, oneshot::Sender<T>);

/// Requests of one kind waiting for their answers of type `T`.
pub(super) struct Pending<T> {
    map: Mutex<HashMap<u128, Waiting<T>>>,
}

impl<T> Pending<T> {
    pub(super) fn new() -> Pending<T> {
        Pending {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request to `node` with `send` (given the request's id; false when the link
    /// refused it) and waits up to `timeout` for the answer.
    pub(super) async fn ask(
        &self,
        node: Arc<str>,
        timeout: Duration,
        send: impl FnOnce(u128) -> bool,
    ) -> Option<T> {
        let (id, rx) = self.open(node);
        let sent = send(id);
        self.wait(id, sent.then_some(rx), timeout).await
    }

    /// Registers a request to `node`: its id, and where its answer arrives.
    pub(super) fn open(&self, node: Arc<str>) -> (u128, oneshot::Receiver<T>) {
        let id: u128 = rand::random();
        let (tx, rx) = oneshot::channel();
        self.map.lock().insert(id, (node, tx));
        (id, rx)
    }

    /// Waits up to `timeout` for the answer to `id` (None when the request was never sent),
    /// then forgets the request.
    pub(super) async fn wait(
        &self,
        id: u128,
        rx: Option<oneshot::Receiver<T>>,
        timeout: Duration,
    ) -> Option<T> {
        let answer = match rx {
            Some(rx) => tokio::time::timeout(timeout, rx)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        self.map.lock().remove(&id);
        answer
    }

    /// Hands `value`, from node `from`, to the request `id`; false for a stray (late, or
    /// not `from`'s to answer).
    pub(super) fn answer(&self, id: u128, from: &str, value: T) -> bool {
        let tx = {
            let mut map = self.map.lock();
            match map.get(&id) {
                Some((asked, _)) if **asked == *from => map.remove(&id),
                _ => None,
            }
        };
        match tx {
            Some((_, tx)) => {
                let _ = tx.send(value);
                true
            }
            None => false,
        }
    }
}
