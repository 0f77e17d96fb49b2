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
    table_exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
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

fn corp_ddl(c: &CorpId) -> Vec<String> {
    let t = c.message_table();
    let m = c.media_table();
    vec![
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
  encrypt_chat_msg TEXT NULL
)"
        ),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_msgtime\" ON \"{t}\" (msgtime)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_roomid\" ON \"{t}\" (roomid)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_msgfrom\" ON \"{t}\" (msgfrom)"),
        // The review API's timelines and groupings (review_read_sql.rs); IF NOT EXISTS adds them
        // to tables created before.
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_room_time\" ON \"{t}\" (roomid, msgtime, seq)"),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{t}_room_from\" ON \"{t}\" (roomid, msgfrom, msgtime)"),
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
  UNIQUE (msgid, item)
)"
        ),
        format!("CREATE INDEX IF NOT EXISTS \"idx_{m}_status\" ON \"{m}\" (status)"),
    ]
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
            let mut tx = self.pool.begin().await?;
            for corpid in chunk.iter().filter(|c| !self.is_ensured(c)) {
                // What the statements log names the corp.
                let span = tracing::info_span!("corp_tables", corpid = %corpid);
                for stmt in corp_ddl(corpid) {
                    sqlx::query(&stmt).execute(&mut *tx).instrument(span.clone()).await?;
                }
            }
            tx.commit().await?;
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
