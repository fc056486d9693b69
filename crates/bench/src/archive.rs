//! The message archive at scale (XEP-0313): one account's archive filled to N messages
//! through the store's batched appends (what the archive writer does), then the paged
//! queries clients make, each timed: the newest page, a page before a random id (scrolling
//! back), the newest page with one contact, a page from a point in time, and the count only.
//! It measures the store (SQLite or PostgreSQL), where a query's time goes; the XMPP round
//! trip around it is the same for every query.

use std::time::{Duration, Instant};

use parley_proto::mam::{Default as ArchiveDefault, Page, Query, With};
use parley_storage::{ArchivePolicy, ArchiveRecord};
use rand::Rng;
use serde::Serialize;

use crate::BenchError;

/// One kind of query's latencies.
#[derive(Debug, Serialize)]
pub struct QueryFigures {
    pub kind: &'static str,
    pub queries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The run's figures.
#[derive(Debug, Serialize)]
pub struct ArchiveResult {
    pub messages: usize,
    pub fill_s: f64,
    pub appends_per_s: f64,
    pub queries: Vec<QueryFigures>,
}

/// Builds one query of a kind.
type MakeQuery<'a> = Box<dyn FnMut(&mut rand::rngs::ThreadRng) -> Query + 'a>;

fn stats(kind: &'static str, mut took: Vec<Duration>) -> QueryFigures {
    took.sort();
    let at = |q: f64| {
        let i = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1;
        took[i].as_secs_f64() * 1000.0
    };
    QueryFigures {
        kind,
        queries: took.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: took.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

fn query(page: Page, max: usize) -> Query {
    Query {
        query_id: None,
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        max,
        page,
        flip: false,
    }
}

/// Fills `user@domain`'s archive in the store at `url` to `messages` (with 100 contacts,
/// one message per millisecond of history), then times `queries` queries of each kind.
pub async fn run(
    url: &str,
    domain: &str,
    user: &str,
    messages: usize,
    queries: usize,
) -> Result<ArchiveResult, BenchError> {
    let storage = parley_storage::open(url)
        .await
        .map_err(|e| BenchError::Options(format!("storage: {e}")))?;
    let storage_err =
        |e: parley_storage::StorageError| BenchError::Options(format!("storage: {e}"));
    if storage
        .account(user, domain)
        .await
        .map_err(storage_err)?
        .is_none()
    {
        storage
            .create_account(user, domain, &[])
            .await
            .map_err(storage_err)?;
    }
    let policy = ArchivePolicy {
        default: ArchiveDefault::Always,
        max_items: u64::MAX,
        max_bytes: u64::MAX,
    };
    let start_ms = 1_700_000_000_000i64;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(messages);
    let batch = 256;
    let mut n = 0;
    while n < messages {
        let records: Vec<ArchiveRecord> = (n..(n + batch).min(messages))
            .map(|i| ArchiveRecord {
                username: user.to_owned(),
                host: domain.to_owned(),
                id: parley_proto::mam::new_id(),
                with: With {
                    bare: format!("contact{}@{domain}", i % 100),
                    resource: Some("phone".to_owned()),
                },
                stamp_ms: start_ms + i as i64,
                stanza: format!(
                    "<message xmlns='jabber:client' type='chat' from='contact{}@{domain}/phone' to='{user}@{domain}'><body>message number {i} of the benchmark archive</body></message>",
                    i % 100
                ),
            })
            .collect();
        n += records.len();
        ids.extend(records.iter().map(|r| r.id.clone()));
        storage
            .archive_insert(records, &policy)
            .await
            .map_err(storage_err)?;
    }
    let fill = started.elapsed();
    let mut rng = rand::thread_rng();
    let mut figures = Vec::new();
    let kinds: [(&'static str, MakeQuery); 5] = [
        (
            "newest page (RSM <before/>, 50)",
            Box::new(|_| query(Page::Last, 50)),
        ),
        (
            "page before a random id (50)",
            Box::new(|rng| query(Page::Before(ids[rng.gen_range(0..ids.len())].clone()), 50)),
        ),
        (
            "newest page with one contact (50)",
            Box::new(|rng| {
                let mut q = query(Page::Last, 50);
                q.with = With::parse(&format!("contact{}@{domain}", rng.gen_range(0..100)));
                q
            }),
        ),
        (
            "page from a point in time (50)",
            Box::new(|rng| {
                let mut q = query(Page::First, 50);
                q.start = Some(start_ms + rng.gen_range(0..messages as i64));
                q
            }),
        ),
        ("count only (max 0)", Box::new(|_| query(Page::First, 0))),
    ];
    for (kind, mut make) in kinds {
        let mut took = Vec::with_capacity(queries);
        for _ in 0..queries {
            let q = make(&mut rng);
            let t = Instant::now();
            let page = storage
                .archive_query(user, domain, &q)
                .await
                .map_err(storage_err)?;
            took.push(t.elapsed());
            if page.is_none() {
                return Err(BenchError::Options(format!("{kind}: an id was not found")));
            }
        }
        figures.push(stats(kind, took));
    }
    Ok(ArchiveResult {
        messages,
        fill_s: fill.as_secs_f64(),
        appends_per_s: messages as f64 / fill.as_secs_f64(),
        queries: figures,
    })
}
