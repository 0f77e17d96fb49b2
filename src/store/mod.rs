//! Storage: the [`Store`] trait and its two implementations, [`MysqlStore`] (MySQL, MariaDB,
//! TiDB) and [`SqliteStore`] (the embedded default).
//!
//! Tables (compatible with the Java version, `docs/java-version-schema.md`):
//! - `corplist`, `corp_keys`, `corp_cursor`: fixed, created by [`Store::migrate`] (sqlx
//!   migrations in `migrations/mysql` and `migrations/sqlite`); an existing Java `corplist` is
//!   adopted in place;
//! - `message_<corpid>` and `media_<corpid>`: one pair per corp, created on demand by
//!   [`Store::ensure_corp_tables`]. Their names are built only by [`CorpId`], whose constructor
//!   validates the corpid, so no SQL metacharacter ever reaches a statement.
//!
//! - `message_part`: values too large for one row within the database's packet limit (module
//!   `spill`: a marker in the message row, the value in parts here, same transaction).
//!
//! The batch write ([`Store::write_batch`]) is the heart of invariants 1 and 2: rows, media rows,
//! parts of oversized values and the cursor go in ONE transaction, statements cut by rows and
//! by bytes under the packet limit read at connect ([`Limits`]), inserts are idempotent
//! (`INSERT IGNORE` / `INSERT OR IGNORE` against unique `msgid`, `seq` and `(msgid, item)`), and
//! the cursor only moves forward.

mod inspect;
mod isolate;
mod lease_sql;
mod media_sql;
mod mysql;
mod scan;
mod spill;
mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::message::{MediaRef, Row};
pub use crate::secret::redact_url;
use crate::secret::Secret;
pub use inspect::{connect_read_only, inspect, Inspection};
pub use isolate::{quarantined, write_isolating, QUARANTINE_PREFIX};
pub use mysql::MysqlStore;
pub use spill::{marker, parse_marker, Limits, MARKER_PREFIX, PART_TABLE};
pub use sqlite::SqliteStore;

/// Longest corpid accepted: MySQL table names have at most 64 characters and the longest prefix
/// is `message_` (8). Real corpids have 18 characters.
pub const MAX_CORPID_LEN: usize = 56;

/// Rows per multi-row INSERT statement (16 parameters per message row: far below SQLite's 32,766
/// and MySQL's 65,535 bind parameters). The bytes per statement come from [`Limits`].
const CHUNK_ROWS: usize = 500;

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

/// A lease as held by one instance: the fencing check of every batch compares it with
/// `corp_lease` inside the batch transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The instance id.
    pub holder: String,
    /// The token of the claim (increases with every claim of the corp).
    pub token: u64,
}

/// One row of `corp_lease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The corp.
    pub corpid: String,
    /// Its holder (`""` = released).
    pub holder: String,
    /// The fencing token.
    pub token: u64,
    /// Milliseconds until expiry (negative: expired).
    pub expires_in_ms: i64,
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

/// A `corplist` row. `secret` and `prikey` never print themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpRow {
    /// Corp id (as stored; validate with [`CorpId::new`] before use).
    pub corpid: String,
    /// 会话存档 secret.
    pub secret: Secret,
    /// Corp name.
    pub corpname: String,
    /// Private key (any format `crypto` accepts).
    pub prikey: Secret,
    /// Records per pull.
    pub limits: i32,
    /// Pull timeout in seconds.
    pub timeout: i32,
    /// 1 enabled, 0 disabled.
    pub status: i32,
    /// 1 = changed, apply it.
    pub update: i32,
}

/// A row whose record could not be decrypted and whose ciphertext was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecrypted {
    /// `message_<corpid>.id`.
    pub id: u64,
    /// Record seq.
    pub seq: u64,
    /// Record msgid.
    pub msgid: String,
    /// Key version the record was encrypted for.
    pub publickey_ver: u32,
    /// The kept `encrypt_random_key`.
    pub encrypt_random_key: String,
    /// The kept `encrypt_chat_msg`.
    pub encrypt_chat_msg: String,
}

