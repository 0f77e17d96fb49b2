//! Content and behaviour rules evaluated at ingest (issue 17): sensitive words, regular
//! expressions, built-in detectors (phone, ID card, bank card, e-mail, URL domains) and
//! behaviours (card, mini program, file by extension, red packet, a quick revoke), each within a
//! scope (corps, 1:1/group, internal/external, senders, direction, msgtypes).
//!
//! How the parts connect:
//!
//! - [`def`]: the rules as written, in `rules.toml` (`[[rule]]`; `[[reply_time]]` entries are
//!   kept for the reply-time check) and in the `rule_def` table (one rule's TOML per row);
//!   errors name `file:line` and the key, never a value.
//! - [`set`]: [`RuleSet`], every enabled rule compiled once per reload into one matcher set (one
//!   Aho-Corasick automaton for all keywords of all rules, one `RegexSet`, the built-ins and
//!   behaviours indexed), and [`RuleSet::evaluate`]: a row → its hits.
//! - [`builtin`]: the built-in detectors and their checksums.
//! - this module: [`Live`], the rule set in force (swapped whole on reload), [`load`] (file +
//!   table → a rule set), [`spawn_reloader`] (the daemon's hot reload: the file watched like the
//!   corps file, the table polled), [`resolve_revokes`] and [`HitCounter`] (the
//!   `rule_hits_total` metric).
//!
//! In the pipeline: the corp actor takes [`Live::current`] once per page and hands it to
//! `decode::decode_on_with`, which evaluates every row on the decrypt pool right after parsing
//! it; the page's hits ride in the `WriteBatch` and are written by
//! `BatchRepo::write_batch_with_hits` in the batch's own transaction (INSERT-or-ignore on
//! `(corpid, msgid, rule)`), so that a crash can neither lose a hit nor report it twice. Before
//! sending the batch, the actor decides the revoke rules ([`resolve_revokes`]: the revoked
//! message is in this page or already committed, since one write is in flight at a time).
//! `rule test` (`cli::rule`) runs the same evaluation over stored history.

pub mod builtin;
pub mod def;
pub mod set;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use builtin::Builtin;
pub use def::{parse_body, parse_file, read_file, Behaviour, FileRules, RuleDef};
pub use set::RuleSet;

use crate::store::{BatchHits, CorpId, Row, RuleHit, Store, StoreError};

/// Why rules could not be loaded or compiled.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The rules file: unreadable, not TOML, or a bad `[[rule]]` (the message names the key).
    #[error("rules file {}:{line}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong (never a value).
        message: String,
    },
    /// One rule (of the table, or failing to compile).
    #[error("rule '{name}': {message}")]
    Definition {
        /// The rule's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// More rules than a u32 counts.
    #[error("too many rules")]
    TooMany,
    /// Reading `rule_def` failed.
    #[error("reading rule_def: {0}")]
    Store(#[from] StoreError),
}

impl RulesError {
    /// Whether trying again may help (the database), rather than fixing a rule.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RulesError::Store(e) if e.is_retryable())
    }
}

/// Default compiled-size limit of one regular expression (`[rules] regex_size_limit`).
pub const DEFAULT_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The rule set in force, shared by the corp actors and swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub struct Live(Arc<RwLock<Arc<RuleSet>>>);

impl Live {
    /// A handle on `set`.
    pub fn new(set: RuleSet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(set))))
    }

    /// The set in force now (a page is evaluated with one set).
    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts `set` in force.
    pub fn set(&self, set: RuleSet) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
    }
}

/// Hits by rule stored by this process (`wework_msgaudit_rule_hits_total{rule}`): the hits of
/// committed batches (a record pulled again counts again; `rule_hit` has it once).
#[derive(Debug, Default)]
pub struct HitCounter(Mutex<BTreeMap<String, u64>>);

impl HitCounter {
    /// Counts `hits` (of a committed batch).
    pub fn add(&self, hits: &[RuleHit]) {
        if hits.is_empty() {
            return;
        }
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for h in hits {
            *m.entry(h.rule.clone()).or_default() += 1;
        }
    }

