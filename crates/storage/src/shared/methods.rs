//! The `Storage` method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] with the backend's SQL constants, store and hooks in scope.
//!
//! `async_trait` rewrites only the methods it sees in the impl block, so the whole block
//! is one macro: it cannot be assembled from smaller ones.
//!
//! Longer than 800 lines for that reason: one macro body, one method per `Storage` method.

/// `impl Storage for $store`.
macro_rules! sql_storage_methods {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl Storage for $store {
            async fn create_account(
                &self,
                username: &str,
                host: &str,
                creds: &[ScramCredentials],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                if insert_accounts(&mut tx, &[(host, username)], parley_proto::clock::now_s())
                    .await?
                    .is_empty()
                {
                    return Err(StorageError::AlreadyExists {
                        username: username.to_owned(),
                        host: host.to_owned(),
                    });
                }
                insert_credentials(&mut tx, &credential_rows(username, host, creds)).await?;
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, "account created");
                Ok(())
            }

            async fn import_accounts(&self, accounts: &[NewAccount]) -> Result<ImportReport> {
                let mut report = ImportReport::default();
                let mut seen: HashSet<(&str, &str)> = HashSet::new();
                // An error leaves earlier batches imported; running the import again skips
                // them.
                for batch in accounts.chunks(IMPORT_BATCH) {
                    // Repeats are dropped here, so that the first occurrence wins whatever
                    // order the database processes rows in.
                    let firsts: Vec<&NewAccount> = batch
                        .iter()
                        .filter(|a| seen.insert((a.host.as_str(), a.username.as_str())))
                        .collect();
                    report.skipped_existing += batch.len() - firsts.len();
                    if firsts.is_empty() {
                        continue;
                    }
                    let keys: Vec<(&str, &str)> = firsts
                        .iter()
                        .map(|a| (a.host.as_str(), a.username.as_str()))
                        .collect();
                    let mut tx = self.begin_write().await?;
                    let now = parley_proto::clock::now_s();
                    let created = insert_accounts(&mut tx, &keys, now).await?;
                    let mut rows = Vec::new();
                    for account in &firsts {
                        if created.contains(&(account.host.clone(), account.username.clone())) {
                            rows.extend(credential_rows(
                                &account.username,
                                &account.host,
                                &account.credentials,
                            ));
                        }
                    }
                    insert_credentials(&mut tx, &rows).await?;
                    tx.commit().await.map_err(backend)?;
                    report.created += created.len();
                    report.skipped_existing += firsts.len() - created.len();
                }
                tracing::info!(
                    created = report.created,
                    skipped_existing = report.skipped_existing,
                    "accounts imported"
                );
                Ok(report)
            }

            async fn delete_account(&self, username: &str, host: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let result = sqlx::query(DELETE_ACCOUNT)
                    .bind(host)
                    .bind(username)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if result.rows_affected() == 0 {
                    return Err(not_found(username, host));
                }
                // The same locks as concurrent writers take, so that none of them
                // interleaves with the wipe (a roster put would otherwise re-create a
                // version row between two of the deletes).
                lock_user(&mut tx, UserLock::Roster, username, host).await?;
                lock_user(&mut tx, UserLock::Offline, username, host).await?;
                lock_user(&mut tx, UserLock::Blocklist, username, host).await?;
                lock_user(&mut tx, UserLock::Private, username, host).await?;
                lock_user(&mut tx, UserLock::Archive, username, host).await?;
                lock_user(&mut tx, UserLock::Pep, username, host).await?;
                let log = ARCHIVE_LOG.then_some(DELETE_ARCHIVE_LOG);
                for statement in DELETE_USER_DATA.iter().chain(log.as_ref()) {
                    sqlx::query(statement)
                        .bind(host)
                        .bind(username)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, "account deleted");
                Ok(())
            }

            async fn set_credentials(
                &self,
                username: &str,
                host: &str,
                creds: &[ScramCredentials],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let touched = sqlx::query(TOUCH_PASSWORD)
                    .bind(parley_proto::clock::now_s())
                    .bind(host)
                    .bind(username)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if touched.rows_affected() == 0 {
                    return Err(not_found(username, host));
                }
                sqlx::query(DELETE_CREDENTIALS)
                    .bind(host)
                    .bind(username)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                insert_credentials(&mut tx, &credential_rows(username, host, creds)).await?;
                // A password change invalidates every token issued before it.
                sqlx::query(DELETE_USER_TOKENS)
                    .bind(host)
                    .bind(username)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, "credentials replaced, tokens revoked");
                Ok(())
            }

            async fn credentials(
                &self,
                username: &str,
                host: &str,
                hash: ScramHash,
            ) -> Result<Option<ScramCredentials>> {
                credentials_backend(self, username, host, hash).await
            }

            async fn user_state(&self, username: &str, host: &str) -> Result<UserState> {
                user_state_backend(self, username, host).await
            }

            async fn account(&self, username: &str, host: &str) -> Result<Option<AccountInfo>> {
                let row = sqlx::query(SELECT_ACCOUNT)
                    .bind(host)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(account_from_row).transpose()
            }

            async fn list_accounts(&self, host: Option<&str>) -> Result<Vec<AccountInfo>> {
                let rows = match host {
                    Some(host) => {
                        sqlx::query(LIST_HOST_ACCOUNTS)
                            .bind(host)
                            .fetch_all(&self.pool)
                            .await
                    }
                    None => sqlx::query(LIST_ALL_ACCOUNTS).fetch_all(&self.pool).await,
                }
                .map_err(backend)?;
                rows.iter().map(account_from_row).collect()
            }

            async fn accounts_page(
                &self,
                host: Option<&str>,
                after: Option<(&str, &str)>,
                limit: usize,
            ) -> Result<Vec<AccountInfo>> {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows = match host {
                    Some(host) => {
                        let after = after.filter(|(h, _)| *h == host).map_or("", |(_, u)| u);
                        sqlx::query(PAGE_HOST_ACCOUNTS)
                            .bind(host)
                            .bind(after)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                    }
                    None => {
                        let (h, u) = after.unwrap_or(("", ""));
                        sqlx::query(PAGE_ALL_ACCOUNTS)
                            .bind(h)
                            .bind(u)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                    }
                }
                .map_err(backend)?;
                rows.iter().map(account_from_row).collect()
            }

            async fn server_secret(&self) -> Result<Vec<u8>> {
                let mut candidate = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut candidate);
                sqlx::query(INSERT_META_IF_ABSENT)
                    .bind(SERVER_SECRET_KEY)
                    .bind(&candidate[..])
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                sqlx::query_scalar(SELECT_META)
                    .bind(SERVER_SECRET_KEY)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn roster(&self, username: &str, host: &str) -> Result<Roster> {
                let mut tx = self.begin_read().await?;
                let version = roster_version(&mut tx, username, host).await?;
                let items = roster_items_since(&mut tx, username, host, 0).await?;
                tx.commit().await.map_err(backend)?;
                Ok(Roster {
                    version,
                    items: items.into_iter().map(|(_, item)| item).collect(),
                })
            }

            async fn roster_put(
                &self,
                username: &str,
                host: &str,
                item: &RosterItem,
            ) -> Result<i64> {
                let mut tx = self.begin_write().await?;
                // Removals lock the item before the version; without a common first lock,
                // a put and a removal of one jid could deadlock.
                lock_user(&mut tx, UserLock::Roster, username, host).await?;
                let version = bump_roster_version(&mut tx, username, host).await?;
                sqlx::query(UPSERT_ROSTER_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(&item.jid)
                    .bind(item.name.as_deref())
                    .bind(item.subscription.as_str())
                    .bind(item.ask)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query(DELETE_ROSTER_GROUPS)
                    .bind(host)
                    .bind(username)
                    .bind(&item.jid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if !item.groups.is_empty() {
                    insert_roster_groups(&mut tx, username, host, &item.jid, &item.groups)
                        .await?;
                }
                sqlx::query(DELETE_TOMBSTONE)
                    .bind(host)
                    .bind(username)
                    .bind(&item.jid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, version, "roster item stored");
                Ok(version)
            }

            async fn roster_remove(
                &self,
                username: &str,
                host: &str,
                jid: &str,
            ) -> Result<Option<i64>> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Roster, username, host).await?;
                let removed = sqlx::query(DELETE_ROSTER_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(jid)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if removed.rows_affected() == 0 {
                    return Ok(None);
                }
                let version = bump_roster_version(&mut tx, username, host).await?;
                sqlx::query(UPSERT_TOMBSTONE)
                    .bind(host)
                    .bind(username)
                    .bind(jid)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, version, "roster item removed");
                Ok(Some(version))
            }

            async fn roster_prune_tombstones(
                &self,
                username: &str,
                host: &str,
                keep: usize,
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Roster, username, host).await?;
                let cut: Option<i64> = sqlx::query_scalar(SELECT_TOMBSTONE_CUT)
                    .bind(host)
                    .bind(username)
                    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                let Some(cut) = cut else {
                    return Ok(0);
                };
                let pruned = sqlx::query(DELETE_TOMBSTONES_UPTO)
                    .bind(host)
                    .bind(username)
                    .bind(cut)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                sqlx::query(UPSERT_TOMBSTONE_FLOOR)
                    .bind(host)
                    .bind(username)
                    .bind(cut)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                tracing::debug!(%username, %host, pruned, floor = cut, "roster tombstones pruned");
                Ok(pruned)
            }

            async fn roster_changes_since(
                &self,
                username: &str,
                host: &str,
                version: i64,
            ) -> Result<Option<Vec<(i64, RosterChange)>>> {
                let mut tx = self.begin_read().await?;
                let current = roster_version(&mut tx, username, host).await?;
                if version < 0 || version > current {
                    return Ok(None);
                }
                if version == current {
                    return Ok(Some(Vec::new()));
                }
                let items = roster_items_since(&mut tx, username, host, version).await?;
                let tombstones = sqlx::query(SELECT_TOMBSTONES)
                    .bind(host)
                    .bind(username)
                    .bind(version)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                let mut changes: Vec<(i64, RosterChange)> = items
                    .into_iter()
                    .map(|(v, item)| (v, RosterChange::Updated(item)))
                    .collect();
                for row in &tombstones {
                    let jid: String = row.try_get("jid").map_err(backend)?;
                    if jid == $crate::TOMBSTONE_FLOOR_JID {
                        // Removals at or below the floor were pruned: they cannot be
                        // replayed.
                        return Ok(None);
                    }
                    changes.push((
                        row.try_get("version").map_err(backend)?,
                        RosterChange::Removed(jid),
                    ));
                }
                // Every change got its own version, so this order is total.
                changes.sort_by_key(|(v, _)| *v);
                Ok(Some(changes))
            }

            async fn pending_in(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<(String, String)>> {
                let rows = sqlx::query(SELECT_PENDING_IN)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get("jid").map_err(backend)?,
                            row.try_get("stanza").map_err(backend)?,
                        ))
                    })
                    .collect()
            }

            async fn pending_in_put(
                &self,
                username: &str,
                host: &str,
                jid: &str,
                stanza: &str,
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                put_pending_in(&mut tx, username, host, jid, stanza).await?;
                tx.commit().await.map_err(backend)
            }

            async fn pending_in_remove(
                &self,
                username: &str,
                host: &str,
                jid: &str,
            ) -> Result<bool> {
                let result = sqlx::query(DELETE_PENDING_IN)
                    .bind(host)
                    .bind(username)
                    .bind(jid)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(result.rows_affected() > 0)
            }

            async fn offline_push(
                &self,
                username: &str,
                host: &str,
                msg: &OfflineMessage,
                max: usize,
                max_bytes: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                // Two pushes must not both count below the cap and both insert: the lock
                // (or SQLite's single writer) makes the second count after the first
                // commits.
                lock_user(&mut tx, UserLock::Offline, username, host).await?;
                let (count, bytes): (i64, i64) = sqlx::query_as(COUNT_OFFLINE_BYTES)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
                if offline_count_from(count)? >= max
                    || bytes.saturating_add(msg.stanza.len()) > max_bytes
                {
                    return Ok(false);
                }
                sqlx::query(INSERT_OFFLINE)
                    .bind(host)
                    .bind(username)
                    .bind(msg.stamp_ms)
                    .bind(&msg.stanza)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn offline_count(&self, username: &str, host: &str) -> Result<usize> {
                let count: i64 = sqlx::query_scalar(COUNT_OFFLINE)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend)?;
                offline_count_from(count)
            }

            async fn offline_take(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<OfflineMessage>> {
                // One statement returns exactly what it deletes, so a concurrent push is
                // either taken or kept, never lost.
                let rows = sqlx::query(TAKE_OFFLINE)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                // RETURNING follows no order.
                offline_messages(&rows)
            }

            async fn offline_peek(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<OfflineMessage>> {
                let rows = sqlx::query(PEEK_OFFLINE)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                offline_messages(&rows)
            }

            async fn blocklist(&self, username: &str, host: &str) -> Result<Vec<String>> {
                sqlx::query_scalar(SELECT_BLOCKLIST)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn blocklist_add(
                &self,
                username: &str,
                host: &str,
                jids: &[String],
            ) -> Result<Vec<String>> {
                let mut seen: HashSet<&str> = HashSet::new();
                let firsts: Vec<&str> = jids
                    .iter()
                    .map(String::as_str)
                    .filter(|jid| seen.insert(jid))
                    .collect();
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Blocklist, username, host).await?;
                let inserted = insert_blocked(&mut tx, username, host, &firsts).await?;
                tx.commit().await.map_err(backend)?;
                // The backend may return them in any order; the caller's is the one
                // promised.
                let inserted: HashSet<String> = inserted.into_iter().collect();
                let added: Vec<String> = firsts
                    .into_iter()
                    .filter(|jid| inserted.contains(*jid))
                    .map(str::to_owned)
                    .collect();
                tracing::debug!(%username, %host, added = added.len(), "jids blocked");
                Ok(added)
            }

            async fn blocklist_remove(
                &self,
                username: &str,
                host: &str,
                jids: Option<&[String]>,
            ) -> Result<Vec<String>> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Blocklist, username, host).await?;
                let mut removed = match jids {
                    Some(jids) => delete_blocked(&mut tx, username, host, jids).await?,
                    None => sqlx::query_scalar(DELETE_BLOCKLIST)
                        .bind(host)
                        .bind(username)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?,
                };
                tx.commit().await.map_err(backend)?;
                // RETURNING follows no order, and the caller's list need not be sorted.
                removed.sort_unstable();
                tracing::debug!(%username, %host, removed = removed.len(), "jids unblocked");
                Ok(removed)
            }

            async fn token_put(&self, token: &TokenRecord) -> Result<()> {
                sqlx::query(INSERT_TOKEN)
                    .bind(&token.id)
                    .bind(&token.host)
                    .bind(&token.username)
                    .bind(&token.secret_hash)
                    .bind(&token.purpose)
                    .bind(token.created_ms)
                    .bind(token.expires_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn token_get(&self, id: &str) -> Result<Option<TokenRecord>> {
                let row = sqlx::query(SELECT_TOKEN)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(|r| token_row(&r)).transpose()
            }

            async fn token_touch(&self, id: &str, at_ms: i64) -> Result<()> {
                sqlx::query(TOUCH_TOKEN)
                    .bind(at_ms)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn token_revoke(&self, id: &str) -> Result<bool> {
                let done = sqlx::query(DELETE_TOKEN)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn tokens_revoke_user(&self, username: &str, host: &str) -> Result<u64> {
                let done = sqlx::query(DELETE_USER_TOKENS)
                    .bind(host)
                    .bind(username)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected())
            }

            async fn tokens_of(&self, username: &str, host: &str) -> Result<Vec<TokenRecord>> {
                let rows = sqlx::query(SELECT_USER_TOKENS)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter().map(token_row).collect()
            }

            async fn set_signed_out(&self, username: &str, host: &str, at_ms: i64) -> Result<()> {
                sqlx::query(UPSERT_SIGNOUT)
                    .bind(host)
                    .bind(username)
                    .bind(at_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn signed_out_at(&self, username: &str, host: &str) -> Result<Option<i64>> {
                let row = sqlx::query(SELECT_SIGNOUT)
                    .bind(host)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(|r| r.try_get::<i64, _>("at_ms").map_err(backend))
                    .transpose()
            }

            async fn private_get(
                &self,
                username: &str,
                host: &str,
                ns: &str,
            ) -> Result<Option<String>> {
                sqlx::query_scalar(SELECT_PRIVATE)
                    .bind(host)
                    .bind(username)
                    .bind(ns)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn private_all(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<(String, String)>> {
                sqlx::query_as(SELECT_PRIVATE_ALL)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn private_set(
                &self,
                username: &str,
                host: &str,
                ns: &str,
                xml: &str,
                max_namespaces: usize,
            ) -> Result<bool> {
                private_set_backend(self, username, host, ns, xml, max_namespaces).await
            }
        }

        /// [`Storage::credentials`] through sqlx.
        pub(super) async fn credentials_sqlx(
            store: &$store,
            username: &str,
            host: &str,
            hash: ScramHash,
        ) -> Result<Option<ScramCredentials>> {
            let row = sqlx::query(SELECT_CREDENTIALS)
                .bind(host)
                .bind(username)
                .bind(hash.name())
                .fetch_optional(&store.pool)
                .await
                .map_err(backend)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let iterations = iterations_from(
                row.try_get("iterations").map_err(backend)?,
                username,
                host,
            )?;
            Ok(Some(ScramCredentials {
                hash,
                salt: row.try_get("salt").map_err(backend)?,
                iterations,
                stored_key: row.try_get("stored_key").map_err(backend)?,
                server_key: row.try_get("server_key").map_err(backend)?,
            }))
        }

        /// [`Storage::private_set`] through sqlx.
        pub(super) async fn private_set_sqlx(
            store: &$store,
            username: &str,
            host: &str,
            ns: &str,
            xml: &str,
            max_namespaces: usize,
        ) -> Result<bool> {
            let mut tx = store.begin_write().await?;
            // Serializes one user's writes, so that two new namespaces stored at once
            // cannot both pass the count.
            lock_user(&mut tx, UserLock::Private, username, host).await?;
            let has: i64 = sqlx::query_scalar(HAS_PRIVATE)
                .bind(host)
                .bind(username)
                .bind(ns)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            if has == 0 {
                let count: i64 = sqlx::query_scalar(COUNT_PRIVATE)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if count as usize >= max_namespaces {
                    return Ok(false);
                }
            }
            sqlx::query(UPSERT_PRIVATE)
                .bind(host)
                .bind(username)
                .bind(ns)
                .bind(xml)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(true)
        }

        /// [`Storage::user_state`] through sqlx: the reads in one snapshot (a read
        /// transaction), one statement after another.
        pub(super) async fn user_state_sqlx(
            store: &$store,
            username: &str,
            host: &str,
        ) -> Result<UserState> {
            let mut tx = store.begin_read().await?;
            let account = sqlx::query(SELECT_ACCOUNT)
                .bind(host)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            let account = account.as_ref().map(account_from_row).transpose()?;
            let version = roster_version(&mut tx, username, host).await?;
            let items = roster_items_since(&mut tx, username, host, 0).await?;
            let pending_in = sqlx::query(SELECT_PENDING_IN)
                .bind(host)
                .bind(username)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get("jid").map_err(backend)?,
                        row.try_get("stanza").map_err(backend)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let offline: i64 = sqlx::query_scalar(COUNT_OFFLINE)
                .bind(host)
                .bind(username)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let blocklist = sqlx::query_scalar(SELECT_BLOCKLIST)
                .bind(host)
                .bind(username)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            let avatar = sqlx::query(SELECT_NEWEST_PEP_ITEM)
                .bind(host)
                .bind(username)
                .bind(parley_proto::avatar::METADATA_NODE)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            let avatar_metadata = avatar
                .map(|row| {
                    Ok::<_, StorageError>($crate::pep::PepItemRow {
                        id: row.try_get("id").map_err(backend)?,
                        stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                        payload: row.try_get("payload").map_err(backend)?,
                    })
                })
                .transpose()?;
            tx.commit().await.map_err(backend)?;
            Ok(UserState {
                account,
                roster: Roster {
                    version,
                    items: items.into_iter().map(|(_, item)| item).collect(),
                },
                pending_in,
                offline_count: offline_count_from(offline)?,
                blocklist,
                avatar_metadata,
            })
        }
    };
}

pub(crate) use sql_storage_methods;