/// What a [`Store::write_batch`] inserted (duplicates excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Message rows inserted.
    pub inserted_rows: u64,
    /// Media rows inserted.
    pub inserted_media: u64,
}

/// A claimed media item: a `media_<corpid>` row now in status 2, with its record's `msgtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaJob {
    /// `media_<corpid>.id`.
    pub id: u64,
    /// The record's msgid.
    pub msgid: String,
    /// 0 = top-level attachment, 1.. = nested items.
    pub item: u32,
    /// The record's seq.
    pub seq: u64,
    /// The record's msgtime (ms; 0 when unknown): the date of the file's directory.
    pub msgtime: u64,
    /// [`MediaKind`](crate::message::MediaKind) as text (`image`, `voice`, …).
    pub kind: String,
    /// The id to download it with.
    pub sdkfileid: String,
    /// The MD5 the record announces (lowercase hex).
    pub md5: Option<String>,
    /// The size the record announces.
    pub size: Option<u64>,
    /// The extension the record suggests (safe for a path).
    pub ext: String,
    /// The record's (sanitised) filename.
    pub filename: Option<String>,
    /// `play_length` in seconds.
    pub play_length: Option<u32>,
    /// Attempts so far, this one included (counted when claimed: decision 2).
    pub attempts: u32,
}

/// How a media attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutcome {
    /// Downloaded and verified (status 3); `path` relative to the media root.
    Done {
        /// The original file.
        path: String,
        /// The MP3 beside it, when transcoded.
        transcoded_path: Option<String>,
        /// Why transcoding failed (the original is kept and the item is still done: decision 8).
        transcode_error: Option<String>,
    },
    /// A transient failure: back to status 1, not before `retry_at` (unix seconds).
    Retry {
        /// The SDK code or one of `media::codes`.
        code: i32,
        /// Unix seconds.
        retry_at: i64,
    },
    /// A permanent failure, or the attempts are exhausted: status 4.
    Failed {
        /// The SDK code or one of `media::codes`.
        code: i32,
    },
    /// Given back unfinished (graceful shutdown): status 1, and the attempt does not count.
    Released,
    /// A failure that says nothing about the item (the media root is read-only or full): back to
    /// status 1, not before `retry_at`, with the code, and the attempt does not count.
    Deferred {
        /// One of `media::codes` (local I/O).
        code: i32,
        /// Unix seconds.
        retry_at: i64,
    },
}

/// What [`Store::recover_media`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaRecovery {
    /// Items in status 2 put back to 1.
    pub requeued: u64,
    /// Items in status 2 whose attempts were exhausted, failed instead (poison pills).
    pub failed: u64,
}

/// One line of [`Store::media_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCount {
    /// Media kind.
    pub kind: String,
    /// Status 1..=4.
    pub status: u8,
    /// Items.
    pub count: u64,
}

/// `media_code` of an item failed because its attempts ran out while it was in flight (the
/// process died during the attempt: decision 2).
pub const MEDIA_CODE_ATTEMPTS_EXHAUSTED: i32 = 90_003;

/// A media row to insert: `(msgid, seq, item)` of the record it belongs to.
pub type MediaItem = (String, u64, MediaRef);

