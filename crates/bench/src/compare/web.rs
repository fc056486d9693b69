//! `compare`'s web transports: XMPP over WebSocket (RFC 7395) and over BOSH (XEP-0206) on
//! each server's client HTTP listener, through the same `run idle` and `run chat` children
//! as TCP (`--transport ws|bosh`), and the "Web transports" table of the report.
//!
//! Over WebSocket: the server's RSS per idle session (bound and available), and at a
//! fixed [`RATE`] its CPU per delivered chat message and the one-way latency. Over BOSH:
//! the HTTP requests per second the server answers at full load (`chat` with one message
//! in flight per sender, so that every message is a request of its own rather than a
//! batch), and at the same fixed rate its CPU per delivered message and the requests per
//! second that rate costs.

use std::fmt::Write as _;

use super::{run_child, Figures, Server, Sizes};
use crate::{ChatMode, ChatResult, IdleResult};

/// Messages per second, all pairs together, of the fixed-rate web runs.
pub const RATE: u32 = 1000;

/// The web figures of one server.
#[derive(Debug, Default)]
pub struct WebFigures {
    pub ws_idle: Option<IdleResult>,
    pub ws_rate: Option<ChatResult>,
    pub bosh_max: Option<ChatResult>,
    pub bosh_rate: Option<ChatResult>,
    /// Why this server was not measured over the web transports.
    pub skipped: Option<&'static str>,
}

/// The server's client HTTP listener (WebSocket and BOSH), where `compare` configures it:
/// 58 above its c2s port, as the reference Prosody's 25280 beside 25222.
pub fn http_port(server: Server) -> Option<u16> {
    match server {
        // Its config here has no `ejabberd_http_ws` or `mod_bosh` handlers (yet).
        Server::Ejabberd => None,
        s => Some(s.port() + 58),
    }
}

/// Runs the web scenarios against the started `server` (pid `pid`); failures go to
/// `errors`, as for the TCP scenarios.
pub(super) fn run(server: Server, pid: u32, s: &Sizes, errors: &mut Vec<String>) -> WebFigures {
    let mut f = WebFigures::default();
    let Some(port) = http_port(server) else {
        f.skipped = Some("no WebSocket or BOSH handler configured");
        return f;
    };
    let args = |transport: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--target",
            &format!("127.0.0.1:{port}"),
            "--server-pid",
            &pid.to_string(),
            "--transport",
            transport,
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        v.extend(extra.iter().map(|a| (*a).to_owned()));
        v
    };
    let mut record = |what: &str, e: crate::BenchError| {
        eprintln!("   {what} failed: {e}");
        errors.push(format!("{what}: {e}"));
    };
    let pairs = s.pairs.to_string();
    let rate = RATE.to_string();
    let rate_duration = s.rate_duration.to_string();
    let duration = s.duration.to_string();
    let at_rate = [
        "chat",
        "--pairs",
        &pairs,
        "--rate",
        &rate,
        "--duration",
        &rate_duration,
    ];
    match run_child::<IdleResult>(&args("ws", &["idle", "--sessions", s.idle])) {
        Ok(r) => f.ws_idle = Some(r),
        Err(e) => record("websocket idle", e),
    }
    match run_child::<ChatResult>(&args("ws", &at_rate)) {
        Ok(r) => f.ws_rate = Some(r),
        Err(e) => record(&format!("websocket chat rate {RATE}"), e),
    }
    let full = [
        "chat",
        "--pairs",
        &pairs,
        "--window",
        "1",
        "--duration",
        &duration,
    ];
    match run_child::<ChatResult>(&args("bosh", &full)) {
        Ok(r) => f.bosh_max = Some(r),
        Err(e) => record("bosh chat max", e),
    }
    match run_child::<ChatResult>(&args("bosh", &at_rate)) {
        Ok(r) => f.bosh_rate = Some(r),
        Err(e) => record(&format!("bosh chat rate {RATE}"), e),
    }
    f
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn latency(r: Option<&ChatResult>) -> String {
    r.map_or_else(
        || "–".into(),
        |r| {
            format!(
                "{:.2} / {:.2}",
                r.latency.p50_us as f64 / 1000.0,
                r.latency.p99_us as f64 / 1000.0
            )
        },
    )
}

fn cpu_per_100k(r: Option<&ChatResult>) -> Option<f64> {
    r.and_then(|r| r.server_cpu_s_per_100k)
}

/// The TCP run of `chat` at [`RATE`], when the TCP rates include it.
fn tcp_at_rate(f: &Figures) -> Option<&ChatResult> {
    f.chat_rates
        .iter()
        .find(|r| matches!(r.config.mode, ChatMode::Rate { rate } if rate == f64::from(RATE)))
}

