//! [`LeaseRepo`](super::LeaseRepo) once for both dialects: corp leases (`corp_lease`,
//! `lease_instance`, `corp_lease_log`), statements built from the [`Dialect`], bodies one
//! `macro_rules!` instantiated for each database (see `sql.rs`).
//!
//! Times are milliseconds of the *database's* clock, so that the instances' clocks never matter.
//! A claim bumps the corp's fencing `token`; a batch commit re-reads `(holder, token)` inside its
//! transaction (`check_fence`, with `FOR UPDATE` on MySQL) and rolls back when
//! another instance has taken the corp since: a paused or partitioned instance can never write
//! after a takeover. Every claim and release is appended to `corp_lease_log` (the history that
//! tests and operators audit).

use super::sql::Dialect;

impl Dialect {
    /// Announces an instance (binds: holder, ttl ms).
    fn heartbeat(&self) -> String {
        format!(
            "INSERT INTO lease_instance (holder, expires_at) VALUES (?, {} + ?) {}",
            self.now_ms,
            self.upsert("holder", &["expires_at"])
        )
    }

    /// Live instances (no bind).
    fn live(&self) -> String {
        format!("SELECT CAST(COUNT(*) AS {}) FROM lease_instance WHERE expires_at > {}", self.int, self.now_ms)
    }

    /// Takes the corp if free, expired or already this holder's (binds: holder, ttl, corpid, holder).
    fn claim(&self) -> String {
        format!(
            "UPDATE corp_lease SET holder = ?, token = token + 1, expires_at = {now} + ? \
             WHERE corpid = ? AND (holder = '' OR expires_at < {now} OR holder = ?)",
            now = self.now_ms
        )
    }

    /// 1 when another holder's lease of the corp is live (binds: corpid, holder): a consistent
    /// read, no lock.
    fn held_by_other(&self) -> String {
        format!(
            "SELECT CAST(COUNT(*) AS {i}) FROM corp_lease \
             WHERE corpid = ? AND holder <> '' AND holder <> ? AND expires_at >= {now}",
            i = self.int,
            now = self.now_ms
        )
    }

    /// The fencing check inside a batch transaction (bind: corpid).
    fn fence(&self) -> String {
        format!("SELECT holder, CAST(token AS {}) FROM corp_lease WHERE corpid = ?{}", self.int, self.for_update)
    }

    /// One history entry (binds: corpid, holder, token, event).
    fn log(&self) -> String {
        format!("INSERT INTO corp_lease_log (corpid, holder, token, event, at_ms) VALUES (?, ?, ?, ?, {})", self.now_ms)
    }

    /// Every lease with ms left (no bind).
    fn list(&self) -> String {
        format!(
            "SELECT corpid, holder, CAST(token AS {i}), CAST(expires_at - {now} AS {i}) FROM corp_lease ORDER BY corpid",
            i = self.int,
            now = self.now_ms
        )
    }
}

