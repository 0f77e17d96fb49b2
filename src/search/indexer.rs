//! The incremental indexer: keeps a [`SearchIndex`] in step with the message tables.
//!
//! - [`Indexer::pass`]: for every corp, reads the rows after the corp's cursor
//!   ([`Store::messages_after`], whole rows, oversized values put back together) and adds them,
//!   committing with the new cursors at least every [`IndexerSettings::commit_every`] and at the
//!   end of the pass. A corp whose message table is gone is removed from the index.
//! - [`Indexer::verify`]: removes documents of rows no longer in the database (compares counts
//!   per seq range, lists seqs only where they differ) and re-reads rows that were undecryptable
//!   when indexed (`redecrypt` fills them in place).
//! - [`Indexer::reindex`]: from scratch, one corp or all.
//! - [`run`]: the daemon's background task: passes every `poll_interval`, verification every
//!   `verify_interval`, and a rebuild when `search reindex` left a request file while the daemon
//!   held the index.
//!
//! Reading is ordinary pooled queries, one page at a time, so ingest never waits for the index;
//! tantivy's work runs on blocking threads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::index::SearchIndex;
use super::SearchError;
use crate::message::Row;
use crate::store::{CorpId, Store};

/// The file `search reindex` writes into the index directory when the daemon holds the index:
/// empty = every corp, else one corpid. The daemon rebuilds and removes it.
pub const REINDEX_REQUEST: &str = "reindex.request";

/// How the indexer works.
#[derive(Debug, Clone, Copy)]
pub struct IndexerSettings {
    /// Rows read per query.
    pub batch: u32,
    /// Commit at least this often while catching up.
    pub commit_every: Duration,
    /// Seqs compared per range in [`Indexer::verify`].
    pub verify_page: u32,
}

impl Default for IndexerSettings {
    fn default() -> Self {
        Self { batch: 1000, commit_every: Duration::from_secs(5), verify_page: 20_000 }
    }
}

/// What a pass or a verification did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows added (or replaced).
    pub added: u64,
    /// Documents of rows no longer in the database removed.
    pub removed_rows: u64,
    /// Corps removed (their table is gone).
    pub removed_corps: u64,
}

/// Keeps one index in step with one store.
pub struct Indexer {
    index: Arc<SearchIndex>,
    store: Arc<dyn Store>,
    settings: IndexerSettings,
    /// The cursors of what was added (committed or not).
    cursors: BTreeMap<String, u64>,
    dirty: bool,
    last_commit: Instant,
    /// Set: stop catching up (the pass commits what it has).
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer").field("index", &self.index).field("cursors", &self.cursors).finish_non_exhaustive()
    }
}

/// Runs a tantivy step on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SearchError::Task(e.to_string()))?
}

impl Indexer {
    /// An indexer that starts from the index's committed cursors.
    pub fn new(index: Arc<SearchIndex>, store: Arc<dyn Store>, settings: IndexerSettings) -> Result<Self, SearchError> {
        let cursors = index.cursors()?;
        Ok(Self { index, store, settings, cursors, dirty: false, last_commit: Instant::now(), stop: None })
    }

