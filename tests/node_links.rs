//! Node-link trust (issue 10, "Cluster trust") against real `parley` processes: a stranger on
//! the peer port cannot inject anything, the handshake is bounded in time and in connections
//! per address, frames are bounded in size, an authenticated node may only act on sessions it
//! holds, a node refuses to start with open links, and a flood of link traffic does not delay
//! the etcd lease keep-alive.
//!
//! Fake peers here speak the real link protocol (`parley_cluster::link`, `::auth`) over TCP.

use std::time::Duration;

use parley_cluster::auth::{self, ClusterSecret};
use parley_cluster::link::{encode, Body, RemoteClose, NONCE_LEN};
use parley_proto::ns;
use parley_testkit::cluster::{add_users, cluster_secret, ClusterNode, Extra};
use parley_testkit::im::chat;
use parley_testkit::{poll_until, shared_etcd, shared_pg, Client};
use parley_user::{UserWire, WireState};
use parley_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One node (`n1`) of a fresh cluster, with extra `[cluster]` TOML; its key prefix.
fn one_node(cluster_extra: &str, ttl_s: u64) -> (ClusterNode, String) {
    let db = shared_pg().database();
    add_users(&db, &["alice", "bob"]);
    let prefix = parley_testkit::cluster::random_prefix("trust");
    let extra = Extra {
        cluster: cluster_extra.to_owned(),
        ..Extra::default()
    };
    let node = ClusterNode::start_with("n1", &shared_etcd().endpoint, &prefix, &db, ttl_s, &extra);
    (node, prefix)
}

/// A link to `node` authenticated as node `me` with the cluster's real secret.
async fn authenticated(node: &ClusterNode, prefix: &str, me: &str) -> TcpStream {
    let mut s = TcpStream::connect(node.peer).await.expect("peer port");
    let secret = ClusterSecret::new(&cluster_secret(prefix)).unwrap();
    auth::connect(&mut s, me, &node.id, Some(&secret), Duration::from_secs(5))
        .await
        .expect("handshake with the cluster secret");
    s
}

async fn send(s: &mut TcpStream, body: &Body) {
    s.write_all(&encode(body).unwrap()).await.expect("write");
}

/// Waits until the server closes `s` (EOF or reset); panics if it is still open after 20 s.
async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node did not close the link");
}

/// `parley_refusals_total{reason=...}` on the node's /metrics.
fn refusals(node: &ClusterNode, reason: &str) -> u64 {
    metric(
        node,
        "parley_refusals_total",
        &format!("reason=\"{reason}\""),
    )
}

