//! The [`Push`](crate::Push) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones.

/// `impl Push for $store`.
macro_rules! sql_push_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::Push for $store {
            async fn push_enable(
                &self,
                username: &str,
                host: &str,
                registration: &$crate::PushRegistration,
                max: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Push, username, host).await?;
                let others: i64 = sqlx::query_scalar(COUNT_OTHER_PUSH)
                    .bind(host)
                    .bind(username)
                    .bind(&registration.jid)
                    .bind(&registration.node)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if usize::try_from(others).unwrap_or(usize::MAX) >= max {
                    return Ok(false);
                }
                sqlx::query(UPSERT_PUSH)
                    .bind(host)
                    .bind(username)
                    .bind(&registration.jid)
                    .bind(&registration.node)
                    .bind(registration.options.as_deref().unwrap_or(""))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn push_disable(
                &self,
                username: &str,
                host: &str,
                jid: &str,
                node: Option<&str>,
            ) -> Result<u64> {
                let done = sqlx::query(DELETE_PUSH)
                    .bind(host)
                    .bind(username)
                    .bind(jid)
                    .bind(node.unwrap_or(""))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected())
            }

            async fn push_registrations(
                &self,
                username: &str,
                host: &str,
            ) -> Result<Vec<$crate::PushRegistration>> {
                let rows: Vec<(String, String, String)> = sqlx::query_as(SELECT_PUSH)
                    .bind(host)
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(rows
                    .into_iter()
                    .map(|(jid, node, options)| $crate::PushRegistration {
                        jid,
                        node,
                        options: (!options.is_empty()).then_some(options),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use sql_push_methods;