/// The [`LeaseRepo`](super::LeaseRepo) of `SqlStore<$db>`, and the fencing check of its batches.
/// SQLite's writer lock is held around each write.
macro_rules! lease_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// Inside a batch transaction: `Ok` only while `fence` still holds the corp.
            pub(in crate::store) async fn check_fence(
                tx: &mut sqlx::Transaction<'_, $db>,
                corpid: &CorpId,
                fence: &Fence,
            ) -> Result<(), StoreError> {
                let row: Option<(String, i64)> =
                    sqlx::query_as(&Self::SQL.fence()).bind(corpid.as_str()).fetch_optional(&mut **tx).await?;
                match row {
                    Some((holder, token)) if holder == fence.holder && token as u64 == fence.token => Ok(()),
                    other => Err(StoreError::Fenced {
                        corpid: corpid.to_string(),
                        expected: format!("{}#{}", fence.holder, fence.token),
                        found: other.map_or_else(|| "no lease".to_string(), |(h, t)| format!("{h}#{t}")),
                    }),
                }
            }
        }

        #[async_trait]
        impl LeaseRepo for SqlStore<$db> {
            async fn lease_heartbeat(&self, holder: &str, ttl_ms: i64) -> Result<u32, StoreError> {
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.heartbeat()).bind(holder).bind(ttl_ms).execute(&self.pool).await?;
                let live: i64 = sqlx::query_scalar(&Self::SQL.live()).fetch_one(&self.pool).await?;
                Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
            }

            async fn lease_leave(&self, holder: &str) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query("DELETE FROM lease_instance WHERE holder = ?").bind(holder).execute(&self.pool).await?;
                Ok(())
            }

            async fn lease_claim(&self, corpid: &CorpId, holder: &str, ttl_ms: i64) -> Result<Option<u64>, StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                // Never wait on a lease row: a live lease of another holder is left alone without
                // a lock, and a row locked by another transaction (e.g. the batch of a paused
                // holder, until the server drops it) is "not now". A claim that waited would hold
                // up this instance's keeper, and with it the renewal of its own leases.
                let busy: i64 = sqlx::query_scalar(&d.held_by_other())
                    .bind(corpid.as_str())
                    .bind(holder)
                    .fetch_one(&self.pool)
                    .await?;
                if busy > 0 {
                    return Ok(None);
                }
                let mut tx = self.pool.begin().await?;
                if !d.lock_nowait.is_empty() {
                    match sqlx::query(d.lock_nowait).bind(corpid.as_str()).fetch_optional(&mut *tx).await {
                        Ok(_) => {}
                        Err(e) if crate::store::lock_unavailable(&e) => {
                            tx.rollback().await?;
                            return Ok(None);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                sqlx::query(&format!("{} corp_lease (corpid) VALUES (?)", d.insert_ignore))
                    .bind(corpid.as_str())
                    .execute(&mut *tx)
                    .await?;
                let taken = sqlx::query(&d.claim())
                    .bind(holder)
                    .bind(ttl_ms)
                    .bind(corpid.as_str())
                    .bind(holder)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    tx.commit().await?;
                    return Ok(None);
                }
                let (_, token): (String, i64) =
                    sqlx::query_as(&d.fence()).bind(corpid.as_str()).fetch_one(&mut *tx).await?;
                sqlx::query(&d.log())
                    .bind(corpid.as_str())
                    .bind(holder)
                    .bind(token)
                    .bind("claim")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(token as u64))
            }

            async fn lease_renew_all(
                &self,
                holder: &str,
                leases: &[(CorpId, u64)],
                ttl_ms: i64,
            ) -> Result<Vec<(String, u64)>, StoreError> {
                let _w = self.write_guard().await;
                for chunk in leases.chunks(500) {
                    let pairs = vec!["(?, ?)"; chunk.len()].join(", ");
                    let ids = vec!["?"; chunk.len()].join(", ");
                    // `corpid IN` first: the statement reads (and locks) only these rows by primary
                    // key, never a row that another instance's transaction holds.
                    let sql = format!(
                        "UPDATE corp_lease SET expires_at = {} + ? \
                         WHERE corpid IN ({ids}) AND holder = ? AND (corpid, token) IN ({pairs})",
                        Self::SQL.now_ms
                    );
                    let mut q = sqlx::query(&sql).bind(ttl_ms);
                    for (corpid, _) in chunk {
                        q = q.bind(corpid.as_str());
                    }
                    q = q.bind(holder);
                    for (corpid, token) in chunk {
                        q = q.bind(corpid.as_str()).bind(*token as i64);
                    }
                    q.execute(&self.pool).await?;
                }
                let held: Vec<(String, i64)> = sqlx::query_as(&format!(
                    "SELECT corpid, CAST(token AS {}) FROM corp_lease WHERE holder = ?",
                    Self::SQL.int
                ))
                .bind(holder)
                .fetch_all(&self.pool)
                .await?;
                Ok(held.into_iter().map(|(c, t)| (c, t as u64)).collect())
            }

            async fn lease_release(&self, corpid: &CorpId, fence: &Fence) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE corp_lease SET holder = '', expires_at = 0 WHERE corpid = ? AND holder = ? AND token = ?",
                )
                .bind(corpid.as_str())
                .bind(fence.holder.as_str())
                .bind(fence.token as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    sqlx::query(&Self::SQL.log())
                        .bind(corpid.as_str())
                        .bind(fence.holder.as_str())
                        .bind(fence.token as i64)
                        .bind("release")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn lease_list(&self) -> Result<Vec<LeaseRow>, StoreError> {
                let rows: Vec<(String, String, i64, i64)> =
                    sqlx::query_as(&Self::SQL.list()).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(corpid, holder, token, left)| LeaseRow {
                        corpid,
                        holder,
                        token: token as u64,
                        expires_in_ms: left,
                    })
                    .collect())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;

    use crate::store::sql::SqlStore;
    use crate::store::{CorpId, Fence, LeaseRepo, LeaseRow, StoreError};

    lease_repo!(sqlx::MySql);
    lease_repo!(sqlx::Sqlite);
}