fn metric(node: &ClusterNode, name: &str, label: &str) -> u64 {
    let (_, body) = node.api("/metrics");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn wait_refused(node: &ClusterNode, reason: &str, at_least: u64) {
    poll_until(
        &format!("{reason} refused on {}", node.id),
        Duration::from_secs(20),
        || (refusals(node, reason) >= at_least).then_some(()),
    );
}

/// Alice's session id on its node, from the admin API.
fn session_of(node: &ClusterNode, user: &str) -> (String, u64) {
    let (_, body) = node.api(&format!("/api/v1/users/{user}@localhost/sessions"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let s = &json["sessions"][0];
    let id = u64::from_str_radix(s["session"].as_str().expect("a session"), 16).unwrap();
    (s["jid"].as_str().unwrap().to_owned(), id)
}

async fn online(node: &ClusterNode, user: &str) -> Client {
    let mut c = Client::login(node.c2s, user, Some("res")).await;
    c.roster().await.expect("roster");
    c.available_with_priority(1).await;
    c.sync().await.expect("sync");
    c
}

/// Everything `c` received before the answer to a ping it sends now (the barrier).
async fn before_barrier(c: &mut Client) -> Vec<Element> {
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", parley_testkit::im::next_id("barrier"))
        .with_child(Element::new("ping", ns::PING));
    let (reply, before) = c.iq_collect(&ping).await.expect("barrier");
    assert_eq!(reply.attr("type"), Some("result"));
    c.clear_stash();
    before
}

fn has_body(els: &[Element], text: &str) -> bool {
    els.iter().any(|e| parley_testkit::im::body(e) == text)
}

fn to_session(jid: &str, session: u64, text: &str) -> Body {
    Body::ToSession {
        jid: jid.to_owned(),
        session,
        xml: chat(jid, "chat", text).to_string(),
    }
}

/// Without the cluster secret, nothing gets in: a peer that says Hello and then sends a
/// ToSession frame instead of a proof cannot deliver it (the target client receives nothing
/// before a barrier); the same frame from a peer that knows the secret is delivered, so the
/// handshake is what stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_tcp_peer_without_the_secret_cannot_inject_a_stanza() {
    let (node, prefix) = one_node("", 10);
    let mut alice = online(&node, "alice").await;
    let (jid, session) = session_of(&node, "alice");

    let mut raw = TcpStream::connect(node.peer).await.unwrap();
    send(
        &mut raw,
        &Body::Hello {
            node: "intruder".into(),
            software: "x".into(),
            nonce: [1; NONCE_LEN],
        },
    )
    .await;
    send(&mut raw, &to_session(&jid, session, "injected")).await;
    expect_closed(&mut raw).await;
    wait_refused(&node, "link_malformed", 1);
    let before = before_barrier(&mut alice).await;
    assert!(
        !has_body(&before, "injected"),
        "an unauthenticated frame was acted on: {before:?}"
    );

    // Control: with the secret the same frame is delivered.
    let mut peer = authenticated(&node, &prefix, "n7").await;
    send(&mut peer, &to_session(&jid, session, "from-a-member")).await;
    alice
        .expect_match("the authenticated frame", |e| {
            parley_testkit::im::body(e) == "from-a-member"
        })
        .await
        .unwrap();
}

/// A peer that answers the challenge with a proof of another secret is refused before any
/// of its frames is acted on; and a connector holding another secret refuses the node,
/// whose proof it cannot verify, before it proves anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused() {
    let (node, _prefix) = one_node("", 10);
    let mut alice = online(&node, "alice").await;
    let (jid, session) = session_of(&node, "alice");

    let mut raw = TcpStream::connect(node.peer).await.unwrap();
    send(
        &mut raw,
        &Body::Hello {
            node: "intruder".into(),
            software: "x".into(),
            nonce: [1; NONCE_LEN],
        },
    )
    .await;
    // An HMAC-SHA256 under a secret the node does not have is, to it, 32 arbitrary bytes.
    send(
        &mut raw,
        &Body::Proof {
            proof: vec![0x5a; 32],
        },
    )
    .await;
    send(&mut raw, &to_session(&jid, session, "injected")).await;
    expect_closed(&mut raw).await;
    wait_refused(&node, "link_bad_proof", 1);
    let before = before_barrier(&mut alice).await;
    assert!(!has_body(&before, "injected"), "{before:?}");

    let mut s = TcpStream::connect(node.peer).await.unwrap();
    let wrong = ClusterSecret::new(&"w".repeat(40)).unwrap();
    let r = auth::connect(&mut s, "n7", "n1", Some(&wrong), Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(auth::HandshakeError::BadProof)),
        "the node's proof must not verify under another secret: {r:?}"
    );
}

/// A peer that connects and sends nothing is closed once `cluster.handshake_timeout_ms`
/// passes (waited for as the close event, not by the clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_hello_within_the_timeout_is_closed() {
    let (node, _) = one_node("handshake_timeout_ms = 300", 10);
    let mut s = TcpStream::connect(node.peer).await.unwrap();
    expect_closed(&mut s).await;
    wait_refused(&node, "link_handshake_timeout", 1);
}

/// `cluster.max_links_per_address`: connections past the cap from one address are closed at
/// once and counted; once one closes, a new one is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_connections_per_address_than_the_cap_are_refused() {
    let (node, prefix) = one_node(
        "max_links_per_address = 2\nhandshake_timeout_ms = 60000",
        10,
    );
    let first = TcpStream::connect(node.peer).await.unwrap();
    let _second = authenticated(&node, &prefix, "n7").await;
    let mut third = TcpStream::connect(node.peer).await.unwrap();
    expect_closed(&mut third).await;
    wait_refused(&node, "link_too_many_connections", 1);
    drop(first);
    // The slot comes back when the node sees the close: a handshake succeeds again.
    poll_until("a slot is free again", Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = TcpStream::connect(node.peer).await.ok()?;
            let secret = ClusterSecret::new(&cluster_secret(&prefix)).unwrap();
            auth::connect(&mut s, "n8", "n1", Some(&secret), Duration::from_secs(5))
                .await
                .ok()
        })
    });
}

