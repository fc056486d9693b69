//! The report of `parley-bench compare`: docs/benchmarks.md with its tables, the ratios
//! against the targets and the SVG plots, rendered from the figures every server produced
//! (nothing here runs a server). How each server was configured and the side tables of
//! the Parley variants are in sections.rs.

use super::sections::{archive_cost, archives_side_by_side, baseline, configuration, method};
use super::targets::{absolute_row, fmt_opt, versus_table, Bound, Versus};
use super::*;

/// The chat loads issue 16 sets a CPU target at (Parley ÷ Prosody ≤ 1/10).
const TARGET_RATES: [u32; 3] = [1000, 5000, 20000];

pub(super) fn offered_rate(r: &ChatResult) -> Option<f64> {
    match r.config.mode {
        crate::ChatMode::Rate { rate } => Some(rate),
        crate::ChatMode::Max { .. } => None,
    }
}

pub(super) fn rate_result(f: &Figures, rate: u32) -> Option<&ChatResult> {
    f.chat_rates
        .iter()
        .find(|r| offered_rate(r) == Some(f64::from(rate)))
}

/// Server CPU µs per delivered stanza: the server's CPU over the sending window over the
/// stanzas delivered in it (the chat scenario's own figure), so that a server falling
/// behind is charged for the stanzas it delivered, not for those it still holds.
pub(super) fn cpu_us(r: &ChatResult) -> Option<f64> {
    r.server_cpu_s_per_100k.map(|s| s * 10.0)
}

pub(super) fn p99_ms(r: Option<&ChatResult>) -> Option<f64> {
    r.map(|r| r.latency.p99_us as f64 / 1000.0)
}

fn presence_of(f: &Figures, contacts: usize) -> Option<&PresenceResult> {
    f.presence.iter().find(|p| p.config.contacts == contacts)
}

fn presence_ms(f: &Figures, contacts: usize) -> Option<f64> {
    presence_of(f, contacts).map(|p| p.contacts_all_ms_p50)
}

fn presence_cpu_ms(f: &Figures, contacts: usize) -> Option<f64> {
    presence_of(f, contacts).and_then(|p| p.server_cpu_ms_per_round)
}

fn login_cpu_ms(f: &Figures) -> Option<f64> {
    f.login.as_ref().and_then(|l| l.server_cpu_ms_per_login)
}

fn rss_tcp(f: &Figures) -> Option<f64> {
    f.idle.as_ref().map(|i| i.rss_per_session_kib)
}

fn rss_tls(f: &Figures) -> Option<f64> {
    f.idle_tls.as_ref().map(|i| i.rss_per_session_kib)
}

/// A chat run's CPU per stanza, with its losses when there were any.
fn cpu_cell(r: Option<&ChatResult>) -> String {
    match r {
        Some(r) if r.lost > 0 => format!("{} ({} lost)", fmt_opt(cpu_us(r), 1), r.lost),
        Some(r) => fmt_opt(cpu_us(r), 1),
        None => "–".into(),
    }
}

/// One row: a label and one formatted cell per server.
fn row(
    out: &mut String,
    label: &str,
    results: &[(Server, Figures)],
    g: &dyn Fn(&Figures) -> String,
) {
    let cells: Vec<String> = results.iter().map(|(_, f)| g(f)).collect();
    let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
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

/// The main table: every figure of every server.
fn figures(out: &mut String, results: &[(Server, Figures)], sz: &Sizes) {
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let _ = writeln!(out, "## Figures\n");
    let _ = writeln!(out, "| figure | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    row(out, "idle over TCP: RSS per session (KiB)", results, &|x| {
        fmt_opt(rss_tcp(x), 1)
    });
    row(
        out,
        "idle over STARTTLS: RSS per session (KiB)",
        results,
        &|x| fmt_opt(rss_tls(x), 1),
    );
    row(
        out,
        "idle: server RSS with no sessions (MiB)",
        results,
        &|x| {
            fmt_opt(
                x.idle
                    .as_ref()
                    .map(|i| i.server_rss_kib_idle as f64 / 1024.0),
                1,
            )
        },
    );
    row(out, "login: logins/s, 50 in flight", results, &|x| {
        fmt_opt(x.login.as_ref().map(|l| l.logins_per_s), 0)
    });
    row(out, "login: p50 / p99 (ms)", results, &|x| match &x.login {
        Some(l) => format!(
            "{:.1} / {:.1}",
            l.latency.p50_us as f64 / 1000.0,
            l.latency.p99_us as f64 / 1000.0
        ),
        None => "–".into(),
    });
    row(out, "login: server CPU per login (ms)", results, &|x| {
        fmt_opt(login_cpu_ms(x), 2)
    });
    row(out, "chat: max delivered stanzas/s", results, &|x| {
        fmt_opt(x.chat_max.as_ref().map(|c| c.delivered_per_s), 0)
    });
    row(
        out,
        "chat at saturation: server CPU per stanza (µs)",
        results,
        &|x| fmt_opt(x.chat_max.as_ref().and_then(cpu_us), 1),
    );
    row(
        out,
        "chat at 5k msg/s: one-way p50 / p99 / p99.9 (ms), lost",
        results,
        &|x| match rate_result(x, 5000) {
            Some(r) => format!(
                "{:.2} / {:.2} / {:.2}, {}",
                r.latency.p50_us as f64 / 1000.0,
                r.latency.p99_us as f64 / 1000.0,
                r.latency.p999_us as f64 / 1000.0,
                r.lost
            ),
            None => "–".into(),
        },
    );
    for (_, n) in sz.presence {
        row(
            out,
            &format!(
                "presence to {n} contacts: all have it (ms, median of {})",
                sz.presence_rounds
            ),
            results,
            &|x| fmt_opt(presence_ms(x, n), 2),
        );
        row(
            out,
            &format!("presence to {n} contacts: server CPU per round (ms)"),
            results,
            &|x| fmt_opt(presence_cpu_ms(x, n), 2),
        );
    }
    let _ = writeln!(out);
}

