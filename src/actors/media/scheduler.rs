//! [`MediaScheduler`]: the one async actor that decides which items run, and the job loop.
//!
//! Each corp is in one [`Phase`]. [`MediaScheduler::schedule`] walks the corps round-robin and,
//! while there is room (`workers` overall, `per_corp` per corp), starts a recovery (a corp that
//! needs one, once none of its items is in flight) or a claim. Each claimed item then runs one
//! straight-line future, [`run_job`]: run it on a download worker → settle its outcome through
//! the [`Settler`] (batched with whatever else finished meanwhile). When the future ends the
//! scheduler frees the slot ([`MediaScheduler::finished`]) and schedules again: claim → run →
//! settle, with nothing kept only in memory. A voice item then goes to the transcoder pool
//! (`transcode_workers` threads of its own, so that no download waits for an encoder) and its
//! result is settled the same way ([`run_transcode`]); the row says "interrupted" meanwhile
//! (decision 2).
//!
//! Shutdown is the pipeline's one [`Shutdown`]: once it is signalled nothing new is claimed,
//! the workers stop downloads between two chunks (their attempt is given back), a claim that
//! comes back is given back, and every future in flight (a job, a claim, a recovery, a look for
//! cut-off transcodes) holds a clone of it until its last database update is made, so the
//! pipeline has stopped only once they all have.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio_util::sync::CancellationToken;

use super::settle::Settler;
use super::stages::MediaStages;
use super::worker::{Adopt, Fetch, MediaWorker, Transcode};
use super::{MediaSettings, TRANSCODE_INTERRUPTED};
use crate::actors::shutdown::Shutdown;
use crate::backoff::Backoff;
use crate::corps::CorpSpec;
use crate::media::download::{self, DownloadError, Downloaded};
use crate::media::Adoption;
use crate::sdk::{FinanceSdk, NetOptions};
use crate::store::{CorpId, MediaJob, MediaOutcome, Store};

/// Most voice items waiting for the transcoder pool (all corps) before no more items are claimed.
/// Transcodes that are still queued at a graceful stop are made before the stop completes (within
/// `[daemon] shutdown_grace`); a kill leaves them "interrupted" (decision 2), never more than this.
const TRANSCODE_BACKLOG: usize = 64;

/// The desired corps (sent by the supervisor after every reconcile).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MediaCorps(pub Vec<CorpSpec>);

/// A corp stored new media items.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Nudge(pub CorpId);

/// Counters of the scheduler (for `demo`, tests and metrics).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Items downloaded and verified.
    pub done: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Items failed for good.
    pub failed: AtomicU64,
    /// Voice files transcoded.
    pub transcoded: AtomicU64,
    /// Transcodes that failed (originals kept).
    pub transcode_failed: AtomicU64,
    /// Complete MP3s of transcodes cut off by a kill, found and recorded at start-up.
    pub adopted: AtomicU64,
    /// Looks for cut-off transcodes that the database cut short (each is made again later).
    pub adopt_failed: AtomicU64,
    /// How long each stage takes.
    pub stages: MediaStages,
}

/// Where one corp's media work stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its claims must be taken back (and held items queued) before it claims: when it first
    /// appears, and after a claim or a result could not be written (the database went away).
    /// Starts once none of its items is in flight, so that no item is taken back under a worker.
    Unrecovered,
    /// The recovery is under way.
    Recovering,
    /// Claims when there is room.
    Ready,
    /// A claim is under way; `then_recover`: a result could not be written meanwhile.
    Claiming {
        /// Recover before the next claim.
        then_recover: bool,
    },
    /// The last claim came back short, or a claim or recovery failed: nothing more until a
    /// nudge, the sweep, a new corp list or a finished item wakes it up.
    Idle {
        /// Wakes up [`Phase::Ready`] (else [`Phase::Unrecovered`]).
        recovered: bool,
    },
}

