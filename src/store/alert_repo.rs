//! The storage role of the alerts (`crate::alerts`), combined into [`Store`](super::Store) with
//! the others: [`AlertRepo`], the durable outbox (`alert_outbox`) fed from `rule_hit`
//! (`alert_sql`).
//!
//! The outbox's life cycle: [`AlertRepo::alert_dispatch`] turns hits not yet handed over
//! (`rule_hit.alert_state = 0`) into one pending row per routed channel and marks the hits handed
//! (1) in the same transaction; [`AlertRepo::alert_claim`] takes a channel's next batch (pending
//! → sending, attempt counted) before anything is sent; [`AlertRepo::alert_finish`] records how
//! the send ended; [`AlertRepo::alert_recover`] gives back claims whose process died.

use async_trait::async_trait;

use super::StoreError;

/// `alert_outbox.status`: waiting to be sent (or re-sent after `next_attempt_at`).
pub const OUTBOX_PENDING: u8 = 0;
/// `alert_outbox.status`: claimed by a sender (`claimed_by`), being sent.
pub const OUTBOX_SENDING: u8 = 1;
/// `alert_outbox.status`: delivered (`sent_at`).
pub const OUTBOX_SENT: u8 = 2;
/// `alert_outbox.status`: given up (`last_error`); `alerts retry` makes it pending again.
pub const OUTBOX_FAILED: u8 = 3;

/// A `rule_hit` row as the alerts read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertHit {
    /// `rule_hit.id`.
    pub id: i64,
    /// The corp.
    pub corpid: String,
    /// The message that matched (for reply-time hits: the unanswered one).
    pub msgid: String,
    /// The rule's name.
    pub rule: String,
    /// `keyword`, `regex`, `builtin`, `behaviour`, `reply_time`.
    pub kind: String,
    /// What matched.
    pub matched: String,
    /// The text around it.
    pub context: String,
    /// The sender's userid.
    pub sender: String,
    /// The conversation (the search index's conversation key, when the rules give one).
    pub conversation: String,
    /// The message's time, ms since the epoch.
    pub msgtime: i64,
    /// When the hit was written, ms since the epoch.
    pub created_at: i64,
}

/// A claimed outbox row with its hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// `alert_outbox.id`.
    pub id: i64,
    /// The channel's name.
    pub channel: String,
    /// Attempts so far, this one included (counted when claimed).
    pub attempts: u32,
    /// The batch's idempotency key (the same for every row of the batch, and at every retry).
    pub batch_key: String,
    /// When the row was created (ms, database clock).
    pub created_at: i64,
    /// The hit.
    pub hit: AlertHit,
}

/// How a send of a batch ended ([`AlertRepo::alert_finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Delivered: status sent, `sent_at` = now.
    Sent,
    /// Not delivered, try again in `delay_ms`.
    Retry {
        /// From now (database clock).
        delay_ms: i64,
        /// Why (no secret in it).
        error: String,
    },
    /// Given up.
    Failed {
        /// Why (no secret in it).
        error: String,
    },
    /// Given back unsent (shutdown): pending again, the attempt not counted.
    Released,
}

/// What [`AlertRepo::alert_dispatch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchOutcome {
    /// Hits handed over (alert_state 0 → 1).
    pub hits: u64,
    /// Outbox rows created.
    pub rows: u64,
}

/// One line of [`AlertRepo::alert_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCount {
    /// The channel.
    pub channel: String,
    /// One of the `OUTBOX_*` statuses.
    pub status: u8,
    /// Rows.
    pub count: u64,
    /// The oldest row's `created_at` (ms).
    pub oldest_ms: i64,
    /// The newest `last_error` among these rows, if any.
    pub last_error: Option<String>,
}

/// Routes a hit: the names of the channels it goes to (none: it is handed over and not sent).
pub type Route<'a> = &'a (dyn Fn(&AlertHit) -> Vec<String> + Send + Sync);

/// The alert outbox.
#[async_trait]
pub trait AlertRepo: Send + Sync {
    /// ONE transaction: up to `limit` hits with `alert_state = 0` (oldest first), one pending
    /// outbox row per channel `route` gives (ignoring rows that exist), and `alert_state = 1`
    /// on those hits. No id cursor: a hit committed late with a smaller id is found all the same.
    async fn alert_dispatch(&self, limit: u32, route: Route<'_>) -> Result<DispatchOutcome, StoreError>;

    /// Claims `channel`'s next batch for `owner` and returns it (oldest first), or nothing:
    /// - a batch that was claimed before (a retry, or a claim given back after a crash) goes
    ///   again whole and alone, with its key;
    /// - else up to `max` due pending rows, once there are `max` of them or the oldest has
    ///   waited `window_ms`; they get the key `msgaudit-<first row id>`.
    ///
    /// Claimed rows are status sending with `attempts + 1` before the send starts; two
    /// instances never claim the same row.
    async fn alert_claim(
        &self,
        channel: &str,
        owner: &str,
        max: u32,
        window_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Records how the send of rows `ids` (claimed by `owner`) ended.
    async fn alert_finish(&self, ids: &[i64], owner: &str, outcome: &AlertOutcome) -> Result<(), StoreError>;

    /// Rows being sent by `owner` (at start: this instance's claims before a crash, with a
    /// stable instance id), or claimed longer than `stale_ms` ago by anyone (the process died
    /// mid-send), become pending again (their key kept); returns how many.
    async fn alert_recover(&self, owner: Option<&str>, stale_ms: i64) -> Result<u64, StoreError>;

    /// Row counts by channel and status, with the oldest `created_at` and the newest error.
    async fn alert_counts(&self) -> Result<Vec<OutboxCount>, StoreError>;

    /// Failed rows (of `channel`, or all) become pending with a fresh attempt counter; returns
    /// how many.
    async fn alert_requeue(&self, channel: Option<&str>) -> Result<u64, StoreError>;
}
