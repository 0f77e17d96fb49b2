//! [`ReviewReadRepo`](super::ReviewReadRepo) once for both dialects: the review API's reads of
//! `message_<corpid>` and `media_<corpid>`. The statements are built with sqlx's `QueryBuilder`
//! (the participant filter and the pair lists bind a variable number of values); the bodies are
//! one `macro_rules!` instantiated for each database (see `sql.rs`).
//!
//! The scope is applied inside every query ([`push_participants`]): a reviewer limited to
//! userids reads only the messages one of them sends or receives, so paging never leaks what
//! lies outside. The per-corp indexes `(roomid, msgtime, seq)` and `(roomid, msgfrom, msgtime)`
//! (created with the tables, added to older ones by `ensure_corp_tables`) serve the timelines
//! and the groupings. Group names and members come from `wecom_room` and `wecom_room_member`
//! (filled by `src/wecom`; until then, or for rooms it never fetched, they read as empty and the
//! API falls back to ids).

use super::sql::Dialect;
use super::CorpId;

/// `s` with the LIKE wildcards (and the escape character `!`) escaped by `!`.
pub(super) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

impl Dialect {
    /// The start of a grouping over the message table: `SELECT <key columns>, count, first, last,
    /// last seq FROM t WHERE 1 = 1` (conditions follow, then [`Dialect::group_end`]).
    fn group_start(&self, c: &CorpId, keys: &str) -> String {
        format!(
            "SELECT {keys}, {}, {}, {}, {} FROM {} WHERE 1 = 1",
            self.uint("COUNT(*)"),
            self.uint("MIN(msgtime)"),
            self.uint("MAX(msgtime)"),
            self.uint("MAX(seq)"),
            self.message(c)
        )
    }

    /// The media rows of a list of msgids that follows (`(`, binds, `)` pushed by the caller).
    fn review_media(&self, c: &CorpId) -> String {
        format!(
            "SELECT msgid, {}, kind, {}, {}, path, transcoded_path, filename, {}, md5 FROM {} WHERE msgid IN (",
            self.uint("item"),
            self.uint("status"),
            format_args!("CAST(media_code AS {})", self.int),
            self.uint("size"),
            self.media(c)
        )
    }
}

/// Appends ` AND (<who takes part>)` for `who` to `qb` (nothing for `None`; a condition that is
/// never true for an empty list). A receiver is matched as a whole element of the comma-joined
/// `tolist` (LIKE with escaped wildcards: userids often hold `_`).
macro_rules! push_participants {
    ($qb:expr, $who:expr) => {
        if let Some(ids) = $who {
            if ids.is_empty() {
                $qb.push(" AND 1 = 0");
            } else {
                $qb.push(" AND (msgfrom IN (");
                let mut list = $qb.separated(", ");
                for id in ids.iter() {
                    list.push_bind(id.clone());
                }
                $qb.push(")");
                for id in ids.iter() {
                    let e = like_escape(id);
                    $qb.push(" OR tolist = ").push_bind(id.clone());
                    $qb.push(" OR tolist LIKE ").push_bind(format!("{e},%")).push(" ESCAPE '!'");
                    $qb.push(" OR tolist LIKE ").push_bind(format!("%,{e}")).push(" ESCAPE '!'");
                    $qb.push(" OR tolist LIKE ").push_bind(format!("%,{e},%")).push(" ESCAPE '!'");
                }
                $qb.push(")");
            }
        }
    };
}

