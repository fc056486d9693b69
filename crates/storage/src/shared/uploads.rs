//! The [`Uploads`](crate::Uploads) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones.

/// `impl Uploads for $store`.
macro_rules! sql_upload_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        fn upload_of(row: &$row) -> Result<$crate::UploadRecord> {
            let size: i64 = row.try_get("size").map_err(backend)?;
            Ok($crate::UploadRecord {
                id: row.try_get("id").map_err(backend)?,
                username: row.try_get("username").map_err(backend)?,
                host: row.try_get("host").map_err(backend)?,
                filename: row.try_get("filename").map_err(backend)?,
                content_type: row.try_get("content_type").map_err(backend)?,
                size: u64::try_from(size).unwrap_or(0),
                created_ms: row.try_get("created_ms").map_err(backend)?,
                expires_ms: row.try_get("expires_ms").map_err(backend)?,
            })
        }

        fn usage_of(sum: i64) -> u64 {
            u64::try_from(sum).unwrap_or(0)
        }

        #[async_trait::async_trait]
        impl $crate::Uploads for $store {
            async fn upload_add(
                &self,
                file: &$crate::UploadRecord,
                quota: $crate::UploadQuota,
            ) -> Result<$crate::UploadAdded> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::Uploads, &file.username, &file.host).await?;
                let (bytes, files): (i64, i64) = sqlx::query_as(UPLOAD_USAGE)
                    .bind(&file.host)
                    .bind(&file.username)
                    .bind(file.created_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if usage_of(bytes).saturating_add(file.size) > quota.bytes
                    || usage_of(files) >= quota.files
                {
                    return Ok($crate::UploadAdded::OverQuota);
                }
                let size = i64::try_from(file.size).unwrap_or(i64::MAX);
                let inserted = sqlx::query(INSERT_UPLOAD)
                    .bind(&file.id)
                    .bind(&file.host)
                    .bind(&file.username)
                    .bind(&file.filename)
                    .bind(&file.content_type)
                    .bind(size)
                    .bind(file.created_ms)
                    .bind(file.expires_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if inserted.rows_affected() == 0 {
                    return Ok($crate::UploadAdded::Exists);
                }
                tx.commit().await.map_err(backend)?;
                Ok($crate::UploadAdded::Added)
            }

            async fn upload_get(&self, id: &str) -> Result<Option<$crate::UploadRecord>> {
                let row = sqlx::query(SELECT_UPLOAD)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(upload_of).transpose()
            }

            async fn upload_usage(
                &self,
                username: &str,
                host: &str,
                now_ms: i64,
            ) -> Result<(u64, u64)> {
                let (bytes, files): (i64, i64) = sqlx::query_as(UPLOAD_USAGE)
                    .bind(host)
                    .bind(username)
                    .bind(now_ms)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok((usage_of(bytes), usage_of(files)))
            }

            async fn upload_expire(&self, now_ms: i64, limit: u32) -> Result<Vec<String>> {
                let mut tx = self.begin_write().await?;
                let ids: Vec<String> = sqlx::query_scalar(EXPIRE_UPLOADS)
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(ids)
            }
        }
    };
}

pub(crate) use sql_upload_methods;
