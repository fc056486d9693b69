//! Unit tests of loading and validating the configuration: every rule names its key.

use std::net::SocketAddr;

use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(s, "test.toml")
}

fn err(s: &str) -> String {
    parse(s).expect_err("config should be rejected").to_string()
}

#[test]
fn empty_file_is_the_default() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.server.hosts, ["localhost"]);
    assert_eq!(config.c2s.max_stanza_bytes, 262_144);
    assert_eq!(config.c2s.resource_conflict, ResourceConflict::KickOld);
    assert_eq!(config.sasl.scram_iterations, 10_000);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.storage_url(), "sqlite://./data/parley.db");
}

#[test]
fn default_is_valid() {
    Config::default().validate().unwrap();
    assert_eq!(Config::load(None).unwrap(), Config::default());
}

/// Keeps the documented example honest: every key there is at its default.
#[test]
fn documented_example_equals_default() {
    let doc = include_str!("../../../../config/parley.toml");
    let config = Config::from_toml_str(doc, "config/parley.toml").unwrap();
    assert_eq!(config, Config::default());
}

/// Every key of every section must appear (uncommented or commented out) in the example.
#[test]
fn documented_example_mentions_every_key() {
    let doc = include_str!("../../../../config/parley.toml");
    for key in [
        "[server]",
        "hosts =",
        "data_dir =",
        "workers =",
        "[c2s]",
        "listen =",
        "direct_tls =",
        "require_encryption =",
        "max_stanza_bytes =",
        "max_depth =",
        "max_attributes =",
        "max_namespace_declarations =",
        "resource_conflict =",
        "auth_timeout_s =",
        "max_auth_attempts =",
        "send_queue_stanzas =",
        "send_queue_bytes =",
        "max_session_lifetime_s =",
        "idle_timeout_s =",
        "[tls]",
        "cert =",
        "key =",
        "[sasl]",
        "scram_iterations =",
        "[storage]",
        "url =",
        "[log]",
        "level =",
        "format =",
        "[auth]",
        "jwt_secret =",
        "jwt_leeway_s =",
        "delegate_url =",
        "delegate_timeout_ms =",
        "jwt_audience =",
        "jwt_issuer =",
        "jwt_max_lifetime_s =",
        "failure_window_s =",
        "failure_ip_delay_after =",
        "failure_ip_refuse_after =",
        "failure_account_delay_after =",
        "failure_account_refuse_after =",
        "failure_delay_ms =",
        "failure_max_delay_ms =",
        "failure_table_size =",
        "[http]",
        "origins =",
        "consider_secure =",
        "public_url =",
        "[cluster]",
        "etcd =",
        "node_id =",
        "peer_listen =",
        "peer_advertise =",
        "lease_ttl_s =",
        "prefix =",
        "tls_cert =",
        "tls_key =",
        "tls_ca =",
        "trusted_proxies =",
        "etcd_ca =",
        "etcd_cert =",
        "etcd_key =",
        "etcd_user =",
        "etcd_password =",
        "etcd_password_file =",
        "etcd_max_message_bytes =",
        "secret =",
        "secret_file =",
        "registry_wait_ms =",
        "registry_wait_frames =",
        "registry_wait_bytes =",
        "drain_timeout_s =",
        "[component]",
        "secrets =",
        "secret_files =",
        "[s2s]",
        "direct_tls =",
        "routes =",
        "name_servers =",
        "require_valid_certificates =",
        "require_valid_certificates_for =",
        "ca_file =",
        "queue_stanzas =",
        "queue_bytes =",
        "connect_timeout_s =",
        "max_pending_verifications =",
    ] {
        assert!(
            doc.contains(key),
            "config/parley.toml does not document {key}"
        );
    }
}