/// The full chat curve: CPU per delivered stanza at every offered load and at saturation.
fn chat_curve(out: &mut String, results: &[(Server, Figures)], sz: &Sizes) {
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let _ = writeln!(out, "## Chat: server CPU per delivered stanza (µs)\n");
    let _ = writeln!(
        out,
        "{} pairs; each fixed load for {} s, spread evenly over the senders; saturation: \
         {} s with 64 messages in flight per sender. The server's CPU over the sending \
         window, over the stanzas delivered in it. Messages not delivered {} s after the \
         senders stopped are counted as lost.\n",
        sz.pairs, sz.rate_duration, sz.duration, 10
    );
    let _ = writeln!(out, "| offered load | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for rate in sz.rates {
        row(out, &format!("{rate} msg/s"), results, &|x| {
            cpu_cell(rate_result(x, *rate))
        });
    }
    row(out, "saturation", results, &|x| match &x.chat_max {
        Some(c) => format!("{} ({:.0} stanzas/s)", cpu_cell(Some(c)), c.delivered_per_s),
        None => "–".into(),
    });
    let _ = writeln!(out);
}

/// The "Parley against …" rows for one reference, with issue 16's targets against
/// Prosody and the earlier throughput targets. `bare` is Parley with its archive off, when
/// the run has it: neither reference archives, so the chat targets are judged on it (like
/// for like), and Parley's default (archive on) is shown beside them without a target.
fn versus_rows(
    p: &Figures,
    bare: Option<&Figures>,
    r: &Figures,
    server: Server,
    sz: &Sizes,
) -> Vec<Versus> {
    let prosody = server == Server::Prosody;
    let pick = |b: Bound| if prosody { b } else { Bound::None };
    let mut rows = Vec::new();
    let mut chat_rows = |who: &Figures, suffix: &str, judged: bool| {
        let judge = |b: Bound| if judged { pick(b) } else { Bound::None };
        for rate in sz.rates {
            rows.push(Versus {
                label: format!("chat at {rate} msg/s{suffix}: server CPU per stanza (µs)"),
                parley: rate_result(who, *rate).and_then(cpu_us),
                reference: rate_result(r, *rate).and_then(cpu_us),
                digits: 1,
                bound: if TARGET_RATES.contains(rate) {
                    judge(Bound::OneIn(10))
                } else {
                    Bound::None
                },
            });
        }
        rows.push(Versus {
            label: format!("chat at saturation{suffix}: server CPU per stanza (µs)"),
            parley: who.chat_max.as_ref().and_then(cpu_us),
            reference: r.chat_max.as_ref().and_then(cpu_us),
            digits: 1,
            bound: judge(Bound::OneIn(20)),
        });
    };
    match bare {
        Some(bare) => {
            chat_rows(bare, ", Parley's archive off", true);
            chat_rows(p, ", Parley's archive on", false);
        }
        None => chat_rows(p, "", true),
    }
    rows.push(Versus {
        label: "login: server CPU per login (ms)".into(),
        parley: login_cpu_ms(p),
        reference: login_cpu_ms(r),
        digits: 2,
        bound: pick(Bound::OneIn(15)),
    });
    let biggest = sz.presence[1].1;
    rows.push(Versus {
        label: format!("presence to {biggest} contacts: server CPU per round (ms)"),
        parley: presence_cpu_ms(p, biggest),
        reference: presence_cpu_ms(r, biggest),
        digits: 2,
        bound: pick(Bound::OneIn(10)),
    });
    rows.push(Versus {
        label: format!("presence to {biggest} contacts: time until all have it (ms)"),
        parley: presence_ms(p, biggest),
        reference: presence_ms(r, biggest),
        digits: 2,
        bound: pick(Bound::OneIn(8)),
    });
    rows.push(Versus {
        label: "idle over TCP: RSS per session (KiB)".into(),
        parley: rss_tcp(p),
        reference: rss_tcp(r),
        digits: 1,
        bound: pick(Bound::OneIn(5)),
    });
    rows.push(Versus {
        label: "idle over STARTTLS: RSS per session (KiB)".into(),
        parley: rss_tls(p),
        reference: rss_tls(r),
        digits: 1,
        bound: Bound::None,
    });
    rows.push(Versus {
        label: "login: logins/s, 50 in flight".into(),
        parley: p.login.as_ref().map(|l| l.logins_per_s),
        reference: r.login.as_ref().map(|l| l.logins_per_s),
        digits: 0,
        bound: pick(Bound::AtLeast(4.0)),
    });
    // The earlier throughput target, like for like as the chat targets above.
    let throughput_bound = if prosody {
        Bound::AtLeast(5.0)
    } else {
        Bound::AtLeast(2.0)
    };
    let mut throughput = |who: &Figures, suffix: &str, bound: Bound| {
        rows.push(Versus {
            label: format!("chat: max delivered stanzas/s on one core{suffix}"),
            parley: who.chat_max.as_ref().map(|c| c.delivered_per_s),
            reference: r.chat_max.as_ref().map(|c| c.delivered_per_s),
            digits: 0,
            bound,
        });
    };
    match bare {
        Some(bare) => {
            throughput(bare, ", Parley's archive off", throughput_bound);
            throughput(p, ", Parley's archive on", Bound::None);
        }
        None => throughput(p, "", throughput_bound),
    }
    rows
}

