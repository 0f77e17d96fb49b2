//! The storage roles, pict-rs style: small traits, one per concern, combined into [`Store`]
//! (which adds the database itself: dialect, limits, ping), with the rows they take and give.
//!
//! - [`SchemaRepo`]: migrations, per-corp tables and the Java upgrade: what differs between the
//!   dialects, implemented in `mysql.rs`/`sqlite.rs`;
//! - [`BatchRepo`]: batches, the cursor and reading or rewriting stored records (`batch_sql`);
//! - [`CorpRepo`]: `corplist` and `corp_keys` (`corp_sql`);
//! - [`MediaRepo`]: the media jobs of `media_<corpid>` (`media_sql`);
//! - [`LeaseRepo`]: corp leases and fencing (`lease_sql`);
//! - the review API's roles, declared in `review_repo.rs`: [`ReviewRepo`] (users, grants,
//!   sessions), [`AccessLogRepo`] (the hash-chained access log) and [`ReviewReadRepo`] (what
//!   reviewers read);
//! - [`AlertRepo`]: the alert outbox (`alert_repo.rs`, `alert_sql`).
//! - [`CompletenessRepo`] (`completeness_sql.rs`): the completeness report's reads (seq gaps,
//!   people, consent, failed media, undecryptable records).
//! - [`ReplyTimeRepo`] (`reply_repo.rs`, `reply_sql.rs`): the reply-time checks' state, hits and
//!   daily statistics (`crate::quality`).
//!
//! The daemon holds an `Arc<dyn Store>`; every role's methods are callable on it without
//! importing the role trait.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::alert_repo::AlertRepo;
use super::completeness_sql::CompletenessRepo;
use super::reply_repo::ReplyTimeRepo;
use super::review_repo::{AccessLogRepo, ReviewReadRepo, ReviewRepo};
use super::rules_repo::{BatchHits, RuleRepo};
use super::{CorpId, Limits, MediaRef, Row, StoreError};
use crate::secret::Secret;

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

/// What a [`BatchRepo::write_batch`] inserted (duplicates excluded).
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

/// What [`MediaRepo::recover_media`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaRecovery {
    /// Items in status 2 put back to 1.
    pub requeued: u64,
    /// Items in status 2 whose attempts were exhausted, failed instead (poison pills).
    pub failed: u64,
}

/// One line of [`MediaRepo::media_stats`].
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

/// `media_<corpid>.status` of an item stored while media was off (`[media] enabled = false`):
/// kept with everything needed to download it, but not pending, so nothing claims it and no
/// backlog shows. The media scheduler makes such items pending (1) when it starts with media on
/// ([`MediaRepo::release_held_media`]). The message row has status 1 meanwhile, as the Java
/// version left a record whose media was not downloaded.
pub const MEDIA_HELD: u8 = 0;

/// A media row to insert with a batch: a media reference of the record `(msgid, seq)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaItem {
    /// The record's msgid.
    pub msgid: String,
    /// The record's seq.
    pub seq: u64,
    /// The attachment.
    pub media: MediaRef,
}