#[test]
fn limits_keys_are_documented_and_checked() {
    let doc = include_str!("../../../../config/parley.toml");
    for key in [
        "max_sasl_attempts =",
        "max_stream_opens =",
        "stream_management =",
        "resume_timeout_s =",
        "max_resume_timeout_s =",
        "sm_max_queue =",
        "sm_max_queue_bytes =",
        "csi_max_held =",
        "private_namespaces =",
        "[external_services]",
        "turn_secret =",
        "credential_ttl_s =",
        "csi_max_held_bytes =",
        "sm_ack_every =",
        "sm_ack_delay_ms =",
        "resume_location =",
        "sm_remember_ended =",
        "ping_interval_s =",
        "ping_timeout_s =",
        "[limits]",
        "max_connections_per_ip =",
        "connection_rate_per_ip =",
        "connection_burst_per_ip =",
        "max_sessions =",
        "read_bytes_per_s =",
        "read_burst_bytes =",
        "[pep]",
        "max_nodes =",
        "[mam]",
        "retention_days =",
        "max_items =",
        "max_bytes =",
        "default_page =",
        "max_page =",
        "max_prefs_jids =",
        "queue_items =",
        "batch =",
    ] {
        assert!(
            doc.contains(key),
            "config/parley.toml does not document {key}"
        );
    }
    let cases = [
        ("[c2s]\nmax_sasl_attempts = 0", "c2s.max_sasl_attempts = 0"),
        ("[c2s]\nmax_stream_opens = 2", "c2s.max_stream_opens = 2"),
        ("[c2s]\nsm_max_queue = 0", "c2s.sm_max_queue = 0"),
        ("[c2s]\ncsi_max_held = 0", "c2s.csi_max_held = 0"),
        ("[mam]\nmax_items = 0", "mam.max_items = 0"),
        ("[pep]\nmax_nodes = 0", "pep.max_nodes = 0"),
        ("[pep]\nmax_items = 0", "pep.max_items = 0"),
        ("[mam]\nbatch = 0", "mam.batch = 0"),
        ("[mam]\ndefault_page = 300", "mam.default_page = 300"),
        (
            "[mam]\ndefault = \"sometimes\"",
            "mam.default = \"sometimes\"",
        ),
        ("[c2s]\nresume_timeout_s = 0", "c2s.resume_timeout_s = 0"),
        (
            "[c2s]\nping_interval_s = 10\nping_timeout_s = 0",
            "c2s.ping_timeout_s = 0",
        ),
        (
            "[limits]\nmax_connections_per_ip = 0",
            "limits.max_connections_per_ip = 0",
        ),
        (
            "[limits]\nconnection_rate_per_ip = 0",
            "limits.connection_rate_per_ip = 0",
        ),
        (
            "[limits]\nconnection_burst_per_ip = 0",
            "limits.connection_burst_per_ip = 0",
        ),
        ("[limits]\nmax_sessions = 0", "limits.max_sessions = 0"),
        (
            "[limits]\nread_bytes_per_s = 100",
            "limits.read_bytes_per_s = 100",
        ),
        (
            "[limits]\nread_burst_bytes = 20000",
            "limits.read_burst_bytes = 20000: must be at least c2s.max_stanza_bytes (262144)",
        ),
    ];
    for (toml, expected) in cases {
        let e = err(toml);
        assert!(
            e.starts_with(&format!("test.toml: {expected}")),
            "{toml:?} gave {e}"
        );
    }
}

#[test]
fn full_file_parses() {
    let config = parse(
        r#"
[server]
hosts = ["Example.ORG", "chat.example.org."]
data_dir = "/var/lib/parley"
workers = 4
[c2s]
listen = ["0.0.0.0:5222", "[::]:5222"]
direct_tls = []
require_encryption = false
max_stanza_bytes = 10000
max_depth = 8
max_attributes = 8
resource_conflict = "kick_new"
auth_timeout_s = 5
max_auth_attempts = 1
send_queue_stanzas = 1
send_queue_bytes = 10000
[sasl]
scram_iterations = 4096
[storage]
url = "sqlite:///tmp/x.db"
[log]
level = "parley=debug,warn"
format = "json"
"#,
    )
    .unwrap();
    assert_eq!(config.server.hosts, ["example.org", "chat.example.org"]);
    assert_eq!(config.server.workers, 4);
    assert_eq!(config.c2s.listen.len(), 2);
    assert!(config.c2s.direct_tls.is_empty());
    assert_eq!(config.c2s.resource_conflict, ResourceConflict::KickNew);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.storage_url(), "sqlite:///tmp/x.db");
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let e = err(
        "[server]\nhosts = [\"localhost\"]\n\n[c2s]\nlisten = []\nlistn = [\"127.0.0.1:5222\"]\n",
    );
    assert!(
        e.starts_with("test.toml: unknown key `c2s.listn` (line 6)"),
        "{e}"
    );
    assert!(e.contains("`listen`"), "hint lists the known keys: {e}");
}

