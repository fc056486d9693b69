//! The command line: `parley serve`, `parley user …`, `parley check config`, and the
//! commands that ask a running node through its admin API (`sessions`, `cluster`, `node`).
//!
//! Errors go to stderr as `error: …` with exit code 1; results go to stdout so that
//! `parley user list` can be piped.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod accounts;
mod admin_client;
mod listing;
mod sessions;

pub use sessions::{ClusterCommand, NodeCommand, SessionsCommand};
mod invites;
mod rooms;

use crate::config::{Config, LogConfig, LogFormat, EMBEDDED_ORIGIN};

/// The Parley XMPP server.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    /// Configuration file (TOML, see config/parley.toml). Without it: $PARLEY_CONFIG, else
    /// ./parley.toml, else /etc/parley/parley.toml, else the built-in defaults. Any key can
    /// be set from the environment as PARLEY_SECTION__KEY.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// List commands print their records as a JSON array instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
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
        /// The id (or the token); base64url, so it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Revoke every token of an account.
    RevokeAll {
        /// The bare JID.
        jid: String,
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
    /// The accounts: JID, when created, when the password last changed (`--json`: records).
    List {
        /// Only the accounts of this host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Create accounts from `JID PASSWORD` lines on standard input; blank lines and
    /// `#` comments are skipped, existing accounts are left alone. With `--piefxis`, from
    /// XEP-0227 files instead (Prosody's `prosody-migrator`, ejabberd's `export_piefxis`):
    /// accounts with their credentials, rosters, vCards, private XML and offline messages.
    Import {
        /// A XEP-0227 file (its includes are followed), or a directory of them.
        #[arg(long, value_name = "PATH")]
        piefxis: Option<std::path::PathBuf>,
        /// With `--piefxis`: the largest file read, in bytes.
        #[arg(long, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
        max_file_bytes: u64,
        /// With `--piefxis`: the most files read, includes counted.
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        max_files: usize,
    },
    /// Write accounts with their SCRAM credentials, rosters, vCards and private XML to a
    /// XEP-0227 file (`-`: standard output), for Prosody, ejabberd or another Parley.
    Export {
        /// The file to write (a directory with `--per-user`).
        file: std::path::PathBuf,
        /// Only the accounts of this host.
        #[arg(long)]
        host: Option<String>,
        /// One file per account, `user@host.xml`, in the directory FILE (the layout of
        /// Prosody's `mod_storage_xep0227`).
        #[arg(long)]
        per_user: bool,
        /// Write SCRAM data base64-encoded twice, as ejabberd 23.01 (Debian 12) reads it;
        /// other servers read the standard form (XEP-0227 §4.2), the default.
        #[arg(long)]
        scram_base64_twice: bool,
    },
}

/// `parley check …`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Load and validate the configuration, then exit.
    Config,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let json = cli.json;
    // Without --config: $PARLEY_CONFIG, ./parley.toml, /etc/parley/parley.toml.
    let config_path = cli.config.clone().or_else(Config::default_path);
    let config_path = config_path.as_deref();
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
            match crate::server::run(config, config_path.map(std::path::Path::to_path_buf)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::User(command) => {
            // Account commands print their own results; only warnings belong on stderr.
            init_tracing(&config.log, Some("warn"));
            run_user(&config, command, json)
        }
        Command::Cluster(ClusterCommand::Nodes) => {
            print(sessions::nodes(&config).map(Into::into), json)
        }
        Command::Node(NodeCommand::Drain { node }) => print_lines(sessions::drain(&config, node)),
        Command::Invite(command) => {
            init_tracing(&config.log, Some("warn"));
            print(invites::run(&config, command), json)
        }
        Command::Room(command) => print(rooms::run(&config, command), json),
        Command::Token(command) => {
            init_tracing(&config.log, Some("warn"));
            print(run_token(&config, command), json)
        }
        Command::Sessions(SessionsCommand::List { user, unbound }) => {
            print(sessions::list(&config, user, unbound).map(Into::into), json)
        }
        Command::Sessions(SessionsCommand::Kick {
            id,
            reason,
            condition,
        }) => print_lines(sessions::kick(&config, &id, reason, condition)),
    }
}

