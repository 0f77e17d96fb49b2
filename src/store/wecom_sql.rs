//! [`WecomRepo`](super::WecomRepo) once for both dialects: statements built from the
//! [`Dialect`], bodies one `macro_rules!` instantiated for each database (see `sql.rs`). Writes
//! read the database's clock once per transaction (`now_ms`) and bind it, so that every row of
//! one refresh carries the same time.

use super::sql::Dialect;

impl Dialect {
    /// The database's clock, ms (no bind).
    fn wecom_now(&self) -> String {
        format!("SELECT {}", self.now_ms)
    }

    /// A roomid seen (binds: corpid, roomid, now).
    fn wecom_room_seen(&self) -> String {
        format!("{} wecom_room (corpid, roomid, first_seen_at) VALUES (?, ?, ?)", self.insert_ignore)
    }

    /// Rooms never fetched or fetched before (binds: corpid, now − age, limit).
    fn wecom_rooms_due(&self) -> String {
        "SELECT roomid FROM wecom_room WHERE corpid = ? AND (fetched_at IS NULL OR fetched_at < ?) \
         ORDER BY CASE WHEN fetched_at IS NULL THEN 0 ELSE 1 END, fetched_at, roomid LIMIT ?"
            .into()
    }

    /// A room's fetched fields (binds: roomname, creator, room_create_time, notice, now, corpid,
    /// roomid); inserts the row when the room was not seen before.
    fn wecom_room_put(&self) -> String {
        format!(
            "INSERT INTO wecom_room (roomname, creator, room_create_time, notice, fetched_at, corpid, roomid, \
             first_seen_at, fetch_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) {}",
            self.upsert(
                "corpid, roomid",
                &["roomname", "creator", "room_create_time", "notice", "fetched_at", "fetch_error"]
            )
        )
    }

    /// A member (binds: corpid, roomid, memberid, jointime, now).
    fn wecom_member_put(&self) -> String {
        format!(
            "INSERT INTO wecom_room_member (corpid, roomid, memberid, jointime, present, updated_at) \
             VALUES (?, ?, ?, ?, 1, ?) {}",
            self.upsert("corpid, roomid, memberid", &["jointime", "present", "updated_at"])
        )
    }

    /// An archived member listed (binds: corpid, userid, types, now, now).
    fn wecom_permit_put(&self) -> String {
        format!(
            "INSERT INTO wecom_permit_user (corpid, userid, types, present, first_seen_at, last_seen_at) \
             VALUES (?, ?, ?, 1, ?, ?) {}",
            self.upsert("corpid, userid", &["types", "present", "last_seen_at"])
        )
    }

    /// The scan row's permit time (binds: corpid, now, now).
    fn wecom_permit_noted(&self) -> String {
        format!(
            "INSERT INTO wecom_scan (corpid, last_seq, permit_refreshed_at, updated_at) VALUES (?, 0, ?, ?) {}",
            self.upsert("corpid", &["permit_refreshed_at", "updated_at"])
        )
    }

    /// The latest consent (binds: corpid, roomid, userid, external_id, agree_status,
    /// status_change_time, now).
    fn wecom_consent_upsert(&self) -> String {
        format!(
            "INSERT INTO wecom_consent (corpid, roomid, userid, external_id, agree_status, status_change_time, \
             checked_at) VALUES (?, ?, ?, ?, ?, ?, ?) {}",
            self.upsert("corpid, roomid, userid, external_id", &["agree_status", "status_change_time", "checked_at"])
        )
    }

    /// The consent columns of a row (no alias).
    fn wecom_consent_columns(&self) -> String {
        format!(
            "roomid, userid, external_id, agree_status, CAST(status_change_time AS {i}), CAST(checked_at AS {i})",
            i = self.int
        )
    }

    /// Moves the scan cursor forward (binds: corpid, seq, now).
    fn wecom_scan_put(&self) -> String {
        match self.upsert_style {
            super::sql::Upsert::DuplicateKey => "INSERT INTO wecom_scan (corpid, last_seq, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE last_seq = GREATEST(last_seq, VALUES(last_seq)), updated_at = VALUES(updated_at)"
                .into(),
            super::sql::Upsert::OnConflict => "INSERT INTO wecom_scan (corpid, last_seq, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (corpid) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq), \
                 updated_at = excluded.updated_at"
                .into(),
        }
    }
}

