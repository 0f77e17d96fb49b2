//! [`CorpActor`]: one per corp; pulls the corp's records into the database.
//!
//! The loop (a future owned by the actor, traced in a span with the `corpid` field):
//! 1. read the cursor from the store;
//! 2. fetch `(cursor, limit)` on the [`SdkPool`](super::sdk_pool::SdkPool); with `[pull]
//!    fetch_ahead` (off by default) a full page starts the fetch of the next one at once
//!    ([`Ahead`]), so that WeCom's round trip overlaps the decryption instead of following it (a
//!    page of more than [`AHEAD_MAX_BYTES`] does not, to bound the memory; nor does a page after
//!    a failed write, or while the lease is unconfirmed);
//! 3. decrypt and parse the page on the rayon decrypt pool ([`decode::decode_on_with`], which
//!    builds the complete rows and evaluates the rules in force on them, [`crate::rules`]; a panic there becomes [`CorpError::Panicked`] for this corp only,
//!    decision 1);
//! 4. wait for the previous write (at most one write in flight), send
//!    [`WriteBatch`](super::db_writer::WriteBatch) and go back to 2 from the page's max seq while
//!    that write runs. The cursor advances only in the database transaction. A fetch started
//!    ahead is used only if it starts where the loop goes on (it does not after a failed write or
//!    a page fetched again): otherwise its answer is awaited and dropped, so that a corp never
//!    has two calls in flight.
//!
//! A short page means "caught up": settle the write, wait `poll_interval`. SDK and store
//! failures back off exponentially with jitter (`backoff_initial..backoff_max`) and restart from
//! the committed cursor; a permanent errcode (40001, 48002, 60020, any unknown one) marks the
//! corp `failing` and retries every `backoff_max`. So does a batch the database refuses
//! `write_attempts` (`[daemon] failing_after`) times in a row (a poison batch: a trigger, a revoked privilege, a full
//! disk): the corp stays `failing` with the database's reason until a write commits again.
//! [`Stop`] (this corp) or the pipeline's stop (its [`Shutdown`] is a child of the pipeline's)
//! ends the loop gracefully: no new fetch, the call in flight (also one started ahead) and the
//! in-flight write finish; the loop holds the `Shutdown` until then. The actor reports its end
//! to the supervisor ([`CorpExited`]). A long catch-up is logged as it goes ([`Progress`]:
//! records/s, lag, ETA every `progress_interval`, then "caught up").
//!
//! [`PullNow`] (a `msgaudit_notify` callback, `crate::callback`) ends the "caught up" wait at once.
//! It is coalesced: it stores at most one wake-up ([`tokio::sync::Notify`]), so a burst gives one
//! pull, and a burst during a pull gives one more after it. A corp with callbacks configured
//! waits `[callback] poll_interval` instead of `poll_interval` (polling stays the safety net).

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use actix::prelude::*;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::db_writer::{Committed, WriteBatch};
use super::progress::{self, Line, Progress};
use super::sdk_pool::PoolError;
use super::shutdown::Shutdown;
use super::{KeyOutcome, Shared};
use crate::corps::CorpSpec;
use crate::decode::{self, DecodeError};
use crate::sdk::{ChatPage, NetOptions, SdkError};
use crate::store::{CorpId, StoreError};

/// Stop pulling (graceful).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// New records exist (a callback said so): end the "caught up" wait now. Coalesced: any number
/// of these before the loop next waits give one pull.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PullNow;

/// Sent to the supervisor when a corp actor's loop has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CorpExited {
    /// The corp.
    pub corpid: CorpId,
    /// The generation of the actor that ended.
    pub generation: u64,
    /// `Ok` after [`Stop`], the error otherwise.
    pub result: Result<(), CorpError>,
}

/// Why a corp's loop ended on its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CorpError {
    /// Decryption or parsing panicked (caught).
    #[error("decrypting/parsing a page panicked: {0}")]
    Panicked(String),
    /// The SDK pool or the decrypt pool is gone.
    #[error("{0}")]
    PoolGone(String),
    /// A failure of the whole process (the SDK is wedged): the daemon must exit non-zero.
    #[error("fatal: {0}")]
    Fatal(String),
    /// Another instance took the corp's lease (the batch was not written).
    #[error("{0}")]
    LeaseLost(String),
}

impl From<DecodeError> for CorpError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Panicked(message) => Self::Panicked(message),
            e @ DecodeError::PoolGone => Self::PoolGone(e.to_string()),
        }
    }
}

