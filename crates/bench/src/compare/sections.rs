//! Sections of the compare report beside its figures: the method, exactly how each server
//! is configured (summary and config file), and the side tables of the Parley variants
//! (archive off, baseline build) and of Prosody with mod_mam.

use super::report::{cpu_us, machine, offered_rate, p99_ms, rate_result};
use super::targets::fmt_opt;
use super::*;

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

/// "Machine and method", with the command.
pub(super) fn method(out: &mut String, opts: &CompareOpts, sz: &Sizes) {
    let _ = writeln!(out, "## Machine and method\n");
    let _ = writeln!(out, "- Machine: {}.", machine());
    let _ = writeln!(
        out,
        "- Servers: Parley {} (release build), Prosody {}, ejabberd {}.",
        env!("CARGO_PKG_VERSION"),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "prosody"]),
        version_of("dpkg-query", &["-W", "-f", "${Version}", "ejabberd"]),
    );
    let phases: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
    let _ = writeln!(
        out,
        "- Pinning: each server runs on CPU 0 (`taskset -c 0`), the load generator on CPU 1 \
         (`taskset -c 1`), so \"per core\" figures are the whole figures.\n\
         - A fresh process for every phase: each server is stopped and started again on the \
         same data before each of {}. Chat runs saturation first, then each fixed load, then \
         presence, on one process. A runtime's state after one phase would otherwise tilt the \
         next: Prosody's CPU per chat stanza is four to six times higher after the idle and \
         login phases, whose heap its Lua collector keeps walking \
         ([benchmarks/prosody-reference.md](benchmarks/prosody-reference.md)).\n\
         - Same settings for all: plain TCP with STARTTLS offered but not required, each server \
         with a self-signed ECDSA P-256 certificate for `localhost` (Parley its own, Prosody and \
         ejabberd one made with `openssl req` in their scratch directories); SCRAM-SHA-1 with \
         4096 iterations stored per account (password `pw`); no shapers or rate limits in the \
         way; local storage (SQLite, Prosody's files, Mnesia); open-file limit 20000. The \
         generator caches SCRAM SaltedPasswords, as real clients do, so logins measure the \
         server. A login is TCP connect, SASL SCRAM-SHA-1, bind, roster get, initial presence \
         (answered), stream close; 50 in flight.\n\
         - Server CPU is utime + stime from `/proc/PID/stat` (10 ms ticks) over each measured \
         interval; per login, per presence round ({} rounds) and per chat stanza it is that \
         total over the count. RSS per idle session is the slope of the server's RSS between \
         {} bound, available sessions.\n\
         - {} accounts (user1…user{}) provisioned on each server; presence rosters are mutual \
         `both` subscriptions written to each server's storage.\n",
        phases.join(", "),
        sz.presence_rounds,
        sz.idle.replace(',', " and "),
        opts.users,
        opts.users
    );
    let _ = writeln!(
        out,
        "Command (from the repository root, release build first):\n"
    );
    let _ = writeln!(out, "    cargo build --release -p parley -p parley-bench");
    let _ = writeln!(out, "    ulimit -n 20000");
    let _ = writeln!(out, "    {}\n", opts.command_line);
}

