//! Reading a corp's rows in seq order ([`Store::messages_after`](super::Store::messages_after)),
//! for derived data such as the search index. Shared by both dialects: the statements differ
//! only in identifier quoting, in the integer cast and in how a table's existence is asked; each
//! is built here from a [`Dialect`] and executed by `mysql.rs` / `sqlite.rs`, which only add the
//! reassembly of oversized values (`spill`).
//!
//! Every numeric column is selected as a signed 64-bit integer so that one row reader
//! ([`row_from`]) serves both drivers.

use super::{CorpId, Row};

/// What differs between MySQL and SQLite in these statements.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dialect {
    /// Identifier quote.
    pub q: char,
    /// `CAST(x AS <int>)` type name for a signed 64-bit integer.
    pub int: &'static str,
    /// Counts the tables named `?` (one bind: the table name).
    pub table_exists: &'static str,
}

pub(super) const MYSQL: Dialect = Dialect {
    q: '`',
    int: "SIGNED",
    table_exists: "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
};

pub(super) const SQLITE: Dialect = Dialect {
    q: '"',
    int: "INTEGER",
    table_exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
};

impl Dialect {
    /// Rows with `seq > ?`, by seq, at most `?` (binds: after_seq, limit; both i64): every column
    /// of [`Row`] with `whole`, else only msgid and seq (the other columns empty).
    pub fn after(&self, c: &CorpId, whole: bool) -> String {
        let i = self.int;
        let columns = if whole {
            format!(
                "msgid, CAST(publickey_ver AS {i}), CAST(seq AS {i}), COALESCE(action, ''), COALESCE(msgfrom, ''), \
                 COALESCE(tolist, ''), COALESCE(msgtype, ''), CAST(msgtime AS {i}), COALESCE(text, ''), \
                 COALESCE(sdkfield, ''), COALESCE(msgdata, ''), CAST(status AS {i}), COALESCE(roomid, ''), \
                 decrypt_error, encrypt_random_key, encrypt_chat_msg"
            )
        } else {
            format!(
                "msgid, CAST(0 AS {i}), CAST(seq AS {i}), '', '', '', '', CAST(0 AS {i}), '', '', '', CAST(0 AS {i}), \
                 '', NULL, NULL, NULL"
            )
        };
        format!("SELECT {columns} FROM {q}{t}{q} WHERE seq > ? ORDER BY seq LIMIT ?", q = self.q, t = c.message_table())
    }
}

/// A [`Row`] from the columns of [`Dialect::after`].
pub(super) fn row_from<R>(r: &R) -> Result<Row, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Row {
        msgid: r.try_get(0)?,
        publickey_ver: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(u32::MAX),
        seq: r.try_get::<i64, _>(2)? as u64,
        action: r.try_get(3)?,
        msgfrom: r.try_get(4)?,
        tolist: r.try_get(5)?,
        msgtype: r.try_get(6)?,
        msgtime: r.try_get::<i64, _>(7)? as u64,
        text: r.try_get(8)?,
        sdkfield: r.try_get(9)?,
        msgdata: r.try_get(10)?,
        status: u8::try_from(r.try_get::<i64, _>(11)?).unwrap_or(u8::MAX),
        roomid: r.try_get(12)?,
        decrypt_error: r.try_get(13)?,
        encrypt_random_key: r.try_get(14)?,
        encrypt_chat_msg: r.try_get(15)?,
    })
}

/// `messages_after` for a store type: `$pool` its pool field, `$d` its [`Dialect`]; the store
/// must have `unspill(&self, &CorpId, &mut Row)`.
macro_rules! messages_after {
    ($self:ident, $d:expr, $corpid:ident, $after:ident, $limit:ident, $whole:ident) => {{
        let n: i64 = sqlx::query_scalar($d.table_exists).bind($corpid.message_table()).fetch_one(&$self.pool).await?;
        if n == 0 {
            return Ok(None);
        }
        let found = sqlx::query(&$d.after($corpid, $whole))
            .bind(i64::try_from($after).unwrap_or(i64::MAX))
            .bind(i64::from($limit))
            .fetch_all(&$self.pool)
            .await?;
        let mut rows = Vec::with_capacity(found.len());
        for r in &found {
            let mut row = crate::store::scan::row_from(r)?;
            $self.unspill($corpid, &mut row).await?;
            rows.push(row);
        }
        Ok(Some(rows))
    }};
}
pub(super) use messages_after;