    /// Every rule's count.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Where rules come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// rules.toml; `None`, or a file that does not exist: no file rules.
    pub file: Option<PathBuf>,
    /// Read `rule_def` (a store that is given).
    pub store: Option<Arc<dyn Store>>,
    /// Compiled-size limit of one regular expression.
    pub regex_size_limit: usize,
}

/// What [`load`] read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The compiled rules.
    pub set: RuleSet,
    /// The file's `[[reply_time]]` entries (for the reply-time check).
    pub reply_time: Vec<toml::Table>,
    /// Table rules left out (bad body, or a name the file already has), with why.
    pub skipped: Vec<String>,
}

/// The definitions of the file (when it exists) and of the enabled `rule_def` rows. The file
/// must be valid as a whole; a bad row is left out (reported in `skipped`), and a row named as
/// a file rule gives way to it.
pub async fn definitions(src: &Sources) -> Result<(Vec<RuleDef>, Vec<toml::Table>, Vec<String>), RulesError> {
    let mut defs = Vec::new();
    let mut reply_time = Vec::new();
    if let Some(path) = src.file.as_deref().filter(|p| p.exists()) {
        let f = read_file(path)?;
        defs = f.rules;
        reply_time = f.reply_time;
    }
    let mut skipped = Vec::new();
    if let Some(store) = &src.store {
        for row in store.rule_defs().await? {
            if !row.enabled {
                continue;
            }
            if defs.iter().any(|d| d.name == row.name) {
                skipped.push(format!("rule_def '{}': a rule of the file has this name; the file's is used", row.name));
                continue;
            }
            match parse_body(&row.name, &row.body) {
                Ok(d) => defs.push(d),
                Err(e) => skipped.push(format!("rule_def {e}")),
            }
        }
    }
    Ok((defs, reply_time, skipped))
}

/// Reads and compiles the rules of `src`.
pub async fn load(src: &Sources) -> Result<Loaded, RulesError> {
    let (defs, reply_time, skipped) = definitions(src).await?;
    let set = RuleSet::compile(&defs, limit_or_default(src.regex_size_limit))?;
    Ok(Loaded { set, reply_time, skipped })
}

fn limit_or_default(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_REGEX_SIZE_LIMIT
    } else {
        limit
    }
}

/// What the sources held when last compiled (reload only when it changed).
fn fingerprint(file: Option<&Path>, rows: &[crate::store::RuleDefRow]) -> String {
    let mut s = String::new();
    if let Some(text) = file.and_then(|p| std::fs::read_to_string(p).ok()) {
        s.push_str(&text);
    }
    for r in rows {
        s.push_str(&format!("\u{0}{}\u{0}{}\u{0}{}\u{0}{}", r.name, r.enabled, r.updated_at, r.body));
    }
    s
}

/// The rules file of a configuration read from `config_file` (`[[rule]]` and `[[reply_time]]`
/// entries): `[rules] file`, else `rules.toml` beside the configuration file; `None` when neither
/// is given.
pub fn file_of(rules: &crate::config::RulesConfig, config_file: Option<&Path>) -> Option<PathBuf> {
    if !rules.file.as_os_str().is_empty() {
        return Some(rules.file.clone());
    }
    Some(config_file?.parent()?.join("rules.toml"))
}

/// Keeps `live` up to date until `stop` is cancelled: the rules file is watched
/// ([`crate::reload::FileWatch`], as the corps file) and the file and table are re-read every
/// `interval` and on `kick` (SIGHUP); a change recompiles the whole set. An invalid edit is
/// logged and the previous rules stay in force.
pub fn spawn_reloader(
    src: Sources,
    live: Live,
    interval: Duration,
    mut kick: tokio::sync::mpsc::UnboundedReceiver<()>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let watch = src.file.as_deref().and_then(|p| {
        crate::reload::FileWatch::start(None, Some(p), Duration::from_millis(300), tx)
            .map_err(|e| tracing::warn!(error = %e, "cannot watch the rules file; it is re-read by polling only"))
            .ok()
    });
    tokio::spawn(async move {
        let _watch = watch;
        let mut last: Option<String> = None;
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        loop {
            let rows = match &src.store {
                Some(s) => s.rule_defs().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading rule_def failed; keeping the rules in force");
                    Vec::new()
                }),
                None => Vec::new(),
            };
            let print = fingerprint(src.file.as_deref(), &rows);
            if last.as_deref() != Some(print.as_str()) {
                match load(&src).await {
                    Ok(loaded) => {
                        for s in &loaded.skipped {
                            tracing::error!(problem = %s, "a rule was left out");
                        }
                        tracing::info!(rules = loaded.set.len(), "rules loaded");
                        live.set(loaded.set);
                        last = Some(print);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the rules are invalid; keeping the rules in force");
                        last = Some(print);
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
                Some(_) = changed.recv() => tracing::info!("the rules file changed; reloading the rules"),
                Some(()) = kick.recv() => {}
            }
        }
    })
}

