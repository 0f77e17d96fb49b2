//! Media actors: [`MediaScheduler`] (one, async) hands claimed `media_<corpid>` rows to the
//! [`MediaWorker`] pool (actix `SyncArbiter`, `media.workers` OS threads).
//!
//! - Jobs come only from the database (status 1), never only from memory: a crash or restart
//!   loses none. When a corp first appears, its items left in status 2 by this instance (or by
//!   anyone, when their claim is older than `claim_stale`) go back to 1, and those whose attempts
//!   are exhausted fail instead (decision 2). The attempt counter is incremented by the claim,
//!   before the download starts. The same recovery runs again, once none of the corp's items is
//!   in flight, after a claim or a result could not be written (the database went away), so
//!   that no item waits in status 2 for a restart.
//! - Fairness: at most `per_corp` items of one corp and `workers` items overall are in flight;
//!   corps are served round-robin, so one huge video occupies one worker and the other corps'
//!   small files go through the others. Media never shares a thread or an SDK handle with
//!   message pulling.
//! - Each worker keeps its own SDK handle per corp (opened lazily, reused, replaced when the
//!   secret changes or the SDK asks for it) and runs `media::download` inside `unwind::catch`.
//! - After a good download the item is stored as done (status 3) FIRST; voice is then
//!   transcoded as a separate job, its result recorded in `transcoded_path` / `transcode_error`
//!   (decision 8). A marker error is written before transcoding, so a transcoder that kills the
//!   process leaves "interrupted" behind instead of a retry loop (decision 2). A kill after the
//!   MP3's rename but before the row update leaves a complete MP3 that the row does not name: at
//!   the corp's first recovery it is checked and recorded (a damaged one is removed and made
//!   again), see [`crate::media::adopt_beside`].
//! - Items stored while media was off (`[media] enabled = false`) are held (status
//!   [`crate::store::MEDIA_HELD`]); the corp's recovery makes them pending.
//! - A transient failure goes back to status 1 with `retry_at` = now + exponential backoff; a
//!   permanent one, or the last allowed attempt, ends in status 4 with the code. A local I/O
//!   failure (the media root read-only or full) is not the item's: it goes back to status 1 with
//!   its attempt given back, after a backoff that grows while such failures go on.
//! - The supervisor sends the desired corps after every reconcile ([`MediaCorps`]); corp actors
//!   [`Nudge`] after a batch that stored media; a sweep every `sweep_interval` catches the rest
//!   (retries that came due). [`MediaShutdown`] stops claiming, interrupts downloads between
//!   chunks (their attempt is given back) and answers when nothing is in flight.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::corps::CorpSpec;
use crate::media::download::{self, DownloadError, DownloadSettings, Downloaded};
use crate::media::object_store::{ObjectStore, ObjectStoreSettings};
use crate::media::transcode::Mp3Options;
use crate::media::{adopt_beside, transcode_beside, Adoption};
use crate::sdk::{FinanceSdk, NetOptions, SdkError, SdkSession};
use crate::secret::Secret;
use crate::store::{CorpId, MediaJob, MediaOutcome, Store};

/// Media settings (from `[media]`).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The media root.
    pub root: PathBuf,
    /// This instance's name in `claimed_by` (stable across restarts).
    pub owner: String,
    /// Worker threads.
    pub workers: usize,
    /// Items of one corp in flight at most.
    pub per_corp: usize,
    /// Attempts per item before it fails for good.
    pub max_attempts: u32,
    /// In-place retries of one failed chunk.
    pub chunk_retries: u32,
    /// First retry delay of an item; doubles per attempt.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A claim older than this is taken back from whoever made it.
    pub claim_stale: Duration,
    /// How often every corp's table is looked at even without a nudge.
    pub sweep_interval: Duration,
    /// Transcode voice to MP3.
    pub transcode: bool,
    /// MP3 bitrate, kbit/s.
    pub mp3_bitrate_kbps: u32,
    /// MP3 sample rate; `None` keeps the source's (8000 for AMR-NB, 24000 for SILK).
    pub mp3_sample_rate: Option<u32>,
    /// Upload to this object store instead of keeping files under `root` (which then only
    /// holds files in flight).
    pub object_store: Option<ObjectStoreSettings>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            root: PathBuf::from("msgfile"),
            owner: "default".into(),
            workers: 2,
            per_corp: 1,
            max_attempts: 5,
            chunk_retries: 3,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            claim_stale: Duration::from_secs(1800),
            sweep_interval: Duration::from_secs(30),
            transcode: true,
            mp3_bitrate_kbps: 32,
            mp3_sample_rate: None,
            object_store: None,
        }
    }
}

