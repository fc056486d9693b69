//! Account self-service over real sockets (XEP-0077 §3.2-§3.3): a logged-in user changes its
//! password (its other sessions end, on every node, and its tokens go; the old password stops
//! working, the new one works, the changing session stays) or removes its account (answered,
//! then every session ends and the account is gone); hostile requests are refused.

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::cluster::{add_users, ClusterNode};
use parley_testkit::im::error_condition;
use parley_testkit::{shared_etcd, shared_pg, Client, ClientError, TestServer};
use parley_xml::Element;

const REGISTER: &str = "jabber:iq:register";

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn register_iq(id: &str, ty: &str, children: Vec<Element>) -> Element {
    let mut q = Element::new("query", REGISTER);
    for c in children {
        q.push_child(c);
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", ty)
        .with_attr("id", id)
        .with_child(q)
}

fn change(user: &str, password: &str) -> Element {
    register_iq(
        "change",
        "set",
        vec![
            Element::new("username", REGISTER).with_text(user),
            Element::new("password", REGISTER).with_text(password),
        ],
    )
}

/// A fresh login with `password`; the SASL outcome.
async fn login_with(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> Result<(), ClientError> {
    let mut c = Client::connect(addr).await;
    c.open().await?;
    c.starttls().await?;
    c.open().await?;
    c.auth(Mechanism::ScramSha256, user, password).await
}

/// The session was ended by the server with `<not-authorized/>`.
async fn ended_not_authorized(c: &mut Client) {
    let cond = ok(c.expect_stream_error().await);
    assert_eq!(cond, "not-authorized");
}

/// XEP-0077 §3.3: the password changes for every mechanism; the user's other sessions end
/// (as the admin API's sign-out does) and its tokens go; the session that asked stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0077_3_3_a_password_change_ends_the_other_sessions_and_tokens() {
    let server = TestServer::start(|_| {});
    let mut phone = Client::login(server.c2s(), "alice", Some("phone")).await;
    let mut laptop = Client::login(server.c2s(), "alice", Some("laptop")).await;
    server.with_storage(|s| async move {
        let token = parley_storage::TokenRecord {
            id: "t1".into(),
            username: "alice".into(),
            host: "localhost".into(),
            secret_hash: vec![0; 32],
            purpose: "test".into(),
            created_ms: 0,
            expires_ms: None,
            last_used_ms: None,
        };
        s.token_put(&token).await.unwrap();
    });
    // The form for a registered account (§3.2).
    let form = ok(phone.iq(&register_iq("get", "get", vec![])).await);
    let q = form.get_child("query", REGISTER).expect("query");
    assert!(q.has_child("registered", REGISTER), "{form}");
    assert_eq!(
        q.get_child("username", REGISTER)
            .map(|u| u.text())
            .as_deref(),
        Some("alice")
    );

    let r = ok(phone.iq(&change("alice", "a new secret")).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    ended_not_authorized(&mut laptop).await;
    // The session that asked goes on.
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "alive")
        .with_child(Element::new("ping", ns::PING));
    assert_eq!(ok(phone.iq(&ping).await).attr("type"), Some("result"));
    let tokens =
        server.with_storage(|s| async move { s.tokens_of("alice", "localhost").await.unwrap() });
    assert!(tokens.is_empty(), "{tokens:?}");
    assert!(
        login_with(server.c2s(), "alice", "password").await.is_err(),
        "the old password"
    );
    login_with(server.c2s(), "alice", "a new secret")
        .await
        .expect("the new password");
    // Someone else's name, an empty password, a password SASLprep forbids: refused.
    let r = ok(phone.iq(&change("bob", "x")).await);
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r}");
    let r = ok(phone.iq(&change("alice", "")).await);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("not-acceptable"),
        "{r}"
    );
    let r = ok(phone.iq(&change("alice", "bad\u{0007}bell")).await);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("not-acceptable"),
        "{r}"
    );
    let r = ok(phone
        .iq(&register_iq(
            "junk",
            "set",
            vec![Element::new("email", REGISTER)],
        ))
        .await);
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r}");
}

/// XEP-0077 §3.2: the account is removed, the request answered, then every session of the
/// account ends with `<not-authorized/>` and nobody logs in as it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0077_3_2_an_account_removes_itself() {
    let server = TestServer::start(|_| {});
    let mut phone = Client::login(server.c2s(), "alice", Some("phone")).await;
    let mut laptop = Client::login(server.c2s(), "alice", Some("laptop")).await;
    let r = ok(phone
        .iq(&register_iq(
            "remove",
            "set",
            vec![Element::new("remove", REGISTER)],
        ))
        .await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    ended_not_authorized(&mut phone).await;
    ended_not_authorized(&mut laptop).await;
    let account =
        server.with_storage(|s| async move { s.account("alice", "localhost").await.unwrap() });
    assert!(account.is_none());
    assert!(login_with(server.c2s(), "alice", "password").await.is_err());
}

/// XEP-0077 in a cluster (two nodes, real etcd and PostgreSQL): a password change on one
/// node ends the account's session on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0077_a_password_change_ends_sessions_on_other_nodes() {
    let db = shared_pg().database();
    add_users(&db, &["alice"]);
    let etcd = shared_etcd().endpoint.clone();
    let prefix = parley_testkit::cluster::random_prefix("ibr");
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start(&format!("n{i}"), &etcd, &prefix, &db, 10, ""))
        .collect();
    parley_testkit::cluster::wait_members(&nodes, 2);
    let mut here = Client::login(nodes[0].c2s, "alice", Some("n1")).await;
    let mut there = Client::login(nodes[1].c2s, "alice", Some("n2")).await;
    let r = ok(here.iq(&change("alice", "changed on n1")).await);
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    ended_not_authorized(&mut there).await;
    login_with(nodes[1].c2s, "alice", "changed on n1")
        .await
        .expect("the new password on n2");
}