/// The "Web transports" section; empty when no server was measured over them.
pub(super) fn render(results: &[(Server, Figures)]) -> String {
    if results.iter().all(|(_, f)| f.web.skipped.is_some()) {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(out, "## Web transports\n");
    let _ = writeln!(
        out,
        "The same scenarios over each server's HTTP listener: WebSocket (RFC 7395, \
         subprotocol `xmpp`, `/xmpp-websocket`) and BOSH (XEP-0206, `/http-bind`, `hold=1`: \
         one request always waits at the server, output goes out on a second kept-alive \
         connection). Idle sessions are bound and available, as over TCP; the fixed-rate \
         runs send {RATE} messages/s in total between the same pairs as the TCP chat; \
         \"full load\" keeps one message in flight per sender, so that each message is a \
         request of its own (a larger window batches them). BOSH \
         requests count every HTTP response, long polls included.\n"
    );
    let names: Vec<&str> = results.iter().map(|(s, _)| s.name()).collect();
    let _ = writeln!(out, "| figure | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    let mut row = |label: &str, g: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = results.iter().map(|(_, f)| g(f)).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    };
    row("WebSocket idle: RSS per session (KiB)", &|f| {
        cell(f.web.ws_idle.as_ref().map(|r| r.rss_per_session_kib), 1)
    });
    row("TCP idle, for reference: RSS per session (KiB)", &|f| {
        cell(f.idle.as_ref().map(|r| r.rss_per_session_kib), 1)
    });
    let at = |what: &str| format!("{what} at {RATE} msg/s");
    row(
        &at("WebSocket chat: server CPU s per 100k delivered"),
        &|f| cell(cpu_per_100k(f.web.ws_rate.as_ref()), 2),
    );
    row(&at("WebSocket chat: latency p50 / p99 (ms)"), &|f| {
        latency(f.web.ws_rate.as_ref())
    });
    row(
        &at("TCP chat, for reference: server CPU s per 100k delivered"),
        &|f| cell(cpu_per_100k(tcp_at_rate(f)), 2),
    );
    row("BOSH chat, full load: HTTP requests answered per s", &|f| {
        cell(
            f.web.bosh_max.as_ref().and_then(|r| r.http_requests_per_s),
            0,
        )
    });
    row("BOSH chat, full load: messages delivered per s", &|f| {
        cell(f.web.bosh_max.as_ref().map(|r| r.delivered_per_s), 0)
    });
    row(&at("BOSH chat: HTTP requests per s"), &|f| {
        cell(
            f.web.bosh_rate.as_ref().and_then(|r| r.http_requests_per_s),
            0,
        )
    });
    row(&at("BOSH chat: server CPU s per 100k delivered"), &|f| {
        cell(cpu_per_100k(f.web.bosh_rate.as_ref()), 2)
    });
    row(&at("BOSH chat: latency p50 / p99 (ms)"), &|f| {
        latency(f.web.bosh_rate.as_ref())
    });
    row("Web chat runs: messages lost", &|f| {
        let runs = [&f.web.ws_rate, &f.web.bosh_max, &f.web.bosh_rate];
        if runs.iter().all(|r| r.is_none()) {
            return "–".into();
        }
        runs.iter()
            .filter_map(|r| r.as_ref().map(|r| r.lost))
            .sum::<u64>()
            .to_string()
    });
    let _ = writeln!(out);
    for (s, f) in results {
        if let Some(why) = f.web.skipped {
            let _ = writeln!(out, "- {}: not measured ({why}).", s.name());
        }
    }
    if results.iter().any(|(_, f)| f.web.skipped.is_some()) {
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_column_per_server_and_names_the_skipped_ones() {
        let parley = Figures::default();
        let ejabberd = Figures {
            web: WebFigures {
                skipped: Some("no handler"),
                ..WebFigures::default()
            },
            ..Figures::default()
        };
        let results = [(Server::Parley, parley), (Server::Ejabberd, ejabberd)];
        let table = render(&results);
        assert!(table.starts_with("## Web transports\n"));
        assert!(table.contains("| figure | Parley | ejabberd |"));
        assert!(table.contains("| WebSocket idle: RSS per session (KiB) | – | – |"));
        assert!(table.contains("- ejabberd: not measured (no handler)."));
        assert_eq!(render(&results[1..]), "", "nothing measured, no section");
        assert_eq!(http_port(Server::Prosody), Some(25280));
        assert_eq!(http_port(Server::Ejabberd), None);
    }
}