/// The [`ReviewReadRepo`](super::ReviewReadRepo) of `SqlStore<$db>`.
macro_rules! review_read_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// The groups of a grouping query.
            async fn groups(
                mut qb: QueryBuilder<'_, $db>,
                pool: &sqlx::Pool<$db>,
            ) -> Result<Vec<MessageGroup>, StoreError> {
                let rows = qb.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(MessageGroup {
                            a: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                            b: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                            messages: Self::u64_at(r, 2)?,
                            first_ms: Self::u64_at(r, 3)?,
                            last_ms: Self::u64_at(r, 4)?,
                            last_seq: Self::u64_at(r, 5)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            /// Whole rows of a query over `Dialect::row_columns`.
            async fn whole_rows(&self, corpid: &CorpId, mut qb: QueryBuilder<'_, $db>) -> Result<Vec<Row>, StoreError> {
                let found = qb.build().fetch_all(&self.pool).await?;
                let mut rows = Vec::with_capacity(found.len());
                for r in &found {
                    let mut row = Self::row_at(r)?;
                    self.unspill(corpid, &mut row).await?;
                    rows.push(row);
                }
                Ok(rows)
            }
        }

        #[async_trait]
        impl ReviewReadRepo for SqlStore<$db> {
            async fn review_count(&self, corpid: &CorpId, who: Participants<'_>) -> Result<Option<u64>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let sql = Self::SQL;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM {} WHERE 1 = 1",
                    sql.uint("COUNT(*)"),
                    sql.message(corpid)
                ));
                push_participants!(qb, who);
                let n: <$db as Flavor>::U64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
                Ok(Some(Self::from_db(n)))
            }

            async fn review_senders(
                &self,
                corpid: &CorpId,
                who: Participants<'_>,
            ) -> Result<Vec<MessageGroup>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<$db>::new(Self::SQL.group_start(corpid, "COALESCE(roomid, ''), msgfrom"));
                qb.push(" AND msgfrom <> ''");
                push_participants!(qb, who);
                qb.push(" GROUP BY COALESCE(roomid, ''), msgfrom ORDER BY COALESCE(roomid, ''), msgfrom");
                Self::groups(qb, &self.pool).await
            }

            async fn review_rooms(
                &self,
                corpid: &CorpId,
                who: Participants<'_>,
            ) -> Result<Vec<MessageGroup>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<$db>::new(Self::SQL.group_start(corpid, "roomid, ''"));
                qb.push(" AND roomid <> ''");
                push_participants!(qb, who);
                qb.push(" GROUP BY roomid ORDER BY roomid");
                Self::groups(qb, &self.pool).await
            }

            async fn review_pairs(
                &self,
                corpid: &CorpId,
                who: Participants<'_>,
                senders: Option<&[String]>,
            ) -> Result<Vec<MessageGroup>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<$db>::new(Self::SQL.group_start(corpid, "msgfrom, tolist"));
                qb.push(" AND ").push(Self::SQL.no_room).push(" AND msgtype <> ''");
                if let Some(senders) = senders {
                    if senders.is_empty() {
                        return Ok(Vec::new());
                    }
                    qb.push(" AND msgfrom IN (");
                    let mut list = qb.separated(", ");
                    for s in senders {
                        list.push_bind(s.clone());
                    }
                    qb.push(")");
                }
                push_participants!(qb, who);
                qb.push(" GROUP BY msgfrom, tolist ORDER BY msgfrom, tolist");
                Self::groups(qb, &self.pool).await
            }

            async fn review_timeline(
                &self,
                corpid: &CorpId,
                conversation: &ConversationSel,
                who: Participants<'_>,
                from: Option<TimelinePos>,
                direction: Direction,
                limit: u32,
            ) -> Result<Vec<Row>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let sql = Self::SQL;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM {} WHERE ",
                    sql.row_columns(),
                    sql.message(corpid)
                ));
                match conversation {
                    ConversationSel::Room(roomid) => {
                        qb.push("roomid = ").push_bind(roomid.clone());
                    }
                    ConversationSel::Pairs(pairs) => {
                        if pairs.is_empty() {
                            return Ok(Vec::new());
                        }
                        qb.push(Self::SQL.no_room).push(" AND (");
                        for (i, (from, to)) in pairs.iter().enumerate() {
                            if i > 0 {
                                qb.push(" OR ");
                            }
                            qb.push("(msgfrom = ").push_bind(from.clone());
                            qb.push(" AND COALESCE(tolist, '') = ").push_bind(to.clone()).push(")");
                        }
                        qb.push(")");
                    }
                    ConversationSel::Undecryptable => {
                        qb.push("msgtype = '' AND decrypt_error IS NOT NULL");
                    }
                }
                push_participants!(qb, who);
                let (cmp, order) = match direction {
                    Direction::Before => ("<", "DESC"),
                    Direction::After => (">", "ASC"),
                };
                if let Some(pos) = from {
                    qb.push(format_args!(" AND (msgtime {cmp} "))
                        .push_bind(Self::to_db(pos.msgtime))
                        .push(" OR (msgtime = ")
                        .push_bind(Self::to_db(pos.msgtime))
                        .push(format_args!(" AND seq {cmp} "))
                        .push_bind(Self::to_db(pos.seq))
                        .push("))");
                }
                qb.push(format_args!(" ORDER BY msgtime {order}, seq {order} LIMIT ")).push_bind(i64::from(limit));
                self.whole_rows(corpid, qb).await
            }

            async fn review_message(&self, corpid: &CorpId, msgid: &str) -> Result<Option<Row>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let sql = Self::SQL;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM {} WHERE msgid = ",
                    sql.row_columns(),
                    sql.message(corpid)
                ));
                qb.push_bind(msgid.to_string());
                Ok(self.whole_rows(corpid, qb).await?.into_iter().next())
            }

            async fn review_media(&self, corpid: &CorpId, msgids: &[String]) -> Result<Vec<MediaRow>, StoreError> {
                if msgids.is_empty() || !self.table_exists(&corpid.media_table()).await? {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                for chunk in msgids.chunks(500) {
                    let mut qb = QueryBuilder::<$db>::new(Self::SQL.review_media(corpid));
                    let mut list = qb.separated(", ");
                    for m in chunk {
                        list.push_bind(m.clone());
                    }
                    qb.push(") ORDER BY msgid, item");
                    for r in qb.build().fetch_all(&self.pool).await? {
                        out.push(MediaRow {
                            msgid: r.try_get(0)?,
                            item: u32::try_from(Self::u64_at(&r, 1)?).unwrap_or(u32::MAX),
                            kind: r.try_get(2)?,
                            status: u8::try_from(Self::u64_at(&r, 3)?).unwrap_or(u8::MAX),
                            media_code: i32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(i32::MAX),
                            path: r.try_get(5)?,
                            transcoded_path: r.try_get(6)?,
                            filename: r.try_get(7)?,
                            size: r.try_get::<Option<<$db as Flavor>::U64>, _>(8)?.map(Self::from_db),
                            md5: r.try_get(9)?,
                        });
                    }
                }
                Ok(out)
            }

            async fn review_room_names(
                &self,
                corpid: &CorpId,
                roomids: &[String],
            ) -> Result<Vec<(String, String)>, StoreError> {
                let mut out = Vec::new();
                for chunk in roomids.chunks(500) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT roomid, roomname FROM wecom_room WHERE corpid = ");
                    qb.push_bind(corpid.as_str().to_string());
                    qb.push(" AND roomname IS NOT NULL AND roomname <> '' AND roomid IN (");
                    let mut list = qb.separated(", ");
                    for r in chunk {
                        list.push_bind(r.clone());
                    }
                    qb.push(") ORDER BY roomid");
                    for r in qb.build().fetch_all(&self.pool).await? {
                        out.push((r.try_get(0)?, r.try_get(1)?));
                    }
                }
                out.sort();
                Ok(out)
            }

            async fn review_room_members(&self, corpid: &CorpId, roomid: &str) -> Result<Vec<String>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT memberid FROM wecom_room_member WHERE corpid = ");
                qb.push_bind(corpid.as_str().to_string());
                qb.push(" AND roomid = ").push_bind(roomid.to_string());
                qb.push(" AND present = 1 ORDER BY memberid");
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::{QueryBuilder, Row as _};

    use super::like_escape;
    use crate::store::review_repo::{
        ConversationSel, Direction, MediaRow, MessageGroup, Participants, ReviewReadRepo, TimelinePos,
    };
    use crate::store::sql::{Flavor, SqlStore};
    use crate::store::{CorpId, Row, StoreError};

    review_read_repo!(sqlx::MySql);
    review_read_repo!(sqlx::Sqlite);
}

#[cfg(test)]
mod tests {
    use super::like_escape;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("zhang_san"), "zhang!_san");
        assert_eq!(like_escape("a%b!c"), "a!%b!!c");
        assert_eq!(like_escape("张三"), "张三");
    }
}
