//! [`AccessLogRepo`](super::AccessLogRepo) once for both dialects: the review API's hash-chained
//! access log (`access_log`, `access_log_head`), statements built from the [`Dialect`], bodies
//! one `macro_rules!` instantiated for each database (see `sql.rs`).
//!
//! An append is ONE transaction whose first statement bumps `access_log_head.n`: on MySQL and
//! MariaDB that takes the head row's lock, on SQLite the database's write lock, so appends from
//! every instance sharing the database run one after the other. Then the head is read back (with
//! `FOR UPDATE` on MySQL: the newest version, not a snapshot): its `n` is the new entry's id, its
//! `hash` the entry's `prev_hash`, and the database's clock the entry's time. The store seals the
//! entry with the [`Seal`](super::Seal) it was given (`crate::review::access_log::seal`: the
//! encoding and hash belong to the review side), inserts it and moves the head's hash. Ids are
//! therefore gapless, and verification (`crate::review::access_log`) tells a deleted entry from
//! an edited one.

use super::sql::Dialect;

/// The entry columns, in [`AccessEntry`](super::AccessEntry) order.
const COLUMNS: &str = "id, at_ms, username, role, action, corpid, target, detail, prev_hash, hash";

impl Dialect {
    /// The head with the database's clock, locked where the database has row locks (no bind).
    fn head_locked(&self) -> String {
        format!(
            "SELECT CAST(n AS {i}), hash, {now} FROM access_log_head WHERE id = 1{lock}",
            i = self.int,
            now = self.now_ms,
            lock = self.for_update
        )
    }

    /// Entries after an id (binds: after id, limit).
    fn entries_after(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), CAST(at_ms AS {i}), username, role, action, corpid, target, detail, \
             prev_hash, hash FROM access_log WHERE id > ? ORDER BY id LIMIT ?",
            i = self.int
        )
    }
}

/// The [`AccessLogRepo`](super::AccessLogRepo) of `SqlStore<$db>`. SQLite's writer lock is held
/// around each append.
macro_rules! access_log_repo {
    ($db:ty) => {
        #[async_trait]
        impl AccessLogRepo for SqlStore<$db> {
            async fn access_log_append(&self, entry: &NewAccessEntry, seal: Seal) -> Result<AccessEntry, StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let bumped = sqlx::query("UPDATE access_log_head SET n = n + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if bumped != 1 {
                    return Err(StoreError::InvalidData("access_log_head has no row (migrations not applied?)".into()));
                }
                let (n, prev_hash, now): (i64, String, i64) =
                    sqlx::query_as(&d.head_locked()).fetch_one(&mut *tx).await?;
                let mut e = AccessEntry {
                    id: u64::try_from(n).map_err(|_| StoreError::InvalidData(format!("access_log_head.n = {n}")))?,
                    at_ms: now,
                    username: entry.username.clone(),
                    role: entry.role.clone(),
                    action: entry.action.clone(),
                    corpid: entry.corpid.clone(),
                    target: entry.target.clone(),
                    detail: entry.detail.clone(),
                    prev_hash,
                    hash: String::new(),
                };
                e.hash = seal(&e);
                sqlx::query(&format!("INSERT INTO access_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
                    .bind(n)
                    .bind(e.at_ms)
                    .bind(e.username.as_str())
                    .bind(e.role.as_str())
                    .bind(e.action.as_str())
                    .bind(e.corpid.as_deref())
                    .bind(e.target.as_str())
                    .bind(e.detail.as_str())
                    .bind(e.prev_hash.as_str())
                    .bind(e.hash.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE access_log_head SET hash = ? WHERE id = 1")
                    .bind(e.hash.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(e)
            }

            async fn access_log_after(&self, after_id: u64, limit: u32) -> Result<Vec<AccessEntry>, StoreError> {
                let after = i64::try_from(after_id).unwrap_or(i64::MAX);
                let rows = sqlx::query(&Self::SQL.entries_after())
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AccessEntry {
                            // Stored ids are positive (the head counts from 1); a row edited to a
                            // negative id reads as 0, which verification reports as out of order.
                            id: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                            at_ms: r.try_get(1)?,
                            username: r.try_get(2)?,
                            role: r.try_get(3)?,
                            action: r.try_get(4)?,
                            corpid: r.try_get(5)?,
                            target: r.try_get(6)?,
                            detail: r.try_get(7)?,
                            prev_hash: r.try_get(8)?,
                            hash: r.try_get(9)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn access_log_head(&self) -> Result<AccessLogHead, StoreError> {
                let (n, hash): (i64, String) = sqlx::query_as(&format!(
                    "SELECT CAST(n AS {}), hash FROM access_log_head WHERE id = 1",
                    Self::SQL.int
                ))
                .fetch_one(&self.pool)
                .await?;
                Ok(AccessLogHead { n: u64::try_from(n).unwrap_or(0), hash })
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use super::COLUMNS;
    use crate::store::sql::SqlStore;
    use crate::store::{AccessEntry, AccessLogHead, AccessLogRepo, NewAccessEntry, Seal, StoreError};

    access_log_repo!(sqlx::MySql);
    access_log_repo!(sqlx::Sqlite);
}