#[test]
fn unknown_key_as_dotted_key_and_unknown_section() {
    let e = err("c2s.listn = 1\n");
    assert!(e.contains("unknown key `c2s.listn` (line 1)"), "{e}");
    let e = err("\n[c2ss]\nlisten = []\n");
    assert!(e.contains("unknown key `c2ss` (line 2)"), "{e}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = err("[c2s]\nmax_depth = \"deep\"\n");
    assert!(e.starts_with("test.toml: c2s.max_depth (line 2): "), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_socket_address_names_the_array_element() {
    let e = err("[c2s]\nlisten = [\n  \"127.0.0.1:5222\",\n  \"nowhere\",\n]\n");
    assert!(e.starts_with("test.toml: c2s.listen[1] (line 4): "), "{e}");
}

#[test]
fn bad_enum_value_names_key() {
    let e = err("[c2s]\nresource_conflict = \"kick_everyone\"\n");
    assert!(e.contains("c2s.resource_conflict (line 2)"), "{e}");
    assert!(e.contains("kick_old"), "lists the allowed values: {e}");
}

#[test]
fn syntax_error_names_line() {
    let e = err("[server]\nhosts = [\"a\"\nworkers = 1\n");
    assert!(e.starts_with("test.toml: TOML syntax error (line "), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn missing_file_names_the_file() {
    let e = Config::load(Some(Path::new("/nonexistent/parley.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/parley.toml: cannot read"),
        "{e}"
    );
}

/// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
#[test]
fn rfc6120_13_12_max_stanza_bytes_minimum() {
    let e = err("[c2s]\nmax_stanza_bytes = 100\n");
    assert_eq!(
        e,
        "test.toml: c2s.max_stanza_bytes = 100: must be at least 10000 (RFC 6120 §13.12)"
    );
}

/// RFC 7677 §4: at least 4096 iterations.
#[test]
fn rfc7677_4_scram_iterations_minimum() {
    let e = err("[sasl]\nscram_iterations = 4095\n");
    assert!(
        e.starts_with("test.toml: sasl.scram_iterations = 4095: must be at least 4096"),
        "{e}"
    );
}

/// RFC 6120 §6.3.3: the mechanisms offered are the configured ones; a name Parley does not
/// have, or none at all, is refused naming the key.
#[test]
fn rfc6120_6_3_3_sasl_mechanisms_are_checked() {
    let c = parse("[sasl]\nmechanisms = [\"SCRAM-SHA-1\", \"PLAIN\"]\n").unwrap();
    assert_eq!(
        c.sasl.mechanisms(),
        [
            parley_proto::sasl::Mechanism::ScramSha1,
            parley_proto::sasl::Mechanism::Plain
        ]
    );
    assert_eq!(
        Config::default().sasl.mechanisms(),
        parley_proto::sasl::Mechanism::ALL
    );
    let e = err("[sasl]\nmechanisms = [\"SCRAM-SHA-1\", \"DIGEST-MD5\"]\n");
    assert!(
        e.starts_with("test.toml: sasl.mechanisms = \"DIGEST-MD5\": is not a SASL mechanism"),
        "{e}"
    );
    let e = err("[sasl]\nmechanisms = []\n");
    assert!(
        e.contains("sasl.mechanisms") && e.contains("at least one"),
        "{e}"
    );
}

#[test]
fn node_links_must_be_authenticated_and_bounded() {
    // Issue 10: a node refuses to start with open node links, naming the keys.
    let e = err("[cluster]\nnode_id = \"n1\"\n");
    for key in [
        "cluster.secret",
        "cluster.secret_file",
        "cluster.tls_cert",
        "cluster.tls_key",
        "cluster.tls_ca",
    ] {
        assert!(e.contains(key), "{key} in {e}");
    }
    let e = err("[cluster]\nsecret = \"short\"\n");
    assert!(e.contains("cluster.secret") && e.contains("32"), "{e}");
    let e = err("[cluster]\nsecret_file = \"/nonexistent\"\n");
    assert!(e.contains("cluster.secret_file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "  too short \n").unwrap();
    let e = err(&format!(
        "[cluster]\nsecret_file = \"{}\"\n",
        file.display()
    ));
    assert!(e.contains("cluster.secret_file") && e.contains("32"), "{e}");
    std::fs::write(&file, format!("{}\n", "k".repeat(32))).unwrap();
    parse(&format!(
        "[cluster]\nsecret_file = \"{}\"\n",
        file.display()
    ))
    .unwrap();
    const S: &str = "secret = \"0123456789abcdef0123456789abcdef\"\n";
    let c = parse(&format!("[cluster]\n{S}")).unwrap().cluster.unwrap();
    assert_eq!(c.handshake_timeout_ms, 5_000);
    assert_eq!(c.max_links_per_address, 8);
    assert_eq!(c.max_frame_bytes, 4 << 20);
    assert_eq!(c.send_queue_bytes, 64 << 20);
    assert_eq!(c.registry_wait_ms, 2_000);
    assert_eq!(c.registry_wait_frames, 10_000);
    assert_eq!(c.registry_wait_bytes, 16 << 20);
    assert_eq!(c.etcd_max_message_bytes, 256 << 20);
    for (kv, key) in [
        ("handshake_timeout_ms = 0", "cluster.handshake_timeout_ms"),
        ("max_links_per_address = 0", "cluster.max_links_per_address"),
        ("max_frame_bytes = 100", "cluster.max_frame_bytes"),
        ("send_queue_bytes = 70000", "cluster.send_queue_bytes"),
        ("registry_wait_ms = 0", "cluster.registry_wait_ms"),
        ("registry_wait_frames = 0", "cluster.registry_wait_frames"),
        ("registry_wait_bytes = 1000", "cluster.registry_wait_bytes"),
        (
            "etcd_max_message_bytes = 1000",
            "cluster.etcd_max_message_bytes",
        ),
        (
            "etcd_max_message_bytes = 4294967296",
            "cluster.etcd_max_message_bytes",
        ),
    ] {
        let e = err(&format!("[cluster]\n{S}{kv}\n"));
        assert!(e.contains(key), "{key} in {e}");
    }
    let e = err(&format!(
        "[c2s]\nmax_stanza_bytes = 1000000\n[cluster]\n{S}max_frame_bytes = 1000000\n"
    ));
    assert!(e.contains("cluster.max_frame_bytes"), "{e}");
}

#[test]
fn cluster_section_is_off_when_absent_and_checked_when_present() {
    assert_eq!(parse("").unwrap().cluster, None);
    const S: &str = "secret = \"0123456789abcdef0123456789abcdef\"\n";
    let c = parse(&format!("[cluster]\nnode_id = \"n1\"\n{S}")).unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.etcd, vec!["http://127.0.0.1:2379".to_owned()]);
    assert_eq!(cluster.lease_ttl_s, 10);
    assert_eq!(cluster.node_id(), "n1");
    assert_eq!(cluster.peer_advertise(), "127.0.0.1:7400");
    let e = err("[cluster]\netcd = []\n");
    assert!(e.contains("cluster.etcd"), "{e}");
    let e = err("[cluster]\netcd = [\"127.0.0.1:2379\"]\n");
    assert!(e.contains("cluster.etcd[0]"), "{e}");
    let e = err("[cluster]\nnode_id = \"a b\"\n");
    assert!(e.contains("cluster.node_id"), "{e}");
    let e = err("[cluster]\nlease_ttl_s = 1\n");
    assert!(e.contains("cluster.lease_ttl_s"), "{e}");
    let e = err("[cluster]\npeer_listen = \"0.0.0.0:7400\"\n");
    assert!(e.contains("cluster.peer_advertise"), "{e}");
    let e = err("[cluster]\npeer_advertise = \"nohost\"\n");
    assert!(e.contains("cluster.peer_advertise"), "{e}");
    let e = err("[cluster]\ntls_cert = \"/nonexistent.pem\"\n");
    assert!(e.contains("cluster.tls_cert"), "{e}");
    let e = err("[cluster]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/k\"\ntls_ca = \"/c\"\n");
    assert!(
        e.contains("cluster.tls_cert") && e.contains("no such file"),
        "{e}"
    );
    let e = err("[cluster]\nnodeid = \"x\"\n");
    assert!(e.contains("cluster.nodeid"), "{e}");
}

#[test]
fn auth_section() {
    let c = parse("[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\ndelegate_url = \"http://127.0.0.1:8080/check\"\n").unwrap();
    assert_eq!(c.auth.jwt_leeway_s, 30);
    assert_eq!(c.auth.delegate_timeout_ms, 3000);
    let e = err("[auth]\njwt_secret = \"short\"\n");
    assert!(e.contains("auth.jwt_secret"), "{e}");
    let e = err("[auth]\ndelegate_url = \"https://x\"\n");
    assert!(e.contains("auth.delegate_url"), "{e}");
    let e = err("[auth]\ndelegate_timeout_ms = 5\n");
    assert!(e.contains("auth.delegate_timeout_ms"), "{e}");
    assert_eq!(c.auth.jwt_max_lifetime_s, 86_400);
    assert_eq!(c.auth.failure_ip_refuse_after, 20);
    assert_eq!(c.auth.failure_table_size, 100_000);
    for (toml, key) in [
        ("jwt_audience = \"\"", "auth.jwt_audience"),
        ("jwt_max_lifetime_s = 0", "auth.jwt_max_lifetime_s"),
        ("failure_window_s = 0", "auth.failure_window_s"),
        (
            "failure_ip_refuse_after = 0",
            "auth.failure_ip_refuse_after",
        ),
        ("failure_ip_delay_after = 30", "auth.failure_ip_delay_after"),
        (
            "failure_account_delay_after = 30",
            "auth.failure_account_delay_after",
        ),
        ("failure_delay_ms = 20000", "auth.failure_delay_ms"),
        ("failure_max_delay_ms = 40000", "auth.failure_max_delay_ms"),
        ("failure_max_delay_ms = 100", "auth.failure_max_delay_ms"),
        ("failure_table_size = 10", "auth.failure_table_size"),
    ] {
        let e = err(&format!("[auth]\n{toml}\n"));
        assert!(e.contains(key), "{toml}: {e}");
    }
}

#[test]
fn http_section() {
    let c =
        parse("[http]\norigins = [\"https://example.org\", \"*\"]\nconsider_secure = \"always\"\n")
            .unwrap();
    assert_eq!(c.http.origins.len(), 2);
    assert_eq!(c.http.consider_secure, ConsiderSecure::Always);
    assert_eq!(
        Config::default().http.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 5280)))
    );
    let e = err("[http]\norigins = [\"example.org\"]\n");
    assert!(e.contains("http.origins[0]"), "{e}");
    let e = err("[http]\norigins = [\"https://example.org/chat\"]\n");
    assert!(e.contains("http.origins[0]"), "{e}");
    let e = err("[http]\nconsider_secure = \"sometimes\"\n");
    assert!(e.contains("http.consider_secure"), "{e}");
    let e = err("[http]\npublic_url = \"chat.example.org\"\n");
    assert!(e.contains("http.public_url"), "{e}");
}

#[test]
fn http_web_client() {
    let c = parse("[http]\nweb_client = true\n").unwrap();
    assert!(c.http.web_client);
    assert_eq!(c.http.converse_url, None, "the bundled copy by default");
    assert!(DEFAULT_CONVERSE_URL.contains(parley_http::web_client::BUNDLED_CONVERSE));
    assert!(!Config::default().http.web_client);
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("converse.min.js"), "").unwrap();
    std::fs::write(dist.path().join("converse.min.css"), "").unwrap();
    let text = format!(
        "[http]\nweb_client = true\nconverse_dist = \"{}\"\n",
        dist.path().display()
    );
    assert_eq!(
        parse(&text).unwrap().http.converse_dist.as_deref(),
        Some(dist.path())
    );
    let e = err("[http]\nconverse_dist = \"/nonexistent/dist\"\n");
    assert!(
        e.contains("http.converse_dist") && e.contains("converse.min.js"),
        "{e}"
    );
    let e = err("[http]\nconverse_url = \"cdn.conversejs.org/dist\"\n");
    assert!(e.contains("http.converse_url"), "{e}");
    let e = err("[http]\nweb_client = \"yes\"\n");
    assert!(e.contains("web_client"), "{e}");
}

#[test]
fn admin_section() {
    let c = Config::from_toml_str("[admin]\ntoken = \"0123456789abcdef0123\"\n", "t").unwrap();
    assert_eq!(
        c.admin.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 5290)))
    );
    let e = err("[admin]\ntoken = \"short\"\n");
    assert!(e.starts_with("test.toml: admin.token"), "{e}");
    assert!(!e.contains("short"), "the token is never echoed: {e}");
    let e = err("[admin]\nlisten = \"nowhere\"\n");
    assert!(e.contains("admin.listen"), "{e}");
}

