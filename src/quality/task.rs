//! Running the reply-time rules over the stored rows: [`Evaluator::corp`] catches every rule of
//! a corp up with its rows (one read of `Store::messages_after` feeds every rule), writing each
//! batch's results with the rule's cursor in one transaction; [`start`] is the daemon's
//! background task, the `reply-time` CLI calls the evaluator directly.
//!
//! A rule seen for the first time starts at the corp's current end in the daemon
//! ([`NewRules::FromEnd`]: no flood of hits about old messages); `reply-time run --since`
//! evaluates the history ([`Evaluator::reset`]). The evaluator keeps each rule's state between
//! passes and reloads it from the database when the stored cursor is not the one it wrote
//! (another process, a reset) or the rule changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use super::evaluate::RuleRun;
use super::rules::{load_file, ReplyRule};
use super::QualityError;
use crate::store::{CorpId, ReplyCursor, ReplyDelta, Store};

/// Where a rule without a cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewRules {
    /// At the corp's current end (the daemon).
    FromEnd,
    /// At the first stored row.
    FromStart,
}

/// What a call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows read.
    pub rows: u64,
    /// Hits written (a hit already stored is counted again but not written twice).
    pub hits: u64,
    /// Batches another process had written first (state reloaded, nothing counted twice).
    pub conflicts: u64,
}

struct Cached {
    fingerprint: String,
    run: RuleRun,
    stored: ReplyCursor,
}

/// Evaluates reply-time rules over one store.
pub struct Evaluator {
    store: Arc<dyn Store>,
    batch: u32,
    new_rules: NewRules,
    alert_state: u8,
    cache: HashMap<(String, String), Cached>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("batch", &self.batch)
            .field("new_rules", &self.new_rules)
            .field("alert_state", &self.alert_state)
            .finish_non_exhaustive()
    }
}

/// A rule's identity for the cache: any edit makes it another.
fn fingerprint(rule: &ReplyRule) -> String {
    format!("{rule:?}")
}

impl Evaluator {
    /// An evaluator reading `batch` rows at a time.
    pub fn new(store: Arc<dyn Store>, new_rules: NewRules) -> Self {
        Self { store, batch: 1000, new_rules, alert_state: 0, cache: HashMap::new() }
    }

    /// Rows read per query.
    #[must_use]
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// New hits are stored as already handed to the alert outbox (`alert_state` 1): a backfill
    /// that must not alert about the past.
    #[must_use]
    pub fn without_alerts(mut self) -> Self {
        self.alert_state = 1;
        self
    }

    /// Backfill: `rule` evaluates `corp` again from `since_ms` (its statistics from that day on
    /// are rebuilt at the next [`Evaluator::corp`]).
    pub async fn reset(&mut self, corp: &CorpId, rule: &ReplyRule, since_ms: i64) -> Result<(), QualityError> {
        let day = rule.calendar.day_of(since_ms);
        self.store.reply_reset(corp, &rule.name, since_ms, &day).await?;
        self.cache.remove(&(corp.to_string(), rule.name.clone()));
        Ok(())
    }

    /// The state of `rule` in `corp`: cached, or read back (created for a new rule).
    async fn load(&mut self, corp: &CorpId, rule: &ReplyRule) -> Result<(RuleRun, ReplyCursor), QualityError> {
        let key = (corp.to_string(), rule.name.clone());
        let fp = fingerprint(rule);
        for _ in 0..3 {
            let stored = self.store.reply_cursor(corp, &rule.name).await?;
            if let Some(c) = self.cache.remove(&key) {
                if c.fingerprint == fp && Some(c.stored) == stored {
                    return Ok((c.run, c.stored));
                }
            }
            if let Some(cursor) = stored {
                let runs = self.store.reply_open_runs(corp, &rule.name).await?;
                return Ok((RuleRun::new(rule, corp.as_str(), cursor, runs), cursor));
            }
            let seq = match self.new_rules {
                NewRules::FromEnd => self.store.cursor(corp).await?,
                NewRules::FromStart => 0,
            };
            let cursor = ReplyCursor { seq, since_ms: 0, watermark: 0 };
            let created = ReplyDelta { rule: rule.name.clone(), expected: None, cursor, ..ReplyDelta::default() };
            if self.store.reply_apply(corp, &created).await? {
                tracing::info!(rule = %rule.name, seq, "reply-time rule starts");
                return Ok((RuleRun::new(rule, corp.as_str(), cursor, Vec::new()), cursor));
            }
            // Another process created it meanwhile: read it back.
        }
        Err(QualityError::Store(crate::store::StoreError::InvalidData(format!(
            "the cursor of reply-time rule {:?} keeps changing",
            rule.name
        ))))
    }

