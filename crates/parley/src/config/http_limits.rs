//! Validation of the `[http]` and `[admin]` hardening keys (issue 10): trusted proxies, the
//! BOSH bounds, where `/metrics` is served and how long admin-issued tokens may live.

use super::{Config, Quoted, Violation};

/// The largest `bosh_max_body_bytes` accepted: a body is read whole before it is parsed.
const MAX_BOSH_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The longest `admin.max_token_ttl_s` accepted: ten years.
const MAX_TOKEN_TTL_S: u64 = 10 * 366 * 24 * 3600;

impl Config {
    pub(super) fn check_http_limits(&self) -> Result<(), Violation> {
        let http = &self.http;
        if let Err((i, e)) = parley_http::proxy::TrustedProxies::parse(&http.trusted_proxies) {
            return Err(Violation::new(
                &format!("http.trusted_proxies[{i}]"),
                Quoted(&http.trusted_proxies[i]),
                e.to_string(),
            ));
        }
        if let Err((i, e)) = parley_http::proxy::TrustedProxies::parse(&http.proxy_protocol_from) {
            return Err(Violation::new(
                &format!("http.proxy_protocol_from[{i}]"),
                Quoted(&http.proxy_protocol_from[i]),
                e.to_string(),
            ));
        }
        if !(1..=60).contains(&http.proxy_header_timeout_s) {
            return Err(Violation::new(
                "http.proxy_header_timeout_s",
                http.proxy_header_timeout_s,
                "must be from 1 to 60",
            ));
        }
        let c2s = &self.c2s;
        if let Err((i, e)) = parley_http::proxy::TrustedProxies::parse(&c2s.proxy_protocol_from) {
            return Err(Violation::new(
                &format!("c2s.proxy_protocol_from[{i}]"),
                Quoted(&c2s.proxy_protocol_from[i]),
                e.to_string(),
            ));
        }
        if !(1..=60).contains(&c2s.proxy_header_timeout_s) {
            return Err(Violation::new(
                "c2s.proxy_header_timeout_s",
                c2s.proxy_header_timeout_s,
                "must be from 1 to 60",
            ));
        }
        let body = http.bosh_max_body_bytes;
        if !(1024..=MAX_BOSH_BODY_BYTES).contains(&body) {
            return Err(Violation::new(
                "http.bosh_max_body_bytes",
                body,
                format!("must be from 1024 to {MAX_BOSH_BODY_BYTES}"),
            ));
        }
        if http.bosh_session_pending_bytes < body {
            return Err(Violation::new(
                "http.bosh_session_pending_bytes",
                http.bosh_session_pending_bytes,
                "must be at least http.bosh_max_body_bytes (one whole body must fit)",
            ));
        }
        if http.bosh_pending_bytes < http.bosh_session_pending_bytes {
            return Err(Violation::new(
                "http.bosh_pending_bytes",
                http.bosh_pending_bytes,
                "must be at least http.bosh_session_pending_bytes",
            ));
        }
        let at_least_one = [
            ("http.bosh_max_sessions", http.bosh_max_sessions as u64),
            (
                "http.bosh_sessions_per_ip_burst",
                u64::from(http.bosh_sessions_per_ip_burst),
            ),
            (
                "http.bosh_sessions_per_ip_per_minute",
                u64::from(http.bosh_sessions_per_ip_per_minute),
            ),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(Violation::new(key, value, "must be at least 1"));
            }
        }
        if !(1..=64).contains(&http.bosh_parse_threads) {
            return Err(Violation::new(
                "http.bosh_parse_threads",
                http.bosh_parse_threads,
                "must be from 1 to 64",
            ));
        }
        Ok(())
    }

    pub(super) fn check_admin_limits(&self) -> Result<(), Violation> {
        let admin = &self.admin;
        if admin.metrics_auth && admin.token.is_none() {
            return Err(Violation::new(
                "admin.metrics_auth",
                true,
                "needs admin.token (the bearer token /metrics then requires)",
            ));
        }
        if let Some(metrics) = admin.metrics_listen {
            let why = match admin.listen {
                Some(listen) if listen == metrics => {
                    Some("must differ from admin.listen (it is a listener of its own)")
                }
                None => Some("needs admin.listen (the admin endpoint it belongs to)"),
                Some(_) => None,
            };
            if let Some(why) = why {
                return Err(Violation::new(
                    "admin.metrics_listen",
                    Quoted(metrics.to_string()),
                    why,
                ));
            }
        }
        if !(1..=MAX_TOKEN_TTL_S).contains(&admin.max_token_ttl_s) {
            return Err(Violation::new(
                "admin.max_token_ttl_s",
                admin.max_token_ttl_s,
                format!("must be from 1 to {MAX_TOKEN_TTL_S} (ten years)"),
            ));
        }
        Ok(())
    }

    /// The BOSH bounds for the HTTP listener.
    pub fn bosh_limits(&self) -> parley_http::bosh_limits::BoshLimits {
        let http = &self.http;
        parley_http::bosh_limits::BoshLimits {
            max_body_bytes: http.bosh_max_body_bytes,
            pending_bytes: http.bosh_pending_bytes,
            session_pending_bytes: http.bosh_session_pending_bytes,
            max_sessions: http.bosh_max_sessions,
            sessions_per_ip_burst: http.bosh_sessions_per_ip_burst,
            sessions_per_ip_per_minute: http.bosh_sessions_per_ip_per_minute,
            parse_threads: http.bosh_parse_threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(toml: &str) -> String {
        Config::from_toml_str(toml, "test.toml")
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn http_hardening_keys_have_sane_defaults_and_name_themselves_when_bad() {
        let c = Config::from_toml_str("", "t").unwrap();
        assert!(c.http.trusted_proxies.is_empty());
        assert_eq!(
            c.bosh_limits(),
            parley_http::bosh_limits::BoshLimits::default()
        );
        assert!(!c.admin.metrics_auth);
        let c = Config::from_toml_str(
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nbosh_max_sessions = 5\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.bosh_limits().max_sessions, 5);
        for (toml, key) in [
            (
                "[http]\ntrusted_proxies = [\"::1\", \"proxy.local\"]\n",
                "http.trusted_proxies[1]",
            ),
            (
                "[http]\nbosh_max_body_bytes = 10\n",
                "http.bosh_max_body_bytes",
            ),
            (
                "[http]\nbosh_session_pending_bytes = 2000\n",
                "http.bosh_session_pending_bytes",
            ),
            (
                "[http]\nbosh_pending_bytes = 2000\n",
                "http.bosh_pending_bytes",
            ),
            ("[http]\nbosh_max_sessions = 0\n", "http.bosh_max_sessions"),
            (
                "[http]\nbosh_sessions_per_ip_burst = 0\n",
                "http.bosh_sessions_per_ip_burst",
            ),
            (
                "[http]\nbosh_sessions_per_ip_per_minute = 0\n",
                "http.bosh_sessions_per_ip_per_minute",
            ),
            (
                "[http]\nbosh_parse_threads = 0\n",
                "http.bosh_parse_threads",
            ),
            ("[admin]\nmetrics_auth = true\n", "admin.metrics_auth"),
            (
                "[admin]\nmetrics_listen = \"127.0.0.1:5290\"\n",
                "admin.metrics_listen",
            ),
            ("[admin]\nmax_token_ttl_s = 0\n", "admin.max_token_ttl_s"),
            (
                "[http]\nproxy_protocol_from = [\"balancer.local\"]\n",
                "http.proxy_protocol_from[0]",
            ),
            (
                "[http]\nproxy_header_timeout_s = 0\n",
                "http.proxy_header_timeout_s",
            ),
        ] {
            let e = err(toml);
            assert!(e.starts_with(&format!("test.toml: {key}")), "{toml}: {e}");
        }
    }

    /// config/parley.toml documents every hardening key (commented or at its default).
    #[test]
    fn the_example_config_documents_the_hardening_keys() {
        let doc = include_str!("../../../../config/parley.toml");
        for key in [
            "trusted_proxies =",
            "bosh_max_body_bytes =",
            "bosh_pending_bytes =",
            "bosh_session_pending_bytes =",
            "bosh_max_sessions =",
            "bosh_sessions_per_ip_burst =",
            "bosh_sessions_per_ip_per_minute =",
            "bosh_parse_threads =",
            "metrics_auth =",
            "metrics_listen =",
            "max_token_ttl_s =",
        ] {
            assert!(
                doc.contains(key),
                "config/parley.toml does not document {key}"
            );
        }
    }
}
