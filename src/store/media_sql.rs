//! [`MediaRepo`](super::MediaRepo) once for both dialects: the media jobs of `media_<corpid>`.
//! The statements differ only in identifier quoting and in how "now minus a duration" is
//! written, so each is built here once from the [`Dialect`]; the bodies are one
//! `macro_rules!` instantiated for each database (see `sql.rs`).
//!
//! Every numeric column is selected as a signed 64-bit integer so that one row reader
//! ([`job_from_row`]) serves both drivers.

use super::sql::Dialect;
use super::{CorpId, MediaJob, MediaOutcome};

impl Dialect {
    /// Ids of claimable items (binds: now, limit).
    fn claimable(&self, c: &CorpId) -> String {
        format!(
            "SELECT CAST(id AS {i}) FROM {m} WHERE status = 1 AND retry_at <= ? ORDER BY id LIMIT ?",
            i = self.int,
            m = self.media(c)
        )
    }

    /// Claims one item if still pending (binds: owner, id).
    fn claim_one(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {m} SET status = 2, claimed_by = ?, claimed_at = {now}, attempts = attempts + 1, \
             updated = {now} WHERE id = ? AND status = 1",
            m = self.media(c),
            now = self.now
        )
    }

    /// The jobs of the given ids (numbers only, so safe to inline), claimed by `?` (bind: owner).
    fn jobs(&self, c: &CorpId, ids: &[u64]) -> String {
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        format!(
            "SELECT CAST(m.id AS {i}), m.msgid, CAST(m.item AS {i}), CAST(m.seq AS {i}), \
             CAST(COALESCE(g.msgtime, 0) AS {i}), m.kind, m.sdkfileid, m.md5, CAST(m.size AS {i}), m.ext, \
             m.filename, CAST(m.play_length AS {i}), CAST(m.attempts AS {i}) \
             FROM {m} m LEFT JOIN {t} g ON g.seq = m.seq \
             WHERE m.status = 2 AND m.claimed_by = ? AND m.id IN ({list}) ORDER BY m.id",
            i = self.int,
            m = self.media(c),
            t = self.message(c)
        )
    }

    /// Done items whose transcode was cut off: the columns of [`Dialect::jobs`], then `path`
    /// (bind: the "interrupted" marker of `transcode_error`).
    fn interrupted(&self, c: &CorpId) -> String {
        format!(
            "SELECT CAST(m.id AS {i}), m.msgid, CAST(m.item AS {i}), CAST(m.seq AS {i}), \
             CAST(COALESCE(g.msgtime, 0) AS {i}), m.kind, m.sdkfileid, m.md5, CAST(m.size AS {i}), m.ext, \
             m.filename, CAST(m.play_length AS {i}), CAST(m.attempts AS {i}), m.path \
             FROM {m} m LEFT JOIN {t} g ON g.seq = m.seq \
             WHERE m.status = 3 AND m.transcoded_path IS NULL AND m.path IS NOT NULL AND m.transcode_error = ? \
             ORDER BY m.id",
            i = self.int,
            m = self.media(c),
            t = self.message(c)
        )
    }

    /// Items held (status 0: stored while media was off) become pending.
    fn release_held(&self, c: &CorpId) -> String {
        format!("UPDATE {m} SET status = 1, updated = {now} WHERE status = 0", m = self.media(c), now = self.now)
    }

    /// Ends an attempt (binds: status, media_code, path, transcoded_path, transcode_error,
    /// retry_at, attempts to give back, id).
    fn finish(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {m} SET status = ?, media_code = ?, path = ?, transcoded_path = ?, transcode_error = ?, \
             retry_at = ?, attempts = attempts - ?, claimed_by = NULL, claimed_at = NULL, updated = {now} \
             WHERE id = ?",
            m = self.media(c),
            now = self.now
        )
    }

    /// The record's first item number (bind: msgid).
    fn first_item(&self, c: &CorpId) -> String {
        format!("SELECT CAST(MIN(item) AS {i}) FROM {m} WHERE msgid = ?", i = self.int, m = self.media(c))
    }

    /// Mirrors into the message row (binds: status, media_code, media_path, seq). `media_path`
    /// is only replaced by a non-NULL value.
    fn mirror(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {t} SET status = ?, media_code = ?, media_path = COALESCE(?, media_path) WHERE seq = ?",
            t = self.message(c)
        )
    }

    /// Items in status 2 to recover (binds: owner, stale seconds): id, msgid, item, seq, attempts.
    fn in_flight(&self, c: &CorpId) -> String {
        format!(
            "SELECT CAST(id AS {i}), msgid, CAST(item AS {i}), CAST(seq AS {i}), CAST(attempts AS {i}) FROM {m} \
             WHERE status = 2 AND (claimed_by = ? OR claimed_at IS NULL OR {stale}) ORDER BY id",
            i = self.int,
            m = self.media(c),
            stale = self.stale
        )
    }

    /// Puts one in-flight item back to pending (bind: id).
    fn unclaim(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {m} SET status = 1, claimed_by = NULL, claimed_at = NULL, updated = {now} \
             WHERE id = ? AND status = 2",
            m = self.media(c),
            now = self.now
        )
    }

    /// `media retry`: items of a status back to pending (bind: status).
    fn requeue(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {m} SET status = 1, attempts = 0, media_code = 0, retry_at = 0, claimed_by = NULL, \
             claimed_at = NULL, updated = {now} WHERE status = ?",
            m = self.media(c),
            now = self.now
        )
    }

    /// Message rows of requeued items back to pending (bind: the old status).
    fn requeue_mirror(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {t} SET status = 1, media_code = 0 WHERE status = ? AND seq IN (SELECT seq FROM {m} WHERE status = 1)",
            t = self.message(c),
            m = self.media(c)
        )
    }

    /// Counts by kind and status.
    fn stats(&self, c: &CorpId) -> String {
        format!(
            "SELECT kind, CAST(status AS {i}), CAST(COUNT(*) AS {i}) FROM {m} GROUP BY kind, status ORDER BY kind, status",
            i = self.int,
            m = self.media(c)
        )
    }
}

