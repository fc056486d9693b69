//! The report of `parley-bench compare`: docs/benchmarks.md with its tables, ratios and SVG
//! plots, rendered from the figures every server produced (nothing here runs a server).

use super::*;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn presence_median(f: &Figures, contacts: usize) -> Option<f64> {
    f.presence
        .iter()
        .find(|p| p.config.contacts == contacts)
        .map(|p| median(p.rounds.iter().map(|r| r.contacts_all_ms).collect()))
}

fn offered_rate(r: &ChatResult) -> Option<f64> {
    match r.config.mode {
        crate::ChatMode::Rate { rate } => Some(rate),
        crate::ChatMode::Max { .. } => None,
    }
}

fn rate_result(f: &Figures, rate: u32) -> Option<&ChatResult> {
    f.chat_rates
        .iter()
        .find(|r| offered_rate(r) == Some(f64::from(rate)))
}

fn cpu_per_100k(r: &ChatResult) -> Option<f64> {
    let cpu = r.usage.server_cpu_s?;
    (r.delivered > 0).then(|| cpu / r.delivered as f64 * 100_000.0)
}

/// The message archive's cost (XEP-0313): Parley as configured by default (every chat
/// message archived for both parties before it is routed) against the same binary with
/// `[mam] enabled = false`, at every offered load.
fn archive_cost(out: &mut String, p: &Figures, off: &Figures) {
    let _ = writeln!(
        out,
        "## The message archive's cost
"
    );
    let _ = writeln!(
        out,
        "Same binary, same run: archive on (the default) against `[mam] enabled = false`. \
         Every chat message of the generator has a body, so each is archived twice (sender and recipient).\n"
    );
    let _ = writeln!(
        out,
        "| chat load | CPU s per 100k stanzas: archive on / off | added | one-way p99 (ms): on / off |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let p99 = |r: Option<&ChatResult>| r.map(|r| r.latency.p99_us as f64 / 1000.0);
    let added = |on: Option<f64>, off: Option<f64>| match (on, off) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:+.0} %", (a / b - 1.0) * 100.0),
        _ => "–".to_owned(),
    };
    let on_max = p.chat_max.as_ref().and_then(cpu_per_100k);
    let off_max = off.chat_max.as_ref().and_then(cpu_per_100k);
    let _ = writeln!(
        out,
        "| max | {} / {} | {} | {} / {} |",
        fmt_opt(on_max, 2),
        fmt_opt(off_max, 2),
        added(on_max, off_max),
        fmt_opt(p99(p.chat_max.as_ref()), 2),
        fmt_opt(p99(off.chat_max.as_ref()), 2),
    );
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        let other = rate_result(off, rate as u32);
        let (a, b) = (cpu_per_100k(r), other.and_then(cpu_per_100k));
        let _ = writeln!(
            out,
            "| {rate:.0} msg/s | {} / {} | {} | {} / {} |",
            fmt_opt(a, 2),
            fmt_opt(b, 2),
            added(a, b),
            fmt_opt(p99(Some(r)), 2),
            fmt_opt(p99(other), 2),
        );
    }
    let at_1k = rate_result(p, 1000).and_then(cpu_per_100k);
    let off_1k = rate_result(off, 1000).and_then(cpu_per_100k);
    let verdict = match (at_1k, off_1k) {
        (Some(a), Some(b)) if b > 0.0 => {
            if a / b - 1.0 <= 0.20 {
                "met"
            } else {
                "**not met**"
            }
        }
        _ => "not measured",
    };
    let _ = writeln!(
        out,
        "\nTarget (issue 14): archive writes add at most 20 % CPU per delivered chat stanza at 1000 msg/s: {verdict}.\n"
    );
}

/// Two archiving servers: Parley (its archive on by default) against Prosody with
/// `mod_mam` added to its reference config (default storage and policy), chat at every load.
fn archives_side_by_side(out: &mut String, p: &Figures, mam: &Figures) {
    let _ = writeln!(out, "## Parley against Prosody with mod_mam\n");
    let _ = writeln!(
        out,
        "Both archive every chat message for sender and recipient (Parley by default; Prosody's \
         reference config with `mam` added, its default `internal` storage).\n"
    );
    let _ = writeln!(
        out,
        "| chat load | CPU s per 100k stanzas: Parley / Prosody+mam | one-way p99 (ms): Parley / Prosody+mam |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let p99 = |r: Option<&ChatResult>| r.map(|r| r.latency.p99_us as f64 / 1000.0);
    let _ = writeln!(
        out,
        "| max ({} / {} stanzas/s) | {} / {} | {} / {} |",
        fmt_opt(p.chat_max.as_ref().map(|c| c.delivered_per_s), 0),
        fmt_opt(mam.chat_max.as_ref().map(|c| c.delivered_per_s), 0),
        fmt_opt(p.chat_max.as_ref().and_then(cpu_per_100k), 2),
        fmt_opt(mam.chat_max.as_ref().and_then(cpu_per_100k), 2),
        fmt_opt(p99(p.chat_max.as_ref()), 2),
        fmt_opt(p99(mam.chat_max.as_ref()), 2),
    );
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        let other = rate_result(mam, rate as u32);
        let _ = writeln!(
            out,
            "| {rate:.0} msg/s | {} / {} | {} / {} |",
            fmt_opt(cpu_per_100k(r), 2),
            fmt_opt(other.and_then(cpu_per_100k), 2),
            fmt_opt(p99(Some(r)), 2),
            fmt_opt(p99(other), 2),
        );
    }
    let _ = writeln!(out);
}

