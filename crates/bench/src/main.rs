//! The `parley-bench` command line: `run SCENARIO` prints each result as JSON on stdout
//! (one line with `--json`), progress goes to stderr; `provision` fills a Parley store.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use clap::Parser;
use parley_bench::{
    chat, cluster, csi, idle, parse_source_ips, presence, provision, resume, BenchError, ChatMode,
    ChatOpts, ClusterOpts, CsiOpts, IdleOpts, LoginOpts, PresenceOpts, ResumeOpts, Target,
    Transport,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Load generator for XMPP servers on this machine (loopback targets only).
mod cli;

use cli::*;
fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(run) => run.threads,
        Command::Provision(_) | Command::Archive(_) => Some(1),
        Command::Compare(c) => return run_compare(c),
        Command::AttackReport { before, after } => return attack_report(before, after),
        Command::ResumeReport { runs } => return report(runs, parley_bench::resume::report),
        Command::CsiReport { runs } => return report(runs, parley_bench::csi::report),
        Command::MucReport { runs } => return report(runs, parley_bench::muc::report),
        Command::Muc(m) => return run_muc(m),
        Command::Scale(s) => {
            return match parley_bench::scale::main(s) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Attack(_) => None,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => return fail(&BenchError::io("starting the runtime", e)),
    };
    let outcome = rt.block_on(async {
        match cli.command {
            Command::Run(run) => run_scenario(run).await,
            Command::Provision(p) => run_provision(p).await,
            Command::Attack(a) => run_attack(a).await,
            Command::Archive(a) => {
                let result = parley_bench::archive::run(
                    &a.storage_url,
                    &a.domain,
                    &a.user,
                    a.messages,
                    a.queries,
                )
                .await?;
                print(&result, false)
            }
            Command::Compare(_)
            | Command::AttackReport { .. }
            | Command::ResumeReport { .. }
            | Command::CsiReport { .. }
            | Command::Muc(_)
            | Command::MucReport { .. }
            | Command::Scale(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run_attack(a: AttackArgs) -> Result<(), BenchError> {
    use parley_bench::attack::{run, AttackOpts};
    let opts = AttackOpts {
        parley_bin: a.parley_bin,
        workdir: a.workdir,
        only: a.only,
        seconds: a.seconds,
        base_port: a.base_port,
    };
    let results = run(&opts).await?;
    let json = serde_json::to_string_pretty(&results)
        .map_err(|e| BenchError::Options(format!("encoding results: {e}")))?;
    std::fs::write(&a.out, json).map_err(|e| BenchError::io("writing the results", e))?;
    Ok(())
}

fn attack_report(before: &std::path::Path, after: &std::path::Path) -> ExitCode {
    use parley_bench::attack::{report, AttackResult};
    let load = |p: &std::path::Path| -> Result<Vec<AttackResult>, BenchError> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| BenchError::io(format!("reading {}", p.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| BenchError::Options(format!("{}: {e}", p.display())))
    };
    match (load(before), load(after)) {
        (Ok(b), Ok(a)) => {
            print!("{}", report(&b, &a));
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => fail(&e),
    }
}

/// Loads `LABEL=FILE` results of one scenario and prints them as `render` makes them.
fn report<T: DeserializeOwned>(
    runs: &[String],
    render: impl Fn(&[(String, T)]) -> String,
) -> ExitCode {
    let load = |spec: &String| -> Result<(String, T), BenchError> {
        let (label, path) = spec
            .split_once('=')
            .ok_or_else(|| BenchError::Options(format!("`{spec}` is not LABEL=FILE")))?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        // The file may hold stderr-free output of several commands: the last line is ours.
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let result =
            serde_json::from_str(line).map_err(|e| BenchError::Options(format!("{path}: {e}")))?;
        Ok((label.to_owned(), result))
    };
    match runs.iter().map(load).collect::<Result<Vec<_>, _>>() {
        Ok(rows) => {
            print!("{}", render(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run_compare(c: &Compare) -> ExitCode {
    use parley_bench::compare::{compare, CompareOpts, Server};
    let mut servers = Vec::new();
    for s in &c.servers {
        servers.push(match s.as_str() {
            "parley" => Server::Parley,
            "parley-baseline" => Server::ParleyBaseline,
            "parley-noarchive" => Server::ParleyNoArchive,
            "prosody" => Server::Prosody,
            "prosody-mam" => Server::ProsodyMam,
            "ejabberd" => Server::Ejabberd,
            other => {
                return fail(&BenchError::Options(format!(
                "--servers: unknown server `{other}` (parley, parley-baseline, parley-noarchive, prosody, prosody-mam, ejabberd)"
            )))
            }
        });
    }
    let absolute =
        |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let opts = CompareOpts {
        servers,
        users: c.users,
        quick: c.quick,
        workdir: c.workdir.clone(),
        parley_bin: absolute(&c.parley_bin),
        baseline_bin: c.baseline_bin.as_deref().map(absolute),
        prosody_launcher: absolute(&c.prosody_launcher),
        out: c.out.clone(),
        command_line: command_line(),
    };
    match compare(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// This process's command line as the report shows it (the binary by its usual path).
fn command_line() -> String {
    std::env::args()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
        .replace(
            &std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            "target/release/parley-bench",
        )
}

fn run_muc(m: &parley_bench::muc::runner::MucArgs) -> ExitCode {
    match m
        .to_opts(command_line())
        .and_then(|opts| parley_bench::muc::runner::run(&opts))
    {
        Ok(section) => {
            print!("{section}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &BenchError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

/// Resolves `host:port` strings, refusing anything that is not loopback.
fn resolve(addrs: &[String]) -> Result<Vec<SocketAddr>, BenchError> {
    let mut out = Vec::new();
    for a in addrs {
        let resolved: Vec<SocketAddr> = a
            .to_socket_addrs()
            .map_err(|e| BenchError::Options(format!("target `{a}`: {e}")))?
            .collect();
        if let Some(bad) = resolved.iter().find(|s| !s.ip().is_loopback()) {
            return Err(BenchError::NotLoopback(format!("{a} ({bad})")));
        }
        // `localhost` may resolve to both families; one address per target is enough.
        out.extend(resolved.into_iter().next());
    }
    Ok(out)
}

fn target(args: &TargetArgs) -> Result<Target, BenchError> {
    let target = Target {
        addrs: resolve(&args.target)?,
        domain: args.domain.clone(),
        starttls: args.starttls,
        mechanism: args.mechanism,
        user_prefix: args.user_prefix.clone(),
        first_user: args.first,
        password: args.password.clone(),
        server_pid: args.server_pid,
        also_pids: args.also_server_pid.clone(),
        place_by_user: false,
        transport: Transport::parse(&args.transport, args.web_path.as_deref())?,
        source_ips: args
            .source_ips
            .as_deref()
            .map(parse_source_ips)
            .transpose()?
            .unwrap_or_default(),
    };
    target.validate()?;
    Ok(target)
}

fn print<T: Serialize>(result: &T, json: bool) -> Result<(), BenchError> {
    let text = if json {
        serde_json::to_string(result)
    } else {
        serde_json::to_string_pretty(result)
    }
    .map_err(|e| BenchError::Options(format!("serializing the result: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn run_scenario(run: Run) -> Result<(), BenchError> {
    let t = target(&run.target)?;
    match run.scenario {
        Scenario::Idle {
            sessions,
            concurrency,
            hold,
        } => {
            let opts = IdleOpts {
                sessions,
                concurrency,
                hold_s: hold,
            };
            print(&idle(&t, &opts).await?, run.json)
        }
        Scenario::Login {
            count,
            concurrency,
            duration,
            users,
            no_prime,
            roster,
        } => {
            let opts = LoginOpts {
                count,
                concurrency,
                duration_s: Some(duration),
                users,
                prime: !no_prime,
            };
            print(
                &parley_bench::login_with(&t, &opts, roster).await?,
                run.json,
            )
        }
        Scenario::Chat {
            pairs,
            window,
            rate,
            duration,
            body_pad,
            concurrency,
            drain,
        } => {
            let opts = ChatOpts {
                pairs,
                mode: match rate {
                    Some(rate) => ChatMode::Rate { rate },
                    None => ChatMode::Max { window },
                },
                duration_s: duration,
                body_pad,
                concurrency,
                drain_s: drain,
            };
            print(&chat(&t, &opts).await?, run.json)
        }
        Scenario::Cluster {
            admin,
            pairs,
            rate,
            duration,
            logins,
            hold,
            concurrency,
            report,
        } => {
            let opts = ClusterOpts {
                admins: resolve(&admin)?,
                pairs,
                rate,
                duration_s: duration,
                logins,
                hold,
                concurrency,
            };
            let result = cluster(&t, &opts).await?;
            if let Some(path) = report {
                let section = parley_bench::cluster::report(&result, "crates/bench/run-cluster.sh");
                std::fs::write(&path, section)
                    .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
                eprintln!("wrote {}", path.display());
            }
            print(&result, run.json)
        }
        Scenario::Resume {
            iterations,
            concurrency,
            messages,
            resume_target,
            wait,
            hold_ms,
        } => {
            let resume_target = match resume_target {
                Some(a) => Some(
                    resolve(std::slice::from_ref(&a))?
                        .into_iter()
                        .next()
                        .ok_or_else(|| BenchError::Options(format!("`{a}` resolves to nothing")))?,
                ),
                None => None,
            };
            let opts = ResumeOpts {
                iterations,
                concurrency,
                messages,
                resume_target,
                wait_s: wait,
                hold_ms,
            };
            print(&resume(&t, &opts).await?, run.json)
        }
        Scenario::Csi {
            contacts,
            rate,
            chat_state_rate,
            duration,
            concurrency,
            count_syscalls,
            settle,
        } => {
            let opts = CsiOpts {
                contacts,
                rate,
                chat_state_rate,
                duration_s: duration,
                concurrency,
                count_syscalls,
                settle_s: settle,
            };
            print(&csi(&t, &opts).await?, run.json)
        }
        Scenario::Muc(opts) => print(&parley_bench::muc::muc(&t, &opts).await?, run.json),
        Scenario::Presence {
            contacts,
            rounds,
            concurrency,
        } => {
            let opts = PresenceOpts {
                contacts,
                rounds,
                concurrency,
            };
            print(&presence(&t, &opts).await?, run.json)
        }
    }
}

async fn run_provision(p: Provision) -> Result<(), BenchError> {
    let mut target = Target::new(Vec::new());
    target.domain = p.domain;
    target.user_prefix = p.user_prefix;
    target.first_user = p.first;
    target.password = p.password;
    if let Some(data) = &p.prosody_data {
        return provision_prosody(data, &target, &p.what);
    }
    let url = p
        .storage_url
        .as_deref()
        .expect("clap requires one of the two");
    let storage = provision::open(url).await?;
    match p.what {
        ProvisionWhat::Accounts { count, iterations } => {
            let report = provision::accounts(storage.as_ref(), &target, count, iterations).await?;
            eprintln!(
                "provision: {} accounts created, {} already there",
                report.created, report.skipped_existing
            );
        }
        ProvisionWhat::Roster { contacts } => {
            provision::presence_rosters(storage.as_ref(), &target, contacts).await?;
            eprintln!(
                "provision: {} and {contacts} contacts subscribed both ways",
                target.bare_jid(0)
            );
        }
    }
    Ok(())
}

/// `provision --prosody-data`: the same accounts and rosters as files Prosody reads.
fn provision_prosody(
    data: &std::path::Path,
    target: &Target,
    what: &ProvisionWhat,
) -> Result<(), BenchError> {
    use parley_bench::compare::prosody;
    match *what {
        ProvisionWhat::Accounts { count, iterations } => {
            let users: Vec<String> = (0..count).map(|i| target.username(i)).collect();
            let created = prosody::provision_accounts(
                data,
                &target.domain,
                &users,
                &target.password,
                iterations,
            )
            .map_err(|e| BenchError::io("writing Prosody accounts", e))?;
            eprintln!(
                "provision: {created} Prosody accounts created, {} already there",
                count - created
            );
        }
        ProvisionWhat::Roster { contacts } => {
            prosody::presence_rosters(
                data,
                &target.domain,
                &target.user_prefix,
                target.first_user,
                contacts,
            )
            .map_err(|e| BenchError::io("writing Prosody rosters", e))?;
            eprintln!(
                "provision: {} and {contacts} contacts subscribed both ways (Prosody)",
                target.bare_jid(0)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use parley_bench::Mech;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options_parse_in_any_order() {
        let cli = Cli::try_parse_from([
            "parley-bench",
            "run",
            "chat",
            "--pairs",
            "5",
            "--rate",
            "500",
            "--json",
            "--target",
            "127.0.0.1:5222,127.0.0.1:5223",
            "--mechanism",
            "scram-sha-256",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.json);
        assert_eq!(run.target.target.len(), 2);
        assert_eq!(run.target.mechanism, Mech::ScramSha256);
        assert!(matches!(
            run.scenario,
            Scenario::Chat {
                pairs: 5,
                rate: Some(r),
                ..
            } if r == 500.0
        ));
        let t = target(&run.target).unwrap();
        assert_eq!(t.addrs[1].port(), 5223);
    }

    #[test]
    fn resume_takes_a_second_address_after_the_scenario() {
        let cli = Cli::try_parse_from([
            "parley-bench",
            "run",
            "--starttls",
            "--target",
            "127.0.0.1:16001",
            "resume",
            "--concurrency",
            "10",
            "--resume-target",
            "127.0.0.1:16002",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.target.starttls);
        assert!(matches!(
            run.scenario,
            Scenario::Resume {
                iterations: 200,
                concurrency: 10,
                messages: 5,
                resume_target: Some(ref a),
                hold_ms: 0,
                ..
            } if a == "127.0.0.1:16002"
        ));
    }

    #[test]
    fn csi_takes_its_defaults_and_provision_one_destination() {
        let cli = Cli::try_parse_from(["parley-bench", "run", "--first", "9", "csi"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.target.first, 9);
        assert!(matches!(
            run.scenario,
            Scenario::Csi {
                contacts: 200,
                count_syscalls: false,
                ..
            }
        ));
        for both_or_none in [
            &["parley-bench", "provision", "roster", "--contacts", "2"][..],
            &[
                "parley-bench",
                "provision",
                "--storage-url",
                "sqlite::memory:",
                "--prosody-data",
                "/tmp/x",
                "roster",
                "--contacts",
                "2",
            ],
        ] {
            assert!(Cli::try_parse_from(both_or_none).is_err());
        }
        assert!(Cli::try_parse_from([
            "parley-bench",
            "provision",
            "--prosody-data",
            "/tmp/x",
            "accounts",
            "--count",
            "3"
        ])
        .is_ok());
    }

    #[test]
    fn muc_runs_as_a_scenario_and_as_a_runner() {
        let cli = Cli::try_parse_from([
            "parley-bench",
            "run",
            "--target",
            "127.0.0.1:1,127.0.0.1:2",
            "muc",
            "--users",
            "10",
            "--rates",
            "1,5",
            "--pids",
            "7,8",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let Scenario::Muc(opts) = run.scenario else {
            panic!("not muc")
        };
        assert_eq!(
            (opts.users, opts.rates, opts.pids),
            (10, vec![1.0, 5.0], vec![7, 8])
        );
        let cli = Cli::try_parse_from([
            "parley-bench",
            "muc",
            "--servers",
            "parley,prosody",
            "--users",
            "200",
        ])
        .unwrap();
        let Command::Muc(args) = cli.command else {
            panic!("not muc")
        };
        let opts = args.to_opts("x".into()).unwrap();
        assert_eq!((opts.nodes, opts.scenario.users), (3, 200));
        let Command::Muc(bad) =
            Cli::try_parse_from(["parley-bench", "muc", "--servers", "ejabberd"])
                .unwrap()
                .command
        else {
            panic!("not muc")
        };
        assert!(bad.to_opts("x".into()).is_err());
    }

    #[test]
    fn window_and_rate_exclude_each_other() {
        assert!(Cli::try_parse_from([
            "parley-bench",
            "run",
            "chat",
            "--window",
            "8",
            "--rate",
            "100"
        ])
        .is_err());
    }

    #[test]
    fn non_loopback_targets_are_refused_before_any_connection() {
        let err = resolve(&["192.0.2.1:5222".to_owned()]).unwrap_err();
        assert!(matches!(err, BenchError::NotLoopback(_)));
        let ok = resolve(&["localhost:5222".to_owned(), "[::1]:5222".to_owned()]).unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
    }
}
