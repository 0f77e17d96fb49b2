//! [`SqliteStore`]: the embedded default (WAL, busy timeout, created if missing).
//!
//! SQLite integers are signed 64-bit: unsigned 64-bit values (seq, msgtime, size) are stored in
//! two's complement, so every value up to 2^63-1 reads as itself and larger ones (never seen in
//! practice, but a u64 must round-trip) are negative; the cursor comparisons treat them as
//! unsigned. Writes are serialised inside the process (one writer at a time is all SQLite
//! allows anyway), so busy errors come only from other processes and the busy timeout.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row as _, Sqlite};

use super::spill::{self, Limits, Part};
use super::{
    check_rows, chunks, renamed_duplicates, row_bytes, BatchOutcome, CorpId, CorpRow, Fence, LeaseRow, MediaCount,
    MediaInsert, MediaItem, MediaJob, MediaOutcome, MediaRecovery, MediaRef, Row, Store, StoreError, Undecrypted,
    MEDIA_COLUMNS, ROW_COLUMNS,
};
use crate::secret::Secret;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    redacted_url: String,
    ensured: Mutex<HashSet<CorpId>>,
    ddl_lock: tokio::sync::Mutex<()>,
    /// New media rows are inserted held ([`super::MEDIA_HELD`]): media is off.
    hold_media: std::sync::atomic::AtomicBool,
    write_lock: tokio::sync::Mutex<()>,
    limits: Limits,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("url", &self.redacted_url)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// u64 → SQLite INTEGER (two's complement).
fn to_db(v: u64) -> i64 {
    v as i64
}

