//! [`ReplyTimeRepo`](super::ReplyTimeRepo) once for both dialects: the reply-time checks'
//! cursors, open runs, activity, first-reply samples, daily statistics, and their hits in
//! `rule_hit`. Statements are built from the [`Dialect`]; the bodies are one `macro_rules!`
//! instantiated for each database (see `sql.rs`).
//!
//! [`ReplyTimeRepo::reply_apply`](super::ReplyTimeRepo::reply_apply) is the one write: the
//! cursor's compare-and-set comes first (it also takes SQLite's write lock before anything is
//! read), so a batch's increments are applied exactly once even when two processes evaluate the
//! same corp.

use std::collections::BTreeSet;

use super::sql::{Dialect, Upsert};

/// `rule_hit.kind` of the reply-time hits.
pub const KIND: &str = "reply_time";

impl Dialect {
    /// Adds to an activity row (binds: corpid, rule, day, userid, conv, messages).
    fn reply_activity_add(&self) -> String {
        let end = match self.upsert_style {
            Upsert::DuplicateKey => "ON DUPLICATE KEY UPDATE messages = messages + VALUES(messages)".to_string(),
            Upsert::OnConflict => "ON CONFLICT (corpid, rule, day, userid, conv) DO UPDATE SET \
                                   messages = reply_activity.messages + excluded.messages"
                .to_string(),
        };
        format!(
            "INSERT INTO reply_activity (corpid, rule, day, userid, conv, messages) VALUES (?, ?, ?, ?, ?, ?) {end}"
        )
    }

    /// Writes an open run (binds: corpid, rule, conv, conversation, msgid, msgtime, sender,
    /// employee, context, is_group, decided).
    fn reply_open_put(&self) -> String {
        format!(
            "INSERT INTO reply_open (corpid, rule, conv, conversation, msgid, msgtime, sender, employee, context, \
             is_group, decided) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {}",
            self.upsert(
                "corpid, rule, conv",
                &["conversation", "msgid", "msgtime", "sender", "employee", "context", "is_group", "decided"]
            )
        )
    }

    /// Inserts a first reply unless there is one (binds: corpid, rule, msgid, day, userid,
    /// wait_ms, late).
    fn reply_sample_add(&self) -> String {
        format!(
            "{} reply_sample (corpid, rule, msgid, day, userid, wait_ms, late) VALUES (?, ?, ?, ?, ?, ?, ?)",
            self.insert_ignore
        )
    }

    /// Inserts a hit unless there is one (binds: corpid, msgid, rule, kind, matched, context,
    /// sender, conversation, msgtime, alert_state).
    fn reply_hit_add(&self) -> String {
        format!(
            "{} rule_hit (corpid, msgid, rule, kind, matched, context, sender, conversation, msgtime, created_at, \
             alert_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {}, ?)",
            self.insert_ignore, self.now_ms
        )
    }

    /// A new cursor row unless there is one (binds: corpid, rule, seq, since_ms, watermark).
    fn reply_cursor_add(&self) -> String {
        format!(
            "{} reply_cursor (corpid, rule, seq, since_ms, watermark, updated_at) VALUES (?, ?, ?, ?, ?, {})",
            self.insert_ignore, self.now_ms
        )
    }

    /// Moves a cursor when it is where expected (binds: seq, since_ms, watermark, corpid, rule,
    /// expected seq, expected since_ms, expected watermark).
    fn reply_cursor_cas(&self) -> String {
        format!(
            "UPDATE reply_cursor SET seq = ?, since_ms = ?, watermark = ?, updated_at = {} \
             WHERE corpid = ? AND rule = ? AND seq = ? AND since_ms = ? AND watermark = ?",
            self.now_ms
        )
    }

    /// Sets a cursor, whatever it was (binds: corpid, rule, seq, since_ms, watermark).
    fn reply_cursor_set(&self) -> String {
        format!(
            "INSERT INTO reply_cursor (corpid, rule, seq, since_ms, watermark, updated_at) VALUES (?, ?, ?, ?, ?, {}) {}",
            self.now_ms,
            self.upsert("corpid, rule", &["seq", "since_ms", "watermark", "updated_at"])
        )
    }

    /// Writes a daily row (binds: corpid, rule, day, userid, conversations, messages, replies,
    /// median, late).
    fn reply_daily_put(&self) -> String {
        format!(
            "INSERT INTO reply_daily (corpid, rule, day, userid, conversations, messages, replies, median_reply_ms, \
             late, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {}) {}",
            self.now_ms,
            self.upsert(
                "corpid, rule, day, userid",
                &["conversations", "messages", "replies", "median_reply_ms", "late", "updated_at"]
            )
        )
    }
}

/// The median of `v` (sorted here): the middle value, or the mean of the two middle ones.
pub(super) fn median(v: &mut [i64]) -> Option<i64> {
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(v[n / 2 - 1] / 2 + v[n / 2] / 2 + (v[n / 2 - 1] % 2 + v[n / 2] % 2) / 2),
    }
}