/// The actor of one corp.
pub struct CorpActor {
    spec: CorpSpec,
    generation: u64,
    shared: Arc<Shared>,
    /// Stops this corp only ([`Stop`]).
    stop: CancellationToken,
    /// Handed to the pull loop when the actor starts.
    shutdown: Option<Shutdown>,
    supervisor: Recipient<CorpExited>,
    /// [`PullNow`]'s wake-up (one stored permit at most: coalescing).
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for CorpActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpActor").field("corpid", &self.spec.corpid).field("generation", &self.generation).finish()
    }
}

impl CorpActor {
    /// An actor for `spec`; `generation` must differ from any earlier actor of the same corp.
    /// It stops on [`Stop`] or with `shutdown` (a child of the pipeline's).
    pub fn new(
        spec: CorpSpec,
        generation: u64,
        shared: Arc<Shared>,
        supervisor: Recipient<CorpExited>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            spec,
            generation,
            shared,
            stop: shutdown.token().clone(),
            shutdown: Some(shutdown),
            supervisor,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl Actor for CorpActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(stop) = self.shutdown.take() else { return };
        let puller = Puller {
            spec: self.spec.clone(),
            generation: self.generation,
            shared: Arc::clone(&self.shared),
            stop,
            progress: Progress::new(self.shared.pull.progress_interval),
            write_failures: std::sync::atomic::AtomicU32::new(0),
            wake: Arc::clone(&self.wake),
        };
        let span = tracing::info_span!("corp", corpid = %self.spec.corpid, generation = self.generation);
        // A panic anywhere in the loop ends this corp's run like an error (decision 1), so the
        // supervisor hears of it and restarts the corp; without this the actor would vanish.
        let run = super::CatchUnwind::new(puller.run().instrument(span));
        ctx.spawn(run.into_actor(self).map(|result, act, ctx| {
            let result = result.unwrap_or_else(|panic| Err(CorpError::Panicked(panic)));
            act.supervisor.do_send(CorpExited { corpid: act.spec.corpid.clone(), generation: act.generation, result });
            ctx.stop();
        }));
    }
}

impl Handler<PullNow> for CorpActor {
    type Result = ();

    fn handle(&mut self, _: PullNow, _ctx: &mut Self::Context) {
        self.wake.notify_one();
    }
}

impl Handler<Stop> for CorpActor {
    type Result = ();

    fn handle(&mut self, _: Stop, _ctx: &mut Self::Context) {
        self.stop.cancel();
    }
}

/// The state of one pull loop.
struct Puller {
    spec: CorpSpec,
    generation: u64,
    shared: Arc<Shared>,
    /// This corp's stop; held until the loop has ended.
    stop: Shutdown,
    progress: Progress,
    /// Failed writes since the last committed one.
    write_failures: std::sync::atomic::AtomicU32,
    /// Set by [`PullNow`].
    wake: Arc<tokio::sync::Notify>,
}

/// The previous page's encrypted bytes above which the next page is not fetched ahead: at most
/// three pages are then in memory at once (one fetched ahead, one being decoded, one being
/// written) only while pages are small; WeCom's pages of huge records are fetched one at a time.
pub const AHEAD_MAX_BYTES: usize = 16 << 20;

/// A fetch started before the page in hand was decoded: the cursor it reads from, and the call.
struct Ahead {
    seq: u64,
    handle: tokio::task::JoinHandle<Result<ChatPage, PoolError>>,
}

/// One GetChatData call on the pool from `seq`, timed into `pull_seconds` (owns what it needs,
/// so that it can run as a task of its own: [`Ahead`]).
fn fetch(
    shared: Arc<Shared>,
    spec: &CorpSpec,
    generation: u64,
    seq: u64,
    net: &NetOptions,
) -> impl std::future::Future<Output = Result<ChatPage, PoolError>> + 'static {
    let (corpid, secret, limit, net) = (spec.corpid.clone(), spec.secret.clone(), spec.limit, net.clone());
    async move {
        let started = std::time::Instant::now();
        let page = shared.pool.get_chat_data(&corpid, generation, &secret, seq, limit, &net).await;
        shared.stats.pull_seconds.observe(started.elapsed());
        page
    }
}

