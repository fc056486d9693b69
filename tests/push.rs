//! Push notifications (XEP-0357) end to end: a client registers an app server, and when a
//! message arrives while none of its sessions can show it (offline, or hibernating under
//! XEP-0198), the app server — slixmpp's ComponentXMPP (tests/clients/push_app.py), a real
//! component — receives the summary with the client's publish-options and never the body.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use parley_testkit::im::chat;
use parley_testkit::{Client, TestServer, TIMEOUT};
use parley_xml::Element;

const APP: &str = "push.localhost";
const SECRET: &str = "push-component-secret-0123456789";
const NS: &str = "urn:xmpp:push:0";

struct App {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for App {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(server: &TestServer) -> App {
        App::start_at(server.component().port())
    }

    /// The app server connected to the component port `port`.
    fn start_at(port: u16) -> App {
        let mut child = Command::new("python3")
            .arg(parley_testkit::workspace_root().join("tests/clients/push_app.py"))
            .args(["--port", &port.to_string()])
            .args(["--domain", APP, "--secret", SECRET, "--deadline", "120"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with slixmpp (tests/run installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("push_app.py: {line}");
                let _ = tx.send(line);
            }
        });
        let app = App { child, lines };
        assert_eq!(app.next(), "READY");
        app
    }

    /// The app server's next line.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT + Duration::from_secs(5))
            .expect("a line from the app server")
    }
}

fn server(min_interval_s: u64) -> TestServer {
    TestServer::start(|c| {
        c.component.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.component.secrets.insert(APP.into(), SECRET.into());
        c.push.min_interval_s = min_interval_s;
    })
}

fn enable(node: &str) -> Element {
    let form = Element::new("x", "jabber:x:data")
        .with_attr("type", "submit")
        .with_child(
            Element::new("field", "jabber:x:data")
                .with_attr("var", "FORM_TYPE")
                .with_child(
                    Element::new("value", "jabber:x:data")
                        .with_text("http://jabber.org/protocol/pubsub#publish-options"),
                ),
        )
        .with_child(
            Element::new("field", "jabber:x:data")
                .with_attr("var", "secret")
                .with_child(Element::new("value", "jabber:x:data").with_text("s3cr3t")),
        );
    Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("id", format!("enable-{node}"))
        .with_child(
            Element::new("enable", NS)
                .with_attr("jid", APP)
                .with_attr("node", node)
                .with_child(form),
        )
}

fn disable() -> Element {
    Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("id", "disable")
        .with_child(Element::new("disable", NS).with_attr("jid", APP))
}

/// alice's phone: registered for push on `node`, online, with resumable stream management
/// (so that a lost connection hibernates its session).
async fn phone(c2s: std::net::SocketAddr, node: &str) -> Client {
    let mut alice = Client::login(c2s, "alice", Some("phone")).await;
    ok(&mut alice, &enable(node)).await;
    alice.available().await;
    alice
        .sm_enable_resumable()
        .await
        .expect("resumable stream management");
    alice
}

async fn ok(client: &mut Client, iq: &Element) {
    let reply = client.iq(iq).await.expect("an answer");
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
}

/// XEP-0357 §5 and §7: registered, then offline; bob's message is stored and the app server
/// gets one notification with the count, the sender and the publish-options, no body. §6:
/// disabled, nothing more goes to that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_7_an_offline_account_is_notified_without_the_body() {
    let server = server(0);
    befriend(&server);
    let app = App::start(&server);
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    ok(&mut alice, &enable("alice-node")).await;
    go_offline(alice, &mut bob).await;
    bob.send(&chat("alice@localhost", "chat", "secret words"))
        .await;
    let line = app.next();
    assert!(line.starts_with("PUSH node=alice-node count=1 "), "{line}");
    assert!(line.contains("sender=bob@localhost/b"), "{line}");
    assert!(
        line.contains("secret=s3cr3t") && line.ends_with("body=no"),
        "{line}"
    );

    // §6: disabled, then enabled on another node: the next notification is that node's
    // (the message between them notified nobody).
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    ok(&mut alice, &disable()).await;
    go_offline(alice, &mut bob).await;
    bob.send(&chat("alice@localhost", "chat", "unnoticed"))
        .await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    ok(&mut alice, &enable("second-node")).await;
    go_offline(alice, &mut bob).await;
    bob.send(&chat("alice@localhost", "chat", "again")).await;
    let line = app.next();
    assert!(line.starts_with("PUSH node=second-node count="), "{line}");
}

/// alice and bob are contacts, so that bob sees alice leave.
fn befriend(server: &TestServer) {
    use parley_storage::{RosterItem, Subscription};
    for (owner, contact) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        server.put_roster(
            owner,
            &[RosterItem {
                jid: contact.into(),
                name: None,
                subscription: Subscription::Both,
                ask: false,
                groups: Vec::new(),
            }],
        );
    }
}

/// alice comes online and leaves; returns once bob has seen her unavailable presence, so
/// that a message to her is stored offline (no session of hers left).
async fn go_offline(mut alice: Client, bob: &mut Client) {
    alice.available().await;
    bob.expect_match("alice online", |el| {
        parley_testkit::im::is_presence_from(el, "alice@localhost/phone", "available")
    })
    .await
    .expect("alice's presence");
    drop(alice);
    bob.expect_match("alice gone", |el| {
        parley_testkit::im::is_presence_from(el, "alice@localhost/phone", "unavailable")
    })
    .await
    .expect("alice's unavailable presence");
}

