//! [`MysqlStore`]: MySQL, MariaDB and TiDB through sqlx's native MySQL driver: what differs from
//! SQLite (see `sql.rs` for what does not): connecting (transaction bounds, `max_allowed_packet`),
//! the per-corp DDL, the [`Dialect`] values, and the schema role with the adoption of a Java
//! `corplist` and the Java-table upgrade.
//!
//! Only portable MySQL is used (TiDB-friendly): `INSERT IGNORE`, `ON DUPLICATE KEY UPDATE`,
//! `information_schema`, multi-clause `ALTER TABLE`. Integers are read through `CAST(… AS
//! SIGNED|UNSIGNED)` so that the Java version's column types (INT, TINYINT(1), signed BIGINT)
//! decode like ours.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sqlx::{MySql, Row as _};

use super::batch::{clip, MediaInsert};
use super::sql::{Dialect, Flavor, SqlStore, Upsert};
use super::{CorpId, Limits, SchemaRepo, StoreError, JAVA_UNDECRYPTABLE, MEDIA_HELD};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The MySQL-family store.
pub type MysqlStore = SqlStore<MySql>;

/// MySQL's SQL. The same fields as `SQLITE` in `sqlite.rs`, by design: the two values are the whole
/// of what differs in the shared statements (`duplicates` pairs them by shape).
const MYSQL: Dialect = Dialect {
    name: "mysql",
    q: '`',
    insert_ignore: "INSERT IGNORE INTO",
    upsert_style: Upsert::DuplicateKey,
    int: "SIGNED",
    uint: "UNSIGNED",
    now: "NOW()",
    now_ms: "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
    stale: "claimed_at < NOW() - INTERVAL ? SECOND",
    for_update: " FOR UPDATE",
    lock_nowait: "SELECT corpid FROM corp_lease WHERE corpid = ? FOR UPDATE NOWAIT",
    table_exists: "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    cursor_upsert: "INSERT INTO corp_cursor (corpid, seq, updated) VALUES (?, ?, CURRENT_TIMESTAMP) \
                    ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq)), updated = CURRENT_TIMESTAMP",
    max_seq: |t| format!("SELECT CAST(MAX(seq) AS UNSIGNED) FROM {t}"),
    no_room: "(roomid = '' OR roomid IS NULL)",
};

impl Flavor for MySql {
    const SQL: Dialect = MYSQL;
    /// BIGINT UNSIGNED holds every u64.
    type U64 = u64;

    fn to_db(v: u64) -> u64 {
        v
    }

    fn from_db(v: u64) -> u64 {
        v
    }
}

/// The indexes of the review API's reads (review_read_sql.rs), added to older tables by
/// `ensure_corp_tables`: name and columns.
const REVIEW_INDEXES: [(&str, &str); 2] =
    [("idx_room_time", "roomid, msgtime, seq"), ("idx_room_from", "roomid, msgfrom, msgtime")];

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
  KEY idx_msgfrom (msgfrom),
  KEY idx_room_time (roomid, msgtime, seq),
  KEY idx_room_from (roomid, msgfrom, msgtime)
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
    /// is never logged nor kept with its password. `max_connections`: the pool size (at least 1).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let opts = MySqlConnectOptions::from_str(url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| Box::pin(async move { bound_transactions(conn).await }))
            .connect_with(opts)
            .await?;
        // The session value is what the server enforces on this daemon's packets.
        let packet: u64 =
            sqlx::query_scalar("SELECT CAST(@@session.max_allowed_packet AS UNSIGNED)").fetch_one(&pool).await?;
        tracing::debug!(max_allowed_packet = packet, "connected");
        Ok(Self::over(pool, url, Limits::mysql(packet), false))
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

    /// Adds the indexes of [`REVIEW_INDEXES`] that an older message table `t` lacks (the caller
    /// holds `ddl_lock`). One ALTER for all of them; InnoDB builds them online.
    async fn add_missing_indexes(&self, t: &str) -> Result<(), StoreError> {
        let have: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(t)
        .fetch_all(&self.pool)
        .await?;
        let missing: Vec<String> = REVIEW_INDEXES
            .iter()
            .filter(|(name, _)| !have.iter().any(|h| h == name))
            .map(|(name, cols)| format!("ADD KEY {name} ({cols})"))
            .collect();
        if !missing.is_empty() {
            tracing::info!(table = t, "adding the review indexes to {t}");
            sqlx::query(&format!("ALTER TABLE `{t}` {}", missing.join(", "))).execute(&self.pool).await?;
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
                    status: if j.status == 1 && self.holds_media() { MEDIA_HELD } else { j.status },
                    path: (j.status == 3 && !j.media_path.is_empty()).then_some(j.media_path.as_str()),
                })
                .collect();
            let mut conn = self.pool.acquire().await?;
            Self::insert_media(&mut conn, &m, &inserts, self.limits.statement_bytes()).await?;
        }
        // 5. The marker: from now on the table counts as upgraded.
        sqlx::query(&format!("ALTER TABLE `{t}` ADD COLUMN encrypt_chat_msg LONGTEXT NULL"))
            .execute(&self.pool)
            .await?;
        tracing::info!(corpid = %corpid, "upgraded the Java version's table {t}");
        Ok(())
    }
}

