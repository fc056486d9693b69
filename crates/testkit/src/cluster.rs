//! Real multi-process clusters for tests: N `parley` processes sharing one etcd and one
//! PostgreSQL database, each on its own loopback ports, started, killed (SIGKILL), stopped
//! or drained (SIGTERM, the admin API) and restarted by the test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_proto::sasl::{ScramCredentials, ScramHash};
use tempfile::TempDir;

use crate::bin::parley_binary;

/// The admin token every test node uses.
pub const ADMIN_TOKEN: &str = "cluster-test-admin-token-0123";

use crate::free_port;

/// Extra TOML for a node's config, appended to its section.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// In `[c2s]`.
    pub c2s: String,
    /// In `[cluster]` (e.g. mutual TLS files).
    pub cluster: String,
    /// In `[http]` (e.g. origins, the chat page).
    pub http: String,
    /// The node-link secret (`[cluster] secret`).
    pub secret: Secret,
    /// Fault points the node's process gets in `PARLEY_FAULTS` (comma-separated names;
    /// see `parley_session::faults`).
    pub faults: String,
    /// In `[component]` (its secrets); when set, the node also listens for components on
    /// [`ClusterNode::component`].
    pub component: String,
    /// In `[s2s]` (e.g. `name_servers`); when set, the node also listens for servers on
    /// [`ClusterNode::s2s`].
    pub s2s: Option<String>,
    /// `[server] hosts`; empty: `localhost`.
    pub hosts: Vec<String>,
}

/// Which node-link secret a test node gets.
#[derive(Debug, Clone, Default)]
pub enum Secret {
    /// The secret generated for its cluster (one per etcd key prefix in this test process),
    /// so that the nodes of one test cluster trust each other.
    #[default]
    Generated,
    /// This one (e.g. a wrong secret).
    Given(String),
    /// None (the node then relies on mutual TLS).
    Omitted,
}

/// A fresh etcd key prefix for one test cluster, starting with `/{tag}`: tests that run
/// side by side (and runs that follow one another on the same etcd) never share keys.
pub fn random_prefix(tag: &str) -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/{tag}{nanos:x}{:x}{n:x}", std::process::id())
}

