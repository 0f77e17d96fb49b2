//! The storage roles of the review API (`crate::review`), combined into
//! [`Store`](super::Store) with the others of `repo.rs`:
//!
//! - [`ReviewRepo`]: users, grants and sessions (`review_sql`);
//! - [`AccessLogRepo`]: the hash-chained access log (`access_log_sql`; the chain's encoding and
//!   hash are `crate::review::access_log`'s, handed in as a [`Seal`]);
//! - [`ReviewReadRepo`]: what reviewers read: counts, people, conversations, timelines, one
//!   message, media rows (`review_read_sql`), with the reviewer's userids inside every query.

use async_trait::async_trait;

use super::{CorpId, Row, StoreError};
use crate::secret::Secret;

/// A `review_user` row. `password_hash` (an Argon2id PHC string) never prints itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewUser {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// `admin`, `reviewer` or `auditor` (as stored; parse with `crate::review::Role`).
    pub role: String,
    /// The PHC string.
    pub password_hash: Secret,
    /// A disabled user cannot sign in, and its sessions are gone.
    pub disabled: bool,
    /// Created, ms since the epoch (database clock).
    pub created_at_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_at_ms: i64,
    /// Last sign-in, ms since the epoch.
    pub last_login_ms: Option<i64>,
}

/// One `review_grant` row: a corp whole (`userids` `None`) or the conversations of some userids.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewGrant {
    /// The corp.
    pub corpid: String,
    /// `None`: the whole corp.
    pub userids: Option<Vec<String>>,
}

/// What [`ReviewRepo::review_user_change`] changes (`None` / empty: unchanged), in one
/// transaction: `grants` replaces every grant, then `grant` adds or replaces grants by corp and
/// `revoke` removes the grants of corps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewUserChange {
    /// New role.
    pub role: Option<String>,
    /// Disable (`true`) or enable.
    pub disabled: Option<bool>,
    /// New PHC string.
    pub password_hash: Option<Secret>,
    /// Every grant, replacing the current ones.
    pub grants: Option<Vec<ReviewGrant>>,
    /// Grants added (or replaced, by corp).
    pub grant: Vec<ReviewGrant>,
    /// Corps whose grant is removed.
    pub revoke: Vec<String>,
}

/// How [`ReviewRepo::review_user_change`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChangeOutcome {
    /// Applied.
    Changed,
    /// No user of that name; nothing changed.
    NoSuchUser,
    /// It would have disabled or demoted the last enabled admin; rolled back.
    LastAdmin,
}

/// A live session as [`ReviewRepo::review_session`] finds it. The CSRF token never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewSession {
    /// Its user (enabled).
    pub user: ReviewUser,
    /// The token state-changing requests must send back (`X-CSRF-Token`).
    pub csrf_token: Secret,
    /// Sign-in, ms since the epoch.
    pub created_at_ms: i64,
    /// The absolute end, ms since the epoch.
    pub expires_at_ms: i64,
}

/// An access-log entry to append: the log adds id, time and the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessEntry {
    /// Who (`""` before sign-in; `cli:<os user>` for the command line).
    pub username: String,
    /// Their role (`""` when unknown).
    pub role: String,
    /// What was done.
    pub action: String,
    /// The corp concerned.
    pub corpid: Option<String>,
    /// What was read or changed.
    pub target: String,
    /// JSON text, hashed as stored.
    pub detail: String,
}

/// One `access_log` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessEntry {
    /// 1, 2, … without gaps.
    pub id: u64,
    /// When, ms since the epoch (database clock).
    pub at_ms: i64,
    /// Who.
    pub username: String,
    /// Their role.
    pub role: String,
    /// What was done.
    pub action: String,
    /// The corp concerned.
    pub corpid: Option<String>,
    /// What was read or changed.
    pub target: String,
    /// JSON text.
    pub detail: String,
    /// The previous entry's `hash` (64 zeros for entry 1).
    pub prev_hash: String,
    /// SHA-256 (hex) of this entry's canonical encoding, `prev_hash` included.
    pub hash: String,
}

/// `access_log_head`: how many entries the log has and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessLogHead {
    /// Entries (= the last id).
    pub n: u64,
    /// The last entry's hash (64 zeros while empty).
    pub hash: String,
}