/// What differs in each server's setup, in words; the config file follows it.
fn summary(server: Server) -> String {
    match server {
        Server::Parley | Server::ParleyBaseline => format!(
            "{}: the config below: c2s on 127.0.0.1:{} with STARTTLS offered (the certificate \
             Parley generates for itself) and not required, SCRAM with 4096 iterations, \
             connection and read limits raised above anything the generator does, `warn` \
             log, SQLite storage, the message archive on (its default).",
            server.name(),
            server.port()
        ),
        Server::ParleyNoArchive => format!(
            "{}: Parley's config with `[mam] enabled = false`.",
            server.name()
        ),
        Server::Prosody => format!(
            "{}: Debian's default configuration as its operators run it \
             (`/etc/prosody/prosody.cfg.lua` of the package): its 26 modules ({}; {}), \
             mod_limits loaded, `info` to a log file, `error` to an error file and to syslog, \
             `internal` storage, `internal_hashed` authentication, Prosody's default garbage \
             collector (incremental, threshold 105, speed 500). Changed for the benchmark, \
             each marked `bench:` in the file: loopback ports (c2s {}, s2s {}, HTTP {}), paths \
             in its scratch directory, plain TCP allowed \
             (`c2s_require_encryption = false`, `allow_unencrypted_plain_auth = true`), the c2s \
             rate limit raised from 10kb/s to 100mb/s (10kb/s would measure the shaper), a \
             self-signed certificate, and `bosh` and `websocket` added for the web transports; \
             Debian's `Include \"conf.d/*.cfg.lua\"` left out (it only declares `VirtualHost \
             \"localhost\"` again). Started as `ulimit -n 20000; exec taskset -c 0 setpriv \
             --reuid=prosody --regid=prosody --init-groups prosody -F --config …/prosody.cfg.lua` \
             (`-F` as in Debian's `prosody.service`; not through `run-prosody.sh`, whose `runuser` goes through PAM and resets the \
             open-file limit to 1024).",
            server.name(),
            prosody::DEBIAN_MODULES.join(", "),
            prosody::debian_modules_check(),
            server.port(),
            server.port() + 47,
            server.port() + 58,
        ),
        Server::ProsodyMam => format!(
            "{}: the same Debian-based configuration (c2s {}), plus `mam` with its defaults \
             (`internal` storage, every message archived, Debian's `archive_expires_after = \
             \"1w\"`).",
            server.name(),
            server.port()
        ),
        Server::Ejabberd => format!(
            "{}: Debian's package with the config below: c2s on 127.0.0.1:{} with STARTTLS \
             offered (a self-signed certificate made with `openssl req`) and not required, no \
             shaper, SCRAM password storage, Mnesia, `warning` log, the modules a chat server \
             needs (roster, disco, ping, carbons, offline) and `mod_http_api` for \
             provisioning; started by `ejabberdctl` as user ejabberd under `taskset -c 0`.",
            server.name(),
            server.port()
        ),
    }
}

/// "How each server is configured": a summary per server, then its config file as the
/// run wrote it.
pub(super) fn configuration(out: &mut String, opts: &CompareOpts, results: &[(Server, Figures)]) {
    let _ = writeln!(out, "## How each server is configured\n");
    for (server, _) in results {
        let _ = writeln!(out, "- {}", summary(*server));
    }
    let _ = writeln!(out);
    for (server, _) in results {
        if matches!(server, Server::ParleyNoArchive | Server::ProsodyMam)
            && results
                .iter()
                .any(|(s, _)| matches!(s, Server::Parley | Server::Prosody))
        {
            // The summary says what differs from the base shown anyway.
            continue;
        }
        let (file, text) = servers::config_file(*server, opts);
        let _ = writeln!(
            out,
            "<details><summary>{}: {file}</summary>\n\n```\n{}\n```\n\n</details>\n",
            server.name(),
            text.trim_end()
        );
    }
}

