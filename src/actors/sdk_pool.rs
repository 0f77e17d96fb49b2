//! [`SdkPool`]: a bounded pool of OS threads that make every `GetChatData` call.
//!
//! The vendor SDK blocks (up to `timeout + 10 s`), so it never runs on an async event loop
//! (invariant 3). N threads (`[sdk] threads`) take [`FetchJob`]s from one shared queue; each job
//! carries a oneshot reply channel, so a corp actor awaits its page without blocking anything.
//! Every thread keeps its own SDK handle per corp (opened lazily on that thread's first job for
//! the corp, dropped and reopened when the corp's generation changes — a restart with a new
//! secret — or when the error says [`SdkError::needs_new_handle`]). 1,000 corps need N threads,
//! not 1,000; "one call in flight per corp" is kept by the corp actors, which await each page
//! before asking for the next.
//!
//! Each call is wrapped in `unwind::catch` (decision 1): a panic behind the binding becomes
//! [`SdkError::Panicked`] for that corp and its handle is dropped.
//!
//! A hung call (decision 3): once a job has started, its caller waits at most the call's timeout
//! plus `hang_grace` (the SDK may block `timeout + 10 s`). Then the call is abandoned: the caller
//! gets [`PoolError::Hung`] and a replacement thread is started, so the pool keeps its capacity.
//! When the hung call returns at last, its thread retires. More than `max_hung` calls hung at
//! once is [`PoolError::TooManyHung`]: the process should exit non-zero and be restarted.
//!
//! With [`crate::sdk::process::ProcessSdk`] (the daemon's default for a vendor library) each
//! thread's calls go to its own `sdk-worker` child process: a crash inside the SDK ends that
//! child and the call with [`SdkError::Crashed`] (retryable until the same page crashed 3 times
//! in a row, then permanent: the corp is marked failing), and a call cut off at its deadline
//! ends with [`SdkError::Hung`]; the thread itself survives both.
//!
//! A thread drops a handle it has not used for [`IDLE_HANDLE`] (the corp was removed, or other
//! threads served it): a removed corp's handles do not live forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::sdk::{ChatPage, FinanceSdk, NetOptions, SdkError, SdkSession};
use crate::secret::Secret;
use crate::store::CorpId;

/// A handle unused this long is dropped by its thread.
pub const IDLE_HANDLE: Duration = Duration::from_secs(600);

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// One `GetChatData` call for one corp.
pub struct FetchJob {
    /// The corp.
    pub corpid: CorpId,
    /// Changes each time the corp's actor is (re)started; a different value reopens the handle.
    pub generation: u64,
    /// The corp's secret (for opening a handle).
    pub secret: Secret,
    /// Fetch records after this seq.
    pub seq: u64,
    /// At most this many records.
    pub limit: u32,
    /// Proxy and timeout.
    pub net: NetOptions,
    /// Told when a thread takes the job (the hang timer starts then, not while queued).
    started: Option<oneshot::Sender<()>>,
    /// [`RUNNING`] → [`DONE`] by the thread, or → [`ABANDONED`] by a caller that gave up.
    state: Arc<AtomicU8>,
    /// Where the answer goes.
    reply: oneshot::Sender<Result<ChatPage, SdkError>>,
}

/// Why a pool call produced no SDK answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool is shut down (or every thread died).
    #[error("the SDK thread pool is stopped")]
    Stopped,
    /// The call did not return within its timeout plus the grace period; it was abandoned.
    #[error("GetChatData hung for more than {0:?}; its thread was abandoned and replaced")]
    Hung(Duration),
    /// Too many calls are hung at once: the vendor SDK is wedged.
    #[error("{0} SDK calls are hung at once (limit {1}): the SDK is wedged")]
    TooManyHung(usize, usize),
    /// The SDK answered with an error.
    #[error(transparent)]
    Sdk(#[from] SdkError),
}

