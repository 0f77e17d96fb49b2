//! The ingestion pipeline: thin actix glue over `sdk`, `crypto`, `message` and `store`.
//!
//! - [`supervisor::Supervisor`] holds the desired set of corps ([`crate::corps`]) and starts,
//!   restarts and stops one [`corp::CorpActor`] per corp (one code path for start-up and reload);
//! - [`corp::CorpActor`] pulls its corp: fetch via the [`sdk_pool::SdkPool`] → decrypt and parse
//!   on the rayon decrypt pool → [`db_writer::WriteBatch`], the next fetch overlapping the
//!   decryption and the write while the corp is behind;
//! - [`db_writer::DbWriter`] commits each batch in its own transaction, batches of different
//!   corps concurrently;
//! - [`sdk_pool::SdkPool`] is the bounded set of OS threads that make every SDK call;
//! - [`media::MediaScheduler`] (when media is on) downloads the corps' media items on its own
//!   worker threads and SDK handles, told of the corps by the supervisor and nudged by corp
//!   actors after batches that stored media.
//!
//! [`Pipeline::start`] wires them together inside a running actix `System`;
//! [`Pipeline::shutdown`] stops fetching and lets in-flight work finish within the configured
//! grace. Stopping is one mechanism ([`shutdown`]): every actor and task listens to the same
//! [`shutdown::Shutdown`] token and holds it until it has finished; the pipeline has stopped when
//! the last one is dropped. [`Stats`] is a live per-corp summary (for `demo`, and later
//! `status`/metrics).

pub mod corp;
pub mod db_writer;
pub mod lease;
pub mod media;
pub mod progress;
pub mod sdk_pool;
pub mod shutdown;
pub mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use crate::corps::Sources;
pub use crate::decode::KeyOutcome;
use crate::sdk::FinanceSdk;
use crate::store::{CorpId, Store};

/// Pull settings shared by every corp (`[pull]`; the proxy is per corp: [`crate::corps::Proxy`]).
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// Wait after a short page.
    pub poll_interval: Duration,
    /// First backoff delay after a failure.
    pub backoff_initial: Duration,
    /// Backoff cap; also the retry interval of a failing corp (permanent errcode).
    pub backoff_max: Duration,
    /// A corp that is behind logs its progress at most this often (`[daemon]
    /// progress_interval`); zero: never.
    pub progress_interval: Duration,
    /// Writes refused in a row (no batch committed in between) after which the corp is marked
    /// `failing` and retried only every `backoff_max` (`[daemon] failing_after`, at least 1).
    pub write_attempts: u32,
    /// The wait after a short page of a corp with callbacks configured (`[callback]
    /// poll_interval`); `None`: callbacks are off (`[callback] listen` unset), every corp polls
    /// at `poll_interval`.
    pub callback_poll_interval: Option<Duration>,
    /// While a corp is behind, its next page is fetched while the one before it is decrypted
    /// and written (`[pull] fetch_ahead`; [`corp`] says when it is not).
    pub fetch_ahead: bool,
}

impl Default for PullSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            progress_interval: Duration::from_secs(10),
            write_attempts: 3,
            callback_poll_interval: None,
            fetch_ahead: false,
        }
    }
}

/// Everything [`Pipeline::start`] needs besides the store, the SDK and the sources.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// SDK threads (`[sdk] threads`).
    pub sdk_threads: usize,
    /// Decrypt threads; 0 = one per core.
    pub decrypt_threads: usize,
    /// Pull timing.
    pub pull: PullSettings,
    /// How often the corp sources are re-read.
    pub reload_interval: Duration,
    /// How long past its timeout a started SDK call may take before it is abandoned.
    pub hang_grace: Duration,
    /// More SDK calls hung at once than this is fatal (exit non-zero).
    pub max_hung_threads: usize,
    /// Media downloads; `None` = off.
    pub media: Option<media::MediaSettings>,
    /// Corp leases (several instances share the database); `None` = this instance runs every
    /// corp.
    pub lease: Option<lease::LeaseSettings>,
    /// How long [`Pipeline::shutdown`] waits for the work in flight (`[daemon] shutdown_grace`).
    pub shutdown_grace: Duration,
    /// The content rules in force ([`crate::rules`]), evaluated on every record; kept up to date
    /// by the caller (an empty set: no rule).
    pub rules: crate::rules::Live,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            sdk_threads: 4,
            decrypt_threads: 0,
            pull: PullSettings::default(),
            reload_interval: Duration::from_secs(30),
            hang_grace: Duration::from_secs(10),
            max_hung_threads: 8,
            media: None,
            lease: None,
            shutdown_grace: crate::config::DaemonConfig::default().shutdown_grace,
            rules: crate::rules::Live::default(),
        }
    }
}