/// Download one claimed item (to a worker).
#[derive(Debug, Message)]
#[rtype(result = "Result<Downloaded, DownloadError>")]
pub struct Fetch {
    /// The corp.
    pub corpid: CorpId,
    /// Its secret (a changed secret replaces the worker's handle).
    pub secret: Secret,
    /// Network options.
    pub net: NetOptions,
    /// The item.
    pub job: MediaJob,
}

/// Transcode a downloaded voice file (to a worker): `Ok(relative mp3 path)` or the error text.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, String>")]
pub struct Transcode {
    /// The original, relative to the media root.
    pub path: String,
}

/// At start-up: look beside a done voice original whose transcode was cut off for the MP3 a
/// kill left behind (to a worker; see [`crate::media::adopt_beside`]).
#[derive(Debug, Message)]
#[rtype(result = "Adoption")]
pub struct Adopt {
    /// The original, relative to the media root.
    pub path: String,
}

/// Added to the SDK's worst case (timeout + 10 s) before an in-process GetMediaData is abandoned.
const MEDIA_HANG_GRACE: Duration = Duration::from_secs(2);

/// A media download thread.
pub struct MediaWorker {
    sdk: Arc<dyn FinanceSdk>,
    settings: Arc<MediaSettings>,
    sessions: HashMap<CorpId, (Secret, Box<dyn SdkSession>)>,
    stop: Arc<AtomicBool>,
    /// The object store, once first needed (`[media] backend = "s3"`).
    objects: Option<ObjectStore>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl Actor for MediaWorker {
    type Context = SyncContext<Self>;
}

impl MediaWorker {
    fn fetch(&mut self, msg: &Fetch) -> Result<Downloaded, DownloadError> {
        let fresh = self.sessions.get(&msg.corpid).is_none_or(|(secret, _)| secret.expose() != msg.secret.expose());
        if fresh {
            self.sessions.remove(&msg.corpid);
            let session = self.sdk.open(msg.corpid.as_str(), &msg.secret)?;
            // An in-process SDK cannot cut off a call that never returns: give each call a
            // deadline, so that a hung GetMediaData does not hold this worker for good.
            let session = crate::sdk::watchdog::bounded(&*self.sdk, session, MEDIA_HANG_GRACE);
            self.sessions.insert(msg.corpid.clone(), (msg.secret.clone(), session));
        }
        let Some((_, session)) = self.sessions.get_mut(&msg.corpid) else {
            return Err(DownloadError::Sdk(SdkError::Protocol("no SDK handle")));
        };
        let settings = DownloadSettings {
            root: self.settings.root.clone(),
            owner: self.settings.owner.clone(),
            chunk_retries: self.settings.chunk_retries,
        };
        let downloaded = download::download(session.as_mut(), &msg.corpid, &msg.job, &msg.net, &settings, &self.stop)?;
        match &self.settings.object_store {
            Some(s) => self.upload(s.clone(), downloaded),
            None => Ok(downloaded),
        }
    }