/// A row of [`Dialect::jobs`] → a [`MediaJob`].
fn job_from_row<R>(r: &R) -> Result<MediaJob, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let u32_of = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(MediaJob {
        id: r.try_get::<i64, _>(0)? as u64,
        msgid: r.try_get(1)?,
        item: u32_of(r.try_get(2)?),
        seq: r.try_get::<i64, _>(3)? as u64,
        msgtime: r.try_get::<i64, _>(4)? as u64,
        kind: r.try_get(5)?,
        sdkfileid: r.try_get(6)?,
        md5: r.try_get(7)?,
        size: r.try_get::<Option<i64>, _>(8)?.map(|v| v as u64),
        ext: r.try_get(9)?,
        filename: r.try_get(10)?,
        play_length: r.try_get::<Option<i64>, _>(11)?.map(u32_of),
        attempts: u32_of(r.try_get(12)?),
    })
}

/// The columns [`Dialect::finish`] writes for `outcome`:
/// (status, media_code, path, transcoded_path, transcode_error, retry_at, attempts given back),
/// and what the message row mirrors: (status, media_code, media_path).
#[allow(clippy::type_complexity)]
fn finish_values(
    outcome: &MediaOutcome,
) -> ((i64, i64, Option<&str>, Option<&str>, Option<&str>, i64, i64), (i64, i64, Option<&str>)) {
    match outcome {
        MediaOutcome::Done { path, transcoded_path, transcode_error } => (
            (3, 0, Some(path.as_str()), transcoded_path.as_deref(), transcode_error.as_deref(), 0, 0),
            (3, 1, Some(path.as_str())),
        ),
        MediaOutcome::Retry { code, retry_at } => {
            ((1, i64::from(*code), None, None, None, *retry_at, 0), (1, i64::from(*code), None))
        }
        MediaOutcome::Failed { code } => ((4, i64::from(*code), None, None, None, 0, 0), (4, i64::from(*code), None)),
        MediaOutcome::Released => ((1, 0, None, None, None, 0, 1), (1, 0, None)),
        MediaOutcome::Deferred { code, retry_at } => {
            ((1, i64::from(*code), None, None, None, *retry_at, 1), (1, i64::from(*code), None))
        }
    }
}

