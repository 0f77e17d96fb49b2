//! [`SqliteStore`]: the embedded default (WAL, busy timeout, created if missing): what differs
//! from MySQL (see `sql.rs` for what does not): opening the file, the per-corp DDL, the
//! [`Dialect`] values and the schema role.
//!
//! SQLite integers are signed 64-bit: unsigned 64-bit values (seq, msgtime, size) are stored in
//! two's complement, so every value up to 2^63-1 reads as itself and larger ones (never seen in
//! practice, but a u64 must round-trip) are negative; the cursor comparisons treat them as
//! unsigned. Writes are serialised inside the process (one writer at a time is all SQLite
//! allows anyway), so busy errors come only from other processes and the busy timeout.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;
use tracing::Instrument as _;

use super::sql::{Dialect, Flavor, SqlStore, Upsert};
use super::{CorpId, Limits, SchemaRepo, StoreError};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

/// SQLite's SQL. The same fields as `MYSQL` in `mysql.rs`, by design: the two values are the whole
/// of what differs in the shared statements (`duplicates` pairs them by shape).
const SQLITE: Dialect = Dialect {
    name: "sqlite",
    q: '"',
    insert_ignore: "INSERT OR IGNORE INTO",
    upsert_style: Upsert::OnConflict,
    int: "INTEGER",
    uint: "",
    now: "CURRENT_TIMESTAMP",
    now_ms: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    stale: "claimed_at < datetime('now', '-' || ? || ' seconds')",
    for_update: "",
    lock_nowait: "",
    // A lookup by name in the parsed schema, not a scan of `sqlite_master` (thousands of corps).
    table_exists: "SELECT COUNT(*) FROM pragma_table_info(?)",
    // Unsigned max: a negative INTEGER is a u64 above 2^63-1.
    cursor_upsert: "INSERT INTO corp_cursor (corpid, seq, updated) VALUES (?, ?, CURRENT_TIMESTAMP) \
                    ON CONFLICT (corpid) DO UPDATE SET seq = CASE \
                      WHEN (excluded.seq < 0) > (corp_cursor.seq < 0) THEN excluded.seq \
                      WHEN (excluded.seq < 0) = (corp_cursor.seq < 0) THEN max(corp_cursor.seq, excluded.seq) \
                      ELSE corp_cursor.seq END, \
                    updated = CURRENT_TIMESTAMP",
    // The largest unsigned: the largest negative if there is one.
    max_seq: |t| format!("SELECT COALESCE((SELECT MAX(seq) FROM {t} WHERE seq < 0), (SELECT MAX(seq) FROM {t}))"),
    no_room: "roomid = ''",
};

impl Flavor for Sqlite {
    const SQL: Dialect = SQLITE;
    /// INTEGER is signed: a u64 in two's complement.
    type U64 = i64;

    fn to_db(v: u64) -> i64 {
        v as i64
    }

    fn from_db(v: i64) -> u64 {
        v as u64
    }
}

/// Corps whose tables [`SchemaRepo::prepare_corp_tables`] creates in one transaction.
const PREPARE_CHUNK: usize = 1000;

/// The page cache (KiB) of the connection that creates many corps' tables: every CREATE
/// re-reads `sqlite_master` (SQLite looks its new entry up by a scan), which at thousands of
/// corps no longer fits the default 2 MiB. A cap, not an allocation; put back afterwards.
const DDL_CACHE_KIB: u32 = 256 * 1024;