#[test]
fn quotas_and_users_sections_name_the_bad_key() {
    let c = parse(
        "[quotas]\nblocklist_items = 5\nresources_per_account = 2\n[users]\nmailbox_stanzas = 64\n",
    )
    .unwrap();
    assert_eq!(
        (c.quotas.blocklist_items, c.quotas.resources_per_account),
        (5, 2)
    );
    assert_eq!(c.users.mailbox_stanzas, 64);
    assert_eq!(Config::default().quotas.roster_name_bytes, 1023);
    for (text, key) in [
        ("[quotas]\nblocklist_items = 0\n", "quotas.blocklist_items"),
        (
            "[quotas]\nsubscription_request_bytes = 10\n",
            "quotas.subscription_request_bytes",
        ),
        (
            "[quotas]\nresources_per_account = 0\n",
            "quotas.resources_per_account",
        ),
        ("[users]\nmailbox_bytes = 100\n", "users.mailbox_bytes"),
        (
            "[users]\nabsent_cache_ttl_ms = 999999\n",
            "users.absent_cache_ttl_ms",
        ),
        ("[users]\nexistence_checks = 0\n", "users.existence_checks"),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
    assert!(err("[quotas]\nno_such_key = 1\n").contains("no_such_key"));
}

#[test]
fn roster_and_offline_sections() {
    let c = Config::from_toml_str(
        "[roster]\nmax_items = 5\n[offline]\nmax_per_user = 0\n",
        "t",
    )
    .unwrap();
    assert_eq!((c.roster.max_items, c.offline.max_per_user), (5, 0));
    let e = err("[roster]\nmax_items = 0\n");
    assert!(
        e.starts_with("test.toml: roster.max_items = 0: must be at least 1"),
        "{e}"
    );
    let e = err("[offline]\nmax = 1\n");
    assert!(e.contains("offline.max"), "{e}");
}

#[test]
fn each_rule_names_its_key() {
    let cases = [
        ("[server]\nhosts = []", "server.hosts = []"),
        (
            "[server]\nhosts = [\"exa mple\"]",
            "server.hosts[0] = \"exa mple\"",
        ),
        ("[server]\nhosts = [\"a@b\"]", "server.hosts[0] = \"a@b\""),
        (
            "[server]\nhosts = [\"a.org\", \"A.ORG\"]",
            "server.hosts[1] = \"a.org\": duplicate of server.hosts[0]",
        ),
        ("[c2s]\nlisten = []\ndirect_tls = []", "c2s.listen = []"),
        (
            "[c2s]\nlisten = [\"127.0.0.1:5222\"]\ndirect_tls = [\"127.0.0.1:5222\"]",
            "c2s.direct_tls[0] = \"127.0.0.1:5222\": already used by c2s.listen[0]",
        ),
        ("[c2s]\nmax_depth = 7", "c2s.max_depth = 7"),
        ("[c2s]\nmax_attributes = 2", "c2s.max_attributes = 2"),
        (
            "[c2s]\nmax_namespace_declarations = 4",
            "c2s.max_namespace_declarations = 4: must be at least 16",
        ),
        (
            "[c2s]\nmax_namespace_declarations = 5000",
            "c2s.max_namespace_declarations = 5000: must be at most 1024",
        ),
        (
            "[c2s]\nmax_depth = 100000",
            "c2s.max_depth = 100000: must be at most 256",
        ),
        ("[c2s]\nauth_timeout_s = 0", "c2s.auth_timeout_s = 0"),
        ("[c2s]\nmax_auth_attempts = 0", "c2s.max_auth_attempts = 0"),
        (
            "[c2s]\nsend_queue_stanzas = 0",
            "c2s.send_queue_stanzas = 0",
        ),
        (
            "[c2s]\nsend_queue_bytes = 20000",
            "c2s.send_queue_bytes = 20000: must be at least c2s.max_stanza_bytes (262144)",
        ),
        (
            "[storage]\nurl = \"parley.db\"",
            "storage.url = \"parley.db\"",
        ),
        ("[log]\nlevel = \"=^=\"", "log.level = \"=^=\""),
        // A typo parses as a target filter and would silence the server.
        (
            "[log]\nlevel = \"infoo\"",
            "log.level = \"infoo\": unknown level `infoo`",
        ),
        (
            "[log]\nlevel = \"info,parley=loud\"",
            "log.level = \"info,parley=loud\": `parley=loud` must be target=LEVEL",
        ),
        (
            "[storage]\nurl = \"mysql://u:hunter2@db/parley\"",
            "storage.url = \"mysql://u:***@db/parley\": unknown scheme `mysql`",
        ),
        (
            "[storage]\nurl = \"sqlite://data/p.db?mode=rwc\"",
            "storage.url = \"sqlite://data/p.db?mode=rwc\": query parameters are not supported",
        ),
    ];
    for (toml, expected) in cases {
        let e = err(toml);
        assert!(
            e.starts_with(&format!("test.toml: {expected}")),
            "{toml:?} gave {e}"
        );
    }
}

#[test]
fn good_log_levels_pass() {
    for level in [
        "info",
        "WARN",
        "debug,parley=trace",
        "off",
        "info,hyper=warn",
    ] {
        assert!(super::validate::check_log_level(level).is_ok(), "{level}");
    }
}

#[test]
fn tls_cert_without_key_is_rejected() {
    let e = err("[tls]\ncert = \"/etc/ssl/fullchain.pem\"\n");
    assert!(
        e.starts_with("test.toml: tls.cert = \"/etc/ssl/fullchain.pem\": tls.key is not set"),
        "{e}"
    );
    let e = err("[tls]\nkey = \"/etc/ssl/key.pem\"\n");
    assert!(
        e.contains("tls.key = \"/etc/ssl/key.pem\": tls.cert is not set"),
        "{e}"
    );
}

#[test]
fn tls_files_must_exist() {
    let e = err("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n");
    assert!(
        e.starts_with("test.toml: tls.cert = \"/nonexistent/cert.pem\": cannot read"),
        "{e}"
    );
}

#[test]
fn validate_without_origin_still_names_the_key() {
    let mut config = Config::default();
    config.c2s.max_auth_attempts = 0;
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("c2s.max_auth_attempts = 0"), "{e}");
}

