//! Unit tests of the sections for other servers and services (`[component]`, `[s2s]`,
//! `[external_services]`): every rule names its key, and what the server reads from them
//! comes out normalized.

use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(s, "test.toml")
}

fn err(s: &str) -> String {
    parse(s).expect_err("config should be rejected").to_string()
}

#[test]
fn component_secrets_read_inline_and_from_files_normalized() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.secret");
    std::fs::write(&file, "file-secret-0123456789\nignored\n").unwrap();
    let c = parse(&format!(
        "[component]\nlisten = [\"127.0.0.1:5347\"]\n\
         secrets = {{ \"Bot.Localhost\" = \"inline-secret-0123456789\" }}\n\
         secret_files = {{ \"gw.localhost\" = \"{}\" }}\n",
        file.display()
    ))
    .unwrap();
    let mut secrets = c.component_secrets().unwrap();
    secrets.sort();
    assert_eq!(
        secrets,
        [
            (
                "bot.localhost".to_owned(),
                "inline-secret-0123456789".to_owned()
            ),
            (
                "gw.localhost".to_owned(),
                "file-secret-0123456789".to_owned()
            ),
        ]
    );
    assert!(
        !format!("{:?}", c.component).contains("inline-secret"),
        "never the secrets"
    );
}

#[test]
fn component_rules_name_their_key() {
    let cases = [
        (
            "[component]\nsecrets = { \"bot.localhost\" = \"short\" }\n",
            "component.secrets.\"bot.localhost\"",
        ),
        (
            "[component]\nsecrets = { \"localhost\" = \"long-enough-secret-0123\" }\n",
            "is one of server.hosts",
        ),
        (
            "[component]\nsecret_files = { \"bot.localhost\" = \"/nonexistent/secret\" }\n",
            "component.secret_files.\"bot.localhost\"",
        ),
        (
            "[component]\nlisten = [\"127.0.0.1:5347\"]\n",
            "component.listen",
        ),
        (
            "[component]\nmax_stanza_bytes = 100\n",
            "component.max_stanza_bytes",
        ),
        (
            "[component]\nsecrets = { \"bot..localhost\" = \"long-enough-secret-0123\" }\n",
            "component.secrets.\"bot..localhost\"",
        ),
    ];
    for (toml, key) in cases {
        let e = err(toml);
        assert!(e.contains(key), "{key} in {e}");
    }
}

#[test]
fn s2s_rules_name_their_key() {
    let cases = [
        (
            "[s2s]\nroutes = { \"localhost\" = \"127.0.0.1:5269\" }\n",
            "is one of server.hosts",
        ),
        (
            "[s2s]\nroutes = { \"b.example\" = \"no-port\" }\n",
            "s2s.routes.\"b.example\"",
        ),
        (
            "[s2s]\nroutes = { \"b..example\" = \"127.0.0.1:5269\" }\n",
            "s2s.routes.\"b..example\"",
        ),
        ("[s2s]\nmax_stanza_bytes = 100\n", "s2s.max_stanza_bytes"),
        ("[s2s]\nqueue_stanzas = 0\n", "s2s.queue_stanzas"),
        ("[s2s]\nqueue_bytes = 1000\n", "s2s.queue_bytes"),
        ("[s2s]\nconnect_timeout_s = 0\n", "s2s.connect_timeout_s"),
        ("[s2s]\nidle_timeout_s = 100000\n", "s2s.idle_timeout_s"),
        (
            "[s2s]\nmax_pending_verifications = 0\n",
            "s2s.max_pending_verifications",
        ),
        ("[s2s]\nca_file = \"/nonexistent/ca.pem\"\n", "s2s.ca_file"),
        ("[s2s]\nrequire_tls = true\n", "require_tls"),
    ];
    for (toml, key) in cases {
        let e = err(toml);
        assert!(e.contains(key), "{key} in {e}");
    }
}

#[test]
fn s2s_routes_are_read_normalized() {
    let c = parse(
        "[s2s]\nlisten = [\"127.0.0.1:5269\"]\nroutes = { \"B.Example\" = \"192.0.2.1:5269\", \"c.example\" = \"xmpp.c.example:5270\" }\n",
    )
    .unwrap();
    assert!(c.s2s.enabled());
    let mut routes = c.s2s_routes();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("b.example".to_owned(), "192.0.2.1".to_owned(), 5269),
            ("c.example".to_owned(), "xmpp.c.example".to_owned(), 5270),
        ]
    );
    assert!(
        !Config::default().s2s.enabled(),
        "federation is off by default"
    );
}

#[test]
fn external_services_rules_name_their_key() {
    let cases = [
        (
            "[external_services]\nservices = [\"stun:stun.example.org:3478\", \"ftp:x:1\"]\n",
            "external_services.services[1]",
        ),
        (
            "[external_services]\nturn_secret = \"short\"\n",
            "external_services.turn_secret",
        ),
        (
            "[external_services]\ncredential_ttl_s = 1\n",
            "external_services.credential_ttl_s",
        ),
    ];
    for (toml, key) in cases {
        let e = err(toml);
        assert!(e.contains(key), "{key} in {e}");
        assert!(!e.contains("short\""), "the secret is not echoed: {e}");
    }
}