/// The [`MediaRepo`](super::MediaRepo) of `SqlStore<$db>`. SQLite's writer lock
/// ([`SqlStore::write_guard`](super::sql::SqlStore)) is held around each write.
macro_rules! media_repo {
    ($db:ty) => {
        #[async_trait]
        impl MediaRepo for SqlStore<$db> {
            async fn claim_media(
                &self,
                corpid: &CorpId,
                owner: &str,
                limit: u32,
                now: i64,
            ) -> Result<Vec<MediaJob>, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let ids: Vec<i64> = sqlx::query_scalar(&Self::SQL.claimable(corpid))
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                let mut claimed = Vec::with_capacity(ids.len());
                if !ids.is_empty() {
                    // One transaction for the whole claim (one commit, not one per item); each
                    // item is still claimed by its own `status = 1` check.
                    let _w = self.write_guard().await;
                    let sql = Self::SQL.claim_one(corpid);
                    let mut tx = self.pool.begin().await?;
                    for id in ids {
                        if sqlx::query(&sql).bind(owner).bind(id).execute(&mut *tx).await?.rows_affected() == 1 {
                            claimed.push(id as u64);
                        }
                    }
                    tx.commit().await?;
                }
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(&Self::SQL.jobs(corpid, &claimed)).bind(owner).fetch_all(&self.pool).await?;
                Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
            }

            async fn finish_media(
                &self,
                corpid: &CorpId,
                job: &MediaJob,
                outcome: &MediaOutcome,
            ) -> Result<(), StoreError> {
                self.ensure_corp_tables(corpid).await?;
                self.finish_media_many(corpid, &[(job.clone(), outcome.clone())]).await
            }

            async fn finish_media_many(
                &self,
                corpid: &CorpId,
                items: &[(MediaJob, MediaOutcome)],
            ) -> Result<(), StoreError> {
                if items.is_empty() {
                    return Ok(());
                }
                self.ensure_corp_tables(corpid).await?;
                let (finish, first_item, mirror) =
                    (Self::SQL.finish(corpid), Self::SQL.first_item(corpid), Self::SQL.mirror(corpid));
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                for (job, outcome) in items {
                    let ((status, code, path, tpath, terr, retry_at, give_back), (mstatus, mcode, mpath)) =
                        finish_values(outcome);
                    sqlx::query(&finish)
                        .bind(status)
                        .bind(code)
                        .bind(path)
                        .bind(tpath)
                        .bind(terr)
                        .bind(retry_at)
                        .bind(give_back)
                        .bind(job.id as i64)
                        .execute(&mut *tx)
                        .await?;
                    // The first item of the record speaks for the message row; item 0 always is.
                    let first = if job.item == 0 {
                        Some(0)
                    } else {
                        sqlx::query_scalar::<_, Option<i64>>(&first_item).bind(&job.msgid).fetch_one(&mut *tx).await?
                    };
                    if first.is_none_or(|f| f == i64::from(job.item)) {
                        sqlx::query(&mirror)
                            .bind(mstatus)
                            .bind(mcode)
                            .bind(mpath)
                            .bind(job.seq as i64)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn recover_media(
                &self,
                corpid: &CorpId,
                owner: &str,
                stale: Duration,
                max_attempts: u32,
            ) -> Result<MediaRecovery, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let stale_secs = i64::try_from(stale.as_secs()).unwrap_or(i64::MAX);
                let rows: Vec<(i64, String, i64, i64, i64)> = sqlx::query_as(&Self::SQL.in_flight(corpid))
                    .bind(owner)
                    .bind(stale_secs)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = MediaRecovery::default();
                for (id, msgid, item, seq, attempts) in rows {
                    if attempts >= i64::from(max_attempts) {
                        let job = MediaJob {
                            id: id as u64,
                            msgid,
                            item: u32::try_from(item).unwrap_or(u32::MAX),
                            seq: seq as u64,
                            msgtime: 0,
                            kind: String::new(),
                            sdkfileid: String::new(),
                            md5: None,
                            size: None,
                            ext: String::new(),
                            filename: None,
                            play_length: None,
                            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        };
                        let failed = MediaOutcome::Failed { code: MEDIA_CODE_ATTEMPTS_EXHAUSTED };
                        self.finish_media(corpid, &job, &failed).await?;
                        out.failed += 1;
                    } else {
                        let _w = self.write_guard().await;
                        out.requeued +=
                            sqlx::query(&Self::SQL.unclaim(corpid)).bind(id).execute(&self.pool).await?.rows_affected();
                    }
                }
                Ok(out)
            }

            async fn requeue_media(&self, corpid: &CorpId, status: u8) -> Result<u64, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(&Self::SQL.requeue(corpid))
                    .bind(i64::from(status))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(&Self::SQL.requeue_mirror(corpid)).bind(i64::from(status)).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn media_stats(&self, corpid: &CorpId) -> Result<Vec<MediaCount>, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let rows: Vec<(String, i64, i64)> =
                    sqlx::query_as(&Self::SQL.stats(corpid)).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(kind, status, count)| MediaCount {
                        kind,
                        status: u8::try_from(status).unwrap_or(0),
                        count: count as u64,
                    })
                    .collect())
            }

            async fn interrupted_transcodes(
                &self,
                corpid: &CorpId,
                marker: &str,
            ) -> Result<Vec<(MediaJob, String)>, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let rows = sqlx::query(&Self::SQL.interrupted(corpid)).bind(marker).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push((job_from_row(r)?, sqlx::Row::try_get::<String, _>(r, 13)?));
                }
                Ok(out)
            }

            async fn release_held_media(&self, corpid: &CorpId) -> Result<u64, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let _w = self.write_guard().await;
                Ok(sqlx::query(&Self::SQL.release_held(corpid)).execute(&self.pool).await?.rows_affected())
            }

            fn hold_new_media(&self, hold: bool) {
                self.set_hold_media(hold);
            }
        }
    };
}

mod instances {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::{finish_values, job_from_row};
    use crate::store::sql::SqlStore;
    use crate::store::{
        CorpId, MediaCount, MediaJob, MediaOutcome, MediaRecovery, MediaRepo, SchemaRepo, StoreError,
        MEDIA_CODE_ATTEMPTS_EXHAUSTED,
    };

    media_repo!(sqlx::MySql);
    media_repo!(sqlx::Sqlite);
}