/// Parley's targets that need no reference.
fn absolute(out: &mut String, p: &Figures) {
    let _ = writeln!(out, "## Absolute targets for Parley\n");
    let _ = writeln!(out, "| figure | value | target | met |\n|---|---|---|---|");
    let bound = Bound::AtMost(16.0);
    absolute_row(
        out,
        "RSS per idle session over plain TCP (KiB)",
        &fmt_opt(rss_tcp(p), 1),
        bound,
        bound.met(rss_tcp(p)),
    );
    let bound = Bound::AtMost(12.0);
    absolute_row(
        out,
        "RSS per idle bound, available session over STARTTLS (KiB)",
        &fmt_opt(rss_tls(p), 1),
        bound,
        bound.met(rss_tls(p)),
    );
    let at_5k = rate_result(p, 5000);
    let bound = Bound::AtMost(1.0);
    let value = match at_5k {
        Some(r) => format!("{} ({} lost)", fmt_opt(p99_ms(Some(r)), 2), r.lost),
        None => "–".into(),
    };
    let met = at_5k.and_then(|r| bound.met(p99_ms(Some(r))).map(|ok| ok && r.lost == 0));
    absolute_row(
        out,
        "one-way chat latency p99 at 5k msg/s (ms), nothing lost",
        &value,
        bound,
        met,
    );
    let _ = writeln!(out);
}