/// SQLite INTEGER → u64 (two's complement).
fn from_db(v: i64) -> u64 {
    v as u64
}

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
    /// Opens (creating if missing) `sqlite://path` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
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
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_opts.acquire_timeout(Duration::from_secs(60)).connect_with(opts).await?;
        Ok(Self::over(pool, url))
    }

    /// The store over an open pool (both constructors).
    fn over(pool: SqlitePool, url: &str) -> Self {
        Self {
            pool,
            redacted_url: super::redact_url(url),
            ensured: Mutex::new(HashSet::new()),
            ddl_lock: tokio::sync::Mutex::new(()),
            hold_media: std::sync::atomic::AtomicBool::new(false),
            write_lock: tokio::sync::Mutex::new(()),
            limits: Limits::sqlite(),
        }
    }

    fn holds_media(&self) -> bool {
        self.hold_media.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Opens an existing database file read-only: nothing is created, no journal mode is set,
    /// every write fails (`validate`, `doctor` without `--fix`).
    pub async fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        Ok(Self::over(pool, url))
    }

    /// The same store working to a smaller limit than SQLite's (tests: the code path MySQL
    /// takes at its packet size).
    #[must_use]
    pub fn with_packet_limit(mut self, bytes: u64) -> Self {
        self.limits.packet = self.limits.packet.min(bytes);
        self
    }

    /// The parts of `column` of record `seq`, in order.
    async fn parts(&self, corpid: &CorpId, seq: u64, column: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT data FROM message_part WHERE corpid = ? AND seq = ? AND col = ? ORDER BY part")
            .bind(corpid.as_str())
            .bind(to_db(seq))
            .bind(column)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Puts the marked columns of `row` back together from `message_part`.
    async fn unspill(&self, corpid: &CorpId, row: &mut Row) -> Result<(), StoreError> {
        for column in spill::marked_columns(row) {
            let parts = self.parts(corpid, row.seq, column).await?;
            let value = spill::take_column(row, column);
            spill::put_column(row, column, spill::reassemble(value, parts, column)?);
        }
        Ok(())
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn is_ensured(&self, corpid: &CorpId) -> bool {
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).contains(corpid)
    }

    async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
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

/// Multi-row `INSERT OR IGNORE` of media rows, chunked; returns the number inserted.
async fn insert_media(
    conn: &mut SqliteConnection,
    table: &str,
    items: &[MediaInsert<'_>],
    budget: usize,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in chunks(items, MediaInsert::bytes, budget) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT OR IGNORE INTO \"{table}\" ({MEDIA_COLUMNS}) "));
        qb.push_values(chunk, |mut b, m| {
            b.push_bind(m.msgid)
                .push_bind(m.item)
                .push_bind(to_db(m.seq))
                .push_bind(m.kind)
                .push_bind(m.sdkfileid)
                .push_bind(m.md5)
                .push_bind(m.size.map(to_db))
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

/// The media-job statements (see `media_sql`).
mod media_jobs {
    crate::store::media_sql::media_job_fns!(sqlx::SqlitePool, crate::store::media_sql::SQLITE);
}

/// The lease statements (see `lease_sql`).
mod leases {
    crate::store::lease_sql::lease_fns!(sqlx::SqlitePool, sqlx::Sqlite, crate::store::lease_sql::SQLITE);
}

#[async_trait]
impl Store for SqliteStore {
    fn dialect(&self) -> &'static str {
        "sqlite"
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn read_message(&self, corpid: &CorpId, seq: u64) -> Result<Option<Row>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        let r = sqlx::query(&format!(
            "SELECT msgid, publickey_ver, seq, COALESCE(action, ''), COALESCE(msgfrom, ''), COALESCE(tolist, ''), \
             COALESCE(msgtype, ''), msgtime, COALESCE(text, ''), COALESCE(sdkfield, ''), COALESCE(msgdata, ''), \
             status, COALESCE(roomid, ''), decrypt_error, encrypt_random_key, encrypt_chat_msg FROM \"{}\" \
             WHERE seq = ?",
            corpid.message_table()
        ))
        .bind(to_db(seq))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let mut row = Row {
            msgid: r.try_get(0)?,
            publickey_ver: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(u32::MAX),
            seq: from_db(r.try_get(2)?),
            action: r.try_get(3)?,
            msgfrom: r.try_get(4)?,
            tolist: r.try_get(5)?,
            msgtype: r.try_get(6)?,
            msgtime: from_db(r.try_get(7)?),
            text: r.try_get(8)?,
            sdkfield: r.try_get(9)?,
            msgdata: r.try_get(10)?,
            status: u8::try_from(r.try_get::<i64, _>(11)?).unwrap_or(u8::MAX),
            roomid: r.try_get(12)?,
            decrypt_error: r.try_get(13)?,
            encrypt_random_key: r.try_get(14)?,
            encrypt_chat_msg: r.try_get(15)?,
        };
        self.unspill(corpid, &mut row).await?;
        Ok(Some(row))
    }

    // search: rows after a seq, for the search index (SQL in `scan.rs`).
    async fn messages_after(
        &self,
        corpid: &CorpId,
        after_seq: u64,
        limit: u32,
        whole: bool,
    ) -> Result<Option<Vec<Row>>, StoreError> {
        super::scan::messages_after!(self, super::scan::SQLITE, corpid, after_seq, limit, whole)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _w = self.write_lock.lock().await;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError> {
        if self.is_ensured(corpid) {
            return Ok(());
        }
        let _ddl = self.ddl_lock.lock().await;
        if self.is_ensured(corpid) {
            return Ok(());
        }
        {
            let _w = self.write_lock.lock().await;
            let mut tx = self.pool.begin().await?;
            for stmt in corp_ddl(corpid) {
                sqlx::query(&stmt).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).insert(corpid.clone());
        Ok(())
    }

    async fn migrate_java_corp_table(&self, _corpid: &CorpId) -> Result<(), StoreError> {
        // The Java version only ever wrote MySQL: nothing to upgrade here.
        Ok(())
    }

    async fn lease_heartbeat(&self, holder: &str, ttl_ms: i64) -> Result<u32, StoreError> {
        leases::lease_heartbeat(&self.pool, Some(&self.write_lock), holder, ttl_ms).await
    }

    async fn lease_leave(&self, holder: &str) -> Result<(), StoreError> {
        leases::lease_leave(&self.pool, Some(&self.write_lock), holder).await
    }

    async fn lease_claim(&self, corpid: &CorpId, holder: &str, ttl_ms: i64) -> Result<Option<u64>, StoreError> {
        leases::lease_claim(&self.pool, Some(&self.write_lock), corpid, holder, ttl_ms).await
    }

    async fn lease_renew_all(
        &self,
        holder: &str,
        leases: &[(CorpId, u64)],
        ttl_ms: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        leases::lease_renew_all(&self.pool, Some(&self.write_lock), holder, leases, ttl_ms).await
    }

    async fn lease_release(&self, corpid: &CorpId, fence: &Fence) -> Result<(), StoreError> {
        leases::lease_release(&self.pool, Some(&self.write_lock), corpid, fence).await
    }

    async fn lease_list(&self) -> Result<Vec<LeaseRow>, StoreError> {
        leases::lease_list(&self.pool).await
    }

    async fn write_batch_fenced(
        &self,
        corpid: &CorpId,
        rows: &[Row],
        media: &[MediaItem],
        new_cursor: u64,
        fence: Option<&Fence>,
    ) -> Result<BatchOutcome, StoreError> {
        check_rows(rows, media)?;
        self.ensure_corp_tables(corpid).await?;
        let t = corpid.message_table();
        let budget = self.limits.statement_bytes();
        // Values too large for a row go to message_part (spill.rs), in this transaction.
        let (spilled, parts) = spill::spill(rows, &self.limits);
        let rows = spilled.as_deref().unwrap_or(rows);
        let mut out = BatchOutcome::default();
        let _w = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        out.inserted_rows = insert_rows(&mut tx, &t, rows, budget).await?;
        insert_parts(&mut tx, corpid, &parts, None).await?;
        let mut renamed_media = None;
        if out.inserted_rows < rows.len() as u64 {
            // Some rows were already there: a re-pull, or msgids stored under another seq.
            let stored = stored_seqs(&mut tx, &t, rows).await?;
            if let Some((dups, media)) = renamed_duplicates(rows, media, &stored) {
                tracing::warn!(corpid = %corpid, count = dups.len(), "records with a msgid stored under another seq: kept under new msgids");
                out.inserted_rows += insert_rows(&mut tx, &t, &dups, budget).await?;
                renamed_media = Some(media);
            }
        }
        let media = renamed_media.as_deref().unwrap_or(media);
        let items: Vec<MediaInsert<'_>> =
            media.iter().map(|(id, seq, m)| MediaInsert::pending(id, *seq, m).held_if(self.holds_media())).collect();
        out.inserted_media = insert_media(&mut tx, &corpid.media_table(), &items, budget).await?;
        // Unsigned max: a negative INTEGER is a u64 above 2^63-1.
        sqlx::query(
            "INSERT INTO corp_cursor (corpid, seq, updated) VALUES (?, ?, CURRENT_TIMESTAMP) \
             ON CONFLICT (corpid) DO UPDATE SET seq = CASE \
               WHEN (excluded.seq < 0) > (corp_cursor.seq < 0) THEN excluded.seq \
               WHEN (excluded.seq < 0) = (corp_cursor.seq < 0) THEN max(corp_cursor.seq, excluded.seq) \
               ELSE corp_cursor.seq END, \
             updated = CURRENT_TIMESTAMP",
        )
        .bind(corpid.as_str())
        .bind(to_db(new_cursor))
        .execute(&mut *tx)
        .await?;
        // The fencing check (ARCHITECTURE.md decision 10), the last statement before the commit: the
        // lease row is locked only for that instant (an instance paused inside this transaction
        // must not keep the others from claiming the corp), and a claim by another instance since
        // the lease was renewed rolls the whole batch back.
        if let Some(fence) = fence {
            leases::check_fence(&mut tx, corpid, fence).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn cursor(&self, corpid: &CorpId) -> Result<u64, StoreError> {
        let stored: Option<i64> = sqlx::query_scalar("SELECT seq FROM corp_cursor WHERE corpid = ?")
            .bind(corpid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let t = corpid.message_table();
        let max: Option<i64> = if self.table_exists(&t).await? {
            sqlx::query_scalar(&format!(
                "SELECT COALESCE((SELECT MAX(seq) FROM \"{t}\" WHERE seq < 0), (SELECT MAX(seq) FROM \"{t}\"))"
            ))
            .fetch_one(&self.pool)
            .await?
        } else {
            None
        };
        Ok(stored.map_or(0, from_db).max(max.map_or(0, from_db)))
    }

    async fn list_corps(&self) -> Result<Vec<CorpRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT corpid, secret, corpname, prikey, limits, timeout, status, \"update\" FROM corplist ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let int = |i: usize, default: i32| -> Result<i32, sqlx::Error> {
                    Ok(r.try_get::<Option<i64>, _>(i)?.map_or(default, |v| i32::try_from(v).unwrap_or(default)))
                };
                Ok(CorpRow {
                    corpid: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                    secret: Secret::new(r.try_get::<Option<String>, _>(1)?.unwrap_or_default()),
                    corpname: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    prikey: Secret::new(r.try_get::<Option<String>, _>(3)?.unwrap_or_default()),
                    limits: int(4, 100)?,
                    timeout: int(5, 5)?,
                    status: int(6, 1)?,
                    update: int(7, 0)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn list_corp_keys(&self) -> Result<Vec<(String, u32, Secret)>, StoreError> {
        let rows = sqlx::query("SELECT corpid, publickey_ver, prikey FROM corp_keys ORDER BY corpid, publickey_ver")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, Secret::new(r.try_get::<String, _>(2)?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn upsert_corp(&self, corp: &CorpRow) -> Result<(), StoreError> {
        let corpid = CorpId::new(&corp.corpid)?;
        let _w = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO corplist (corpid, secret, corpname, prikey, limits, timeout, status, \"update\") \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (corpid) DO UPDATE SET secret = excluded.secret, \
             corpname = excluded.corpname, prikey = excluded.prikey, limits = excluded.limits, \
             timeout = excluded.timeout, status = excluded.status, \"update\" = excluded.\"update\"",
        )
        .bind(corpid.as_str())
        .bind(corp.secret.expose())
        .bind(&corp.corpname)
        .bind(corp.prikey.expose())
        .bind(corp.limits)
        .bind(corp.timeout)
        .bind(corp.status)
        .bind(corp.update)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_corp_status(&self, corpid: &CorpId, status: i32) -> Result<(), StoreError> {
        let _w = self.write_lock.lock().await;
        sqlx::query("UPDATE corplist SET status = ? WHERE corpid = ?")
            .bind(status)
            .bind(corpid.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_corp_key(&self, corpid: &CorpId, publickey_ver: u32, prikey: &Secret) -> Result<(), StoreError> {
        let _w = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO corp_keys (corpid, publickey_ver, prikey) VALUES (?, ?, ?) \
             ON CONFLICT (corpid, publickey_ver) DO UPDATE SET prikey = excluded.prikey",
        )
        .bind(corpid.as_str())
        .bind(publickey_ver)
        .bind(prikey.expose())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_update_flag(&self, corpid: &CorpId) -> Result<(), StoreError> {
        let _w = self.write_lock.lock().await;
        sqlx::query("UPDATE corplist SET \"update\" = 0 WHERE corpid = ?")
            .bind(corpid.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn undecrypted(&self, corpid: &CorpId, after_id: u64, limit: u32) -> Result<Vec<Undecrypted>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        let rows = sqlx::query(&format!(
            "SELECT id, seq, msgid, publickey_ver, COALESCE(encrypt_random_key, ''), encrypt_chat_msg FROM \"{}\" \
             WHERE id > ? AND decrypt_error IS NOT NULL AND encrypt_chat_msg IS NOT NULL ORDER BY id LIMIT ?",
            corpid.message_table()
        ))
        .bind(to_db(after_id))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Undecrypted> = rows
            .iter()
            .map(|r| {
                Ok(Undecrypted {
                    id: from_db(r.try_get(0)?),
                    seq: from_db(r.try_get(1)?),
                    msgid: r.try_get(2)?,
                    publickey_ver: r.try_get(3)?,
                    encrypt_random_key: r.try_get(4)?,
                    encrypt_chat_msg: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        // A ciphertext too large for the row is in message_part.
        for u in &mut out {
            for (column, value) in
                [("encrypt_chat_msg", &mut u.encrypt_chat_msg), ("encrypt_random_key", &mut u.encrypt_random_key)]
            {
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
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM \"{}\" WHERE decrypt_error IS NOT NULL AND encrypt_chat_msg IS NULL \
             AND decrypt_error NOT LIKE 'not stored as parsed: %'",
            corpid.message_table()
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(from_db(n))
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
        let t = corpid.message_table();
        let (spilled, parts) = spill::spill(std::slice::from_ref(row), &self.limits);
        let row = spilled.as_ref().and_then(|r| r.first()).unwrap_or(row);
        let _w = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        // Lease fencing goes here as well (see write_batch). The UPDATE comes first so that the
        // transaction takes the write lock before it reads.
        let updated = sqlx::query(&format!(
            "UPDATE \"{t}\" SET publickey_ver = ?, action = ?, msgfrom = ?, tolist = ?, msgtype = ?, msgtime = ?, \
             text = ?, sdkfield = ?, msgdata = ?, status = ?, roomid = ?, decrypt_error = ?, \
             encrypt_random_key = ?, encrypt_chat_msg = ? WHERE id = ?"
        ))
        .bind(row.publickey_ver)
        .bind(&row.action)
        .bind(&row.msgfrom)
        .bind(&row.tolist)
        .bind(&row.msgtype)
        .bind(to_db(row.msgtime))
        .bind(&row.text)
        .bind(&row.sdkfield)
        .bind(&row.msgdata)
        .bind(row.status)
        .bind(&row.roomid)
        .bind(row.decrypt_error.as_deref())
        .bind(row.encrypt_random_key.as_deref())
        .bind(row.encrypt_chat_msg.as_deref())
        .bind(to_db(id))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NoSuchRow { table: t, id });
        }
        let (msgid, seq): (String, i64) = sqlx::query_as(&format!("SELECT msgid, seq FROM \"{t}\" WHERE id = ?"))
            .bind(to_db(id))
            .fetch_one(&mut *tx)
            .await?;
        // The old row's parts (its ciphertext, say) give way to the new row's.
        sqlx::query("DELETE FROM message_part WHERE corpid = ? AND seq = ?")
            .bind(corpid.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        insert_parts(&mut tx, corpid, &parts, Some(from_db(seq))).await?;
        let items: Vec<MediaInsert<'_>> =
            media.iter().map(|m| MediaInsert::pending(&msgid, from_db(seq), m).held_if(self.holds_media())).collect();
        insert_media(&mut tx, &corpid.media_table(), &items, self.limits.statement_bytes()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        limit: u32,
        now: i64,
    ) -> Result<Vec<MediaJob>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::claim_media(&self.pool, Some(&self.write_lock), corpid, owner, limit, now).await
    }

    async fn finish_media(&self, corpid: &CorpId, job: &MediaJob, outcome: &MediaOutcome) -> Result<(), StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::finish_media(&self.pool, Some(&self.write_lock), corpid, job, outcome).await
    }

    async fn recover_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        stale: Duration,
        max_attempts: u32,
    ) -> Result<MediaRecovery, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::recover_media(&self.pool, Some(&self.write_lock), corpid, owner, stale, max_attempts).await
    }

    async fn requeue_media(&self, corpid: &CorpId, status: u8) -> Result<u64, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::requeue_media(&self.pool, Some(&self.write_lock), corpid, status).await
    }

    async fn media_stats(&self, corpid: &CorpId) -> Result<Vec<MediaCount>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::media_stats(&self.pool, corpid).await
    }

    async fn interrupted_transcodes(
        &self,
        corpid: &CorpId,
        marker: &str,
    ) -> Result<Vec<(MediaJob, String)>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::interrupted_transcodes(&self.pool, corpid, marker).await
    }

    async fn release_held_media(&self, corpid: &CorpId) -> Result<u64, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::release_held_media(&self.pool, Some(&self.write_lock), corpid).await
    }

    fn hold_new_media(&self, hold: bool) {
        self.hold_media.store(hold, std::sync::atomic::Ordering::Relaxed);
    }
}

/// INSERT-or-ignore of `rows` into the message table `t`, in chunks: how many were inserted.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    t: &str,
    rows: &[Row],
    budget: usize,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in chunks(rows, row_bytes, budget) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT OR IGNORE INTO \"{t}\" ({ROW_COLUMNS}) "));
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.msgid.as_str())
                .push_bind(r.publickey_ver)
                .push_bind(to_db(r.seq))
                .push_bind(r.action.as_str())
                .push_bind(r.msgfrom.as_str())
                .push_bind(r.tolist.as_str())
                .push_bind(r.msgtype.as_str())
                .push_bind(to_db(r.msgtime))
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

/// The parts of spilled values, one statement each; under `seq` when given, else under each
/// part's own. Parts already there stay (a re-pull).
async fn insert_parts(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    corpid: &CorpId,
    parts: &[Part<'_>],
    seq: Option<u64>,
) -> Result<(), StoreError> {
    for p in parts {
        sqlx::query("INSERT OR IGNORE INTO message_part (corpid, seq, col, part, data) VALUES (?, ?, ?, ?, ?)")
            .bind(corpid.as_str())
            .bind(to_db(seq.unwrap_or(p.seq)))
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
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    t: &str,
    rows: &[Row],
) -> Result<std::collections::HashMap<String, u64>, StoreError> {
    let mut out = std::collections::HashMap::new();
    for chunk in rows.chunks(500) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT msgid, seq FROM \"{t}\" WHERE msgid IN ("));
        let mut list = qb.separated(", ");
        for r in chunk {
            list.push_bind(r.msgid.as_str());
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut **tx).await? {
            out.insert(row.try_get(0)?, from_db(row.try_get(1)?));
        }
    }
    Ok(out)
}
