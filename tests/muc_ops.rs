//! Multi-user chat (XEP-0045) from the operator's side and at its limits, against a real
//! server: the service's caps with their errors, hostile input, destruction (§10.9), and
//! the admin API, `parley room` and `/metrics`.

#[path = "muc/common.rs"]
mod common;
use common::*;

const TOKEN: &str = "admin-token-0123456789abcdef";

/// message rate (resource-constraint), from `[muc]`.
#[actix_rt::test]
async fn muc_limits_refuse_with_the_right_errors() {
    let server = TestServer::start(|c| {
        c.muc.max_occupants = 2;
        c.muc.defaults.max_occupants = 2;
        c.muc.message_burst = 3;
        c.muc.messages_per_minute = 1;
    });
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let mut carol = Client::login(server.c2s(), "carol", Some("c")).await;
    let r = open_room(&mut alice, "small").await;
    join(&mut bob, &r, "Bob").await;
    carol.send(&join_presence(&r, "Carol")).await;
    assert_eq!(
        join_error(&mut carol, &r, "Carol").await,
        "service-unavailable",
        "§7.2.10"
    );

    for i in 0..3 {
        bob.send(&groupchat(&r, &format!("b{i}"))).await;
        groupchat_from(&mut bob, &format!("{r}/Bob"), &format!("b{i}")).await;
    }
    bob.send(&groupchat(&r, "too fast")).await;
    let err = bob
        .expect_match("an error", |el| {
            el.name() == "message" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("resource-constraint")
    );
}

/// the room is gone (a later join creates a new one).
#[actix_rt::test]
async fn xep0045_10_9_destroying_a_room() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "doomed").await;
    join(&mut bob, &r, "Bob").await;
    let destroy = Element::new("destroy", OWNER)
        .with_attr("jid", room("elsewhere"))
        .with_child(Element::new("reason", OWNER).with_text("moving"));
    let reply = alice.iq(&owner_set(&r, destroy)).await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let out = bob
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    let d = out
        .get_child("x", USER)
        .and_then(|x| x.get_child("destroy", USER))
        .expect("destroy");
    assert_eq!(d.attr("jid"), Some(room("elsewhere").as_str()));
    let me = join(&mut bob, &r, "Bob").await;
    assert!(codes(&me).contains(&201), "a new room: {me}");
}

/// occupants and messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muc_admin_api_cli_and_metrics() {
    let server = TestServer::start(|c| c.admin.token = Some(TOKEN.into()));
    let admin = server.handle.admin.expect("admin endpoint");
    let api = move |method: &'static str, path: String| {
        tokio::task::spawn_blocking(move || {
            parley_testkit::admin_json(admin, TOKEN, method, &path, "")
        })
    };
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let mut bob = Client::login(server.c2s(), "bob", Some("b")).await;
    let r = open_room(&mut alice, "ops").await;
    join(&mut bob, &r, "Bob").await;
    alice.send(&groupchat(&r, "hi")).await;
    groupchat_from(&mut bob, &format!("{r}/Alice"), "hi").await;

    let (status, list) = api("GET", "/api/v1/rooms".into()).await.unwrap();
    assert_eq!(status, 200, "{list}");
    let rooms = list["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{list}");
    assert_eq!(rooms[0]["jid"], r.as_str());
    assert_eq!(rooms[0]["occupants"], 2);
    let (status, one) = api("GET", format!("/api/v1/rooms/{r}")).await.unwrap();
    assert_eq!(status, 200, "{one}");
    let occupants: Vec<_> = one["occupants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["jid"].as_str().unwrap().to_owned())
        .collect();
    assert!(occupants.contains(&"bob@localhost/b".to_owned()), "{one}");
    assert_eq!(
        api("GET", format!("/api/v1/rooms/nope@{SERVICE}"))
            .await
            .unwrap()
            .0,
        404
    );
    let (status, _) = tokio::task::spawn_blocking(move || {
        parley_testkit::admin_json(admin, "wrong-token-0123456789", "GET", "/api/v1/rooms", "")
    })
    .await
    .unwrap();
    assert_eq!(status, 401);

    let config = server.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let cli = {
        let config = config.clone();
        move |args: Vec<String>| {
            std::process::Command::new(parley_testkit::parley_binary())
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
                .expect("run parley")
        }
    };
    let out = tokio::task::spawn_blocking({
        let cli = cli.clone();
        let r = r.clone();
        move || {
            cli(vec![
                "room".into(),
                "kick".into(),
                r,
                "Bob".into(),
                "--reason".into(),
                "off topic".into(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kicked = bob
        .expect_presence_from(&format!("{r}/Bob"), "unavailable")
        .await
        .unwrap();
    assert!(codes(&kicked).contains(&307), "{kicked}");
    assert_eq!(
        item(&kicked)
            .and_then(|i| i.get_child("reason", USER))
            .map(Element::text)
            .as_deref(),
        Some("off topic")
    );
    let out = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(vec!["room".into(), "list".into()])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The table row: room, occupants, listed, lifetime.
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [r.as_str(), "1", "public", "temporary"]),
        "{stdout}"
    );

    let (status, metrics) = tokio::task::spawn_blocking(move || {
        let (s, _) = parley_testkit::admin_json(admin, TOKEN, "GET", "/metrics", "");
        let mut body = String::new();
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(admin).unwrap();
        write!(
            c,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        c.read_to_string(&mut body).unwrap();
        (s, body)
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("parley_muc_rooms{node="), "{metrics}");
    assert!(
        metrics.contains("parley_muc_messages_total{node=")
            && metrics.contains("result=\"relayed\""),
        "{metrics}"
    );

    let (status, _) = api("DELETE", format!("/api/v1/rooms/{r}?reason=closing"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let gone = alice
        .expect_presence_from(&format!("{r}/Alice"), "unavailable")
        .await
        .unwrap();
    assert!(
        gone.get_child("x", USER)
            .and_then(|x| x.get_child("destroy", USER))
            .is_some(),
        "{gone}"
    );
    let (_, list) = api("GET", "/api/v1/rooms".into()).await.unwrap();
    assert_eq!(list["rooms"].as_array().unwrap().len(), 0, "{list}");
}

/// stays as it was.
#[actix_rt::test]
async fn muc_hostile_input_gets_the_right_errors() {
    let server = TestServer::start(|_| {});
    let mut alice = Client::login(server.c2s(), "alice", Some("a")).await;
    let r = open_room(&mut alice, "hostile").await;
    let mut query = Element::new("query", ADMIN);
    for i in 0..101 {
        query.push_child(
            Element::new("item", ADMIN)
                .with_attr("nick", format!("n{i}"))
                .with_attr("role", "visitor"),
        );
    }
    let iq = Element::new("iq", CLIENT)
        .with_attr("type", "set")
        .with_attr("id", next_id("many"))
        .with_attr("to", r.as_str())
        .with_child(query);
    let reply = alice.iq(&iq).await.unwrap();
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("bad-request"),
        "{reply}"
    );
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_maxusers", "999999999")]).await;
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("not-acceptable"),
        "{reply}"
    );
    let reply = configure(&mut alice, &r, &[("muc#roomconfig_whois", "<script>")]).await;
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("not-acceptable"),
        "{reply}"
    );
    let long = "n".repeat(1100);
    alice.send(&join_presence(&r, &long)).await;
    let err = alice
        .expect_match("an error", |el| {
            el.name() == "presence" && el.attr("type") == Some("error")
        })
        .await
        .unwrap();
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("jid-malformed"),
        "{err}"
    );
}