    /// Catches every rule of `rules` that applies to `corp` up with the stored rows. A corp
    /// without a message table has nothing to do.
    pub async fn corp(&mut self, corp: &CorpId, rules: &[ReplyRule]) -> Result<Progress, QualityError> {
        let mut progress = Progress::default();
        let rules: Vec<&ReplyRule> = rules.iter().filter(|r| r.applies_to(corp.as_str())).collect();
        let mut states = Vec::with_capacity(rules.len());
        for rule in &rules {
            let (run, stored) = self.load(corp, rule).await?;
            states.push((*rule, run, stored));
        }
        let result = self.catch_up(corp, &mut states, &mut progress).await;
        for (rule, run, stored) in states {
            let c = Cached { fingerprint: fingerprint(rule), run, stored };
            self.cache.insert((corp.to_string(), rule.name.clone()), c);
        }
        result.map(|()| progress)
    }

    async fn catch_up(
        &mut self,
        corp: &CorpId,
        states: &mut [(&ReplyRule, RuleRun, ReplyCursor)],
        progress: &mut Progress,
    ) -> Result<(), QualityError> {
        loop {
            let Some(after) = states.iter().map(|s| s.1.cursor().seq).min() else { return Ok(()) };
            let Some(rows) = self.store.messages_after(corp, after, self.batch, true).await? else { return Ok(()) };
            let n = rows.len();
            progress.rows += n as u64;
            for row in &rows {
                for (rule, run, _) in states.iter_mut() {
                    run.feed(rule, row);
                }
            }
            for (rule, run, stored) in states.iter_mut() {
                if !run.moved_from(Some(stored)) {
                    continue;
                }
                let delta = run.take_delta(rule, Some(*stored), self.alert_state);
                let hits = delta.hits.len() as u64;
                if self.store.reply_apply(corp, &delta).await? {
                    progress.hits += hits;
                    for h in &delta.hits {
                        tracing::info!(rule = %rule.name, msgid = %h.msgid, matched = %h.matched, "reply-time hit");
                    }
                    *stored = delta.cursor;
                } else {
                    progress.conflicts += 1;
                    tracing::info!(rule = %rule.name, "reply-time batch written by another process; state reloaded");
                    self.cache.remove(&(corp.to_string(), rule.name.clone()));
                    let (fresh, cursor) = self.load(corp, rule).await?;
                    *run = fresh;
                    *stored = cursor;
                }
            }
            if n < self.batch as usize {
                return Ok(());
            }
        }
    }
}

/// The rules file of `cfg` (`crate::rules::file_of`: `[rules] file`, else `rules.toml` beside
/// the configuration file), or `rules.toml` in the working directory without either.
pub fn rules_path(cfg: &crate::config::Config, config_file: Option<&Path>) -> PathBuf {
    crate::rules::file_of(&cfg.rules, config_file).unwrap_or_else(|| PathBuf::from("rules.toml"))
}

/// The daemon's running evaluator ([`start`]).
#[derive(Debug)]
pub struct Task {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Task {
    /// Stops the task after its current batch.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            tracing::warn!(error = %e, "reply-time task ended abnormally");
        }
    }
}

/// Starts the daemon's evaluator on the current (actix) runtime when `[reply_time] enabled`:
/// every `poll_interval` it re-reads the rules file (an edit applies at the next pass; an invalid
/// file keeps the previous rules, with a WARN) and catches every configured corp up.
pub fn start(
    cfg: &crate::config::Config,
    config_file: Option<&Path>,
    store: Arc<dyn Store>,
    sources: crate::corps::Sources,
) -> Option<Task> {
    if !cfg.reply_time.enabled {
        return None;
    }
    let path = rules_path(cfg, config_file);
    let poll = cfg.reply_time.poll_interval.max(Duration::from_millis(100));
    let (stop, rx) = tokio::sync::watch::channel(false);
    tracing::info!(rules = %path.display(), "reply-time checks running");
    let evaluator = Evaluator::new(store, NewRules::FromEnd);
    let handle = actix_rt::spawn(run(evaluator, path, sources, poll, rx));
    Some(Task { stop, handle })
}

async fn run(
    mut evaluator: Evaluator,
    path: PathBuf,
    sources: crate::corps::Sources,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rules: Vec<ReplyRule> = Vec::new();
    let mut rules_error: Option<String> = None;
    while !*stop.borrow() {
        match load_file(&path) {
            Ok(r) => {
                if rules_error.take().is_some() {
                    tracing::info!(rules = %path.display(), "reply-time rules readable again");
                }
                rules = r;
            }
            Err(e) => {
                let text = e.to_string();
                if rules_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "reply-time rules not usable; keeping the previous ones");
                }
                rules_error = Some(text);
            }
        }
        if !rules.is_empty() {
            let corps = crate::search::indexer::configured_corps(&sources).await.unwrap_or_default();
            for corp in corps {
                if *stop.borrow() {
                    break;
                }
                let span = tracing::info_span!("reply_time", corpid = %corp);
                if let Err(e) = evaluator.corp(&corp, &rules).instrument(span).await {
                    tracing::warn!(corpid = %corp, error = %e, retryable = e.is_retryable(), "reply-time pass failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}