/// The storage layer: every role, and the database itself. Object safe: the daemon holds an
/// `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    SchemaRepo
    + BatchRepo
    + CorpRepo
    + MediaRepo
    + LeaseRepo
    + ReviewRepo
    + AccessLogRepo
    + ReviewReadRepo
    + super::CallbackRepo
    + AlertRepo
    + CompletenessRepo
    + RuleRepo
    + ReplyTimeRepo
    + super::WecomRepo
    + Send
    + Sync
    + fmt::Debug
{
    /// `"mysql"` or `"sqlite"`.
    fn dialect(&self) -> &'static str;

    /// The byte limits this store cuts its statements by (from `max_allowed_packet`, read at
    /// connect, on MySQL).
    fn limits(&self) -> Limits;

    /// A round trip to the database (`SELECT 1`), for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The fixed tables, the per-corp tables and the Java upgrade: the role that differs between
/// the dialects (`mysql.rs`, `sqlite.rs`).
#[async_trait]
pub trait SchemaRepo: Send + Sync {
    /// Creates or adopts the fixed tables (`corplist`, `corp_keys`, `corp_cursor`). Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Creates `message_<corpid>` and `media_<corpid>` if missing (upgrading a Java-created
    /// message table in place, MySQL only). Cached per corp: cheap to call before every batch.
    async fn ensure_corp_tables(&self, corpid: &CorpId) -> Result<(), StoreError>;

    /// Creates the missing per-corp tables of many corps at once, where one corp at a time is
    /// costly: on SQLite every schema change makes every pooled connection re-read the whole
    /// schema, so 5,000 corps created one by one cost 5,000 × connections × (a schema of up to
    /// 5,000 corps) parses; batched, a few. Called by the supervisor with each load of the corps,
    /// before their actors start. On MySQL nothing is done here: each corp's tables are made (or
    /// a Java table upgraded) at its first write by [`SchemaRepo::ensure_corp_tables`].
    async fn prepare_corp_tables(&self, corpids: &[CorpId]) -> Result<(), StoreError>;

    /// Upgrades a Java-created `message_<corpid>` (ARCHITECTURE.md decision 9). Called by
    /// [`SchemaRepo::ensure_corp_tables`]; a no-op on an already upgraded or new table.
    async fn migrate_java_corp_table(&self, corpid: &CorpId) -> Result<(), StoreError>;
}

/// Batches, the cursor, and reading or rewriting stored records.
#[async_trait]
pub trait BatchRepo: Send + Sync {
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

    /// [`BatchRepo::write_batch`], and with a `fence` the transaction first checks that the
    /// corp's lease is still `fence`'s ([`StoreError::Fenced`] and nothing written otherwise).
    async fn write_batch_fenced(
        &self,
        corpid: &CorpId,
        rows: &[Row],
        media: &[MediaItem],
        new_cursor: u64,
        fence: Option<&Fence>,
    ) -> Result<BatchOutcome, StoreError> {
        self.write_batch_with_hits(corpid, rows, media, &BatchHits::default(), new_cursor, fence).await
    }

    /// [`BatchRepo::write_batch_fenced`], and the rule hits of the batch's records in the same
    /// transaction (`rule_hit`, INSERT-or-ignore on `(corpid, msgid, rule)`; revoke checks
    /// resolved against the message table once the batch's rows are in): a batch that fails
    /// leaves no hit, a batch written again adds none.
    async fn write_batch_with_hits(
        &self,
        corpid: &CorpId,
        rows: &[Row],
        media: &[MediaItem],
        hits: &BatchHits,
        new_cursor: u64,
        fence: Option<&Fence>,
    ) -> Result<BatchOutcome, StoreError>;

    /// Where to resume: max(`corp_cursor.seq`, MAX(seq) of `message_<corpid>`), 0 for a new corp.
    async fn cursor(&self, corpid: &CorpId) -> Result<u64, StoreError>;

    /// The row of record `seq` with every value whole (oversized values put back together from
    /// `message_part`); `None` when there is no such row. Use it wherever a stored record is
    /// read back.
    async fn read_message(&self, corpid: &CorpId, seq: u64) -> Result<Option<Row>, StoreError>;

    /// Up to `limit` rows with `seq > after_seq`, by seq, for derived data (the search index):
    /// whole as [`BatchRepo::read_message`] gives them with `whole`, else only `msgid` and `seq`
    /// (the other fields empty). `None` when the corp has no message table (never created, or
    /// dropped); unlike the other methods this one never creates it.
    async fn messages_after(
        &self,
        corpid: &CorpId,
        after_seq: u64,
        limit: u32,
        whole: bool,
    ) -> Result<Option<Vec<Row>>, StoreError>;

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
}

/// The `corplist` and `corp_keys` tables.
#[async_trait]
pub trait CorpRepo: Send + Sync {
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
}

/// The media jobs of `media_<corpid>`.
#[async_trait]
pub trait MediaRepo: Send + Sync {
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

    /// [`MediaRepo::finish_media`] for many items of one corp in ONE transaction (the media
    /// scheduler settles what finished meanwhile together): all of them are recorded, or none.
    async fn finish_media_many(&self, corpid: &CorpId, items: &[(MediaJob, MediaOutcome)]) -> Result<(), StoreError>;

    /// Start-up recovery: items in status 2 claimed by `owner`, or by anyone longer than `stale`
    /// ago, go back to 1; those among them with `attempts >= max_attempts` fail instead
    /// ([`MEDIA_CODE_ATTEMPTS_EXHAUSTED`]).
    async fn recover_media(
        &self,
        corpid: &CorpId,
        owner: &str,
        stale: Duration,
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

/// Corp leases between instances (`corp_lease`, `lease_instance`, `corp_lease_log`).
#[async_trait]
pub trait LeaseRepo: Send + Sync {
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
}