/// Computes an entry's `hash` from its other fields (`crate::review::access_log::seal`): the
/// store fills in id, time and `prev_hash` inside the append's transaction, then seals.
pub type Seal = fn(&AccessEntry) -> String;

/// The review API's users, their grants and sessions (`review_user`, `review_grant`,
/// `review_session`).
#[async_trait]
pub trait ReviewRepo: Send + Sync {
    /// Adds a user (enabled) with its grants in one transaction: its id, or `None` when the name
    /// is taken (nothing changed).
    async fn review_user_add(
        &self,
        username: &str,
        role: &str,
        password_hash: &Secret,
        grants: &[ReviewGrant],
    ) -> Result<Option<i64>, StoreError>;

    /// The user named `username`.
    async fn review_user(&self, username: &str) -> Result<Option<ReviewUser>, StoreError>;

    /// Every user, by name.
    async fn review_users(&self) -> Result<Vec<ReviewUser>, StoreError>;

    /// Changes a user in one transaction ([`ReviewUserChange`]); disabling it or changing its
    /// password ends its sessions. A change that leaves no enabled admin where the user was one
    /// is rolled back ([`UserChangeOutcome::LastAdmin`]): the count is taken inside the
    /// transaction, after the change, with the admins' rows locked (the write lock on SQLite), so
    /// two instances disabling two admins at once cannot both pass.
    async fn review_user_change(
        &self,
        username: &str,
        change: &ReviewUserChange,
    ) -> Result<UserChangeOutcome, StoreError>;

    /// A user's grants, by corp.
    async fn review_grants(&self, user_id: i64) -> Result<Vec<ReviewGrant>, StoreError>;

    /// Starts a session of `user_id` (keyed by the SHA-256 of its token, never the token) ending
    /// `max_ms` from now at the latest, and notes the sign-in; expired sessions are purged.
    async fn review_session_start(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &Secret,
        max_ms: i64,
    ) -> Result<(), StoreError>;

    /// The live session of `token_hash`: not past its end, used within `idle_ms`, of an enabled
    /// user; its last use becomes now. A session found dead is deleted; `None` then.
    async fn review_session(&self, token_hash: &str, idle_ms: i64) -> Result<Option<ReviewSession>, StoreError>;

    /// Ends a session (a no-op when there is none).
    async fn review_session_end(&self, token_hash: &str) -> Result<(), StoreError>;
}

/// The review API's access log (`access_log`, `access_log_head`): append-only, hash-chained.
#[async_trait]
pub trait AccessLogRepo: Send + Sync {
    /// Appends `entry` as the next id, ONE transaction that first bumps `access_log_head.n`: the
    /// head row's lock (the database's write lock on SQLite) serialises appends of every
    /// instance sharing the database, so the chain never forks. `seal` computes the hash.
    async fn access_log_append(&self, entry: &NewAccessEntry, seal: Seal) -> Result<AccessEntry, StoreError>;

    /// Up to `limit` entries with `id > after_id`, by id.
    async fn access_log_after(&self, after_id: u64, limit: u32) -> Result<Vec<AccessEntry>, StoreError>;

    /// The head.
    async fn access_log_head(&self) -> Result<AccessLogHead, StoreError>;
}

/// Which messages of a corp a review read covers: `None` = all; `Some(ids)` = only those in which
/// one of `ids` takes part (sends it, or is among its receivers). An empty list covers nothing.
pub type Participants<'a> = Option<&'a [String]>;

/// A position in a timeline: messages are ordered by `(msgtime, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelinePos {
    /// msgtime (ms).
    pub msgtime: u64,
    /// seq.
    pub seq: u64,
}

/// Which way a timeline page goes from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Older messages than the position (newest of them first).
    Before,
    /// Newer messages than the position (oldest of them first).
    After,
}

/// A conversation as the store selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationSel {
    /// The messages of a group (`roomid`).
    Room(String),
    /// The messages outside groups whose `(msgfrom, tolist)` is one of these (a one-to-one chat
    /// is both directions; see [`ReviewReadRepo::review_pairs`]).
    Pairs(Vec<(String, String)>),
    /// The rows that could not be read at all (no msgtype: no sender, no conversation).
    Undecryptable,
}