#[test]
fn account_jid_is_normalized() {
    let config = parse("[server]\nhosts = [\"Example.org\"]\n").unwrap();
    let jid = config.account_jid("Alice@EXAMPLE.org").unwrap();
    assert_eq!(jid.username, "alice");
    assert_eq!(jid.host, "example.org");
    assert_eq!(jid.to_string(), "alice@example.org");
}

#[test]
fn account_jid_with_unknown_host_names_the_host() {
    let e = Config::default()
        .account_jid("alice@example.net")
        .unwrap_err();
    assert!(matches!(e, AccountJidError::UnknownHost { .. }));
    assert_eq!(
        e.to_string(),
        "`alice@example.net`: host `example.net` is not in [server] hosts (localhost)"
    );
}

#[test]
fn account_jid_must_be_bare_with_node() {
    let config = Config::default();
    assert!(matches!(
        config.account_jid("alice@localhost/phone"),
        Err(AccountJidError::HasResource { .. })
    ));
    assert!(matches!(
        config.account_jid("localhost"),
        Err(AccountJidError::NoNode { .. })
    ));
    assert!(matches!(
        config.account_jid("@localhost"),
        Err(AccountJidError::Invalid { .. })
    ));
}

#[test]
fn served_host_normalizes() {
    let config = Config::default();
    assert_eq!(
        config.served_host("LOCALHOST").as_deref(),
        Some("localhost")
    );
    assert_eq!(config.served_host("example.org"), None);
}