fn run_token(config: &Config, command: TokenCommand) -> Result<listing::Printed, String> {
    let ms = |t: Option<i64>| t.map_or("-".to_owned(), parley_proto::datetime::xep0082);
    match command {
        TokenCommand::Issue { jid, ttl, purpose } => {
            if ttl == Some(0) {
                return Err("--ttl must be at least 1 second".into());
            }
            let ttl = ttl.map(std::time::Duration::from_secs);
            accounts::token_issue(config, &jid, ttl, &purpose)
                .map(|(token, _)| vec![token].into())
                .map_err(|e| e.to_string())
        }
        TokenCommand::List { jid } => accounts::token_list(config, &jid)
            .map(|list| {
                let mut listing =
                    listing::Listing::new(&["ID", "PURPOSE", "CREATED", "EXPIRES", "LAST USED"]);
                for t in list {
                    listing.push(
                        vec![
                            t.id.clone(),
                            t.purpose.clone(),
                            ms(Some(t.created_ms)),
                            ms(t.expires_ms),
                            ms(t.last_used_ms),
                        ],
                        serde_json::json!({
                            "id": t.id,
                            "purpose": t.purpose,
                            "created": ms(Some(t.created_ms)),
                            "expires": t.expires_ms.map(parley_proto::datetime::xep0082),
                            "last_used": t.last_used_ms.map(parley_proto::datetime::xep0082),
                        }),
                    );
                }
                listing.into()
            })
            .map_err(|e| e.to_string()),
        TokenCommand::Revoke { id } => match accounts::token_revoke(config, &id) {
            Ok(true) => Ok(vec!["revoked".to_owned()].into()),
            Ok(false) => Err("no such token".into()),
            Err(e) => Err(e.to_string()),
        },
        TokenCommand::RevokeAll { jid } => accounts::token_revoke_all(config, &jid)
            .map(|n| vec![format!("revoked {n} tokens")].into())
            .map_err(|e| e.to_string()),
    }
}

