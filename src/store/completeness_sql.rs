//! [`CompletenessRepo`]: what the completeness report (`crate::observe::completeness`) asks the
//! database, written once for both dialects (a `macro_rules!` over `SqlStore<$db>`, like
//! `review_sql.rs`). Every question is bounded by the size of its answer, never by the number of
//! records: seq gaps are found by the database (`LEAD(seq) OVER (ORDER BY seq)`, which MariaDB
//! 10.11 and SQLite ≥ 3.25 both have, over the `uk_seq` index) and only their count, sum and the
//! first `limit` ranges come back; people and conversations come back as the DISTINCT
//! `(roomid, msgfrom, tolist)` combinations, not as rows; media and undecryptable records as
//! counts grouped by code and key version.
//!
//! The `wecom_*` tables (migration `20261208000001_wecom_meta.sql`) are read only: another part
//! of the daemon fills them from WeCom's APIs.

use async_trait::async_trait;

use super::sql::Dialect;
use super::{CorpId, StoreError};

/// Seq gaps among the stored records of a corp from some seq on, split at the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqGapScan {
    /// Ranges with at least one missing seq at or below the cursor.
    pub below_ranges: u64,
    /// Missing seqs at or below the cursor.
    pub below_missing: u64,
    /// Ranges with at least one missing seq above the cursor.
    pub above_ranges: u64,
    /// Missing seqs above the cursor.
    pub above_missing: u64,
    /// The first ranges by seq: `(last stored seq before, next stored seq)`, both stored; the
    /// missing seqs are those strictly between.
    pub first: Vec<(u64, u64)>,
}

/// The extent of a corp's stored records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqBounds {
    /// Records stored.
    pub records: u64,
    /// The lowest stored seq.
    pub min_seq: u64,
    /// The highest stored seq.
    pub max_seq: u64,
    /// The newest msgtime (ms) of a stored record.
    pub newest_msgtime_ms: u64,
}

/// One distinct `(roomid, msgfrom, tolist)` of a corp's decrypted records (`tolist`
/// comma-joined, as stored).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Participation {
    /// `''` for a 1:1 conversation.
    pub roomid: String,
    /// The sender.
    pub msgfrom: String,
    /// The receivers, comma-joined.
    pub tolist: String,
}

/// A `wecom_consent` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// `''` for a 1:1 pair.
    pub roomid: String,
    /// The employee of a 1:1 pair, `''` in a room.
    pub userid: String,
    /// The external contact.
    pub external_id: String,
    /// `Agree`, `Disagree`, `Default_Agree`.
    pub agree_status: String,
}

/// Failed media items of one kind and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMediaCount {
    /// Media kind.
    pub kind: String,
    /// `media_code`.
    pub code: i64,
    /// Items.
    pub count: u64,
}

/// Records kept with a `decrypt_error`, by key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecryptedCount {
    /// The `publickey_ver`.
    pub publickey_ver: u32,
    /// Stored whole because the database refused the parsed row (`decrypt_error` starts with
    /// [`super::QUARANTINE_PREFIX`]), not because of a key.
    pub quarantined: bool,
    /// Records.
    pub count: u64,
    /// Their lowest seq.
    pub min_seq: u64,
    /// Their highest seq.
    pub max_seq: u64,
}

/// The completeness report's reads. Each returns nothing (not an error) for a corp without
/// tables yet.
#[async_trait]
pub trait CompletenessRepo: Send + Sync {
    /// Count, lowest and highest seq, newest msgtime of the stored records (`None`: none).
    async fn seq_bounds(&self, corpid: &CorpId) -> Result<Option<SeqBounds>, StoreError>;

    /// The lowest seq of a record with `msgtime >= since_ms` (`None`: none).
    async fn seq_floor(&self, corpid: &CorpId, since_ms: u64) -> Result<Option<u64>, StoreError>;

    /// The highest stored seq below `seq` (`None`: none).
    async fn seq_before(&self, corpid: &CorpId, seq: u64) -> Result<Option<u64>, StoreError>;

    /// The gaps between consecutive stored seqs `>= from`, split at `cursor`, with the first
    /// `limit` ranges.
    async fn seq_gaps(&self, corpid: &CorpId, from: u64, cursor: u64, limit: u32) -> Result<SeqGapScan, StoreError>;

    /// The distinct `(roomid, msgfrom, tolist)` of the decrypted, non-`switch` records with seq
    /// `>= from`.
    async fn participations(&self, corpid: &CorpId, from: u64) -> Result<Vec<Participation>, StoreError>;

