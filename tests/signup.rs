//! In-band registration of new accounts over real sockets (XEP-0077 §3.1, §8) and
//! registration by invitation (XEP-0401, XEP-0445): off by default; open with a per-address
//! limit; by invitation only, with invitations issued through the admin API and the CLI.
//! Hostile requests (bad names, short passwords, spent tokens, floods) get their stanza or
//! stream errors and the server stays up.

use std::net::SocketAddr;

use parley::config::RegisterMode;
use parley_proto::ns;
use parley_proto::register::{FEATURE_NS, INVITE_FEATURE_NS, NS, PARS_NS};
use parley_proto::sasl::Mechanism;
use parley_testkit::im::error_condition;
use parley_testkit::{Client, ClientError, TestServer};
use parley_xml::Element;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    parley_testkit::admin_json(addr, ADMIN, method, path, body)
}

fn server(mode: RegisterMode, tweak: impl FnOnce(&mut parley::config::Config)) -> TestServer {
    TestServer::start(|c| {
        c.register.mode = mode;
        c.admin.token = Some(ADMIN.into());
        tweak(c);
    })
}

/// A TLS stream, not authenticated; its features.
async fn unauthed(addr: SocketAddr) -> (Client, Element) {
    let mut c = Client::connect(addr).await;
    ok(c.open().await);
    ok(c.starttls().await);
    let features = ok(c.open().await);
    (c, features)
}

