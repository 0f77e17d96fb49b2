//! The storage role of the reply-time checks (`crate::quality`), combined into
//! [`Store`](super::Store) with the others of `repo.rs`: [`ReplyTimeRepo`], implemented once for
//! both dialects in `reply_sql.rs`, over the tables of migration `20261208000015_reply_time`
//! and the `rule_hit` table of the rules contract.

use async_trait::async_trait;

use super::{CorpId, StoreError};

/// Where a rule's evaluation of a corp stands (`reply_cursor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyCursor {
    /// The last seq evaluated.
    pub seq: u64,
    /// Rows with an older msgtime (ms) are skipped (the start of a backfill).
    pub since_ms: i64,
    /// The newest msgtime seen (ms): the rule's "now".
    pub watermark: i64,
}

/// The unanswered run of customer messages of a conversation (`reply_open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRun {
    /// SHA-256 (hex) of `conversation`.
    pub conv: String,
    /// The conversation key (`room:<roomid>`, `pair:<a>|<b>`).
    pub conversation: String,
    /// The run's first customer message.
    pub msgid: String,
    /// Its msgtime (ms): the clock starts here.
    pub msgtime: i64,
    /// The customer.
    pub sender: String,
    /// The employee of a one-to-one chat (`""` in a group).
    pub employee: String,
    /// The message's text (or a summary of it).
    pub context: String,
    /// A group chat.
    pub is_group: bool,
    /// Its hit is written.
    pub decided: bool,
}

/// A reply-time hit to write into `rule_hit` (kind `reply_time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHit {
    /// The unanswered customer message (the run's first).
    pub msgid: String,
    /// The wait, e.g. `no reply within 10 min`, `replied after 23 min`.
    pub matched: String,
    /// The customer's text.
    pub context: String,
    /// The customer.
    pub sender: String,
    /// The conversation key.
    pub conversation: String,
    /// The customer message's msgtime (ms).
    pub msgtime: i64,
}

/// A first reply to a run (`reply_sample`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySample {
    /// The run's first customer message.
    pub msgid: String,
    /// The reply's day (`YYYY-MM-DD` in the rule's time zone).
    pub day: String,
    /// Who replied.
    pub userid: String,
    /// Working time waited (ms).
    pub wait_ms: i64,
    /// Longer than the rule allows.
    pub late: bool,
}

/// Messages an employee sent in a conversation on a day (`reply_activity`), to add.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplyActivity {
    /// `YYYY-MM-DD` in the rule's time zone.
    pub day: String,
    /// The employee.
    pub userid: String,
    /// SHA-256 (hex) of the conversation key.
    pub conv: String,
    /// Messages to add.
    pub messages: u64,
}

/// What one evaluated batch of one rule changes, written by [`ReplyTimeRepo::reply_apply`] in
/// one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyDelta {
    /// The rule.
    pub rule: String,
    /// The cursor the batch was evaluated from (`None`: the rule has no cursor row yet).
    pub expected: Option<ReplyCursor>,
    /// The cursor after the batch.
    pub cursor: ReplyCursor,
    /// Hits (inserted unless already there).
    pub hits: Vec<ReplyHit>,
    /// `alert_state` of the new hits: 0 (the outbox sends them) or 1 (a backfill without alerts).
    pub hit_alert_state: u8,
    /// Open runs created or changed.
    pub open_put: Vec<OpenRun>,
    /// Open runs closed (their `conv`).
    pub open_del: Vec<String>,
    /// Activity to add.
    pub activity: Vec<ReplyActivity>,
    /// First replies.
    pub samples: Vec<ReplySample>,
}

/// One row of `reply_daily`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplyDaily {
    /// The rule.
    pub rule: String,
    /// `YYYY-MM-DD` in the rule's time zone.
    pub day: String,
    /// The employee.
    pub userid: String,
    /// Conversations in which they sent a message that day.
    pub conversations: u64,
    /// Messages they sent that day.
    pub messages: u64,
    /// First replies to customers that day.
    pub replies: u64,
    /// Median working time of those first replies (ms); `None` without replies.
    pub median_reply_ms: Option<i64>,
    /// First replies later than the rule allows.
    pub late: u64,
}

/// The reply-time checks' state, hits and statistics.
#[async_trait]
pub trait ReplyTimeRepo: Send + Sync {
    /// The cursor of `rule` in `corpid`; `None` before its first batch.
    async fn reply_cursor(&self, corpid: &CorpId, rule: &str) -> Result<Option<ReplyCursor>, StoreError>;

    /// Every open run of `rule` in `corpid`.
    async fn reply_open_runs(&self, corpid: &CorpId, rule: &str) -> Result<Vec<OpenRun>, StoreError>;

    /// ONE transaction: moves the cursor from `delta.expected` to `delta.cursor` (compare and
    /// set), inserts the hits (duplicates of `(corpid, msgid, rule)` ignored), the open runs,
    /// activity and samples, and recomputes `reply_daily` for every (day, employee) touched.
    /// `false`, with nothing written, when the cursor was not `expected` any more (another
    /// process evaluated the same rows: the caller reloads its state).
    async fn reply_apply(&self, corpid: &CorpId, delta: &ReplyDelta) -> Result<bool, StoreError>;

    /// Backfill from `since_ms`: deletes the rule's open runs, and its activity, samples and
    /// daily rows from day `from_day` (`YYYY-MM-DD`) on, and sets its cursor to seq 0 with
    /// `since_ms` (hits stay: the unique key keeps them from doubling).
    async fn reply_reset(&self, corpid: &CorpId, rule: &str, since_ms: i64, from_day: &str) -> Result<(), StoreError>;

    /// Daily rows of `corpid` with `from_day <= day <= to_day` (`None`: unbounded), of `rule`
    /// when given, of the employees `who` when given; by rule, day, userid; at most `limit`.
    async fn reply_daily(
        &self,
        corpid: &CorpId,
        from_day: Option<&str>,
        to_day: Option<&str>,
        rule: Option<&str>,
        who: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<ReplyDaily>, StoreError>;
}