/// What the corp actors share.
pub struct Shared {
    /// The SDK threads.
    pub pool: Arc<sdk_pool::SdkPool>,
    /// The decrypt pool.
    pub decrypt: Arc<rayon::ThreadPool>,
    /// The batch writer.
    pub writer: Addr<db_writer::DbWriter>,
    /// The store (cursor reads).
    pub store: Arc<dyn Store>,
    /// Pull timing.
    pub pull: PullSettings,
    /// Live per-corp summary.
    pub stats: Arc<Stats>,
    /// Set once a fatal error happened (the process must exit non-zero).
    pub fatal: tokio::sync::watch::Sender<Option<String>>,
    /// The media scheduler, when media is on.
    pub media: Option<Addr<media::MediaScheduler>>,
    /// The content rules in force.
    pub rules: crate::rules::Live,
    /// The leases' terms by this process's clock (`[cluster] leases`; empty without).
    pub lease_terms: lease::LeaseTerms,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("pool", &self.pool).field("pull", &self.pull).finish_non_exhaustive()
    }
}

/// The live state of one corp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpStatus {
    /// Rows inserted by this process.
    pub stored: u64,
    /// The committed cursor.
    pub cursor: u64,
    /// Undecryptable rows inserted by this process.
    pub undecryptable: u64,
    /// Distinct msgtypes seen by this process.
    pub msgtypes: BTreeSet<String>,
    /// `running`, `caught up`, `backoff`, `failing`, `stopped`, `restarting`, `lease lost`,
    /// `lease unconfirmed`.
    pub state: String,
    /// The last error (with errmsg for errcodes), cleared by a successful page.
    pub last_error: Option<String>,
    /// The generation of the corp's current actor (a restart increases it).
    pub generation: u64,
    /// Failed pulls and failed actor runs since the last successful pull.
    pub consecutive_failures: u32,
    /// Actor restarts after a failure (not counting restarts for changed settings).
    pub restarts: u64,
    /// SDK errors by [`crate::sdk::SdkError::metric_label`] (and `hung`).
    pub sdk_errors: BTreeMap<String, u64>,
    /// The newest `msgtime` (ms since the epoch) stored by this process.
    pub newest_msgtime_ms: Option<u64>,
    /// When GetChatData last succeeded.
    pub last_success: Option<SystemTime>,
    /// When this process first started the corp (the reference for "no pull yet").
    pub since: Option<SystemTime>,
    /// Recent decryption outcomes per `publickey_ver` (see [`KeyHealth`]).
    pub keys: BTreeMap<u32, KeyHealth>,
    /// The corp settings the `keys` outcomes were measured with ([`crate::corps::CorpSpec::fingerprint`]):
    /// new keys start with a clean slate.
    pub keys_of: String,
    /// Why WeCom's archive APIs (`crate::wecom`) refuse the corp for good (errcode 301052: the
    /// archive service expired), `None` once a metadata pass works again: the corp is failing.
    pub wecom_api_error: Option<String>,
}

/// How many recent records of one key version [`KeyHealth`] remembers.
pub const KEY_WINDOW: u8 = 100;

/// The last [`KEY_WINDOW`] records of one `publickey_ver` of a corp: which ones its configured
/// key could not decrypt. More than half of them undecryptable makes the corp failing: the key
/// configured for that version is wrong or missing (records are still stored, with their
/// ciphertext, for `redecrypt` once the key is fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHealth {
    /// One bit per record, newest lowest; 1 = undecryptable for a key reason.
    bits: u128,
    /// Records remembered (at most [`KEY_WINDOW`]).
    len: u8,
    /// The last key error (never key material: [`crate::crypto::CryptoError`] texts name the
    /// version and the reason only).
    pub last_error: Option<String>,
}

