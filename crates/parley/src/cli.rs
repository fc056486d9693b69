//! The command line: `parley serve`, `parley user …`, `parley check config`, and the
//! commands that ask a running node through its admin API (`sessions`, `cluster`, `node`).
//!
//! Errors go to stderr as `error: …` with exit code 1; results go to stdout so that
//! `parley user list` can be piped.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod accounts;
mod admin_client;
mod invites;
mod rooms;

use crate::config::{Config, LogConfig, LogFormat, EMBEDDED_ORIGIN};

/// The Parley XMPP server.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    /// Configuration file (TOML, see config/parley.toml); without it the built-in
    /// defaults are used.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve,
    /// Manage accounts in the configured storage.
    #[command(subcommand)]
    User(UserCommand),
    /// Check something without starting the server.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Sessions of the running server, through its admin API (`[admin] listen` and `token`).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// The cluster, through the admin API (`[admin] listen` and `token`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The running node, through its admin API (`[admin] listen` and `token`).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Authentication tokens (`secret-token:…`) in the configured storage.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Invitations to register an account in band (XEP-0401, XEP-0445), in the
    /// configured storage.
    #[command(subcommand)]
    Invite(invites::InviteCommand),
    /// Chat rooms (XEP-0045) of the cluster, through the admin API (`[admin] listen` and
    /// `token`).
    #[command(subcommand)]
    Room(rooms::RoomCommand),
}

/// `parley token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for an account and print it (it is shown only this once). It logs in
    /// with SASL OAUTHBEARER, or with PLAIN as the password.
    Issue {
        /// The bare JID.
        jid: String,
        /// Lifetime in seconds; without it the token lasts until revoked or until the
        /// account's password changes.
        #[arg(long)]
        ttl: Option<u64>,
        /// What the token is for, shown in listings.
        #[arg(long, default_value = "login")]
        purpose: String,
    },
    /// Print an account's tokens: id, purpose, created, expires, last used (never secrets).
    List {
        /// The bare JID.
        jid: String,
    },
    /// Revoke one token, by id or by the whole token string.
    Revoke {
        /// The id (or the token).
        id: String,
    },
    /// Revoke every token of an account.
    RevokeAll {
        /// The bare JID.
        jid: String,
    },
}

/// `parley cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the live nodes: id, peer address, sessions, version, link state, one per line.
    Nodes,
}

/// `parley node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Drain the node, as SIGTERM does: it turns not-ready, refuses new clients, asks its
    /// clients to move (`[c2s] redirect_host`, `[http] redirect_ws_uri`), waits for them
    /// (at most `[cluster] drain_timeout_s`), leaves the cluster and exits with status 0.
    /// Returns as soon as the drain has started.
    Drain {
        /// The node's id; it must be the node whose admin endpoint the config names
        /// (default: that node, whatever its id).
        #[arg(long)]
        node: Option<String>,
    },
}

/// `parley sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Print the bound sessions: full JID, session id, node and type, one per line.
    List {
        /// Only the sessions of this bare JID.
        #[arg(long)]
        user: Option<String>,
        /// The connections that are not bound instead (not authenticated yet, or between
        /// authentication and bind): address, session id, node and type.
        #[arg(long, conflicts_with = "user")]
        unbound: bool,
    },
}

/// `parley user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// The bare JID, user@host, with host one of `[server] hosts`.
        jid: String,
        /// The password; prompted for (or read as one line from a non-terminal
        /// standard input) when absent. Visible to other local users in the process list.
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account and its credentials.
    Del {
        /// The bare JID.
        jid: String,
    },
    /// Change the password of an account.
    Passwd {
        /// The bare JID.
        jid: String,
        /// The new password; prompted for when absent, as for `add`.
        #[arg(long)]
        password: Option<String>,
    },
    /// Print the accounts, one JID per line.
    List {
        /// Only the accounts of this host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Create accounts from `JID PASSWORD` lines on standard input; blank lines and
    /// `#` comments are skipped, existing accounts are left alone.
    Import,
}

/// `parley check …`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Load and validate the configuration, then exit.
    Config,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let config_path = cli.config.as_deref();
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Check(CheckCommand::Config) => {
            let origin =
                config_path.map_or_else(|| EMBEDDED_ORIGIN.to_owned(), |p| p.display().to_string());
            for warning in config.warnings() {
                eprintln!("warning: {origin}: {warning}");
            }
            println!("config OK: {origin}");
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let mut config = config;
            config.faults = match parley_session::faults::Faults::from_env() {
                Ok(f) => f,
                Err(e) => return fail(&e),
            };
            init_tracing(&config.log, None);
            tracing::info!(
                config = %config_path.map_or_else(|| EMBEDDED_ORIGIN.into(), |p| p.display().to_string()),
                hosts = ?config.server.hosts,
                "starting parley {}",
                env!("CARGO_PKG_VERSION")
            );
            for warning in config.warnings() {
                tracing::warn!("insecure configuration: {warning}");
            }
            match crate::server::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::User(command) => {
            // Account commands print their own results; only warnings belong on stderr.
            init_tracing(&config.log, Some("warn"));
            run_user(&config, command)
        }
        Command::Cluster(ClusterCommand::Nodes) => print_lines(list_nodes(&config)),
        Command::Node(NodeCommand::Drain { node }) => print_lines(drain_node(&config, node)),
        Command::Invite(command) => {
            init_tracing(&config.log, Some("warn"));
            print_lines(invites::run(&config, command))
        }
        Command::Room(command) => print_lines(rooms::run(&config, command)),
        Command::Token(command) => {
            init_tracing(&config.log, Some("warn"));
            print_lines(run_token(&config, command))
        }
        Command::Sessions(SessionsCommand::List { unbound: true, .. }) => {
            print_lines(list_unbound(&config))
        }
        Command::Sessions(SessionsCommand::List { user, .. }) => {
            print_lines(list_sessions(&config, user))
        }
    }
}

