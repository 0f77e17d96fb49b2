//! [`Snapshots`]: the one [`Report`] the endpoints serve, built at most once per
//! [`Snapshots::every`] (1 s in the daemon) however many requests come in.
//!
//! A report costs a ping, the lease list and two queries per corp (cursor, media counts by
//! status); built per request, a scrape storm or a tight health-check loop multiplied that by the
//! request rate. Here the first caller after the snapshot has aged past `every` builds the next
//! one while every other caller waits for it (one lock held across the build), so concurrent
//! requests share one build and a served snapshot is never older than `every` plus one build.
//! No build happens while nobody asks (no query load on an idle daemon).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{gather, Report, Sources};

/// How old a served snapshot may get in the daemon.
pub const EVERY: Duration = Duration::from_secs(1);

/// The shared snapshot and its builder.
#[derive(Debug)]
pub struct Snapshots {
    sources: Sources,
    every: Duration,
    current: tokio::sync::Mutex<Option<(Instant, Arc<Report>)>>,
    builds: AtomicU64,
    /// The last completeness check, carried into every report built after it.
    completeness: std::sync::Mutex<Option<super::completeness::CompletenessReport>>,
}

impl Snapshots {
    /// Snapshots of `sources`, rebuilt when older than `every`.
    pub fn new(sources: Sources, every: Duration) -> Self {
        Self {
            sources,
            every,
            current: tokio::sync::Mutex::new(None),
            builds: AtomicU64::new(0),
            completeness: std::sync::Mutex::new(None),
        }
    }

    /// The longest a snapshot is served.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// What [`Snapshots::get`] builds reports from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Keeps `c` as the completeness of every report built from now on.
    pub fn set_completeness(&self, c: super::completeness::CompletenessReport) {
        if let Ok(mut slot) = self.completeness.lock() {
            *slot = Some(c);
        }
    }

    /// Reports built so far.
    pub fn builds(&self) -> u64 {
        self.builds.load(Relaxed)
    }

    /// The current snapshot, built first when it is missing or older than `every`.
    pub async fn get(&self) -> Arc<Report> {
        let mut current = self.current.lock().await;
        if let Some((built, report)) = current.as_ref() {
            if built.elapsed() < self.every {
                return Arc::clone(report);
            }
        }
        let started = Instant::now();
        let mut report = gather(&self.sources, SystemTime::now()).await;
        report.builds = self.builds.fetch_add(1, Relaxed) + 1;
        report.completeness = self.completeness.lock().ok().and_then(|c| c.clone());
        let report = Arc::new(report);
        *current = Some((started, Arc::clone(&report)));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::Stats;
    use crate::store::CorpId;

    #[test]
    fn concurrent_requests_share_one_build_and_a_stale_snapshot_is_rebuilt() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
            store.migrate().await.unwrap();
            let stats = Arc::new(Stats::default());
            let id = CorpId::new("wwsnap").unwrap();
            stats.update(&id, |s| s.stored = 1);
            let sources = Sources {
                stats: Some(Arc::clone(&stats)),
                store,
                corps: Vec::new(),
                media: None,
                failing_after: 3,
                alerts: None,
            };
            let snaps = Arc::new(Snapshots::new(sources, Duration::from_millis(300)));
            let gets: Vec<_> = (0..50)
                .map(|_| {
                    let snaps = Arc::clone(&snaps);
                    tokio::spawn(async move { snaps.get().await })
                })
                .collect();
            for g in gets {
                let r = g.await.unwrap();
                assert_eq!((r.builds, r.corps[0].stored), (1, 1));
            }
            assert_eq!(snaps.builds(), 1, "50 concurrent requests, one build");
            stats.update(&id, |s| s.stored = 2);
            assert_eq!(snaps.get().await.corps[0].stored, 1, "served from the snapshot");
            tokio::time::sleep(Duration::from_millis(350)).await;
            let r = snaps.get().await;
            assert_eq!((r.builds, r.corps[0].stored), (2, 2), "rebuilt once older than `every`");
        });
    }
}
