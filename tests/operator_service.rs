//! Running as a service (issue 17): the shipped systemd unit passes `systemd-analyze
//! verify`; the real `parley serve` process tells a `NOTIFY_SOCKET` READY=1 once it listens,
//! RELOADING=1 then READY=1 around a SIGHUP that loads a new certificate for new connections
//! while an existing session goes on, and STOPPING=1 when SIGTERM starts its drain.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use parley_proto::ns;
use parley_proto::sasl::{ChannelBindingType, Mechanism};
use parley_testkit::process::{deploy_in, Deployment};
use parley_testkit::Client;
use parley_xml::Element;

/// The next notification, waited for (bounded) as the event it is.
fn next_state(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A logged-in client and the `tls-server-end-point` binding of the certificate it saw.
async fn login(c2s: SocketAddr) -> (Client, Vec<u8>) {
    let mut c = Client::connect(c2s).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    let cert = c
        .binding(ChannelBindingType::TlsServerEndPoint)
        .expect("a certificate");
    c.auth(Mechanism::ScramSha256, "alice", "service pw")
        .await
        .expect("login");
    c.open().await.unwrap();
    c.bind(None).await.expect("bind");
    (c, cert)
}

/// One failed login (a wrong password); whether it was refused.
async fn fails(c2s: SocketAddr) -> bool {
    let mut c = Client::connect(c2s).await;
    c.open().await.unwrap();
    c.starttls().await.unwrap();
    c.open().await.unwrap();
    c.auth(Mechanism::ScramSha256, "alice", "not the password")
        .await
        .is_err()
}

/// Writes `config` as the server's config file, sends SIGHUP and waits for systemd's
/// RELOADING=1 then READY=1 around it.
fn reload_with(deployment: &Deployment, socket: &UnixDatagram, config: &str) {
    std::fs::write(&deployment.config, config).unwrap();
    deployment.server.signal("HUP");
    assert!(next_state(socket).starts_with("RELOADING=1"));
    assert!(next_state(socket).starts_with("READY=1"));
}

async fn ping(c: &mut Client, id: &str) {
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_child(Element::new("ping", ns::PING));
    let pong = c.iq(&ping).await.expect("pong");
    assert_eq!(pong.attr("type"), Some("result"), "{pong}");
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(
        parley_testkit::workspace_root().join("cluster/systemd/parley.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // Verified with the real binary in ExecStart (systemd checks that it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parley.service");
    let binary = parley_testkit::parley_binary();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/parley", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reload_and_stop_are_told_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let binary = parley_testkit::parley_binary();
    let deployment = deploy_in(
        dir,
        &binary,
        &[("alice@localhost", "service pw")],
        "",
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    assert!(next_state(&socket).starts_with("READY=1"));
    let c2s = SocketAddr::from(([127, 0, 0, 1], deployment.c2s_port));
    let (mut before, first_cert) = login(c2s).await;

    // A new self-signed pair in the data directory, then SIGHUP.
    let tls = deployment.dir.path().join("data/tls");
    std::fs::remove_file(tls.join("self-signed.crt")).unwrap();
    std::fs::remove_file(tls.join("self-signed.key")).unwrap();
    deployment.server.signal("HUP");
    assert!(next_state(&socket).starts_with("RELOADING=1"));
    assert!(next_state(&socket).starts_with("READY=1"));
    let (mut after, second_cert) = login(c2s).await;
    assert_ne!(
        first_cert, second_cert,
        "new connections present the new certificate"
    );
    // The session from before the reload goes on.
    ping(&mut before, "still-here").await;
    ping(&mut after, "new-one").await;
    assert!(deployment.server.log().contains("certificate reloaded"));

    // The log level is a setting SIGHUP applies: silence failed-login lines, reload, and a
    // failed login leaves none.
    let failed_lines = |log: &str| log.matches("authentication failed").count();
    assert!(fails(c2s).await);
    let failed_before = failed_lines(&deployment.server.log());
    assert_eq!(failed_before, 1, "{}", deployment.server.log());
    let mut text = std::fs::read_to_string(&deployment.config).unwrap();
    text.push_str("\n[log]\nlevel = \"info,parley::auth=warn\"\n");
    reload_with(&deployment, &socket, &text);
    assert!(deployment
        .server
        .log()
        .contains("SIGHUP: log level applied"));
    assert!(fails(c2s).await);
    assert_eq!(
        failed_lines(&deployment.server.log()),
        failed_before,
        "the new level applies"
    );

    // The connection limits are settings SIGHUP applies too: two sessions are open from
    // this address; at one per address a third connection is refused, the two go on, and
    // the reload names the section it cannot apply ([c2s]).
    let text = std::fs::read_to_string(&deployment.config).unwrap();
    let tight = text
        .replace(
            "max_connections_per_ip = 100000",
            "max_connections_per_ip = 1",
        )
        .replace("[c2s]\n", "[c2s]\nmax_stanza_bytes = 100000\n");
    assert_ne!(tight, text);
    reload_with(&deployment, &socket, &tight);
    let log = deployment.server.log();
    assert!(log.contains("SIGHUP: connection limits applied"), "{log}");
    assert!(
        log.contains("applies at the next start") && log.contains("[c2s]"),
        "{log}"
    );
    let mut third = Client::connect(c2s).await;
    let refused = third
        .open()
        .await
        .expect_err("a third connection from one address");
    assert!(format!("{refused:?}").contains("error"), "{refused:?}");
    ping(&mut before, "over-the-new-limit").await;
    ping(&mut after, "also-over-it").await;
    // Raised again: connections are taken.
    reload_with(&deployment, &socket, &text);
    let (mut again, _) = login(c2s).await;
    ping(&mut again, "raised").await;

    // The web listener's allowed origins too: a page of https://app.example gets no CORS
    // grant, then one after its origin is added and the config reloaded.
    let log = deployment.server.log();
    let http: SocketAddr = log
        .lines()
        .find(|l| l.contains("HTTP listener (WebSocket) listening"))
        .and_then(|l| l.split("local=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the web listener's address in {log}"));
    let grant = |http: SocketAddr| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        s.write_all(
            b"OPTIONS /http-bind HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\
              Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example")
    };
    assert!(!grant(http), "not an allowed origin yet");
    let with_origin = text.replace("[http]\n", "[http]\norigins = [\"https://app.example\"]\n");
    assert_ne!(with_origin, text);
    reload_with(&deployment, &socket, &with_origin);
    assert!(deployment
        .server
        .log()
        .contains("SIGHUP: [http] origins applied"));
    assert!(grant(http), "the reloaded origin is allowed");

    deployment.server.signal("TERM");
    assert!(next_state(&socket).starts_with("STOPPING=1"));
}
