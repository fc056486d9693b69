//! `parley-bench`: a load generator for XMPP servers.
//!
//! Thousands of raw-XML client sessions per process on tokio ([`client`]), SASL with
//! SCRAM-SHA-1, SCRAM-SHA-256 (with a shared SaltedPassword cache, [`scram`]) or PLAIN,
//! optional STARTTLS. Seven scenarios, each a library function returning a serde result
//! and a `parley-bench run SCENARIO` subcommand printing it as a JSON line:
//!
//! - [`idle()`]: server RSS per held session;
//! - [`login()`]: sessions established per second and login latency;
//! - [`chat()`]: delivered messages per second, or one-way latency at a fixed rate;
//! - [`presence()`]: presence broadcast and probe times for a user with R contacts;
//! - [`resume()`]: XEP-0198 stream resumption after a cut connection, on the same
//!   server address or another node of a cluster;
//! - [`csi()`]: what an inactive client (XEP-0352) with chatty contacts receives, and
//!   how often the server wakes it, with and without `<inactive/>`;
//! - [`muc()`]: one group chat room (XEP-0045) with N occupants spread over the nodes and
//!   one talking: fan-out latency, server CPU per message, memory per occupant.
//!
//! Every load loop is bounded in count and time, and only loopback addresses are ever
//! targeted ([`Target::validate`]). Scenarios read the server's CPU seconds and RSS from
//! `/proc/<pid>` ([`proc_sample`]) when given its pid. This crate is never linked into
//! the server.
//!
//! Four runners build on them: [`compare`] (Parley beside Prosody and ejabberd, writing
//! docs/benchmarks.md), [`cluster()`] (same-node vs cross-node costs of a running cluster),
//! [`muc::runner`] (a Parley cluster beside Prosody's `mod_muc`, one big room) and
//! [`attack`] (what each hostile client costs the server, for docs/security.md).

pub mod archive;
pub mod attack;
pub mod chat;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod csi;
mod error;
pub mod idle;
pub mod login;
pub mod muc;
pub mod perf;
pub mod presence;
pub mod proc;
pub mod provision;
pub mod resume;
pub mod scale;
pub mod scram;
pub mod stats;
pub mod target;

pub use chat::{chat, ChatMode, ChatOpts, ChatResult};
pub use cluster::{cluster, ClusterOpts, ClusterResult};
pub use csi::{csi, CsiOpts, CsiResult};
pub use error::BenchError;
pub use idle::{idle, IdleLevel, IdleOpts, IdleResult};
pub use login::{login, login_with, LoginOpts, LoginResult};
pub use muc::{muc, MucLevel, MucOpts, MucResult};
pub use presence::{presence, PresenceOpts, PresenceResult, PresenceRound};
pub use proc::{proc_io, proc_sample, proc_tree_cpu_seconds, ProcIo, ProcSample};
pub use resume::{resume, ResumeOpts, ResumeResult};
pub use stats::{LatencySummary, Usage};
pub use target::{parse_source_ips, Mech, Shared, Target, TargetEcho, Transport};
