//! [`MysqlStore`]: MySQL, MariaDB and TiDB through sqlx's native MySQL driver.
//!
//! Only portable MySQL is used (TiDB-friendly): `INSERT IGNORE`, `ON DUPLICATE KEY UPDATE`,
//! `information_schema`, multi-clause `ALTER TABLE`. Integers are read through `CAST(… AS
//! SIGNED|UNSIGNED)` so that the Java version's column types (INT, TINYINT(1), signed BIGINT)
//! decode like ours.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, QueryBuilder, Row as _};

use super::spill::{self, Limits, Part};
use super::{
    check_rows, chunks, renamed_duplicates, row_bytes, BatchOutcome, CorpId, CorpRow, Fence, JavaMedia, LeaseRow,
    MediaCount, MediaInsert, MediaItem, MediaJob, MediaOutcome, MediaRecovery, MediaRef, Row, Store, StoreError,
    Undecrypted, JAVA_UNDECRYPTABLE, MEDIA_COLUMNS, ROW_COLUMNS,
};
use crate::secret::Secret;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The MySQL-family store.
pub struct MysqlStore {
    pool: MySqlPool,
    redacted_url: String,
    ensured: Mutex<HashSet<CorpId>>,
    ddl_lock: tokio::sync::Mutex<()>,
    /// New media rows are inserted held ([`super::MEDIA_HELD`]): media is off.
    hold_media: std::sync::atomic::AtomicBool,
    limits: Limits,
}

impl fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlStore")
            .field("url", &self.redacted_url)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn message_ddl(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{t}` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  msgid VARCHAR(128) NOT NULL,
  publickey_ver INT UNSIGNED NOT NULL DEFAULT 1,
  seq BIGINT UNSIGNED NOT NULL,
  action VARCHAR(16) NOT NULL DEFAULT '',
  msgfrom VARCHAR(128) NOT NULL DEFAULT '',
  tolist MEDIUMTEXT NULL,
  msgtype VARCHAR(32) NOT NULL DEFAULT '',
  msgtime BIGINT UNSIGNED NOT NULL DEFAULT 0,
  text MEDIUMTEXT NULL,
  sdkfield TEXT NULL,
  msgdata LONGTEXT NULL,
  status TINYINT NOT NULL DEFAULT 0,
  media_code INT NOT NULL DEFAULT 0,
  media_path VARCHAR(1024) NOT NULL DEFAULT '',
  roomid VARCHAR(128) NOT NULL DEFAULT '',
  created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  decrypt_error TEXT NULL,
  encrypt_random_key TEXT NULL,
  encrypt_chat_msg LONGTEXT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_msgid (msgid),
  UNIQUE KEY uk_seq (seq),
  KEY idx_msgtime (msgtime),
  KEY idx_roomid (roomid),
  KEY idx_msgfrom (msgfrom)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
}

fn media_ddl(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{t}` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  msgid VARCHAR(128) NOT NULL,
  item INT UNSIGNED NOT NULL DEFAULT 0,
  seq BIGINT UNSIGNED NOT NULL,
  kind VARCHAR(32) NOT NULL,
  sdkfileid TEXT NOT NULL,
  md5 VARCHAR(32) NULL,
  size BIGINT UNSIGNED NULL,
  ext VARCHAR(16) NOT NULL DEFAULT '',
  filename VARCHAR(255) NULL,
  play_length INT UNSIGNED NULL,
  status TINYINT NOT NULL DEFAULT 1,
  media_code INT NOT NULL DEFAULT 0,
  path VARCHAR(1024) NULL,
  transcoded_path VARCHAR(1024) NULL,
  transcode_error TEXT NULL,
  attempts INT NOT NULL DEFAULT 0,
  claimed_by VARCHAR(64) NULL,
  claimed_at DATETIME NULL,
  retry_at BIGINT NOT NULL DEFAULT 0,
  created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uk_msgid_item (msgid, item),
  KEY idx_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
}