fn run_token(config: &Config, command: TokenCommand) -> Result<Vec<String>, String> {
    let ms = |t: Option<i64>| t.map_or("-".to_owned(), parley_proto::datetime::xep0082);
    match command {
        TokenCommand::Issue { jid, ttl, purpose } => {
            if ttl == Some(0) {
                return Err("--ttl must be at least 1 second".into());
            }
            let ttl = ttl.map(std::time::Duration::from_secs);
            accounts::token_issue(config, &jid, ttl, &purpose)
                .map(|(token, _)| vec![token])
                .map_err(|e| e.to_string())
        }
        TokenCommand::List { jid } => accounts::token_list(config, &jid)
            .map(|list| {
                list.into_iter()
                    .map(|t| {
                        format!(
                            "{} purpose={} created={} expires={} last_used={}",
                            t.id,
                            t.purpose,
                            ms(Some(t.created_ms)),
                            ms(t.expires_ms),
                            ms(t.last_used_ms)
                        )
                    })
                    .collect()
            })
            .map_err(|e| e.to_string()),
        TokenCommand::Revoke { id } => match accounts::token_revoke(config, &id) {
            Ok(true) => Ok(vec!["revoked".into()]),
            Ok(false) => Err("no such token".into()),
            Err(e) => Err(e.to_string()),
        },
        TokenCommand::RevokeAll { jid } => accounts::token_revoke_all(config, &jid)
            .map(|n| vec![format!("revoked {n} tokens")])
            .map_err(|e| e.to_string()),
    }
}