impl Phase {
    /// Something may have changed: an idle corp looks again.
    fn wake(self) -> Phase {
        match self {
            Phase::Idle { recovered: true } => Phase::Ready,
            Phase::Idle { recovered: false } => Phase::Unrecovered,
            p => p,
        }
    }

    /// A result could not be written: its claim stays in status 2 and must be taken back (by a
    /// recovery, once nothing of the corp is in flight) before the corp claims again.
    fn must_recover(self) -> Phase {
        match self {
            Phase::Ready => Phase::Unrecovered,
            Phase::Claiming { .. } => Phase::Claiming { then_recover: true },
            Phase::Idle { .. } => Phase::Idle { recovered: false },
            p @ (Phase::Unrecovered | Phase::Recovering) => p,
        }
    }
}

struct CorpMedia {
    spec: CorpSpec,
    net: NetOptions,
    phase: Phase,
    /// Items of this corp between their claim and the settle of their download.
    inflight: usize,
    /// Voice items of this corp between their download's settle and their transcode's.
    transcoding: usize,
    /// The look for MP3s of cut-off transcodes is due: at start-up, and again after a transcode
    /// result could not be recorded. It starts once the corp is recovered and none of its
    /// transcodes is in flight (so that it never redoes one under the transcoder).
    adopt_due: bool,
    /// After a look that the database cut short: not again before this (one sweep later).
    adopt_not_before: Option<Instant>,
}

/// The span of one corp's media work: every line logged inside (ours and the database
/// driver's) carries the corpid.
fn corp_span(corpid: &CorpId) -> tracing::Span {
    tracing::info_span!("media", corpid = %corpid)
}

/// What every job's future needs (cheap to clone).
#[derive(Clone)]
struct JobEnv {
    store: Arc<dyn Store>,
    workers: Addr<MediaWorker>,
    /// The transcoder pool (`transcode_workers` threads; they never open an SDK handle).
    transcoders: Addr<MediaWorker>,
    settler: Settler,
    settings: Arc<MediaSettings>,
    counters: Arc<MediaCounters>,
    /// The wait after a local I/O failure (read-only or full media root): grows with every one
    /// in a row, whichever item hits it, back to `backoff_initial` after a good download.
    local_backoff: Arc<Mutex<Backoff>>,
}

/// How a job ended, for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobEnd {
    /// Its result is in the database.
    Settled,
    /// Its result is in the database and the voice file must be transcoded (the job and the
    /// original's relative path): the row says "interrupted" until then.
    Transcode(Box<(MediaJob, String)>),
    /// The download's result could not be written: the claim stays in status 2.
    Unrecorded,
}

/// The media scheduler.
pub struct MediaScheduler {
    env: JobEnv,
    corps: BTreeMap<CorpId, CorpMedia>,
    inflight: usize,
    /// Slots set aside for claims being made.
    reserved: usize,
    /// The pipeline's stop signal.
    stop: CancellationToken,
    /// The scheduler's own hold on the pipeline's end, dropped once the stop is signalled (each
    /// future in flight holds its own clone).
    hold: Option<Shutdown>,
    /// Corps that may have something to start (a recovery or a claim), each once, oldest first.
    /// Every change of a corp's state puts it here ([`MediaScheduler::touch`]), so a scheduling
    /// round costs what changed, not the number of corps: walking all of them after every
    /// finished item made 5,000 corps cost seconds of CPU per sweep.
    queue: VecDeque<CorpId>,
    queued: HashSet<CorpId>,
    /// Voice items waiting for or in the transcoder pool, all corps (also those removed since).
    transcoding: usize,
}

impl std::fmt::Debug for MediaScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaScheduler")
            .field("corps", &self.corps.len())
            .field("inflight", &self.inflight)
            .finish_non_exhaustive()
    }
}

