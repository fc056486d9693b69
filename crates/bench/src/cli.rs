//! The `parley-bench` command line's arguments (clap derive): the commands, the scenarios
//! of `run` and their options, and what `provision` creates. `main.rs` acts on them.

use clap::{Args, Parser, Subcommand};
use parley_bench::Mech;

#[derive(Debug, Parser)]
#[command(name = "parley-bench", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one scenario against a running server.
    Run(Run),
    /// Create accounts or rosters directly in a Parley store or a Prosody data directory.
    Provision(Provision),
    /// Run every scenario against Parley, Prosody and ejabberd, side by side, and write
    /// docs/benchmarks.md.
    Compare(Compare),
    /// Run the attacks of docs/security.md against a Parley binary (a fresh server per
    /// attack) and write the results as JSON.
    Attack(AttackArgs),
    /// Fill a cluster past one generator process and measure what each session costs
    /// the registry (docs/scaling.md): `scale fill`, `scale hold`, `scale report`.
    Scale(parley_bench::scale::ScaleArgs),
    /// Render two `attack` results (before and after) as the markdown table of
    /// docs/security.md.
    AttackReport {
        /// The JSON of the run before.
        before: std::path::PathBuf,
        /// The JSON of the run after.
        after: std::path::PathBuf,
    },
    /// Fill one account's archive straight in a store and time the paged queries clients
    /// make (XEP-0313), printing JSON.
    Archive(ArchiveArgs),
    /// Render `run resume` results as one markdown table (for docs/benchmarks.md).
    ResumeReport {
        /// LABEL=FILE: the row's label and the JSON `run resume --json` printed.
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Render `run csi` results as one markdown table (for docs/benchmarks.md).
    CsiReport {
        /// LABEL=FILE: the server's label and the JSON `run csi --json` printed.
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Group chat (XEP-0045): start a Parley cluster and Prosody with mod_muc in turn, run
    /// `run muc` against each (one room, N occupants, one talking at several loads), and
    /// write the markdown section for docs/benchmarks.md.
    Muc(parley_bench::muc::runner::MucArgs),
    /// Render `run muc` results as the tables of the group chat section.
    MucReport {
        /// LABEL=FILE: the server's label and the JSON `run muc --json` printed.
        #[arg(required = true)]
        runs: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ArchiveArgs {
    /// The store, e.g. sqlite:///tmp/archive-bench.db or postgres://…
    #[arg(long)]
    pub(crate) storage_url: String,
    #[arg(long, default_value = "localhost")]
    pub(crate) domain: String,
    /// The account whose archive is filled.
    #[arg(long, default_value = "archive")]
    pub(crate) user: String,
    /// Messages archived before the queries.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 1000)]
    pub(crate) queries: usize,
}

#[derive(Debug, Args)]
pub(crate) struct AttackArgs {
    /// The Parley binary to attack.
    #[arg(long, default_value = "target/release/parley")]
    pub(crate) parley_bin: std::path::PathBuf,
    /// Scratch directory (data dirs, configs, server logs).
    #[arg(long, default_value = "/tmp/parley-attack")]
    pub(crate) workdir: std::path::PathBuf,
    /// Only these attacks (comma-separated names); default all.
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Longest flood, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// First of three consecutive loopback ports the server listens on.
    #[arg(long, default_value_t = 17100)]
    pub(crate) base_port: u16,
    /// Where the JSON results go.
    #[arg(long)]
    pub(crate) out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct Compare {
    /// Servers to compare, in order (parley, parley-baseline, parley-noarchive, prosody,
    /// prosody-mam, ejabberd).
    #[arg(long, value_delimiter = ',', default_value = "parley,prosody,ejabberd")]
    pub(crate) servers: Vec<String>,
    /// Accounts provisioned on every server.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) users: usize,
    /// Small sizes, for checking the runner itself (not for the record).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Scratch directory (data dirs, configs).
    #[arg(long, default_value = "/tmp/parley-compare")]
    pub(crate) workdir: std::path::PathBuf,
    /// The Parley binary.
    #[arg(long, default_value = "target/release/parley")]
    pub(crate) parley_bin: std::path::PathBuf,
    /// A baseline Parley build, compared as server `parley-baseline` (e.g. the binary of the
    /// last commit on main), so that a change is judged in the same run.
    #[arg(long)]
    pub(crate) baseline_bin: Option<std::path::PathBuf>,
    /// The reference Prosody launcher.
    #[arg(long, default_value = "../shared/reference/prosody/run-prosody.sh")]
    pub(crate) prosody_launcher: std::path::PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub(crate) out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct Run {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Print each result as one JSON line (otherwise pretty-printed JSON).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Server address(es), host:port, comma-separated; sessions go round-robin.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:5222",
        value_delimiter = ','
    )]
    pub(crate) target: Vec<String>,
    /// The XMPP domain.
    #[arg(long, global = true, default_value = "localhost")]
    pub(crate) domain: String,
    /// Negotiate STARTTLS before authenticating (any certificate is accepted).
    #[arg(long, global = true)]
    pub(crate) starttls: bool,
    #[arg(long, global = true, value_enum, default_value = "scram-sha-1")]
    pub(crate) mechanism: Mech,
    /// User K is PREFIX{K}@DOMAIN.
    #[arg(long, global = true, default_value = "user")]
    pub(crate) user_prefix: String,
    /// The first user number.
    #[arg(long, global = true, default_value_t = 1)]
    pub(crate) first: usize,
    /// Every user's password.
    #[arg(
        long,
        global = true,
        default_value = "pw",
        env = "PARLEY_BENCH_PASSWORD"
    )]
    pub(crate) password: String,
    /// The server's pid, to report its CPU seconds and RSS.
    #[arg(long, global = true)]
    pub(crate) server_pid: Option<u32>,
    /// The server's other processes (a cluster's other nodes, comma-separated): their CPU
    /// and RSS add to `--server-pid`'s in the chat, login and presence figures.
    #[arg(long, global = true, value_delimiter = ',', requires = "server_pid")]
    pub(crate) also_server_pid: Vec<u32>,
    /// Local source addresses, e.g. 127.0.0.1-127.0.0.8; connections go round-robin.
    #[arg(long, global = true)]
    pub(crate) source_ips: Option<String>,
    /// tcp, ws (RFC 7395) or bosh (XEP-0206); for ws and bosh, --target is the server's
    /// HTTP listener.
    #[arg(long, global = true, default_value = "tcp")]
    pub(crate) transport: String,
    /// The WebSocket or BOSH path (default /xmpp-websocket or /http-bind).
    #[arg(long, global = true)]
    pub(crate) web_path: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Hold N idle sessions at each level and report server RSS per session.
    Idle {
        /// Session counts, ascending, e.g. 1000,5000.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
        sessions: Vec<usize>,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds to hold each level before reading RSS.
        #[arg(long, default_value_t = 2.0)]
        hold: f64,
    },
    /// Log in and out repeatedly; report logins per second and latency.
    Login {
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Stop starting logins after this many seconds.
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
        /// Distinct accounts to cycle through (default: --count).
        #[arg(long)]
        users: Option<usize>,
        /// Skip deriving the accounts' SCRAM keys before the timed phase (the generator's
        /// PBKDF2 then counts in the login time).
        #[arg(long)]
        no_prime: bool,
        /// Fetch the roster between bind and initial presence, as a client does.
        #[arg(long)]
        roster: bool,
    },
    /// Messages between pairs: max throughput (--window) or fixed rate (--rate).
    Chat {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages in flight per sender (max-throughput mode).
        #[arg(long, default_value_t = 64, conflicts_with = "rate")]
        window: usize,
        /// Total messages per second (fixed-rate mode).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Filler characters per body.
        #[arg(long, default_value_t = 0)]
        body_pad: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds to wait for messages in flight after sending stops.
        #[arg(long, default_value_t = 10.0)]
        drain: f64,
    },
    /// Against a cluster (--target one c2s address per node): same-node vs cross-node chat
    /// latency, etcd requests per login in a login storm, registry cache bytes per entry.
    Cluster {
        /// Each node's admin endpoint (for /metrics), comma-separated, in --target order.
        #[arg(long, value_delimiter = ',', required = true)]
        admin: Vec<String>,
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        /// Total messages per second in each chat run.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 2000)]
        logins: usize,
        /// Sessions held while the registry cache is measured.
        #[arg(long, default_value_t = 5000)]
        hold: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Also write the markdown section for docs/benchmarks.md to this file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// XEP-0198: enable resumption, receive M messages without acking them, cut the TCP
    /// connection, reconnect, `<resume h='0'/>`; time to `<resumed/>` and to every message
    /// again, and check each comes back exactly once.
    Resume {
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Clients at once (client W is user number W).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Messages unacknowledged at the cut.
        #[arg(long, default_value_t = 5)]
        messages: usize,
        /// Resume on this address (host:port, e.g. another cluster node) instead of the one
        /// the session was on.
        #[arg(long)]
        resume_target: Option<String>,
        /// Seconds to wait for the messages after `<resume/>`.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
        /// Milliseconds the session stays connected after the messages arrived, before
        /// the cut.
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
    /// XEP-0352: a watcher with N chatty contacts (mutual subscriptions provisioned as for
    /// `presence`: the watcher is --first, its contacts the N after it), once active and
    /// once inactive; what reaches it and how often the server writes to it.
    Csi {
        #[arg(long, default_value_t = 200)]
        contacts: usize,
        /// Presence updates per second, all contacts together.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Chat states (no body) per second to the watcher, all contacts together; 0: none.
        #[arg(long, default_value_t = 20.0)]
        chat_state_rate: f64,
        /// Seconds of sending per phase.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Count the server's socket writes with `perf stat` (needs --server-pid, perf
        /// and root).
        #[arg(long)]
        count_syscalls: bool,
        /// Seconds to wait for presences still on their way.
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
    },
    /// XEP-0045: one room, N occupants spread over the targets, one of them talking at
    /// several offered loads; fan-out latency, server CPU per message, RSS per occupant.
    Muc(parley_bench::muc::MucOpts),
    /// A user with R online contacts goes available; time to broadcast and probes.
    Presence {
        #[arg(long, default_value_t = 100)]
        contacts: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Provision {
    /// The store, e.g. sqlite:///tmp/parley/parley.db (provision before the server
    /// starts: a running server caches rosters).
    #[arg(
        long,
        required_unless_present = "prosody_data",
        conflicts_with = "prosody_data"
    )]
    pub(crate) storage_url: Option<String>,
    /// Instead of a Parley store: a Prosody 0.12 data directory (`internal` storage,
    /// SCRAM-SHA-1 keys only), written before Prosody starts.
    #[arg(long)]
    pub(crate) prosody_data: Option<std::path::PathBuf>,
    #[arg(long, default_value = "localhost")]
    pub(crate) domain: String,
    #[arg(long, default_value = "user")]
    pub(crate) user_prefix: String,
    #[arg(long, default_value_t = 1)]
    pub(crate) first: usize,
    #[arg(long, default_value = "pw", env = "PARLEY_BENCH_PASSWORD")]
    pub(crate) password: String,
    #[command(subcommand)]
    pub(crate) what: ProvisionWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProvisionWhat {
    /// Accounts FIRST .. FIRST+COUNT-1 with SCRAM-SHA-1 and SCRAM-SHA-256 keys.
    Accounts {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
    },
    /// Mutual `both` subscriptions between user FIRST and users FIRST+1 ..= FIRST+CONTACTS.
    Roster {
        #[arg(long)]
        contacts: usize,
    },
}