/// A group of messages with the same key: a room (`roomid`, `""`), a `(msgfrom, tolist)` outside
/// rooms, or a `(roomid, msgfrom)` (`""` outside rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageGroup {
    /// The first part of the key.
    pub a: String,
    /// The second part of the key.
    pub b: String,
    /// Messages.
    pub messages: u64,
    /// Earliest msgtime (ms).
    pub first_ms: u64,
    /// Latest msgtime (ms).
    pub last_ms: u64,
    /// The highest seq (the group's last message, near enough: seqs grow with time).
    pub last_seq: u64,
}

/// A `media_<corpid>` row as the review API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRow {
    /// The record's msgid.
    pub msgid: String,
    /// 0 = top-level, 1.. nested.
    pub item: u32,
    /// Media kind (`image`, `voice`, …).
    pub kind: String,
    /// 0 held, 1 pending, 2 downloading, 3 done, 4 failed.
    pub status: u8,
    /// The SDK or local error code of a failure.
    pub media_code: i32,
    /// The file relative to the media root (or the object store key's suffix), when done.
    pub path: Option<String>,
    /// The MP3 beside a voice file.
    pub transcoded_path: Option<String>,
    /// The record's (sanitised) filename.
    pub filename: Option<String>,
    /// The announced size.
    pub size: Option<u64>,
    /// The announced MD5.
    pub md5: Option<String>,
}

/// The reads of the review API (`crate::review`). Nothing here creates a table: a corp without
/// one reads as empty. Every method takes the [`Participants`] a reviewer is limited to, so that
/// the scope is applied inside the query.
#[async_trait]
pub trait ReviewReadRepo: Send + Sync {
    /// Messages of the corp (within `who`); `None` when the corp has no message table.
    async fn review_count(&self, corpid: &CorpId, who: Participants<'_>) -> Result<Option<u64>, StoreError>;

    /// Messages per `(roomid, msgfrom)` (within `who`; roomid `""` outside rooms), by both.
    async fn review_senders(&self, corpid: &CorpId, who: Participants<'_>) -> Result<Vec<MessageGroup>, StoreError>;

    /// Messages per room (within `who`), by roomid.
    async fn review_rooms(&self, corpid: &CorpId, who: Participants<'_>) -> Result<Vec<MessageGroup>, StoreError>;

    /// Messages outside rooms per `(msgfrom, tolist)` (within `who`, and sent by one of
    /// `senders` when given), by both.
    async fn review_pairs(
        &self,
        corpid: &CorpId,
        who: Participants<'_>,
        senders: Option<&[String]>,
    ) -> Result<Vec<MessageGroup>, StoreError>;

    /// Up to `limit` whole rows of a conversation (within `who`) from `from` (exclusive) in
    /// `direction`, or the newest when `from` is `None`; in the order walked (newest first for
    /// [`Direction::Before`] and for the newest).
    async fn review_timeline(
        &self,
        corpid: &CorpId,
        conversation: &ConversationSel,
        who: Participants<'_>,
        from: Option<TimelinePos>,
        direction: Direction,
        limit: u32,
    ) -> Result<Vec<Row>, StoreError>;

    /// The whole row of `msgid`; `None` when there is none (or no table).
    async fn review_message(&self, corpid: &CorpId, msgid: &str) -> Result<Option<Row>, StoreError>;

    /// The media rows of these msgids, by msgid and item.
    async fn review_media(&self, corpid: &CorpId, msgids: &[String]) -> Result<Vec<MediaRow>, StoreError>;

    /// The names of these group chats that `wecom_room` knows (`(roomid, roomname)`, by roomid;
    /// rooms without a row or with an empty name are left out).
    async fn review_room_names(&self, corpid: &CorpId, roomids: &[String])
        -> Result<Vec<(String, String)>, StoreError>;

    /// The members of a group chat as of its last fetch (`wecom_room_member`, `present` ones), by
    /// memberid; empty when not fetched.
    async fn review_room_members(&self, corpid: &CorpId, roomid: &str) -> Result<Vec<String>, StoreError>;
}