impl MediaScheduler {
    /// Starts the worker threads and the scheduler, which stop with `shutdown`; removes this
    /// instance's orphaned temp files.
    pub fn start(
        store: Arc<dyn Store>,
        sdk: Arc<dyn FinanceSdk>,
        settings: MediaSettings,
        shutdown: Shutdown,
    ) -> (Addr<MediaScheduler>, Arc<MediaCounters>) {
        match download::clean_temp(&settings.root, &settings.owner) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed partial downloads of an earlier run"),
            Err(e) => tracing::warn!(error = %e, "could not clean the media temp directory"),
        }
        let settings = Arc::new(settings);
        let stop = shutdown.token().clone();
        let counters = Arc::new(MediaCounters::default());
        let pool = |threads: usize| {
            let (sdk, settings, stop, counters) =
                (Arc::clone(&sdk), Arc::clone(&settings), stop.clone(), Arc::clone(&counters));
            SyncArbiter::start(threads.max(1), move || {
                MediaWorker::new(Arc::clone(&sdk), Arc::clone(&settings), stop.clone(), Arc::clone(&counters))
            })
        };
        let workers = pool(settings.workers);
        let transcoders = pool(settings.transcode_workers);
        let settler = Settler::start(Arc::clone(&store), settings.root.clone(), Arc::clone(&counters));
        let local_backoff = Arc::new(Mutex::new(Backoff::new(settings.backoff_initial, settings.backoff_max)));
        let env =
            JobEnv { store, workers, transcoders, settler, settings, counters: Arc::clone(&counters), local_backoff };
        let addr = MediaScheduler {
            env,
            corps: BTreeMap::new(),
            inflight: 0,
            reserved: 0,
            stop,
            hold: Some(shutdown),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            transcoding: 0,
        }
        .start();
        (addr, counters)
    }

    fn capacity(&self) -> usize {
        self.env.settings.workers.max(1)
    }

    /// The stop was signalled: nothing new starts.
    fn stop_signalled(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// `corpid`'s state changed: the look for its cut-off transcodes starts if it is due and may
    /// start (recovered, none of its transcodes in flight), and the corp is queued for
    /// [`MediaScheduler::schedule`].
    fn touch(&mut self, corpid: &CorpId, ctx: &mut Context<Self>) {
        let stopping = self.stop_signalled();
        let Some(c) = self.corps.get_mut(corpid) else { return };
        if c.adopt_due
            && !stopping
            && c.transcoding == 0
            && c.adopt_not_before.is_none_or(|t| Instant::now() >= t)
            && !matches!(c.phase, Phase::Unrecovered | Phase::Recovering | Phase::Idle { recovered: false })
        {
            c.adopt_due = false;
            if self.env.settings.object_store.is_none() {
                self.adopt(corpid.clone(), ctx);
            }
        }
        if self.queued.insert(corpid.clone()) {
            self.queue.push_back(corpid.clone());
        }
    }

    /// Every corp wakes up and is touched (the sweep, a new corp list).
    fn touch_all(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<CorpId> = self.corps.keys().cloned().collect();
        for id in &ids {
            if let Some(c) = self.corps.get_mut(id) {
                c.phase = c.phase.wake();
            }
            self.touch(id, ctx);
        }
    }

    /// Starts a recovery or a claim for the queued corps, in turn, while there is room. A corp
    /// that cannot start now leaves the queue; the change that lets it start queues it again.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.stop_signalled() || self.corps.is_empty() {
            return;
        }
        if self.transcoding >= TRANSCODE_BACKLOG {
            // The encoders are far behind: downloads wait, so that a stop or a kill never leaves
            // more than this many voice files untranscoded.
            return;
        }
        let per_corp = self.env.settings.per_corp.max(1);
        loop {
            let room = self.capacity().saturating_sub(self.inflight + self.reserved);
            if room == 0 {
                break;
            }
            let Some(corpid) = self.queue.pop_front() else { break };
            self.queued.remove(&corpid);
            let Some(c) = self.corps.get_mut(&corpid) else { continue };
            if c.inflight >= per_corp {
                continue;
            }
            match c.phase {
                // Recovery takes back every status-2 item of this instance: only with none in flight.
                Phase::Unrecovered if c.inflight == 0 => {
                    c.phase = Phase::Recovering;
                    self.recover(corpid, ctx);
                }
                Phase::Ready => {
                    c.phase = Phase::Claiming { then_recover: false };
                    let want = room.min(per_corp - c.inflight);
                    self.claim(corpid, want, ctx);
                }
                _ => {}
            }
        }
    }

    fn recover(&mut self, corpid: CorpId, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.env.store);
        let s = Arc::clone(&self.env.settings);
        let id = corpid.clone();
        let span = corp_span(&id);
        let hold = self.hold.clone();
        let fut = tracing::Instrument::instrument(
            async move {
                let _hold = hold;
                let r = store.recover_media(&id, &s.owner, s.claim_stale, s.max_attempts).await?;
                // Items stored while media was off wait in MEDIA_HELD: media is on now.
                let released = store.release_held_media(&id).await?;
                Ok::<_, crate::store::StoreError>((r, released))
            },
            span,
        );
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let Some(c) = act.corps.get_mut(&corpid) else { return };
            match r {
                Ok((r, released)) => {
                    if r.requeued > 0 || r.failed > 0 {
                        tracing::info!(corpid = %corpid, requeued = r.requeued, failed = r.failed, "media claims recovered");
                    }
                    if released > 0 {
                        tracing::info!(corpid = %corpid, items = released, "media items stored while media was off are queued");
                    }
                    c.phase = Phase::Ready;
                }
                Err(e) => {
                    tracing::warn!(corpid = %corpid, error = %e, "recovering media claims failed; will retry");
                    c.phase = Phase::Idle { recovered: false };
                }
            }
            act.touch(&corpid, ctx);
            act.schedule(ctx);
        }));
    }

    /// At start-up (and after a transcode result could not be recorded), once the corp is
    /// recovered and none of its transcodes is in flight: every done voice item whose transcode was cut off (the row still has
    /// [`TRANSCODE_INTERRUPTED`]) gets the MP3 a kill left beside it recorded, after a check;
    /// a damaged one is made again (see [`crate::media::adopt_beside`]). Runs beside the corp's
    /// downloads.
    ///
    /// A look that the database cut short (it went away meanwhile) is due again, after the
    /// corp's next recovery, i.e. once the database answers: otherwise an MP3 whose record
    /// failed during an outage would wait for a restart. Not before a sweep interval has passed
    /// either: a failure of the look's own query that the recovery does not share (a row that
    /// does not decode) would otherwise repeat recovery and look as fast as the database answers.
    fn adopt(&mut self, corpid: CorpId, ctx: &mut Context<Self>) {
        let span = corp_span(&corpid);
        let (env, hold, stop) = (self.env.clone(), self.hold.clone(), self.stop.clone());
        let id = corpid.clone();
        let fut = async move {
            let _hold = hold;
            adopt_interrupted(env, id, stop).await
        };
        let fut = tracing::Instrument::instrument(fut, span).into_actor(self);
        ctx.spawn(fut.map(move |completed, act, ctx| {
            if completed {
                return;
            }
            act.env.counters.adopt_failed.fetch_add(1, Ordering::Relaxed);
            let again = Instant::now() + act.env.settings.sweep_interval;
            if let Some(c) = act.corps.get_mut(&corpid) {
                c.adopt_due = true;
                c.adopt_not_before = Some(again);
                c.phase = c.phase.must_recover();
            }
            act.touch(&corpid, ctx);
            act.schedule(ctx);
        }));
    }

    fn claim(&mut self, corpid: CorpId, want: usize, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.env.store);
        let counters = Arc::clone(&self.env.counters);
        let owner = self.env.settings.owner.clone();
        let id = corpid.clone();
        let now = unix_now();
        self.reserved += want;
        let span = corp_span(&id);
        // The hold goes on to the giving back of what the claim returns after a stop.
        let hold = self.hold.clone();
        let fut = tracing::Instrument::instrument(
            async move {
                let t = Instant::now();
                let r = store.claim_media(&id, &owner, want as u32, now).await;
                counters.stages.claim.observe(t.elapsed());
                (r, hold)
            },
            span,
        );
        ctx.spawn(fut.into_actor(self).map(move |(r, hold), act, ctx| {
            act.reserved = act.reserved.saturating_sub(want);
            let stopping = act.stop_signalled();
            let Some(c) = act.corps.get_mut(&corpid) else {
                // The corp went away meanwhile: give the claims back.
                if let Ok(jobs) = r {
                    act.give_back(corpid, jobs, hold, ctx);
                }
                return;
            };
            let recovered = c.phase != Phase::Claiming { then_recover: true };
            match r {
                Ok(jobs) => {
                    c.phase = match (jobs.len() < want, recovered) {
                        (true, recovered) => Phase::Idle { recovered },
                        (false, true) => Phase::Ready,
                        (false, false) => Phase::Unrecovered,
                    };
                    if stopping {
                        act.give_back(corpid, jobs, hold, ctx);
                        return;
                    }
                    for job in jobs {
                        act.run(corpid.clone(), job, ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(corpid = %corpid, error = %e, "claiming media failed; will retry at the next sweep");
                    // The error may have come after some items were already claimed (status 2,
                    // e.g. the database went away between the claim and the read of the jobs):
                    // take them back before claiming again, or they would wait for a restart.
                    c.phase = Phase::Idle { recovered: false };
                }
            }
            act.touch(&corpid, ctx);
            act.schedule(ctx);
        }));
    }

    fn give_back(&mut self, corpid: CorpId, jobs: Vec<MediaJob>, hold: Option<Shutdown>, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.env.store);
        let span = corp_span(&corpid);
        ctx.spawn(
            tracing::Instrument::instrument(
                async move {
                    let _hold = hold;
                    for job in jobs {
                        if let Err(e) = store.finish_media(&corpid, &job, &MediaOutcome::Released).await {
                            tracing::warn!(error = %e, "giving a media claim back failed");
                        }
                    }
                },
                span,
            )
            .into_actor(self),
        );
    }

    /// Runs one claimed item ([`run_job`]) in its slot.
    fn run(&mut self, corpid: CorpId, job: MediaJob, ctx: &mut Context<Self>) {
        let Some(c) = self.corps.get_mut(&corpid) else { return };
        c.inflight += 1;
        self.inflight += 1;
        let fetch = Fetch { corpid: corpid.clone(), secret: c.spec.secret.clone(), net: c.net.clone(), job };
        let (env, hold) = (self.env.clone(), self.hold.clone());
        let fut = async move {
            let _hold = hold;
            run_job(env, fetch).await
        };
        let fut = tracing::Instrument::instrument(fut, corp_span(&corpid));
        ctx.spawn(fut.into_actor(self).map(move |end, act, ctx| act.finished(&corpid, end, ctx)));
    }

    /// A job's slot is free again; a voice file goes on to the transcoder pool.
    fn finished(&mut self, corpid: &CorpId, end: JobEnd, ctx: &mut Context<Self>) {
        self.inflight = self.inflight.saturating_sub(1);
        if let Some(c) = self.corps.get_mut(corpid) {
            c.inflight = c.inflight.saturating_sub(1);
            if end == JobEnd::Unrecorded {
                c.phase = c.phase.must_recover();
            }
            c.phase = c.phase.wake();
        }
        if let JobEnd::Transcode(job) = end {
            self.transcode(corpid.clone(), *job, ctx);
        }
        self.touch(corpid, ctx);
        self.schedule(ctx);
    }

    /// Transcodes one settled voice item ([`run_transcode`]) beside the downloads.
    fn transcode(&mut self, corpid: CorpId, job: (MediaJob, String), ctx: &mut Context<Self>) {
        if let Some(c) = self.corps.get_mut(&corpid) {
            c.transcoding += 1;
        }
        self.transcoding += 1;
        let (env, hold, id) = (self.env.clone(), self.hold.clone(), corpid.clone());
        let span = corp_span(&corpid);
        let fut = async move {
            let _hold = hold;
            run_transcode(env, id, job).await
        };
        let fut = tracing::Instrument::instrument(fut, span);
        ctx.spawn(fut.into_actor(self).map(move |recorded, act, ctx| {
            act.transcoding = act.transcoding.saturating_sub(1);
            if let Some(c) = act.corps.get_mut(&corpid) {
                c.transcoding = c.transcoding.saturating_sub(1);
                // The MP3 is beside the original but the row still says "interrupted": the next
                // look records it like one left by a kill.
                c.adopt_due |= !recorded;
            }
            act.touch(&corpid, ctx);
            act.schedule(ctx);
        }));
    }
}

