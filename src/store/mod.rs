//! Storage: the [`Store`] trait and its two implementations, [`MysqlStore`] (MySQL, MariaDB,
//! TiDB) and [`SqliteStore`] (the embedded default).
//!
//! `Store` is the sum of small role traits (module `repo`): [`SchemaRepo`], [`BatchRepo`],
//! [`CorpRepo`], [`MediaRepo`], [`LeaseRepo`], [`ReviewRepo`], [`AccessLogRepo`]. Both stores are
//! one type, [`SqlStore`], over a sqlx database: each role except the schema is written once
//! (`batch_sql`, `corp_sql`, `media_sql`, `lease_sql`, `review_sql`, `access_log_sql`) over the
//! SQL dialect (`sql`), and the dialect files (`mysql`,
//! `sqlite`) keep only what differs: connecting, DDL, the schema role and the Java upgrade.
//!
//! Tables (compatible with the Java version, `docs/java-version-schema.md`):
//! - `corplist`, `corp_keys`, `corp_cursor`: fixed, created by [`SchemaRepo::migrate`] (sqlx
//!   migrations in `migrations/mysql` and `migrations/sqlite`); an existing Java `corplist` is
//!   adopted in place;
//! - `message_<corpid>` and `media_<corpid>`: one pair per corp, created on demand by
//!   [`SchemaRepo::ensure_corp_tables`]. Their names are built only by [`CorpId`], whose
//!   constructor validates the corpid, so no SQL metacharacter ever reaches a statement.
//!
//! - `review_user`, `review_grant`, `review_session`, `access_log`, `access_log_head`: the review
//!   API's users, what they may read, their sessions and the hash-chained access log
//!   (`crate::review`).
//! - `alert_outbox`: the alerts waiting to be sent and their delivery results (`crate::alerts`,
//!   role [`AlertRepo`] in `alert_sql`), fed from `rule_hit`.
//! - `reply_cursor`, `reply_open`, `reply_activity`, `reply_sample`, `reply_daily`: the reply-time
//!   checks' state and daily statistics (`crate::quality`, role [`ReplyTimeRepo`], `reply_sql`).
//! - `message_part`: values too large for one row within the database's packet limit (module
//!   `spill`: a marker in the message row, the value in parts here, same transaction).
//!
//! The batch write ([`BatchRepo::write_batch`]) is the heart of invariants 1 and 2: rows, media
//! rows, parts of oversized values and the cursor go in ONE transaction, statements cut by rows
//! and by bytes under the packet limit read at connect ([`Limits`]), inserts are idempotent
//! (`INSERT IGNORE` / `INSERT OR IGNORE` against unique `msgid`, `seq` and `(msgid, item)`), and
//! the cursor only moves forward. The rule hits of the batch's records ([`BatchHits`], module
//! `rules_repo`) go into `rule_hit` in the same transaction
//! ([`BatchRepo::write_batch_with_hits`]).

mod access_log_sql;
mod alert_repo;
mod alert_sql;
mod batch;
mod batch_sql;
mod callback_repo;
mod callback_sql;
mod completeness_sql;
mod corp_sql;
mod inspect;
mod isolate;
mod lease_sql;
mod media_sql;
mod mysql;
mod reply_repo;
mod reply_sql;
mod repo;
mod review_read_sql;
mod review_repo;
mod review_sql;
mod rules_repo;
mod rules_sql;
mod spill;
mod sql;
mod sqlite;
mod wecom_repo;
mod wecom_sql;

use std::fmt;
use std::sync::Arc;