/// The message columns as this version wants them: MODIFY where the Java table has the column,
/// ADD where it does not. `msgid` and `seq` are NOT NULL (the Java code always wrote them); the
/// other short columns stay nullable in case Java-era rows hold NULLs.
const JAVA_UPGRADE_COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT"),
    ("msgid", "VARCHAR(128) NOT NULL"),
    ("publickey_ver", "INT UNSIGNED NOT NULL DEFAULT 1"),
    ("seq", "BIGINT UNSIGNED NOT NULL DEFAULT 0"),
    ("action", "VARCHAR(16) NULL DEFAULT ''"),
    ("msgfrom", "VARCHAR(128) NULL DEFAULT ''"),
    ("tolist", "MEDIUMTEXT NULL"),
    ("msgtype", "VARCHAR(32) NULL DEFAULT ''"),
    ("msgtime", "BIGINT UNSIGNED NOT NULL DEFAULT 0"),
    ("text", "MEDIUMTEXT NULL"),
    ("sdkfield", "TEXT NULL"),
    ("msgdata", "LONGTEXT NULL"),
    ("status", "TINYINT NOT NULL DEFAULT 0"),
    ("media_code", "INT NOT NULL DEFAULT 0"),
    ("media_path", "VARCHAR(1024) NULL DEFAULT ''"),
    ("roomid", "VARCHAR(128) NULL DEFAULT ''"),
    ("created", "DATETIME NULL DEFAULT CURRENT_TIMESTAMP"),
    ("decrypt_error", "TEXT NULL"),
    ("encrypt_random_key", "TEXT NULL"),
];

/// Missing `corplist` columns of older Java tables.
pub(crate) const CORPLIST_COLUMNS: &[(&str, &str)] = &[
    ("secret", "VARCHAR(512) NOT NULL DEFAULT ''"),
    ("corpname", "VARCHAR(100) NOT NULL DEFAULT ''"),
    ("prikey", "TEXT NULL"),
    ("limits", "INT NOT NULL DEFAULT 100"),
    ("timeout", "INT NOT NULL DEFAULT 5"),
    ("status", "TINYINT NOT NULL DEFAULT 1"),
    ("`update`", "TINYINT NOT NULL DEFAULT 0"),
];

/// Width of `corplist.secret`: room for a sealed 会话存档 secret.
pub(crate) const SECRET_WIDTH: u64 = 512;

/// `(length, nullable)` of `corplist.secret`, if the column exists.
pub(crate) async fn secret_column<'c, E: sqlx::MySqlExecutor<'c>>(e: E) -> Result<Option<(u64, bool)>, StoreError> {
    let r: Option<(Option<u64>, String)> = sqlx::query_as(
        "SELECT CAST(CHARACTER_MAXIMUM_LENGTH AS UNSIGNED), CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'corplist' AND COLUMN_NAME = 'secret'",
    )
    .fetch_optional(e)
    .await?;
    Ok(r.and_then(|(len, nullable)| len.map(|l| (l, nullable.eq_ignore_ascii_case("YES")))))
}

/// Seconds a transaction of this daemon may wait for a row lock, and (MariaDB) stay open with
/// its client silent before the server rolls it back and drops the connection.
const TRANSACTION_BOUND_SECS: u32 = 15;

