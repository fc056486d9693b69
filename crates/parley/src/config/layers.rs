//! The layers above the config file: environment overrides and secrets read from files.
//!
//! * `PARLEY_SECTION__KEY=value` sets `section.key` (nested sections take one `__` each:
//!   `PARLEY_MUC__DEFAULTS__PUBLIC`). The value is read as a TOML value when it is one
//!   (`5222`, `true`, `["a", "b"]`, `"quoted"`), else as a string, so `PARLEY_ADMIN__TOKEN=abc`
//!   needs no quotes. A variable naming a key Parley does not know is an error naming the
//!   variable, like an unknown key in the file.
//! * `KEY_file = "/run/secrets/…"` beside a secret (`admin.token`, `auth.jwt_secret`,
//!   `storage.url`, `external_services.turn_secret`) reads the secret from that file (its
//!   trailing newline dropped), so compose and Kubernetes mount secrets instead of splicing
//!   them into the config. Keys that had a `_file` form before (`cluster.secret_file`,
//!   `cluster.etcd_password_file`, `component.secret_files`,
//!   `upload.s3.secret_access_key_file`) keep theirs.
//!
//! Why by hand and not `figment`: this build has no network for new crates; the whole job is
//! a walk over a `toml::Table` before the one deserialization every layer shares, which also
//! keeps "file: key (line N)" errors for what the file says.

use std::collections::BTreeMap;

use super::error::ConfigError;

/// Secrets that may be read from a file: (dotted path of the secret).
const SECRET_KEYS: [&str; 4] = [
    "admin.token",
    "auth.jwt_secret",
    "storage.url",
    "external_services.turn_secret",
];

/// Where the layers put each key they set, for errors about it.
#[derive(Debug, Default)]
pub(super) struct Provenance {
    /// Dotted key → the environment variable that set it.
    pub env: BTreeMap<String, String>,
    /// Dotted key → the `_file` key it was read through.
    pub files: BTreeMap<String, String>,
}

/// The environment variables that are overrides: `PARLEY_` + `SECTION__KEY`.
pub(super) fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .filter(|(name, _)| {
            name.strip_prefix("PARLEY_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect();
    out.sort();
    out
}

/// Whether `text` has a `_file` secret (so the layers must run even without variables).
pub(super) fn mentions_secret_file(text: &str) -> bool {
    SECRET_KEYS.iter().any(|k| {
        let key = k.rsplit('.').next().unwrap_or(k);
        text.contains(&format!("{key}_file"))
    })
}

/// A value as written in a variable: a TOML value if it parses as one, else a string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Applies the overrides to `table` and reads the secret files; what each set.
pub(super) fn apply(
    table: &mut toml::Table,
    origin: &str,
    env: &[(String, String)],
) -> Result<Provenance, ConfigError> {
    let mut provenance = Provenance::default();
    for (var, raw) in env {
        let rest = &var["PARLEY_".len()..];
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(env_error(var, rest, "is not PARLEY_SECTION__KEY"));
        }
        let dotted = path.join(".");
        let (last, parents) = path.split_last().expect("split gives one segment at least");
        let mut at = &mut *table;
        for segment in parents {
            let next = at
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = match next {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(env_error(
                        var,
                        &dotted,
                        &format!("`{segment}` is not a section"),
                    ))
                }
            };
        }
        at.insert(last.clone(), env_value(raw));
        provenance.env.insert(dotted, var.clone());
    }
    for secret in SECRET_KEYS {
        let (section, key) = secret.split_once('.').expect("section.key");
        let file_key = format!("{key}_file");
        let Some(toml::Value::Table(t)) = table.get_mut(section) else {
            continue;
        };
        let Some(path) = t.remove(&file_key) else {
            continue;
        };
        let dotted_file = format!("{section}.{file_key}");
        let invalid = |value: String, reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: dotted_file.clone(),
            value,
            reason,
        };
        let toml::Value::String(path) = path else {
            return Err(invalid(path.to_string(), "must be a file path".to_owned()));
        };
        if t.contains_key(key) {
            return Err(invalid(
                format!("{path:?}"),
                format!("{secret} is set too: set one of them"),
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(format!("{path:?}"), format!("cannot read it: {e}")))?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(invalid(format!("{path:?}"), "the file is empty".to_owned()));
        }
        t.insert(key.to_owned(), toml::Value::String(value.to_owned()));
        provenance.files.insert(secret.to_owned(), dotted_file);
    }
    Ok(provenance)
}

fn env_error(var: &str, key: &str, message: &str) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        key: key.to_ascii_lowercase(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_become_typed_keys() {
        let vars = [
            ("PARLEY_ADMIN__TOKEN", "abc"),
            ("PARLEY_C2S__MAX_AUTH_ATTEMPTS", "5"),
            ("PARLEY_C2S__LISTEN", "[\"0.0.0.0:5222\"]"),
            ("PARLEY_MUC__DEFAULTS__PUBLIC", "false"),
            ("PARLEY_FUZZ_SECONDS", "30"),
            ("HOME", "/root"),
        ];
        let env = env_overrides(vars.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(env.len(), 4, "{env:?}");
        let mut t = toml::Table::new();
        let p = apply(&mut t, "test", &env).unwrap();
        assert_eq!(t["admin"]["token"].as_str(), Some("abc"));
        assert_eq!(t["c2s"]["max_auth_attempts"].as_integer(), Some(5));
        assert_eq!(t["c2s"]["listen"][0].as_str(), Some("0.0.0.0:5222"));
        assert_eq!(t["muc"]["defaults"]["public"].as_bool(), Some(false));
        assert_eq!(p.env["admin.token"], "PARLEY_ADMIN__TOKEN");
    }

    #[test]
    fn secrets_come_from_files_and_both_forms_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-admin-token-0123\n").unwrap();
        let mut t: toml::Table =
            toml::from_str(&format!("[admin]\ntoken_file = {:?}\n", file.display())).unwrap();
        let p = apply(&mut t, "test", &[]).unwrap();
        assert_eq!(
            t["admin"]["token"].as_str(),
            Some("s3cret-admin-token-0123")
        );
        assert!(t["admin"].get("token_file").is_none());
        assert_eq!(p.files["admin.token"], "admin.token_file");
        let mut both: toml::Table = toml::from_str(&format!(
            "[admin]\ntoken = \"x\"\ntoken_file = {:?}\n",
            file.display()
        ))
        .unwrap();
        let e = apply(&mut both, "test", &[]).unwrap_err().to_string();
        assert!(
            e.contains("admin.token_file") && e.contains("set one of them"),
            "{e}"
        );
        let mut missing: toml::Table =
            toml::from_str("[auth]\njwt_secret_file = \"/nonexistent/jwt\"\n").unwrap();
        let e = apply(&mut missing, "test", &[]).unwrap_err().to_string();
        assert!(
            e.contains("auth.jwt_secret_file") && e.contains("cannot read"),
            "{e}"
        );
    }
}
