//! Client State Indication (XEP-0352) over real sockets: the stream feature, what an
//! inactive client gets late (presence, only the latest per sender; messages without a
//! body) and what it gets at once (a message with a body, an iq answer, which first send
//! everything held), `<active/>` flushing, and the bound on what is held.

use parley_proto::ns;
use parley_proto::sasl::Mechanism;
use parley_testkit::im::{chat, next_id};
use parley_testkit::{Client, ClientError, TestServer};
use parley_xml::Element;

const CSI: &str = "urn:xmpp:csi:0";

fn ok<T>(r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn show(show: &str, to: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("to", to)
        .with_child(Element::new("show", ns::CLIENT).with_text(show))
}

fn composing(to: &str, n: u32) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("id", format!("state-{n}"))
        .with_child(Element::new(
            "composing",
            "http://jabber.org/protocol/chatstates",
        ))
}

/// Sends `<inactive/>` (or `<active/>`) and a ping, and waits for the ping's answer: the
/// server has then handled the indication.
async fn indicate(c: &mut Client, state: &str) -> Vec<Element> {
    c.send(&Element::new(state, CSI)).await;
    let id = next_id("csi-ping");
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id.as_str())
        .with_child(Element::new("ping", "urn:xmpp:ping"));
    let (_, before) = ok(c.iq_collect(&ping).await);
    c.clear_stash();
    before
}

/// Directed presence goes through the sender's user actor, chat messages straight to the
/// recipient's session: a roster request, answered by that same actor after it handled
/// the presence, keeps the test's order.
async fn presence_barrier(c: &mut Client) {
    ok(c.roster().await);
}

/// Reads elements up to and including the first one `last` matches.
async fn until(c: &mut Client, last: impl Fn(&Element) -> bool) -> Vec<Element> {
    let mut seen = Vec::new();
    loop {
        let el = c
            .recv_element()
            .await
            .unwrap_or_else(|e| panic!("{e}; before it: {seen:?}"));
        let done = last(&el);
        seen.push(el);
        if done {
            return seen;
        }
    }
}

fn show_of(el: &Element) -> Option<String> {
    el.get_child("show", ns::CLIENT).map(|s| s.text())
}

/// XEP-0352 §3: `<csi xmlns='urn:xmpp:csi:0'/>` is among the features once the client
/// has authenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0352_3_csi_is_a_stream_feature_after_authentication() {
    let server = TestServer::start(|_| {});
    let mut c = Client::connect(server.c2s()).await;
    let first = ok(c.open().await);
    assert!(
        first.get_child("csi", CSI).is_none(),
        "not before auth: {first}"
    );
    ok(c.starttls().await);
    ok(c.open().await);
    ok(c.auth(Mechanism::ScramSha256, "alice", "password").await);
    let features = ok(c.open().await);
    assert!(features.get_child("csi", CSI).is_some(), "{features}");
}

/// XEP-0352 §5 (the server's business rules): while inactive, a contact's presence waits
/// and only its latest survives, a chat state waits; a message with a body sends what
/// waited first, in order, then itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0352_5_an_inactive_client_gets_the_latest_presence_late_and_a_body_flushes() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    // Her own presence comes back first: nothing of hers is in what is held below.
    ok(alice
        .expect_presence_from("alice@localhost/phone", "available")
        .await);
    indicate(&mut alice, "inactive").await;
    let mut bob = Client::login(server.c2s(), "bob", Some("desk")).await;
    let to = "alice@localhost/phone";
    bob.send(&show("away", to)).await;
    bob.send(&show("dnd", to)).await;
    presence_barrier(&mut bob).await;
    bob.send(&composing(to, 1)).await;
    bob.send(&chat(to, "chat", "wake up")).await;
    let seen = until(&mut alice, |el| parley_testkit::im::body(el) == "wake up").await;
    let from_bob: Vec<&Element> = seen
        .iter()
        .filter(|el| el.attr("from") == Some("bob@localhost/desk"))
        .collect();
    assert_eq!(from_bob.len(), 3, "{seen:?}");
    assert_eq!(
        show_of(from_bob[0]).as_deref(),
        Some("dnd"),
        "the latest presence only"
    );
    assert_eq!(from_bob[1].attr("id"), Some("state-1"));
    assert_eq!(parley_testkit::im::body(from_bob[2]), "wake up");
}

