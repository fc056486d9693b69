//! What a monitoring stack reads (issue 17): a real `parley serve` process's `/metrics` after
//! real logins passes Prometheus's own lint (`promtool check metrics`) and every family in it
//! is documented in docs/metrics.md; the shipped alert rules (`cluster/prometheus/`) pass
//! `promtool check rules` and their unit tests (`promtool test rules`); the alert rules and
//! the Grafana dashboard (`cluster/grafana/parley.json`) only name metrics that exist.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use parley_proto::sasl::Mechanism;
use parley_testkit::process::{deploy_with, unpacked_deb};
use parley_testkit::Client;

fn promtool() -> PathBuf {
    unpacked_deb("prometheus").join("usr/bin/promtool")
}

fn root() -> PathBuf {
    parley_testkit::workspace_root()
}

/// Runs promtool with `args` in `dir`, `stdin` fed to it; panics with its output on failure.
fn run_promtool(args: &[&str], dir: &std::path::Path, stdin: &str) -> String {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Metric names a PromQL expression mentions (ours and the process's).
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &expr[i..];
        let starts = rest.starts_with("parley_") || rest.starts_with("process_");
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && boundary {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            out.insert(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_alerts_and_dashboard_agree_with_a_real_scrape() {
    let binary = parley_testkit::parley_binary();
    let deployment = deploy_with(&binary, &[("alice@localhost", "right pw")], "");
    let c2s = SocketAddr::from(([127, 0, 0, 1], deployment.c2s_port));
    // A success and a failure, so that the labelled families have samples.
    let mut ok = Client::connect(c2s).await;
    ok.open().await.unwrap();
    ok.starttls().await.unwrap();
    ok.open().await.unwrap();
    ok.auth(Mechanism::ScramSha256, "alice", "right pw")
        .await
        .expect("login");
    let mut bad = Client::connect(c2s).await;
    bad.open().await.unwrap();
    bad.starttls().await.unwrap();
    bad.open().await.unwrap();
    assert!(bad.auth(Mechanism::Plain, "alice", "wrong").await.is_err());

    let admin = SocketAddr::from(([127, 0, 0, 1], deployment.admin_port));
    let (status, scrape) =
        parley_testkit::http_request(admin, "GET", "/metrics", None).expect("scrape");
    assert_eq!(status, 200);
    for sample in [
        "parley_auth_total{node=",
        "mechanism=\"SCRAM-SHA-256\",result=\"success\"} 1",
        "mechanism=\"PLAIN\",result=\"failure\"} 1",
        "parley_connections_total{node=",
        // The two logins and the probe that waited for the listener.
        "listener=\"c2s\",result=\"accepted\"} 3",
        "parley_build_info{node=",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(scrape.contains(sample), "{sample} in:\n{scrape}");
    }
    run_promtool(&["check", "metrics"], &root(), &scrape);

    // Every family is documented.
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let mut scraped = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = rest.split_whitespace().next().unwrap().to_owned();
            assert!(
                docs.contains(&format!("`{family}`")),
                "{family} is not in docs/metrics.md"
            );
            scraped.insert(family);
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            scraped.insert(name.to_owned());
        }
    }

    // The alert rules: valid, their unit tests pass.
    let prom = root().join("cluster/prometheus");
    run_promtool(&["check", "rules", "alerts.yml"], &prom, "");
    run_promtool(&["test", "rules", "alerts_test.yml"], &prom, "");

    // Alert rules and dashboard name only metrics that exist: scraped here, or documented
    // (the cluster's, BOSH's and chat rooms' families only appear where those run).
    let known = |name: &str| {
        let family = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .unwrap_or(name);
        scraped.contains(name) || docs.contains(&format!("`{family}`"))
    };
    let alerts = std::fs::read_to_string(prom.join("alerts.yml")).unwrap();
    let exprs: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("cluster/grafana/parley.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut dashboard_exprs = Vec::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            dashboard_exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    for expr in exprs.iter().map(|e| e.to_string()).chain(dashboard_exprs) {
        let names = names_in(&expr);
        assert!(!names.is_empty() || expr.contains("up{"), "{expr}");
        for name in names {
            assert!(
                known(&name),
                "{name} (in {expr}) is neither scraped nor documented"
            );
        }
    }
}