/// One claimed item, start to end: download it on a worker (with an object store also
/// transcoded and uploaded there) and settle the outcome. For voice downloaded to files the
/// outcome carries the marker ([`TRANSCODE_INTERRUPTED`]), so a transcoder that kills the
/// process is not retried (decision 2), and the job ends with [`JobEnd::Transcode`].
async fn run_job(env: JobEnv, fetch: Fetch) -> JobEnd {
    let (corpid, job) = (fetch.corpid.clone(), fetch.job.clone());
    let result = env.workers.send(fetch).await.unwrap_or_else(|e| {
        Err(DownloadError::Panicked { stage: "media worker", message: format!("the worker is gone: {e}") })
    });
    let outcome = outcome_of(&env, &job, &result);
    count_and_log(&env.counters, &corpid, &job, &result, &outcome);
    let files = env.settings.object_store.is_none();
    // A file under the media root: its directory is fsynced by the settler before the row says done.
    let sync = match (&result, files) {
        (Ok(d), true) => Some(d.path.clone()),
        _ => None,
    };
    if let Ok(d) = &result {
        env.counters.stages.downloaded(&d.timings);
    }
    let transcode = match (&result, &outcome) {
        (Ok(d), MediaOutcome::Done { transcode_error: Some(m), .. }) if m == TRANSCODE_INTERRUPTED => {
            Some(d.path.clone())
        }
        _ => None,
    };
    if let Err(e) = env.settler.settle(&corpid, &job, &outcome, sync).await {
        // The claim stays in status 2: it is taken back (recovery) once nothing of this corp is
        // in flight and the database answers again, and downloaded again.
        tracing::error!(corpid = %corpid, id = job.id, error = %e, "recording a media result failed");
        return JobEnd::Unrecorded;
    }
    match transcode {
        Some(path) => JobEnd::Transcode(Box::new((job, path))),
        None => JobEnd::Settled,
    }
}