/// The drain keys are documented, default to "no redirect, 60 s", and a bad value is refused
/// naming its key (the addresses are written to clients verbatim).
#[test]
fn drain_keys_are_documented_and_checked() {
    let doc = include_str!("../../../../config/parley.toml");
    for key in ["redirect_host =", "redirect_ws_uri =", "drain_timeout_s ="] {
        assert!(
            doc.contains(key),
            "config/parley.toml does not document {key}"
        );
    }
    const S: &str = "secret = \"0123456789abcdef0123456789abcdef\"\n";
    let c = parse(&format!("[cluster]\n{S}")).unwrap();
    assert_eq!(c.cluster.unwrap().drain_timeout_s, 60);
    assert_eq!(Config::default().c2s.redirect_host, "");
    assert_eq!(Config::default().http.redirect_ws_uri, None);
    let ok = parse(&format!(
        "[c2s]\nredirect_host = \"lb.example.org:5222\"\n\
         [http]\nredirect_ws_uri = \"wss://lb.example.org/xmpp-websocket\"\n\
         [cluster]\n{S}drain_timeout_s = 120\n"
    ))
    .unwrap();
    assert_eq!(ok.c2s.redirect_host, "lb.example.org:5222");
    let e = err(&format!("[cluster]\n{S}drain_timeout_s = 0\n"));
    assert!(e.contains("cluster.drain_timeout_s = 0"), "{e}");
    let e = err("[c2s]\nredirect_host = \"lb example\"\n");
    assert!(e.contains("c2s.redirect_host"), "{e}");
    let e = err("[http]\nredirect_ws_uri = \"https://lb.example.org/ws\"\n");
    assert!(e.contains("http.redirect_ws_uri"), "{e}");
}

