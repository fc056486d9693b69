//! The admin API's OpenAPI 3.1 document (issue 17): served by a real server at
//! `/api/v1/openapi.json`, valid according to `openapi-spec-validator` (PyPI), and true to
//! the routes: every documented operation is answered by its route (401 or its own answer,
//! never the "no such endpoint" problem), and an undocumented path is not.

use std::process::Command;

use parley_testkit::TestServer;

const TOKEN: &str = "openapi-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_matches_the_routes() {
    let server =
        TestServer::start(|c| c.admin.token = Some("openapi-admin-token-0123456789".into()));
    let admin = server.handle.admin.unwrap();
    let (status, text) =
        parley_testkit::http_request(admin, "GET", "/api/v1/openapi.json", None).expect("GET");
    assert_eq!(status, 200, "served without a token: {text}");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");

    let file = server.dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (tests/run installs it)");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            // Path parameters filled with a harmless value; no token.
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let (status, body) =
                parley_testkit::http_request(admin, &method.to_uppercase(), &concrete, None)
                    .expect("an answer");
            let unrouted = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v["detail"]
                        .as_str()
                        .map(|d| d.starts_with("no such endpoint"))
                })
                .unwrap_or(false);
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed: {status} {body}"
            );
            if op.get("security") != Some(&serde_json::json!([])) && path != "/metrics" {
                assert_eq!(status, 401, "{method} {path} without a token: {body}");
            }
        }
    }
    // Without the token nothing under /api/ says whether it exists; with it, an
    // undocumented path is "no such endpoint".
    let (status, _) =
        parley_testkit::http_request(admin, "GET", "/api/v1/not-documented", None).unwrap();
    assert_eq!(status, 401);
    let (status, body) =
        parley_testkit::http_request(admin, "GET", "/api/v1/not-documented", Some(TOKEN)).unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("no such endpoint"), "{body}");
}