pub(super) fn render(opts: &CompareOpts, results: &[(Server, Figures)], took: Duration) -> String {
    let mut out = String::new();
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let sz = sizes(opts.quick, opts.users);
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `parley-bench compare` (crates/bench) in {:.0} s. Do not edit by hand: \
         rerun the command below. Every figure of every server comes from the same run, on the \
         same machine, with the same settings.{}\n",
        took.as_secs_f64(),
        if opts.quick {
            " **Quick mode: smaller sizes, not for the record.**"
        } else {
            ""
        }
    );
    method(&mut out, opts, &sz);
    configuration(&mut out, opts, results);
    figures(&mut out, results, &sz);
    chat_curve(&mut out, results, &sz);
    let parley = results
        .iter()
        .find(|(s, _)| *s == Server::Parley)
        .map(|(_, f)| f);
    let bare = results
        .iter()
        .find(|(s, _)| *s == Server::ParleyNoArchive)
        .map(|(_, f)| f);
    if let Some(p) = parley {
        for (server, reference) in results {
            match server {
                Server::Prosody | Server::Ejabberd => {
                    let _ = writeln!(out, "## Parley against {}\n", server.name());
                    if *server == Server::Prosody {
                        let _ = writeln!(
                            out,
                            "Targets of issue 16 (\"Efficiency at every load\") on Parley ÷ \
                             Prosody; the rows of logins and delivered stanzas per second \
                             are the earlier throughput targets. Both servers freshly \
                             started for each phase. Prosody does not archive, so the chat \
                             targets are judged on Parley with its archive off when the run \
                             has it; Parley's default (archive on) has its counterpart in the \
                             mod_mam table below.\n"
                        );
                    }
                    versus_table(
                        &mut out,
                        server.name(),
                        &versus_rows(p, bare, reference, *server, &sz),
                    );
                }
                _ => {}
            }
        }
        absolute(&mut out, p);
        for (server, other) in results {
            match server {
                Server::ParleyNoArchive => archive_cost(&mut out, p, other),
                Server::ProsodyMam => archives_side_by_side(&mut out, p, other),
                Server::ParleyBaseline => baseline(&mut out, p, other),
                _ => {}
            }
        }
    }
    let _ = writeln!(out, "## Plots\n");
    for (file, alt) in [
        (
            "cpu.svg",
            "server CPU per delivered chat stanza against offered load",
        ),
        ("latency.svg", "one-way latency p99 against offered load"),
        ("rss.svg", "server RSS against idle sessions"),
    ] {
        let _ = writeln!(out, "![{alt}](benchmarks/{file})\n");
    }
    let _ = writeln!(out, "## Latency against offered load (one-way, ms)\n");
    let _ = writeln!(out, "| offered msg/s | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for rate in sz.rates {
        row(
            &mut out,
            &rate.to_string(),
            results,
            &|x| match rate_result(x, *rate) {
                Some(r) => format!(
                    "p50 {:.2}, p99 {:.2}, p99.9 {:.2}, {} lost",
                    r.latency.p50_us as f64 / 1000.0,
                    r.latency.p99_us as f64 / 1000.0,
                    r.latency.p999_us as f64 / 1000.0,
                    r.lost
                ),
                None => "–".into(),
            },
        );
    }
    let _ = writeln!(out);
    out.push_str(&super::web::render(results));
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
    let by_rate = |y: &dyn Fn(&ChatResult) -> Option<f64>| -> Vec<svg::Series> {
        results
            .iter()
            .map(|(s, f)| svg::Series {
                name: s.name().into(),
                points: f
                    .chat_rates
                    .iter()
                    .filter_map(|r| Some((offered_rate(r)?, y(r)?)))
                    .collect(),
            })
            .collect()
    };
    let cpu = svg::Chart {
        title: "Server CPU per delivered chat stanza against offered load".into(),
        x_label: "offered load (messages/s)".into(),
        y_label: "server CPU per stanza (µs, log scale)".into(),
        log_y: true,
        series: by_rate(&cpu_us),
    };
    let latency = svg::Chart {
        title: "One-way chat latency p99 against offered load".into(),
        x_label: "offered load (messages/s)".into(),
        y_label: "p99 latency (ms, log scale)".into(),
        log_y: true,
        series: by_rate(&|r| p99_ms(Some(r))),
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
    vec![("cpu.svg", cpu), ("latency.svg", latency), ("rss.svg", rss)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: Prosody does not archive, so its chat targets (CPU per stanza and the earlier
    /// throughput target) are judged on Parley with the archive off (when the run has it);
    /// the archive-on rows are shown without a target.
    #[test]
    fn chat_targets_against_prosody_are_judged_like_for_like() {
        let sz = sizes(false, 20_000);
        let (p, bare, r) = (Figures::default(), Figures::default(), Figures::default());
        let rows = versus_rows(&p, Some(&bare), &r, Server::Prosody, &sz);
        let judged: Vec<&str> = rows
            .iter()
            .filter(|v| v.label.starts_with("chat at") && v.bound != Bound::None)
            .map(|v| v.label.as_str())
            .collect();
        assert!(!judged.is_empty());
        assert!(
            judged.iter().all(|l| l.contains("archive off")),
            "{judged:?}"
        );
        assert!(rows
            .iter()
            .any(|v| v.label.contains("archive on") && v.bound == Bound::None));
        // The throughput target too: judged on the archive-off run, shown for the default.
        let throughput: Vec<&Versus> = rows
            .iter()
            .filter(|v| v.label.starts_with("chat: max delivered"))
            .collect();
        assert_eq!(throughput.len(), 2);
        assert!(throughput[0].label.contains("archive off"));
        assert_eq!(throughput[0].bound, Bound::AtLeast(5.0));
        assert_eq!(throughput[1].bound, Bound::None);
        // Without an archive-off run, Parley's own figures carry the targets.
        let rows = versus_rows(&p, None, &r, Server::Prosody, &sz);
        assert!(rows.iter().any(
            |v| v.label == "chat at saturation: server CPU per stanza (µs)"
                && v.bound == Bound::OneIn(20)
        ));
    }
}