/// The [`WecomRepo`] of `SqlStore<$db>`. SQLite's writer lock is held around each write.
macro_rules! wecom_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            async fn wecom_now_in(tx: &mut sqlx::Transaction<'_, $db>) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(&Self::SQL.wecom_now()).fetch_one(&mut **tx).await?)
            }

            async fn wecom_now_pool(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(&Self::SQL.wecom_now()).fetch_one(&self.pool).await?)
            }

            fn wecom_consent_from(r: &<$db as sqlx::Database>::Row) -> Result<Consent, sqlx::Error> {
                Ok(Consent {
                    check: ConsentCheck {
                        roomid: r.try_get(0)?,
                        userid: r.try_get(1)?,
                        external_id: r.try_get(2)?,
                        agree_status: r.try_get(3)?,
                        status_change_time: r.try_get(4)?,
                    },
                    checked_at_ms: r.try_get(5)?,
                })
            }
        }

        #[async_trait]
        impl WecomRepo for SqlStore<$db> {
            async fn wecom_rooms_seen(&self, corpid: &CorpId, roomids: &[String]) -> Result<u64, StoreError> {
                if roomids.is_empty() {
                    return Ok(0);
                }
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let now = Self::wecom_now_in(&mut tx).await?;
                let mut added = 0;
                for roomid in roomids {
                    added += sqlx::query(&Self::SQL.wecom_room_seen())
                        .bind(corpid.as_str())
                        .bind(roomid.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn wecom_rooms_due(
                &self,
                corpid: &CorpId,
                age_ms: i64,
                limit: u32,
            ) -> Result<Vec<String>, StoreError> {
                let now = self.wecom_now_pool().await?;
                Ok(sqlx::query_scalar(&Self::SQL.wecom_rooms_due())
                    .bind(corpid.as_str())
                    .bind(now.saturating_sub(age_ms))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn wecom_room_fetched(
                &self,
                corpid: &CorpId,
                roomid: &str,
                info: &RoomInfo,
            ) -> Result<(), StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let now = Self::wecom_now_in(&mut tx).await?;
                sqlx::query(&d.wecom_room_put())
                    .bind(info.roomname.as_str())
                    .bind(info.creator.as_str())
                    .bind(info.room_create_time)
                    .bind(info.notice.as_str())
                    .bind(now)
                    .bind(corpid.as_str())
                    .bind(roomid)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let before: Vec<(String, i64)> = sqlx::query_as(&format!(
                    "SELECT memberid, CAST(present AS {}) FROM wecom_room_member WHERE corpid = ? AND roomid = ?",
                    d.int
                ))
                .bind(corpid.as_str())
                .bind(roomid)
                .fetch_all(&mut *tx)
                .await?;
                let listed: std::collections::HashSet<&str> = info.members.iter().map(|(m, _)| m.as_str()).collect();
                for (memberid, jointime) in &info.members {
                    sqlx::query(&d.wecom_member_put())
                        .bind(corpid.as_str())
                        .bind(roomid)
                        .bind(memberid.as_str())
                        .bind(*jointime)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                for (memberid, present) in before {
                    if present != 0 && !listed.contains(memberid.as_str()) {
                        sqlx::query(
                            "UPDATE wecom_room_member SET present = 0, updated_at = ? \
                             WHERE corpid = ? AND roomid = ? AND memberid = ?",
                        )
                        .bind(now)
                        .bind(corpid.as_str())
                        .bind(roomid)
                        .bind(memberid.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn wecom_room_failed(&self, corpid: &CorpId, roomid: &str, error: &str) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let now = Self::wecom_now_in(&mut tx).await?;
                sqlx::query(&Self::SQL.wecom_room_seen())
                    .bind(corpid.as_str())
                    .bind(roomid)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // The column holds 512 characters.
                let error: String = error.chars().take(500).collect();
                sqlx::query("UPDATE wecom_room SET fetch_error = ?, fetched_at = ? WHERE corpid = ? AND roomid = ?")
                    .bind(error)
                    .bind(now)
                    .bind(corpid.as_str())
                    .bind(roomid)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn wecom_rooms(&self, corpid: &CorpId) -> Result<Vec<WecomRoom>, StoreError> {
                let rows: Vec<(String, Option<String>, Option<String>, Option<i64>, Option<String>, i64, Option<i64>, Option<String>)> =
                    sqlx::query_as(&format!(
                        "SELECT roomid, roomname, creator, CAST(room_create_time AS {i}), notice, \
                         CAST(first_seen_at AS {i}), CAST(fetched_at AS {i}), fetch_error \
                         FROM wecom_room WHERE corpid = ? ORDER BY roomid",
                        i = Self::SQL.int
                    ))
                    .bind(corpid.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(roomid, roomname, creator, room_create_time, notice, first, fetched, fetch_error)| WecomRoom {
                        roomid,
                        roomname,
                        creator,
                        room_create_time,
                        notice,
                        first_seen_at_ms: first,
                        fetched_at_ms: fetched,
                        fetch_error,
                    })
                    .collect())
            }

            async fn wecom_room_members(
                &self,
                corpid: &CorpId,
                roomid: &str,
            ) -> Result<Vec<WecomRoomMember>, StoreError> {
                let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(&format!(
                    "SELECT memberid, CAST(jointime AS {i}), CAST(present AS {i}) FROM wecom_room_member \
                     WHERE corpid = ? AND roomid = ? ORDER BY memberid",
                    i = Self::SQL.int
                ))
                .bind(corpid.as_str())
                .bind(roomid)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(memberid, jointime, present)| WecomRoomMember { memberid, jointime, present: present != 0 })
                    .collect())
            }

            async fn wecom_permit_replace(&self, corpid: &CorpId, users: &[(String, i64)]) -> Result<(), StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let now = Self::wecom_now_in(&mut tx).await?;
                let before: Vec<(String, i64)> = sqlx::query_as(&format!(
                    "SELECT userid, CAST(present AS {}) FROM wecom_permit_user WHERE corpid = ?",
                    d.int
                ))
                .bind(corpid.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let listed: std::collections::HashSet<&str> = users.iter().map(|(u, _)| u.as_str()).collect();
                for (userid, types) in users {
                    sqlx::query(&d.wecom_permit_put())
                        .bind(corpid.as_str())
                        .bind(userid.as_str())
                        .bind(*types)
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                for (userid, present) in before {
                    if present != 0 && !listed.contains(userid.as_str()) {
                        sqlx::query("UPDATE wecom_permit_user SET present = 0 WHERE corpid = ? AND userid = ?")
                            .bind(corpid.as_str())
                            .bind(userid.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                sqlx::query(&d.wecom_permit_noted()).bind(corpid.as_str()).bind(now).bind(now).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn wecom_permit_users(&self, corpid: &CorpId) -> Result<Vec<PermitUser>, StoreError> {
                let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(&format!(
                    "SELECT userid, CAST(types AS {i}), CAST(present AS {i}), CAST(first_seen_at AS {i}), \
                     CAST(last_seen_at AS {i}) FROM wecom_permit_user WHERE corpid = ? ORDER BY userid",
                    i = Self::SQL.int
                ))
                .bind(corpid.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(userid, types, present, first, last)| PermitUser {
                        userid,
                        types,
                        present: present != 0,
                        first_seen_at_ms: first,
                        last_seen_at_ms: last,
                    })
                    .collect())
            }

            async fn wecom_permit_fresh(&self, corpid: &CorpId, age_ms: i64) -> Result<bool, StoreError> {
                let now = self.wecom_now_pool().await?;
                let at: Option<Option<i64>> = sqlx::query_scalar(&format!(
                    "SELECT CAST(permit_refreshed_at AS {}) FROM wecom_scan WHERE corpid = ?",
                    Self::SQL.int
                ))
                .bind(corpid.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(at.flatten().is_some_and(|at| at >= now.saturating_sub(age_ms)))
            }

            async fn wecom_consent_put(&self, corpid: &CorpId, checks: &[ConsentCheck]) -> Result<u64, StoreError> {
                if checks.is_empty() {
                    return Ok(0);
                }
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let now = Self::wecom_now_in(&mut tx).await?;
                let mut changed = 0;
                for c in checks {
                    let latest: Option<(String, Option<i64>)> = sqlx::query_as(&format!(
                        "SELECT agree_status, CAST(status_change_time AS {}) FROM wecom_consent \
                         WHERE corpid = ? AND roomid = ? AND userid = ? AND external_id = ?{}",
                        d.int, d.for_update
                    ))
                    .bind(corpid.as_str())
                    .bind(c.roomid.as_str())
                    .bind(c.userid.as_str())
                    .bind(c.external_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if latest.as_ref() != Some(&(c.agree_status.clone(), c.status_change_time)) {
                        sqlx::query(
                            "INSERT INTO wecom_consent_history (corpid, roomid, userid, external_id, agree_status, \
                             status_change_time, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(corpid.as_str())
                        .bind(c.roomid.as_str())
                        .bind(c.userid.as_str())
                        .bind(c.external_id.as_str())
                        .bind(c.agree_status.as_str())
                        .bind(c.status_change_time)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        changed += 1;
                    }
                    sqlx::query(&d.wecom_consent_upsert())
                        .bind(corpid.as_str())
                        .bind(c.roomid.as_str())
                        .bind(c.userid.as_str())
                        .bind(c.external_id.as_str())
                        .bind(c.agree_status.as_str())
                        .bind(c.status_change_time)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn wecom_consent_known(
                &self,
                corpid: &CorpId,
                roomid: &str,
                userid: &str,
                external_id: &str,
            ) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT CAST(COUNT(*) AS {}) FROM wecom_consent \
                     WHERE corpid = ? AND roomid = ? AND userid = ? AND external_id = ?",
                    Self::SQL.int
                ))
                .bind(corpid.as_str())
                .bind(roomid)
                .bind(userid)
                .bind(external_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            async fn wecom_consent_due(
                &self,
                corpid: &CorpId,
                age_ms: i64,
                limit: u32,
            ) -> Result<Vec<(String, String)>, StoreError> {
                let now = self.wecom_now_pool().await?;
                Ok(sqlx::query_as(
                    "SELECT userid, external_id FROM wecom_consent \
                     WHERE corpid = ? AND roomid = '' AND checked_at < ? ORDER BY checked_at, userid, external_id LIMIT ?",
                )
                .bind(corpid.as_str())
                .bind(now.saturating_sub(age_ms))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn wecom_consents(&self, corpid: &CorpId) -> Result<Vec<Consent>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM wecom_consent WHERE corpid = ? ORDER BY roomid, userid, external_id",
                    Self::SQL.wecom_consent_columns()
                ))
                .bind(corpid.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::wecom_consent_from).collect::<Result<_, _>>()?)
            }

            async fn wecom_consent_history(
                &self,
                corpid: &CorpId,
                external_id: &str,
            ) -> Result<Vec<Consent>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM wecom_consent_history WHERE corpid = ? AND external_id = ? ORDER BY id",
                    Self::SQL.wecom_consent_columns()
                ))
                .bind(corpid.as_str())
                .bind(external_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::wecom_consent_from).collect::<Result<_, _>>()?)
            }

            async fn wecom_scan_cursor(&self, corpid: &CorpId) -> Result<u64, StoreError> {
                let seq: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT CAST(last_seq AS {}) FROM wecom_scan WHERE corpid = ?",
                    Self::SQL.int
                ))
                .bind(corpid.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
            }

            async fn wecom_scan_advance(&self, corpid: &CorpId, seq: u64) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                let now = self.wecom_now_pool().await?;
                sqlx::query(&Self::SQL.wecom_scan_put())
                    .bind(corpid.as_str())
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use crate::store::sql::SqlStore;
    use crate::store::wecom_repo::{Consent, ConsentCheck, PermitUser, RoomInfo, WecomRoom, WecomRoomMember};
    use crate::store::{CorpId, StoreError, WecomRepo};

    wecom_repo!(sqlx::MySql);
    wecom_repo!(sqlx::Sqlite);
}