/// The secret generated for the test cluster under `prefix`: random per test process.
pub fn cluster_secret(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    static PROCESS_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = PROCESS_KEY.get_or_init(|| {
        // The clock and the process id are enough for a test-only key that differs per run.
        let mut h = Sha256::new();
        h.update(std::process::id().to_be_bytes());
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        h.finalize().into()
    });
    let mut h = Sha256::new();
    h.update(key);
    h.update(prefix.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One `parley` process of a test cluster.
pub struct ClusterNode {
    /// Its node id.
    pub id: String,
    /// STARTTLS c2s address.
    pub c2s: SocketAddr,
    /// Admin endpoint.
    pub admin: SocketAddr,
    /// Node-link address.
    pub peer: SocketAddr,
    /// HTTP listener (WebSocket).
    pub http: SocketAddr,
    /// Component (XEP-0114) listener, when [`Extra::component`] was set.
    pub component: SocketAddr,
    /// Server-to-server listener, when [`Extra::s2s`] was set.
    pub s2s: SocketAddr,
    config: PathBuf,
    child: Option<Child>,
    dir: TempDir,
    faults: String,
}

impl ClusterNode {
    /// Writes the node's config (etcd endpoint `etcd` and key prefix `prefix`, database
    /// `db`, lease `ttl_s`, extra `[c2s]` TOML) and starts it; waits until `/ready`.
    pub fn start(
        id: &str,
        etcd: &str,
        prefix: &str,
        db: &str,
        ttl_s: u64,
        c2s_extra: &str,
    ) -> ClusterNode {
        let extra = Extra {
            c2s: c2s_extra.to_owned(),
            ..Extra::default()
        };
        Self::start_with(id, etcd, prefix, db, ttl_s, &extra)
    }

    /// [`ClusterNode::start`] with extra TOML in several sections.
    pub fn start_with(
        id: &str,
        etcd: &str,
        prefix: &str,
        db: &str,
        ttl_s: u64,
        extra: &Extra,
    ) -> ClusterNode {
        let mut node = Self::prepare(id, etcd, prefix, db, ttl_s, extra);
        node.launch();
        node
    }

    /// Starts a node whose start-up must fail; waits (up to 30 s) for the process to
    /// exit and returns its exit status and log. Panics if it becomes ready instead.
    pub fn start_failing(
        id: &str,
        etcd: &str,
        prefix: &str,
        db: &str,
        extra: &Extra,
    ) -> (std::process::ExitStatus, String) {
        let mut node = Self::prepare(id, etcd, prefix, db, 10, extra);
        node.spawn();
        let status = crate::poll_until(
            &format!("node {id} exits during start-up"),
            Duration::from_secs(30),
            || {
                assert!(
                    http_get(node.admin, "/ready", None).is_none_or(|(s, _)| s != 200),
                    "node {id} became ready:\n{}",
                    node.log()
                );
                node.child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
            },
        );
        node.child = None;
        (status, node.log())
    }

    fn prepare(
        id: &str,
        etcd: &str,
        prefix: &str,
        db: &str,
        ttl_s: u64,
        extra: &Extra,
    ) -> ClusterNode {
        let Extra {
            c2s: c2s_extra,
            cluster: cluster_extra,
            http: http_extra,
            secret,
            faults,
            component: component_extra,
            s2s: s2s_extra,
            hosts,
        } = extra;
        let hosts = if hosts.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            hosts.clone()
        };
        let secret = match secret {
            Secret::Generated => format!("secret = \"{}\"", cluster_secret(prefix)),
            Secret::Given(s) => format!("secret = \"{s}\""),
            Secret::Omitted => String::new(),
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("parley-{id}-"))
            .tempdir()
            .expect("node dir");
        let c2s = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let peer = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let component = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let component_section = if component_extra.is_empty() {
            String::new()
        } else {
            format!("[component]\nlisten = [\"{component}\"]\n{component_extra}\n")
        };
        let s2s = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let s2s_section = match s2s_extra {
            None => String::new(),
            Some(extra) => format!("[s2s]\nlisten = [\"{s2s}\"]\n{extra}\n"),
        };
        let config = dir.path().join("parley.toml");
        let text = format!(
            r#"[server]
hosts = {hosts:?}
data_dir = "{data}"
workers = 2

[c2s]
listen = ["{c2s}"]
direct_tls = []
{c2s_extra}

[sasl]
scram_iterations = 4096

[limits]
# Every test client (and HAProxy) comes from 127.0.0.1.
max_connections_per_ip = 1000000
connection_rate_per_ip = 1000000
connection_burst_per_ip = 1000000
read_bytes_per_s = 1073741824
read_burst_bytes = 1073741824

[http]
listen = "{http}"
{http_extra}

[admin]
listen = "{admin}"
token = "{ADMIN_TOKEN}"

[storage]
url = "{db}"

[log]
level = "info,parley_cluster=debug"

[cluster]
etcd = ["{etcd}"]
node_id = "{id}"
peer_listen = "{peer}"
lease_ttl_s = {ttl_s}
prefix = "{prefix}"
{secret}
{cluster_extra}

{component_section}
{s2s_section}
"#,
            data = dir.path().display(),
        );
        std::fs::write(&config, text).expect("write config");
        ClusterNode {
            id: id.to_owned(),
            c2s,
            admin,
            peer,
            http,
            component,
            s2s,
            config,
            child: None,
            dir,
            faults: faults.clone(),
        }
    }

    fn launch(&mut self) {
        self.spawn();
        self.wait_ready(Duration::from_secs(30));
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("parley.log")).expect("log file");
        let child = Command::new(parley_binary())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("PARLEY_FAULTS", &self.faults)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn parley");
        self.child = Some(child);
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self, limit: Duration) {
        let log_path = self.dir.path().join("parley.log");
        let (id, admin) = (self.id.clone(), self.admin);
        let child = &mut self.child;
        // Readiness is only ever shown by asking `/ready`; nothing announces it.
        crate::poll_until_reporting(
            &format!("node {id} ready"),
            limit,
            || {
                if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                    panic!(
                        "node {id} exited ({status}) during start-up:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                http_get(admin, "/ready", None)
                    .is_some_and(|(s, _)| s == 200)
                    .then_some(())
            },
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("parley.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; returns how long the process took to exit.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            // The child stays in `self` while polled, so that a timeout's panic kills it
            // on drop.
            crate::poll_until(
                &format!("node {} exiting after SIGTERM", self.id),
                Duration::from_secs(30),
                || child.try_wait().ok().flatten(),
            );
            self.child = None;
        }
        started.elapsed()
    }

    /// Starts the node's process again (same id, ports and config) after it exited, and
    /// waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "node {} is still running", self.id);
        self.launch();
    }

    /// Sends SIGTERM (which drains the node) without waiting for the process to exit.
    pub fn signal_term(&self) {
        if let Some(child) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    /// Waits (up to `limit`) for the process to exit by itself; its exit status. Panics
    /// with the node's log if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let log_path = self.dir.path().join("parley.log");
        let id = self.id.clone();
        let Some(child) = self.child.as_mut() else {
            panic!("node {id} is not running");
        };
        let status = crate::poll_until_reporting(
            &format!("node {id} exits"),
            limit,
            || child.try_wait().ok().flatten(),
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
        self.child = None;
        status
    }

    /// Whether the process is running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// GET on the admin endpoint with the token: (status, body).
    pub fn api(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path, Some(ADMIN_TOKEN)).expect("admin endpoint answers")
    }

    /// Runs the `parley` CLI with this node's config; its stdout (panics on failure).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(parley_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run parley");
        assert!(
            out.status.success(),
            "parley {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// POST (empty body) on the admin endpoint with the token: (status, body).
    pub fn post(&self, path: &str) -> (u16, String) {
        parley_testkit_services::http_request(self.admin, "POST", path, Some(ADMIN_TOKEN))
            .expect("admin endpoint answers")
    }

    /// GET without a token.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin, path, None)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (up to 15 s) until every node's admin API lists `n` members.
pub fn wait_members(nodes: &[ClusterNode], n: usize) {
    for node in nodes {
        crate::poll_until(
            &format!("{} sees {n} members", node.id),
            Duration::from_secs(15),
            || {
                let (_, body) = node.api("/api/v1/nodes");
                let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                (json["nodes"].as_array().map_or(0, Vec::len) == n).then_some(())
            },
        );
    }
}

pub use parley_testkit_services::{http_get, http_request};

/// Makes `a` and `b` (local users) contacts with a subscription both ways, in the database
/// at `url`, before either logs in.
pub fn befriend_at(url: &str, a: &str, b: &str) {
    crate::server::with_storage_at(url, |storage| async move {
        for (owner, contact) in [(a, b), (b, a)] {
            let item = parley_storage::RosterItem {
                jid: format!("{contact}@localhost"),
                name: None,
                subscription: parley_storage::Subscription::Both,
                ask: false,
                groups: Vec::new(),
            };
            storage
                .roster_put(owner, "localhost", &item)
                .await
                .expect("roster_put");
        }
    });
}

/// Creates accounts (password `password`) in the database at `url`.
pub fn add_users(url: &str, users: &[&str]) {
    add_users_at(url, "localhost", users);
}

/// [`add_users`] on `host`.
pub fn add_users_at(url: &str, host: &str, users: &[&str]) {
    let host = host.to_owned();
    let creds = [ScramHash::Sha1, ScramHash::Sha256]
        .map(|h| ScramCredentials::generate(h, "password", 4096).expect("credentials"));
    crate::server::with_storage_at(url, |storage| async move {
        for user in users {
            storage
                .create_account(user, &host, &creds)
                .await
                .expect("create account");
        }
    });
}
