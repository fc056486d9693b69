//! The attacks themselves: each returns, in a few words, what the server did.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{self, attr, post, read_answer, request, websocket, ws_text};
use super::Victim;
use crate::client::Session;
use crate::{proc_sample, BenchError, Shared, Target};

type Outcome<'a> = Pin<Box<dyn Future<Output = Result<String, BenchError>> + Send + 'a>>;
/// An attack: the victim and the flood duration in seconds.
pub type Attack = for<'a> fn(&'a Victim, f64) -> Outcome<'a>;

/// Every attack, in report order.
pub const ALL: &[(&str, Attack)] = &[
    ("sasl-auth-flood", |v, s| Box::pin(sasl_flood(v, s))),
    ("websocket-open-flood", |v, s| Box::pin(ws_open_flood(v, s))),
    ("bosh-restart-flood", |v, s| {
        Box::pin(bosh_restart_flood(v, s))
    }),
    ("bosh-40x256k-one-sid", |v, _| {
        Box::pin(bosh_big_requests(v))
    }),
    ("bosh-2000-creations", |v, _| {
        Box::pin(bosh_creation_storm(v))
    }),
    ("crafted-xml-before-tls", |v, _| Box::pin(crafted_xml(v))),
    ("iqs-to-3000-unknown-jids", |v, _| Box::pin(unknown_jids(v))),
    ("one-account-fills-storage", |v, s| {
        Box::pin(storage_fill(v, s))
    }),
    ("3000-connections-one-ip", |v, _| {
        Box::pin(connection_flood(v))
    }),
];

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
const BOSH_NS: &str = "xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'";

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Writes `unit` over and over in 64 KiB batches, never reading, until `secs` pass, the server
/// closes, or it stops reading for 2 s at a time; then reads what is left. Says which.
async fn flood(mut stream: TcpStream, unit: &[u8], secs: f64) -> String {
    let batch: Vec<u8> = unit.repeat((65536 / unit.len()).max(1));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let (mut sent, mut blocked) = (0u64, 0u32);
    let ended = loop {
        if Instant::now() >= deadline {
            break "still open at the end";
        }
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len() as u64,
            Ok(Err(_)) => break "closed by the server",
            Err(_) => blocked += 1,
        }
    };
    // Whatever the server still sends, up to its close.
    let mut got = 0u64;
    let mut buf = vec![0u8; 65536];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got += n as u64,
            Err(_) => break false,
        }
    };
    let took = started.elapsed().as_secs_f64();
    let stalls = if blocked > 0 {
        format!(", server stopped reading ({blocked}× 2 s)")
    } else {
        String::new()
    };
    let end = if closed && ended != "closed by the server" {
        "closed by the server after the flood"
    } else {
        ended
    };
    format!(
        "{end} after {} sent in {took:.1} s{stalls}; {} answered",
        mib(sent),
        mib(got)
    )
}

async fn connect(addr: std::net::SocketAddr) -> Result<TcpStream, BenchError> {
    TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))
}

/// SASL `<auth/>` without an initial response again and again (each earns a challenge, never a
/// failure), never reading what the server answers.
async fn sasl_flood(v: &Victim, secs: f64) -> Result<String, BenchError> {
    let mut s = connect(v.c2s).await?;
    s.write_all(HEADER.as_bytes())
        .await
        .map_err(|e| BenchError::io("writing", e))?;
    let unit = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>";
    Ok(flood(s, unit, secs).await)
}

/// RFC 7395 `<open/>` again and again over one WebSocket, never reading.
async fn ws_open_flood(v: &Victim, secs: f64) -> Result<String, BenchError> {
    let (status, s) = websocket(v.http).await?;
    if status != 101 {
        return Ok(format!("upgrade refused with HTTP {status}"));
    }
    let unit =
        ws_text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    Ok(flood(s, &unit, secs).await)
}

async fn bosh_create(v: &Victim) -> Result<Option<String>, BenchError> {
    let body = format!(
        "<body content='text/xml; charset=utf-8' hold='1' rid='1000' to='localhost' ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0' {BOSH_NS}/>"
    );
    let answer = request(v.http, "/http-bind", &body).await?;
    Ok(attr(&answer.body, "sid"))
}

/// BOSH requests with `xmpp:restart` (a new stream each), pipelined on one connection with
/// rising RIDs, never reading.
async fn bosh_restart_flood(v: &Victim, secs: f64) -> Result<String, BenchError> {
    let Some(sid) = bosh_create(v).await? else {
        return Ok("session creation refused".into());
    };
    let mut s = connect(v.http).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let (mut rid, mut sent) = (1001u64, 0u64);
    let ended = loop {
        if Instant::now() >= deadline {
            break "still open at the end";
        }
        let mut batch = Vec::new();
        while batch.len() < 65536 {
            let body = format!(
                "<body rid='{rid}' sid='{sid}' to='localhost' xml:lang='en' xmpp:restart='true' {BOSH_NS}/>"
            );
            batch.extend(post(v.http, "/http-bind", &body));
            rid += 1;
        }
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len() as u64,
            Ok(Err(_)) => break "closed by the server",
            Err(_) => {}
        }
    };
    Ok(format!(
        "{ended} after {} ({} requests) in {:.1} s",
        mib(sent),
        rid - 1001,
        started.elapsed().as_secs_f64()
    ))
}