    /// Object-store backend: transcode voice locally first, upload the original (and the MP3),
    /// then delete the local copies. `path` becomes the object key.
    fn upload(&mut self, s: ObjectStoreSettings, mut d: Downloaded) -> Result<Downloaded, DownloadError> {
        if self.objects.is_none() {
            self.objects = Some(ObjectStore::new(&s)?);
        }
        let Some(objects) = &self.objects else {
            return Err(DownloadError::Sdk(SdkError::Protocol("no object store")));
        };
        let root = &self.settings.root;
        let transcoded = (self.settings.transcode && d.sniffed.is_some_and(|x| x.is_transcodable_voice())).then(|| {
            let opts =
                Mp3Options { bitrate_kbps: self.settings.mp3_bitrate_kbps, sample_rate: self.settings.mp3_sample_rate };
            let temp = download::temp_dir(root, &self.settings.owner);
            crate::unwind::catch(|| transcode_beside(root, &d.path, &temp, &opts))
                .unwrap_or_else(|p| Err(format!("the transcoder panicked: {p}")))
        });
        let key = objects.key(&d.path);
        objects.upload_file(&root.join(&d.path), &key)?;
        d.transcoded = match transcoded {
            Some(Ok(mp3)) => {
                let mp3_key = objects.key(&mp3);
                objects.upload_file(&root.join(&mp3), &mp3_key)?;
                let _ = std::fs::remove_file(root.join(&mp3));
                Some(Ok(mp3_key))
            }
            Some(Err(e)) => Some(Err(e)),
            None => None,
        };
        let _ = std::fs::remove_file(root.join(&d.path));
        d.path = key;
        Ok(d)
    }
}

impl Handler<Fetch> for MediaWorker {
    type Result = Result<Downloaded, DownloadError>;

    fn handle(&mut self, msg: Fetch, _ctx: &mut Self::Context) -> Self::Result {
        let result = crate::unwind::catch(|| self.fetch(&msg))
            .unwrap_or_else(|message| Err(DownloadError::Sdk(SdkError::Panicked { call: "media download", message })));
        if let Err(DownloadError::Sdk(e)) = &result {
            // GetMediaData reports a server errcode only as rc 10002 (an expired token among
            // them, which the SDK keeps using until the handle is replaced): after any transient
            // failure the next attempt starts with a new handle, at the cost of one gettoken.
            let transient_code = matches!(e, SdkError::Code { code, .. } if code.is_retryable());
            if e.needs_new_handle() || transient_code || matches!(e, SdkError::Panicked { .. }) {
                self.sessions.remove(&msg.corpid);
            }
        }
        result
    }
}

impl Handler<Transcode> for MediaWorker {
    type Result = Result<String, String>;

    fn handle(&mut self, msg: Transcode, _ctx: &mut Self::Context) -> Self::Result {
        let settings = Arc::clone(&self.settings);
        let opts = Mp3Options { bitrate_kbps: settings.mp3_bitrate_kbps, sample_rate: settings.mp3_sample_rate };
        let temp = download::temp_dir(&settings.root, &settings.owner);
        crate::unwind::catch(|| transcode_beside(&settings.root, &msg.path, &temp, &opts))
            .unwrap_or_else(|p| Err(format!("the transcoder panicked: {p}")))
    }
}

impl Handler<Adopt> for MediaWorker {
    type Result = MessageResult<Adopt>;

    fn handle(&mut self, msg: Adopt, _ctx: &mut Self::Context) -> Self::Result {
        let settings = Arc::clone(&self.settings);
        let opts = Mp3Options { bitrate_kbps: settings.mp3_bitrate_kbps, sample_rate: settings.mp3_sample_rate };
        let temp = download::temp_dir(&settings.root, &settings.owner);
        MessageResult(
            crate::unwind::catch(|| adopt_beside(&settings.root, &msg.path, &temp, &opts, settings.transcode))
                .unwrap_or_else(|p| Adoption::Unreadable(format!("the check panicked: {p}"))),
        )
    }
}

/// The desired corps (sent by the supervisor after every reconcile).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MediaCorps(pub Vec<CorpSpec>);

/// A corp stored new media items.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Nudge(pub CorpId);

/// Stop claiming, interrupt downloads, answer when nothing is in flight.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MediaShutdown;

/// Counters of the scheduler (for `demo`, tests and metrics).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Items downloaded and verified.
    pub done: std::sync::atomic::AtomicU64,
    /// Attempts that will be retried.
    pub retried: std::sync::atomic::AtomicU64,
    /// Items failed for good.
    pub failed: std::sync::atomic::AtomicU64,
    /// Voice files transcoded.
    pub transcoded: std::sync::atomic::AtomicU64,
    /// Transcodes that failed (originals kept).
    pub transcode_failed: std::sync::atomic::AtomicU64,
    /// Complete MP3s of transcodes cut off by a kill, found and recorded at start-up.
    pub adopted: std::sync::atomic::AtomicU64,
}