/// Decides the revoke rules of a page before it is written: a revoke whose message is in
/// `rows` or already stored (committed) at most N s before the revoke becomes a hit. The checks
/// are then gone from `hits`.
pub async fn resolve_revokes(
    store: &dyn Store,
    corpid: &CorpId,
    rows: &[Row],
    hits: &mut BatchHits,
) -> Result<(), StoreError> {
    if hits.revokes.is_empty() {
        return Ok(());
    }
    let checks = std::mem::take(&mut hits.revokes);
    let in_page: HashMap<&str, &Row> = rows.iter().map(|r| (r.msgid.as_str(), r)).collect();
    let (here, elsewhere): (Vec<_>, Vec<_>) =
        checks.into_iter().partition(|c| in_page.contains_key(c.pre_msgid.as_str()));
    for c in &here {
        let Some(sent) = in_page.get(c.pre_msgid.as_str()) else { continue };
        for (rule, within) in &c.rules {
            let Some(after) = c.revoked_at.checked_sub(sent.msgtime) else { continue };
            if after <= *within {
                let context = if sent.text.is_empty() {
                    format!("revoked {} s after sending", after / 1000)
                } else {
                    format!("revoked {} s after sending: {}", after / 1000, sent.text)
                };
                hits.hits.push(RuleHit {
                    msgid: c.msgid.clone(),
                    rule: rule.clone(),
                    kind: "behaviour".into(),
                    matched: c.pre_msgid.clone(),
                    context,
                    sender: c.sender.clone(),
                    conversation: c.conversation.clone(),
                    msgtime: c.revoked_at,
                });
            }
        }
    }
    hits.hits.extend(store.resolve_revokes(corpid, &elsewhere).await?);
    Ok(())
}

/// What [`backfill`] found in one corp's stored history.
#[derive(Debug, Default)]
pub struct Backfill {
    /// Rows read.
    pub scanned: u64,
    /// Hits found.
    pub hits: u64,
    /// Hits newly stored (with `write`; a second run stores none).
    pub written: u64,
    /// The first hits found, at most the number asked for.
    pub samples: Vec<RuleHit>,
}

/// Rows read per page by [`backfill`].
const BACKFILL_PAGE: u32 = 500;

/// Evaluates `set` over the stored records of `corpid` (those with `msgtime >= since_ms` when
/// given), in seq order, as the pipeline would have: the count, `samples` first hits and, with
/// `write`, the hits stored (INSERT-or-ignore: idempotent).
pub async fn backfill(
    store: &dyn Store,
    set: &RuleSet,
    corpid: &CorpId,
    since_ms: Option<u64>,
    write: bool,
    samples: usize,
) -> Result<Backfill, StoreError> {
    let mut out = Backfill::default();
    let mut after = 0u64;
    while let Some(rows) = store.messages_after(corpid, after, BACKFILL_PAGE, true).await? {
        let Some(last) = rows.last() else { break };
        after = last.seq;
        out.scanned += rows.len() as u64;
        let mut hits = BatchHits::default();
        for row in rows.iter().filter(|r| since_ms.is_none_or(|s| r.msgtime >= s)) {
            set.evaluate(corpid.as_str(), row, &mut hits);
        }
        resolve_revokes(store, corpid, &rows, &mut hits).await?;
        out.hits += hits.hits.len() as u64;
        let room = samples.saturating_sub(out.samples.len());
        out.samples.extend(hits.hits.iter().take(room).cloned());
        if write && !hits.is_empty() {
            out.written += store.insert_rule_hits(corpid, &hits).await?;
        }
    }
    Ok(out)
}