/// 40 requests of 256 KiB each on one SID, all at once, read only after all are sent.
async fn bosh_big_requests(v: &Victim) -> Result<String, BenchError> {
    let Some(sid) = bosh_create(v).await? else {
        return Ok("session creation refused".into());
    };
    let filler = "A".repeat(256 * 1024 - 300);
    let mut streams = Vec::new();
    for i in 0..40u64 {
        let body = format!(
            "<body rid='{}' sid='{sid}' {BOSH_NS}><message to='user1@localhost' type='chat' xmlns='jabber:client'><body>{filler}</body></message></body>",
            1001 + i
        );
        let mut s = connect(v.http).await?;
        let req = post(v.http, "/http-bind", &body);
        streams.push(tokio::spawn(async move {
            let wrote = tokio::time::timeout(Duration::from_secs(10), s.write_all(&req)).await;
            (s, matches!(wrote, Ok(Ok(()))))
        }));
    }
    let mut written = Vec::new();
    for t in streams {
        if let Ok(w) = t.await {
            written.push(w);
        }
    }
    let complete = written.iter().filter(|(_, ok)| *ok).count();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let reads = written.into_iter().map(|(mut s, _)| {
        tokio::spawn(async move {
            match read_answer(&mut s).await {
                Ok(a) if a.status == 200 => match attr(&a.body, "condition") {
                    Some(c) => format!("200 {c}"),
                    None => "200".to_owned(),
                },
                Ok(a) if a.status == 0 => "closed".to_owned(),
                Ok(a) => a.status.to_string(),
                Err(_) => "error".to_owned(),
            }
        })
    });
    for r in reads.collect::<Vec<_>>() {
        if let Ok(k) = r.await {
            *statuses.entry(k).or_default() += 1;
        }
    }
    Ok(format!("{complete}/40 fully sent; answers: {statuses:?}"))
}

/// 2,000 session creations from one address, 50 at a time.
async fn bosh_creation_storm(v: &Victim) -> Result<String, BenchError> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let sem = sem.clone();
        let addr = v.http;
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let body = format!(
                "<body content='text/xml; charset=utf-8' hold='1' rid='{}' to='localhost' ver='1.6' wait='60' xmpp:version='1.0' {BOSH_NS}/>",
                1000 + i
            );
            matches!(request(addr, "/http-bind", &body).await,
                Ok(a) if a.status == 200 && attr(&a.body, "sid").is_some())
        }));
    }
    let mut created = 0;
    for t in tasks {
        if matches!(t.await, Ok(true)) {
            created += 1;
        }
    }
    Ok(format!(
        "{created} sessions created, {} refused",
        2000 - created
    ))
}

/// Hostile inputs of about 250 KB (under the default 256 KiB stanza bound), each on a fresh
/// connection before TLS; reports the server CPU of the worst one.
pub fn crafted_inputs() -> Vec<(&'static str, String)> {
    let budget = 250_000;
    let mut out = Vec::new();
    // 30 nested elements each declaring 63 prefixes, then elements naming the oldest prefix.
    let mut s = String::from("<message xmlns='jabber:client'>");
    for d in 0..30 {
        s.push_str("<x");
        for p in 0..63 {
            s.push_str(&format!(" xmlns:p{d}_{p}='u'"));
        }
        s.push('>');
    }
    while s.len() < budget - 400 {
        s.push_str("<p0_0:y/>");
    }
    s.push_str(&"</x>".repeat(30));
    s.push_str("</message>");
    out.push(("prefix bindings", s));
    // Elements with 63 attributes each (duplicate checks).
    let mut s = String::from("<message xmlns='jabber:client'>");
    let el: String = (0..63).fold(String::from("<y"), |acc, a| acc + &format!(" a{a}=''")) + "/>";
    while s.len() + el.len() < budget {
        s.push_str(&el);
    }
    s.push_str("</message>");
    out.push(("many attributes", s));
    // Many tiny elements.
    let mut s = String::from("<message xmlns='jabber:client'>");
    while s.len() < budget {
        s.push_str("<a/>");
    }
    s.push_str("</message>");
    out.push(("tiny elements", s));
    // Every element redeclares the default namespace and a prefix.
    let mut s = String::from("<message xmlns='jabber:client'>");
    while s.len() < budget {
        s.push_str("<q:z xmlns='urn:a' xmlns:q='urn:b' q:k='v'/>");
    }
    s.push_str("</message>");
    out.push(("namespace redeclarations", s));
    out
}

