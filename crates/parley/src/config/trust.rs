//! Validation of what a hostile network could exploit: etcd over TLS with a login
//! (`[cluster] etcd_*`), and listeners whose trust settings only hold on loopback
//! (`[http] consider_secure`, the admin endpoint, node links, plain c2s).
//!
//! A combination that hands a stranger a privilege is an error naming the key; one that is
//! merely risky (plain c2s on a public address) is a warning, printed by `check config`
//! and logged by `serve`, because tests and LAN setups use it on purpose.

use std::net::SocketAddr;
use std::path::Path;

use parley_http::proxy::Cidr;

use super::{ClusterConfig, Config, ConsiderSecure, Quoted, Violation};

fn public(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

fn file(key: &str, path: &Path) -> Result<(), Violation> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Violation::new(key, Quoted(path.display()), "no such file"))
    }
}

impl ClusterConfig {
    /// Whether node links are authenticated (mutual TLS or the shared secret).
    fn links_authenticated(&self) -> bool {
        self.tls_cert.is_some() || self.secret.is_some() || self.secret_file.is_some()
    }

    /// etcd endpoints, TLS material and login; node-link exposure.
    pub(super) fn check_trust(&self) -> Result<(), Violation> {
        let https = self.etcd[0].starts_with("https://");
        if let Some(i) = self
            .etcd
            .iter()
            .position(|u| u.starts_with("https://") != https)
        {
            return Err(Violation::new(
                &format!("cluster.etcd[{i}]"),
                Quoted(&self.etcd[i]),
                format!(
                    "mixes http:// and https:// with cluster.etcd[0]: every endpoint must use {}",
                    if https { "https://" } else { "http://" }
                ),
            ));
        }
        let tls_keys = [
            ("cluster.etcd_ca", &self.etcd_ca),
            ("cluster.etcd_cert", &self.etcd_cert),
            ("cluster.etcd_key", &self.etcd_key),
        ];
        for (key, path) in tls_keys {
            let Some(path) = path else { continue };
            if !https {
                return Err(Violation::new(
                    key,
                    Quoted(path.display()),
                    "TLS to etcd needs https:// endpoints in cluster.etcd",
                ));
            }
            file(key, path)?;
        }
        if https
            && self.etcd_ca.is_none()
            && parley_cluster::etcd_access::system_ca_bundle().is_none()
        {
            return Err(Violation::new(
                "cluster.etcd_ca",
                "unset",
                "https:// etcd endpoints need a CA: set etcd_ca (this host has no system CA bundle)",
            ));
        }
        match (&self.etcd_cert, &self.etcd_key) {
            (Some(cert), None) => {
                return Err(Violation::new(
                    "cluster.etcd_cert",
                    Quoted(cert.display()),
                    "cluster.etcd_key is not set: set both, or neither",
                ))
            }
            (None, Some(key)) => {
                return Err(Violation::new(
                    "cluster.etcd_key",
                    Quoted(key.display()),
                    "cluster.etcd_cert is not set: set both, or neither",
                ))
            }
            _ => {}
        }
        let password = self.etcd_password.is_some() || self.etcd_password_file.is_some();
        if self.etcd_password.is_some() && self.etcd_password_file.is_some() {
            return Err(Violation::new(
                "cluster.etcd_password",
                "\"…\"",
                "set etcd_password or etcd_password_file, not both",
            ));
        }
        match (&self.etcd_user, password) {
            (Some(user), false) => {
                return Err(Violation::new(
                    "cluster.etcd_user",
                    Quoted(user),
                    "needs etcd_password or etcd_password_file",
                ))
            }
            (None, true) => {
                return Err(Violation::new(
                    "cluster.etcd_password",
                    "\"…\"",
                    "needs etcd_user",
                ))
            }
            _ => {}
        }
        if let Some(path) = &self.etcd_password_file {
            file("cluster.etcd_password_file", path)?;
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            return Err(Violation::new(
                "cluster.secret",
                "\"…\"",
                "set secret or secret_file, not both",
            ));
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(Violation::new(
                "cluster.secret",
                "\"…\"",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        if let Some(path) = &self.secret_file {
            file("cluster.secret_file", path)?;
        }
        if public(&self.peer_listen) && !self.links_authenticated() {
            return Err(Violation::new(
                "cluster.peer_listen",
                Quoted(self.peer_listen),
                "a node link listener off loopback accepts stanzas from anyone who reaches it: set cluster.secret_file (or secret), or tls_cert/tls_key/tls_ca",
            ));
        }
        Ok(())
    }

    /// Risky but legitimate etcd settings.
    fn trust_warnings(&self, out: &mut Vec<(String, String, String)>) {
        let plain_remote = self.etcd.iter().any(|u| {
            u.strip_prefix("http://")
                .and_then(|rest| rest.split(['/', ':']).next())
                .is_some_and(|host| !matches!(host, "127.0.0.1" | "localhost" | "[::1]"))
        });
        if plain_remote && self.etcd_user.is_some() {
            out.push((
                "cluster.etcd_user".into(),
                Quoted(self.etcd_user.as_deref().unwrap_or_default()).to_string(),
                "the etcd password crosses the network in clear (http:// endpoint off loopback): use https:// endpoints".into(),
            ));
        } else if plain_remote {
            out.push((
                "cluster.etcd".into(),
                Quoted(&self.etcd[0]).to_string(),
                "etcd off loopback without TLS or login: anyone on that network can rewrite the session registry; use https:// with etcd_cert or etcd_user".into(),
            ));
        }
    }
}

impl Config {
    /// The `[http]` and `[admin]` listeners.
    pub(super) fn check_exposure(&self) -> Result<(), Violation> {
        let mut proxies = Vec::with_capacity(self.http.trusted_proxies.len());
        for (i, p) in self.http.trusted_proxies.iter().enumerate() {
            // The listener's own parser, so that what is checked here is what it believes.
            let net: Cidr = p.parse().map_err(|_| {
                Violation::new(
                    &format!("http.trusted_proxies[{i}]"),
                    Quoted(p),
                    "must be an IP address or network such as \"10.0.0.0/8\"",
                )
            })?;
            proxies.push(net);
        }
        if let Some(listen) = &self.http.listen {
            if self.http.consider_secure == ConsiderSecure::Always
                && public(listen)
                && proxies.is_empty()
            {
                return Err(Violation::new(
                    "http.consider_secure",
                    "\"always\"",
                    format!(
                        "http.listen {listen} is off loopback: anyone reaching it over plain HTTP would count as encrypted (PLAIN passwords in clear); list the TLS-terminating proxies in http.trusted_proxies, or use \"loopback\" behind a proxy on this host"
                    ),
                ));
            }
        }
        if let Some(listen) = &self.admin.listen {
            if public(listen) && self.admin.token.is_none() {
                return Err(Violation::new(
                    "admin.listen",
                    Quoted(listen),
                    "an admin listener off loopback needs admin.token (or bind it to 127.0.0.1)",
                ));
            }
        }
        Ok(())
    }

    /// The risky-but-allowed settings, one line each (`key = value: why`), for `check
    /// config` and the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.c2s.require_encryption {
            if let Some(addr) = self.c2s.listen.iter().find(|a| public(a)) {
                out.push((
                    "c2s.require_encryption".into(),
                    "false".into(),
                    format!("c2s.listen {addr} is off loopback: clients may log in and chat without TLS, passwords in clear"),
                ));
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.trust_warnings(&mut out);
        }
        out.into_iter()
            .map(|(key, value, why)| format!("{key} = {value}: {why}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    /// Node links must be authenticated (checked before these rules): configs under test
    /// get a cluster secret unless they are about secrets or the peer listener.
    fn with_secret(s: &str) -> String {
        if s.contains("secret") || s.contains("tls_cert") || s.contains("peer_listen") {
            return s.to_owned();
        }
        s.replace(
            "[cluster]\n",
            "[cluster]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        )
    }

    fn err(s: &str) -> String {
        Config::from_toml_str(&with_secret(s), "test.toml")
            .expect_err("config should be rejected")
            .to_string()
    }

    fn ok(s: &str) -> Config {
        Config::from_toml_str(&with_secret(s), "test.toml").unwrap()
    }

    /// `trusted_proxies` entries are read by the HTTP listener's own parser.
    struct ProxyNet;

    impl ProxyNet {
        fn parse(s: &str) -> Option<Cidr> {
            s.parse().ok()
        }
    }

    #[test]
    fn proxy_networks_parse_and_match() {
        let net = ProxyNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = ProxyNet::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(ProxyNet::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(ProxyNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/", "::/129"] {
            assert_eq!(ProxyNet::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn consider_secure_always_on_a_public_http_listener_needs_trusted_proxies() {
        let e = err("[http]\nlisten = \"0.0.0.0:5280\"\nconsider_secure = \"always\"\n");
        assert!(
            e.starts_with("test.toml: http.consider_secure = \"always\": http.listen 0.0.0.0:5280 is off loopback"),
            "{e}"
        );
        ok("[http]\nlisten = \"0.0.0.0:5280\"\nconsider_secure = \"always\"\ntrusted_proxies = [\"172.30.57.10\"]\n");
        ok("[http]\nlisten = \"127.0.0.1:5280\"\nconsider_secure = \"always\"\n");
        ok("[http]\nlisten = \"0.0.0.0:5280\"\n");
        let e = err("[http]\ntrusted_proxies = [\"10.0.0.0/99\"]\n");
        assert!(e.contains("http.trusted_proxies[0]"), "{e}");
    }

    #[test]
    fn public_admin_listener_needs_a_token() {
        let e = err("[admin]\nlisten = \"0.0.0.0:5290\"\n");
        assert!(
            e.starts_with("test.toml: admin.listen = \"0.0.0.0:5290\": an admin listener off loopback needs admin.token"),
            "{e}"
        );
        ok("[admin]\nlisten = \"0.0.0.0:5290\"\ntoken = \"0123456789abcdef0123\"\n");
    }

    #[test]
    fn plain_c2s_on_a_public_address_warns() {
        let c = ok("[c2s]\nlisten = [\"0.0.0.0:5222\"]\nrequire_encryption = false\n");
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("c2s.require_encryption = false: "),
            "{w:?}"
        );
        let c = ok("[c2s]\nlisten = [\"127.0.0.1:5222\"]\nrequire_encryption = false\n");
        assert!(c.warnings().is_empty());
        assert!(Config::default().warnings().is_empty());
    }

    #[test]
    fn public_peer_listener_needs_a_secret_or_mutual_tls() {
        // Node links are always authenticated now, so an open public listener is refused by
        // that rule first, naming the keys that would fix it.
        let e = err("[cluster]\npeer_listen = \"0.0.0.0:7400\"\npeer_advertise = \"n1:7400\"\n");
        assert!(
            e.contains("cluster.secret") && e.contains("cluster.tls_cert"),
            "{e}"
        );
        let e = err("[cluster]\npeer_listen = \"10.0.0.5:7400\"\n");
        assert!(e.contains("cluster.secret"), "{e}");
        ok("[cluster]\npeer_listen = \"0.0.0.0:7400\"\npeer_advertise = \"n1:7400\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n");
        let e = err("[cluster]\nsecret = \"short\"\n");
        assert!(e.starts_with("test.toml: cluster.secret = \"…\""), "{e}");
        assert!(!e.contains("short"), "the secret is never echoed: {e}");
        let e = err("[cluster]\nsecret_file = \"/nonexistent/secret\"\n");
        assert!(e.contains("cluster.secret_file"), "{e}");
    }

    #[test]
    fn etcd_endpoints_must_not_mix_schemes() {
        let e = err("[cluster]\netcd = [\"https://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]\netcd_ca = \"/nonexistent\"\n");
        assert!(
            e.starts_with(
                "test.toml: cluster.etcd[1] = \"http://10.0.0.2:2379\": mixes http:// and https://"
            ),
            "{e}"
        );
    }

    #[test]
    fn etcd_tls_keys_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("x.pem");
        std::fs::write(&pem, "").unwrap();
        let pem = pem.display();
        let e = err(&format!(
            "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\netcd_ca = \"{pem}\"\n"
        ));
        assert!(
            e.contains("cluster.etcd_ca") && e.contains("needs https://"),
            "{e}"
        );
        let e = err(
            "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\netcd_ca = \"/nonexistent/ca.pem\"\n",
        );
        assert!(
            e.starts_with("test.toml: cluster.etcd_ca = \"/nonexistent/ca.pem\": no such file"),
            "{e}"
        );
        let e = err(&format!(
            "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\netcd_ca = \"{pem}\"\netcd_cert = \"{pem}\"\n"
        ));
        assert!(
            e.contains("cluster.etcd_cert") && e.contains("etcd_key is not set"),
            "{e}"
        );
        let e = err(&format!(
            "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\netcd_ca = \"{pem}\"\netcd_key = \"{pem}\"\n"
        ));
        assert!(e.contains("cluster.etcd_key"), "{e}");
        ok(&format!(
            "[cluster]\netcd = [\"https://127.0.0.1:2379\"]\netcd_ca = \"{pem}\"\netcd_cert = \"{pem}\"\netcd_key = \"{pem}\"\n"
        ));
    }

    #[test]
    fn etcd_login_keys_go_together_and_the_password_is_never_echoed() {
        let e = err("[cluster]\netcd_user = \"parley\"\n");
        assert!(
            e.starts_with("test.toml: cluster.etcd_user = \"parley\": needs etcd_password"),
            "{e}"
        );
        let e = err("[cluster]\netcd_password = \"hunter2hunter2\"\n");
        assert!(
            e.contains("cluster.etcd_password") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err("[cluster]\netcd_user = \"p\"\netcd_password = \"hunter2hunter2\"\netcd_password_file = \"/x\"\n");
        assert!(
            e.contains("cluster.etcd_password") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err("[cluster]\netcd_user = \"p\"\netcd_password_file = \"/nonexistent/pw\"\n");
        assert!(e.contains("cluster.etcd_password_file"), "{e}");
        ok("[cluster]\netcd_user = \"p\"\netcd_password = \"hunter2hunter2\"\n");
    }

    #[test]
    fn plain_etcd_off_loopback_warns() {
        let c = ok("[cluster]\netcd = [\"http://etcd:2379\"]\netcd_user = \"p\"\netcd_password = \"hunter2hunter2\"\n");
        let w = c.warnings();
        assert!(
            w.iter().any(|w| w.starts_with(
                "cluster.etcd_user = \"p\": the etcd password crosses the network in clear"
            )) && !w.iter().any(|w| w.contains("hunter2")),
            "{w:?}"
        );
        let c = ok("[cluster]\netcd = [\"http://etcd:2379\"]\n");
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.starts_with("cluster.etcd = ")));
        assert!(ok("[cluster]\n").warnings().is_empty());
    }
}
