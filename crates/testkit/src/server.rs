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
        config.admin.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.http.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.sasl.scram_iterations = 4096;
        // Every test client comes from 127.0.0.1, thousands at once in some tests, and some
        // tests flood one connection on purpose (to fill another's queue); tests of these
        // limits set their own.
        config.limits.max_connections_per_ip = 1_000_000;
        config.limits.connection_rate_per_ip = 1_000_000;
        config.limits.connection_burst_per_ip = 1_000_000;
        config.limits.read_bytes_per_s = 1 << 30;
        config.limits.read_burst_bytes = 1 << 30;
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

    /// The server-to-server (STARTTLS) address; the test must have set `s2s.listen`.
    pub fn s2s(&self) -> SocketAddr {
        self.handle.s2s[0][0]
    }

    /// The component (XEP-0114) address; the test must have set `component.listen`.
    pub fn component(&self) -> SocketAddr {
        self.handle.component[0]
    }

    /// Creates an account on `localhost` through the storage the server uses. Safe to call
    /// from inside a tokio test: the storage work runs on a thread of its own, since a
    /// runtime cannot be blocked on from within another.
    pub fn add_user(&self, user: &str, password: &str) {
        self.add_user_at(user, "localhost", password);
    }

    /// Creates an account on `host` (one of the server's hosts).
    pub fn add_user_at(&self, user: &str, host: &str, password: &str) {
        let host = host.to_owned();
        let iterations = self.config.sasl.scram_iterations;
        let creds = [ScramHash::Sha1, ScramHash::Sha256]
            .map(|h| ScramCredentials::generate(h, password, iterations).expect("credentials"));
        self.with_storage(|storage| async move {
            storage
                .create_account(user, &host, &creds)
                .await
                .expect("create account");
        });
    }
}

impl TestServer {
    /// Changes an account's password (as `parley user passwd` does).
    pub fn set_password(&self, user: &str, password: &str) {
        let iterations = self.config.sasl.scram_iterations;
        let creds = [ScramHash::Sha1, ScramHash::Sha256]
            .map(|h| ScramCredentials::generate(h, password, iterations).expect("credentials"));
        self.with_storage(|storage| async move {
            storage
                .set_credentials(user, "localhost", &creds)
                .await
                .expect("set credentials");
        });
    }
}

/// Runs `work` against the storage at `url`, on a thread and runtime of its own: safe to
/// call from inside a tokio test, since a runtime cannot be blocked on from within another.
pub fn with_storage_at<T, F, Fut>(url: &str, work: F) -> T
where
    T: Send,
    F: FnOnce(std::sync::Arc<dyn parley_storage::Storage>) -> Fut + Send,
    Fut: std::future::Future<Output = T>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let storage = parley_storage::open(url).await.expect("storage");
                    work(storage).await
                })
            })
            .join()
            .expect("storage thread")
    })
}

/// Bulk provisioning, for tests that need hundreds or thousands of accounts: deriving SCRAM
/// keys (PBKDF2) once per account would dominate their runtime.
impl TestServer {
    /// Runs `work` against the server's storage, on a thread and runtime of its own (see
    /// [`TestServer::add_user`]), and returns its output. For provisioning state directly in
    /// storage before the users concerned log in: the server caches what it loads.
    pub fn with_storage<T, F, Fut>(&self, work: F) -> T
    where
        T: Send,
        F: FnOnce(std::sync::Arc<dyn parley_storage::Storage>) -> Fut + Send,
        Fut: std::future::Future<Output = T>,
    {
        with_storage_at(&self.config.storage_url(), work)
    }

    /// Creates accounts `users` on `localhost` that can all log in with `password`. The keys
    /// are derived once and shared (same salt for every account: fine for tests, never for a
    /// deployment). Existing accounts are left alone.
    pub fn add_users(&self, users: &[String], password: &str) {
        let iterations = self.config.sasl.scram_iterations;
        let creds: Vec<ScramCredentials> = [ScramHash::Sha1, ScramHash::Sha256]
            .into_iter()
            .map(|h| ScramCredentials::generate(h, password, iterations).expect("credentials"))
            .collect();
        self.import(users, |_| creds.clone());
    }

    /// Creates accounts `users` on `localhost` with cheap placeholder credentials
    /// ([`parley_storage::testsuite::fake_credentials`]): they exist (presence and messages
    /// to them are routed to them) but nobody can log in as them.
    pub fn add_placeholder_users(&self, users: &[String]) {
        self.import(users, |user| {
            [ScramHash::Sha1, ScramHash::Sha256]
                .into_iter()
                .map(|h| parley_storage::testsuite::fake_credentials(h, user))
                .collect()
        });
    }

    /// Writes roster items for `owner` (on `localhost`) straight into storage, e.g. thousands
    /// of contacts with `subscription='both'` that would otherwise need a handshake each.
    /// Only before `owner` logs in: a running user actor keeps its own copy of the roster.
    pub fn put_roster(&self, owner: &str, items: &[parley_storage::RosterItem]) {
        self.with_storage(|storage| async move {
            for item in items {
                storage
                    .roster_put(owner, "localhost", item)
                    .await
                    .expect("roster_put");
            }
        });
    }

    /// Stops the server and starts it again on the same data dir and configuration (with new
    /// ephemeral ports), for rules about state that must survive a restart.
    pub fn restart(self) -> TestServer {
        let TestServer {
            handle,
            config,
            dir,
        } = self;
        handle.stop();
        TestServer {
            handle: start(config.clone()).expect("server restarts"),
            config,
            dir,
        }
    }

    fn import(&self, users: &[String], creds: impl Fn(&str) -> Vec<ScramCredentials>) {
        let accounts: Vec<parley_storage::NewAccount> = users
            .iter()
            .map(|u| parley_storage::NewAccount {
                username: u.clone(),
                host: "localhost".to_owned(),
                credentials: creds(u),
            })
            .collect();
        let report = self.with_storage(|storage| async move {
            storage
                .import_accounts(&accounts)
                .await
                .expect("import accounts")
        });
        assert_eq!(
            report.created + report.skipped_existing,
            users.len(),
            "import of {} accounts: {report:?}",
            users.len()
        );
    }
}
