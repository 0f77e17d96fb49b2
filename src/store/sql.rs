//! The one store over either database: [`SqlStore`], its SQL [`Dialect`] and the [`Flavor`]
//! that ties a dialect to its sqlx driver.
//!
//! The role files (`batch_sql`, `corp_sql`, `media_sql`, `lease_sql`) build each statement once
//! from a `Dialect` and write each body once, as a `macro_rules!` instantiated for
//! `SqlStore<MySql>` and `SqlStore<Sqlite>` (so that every body is checked against a concrete
//! driver, without sqlx's generic executor bounds). The dialect files (`mysql.rs`, `sqlite.rs`)
//! hold what really differs: connecting, the per-corp DDL, the `Dialect` values, and the schema
//! role ([`SchemaRepo`](super::SchemaRepo), with the MySQL-only Java upgrade).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{CorpId, Limits};

/// What differs between MySQL and SQLite in the shared statements.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// `"mysql"` or `"sqlite"` ([`Store::dialect`](super::Store::dialect)).
    pub name: &'static str,
    /// Identifier quote.
    pub q: char,
    /// `INSERT IGNORE INTO` / `INSERT OR IGNORE INTO`.
    pub insert_ignore: &'static str,
    /// How an upsert ends: MySQL `ON DUPLICATE KEY UPDATE`, SQLite `ON CONFLICT … DO UPDATE`.
    pub upsert_style: Upsert,
    /// `CAST(x AS <int>)` type name for a signed 64-bit integer.
    pub int: &'static str,
    /// `CAST(x AS <uint>)` type name a u64 column is read through, `""` to read it as it is.
    pub uint: &'static str,
    /// The current time as the database writes it into `claimed_at`.
    pub now: &'static str,
    /// The database's clock in ms since the epoch, as a signed 64-bit integer.
    pub now_ms: &'static str,
    /// A condition "`claimed_at` is older than `?` seconds" (one bind: the seconds, as i64).
    pub stale: &'static str,
    /// Row lock of a `SELECT` inside a transaction (`" FOR UPDATE"` or `""`).
    pub for_update: &'static str,
    /// Locks a corp's lease row without waiting (bind: corpid), `""` where the database has no
    /// row locks (SQLite: one writer at a time anyway).
    pub lock_nowait: &'static str,
    /// Counts the tables named `?` (0 or 1).
    pub table_exists: &'static str,
    /// Moves `corp_cursor` forward only, as an unsigned value (binds: corpid, seq).
    pub cursor_upsert: &'static str,
    /// The unsigned MAX(seq) of a message table (its quoted name).
    pub max_seq: fn(&str) -> String,
    /// "The row is not in a room": our tables hold `''`, a Java-era MySQL table may hold NULL
    /// (SQLite's column is NOT NULL, and the plain equality lets it use the roomid indexes).
    pub no_room: &'static str,
}