    /// The userids of `wecom_permit_user` that the last refresh listed (`present` 1).
    async fn permit_users(&self, corpid: &CorpId) -> Result<Vec<String>, StoreError>;

    /// Every `wecom_consent` row of the corp.
    async fn consents(&self, corpid: &CorpId) -> Result<Vec<ConsentRow>, StoreError>;

    /// Media items failed for good (status 4) of records with seq `>= from`, by kind and code.
    async fn failed_media(&self, corpid: &CorpId, from: u64) -> Result<Vec<FailedMediaCount>, StoreError>;

    /// Records with a `decrypt_error` and seq `>= from`, by key version.
    async fn undecrypted_counts(&self, corpid: &CorpId, from: u64) -> Result<Vec<UndecryptedCount>, StoreError>;
}

impl Dialect {
    /// `(seq, next seq)` of every gap among the stored seqs `>= ?`.
    fn gaps_from(&self, c: &CorpId) -> String {
        format!(
            "SELECT seq, nxt FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS nxt FROM {} WHERE seq >= ?) g \
             WHERE nxt > seq + 1",
            self.message(c)
        )
    }

    /// The summary of [`Dialect::gaps_from`] split at the cursor (binds: cursor ×4, then from).
    fn gap_summary(&self, c: &CorpId) -> String {
        let i = |e: &str| format!("CAST(COALESCE(SUM({e}), 0) AS {})", self.int);
        format!(
            "SELECT {}, {}, {}, {} FROM ({}) x",
            i("CASE WHEN seq < ? THEN 1 ELSE 0 END"),
            i("CASE WHEN nxt <= ? + 1 THEN nxt - seq - 1 WHEN seq < ? THEN ? - seq ELSE 0 END"),
            i("CASE WHEN nxt > ? + 1 THEN 1 ELSE 0 END"),
            i("nxt - seq - 1"),
            self.gaps_from(c)
        )
    }
}