impl KeyHealth {
    /// Remembers one record's outcome.
    pub fn push(&mut self, outcome: &KeyOutcome) {
        let failed = match outcome {
            KeyOutcome::Decrypted => false,
            KeyOutcome::KeyFailed(e) => {
                self.last_error = Some(e.clone());
                true
            }
            KeyOutcome::Unknown => return,
        };
        self.bits = (self.bits << 1) | u128::from(failed);
        self.len = (self.len + 1).min(KEY_WINDOW);
    }

    /// Records remembered.
    pub fn records(&self) -> u32 {
        u32::from(self.len)
    }

    /// Of those, the undecryptable ones.
    pub fn undecryptable(&self) -> u32 {
        let mask = if self.len >= 128 { u128::MAX } else { (1u128 << self.len) - 1 };
        (self.bits & mask).count_ones()
    }

    /// More than half of the recent records are undecryptable.
    pub fn failing(&self) -> bool {
        self.len > 0 && self.undecryptable() * 2 > self.records()
    }

    /// `undecryptable / records` (0 without records).
    pub fn ratio(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            f64::from(self.undecryptable()) / f64::from(self.records())
        }
    }
}

/// A key version that started or stopped failing (for the corp's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The `publickey_ver`.
    pub ver: u32,
    /// Failing now.
    pub failing: bool,
    /// Undecryptable records among the recent ones.
    pub undecryptable: u32,
    /// Recent records.
    pub records: u32,
    /// The last key error.
    pub error: Option<String>,
}

impl CorpStatus {
    /// Failing: a permanent error (bad secret, IP not allowed…), or `failing_after` failures in
    /// a row without a successful pull.
    pub fn is_failing(&self, failing_after: u32) -> bool {
        self.state == "failing"
            || self.consecutive_failures >= failing_after.max(1)
            || self.keys_failing()
            || self.wecom_api_error.is_some()
    }

    /// Some key version has more than half of its recent records undecryptable.
    pub fn keys_failing(&self) -> bool {
        self.keys.values().any(KeyHealth::failing)
    }

    /// Time since the last successful pull (or since the corp was started, when it never had
    /// one), at `now`.
    pub fn since_last_pull(&self, now: SystemTime) -> Option<Duration> {
        self.last_success.or(self.since).and_then(|t| now.duration_since(t).ok())
    }
}

/// A future whose panic is caught and returned as its message (the actor boundary of
/// decision 1: a corp's loop that panics ends like a failure instead of silently killing the
/// actor's task).
pub struct CatchUnwind<F> {
    inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> CatchUnwind<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self { inner: Box::pin(inner) }
    }
}

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match crate::unwind::catch(|| inner.poll(cx)) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(message) => std::task::Poll::Ready(Err(message)),
        }
    }
}

/// Live per-corp summary, updated by the corp actors, and the pipeline's latency histograms.
#[derive(Debug, Default)]
pub struct Stats {
    corps: Mutex<BTreeMap<CorpId, CorpStatus>>,
    /// GetChatData latency as a corp sees it (waiting for an SDK thread included), every
    /// completed call, failed ones too.
    pub pull_seconds: crate::observe::histogram::Histogram,
    /// Batch-write latency: from handing a page to the database writer to its commit (or
    /// failure).
    pub write_seconds: crate::observe::histogram::Histogram,
    /// Callback requests and events (`crate::callback`; empty without `[callback] listen`).
    pub callback: Arc<crate::callback::Counters>,
    /// Rule hits of the committed batches, by rule.
    pub rule_hits: crate::rules::HitCounter,
}