/// What the Java upgrade needs of a Java media row to create its media item.
struct JavaMedia {
    msgid: String,
    seq: u64,
    msgtype: String,
    sdkfield: String,
    msgdata: String,
    media_path: String,
    status: u8,
}

/// Owned fields of the media item created for a Java-era media row (item 0).
struct JavaMediaFields {
    kind: &'static str,
    md5: Option<String>,
    size: Option<u64>,
    ext: String,
    filename: Option<String>,
    play_length: Option<u32>,
}

impl JavaMedia {
    /// Reads what it can of the Java `msgdata` (the payload sub-object as JSON).
    fn fields(&self) -> JavaMediaFields {
        let v: serde_json::Value = serde_json::from_str(&self.msgdata).unwrap_or_default();
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let kind = match self.msgtype.as_str() {
            "image" => "image",
            "voice" => "voice",
            "video" => "video",
            "emotion" => "emotion",
            "meeting_voice_call" => "meeting_voice_call",
            "voip_doc_share" => "voip_doc_share",
            _ => "file",
        };
        let ext = match kind {
            "image" => "jpg".to_string(),
            "voice" | "meeting_voice_call" => "amr".to_string(),
            "video" => "mp4".to_string(),
            "emotion" => if n("type") == Some(2) { "png" } else { "gif" }.to_string(),
            _ => s("fileext").unwrap_or_default(),
        };
        JavaMediaFields {
            kind,
            md5: s("md5sum").filter(|m| m.len() <= 32),
            size: n("filesize").or_else(|| n("voice_size")).or_else(|| n("imagesize")),
            ext: clip(&ext, 16).to_string(),
            filename: s("filename").map(|f| clip(&f, 255).to_string()),
            play_length: n("play_length").and_then(|p| u32::try_from(p).ok()),
        }
    }
}

#[async_trait]
impl SchemaRepo for MysqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        self.adopt_corplist().await
    }

    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError> {
        let Some(_ddl) = self.ddl_unless_ensured(corpid).await else { return Ok(()) };
        let t = corpid.message_table();
        let cols = self.columns(&t).await?;
        if cols.is_empty() {
            sqlx::query(&message_ddl(&t)).execute(&self.pool).await?;
        } else {
            if !(cols.contains("decrypt_error") && cols.contains("encrypt_chat_msg")) {
                self.upgrade_java_locked(corpid).await?;
            }
            self.add_missing_indexes(&t).await?;
        }
        sqlx::query(&media_ddl(&corpid.media_table())).execute(&self.pool).await?;
        self.mark_ensured(corpid);
        Ok(())
    }

    async fn prepare_corp_tables(&self, _corpids: &[CorpId]) -> Result<(), StoreError> {
        // MySQL re-reads no schema per connection: each corp's first write makes its tables.
        Ok(())
    }

    async fn migrate_java_corp_table(&self, corpid: &CorpId) -> Result<(), StoreError> {
        let _ddl = self.ddl_lock.lock().await;
        self.upgrade_java_locked(corpid).await
    }
}
