//! A SQLite file's per-user work on the login path, on a thread of its own through one
//! rusqlite connection: a user's credentials, everything the user's actor loads when it
//! starts, and private XML (XEP-0049; the last activity that XEP-0012 records at logout
//! is kept there).
//!
//! Why not sqlx, like the rest: sqlx runs each statement on its connection's worker thread
//! and wakes the async runtime for each result. A login read eleven statements
//! (credentials; the account; the roster's version, groups and items inside a read
//! transaction; pending subscriptions; the offline count; the blocklist; the avatar) and
//! its logout wrote four (begin, check, upsert, commit), each a round trip between threads:
//! about half of a login's server CPU went to those context switches when profiled on one
//! core (docs/benchmarks.md). Here each request is one hand-over: the thread runs its
//! statements back to back (prepared once and kept) and answers once.
//!
//! The connection opens the same WAL file as the pool. Reads run in a deferred
//! transaction (one snapshot) and, like any WAL reader's, see every transaction committed
//! before they began, so a password change or roster push is visible to the next login as
//! it is through sqlx. Writes begin `IMMEDIATE` with the pool's busy timeout, taking turns
//! with the other writers (the sqlx writer, the archive thread) as any second writer would.
//! Reads and writes each have a thread and connection of their own, so that a login never
//! waits behind a write that waits for the lock. Both keep the normal priority: logins wait
//! for them. In-memory databases (tests) keep the sqlx path.
//!
//! Bounds: requests waiting for each thread (`[storage] sqlite_user_queue`, items); each
//! carries one username and host, which the session has already bounded by the JID limits
//! (RFC 7622: 1023 bytes each), and a private write its element, bounded by the stanza
//! size limit. A full queue makes the asker wait: nothing is dropped.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rusqlite::{named_params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::side::{self, sqlite};
use crate::shared::sql::{
    COUNT_OFFLINE, COUNT_PRIVATE, HAS_PRIVATE, SELECT_ACCOUNT, SELECT_BLOCKLIST,
    SELECT_CREDENTIALS, SELECT_NEWEST_PEP_ITEM, SELECT_PENDING_IN, SELECT_ROSTER_GROUPS,
    SELECT_ROSTER_ITEMS, SELECT_ROSTER_VERSION, UPSERT_PRIVATE,
};
use crate::shared::{iterations_from, offline_count_from};
use crate::{AccountInfo, PepItemRow, Result, Roster, RosterItem, StorageError, UserState};

enum Request {
    Credentials {
        username: String,
        host: String,
        hash: ScramHash,
        done: oneshot::Sender<Result<Option<ScramCredentials>>>,
    },
    UserState {
        username: String,
        host: String,
        done: oneshot::Sender<Result<UserState>>,
    },
    PrivateSet {
        username: String,
        host: String,
        ns: String,
        xml: String,
        max_namespaces: usize,
        done: oneshot::Sender<Result<bool>>,
    },
}

/// The handle: requests go in, each answered once. Reads and writes have a thread (and
/// connection) each: a write may wait for the database's write lock (another writer's
/// transaction, up to the busy timeout), and logins must not wait behind it.
pub(crate) struct UserThread {
    reads: mpsc::Sender<Request>,
    writes: mpsc::Sender<Request>,
}

impl UserThread {
    /// Opens two connections to the (migrated, WAL) database at `path` and starts their
    /// threads, which end once this handle is dropped and their queues are empty.
    pub(crate) fn start(path: &Path, busy: Duration, queue: usize) -> Result<UserThread> {
        let (reads, rx) = mpsc::channel(queue.max(1));
        let conn = side::connection(path, busy, "")?;
        side::spawn("parley-user-sqlite", move || run(conn, rx))?;
        let (writes, rx) = mpsc::channel(queue.max(1));
        let conn = side::connection(path, busy, "")?;
        side::spawn("parley-userw-sqlite", move || run(conn, rx))?;
        Ok(UserThread { reads, writes })
    }

    /// See [`crate::Storage::credentials`].
    pub(crate) async fn credentials(
        &self,
        username: &str,
        host: &str,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>> {
        let (done, answer) = oneshot::channel();
        self.ask(
            Request::Credentials {
                username: username.to_owned(),
                host: host.to_owned(),
                hash,
                done,
            },
            answer,
        )
        .await
    }

    /// See [`crate::Storage::user_state`].
    pub(crate) async fn user_state(&self, username: &str, host: &str) -> Result<UserState> {
        let (done, answer) = oneshot::channel();
        self.ask(
            Request::UserState {
                username: username.to_owned(),
                host: host.to_owned(),
                done,
            },
            answer,
        )
        .await
    }

    /// See [`crate::Storage::private_set`].
    pub(crate) async fn private_set(
        &self,
        username: &str,
        host: &str,
        ns: &str,
        xml: &str,
        max_namespaces: usize,
    ) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.ask(
            Request::PrivateSet {
                username: username.to_owned(),
                host: host.to_owned(),
                ns: ns.to_owned(),
                xml: xml.to_owned(),
                max_namespaces,
                done,
            },
            answer,
        )
        .await
    }