impl Stats {
    /// A copy of every corp's status.
    pub fn snapshot(&self) -> BTreeMap<CorpId, CorpStatus> {
        self.corps.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Updates one corp's status.
    pub fn update(&self, corpid: &CorpId, f: impl FnOnce(&mut CorpStatus)) {
        if let Ok(mut m) = self.corps.lock() {
            f(m.entry(corpid.clone()).or_default());
        }
    }

    /// Forgets a corp's key outcomes when it now runs with other settings than those they were
    /// measured with (`fingerprint`: [`crate::corps::CorpSpec::fingerprint`]).
    pub fn keys_measured_with(&self, corpid: &CorpId, fingerprint: &str) {
        self.update(corpid, |s| {
            if s.keys_of != fingerprint {
                s.keys.clear();
                fingerprint.clone_into(&mut s.keys_of);
            }
        });
    }

    /// Remembers the key outcomes of a stored page (`(publickey_ver, outcome)` per record);
    /// returns the versions that started or stopped failing.
    pub fn record_keys(&self, corpid: &CorpId, outcomes: &[(u32, KeyOutcome)]) -> Vec<KeyChange> {
        let mut changes = Vec::new();
        self.update(corpid, |s| {
            let before: BTreeMap<u32, bool> = s.keys.iter().map(|(v, k)| (*v, k.failing())).collect();
            for (ver, outcome) in outcomes {
                s.keys.entry(*ver).or_default().push(outcome);
            }
            for (ver, k) in &s.keys {
                if before.get(ver).copied().unwrap_or(false) != k.failing() {
                    changes.push(KeyChange {
                        ver: *ver,
                        failing: k.failing(),
                        undecryptable: k.undecryptable(),
                        records: k.records(),
                        error: k.last_error.clone(),
                    });
                }
            }
        });
        changes
    }

    /// Removes a corp (it left the desired set).
    pub fn remove(&self, corpid: &CorpId) {
        if let Ok(mut m) = self.corps.lock() {
            m.remove(corpid);
        }
    }
}

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// The supervisor (send it [`supervisor::Reload`] or [`supervisor::Reconcile`]).
    pub supervisor: Addr<supervisor::Supervisor>,
    /// Live per-corp summary.
    pub stats: Arc<Stats>,
    pool: Arc<sdk_pool::SdkPool>,
    fatal: tokio::sync::watch::Receiver<Option<String>>,
    /// Media counters, when media is on.
    pub media_counters: Option<Arc<media::MediaCounters>>,
    media: Option<Addr<media::MediaScheduler>>,
    stopper: shutdown::Stopper,
    grace: Duration,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A thread pool could not be created.
    #[error("cannot start threads: {0}")]
    Threads(String),
}

impl Pipeline {
    /// Starts the SDK pool, the decrypt pool, the writer and the supervisor, which loads the
    /// sources at once and then every `reload_interval`. Must be called inside an actix `System`.
    pub fn start(
        store: Arc<dyn Store>,
        sdk: Arc<dyn FinanceSdk>,
        sources: Sources,
        config: &PipelineConfig,
    ) -> Result<Pipeline, StartError> {
        let pool =
            sdk_pool::SdkPool::new(Arc::clone(&sdk), config.sdk_threads, config.hang_grace, config.max_hung_threads)
                .map_err(|e| StartError::Threads(e.to_string()))?;
        let decrypt = rayon::ThreadPoolBuilder::new()
            .num_threads(config.decrypt_threads)
            .thread_name(|i| format!("decrypt-{i}"))
            // Deeply nested records (chatrecord in chatrecord…) parse recursively: room to spare.
            .stack_size(8 << 20)
            .build()
            .map_err(|e| StartError::Threads(e.to_string()))?;
        let writer = db_writer::DbWriter::new(Arc::clone(&store)).start();
        let stopper = shutdown::Stopper::new();
        let (media, media_counters) = match &config.media {
            Some(m) => {
                let (addr, counters) =
                    media::MediaScheduler::start(Arc::clone(&store), Arc::clone(&sdk), m.clone(), stopper.listener());
                (Some(addr), Some(counters))
            }
            None => (None, None),
        };
        let stats = Arc::new(Stats::default());
        let (fatal, fatal_rx) = tokio::sync::watch::channel(None);
        let shared = Arc::new(Shared {
            fatal,
            pool: Arc::clone(&pool),
            decrypt: Arc::new(decrypt),
            writer,
            store,
            pull: config.pull.clone(),
            stats: Arc::clone(&stats),
            media: media.clone(),
            rules: config.rules.clone(),
            lease_terms: config.lease.as_ref().map(lease::LeaseTerms::new).unwrap_or_default(),
        });
        let supervisor = supervisor::Supervisor::new(shared, sources, config.reload_interval, stopper.listener())
            .with_leases(config.lease.clone())
            .start();
        Ok(Pipeline {
            supervisor,
            stats,
            pool,
            fatal: fatal_rx,
            media_counters,
            media,
            stopper,
            grace: config.shutdown_grace,
        })
    }