/// Each input is sent on 10 fresh connections in a row, so that the server's CPU per input
/// is resolved well below the 10 ms clock tick of /proc.
async fn crafted_xml(v: &Victim) -> Result<String, BenchError> {
    const ROUNDS: u32 = 10;
    let mut worst = (0.0f64, "");
    let mut each = Vec::new();
    for (name, input) in crafted_inputs() {
        let before = proc_sample(v.pid)?;
        let mut answer = String::new();
        for _ in 0..ROUNDS {
            let mut s = connect(v.c2s).await?;
            let _ = s.write_all(HEADER.as_bytes()).await;
            let _ = s.write_all(input.as_bytes()).await;
            // The server answers (stream error or nothing) and may close; wait for quiet.
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got);
            answer = [
                "policy-violation",
                "not-authorized",
                "not-well-formed",
                "restricted-xml",
            ]
            .into_iter()
            .find(|c| text.contains(c))
            .unwrap_or("no error")
            .to_owned();
        }
        let ms = (proc_sample(v.pid)?.cpu_seconds - before.cpu_seconds) * 1000.0 / ROUNDS as f64;
        each.push(format!("{name} {ms:.1} ms ({answer})"));
        if ms > worst.0 {
            worst = (ms, name);
        }
    }
    Ok(format!(
        "worst input: {} ({:.1} ms of server CPU per input); {}",
        worst.1,
        worst.0,
        each.join(", ")
    ))
}

async fn login(v: &Victim) -> Result<Session, BenchError> {
    let mut target = Target::new(vec![v.c2s]);
    target.starttls = true;
    let shared = Shared::new(&target)?;
    Session::login(&shared, 0, "attack").await
}

/// 3,000 iqs to distinct accounts that do not exist, then the user-actor count.
async fn unknown_jids(v: &Victim) -> Result<String, BenchError> {
    let mut s = login(v).await?;
    for batch in 0..6 {
        let mut out = String::new();
        for i in 0..500 {
            let n = batch * 500 + i;
            out.push_str(&format!(
                "<iq type='get' id='u{n}' to='nobody{n}@localhost'><query xmlns='jabber:iq:version'/></iq>"
            ));
        }
        s.send_then_ping(out.as_bytes()).await?;
    }
    let metrics = http::get(v.admin, "/metrics", &v.admin_token).await?;
    let actors = metrics
        .body
        .lines()
        .find(|l| l.starts_with("parley_user_actors"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_owned();
    Ok(format!("{actors} user actors running after 3000 iqs"))
}

/// One account stores as much as it can: roster items with many long groups, then one
/// large blocklist.
async fn storage_fill(v: &Victim, secs: f64) -> Result<String, BenchError> {
    let before = v.storage_bytes();
    let mut s = login(v).await?;
    let groups: String = (0..200)
        .map(|g| format!("<group>{}{g}</group>", "g".repeat(1000)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs * 3.0);
    let (mut ok, mut refused, mut tried) = (0, 0, 0);
    for i in 0..1000 {
        if Instant::now() > deadline {
            break;
        }
        tried += 1;
        let id = format!("r{i}");
        let iq = format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='c{i}@example.org'>{groups}</item></query></iq>"
        );
        s.send(iq.as_bytes()).await?;
        let answer = s
            .stanza_until(
                tokio::time::Instant::now() + Duration::from_secs(10),
                "roster answer",
                |el| el.name() == "iq" && el.attr("id") == Some(id.as_str()),
            )
            .await?;
        if answer.attr("type") == Some("result") {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    // A 10,000-item blocklist, in five iqs that each stay under the default stanza bound.
    let mut blocked = 0;
    for chunk in 0..5 {
        let items: String = (0..2000)
            .map(|i| format!("<item jid='spam{}@example.org'/>", chunk * 2000 + i))
            .collect();
        let id = format!("bl{chunk}");
        let iq = format!(
            "<iq type='set' id='{id}'><block xmlns='urn:xmpp:blocking'>{items}</block></iq>"
        );
        s.send(iq.as_bytes()).await?;
        let answer = s
            .stanza_until(
                tokio::time::Instant::now() + Duration::from_secs(30),
                "block answer",
                |el| el.name() == "iq" && el.attr("id") == Some(id.as_str()),
            )
            .await?;
        if answer.attr("type") == Some("result") {
            blocked += 2000;
        }
    }
    Ok(format!(
        "storage grew {}: {ok} of {tried} roster items with 200 KB of groups stored, {refused} refused; {blocked} of 10,000 blocklist items stored",
        mib(v.storage_bytes().saturating_sub(before))
    ))
}

/// 3,000 connections from 127.0.0.1, each opening a stream and holding it.
async fn connection_flood(v: &Victim) -> Result<String, BenchError> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::new();
    for _ in 0..3000 {
        let sem = sem.clone();
        let addr = v.c2s;
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(HEADER.as_bytes()).await.ok()?;
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(16).any(|w| w == b"</stream:feature") {
                            return Some((s, true));
                        }
                    }
                    _ => return Some((s, false)),
                }
            }
        }));
    }
    let mut held = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Some((s, true))) => {
                accepted += 1;
                held.push(s);
            }
            _ => refused += 1,
        }
    }
    drop(held);
    Ok(format!("{accepted} streams opened, {refused} refused"))
}