/// Parley against its own baseline build: the cost per stanza and the latency at every
/// offered load, side by side, so that a change shows whether the chat path got dearer.
fn baseline(out: &mut String, p: &Figures, b: &Figures) {
    let _ = writeln!(out, "## Parley against its baseline build\n");
    let _ = writeln!(
        out,
        "| chat load | CPU s per 100k stanzas: now / baseline | one-way p99 (ms): now / baseline |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let p99 = |r: Option<&ChatResult>| r.map(|r| r.latency.p99_us as f64 / 1000.0);
    let _ = writeln!(
        out,
        "| max | {} / {} | {} / {} |",
        fmt_opt(p.chat_max.as_ref().and_then(cpu_per_100k), 2),
        fmt_opt(b.chat_max.as_ref().and_then(cpu_per_100k), 2),
        fmt_opt(p99(p.chat_max.as_ref()), 2),
        fmt_opt(p99(b.chat_max.as_ref()), 2),
    );
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        let old = b.chat_rates.iter().find(|o| offered_rate(o) == Some(rate));
        let _ = writeln!(
            out,
            "| {rate:.0} msg/s | {} / {} | {} / {} |",
            fmt_opt(cpu_per_100k(r), 2),
            fmt_opt(old.and_then(cpu_per_100k), 2),
            fmt_opt(p99(Some(r)), 2),
            fmt_opt(p99(old), 2),
        );
    }
    let _ = writeln!(out);
}

/// One row: a label and one formatted cell per server.
fn row(out: &mut String, label: &str, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.collect();
    let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {} GiB RAM", kib / 1024 / 1024)
        });
    format!("{cores} × {cpu}{mem}, Linux {kernel}")
}

fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub(super) fn render(opts: &CompareOpts, results: &[(Server, Figures)], took: Duration) -> String {
    let mut out = String::new();
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `parley-bench compare` (crates/bench) in {:.0} s. Do not edit by hand: \
         rerun the command below. Every figure of every server comes from the same run, on the \
         same machine, with the same settings.\n",
        took.as_secs_f64()
    );
    let _ = writeln!(out, "## Machine and method\n");
    let _ = writeln!(out, "- Machine: {}.", machine());
    let _ = writeln!(
        out,
        "- Servers: Parley {} (release build), Prosody {}, ejabberd {}.",
        env!("CARGO_PKG_VERSION"),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "prosody"]),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "ejabberd"]),
    );
    let _ = writeln!(
        out,
        "- Pinning: each server runs on CPU 0 (`taskset -c 0`), the load generator on CPU 1 \
         (`taskset -c 1`), so \"per core\" figures are the whole figures.\n\
         - Same settings for all: plain TCP with STARTTLS offered but not required, SCRAM-SHA-1 \
         with 4096 iterations stored per account (password `pw`), no shapers or rate limits, \
         local storage (SQLite, Prosody's files, Mnesia), open-file limit 20000. The generator \
         caches SCRAM SaltedPasswords, as real clients do, so logins measure the server.\n\
         - {} accounts (user1…user{}) provisioned on each server; presence rosters are mutual \
         `both` subscriptions written to each server's storage.\n",
        opts.users, opts.users
    );
    let _ = writeln!(
        out,
        "Command (from the repository root, release build first):\n"
    );
    let _ = writeln!(out, "    cargo build --release -p parley -p parley-bench");
    let _ = writeln!(out, "    {}\n", opts.command_line);
    let _ = writeln!(out, "## Figures\n");
    let _ = writeln!(out, "| figure | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    let f = |g: &dyn Fn(&Figures) -> String| -> std::vec::IntoIter<String> {
        results
            .iter()
            .map(|(_, x)| g(x))
            .collect::<Vec<_>>()
            .into_iter()
    };
    row(
        &mut out,
        "idle: RSS per session (KiB)",
        f(&|x| fmt_opt(x.idle.as_ref().map(|i| i.rss_per_session_kib), 1)),
    );
    row(
        &mut out,
        "idle: server RSS with no sessions (MiB)",
        f(&|x| {
            fmt_opt(
                x.idle
                    .as_ref()
                    .map(|i| i.server_rss_kib_idle as f64 / 1024.0),
                1,
            )
        }),
    );
    row(
        &mut out,
        "login: sessions/s (connect → presence answered)",
        f(&|x| fmt_opt(x.login.as_ref().map(|l| l.logins_per_s), 0)),
    );
    row(
        &mut out,
        "login: p50 / p99 (ms)",
        f(&|x| match &x.login {
            Some(l) => format!(
                "{:.1} / {:.1}",
                l.latency.p50_us as f64 / 1000.0,
                l.latency.p99_us as f64 / 1000.0
            ),
            None => "–".into(),
        }),
    );
    row(
        &mut out,
        "chat: max delivered stanzas/s",
        f(&|x| fmt_opt(x.chat_max.as_ref().map(|c| c.delivered_per_s), 0)),
    );
    row(
        &mut out,
        "chat: server CPU s per 100k stanzas (max load)",
        f(&|x| fmt_opt(x.chat_max.as_ref().and_then(cpu_per_100k), 2)),
    );
    row(
        &mut out,
        "chat at 5k msg/s: one-way p50 / p99 / p99.9 (ms)",
        f(&|x| match rate_result(x, 5000) {
            Some(r) => format!(
                "{:.2} / {:.2} / {:.2}",
                r.latency.p50_us as f64 / 1000.0,
                r.latency.p99_us as f64 / 1000.0,
                r.latency.p999_us as f64 / 1000.0
            ),
            None => "–".into(),
        }),
    );
    row(
        &mut out,
        "chat at 5k msg/s: server CPU s per 100k stanzas",
        f(&|x| fmt_opt(rate_result(x, 5000).and_then(cpu_per_100k), 2)),
    );
    let sz = sizes(opts.quick, opts.users);
    for (_, n) in sz.presence {
        row(
            &mut out,
            &format!("presence: {n} contacts all have it (ms, median of 5)"),
            f(&|x| fmt_opt(presence_median(x, n), 2)),
        );
    }
    let biggest = sz.presence[1].1;
    let _ = writeln!(out);
    // Ratios against each reference.
    let parley = results
        .iter()
        .find(|(s, _)| *s == Server::Parley)
        .map(|(_, f)| f);
    for (server, reference) in results.iter().filter(|(s, _)| *s != Server::Parley) {
        let Some(p) = parley else { break };
        if *server == Server::ParleyBaseline {
            baseline(&mut out, p, reference);
            continue;
        }
        if *server == Server::ParleyNoArchive {
            archive_cost(&mut out, p, reference);
            continue;
        }
        if *server == Server::ProsodyMam {
            archives_side_by_side(&mut out, p, reference);
            continue;
        }
        let _ = writeln!(out, "## Parley against {}\n", server.name());
        let _ = writeln!(out, "| figure | ratio | target | met |");
        let _ = writeln!(out, "|---|---|---|---|");
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
            _ => None,
        };
        let mut target_row = |label: &str, r: Option<f64>, target: &str, ok: Option<bool>| {
            let verdict = match ok {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {target} | {verdict} |",
                fmt_opt(r, 2)
            );
        };
        let rss = ratio(
            p.idle.as_ref().map(|i| i.rss_per_session_kib),
            reference.idle.as_ref().map(|i| i.rss_per_session_kib),
        );
        let is_prosody = *server == Server::Prosody;
        target_row(
            "RSS per idle session, Parley ÷ reference",
            rss,
            if is_prosody { "≤ 0.25" } else { "(none)" },
            rss.filter(|_| is_prosody).map(|r| r <= 0.25),
        );
        let logins = ratio(
            p.login.as_ref().map(|l| l.logins_per_s),
            reference.login.as_ref().map(|l| l.logins_per_s),
        );
        target_row(
            "logins/s, Parley ÷ reference",
            logins,
            if is_prosody { "≥ 4" } else { "(none)" },
            logins.filter(|_| is_prosody).map(|r| r >= 4.0),
        );
        let chat = ratio(
            p.chat_max.as_ref().map(|c| c.delivered_per_s),
            reference.chat_max.as_ref().map(|c| c.delivered_per_s),
        );
        let chat_target = if is_prosody { 5.0 } else { 2.0 };
        target_row(
            "delivered chat stanzas/s per core, Parley ÷ reference",
            chat,
            if is_prosody { "≥ 5" } else { "≥ 2" },
            chat.map(|r| r >= chat_target),
        );
        let presence = ratio(
            presence_median(reference, biggest),
            presence_median(p, biggest),
        );
        target_row(
            &format!("presence fan-out speed ({biggest} contacts), Parley ÷ reference"),
            presence,
            if is_prosody { "≥ 5" } else { "(none)" },
            presence.filter(|_| is_prosody).map(|r| r >= 5.0),
        );
        let _ = writeln!(out);
    }
    if let Some(p) = parley {
        let _ = writeln!(out, "## Absolute targets for Parley\n");
        let _ = writeln!(out, "| figure | value | target | met |\n|---|---|---|---|");
        let rss = p.idle.as_ref().map(|i| i.rss_per_session_kib);
        let _ = writeln!(
            out,
            "| RSS per idle session over plain TCP (KiB) | {} | ≤ 16 | {} |",
            fmt_opt(rss, 1),
            rss.map_or("–", |r| if r <= 16.0 { "yes" } else { "**no**" })
        );
        let p99 = rate_result(p, 5000).map(|r| r.latency.p99_us as f64 / 1000.0);
        let _ = writeln!(
            out,
            "| one-way chat latency p99 at 5k msg/s (ms) | {} | ≤ 5 | {} |\n",
            fmt_opt(p99, 2),
            p99.map_or("–", |r| if r <= 5.0 { "yes" } else { "**no**" })
        );
    }
    let _ = writeln!(out, "## Plots\n");
    let _ = writeln!(
        out,
        "![one-way latency p99 against offered load](benchmarks/latency.svg)\n"
    );
    let _ = writeln!(
        out,
        "![server RSS against idle sessions](benchmarks/rss.svg)\n"
    );
    let _ = writeln!(out, "## Latency against offered load (one-way, ms)\n");
    let _ = writeln!(out, "| offered msg/s | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for rate in sizes(opts.quick, opts.users).rates {
        row(
            &mut out,
            &rate.to_string(),
            results.iter().map(|(_, x)| match rate_result(x, *rate) {
                Some(r) => format!(
                    "p50 {:.2}, p99 {:.2}, p99.9 {:.2}",
                    r.latency.p50_us as f64 / 1000.0,
                    r.latency.p99_us as f64 / 1000.0,
                    r.latency.p999_us as f64 / 1000.0
                ),
                None => "–".into(),
            }),
        );
    }
    let _ = writeln!(out);
    let errors: Vec<String> = results
        .iter()
        .flat_map(|(s, f)| f.errors.iter().map(move |e| format!("- {}: {e}", s.name())))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "## What failed in this run\n\n{}\n", errors.join("\n"));
    }
    let _ = writeln!(
        out,
        "## Provisioning\n\nParley imports with `parley user import` (SCRAM keys derived on all \
         cores); Prosody's account and roster files are written directly in its storage format; \
         ejabberd registers through its own HTTP API (`mod_http_api` `register`, 8 connections), \
         which ejabberd serializes — Debian's build lacks the Lua support that its Prosody \
         importer (`import_prosody`) needs.\n"
    );
    for (s, f) in results {
        let _ = writeln!(
            out,
            "- {}: {} accounts in {:.1} s.",
            s.name(),
            opts.users,
            f.provision_s
        );
    }
    let _ = writeln!(out);
    out.push_str(include_str!("../../notes.md"));
    out
}

