//! [`BatchRepo`](super::BatchRepo) once for both dialects: the batch write (rows, parts of
//! oversized values, media rows, rule hits, the cursor and the fencing check in ONE transaction), the
//! cursor, and reading or rewriting stored records. Statements are built from the
//! [`Dialect`]; the bodies are one `macro_rules!` instantiated for each database (see `sql.rs`).

use super::batch::ROW_COLUMNS;
use super::sql::Dialect;
use super::CorpId;

impl Dialect {
    /// Start of a multi-row INSERT-or-ignore into the message table `t` (quoted).
    fn insert_rows(&self, t: &str) -> String {
        format!("{} {t} ({ROW_COLUMNS}) ", self.insert_ignore)
    }

    /// One part of a spilled value (binds: corpid, seq, col, part, data).
    fn insert_part(&self) -> String {
        format!("{} message_part (corpid, seq, col, part, data) VALUES (?, ?, ?, ?, ?)", self.insert_ignore)
    }

    /// Start of `msgid, seq` of the rows whose msgid is in a list that follows.
    fn stored_seqs(&self, t: &str) -> String {
        format!("SELECT msgid, {} FROM {t} WHERE msgid IN (", self.uint("seq"))
    }

    /// The stored cursor (bind: corpid).
    fn cursor(&self) -> String {
        format!("SELECT {} FROM corp_cursor WHERE corpid = ?", self.uint("seq"))
    }

    /// Every column of a [`Row`], in the order `row_at` reads them.
    pub(super) fn row_columns(&self) -> String {
        format!(
            "msgid, {}, {}, COALESCE(action, ''), COALESCE(msgfrom, ''), COALESCE(tolist, ''), \
             COALESCE(msgtype, ''), {}, COALESCE(text, ''), COALESCE(sdkfield, ''), COALESCE(msgdata, ''), \
             {}, COALESCE(roomid, ''), decrypt_error, encrypt_random_key, encrypt_chat_msg",
            self.uint("publickey_ver"),
            self.uint("seq"),
            self.uint("msgtime"),
            self.uint("status"),
        )
    }

    /// Record `seq` whole (bind: seq).
    fn read_message(&self, c: &CorpId) -> String {
        format!("SELECT {} FROM {} WHERE seq = ?", self.row_columns(), self.message(c))
    }

    /// Rows with `seq > ?`, by seq, at most `?` (binds: after seq, limit): every column with
    /// `whole`, else msgid and seq only (the rest empty).
    fn messages_after(&self, c: &CorpId, whole: bool) -> String {
        let columns = if whole {
            self.row_columns()
        } else {
            let zero = self.uint("0");
            format!(
                "msgid, {zero}, {}, '', '', '', '', {zero}, '', '', '', {zero}, '', NULL, NULL, NULL",
                self.uint("seq")
            )
        };
        format!("SELECT {columns} FROM {} WHERE seq > ? ORDER BY seq LIMIT ?", self.message(c))
    }

    /// Rows with kept ciphertext to redecrypt (binds: after id, limit).
    fn undecrypted(&self, c: &CorpId) -> String {
        format!(
            "SELECT {}, {}, msgid, {}, COALESCE(encrypt_random_key, ''), encrypt_chat_msg FROM {} \
             WHERE id > ? AND decrypt_error IS NOT NULL AND encrypt_chat_msg IS NOT NULL ORDER BY id LIMIT ?",
            self.uint("id"),
            self.uint("seq"),
            self.uint("publickey_ver"),
            self.message(c)
        )
    }

    /// Rows that can never be redecrypted (no bind).
    fn count_unrecoverable(&self, c: &CorpId) -> String {
        format!(
            "SELECT {} FROM {} WHERE decrypt_error IS NOT NULL AND encrypt_chat_msg IS NULL \
             AND decrypt_error NOT LIKE 'not stored as parsed: %'",
            self.uint("COUNT(*)"),
            self.message(c)
        )
    }

    /// Overwrites row `id` (binds: 14 columns, then id).
    fn replace(&self, c: &CorpId) -> String {
        format!(
            "UPDATE {} SET publickey_ver = ?, action = ?, msgfrom = ?, tolist = ?, msgtype = ?, msgtime = ?, \
             text = ?, sdkfield = ?, msgdata = ?, status = ?, roomid = ?, decrypt_error = ?, \
             encrypt_random_key = ?, encrypt_chat_msg = ? WHERE id = ?",
            self.message(c)
        )
    }

