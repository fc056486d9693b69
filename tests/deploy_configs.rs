//! The configs shipped for containers (issue 17) load as they are: the Kubernetes
//! ConfigMap's `parley.toml` with the per-pod variable and the Secret's files the
//! StatefulSet mounts, and each Docker Compose node's file with the variables compose.yaml
//! sets — checked by the real binary's `parley check config`, nothing spliced in.

use std::path::Path;
use std::process::Command;

/// `parley check config` on `config` with `vars`; its success and output.
fn check(config: &Path, vars: &[(&str, String)]) -> (bool, String) {
    let out = Command::new(parley_testkit::parley_binary())
        .args(["check", "config", "--config"])
        .arg(config)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run parley");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Secret files as a mounted Secret would hold them, in `dir`.
fn secrets(dir: &Path) -> Vec<(&'static str, String)> {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    vec![
        (
            "PARLEY_ADMIN__TOKEN_FILE",
            write("admin-token", "k8s-admin-token-0123456789\n"),
        ),
        (
            "PARLEY_STORAGE__URL_FILE",
            write("database-url", "postgres://parley:pw@postgres/parley\n"),
        ),
        (
            "PARLEY_CLUSTER__SECRET_FILE",
            write("cluster-secret", &"ab".repeat(32)),
        ),
    ]
}

#[test]
fn the_kubernetes_configmap_loads_with_the_pods_variables_and_secret_files() {
    let root = parley_testkit::workspace_root();
    let yaml = std::fs::read_to_string(root.join("cluster/k8s/configmap.yaml")).unwrap();
    // The block scalar under `parley.toml: |`, four spaces in.
    let toml: String = yaml
        .lines()
        .skip_while(|l| l.trim() != "parley.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(
        toml.contains("[cluster]") && toml.contains("token_file"),
        "{toml}"
    );
    assert!(!toml.contains('@'), "nothing left to splice: {toml}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("parley.toml");
    std::fs::write(&config, &toml).unwrap();
    let mut vars = secrets(dir.path());
    vars.push((
        "PARLEY_CLUSTER__PEER_ADVERTISE",
        "parley-0.parley-peers.parley.svc.cluster.local:7400".into(),
    ));
    let (ok, out) = check(&config, &vars);
    assert!(ok, "{out}");
}

#[test]
fn the_compose_node_configs_load_with_composes_variables() {
    let root = parley_testkit::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let cluster_secret = dir.path().join("cluster-secret");
    std::fs::write(&cluster_secret, "cd".repeat(32)).unwrap();
    for n in 1..=3 {
        let config = root.join(format!("cluster/config/node{n}.toml"));
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(
            !text.contains("@PARLEY"),
            "nothing left to splice in node{n}.toml"
        );
        let vars = vec![
            (
                "PARLEY_ADMIN__TOKEN",
                "compose-cluster-admin-token".to_owned(),
            ),
            (
                "PARLEY_STORAGE__URL",
                "postgres://parley:parley-dev-password@postgres:5432/parley".to_owned(),
            ),
            (
                "PARLEY_CLUSTER__SECRET_FILE",
                cluster_secret.display().to_string(),
            ),
        ];
        let (ok, out) = check(&config, &vars);
        assert!(ok, "node{n}: {out}");
    }
}

/// The container image, run alone (`docker run`), listens on every interface: the `ENV` of
/// cluster/Dockerfile's runtime stage, applied as docker does, give a valid config whose
/// client and web listeners are on 0.0.0.0.
#[test]
fn the_container_image_listens_on_every_interface() {
    let root = parley_testkit::workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("cluster/Dockerfile")).unwrap();
    // The ENV instruction: KEY=VALUE pairs over continued lines, values maybe quoted.
    let mut text = String::new();
    let mut lines = dockerfile.lines().skip_while(|l| !l.starts_with("ENV "));
    for line in lines.by_ref() {
        text.push_str(line.trim_start_matches("ENV ").trim_end_matches('\\'));
        text.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let vars: Vec<(String, String)> = text
        .split_whitespace()
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect();
    let get = |k: &str| {
        vars.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        get("PARLEY_C2S__LISTEN"),
        Some("[\"0.0.0.0:5222\"]"),
        "{vars:?}"
    );
    assert_eq!(get("PARLEY_C2S__DIRECT_TLS"), Some("[\"0.0.0.0:5223\"]"));
    assert_eq!(get("PARLEY_HTTP__LISTEN"), Some("0.0.0.0:5280"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(parley_testkit::parley_binary())
        .args(["check", "config"])
        .current_dir(dir.path())
        .env_remove("PARLEY_CONFIG")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run parley");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("config OK: embedded default"), "{said}");
}

/// The Kubernetes manifests pass a strict schema check against the Kubernetes API's own
/// OpenAPI schemas (`kubernetes-validate --strict`, PyPI, offline): no unknown field, no wrong
/// type — what `kubectl apply` would refuse.
#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let dir = parley_testkit::workspace_root().join("cluster/k8s");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // kustomize's own file is not a Kubernetes resource.
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        let out = Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&path)
            .output()
            .expect("kubernetes-validate (tests/run installs it with pip)");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("passed") && !said.contains("ERROR"),
            "{name}: {said}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "{checked} manifests");
}