/// XEP-0352 §4: `<active/>` sends what waited at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0352_4_going_active_sends_what_waited() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    // Her own presence comes back first: nothing of hers is in what is held below.
    ok(alice
        .expect_presence_from("alice@localhost/phone", "available")
        .await);
    indicate(&mut alice, "inactive").await;
    let mut bob = Client::login(server.c2s(), "bob", Some("desk")).await;
    bob.send(&show("away", "alice@localhost/phone")).await;
    presence_barrier(&mut bob).await;
    bob.send(&composing("alice@localhost/phone", 7)).await;
    // A barrier through bob's own session: both stanzas have been routed to alice.
    let id = next_id("bob-ping");
    ok(bob
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.as_str())
            .with_child(Element::new("ping", "urn:xmpp:ping")))
        .await);
    let before = indicate(&mut alice, "active").await;
    let from_bob: Vec<&Element> = before
        .iter()
        .filter(|el| el.attr("from") == Some("bob@localhost/desk"))
        .collect();
    assert_eq!(
        from_bob.len(),
        2,
        "sent on <active/>, before the ping's answer: {before:?}"
    );
    assert_eq!(show_of(from_bob[0]).as_deref(), Some("away"));
    assert_eq!(from_bob[1].attr("id"), Some("state-7"));
}

/// `[c2s] csi_max_held`: past the bound, what waited goes out without anything urgent;
/// the replaced presence never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0352_what_an_inactive_client_holds_is_bounded() {
    let server = TestServer::start(|c| c.c2s.csi_max_held = 2);
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    // Her own presence comes back first: nothing of hers is in what is held below.
    ok(alice
        .expect_presence_from("alice@localhost/phone", "available")
        .await);
    indicate(&mut alice, "inactive").await;
    let mut bob = Client::login(server.c2s(), "bob", Some("desk")).await;
    let to = "alice@localhost/phone";
    bob.send(&show("away", to)).await;
    bob.send(&show("dnd", to)).await; // replaces "away": one held
    presence_barrier(&mut bob).await;
    bob.send(&composing(to, 1)).await; // two held
    bob.send(&composing(to, 2)).await; // three: past the bound, all go
    let seen = until(&mut alice, |el| el.attr("id") == Some("state-2")).await;
    let from_bob: Vec<&Element> = seen
        .iter()
        .filter(|el| el.attr("from") == Some("bob@localhost/desk"))
        .collect();
    assert_eq!(from_bob.len(), 3, "{seen:?}");
    assert_eq!(show_of(from_bob[0]).as_deref(), Some("dnd"));
}

/// XEP-0352 with XEP-0198 §5: what an inactive client's session held is not lost with its
/// connection: the session hibernates with it in the Stream Management queue, and the
/// resumed stream gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0352_held_stanzas_survive_a_lost_connection_through_resumption() {
    use parley_testkit::sm;
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("phone")).await;
    alice.available().await;
    ok(alice
        .expect_presence_from("alice@localhost/phone", "available")
        .await);
    let id = ok(alice.sm_enable_resumable().await);
    indicate(&mut alice, "inactive").await;
    let mut bob = Client::login(server.c2s(), "bob", Some("desk")).await;
    let to = "alice@localhost/phone";
    bob.send(&show("dnd", to)).await;
    presence_barrier(&mut bob).await;
    bob.send(&composing(to, 3)).await;
    let barrier = next_id("bob-ping");
    ok(bob
        .iq(&Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", barrier.as_str())
            .with_child(Element::new("ping", "urn:xmpp:ping")))
        .await);
    alice.abort();

    let mut again = Client::authed(server.c2s(), "alice").await;
    // h=0: nothing acknowledged, everything unacknowledged comes again, held ones included.
    let answer = ok(again.sm_send_for_answer(&sm::resume(&id, 0)).await);
    assert!(sm::is(&answer, "resumed"), "{answer}");
    let seen = until(&mut again, |el| el.attr("id") == Some("state-3")).await;
    assert!(
        seen.iter()
            .any(|el| el.attr("from") == Some("bob@localhost/desk")
                && show_of(el).as_deref() == Some("dnd")),
        "the held presence came with the resumed stream: {seen:?}"
    );
}
