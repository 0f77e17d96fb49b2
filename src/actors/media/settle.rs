//! [`Settler`]: records the outcomes of finished media items in batches, one transaction per
//! corp for whatever finished meanwhile (group commit), instead of one transaction per item.
//!
//! The job futures of the scheduler hand each outcome to the settler and wait for its answer
//! before they free their slot, so nothing changes for the scheduler's bookkeeping: an item is
//! recorded (or its recording failed) when its job ends. The settler takes whatever is queued
//! (up to [`MAX_BATCH`]), then:
//!
//! 1. `fsync`s the directories of the files downloaded to the media root (each distinct
//!    directory once: the files of a day share one), because the worker left that to it
//!    ([`crate::media::download::download_unsynced`]); an item whose directory cannot be synced
//!    is not recorded;
//! 2. writes each corp's outcomes in ONE transaction ([`MediaRepo::finish_media_many`]).
//!
//! A crash at any point is safe: an item is recorded as done only after its file and the
//! file's directory are durable; until its transaction commits its row says "downloading"
//! (status 2), which start-up recovery turns back into "pending", and the file is downloaded,
//! verified and renamed over the old one again (ARCHITECTURE.md invariant 5). While one batch is
//! written the next one gathers, so a busy daemon writes few large transactions and an idle one
//! answers at once (no timer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::MediaCounters;
use crate::store::{CorpId, MediaJob, MediaOutcome, MediaRepo, Store};

/// Most outcomes in one batch.
pub const MAX_BATCH: usize = 256;

/// Why an outcome was not recorded. Every one leaves the item's claim in status 2, to be taken
/// back by a recovery.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The transaction failed (the database went away).
    #[error("recording the media results failed: {0}")]
    Store(String),
    /// The directory of the file could not be fsynced.
    #[error("fsync of {path}: {message}")]
    DirSync {
        /// The directory.
        path: PathBuf,
        /// The error.
        message: String,
    },
    /// The settler is gone (the process is ending).
    #[error("the media settler is gone")]
    Gone,
}

impl SettleError {
    /// Every failure may pass: the item is recovered and tried again.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// One outcome to record.
struct Settle {
    corpid: CorpId,
    job: MediaJob,
    outcome: MediaOutcome,
    /// A file under the media root (relative path) whose directory must be fsynced first.
    sync: Option<String>,
    reply: oneshot::Sender<Result<(), SettleError>>,
}

/// The handle of the settler task (cheap to clone); the task ends when every handle is gone.
#[derive(Clone)]
pub struct Settler {
    tx: mpsc::UnboundedSender<Settle>,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").finish_non_exhaustive()
    }
}

impl Settler {
    /// Starts the task on the current actix system (files relative to `root`).
    pub fn start(store: Arc<dyn Store>, root: PathBuf, counters: Arc<MediaCounters>) -> Settler {
        let (tx, rx) = mpsc::unbounded_channel();
        actix_rt::spawn(run(rx, store, root, counters));
        Settler { tx }
    }

    /// Records `outcome` of `job` (after fsyncing the directory of `sync`, a path relative to the
    /// media root, when given); resolves once it is committed or failed.
    pub async fn settle(
        &self,
        corpid: &CorpId,
        job: &MediaJob,
        outcome: &MediaOutcome,
        sync: Option<String>,
    ) -> Result<(), SettleError> {
        let (reply, rx) = oneshot::channel();
        let s = Settle { corpid: corpid.clone(), job: job.clone(), outcome: outcome.clone(), sync, reply };
        self.tx.send(s).map_err(|_| SettleError::Gone)?;
        rx.await.unwrap_or(Err(SettleError::Gone))
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Settle>,
    store: Arc<dyn Store>,
    root: PathBuf,
    counters: Arc<MediaCounters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        settle_batch(&*store, &root, &counters, std::mem::take(&mut batch)).await;
    }
}

