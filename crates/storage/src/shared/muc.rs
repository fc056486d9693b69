//! The [`Muc`](crate::Muc) method bodies both SQL backends share, expanded inside
//! [`super::impl_sql_storage!`] next to the `Storage` ones.

/// `impl Muc for $store`.
macro_rules! sql_muc_methods {
    ($store:ty, conn = $conn:ty, row = $row:ty) => {
        fn muc_room_of(row: &$row) -> Result<$crate::RoomRecord> {
            Ok($crate::RoomRecord {
                service: row.try_get("service").map_err(backend)?,
                name: row.try_get("name").map_err(backend)?,
                config: row.try_get("config").map_err(backend)?,
                subject: row.try_get("subject").map_err(backend)?,
                public: row.try_get("public").map_err(backend)?,
                persistent: row.try_get("persistent").map_err(backend)?,
                created_ms: row.try_get("created_ms").map_err(backend)?,
            })
        }

        /// Runs each of `statements` with `($1, $2)` bound to `(first, second)`.
        async fn muc_delete_all(
            conn: &mut $conn,
            statements: &[&str],
            first: &str,
            second: &str,
        ) -> Result<()> {
            for statement in statements {
                sqlx::query(*statement)
                    .bind(first)
                    .bind(second)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::Muc for $store {
            async fn muc_room(
                &self,
                service: &str,
                name: &str,
            ) -> Result<Option<$crate::RoomState>> {
                let mut tx = self.begin_read().await?;
                let Some(row) = sqlx::query(SELECT_MUC_ROOM)
                    .bind(service)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?
                else {
                    return Ok(None);
                };
                let room = muc_room_of(&row)?;
                let affiliations: Vec<(String, String, Option<String>, Option<String>)> =
                    sqlx::query_as(SELECT_MUC_AFFILIATIONS)
                        .bind(service)
                        .bind(name)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?;
                let occupants: Vec<(String, String, String, String)> =
                    sqlx::query_as(SELECT_MUC_OCCUPANTS)
                        .bind(service)
                        .bind(name)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(Some($crate::RoomState {
                    room,
                    affiliations: affiliations
                        .into_iter()
                        .map(
                            |(jid, affiliation, nick, reason)| $crate::RoomAffiliationRow {
                                jid,
                                affiliation,
                                nick,
                                reason,
                            },
                        )
                        .collect(),
                    occupants: occupants
                        .into_iter()
                        .map(|(jid, nick, role, presence)| $crate::RoomOccupantRow {
                            jid,
                            nick,
                            role,
                            presence,
                        })
                        .collect(),
                }))
            }

            async fn muc_create_room(
                &self,
                room: &$crate::RoomRecord,
                owner: &str,
                max_owned: usize,
            ) -> Result<$crate::RoomCreated> {
                let mut tx = self.begin_write().await?;
                lock_user(&mut tx, UserLock::MucOwner, owner, &room.service).await?;
                let exists: i64 = sqlx::query_scalar(HAS_MUC_ROOM)
                    .bind(&room.service)
                    .bind(&room.name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if exists > 0 {
                    return Ok($crate::RoomCreated::Exists);
                }
                let owned: i64 = sqlx::query_scalar(COUNT_MUC_OWNED)
                    .bind(&room.service)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if usize::try_from(owned).unwrap_or(usize::MAX) >= max_owned {
                    return Ok($crate::RoomCreated::TooMany);
                }
                let inserted = sqlx::query(INSERT_MUC_ROOM)
                    .bind(&room.service)
                    .bind(&room.name)
                    .bind(&room.config)
                    .bind(room.subject.as_deref())
                    .bind(room.public)
                    .bind(room.persistent)
                    .bind(room.created_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if inserted.rows_affected() == 0 {
                    // Another owner's creation of the same room committed since the check.
                    return Ok($crate::RoomCreated::Exists);
                }
                // The room's row is ours now: whatever is left under its name was written
                // for an earlier room, racing its destruction.
                muc_delete_all(&mut tx, DELETE_MUC_ROOM_ROWS, &room.service, &room.name).await?;
                sqlx::query(UPSERT_MUC_AFFILIATION)
                    .bind(&room.service)
                    .bind(&room.name)
                    .bind(owner)
                    .bind("owner")
                    .bind(None::<&str>)
                    .bind(None::<&str>)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok($crate::RoomCreated::Created)
            }

            async fn muc_update_room(&self, room: &$crate::RoomRecord) -> Result<bool> {
                let done = sqlx::query(UPDATE_MUC_ROOM)
                    .bind(&room.service)
                    .bind(&room.name)
                    .bind(&room.config)
                    .bind(room.subject.as_deref())
                    .bind(room.public)
                    .bind(room.persistent)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn muc_destroy_room(&self, service: &str, name: &str) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                // The room's archive is `name@service`'s: its batches hold this lock while
                // they append and count, so none is half-written when the archive goes.
                lock_user(&mut tx, UserLock::Archive, name, service).await?;
                let done = sqlx::query(DELETE_MUC_ROOM)
                    .bind(service)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                muc_delete_all(&mut tx, DELETE_MUC_ROOM_ROWS, service, name).await?;
                muc_delete_all(&mut tx, DELETE_MUC_ARCHIVE, service, name).await?;
                if ARCHIVE_LOG {
                    muc_delete_all(&mut tx, &[DELETE_ARCHIVE_LOG], service, name).await?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn muc_set_affiliation(
                &self,
                service: &str,
                name: &str,
                row: &$crate::RoomAffiliationRow,
            ) -> Result<()> {
                if row.affiliation == "none" {
                    sqlx::query(DELETE_MUC_AFFILIATION)
                        .bind(service)
                        .bind(name)
                        .bind(&row.jid)
                        .execute(&self.pool)
                        .await
                        .map_err(backend)?;
                    return Ok(());
                }
                sqlx::query(UPSERT_MUC_AFFILIATION)
                    .bind(service)
                    .bind(name)
                    .bind(&row.jid)
                    .bind(&row.affiliation)
                    .bind(row.nick.as_deref())
                    .bind(row.reason.as_deref())
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn muc_put_occupant(
                &self,
                service: &str,
                name: &str,
                row: &$crate::RoomOccupantRow,
            ) -> Result<()> {
                sqlx::query(UPSERT_MUC_OCCUPANT)
                    .bind(service)
                    .bind(name)
                    .bind(&row.jid)
                    .bind(&row.nick)
                    .bind(&row.role)
                    .bind(&row.presence)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn muc_remove_occupant(
                &self,
                service: &str,
                name: &str,
                jid: &str,
            ) -> Result<()> {
                sqlx::query(DELETE_MUC_OCCUPANT)
                    .bind(service)
                    .bind(name)
                    .bind(jid)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn muc_clear_occupants(&self, service: &str, name: &str) -> Result<()> {
                sqlx::query(CLEAR_MUC_OCCUPANTS)
                    .bind(service)
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn muc_rooms(
                &self,
                service: &str,
                after: Option<&str>,
                limit: usize,
                public_only: bool,
            ) -> Result<Vec<$crate::RoomRecord>> {
                let rows = sqlx::query(SELECT_MUC_ROOMS)
                    .bind(service)
                    .bind(after.unwrap_or(""))
                    .bind(!public_only)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.iter().map(muc_room_of).collect()
            }

            async fn muc_room_count(&self, service: &str) -> Result<u64> {
                let count: i64 = sqlx::query_scalar(COUNT_MUC_ROOMS)
                    .bind(service)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }
        }
    };
}

pub(crate) use sql_muc_methods;