/// A peer authenticated as node B may not close, detach or attach a session that the
/// registry shows on node C (here the node itself): the frames are refused, counted, and
/// the session keeps working — messages to the bare JID still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_authenticated_as_b_cannot_close_detach_or_attach_a_session_of_c() {
    let (node, prefix) = one_node("registry_wait_ms = 300", 10);
    let mut alice = online(&node, "alice").await;
    let mut bob = online(&node, "bob").await;
    let (jid, session) = session_of(&node, "alice");
    let mut b = authenticated(&node, &prefix, "nodeB").await;

    // Close as if B had taken alice's resource over (kick_old): B holds nothing.
    send(
        &mut b,
        &Body::Close {
            jid: jid.clone(),
            session,
            reason: RemoteClose::Error {
                condition: "conflict".into(),
                text: None,
            },
            status: None,
        },
    )
    .await;
    // Detach alice's real session.
    send(
        &mut b,
        &Body::ToUser {
            user: "alice@localhost".into(),
            msg: UserWire::Detach {
                resource: "res".into(),
                session,
            },
        },
    )
    .await;
    // Attach a resource on B, available with the highest priority: if accepted, messages to
    // alice's bare JID would go to B instead of alice (RFC 6121 §8.5.2.1.1).
    send(
        &mut b,
        &Body::ToUser {
            user: "alice@localhost".into(),
            msg: UserWire::Attach {
                resource: "evil".into(),
                session: 42,
                state: WireState {
                    available: true,
                    priority: 127,
                    presence: Some(
                        "<presence xmlns='jabber:client'><priority>127</priority></presence>"
                            .into(),
                    ),
                    interested: true,
                    carbons: false,
                    directed: vec![],
                },
            },
        },
    )
    .await;
    // Close (waits for the registry, then refused), Detach (refused), Attach (waits, refused).
    wait_refused(&node, "link_not_own_session", 3);

    bob.send(&chat("alice@localhost", "chat", "still-mine"))
        .await;
    alice
        .expect_match("the message to the bare JID", |e| {
            parley_testkit::im::body(e) == "still-mine"
        })
        .await
        .expect("alice's session still works and still gets its bare-JID messages");
    let (_, again) = session_of(&node, "alice");
    assert_eq!(again, session, "the same session is alive");
}

/// A frame that waits for the registry holds up only its own user's line, not its link: B
/// attaches a resource of alice that the registry does not show (it waits up to 30 s), then
/// sends bob a stanza. Bob gets it while alice's attach is still waiting (nothing refused
/// yet); the attach is refused in the end, and alice's session is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_waiting_for_the_registry_holds_up_only_its_users_line() {
    let (node, prefix) = one_node("registry_wait_ms = 30000", 10);
    let mut alice = online(&node, "alice").await;
    let mut bob = online(&node, "bob").await;
    let (bob_jid, bob_session) = session_of(&node, "bob");
    let mut b = authenticated(&node, &prefix, "nodeB").await;
    send(&mut b, &unclaimed_attach("alice@localhost")).await;
    send(&mut b, &to_session(&bob_jid, bob_session, "overtakes")).await;
    bob.expect_match("the stanza behind another user's waiting frame", |e| {
        parley_testkit::im::body(e) == "overtakes"
    })
    .await
    .expect("a waiting frame does not hold up its link");
    assert_eq!(
        refusals(&node, "link_not_own_session"),
        0,
        "alice's attach is still waiting: bob's stanza went past it"
    );
    let (alice_jid, alice_session) = session_of(&node, "alice");
    assert!(alice_jid.ends_with("/res"), "{alice_jid}");
    alice.sync().await.expect("alice's session works");
    assert_eq!(session_of(&node, "alice").1, alice_session);
}

/// An attach of a resource of `user` that no registry entry backs: it waits for the claim.
fn unclaimed_attach(user: &str) -> Body {
    Body::ToUser {
        user: user.into(),
        msg: UserWire::Attach {
            resource: "later".into(),
            session: 7,
            // Unavailable, no presence, nothing asked for.
            state: WireState::default(),
        },
    }
}

