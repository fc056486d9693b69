//! The runtime that carries a node's link I/O: accepting peers, the handshakes, reading and
//! decoding frames, and the outgoing links' writes all run on their own thread, so that a
//! flood of link traffic (authenticated or not) can never delay the task that renews the
//! node's etcd lease, which stays on the runtime the node was started on.

use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A Tokio runtime on a thread of its own, stopped when dropped.
#[derive(Debug)]
pub struct LinksRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LinksRuntime {
    /// Starts the thread (`parley-links`) and its runtime.
    pub fn start() -> std::io::Result<LinksRuntime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("parley-links".into())
            .spawn(move || {
                // Drives every task spawned on the handle until the node goes.
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })?;
        Ok(LinksRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where link tasks are spawned (enter it before starting a link or the listener).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for LinksRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Not joined when dropped on the links thread itself (a task held the last Arc).
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_the_links_thread_and_stop_with_it() {
        let rt = LinksRuntime::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        assert_eq!(rx.recv().unwrap().as_deref(), Some("parley-links"));
        drop(rt);
    }
}
