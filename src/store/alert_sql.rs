//! [`AlertRepo`](super::AlertRepo) once for both dialects: the alert outbox (`alert_outbox`) fed
//! from `rule_hit`, statements built from the [`Dialect`], bodies one `macro_rules!`
//! instantiated for each database (see `sql.rs`).
//!
//! Every time is the database's clock ([`Dialect::now_ms`]), so instances with skewed clocks
//! agree on what is due and what claim is stale. Selections inside the claim and dispatch
//! transactions lock their rows on MySQL/MariaDB (`FOR UPDATE`: a second instance waits, then
//! sees them handed or claimed); on SQLite the database's write lock serialises them. The claim
//! itself is a conditional `UPDATE … WHERE status = 0`, so a row is claimed once whatever the
//! isolation.

use super::sql::Dialect;

/// The hit columns, in [`AlertHit`](super::AlertHit) order, of `rule_hit h`.
fn hit_columns(d: &Dialect) -> String {
    format!(
        "CAST(h.id AS {i}), h.corpid, h.msgid, h.rule, h.kind, h.matched, h.context, h.sender, h.conversation, \
         CAST(h.msgtime AS {i}), CAST(h.created_at AS {i})",
        i = d.int
    )
}

/// `ids` as an SQL list (numbers only: safe to inline).
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl Dialect {
    /// Hits not yet handed over (bind: limit).
    fn alert_undispatched(&self) -> String {
        format!(
            "SELECT {cols} FROM rule_hit h WHERE h.alert_state = 0 ORDER BY h.id LIMIT ?{lock}",
            cols = hit_columns(self),
            lock = self.for_update
        )
    }

    /// The oldest due pending row of a channel (binds: channel): id, batch_key.
    fn alert_oldest_due(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), batch_key FROM alert_outbox WHERE channel = ? AND status = 0 \
             AND next_attempt_at <= {now} ORDER BY id LIMIT 1{lock}",
            i = self.int,
            now = self.now_ms,
            lock = self.for_update
        )
    }

    /// Pending rows of a batch (binds: channel, key).
    fn alert_batch_rows(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), CAST(created_at AS {i}), {now} FROM alert_outbox \
             WHERE channel = ? AND batch_key = ? AND status = 0 ORDER BY id{lock}",
            i = self.int,
            now = self.now_ms,
            lock = self.for_update
        )
    }

    /// Due pending rows never sent (binds: channel, limit): id, created_at, now.
    fn alert_fresh_rows(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), CAST(created_at AS {i}), {now} FROM alert_outbox \
             WHERE channel = ? AND status = 0 AND batch_key IS NULL AND next_attempt_at <= {now} \
             ORDER BY id LIMIT ?{lock}",
            i = self.int,
            now = self.now_ms,
            lock = self.for_update
        )
    }

    /// Claims rows (binds: owner, key; the ids inlined).
    fn alert_claim_rows(&self, ids: &[i64]) -> String {
        format!(
            "UPDATE alert_outbox SET status = 1, claimed_by = ?, claimed_at = {now}, attempts = attempts + 1, \
             batch_key = COALESCE(batch_key, ?) WHERE status = 0 AND id IN ({list})",
            now = self.now_ms,
            list = id_list(ids)
        )
    }

    /// The claimed rows with their hits (bind: owner).
    fn alert_claimed(&self, ids: &[i64]) -> String {
        format!(
            "SELECT CAST(o.id AS {i}), o.channel, CAST(o.attempts AS {i}), o.batch_key, CAST(o.created_at AS {i}), \
             {cols} FROM alert_outbox o JOIN rule_hit h ON h.id = o.hit_id \
             WHERE o.status = 1 AND o.claimed_by = ? AND o.id IN ({list}) ORDER BY o.id",
            i = self.int,
            cols = hit_columns(self),
            list = id_list(ids)
        )
    }

    /// Claimed rows whose hit is gone (bind: owner): failed at once.
    fn alert_orphans(&self, ids: &[i64]) -> String {
        format!(
            "UPDATE alert_outbox SET status = 3, last_error = 'rule_hit row deleted', claimed_by = NULL \
             WHERE status = 1 AND claimed_by = ? AND id IN ({list}) \
             AND NOT EXISTS (SELECT 1 FROM rule_hit h WHERE h.id = alert_outbox.hit_id)",
            list = id_list(ids)
        )
    }

    /// Ends a send (binds: status, last_error (NULL keeps the previous one: a batch sent after
    /// failures still shows why it was late), delay ms, attempts to give back, sent flag, owner).
    fn alert_finish_rows(&self, ids: &[i64]) -> String {
        format!(
            "UPDATE alert_outbox SET status = ?, last_error = COALESCE(?, last_error), next_attempt_at = {now} + ?, \
             attempts = attempts - ?, sent_at = CASE WHEN ? = 1 THEN {now} ELSE sent_at END, \
             claimed_by = NULL, claimed_at = NULL WHERE status = 1 AND claimed_by = ? AND id IN ({list})",
            now = self.now_ms,
            list = id_list(ids)
        )
    }

    /// Gives back the claims of an owner or stale ones (binds: owner, stale ms).
    fn alert_recover_rows(&self) -> String {
        format!(
            "UPDATE alert_outbox SET status = 0, claimed_by = NULL, claimed_at = NULL \
             WHERE status = 1 AND (claimed_by = ? OR claimed_at IS NULL OR claimed_at < {now} - ?)",
            now = self.now_ms
        )
    }

    /// Counts by channel and status.
    fn alert_count_rows(&self) -> String {
        format!(
            "SELECT o.channel, CAST(o.status AS {i}), CAST(COUNT(*) AS {i}), CAST(MIN(o.created_at) AS {i}), \
             (SELECT e.last_error FROM alert_outbox e WHERE e.channel = o.channel AND e.status = o.status \
              AND e.last_error IS NOT NULL ORDER BY e.id DESC LIMIT 1) \
             FROM alert_outbox o GROUP BY o.channel, o.status ORDER BY o.channel, o.status",
            i = self.int
        )
    }
}

