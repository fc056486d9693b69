//! Helpers shared by the integration tests: an in-process Parley with bench users.

use parley_bench::{provision, Target};
use parley_testkit::TestServer;

/// A server that allows plain TCP, with users `user1..user{n}` (password `pw`) whose
/// SCRAM-SHA-1 and SCRAM-SHA-256 keys are derived once and shared.
pub fn server_with_users(n: usize) -> TestServer {
    server_with(n, |_| {})
}

/// [`server_with_users`] with more of the config changed by `tweak`.
pub fn server_with(n: usize, tweak: impl FnOnce(&mut parley::config::Config)) -> TestServer {
    let server = TestServer::start(|c| {
        c.c2s.require_encryption = false;
        tweak(c);
    });
    let target = target_for(&server);
    server.with_storage(|storage| async move {
        let report = provision::accounts(storage.as_ref(), &target, n, 4096)
            .await
            .expect("provision accounts");
        assert_eq!(report.created, n);
    });
    server
}

pub fn target_for(server: &TestServer) -> Target {
    let mut t = Target::new(vec![server.c2s()]);
    t.server_pid = Some(std::process::id());
    t
}

/// Waits (bounded) until the server routes no session: every one was closed.
pub async fn wait_until_no_sessions(server: &TestServer) {
    for _ in 0..100 {
        if server.handle.router.session_count() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("sessions still routed after the scenario closed them");
}