/// The frames a peer may have waiting for the registry are bounded
/// (`cluster.registry_wait_frames`): with a bound of 2, two attaches that wait fill it; a
/// third that must wait stops the link, so the peer's next frame, for bob, waits until one
/// of the first two is refused (after `registry_wait_ms`); then it is delivered: held
/// back, not dropped. (A frame that need not wait is never held up by the bound.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frames_waiting_for_the_registry_are_bounded_per_peer() {
    let (node, prefix) = one_node("registry_wait_ms = 500\nregistry_wait_frames = 2", 10);
    let mut bob = online(&node, "bob").await;
    let (bob_jid, bob_session) = session_of(&node, "bob");
    let mut b = authenticated(&node, &prefix, "nodeB").await;
    send(&mut b, &unclaimed_attach("alice@localhost")).await;
    send(&mut b, &unclaimed_attach("carol@localhost")).await;
    // A third that must wait finds the bound full: the link stops reading behind it.
    send(&mut b, &unclaimed_attach("dave@localhost")).await;
    send(
        &mut b,
        &to_session(&bob_jid, bob_session, "after the bound"),
    )
    .await;
    bob.expect_match("the stanza held behind the full bound", |e| {
        parley_testkit::im::body(e) == "after the bound"
    })
    .await
    .expect("the frame past the bound is delivered once there is room");
    assert!(
        refusals(&node, "link_not_own_session") >= 1,
        "bob's stanza came only after a waiting attach was refused"
    );
}

/// A frame announcing more than `cluster.max_frame_bytes` cuts the link off before it is
/// buffered; nothing after it is acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_cuts_the_link_off() {
    let (node, prefix) = one_node("max_frame_bytes = 300000", 10);
    let mut alice = online(&node, "alice").await;
    let (jid, session) = session_of(&node, "alice");
    let mut b = authenticated(&node, &prefix, "n7").await;
    b.write_all(&300_001u32.to_be_bytes()).await.unwrap();
    b.write_all(&[0u8; 1024]).await.unwrap();
    // Whatever comes after is never read as a frame.
    let _ = b
        .write_all(&encode(&to_session(&jid, session, "after-oversize")).unwrap())
        .await;
    expect_closed(&mut b).await;
    wait_refused(&node, "link_frame_too_large", 1);
    let before = before_barrier(&mut alice).await;
    assert!(!has_body(&before, "after-oversize"), "{before:?}");
}

/// Without a secret or mutual TLS a node refuses to start, and says which keys to set.
#[test]
fn a_node_without_secret_or_mutual_tls_refuses_to_start_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("parley.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[cluster]\nnode_id = \"n1\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(parley_testkit::parley_binary())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .expect("run parley");
    assert!(!out.status.success(), "it must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "cluster.secret",
        "cluster.secret_file",
        "cluster.tls_cert",
        "cluster.tls_key",
        "cluster.tls_ca",
    ] {
        assert!(err.contains(key), "{key} named in: {err}");
    }
}