/// The [`AlertRepo`](super::AlertRepo) of `SqlStore<$db>`. SQLite's writer lock is held around
/// each write transaction.
macro_rules! alert_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            fn alert_hit(r: &<$db as sqlx::Database>::Row, at: usize) -> Result<AlertHit, sqlx::Error> {
                Ok(AlertHit {
                    id: r.try_get(at)?,
                    corpid: r.try_get(at + 1)?,
                    msgid: r.try_get(at + 2)?,
                    rule: r.try_get(at + 3)?,
                    kind: r.try_get(at + 4)?,
                    matched: r.try_get(at + 5)?,
                    context: r.try_get(at + 6)?,
                    sender: r.try_get(at + 7)?,
                    conversation: r.try_get(at + 8)?,
                    msgtime: r.try_get(at + 9)?,
                    created_at: r.try_get(at + 10)?,
                })
            }
        }

        #[async_trait]
        impl AlertRepo for SqlStore<$db> {
            async fn alert_dispatch(&self, limit: u32, route: Route<'_>) -> Result<DispatchOutcome, StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query(&d.alert_undispatched()).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
                let hits = rows.iter().map(|r| Self::alert_hit(r, 0)).collect::<Result<Vec<_>, _>>()?;
                if hits.is_empty() {
                    return Ok(DispatchOutcome::default());
                }
                let mut out = DispatchOutcome::default();
                for hit in &hits {
                    let mut channels = route(hit);
                    channels.sort();
                    channels.dedup();
                    for channel in channels {
                        out.rows += sqlx::query(&format!(
                            "{} alert_outbox (channel, hit_id, status, attempts, next_attempt_at, created_at) \
                             VALUES (?, ?, 0, 0, 0, {})",
                            d.insert_ignore, d.now_ms
                        ))
                        .bind(channel)
                        .bind(hit.id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                }
                let ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
                out.hits = sqlx::query(&format!(
                    "UPDATE rule_hit SET alert_state = 1 WHERE alert_state = 0 AND id IN ({})",
                    id_list(&ids)
                ))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(out)
            }

            async fn alert_claim(
                &self,
                channel: &str,
                owner: &str,
                max: u32,
                window_ms: i64,
            ) -> Result<Vec<OutboxItem>, StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let oldest: Option<(i64, Option<String>)> =
                    sqlx::query_as(&d.alert_oldest_due()).bind(channel).fetch_optional(&mut *tx).await?;
                let Some((first, key)) = oldest else {
                    return Ok(Vec::new());
                };
                let (ids, key) = match key {
                    // A batch sent before goes again whole, with its key.
                    Some(key) => {
                        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&d.alert_batch_rows())
                            .bind(channel)
                            .bind(key.as_str())
                            .fetch_all(&mut *tx)
                            .await?;
                        (rows.into_iter().map(|r| r.0).collect::<Vec<_>>(), key)
                    }
                    None => {
                        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&d.alert_fresh_rows())
                            .bind(channel)
                            .bind(i64::from(max.max(1)))
                            .fetch_all(&mut *tx)
                            .await?;
                        let full = rows.len() >= max.max(1) as usize;
                        let waited = rows.iter().map(|r| r.2 - r.1).max().unwrap_or(0);
                        if rows.is_empty() || (!full && waited < window_ms) {
                            return Ok(Vec::new());
                        }
                        let first = rows.first().map_or(first, |r| r.0);
                        (rows.into_iter().map(|r| r.0).collect(), format!("msgaudit-{first}"))
                    }
                };
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                sqlx::query(&d.alert_claim_rows(&ids)).bind(owner).bind(key.as_str()).execute(&mut *tx).await?;
                sqlx::query(&d.alert_orphans(&ids)).bind(owner).execute(&mut *tx).await?;
                let rows = sqlx::query(&d.alert_claimed(&ids)).bind(owner).fetch_all(&mut *tx).await?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(OutboxItem {
                            id: r.try_get(0)?,
                            channel: r.try_get(1)?,
                            attempts: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                            batch_key: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                            created_at: r.try_get(4)?,
                            hit: Self::alert_hit(r, 5)?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                tx.commit().await?;
                Ok(items)
            }

            async fn alert_finish(&self, ids: &[i64], owner: &str, outcome: &AlertOutcome) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let (status, error, delay, give_back, sent): (u8, Option<&str>, i64, i64, i64) = match outcome {
                    AlertOutcome::Sent => (OUTBOX_SENT, None, 0, 0, 1),
                    AlertOutcome::Retry { delay_ms, error } => (OUTBOX_PENDING, Some(error.as_str()), *delay_ms, 0, 0),
                    AlertOutcome::Failed { error } => (OUTBOX_FAILED, Some(error.as_str()), 0, 0, 0),
                    AlertOutcome::Released => (OUTBOX_PENDING, None, 0, 1, 0),
                };
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.alert_finish_rows(ids))
                    .bind(i64::from(status))
                    .bind(error.map(|e| e.chars().take(2000).collect::<String>()))
                    .bind(delay)
                    .bind(give_back)
                    .bind(sent)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn alert_recover(&self, owner: Option<&str>, stale_ms: i64) -> Result<u64, StoreError> {
                let _w = self.write_guard().await;
                Ok(sqlx::query(&Self::SQL.alert_recover_rows())
                    .bind(owner)
                    .bind(stale_ms)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn alert_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
                let rows: Vec<(String, i64, i64, i64, Option<String>)> =
                    sqlx::query_as(&Self::SQL.alert_count_rows()).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(channel, status, count, oldest_ms, last_error)| OutboxCount {
                        channel,
                        status: u8::try_from(status).unwrap_or(u8::MAX),
                        count: u64::try_from(count).unwrap_or(0),
                        oldest_ms,
                        last_error,
                    })
                    .collect())
            }

            async fn alert_requeue(&self, channel: Option<&str>) -> Result<u64, StoreError> {
                let _w = self.write_guard().await;
                let sql = "UPDATE alert_outbox SET status = 0, attempts = 0, next_attempt_at = 0 \
                           WHERE status = 3 AND (? IS NULL OR channel = ?)";
                Ok(sqlx::query(sql).bind(channel).bind(channel).execute(&self.pool).await?.rows_affected())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use super::id_list;
    use crate::store::alert_repo::{
        AlertHit, AlertOutcome, AlertRepo, DispatchOutcome, OutboxCount, OutboxItem, Route, OUTBOX_FAILED,
        OUTBOX_PENDING, OUTBOX_SENT,
    };
    use crate::store::sql::SqlStore;
    use crate::store::StoreError;

    alert_repo!(sqlx::MySql);
    alert_repo!(sqlx::Sqlite);
}