    async fn ask<T>(&self, request: Request, answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        let gone = || StorageError::Backend("the user thread has stopped".into());
        let queue = match request {
            Request::Credentials { .. } | Request::UserState { .. } => &self.reads,
            Request::PrivateSet { .. } => &self.writes,
        };
        queue.send(request).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Request>) {
    while let Some(request) = rx.blocking_recv() {
        // An asker that has gone (its task was dropped) is simply not answered.
        match request {
            Request::Credentials {
                username,
                host,
                hash,
                done,
            } => {
                let _ = done.send(credentials(&conn, &username, &host, hash));
            }
            Request::UserState {
                username,
                host,
                done,
            } => {
                let _ = done.send(user_state(&mut conn, &username, &host));
            }
            Request::PrivateSet {
                username,
                host,
                ns,
                xml,
                max_namespaces,
                done,
            } => {
                let written = private_set(&mut conn, &username, &host, &ns, &xml, max_namespaces);
                let _ = done.send(written.map_err(sqlite));
            }
        }
    }
}

fn credentials(
    conn: &Connection,
    username: &str,
    host: &str,
    hash: ScramHash,
) -> Result<Option<ScramCredentials>> {
    let row = conn
        .prepare_cached(SELECT_CREDENTIALS)
        .map_err(sqlite)?
        .query_row(
            named_params! {"$1": host, "$2": username, "$3": hash.name()},
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>("salt")?,
                    row.get::<_, i64>("iterations")?,
                    row.get::<_, Vec<u8>>("stored_key")?,
                    row.get::<_, Vec<u8>>("server_key")?,
                ))
            },
        )
        .optional()
        .map_err(sqlite)?;
    let Some((salt, iterations, stored_key, server_key)) = row else {
        return Ok(None);
    };
    let iterations = iterations_from(iterations, username, host)?;
    Ok(Some(ScramCredentials {
        hash,
        salt,
        iterations,
        stored_key,
        server_key,
    }))
}

/// The statements of `user_state_sqlx`, in one read transaction (one WAL snapshot).
fn user_state(conn: &mut Connection, username: &str, host: &str) -> Result<UserState> {
    let tx = conn.transaction().map_err(sqlite)?;
    let user = named_params! {"$1": host, "$2": username};
    let account = tx
        .prepare_cached(SELECT_ACCOUNT)
        .and_then(|mut s| {
            s.query_row(user, |row| {
                Ok(AccountInfo {
                    host: row.get("host")?,
                    username: row.get("username")?,
                    created_at: row.get("created_at")?,
                    password_changed_at: row.get("password_changed_at")?,
                })
            })
            .optional()
        })
        .map_err(sqlite)?;
    let version: i64 = tx
        .prepare_cached(SELECT_ROSTER_VERSION)
        .and_then(|mut s| s.query_row(user, |row| row.get(0)).optional())
        .map_err(sqlite)?
        .unwrap_or(0);
    let since = named_params! {"$1": host, "$2": username, "$3": 0_i64};
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    {
        let mut s = tx.prepare_cached(SELECT_ROSTER_GROUPS).map_err(sqlite)?;
        let mut rows = s.query(since).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let jid: String = row.get("jid").map_err(sqlite)?;
            groups
                .entry(jid)
                .or_default()
                .push(row.get("name").map_err(sqlite)?);
        }
    }
    let mut items = Vec::new();
    {
        let mut s = tx.prepare_cached(SELECT_ROSTER_ITEMS).map_err(sqlite)?;
        let mut rows = s.query(since).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let jid: String = row.get("jid").map_err(sqlite)?;
            let subscription: String = row.get("subscription").map_err(sqlite)?;
            let subscription = subscription.parse().map_err(|e| {
                StorageError::Backend(format!("roster of {username}@{host}, item {jid}: {e}"))
            })?;
            items.push(RosterItem {
                name: row.get("name").map_err(sqlite)?,
                subscription,
                ask: row.get("ask").map_err(sqlite)?,
                groups: groups.remove(&jid).unwrap_or_default(),
                jid,
            });
        }
    }
    let pending_in = tx
        .prepare_cached(SELECT_PENDING_IN)
        .and_then(|mut s| {
            s.query_map(user, |row| Ok((row.get("jid")?, row.get("stanza")?)))?
                .collect::<rusqlite::Result<Vec<(String, String)>>>()
        })
        .map_err(sqlite)?;
    let offline: i64 = tx
        .prepare_cached(COUNT_OFFLINE)
        .and_then(|mut s| s.query_row(user, |row| row.get(0)))
        .map_err(sqlite)?;
    let blocklist = tx
        .prepare_cached(SELECT_BLOCKLIST)
        .and_then(|mut s| {
            s.query_map(user, |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(sqlite)?;
    let avatar_metadata = tx
        .prepare_cached(SELECT_NEWEST_PEP_ITEM)
        .and_then(|mut s| {
            s.query_row(
                named_params! {
                    "$1": host, "$2": username, "$3": parley_proto::avatar::METADATA_NODE
                },
                |row| {
                    Ok(PepItemRow {
                        id: row.get("id")?,
                        stamp_ms: row.get("stamp_ms")?,
                        payload: row.get("payload")?,
                    })
                },
            )
            .optional()
        })
        .map_err(sqlite)?;
    tx.commit().map_err(sqlite)?;
    Ok(UserState {
        account,
        roster: Roster { version, items },
        pending_in,
        offline_count: offline_count_from(offline)?,
        blocklist,
        avatar_metadata,
    })
}

/// The statements of the shared `private_set`, in one write transaction.
fn private_set(
    conn: &mut Connection,
    username: &str,
    host: &str,
    ns: &str,
    xml: &str,
    max_namespaces: usize,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has: i64 = tx.prepare_cached(HAS_PRIVATE)?.query_row(
        named_params! {"$1": host, "$2": username, "$3": ns},
        |row| row.get(0),
    )?;
    if has == 0 {
        let count: i64 = tx
            .prepare_cached(COUNT_PRIVATE)?
            .query_row(named_params! {"$1": host, "$2": username}, |row| row.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_namespaces {
            return Ok(false);
        }
    }
    tx.prepare_cached(UPSERT_PRIVATE)?
        .execute(named_params! {"$1": host, "$2": username, "$3": ns, "$4": xml})?;
    tx.commit()?;
    Ok(true)
}