#[test]
fn storage_sqlite_cache_is_bounded_and_reaches_the_store() {
    let c = Config::from_toml_str("[storage]\nsqlite_cache_mib = 64\n", "t").unwrap();
    assert_eq!(c.storage_options().sqlite_writer_cache_kib, 64 * 1024);
    assert_eq!(
        Config::from_toml_str("", "t").unwrap().storage_options(),
        parley_storage::StorageOptions::default()
    );
    let e = err("[storage]\nsqlite_cache_mib = 0\n");
    assert!(
        e.starts_with("test.toml: storage.sqlite_cache_mib = 0: must be between 1 and 65536"),
        "{e}"
    );
    let c = Config::from_toml_str("[storage]\nsqlite_user_queue = 8\n", "t").unwrap();
    assert_eq!(c.storage_options().sqlite_user_queue, 8);
    let e = err("[storage]\nsqlite_user_queue = 0\n");
    assert!(
        e.starts_with("test.toml: storage.sqlite_user_queue = 0: must be between 1 and 65536"),
        "{e}"
    );
    let c = Config::from_toml_str("[storage]\nsqlite_archive_log_rows = 16\n", "t").unwrap();
    assert_eq!(c.storage_options().sqlite_archive_log_rows, 16);
    let e = err("[storage]\nsqlite_archive_log_rows = 0\n");
    assert!(
        e.starts_with(
            "test.toml: storage.sqlite_archive_log_rows = 0: must be between 1 and 65536"
        ),
        "{e}"
    );
}

#[test]
fn register_section_reaches_sessions_and_names_bad_keys() {
    use parley_session::signup::SignupMode;
    let c = Config::from_toml_str(
        "[register]\nmode = \"invite\"\nmin_password_length = 12\nper_ip_max = 1\n",
        "t",
    )
    .unwrap();
    let s = c.register.settings();
    assert_eq!(
        (s.mode, s.min_password_length, s.per_ip_max),
        (SignupMode::Invite, 12, 1)
    );
    assert_eq!(
        Config::from_toml_str("", "t")
            .unwrap()
            .register
            .settings()
            .mode,
        SignupMode::Off
    );
    let e = err("[register]\nmode = \"everyone\"\n");
    assert!(e.contains("mode") && e.contains("everyone"), "{e}");
    let e = err("[register]\nmin_password_length = 0\n");
    assert!(
        e.starts_with("test.toml: register.min_password_length = 0"),
        "{e}"
    );
    let e = err("[register]\ninvite_ttl_s = 0\n");
    assert!(e.starts_with("test.toml: register.invite_ttl_s = 0"), "{e}");
}

#[test]
fn archive_writer_and_pep_memory_bounds_have_keys() {
    let c = Config::from_toml_str(
        "[mam]\nowner_cache_entries = 5\nowner_cache_ttl_s = 0\nmax_in_flight_per_session = 2\n\
         [pep]\nmax_tracked_resources = 7\nmax_caps_cached = 8\nmax_caps_queries = 9\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        (
            c.mam.owner_cache_entries,
            c.mam.owner_cache_ttl_s,
            c.mam.max_in_flight_per_session
        ),
        (5, 0, 2)
    );
    let l = c.pep.limits();
    assert_eq!((l.max_tracked, l.max_caps, l.max_pending), (7, 8, 9));
    for (toml, key) in [
        (
            "[mam]\nowner_cache_entries = 0\n",
            "mam.owner_cache_entries",
        ),
        ("[mam]\nowner_cache_ttl_s = 3601\n", "mam.owner_cache_ttl_s"),
        (
            "[mam]\nmax_in_flight_per_session = 0\n",
            "mam.max_in_flight_per_session",
        ),
        (
            "[pep]\nmax_tracked_resources = 0\n",
            "pep.max_tracked_resources",
        ),
        ("[pep]\nmax_caps_cached = 0\n", "pep.max_caps_cached"),
        ("[pep]\nmax_caps_queries = 0\n", "pep.max_caps_queries"),
    ] {
        let e = err(toml);
        assert!(e.contains(key), "{toml}: {e}");
    }
}

#[test]
fn push_section_is_checked_and_documented() {
    let c =
        Config::from_toml_str("[push]\nmax_registrations = 2\nmin_interval_s = 0\n", "t").unwrap();
    let l = c.push.limits();
    assert_eq!(
        (l.max_registrations, l.min_interval),
        (2, std::time::Duration::ZERO)
    );
    for (toml, key) in [
        ("max_registrations = 0", "push.max_registrations"),
        ("min_interval_s = 3601", "push.min_interval_s"),
        ("max_tracked_accounts = 0", "push.max_tracked_accounts"),
    ] {
        let e = err(&format!("[push]\n{toml}\n"));
        assert!(e.starts_with(&format!("test.toml: {key}")), "{toml}: {e}");
    }
    let doc = include_str!("../../../../config/parley.toml");
    for key in [
        "[push]",
        "max_registrations =",
        "min_interval_s =",
        "max_tracked_accounts =",
    ] {
        assert!(
            doc.contains(key),
            "config/parley.toml does not document {key}"
        );
    }
}