    /// Passes end early (committing what they have) once `stop` turns true.
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// The index.
    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.index
    }

    /// The cursors (including what is added but not committed yet).
    pub fn cursors(&self) -> &BTreeMap<String, u64> {
        &self.cursors
    }

    /// Commits what was added, with the cursors.
    pub async fn commit(&mut self) -> Result<(), SearchError> {
        let index = Arc::clone(&self.index);
        let cursors = self.cursors.clone();
        blocking(move || index.commit(&cursors)).await?;
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    async fn add(&mut self, corp: &CorpId, rows: Vec<Row>) -> Result<(), SearchError> {
        let index = Arc::clone(&self.index);
        let corp = corp.clone();
        blocking(move || index.add(&corp, &rows)).await?;
        self.dirty = true;
        Ok(())
    }

    /// Catches up every corp of `corps` and every corp already in the index; commits at the end
    /// (and every `commit_every` on the way).
    pub async fn pass(&mut self, corps: &[CorpId]) -> Result<Progress, SearchError> {
        let mut all: BTreeSet<CorpId> = corps.iter().cloned().collect();
        all.extend(self.cursors.keys().filter_map(|c| CorpId::new(c).ok()));
        let mut progress = Progress::default();
        for corp in &all {
            self.catch_up(corp, &mut progress).await?;
        }
        if self.dirty {
            self.commit().await?;
        }
        Ok(progress)
    }

    async fn catch_up(&mut self, corp: &CorpId, progress: &mut Progress) -> Result<(), SearchError> {
        loop {
            if self.stopping() {
                return Ok(());
            }
            let after = self.cursors.get(corp.as_str()).copied().unwrap_or(0);
            let Some(rows) = self.store.messages_after(corp, after, self.settings.batch, true).await? else {
                if self.cursors.remove(corp.as_str()).is_some() {
                    tracing::info!(corpid = %corp, "message table gone: corp removed from the search index");
                    let index = Arc::clone(&self.index);
                    let c = corp.to_string();
                    blocking(move || index.delete_corp(&c)).await?;
                    self.dirty = true;
                    progress.removed_corps += 1;
                }
                return Ok(());
            };
            let Some(last) = rows.last().map(|r| r.seq) else { return Ok(()) };
            let n = rows.len();
            self.add(corp, rows).await?;
            progress.added += n as u64;
            self.cursors.insert(corp.to_string(), last);
            if self.last_commit.elapsed() >= self.settings.commit_every {
                self.commit().await?;
            }
            if n < self.settings.batch as usize {
                return Ok(());
            }
        }
    }

    /// Removes documents of rows no longer in the database and re-reads rows that were
    /// undecryptable when indexed; commits when something changed.
    pub async fn verify(&mut self) -> Result<Progress, SearchError> {
        let mut progress = Progress::default();
        let corps: Vec<(String, u64)> = self.cursors.iter().map(|(c, s)| (c.clone(), *s)).collect();
        for (corp, cursor) in corps {
            let Ok(id) = CorpId::new(&corp) else { continue };
            progress.removed_rows += self.remove_deleted(&id, cursor).await?;
            progress.added += self.refresh_pending(&id).await?;
        }
        if self.dirty {
            self.commit().await?;
        }
        Ok(progress)
    }

    async fn remove_deleted(&mut self, corp: &CorpId, cursor: u64) -> Result<u64, SearchError> {
        let mut removed = 0;
        let mut lo = 0u64;
        loop {
            let page = self.store.messages_after(corp, lo, self.settings.verify_page, false).await?.unwrap_or_default();
            let full = page.len() >= self.settings.verify_page as usize;
            let db: Vec<u64> = page.iter().map(|r| r.seq).filter(|s| *s <= cursor).collect();
            // The range this page speaks for: (lo, last seq] of a full page, else (lo, cursor].
            let hi = if full { page.last().map_or(cursor, |r| r.seq).min(cursor) } else { cursor };
            if hi > lo {
                let index = Arc::clone(&self.index);
                let c = corp.to_string();
                let (from, to) = (lo + 1, hi);
                let expected = db.len();
                let indexed = blocking(move || {
                    // Counting is cheap; the seqs are listed only where the counts differ.
                    if index.count_in(&c, from, to)? == expected {
                        Ok(None)
                    } else {
                        index.seqs_in(&c, from, to).map(Some)
                    }
                })
                .await?;
                if let Some(indexed) = indexed {
                    let gone: Vec<u64> = indexed.iter().copied().filter(|s| db.binary_search(s).is_err()).collect();
                    if !gone.is_empty() {
                        removed += gone.len() as u64;
                        let index = Arc::clone(&self.index);
                        let c = corp.to_string();
                        blocking(move || index.delete_rows(&c, &gone)).await?;
                        self.dirty = true;
                    }
                }
            }
            if !full || hi >= cursor {
                return Ok(removed);
            }
            lo = hi;
        }
    }

    async fn refresh_pending(&mut self, corp: &CorpId) -> Result<u64, SearchError> {
        let index = Arc::clone(&self.index);
        let c = corp.to_string();
        let seqs = blocking(move || index.pending_seqs(&c, 10_000)).await?;
        let mut fresh = Vec::new();
        let mut gone = Vec::new();
        for seq in seqs {
            match self.store.read_message(corp, seq).await? {
                Some(row) if !(row.msgdata.is_empty() && row.decrypt_error.is_some()) => fresh.push(row),
                Some(_) => {}
                None => gone.push(seq),
            }
        }
        let n = fresh.len() as u64;
        if !fresh.is_empty() {
            self.add(corp, fresh).await?;
        }
        if !gone.is_empty() {
            let index = Arc::clone(&self.index);
            let c = corp.to_string();
            blocking(move || index.delete_rows(&c, &gone)).await?;
            self.dirty = true;
        }
        Ok(n)
    }

    /// Rebuilds from scratch: `corp` alone, or every corp (`corps` and those in the index).
    pub async fn reindex(&mut self, corp: Option<&CorpId>, corps: &[CorpId]) -> Result<Progress, SearchError> {
        let index = Arc::clone(&self.index);
        match corp {
            Some(c) => {
                let name = c.to_string();
                blocking(move || index.delete_corp(&name)).await?;
                self.cursors.remove(c.as_str());
            }
            None => {
                blocking(move || index.delete_all()).await?;
                self.cursors.clear();
            }
        }
        self.commit().await?;
        match corp {
            Some(c) => self.pass(std::slice::from_ref(c)).await,
            None => self.pass(corps).await,
        }
    }
}

/// A pending `search reindex` request in `dir`: `Some(None)` = every corp, `Some(Some(c))` one.
pub fn take_request(dir: &Path) -> Option<Option<CorpId>> {
    let path = dir.join(REINDEX_REQUEST);
    let text = std::fs::read_to_string(&path).ok()?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the reindex request");
    }
    match text.trim() {
        "" => Some(None),
        c => match CorpId::new(c) {
            Ok(c) => Some(Some(c)),
            Err(e) => {
                tracing::warn!(error = %e, "reindex request ignored");
                None
            }
        },
    }
}