fn query_iq(id: &str, ty: &str, children: Vec<Element>) -> Element {
    let mut q = Element::new("query", NS);
    for child in children {
        q.push_child(child);
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", id)
        .with_child(q)
}

fn register(id: &str, user: &str, password: &str) -> Element {
    query_iq(
        id,
        "set",
        vec![
            Element::new("username", NS).with_text(user),
            Element::new("password", NS).with_text(password),
        ],
    )
}

fn preauth(id: &str, token: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_child(Element::new("preauth", PARS_NS).with_attr("token", token))
}

/// The condition of an error reply, or "result".
fn outcome(reply: &Element) -> String {
    if reply.attr("type") == Some("result") {
        return "result".into();
    }
    error_condition(reply).unwrap_or_else(|| format!("{reply:?}"))
}

async fn login_works(addr: SocketAddr, user: &str, password: &str) -> bool {
    let mut c = Client::connect(addr).await;
    ok(c.open().await);
    ok(c.starttls().await);
    ok(c.open().await);
    c.auth(Mechanism::ScramSha256, user, password).await.is_ok()
}

fn has_feature(features: &Element, ns: &str) -> bool {
    features.has_child("register", ns)
}

/// XEP-0077 §8 and §3.1: registration is off by default: no feature, and a registration
/// iq gets `<service-unavailable/>` while the stream goes on (the client can still log in).
#[tokio::test]
async fn xep0077_3_1_off_by_default_answers_service_unavailable() {
    let server = TestServer::start(|_| {});
    server.add_user("zed", "secret-pass");
    let (mut c, features) = unauthed(server.c2s()).await;
    assert!(!has_feature(&features, FEATURE_NS), "{features:?}");
    assert!(!has_feature(&features, INVITE_FEATURE_NS));
    let reply = ok(c.iq(&query_iq("f", "get", vec![])).await);
    assert_eq!(outcome(&reply), "service-unavailable");
    let reply = ok(c.iq(&register("r", "mallory", "long enough pw")).await);
    assert_eq!(outcome(&reply), "service-unavailable");
    ok(c.auth(Mechanism::ScramSha256, "zed", "secret-pass").await);
    assert!(!login_works(server.c2s(), "mallory", "long enough pw").await);
}

/// XEP-0077 §3.1 in open mode: the form, then an account whose name is stored normalized
/// (nodeprep), which logs in on the same stream and on a new one; a taken name is
/// `<conflict/>`, a bad name or short password `<not-acceptable/>`, half a form
/// `<bad-request/>`, a removal before logging in `<not-authorized/>`.
#[tokio::test]
async fn xep0077_3_1_open_registration_creates_accounts() {
    let server = server(RegisterMode::Open, |_| {});
    let addr = server.c2s();
    let (mut c, features) = unauthed(addr).await;
    assert!(has_feature(&features, FEATURE_NS), "{features:?}");
    let form = ok(c.iq(&query_iq("f", "get", vec![])).await);
    let q = form.get_child("query", NS).expect("the form");
    assert!(q.has_child("username", NS) && q.has_child("password", NS));
    assert!(q.has_child("instructions", NS));

    let bad = [
        (
            register("1", "bad user", "long enough pw"),
            "not-acceptable",
        ),
        (
            register("2", "x@evil.example", "long enough pw"),
            "not-acceptable",
        ),
        (register("3", "", "long enough pw"), "not-acceptable"),
        (register("4", "gina", "short"), "not-acceptable"),
        (
            query_iq(
                "5",
                "set",
                vec![Element::new("username", NS).with_text("gina")],
            ),
            "bad-request",
        ),
        (
            query_iq("6", "set", vec![Element::new("remove", NS)]),
            "not-authorized",
        ),
    ];
    for (iq, want) in bad {
        let reply = ok(c.iq(&iq).await);
        assert_eq!(outcome(&reply), want, "{iq:?}");
    }
    let reply = ok(c.iq(&register("7", "Gina", "long enough pw")).await);
    assert_eq!(outcome(&reply), "result");
    // §3.1: the new account authenticates on the same stream.
    ok(c.auth(Mechanism::ScramSha256, "gina", "long enough pw")
        .await);
    assert!(login_works(addr, "GINA", "long enough pw").await);

    let (mut again, _) = unauthed(addr).await;
    let reply = ok(again.iq(&register("8", "gina", "another password")).await);
    assert_eq!(outcome(&reply), "conflict");
    assert!(
        login_works(addr, "gina", "long enough pw").await,
        "a conflict changes nothing"
    );
}

/// Open registration is limited per address (`[register] per_ip_max`): past it,
/// `<resource-constraint/>`; names that failed are not counted.
#[tokio::test]
async fn open_registration_is_limited_per_address() {
    let server = server(RegisterMode::Open, |c| c.register.per_ip_max = 2);
    let addr = server.c2s();
    for (i, user) in ["u1", "u2"].iter().enumerate() {
        let (mut c, _) = unauthed(addr).await;
        let taken = ok(c.iq(&register("t", "u1", "long enough pw")).await);
        if i == 1 {
            assert_eq!(outcome(&taken), "conflict", "not counted");
        } else {
            assert_eq!(outcome(&taken), "result");
            continue;
        }
        let reply = ok(c.iq(&register("r", user, "long enough pw")).await);
        assert_eq!(outcome(&reply), "result");
    }
    let (mut c, _) = unauthed(addr).await;
    let reply = ok(c.iq(&register("r", "u3", "long enough pw")).await);
    assert_eq!(outcome(&reply), "resource-constraint");
    assert_eq!(
        reply.get_child("error", ns::CLIENT).unwrap().attr("type"),
        Some("wait")
    );
    assert!(!login_works(addr, "u3", "long enough pw").await);
    assert!(login_works(addr, "u2", "long enough pw").await);
}

/// XEP-0445 §3-§4 and XEP-0401 §5 in invite mode: both features; without an invitation,
/// `<not-allowed/>`; an unknown token, `<item-not-found/>`; an invitation from the admin
/// API (token and `xmpp:` URI) registers exactly as many accounts as it allows, then is
/// spent; a taken name gives its use back; a revoked one allows nothing.
#[tokio::test]
async fn xep0445_invitations_gate_registration() {
    let server = server(RegisterMode::Invite, |_| {});
    let addr = server.c2s();
    let admin_addr = server.handle.admin.unwrap();
    let (status, made) = admin(admin_addr, "POST", "/api/v1/invites", r#"{"uses": 2}"#);
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    let host = made["host"].as_str().unwrap().to_owned();
    assert_eq!(
        made["uri"].as_str().unwrap(),
        format!("xmpp:{host}?register;preauth={token}")
    );
    assert_eq!(made["uses_left"], 2);

    let (mut c, features) = unauthed(addr).await;
    assert!(has_feature(&features, FEATURE_NS) && has_feature(&features, INVITE_FEATURE_NS));
    let reply = ok(c.iq(&register("r0", "dave", "long enough pw")).await);
    assert_eq!(outcome(&reply), "not-allowed");
    let reply = ok(c.iq(&preauth("p0", "not-a-token")).await);
    assert_eq!(outcome(&reply), "item-not-found");
    let reply = ok(c.iq(&preauth("p1", &token)).await);
    assert_eq!(outcome(&reply), "result");
    let reply = ok(c.iq(&register("r1", "dave", "long enough pw")).await);
    assert_eq!(outcome(&reply), "result");
    ok(c.auth(Mechanism::ScramSha256, "dave", "long enough pw")
        .await);

    // A taken name: the use comes back.
    let (mut c, _) = unauthed(addr).await;
    assert_eq!(outcome(&ok(c.iq(&preauth("p", &token)).await)), "result");
    let reply = ok(c.iq(&register("r", "dave", "long enough pw")).await);
    assert_eq!(outcome(&reply), "conflict");
    let reply = ok(c.iq(&register("r", "erin", "long enough pw")).await);
    assert_eq!(outcome(&reply), "result");
    // Spent.
    let (mut c, _) = unauthed(addr).await;
    assert_eq!(
        outcome(&ok(c.iq(&preauth("p", &token)).await)),
        "item-not-found"
    );
    let (status, list) = admin(admin_addr, "GET", "/api/v1/invites", "");
    assert_eq!(status, 200);
    let listed = list["invites"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uses_left"], 0);
    assert!(
        !list.to_string().contains(&token),
        "listings never show tokens"
    );

    // Revoked.
    let (_, second) = admin(admin_addr, "POST", "/api/v1/invites", "");
    let id = second["id"].as_str().unwrap();
    let (status, _) = admin(admin_addr, "DELETE", &format!("/api/v1/invites/{id}"), "");
    assert_eq!(status, 200);
    let (status, _) = admin(admin_addr, "DELETE", &format!("/api/v1/invites/{id}"), "");
    assert_eq!(status, 404);
    let (mut c, _) = unauthed(addr).await;
    let reply = ok(c.iq(&preauth("p", second["token"].as_str().unwrap())).await);
    assert_eq!(outcome(&reply), "item-not-found");

    // Hostile admin input gets a 400 naming the field.
    for (body, field) in [
        (r#"{"uses": 0}"#, "uses"),
        (r#"{"uses": "x"}"#, "uses"),
        (r#"{"ttl_s": -1}"#, "ttl_s"),
        (r#"{"host": "elsewhere.example"}"#, "host"),
    ] {
        let (status, err) = admin(admin_addr, "POST", "/api/v1/invites", body);
        assert_eq!(status, 400, "{body}");
        assert!(err["detail"].as_str().unwrap().contains(field), "{err}");
    }
    assert!(login_works(addr, "erin", "long enough pw").await);
}

/// An unauthenticated connection may send a bounded number of registration iqs; past it
/// the stream is closed with `<policy-violation/>` (no loop of key derivations).
#[tokio::test]
async fn registration_requests_before_login_are_bounded() {
    let server = server(RegisterMode::Open, |_| {});
    let (mut c, _) = unauthed(server.c2s()).await;
    for i in 0..parley_session::signup::MAX_REQUESTS {
        let reply = ok(c.iq(&register(&format!("r{i}"), "bad user", "pw")).await);
        assert_eq!(outcome(&reply), "not-acceptable");
    }
    c.send(&register("last", "bad user", "pw")).await;
    assert_eq!(ok(c.expect_stream_error().await), "policy-violation");
    // The server is up.
    let (_, features) = unauthed(server.c2s()).await;
    assert!(has_feature(&features, FEATURE_NS));
}

/// `parley invite create` prints a token and its URI that register an account; `list`
/// shows it without the token; `revoke` ends it.
#[tokio::test]
async fn invite_cli_issues_lists_and_revokes() {
    let server = server(RegisterMode::Invite, |_| {});
    let config = server.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = [\"localhost\"]\n[storage]\nurl = \"sqlite://{}/parley.db\"\n",
            server.dir.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(parley_testkit::parley_binary())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (good, out, err) = run(&["invite", "create", "--uses", "1"]);
    assert!(good, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let token = lines[0];
    assert!(
        lines[1].ends_with(&format!("?register;preauth={token}")),
        "{out}"
    );
    let id = lines[2]
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix("id="))
        .unwrap()
        .to_owned();
    let (good, listed, _) = run(&["invite", "list"]);
    assert!(
        good && listed.contains(&id) && !listed.contains(token),
        "{listed}"
    );
    let (good, _, err) = run(&["invite", "create", "--uses", "0"]);
    assert!(!good && err.contains("--uses"), "{err}");

    let (mut c, _) = unauthed(server.c2s()).await;
    assert_eq!(outcome(&ok(c.iq(&preauth("p", token)).await)), "result");
    assert_eq!(
        outcome(&ok(c.iq(&register("r", "frank", "long enough pw")).await)),
        "result"
    );
    let (good, out, err) = run(&["invite", "revoke", &id]);
    assert!(good, "{out}{err}");
    let (good, _, err) = run(&["invite", "revoke", &id]);
    assert!(!good && err.contains("no such invitation"), "{err}");
}

/// In a cluster (two `parley` nodes, a real etcd and PostgreSQL): an invitation issued
/// through one node's admin API registers an account on the other node, the account logs
/// in on the first, and the invitation is spent for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0445_an_invitation_from_one_node_registers_on_another() {
    use parley_testkit::cluster::{ClusterNode, ADMIN_TOKEN};
    let db = parley_testkit::shared_pg().database();
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("signup");
    let invite_only = "\n[register]\nmode = \"invite\"\n";
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, invite_only))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let (status, body) =
        parley_testkit::http_request(nodes[0].admin, "POST", "/api/v1/invites", Some(ADMIN_TOKEN))
            .unwrap();
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = made["token"].as_str().unwrap().to_owned();

    let (mut c, features) = unauthed(nodes[1].c2s).await;
    assert!(has_feature(&features, INVITE_FEATURE_NS));
    assert_eq!(outcome(&ok(c.iq(&preauth("p", &token)).await)), "result");
    assert_eq!(
        outcome(&ok(c.iq(&register("r", "hana", "long enough pw")).await)),
        "result"
    );
    assert!(login_works(nodes[0].c2s, "hana", "long enough pw").await);
    let (mut again, _) = unauthed(nodes[0].c2s).await;
    assert_eq!(
        outcome(&ok(again.iq(&preauth("p", &token)).await)),
        "item-not-found",
        "spent on every node"
    );
}

/// Open registration's per-address limit holds for the whole cluster: with one account per
/// address allowed, a registration on one node uses it up for the other node too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_limit_holds_across_nodes() {
    use parley_testkit::cluster::ClusterNode;
    let db = parley_testkit::shared_pg().database();
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("signup-limit");
    let open = "\n[register]\nmode = \"open\"\nper_ip_max = 1\n";
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, open))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let (mut c, _) = unauthed(nodes[0].c2s).await;
    assert_eq!(
        outcome(&ok(c.iq(&register("r", "ida", "long enough pw")).await)),
        "result"
    );
    let (mut c, _) = unauthed(nodes[1].c2s).await;
    assert_eq!(
        outcome(&ok(c.iq(&register("r", "jon", "long enough pw")).await)),
        "resource-constraint"
    );
    assert!(login_works(nodes[1].c2s, "ida", "long enough pw").await);
    assert!(!login_works(nodes[1].c2s, "jon", "long enough pw").await);
}