/// Prints what a command produced (a list command's table, or `--json` its records), or
/// the error.
fn print(result: Result<listing::Printed, String>, json: bool) -> ExitCode {
    match result {
        Ok(listing::Printed::Table(listing)) => {
            listing.print(json);
            ExitCode::SUCCESS
        }
        Ok(listing::Printed::Lines(lines)) => print_lines(Ok(lines)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
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

/// A request (without a body) with the bearer token on the configured admin endpoint; the
/// JSON answer of a 2xx, else an error carrying the endpoint's own message.
pub(crate) fn admin_request(
    config: &Config,
    method: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    admin_client::call(config, method, path, None).map_err(|e| e.to_string())
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

fn run_user(config: &Config, command: UserCommand, json: bool) -> ExitCode {
    let result = match command {
        UserCommand::Add { jid, password } => {
            accounts::add(config, &jid, password).map(|account| println!("added {account}"))
        }
        UserCommand::Del { jid } => accounts::delete(config, &jid)
            .map(|(account, reach)| report(&format!("deleted {account}"), &reach)),
        UserCommand::Passwd { jid, password } => accounts::passwd(config, &jid, password)
            .map(|(account, reach)| report(&format!("changed the password of {account}"), &reach)),
        UserCommand::List { host } => accounts::list(config, host.as_deref()).map(|accounts| {
            let iso = |s: i64| parley_proto::datetime::xep0082(s.saturating_mul(1000));
            let mut listing = listing::Listing::new(&["JID", "CREATED", "PASSWORD CHANGED"]);
            for a in accounts {
                let jid = format!("{}@{}", a.username, a.host);
                listing.push(
                    vec![jid.clone(), iso(a.created_at), iso(a.password_changed_at)],
                    serde_json::json!({
                        "jid": jid,
                        "created": iso(a.created_at),
                        "password_changed": iso(a.password_changed_at),
                    }),
                );
            }
            listing.print(json);
        }),
        UserCommand::Import {
            piefxis: Some(path),
            max_file_bytes,
            max_files,
        } => {
            let started = std::time::Instant::now();
            let limits = parley_accounts::piefxis::ReadLimits {
                max_file_bytes,
                max_files,
            };
            match accounts::import_piefxis(config, &path, limits, &mut io::stderr()) {
                Ok(report) => {
                    println!("{report} in {:.1} s", started.elapsed().as_secs_f64());
                    return if report.invalid == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                Err(e) => Err(e),
            }
        }
        UserCommand::Export {
            file,
            host,
            per_user,
            scram_base64_twice,
        } => {
            let encoding = if scram_base64_twice {
                parley_proto::piefxis::ScramEncoding::Base64Twice
            } else {
                parley_proto::piefxis::ScramEncoding::Standard
            };
            accounts::export_piefxis(config, &file, host.as_deref(), per_user, encoding).map(
                |report| {
                    eprintln!(
                        "exported {} accounts ({} roster items, {} offline messages)",
                        report.accounts, report.roster_items, report.offline
                    );
                },
            )
        }
        UserCommand::Import { piefxis: None, .. } => {
            let mut input = io::stdin().lock();
            let mut errors = io::stderr();
            let started = std::time::Instant::now();
            match accounts::import(config, &mut input, &mut errors) {
                Ok(summary) => {
                    println!("{summary} in {:.1} s", started.elapsed().as_secs_f64());
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
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let configured = level_override.unwrap_or(&log.level);
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|directive| !directive.trim().is_empty());
    let filter = match &from_env {
        Some(directive) => EnvFilter::try_new(directive).unwrap_or_else(|e| {
            eprintln!("warning: ignoring RUST_LOG ({e}); using `{configured}`");
            EnvFilter::new(configured)
        }),
        None => EnvFilter::new(configured),
    };
    // The filter can be replaced while the server runs (SIGHUP with a new [log] level).
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Colour only for a person at a terminal: a journal, a file or a pipe gets plain text
    // (ANSI escapes there are noise, and break fail2ban's patterns).
    let ansi = std::io::IsTerminal::is_terminal(&io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    // An already-installed subscriber (tests, embedding) wins; that is not an error.
    let installed = match log.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(io::stderr),
            )
            .try_init(),
    };
    if installed.is_ok() {
        let _ = LOG_FILTER.set(LogFilter {
            handle,
            from_env: from_env.is_some(),
        });
    }
}

/// The installed log filter, and whether `RUST_LOG` chose it (then the config's level never
/// applies).
struct LogFilter {
    handle: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    from_env: bool,
}

static LOG_FILTER: std::sync::OnceLock<LogFilter> = std::sync::OnceLock::new();

/// Applies `[log] level` from a re-read config (SIGHUP): Ok(true) when it changed the
/// filter, Ok(false) when there is nothing to change (`RUST_LOG` rules, or no filter of
/// ours is installed).
pub fn reload_log_level(level: &str) -> Result<bool, String> {
    let Some(current) = LOG_FILTER.get() else {
        return Ok(false);
    };
    if current.from_env {
        return Ok(false);
    }
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level: {e}"))?;
    current
        .handle
        .reload(filter)
        .map(|()| true)
        .map_err(|e| format!("log.level: {e}"))
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

    /// Invitation and token ids are base64url: one that starts with `-` is an id, not an
    /// option (`invite revoke -ab…` failed as "unexpected argument '-a'").
    #[test]
    fn ids_that_start_with_a_hyphen_are_ids() {
        let cli = Cli::try_parse_from(["parley", "invite", "revoke", "-aBc_9"]).unwrap();
        assert!(
            format!("{:?}", cli.command).contains("-aBc_9"),
            "{:?}",
            cli.command
        );
        let cli = Cli::try_parse_from(["parley", "token", "revoke", "-xY"]).unwrap();
        assert!(
            format!("{:?}", cli.command).contains("-xY"),
            "{:?}",
            cli.command
        );
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