/// Prints an admin API answer, one line each, or the error.
fn print_lines(result: Result<Vec<String>, String>) -> ExitCode {
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A GET with the bearer token on the configured admin endpoint; the JSON answer.
fn admin_get(config: &Config, path: &str) -> Result<serde_json::Value, String> {
    admin_request(config, "GET", path)
}

/// A request (without a body) with the bearer token on the configured admin endpoint; the
/// JSON answer of a 2xx, else an error carrying the endpoint's own message.
pub(crate) fn admin_request(
    config: &Config,
    method: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    admin_client::call(config, method, path, None).map_err(|e| e.to_string())
}

/// `GET /api/v1/sessions` (every page) or the user's sessions: cluster-wide, one line each:
/// JID, session id, node, type (Prosody's `session.type`).
fn list_sessions(config: &Config, user: Option<String>) -> Result<Vec<String>, String> {
    let line = |s: &serde_json::Value| {
        // A server stream binds no JID: it is named by its hosts, in its direction.
        let who = match s["jid"].as_str() {
            Some(jid) if !jid.is_empty() => jid.to_owned(),
            _ => format!(
                "{}->{}",
                s["from_host"].as_str().unwrap_or("?"),
                s["to_host"].as_str().unwrap_or("?")
            ),
        };
        format!(
            "{} {} {} {}",
            who,
            s["session"].as_str().unwrap_or("?"),
            s["node"].as_str().unwrap_or("?"),
            s["type"].as_str().unwrap_or("?")
        )
    };
    if let Some(u) = &user {
        let json = admin_get(config, &format!("/api/v1/users/{u}/sessions"))?;
        return Ok(json["sessions"]
            .as_array()
            .map(|l| l.iter().map(line).collect())
            .unwrap_or_default());
    }
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/sessions?limit=1000&after={a}"),
            None => "/api/v1/sessions?limit=1000".to_owned(),
        };
        let json = admin_get(config, &path)?;
        if let Some(list) = json["sessions"].as_array() {
            out.extend(list.iter().map(line));
        }
        match json["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

/// `GET /api/v1/sessions?unbound=true`: one line per connection that is not bound.
fn list_unbound(config: &Config) -> Result<Vec<String>, String> {
    let json = admin_get(config, "/api/v1/sessions?unbound=true")?;
    Ok(json["sessions"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| {
                    format!(
                        "{} {} {} {}",
                        s["ip"].as_str().unwrap_or("?"),
                        s["session"].as_str().unwrap_or("?"),
                        s["node"].as_str().unwrap_or("?"),
                        s["type"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `POST /api/v1/nodes/{id}/drain` on the configured admin endpoint; without `node`, the
/// id that endpoint reports for itself.
fn drain_node(config: &Config, node: Option<String>) -> Result<Vec<String>, String> {
    let id = match node {
        Some(id) => id,
        None => admin_get(config, "/api/v1/nodes")?["node"]
            .as_str()
            .ok_or("the admin endpoint did not say which node it is")?
            .to_owned(),
    };
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(format!("--node {id:?} is not a node id"));
    }
    let json = admin_request(config, "POST", &format!("/api/v1/nodes/{id}/drain"))?;
    let what = if json["started"].as_bool() == Some(false) {
        "was draining already"
    } else {
        "is draining"
    };
    Ok(vec![format!(
        "node {id} {what}: it exits once its sessions have moved, or after [cluster] drain_timeout_s"
    )])
}

/// `GET /api/v1/nodes`.
fn list_nodes(config: &Config) -> Result<Vec<String>, String> {
    let json = admin_get(config, "/api/v1/nodes")?;
    Ok(json["nodes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|n| {
                    let link = match (n["self"].as_bool(), n["link_up"].as_bool()) {
                        (Some(true), _) => "self",
                        (_, Some(true)) => "link-up",
                        (_, Some(false)) => "link-down",
                        _ => "-",
                    };
                    format!(
                        "{} {} sessions={} version={} {}",
                        n["id"].as_str().unwrap_or("?"),
                        n["addr"].as_str().unwrap_or("-"),
                        n["sessions"],
                        n["version"].as_str().unwrap_or("-"),
                        link
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// What an account change did, and how far it reached: the sessions a running server
/// ended, or (on stderr) that no server was there to end any.
fn report(done: &str, reach: &accounts::Reach) {
    match reach {
        accounts::Reach::Live { sessions } => {
            println!("{done}; ended {sessions} live session(s) on every node")
        }
        accounts::Reach::StorageOnly { why } => {
            println!("{done} in the storage");
            eprintln!(
                "note: no running server was told ({why}); a node running elsewhere keeps \
                 the account's sessions until they end"
            );
        }
    }
}

fn run_user(config: &Config, command: UserCommand) -> ExitCode {
    let result = match command {
        UserCommand::Add { jid, password } => {
            accounts::add(config, &jid, password).map(|account| println!("added {account}"))
        }
        UserCommand::Del { jid } => accounts::delete(config, &jid)
            .map(|(account, reach)| report(&format!("deleted {account}"), &reach)),
        UserCommand::Passwd { jid, password } => accounts::passwd(config, &jid, password)
            .map(|(account, reach)| report(&format!("changed the password of {account}"), &reach)),
        UserCommand::List { host } => accounts::list(config, host.as_deref()).map(|accounts| {
            let mut out = io::stdout().lock();
            for account in accounts {
                // A closed pipe (`| head`) is not an error worth reporting.
                if writeln!(out, "{}@{}", account.username, account.host).is_err() {
                    break;
                }
            }
        }),
        UserCommand::Import => {
            let mut input = io::stdin().lock();
            let mut errors = io::stderr();
            match accounts::import(config, &mut input, &mut errors) {
                Ok(summary) => {
                    println!("{summary}");
                    return if summary.invalid == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

/// Installs the global tracing subscriber on stderr: `RUST_LOG` if set and valid, else
/// `level_override`, else `log.level`. Safe to call twice (the second call does nothing).
pub fn init_tracing(log: &LogConfig, level_override: Option<&str>) {
    let configured = level_override.unwrap_or(&log.level);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.trim().is_empty() => EnvFilter::try_new(&directive)
            .unwrap_or_else(|e| {
                eprintln!("warning: ignoring RUST_LOG ({e}); using `{configured}`");
                EnvFilter::new(configured)
            }),
        _ => EnvFilter::new(configured),
    };
    // Colour only for a person at a terminal: a journal, a file or a pipe gets plain text
    // (ANSI escapes there are noise, and break fail2ban's patterns).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr);
    // An already-installed subscriber (tests, embedding) wins; that is not an error.
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_is_global() {
        let cli = Cli::try_parse_from(["parley", "user", "list", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::List { host: None })
        ));
        let cli = Cli::try_parse_from(["parley", "--config", "y.toml", "check", "config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("y.toml")));
    }

    #[test]
    fn node_drain_takes_an_optional_node_id() {
        let cli = Cli::try_parse_from(["parley", "node", "drain"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Node(NodeCommand::Drain { node: None })
        ));
        let cli = Cli::try_parse_from(["parley", "node", "drain", "--node", "n1"]).unwrap();
        match cli.command {
            Command::Node(NodeCommand::Drain { node }) => assert_eq!(node.as_deref(), Some("n1")),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn user_add_takes_optional_password() {
        let cli = Cli::try_parse_from(["parley", "user", "add", "a@localhost"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Add { password: None, .. })
        ));
        let cli = Cli::try_parse_from([
            "parley",
            "user",
            "passwd",
            "a@localhost",
            "--password",
            "pw",
        ])
        .unwrap();
        match cli.command {
            Command::User(UserCommand::Passwd { jid, password }) => {
                assert_eq!(jid, "a@localhost");
                assert_eq!(password.as_deref(), Some("pw"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