struct CorpMedia {
    spec: CorpSpec,
    net: NetOptions,
    inflight: usize,
    claiming: bool,
    recovered: bool,
    idle: bool,
    /// The look for MP3s of cut-off transcodes was made (or is under way): once at start-up, and
    /// again after a transcode result could not be recorded.
    adopting: bool,
}

/// The span of one corp's media work: every line logged inside (ours and the database
/// driver's) carries the corpid.
fn corp_span(corpid: &CorpId) -> tracing::Span {
    tracing::info_span!("media", corpid = %corpid)
}

/// The media scheduler.
pub struct MediaScheduler {
    store: Arc<dyn Store>,
    workers: Addr<MediaWorker>,
    settings: Arc<MediaSettings>,
    corps: BTreeMap<CorpId, CorpMedia>,
    inflight: usize,
    /// Slots set aside for claims being made.
    reserved: usize,
    stop: Arc<AtomicBool>,
    stopping: bool,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    rr: usize,
    /// The wait after a local I/O failure (read-only or full media root): grows with every one
    /// in a row, back to `backoff_initial` after a good download.
    local_backoff: crate::backoff::Backoff,
    /// Live counters.
    pub counters: Arc<MediaCounters>,
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
    /// Starts the worker threads and the scheduler; removes this instance's orphaned temp files.
    pub fn start(
        store: Arc<dyn Store>,
        sdk: Arc<dyn FinanceSdk>,
        settings: MediaSettings,
    ) -> (Addr<MediaScheduler>, Arc<MediaCounters>) {
        match download::clean_temp(&settings.root, &settings.owner) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed partial downloads of an earlier run"),
            Err(e) => tracing::warn!(error = %e, "could not clean the media temp directory"),
        }
        let settings = Arc::new(settings);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = {
            let (settings, stop) = (Arc::clone(&settings), Arc::clone(&stop));
            SyncArbiter::start(settings.workers.max(1), move || MediaWorker {
                sdk: Arc::clone(&sdk),
                settings: Arc::clone(&settings),
                sessions: HashMap::new(),
                stop: Arc::clone(&stop),
                objects: None,
            })
        };
        let counters = Arc::new(MediaCounters::default());
        let local_backoff = crate::backoff::Backoff::new(settings.backoff_initial, settings.backoff_max);
        let addr = MediaScheduler {
            store,
            workers,
            settings,
            corps: BTreeMap::new(),
            inflight: 0,
            reserved: 0,
            stop,
            stopping: false,
            waiters: Vec::new(),
            rr: 0,
            local_backoff,
            counters: Arc::clone(&counters),
        }
        .start();
        (addr, counters)
    }

    fn capacity(&self) -> usize {
        self.settings.workers.max(1)
    }

    /// Claims for as many corps as there is room, round-robin.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.stopping || self.corps.is_empty() {
            return;
        }
        let ids: Vec<CorpId> = self.corps.keys().cloned().collect();
        let n = ids.len();
        for k in 0..n {
            let room = self.capacity().saturating_sub(self.inflight + self.reserved);
            if room == 0 {
                break;
            }
            let corpid = &ids[(self.rr + k) % n];
            let per_corp = self.settings.per_corp.max(1);
            let Some(c) = self.corps.get_mut(corpid) else { continue };
            // Recovery takes back every status-2 item of this instance: only with none in flight.
            if c.claiming || c.idle || c.inflight >= per_corp || (!c.recovered && c.inflight > 0) {
                continue;
            }
            let want = room.min(per_corp - c.inflight);
            c.claiming = true;
            if c.recovered {
                self.claim(corpid.clone(), want, ctx);
            } else {
                self.recover(corpid.clone(), ctx);
            }
        }
        self.rr = self.rr.wrapping_add(1);
    }

    fn recover(&mut self, corpid: CorpId, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let s = Arc::clone(&self.settings);
        let id = corpid.clone();
        let span = corp_span(&id);
        let fut = tracing::Instrument::instrument(
            async move {
                let r = store.recover_media(&id, &s.owner, s.claim_stale, s.max_attempts).await?;
                // Items stored while media was off wait in MEDIA_HELD: media is on now.
                let released = store.release_held_media(&id).await?;
                Ok::<_, crate::store::StoreError>((r, released))
            },
            span,
        );
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let Some(c) = act.corps.get_mut(&corpid) else { return };
            c.claiming = false;
            match r {
                Ok((r, released)) => {
                    if r.requeued > 0 || r.failed > 0 {
                        tracing::info!(corpid = %corpid, requeued = r.requeued, failed = r.failed, "media claims recovered");
                    }
                    if released > 0 {
                        tracing::info!(corpid = %corpid, items = released, "media items stored while media was off are queued");
                    }
                    c.recovered = true;
                    if !c.adopting && act.settings.object_store.is_none() {
                        c.adopting = true;
                        act.adopt(corpid.clone(), ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(corpid = %corpid, error = %e, "recovering media claims failed; will retry");
                    c.idle = true;
                }
            }
            act.schedule(ctx);
        }));
    }

    /// At start-up (and after a transcode result could not be recorded), once nothing of the corp
    /// is in flight: every done voice item whose transcode was cut off (the row still has
    /// [`TRANSCODE_INTERRUPTED`]) gets the MP3 a kill left beside it recorded, after a check;
    /// a damaged one is made again (see [`adopt_beside`]). Runs beside the corp's downloads.
    fn adopt(&mut self, corpid: CorpId, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let workers = self.workers.clone();
        let counters = Arc::clone(&self.counters);
        let span = corp_span(&corpid);
        let fut = async move {
            let items = match store.interrupted_transcodes(&corpid, TRANSCODE_INTERRUPTED).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for transcodes cut off by a stop failed");
                    return;
                }
            };
            let (mut adopted, mut redone, mut missing) = (0u64, 0u64, 0u64);
            for (job, path) in items {
                let adoption = match workers.send(Adopt { path: path.clone() }).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "the media workers are gone");
                        return;
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
                if let Err(e) = store.finish_media(&corpid, &job, &outcome).await {
                    tracing::warn!(id = job.id, error = %e, "recording an adopted transcode failed; retried at the next start");
                    return;
                }
            }
            if adopted + redone + missing > 0 {
                tracing::info!(adopted, redone, missing, "transcodes cut off by a stop: MP3s checked and recorded");
            }
        };
        ctx.spawn(tracing::Instrument::instrument(fut, span).into_actor(self));
    }

    fn claim(&mut self, corpid: CorpId, want: usize, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let owner = self.settings.owner.clone();
        let id = corpid.clone();
        let now = unix_now();
        self.reserved += want;
        let span = corp_span(&id);
        let fut = tracing::Instrument::instrument(
            async move { store.claim_media(&id, &owner, want as u32, now).await },
            span,
        );
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            act.reserved = act.reserved.saturating_sub(want);
            let Some(c) = act.corps.get_mut(&corpid) else {
                // The corp went away meanwhile: give the claims back.
                if let Ok(jobs) = r {
                    act.give_back(corpid, jobs, ctx);
                }
                return;
            };
            c.claiming = false;
            match r {
                Ok(jobs) => {
                    if jobs.len() < want {
                        c.idle = true;
                    }
                    if act.stopping {
                        act.give_back(corpid, jobs, ctx);
                        return;
                    }
                    for job in jobs {
                        act.dispatch(corpid.clone(), job, ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(corpid = %corpid, error = %e, "claiming media failed; will retry at the next sweep");
                    c.idle = true;
                    // The error may have come after some items were already claimed (status 2,
                    // e.g. the database went away between the claim and the read of the jobs):
                    // take them back before claiming again, or they would wait for a restart.
                    c.recovered = false;
                }
            }
            act.schedule(ctx);
        }));
    }

    fn give_back(&mut self, corpid: CorpId, jobs: Vec<MediaJob>, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let span = corp_span(&corpid);
        ctx.spawn(
            tracing::Instrument::instrument(
                async move {
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

    fn dispatch(&mut self, corpid: CorpId, job: MediaJob, ctx: &mut Context<Self>) {
        let Some(c) = self.corps.get_mut(&corpid) else { return };
        c.inflight += 1;
        self.inflight += 1;
        let msg = Fetch { corpid: corpid.clone(), secret: c.spec.secret.clone(), net: c.net.clone(), job: job.clone() };
        let fut = self.workers.send(msg);
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let result = r.unwrap_or_else(|e| {
                Err(DownloadError::Sdk(SdkError::Panicked { call: "media worker", message: e.to_string() }))
            });
            act.settle(corpid, job, result, ctx);
        }));
    }

    fn outcome_of(&mut self, job: &MediaJob, result: &Result<Downloaded, DownloadError>) -> MediaOutcome {
        if result.is_ok() {
            self.local_backoff.reset();
        }
        match result {
            Ok(d) => match &d.transcoded {
                // Transcoded before the upload (object store).
                Some(t) => MediaOutcome::Done {
                    path: d.path.clone(),
                    transcoded_path: t.as_ref().ok().cloned(),
                    transcode_error: t.as_ref().err().cloned(),
                },
                None => MediaOutcome::Done {
                    path: d.path.clone(),
                    transcoded_path: None,
                    transcode_error: (self.settings.transcode && d.sniffed.is_some_and(|s| s.is_transcodable_voice()))
                        .then(|| TRANSCODE_INTERRUPTED.to_string()),
                },
            },
            Err(DownloadError::Interrupted) => MediaOutcome::Released,
            // The media root is read-only, full, or gone: nothing to do with the item, so its
            // attempt is given back (max_attempts never fails an item for it) and the wait grows
            // with every such failure in a row, whichever item hits it.
            Err(e) if e.is_local() => {
                let delay = self.local_backoff.next_delay();
                MediaOutcome::Deferred { code: e.media_code(), retry_at: unix_now() + delay.as_secs() as i64 }
            }
            Err(e) if e.is_retryable() && job.attempts < self.settings.max_attempts => {
                let delay = backoff(self.settings.backoff_initial, self.settings.backoff_max, job.attempts);
                MediaOutcome::Retry { code: e.media_code(), retry_at: unix_now() + delay.as_secs() as i64 }
            }
            Err(e) => MediaOutcome::Failed { code: e.media_code() },
        }
    }

    fn settle(
        &mut self,
        corpid: CorpId,
        job: MediaJob,
        result: Result<Downloaded, DownloadError>,
        ctx: &mut Context<Self>,
    ) {
        let outcome = self.outcome_of(&job, &result);
        match (&result, &outcome) {
            (Ok(d), _) => {
                self.counters.done.fetch_add(1, Ordering::Relaxed);
                match &d.transcoded {
                    Some(Ok(_)) => self.counters.transcoded.fetch_add(1, Ordering::Relaxed),
                    Some(Err(_)) => self.counters.transcode_failed.fetch_add(1, Ordering::Relaxed),
                    None => 0,
                };
                tracing::debug!(corpid = %corpid, id = job.id, path = %d.path, bytes = d.bytes, "media downloaded");
            }
            (Err(e), MediaOutcome::Retry { .. } | MediaOutcome::Deferred { .. }) => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(corpid = %corpid, id = job.id, attempts = job.attempts, error = %e, "media download failed; will retry");
            }
            (Err(e), MediaOutcome::Failed { code }) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(corpid = %corpid, id = job.id, attempts = job.attempts, code, error = %e, "media download failed for good");
            }
            _ => {}
        }
        let transcode = match (&result, &outcome) {
            (Ok(d), MediaOutcome::Done { transcode_error: Some(m), .. }) if m == TRANSCODE_INTERRUPTED => {
                Some(d.path.clone())
            }
            _ => None,
        };
        let store = Arc::clone(&self.store);
        let id = corpid.clone();
        let j = job.clone();
        let span = corp_span(&id);
        let fut = tracing::Instrument::instrument(async move { store.finish_media(&id, &j, &outcome).await }, span);
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            if let Err(e) = &r {
                // The claim stays in status 2: it is taken back (recovery) once nothing of this
                // corp is in flight and the database answers again, and downloaded again.
                tracing::error!(corpid = %corpid, id = job.id, error = %e, "recording a media result failed");
                if let Some(c) = act.corps.get_mut(&corpid) {
                    c.recovered = false;
                }
            }
            match transcode {
                Some(path) if r.is_ok() => act.transcode(corpid, job, path, ctx),
                _ => act.release(&corpid, ctx),
            }
        }));
    }

    fn transcode(&mut self, corpid: CorpId, job: MediaJob, path: String, ctx: &mut Context<Self>) {
        let fut = self.workers.send(Transcode { path: path.clone() });
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let r = r.unwrap_or_else(|e| Err(format!("the media worker is gone: {e}")));
            let (tpath, terr) = match r {
                Ok(p) => {
                    act.counters.transcoded.fetch_add(1, Ordering::Relaxed);
                    (Some(p), None)
                }
                Err(e) => {
                    act.counters.transcode_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(corpid = %corpid, id = job.id, error = %e, "transcoding failed; the original is kept");
                    (None, Some(e))
                }
            };
            let store = Arc::clone(&act.store);
            let id = corpid.clone();
            let outcome = MediaOutcome::Done { path, transcoded_path: tpath, transcode_error: terr };
            let span = corp_span(&id);
        let fut = tracing::Instrument::instrument(async move { store.finish_media(&id, &job, &outcome).await }, span);
            ctx.spawn(fut.into_actor(act).map(move |r, act, ctx| {
                if let Err(e) = r {
                    // The MP3 is complete beside the original but the row still says
                    // "interrupted" (the database went away): the next recovery, once nothing of
                    // this corp is in flight, checks and records it like one left by a kill.
                    tracing::error!(corpid = %corpid, error = %e, "recording a transcode result failed");
                    if let Some(c) = act.corps.get_mut(&corpid) {
                        c.recovered = false;
                        c.adopting = false;
                    }
                }
                act.release(&corpid, ctx);
            }));
        }));
    }

    fn release(&mut self, corpid: &CorpId, ctx: &mut Context<Self>) {
        self.inflight = self.inflight.saturating_sub(1);
        if let Some(c) = self.corps.get_mut(corpid) {
            c.inflight = c.inflight.saturating_sub(1);
            c.idle = false;
        }
        if self.stopping {
            if self.inflight == 0 {
                for w in self.waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            return;
        }
        self.schedule(ctx);
    }
}