/// A new corp's two tables. Each CREATE costs SQLite a scan of the whole schema (and every
/// other connection a re-parse of it), so the secondary indexes are not statements of their
/// own but `UNIQUE` constraints in the table: `seq` is unique, so `(…, seq)` is, and SQLite
/// builds the same b-tree a `CREATE INDEX` on those columns would, used the same way by the
/// planner. Two statements per corp instead of eight.
fn new_corp_ddl(c: &CorpId) -> [String; 2] {
    let t = c.message_table();
    let m = c.media_table();
    [
        format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msgid TEXT NOT NULL UNIQUE,
  publickey_ver INTEGER NOT NULL DEFAULT 1,
  seq INTEGER NOT NULL UNIQUE,
  action TEXT NOT NULL DEFAULT '',
  msgfrom TEXT NOT NULL DEFAULT '',
  tolist TEXT NULL,
  msgtype TEXT NOT NULL DEFAULT '',
  msgtime INTEGER NOT NULL DEFAULT 0,
  text TEXT NULL,
  sdkfield TEXT NULL,
  msgdata TEXT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  media_code INTEGER NOT NULL DEFAULT 0,
  media_path TEXT NOT NULL DEFAULT '',
  roomid TEXT NOT NULL DEFAULT '',
  created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  decrypt_error TEXT NULL,
  encrypt_random_key TEXT NULL,
  encrypt_chat_msg TEXT NULL,
  UNIQUE (msgtime, seq),
  UNIQUE (msgfrom, seq),
  UNIQUE (roomid, msgtime, seq),
  UNIQUE (roomid, msgfrom, msgtime, seq)
)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS \"{m}\" (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msgid TEXT NOT NULL,
  item INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  sdkfileid TEXT NOT NULL,
  md5 TEXT NULL,
  size INTEGER NULL,
  ext TEXT NOT NULL DEFAULT '',
  filename TEXT NULL,
  play_length INTEGER NULL,
  status INTEGER NOT NULL DEFAULT 1,
  media_code INTEGER NOT NULL DEFAULT 0,
  path TEXT NULL,
  transcoded_path TEXT NULL,
  transcode_error TEXT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  claimed_by TEXT NULL,
  claimed_at TEXT NULL,
  retry_at INTEGER NOT NULL DEFAULT 0,
  created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (msgid, item),
  UNIQUE (status, id)
)"
        ),
    ]
}

/// The indexes of tables made before [`new_corp_ddl`] (by `CREATE INDEX`; the review indexes
/// were added later): present ones are left alone, missing ones added.
fn older_table_indexes(c: &CorpId) -> [String; 6] {
    let t = c.message_table();
    let m = c.media_table();
    [
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_msgtime\" ON \"{t}\" (msgtime)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_roomid\" ON \"{t}\" (roomid)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_msgfrom\" ON \"{t}\" (msgfrom)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_room_time\" ON \"{t}\" (roomid, msgtime, seq)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_room_from\" ON \"{t}\" (roomid, msgfrom, msgtime)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{m}_status\" ON \"{m}\" (status)"),
    ]
}

/// What a corp's tables need: both created, an older pair's indexes completed, or nothing.
/// Two lookups by name (`pragma_table_info`, `pragma_index_list`), not scans of `sqlite_master`.
async fn corp_ddl(conn: &mut sqlx::SqliteConnection, c: &CorpId) -> Result<Vec<String>, StoreError> {
    let t = c.message_table();
    let columns: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?)").bind(&t).fetch_one(&mut *conn).await?;
    if columns == 0 {
        return Ok(new_corp_ddl(c).into());
    }
    // An older table's indexes were made by CREATE INDEX (origin 'c'); a new one has none.
    let created: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_index_list(?) WHERE origin = 'c'")
        .bind(&t)
        .fetch_one(&mut *conn)
        .await?;
    if created > 0 {
        return Ok(older_table_indexes(c).into());
    }
    // The message table is new; its media table is made with it (IF NOT EXISTS: nothing if there).
    Ok(vec![new_corp_ddl(c)[1].clone()])
}

impl SqliteStore {
    /// Opens (creating if missing) `sqlite://path` or `sqlite::memory:`; a file with a pool of
    /// `max_connections` (at least 1).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let opts = SqliteConnectOptions::from_str(url)?;
        if !memory {
            create_private(opts.get_filename())?;
        }
        let mut opts =
            opts.create_if_missing(true).busy_timeout(Duration::from_secs(30)).synchronous(SqliteSynchronous::Normal);
        if !memory {
            opts = opts.journal_mode(SqliteJournalMode::Wal);
        }
        // An in-memory database lives as long as its one connection: keep exactly one, forever.
        let pool_opts = if memory {
            SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections.max(1))
        };
        let pool = pool_opts.acquire_timeout(Duration::from_secs(60)).connect_with(opts).await?;
        Ok(Self::over(pool, url, Limits::sqlite(), true))
    }

    /// Opens an existing database file read-only: nothing is created, no journal mode is set,
    /// every write fails (`validate`, `doctor` without `--fix`).
    pub async fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        Ok(Self::over(pool, url, Limits::sqlite(), true))
    }
}