/// Transcodes a settled voice item on the transcoder pool and records the result; false when
/// that record could not be written (the MP3 is complete beside the original but the row still
/// says "interrupted": the next look adopts it).
async fn run_transcode(env: JobEnv, corpid: CorpId, (job, path): (MediaJob, String)) -> bool {
    let transcoded = env
        .transcoders
        .send(Transcode { path: path.clone() })
        .await
        .unwrap_or_else(|e| Err(format!("the media transcoder is gone: {e}")));
    let (tpath, terr) = match transcoded {
        Ok(p) => {
            env.counters.transcoded.fetch_add(1, Ordering::Relaxed);
            (Some(p), None)
        }
        Err(e) => {
            env.counters.transcode_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(corpid = %corpid, id = job.id, error = %e, "transcoding failed; the original is kept");
            (None, Some(e))
        }
    };
    let outcome = MediaOutcome::Done { path, transcoded_path: tpath, transcode_error: terr };
    if let Err(e) = env.settler.settle(&corpid, &job, &outcome, None).await {
        tracing::error!(corpid = %corpid, error = %e, "recording a transcode result failed");
        return false;
    }
    true
}

/// The row's new state after an attempt.
fn outcome_of(env: &JobEnv, job: &MediaJob, result: &Result<Downloaded, DownloadError>) -> MediaOutcome {
    let s = &env.settings;
    let mut local_backoff = env.local_backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match result {
        Ok(d) => {
            local_backoff.reset();
            match &d.transcoded {
                // Transcoded before the upload (object store).
                Some(t) => MediaOutcome::Done {
                    path: d.path.clone(),
                    transcoded_path: t.as_ref().ok().cloned(),
                    transcode_error: t.as_ref().err().cloned(),
                },
                None => MediaOutcome::Done {
                    path: d.path.clone(),
                    transcoded_path: None,
                    transcode_error: (s.transcode && d.sniffed.is_some_and(|x| x.is_transcodable_voice()))
                        .then(|| TRANSCODE_INTERRUPTED.to_string()),
                },
            }
        }
        Err(DownloadError::Interrupted) => MediaOutcome::Released,
        // The media root is read-only, full, or gone: nothing to do with the item, so its
        // attempt is given back (max_attempts never fails an item for it) and the wait grows
        // with every such failure in a row, whichever item hits it.
        Err(e) if e.is_local() => {
            let delay = local_backoff.next_delay();
            MediaOutcome::Deferred { code: e.media_code(), retry_at: unix_now() + delay.as_secs() as i64 }
        }
        Err(e) if e.is_retryable() && job.attempts < s.max_attempts => {
            let delay = backoff(s.backoff_initial, s.backoff_max, job.attempts);
            MediaOutcome::Retry { code: e.media_code(), retry_at: unix_now() + delay.as_secs() as i64 }
        }
        Err(e) => MediaOutcome::Failed { code: e.media_code() },
    }
}