/// The (day, userid) pairs a delta touches.
fn touched(delta: &super::ReplyDelta) -> BTreeSet<(String, String)> {
    delta
        .activity
        .iter()
        .map(|a| (a.day.clone(), a.userid.clone()))
        .chain(delta.samples.iter().map(|s| (s.day.clone(), s.userid.clone())))
        .collect()
}

/// `s` cut to `max` characters (the column's width).
fn fit(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The [`ReplyTimeRepo`](super::ReplyTimeRepo) of `SqlStore<$db>`. SQLite's writer lock is held
/// around each write.
macro_rules! reply_repo {
    ($db:ty) => {
        #[async_trait]
        impl ReplyTimeRepo for SqlStore<$db> {
            async fn reply_cursor(&self, corpid: &CorpId, rule: &str) -> Result<Option<ReplyCursor>, StoreError> {
                let r = sqlx::query("SELECT seq, since_ms, watermark FROM reply_cursor WHERE corpid = ? AND rule = ?")
                    .bind(corpid.as_str())
                    .bind(rule)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = r else { return Ok(None) };
                Ok(Some(ReplyCursor {
                    seq: to_u64(r.try_get(0)?),
                    since_ms: r.try_get(1)?,
                    watermark: r.try_get(2)?,
                }))
            }

            async fn reply_open_runs(&self, corpid: &CorpId, rule: &str) -> Result<Vec<OpenRun>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT conv, conversation, msgid, msgtime, sender, employee, context, \
                     CAST(is_group AS {i}), CAST(decided AS {i}) \
                     FROM reply_open WHERE corpid = ? AND rule = ? ORDER BY conv",
                    i = Self::SQL.int
                ))
                .bind(corpid.as_str())
                .bind(rule)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(OpenRun {
                            conv: r.try_get(0)?,
                            conversation: r.try_get(1)?,
                            msgid: r.try_get(2)?,
                            msgtime: r.try_get(3)?,
                            sender: r.try_get(4)?,
                            employee: r.try_get(5)?,
                            context: r.try_get(6)?,
                            is_group: r.try_get::<i64, _>(7)? != 0,
                            decided: r.try_get::<i64, _>(8)? != 0,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn reply_apply(&self, corpid: &CorpId, delta: &ReplyDelta) -> Result<bool, StoreError> {
                let d = Self::SQL;
                let c = corpid.as_str();
                let rule = delta.rule.as_str();
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let new = &delta.cursor;
                let moved = match &delta.expected {
                    None => sqlx::query(&d.reply_cursor_add())
                        .bind(c)
                        .bind(rule)
                        .bind(to_i64(new.seq))
                        .bind(new.since_ms)
                        .bind(new.watermark)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    Some(old) => sqlx::query(&d.reply_cursor_cas())
                        .bind(to_i64(new.seq))
                        .bind(new.since_ms)
                        .bind(new.watermark)
                        .bind(c)
                        .bind(rule)
                        .bind(to_i64(old.seq))
                        .bind(old.since_ms)
                        .bind(old.watermark)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                if moved != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for h in &delta.hits {
                    sqlx::query(&d.reply_hit_add())
                        .bind(c)
                        .bind(fit(&h.msgid, 128))
                        .bind(rule)
                        .bind(KIND)
                        .bind(&h.matched)
                        .bind(fit(&h.context, 2000))
                        .bind(fit(&h.sender, 128))
                        .bind(fit(&h.conversation, 512))
                        .bind(h.msgtime)
                        .bind(i64::from(delta.hit_alert_state))
                        .execute(&mut *tx)
                        .await?;
                }
                for conv in &delta.open_del {
                    sqlx::query("DELETE FROM reply_open WHERE corpid = ? AND rule = ? AND conv = ?")
                        .bind(c)
                        .bind(rule)
                        .bind(conv)
                        .execute(&mut *tx)
                        .await?;
                }
                for o in &delta.open_put {
                    sqlx::query(&d.reply_open_put())
                        .bind(c)
                        .bind(rule)
                        .bind(&o.conv)
                        .bind(fit(&o.conversation, 512))
                        .bind(fit(&o.msgid, 128))
                        .bind(o.msgtime)
                        .bind(fit(&o.sender, 128))
                        .bind(fit(&o.employee, 128))
                        .bind(fit(&o.context, 2000))
                        .bind(i64::from(o.is_group))
                        .bind(i64::from(o.decided))
                        .execute(&mut *tx)
                        .await?;
                }
                for a in &delta.activity {
                    sqlx::query(&d.reply_activity_add())
                        .bind(c)
                        .bind(rule)
                        .bind(&a.day)
                        .bind(fit(&a.userid, 128))
                        .bind(&a.conv)
                        .bind(to_i64(a.messages))
                        .execute(&mut *tx)
                        .await?;
                }
                for s in &delta.samples {
                    sqlx::query(&d.reply_sample_add())
                        .bind(c)
                        .bind(rule)
                        .bind(fit(&s.msgid, 128))
                        .bind(&s.day)
                        .bind(fit(&s.userid, 128))
                        .bind(s.wait_ms)
                        .bind(i64::from(s.late))
                        .execute(&mut *tx)
                        .await?;
                }
                for (day, userid) in touched(delta) {
                    let userid = fit(&userid, 128);
                    let r = sqlx::query(&format!(
                        "SELECT CAST(COUNT(*) AS {i}), CAST(COALESCE(SUM(messages), 0) AS {i}) FROM reply_activity \
                         WHERE corpid = ? AND rule = ? AND day = ? AND userid = ?",
                        i = d.int
                    ))
                    .bind(c)
                    .bind(rule)
                    .bind(&day)
                    .bind(userid)
                    .fetch_one(&mut *tx)
                    .await?;
                    let (conversations, messages): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                    let rows = sqlx::query(&format!(
                        "SELECT wait_ms, CAST(late AS {}) FROM reply_sample \
                         WHERE corpid = ? AND rule = ? AND day = ? AND userid = ?",
                        d.int
                    ))
                    .bind(c)
                    .bind(rule)
                    .bind(&day)
                    .bind(userid)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut waits = Vec::with_capacity(rows.len());
                    let mut late = 0i64;
                    for r in &rows {
                        waits.push(r.try_get::<i64, _>(0)?);
                        late += i64::from(r.try_get::<i64, _>(1)? != 0);
                    }
                    let replies = i64::try_from(waits.len()).unwrap_or(i64::MAX);
                    sqlx::query(&d.reply_daily_put())
                        .bind(c)
                        .bind(rule)
                        .bind(&day)
                        .bind(userid)
                        .bind(conversations)
                        .bind(messages)
                        .bind(replies)
                        .bind(median(&mut waits))
                        .bind(late)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn reply_reset(
                &self,
                corpid: &CorpId,
                rule: &str,
                since_ms: i64,
                from_day: &str,
            ) -> Result<(), StoreError> {
                let c = corpid.as_str();
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query(&Self::SQL.reply_cursor_set())
                    .bind(c)
                    .bind(rule)
                    .bind(0i64)
                    .bind(since_ms)
                    .bind(0i64)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM reply_open WHERE corpid = ? AND rule = ?")
                    .bind(c)
                    .bind(rule)
                    .execute(&mut *tx)
                    .await?;
                for table in ["reply_activity", "reply_sample", "reply_daily"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE corpid = ? AND rule = ? AND day >= ?"))
                        .bind(c)
                        .bind(rule)
                        .bind(from_day)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn reply_daily(
                &self,
                corpid: &CorpId,
                from_day: Option<&str>,
                to_day: Option<&str>,
                rule: Option<&str>,
                who: Option<&[String]>,
                limit: u32,
            ) -> Result<Vec<ReplyDaily>, StoreError> {
                let i = Self::SQL.int;
                let mut qb: QueryBuilder<'_, $db> = QueryBuilder::new(format!(
                    "SELECT rule, day, userid, CAST(conversations AS {i}), CAST(messages AS {i}), \
                     CAST(replies AS {i}), CAST(median_reply_ms AS {i}), CAST(late AS {i}) \
                     FROM reply_daily WHERE corpid = "
                ));
                qb.push_bind(corpid.as_str().to_string());
                if let Some(f) = from_day {
                    qb.push(" AND day >= ").push_bind(f.to_string());
                }
                if let Some(t) = to_day {
                    qb.push(" AND day <= ").push_bind(t.to_string());
                }
                if let Some(r) = rule {
                    qb.push(" AND rule = ").push_bind(r.to_string());
                }
                if let Some(ids) = who {
                    if ids.is_empty() {
                        qb.push(" AND 1 = 0");
                    } else {
                        qb.push(" AND userid IN (");
                        let mut list = qb.separated(", ");
                        for id in ids {
                            list.push_bind(id.clone());
                        }
                        qb.push(")");
                    }
                }
                qb.push(" ORDER BY rule, day, userid LIMIT ").push_bind(i64::from(limit));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(ReplyDaily {
                            rule: r.try_get(0)?,
                            day: r.try_get(1)?,
                            userid: r.try_get(2)?,
                            conversations: to_u64(r.try_get(3)?),
                            messages: to_u64(r.try_get(4)?),
                            replies: to_u64(r.try_get(5)?),
                            median_reply_ms: r.try_get(6)?,
                            late: to_u64(r.try_get(7)?),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::{QueryBuilder, Row as _};

    use super::{fit, median, to_i64, to_u64, touched, KIND};
    use crate::store::sql::SqlStore;
    use crate::store::{CorpId, OpenRun, ReplyCursor, ReplyDaily, ReplyDelta, ReplyTimeRepo, StoreError};

    reply_repo!(sqlx::MySql);
    reply_repo!(sqlx::Sqlite);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5]), Some(5));
        assert_eq!(median(&mut [9, 1, 5]), Some(5));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(median(&mut [3, 1]), Some(2));
        assert_eq!(median(&mut [i64::MAX, i64::MAX]), Some(i64::MAX));
        assert_eq!(fit("日本語", 2), "日本");
        assert_eq!(fit("ab", 5), "ab");
    }
}