pub(super) fn charts(results: &[(Server, Figures)]) -> Vec<(&'static str, svg::Chart)> {
    let latency = svg::Chart {
        title: "One-way chat latency p99 against offered load".into(),
        x_label: "offered load (messages/s)".into(),
        y_label: "p99 latency (ms, log scale)".into(),
        log_y: true,
        series: results
            .iter()
            .map(|(s, f)| svg::Series {
                name: s.name().into(),
                points: f
                    .chat_rates
                    .iter()
                    .filter_map(|r| Some((offered_rate(r)?, r.latency.p99_us as f64 / 1000.0)))
                    .collect(),
            })
            .collect(),
    };
    let rss = svg::Chart {
        title: "Server RSS against idle sessions".into(),
        x_label: "sessions".into(),
        y_label: "RSS (MiB)".into(),
        log_y: false,
        series: results
            .iter()
            .map(|(s, f)| svg::Series {
                name: s.name().into(),
                points: f
                    .idle
                    .iter()
                    .flat_map(|i| {
                        std::iter::once((0.0, i.server_rss_kib_idle as f64 / 1024.0)).chain(
                            i.levels
                                .iter()
                                .map(|l| (l.sessions as f64, l.server_rss_kib as f64 / 1024.0)),
                        )
                    })
                    .collect(),
            })
            .collect(),
    };
    vec![("latency.svg", latency), ("rss.svg", rss)]
}