/// A write in flight: the cursor it will commit and its stats.
struct InFlight {
    handle: tokio::task::JoinHandle<Result<Result<Committed, StoreError>, MailboxError>>,
    undecryptable: u64,
    msgtypes: Vec<String>,
    newest_msgtime_ms: Option<u64>,
    keys: Vec<(u32, KeyOutcome)>,
    /// The page's rule hits (counted once committed).
    rule_hits: Vec<crate::store::RuleHit>,
}

impl Puller {
    fn stopped(&self) -> bool {
        self.stop.is_shutdown()
    }

    /// The writes failed `write_attempts` times in a row: the corp is failing.
    fn write_poisoned(&self) -> bool {
        self.write_failures.load(std::sync::atomic::Ordering::Relaxed) >= self.write_attempts()
    }

    /// `[daemon] failing_after`, at least 1.
    fn write_attempts(&self) -> u32 {
        self.shared.pull.write_attempts.max(1)
    }

    /// The wait before re-fetching after a failed write: growing, and `backoff_max` once the
    /// writes are poisoned.
    fn write_retry_delay(&self, backoff: &mut Backoff) -> Duration {
        if self.write_poisoned() {
            backoff.max_with_jitter()
        } else {
            backoff.next_delay()
        }
    }

    /// Sleeps `d`, or less when stopped; true when stopped.
    async fn sleep(&mut self, d: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => self.stopped(),
            () = self.stop.recv() => true,
        }
    }

    /// Under leases, whether a call may start now (always without leases).
    fn may_call_now(&self) -> bool {
        self.spec.fence.as_ref().is_none_or(|f| self.shared.lease_terms.may_call(&self.spec.corpid, f.token))
    }

    /// Under leases: waits until the keeper has confirmed this corp's lease for long enough to
    /// start a call ([`super::lease::LeaseTerms::may_call`]); true when stopped meanwhile. A keeper
    /// that cannot renew in time thus pauses the pulls before another instance can claim the corp.
    async fn wait_for_lease(&mut self) -> bool {
        let Some(token) = self.spec.fence.as_ref().map(|f| f.token) else { return false };
        let mut paused: Option<std::time::Instant> = None;
        while !self.shared.lease_terms.may_call(&self.spec.corpid, token) {
            if paused.is_none() {
                tracing::warn!(token, "lease not confirmed in time; pulls paused until it is renewed");
                self.set_state("lease unconfirmed", None);
                paused = Some(std::time::Instant::now());
            }
            if self.sleep(Duration::from_millis(50)).await {
                return true;
            }
        }
        if let Some(since) = paused {
            tracing::info!(token, paused = ?since.elapsed(), "lease renewed; pulling again");
            self.set_state("running", None);
        }
        false
    }

    /// The "caught up" wait: `d`, or until [`PullNow`]; true when stopped.
    async fn wait_for_records(&mut self, d: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        let wake = Arc::clone(&self.wake);
        tokio::select! {
            () = tokio::time::sleep(d) => self.stopped(),
            () = wake.notified() => self.stopped(),
            () = self.stop.recv() => true,
        }
    }

    /// The wait after a short page: `[callback] poll_interval` when the corp has callbacks and
    /// the listener is on, else `poll_interval`.
    fn poll_interval(&self) -> Duration {
        match (&self.spec.callback, self.shared.pull.callback_poll_interval) {
            (Some(_), Some(d)) => d,
            _ => self.shared.pull.poll_interval,
        }
    }

    /// A failed pull or write: state, error, the failure streak and the SDK error counter.
    fn failed(&self, state: &str, error: String, sdk_label: Option<String>) {
        self.shared.stats.update(&self.spec.corpid, |s| {
            s.state = state.to_string();
            s.last_error = Some(error);
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if let Some(label) = sdk_label {
                *s.sdk_errors.entry(label).or_default() += 1;
            }
        });
    }

    /// GetChatData succeeded (the failure streak ends only once the page is also stored).
    fn pulled(&self) {
        self.shared.stats.update(&self.spec.corpid, |s| s.last_success = Some(std::time::SystemTime::now()));
    }

    fn set_state(&self, state: &str, error: Option<String>) {
        self.shared.stats.update(&self.spec.corpid, |s| {
            s.state = state.to_string();
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    async fn run(mut self) -> Result<(), CorpError> {
        let corpid = self.spec.corpid.clone();
        let mut backoff = Backoff::new(self.shared.pull.backoff_initial, self.shared.pull.backoff_max);
        self.set_state("starting", None);
        let generation = self.generation;
        self.shared.stats.update(&corpid, |s| {
            s.generation = generation;
            s.since.get_or_insert_with(std::time::SystemTime::now);
        });
        self.shared.stats.keys_measured_with(&corpid, &self.spec.fingerprint());
        // 1. The cursor.
        let mut committed = loop {
            match self.shared.store.cursor(&corpid).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the cursor failed");
                    self.failed("backoff", e.to_string(), None);
                    if self.sleep(backoff.next_delay()).await {
                        self.set_state("stopped", None);
                        return Ok(());
                    }
                }
            }
        };
        backoff.reset();
        self.shared.stats.update(&corpid, |s| s.cursor = committed);
        tracing::info!(cursor = committed, limit = self.spec.limit, "pulling");
        let net = NetOptions {
            proxy: self.spec.proxy.url.clone(),
            proxy_password: self.spec.proxy.password.clone(),
            timeout: self.spec.timeout,
        };
        let mut next_seq = committed;
        let mut inflight: Option<InFlight> = None;
        let mut ahead: Option<Ahead> = None;
        let result = loop {
            if self.stopped() {
                break Ok(());
            }
            // 2. Fetch (overlapping the previous page's write), or take the fetch started ahead.
            let mut call = match ahead.take() {
                Some(a) if a.seq == next_seq => a.handle,
                stale => {
                    if let Some(a) = stale {
                        // Not where the loop goes on: one call per corp at a time, so wait for it.
                        let _ = a.handle.await;
                    }
                    // Under leases, a call starts only while the lease is known to be ours long enough.
                    if self.wait_for_lease().await {
                        break Ok(());
                    }
                    actix_rt::spawn(fetch(Arc::clone(&self.shared), &self.spec, self.generation, next_seq, &net))
                }
            };
            let fetched = tokio::select! {
                r = &mut call => r,
                () = self.stop.recv() => {
                    // Let the call in flight finish (its answer is dropped; a hung one is cut
                    // off by the pool): with leases, the corp is handed to another instance
                    // once this actor has ended, and two instances must never pull it at once.
                    let _ = call.await;
                    break Ok(());
                }
            };
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(e) => break Err(CorpError::Panicked(format!("the GetChatData task failed: {e}"))),
            };
            let page = match fetched {
                Ok(page) => page,
                Err(PoolError::Stopped) => break Err(CorpError::PoolGone("the SDK thread pool is stopped".into())),
                Err(e @ PoolError::TooManyHung(..)) => {
                    let _ = self.settle(&mut inflight, &mut committed).await;
                    break Err(CorpError::Fatal(e.to_string()));
                }
                Err(e @ PoolError::Hung(_)) => {
                    if let Err(err) = self.settle(&mut inflight, &mut committed).await {
                        break Err(err);
                    }
                    next_seq = committed;
                    tracing::error!(error = %e, "GetChatData hung; backing off");
                    self.failed("backoff", e.to_string(), Some("hung".into()));
                    if self.sleep(backoff.next_delay()).await {
                        break Ok(());
                    }
                    continue;
                }
                Err(PoolError::Sdk(e)) => {
                    if let Err(err) = self.settle(&mut inflight, &mut committed).await {
                        break Err(err);
                    }
                    next_seq = committed;
                    let delay = if !is_permanent(&e) {
                        tracing::warn!(error = %e, label = %e.metric_label(), "GetChatData failed; backing off");
                        self.failed("backoff", e.to_string(), Some(e.metric_label()));
                        backoff.next_delay()
                    } else {
                        tracing::error!(error = %e, label = %e.metric_label(), "GetChatData failed permanently; corp is failing");
                        self.failed("failing", e.to_string(), Some(e.metric_label()));
                        backoff.max_with_jitter()
                    };
                    if self.sleep(delay).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            self.pulled();
            let count = page.records.len();
            let max_seq = page.max_seq().unwrap_or(next_seq).max(next_seq);
            // The next page's fetch overlaps this one's decryption and write, when this one is
            // full (more is waiting), small, and the writes are going through.
            let small = || {
                page.records.iter().map(|r| r.encrypt_chat_msg.len() + r.encrypt_random_key.len()).sum::<usize>()
                    <= AHEAD_MAX_BYTES
            };
            if self.shared.pull.fetch_ahead
                && count >= self.spec.limit as usize
                && count > 0
                && small()
                && self.write_failures.load(std::sync::atomic::Ordering::Relaxed) == 0
                && self.may_call_now()
            {
                let handle =
                    actix_rt::spawn(fetch(Arc::clone(&self.shared), &self.spec, self.generation, max_seq, &net));
                ahead = Some(Ahead { seq: max_seq, handle });
            }
            // 3. Decrypt + parse on the decrypt pool.
            let rules = Some(self.shared.rules.current()).filter(|r| !r.is_empty()).map(|r| (r, corpid.clone()));
            let decoded =
                match decode::decode_on_with(&self.shared.decrypt, Arc::clone(&self.spec.keyring), page.records, rules)
                    .await
                {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = self.settle(&mut inflight, &mut committed).await;
                        break Err(e.into());
                    }
                };
            // 4. One write in flight: settle the previous one, then send this one.
            if let Err(e) = self.settle(&mut inflight, &mut committed).await {
                break Err(e);
            }
            if committed < next_seq {
                // The previous write failed: this page does not follow the committed cursor.
                next_seq = committed;
                if self.sleep(self.write_retry_delay(&mut backoff)).await {
                    break Ok(());
                }
                continue;
            }
            // Only a committed write ends the backoff of failing writes.
            if self.write_failures.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                backoff.reset();
            }
            if count > 0 {
                let undecryptable = decoded.rows.iter().filter(|r| r.decrypt_error.is_some()).count() as u64;
                let newest_msgtime_ms = decoded.rows.iter().map(|r| r.msgtime).max();
                let mut msgtypes: Vec<String> = decoded.rows.iter().map(|r| r.msgtype.clone()).collect();
                msgtypes.sort_unstable();
                msgtypes.dedup();
                let (writer, stats) = (self.shared.writer.clone(), Arc::clone(&self.shared.stats));
                let keys = decoded.keys;
                let mut hits = decoded.hits;
                // Revoke rules need the revoked message's time: in this page or committed.
                if let Err(e) =
                    crate::rules::resolve_revokes(&*self.shared.store, &corpid, &decoded.rows, &mut hits).await
                {
                    tracing::warn!(error = %e, "deciding revoke rules failed; fetching the page again");
                    self.failed("backoff", e.to_string(), None);
                    if self.sleep(backoff.next_delay()).await {
                        break Ok(());
                    }
                    continue;
                }
                let rule_hits = hits.hits.clone();
                let msg = WriteBatch {
                    corpid: corpid.clone(),
                    rows: decoded.rows,
                    media: decoded.media,
                    hits,
                    new_cursor: max_seq,
                    fence: self.spec.fence.clone(),
                };
                let handle = actix_rt::spawn(async move {
                    let started = std::time::Instant::now();
                    let written = writer.send(msg).await;
                    stats.write_seconds.observe(started.elapsed());
                    written
                });
                inflight = Some(InFlight { handle, undecryptable, msgtypes, newest_msgtime_ms, keys, rule_hits });
                next_seq = max_seq;
            }
            if count < self.spec.limit as usize {
                if let Err(e) = self.settle(&mut inflight, &mut committed).await {
                    break Err(e);
                }
                if committed < next_seq {
                    next_seq = committed;
                    if self.sleep(self.write_retry_delay(&mut backoff)).await {
                        break Ok(());
                    }
                    continue;
                }
                self.set_state("caught up", None);
                self.log_progress(false);
                self.shared.stats.update(&corpid, |s| s.consecutive_failures = 0);
                if self.wait_for_records(self.poll_interval()).await {
                    break Ok(());
                }
            } else if !self.write_poisoned() {
                self.set_state("running", None);
                self.log_progress(true);
            }
        };
        // Graceful end: the call started ahead and the in-flight write finish.
        if let Some(a) = ahead.take() {
            let _ = a.handle.await;
        }
        let settled = self.settle(&mut inflight, &mut committed).await;
        self.set_state("stopped", None);
        tracing::info!(cursor = committed, "stopped");
        result.and(settled)
    }

    /// After a page (`full`: it held the limit): the catch-up's progress line, if one is due.
    fn log_progress(&mut self, full: bool) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let show = |d: Option<Duration>| d.map(progress::human).unwrap_or_else(|| "unknown".into());
        match self.progress.page(full, std::time::Instant::now(), now_ms) {
            Some(Line::Progress { records, per_sec, seq, lag, eta }) => tracing::info!(
                records,
                records_per_sec = (per_sec * 10.0).round() / 10.0,
                seq,
                lag = %show(lag),
                eta = %show(eta),
                "catching up"
            ),
            Some(Line::CaughtUp { records, took, seq, lag }) => tracing::info!(
                records,
                took = %progress::human(took),
                seq,
                lag = %show(lag),
                "caught up"
            ),
            None => {}
        }
    }

    /// Waits for the in-flight write; on success moves `committed` and the stats. A store error
    /// is logged and leaves `committed` where it was (the caller re-fetches from there).
    async fn settle(&mut self, inflight: &mut Option<InFlight>, committed: &mut u64) -> Result<(), CorpError> {
        let Some(w) = inflight.take() else { return Ok(()) };
        match w.handle.await {
            Ok(Ok(Ok(c))) => {
                self.write_failures.store(0, std::sync::atomic::Ordering::Relaxed);
                *committed = (*committed).max(c.seq);
                self.progress.stored(c.outcome.inserted_rows, *committed, w.newest_msgtime_ms);
                self.shared.stats.rule_hits.add(&w.rule_hits);
                self.shared.stats.update(&self.spec.corpid, |s| {
                    s.cursor = *committed;
                    s.stored += c.outcome.inserted_rows;
                    s.undecryptable += w.undecryptable;
                    s.msgtypes.extend(w.msgtypes.into_iter().filter(|t| !t.is_empty()));
                    s.newest_msgtime_ms = s.newest_msgtime_ms.max(w.newest_msgtime_ms.filter(|&t| t > 0));
                    s.last_error = None;
                    s.consecutive_failures = 0;
                });
                tracing::debug!(cursor = c.seq, rows = c.outcome.inserted_rows, "batch committed");
                crate::observe::log_key_changes(&self.shared.stats.record_keys(&self.spec.corpid, &w.keys));
                if c.outcome.inserted_media > 0 {
                    if let Some(media) = &self.shared.media {
                        media.do_send(super::media::Nudge(self.spec.corpid.clone()));
                    }
                }
                Ok(())
            }
            Ok(Ok(Err(e @ StoreError::Fenced { .. }))) => {
                tracing::error!(error = %e, "the lease was taken over: stopping at once, the batch is not written");
                Err(CorpError::LeaseLost(e.to_string()))
            }
            Ok(Ok(Err(e))) => {
                let n = self.write_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed).saturating_add(1);
                if n >= self.write_attempts() {
                    // A poison batch: no more quick retries (each re-fetches the page and
                    // re-isolates it); the corp is failing with the reason until a write commits.
                    let every = self.shared.pull.backoff_max;
                    tracing::error!(error = %e, attempts = n, cursor = *committed, "the database refused this batch {n} times in a row; corp is failing, retrying every {every:?}");
                    self.failed(
                        "failing",
                        format!(
                            "the batch after seq {} was refused {n} times in a row (retrying every {every:?}): {e}",
                            *committed
                        ),
                        None,
                    );
                } else {
                    tracing::warn!(error = %e, attempts = n, "writing a batch failed; will re-fetch from the committed cursor");
                    self.failed(if e.is_retryable() { "backoff" } else { "failing" }, e.to_string(), None);
                }
                Ok(())
            }
            // The shared writer is gone or its task panicked: state shared by every corp is
            // broken, so the process must exit (decision 1), not this corp restart.
            Ok(Err(e)) => Err(CorpError::Fatal(format!("the database writer is gone: {e}"))),
            Err(e) => Err(CorpError::Fatal(format!("the database writer failed: {e}"))),
        }
    }
}

/// True for SDK errors that mark a corp failing rather than backing off (decision 11).
pub fn is_permanent(e: &SdkError) -> bool {
    !e.is_retryable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_errcodes() {
        let api = |errcode| SdkError::Api { call: "GetChatData", errcode, errmsg: "x".into() };
        for code in [40001, 48002, 60020, 301052] {
            assert!(is_permanent(&api(code)), "{code}");
        }
        for code in [45009, 42001] {
            assert!(!is_permanent(&api(code)), "{code}");
        }
        // A crash of the vendor SDK (in its sdk-worker process) at the same page: backoff until
        // the third in a row, then the corp is failing.
        let crashed = |crashes| SdkError::Crashed {
            call: "GetChatData",
            how: "was killed by signal 11 (SIGSEGV)".into(),
            at: "the page after seq 7".into(),
            crashes,
            limit: 3,
        };
        assert!(!is_permanent(&crashed(1)) && !is_permanent(&crashed(2)));
        assert!(is_permanent(&crashed(3)));
    }
}