/// The two ways of ending an `INSERT` that updates the row it collides with.
#[derive(Debug, Clone, Copy)]
pub enum Upsert {
    /// `ON DUPLICATE KEY UPDATE c = VALUES(c)`.
    DuplicateKey,
    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c`.
    OnConflict,
}

impl Dialect {
    /// `name` quoted.
    pub fn quote(&self, name: &str) -> String {
        format!("{q}{name}{q}", q = self.q)
    }

    /// The end of an upsert on unique `key` that overwrites `columns` (already quoted).
    pub fn upsert(&self, key: &str, columns: &[&str]) -> String {
        match self.upsert_style {
            Upsert::DuplicateKey => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!("ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            Upsert::OnConflict => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!("ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
            }
        }
    }

    /// `corpid`'s message table, quoted.
    pub fn message(&self, corpid: &CorpId) -> String {
        self.quote(&corpid.message_table())
    }

    /// `corpid`'s media table, quoted.
    pub fn media(&self, corpid: &CorpId) -> String {
        self.quote(&corpid.media_table())
    }

    /// `expr` as the u64 the driver reads ([`Flavor::U64`]).
    pub fn uint(&self, expr: &str) -> String {
        if self.uint.is_empty() {
            expr.to_string()
        } else {
            format!("CAST({expr} AS {})", self.uint)
        }
    }
}

/// A database the shared bodies run on: its [`Dialect`] and how it holds a u64.
pub trait Flavor: sqlx::Database {
    /// The dialect.
    const SQL: Dialect;
    /// What a u64 column is bound and read as: MySQL's BIGINT UNSIGNED holds it as it is,
    /// SQLite's INTEGER in two's complement (see `sqlite.rs`).
    type U64: Copy;
    /// u64 → the database.
    fn to_db(v: u64) -> Self::U64;
    /// The database → u64.
    fn from_db(v: Self::U64) -> u64;
}

/// The store over one sqlx database ([`MysqlStore`](super::MysqlStore),
/// [`SqliteStore`](super::SqliteStore)).
pub struct SqlStore<DB: Flavor> {
    pub(super) pool: sqlx::Pool<DB>,
    redacted_url: String,
    /// Corps whose tables exist.
    ensured: Mutex<HashSet<CorpId>>,
    /// Serialises the DDL of `ensure_corp_tables` and the Java upgrade.
    pub(super) ddl_lock: tokio::sync::Mutex<()>,
    /// New media rows are inserted held ([`super::MEDIA_HELD`]): media is off.
    hold_media: AtomicBool,
    /// SQLite: one writer at a time inside the process (busy errors then come only from other
    /// processes). `None` on MySQL.
    write_lock: Option<tokio::sync::Mutex<()>>,
    pub(super) limits: Limits,
}

impl<DB: Flavor> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match DB::SQL.name {
            "mysql" => "MysqlStore",
            _ => "SqliteStore",
        };
        f.debug_struct(name).field("url", &self.redacted_url).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl<DB: Flavor> SqlStore<DB> {
    /// The store over an open pool; `url` is kept redacted only. `serial_writes`: SQLite.
    pub(super) fn over(pool: sqlx::Pool<DB>, url: &str, limits: Limits, serial_writes: bool) -> Self {
        Self {
            pool,
            redacted_url: super::redact_url(url),
            ensured: Mutex::new(HashSet::new()),
            ddl_lock: tokio::sync::Mutex::new(()),
            hold_media: AtomicBool::new(false),
            write_lock: serial_writes.then(|| tokio::sync::Mutex::new(())),
            limits,
        }
    }

    /// The same store working to a smaller packet than the database's (tests: the code path of
    /// a small `max_allowed_packet`; a proxy in front of MySQL with a lower limit). A larger one
    /// than the database's is ignored.
    #[must_use]
    pub fn with_packet_limit(mut self, bytes: u64) -> Self {
        self.limits.packet = self.limits.packet.min(bytes);
        self
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    pub(super) fn is_ensured(&self, corpid: &CorpId) -> bool {
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).contains(corpid)
    }

    /// The DDL lock to create `corpid`'s tables under, `None` once they are known to exist.
    pub(super) async fn ddl_unless_ensured(&self, corpid: &CorpId) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.is_ensured(corpid) {
            return None;
        }
        let ddl = self.ddl_lock.lock().await;
        (!self.is_ensured(corpid)).then_some(ddl)
    }

    pub(super) fn mark_ensured(&self, corpid: &CorpId) {
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).insert(corpid.clone());
    }

    pub(super) fn holds_media(&self) -> bool {
        self.hold_media.load(Ordering::Relaxed)
    }

    pub(super) fn set_hold_media(&self, hold: bool) {
        self.hold_media.store(hold, Ordering::Relaxed);
    }

    /// The in-process writer lock (SQLite), held until the guard drops; `None` on MySQL.
    pub(super) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        }
    }

    /// The dialect.
    pub(super) const SQL: Dialect = DB::SQL;

    /// u64 → the database ([`Flavor::to_db`]).
    pub(super) fn to_db(v: u64) -> DB::U64 {
        DB::to_db(v)
    }

    /// The database → u64 ([`Flavor::from_db`]).
    pub(super) fn from_db(v: DB::U64) -> u64 {
        DB::from_db(v)
    }
}

/// [`Store`](super::Store)'s own methods (the database itself) for `SqlStore<$db>`.
macro_rules! store_impl {
    ($db:ty) => {
        #[async_trait]
        impl Store for SqlStore<$db> {
            fn dialect(&self) -> &'static str {
                Self::SQL.name
            }

            fn limits(&self) -> Limits {
                self.limits
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;

    use super::SqlStore;
    use crate::store::{Limits, Store, StoreError};

    store_impl!(sqlx::MySql);
    store_impl!(sqlx::Sqlite);
}