fn count_and_log(
    counters: &MediaCounters,
    corpid: &CorpId,
    job: &MediaJob,
    result: &Result<Downloaded, DownloadError>,
    outcome: &MediaOutcome,
) {
    match (result, outcome) {
        (Ok(d), _) => {
            counters.done.fetch_add(1, Ordering::Relaxed);
            match &d.transcoded {
                Some(Ok(_)) => counters.transcoded.fetch_add(1, Ordering::Relaxed),
                Some(Err(_)) => counters.transcode_failed.fetch_add(1, Ordering::Relaxed),
                None => 0,
            };
            tracing::debug!(corpid = %corpid, id = job.id, path = %d.path, bytes = d.bytes, "media downloaded");
        }
        (Err(e), MediaOutcome::Retry { .. } | MediaOutcome::Deferred { .. }) => {
            counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(corpid = %corpid, id = job.id, attempts = job.attempts, error = %e, "media download failed; will retry");
        }
        (Err(e), MediaOutcome::Failed { code }) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(corpid = %corpid, id = job.id, attempts = job.attempts, code, error = %e, "media download failed for good");
        }
        _ => {}
    }
}

/// The corp's done voice items whose transcode was cut off: see [`MediaScheduler::adopt`]. A
/// stop ends the look between two items (the rest wait for the next start). False when the
/// database failed it (the look is due again).
async fn adopt_interrupted(env: JobEnv, corpid: CorpId, stop: CancellationToken) -> bool {
    let items = match env.store.interrupted_transcodes(&corpid, TRANSCODE_INTERRUPTED).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = %e, "looking for transcodes cut off by a stop failed; looking again once the database answers");
            return false;
        }
    };
    let counters = &env.counters;
    let (mut adopted, mut redone, mut missing) = (0u64, 0u64, 0u64);
    for (job, path) in items {
        if stop.is_cancelled() {
            break;
        }
        let adoption = match env.transcoders.send(Adopt { path: path.clone() }).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "the media workers are gone");
                return true;
            }
        };
        let (tpath, terr) = match adoption {
            Adoption::Complete(mp3) => {
                adopted += 1;
                counters.adopted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = job.id, %mp3, "adopted the MP3 of a transcode cut off by a stop");
                (Some(mp3), None)
            }
            Adoption::Redone { reason, result } => {
                redone += 1;
                tracing::warn!(id = job.id, %path, %reason, "removed a damaged MP3; transcoded again");
                match result {
                    Ok(mp3) => {
                        counters.transcoded.fetch_add(1, Ordering::Relaxed);
                        (Some(mp3), None)
                    }
                    Err(e) => {
                        counters.transcode_failed.fetch_add(1, Ordering::Relaxed);
                        (None, Some(e))
                    }
                }
            }
            Adoption::Removed { reason } => {
                tracing::warn!(id = job.id, %path, %reason, "removed a damaged MP3; transcoding is off");
                continue;
            }
            Adoption::Missing => {
                missing += 1;
                continue;
            }
            Adoption::Unreadable(e) => {
                tracing::warn!(id = job.id, error = %e, "cannot check the MP3 of a transcode cut off by a stop");
                continue;
            }
        };
        let outcome = MediaOutcome::Done { path, transcoded_path: tpath, transcode_error: terr };
        if let Err(e) = env.store.finish_media(&corpid, &job, &outcome).await {
            tracing::warn!(id = job.id, error = %e, "recording an adopted transcode failed; looking again once the database answers");
            return false;
        }
    }
    if adopted + redone + missing > 0 {
        tracing::info!(adopted, redone, missing, "transcodes cut off by a stop: MP3s checked and recorded");
    }
    true
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `initial * 2^(attempts-1)`, capped at `max`, with ±25 % jitter.
fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let mut b = Backoff::new(initial, max);
    let mut d = b.next_delay();
    for _ in 1..attempts.min(32) {
        d = b.next_delay();
    }
    d
}