pub use crate::message::{MediaRef, Row};
pub use crate::secret::redact_url;
pub use alert_repo::{
    AlertHit, AlertOutcome, AlertRepo, DispatchOutcome, OutboxCount, OutboxItem, Route, OUTBOX_FAILED, OUTBOX_PENDING,
    OUTBOX_SENDING, OUTBOX_SENT,
};
pub use callback_repo::{CallbackRepo, CorpCallbackRow};
pub use completeness_sql::{
    CompletenessRepo, ConsentRow, FailedMediaCount, Participation, SeqBounds, SeqGapScan, UndecryptedCount,
};
pub use inspect::{connect_read_only, inspect, Inspection};
pub use isolate::{quarantined, write_isolating, QUARANTINE_PREFIX};
pub use mysql::MysqlStore;
pub use reply_repo::{
    OpenRun, ReplyActivity, ReplyCursor, ReplyDaily, ReplyDelta, ReplyHit, ReplySample, ReplyTimeRepo,
};
pub use reply_sql::KIND as REPLY_TIME_KIND;
pub use repo::{
    BatchOutcome, BatchRepo, CorpRepo, CorpRow, Fence, LeaseRepo, LeaseRow, MediaCount, MediaItem, MediaJob,
    MediaOutcome, MediaRecovery, MediaRepo, SchemaRepo, Store, Undecrypted, MEDIA_CODE_ATTEMPTS_EXHAUSTED, MEDIA_HELD,
};
pub use review_repo::{
    AccessEntry, AccessLogHead, AccessLogRepo, ConversationSel, Direction, MediaRow, MessageGroup, NewAccessEntry,
    Participants, ReviewGrant, ReviewReadRepo, ReviewRepo, ReviewSession, ReviewUser, ReviewUserChange, Seal,
    TimelinePos, UserChangeOutcome,
};
pub use rules_repo::{BatchHits, RevokeCheck, RuleDefRow, RuleHit, RuleRepo, StoredHit};
pub use spill::{marker, parse_marker, Limits, MARKER_PREFIX, PART_TABLE};
pub use sql::SqlStore;
pub use sqlite::SqliteStore;
pub use wecom_repo::{Consent, ConsentCheck, PermitUser, RoomInfo, WecomRepo, WecomRoom, WecomRoomMember};

/// Longest corpid accepted: MySQL table names have at most 64 characters and the longest prefix
/// is `message_` (8). Real corpids have 18 characters.
pub const MAX_CORPID_LEN: usize = 56;

/// A validated corpid (`^[A-Za-z0-9_]{1,56}$`); the only way to build a per-corp table name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorpId(String);

impl CorpId {
    /// Validates `corpid`: 1 to [`MAX_CORPID_LEN`] ASCII letters, digits or `_`.
    pub fn new(corpid: &str) -> Result<Self, StoreError> {
        let ok = !corpid.is_empty()
            && corpid.len() <= MAX_CORPID_LEN
            && corpid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(corpid.to_string()))
        } else {
            Err(StoreError::InvalidCorpId(corpid.chars().take(80).collect()))
        }
    }

    /// The corpid.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `message_<corpid>` (unquoted; safe to quote with backticks or double quotes).
    pub fn message_table(&self) -> String {
        format!("message_{}", self.0)
    }

    /// `media_<corpid>` (unquoted; safe to quote with backticks or double quotes).
    pub fn media_table(&self) -> String {
        format!("media_{}", self.0)
    }
}

impl fmt::Debug for CorpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorpId({})", self.0)
    }
}

impl fmt::Display for CorpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the storage layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The corpid is not `^[A-Za-z0-9_]{1,56}$`; it never reaches SQL.
    #[error("invalid corpid {0:?}: expected 1 to 56 ASCII letters, digits or '_'")]
    InvalidCorpId(String),
    /// The URL scheme is none of `mysql://`, `mariadb://`, `sqlite://`, `sqlite::memory:`.
    /// Holds the URL with its password redacted.
    #[error("unsupported database URL {0} (expected mysql://, mariadb://, sqlite:// or sqlite::memory:)")]
    UnsupportedUrl(String),
    /// Data the schema cannot hold without losing information (e.g. a msgid over 128 chars).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A row id that does not exist (e.g. in `replace_decrypted`).
    #[error("{table} has no row with id {id}")]
    NoSuchRow {
        /// Table name.
        table: String,
        /// The id asked for.
        id: u64,
    },
    /// Applying the sqlx migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any error from the database or the driver.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The batch was not written: another instance holds the corp's lease now.
    #[error("lease of {corpid} lost: expected holder#token {expected}, the database has {found}")]
    Fenced {
        /// The corp.
        corpid: String,
        /// This writer's `holder#token`.
        expected: String,
        /// What `corp_lease` says.
        found: String,
    },
}

