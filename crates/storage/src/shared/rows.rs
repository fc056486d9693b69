//! The row readers both SQL backends share, expanded inside [`super::impl_sql_storage!`]
//! for one backend's connection and row types.

/// Reads over `$conn` connections and `$row` rows, with the SQL constants in scope where it
/// is expanded.
macro_rules! sql_rows {
    (conn = $conn:ty, row = $row:ty) => {
        /// Applies the migrations above the database's version, inside the caller's
        /// transaction (which already holds the backend's migration lock); returns how many
        /// ran.
        pub(super) async fn apply_pending(
            conn: &mut $conn,
            migrations: &[$crate::migrate::Migration],
        ) -> Result<usize> {
            sqlx::query(CREATE_SCHEMA_VERSION)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(backend)?;
            let pending = $crate::migrate::pending(migrations, current)?;
            for migration in pending {
                tracing::info!(
                    version = migration.version,
                    description = migration.description,
                    "applying storage migration"
                );
                for statement in migration.statements {
                    sqlx::query(statement)
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| {
                            StorageError::Backend(format!("migration {}: {e}", migration.version))
                        })?;
                }
                sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
                    .bind(migration.version)
                    .bind(parley_proto::clock::now_s())
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
            }
            Ok(pending.len())
        }

        /// The roster version, 0 for a user whose roster never changed.
        async fn roster_version(conn: &mut $conn, username: &str, host: &str) -> Result<i64> {
            let version: Option<i64> = sqlx::query_scalar(SELECT_ROSTER_VERSION)
                .bind(host)
                .bind(username)
                .fetch_optional(conn)
                .await
                .map_err(backend)?;
            Ok(version.unwrap_or(0))
        }

        /// Run inside the write transaction of the change it numbers, so that versions
        /// are handed out one by one even across processes.
        async fn bump_roster_version(conn: &mut $conn, username: &str, host: &str) -> Result<i64> {
            sqlx::query_scalar(BUMP_ROSTER_VERSION)
                .bind(host)
                .bind(username)
                .fetch_one(conn)
                .await
                .map_err(backend)
        }

        /// The items last written by a version above `since` (0: all of them), sorted by
        /// jid, each with that version.
        async fn roster_items_since(
            conn: &mut $conn,
            username: &str,
            host: &str,
            since: i64,
        ) -> Result<Vec<(i64, RosterItem)>> {
            let group_rows = sqlx::query(SELECT_ROSTER_GROUPS)
                .bind(host)
                .bind(username)
                .bind(since)
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?;
            let mut groups: HashMap<String, Vec<String>> = HashMap::new();
            for row in &group_rows {
                let jid: String = row.try_get("jid").map_err(backend)?;
                let name: String = row.try_get("name").map_err(backend)?;
                groups.entry(jid).or_default().push(name);
            }
            let item_rows = sqlx::query(SELECT_ROSTER_ITEMS)
                .bind(host)
                .bind(username)
                .bind(since)
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?;
            item_rows
                .iter()
                .map(|row| {
                    let jid: String = row.try_get("jid").map_err(backend)?;
                    let subscription: String = row.try_get("subscription").map_err(backend)?;
                    let subscription = subscription.parse().map_err(|e| {
                        StorageError::Backend(format!(
                            "roster of {username}@{host}, item {jid}: {e}"
                        ))
                    })?;
                    let item = RosterItem {
                        name: row.try_get("name").map_err(backend)?,
                        subscription,
                        ask: row.try_get("ask").map_err(backend)?,
                        groups: groups.remove(&jid).unwrap_or_default(),
                        jid,
                    };
                    Ok((row.try_get("version").map_err(backend)?, item))
                })
                .collect()
        }

        /// Offline messages from rows of `seq`, `stamp_ms` and `stanza`, in arrival (`seq`)
        /// order whatever the rows' order.
        fn offline_messages(rows: &[$row]) -> Result<Vec<OfflineMessage>> {
            let mut messages = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<i64, _>("seq").map_err(backend)?,
                        OfflineMessage {
                            stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                            stanza: row.try_get("stanza").map_err(backend)?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            messages.sort_by_key(|(seq, _)| *seq);
            Ok(messages.into_iter().map(|(_, msg)| msg).collect())
        }

        fn account_from_row(row: &$row) -> Result<AccountInfo> {
            Ok(AccountInfo {
                host: row.try_get("host").map_err(backend)?,
                username: row.try_get("username").map_err(backend)?,
                created_at: row.try_get("created_at").map_err(backend)?,
                password_changed_at: row.try_get("password_changed_at").map_err(backend)?,
            })
        }

        fn token_row(r: &$row) -> Result<TokenRecord> {
            Ok(TokenRecord {
                id: r.try_get("id").map_err(backend)?,
                host: r.try_get("host").map_err(backend)?,
                username: r.try_get("username").map_err(backend)?,
                secret_hash: r.try_get("secret_hash").map_err(backend)?,
                purpose: r.try_get("purpose").map_err(backend)?,
                created_ms: r.try_get("created_ms").map_err(backend)?,
                expires_ms: r.try_get("expires_ms").map_err(backend)?,
                last_used_ms: r.try_get("last_used_ms").map_err(backend)?,
            })
        }
    };
}

pub(crate) use sql_rows;