impl Actor for MediaScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The stop: nothing new is claimed from now on; the scheduler's own hold goes.
        let stop = self.stop.clone();
        ctx.spawn(async move { stop.cancelled().await }.into_actor(self).map(|(), act, _| act.hold = None));
        ctx.run_interval(self.env.settings.sweep_interval.max(Duration::from_millis(100)), |act, ctx| {
            act.touch_all(ctx);
            act.schedule(ctx);
        });
    }
}

impl Handler<MediaCorps> for MediaScheduler {
    type Result = ();

    fn handle(&mut self, msg: MediaCorps, ctx: &mut Self::Context) {
        let mut next = BTreeMap::new();
        for spec in msg.0 {
            let net = NetOptions {
                proxy: spec.proxy.url.clone(),
                proxy_password: spec.proxy.password.clone(),
                timeout: spec.timeout,
            };
            let c = match self.corps.remove(&spec.corpid) {
                Some(mut old) => {
                    old.spec = spec;
                    old.net = net;
                    old
                }
                None => CorpMedia {
                    spec,
                    net,
                    phase: Phase::Unrecovered,
                    inflight: 0,
                    transcoding: 0,
                    adopt_due: true,
                    adopt_not_before: None,
                },
            };
            next.insert(c.spec.corpid.clone(), c);
        }
        // Corps no longer desired: their in-flight items finish; nothing new is claimed.
        self.corps = next;
        self.touch_all(ctx);
        self.schedule(ctx);
    }
}

impl Handler<Nudge> for MediaScheduler {
    type Result = ();

    fn handle(&mut self, msg: Nudge, ctx: &mut Self::Context) {
        if let Some(c) = self.corps.get_mut(&msg.0) {
            c.phase = c.phase.wake();
            self.touch(&msg.0, ctx);
            self.schedule(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_wake_up_and_remember_a_needed_recovery() {
        assert_eq!(Phase::Idle { recovered: true }.wake(), Phase::Ready);
        assert_eq!(Phase::Idle { recovered: false }.wake(), Phase::Unrecovered);
        for p in [Phase::Unrecovered, Phase::Recovering, Phase::Ready, Phase::Claiming { then_recover: false }] {
            assert_eq!(p.wake(), p, "only an idle corp wakes up");
        }
        assert_eq!(Phase::Ready.must_recover(), Phase::Unrecovered);
        assert_eq!(Phase::Claiming { then_recover: false }.must_recover(), Phase::Claiming { then_recover: true });
        assert_eq!(Phase::Idle { recovered: true }.must_recover().wake(), Phase::Unrecovered);
        assert_eq!(Phase::Recovering.must_recover(), Phase::Recovering);
    }
}