/// Creates a missing database file as 0600 (owner only: it holds chat content, corp secrets and
/// keys) before SQLite opens it; its -wal and -shm files take the same mode. An existing file
/// is left as it is.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(sqlx::Error::Io(e))),
    }
}

/// The tables of `corps` in one transaction on `conn`.
async fn create_chunk(conn: &mut sqlx::SqliteConnection, corps: &[&CorpId]) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await?;
    for corpid in corps {
        // What the statements log names the corp.
        let span = tracing::info_span!("corp_tables", corpid = %corpid);
        for stmt in corp_ddl(&mut tx, corpid).instrument(span.clone()).await? {
            sqlx::query(&stmt).execute(&mut *tx).instrument(span.clone()).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl SchemaRepo for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let _w = self.write_guard().await;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError> {
        if self.is_ensured(corpid) {
            return Ok(());
        }
        self.prepare_corp_tables(std::slice::from_ref(corpid)).await
    }

    async fn prepare_corp_tables(&self, corpids: &[CorpId]) -> Result<(), StoreError> {
        let missing: Vec<&CorpId> = corpids.iter().filter(|c| !self.is_ensured(c)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let _ddl = self.ddl_lock.lock().await;
        // One transaction per chunk: one schema change for many corps, and the writer lock is
        // given up between chunks. Corps made meanwhile (by another caller) are skipped.
        for chunk in missing.chunks(PREPARE_CHUNK) {
            let _w = self.write_guard().await;
            let mut conn = self.pool.acquire().await?;
            sqlx::query(&format!("PRAGMA cache_size = -{DDL_CACHE_KIB}")).execute(&mut *conn).await?;
            let todo: Vec<&CorpId> = chunk.iter().copied().filter(|c| !self.is_ensured(c)).collect();
            let made = create_chunk(&mut conn, &todo).await;
            // The connection goes back to the pool with the default cache whatever happened.
            let reset = sqlx::query("PRAGMA cache_size = -2000").execute(&mut *conn).await;
            made?;
            reset?;
            for corpid in chunk {
                self.mark_ensured(corpid);
            }
        }
        Ok(())
    }

    async fn migrate_java_corp_table(&self, _corpid: &CorpId) -> Result<(), StoreError> {
        // The Java version only ever wrote MySQL: nothing to upgrade here.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml`'s flag reached the bundled SQLite: its schema hashes grow with the
    /// number of corps instead of stopping at 64 buckets.
    #[tokio::test]
    async fn bundled_sqlite_hash_tables_are_not_capped() {
        let store = SqliteStore::connect("sqlite::memory:", 1).await.unwrap();
        let opts: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(store.pool()).await.unwrap();
        assert!(opts.iter().any(|o| o == "MALLOC_SOFT_LIMIT=0"), "{opts:?}");
    }

    /// New corps: two tables each, their indexes inside them; a second process finds them and
    /// changes nothing (the schema version stays).
    #[tokio::test]
    async fn prepared_corps_get_two_tables_and_a_restart_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let corps: Vec<CorpId> = (0..3).map(|i| CorpId::new(&format!("wwprep{i:011}")).unwrap()).collect();
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        store.prepare_corp_tables(&corps).await.unwrap();
        let count = |sql: &'static str| {
            let pool = store.pool().clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        assert_eq!(count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'me%'").await, 6);
        // message: msgid, seq and the four (…, seq); media: (msgid, item) and (status, id).
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'sqlite_autoindex_me%'").await,
            3 * 8
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").await,
            0,
            "no CREATE INDEX"
        );
        let version = |store: &SqliteStore| {
            let pool = store.pool().clone();
            async move { sqlx::query_scalar::<_, i64>("PRAGMA schema_version").fetch_one(&pool).await.unwrap() }
        };
        let before = version(&store).await;
        drop(store);
        let next = SqliteStore::connect(&url, 2).await.unwrap();
        next.prepare_corp_tables(&corps).await.unwrap();
        assert_eq!(version(&next).await, before);
        assert!(next.table_exists(&corps[2].message_table()).await.unwrap());
        assert!(!next.table_exists("message_wwnotthere").await.unwrap());
    }
}
