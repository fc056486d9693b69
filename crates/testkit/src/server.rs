//! An in-process server with a temporary data dir, listening on ephemeral loopback ports.

use std::net::SocketAddr;

use parley::config::Config;
use parley::server::{start, ServerHandle};
use parley_proto::sasl::{ScramCredentials, ScramHash};
use tempfile::TempDir;

/// A running server for one test.
pub struct TestServer {
    /// The running server.
    pub handle: ServerHandle,
    /// The configuration it runs with.
    pub config: Config,
    /// Its data dir (removed on drop).
    pub dir: TempDir,
}

impl TestServer {
    /// Starts a server for host `localhost` with `alice`, `bob` and `carol` (password
    /// `password`), after `tweak` had its say on the config.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.server.workers = 2;
        config.storage.url = Some(format!("sqlite://{}/parley.db", dir.path().display()));
        config.c2s.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.c2s.direct_tls = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.sasl.scram_iterations = 4096;
        tweak(&mut config);
        let server = TestServer {
            handle: start(config.clone()).expect("server starts"),
            config,
            dir,
        };
        for user in ["alice", "bob", "carol"] {
            server.add_user(user, "password");
        }
        server
    }

    /// The STARTTLS c2s address.
    pub fn c2s(&self) -> SocketAddr {
        self.handle.c2s[0]
    }

    /// The direct-TLS c2s address.
    pub fn direct_tls(&self) -> SocketAddr {
        self.handle.direct_tls[0]
    }

    /// Creates an account on `localhost` through the storage the server uses. Safe to call
    /// from inside a tokio test: the storage work runs on a thread of its own, since a
    /// runtime cannot be blocked on from within another.
    pub fn add_user(&self, user: &str, password: &str) {
        let url = self.config.storage_url();
        let iterations = self.config.sasl.scram_iterations;
        let creds = [ScramHash::Sha1, ScramHash::Sha256]
            .map(|h| ScramCredentials::generate(h, password, iterations).expect("credentials"));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        let storage = parley_storage::open(&url).await.expect("storage");
                        storage
                            .create_account(user, "localhost", &creds)
                            .await
                            .expect("create account");
                    });
                })
                .join()
                .expect("add_user thread");
        });
    }
}