/// Leaves a reindex request for the daemon that holds the index in `dir`.
pub fn request_reindex(dir: &Path, corp: Option<&CorpId>) -> Result<PathBuf, SearchError> {
    let path = dir.join(REINDEX_REQUEST);
    let tmp = dir.join(format!("{REINDEX_REQUEST}.tmp"));
    let io = |e| SearchError::Io(path.clone(), e);
    std::fs::write(&tmp, corp.map(CorpId::as_str).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// The daemon's task settings.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// Wait between passes once caught up.
    pub poll_interval: Duration,
    /// Wait between verifications.
    pub verify_interval: Duration,
}

/// The daemon's background task: passes over `corps()` (every corp the sources define, re-read
/// each pass) until `stop` turns true; errors are logged and retried after `poll_interval`.
pub async fn run<F, Fut>(
    mut indexer: Indexer,
    corps: F,
    settings: RunSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<CorpId>>,
{
    let dir = indexer.index().dir().to_path_buf();
    let mut next_verify = Instant::now() + settings.verify_interval;
    let mut failing = false;
    while !*stop.borrow() {
        let list = corps().await;
        let step = async {
            if let Some(request) = take_request(&dir) {
                tracing::info!(corpid = ?request.as_ref().map(CorpId::as_str), "search reindex requested");
                indexer.reindex(request.as_ref(), &list).await?;
            }
            let p = indexer.pass(&list).await?;
            if p.added > 0 || p.removed_corps > 0 {
                tracing::debug!(added = p.added, removed_corps = p.removed_corps, "search index updated");
            }
            if Instant::now() >= next_verify {
                let v = indexer.verify().await?;
                if v.removed_rows > 0 || v.added > 0 {
                    tracing::info!(removed = v.removed_rows, refreshed = v.added, "search index verified");
                }
                next_verify = Instant::now() + settings.verify_interval;
            }
            Ok::<(), SearchError>(())
        };
        match step.await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("search indexing works again");
            }
            Ok(()) => {}
            Err(e) => {
                failing = true;
                tracing::warn!(error = %e, "search indexing failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    if indexer.dirty {
        if let Err(e) = indexer.commit().await {
            tracing::warn!(error = %e, "search index: last commit failed (the next start catches up)");
        }
    }
}

/// Every corpid any source defines (enabled or not; invalid ones left out). The index also keeps
/// following corps it already holds ([`Indexer::pass`]).
pub async fn configured_corps(sources: &crate::corps::Sources) -> Result<Vec<CorpId>, crate::corps::SourceError> {
    let parts = crate::corps::read(sources).await?;
    let mut out: Vec<CorpId> = parts.into_iter().flatten().filter_map(|c| CorpId::new(&c.corpid).ok()).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The daemon's running indexer ([`start`]).
#[derive(Debug)]
pub struct Task {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    index: Arc<SearchIndex>,
}

impl Task {
    /// The index the task keeps (searchers see each of its commits: the review API).
    pub fn index(&self) -> Arc<SearchIndex> {
        Arc::clone(&self.index)
    }

    /// Stops the task after its current step and waits for its last commit.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            tracing::warn!(error = %e, "search indexer ended abnormally");
        }
    }
}

/// Starts the daemon's indexer on the current (actix) runtime when `[search] enabled`; `None`
/// (with a log line saying why) when off, without a directory, or when the index cannot be
/// opened (another process holds it): ingest runs on either way.
pub fn start(cfg: &crate::config::Config, store: Arc<dyn Store>, sources: crate::corps::Sources) -> Option<Task> {
    if !cfg.search.enabled {
        return None;
    }
    let Some(dir) = crate::search::index_dir(cfg) else {
        tracing::warn!("search is enabled but has no directory: set [search] dir (required with MySQL/MariaDB)");
        return None;
    };
    let settings =
        super::WriterSettings { threads: cfg.search.threads.max(1), memory_bytes: cfg.search.memory_mb << 20 };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let indexer = match SearchIndex::open_writer(&dir, settings).and_then(|i| {
        let i = Arc::new(i);
        Indexer::new(Arc::clone(&i), store, IndexerSettings::default())
    }) {
        Ok(ix) => ix.with_stop(rx.clone()),
        Err(e) => {
            tracing::error!(error = %e, "search index not available; ingest continues without it");
            return None;
        }
    };
    tracing::info!(dir = %dir.display(), "search index kept up to date");
    let run_settings = RunSettings {
        poll_interval: cfg.search.poll_interval.max(Duration::from_millis(100)),
        verify_interval: cfg.search.verify_interval,
    };
    let corps = move || {
        let sources = sources.clone();
        async move {
            match configured_corps(&sources).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "search: corp sources not readable; indexing the known corps");
                    Vec::new()
                }
            }
        }
    };
    let index = Arc::clone(indexer.index());
    let handle = actix_rt::spawn(run(indexer, corps, run_settings, rx));
    Some(Task { stop, handle, index })
}