/// The distinct directories of the files in `batch` (under `root`).
fn dirs_of(root: &Path, batch: &[Settle]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = batch
        .iter()
        .filter_map(|s| s.sync.as_ref())
        .map(|rel| root.join(rel).parent().map_or_else(|| root.to_path_buf(), Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

async fn settle_batch(store: &dyn Store, root: &Path, counters: &MediaCounters, batch: Vec<Settle>) {
    // 1. The directories, off the event loop.
    let dirs = dirs_of(root, &batch);
    let failed_dirs: BTreeMap<PathBuf, String> = if dirs.is_empty() {
        BTreeMap::new()
    } else {
        let t = Instant::now();
        let synced = tokio::task::spawn_blocking(move || {
            dirs.into_iter()
                .filter_map(|d| match std::fs::File::open(&d).and_then(|f| f.sync_all()) {
                    Ok(()) => None,
                    Err(e) => Some((d, e.to_string())),
                })
                .collect::<BTreeMap<_, _>>()
        })
        .await;
        counters.stages.dir_fsync.observe(t.elapsed());
        match synced {
            Ok(failed) => failed,
            Err(e) => {
                // The blocking task panicked or was cancelled: nothing is known to be durable.
                for s in batch {
                    let _ =
                        s.reply.send(Err(SettleError::DirSync { path: root.to_path_buf(), message: e.to_string() }));
                }
                return;
            }
        }
    };
    // 2. One transaction per corp.
    let mut by_corp: BTreeMap<CorpId, Vec<Settle>> = BTreeMap::new();
    for s in batch {
        let dir =
            s.sync.as_ref().map(|rel| root.join(rel).parent().map_or_else(|| root.to_path_buf(), Path::to_path_buf));
        if let Some(message) = dir.as_ref().and_then(|d| failed_dirs.get(d)) {
            let path = dir.unwrap_or_default();
            tracing::error!(corpid = %s.corpid, id = s.job.id, path = %path.display(), error = %message, "fsync of a media directory failed");
            let _ = s.reply.send(Err(SettleError::DirSync { path, message: message.clone() }));
            continue;
        }
        by_corp.entry(s.corpid.clone()).or_default().push(s);
    }
    for (corpid, items) in by_corp {
        let rows: Vec<(MediaJob, MediaOutcome)> = items.iter().map(|s| (s.job.clone(), s.outcome.clone())).collect();
        let t = Instant::now();
        let span = tracing::info_span!("media", corpid = %corpid);
        let r = tracing::Instrument::instrument(MediaRepo::finish_media_many(store, &corpid, &rows), span).await;
        counters.stages.row_update.observe(t.elapsed());
        let r = r.map_err(|e| e.to_string());
        for s in items {
            let _ = s.reply.send(r.clone().map_err(SettleError::Store));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(rel: Option<&str>) -> Settle {
        let job = MediaJob {
            id: 1,
            msgid: "m".into(),
            item: 0,
            seq: 1,
            msgtime: 0,
            kind: "image".into(),
            sdkfileid: "x".into(),
            md5: None,
            size: None,
            ext: "jpg".into(),
            filename: None,
            play_length: None,
            attempts: 1,
        };
        let (reply, _) = oneshot::channel();
        Settle {
            corpid: CorpId::new("ww1").unwrap(),
            job,
            outcome: MediaOutcome::Released,
            sync: rel.map(Into::into),
            reply,
        }
    }

    #[test]
    fn each_directory_is_synced_once() {
        let batch = [
            settle(Some("ww1/2026/12/07/a.jpg")),
            settle(Some("ww1/2026/12/07/b.jpg")),
            settle(None),
            settle(Some("ww1/2026/12/08/c.jpg")),
        ];
        let dirs = dirs_of(Path::new("/m"), &batch);
        assert_eq!(dirs, [PathBuf::from("/m/ww1/2026/12/07"), PathBuf::from("/m/ww1/2026/12/08")]);
    }
}