macro_rules! completeness_repo {
    ($db:ty) => {
        #[async_trait]
        impl CompletenessRepo for SqlStore<$db> {
            async fn seq_bounds(&self, corpid: &CorpId) -> Result<Option<SeqBounds>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let sql = Self::SQL;
                let q = format!(
                    "SELECT CAST(COUNT(*) AS {i}), CAST(COALESCE(MIN(seq), 0) AS {i}), CAST(COALESCE(MAX(seq), 0) AS {i}), \
                     CAST(COALESCE(MAX(msgtime), 0) AS {i}) FROM {}",
                    sql.message(corpid),
                    i = sql.int
                );
                let (records, min_seq, max_seq, newest): (i64, i64, i64, i64) =
                    sqlx::query_as(&q).fetch_one(&self.pool).await?;
                if records == 0 {
                    return Ok(None);
                }
                let u = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok(Some(SeqBounds {
                    records: u(records),
                    min_seq: u(min_seq),
                    max_seq: u(max_seq),
                    newest_msgtime_ms: u(newest),
                }))
            }

            async fn seq_floor(&self, corpid: &CorpId, since_ms: u64) -> Result<Option<u64>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let sql = Self::SQL;
                let q = format!(
                    "SELECT CAST(MIN(seq) AS {}) FROM {} WHERE msgtime >= ?",
                    sql.int,
                    sql.message(corpid)
                );
                let v: Option<i64> =
                    sqlx::query_scalar(&q).bind(i64::try_from(since_ms).unwrap_or(i64::MAX)).fetch_one(&self.pool).await?;
                Ok(v.and_then(|v| u64::try_from(v).ok()))
            }

            async fn seq_before(&self, corpid: &CorpId, seq: u64) -> Result<Option<u64>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let sql = Self::SQL;
                let q = format!("SELECT CAST(MAX(seq) AS {}) FROM {} WHERE seq < ?", sql.int, sql.message(corpid));
                let v: Option<i64> = sqlx::query_scalar(&q).bind(Self::to_db(seq)).fetch_one(&self.pool).await?;
                Ok(v.and_then(|v| u64::try_from(v).ok()))
            }

            async fn seq_gaps(
                &self,
                corpid: &CorpId,
                from: u64,
                cursor: u64,
                limit: u32,
            ) -> Result<SeqGapScan, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(SeqGapScan::default());
                }
                let sql = Self::SQL;
                let cur = i64::try_from(cursor).unwrap_or(i64::MAX);
                let (below_ranges, below_missing, above_ranges, total): (i64, i64, i64, i64) =
                    sqlx::query_as(&sql.gap_summary(corpid))
                        .bind(cur)
                        .bind(cur)
                        .bind(cur)
                        .bind(cur)
                        .bind(cur)
                        .bind(Self::to_db(from))
                        .fetch_one(&self.pool)
                        .await?;
                let q = format!(
                    "SELECT CAST(seq AS {i}), CAST(nxt AS {i}) FROM ({}) x ORDER BY seq LIMIT ?",
                    sql.gaps_from(corpid),
                    i = sql.int
                );
                let first: Vec<(i64, i64)> =
                    sqlx::query_as(&q).bind(Self::to_db(from)).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                let u = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok(SeqGapScan {
                    below_ranges: u(below_ranges),
                    below_missing: u(below_missing),
                    above_ranges: u(above_ranges),
                    above_missing: u(total).saturating_sub(u(below_missing)),
                    first: first.into_iter().map(|(a, b)| (u(a), u(b))).collect(),
                })
            }

            async fn participations(&self, corpid: &CorpId, from: u64) -> Result<Vec<Participation>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let q = format!(
                    "SELECT DISTINCT COALESCE(roomid, ''), COALESCE(msgfrom, ''), COALESCE(tolist, '') FROM {} \
                     WHERE seq >= ? AND decrypt_error IS NULL AND msgfrom <> '' AND COALESCE(action, '') <> 'switch'",
                    Self::SQL.message(corpid)
                );
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as(&q).bind(Self::to_db(from)).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(roomid, msgfrom, tolist)| Participation { roomid, msgfrom, tolist }).collect())
            }

            async fn permit_users(&self, corpid: &CorpId) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT userid FROM wecom_permit_user WHERE corpid = ? AND present = 1 ORDER BY userid",
                )
                .bind(corpid.as_str())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn consents(&self, corpid: &CorpId) -> Result<Vec<ConsentRow>, StoreError> {
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT roomid, userid, external_id, agree_status FROM wecom_consent WHERE corpid = ?",
                )
                .bind(corpid.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(roomid, userid, external_id, agree_status)| ConsentRow {
                        roomid,
                        userid,
                        external_id,
                        agree_status,
                    })
                    .collect())
            }

            async fn failed_media(&self, corpid: &CorpId, from: u64) -> Result<Vec<FailedMediaCount>, StoreError> {
                if !self.table_exists(&corpid.media_table()).await? {
                    return Ok(Vec::new());
                }
                let sql = Self::SQL;
                let q = format!(
                    "SELECT kind, CAST(media_code AS {i}), CAST(COUNT(*) AS {i}) FROM {} WHERE status = 4 AND seq >= ? \
                     GROUP BY kind, media_code ORDER BY kind, media_code",
                    sql.media(corpid),
                    i = sql.int
                );
                let rows: Vec<(String, i64, i64)> =
                    sqlx::query_as(&q).bind(Self::to_db(from)).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(kind, code, count)| FailedMediaCount { kind, code, count: u64::try_from(count).unwrap_or(0) })
                    .collect())
            }

            async fn undecrypted_counts(&self, corpid: &CorpId, from: u64) -> Result<Vec<UndecryptedCount>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let sql = Self::SQL;
                let q = format!(
                    "SELECT CAST(publickey_ver AS {i}), CAST(q AS {i}), CAST(COUNT(*) AS {i}), CAST(MIN(seq) AS {i}), \
                     CAST(MAX(seq) AS {i}) FROM (SELECT publickey_ver, seq, \
                     CASE WHEN decrypt_error LIKE ? THEN 1 ELSE 0 END AS q FROM {} \
                     WHERE decrypt_error IS NOT NULL AND seq >= ?) x GROUP BY publickey_ver, q ORDER BY publickey_ver, q",
                    sql.message(corpid),
                    i = sql.int
                );
                let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(&q)
                    .bind(format!("{}%", crate::store::QUARANTINE_PREFIX))
                    .bind(Self::to_db(from))
                    .fetch_all(&self.pool)
                    .await?;
                let u = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok(rows
                    .into_iter()
                    .map(|(ver, q, count, min_seq, max_seq)| UndecryptedCount {
                        publickey_ver: u32::try_from(ver).unwrap_or(u32::MAX),
                        quarantined: q != 0,
                        count: u(count),
                        min_seq: u(min_seq),
                        max_seq: u(max_seq),
                    })
                    .collect())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;

    use super::{
        CompletenessRepo, ConsentRow, FailedMediaCount, Participation, SeqBounds, SeqGapScan, UndecryptedCount,
    };
    use crate::store::sql::SqlStore;
    use crate::store::{CorpId, StoreError};

    completeness_repo!(sqlx::MySql);
    completeness_repo!(sqlx::Sqlite);
}