/// `transcode_error` written before a voice file is transcoded; replaced by the result. If the
/// process dies inside the transcoder, this is what stays (and the item is not retried).
pub const TRANSCODE_INTERRUPTED: &str = "transcoding was interrupted (the process stopped or crashed during it)";

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `initial * 2^(attempts-1)`, capped at `max`, with ±25 % jitter.
fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let mut b = crate::backoff::Backoff::new(initial, max);
    let mut d = b.next_delay();
    for _ in 1..attempts.min(32) {
        d = b.next_delay();
    }
    d
}

impl Actor for MediaScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.sweep_interval.max(Duration::from_millis(100)), |act, ctx| {
            for c in act.corps.values_mut() {
                c.idle = false;
            }
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
                    old.idle = false;
                    old
                }
                None => CorpMedia {
                    spec,
                    net,
                    inflight: 0,
                    claiming: false,
                    recovered: false,
                    idle: false,
                    adopting: false,
                },
            };
            next.insert(c.spec.corpid.clone(), c);
        }
        // Corps no longer desired: their in-flight items finish; nothing new is claimed.
        self.corps = next;
        self.schedule(ctx);
    }
}

impl Handler<Nudge> for MediaScheduler {
    type Result = ();

    fn handle(&mut self, msg: Nudge, ctx: &mut Self::Context) {
        if let Some(c) = self.corps.get_mut(&msg.0) {
            c.idle = false;
            self.schedule(ctx);
        }
    }
}

impl Handler<MediaShutdown> for MediaScheduler {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: MediaShutdown, _ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        self.stop.store(true, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.inflight == 0 {
            let _ = tx.send(());
        } else {
            self.waiters.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
