//! The storage role of the rules (`crate::rules`): [`RuleRepo`] (the `rule_def` table and
//! `rule_hit` rows outside a batch: `rule add|list|remove`, `rule test --write`), and the hits a
//! batch carries ([`BatchHits`]), which [`BatchRepo::write_batch_with_hits`] writes in the
//! batch's own transaction. Implemented once for both dialects in `rules_sql.rs`.
//!
//! A hit is keyed by `(corpid, msgid, rule)` and inserted with INSERT-or-ignore, so a batch that
//! is written again (a retry, a re-pull) adds nothing. A revoke rule ("taken back within N s")
//! cannot be decided before the batch is written: the message it takes back may be in an earlier
//! batch. Such a rule travels as a [`RevokeCheck`], resolved inside the transaction against the
//! message table (after the batch's own rows are in), so that the hit commits with the revoke.
//!
//! [`BatchRepo::write_batch_with_hits`]: super::BatchRepo::write_batch_with_hits

use async_trait::async_trait;

use super::{CorpId, StoreError};

/// One `rule_hit` row to insert (see the migration `20261208000002_rules.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    /// The record that matched (for a revoke rule: the revoke record).
    pub msgid: String,
    /// The rule's name.
    pub rule: String,
    /// `keyword`, `regex`, `builtin`, `behaviour` (or `reply_time`, written elsewhere).
    pub kind: String,
    /// What matched (the keyword, the regex's match, the number, the msgtype…).
    pub matched: String,
    /// The text around the match.
    pub context: String,
    /// The record's sender.
    pub sender: String,
    /// The conversation (`crate::search::index::conversation_key`).
    pub conversation: String,
    /// The record's msgtime (ms).
    pub msgtime: u64,
}

/// A revoke record that revoke rules ("within N s") may match, resolved in the write's
/// transaction: it is a hit of `rule` when the record `pre_msgid` is stored with a msgtime at
/// most `within_ms` before `revoked_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeCheck {
    /// The revoke record's msgid (the hit's msgid).
    pub msgid: String,
    /// The message it takes back.
    pub pre_msgid: String,
    /// The revoke record's msgtime (ms).
    pub revoked_at: u64,
    /// The revoke record's sender.
    pub sender: String,
    /// Its conversation.
    pub conversation: String,
    /// The revoke rules that apply to it: (rule name, N s in ms).
    pub rules: Vec<(String, u64)>,
}

/// The hits of a batch (or of one record): written with the rows, in their transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchHits {
    /// Decided hits.
    pub hits: Vec<RuleHit>,
    /// Revokes to resolve against the stored messages.
    pub revokes: Vec<RevokeCheck>,
}

impl BatchHits {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty() && self.revokes.is_empty()
    }

    /// Appends `other`.
    pub fn extend(&mut self, other: BatchHits) {
        self.hits.extend(other.hits);
        self.revokes.extend(other.revokes);
    }

    /// The hits of record `msgid` only, under `as_msgid` (the record-by-record isolation path
    /// stores a refused record under another msgid).
    pub fn of_record(&self, msgid: &str, as_msgid: &str) -> BatchHits {
        BatchHits {
            hits: self
                .hits
                .iter()
                .filter(|h| h.msgid == msgid)
                .map(|h| RuleHit { msgid: as_msgid.to_string(), ..h.clone() })
                .collect(),
            revokes: self
                .revokes
                .iter()
                .filter(|r| r.msgid == msgid)
                .map(|r| RevokeCheck { msgid: as_msgid.to_string(), ..r.clone() })
                .collect(),
        }
    }
}

/// A `rule_def` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefRow {
    /// Row id.
    pub id: i64,
    /// The rule's name (unique).
    pub name: String,
    /// One rule as TOML (the body of a `[[rule]]` of rules.toml).
    pub body: String,
    /// Disabled rules are not evaluated.
    pub enabled: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

/// A stored `rule_hit` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHit {
    /// Row id.
    pub id: i64,
    /// The corp.
    pub corpid: String,
    /// The hit.
    pub hit: RuleHit,
    /// 0: not yet handed to the alert outbox.
    pub alert_state: i64,
}

/// `rule_def` and `rule_hit` outside the batch write.
#[async_trait]
pub trait RuleRepo: Send + Sync {
    /// Every `rule_def` row, by name.
    async fn rule_defs(&self) -> Result<Vec<RuleDefRow>, StoreError>;

    /// Adds rule `name` or replaces its body and `enabled`; true when it was added.
    async fn rule_def_put(&self, name: &str, body: &str, enabled: bool) -> Result<bool, StoreError>;

    /// Removes rule `name`; false when there was none. Its hits stay.
    async fn rule_def_remove(&self, name: &str) -> Result<bool, StoreError>;

    /// The hits `checks` yield against the stored messages of `corpid` (nothing written).
    async fn resolve_revokes(&self, corpid: &CorpId, checks: &[RevokeCheck]) -> Result<Vec<RuleHit>, StoreError>;

    /// Inserts `hits` (and resolves and inserts `hits.revokes`) in one transaction, ignoring
    /// those already stored; how many were new.
    async fn insert_rule_hits(&self, corpid: &CorpId, hits: &BatchHits) -> Result<u64, StoreError>;

    /// Stored hits, newest id first, at most `limit`, of a corp and/or a rule when given.
    async fn rule_hits(
        &self,
        corpid: Option<&CorpId>,
        rule: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredHit>, StoreError>;
}