/// The storage layer. Object safe: the daemon holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `"mysql"` or `"sqlite"`.
    fn dialect(&self) -> &'static str;

    /// The byte limits this store cuts its statements by (from `max_allowed_packet`, read at
    /// connect, on MySQL).
    fn limits(&self) -> Limits;

    /// The row of record `seq` with every value whole (oversized values put back together from
    /// `message_part`); `None` when there is no such row. Use it wherever a stored record is
    /// read back.
    async fn read_message(&self, corpid: &CorpId, seq: u64) -> Result<Option<Row>, StoreError>;

    /// Up to `limit` rows of `message_<corpid>` with `seq > after_seq`, by seq, for derived data
    /// (the search index): whole as [`Store::read_message`] gives them with `whole`, else only
    /// `msgid` and `seq` (the other fields empty). `None` when the corp has no message table
    /// (never created, or dropped); unlike the other methods this one never creates it.
    async fn messages_after(
        &self,
        corpid: &CorpId,
        after_seq: u64,
        limit: u32,
        whole: bool,
    ) -> Result<Option<Vec<Row>>, StoreError>;

    /// Creates or adopts the fixed tables (`corplist`, `corp_keys`, `corp_cursor`). Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A round trip to the database (`SELECT 1`), for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates `message_<corpid>` and `media_<corpid>` if missing (upgrading a Java-created
    /// message table in place, MySQL only). Cached per corp: cheap to call before every batch.
    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError>;

    /// Upgrades a Java-created `message_<corpid>` (ARCHITECTURE.md decision 9). Called by
    /// [`Store::ensure_corp_tables`]; a no-op on an already upgraded or new table.
    async fn migrate_java_corp_table(&self, corpid: &CorpId) -> Result<(), StoreError>;

    /// ONE transaction: insert `rows` and `media` (ignoring duplicates), then move the corp's
    /// cursor forward to `new_cursor` (never backward). Ensures the corp tables first.
    async fn write_batch(
        &self,
        corpid: &CorpId,
        rows: &[Row],
        media: &[MediaItem],
        new_cursor: u64,
    ) -> Result<BatchOutcome, StoreError> {
        self.write_batch_fenced(corpid, rows, media, new_cursor, None).await
    }

    /// [`Store::write_batch`], and with a `fence` the transaction first checks that the corp's
    /// lease is still `fence`'s ([`StoreError::Fenced`] and nothing written otherwise).
    async fn write_batch_fenced(
        &self,
        corpid: &CorpId,
        rows: &[Row],
        media: &[MediaItem],
        new_cursor: u64,
        fence: Option<&Fence>,
    ) -> Result<BatchOutcome, StoreError>;

    /// Announces this instance for `ttl_ms` more; returns the number of live instances (≥ 1).
    async fn lease_heartbeat(&self, holder: &str, ttl_ms: i64) -> Result<u32, StoreError>;

    /// This instance leaves (graceful shutdown): it no longer counts as live.
    async fn lease_leave(&self, holder: &str) -> Result<(), StoreError>;

    /// Takes `corpid` for `ttl_ms` if it is free, expired or already `holder`'s: the new fencing
    /// token, or `None` when another instance holds it.
    async fn lease_claim(&self, corpid: &CorpId, holder: &str, ttl_ms: i64) -> Result<Option<u64>, StoreError>;

    /// Extends every lease of `leases` (corp, token) still held by `holder` in one statement;
    /// returns every `(corpid, token)` the holder holds afterwards (a lease taken over is
    /// missing or has another token).
    async fn lease_renew_all(
        &self,
        holder: &str,
        leases: &[(CorpId, u64)],
        ttl_ms: i64,
    ) -> Result<Vec<(String, u64)>, StoreError>;

    /// Gives a lease back (a no-op when it is no longer ours).
    async fn lease_release(&self, corpid: &CorpId, fence: &Fence) -> Result<(), StoreError>;

    /// Every lease (for `status` and metrics).
    async fn lease_list(&self) -> Result<Vec<LeaseRow>, StoreError>;

    /// Where to resume: max(`corp_cursor.seq`, MAX(seq) of `message_<corpid>`), 0 for a new corp.
    async fn cursor(&self, corpid: &CorpId) -> Result<u64, StoreError>;

    /// Every `corplist` row.
    async fn list_corps(&self) -> Result<Vec<CorpRow>, StoreError>;

    /// Every `corp_keys` row: `(corpid, publickey_ver, prikey)`.
    async fn list_corp_keys(&self) -> Result<Vec<(String, u32, Secret)>, StoreError>;

    /// Inserts or replaces a `corplist` row (by corpid; the corpid is validated).
    async fn upsert_corp(&self, corp: &CorpRow) -> Result<(), StoreError>;

    /// Sets `corplist.status` (1 enabled, 0 disabled).
    async fn set_corp_status(&self, corpid: &CorpId, status: i32) -> Result<(), StoreError>;

    /// Inserts or replaces a key version of a corp.
    async fn put_corp_key(&self, corpid: &CorpId, publickey_ver: u32, prikey: &Secret) -> Result<(), StoreError>;

    /// Sets `corplist.update` back to 0 once a change was applied.
    async fn clear_update_flag(&self, corpid: &CorpId) -> Result<(), StoreError>;

    /// Up to `limit` rows with a decrypt error and kept ciphertext, with `id > after_id`, by id.
    async fn undecrypted(&self, corpid: &CorpId, after_id: u64, limit: u32) -> Result<Vec<Undecrypted>, StoreError>;

    /// How many rows have a decrypt error but no kept ciphertext (the Java version's `解密失败`
    /// rows): `redecrypt` can never recover them and only reports their number.
    async fn count_unrecoverable(&self, corpid: &CorpId) -> Result<u64, StoreError>;

    /// ONE transaction: overwrite row `id` with the decrypted `row` (its msgid and seq stay;
    /// `decrypt_error`, `encrypt_random_key`, `encrypt_chat_msg` take the row's values, so pass
    /// `None` to clear them) and insert its media rows.
    async fn replace_decrypted(
        &self,
        corpid: &CorpId,
        id: u64,
        row: &Row,
        media: &[MediaRef],
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` pending media items (status 1, `retry_at <= now`), oldest first:
    /// each goes to status 2 with `claimed_by = owner`, `claimed_at` = now and its attempt
    /// counter incremented BEFORE the download starts (decision 2). Safe against other
    /// instances: an item is claimed by exactly one caller.
    async fn claim_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        limit: u32,
        now: i64,
    ) -> Result<Vec<MediaJob>, StoreError>;

    /// Records how an attempt ended (ONE transaction), releasing the claim, and mirrors status,
    /// `media_code` and `media_path` into the message row when this is the record's first item
    /// (`media_code` there is 1 on success, as the Java version wrote it).
    async fn finish_media(&self, corpid: &CorpId, job: &MediaJob, outcome: &MediaOutcome) -> Result<(), StoreError>;

    /// Start-up recovery: items in status 2 claimed by `owner`, or by anyone longer than `stale`
    /// ago, go back to 1; those among them with `attempts >= max_attempts` fail instead
    /// ([`MEDIA_CODE_ATTEMPTS_EXHAUSTED`]).
    async fn recover_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        stale: std::time::Duration,
        max_attempts: u32,
    ) -> Result<MediaRecovery, StoreError>;

    /// Puts every item in `status` (normally 4) back to 1 with a fresh attempt counter; returns
    /// how many.
    async fn requeue_media(&self, corpid: &CorpId, status: u8) -> Result<u64, StoreError>;

    /// Item counts by kind and status.
    async fn media_stats(&self, corpid: &CorpId) -> Result<Vec<MediaCount>, StoreError>;

    /// Done items (status 3) whose transcode was cut off (no `transcoded_path`, `transcode_error`
    /// = `marker`), each with its `path`, by id.
    async fn interrupted_transcodes(
        &self,
        corpid: &CorpId,
        marker: &str,
    ) -> Result<Vec<(MediaJob, String)>, StoreError>;

    /// Items held ([`MEDIA_HELD`]) become pending; returns how many.
    async fn release_held_media(&self, corpid: &CorpId) -> Result<u64, StoreError>;

    /// With `true`, the media rows inserted from now on (batches, `redecrypt`) are held
    /// ([`MEDIA_HELD`]) instead of pending: the daemon runs with `[media] enabled = false`.
    fn hold_new_media(&self, hold: bool);
}

/// `media_<corpid>.status` of an item stored while media was off (`[media] enabled = false`):
/// kept with everything needed to download it, but not pending, so nothing claims it and no
/// backlog shows. The media scheduler makes such items pending (1) when it starts with media on
/// ([`Store::release_held_media`]). The message row has status 1 meanwhile, as the Java version
/// left a record whose media was not downloaded.
pub const MEDIA_HELD: u8 = 0;

/// Connects to the database named by `url`: `mysql://…` or `mariadb://…` (MySQL, MariaDB,
/// TiDB), `sqlite://path` or `sqlite::memory:`. Does not migrate: call [`Store::migrate`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = url.strip_prefix("mariadb://") {
        Ok(Arc::new(MysqlStore::connect(&format!("mysql://{rest}")).await?))
    } else if url.starts_with("mysql://") {
        Ok(Arc::new(MysqlStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Splits `items` into chunks of at most [`CHUNK_ROWS`] items and `budget` bytes (an item
/// larger than the budget alone).
fn chunks<T>(items: &[T], size: impl Fn(&T) -> usize, budget: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if i > start && (i - start >= CHUNK_ROWS || bytes + s > budget) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn row_bytes(r: &Row) -> usize {
    r.msgid.len()
        + r.action.len()
        + r.msgfrom.len()
        + r.tolist.len()
        + r.msgtype.len()
        + r.text.len()
        + r.sdkfield.len()
        + r.msgdata.len()
        + r.roomid.len()
        + r.decrypt_error.as_ref().map_or(0, String::len)
        + r.encrypt_random_key.as_ref().map_or(0, String::len)
        + r.encrypt_chat_msg.as_ref().map_or(0, String::len)
        + 64
}

/// Rows of a batch whose msgid is already stored under another seq, renamed so that they are
/// stored too, with the media list to insert in their place; `None` when there is no such row.
///
/// WeCom msgids are unique, so a second record under a stored msgid comes from a broken or
/// hostile server; dropping it (what INSERT IGNORE alone would do) would lose a message. The
/// renamed row gets `msgid~dup<seq>` (cut to fit the column) and a `decrypt_error` naming the
/// first seq; its media items follow it. A record stored again at the SAME seq (a re-pull) is
/// not a duplicate. `stored` maps the batch's msgids to the seq stored under each.
pub(crate) fn renamed_duplicates(
    rows: &[Row],
    media: &[MediaItem],
    stored: &std::collections::HashMap<String, u64>,
) -> Option<(Vec<Row>, Vec<MediaItem>)> {
    let mut renamed: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let Some(&first) = stored.get(&r.msgid) else { continue };
        if first == r.seq {
            continue;
        }
        let suffix = format!("~dup{}", r.seq);
        let keep = MAX_MSGID_CHARS.saturating_sub(suffix.chars().count());
        let msgid: String = r.msgid.chars().take(keep).chain(suffix.chars()).collect();
        let note = format!("duplicate msgid {}: first stored at seq {first}, this record kept as {msgid}", r.msgid);
        let mut row = r.clone();
        row.decrypt_error = Some(match &r.decrypt_error {
            Some(e) => format!("{e}; {note}"),
            None => note,
        });
        row.msgid.clone_from(&msgid);
        renamed.insert(r.seq, msgid);
        out.push(row);
    }
    if out.is_empty() {
        return None;
    }
    let media = media
        .iter()
        .map(|(id, seq, m)| match renamed.get(seq) {
            Some(new) => (new.clone(), *seq, m.clone()),
            None => (id.clone(), *seq, m.clone()),
        })
        .collect();
    Some((out, media))
}

/// Longest msgid the schema holds (VARCHAR(128)); a longer one is refused rather than truncated
/// (MySQL's INSERT IGNORE would truncate it silently and break uniqueness).
const MAX_MSGID_CHARS: usize = 128;

fn check_rows(rows: &[Row], media: &[MediaItem]) -> Result<(), StoreError> {
    let long =
        rows.iter().map(|r| &r.msgid).chain(media.iter().map(|m| &m.0)).find(|id| id.chars().count() > MAX_MSGID_CHARS);
    match long {
        Some(id) => Err(StoreError::InvalidData(format!(
            "msgid of {} characters (at most {MAX_MSGID_CHARS}): {}…",
            id.chars().count(),
            id.chars().take(40).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// `s` cut to at most `max` characters (for short descriptive columns such as ext, filename).
fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One media row to insert, from a [`MediaItem`] or from a Java-era message row.
struct MediaInsert<'a> {
    msgid: &'a str,
    seq: u64,
    item: u32,
    kind: &'a str,
    sdkfileid: &'a str,
    md5: Option<&'a str>,
    size: Option<u64>,
    ext: &'a str,
    filename: Option<&'a str>,
    play_length: Option<u32>,
    status: u8,
    path: Option<&'a str>,
}

impl<'a> MediaInsert<'a> {
    /// A pending (status 1) media row.
    fn pending(msgid: &'a str, seq: u64, m: &'a MediaRef) -> Self {
        Self {
            msgid,
            seq,
            item: m.item,
            kind: m.kind.as_str(),
            sdkfileid: &m.sdkfileid,
            md5: m.md5sum.as_deref().filter(|s| s.len() <= 32),
            size: m.size,
            ext: clip(&m.ext_hint, 16),
            filename: m.filename.as_deref().map(|f| clip(f, 255)),
            play_length: m.play_length,
            status: 1,
            path: None,
        }
    }

    /// Held ([`MEDIA_HELD`]) instead of pending when `hold`.
    fn held_if(mut self, hold: bool) -> Self {
        if hold {
            self.status = MEDIA_HELD;
        }
        self
    }

    fn bytes(&self) -> usize {
        self.msgid.len() + self.sdkfileid.len() + self.filename.map_or(0, str::len) + self.path.map_or(0, str::len) + 64
    }
}

const MEDIA_COLUMNS: &str = "msgid, item, seq, kind, sdkfileid, md5, size, ext, filename, play_length, status, path";

const ROW_COLUMNS: &str = "msgid, publickey_ver, seq, action, msgfrom, tolist, msgtype, msgtime, text, sdkfield, \
     msgdata, status, roomid, decrypt_error, encrypt_random_key, encrypt_chat_msg";

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

/// Text written into `decrypt_error` of the Java version's `解密失败` rows.
pub const JAVA_UNDECRYPTABLE: &str = "Java version could not decrypt (no ciphertext kept)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_renamed_within_the_column_and_take_their_media() {
        let row = |msgid: &str, seq: u64| Row { msgid: msgid.into(), seq, ..Row::default() };
        let media_ref = MediaRef {
            item: 0,
            kind: crate::message::MediaKind::Image,
            sdkfileid: "F".into(),
            md5sum: None,
            size: None,
            ext_hint: String::new(),
            filename: None,
            play_length: None,
        };
        let long = "m".repeat(MAX_MSGID_CHARS);
        let rows = [row("a", 1), row("a", 2), row(&long, 3), row("b", 4)];
        let media = vec![("a".to_string(), 2, media_ref.clone()), ("b".to_string(), 4, media_ref)];
        let stored = std::collections::HashMap::from([("a".to_string(), 1), (long.clone(), 9)]);
        let (dups, media) = renamed_duplicates(&rows, &media, &stored).unwrap();
        let ids: Vec<&str> = dups.iter().map(|r| r.msgid.as_str()).collect();
        let cut = format!("{}~dup3", &long[..MAX_MSGID_CHARS - 5]);
        assert_eq!(ids, ["a~dup2", cut.as_str()]);
        assert_eq!(cut.chars().count(), MAX_MSGID_CHARS);
        assert!(dups[0].decrypt_error.as_deref().is_some_and(|e| e.contains("first stored at seq 1")));
        let media_ids: Vec<(&str, u64)> = media.iter().map(|(id, seq, _)| (id.as_str(), *seq)).collect();
        assert_eq!(media_ids, [("a~dup2", 2), ("b", 4)]);
        // Nothing stored under another seq: nothing to do.
        assert!(renamed_duplicates(&rows[..1], &[], &std::collections::HashMap::from([("a".into(), 1)])).is_none());
    }

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

    #[test]
    fn chunking_respects_count_and_bytes() {
        let v: Vec<usize> = vec![1; 1201];
        let c = chunks(&v, |x| *x, 1 << 20);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![500, 500, 201]);
        let big: Vec<usize> = vec![1000; 3];
        assert_eq!(chunks(&big, |x| *x, 1000).len(), 3);
        assert_eq!(chunks(&big, |x| *x, 2000).len(), 2);
        assert!(chunks::<usize>(&[], |x| *x, 1).is_empty());
        assert_eq!(clip("ab中文", 3), "ab中");
        assert_eq!(clip("ab", 3), "ab");
    }
}