/// The message archive's cost (XEP-0313): Parley as configured by default (every chat
/// message archived for both parties before it is routed) against the same binary with
/// `[mam] enabled = false`, at every offered load.
pub(super) fn archive_cost(out: &mut String, p: &Figures, off: &Figures) {
    let _ = writeln!(out, "## The message archive's cost\n");
    let _ = writeln!(
        out,
        "Same binary, same run: archive on (the default) against `[mam] enabled = false`. \
         Every chat message of the generator has a body, so each is archived twice (sender and recipient).\n"
    );
    let _ = writeln!(
        out,
        "| chat load | server CPU per stanza (µs): archive on / off | added | one-way p99 (ms): on / off |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let added = |on: Option<f64>, off: Option<f64>| match (on, off) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:+.0} %", (a / b - 1.0) * 100.0),
        _ => "–".to_owned(),
    };
    let mut line = |label: String, a: Option<&ChatResult>, b: Option<&ChatResult>| {
        let (ca, cb) = (a.and_then(cpu_us), b.and_then(cpu_us));
        let _ = writeln!(
            out,
            "| {label} | {} / {} | {} | {} / {} |",
            fmt_opt(ca, 1),
            fmt_opt(cb, 1),
            added(ca, cb),
            fmt_opt(p99_ms(a), 2),
            fmt_opt(p99_ms(b), 2),
        );
    };
    line("max".into(), p.chat_max.as_ref(), off.chat_max.as_ref());
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        line(
            format!("{rate:.0} msg/s"),
            Some(r),
            rate_result(off, rate as u32),
        );
    }
    let at_1k = rate_result(p, 1000).and_then(cpu_us);
    let off_1k = rate_result(off, 1000).and_then(cpu_us);
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
/// `mod_mam` added to the same Debian-based config, chat at every load.
pub(super) fn archives_side_by_side(out: &mut String, p: &Figures, mam: &Figures) {
    let _ = writeln!(out, "## Parley against Prosody with mod_mam\n");
    let _ = writeln!(
        out,
        "Both archive every chat message for sender and recipient (Parley by default; Prosody's \
         Debian-based config with `mam` added, its default `internal` storage).\n"
    );
    let _ = writeln!(
        out,
        "| chat load | server CPU per stanza (µs): Parley / Prosody+mam | one-way p99 (ms): Parley / Prosody+mam | lost: Parley / Prosody+mam |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let mut line = |label: String, a: Option<&ChatResult>, b: Option<&ChatResult>| {
        let lost = |r: Option<&ChatResult>| r.map_or("–".into(), |r| r.lost.to_string());
        let _ = writeln!(
            out,
            "| {label} | {} / {} | {} / {} | {} / {} |",
            fmt_opt(a.and_then(cpu_us), 1),
            fmt_opt(b.and_then(cpu_us), 1),
            fmt_opt(p99_ms(a), 2),
            fmt_opt(p99_ms(b), 2),
            lost(a),
            lost(b),
        );
    };
    line(
        format!(
            "max ({} / {} stanzas/s)",
            fmt_opt(p.chat_max.as_ref().map(|c| c.delivered_per_s), 0),
            fmt_opt(mam.chat_max.as_ref().map(|c| c.delivered_per_s), 0),
        ),
        p.chat_max.as_ref(),
        mam.chat_max.as_ref(),
    );
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        line(
            format!("{rate:.0} msg/s"),
            Some(r),
            rate_result(mam, rate as u32),
        );
    }
    let _ = writeln!(out);
}

/// Parley against its own baseline build: the cost per stanza and the latency at every
/// offered load, side by side, so that a change shows whether the chat path got dearer.
pub(super) fn baseline(out: &mut String, p: &Figures, b: &Figures) {
    let _ = writeln!(out, "## Parley against its baseline build\n");
    let _ = writeln!(
        out,
        "| chat load | server CPU per stanza (µs): now / baseline | one-way p99 (ms): now / baseline |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let mut line = |label: String, a: Option<&ChatResult>, o: Option<&ChatResult>| {
        let _ = writeln!(
            out,
            "| {label} | {} / {} | {} / {} |",
            fmt_opt(a.and_then(cpu_us), 1),
            fmt_opt(o.and_then(cpu_us), 1),
            fmt_opt(p99_ms(a), 2),
            fmt_opt(p99_ms(o), 2),
        );
    };
    line("max".into(), p.chat_max.as_ref(), b.chat_max.as_ref());
    for r in &p.chat_rates {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        line(
            format!("{rate:.0} msg/s"),
            Some(r),
            rate_result(b, rate as u32),
        );
    }
    let _ = writeln!(out);
}