/// XEP-0357 §7 with XEP-0198: the phone's connection drops, its session hibernates, and a
/// message to it notifies the app server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_7_a_hibernating_session_is_notified() {
    let server = server(0);
    let app = App::start(&server);
    let alice = phone(server.c2s(), "phone-node").await;
    alice.abort();
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.send(&chat("alice@localhost/phone", "chat", "wake up"))
        .await;
    let line = app.next();
    assert!(line.starts_with("PUSH node=phone-node count=1 "), "{line}");
    assert!(
        line.contains("sender=bob@localhost/b") && line.ends_with("body=no"),
        "{line}"
    );
}

/// Messages written to a connection that turns out to be dead (the phone lost its network
/// and nothing acknowledged them) are notified when the session starts to hibernate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_unacknowledged_messages_are_notified_on_hibernation() {
    let server = server(0);
    let app = App::start(&server);
    let mut alice = phone(server.c2s(), "n").await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    for text in ["one", "two"] {
        bob.send(&chat("alice@localhost/phone", "chat", text)).await;
    }
    // Read by the client, never acknowledged.
    alice
        .expect_message_body("two")
        .await
        .expect("the messages");
    alice.abort();
    let line = app.next();
    assert!(line.starts_with("PUSH node=n count=2 "), "{line}");
    assert!(line.contains("sender=bob@localhost/b"), "{line}");
}

/// Coalesced: with `[push] min_interval_s`, the first message is notified at once and the
/// ones that come within the interval after it together at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_notifications_are_coalesced() {
    let server = server(3);
    let app = App::start(&server);
    let alice = phone(server.c2s(), "n").await;
    alice.abort();
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.send(&chat("alice@localhost/phone", "chat", "1")).await;
    let first = app.next();
    assert!(first.starts_with("PUSH node=n count=1 "), "{first}");
    // Within the interval after it: held, then sent together.
    for text in ["2", "3"] {
        bob.send(&chat("alice@localhost/phone", "chat", text)).await;
    }
    let second = app.next();
    assert!(second.starts_with("PUSH node=n count=2 "), "{second}");
}

/// §5: only a set of one's own account; bad requests are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_5_bad_requests_are_refused() {
    let server = server(0);
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let no_node = Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("id", "x1")
        .with_child(Element::new("enable", NS).with_attr("jid", APP));
    let reply = alice.iq(&no_node).await.unwrap();
    assert_eq!(reply.attr("type"), Some("error"), "{reply}");
    assert!(reply.to_string().contains("bad-request"), "{reply}");
    let others = enable("n").with_attr("to", "bob@localhost");
    let reply = alice.iq(&others).await.unwrap();
    assert!(reply.to_string().contains("forbidden"), "{reply}");
    // Past `[push] max_registrations` (5).
    for n in 0..5 {
        ok(&mut alice, &enable(&format!("n{n}"))).await;
    }
    let reply = alice.iq(&enable("n5")).await.unwrap();
    assert!(reply.to_string().contains("resource-constraint"), "{reply}");
}

/// Cluster: the phone's session hibernates on one node, the app server is a component
/// connected to the other, and the sender is on that other node: the notification crosses
/// the node link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_a_session_hibernating_on_another_node_is_notified() {
    use parley_testkit::cluster::{add_users, random_prefix, wait_members, ClusterNode, Extra};
    let db = parley_testkit::shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    let etcd = parley_testkit::shared_etcd().endpoint.clone();
    let prefix = random_prefix("push");
    let extra = Extra {
        component: format!("secrets = {{ \"{APP}\" = \"{SECRET}\" }}"),
        ..Extra::default()
    };
    let nodes: Vec<ClusterNode> = (1..=2)
        .map(|i| ClusterNode::start_with(&format!("n{i}"), &etcd, &prefix, &db, 10, &extra))
        .collect();
    wait_members(&nodes, 2);
    let app = App::start_at(nodes[0].component.port());
    let alice = phone(nodes[1].c2s, "cluster-node").await;
    alice.abort();
    let mut bob = Client::login(nodes[0].c2s, "bob", Some("b")).await;
    bob.send(&chat("alice@localhost/phone", "chat", "across"))
        .await;
    let line = app.next();
    assert!(
        line.starts_with("PUSH node=cluster-node count=1 "),
        "{line}"
    );
    assert!(line.ends_with("body=no"), "{line}");
}

/// XEP-0357 §8: an app server that refuses a notification for good (`item-not-found`, type
/// cancel: it no longer knows the device) gets no more for that node; the account's other
/// registrations stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0357_8_a_refusing_app_server_loses_the_registration() {
    let server = server(0);
    befriend(&server);
    let app = App::start(&server);
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    ok(&mut alice, &enable("gone-device")).await;
    ok(&mut alice, &enable("kept-device")).await;
    go_offline(alice, &mut bob).await;
    bob.send(&chat("alice@localhost", "chat", "first")).await;
    let mut nodes =
        [app.next(), app.next()].map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned());
    nodes.sort();
    assert_eq!(nodes, ["node=gone-device", "node=kept-device"]);
    // The refusal removes the registration (written after the app server's answer).
    let left = tokio::time::timeout(parley_testkit::TIMEOUT, async {
        loop {
            let regs = server.with_storage(|s| async move {
                s.push_registrations("alice", "localhost").await.unwrap()
            });
            if regs.len() == 1 {
                return regs;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the refused registration is removed");
    assert_eq!(left[0].node, "kept-device");
    bob.send(&chat("alice@localhost", "chat", "second")).await;
    let line = app.next();
    assert!(line.starts_with("PUSH node=kept-device "), "{line}");
}
