//! XML parser limits over real sockets (issue 10, "XML"): each hostile 256 KiB stanza
//! of `crates/xml/benches/hostile_inputs.rs` is either routed intact or ends the
//! stream with `<policy-violation/>` (RFC 6120 §4.9.3.14), and offline copies
//! (XEP-0160) of stanzas near raised limits are delivered intact instead of being
//! re-read under the default limits and lost.

use parley_proto::ns;
use parley_testkit::im::{body, chat, error_condition, next_id};
use parley_testkit::{Client, TestServer};
use parley_xml::{Element, Limits};

#[path = "../crates/xml/benches/hostile_inputs.rs"]
mod hostile_inputs;

use hostile_inputs::Expect;

fn count_elements(e: &Element) -> usize {
    1 + e.children().map(count_elements).sum::<usize>()
}

fn ping() -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", next_id("ping"))
        .with_attr("to", "localhost")
        .with_child(Element::new("ping", "urn:xmpp:ping"))
}

/// RFC 6120 §4.9.3.14 and §13.9.4: every hostile input is either routed to its
/// recipient with every element intact, or refused with `<policy-violation/>`; the
/// server stays up for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_stanzas_are_routed_intact_or_refused_with_policy_violation_rfc6120_4_9_3_14() {
    let server = TestServer::start(|_| {});
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    bob.iq(&ping()).await.expect("bob's ping");
    for h in hostile_inputs::all() {
        let xml = h.xml.replacen("nobody@localhost", "bob@localhost/b", 1);
        let mut alice = Client::login(server.c2s(), "alice", Some(h.name)).await;
        alice.send_raw(&xml).await.expect("send");
        match h.expect {
            Expect::Accepted => {
                // The ping answer shows the stanza before it was taken.
                alice
                    .iq(&ping())
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e:?}", h.name));
                let local = Element::parse(xml.as_bytes(), &Limits::default()).unwrap();
                let mut got = bob
                    .expect_match(h.name, |el| el.is("message", ns::CLIENT))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e:?}", h.name));
                // The one element the server adds: the archive's id (XEP-0359), when kept.
                if parley_proto::mam::archivable(&local) {
                    assert!(
                        got.remove_child("stanza-id", parley_proto::mam::SID)
                            .is_some(),
                        "{}: no stanza-id",
                        h.name
                    );
                }
                assert_eq!(count_elements(&got), count_elements(&local), "{}", h.name);
                assert_eq!(
                    got.attr("from"),
                    Some(format!("alice@localhost/{}", h.name).as_str())
                );
            }
            Expect::PolicyViolation => {
                let cond = alice
                    .expect_stream_error()
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e:?}", h.name));
                assert_eq!(cond, "policy-violation", "{}", h.name);
            }
        }
    }
    // Nothing refused reached bob, and the server still answers. Each input was either
    // answered (a ping) or refused (a stream error) after it would have been routed to bob's
    // session, so a ping to that session now comes back after any such message.
    bob.expect_none_before_ping("a refused stanza", |el| el.is("message", ns::CLIENT))
        .await
        .expect("no more messages");
    bob.iq(&ping()).await.expect("the server is still up");
}

/// A message with a body of `len` bytes, a branch `depth` elements deep and an
/// element with `attrs` attributes, under 20 namespace declarations.
fn big_message(to: &str, text: &str, depth: usize, attrs: usize) -> String {
    let nest_open: String = (0..depth - 1).map(|i| format!("<n{i}>")).collect();
    let nest_close: String = (0..depth - 1).rev().map(|i| format!("</n{i}>")).collect();
    let attrs: String = (0..attrs).map(|i| format!(" a{i}='v{i}'")).collect();
    let decls: String = (0..20).map(|i| format!(" xmlns:p{i}='urn:p{i}'")).collect();
    format!(
        "<message to='{to}' type='chat' id='{}'><body>{text}</body>\
         <x xmlns='urn:test'{decls}><p3:y{attrs}/>{nest_open}{nest_close}</x></message>",
        next_id("big")
    )
}

/// XEP-0160 with RFC 6120 §13.9.4: with the limits raised (512 KiB stanzas, depth 40,
/// 100 attributes), a 400 KiB message and one at the depth and attribute limits sent
/// to an offline user are stored and delivered intact at login (they used to be re-read
/// under the default limits and silently dropped); one the store cannot take is bounced
/// to its sender with an error, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_copies_near_the_configured_limits_are_delivered_intact_xep0160() {
    let server = TestServer::start(|c| {
        c.c2s.max_stanza_bytes = 512 * 1024;
        c.c2s.max_depth = 40;
        c.c2s.max_attributes = 100;
        c.offline.max_per_user = 2;
    });
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let long_text = "Wherefore art thou Romeo? &amp; &lt;3 ".repeat(420 * 1024 / 38);
    // Depth: message > x > 38 nested = 40; attributes: 100 on p3:y.
    let sent = [
        big_message("bob@localhost", &long_text, 1, 8),
        big_message("bob@localhost", "deep", 39, 100),
    ];
    assert!(sent[0].len() > 400 * 1024 && sent[0].len() < 512 * 1024);
    for xml in &sent {
        alice.send_raw(xml).await.expect("send");
    }
    // The store is full: this one comes back as an error, not lost.
    alice.send(&chat("bob@localhost", "chat", "over")).await;
    let bounce = alice
        .expect_match("the bounce", |el| el.is("message", ns::CLIENT))
        .await
        .expect("bounce");
    assert_eq!(
        error_condition(&bounce).as_deref(),
        Some("service-unavailable"),
        "{bounce}"
    );
    alice.iq(&ping()).await.expect("alice is still connected");

    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    bob.available().await;
    for xml in &sent {
        let in_stream = xml.replacen("<message ", "<message xmlns='jabber:client' ", 1);
        let want = Element::parse(in_stream.as_bytes(), &Limits::default().for_copies()).unwrap();
        let got = bob
            .expect_match("a stored message", |el| {
                el.is("message", ns::CLIENT) && el.attr("id") == want.attr("id")
            })
            .await
            .expect("the stored message is delivered");
        // Compared without printing: the body is 420 KiB.
        assert!(body(&got) == body(&want), "body differs");
        let x = |e: &Element| e.get_child("x", "urn:test").cloned();
        let (got_x, want_x) = (x(&got).expect("delivered x"), x(&want).expect("sent x"));
        assert!(got_x == want_x, "payload differs");
        assert!(count_elements(&got_x) >= 2 && !body(&want).is_empty());
    }
    // Stored messages are sent in the one step that sent those two: a ping comes back after.
    bob.expect_none_before_ping("the refused message", |el| body(el) == "over")
        .await
        .expect("not stored");
}
