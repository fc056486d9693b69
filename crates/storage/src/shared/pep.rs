//! The [`Pep`](crate::Pep) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones, with the SQL of `sql.rs`.

/// `impl Pep for $store`.
macro_rules! sql_pep_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        fn pep_config_of(row: &$row) -> Result<parley_proto::pubsub::NodeConfig> {
            use parley_proto::pubsub::{AccessModel, NodeConfig, SendLast};
            let access: String = row.try_get("access_model").map_err(backend)?;
            let send_last: String = row.try_get("send_last").map_err(backend)?;
            let groups: String = row.try_get("roster_groups").map_err(backend)?;
            let corrupt = |what: &str| StorageError::Backend(format!("corrupt pep node {what}"));
            Ok(NodeConfig {
                access: AccessModel::parse(&access).ok_or_else(|| corrupt("access model"))?,
                persist_items: row.try_get::<i64, _>("persist_items").map_err(backend)? != 0,
                max_items: u64::try_from(row.try_get::<i64, _>("max_items").map_err(backend)?)
                    .map_err(|_| corrupt("max_items"))?,
                send_last: SendLast::parse(&send_last).ok_or_else(|| corrupt("send_last"))?,
                roster_groups: groups
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        }

        /// Creates or replaces a node's configuration inside `conn`'s transaction (the
        /// caller holds the account's PEP lock); false when creating it would pass
        /// `max_nodes`. Trims the node's items to the configuration.
        async fn put_pep_node(
            conn: &mut $conn,
            username: &str,
            host: &str,
            node: &str,
            config: &parley_proto::pubsub::NodeConfig,
            max_nodes: usize,
        ) -> Result<bool> {
            let exists: i64 = sqlx::query_scalar(HAS_PEP_NODE)
                .bind(host)
                .bind(username)
                .bind(node)
                .fetch_one(&mut *conn)
                .await
                .map_err(backend)?;
            if exists == 0 {
                let count: i64 = sqlx::query_scalar(COUNT_PEP_NODES)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(backend)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= max_nodes {
                    return Ok(false);
                }
            }
            sqlx::query(UPSERT_PEP_NODE)
                .bind(host)
                .bind(username)
                .bind(node)
                .bind(config.access.as_str())
                .bind(i64::from(config.persist_items))
                .bind(i64::try_from(config.max_items).unwrap_or(i64::MAX))
                .bind(config.send_last.as_str())
                .bind(config.roster_groups.join("\n"))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            trim_pep_items(conn, username, host, node, config).await?;
            Ok(true)
        }

        async fn trim_pep_items(
            conn: &mut $conn,
            username: &str,
            host: &str,
            node: &str,
            config: &parley_proto::pubsub::NodeConfig,
        ) -> Result<()> {
            let keep = if config.persist_items {
                i64::try_from(config.max_items).unwrap_or(i64::MAX)
            } else {
                1
            };
            sqlx::query(TRIM_PEP_ITEMS)
                .bind(host)
                .bind(username)
                .bind(node)
                .bind(keep)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            Ok(())
        }

        fn pep_item_of(row: &$row) -> Result<$crate::pep::PepItemRow> {
            Ok($crate::pep::PepItemRow {
                id: row.try_get("id").map_err(backend)?,
                stamp_ms: row.try_get("stamp_ms").map_err(backend)?,
                payload: row.try_get("payload").map_err(backend)?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::pep::Pep for $store {
            async fn pep_nodes(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<(String, parley_proto::pubsub::NodeConfig)>> {
                let rows = sqlx::query(SELECT_PEP_NODES)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter()
                    .map(|r| Ok((r.try_get("node").map_err(backend)?, pep_config_of(r)?)))
                    .collect()
            }

            async fn pep_node(
                &self,
                username: &str,
                host: &str,
                node: &str,
            ) -> Result<Option<parley_proto::pubsub::NodeConfig>> {
                let row = sqlx::query(SELECT_PEP_NODE)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(pep_config_of).transpose()
            }

            async fn pep_configure(
                &self,
                username: &str,
                host: &str,
                node: &str,
                config: &parley_proto::pubsub::NodeConfig,
                max_nodes: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Pep, username, host).await?;
                if !put_pep_node(&mut tx, username, host, node, config, max_nodes).await? {
                    return Ok(false);
                }
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn pep_publish(
                &self,
                username: &str,
                host: &str,
                node: &str,
                config: &parley_proto::pubsub::NodeConfig,
                item: &$crate::pep::PepItemRow,
                max_nodes: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Pep, username, host).await?;
                let existing = sqlx::query(SELECT_PEP_NODE)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                let config = match existing.as_ref().map(pep_config_of).transpose()? {
                    Some(current) => current,
                    None => {
                        if !put_pep_node(&mut tx, username, host, node, config, max_nodes).await? {
                            return Ok(false);
                        }
                        config.clone()
                    }
                };
                // A republished id becomes the newest.
                sqlx::query(DELETE_PEP_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .bind(&item.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query(INSERT_PEP_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .bind(&item.id)
                    .bind(item.stamp_ms)
                    .bind(&item.payload)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                trim_pep_items(&mut tx, username, host, node, &config).await?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn pep_items(
                &self,
                username: &str,
                host: &str,
                node: &str,
                max: Option<usize>,
                ids: &[String],
            ) -> Result<Vec<$crate::pep::PepItemRow>> {
                let rows = sqlx::query(SELECT_PEP_ITEMS)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                let mut items = rows.iter().map(pep_item_of).collect::<Result<Vec<_>>>()?;
                if !ids.is_empty() {
                    items.retain(|i| ids.contains(&i.id));
                } else if let Some(max) = max {
                    let skip = items.len().saturating_sub(max);
                    items.drain(..skip);
                }
                Ok(items)
            }

            async fn pep_retract(
                &self,
                username: &str,
                host: &str,
                node: &str,
                ids: &[String],
            ) -> Result<Vec<String>> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Pep, username, host).await?;
                let mut gone = Vec::new();
                for id in ids {
                    let done = sqlx::query(DELETE_PEP_ITEM)
                        .bind(host)
                        .bind(username)
                        .bind(node)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    if done.rows_affected() > 0 {
                        gone.push(id.clone());
                    }
                }
                tx.commit().await.map_err(backend)?;
                Ok(gone)
            }

            async fn pep_delete(&self, username: &str, host: &str, node: &str) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Pep, username, host).await?;
                let mut existed = false;
                for statement in [DELETE_PEP_NODE_ITEMS, DELETE_PEP_NODE] {
                    let done = sqlx::query(statement)
                        .bind(host)
                        .bind(username)
                        .bind(node)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    existed = done.rows_affected() > 0;
                }
                tx.commit().await.map_err(backend)?;
                Ok(existed)
            }

            async fn pep_purge(&self, username: &str, host: &str, node: &str) -> Result<bool> {
                let exists = self.pep_node(username, host, node).await?.is_some();
                sqlx::query(DELETE_PEP_NODE_ITEMS)
                    .bind(host)
                    .bind(username)
                    .bind(node)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(exists)
            }

            async fn caps_get(&self, ver: &str) -> Result<Option<Vec<String>>> {
                let features: Option<String> = sqlx::query_scalar(SELECT_CAPS)
                    .bind(ver)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(features.map(|f| f.lines().map(str::to_owned).collect()))
            }

            async fn caps_put(&self, ver: &str, features: &[String]) -> Result<()> {
                sqlx::query(UPSERT_CAPS)
                    .bind(ver)
                    .bind(features.join("\n"))
                    .bind(parley_proto::clock::now_ms())
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_pep_methods;