    /// msgid and seq of row `id` (bind: id).
    fn msgid_seq(&self, c: &CorpId) -> String {
        format!("SELECT msgid, {} FROM {} WHERE id = ?", self.uint("seq"), self.message(c))
    }
}

/// The [`BatchRepo`](super::BatchRepo) of `SqlStore<$db>`, and the statement helpers the
/// dialect files use too (`insert_media`, `table_exists`).
macro_rules! batch_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// `r`'s column `i`, a u64 as the database holds it.
            pub(in crate::store) fn u64_at(r: &<$db as sqlx::Database>::Row, i: usize) -> Result<u64, sqlx::Error> {
                Ok(Self::from_db(r.try_get(i)?))
            }

            /// A [`Row`] from the columns of `Dialect::row_columns`.
            pub(in crate::store) fn row_at(r: &<$db as sqlx::Database>::Row) -> Result<Row, sqlx::Error> {
                Ok(Row {
                    msgid: r.try_get(0)?,
                    publickey_ver: u32::try_from(Self::u64_at(r, 1)?).unwrap_or(u32::MAX),
                    seq: Self::u64_at(r, 2)?,
                    action: r.try_get(3)?,
                    msgfrom: r.try_get(4)?,
                    tolist: r.try_get(5)?,
                    msgtype: r.try_get(6)?,
                    msgtime: Self::u64_at(r, 7)?,
                    text: r.try_get(8)?,
                    sdkfield: r.try_get(9)?,
                    msgdata: r.try_get(10)?,
                    status: u8::try_from(Self::u64_at(r, 11)?).unwrap_or(u8::MAX),
                    roomid: r.try_get(12)?,
                    decrypt_error: r.try_get(13)?,
                    encrypt_random_key: r.try_get(14)?,
                    encrypt_chat_msg: r.try_get(15)?,
                })
            }

            /// INSERT-or-ignore of `rows` into the message table `t` (quoted), in chunks: how
            /// many were inserted.
            async fn insert_rows(
                tx: &mut sqlx::Transaction<'_, $db>,
                t: &str,
                rows: &[Row],
                budget: usize,
            ) -> Result<u64, StoreError> {
                let mut inserted = 0;
                for chunk in chunks(rows, row_bytes, budget) {
                    let mut qb = QueryBuilder::<$db>::new(Self::SQL.insert_rows(t));
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.msgid.as_str())
                            .push_bind(r.publickey_ver)
                            .push_bind(Self::to_db(r.seq))
                            .push_bind(r.action.as_str())
                            .push_bind(r.msgfrom.as_str())
                            .push_bind(r.tolist.as_str())
                            .push_bind(r.msgtype.as_str())
                            .push_bind(Self::to_db(r.msgtime))
                            .push_bind(r.text.as_str())
                            .push_bind(r.sdkfield.as_str())
                            .push_bind(r.msgdata.as_str())
                            .push_bind(r.status)
                            .push_bind(r.roomid.as_str())
                            .push_bind(r.decrypt_error.as_deref())
                            .push_bind(r.encrypt_random_key.as_deref())
                            .push_bind(r.encrypt_chat_msg.as_deref());
                    });
                    inserted += qb.build().execute(&mut **tx).await?.rows_affected();
                }
                Ok(inserted)
            }

            /// Multi-row INSERT-or-ignore of media rows into `table` (unquoted), chunked;
            /// returns the number inserted.
            pub(in crate::store) async fn insert_media(
                conn: &mut <$db as sqlx::Database>::Connection,
                table: &str,
                items: &[MediaInsert<'_>],
                budget: usize,
            ) -> Result<u64, StoreError> {
                let start = format!("{} {} ({MEDIA_COLUMNS}) ", Self::SQL.insert_ignore, Self::SQL.quote(table));
                let mut inserted = 0;
                for chunk in chunks(items, MediaInsert::bytes, budget) {
                    let mut qb = QueryBuilder::<$db>::new(&start);
                    qb.push_values(chunk, |mut b, m| {
                        b.push_bind(m.msgid)
                            .push_bind(m.item)
                            .push_bind(Self::to_db(m.seq))
                            .push_bind(m.kind)
                            .push_bind(m.sdkfileid)
                            .push_bind(m.md5)
                            .push_bind(m.size.map(Self::to_db))
                            .push_bind(m.ext)
                            .push_bind(m.filename)
                            .push_bind(m.play_length)
                            .push_bind(m.status)
                            .push_bind(m.path);
                    });
                    inserted += qb.build().execute(&mut *conn).await?.rows_affected();
                }
                Ok(inserted)
            }

            /// The parts of spilled values, one statement each (a part is at most a quarter of
            /// the packet); under `seq` when given, else under each part's own. Parts already
            /// there stay (a re-pull).
            async fn insert_parts(
                tx: &mut sqlx::Transaction<'_, $db>,
                corpid: &CorpId,
                parts: &[Part<'_>],
                seq: Option<u64>,
            ) -> Result<(), StoreError> {
                let sql = Self::SQL.insert_part();
                for p in parts {
                    sqlx::query(&sql)
                        .bind(corpid.as_str())
                        .bind(Self::to_db(seq.unwrap_or(p.seq)))
                        .bind(p.column)
                        .bind(p.part)
                        .bind(p.data)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// msgid → stored seq, for the msgids of `rows` that are in the message table `t`.
            async fn stored_seqs(
                tx: &mut sqlx::Transaction<'_, $db>,
                t: &str,
                rows: &[Row],
            ) -> Result<HashMap<String, u64>, StoreError> {
                let mut out = HashMap::new();
                for chunk in rows.chunks(CHUNK_ROWS) {
                    let mut qb = QueryBuilder::<$db>::new(Self::SQL.stored_seqs(t));
                    let mut list = qb.separated(", ");
                    for r in chunk {
                        list.push_bind(r.msgid.as_str());
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        out.insert(row.try_get(0)?, Self::u64_at(&row, 1)?);
                    }
                }
                Ok(out)
            }

            /// Whether `table` (unquoted) exists.
            pub(in crate::store) async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(Self::SQL.table_exists).bind(table).fetch_one(&self.pool).await?;
                Ok(n > 0)
            }

            /// The parts of `column` of record `seq`, in order.
            async fn parts(&self, corpid: &CorpId, seq: u64, column: &str) -> Result<Vec<Vec<u8>>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT data FROM message_part WHERE corpid = ? AND seq = ? AND col = ? ORDER BY part",
                )
                .bind(corpid.as_str())
                .bind(Self::to_db(seq))
                .bind(column)
                .fetch_all(&self.pool)
                .await?)
            }

            /// Puts the marked columns of `row` back together from `message_part`.
            pub(in crate::store) async fn unspill(&self, corpid: &CorpId, row: &mut Row) -> Result<(), StoreError> {
                for column in spill::marked_columns(row) {
                    let parts = self.parts(corpid, row.seq, column).await?;
                    let value = spill::take_column(row, column);
                    spill::put_column(row, column, spill::reassemble(value, parts, column)?);
                }
                Ok(())
            }
        }

        #[async_trait]
        impl BatchRepo for SqlStore<$db> {
            async fn write_batch_with_hits(
                &self,
                corpid: &CorpId,
                rows: &[Row],
                media: &[MediaItem],
                hits: &BatchHits,
                new_cursor: u64,
                fence: Option<&Fence>,
            ) -> Result<BatchOutcome, StoreError> {
                check_rows(rows, media)?;
                self.ensure_corp_tables(corpid).await?;
                let t = Self::SQL.message(corpid);
                let budget = self.limits.statement_bytes();
                // Values too large for a row or packet go to message_part (spill.rs), in this
                // transaction.
                let (spilled, parts) = spill::spill(rows, &self.limits);
                let rows = spilled.as_deref().unwrap_or(rows);
                let mut out = BatchOutcome::default();
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                out.inserted_rows = Self::insert_rows(&mut tx, &t, rows, budget).await?;
                Self::insert_parts(&mut tx, corpid, &parts, None).await?;
                let mut renamed_media = None;
                if out.inserted_rows < rows.len() as u64 {
                    // Some rows were already there: a re-pull, or msgids stored under another seq.
                    let stored = Self::stored_seqs(&mut tx, &t, rows).await?;
                    if let Some((dups, media)) = renamed_duplicates(rows, media, &stored) {
                        tracing::warn!(
                            corpid = %corpid,
                            count = dups.len(),
                            "records with a msgid stored under another seq: kept under new msgids"
                        );
                        out.inserted_rows += Self::insert_rows(&mut tx, &t, &dups, budget).await?;
                        renamed_media = Some(media);
                    }
                }
                let media = renamed_media.as_deref().unwrap_or(media);
                let items: Vec<MediaInsert<'_>> = media
                    .iter()
                    .map(|m| MediaInsert::pending(&m.msgid, m.seq, &m.media).held_if(self.holds_media()))
                    .collect();
                out.inserted_media = Self::insert_media(&mut tx, &corpid.media_table(), &items, budget).await?;
                // The rule hits of these records (rules_sql.rs): after the rows, so that a revoke
                // of a message of this very batch finds it.
                if !hits.is_empty() {
                    Self::write_hits(&mut tx, corpid, hits, budget).await?;
                }
                sqlx::query(Self::SQL.cursor_upsert)
                    .bind(corpid.as_str())
                    .bind(Self::to_db(new_cursor))
                    .execute(&mut *tx)
                    .await?;
                // The fencing check (ARCHITECTURE.md decision 10), the last statement before the
                // commit: the lease row is locked only for that instant (an instance paused
                // inside this transaction must not keep the others from claiming the corp), and a
                // claim by another instance since the lease was renewed rolls the whole batch back.
                if let Some(fence) = fence {
                    Self::check_fence(&mut tx, corpid, fence).await?;
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn cursor(&self, corpid: &CorpId) -> Result<u64, StoreError> {
                let stored: Option<<$db as Flavor>::U64> =
                    sqlx::query_scalar(&Self::SQL.cursor()).bind(corpid.as_str()).fetch_optional(&self.pool).await?;
                // Known tables skip the lookup (on SQLite a scan of a schema of thousands of tables).
                let exists = self.is_ensured(corpid) || self.table_exists(&corpid.message_table()).await?;
                let max: Option<<$db as Flavor>::U64> = if exists {
                    sqlx::query_scalar(&(Self::SQL.max_seq)(&Self::SQL.message(corpid)))
                        .fetch_one(&self.pool)
                        .await?
                } else {
                    None
                };
                Ok(stored.map_or(0, Self::from_db).max(max.map_or(0, Self::from_db)))
            }

            async fn read_message(&self, corpid: &CorpId, seq: u64) -> Result<Option<Row>, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let r = sqlx::query(&Self::SQL.read_message(corpid))
                    .bind(Self::to_db(seq))
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = r else { return Ok(None) };
                let mut row = Self::row_at(&r)?;
                self.unspill(corpid, &mut row).await?;
                Ok(Some(row))
            }

            async fn messages_after(
                &self,
                corpid: &CorpId,
                after_seq: u64,
                limit: u32,
                whole: bool,
            ) -> Result<Option<Vec<Row>>, StoreError> {
                if !self.table_exists(&corpid.message_table()).await? {
                    return Ok(None);
                }
                let found = sqlx::query(&Self::SQL.messages_after(corpid, whole))
                    .bind(Self::to_db(after_seq))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                let mut rows = Vec::with_capacity(found.len());
                for r in &found {
                    let mut row = Self::row_at(r)?;
                    if whole {
                        self.unspill(corpid, &mut row).await?;
                    }
                    rows.push(row);
                }
                Ok(Some(rows))
            }

            async fn undecrypted(
                &self,
                corpid: &CorpId,
                after_id: u64,
                limit: u32,
            ) -> Result<Vec<Undecrypted>, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let rows = sqlx::query(&Self::SQL.undecrypted(corpid))
                    .bind(Self::to_db(after_id))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out: Vec<Undecrypted> = rows
                    .iter()
                    .map(|r| {
                        Ok(Undecrypted {
                            id: Self::u64_at(r, 0)?,
                            seq: Self::u64_at(r, 1)?,
                            msgid: r.try_get(2)?,
                            publickey_ver: u32::try_from(Self::u64_at(r, 3)?).unwrap_or(u32::MAX),
                            encrypt_random_key: r.try_get(4)?,
                            encrypt_chat_msg: r.try_get(5)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                // A ciphertext too large for the row is in message_part.
                for u in &mut out {
                    let columns = [
                        ("encrypt_chat_msg", &mut u.encrypt_chat_msg),
                        ("encrypt_random_key", &mut u.encrypt_random_key),
                    ];
                    for (column, value) in columns {
                        if value.starts_with(spill::MARKER_PREFIX) {
                            let parts = self.parts(corpid, u.seq, column).await?;
                            *value = spill::reassemble(std::mem::take(value), parts, column)?;
                        }
                    }
                }
                Ok(out)
            }

            async fn count_unrecoverable(&self, corpid: &CorpId) -> Result<u64, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let n: <$db as Flavor>::U64 =
                    sqlx::query_scalar(&Self::SQL.count_unrecoverable(corpid)).fetch_one(&self.pool).await?;
                Ok(Self::from_db(n))
            }

            async fn replace_decrypted(
                &self,
                corpid: &CorpId,
                id: u64,
                row: &Row,
                media: &[MediaRef],
            ) -> Result<(), StoreError> {
                check_rows(std::slice::from_ref(row), &[])?;
                self.ensure_corp_tables(corpid).await?;
                let (spilled, parts) = spill::spill(std::slice::from_ref(row), &self.limits);
                let row = spilled.as_ref().and_then(|r| r.first()).unwrap_or(row);
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                // Lease fencing goes here as well (see write_batch). The UPDATE comes first so that
                // the transaction takes SQLite's write lock before it reads.
                let updated = sqlx::query(&Self::SQL.replace(corpid))
                    .bind(row.publickey_ver)
                    .bind(&row.action)
                    .bind(&row.msgfrom)
                    .bind(&row.tolist)
                    .bind(&row.msgtype)
                    .bind(Self::to_db(row.msgtime))
                    .bind(&row.text)
                    .bind(&row.sdkfield)
                    .bind(&row.msgdata)
                    .bind(row.status)
                    .bind(&row.roomid)
                    .bind(row.decrypt_error.as_deref())
                    .bind(row.encrypt_random_key.as_deref())
                    .bind(row.encrypt_chat_msg.as_deref())
                    .bind(Self::to_db(id))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(StoreError::NoSuchRow { table: corpid.message_table(), id });
                }
                let r = sqlx::query(&Self::SQL.msgid_seq(corpid)).bind(Self::to_db(id)).fetch_one(&mut *tx).await?;
                let (msgid, seq): (String, u64) = (r.try_get(0)?, Self::u64_at(&r, 1)?);
                // The old row's parts (its ciphertext, say) give way to the new row's.
                sqlx::query("DELETE FROM message_part WHERE corpid = ? AND seq = ?")
                    .bind(corpid.as_str())
                    .bind(Self::to_db(seq))
                    .execute(&mut *tx)
                    .await?;
                Self::insert_parts(&mut tx, corpid, &parts, Some(seq)).await?;
                let items: Vec<MediaInsert<'_>> =
                    media.iter().map(|m| MediaInsert::pending(&msgid, seq, m).held_if(self.holds_media())).collect();
                Self::insert_media(&mut tx, &corpid.media_table(), &items, self.limits.statement_bytes()).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

mod instances {
    use std::collections::HashMap;

    use async_trait::async_trait;
    use sqlx::{QueryBuilder, Row as _};

    use crate::store::batch::{
        check_rows, chunks, renamed_duplicates, row_bytes, MediaInsert, CHUNK_ROWS, MEDIA_COLUMNS,
    };
    use crate::store::spill::{self, Part};
    use crate::store::sql::{Flavor, SqlStore};
    use crate::store::{
        BatchHits, BatchOutcome, BatchRepo, CorpId, Fence, MediaItem, MediaRef, Row, SchemaRepo, StoreError,
        Undecrypted,
    };

    batch_repo!(sqlx::MySql);
    batch_repo!(sqlx::Sqlite);
}