/// Bounds every transaction of a new connection. The daemon's transactions run their statements
/// back to back; one whose process is paused (SIGSTOP, a frozen VM) would otherwise keep its row
/// locks — a batch's lease row, say — for as long as the pause lasts, and with them every other
/// instance's claim of that corp. MariaDB's `idle_transaction_timeout` ends such a transaction;
/// MySQL has no such variable (the attempt is ignored there) and relies on the lease keepers
/// never waiting on a lock.
async fn bound_transactions(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    use sqlx::Executor as _;
    conn.execute(format!("SET SESSION innodb_lock_wait_timeout = {TRANSACTION_BOUND_SECS}").as_str()).await?;
    let idle = format!("SET SESSION idle_transaction_timeout = {TRANSACTION_BOUND_SECS}");
    match conn.execute(idle.as_str()).await {
        Ok(_) => Ok(()),
        // 1193: unknown system variable (MySQL, TiDB).
        Err(sqlx::Error::Database(db))
            if db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|e| e.number() == 1193) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl MysqlStore {
    /// Connects (`mysql://user:pass@host:port/db`, `?socket=/path` for a Unix socket). The URL
    /// is never logged nor kept with its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = MySqlConnectOptions::from_str(url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| Box::pin(async move { bound_transactions(conn).await }))
            .connect_with(opts)
            .await?;
        // The session value is what the server enforces on this daemon's packets.
        let packet: u64 =
            sqlx::query_scalar("SELECT CAST(@@session.max_allowed_packet AS UNSIGNED)").fetch_one(&pool).await?;
        tracing::debug!(max_allowed_packet = packet, "connected");
        Ok(Self {
            pool,
            redacted_url: super::redact_url(url),
            ensured: Mutex::new(HashSet::new()),
            ddl_lock: tokio::sync::Mutex::new(()),
            hold_media: std::sync::atomic::AtomicBool::new(false),
            limits: Limits::mysql(packet),
        })
    }

    fn holds_media(&self) -> bool {
        self.hold_media.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same store working to a smaller packet than the server's (tests; a proxy in front of
    /// the server with a lower limit). A larger one than the server's is ignored.
    #[must_use]
    pub fn with_packet_limit(mut self, bytes: u64) -> Self {
        self.limits.packet = self.limits.packet.min(bytes);
        self
    }

    /// The parts of `column` of record `seq`, in order.
    async fn parts(&self, corpid: &CorpId, seq: u64, column: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT data FROM message_part WHERE corpid = ? AND seq = ? AND col = ? ORDER BY part")
            .bind(corpid.as_str())
            .bind(seq)
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
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    fn is_ensured(&self, corpid: &CorpId) -> bool {
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).contains(corpid)
    }

    /// Lower-cased column names of `table` in the current database; empty if it does not exist.
    async fn columns(&self, table: &str) -> Result<HashSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }

    async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// `(length, nullable)` of `corplist.secret`, if the column exists.
    pub(crate) async fn secret_column(&self) -> Result<Option<(u64, bool)>, StoreError> {
        secret_column(&self.pool).await
    }

    /// Adds the columns an older Java `corplist` lacks and widens corpid, secret and prikey.
    async fn adopt_corplist(&self) -> Result<(), StoreError> {
        let cols = self.columns("corplist").await?;
        let mut clauses: Vec<String> = CORPLIST_COLUMNS
            .iter()
            .filter(|(name, _)| !cols.contains(name.trim_matches('`')))
            .map(|(name, def)| format!("ADD COLUMN {name} {def}"))
            .collect();
        let (corpid_len, corpid_nullable, prikey_type): (Option<u64>, String, Option<String>) = {
            let r = sqlx::query(
                "SELECT CAST(MAX(CASE WHEN COLUMN_NAME = 'corpid' THEN CHARACTER_MAXIMUM_LENGTH END) AS UNSIGNED), \
                 CAST(COALESCE(MAX(CASE WHEN COLUMN_NAME = 'corpid' THEN IS_NULLABLE END), 'NO') AS CHAR), \
                 CAST(MAX(CASE WHEN COLUMN_NAME = 'prikey' THEN DATA_TYPE END) AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'corplist'",
            )
            .fetch_one(&self.pool)
            .await?;
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)
        };
        // A sealed secret (`enc:v1:…`, see crate::security) is longer than the Java varchar(43).
        if let Some((len, nullable)) = self.secret_column().await? {
            if len < SECRET_WIDTH {
                let null = if nullable { "NULL" } else { "NOT NULL DEFAULT ''" };
                clauses.push(format!("MODIFY COLUMN secret VARCHAR({SECRET_WIDTH}) {null}"));
            }
        }
        if corpid_len.is_some_and(|l| l < 64) {
            let null = if corpid_nullable.eq_ignore_ascii_case("YES") { "NULL" } else { "NOT NULL" };
            clauses.push(format!("MODIFY COLUMN corpid VARCHAR(64) {null}"));
        }
        if prikey_type.is_some_and(|t| t.eq_ignore_ascii_case("varchar")) {
            clauses.push("MODIFY COLUMN prikey TEXT NULL".to_string());
        }
        if !clauses.is_empty() {
            sqlx::query(&format!("ALTER TABLE corplist {}", clauses.join(", "))).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The Java upgrade; the caller holds `ddl_lock`. Every step is idempotent and the marker
    /// column `encrypt_chat_msg` is added last, so a crash midway is repaired by the next call.
    async fn upgrade_java_locked(&self, corpid: &CorpId) -> Result<(), StoreError> {
        let t = corpid.message_table();
        let cols = self.columns(&t).await?;
        if cols.is_empty() || (cols.contains("decrypt_error") && cols.contains("encrypt_chat_msg")) {
            return Ok(());
        }
        tracing::info!(corpid = %corpid, "upgrading the Java version's table {t}");
        // 1. Duplicate msgids (the Java duplicate check was racy): keep the lowest id.
        let dups = sqlx::query(&format!("DELETE d FROM `{t}` d JOIN `{t}` k ON d.msgid = k.msgid AND d.id > k.id"))
            .execute(&self.pool)
            .await?
            .rows_affected();
        if dups > 0 {
            tracing::info!(corpid = %corpid, "removed {dups} duplicated Java rows");
        }
        // 2. Types that hold real data, the new columns, uniqueness and indexes: one ALTER.
        if !cols.contains("decrypt_error") {
            // NULLs where the new definitions say NOT NULL (Java columns were nullable).
            let fixes: Vec<&str> = [
                ("msgid", "msgid = COALESCE(msgid, CONCAT('java-null-', id))"),
                ("publickey_ver", "publickey_ver = COALESCE(publickey_ver, 1)"),
                ("msgtime", "msgtime = COALESCE(msgtime, 0)"),
                ("status", "status = COALESCE(status, 0)"),
                ("media_code", "media_code = COALESCE(media_code, 0)"),
            ]
            .into_iter()
            .filter(|(c, _)| cols.contains(*c))
            .map(|(_, f)| f)
            .collect();
            if !fixes.is_empty() {
                let nulls: Vec<String> =
                    fixes.iter().filter_map(|f| f.split_once(' ')).map(|(c, _)| format!("{c} IS NULL")).collect();
                sqlx::query(&format!("UPDATE `{t}` SET {} WHERE {}", fixes.join(", "), nulls.join(" OR ")))
                    .execute(&self.pool)
                    .await?;
            }
            let mut clauses: Vec<String> = JAVA_UPGRADE_COLUMNS
                .iter()
                .map(|(name, def)| {
                    if cols.contains(*name) {
                        format!("MODIFY COLUMN {name} {def}")
                    } else {
                        format!("ADD COLUMN {name} {def}")
                    }
                })
                .collect();
            clauses.extend(
                [
                    "ADD UNIQUE KEY uk_msgid (msgid)",
                    "ADD UNIQUE KEY uk_seq (seq)",
                    "ADD KEY idx_msgtime (msgtime)",
                    "ADD KEY idx_roomid (roomid)",
                    "ADD KEY idx_msgfrom (msgfrom)",
                ]
                .map(String::from),
            );
            sqlx::query(&format!("ALTER TABLE `{t}` {}", clauses.join(", "))).execute(&self.pool).await?;
        }
        // 3. Statuses and the marking of rows the Java version could not decrypt.
        let m = corpid.media_table();
        sqlx::query(&media_ddl(&m)).execute(&self.pool).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE `{t}` SET status = CASE WHEN sdkfield IS NULL OR sdkfield = '' THEN 0 \
             WHEN media_code = 1 THEN 3 ELSE 1 END"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("UPDATE `{t}` SET decrypt_error = ? WHERE text = ? AND decrypt_error IS NULL"))
            .bind(JAVA_UNDECRYPTABLE)
            .bind("解密失败")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // 4. A media item (item 0) for every Java media row, pending or done.
        let mut after: u64 = 0;
        loop {
            let page = sqlx::query(&format!(
                "SELECT CAST(id AS UNSIGNED), msgid, CAST(seq AS UNSIGNED), COALESCE(msgtype, ''), sdkfield, \
                 COALESCE(msgdata, ''), COALESCE(media_path, ''), CAST(status AS UNSIGNED) FROM `{t}` \
                 WHERE id > ? AND status IN (1, 3) ORDER BY id LIMIT 1000"
            ))
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.try_get(0)?;
            let java: Vec<JavaMedia> = page
                .iter()
                .map(|r| {
                    Ok(JavaMedia {
                        msgid: r.try_get(1)?,
                        seq: r.try_get(2)?,
                        msgtype: r.try_get(3)?,
                        sdkfield: r.try_get(4)?,
                        msgdata: r.try_get(5)?,
                        media_path: r.try_get(6)?,
                        status: u8::try_from(r.try_get::<u64, _>(7)?).unwrap_or(1),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?;
            let fields: Vec<_> = java.iter().map(JavaMedia::fields).collect();
            let inserts: Vec<MediaInsert<'_>> = java
                .iter()
                .zip(&fields)
                .map(|(j, f)| MediaInsert {
                    msgid: &j.msgid,
                    seq: j.seq,
                    item: 0,
                    kind: f.kind,
                    sdkfileid: &j.sdkfield,
                    md5: f.md5.as_deref(),
                    size: f.size,
                    ext: &f.ext,
                    filename: f.filename.as_deref(),
                    play_length: f.play_length,
                    // Media off: a Java item still to download is held, like a new one.
                    status: if j.status == 1 && self.holds_media() { super::MEDIA_HELD } else { j.status },
                    path: (j.status == 3 && !j.media_path.is_empty()).then_some(j.media_path.as_str()),
                })
                .collect();
            let mut conn = self.pool.acquire().await?;
            insert_media(&mut conn, &m, &inserts, self.limits.statement_bytes()).await?;
        }
        // 5. The marker: from now on the table counts as upgraded.
        sqlx::query(&format!("ALTER TABLE `{t}` ADD COLUMN encrypt_chat_msg LONGTEXT NULL"))
            .execute(&self.pool)
            .await?;
        tracing::info!(corpid = %corpid, "upgraded the Java version's table {t}");
        Ok(())
    }
}

/// Multi-row `INSERT IGNORE` of media rows, chunked; returns the number inserted.
async fn insert_media(
    conn: &mut MySqlConnection,
    table: &str,
    items: &[MediaInsert<'_>],
    budget: usize,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in chunks(items, MediaInsert::bytes, budget) {
        let mut qb = QueryBuilder::<MySql>::new(format!("INSERT IGNORE INTO `{table}` ({MEDIA_COLUMNS}) "));
        qb.push_values(chunk, |mut b, m| {
            b.push_bind(m.msgid)
                .push_bind(m.item)
                .push_bind(m.seq)
                .push_bind(m.kind)
                .push_bind(m.sdkfileid)
                .push_bind(m.md5)
                .push_bind(m.size)
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
    crate::store::media_sql::media_job_fns!(sqlx::MySqlPool, crate::store::media_sql::MYSQL);
}

/// The lease statements (see `lease_sql`).
mod leases {
    crate::store::lease_sql::lease_fns!(sqlx::MySqlPool, sqlx::MySql, crate::store::lease_sql::MYSQL);
}

#[async_trait]
impl Store for MysqlStore {
    fn dialect(&self) -> &'static str {
        "mysql"
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn read_message(&self, corpid: &CorpId, seq: u64) -> Result<Option<Row>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        let r = sqlx::query(&format!(
            "SELECT msgid, CAST(publickey_ver AS UNSIGNED), CAST(seq AS UNSIGNED), COALESCE(action, ''), \
             COALESCE(msgfrom, ''), COALESCE(tolist, ''), COALESCE(msgtype, ''), CAST(msgtime AS UNSIGNED), \
             COALESCE(text, ''), COALESCE(sdkfield, ''), COALESCE(msgdata, ''), CAST(status AS UNSIGNED), \
             COALESCE(roomid, ''), decrypt_error, encrypt_random_key, encrypt_chat_msg FROM `{}` WHERE seq = ?",
            corpid.message_table()
        ))
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let mut row = Row {
            msgid: r.try_get(0)?,
            publickey_ver: u32::try_from(r.try_get::<u64, _>(1)?).unwrap_or(u32::MAX),
            seq: r.try_get(2)?,
            action: r.try_get(3)?,
            msgfrom: r.try_get(4)?,
            tolist: r.try_get(5)?,
            msgtype: r.try_get(6)?,
            msgtime: r.try_get(7)?,
            text: r.try_get(8)?,
            sdkfield: r.try_get(9)?,
            msgdata: r.try_get(10)?,
            status: u8::try_from(r.try_get::<u64, _>(11)?).unwrap_or(u8::MAX),
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
        super::scan::messages_after!(self, super::scan::MYSQL, corpid, after_seq, limit, whole)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        self.adopt_corplist().await
    }

    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError> {
        if self.is_ensured(corpid) {
            return Ok(());
        }
        let _ddl = self.ddl_lock.lock().await;
        if self.is_ensured(corpid) {
            return Ok(());
        }
        let t = corpid.message_table();
        let cols = self.columns(&t).await?;
        if cols.is_empty() {
            sqlx::query(&message_ddl(&t)).execute(&self.pool).await?;
        } else if !(cols.contains("decrypt_error") && cols.contains("encrypt_chat_msg")) {
            self.upgrade_java_locked(corpid).await?;
        }
        sqlx::query(&media_ddl(&corpid.media_table())).execute(&self.pool).await?;
        self.ensured.lock().unwrap_or_else(|e| e.into_inner()).insert(corpid.clone());
        Ok(())
    }

    async fn migrate_java_corp_table(&self, corpid: &CorpId) -> Result<(), StoreError> {
        let _ddl = self.ddl_lock.lock().await;
        self.upgrade_java_locked(corpid).await
    }

    async fn lease_heartbeat(&self, holder: &str, ttl_ms: i64) -> Result<u32, StoreError> {
        leases::lease_heartbeat(&self.pool, None, holder, ttl_ms).await
    }

    async fn lease_leave(&self, holder: &str) -> Result<(), StoreError> {
        leases::lease_leave(&self.pool, None, holder).await
    }

    async fn lease_claim(&self, corpid: &CorpId, holder: &str, ttl_ms: i64) -> Result<Option<u64>, StoreError> {
        leases::lease_claim(&self.pool, None, corpid, holder, ttl_ms).await
    }

    async fn lease_renew_all(
        &self,
        holder: &str,
        leases: &[(CorpId, u64)],
        ttl_ms: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        leases::lease_renew_all(&self.pool, None, holder, leases, ttl_ms).await
    }

    async fn lease_release(&self, corpid: &CorpId, fence: &Fence) -> Result<(), StoreError> {
        leases::lease_release(&self.pool, None, corpid, fence).await
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
        // Values too large for a packet go to message_part (spill.rs), in this transaction.
        let (spilled, parts) = spill::spill(rows, &self.limits);
        let rows = spilled.as_deref().unwrap_or(rows);
        let mut out = BatchOutcome::default();
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
        sqlx::query(
            "INSERT INTO corp_cursor (corpid, seq, updated) VALUES (?, ?, CURRENT_TIMESTAMP) \
             ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq)), updated = CURRENT_TIMESTAMP",
        )
        .bind(corpid.as_str())
        .bind(new_cursor)
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
        let stored: Option<u64> = sqlx::query_scalar("SELECT CAST(seq AS UNSIGNED) FROM corp_cursor WHERE corpid = ?")
            .bind(corpid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let t = corpid.message_table();
        let max: Option<u64> = if self.table_exists(&t).await? {
            sqlx::query_scalar(&format!("SELECT CAST(MAX(seq) AS UNSIGNED) FROM `{t}`")).fetch_one(&self.pool).await?
        } else {
            None
        };
        Ok(stored.unwrap_or(0).max(max.unwrap_or(0)))
    }

    async fn list_corps(&self) -> Result<Vec<CorpRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT corpid, secret, corpname, prikey, CAST(limits AS SIGNED), CAST(timeout AS SIGNED), \
             CAST(status AS SIGNED), CAST(`update` AS SIGNED) FROM corplist ORDER BY id",
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
        sqlx::query(
            "INSERT INTO corplist (corpid, secret, corpname, prikey, limits, timeout, status, `update`) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE secret = VALUES(secret), \
             corpname = VALUES(corpname), prikey = VALUES(prikey), limits = VALUES(limits), \
             timeout = VALUES(timeout), status = VALUES(status), `update` = VALUES(`update`)",
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
        sqlx::query("UPDATE corplist SET status = ? WHERE corpid = ?")
            .bind(status)
            .bind(corpid.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_corp_key(&self, corpid: &CorpId, publickey_ver: u32, prikey: &Secret) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO corp_keys (corpid, publickey_ver, prikey) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE prikey = VALUES(prikey)",
        )
        .bind(corpid.as_str())
        .bind(publickey_ver)
        .bind(prikey.expose())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_update_flag(&self, corpid: &CorpId) -> Result<(), StoreError> {
        sqlx::query("UPDATE corplist SET `update` = 0 WHERE corpid = ?")
            .bind(corpid.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn undecrypted(&self, corpid: &CorpId, after_id: u64, limit: u32) -> Result<Vec<Undecrypted>, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        let rows = sqlx::query(&format!(
            "SELECT CAST(id AS UNSIGNED), CAST(seq AS UNSIGNED), msgid, CAST(publickey_ver AS UNSIGNED), \
             COALESCE(encrypt_random_key, ''), encrypt_chat_msg FROM `{}` \
             WHERE id > ? AND decrypt_error IS NOT NULL AND encrypt_chat_msg IS NOT NULL ORDER BY id LIMIT ?",
            corpid.message_table()
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Undecrypted> = rows
            .iter()
            .map(|r| {
                Ok(Undecrypted {
                    id: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    msgid: r.try_get(2)?,
                    publickey_ver: u32::try_from(r.try_get::<u64, _>(3)?).unwrap_or(u32::MAX),
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
        let n: u64 = sqlx::query_scalar(&format!(
            "SELECT CAST(COUNT(*) AS UNSIGNED) FROM `{}` WHERE decrypt_error IS NOT NULL AND encrypt_chat_msg IS NULL \
             AND decrypt_error NOT LIKE 'not stored as parsed: %'",
            corpid.message_table()
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
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
        let mut tx = self.pool.begin().await?;
        // Lease fencing goes here as well (see write_batch).
        let updated = sqlx::query(&format!(
            "UPDATE `{t}` SET publickey_ver = ?, action = ?, msgfrom = ?, tolist = ?, msgtype = ?, msgtime = ?, \
             text = ?, sdkfield = ?, msgdata = ?, status = ?, roomid = ?, decrypt_error = ?, \
             encrypt_random_key = ?, encrypt_chat_msg = ? WHERE id = ?"
        ))
        .bind(row.publickey_ver)
        .bind(&row.action)
        .bind(&row.msgfrom)
        .bind(&row.tolist)
        .bind(&row.msgtype)
        .bind(row.msgtime)
        .bind(&row.text)
        .bind(&row.sdkfield)
        .bind(&row.msgdata)
        .bind(row.status)
        .bind(&row.roomid)
        .bind(row.decrypt_error.as_deref())
        .bind(row.encrypt_random_key.as_deref())
        .bind(row.encrypt_chat_msg.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NoSuchRow { table: t, id });
        }
        let (msgid, seq): (String, u64) =
            sqlx::query_as(&format!("SELECT msgid, CAST(seq AS UNSIGNED) FROM `{t}` WHERE id = ?"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        // The old row's parts (its ciphertext, say) give way to the new row's.
        sqlx::query("DELETE FROM message_part WHERE corpid = ? AND seq = ?")
            .bind(corpid.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        insert_parts(&mut tx, corpid, &parts, Some(seq)).await?;
        let items: Vec<MediaInsert<'_>> =
            media.iter().map(|m| MediaInsert::pending(&msgid, seq, m).held_if(self.holds_media())).collect();
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
        media_jobs::claim_media(&self.pool, None, corpid, owner, limit, now).await
    }

    async fn finish_media(&self, corpid: &CorpId, job: &MediaJob, outcome: &MediaOutcome) -> Result<(), StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::finish_media(&self.pool, None, corpid, job, outcome).await
    }

    async fn recover_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        stale: Duration,
        max_attempts: u32,
    ) -> Result<MediaRecovery, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::recover_media(&self.pool, None, corpid, owner, stale, max_attempts).await
    }

    async fn requeue_media(&self, corpid: &CorpId, status: u8) -> Result<u64, StoreError> {
        self.ensure_corp_tables(corpid).await?;
        media_jobs::requeue_media(&self.pool, None, corpid, status).await
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
        media_jobs::release_held_media(&self.pool, None, corpid).await
    }

    fn hold_new_media(&self, hold: bool) {
        self.hold_media.store(hold, std::sync::atomic::Ordering::Relaxed);
    }
}

/// INSERT-or-ignore of `rows` into the message table `t`, in chunks: how many were inserted.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, MySql>,
    t: &str,
    rows: &[Row],
    budget: usize,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in chunks(rows, row_bytes, budget) {
        let mut qb = QueryBuilder::<MySql>::new(format!("INSERT IGNORE INTO `{t}` ({ROW_COLUMNS}) "));
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.msgid.as_str())
                .push_bind(r.publickey_ver)
                .push_bind(r.seq)
                .push_bind(r.action.as_str())
                .push_bind(r.msgfrom.as_str())
                .push_bind(r.tolist.as_str())
                .push_bind(r.msgtype.as_str())
                .push_bind(r.msgtime)
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

/// The parts of spilled values, one statement each (a part is at most a quarter of the packet);
/// under `seq` when given, else under each part's own. Parts already there stay (a re-pull).
async fn insert_parts(
    tx: &mut sqlx::Transaction<'_, MySql>,
    corpid: &CorpId,
    parts: &[Part<'_>],
    seq: Option<u64>,
) -> Result<(), StoreError> {
    for p in parts {
        sqlx::query("INSERT IGNORE INTO message_part (corpid, seq, col, part, data) VALUES (?, ?, ?, ?, ?)")
            .bind(corpid.as_str())
            .bind(seq.unwrap_or(p.seq))
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
    tx: &mut sqlx::Transaction<'_, MySql>,
    t: &str,
    rows: &[Row],
) -> Result<std::collections::HashMap<String, u64>, StoreError> {
    let mut out = std::collections::HashMap::new();
    for chunk in rows.chunks(500) {
        let mut qb =
            QueryBuilder::<MySql>::new(format!("SELECT msgid, CAST(seq AS UNSIGNED) FROM `{t}` WHERE msgid IN ("));
        let mut list = qb.separated(", ");
        for r in chunk {
            list.push_bind(r.msgid.as_str());
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut **tx).await? {
            out.insert(row.try_get(0)?, row.try_get::<u64, _>(1)?);
        }
    }
    Ok(out)
}
