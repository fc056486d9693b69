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

/// The `parley.toml` of a ConfigMap in `yaml`: the block scalar under `parley.toml: |`,
/// four spaces in.
fn configmap_toml(yaml: &str) -> String {
    yaml.lines()
        .skip_while(|l| l.trim() != "parley.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

#[test]
fn the_kubernetes_configmap_loads_with_the_pods_variables_and_secret_files() {
    let root = parley_testkit::workspace_root();
    let yaml = std::fs::read_to_string(root.join("cluster/k8s/configmap.yaml")).unwrap();
    let toml = configmap_toml(&yaml);
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

/// `kubernetes-validate --strict` on `path` (PyPI, offline: the Kubernetes API's own OpenAPI
/// schemas): whether every resource passed, and what it said.
fn kubernetes_validate(path: &Path) -> (bool, String) {
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(path)
        .output()
        .expect("kubernetes-validate (tests/run installs it with pip)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !said.contains("ERROR"), said)
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
        let (ok, said) = kubernetes_validate(&path);
        assert!(ok && said.contains("passed"), "{name}: {said}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked} manifests");
}

/// Helm 3.10.1, which tests/run fetches once into the cache (Debian has no package).
fn helm() -> std::path::PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
        });
    let helm = cache.join("parley/helm-3.10.1/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run the test command from the README (tests/run), which fetches it",
        helm.display()
    );
    helm
}

/// Runs helm with `args` in the chart's directory; its success and output.
fn run_helm(args: &[&str]) -> (bool, String) {
    let chart = parley_testkit::workspace_root().join("cluster/helm/parley");
    let out = Command::new(helm())
        .args(args)
        .current_dir(&chart)
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The Helm chart (cluster/helm/parley) with each of its CI value files: `helm lint
/// --strict` passes, `helm template` renders resources that pass the strict Kubernetes
/// schema check, and the ConfigMap's `parley.toml` loads in the real binary with the files
/// and variables the StatefulSet gives a pod. Without any secret the chart refuses to
/// render, naming the value.
#[test]
fn the_helm_chart_lints_renders_and_validates() {
    for values in [
        "ci/existing-secret-values.yaml",
        "ci/everything-values.yaml",
    ] {
        let (ok, said) = run_helm(&["lint", "--strict", ".", "-f", values]);
        assert!(ok && said.contains("0 chart(s) failed"), "{values}: {said}");
        let (ok, rendered) = run_helm(&[
            "template",
            "parley",
            ".",
            "-f",
            values,
            "--namespace",
            "xmpp",
        ]);
        assert!(ok, "{values}: {rendered}");
        for kind in ["StatefulSet", "PodDisruptionBudget", "ConfigMap", "Service"] {
            assert!(
                rendered.contains(&format!("kind: {kind}")),
                "{values}: no {kind}"
            );
        }
        assert!(rendered.contains("command: [\"parley\", \"node\", \"drain\"]"));
        assert!(rendered.contains("parley-peers.xmpp.svc.cluster.local:7400"));

        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("rendered.yaml");
        std::fs::write(&manifests, &rendered).unwrap();
        let (ok, said) = kubernetes_validate(&manifests);
        assert!(ok, "{values}: {said}");
        assert!(said.matches("passed").count() >= 6, "{values}: {said}");

        // The config, as the pod reads it.
        let toml = configmap_toml(&rendered);
        let config = dir.path().join("parley.toml");
        std::fs::write(&config, &toml).unwrap();
        let mut vars = secrets(dir.path());
        vars.push((
            "PARLEY_CLUSTER__PEER_ADVERTISE",
            "parley-0.parley-peers.xmpp.svc.cluster.local:7400".into(),
        ));
        if toml.contains("[tls]") {
            // The mounted kubernetes.io/tls Secret: a certificate made here.
            let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
            let made = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("openssl");
            assert!(made.status.success());
            vars.push(("PARLEY_TLS__CERT", cert.display().to_string()));
            vars.push(("PARLEY_TLS__KEY", key.display().to_string()));
        }
        let (ok, out) = check(&config, &vars);
        assert!(ok, "{values}: {out}\n{toml}");
    }
    let (ok, said) = run_helm(&["template", "parley", "."]);
    assert!(!ok && said.contains("secrets.adminToken"), "{said}");
}