impl StoreError {
    /// True for transient failures worth retrying the same operation for: connection lost,
    /// pool timeout, deadlock, lock wait timeout, SQLite busy/locked, TiDB write conflicts.
    /// Schema, constraint and validation errors are false.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => sqlx_retryable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_retryable(e),
            _ => false,
        }
    }
}

/// True when a `NOWAIT` lock could not be had at once (MariaDB 1205, MySQL 3572).
pub(crate) fn lock_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|my| matches!(my.number(), 1205 | 3572)),
        _ => false,
    }
}

fn sqlx_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // 1205 lock wait timeout, 1213 deadlock, 1040 too many connections, 1053 server
                // shutdown, 1927 connection killed (MariaDB), 2006/2013 server gone / lost;
                // TiDB: 8022 commit failed, 8028 schema changed, 9001-9007 PD/TiKV busy,
                // region unavailable, write conflict.
                return matches!(
                    my.number(),
                    1040 | 1053 | 1205 | 1213 | 1927 | 2006 | 2013 | 8022 | 8028 | 9001..=9007
                ) || my.code() == Some("40001");
            }
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result code; the primary code is its low byte: 5 BUSY, 6 LOCKED.
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                return matches!(code & 0xff, 5 | 6);
            }
            db.code().as_deref() == Some("40001")
        }
        _ => false,
    }
}

/// The database file of a `sqlite:` URL; `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr as _;
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return None;
    }
    sqlx::sqlite::SqliteConnectOptions::from_str(url).ok().map(|o| o.get_filename().to_path_buf())
}

/// Connects to the database named by `url`: `mysql://…` or `mariadb://…` (MySQL, MariaDB,
/// TiDB), `sqlite://path` or `sqlite::memory:`, with a pool of `max_connections` (`[database]
/// max_connections`; at least 1, and always 1 for an in-memory SQLite database). Does not
/// migrate: call [`SchemaRepo::migrate`].
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = url.strip_prefix("mariadb://") {
        Ok(Arc::new(MysqlStore::connect(&format!("mysql://{rest}"), max_connections).await?))
    } else if url.starts_with("mysql://") {
        Ok(Arc::new(MysqlStore::connect(url, max_connections).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Text written into `decrypt_error` of the Java version's `解密失败` rows.
pub const JAVA_UNDECRYPTABLE: &str = "Java version could not decrypt (no ciphertext kept)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpid_validation() {
        assert!(CorpId::new("ww1234567890abcdef").is_ok());
        assert!(CorpId::new("A_b_9").is_ok());
        for bad in ["", "ww'; DROP TABLE x;--", "ww-1", "ww 1", "ww`x", "ww\"x", "ww.x", "中文", &"a".repeat(57)] {
            assert!(matches!(CorpId::new(bad), Err(StoreError::InvalidCorpId(_))), "{bad:?}");
        }
        let c = CorpId::new("wwabc").unwrap();
        assert_eq!((c.message_table().as_str(), c.media_table().as_str()), ("message_wwabc", "media_wwabc"));
    }

    #[test]
    fn retryable_classification() {
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(StoreError::Db(sqlx::Error::Io(std::io::Error::other("reset"))).is_retryable());
        assert!(!StoreError::Db(sqlx::Error::RowNotFound).is_retryable());
        assert!(!StoreError::InvalidCorpId("x".into()).is_retryable());
        assert!(!StoreError::InvalidData("x".into()).is_retryable());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("mysql://u:p%40ss@h:3306/db"), "mysql://u:***@h:3306/db");
        assert_eq!(redact_url("mysql://u@h/db?socket=/x"), "mysql://u@h/db?socket=/x");
        assert_eq!(redact_url("mysql://h/db?user=a&password=zz"), "mysql://h/db?user=a&password=***");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert!(!redact_url("mariadb://root:hunter2@x/y").contains("hunter2"));
    }
}
