//! Media actors: [`MediaScheduler`] (one, async) hands claimed `media_<corpid>` rows to the
//! [`MediaWorker`] download pool (actix `SyncArbiter`, `media.workers` OS threads), voice files
//! to a second pool of the same workers that only transcode (`media.transcode_workers`), and
//! every outcome to the [`Settler`], which records them in batches.
//!
//! The parts, one job each:
//! - [`settings`]: [`MediaSettings`], made from `[media]` (whose defaults are the only ones);
//! - [`scheduler`]: the scheduler, its messages ([`MediaCorps`], [`Nudge`]), its
//!   [`MediaCounters`], each corp's phase and the job loop (claim → run → settle);
//! - [`worker`]: a worker thread and its messages (download, transcode, adopt), the upload glue;
//! - [`settle`]: the [`Settler`]: directory fsyncs and row updates of whatever finished
//!   meanwhile, one transaction per corp (group commit);
//! - [`stages`]: [`MediaStages`], the time of each stage (`/metrics`).
//!
//! How they behave:
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
//! - After a good download the item is stored as done (status 3) FIRST — only once the file and
//!   its directory are fsynced (the directory by the settler, once per batch); voice is then
//!   transcoded as a separate step on the transcoder pool (the download's slot is free by
//!   then), its result recorded in `transcoded_path` / `transcode_error` (decision 8). A marker error is written before transcoding, so a transcoder that kills the
//!   process leaves "interrupted" behind instead of a retry loop (decision 2). A kill after the
//!   MP3's rename but before the row update leaves a complete MP3 that the row does not name: at
//!   the corp's first recovery it is checked and recorded (a damaged one is removed and made
//!   again), see [`crate::media::adopt_beside`]. An MP3 whose record failed while the daemon
//!   runs (the database went away) is looked for the same way once the corp is recovered; a look
//!   that the database cuts short is made again after the next recovery, not left for a restart.
//! - Items stored while media was off (`[media] enabled = false`) are held (status
//!   [`crate::store::MEDIA_HELD`]); the corp's recovery makes them pending.
//! - A transient failure goes back to status 1 with `retry_at` = now + exponential backoff; a
//!   permanent one, or the last allowed attempt, ends in status 4 with the code. A local I/O
//!   failure (the media root read-only or full) is not the item's: it goes back to status 1 with
//!   its attempt given back, after a backoff that grows while such failures go on.
//! - The supervisor sends the desired corps after every reconcile ([`MediaCorps`]); corp actors
//!   [`Nudge`] after a batch that stored media; a sweep every `sweep_interval` catches the rest
//!   (retries that came due). The pipeline's [`Shutdown`](crate::actors::shutdown::Shutdown)
//!   stops claiming and interrupts downloads between chunks (their attempt is given back); the
//!   pipeline has stopped once nothing is in flight.

pub mod scheduler;
pub mod settings;
pub mod settle;
pub mod stages;
pub mod worker;

pub use scheduler::{MediaCorps, MediaCounters, MediaScheduler, Nudge};
pub use settings::MediaSettings;
pub use settle::{SettleError, Settler};
pub use stages::MediaStages;
pub use worker::MediaWorker;

/// `transcode_error` written before a voice file is transcoded; replaced by the result. If the
/// process dies inside the transcoder, this is what stays (and the item is not retried).
pub const TRANSCODE_INTERRUPTED: &str = "transcoding was interrupted (the process stopped or crashed during it)";
