//! 质检: reply-time checks. A customer message in an external one-to-one or group conversation
//! that no employee answers within N minutes of working time is a hit (`rule_hit`, kind
//! `reply_time`, for the alert outbox like any other hit); and the daily statistics per employee
//! (conversations, messages sent, first replies, their median wait, late ones) are kept in
//! `reply_daily` and served by the review API (`GET /api/corps/{corpid}/reply-stats`).
//!
//! How the parts connect:
//! - [`rules`]: the `[[reply_time]]` entries of `rules.toml` → [`ReplyRule`]s
//!   ([`rules::parse_tables`] for the rules file loader, [`rules::load_file`] otherwise);
//! - [`calendar`]: working hours in a time zone: the working time between two instants, the
//!   deadline after a start;
//! - [`evaluate`]: one rule over a corp's rows in seq order, without I/O ([`evaluate::RuleRun`]):
//!   open runs of unanswered customer messages, hits, activity and first-reply samples. The
//!   semantics (what counts, one hit per run, message time as "now") are documented there;
//! - [`task`]: reads the stored rows after each rule's cursor (`Store::messages_after`, as the
//!   search indexer does) and writes each batch's results with the cursor in one transaction
//!   (`ReplyTimeRepo::reply_apply`, a compare-and-set on the cursor: exactly once, across
//!   restarts and beside other processes); the daemon's background task ([`task::start`]) and
//!   the `reply-time` CLI run it.
//!
//! Storage: `crate::store::ReplyTimeRepo` over the tables of migration
//! `20261208000015_reply_time` (`reply_cursor`, `reply_open`, `reply_activity`, `reply_sample`,
//! `reply_daily`) and `rule_hit`.

pub mod calendar;
pub mod evaluate;
pub mod rules;
pub mod task;

use std::path::PathBuf;

pub use rules::{load_file, parse_tables, ReplyRule};
pub use task::{Evaluator, NewRules};

/// What the reply-time checks can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A `[[reply_time]]` entry (or the rules file) is invalid.
    #[error("reply-time rules: {0}")]
    Config(String),
    /// The rules file could not be read.
    #[error("reply-time rules {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl QualityError {
    /// Whether the same step may succeed later (database hiccups; a rules file being written).
    pub fn is_retryable(&self) -> bool {
        match self {
            QualityError::Store(e) => e.is_retryable(),
            QualityError::Io(..) => true,
            QualityError::Config(_) => false,
        }
    }
}
