//! The [`Archive`](crate::Archive) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones.
//!
//! Queries are assembled from the filters present, with numbered placeholders that both
//! dialects bind; everything a client sends is bound, never spliced into the SQL.

/// `impl Archive for $store`.
macro_rules! sql_archive_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        /// A value bound to a placeholder of an assembled query.
        enum Bind {
            Text(String),
            Int(i64),
        }

        /// The WHERE clause of a query and its binds ($1 host, $2 username first).
        struct Filter {
            sql: String,
            binds: Vec<Bind>,
        }

        impl Filter {
            fn new(username: &str, host: &str) -> Filter {
                Filter {
                    sql: "host = $1 AND username = $2".to_owned(),
                    binds: vec![Bind::Text(host.to_owned()), Bind::Text(username.to_owned())],
                }
            }

            fn push(&mut self, clause: &str, value: Bind) {
                self.binds.push(value);
                self.sql
                    .push_str(&format!(" AND {clause} ${}", self.binds.len()));
            }

            /// `(stamp_ms, seq) op (stamp, seq)`: a place in the archive's order, which both
            /// the time index and the contact index hold (stamps never go back within an
            /// archive, so it is the order of `seq`).
            fn push_place(&mut self, op: &str, (stamp, seq): (i64, i64)) {
                self.binds.push(Bind::Int(stamp));
                self.binds.push(Bind::Int(seq));
                let n = self.binds.len();
                self.sql
                    .push_str(&format!(" AND (stamp_ms, seq) {op} (${}, ${n})", n - 1));
            }

            fn push_in(&mut self, column: &str, values: &[String]) {
                let mut list = Vec::with_capacity(values.len());
                for v in values {
                    self.binds.push(Bind::Text(v.clone()));
                    list.push(format!("${}", self.binds.len()));
                }
                self.sql
                    .push_str(&format!(" AND {column} IN ({})", list.join(", ")));
            }

            /// Runs `sql` (which uses this filter) with the filter's binds.
            async fn fetch_all(&self, conn: &mut $conn, sql: &str) -> Result<Vec<$row>> {
                run_binds(conn, sql, &self.binds).await
            }
        }

        /// Runs `sql` with `binds`; the rows it returns.
        async fn run_binds(conn: &mut $conn, sql: &str, binds: &[Bind]) -> Result<Vec<$row>> {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.as_str()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(conn).await.map_err(backend)
        }

        /// Up to `limit` of the rows `filter` selects, after `offset` of them, in the
        /// archive's order (`backward`: newest first).
        ///
        /// With a log (SQLite's, `sqlite/archive_thread.rs`) an account's messages are in
        /// two tables, every logged one after every merged one (the sequence and the stamps
        /// only grow), so a page is a run of one table continued in the other: paging
        /// backward the log first, forward the archive first, and the second table only when
        /// the first runs out. The log is read in the order of its key (the sequence, which
        /// within an account is the archive's order), so a page of it stops at `limit`
        /// rows instead of sorting all the account's logged ones.
        async fn page_rows(
            conn: &mut $conn,
            filter: &Filter,
            backward: bool,
            limit: i64,
            offset: i64,
        ) -> Result<Vec<$row>> {
            let dir = if backward { "DESC" } else { "ASC" };
            let merged = format!(
                "SELECT id, stamp_ms, stanza FROM archive WHERE {} ORDER BY stamp_ms {dir}, seq {dir}",
                filter.sql
            );
            if !ARCHIVE_LOG {
                let sql = format!("{merged} LIMIT {limit} OFFSET {offset}");
                return filter.fetch_all(conn, &sql).await;
            }
            let logged = format!(
                "SELECT id, stamp_ms, stanza FROM archive_log WHERE {} ORDER BY seq {dir}",
                filter.sql
            );
            let (first, second, first_table) = if backward {
                (logged, merged, "archive_log")
            } else {
                (merged, logged, "archive")
            };
            let mut rows = filter
                .fetch_all(conn, &format!("{first} LIMIT {limit} OFFSET {offset}"))
                .await?;
            let missing = limit - rows.len() as i64;
            if missing <= 0 {
                return Ok(rows);
            }
            // What of the offset the first table did not cover: all of it was there unless
            // the first table gave nothing (then count what it has, at most the offset).
            let offset = if rows.is_empty() && offset > 0 {
                let sql = format!("SELECT COUNT(*) FROM {first_table} WHERE {}", filter.sql);
                let had: i64 = match filter.fetch_all(conn, &sql).await?.first() {
                    Some(row) => row.try_get(0).map_err(backend)?,
                    None => 0,
                };
                (offset - had).max(0)
            } else {
                0
            };
            let sql = format!("{second} LIMIT {missing} OFFSET {offset}");
            rows.extend(filter.fetch_all(conn, &sql).await?);
            Ok(rows)
        }

        /// The place `(stamp_ms, seq)` of the account's message `id`.
        async fn archive_place(
            conn: &mut $conn,
            username: &str,
            host: &str,
            id: &str,
        ) -> Result<Option<(i64, i64)>> {
            let sql = if ARCHIVE_LOG { ARCHIVE_SEQ_OF_WITH_LOG } else { ARCHIVE_SEQ_OF };
            sqlx::query_as(sql)
                .bind(host)
                .bind(username)
                .bind(id)
                .fetch_optional(conn)
                .await
                .map_err(backend)
        }

        async fn prefs_of(
            conn: &mut $conn,
            username: &str,
            host: &str,
        ) -> Result<Option<parley_proto::mam::Prefs>> {
            use parley_proto::mam::{Default as D, Prefs};
            let row = sqlx::query(SELECT_ARCHIVE_PREFS)
                .bind(host)
                .bind(username)
                .fetch_optional(conn)
                .await
                .map_err(backend)?;
            row.map(|r| {
                let mode: String = r.try_get("default_mode").map_err(backend)?;
                let always: String = r.try_get("always_jids").map_err(backend)?;
                let never: String = r.try_get("never_jids").map_err(backend)?;
                Ok(Prefs {
                    default: D::parse(&mode).ok_or_else(|| {
                        StorageError::Backend(format!("corrupt archive default `{mode}`"))
                    })?,
                    always: Prefs::from_lines(&always),
                    never: Prefs::from_lines(&never),
                })
            })
            .transpose()
        }

        /// Pushes out the account's oldest messages until it is within `policy` again; the
        /// caller holds the account's lock and has counted the newest in `(items, bytes)`.
        async fn trim_archive(
            conn: &mut $conn,
            username: &str,
            host: &str,
            totals: (i64, i64),
            policy: &$crate::archive::ArchivePolicy,
        ) -> Result<()> {
            let Some(want) = $crate::archive::trim_reads(totals, policy) else {
                return Ok(());
            };
            let oldest: Vec<(i64, i64, i64)> = sqlx::query_as(OLDEST_ARCHIVED)
                .bind(host)
                .bind(username)
                .bind(want)
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?;
            let Some(((stamp, seq), gone_items, gone_bytes)) =
                $crate::archive::trim_upto(totals, policy, &oldest)
            else {
                return Ok(());
            };
            sqlx::query(DELETE_ARCHIVED_UPTO)
                .bind(host)
                .bind(username)
                .bind(stamp)
                .bind(seq)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            sqlx::query(SHRINK_ARCHIVE_STATS)
                .bind(host)
                .bind(username)
                .bind(gone_items)
                .bind(gone_bytes)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            Ok(())
        }

        /// [`Archive::archive_insert`](crate::Archive::archive_insert) through sqlx: a
        /// fixed number of multi-row statements per batch, whatever its size.
        pub(super) async fn archive_insert_sqlx(
            store: &$store,
            records: &[$crate::archive::ArchiveRecord],
            policy: &$crate::archive::ArchivePolicy,
        ) -> Result<()> {
            if records.is_empty() {
                return Ok(());
            }
            let mut totals = $crate::archive::batch_totals(records);
            let mut tx = store.begin_write().await?;
            for (host, username) in totals.keys() {
                lock_user(&mut tx, UserLock::Archive, username, host).await?;
            }
            // Each account's newest stamp so far, in one statement per 100 accounts.
            let keys: Vec<(&str, &str)> = totals.keys().copied().collect();
            let mut lasts: std::collections::HashMap<(String, String), i64> = Default::default();
            for chunk in keys.chunks(100) {
                let mut sql = String::from(SELECT_ARCHIVE_LAST_STAMPS_HEAD);
                let mut binds = Vec::with_capacity(chunk.len() * 2);
                for (i, (host, username)) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("(${}, ${})", i * 2 + 1, i * 2 + 2));
                    binds.extend([
                        Bind::Text((*host).to_owned()),
                        Bind::Text((*username).to_owned()),
                    ]);
                }
                sql.push(')');
                for row in run_binds(&mut tx, &sql, &binds).await? {
                    let host: String = row.try_get("host").map_err(backend)?;
                    let username: String = row.try_get("username").map_err(backend)?;
                    let last: i64 = row.try_get("last_stamp").map_err(backend)?;
                    lasts.insert((host, username), last);
                }
            }
            for ((host, username), t) in totals.iter_mut() {
                if let Some(last) = lasts.get(&((*host).to_owned(), (*username).to_owned())) {
                    t.2 = *last;
                }
            }
            let stamps = $crate::archive::stamp_batch(records, &mut totals);
            // 100 rows of 8 values: far below either dialect's limit on placeholders.
            for (chunk, stamps) in records.chunks(100).zip(stamps.chunks(100)) {
                let mut sql = String::from(INSERT_ARCHIVE_HEAD);
                let mut binds = Vec::with_capacity(chunk.len() * 8);
                for (i, (r, stamp)) in chunk.iter().zip(stamps).enumerate() {
                    let n = i * 8;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7,
                        n + 8
                    ));
                    binds.extend([
                        Bind::Text(r.host.clone()),
                        Bind::Text(r.username.clone()),
                        Bind::Text(r.id.clone()),
                        Bind::Int(*stamp),
                        Bind::Text(r.with.bare.clone()),
                        Bind::Text(r.with.resource.clone().unwrap_or_default()),
                        Bind::Int(i64::try_from(r.stanza.len()).unwrap_or(i64::MAX)),
                        Bind::Text(r.stanza.clone()),
                    ]);
                }
                run_binds(&mut tx, &sql, &binds).await?;
            }
            let mut sql = String::from(BUMP_ARCHIVE_STATS_HEAD);
            let mut binds = Vec::with_capacity(totals.len() * 5);
            for (i, ((host, username), (items, bytes, last))) in totals.iter().enumerate() {
                let n = i * 5;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                ));
                binds.extend([
                    Bind::Text((*host).to_owned()),
                    Bind::Text((*username).to_owned()),
                    Bind::Int(*items),
                    Bind::Int(*bytes),
                    Bind::Int(*last),
                ]);
            }
            sql.push_str(BUMP_ARCHIVE_STATS_TAIL);
            let rows = run_binds(&mut tx, &sql, &binds).await?;
            for row in rows {
                let host: String = row.try_get("host").map_err(backend)?;
                let username: String = row.try_get("username").map_err(backend)?;
                let items: i64 = row.try_get("items").map_err(backend)?;
                let bytes: i64 = row.try_get("bytes").map_err(backend)?;
                trim_archive(&mut tx, &username, &host, (items, bytes), policy).await?;
            }
            tx.commit().await.map_err(backend)?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::archive::Archive for $store {
            async fn archive_owner(
                &self,
                username: &str,
                host: &str,
                with_roster: bool,
            ) -> Result<$crate::archive::ArchiveOwner> {
                let mut conn = self.pool.acquire().await.map_err(backend)?;
                let exists: i64 = sqlx::query_scalar(ACCOUNT_EXISTS)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(backend)?;
                let prefs = prefs_of(&mut conn, username, host).await?;
                let blocklist: Vec<String> = sqlx::query_scalar(SELECT_BLOCKLIST)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(backend)?;
                let roster: Vec<String> = if with_roster {
                    sqlx::query_scalar(ROSTER_JIDS)
                        .bind(host)
                        .bind(username)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(backend)?
                } else {
                    Vec::new()
                };
                Ok($crate::archive::ArchiveOwner {
                    exists: exists > 0,
                    prefs,
                    blocklist: parley_proto::blocking::Blocklist::new(blocklist),
                    roster,
                })
            }

            async fn archive_insert(
                &self,
                records: Vec<$crate::archive::ArchiveRecord>,
                policy: &$crate::archive::ArchivePolicy,
            ) -> Result<()> {
                archive_insert_backend(self, records, policy).await
            }

            fn archive_log_status(&self) -> Option<$crate::archive::ArchiveLogStatus> {
                archive_log_status_backend(self)
            }

            async fn archive_query(
                &self,
                username: &str,
                host: &str,
                query: &parley_proto::mam::Query,
            ) -> Result<Option<$crate::archive::ArchivePage>> {
                use parley_proto::mam::Page;
                use $crate::archive::{ArchivePage, ArchivedRow};
                let mut tx = self.begin_read().await?;
                let mut filter = Filter::new(username, host);
                if let Some(with) = &query.with {
                    filter.push("with_bare =", Bind::Text(with.bare.clone()));
                    if let Some(res) = &with.resource {
                        filter.push("with_resource =", Bind::Text(res.clone()));
                    }
                }
                // Stamps follow the archive's order (`archive_insert` keeps them from going
                // back), so a time filter is a range of the indexes that page the archive.
                if let Some(start) = query.start {
                    filter.push("stamp_ms >=", Bind::Int(start));
                }
                if let Some(end) = query.end {
                    filter.push("stamp_ms <=", Bind::Int(end));
                }
                for (id, op) in [(&query.after_id, ">"), (&query.before_id, "<")] {
                    if let Some(id) = id {
                        let Some(place) = archive_place(&mut tx, username, host, id).await? else {
                            return Ok(None);
                        };
                        filter.push_place(op, place);
                    }
                }
                if !query.ids.is_empty() {
                    filter.push_in("id", &query.ids);
                }
                let unfiltered = filter.binds.len() == 2;
                let timed = query.start.is_some() || query.end.is_some();
                let count: i64 = if timed {
                    -1
                } else if unfiltered {
                    sqlx::query_as::<_, (i64, i64)>(archive_totals_sql(ARCHIVE_LOG))
                        .bind(host)
                        .bind(username)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend)?
                        .map_or(0, |(items, _)| items)
                } else {
                    let sql = if ARCHIVE_LOG {
                        format!(
                            "SELECT (SELECT COUNT(*) FROM archive WHERE {f})
                                + (SELECT COUNT(*) FROM archive_log WHERE {f})",
                            f = filter.sql
                        )
                    } else {
                        format!("SELECT COUNT(*) FROM archive WHERE {}", filter.sql)
                    };
                    let rows = filter.fetch_all(&mut tx, &sql).await?;
                    match rows.first() {
                        Some(row) => row.try_get::<i64, _>(0).map_err(backend)?,
                        None => 0,
                    }
                };
                let count = u64::try_from(count).ok();
                let limit = i64::try_from(query.max).unwrap_or(i64::MAX - 1) + 1;
                let (backward, offset) = match &query.page {
                    Page::First => (false, 0),
                    Page::Index(n) => (false, i64::try_from(*n).unwrap_or(i64::MAX)),
                    Page::Last => (true, 0),
                    Page::After(id) | Page::Before(id) => {
                        let Some(place) = archive_place(&mut tx, username, host, id).await? else {
                            return Ok(None);
                        };
                        let backward = matches!(query.page, Page::Before(_));
                        filter.push_place(if backward { "<" } else { ">" }, place);
                        (backward, 0)
                    }
                };
                let mut items = Vec::new();
                let mut more = false;
                if query.max > 0 {
                    let rows = page_rows(&mut tx, &filter, backward, limit, offset).await?;
                    more = rows.len() > query.max;
                    for row in rows.iter().take(query.max) {
                        items.push(ArchivedRow {
                            id: row.try_get("id").map_err(backend)?,
                            stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                            stanza: row.try_get("stanza").map_err(backend)?,
                        });
                    }
                    if backward {
                        items.reverse();
                    }
                }
                let first_index = match &query.page {
                    Page::First => Some(0),
                    Page::Index(n) => Some(*n),
                    Page::Last => count.map(|c| c.saturating_sub(items.len() as u64)),
                    _ => None,
                };
                Ok(Some(ArchivePage {
                    complete: if query.max == 0 {
                        count == Some(0)
                    } else {
                        !more
                    },
                    items,
                    count,
                    first_index: first_index.filter(|_| query.max > 0),
                }))
            }

            async fn archive_prefs(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Option<parley_proto::mam::Prefs>> {
                let mut conn = self.pool.acquire().await.map_err(backend)?;
                prefs_of(&mut conn, username, host).await
            }

            async fn archive_set_prefs(
                &self,
                username: &str,
                host: &str,
                prefs: &parley_proto::mam::Prefs,
            ) -> Result<()> {
                use parley_proto::mam::Prefs;
                sqlx::query(UPSERT_ARCHIVE_PREFS)
                    .bind(host)
                    .bind(username)
                    .bind(prefs.default.as_str())
                    .bind(Prefs::lines(&prefs.always))
                    .bind(Prefs::lines(&prefs.never))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn archive_expire(&self, before_ms: i64) -> Result<u64> {
                // With a log, the accounts with logged records older than the cut too, in
                // one statement: one snapshot, so that a merge moving an account's records
                // from the log to the archive meanwhile cannot hide it from both lists.
                let owners: Vec<(String, String, bool)> = if ARCHIVE_LOG {
                    sqlx::query_as(ARCHIVE_OWNERS_WITH_LOG)
                        .bind(before_ms)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(backend)?
                } else {
                    sqlx::query_as::<_, (String, String)>(ARCHIVE_OWNERS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(backend)?
                        .into_iter()
                        .map(|(host, username)| (host, username, false))
                        .collect()
                };
                let mut total = 0u64;
                // One short transaction per account, so that expiry never holds the
                // archive of many accounts at once.
                for (host, username, in_log) in owners {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, UserLock::Archive, &username, &host).await?;
                    // The log's old records too, when it has any of this account's (a
                    // quiet server's log keeps its last records until enough follow).
                    let mut gone: [Vec<i64>; 2] = Default::default();
                    let tables = if in_log { 2 } else { 1 };
                    for (sizes, sql) in gone.iter_mut().zip([EXPIRE_ARCHIVED, EXPIRE_LOGGED]).take(tables) {
                        *sizes = sqlx::query_scalar(sql)
                            .bind(&host)
                            .bind(&username)
                            .bind(before_ms)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                    // The totals count the archive's rows, never the log's.
                    let [archived, logged] = gone;
                    if !archived.is_empty() {
                        sqlx::query(SHRINK_ARCHIVE_STATS)
                            .bind(&host)
                            .bind(&username)
                            .bind(archived.len() as i64)
                            .bind(archived.iter().sum::<i64>())
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                        sqlx::query(DELETE_EMPTY_ARCHIVE_STATS)
                            .bind(&host)
                            .bind(&username)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                    total += (archived.len() + logged.len()) as u64;
                    tx.commit().await.map_err(backend)?;
                }
                Ok(total)
            }

            async fn archive_size(&self, username: &str, host: &str) -> Result<(u64, u64)> {
                let row: Option<(i64, i64)> = sqlx::query_as(archive_totals_sql(ARCHIVE_LOG))
                    .bind(host)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                let (items, bytes) = row.unwrap_or((0, 0));
                Ok((
                    u64::try_from(items).unwrap_or(0),
                    u64::try_from(bytes).unwrap_or(0),
                ))
            }
        }
    };
}

pub(crate) use sql_archive_methods;