struct Inner {
    rx: Mutex<mpsc::Receiver<FetchJob>>,
    sdk: Arc<dyn FinanceSdk>,
    /// Threads alive (serving or hung), for capacity: a retiring thread leaves it first.
    live: AtomicUsize,
    /// Threads that have not finished yet (decremented as the very last step, after the
    /// thread dropped its SDK handles).
    running: AtomicUsize,
    /// Calls abandoned and not yet returned.
    hung: AtomicUsize,
    /// Threads that serve jobs.
    size: usize,
    next_id: AtomicUsize,
    /// Woken when a thread ends or a call is abandoned ([`SdkPool::stopped`]).
    settled: tokio::sync::Notify,
}

/// The bounded SDK thread pool. Dropping it lets the threads finish their current call and exit.
pub struct SdkPool {
    tx: Mutex<Option<mpsc::Sender<FetchJob>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    inner: Arc<Inner>,
    hang_grace: Duration,
    max_hung: usize,
}

impl std::fmt::Debug for SdkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkPool")
            .field("threads", &self.inner.size)
            .field("live", &self.inner.live.load(Ordering::Relaxed))
            .field("hung", &self.inner.hung.load(Ordering::Relaxed))
            .finish()
    }
}

impl SdkPool {
    /// Starts `threads` (at least 1) SDK threads. A started call may take its timeout plus
    /// `hang_grace` before it is abandoned; more than `max_hung` hung calls is fatal.
    pub fn new(
        sdk: Arc<dyn FinanceSdk>,
        threads: usize,
        hang_grace: Duration,
        max_hung: usize,
    ) -> std::io::Result<Arc<Self>> {
        let size = threads.max(1);
        let (tx, rx) = mpsc::channel::<FetchJob>();
        let inner = Arc::new(Inner {
            rx: Mutex::new(rx),
            sdk,
            live: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            hung: AtomicUsize::new(0),
            size,
            next_id: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
        });
        let pool = Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(Vec::with_capacity(size)),
            inner,
            hang_grace,
            max_hung,
        });
        for _ in 0..size {
            pool.spawn_thread()?;
        }
        Ok(pool)
    }

    fn spawn_thread(&self) -> std::io::Result<()> {
        let inner = Arc::clone(&self.inner);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        inner.live.fetch_add(1, Ordering::SeqCst);
        inner.running.fetch_add(1, Ordering::SeqCst);
        match std::thread::Builder::new().name(format!("sdk-{id}")).spawn(move || worker(&inner)) {
            Ok(h) => {
                if let Ok(mut threads) = self.threads.lock() {
                    threads.retain(|t| !t.is_finished());
                    threads.push(h);
                }
                Ok(())
            }
            Err(e) => {
                self.inner.live.fetch_sub(1, Ordering::SeqCst);
                self.inner.running.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Threads that serve jobs.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Calls abandoned and not yet returned.
    pub fn hung(&self) -> usize {
        self.inner.hung.load(Ordering::SeqCst)
    }

    /// Threads alive (serving or hung).
    pub fn live_threads(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Queues one `GetChatData` and awaits its answer.
    pub async fn get_chat_data(
        &self,
        corpid: &CorpId,
        generation: u64,
        secret: &Secret,
        seq: u64,
        limit: u32,
        net: &NetOptions,
    ) -> Result<ChatPage, PoolError> {
        let hung = self.hung();
        if hung > self.max_hung {
            return Err(PoolError::TooManyHung(hung, self.max_hung));
        }
        let (reply, mut rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let job = FetchJob {
            corpid: corpid.clone(),
            generation,
            secret: secret.clone(),
            seq,
            limit,
            net: net.clone(),
            started: Some(started_tx),
            state: Arc::clone(&state),
            reply,
        };
        {
            let guard = self.tx.lock().map_err(|_| PoolError::Stopped)?;
            let tx = guard.as_ref().ok_or(PoolError::Stopped)?;
            tx.send(job).map_err(|_| PoolError::Stopped)?;
        }
        // Queued: no deadline (a long queue is not a hang).
        let _ = started_rx.await;
        let deadline = Duration::from_secs(u64::from(net.timeout.secs().unsigned_abs())) + self.hang_grace;
        match tokio::time::timeout(deadline, &mut rx).await {
            Ok(answer) => Ok(answer.map_err(|_| PoolError::Stopped)??),
            Err(_) => {
                // Count it before marking it, so that the thread's decrement always follows.
                self.inner.hung.fetch_add(1, Ordering::SeqCst);
                if state.compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    // It just finished: take the answer after all.
                    self.inner.hung.fetch_sub(1, Ordering::SeqCst);
                    return Ok(rx.await.map_err(|_| PoolError::Stopped)??);
                }
                self.inner.settled.notify_waiters();
                tracing::error!(corpid = %corpid, ?deadline, "GetChatData hung; abandoning its thread");
                if let Err(e) = self.spawn_thread() {
                    tracing::error!(error = %e, "cannot start a replacement SDK thread");
                }
                Err(PoolError::Hung(deadline))
            }
        }
    }

    /// Threads that have not finished (0 once every thread dropped its handles and ended).
    pub fn running_threads(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Stops taking jobs: each thread exits after its current call (whose answer is dropped if
    /// nobody waits for it). Does not block.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }

    /// Resolves once every thread that is not hung has ended and dropped its SDK handles (after
    /// [`SdkPool::close`]: within one SDK call's worst case). A hung call is not waited for.
    pub async fn stopped(&self) {
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            // Registered before the check, so that a thread ending in between is not missed.
            settled.as_mut().enable();
            if self.running_threads() <= self.hung() {
                return;
            }
            settled.await;
        }
    }

    /// [`SdkPool::close`], then waits for the threads to exit (blocking: up to one SDK call's
    /// worst case, longer for a hung call; call it from a plain thread, never the event loop).
    pub fn join(&self) {
        self.close();
        let handles = self.threads.lock().map(|mut h| std::mem::take(&mut *h)).unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for SdkPool {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

/// A thread's handles: corp → (generation, handle, last use).
type Sessions = HashMap<CorpId, (u64, Box<dyn SdkSession>, Instant)>;

fn worker(inner: &Inner) {
    let retired = serve(inner);
    if !retired {
        inner.live.fetch_sub(1, Ordering::SeqCst);
    }
    // Last: the thread has dropped its handles (in `serve`) and touches the SDK no more.
    inner.running.fetch_sub(1, Ordering::SeqCst);
    inner.settled.notify_waiters();
}

/// Serves jobs until the queue closes (false) or the thread retires (true, `live` already
/// decremented). The thread's SDK handles are dropped before it returns.
fn serve(inner: &Inner) -> bool {
    let mut sessions: Sessions = HashMap::new();
    let mut last_sweep = Instant::now();
    loop {
        let job = {
            let Ok(rx) = inner.rx.lock() else { break };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut job = job;
        if job.reply.is_closed() {
            continue; // the corp actor went away while the job was queued
        }
        if let Some(started) = job.started.take() {
            let _ = started.send(());
        }
        let result = run_job(&*inner.sdk, &mut sessions, &job);
        if matches!(&result, Err(e) if e.needs_new_handle()) {
            sessions.remove(&job.corpid);
        }
        if last_sweep.elapsed() >= IDLE_HANDLE / 10 {
            sessions.retain(|_, (_, _, used)| used.elapsed() < IDLE_HANDLE);
            last_sweep = Instant::now();
        }
        let abandoned = job.state.compare_exchange(RUNNING, DONE, Ordering::SeqCst, Ordering::SeqCst).is_err();
        let _ = job.reply.send(result);
        if abandoned {
            inner.hung.fetch_sub(1, Ordering::SeqCst);
        }
        // Retire when the pool has more serving threads than it should (a replacement took
        // this thread's place while it was hung).
        loop {
            let live = inner.live.load(Ordering::SeqCst);
            if live <= inner.size + inner.hung.load(Ordering::SeqCst) {
                break;
            }
            if inner.live.compare_exchange(live, live - 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                return true;
            }
        }
    }
    false
}

fn run_job(sdk: &dyn FinanceSdk, sessions: &mut Sessions, job: &FetchJob) -> Result<ChatPage, SdkError> {
    if sessions.get(&job.corpid).is_some_and(|(g, _, _)| *g != job.generation) {
        sessions.remove(&job.corpid);
    }
    if !sessions.contains_key(&job.corpid) {
        let opened = crate::unwind::catch(|| sdk.open(job.corpid.as_str(), &job.secret))
            .map_err(|message| SdkError::Panicked { call: "NewSdk/Init", message })??;
        sessions.insert(job.corpid.clone(), (job.generation, opened, Instant::now()));
    }
    let Some((_, session, used)) = sessions.get_mut(&job.corpid) else {
        // Inserted just above.
        return Err(SdkError::Protocol("SDK handle vanished"));
    };
    *used = Instant::now();
    crate::unwind::catch(|| session.get_chat_data(job.seq, job.limit, &job.net))
        .map_err(|message| SdkError::Panicked { call: "GetChatData", message })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::MediaChunk;

    /// Counts opens; seq 42 answers errcode 42001 (token expired: new handle), seq 7 panics.
    struct Fake {
        opens: AtomicUsize,
    }

    struct FakeSession;

    impl SdkSession for FakeSession {
        fn get_chat_data(&mut self, seq: u64, _limit: u32, _net: &NetOptions) -> Result<ChatPage, SdkError> {
            match seq {
                42 => Err(SdkError::Api { call: "GetChatData", errcode: 42001, errmsg: "expired".into() }),
                7 => panic!("vendor blew up"),
                _ => Ok(ChatPage::default()),
            }
        }

        fn get_media_chunk(&mut self, _: &str, _: &str, _: &NetOptions) -> Result<MediaChunk, SdkError> {
            Err(SdkError::Protocol("not used"))
        }
    }

    impl FinanceSdk for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }

        fn open(&self, _corpid: &str, _secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(FakeSession))
        }

        fn decrypt_data(&self, _: &str, _: &str) -> Result<Vec<u8>, SdkError> {
            Err(SdkError::Protocol("not used"))
        }
    }

    #[test]
    fn handles_are_opened_lazily_and_reopened_when_needed() {
        let fake = Arc::new(Fake { opens: AtomicUsize::new(0) });
        let pool = SdkPool::new(fake.clone(), 1, Duration::from_secs(10), 4).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let corp = CorpId::new("c1").unwrap();
        let secret = Secret::new("s");
        let net = NetOptions::default();
        let call = |seq, generation| rt.block_on(pool.get_chat_data(&corp, generation, &secret, seq, 10, &net));
        assert_eq!(fake.opens.load(Ordering::SeqCst), 0, "lazily");
        call(0, 1).unwrap();
        call(0, 1).unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 1, "one handle per corp per thread");
        assert!(matches!(call(42, 1), Err(PoolError::Sdk(SdkError::Api { errcode: 42001, .. }))));
        call(0, 1).unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 2, "42001 → a new handle");
        call(0, 2).unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 3, "a new generation → a new handle");
        let e = call(7, 2).unwrap_err();
        assert!(matches!(&e, PoolError::Sdk(SdkError::Panicked { message, .. }) if message.contains("blew up")), "{e}");
        call(0, 2).unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 4, "a panic drops the handle");
        assert_eq!(pool.live_threads(), 1, "the panic did not kill the thread");
        pool.join();
        assert!(matches!(call(0, 2), Err(PoolError::Stopped)));
    }
}
