//! Cluster trust (issue 10): real `parley` processes against a real etcd that requires TLS,
//! client certificates and a login, as production runs it; start-up refuses a wrong
//! password, a missing client certificate or a wrong CA with an error naming the key; and
//! `parley check config` refuses a plain-HTTP listener that would count as encrypted.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use parley_testkit::cluster::{ClusterNode, Extra};
use parley_testkit::{parley_binary, shared_pg, Client, EtcdServer, EtcdTlsFiles, ETCD_USER};

/// One secure etcd for this test binary; tests keep apart by key prefix.
fn secure_etcd() -> &'static EtcdServer {
    static ETCD: std::sync::OnceLock<EtcdServer> = std::sync::OnceLock::new();
    ETCD.get_or_init(EtcdServer::start_secure)
}

fn prefix(name: &str) -> String {
    format!("/trust-{name}-{}", std::process::id())
}

/// `[cluster]` TOML naming the given CA, client certificate (or none) and password file.
fn etcd_keys(ca: &str, cert: Option<&EtcdTlsFiles>, password_file: &str) -> String {
    let mut out = format!(
        "etcd_ca = \"{ca}\"\netcd_user = \"{ETCD_USER}\"\netcd_password_file = \"{password_file}\"\n"
    );
    if let Some(f) = cert {
        out += &format!(
            "etcd_cert = \"{}\"\netcd_key = \"{}\"\n",
            f.client_cert.display(),
            f.client_key.display()
        );
    }
    out
}

/// The keys etcd holds under `prefix`, read over TLS with a login (bypassing the node).
fn keys_under(etcd: &EtcdServer, prefix: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (status, body) = etcd
        .http(
            "POST",
            "/v3/kv/range",
            &format!(
                r#"{{"key":"{}","range_end":"{}","keys_only":true}}"#,
                b64(&format!("{prefix}/")),
                b64(&format!("{prefix}0"))
            ),
        )
        .expect("etcd gateway over TLS");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv["key"].as_str())
                .filter_map(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registers_and_serves_over_etcd_tls_with_client_certificate_and_login() {
    let etcd = secure_etcd();
    assert!(etcd.endpoint.starts_with("https://"), "{}", etcd.endpoint);
    let files = etcd.tls_files();
    let db = shared_pg().database();
    parley_testkit::cluster::add_users(&db, &["alice"]);
    let prefix = prefix("serve");
    let extra = Extra {
        cluster: etcd_keys(
            &files.ca.display().to_string(),
            Some(files),
            &files.password_file.display().to_string(),
        ),
        ..Extra::default()
    };
    let node = tokio::task::block_in_place(|| {
        ClusterNode::start_with("s1", &etcd.endpoint, &prefix, &db, 10, &extra)
    });
    let log = node.log();
    assert!(
        !log.contains(parley_testkit::ETCD_PASSWORD),
        "the etcd password is never logged:\n{log}"
    );
    let mut alice = Client::login(node.c2s, "alice", Some("phone")).await;
    alice.sync().await.expect("iq round trip");
    let want = format!("{prefix}/sessions/alice@localhost/phone");
    parley_testkit::poll_until(
        "alice's session key in etcd",
        Duration::from_secs(10),
        || {
            let keys = keys_under(etcd, &prefix);
            (keys.contains(&want) && keys.contains(&format!("{prefix}/nodes/s1"))).then_some(())
        },
    );
}

/// Starts a node that must fail and returns its log.
fn failed_start(name: &str, cluster: String) -> String {
    let etcd = secure_etcd();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/parley.db", dir.path().display());
    let extra = Extra {
        cluster,
        ..Extra::default()
    };
    let (status, log) =
        ClusterNode::start_failing(name, &etcd.endpoint, &prefix(name), &db, &extra);
    assert!(!status.success(), "{log}");
    log
}

#[test]
fn a_wrong_etcd_password_fails_at_start_naming_the_key() {
    let files = secure_etcd().tls_files();
    let log = failed_start(
        "wrongpw",
        etcd_keys(
            &files.ca.display().to_string(),
            Some(files),
            &files.wrong_password_file.display().to_string(),
        ),
    );
    assert!(
        log.contains("cluster.etcd_password") && log.contains("etcd refused the login"),
        "{log}"
    );
    assert!(!log.contains("not-the-password"), "never logged:\n{log}");
}

#[test]
fn no_client_certificate_fails_at_start_naming_the_key() {
    let files = secure_etcd().tls_files();
    let log = failed_start(
        "nocert",
        etcd_keys(
            &files.ca.display().to_string(),
            None,
            &files.password_file.display().to_string(),
        ),
    );
    assert!(
        log.contains("cluster.etcd_cert") && log.contains("refused this node's client certificate"),
        "{log}"
    );
}

#[test]
fn a_wrong_ca_fails_at_start_naming_the_key() {
    let files = secure_etcd().tls_files();
    let log = failed_start(
        "wrongca",
        etcd_keys(
            &files.other_ca.display().to_string(),
            Some(files),
            &files.password_file.display().to_string(),
        ),
    );
    assert!(
        log.contains("cluster.etcd_ca") && log.contains("not trusted"),
        "{log}"
    );
}

/// `parley check config` refuses `consider_secure = "always"` on a public plain-HTTP
/// listener, naming the key, and warns (but passes) for plain c2s on a public address.
#[test]
fn check_config_names_the_insecure_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |toml: &str| {
        let path = dir.path().join("parley.toml");
        std::fs::write(&path, toml).unwrap();
        Command::new(parley_binary())
            .arg("--config")
            .arg(&path)
            .args(["check", "config"])
            .output()
            .expect("run parley check config")
    };
    let out = run("[http]\nlisten = \"0.0.0.0:5280\"\nconsider_secure = \"always\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("http.consider_secure = \"always\""),
        "{stderr}"
    );
    let out = run("[c2s]\nlisten = [\"0.0.0.0:5222\"]\nrequire_encryption = false\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("c2s.require_encryption = false"),
        "{stderr}"
    );
}