#[test]
fn muc_section_is_checked_and_each_bad_value_names_its_key() {
    let c = Config::from_toml_str(
        "[muc]\ncreation = \"admins\"\nadmins = [\"boss@example.org\"]\nmessages_per_minute = 60\n\
         [muc.defaults]\nwhois = \"anyone\"\npersistent = true\n",
        "t",
    )
    .unwrap();
    let s = c.muc.settings(&c.mam);
    assert_eq!(s.creation, parley_muc::Creation::Admins);
    assert_eq!(s.messages_per_second, 1.0);
    assert!(s.defaults.non_anonymous() && s.defaults.persistent);
    for (toml, key) in [
        ("[muc]\ncreation = \"everyone\"", "muc.creation"),
        ("[muc]\nsubdomain = \"a.b\"", "muc.subdomain"),
        ("[muc]\nadmins = [\"not a jid@@\"]", "muc.admins"),
        ("[muc]\nmax_occupants = 0", "muc.max_occupants"),
        ("[muc]\nmessages_per_minute = 0", "muc.messages_per_minute"),
        ("[muc]\nmailbox_bytes = 10", "muc.mailbox_bytes"),
        ("[muc.defaults]\nwhois = \"nobody\"", "muc.defaults.whois"),
        (
            "[muc.defaults]\nallow_pm = \"all\"",
            "muc.defaults.allow_pm",
        ),
        (
            "[muc]\nmax_history = 10\n[muc.defaults]\nhistory_length = 11",
            "muc.defaults.history_length",
        ),
    ] {
        let e = err(&format!("{toml}\n"));
        assert!(e.starts_with(&format!("test.toml: {key}")), "{toml}: {e}");
    }
}

fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    vars.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn environment_overrides_every_key_and_names_its_variable_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parley.toml");
    std::fs::write(
        &path,
        "[server]\nhosts = [\"example.org\"]\n\n[c2s]\nmax_auth_attempts = 3\n",
    )
    .unwrap();
    let config = Config::load_with_env(
        Some(&path),
        env(&[
            ("PARLEY_C2S__MAX_AUTH_ATTEMPTS", "7"),
            ("PARLEY_ADMIN__TOKEN", "from-the-environment-0123"),
            ("PARLEY_SERVER__HOSTS", "[\"a.example\", \"b.example\"]"),
        ]),
    )
    .unwrap();
    assert_eq!(config.c2s.max_auth_attempts, 7);
    assert_eq!(
        config.admin.token.as_deref(),
        Some("from-the-environment-0123")
    );
    assert_eq!(config.server.hosts, ["a.example", "b.example"]);
    // Without a file: over the defaults.
    let config = Config::load_with_env(None, env(&[("PARLEY_LOG__FORMAT", "json")])).unwrap();
    assert_eq!(config.log.format, LogFormat::Json);

    for (vars, expected) in [
        (
            [("PARLEY_C2S__MAX_AUTH_ATEMPTS", "3")],
            "environment variable PARLEY_C2S__MAX_AUTH_ATEMPTS (c2s.max_auth_atempts): unknown key",
        ),
        (
            [("PARLEY_C2SS__LISTEN", "[]")],
            "environment variable PARLEY_C2SS__LISTEN (c2ss.listen): unknown key",
        ),
        (
            [("PARLEY_C2S__MAX_AUTH_ATTEMPTS", "many")],
            "environment variable PARLEY_C2S__MAX_AUTH_ATTEMPTS (c2s.max_auth_attempts): ",
        ),
        (
            [("PARLEY_C2S__MAX_AUTH_ATTEMPTS", "0")],
            "environment variable PARLEY_C2S__MAX_AUTH_ATTEMPTS (c2s.max_auth_attempts): 0: must",
        ),
    ] {
        let e = Config::load_with_env(Some(&path), env(&vars))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(expected), "{vars:?}: {e}");
    }
    // An error in the file keeps its file line, whatever the layers added above it.
    std::fs::write(
        &path,
        "[server]\nhosts = [\"example.org\"]\n\n[c2s]\nmax_depth = \"deep\"\n",
    )
    .unwrap();
    let e = Config::load_with_env(
        Some(&path),
        env(&[("PARLEY_ADMIN__TOKEN", "t0123456789abcdef")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c2s.max_depth (line 5)"), "{e}");
}

#[test]
fn secrets_are_read_from_their_file_keys() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "a-token-from-a-mounted-secret\n").unwrap();
    let path = dir.path().join("parley.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"127.0.0.1:5290\"\ntoken_file = {:?}\n",
            token.display()
        ),
    )
    .unwrap();
    let config = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(
        config.admin.token.as_deref(),
        Some("a-token-from-a-mounted-secret")
    );
    // Through the environment too.
    let config = Config::load_with_env(
        None,
        env(&[("PARLEY_ADMIN__TOKEN_FILE", token.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(
        config.admin.token.as_deref(),
        Some("a-token-from-a-mounted-secret")
    );
}
