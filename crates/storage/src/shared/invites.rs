//! The [`Invites`](crate::Invites) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones.

/// `impl Invites for $store`.
macro_rules! sql_invite_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        fn invite_of(row: &$row) -> Result<$crate::InviteRecord> {
            let uses: i64 = row.try_get("uses_left").map_err(backend)?;
            Ok($crate::InviteRecord {
                id: row.try_get("id").map_err(backend)?,
                host: row.try_get("host").map_err(backend)?,
                secret_hash: row.try_get("secret_hash").map_err(backend)?,
                created_ms: row.try_get("created_ms").map_err(backend)?,
                expires_ms: row.try_get("expires_ms").map_err(backend)?,
                uses_left: u32::try_from(uses.max(0)).unwrap_or(u32::MAX),
            })
        }

        #[async_trait::async_trait]
        impl $crate::Invites for $store {
            async fn invite_put(&self, invite: &$crate::InviteRecord) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(PRUNE_INVITES)
                    .bind(invite.created_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query(INSERT_INVITE)
                    .bind(&invite.id)
                    .bind(&invite.host)
                    .bind(&invite.secret_hash)
                    .bind(invite.created_ms)
                    .bind(invite.expires_ms)
                    .bind(i64::from(invite.uses_left))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)
            }

            async fn invite_get(
                &self,
                secret_hash: &str,
                host: &str,
                now_ms: i64,
            ) -> Result<Option<$crate::InviteRecord>> {
                let row = sqlx::query(SELECT_LIVE_INVITE)
                    .bind(secret_hash)
                    .bind(host)
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(invite_of).transpose()
            }

            async fn invite_take(
                &self,
                secret_hash: &str,
                host: &str,
                now_ms: i64,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(TAKE_INVITE)
                    .bind(secret_hash)
                    .bind(host)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn invite_give_back(&self, secret_hash: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(GIVE_BACK_INVITE)
                    .bind(secret_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)
            }

            async fn invites(&self) -> Result<Vec<$crate::InviteRecord>> {
                let rows = sqlx::query(SELECT_INVITES)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter().map(invite_of).collect()
            }

            async fn signup_take(
                &self,
                address: &str,
                now_ms: i64,
                period_ms: i64,
                max: u32,
                max_tracked: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                sqlx::query(EXPIRE_SIGNUP_COUNTS)
                    .bind(now_ms.saturating_sub(period_ms))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                let known: Option<i64> = sqlx::query_scalar(SELECT_SIGNUP_COUNT)
                    .bind(address)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                if known.is_none() {
                    let tracked: i64 = sqlx::query_scalar(COUNT_SIGNUP_ADDRESSES)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(backend)?;
                    if usize::try_from(tracked).unwrap_or(usize::MAX) >= max_tracked {
                        return Ok(false);
                    }
                }
                let done = sqlx::query(TAKE_SIGNUP)
                    .bind(address)
                    .bind(now_ms)
                    .bind(i64::from(max))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn signup_give_back(&self, address: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(GIVE_BACK_SIGNUP)
                    .bind(address)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)
            }

            async fn invite_revoke(&self, id: &str) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(DELETE_INVITE)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use sql_invite_methods;