/// Link parsing never delays the lease keep-alive: while an authenticated peer floods frames
/// and strangers keep opening connections that pour garbage, etcd shows the node's lease
/// renewed on schedule — its remaining TTL never falls to the fence point (1/3 of the TTL
/// left) — and the node never fences. Runs until etcd has shown five renewals and the
/// authenticated flood has pushed 16 MiB through the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_keep_alive_keeps_its_schedule_under_a_link_flood() {
    use parley_cluster::etcd_client;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    const TTL: i64 = 6;
    let (node, prefix) = one_node("", TTL as u64);
    let mut etcd = etcd_client::Client::connect([shared_etcd().endpoint.as_str()], None)
        .await
        .unwrap();
    let lease = etcd
        .get(format!("{prefix}/nodes/n1"), None)
        .await
        .unwrap()
        .kvs()[0]
        .lease();

    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let cut_off = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    // An authenticated peer: stray answers of 16 KiB (decoded, judged, counted) and pings.
    // TCP back-pressure makes what it pushes what the node read.
    {
        let mut s = authenticated(&node, &prefix, "flooder").await;
        let (stop, pushed) = (stop.clone(), pushed.clone());
        let mut batch = Vec::new();
        for i in 0..16u64 {
            batch.extend(
                encode(&Body::Answer {
                    id: u128::from(i),
                    json: "x".repeat(16 << 10),
                })
                .unwrap(),
            );
            batch.extend(encode(&Body::Ping(i)).unwrap());
        }
        flooders.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                if s.write_all(&batch).await.is_err() {
                    return;
                }
                pushed.fetch_add(batch.len() as u64, Relaxed);
            }
        }));
    }
    // Strangers: connect, pour garbage until the node cuts the connection off, again.
    for _ in 0..2 {
        let (stop, cut_off, addr) = (stop.clone(), cut_off.clone(), node.peer);
        flooders.push(tokio::spawn(async move {
            let garbage = vec![0xa5u8; 64 << 10];
            while !stop.load(Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    continue;
                };
                let _ = s.write_all(&garbage).await;
                expect_closed(&mut s).await;
                cut_off.fetch_add(1, Relaxed);
            }
        }));
    }

    let mut sampling = tokio::time::interval(Duration::from_millis(100));
    let mut renewals = 0;
    let mut last = i64::MAX;
    let mut lowest = i64::MAX;
    while renewals < 5 || pushed.load(Relaxed) < (16 << 20) {
        let ttl = etcd
            .lease_time_to_live(lease, None)
            .await
            .expect("lease TTL")
            .ttl();
        if ttl > last {
            renewals += 1;
        }
        last = ttl;
        lowest = lowest.min(ttl);
        assert!(
            ttl > TTL / 3,
            "the lease fell to {ttl} s of {TTL}: the keep-alive was delayed to the fence point"
        );
        // The sampling period (twenty looks per renewal interval), not a wait for a
        // condition: it spares the shared etcd a busy loop.
        sampling.tick().await;
    }
    stop.store(true, Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    assert_eq!(metric(&node, "parley_fences_total", ""), 0, "never fenced");
    assert_eq!(node.get("/ready").map(|(s, _)| s), Some(200));
    assert!(cut_off.load(Relaxed) > 0, "the strangers were cut off");
    eprintln!(
        "flood: {} MiB of frames through the link, {} garbage connections cut off, \
         {renewals} renewals seen, lowest TTL {lowest} s of {TTL}",
        pushed.load(Relaxed) >> 20,
        cut_off.load(Relaxed)
    );
}

/// RFC 6120 §10.1 syncs from a hostile but authenticated peer: one naming more users than
/// `parley_user::MAX_SYNC_USERS` is refused and counted, an answer to a sync nobody asked is
/// a counted stray, and a flood of fences and barriers for a user leaves that user's session
/// working (each is served within its bound and answered, or dropped with no link back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_s_syncs_are_bounded_and_strays_refused_rfc6120_10_1() {
    use parley_user::SyncDepth;
    let (node, prefix) = one_node("", 10);
    let mut alice = online(&node, "alice").await;
    let mut bob = online(&node, "bob").await;
    let mut b = authenticated(&node, &prefix, "nodeB").await;

    send(
        &mut b,
        &Body::Sync {
            id: 1,
            users: vec!["alice@localhost".into(); parley_user::MAX_SYNC_USERS + 1],
            depth: SyncDepth::Barrier {
                origin: "nodeB".into(),
            },
        },
    )
    .await;
    wait_refused(&node, "link_sync_too_large", 1);
    send(&mut b, &Body::Synced { id: 2 }).await;
    wait_refused(&node, "link_stray_answer", 1);

    for id in 0..2000u128 {
        let depth = if id % 2 == 0 {
            SyncDepth::Fence
        } else {
            SyncDepth::Barrier {
                origin: "n1".into(),
            }
        };
        send(
            &mut b,
            &Body::Sync {
                id: 10 + id,
                users: vec!["alice@localhost".into(), "nobody@localhost".into()]
                    [..1 + (id % 2) as usize]
                    .to_vec(),
                depth,
            },
        )
        .await;
    }
    bob.send(&chat("alice@localhost", "chat", "after-the-syncs"))
        .await;
    alice
        .expect_match("the message after the syncs", |e| {
            parley_testkit::im::body(e) == "after-the-syncs"
        })
        .await
        .expect("alice's session works after a flood of syncs");
    assert_eq!(refusals(&node, "link_sync_too_large"), 1);
}
