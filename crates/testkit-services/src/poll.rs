//! Waiting for a condition only a request can show (an HTTP endpoint's answer, a stats
//! page): poll it until it holds, failing with what was awaited after a bound.
//!
//! One loop for every such wait in the tests. It starts polling at once and backs off from
//! 1 ms to 50 ms, so a condition that holds soon is seen soon; inside a multi-threaded tokio
//! test it steps off the runtime (`block_in_place`) so the test's own clients keep running.

use std::time::{Duration, Instant};

/// Polls `done` until it returns `Some`, and returns that; panics naming `what` (and the
/// caller can put what it last saw into its own assertion) after `within`.
pub fn poll_until<T>(what: &str, within: Duration, done: impl FnMut() -> Option<T>) -> T {
    poll_until_reporting(what, within, done, String::new)
}

/// [`poll_until`] whose failure also shows `report()`, e.g. the log of a process that did
/// not come up; `report` runs only then.
pub fn poll_until_reporting<T>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> Option<T>,
    report: impl FnOnce() -> String,
) -> T {
    let run = || {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(v) = done() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("not within {within:?}: {what}\n{}", report());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_the_condition_yields() {
        let mut n = 0;
        let got = poll_until("the third poll", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "not within")]
    fn fails_naming_what_it_waited_for() {
        poll_until::<()>("never", Duration::from_millis(20), || None);
    }

    #[test]
    #[should_panic(expected = "the log says why")]
    fn failure_shows_the_report() {
        poll_until_reporting::<()>(
            "never",
            Duration::from_millis(20),
            || None,
            || "the log says why".into(),
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn does_not_stall_the_runtime() {
        let (tx, rx) = std::sync::mpsc::channel();
        tokio::spawn(async move { tx.send(()).unwrap() });
        poll_until("a task on the runtime ran", Duration::from_secs(5), || {
            rx.try_recv().ok()
        });
    }
}