    /// Resolves with the reason once a fatal error happened (the SDK is wedged); the caller
    /// should shut down and exit non-zero. Never resolves otherwise.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Why the pipeline is broken, when an actor shared by every corp has died (a panic in shared
    /// state: the process must exit non-zero and be restarted, decision 1).
    pub fn broken(&self) -> Option<&'static str> {
        if !self.supervisor.connected() {
            return Some("the supervisor actor died (panic); the process must restart");
        }
        if self.media.as_ref().is_some_and(|m| !m.connected()) {
            return Some("the media scheduler died (panic); the process must restart");
        }
        None
    }

    /// Cancelled when [`Pipeline::shutdown`] begins (for listeners that stop with the pipeline
    /// without holding it up).
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stopper.token()
    }

    /// The SDK thread pool (for status and tests).
    pub fn sdk_pool(&self) -> &Arc<sdk_pool::SdkPool> {
        &self.pool
    }

    /// Graceful stop, within `shutdown_grace`: the one stop signal reaches every actor at once.
    /// Every corp stops fetching and its in-flight write finishes; media stops claiming and its
    /// downloads stop between chunks (their attempt is given back); once every corp has ended
    /// the supervisor gives the leases back and lets the SDK threads leave the vendor library
    /// (a hung call is not waited for). Says whether all of it finished in time.
    pub async fn shutdown(self) -> shutdown::Stopped {
        let Pipeline { stopper, grace, supervisor, media, .. } = self;
        let stopped = stopper.stop(grace).await;
        if let shutdown::Stopped::Overran(grace) = stopped {
            tracing::error!(?grace, "in-flight work did not finish within the shutdown grace period");
        }
        // The actors live until here (an actor whose last address goes may stop early).
        drop((supervisor, media));
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_version_fails_when_most_recent_records_are_undecryptable() {
        let stats = Stats::default();
        let id = CorpId::new("ww1").unwrap();
        let bad = KeyOutcome::KeyFailed("wrong key".into());
        let mut page: Vec<(u32, KeyOutcome)> = (0..10).map(|_| (1, bad.clone())).collect();
        page.extend((0..10).map(|_| (2, KeyOutcome::Decrypted)));
        page.push((2, KeyOutcome::KeyFailed("one odd record".into())));
        page.push((3, KeyOutcome::Unknown));
        let changes = stats.record_keys(&id, &page);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].ver, changes[0].failing, changes[0].undecryptable, changes[0].records),
            (1, true, 10, 10)
        );
        let s = &stats.snapshot()[&id];
        assert!(s.is_failing(3) && s.keys_failing());
        assert_eq!((s.keys[&2].undecryptable(), s.keys[&2].records()), (1, 11));
        assert!(!s.keys[&2].failing());
        assert_eq!(s.keys.get(&3).map(KeyHealth::records), Some(0), "a corrupt record says nothing");
        // The same again: no new change. A fixed key: 100 good records push the failures out.
        assert!(stats.record_keys(&id, &page[..10]).is_empty());
        let good: Vec<(u32, KeyOutcome)> = (0..60).map(|_| (1, KeyOutcome::Decrypted)).collect();
        let changes = stats.record_keys(&id, &good);
        assert_eq!((changes[0].ver, changes[0].failing), (1, false), "{changes:?}");
        let many: Vec<(u32, KeyOutcome)> =
            (0..300).map(|i| (4, if i < 250 { bad.clone() } else { KeyOutcome::Decrypted })).collect();
        stats.record_keys(&id, &many);
        let s = &stats.snapshot()[&id];
        assert_eq!((s.keys[&4].undecryptable(), s.keys[&4].records()), (50, 100), "only the last 100 count");
        // New settings (e.g. a fixed key) start clean; the same settings keep the outcomes.
        stats.keys_measured_with(&id, "fp1");
        stats.record_keys(&id, &page[..10]);
        stats.keys_measured_with(&id, "fp1");
        assert!(stats.snapshot()[&id].keys_failing());
        stats.keys_measured_with(&id, "fp2");
        assert!(!stats.snapshot()[&id].keys_failing());
    }

    #[test]
    fn a_panicking_future_ends_with_its_message_and_a_quiet_one_with_its_value() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ok = rt.block_on(CatchUnwind::new(async {
            tokio::task::yield_now().await;
            7
        }));
        assert_eq!(ok, Ok(7));
        let panicked = rt.block_on(CatchUnwind::new(async {
            tokio::task::yield_now().await;
            if ok.is_ok() {
                panic!("boom in corp loop");
            }
            7
        }));
        assert_eq!(panicked, Err("boom in corp loop".to_string()));
    }
}
