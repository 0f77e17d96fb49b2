//! [`ProcessSdk`]: the vendor SDK run in `sdk-worker` child processes, so that a crash inside
//! the closed C++ library (a segfault or an abort in `GetChatData`, `GetMediaData`, …) kills a
//! child, never the daemon.
//!
//! - **One child per calling thread.** Every thread that calls the SDK (each pull-pool thread,
//!   each media worker) gets its own child, started lazily on its first call: no call waits for
//!   another thread's call. A child serves one call at a time; its handles are the sessions of
//!   that thread. A child is killed when the last session of its thread is dropped.
//! - **The channel** is a private socketpair ([`super::wire`] frames), fd 3 of the child. The
//!   child's stdout is the daemon's stderr, so what the vendor SDK prints can never corrupt the
//!   channel and still shows in the daemon's log. Environment overrides of the configuration
//!   (`WEWORK_MSGAUDIT__*`, which may hold the database password) are not passed on.
//! - **A session** is (child, handle, child generation). When the child has been restarted
//!   since, the handle is reopened (`NewSdk` + `Init`) before the next call, transparently.
//! - **A crash** (the channel closes: the child died) ends the call in flight with
//!   [`SdkError::Crashed`], naming the signal; the next call starts a new child. Crashes are
//!   counted per corp and call site (the page after a seq, the media file): the same call
//!   crashing `crash_limit` times in a row makes the error permanent, so the corp is marked
//!   failing (and retried only slowly) and a media item fails for good, while every other corp
//!   and file goes on. A call that returns resets its count. A call at the limit is not made
//!   again for `quarantine` (1 h): its callers get the crash error without a new crash.
//! - **A hang**: every call has a deadline, the SDK's worst case (timeout + 10 s) plus
//!   `hang_grace`. A child that has not answered by then is killed (SIGKILL) and the call ends
//!   with [`SdkError::Hung`]: a hung `GetMediaData` no longer holds a media worker for good.
//! - The child's side of the channel is [`super::worker`].
//! - **The program** of a child: the lean `wework-msgaudit-sdk-worker` binary installed beside the
//!   daemon's ([`ProcessOptions::for_daemon`]), opened once at start and exec'd through that held
//!   descriptor (`/proc/self/fd/N`), so that an upgrade replacing the files on disk never pairs a
//!   running daemon with a newer worker; it maps a handful of shared libraries where the daemon's
//!   binary maps ~100 (an exec: under 1 ms of CPU instead of 24 ms). Without it, the daemon's own
//!   binary (`/proc/self/exe sdk-worker`), which survives a replacement the same way.
//! - The child dies with the daemon (`PR_SET_PDEATHSIG`, all children forked by one spawner
//!   thread), ignores SIGINT/SIGTERM/SIGHUP
//!   (the daemon decides when it ends: a terminal's Ctrl-C or systemd's SIGTERM to the whole
//!   group must not cut the calls in flight of a graceful stop) and exits when the channel closes.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::wire::{self, Net, Reply, Request, WireError};
use super::{guard, ChatPage, FinanceSdk, MediaChunk, NetOptions, SdkCode, SdkError, SdkSession, SdkTimeout};
use crate::secret::Secret;

/// The fd on which a child finds its end of the channel.
pub const CHANNEL_FD: RawFd = 3;

/// The subcommand of the daemon's binary that runs a child.
pub const SUBCOMMAND: &str = "sdk-worker";

/// The file name of the lean worker binary, looked for beside the daemon's binary.
pub const WORKER_BINARY: &str = "wework-msgaudit-sdk-worker";

/// A program opened once and exec'd through its descriptor (`/proc/self/fd/N`) for every child:
/// the file replaced or removed on disk later (an upgrade) changes nothing for this process.
#[derive(Debug)]
pub struct HeldProgram {
    /// Open for reading, close-on-exec, never fd 0–[`CHANNEL_FD`].
    file: File,
    /// Where it was opened from (for messages and the child's `argv[0]`).
    path: PathBuf,
}

impl HeldProgram {
    /// Opens `path`, which must be an executable ELF file: a script cannot be run through a
    /// close-on-exec descriptor (its interpreter would find the descriptor closed).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = std::path::absolute(path.as_ref())?;
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not an executable file"));
        }
        let mut magic = [0u8; 4];
        io::Read::read_exact(&mut &file, &mut magic)?;
        if &magic != b"\x7fELF" {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not an ELF binary"));
        }
        // The child's channel is moved onto CHANNEL_FD before the exec: the program's descriptor
        // must be above it (a daemon opens this at start, when fd 3 may well be free).
        let file = if file.as_raw_fd() <= CHANNEL_FD {
            // SAFETY: F_DUPFD_CLOEXEC on an open descriptor we own returns a new descriptor (or
            // -1); nothing else refers to the number it returns.
            let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by fcntl and is owned by nothing else.
            unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        } else {
            file
        };
        Ok(Self { file, path })
    }

    /// Where it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path a child execs.
    fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// Settings of [`ProcessSdk`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// The program started as a child with `sdk-worker --library <path> --channel-fd 3`: the
    /// daemon's own binary (`/proc/self/exe`, which survives the file being replaced on disk).
    /// Not used when `held` is set.
    pub program: PathBuf,
    /// The program held open and exec'd through its descriptor ([`ProcessOptions::for_daemon`]).
    pub held: Option<Arc<HeldProgram>>,
    /// Crashes in a row of one call (same corp, same page or file) after which it is permanent.
    pub crash_limit: u32,
    /// Added to the SDK's worst case (`timeout + 10 s`) before a call counts as hung.
    pub hang_grace: Duration,
    /// How long a child may take to load the library and say it is ready (and to open a handle).
    pub start_timeout: Duration,
    /// A call that crashed `crash_limit` times in a row is not made again for this long (its
    /// callers get the crash error at once): a poisonous page is not fed to a fresh child at
    /// every slow retry of its corp.
    pub quarantine: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("/proc/self/exe"),
            held: None,
            crash_limit: 3,
            hang_grace: Duration::from_secs(2),
            start_timeout: Duration::from_secs(30),
            quarantine: Duration::from_secs(3600),
        }
    }
}

impl ProcessOptions {
    /// The daemon's children: the lean [`WORKER_BINARY`] beside the running binary, held open,
    /// when it is there; else the daemon's own binary.
    pub fn for_daemon() -> Self {
        match std::env::current_exe() {
            Ok(exe) => Self::beside(&exe),
            Err(e) => {
                tracing::warn!(error = %e, "the daemon's own path is unknown: sdk-worker children run the daemon's binary");
                Self::default()
            }
        }
    }

    /// [`ProcessOptions::for_daemon`] for a daemon binary at `exe`: the lean worker in the same
    /// directory when it is an executable ELF file there, held open; else `/proc/self/exe`
    /// (a warning says why, unless the file is simply not installed).
    pub fn beside(exe: &Path) -> Self {
        let Some(lean) = exe.parent().map(|dir| dir.join(WORKER_BINARY)) else { return Self::default() };
        match HeldProgram::open(&lean) {
            Ok(held) => Self { held: Some(Arc::new(held)), ..Self::default() },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(path = %lean.display(), "no lean worker binary: sdk-worker children run the daemon's binary");
                Self::default()
            }
            Err(e) => {
                tracing::warn!(path = %lean.display(), error = %e, "the lean worker binary is not usable: sdk-worker children run the daemon's binary");
                Self::default()
            }
        }
    }

    /// What a child execs, and the name it is known by in messages and in its `argv[0]`.
    fn program(&self) -> (PathBuf, PathBuf) {
        match &self.held {
            Some(h) => (h.exec_path(), h.path.clone()),
            None => (self.program.clone(), self.program.clone()),
        }
    }
}

/// The vendor SDK in child processes (see the module docs).
pub struct ProcessSdk {
    shared: Arc<Shared>,
    /// The child of `DecryptData` (stateless, not on the daemon's path: one child for every
    /// thread, one call at a time).
    decrypt: Arc<Slot>,
}

impl std::fmt::Debug for ProcessSdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSdk").field("library", &self.shared.library).finish_non_exhaustive()
    }
}

struct Shared {
    library: PathBuf,
    opts: ProcessOptions,
    /// Each calling thread's child.
    slots: Mutex<HashMap<ThreadId, Weak<Slot>>>,
    /// Crashes in a row per (corp, call site).
    crashes: Mutex<HashMap<(String, String), Crashes>>,
    /// Children started so far.
    started: AtomicU64,
    /// The thread that starts every child (see [`Spawner`]).
    spawner: Spawner,
}

/// Starts the children from one thread that lives as long as the [`ProcessSdk`] and its
/// sessions: `PR_SET_PDEATHSIG` fires when the *thread* that forked a child ends, so a child
/// forked by a pull-pool thread that retires, or by whichever thread made the first
/// `DecryptData` call, would be killed under its other users.
struct Spawner {
    tx: Mutex<Option<mpsc::Sender<SpawnJob>>>,
}

/// A command to start and where its child goes.
type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

impl Spawner {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let started = std::thread::Builder::new().name("sdk-spawner".into()).spawn(move || {
            // Ends when the last sender (the ProcessSdk's shared state) is dropped.
            while let Ok((mut cmd, reply)) = rx.recv() {
                let _ = reply.send(cmd.spawn());
            }
        });
        Self { tx: Mutex::new(started.ok().map(|_| tx)) }
    }

    fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let (reply, answer) = mpsc::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = tx.as_ref().ok_or_else(|| io::Error::other("the sdk-spawner thread could not start"))?;
            tx.send((cmd, reply)).map_err(|_| io::Error::other("the sdk-spawner thread is gone"))?;
        }
        answer.recv().map_err(|_| io::Error::other("the sdk-spawner thread is gone"))?
    }
}

/// The crashes in a row of one call site.
struct Crashes {
    count: u32,
    last: Instant,
    how: String,
}

/// One thread's child: started lazily, restarted after a crash or a hang.
struct Slot {
    shared: Arc<Shared>,
    conn: Mutex<Conn>,
}

#[derive(Default)]
struct Conn {
    live: Option<Live>,
    /// Bumped at every start: a session's handle belongs to one generation.
    generation: u64,
}

/// A running child and the daemon's end of its channel.
struct Live {
    child: Child,
    sock: UnixStream,
}

impl Drop for Live {
    fn drop(&mut self) {
        // SIGKILL: the child holds nothing that needs an orderly end (the SDK's connections
        // close with the process), and a child stuck in the SDK would not read a goodbye.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why an exchange with a child failed (the child is gone afterwards in every case).
enum Failure {
    Died(String),
    Hung(Duration),
    Broken(String),
}

impl ProcessSdk {
    /// Checks that a child can load `library` (the first child is started and stopped here, so
    /// a wrong path or a file that is not the SDK fails at start-up, naming the cause).
    pub fn start(library: impl AsRef<Path>, opts: ProcessOptions) -> Result<Self, SdkError> {
        let library = library.as_ref();
        if !library.is_file() {
            return Err(SdkError::Load { path: library.to_path_buf(), reason: "no such file".into() });
        }
        let library = std::path::absolute(library)
            .map_err(|e| SdkError::Load { path: library.to_path_buf(), reason: e.to_string() })?;
        let shared = Arc::new(Shared {
            library,
            opts,
            slots: Mutex::new(HashMap::new()),
            crashes: Mutex::new(HashMap::new()),
            started: AtomicU64::new(0),
            spawner: Spawner::new(),
        });
        drop(spawn(&shared)?);
        let decrypt = Arc::new(Slot { shared: Arc::clone(&shared), conn: Mutex::new(Conn::default()) });
        Ok(Self { shared, decrypt })
    }

    /// Children started so far (the probe of [`ProcessSdk::start`] included).
    pub fn children_started(&self) -> u64 {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// The pid of the calling thread's child, if it is running.
    pub fn child_pid(&self) -> Option<u32> {
        let slot = self.shared.slot();
        let conn = slot.conn.lock().ok()?;
        conn.live.as_ref().map(|l| l.child.id())
    }
}

impl Shared {
    /// The calling thread's child slot (created, not started, on its first use).
    fn slot(self: &Arc<Self>) -> Arc<Slot> {
        let id = std::thread::current().id();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(&id).and_then(Weak::upgrade) {
            return slot;
        }
        slots.retain(|_, w| w.strong_count() > 0);
        let slot = Arc::new(Slot { shared: Arc::clone(self), conn: Mutex::new(Conn::default()) });
        slots.insert(id, Arc::downgrade(&slot));
        slot
    }

    fn crashed(&self, corpid: &str, site: &str, how: &str) -> u32 {
        let mut c = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() > 10_000 {
            c.clear(); // a bound: poisoned call sites are few, and recounting them is harmless
        }
        let e = c.entry((corpid.to_string(), site.to_string())).or_insert_with(|| Crashes {
            count: 0,
            last: Instant::now(),
            how: String::new(),
        });
        e.count = e.count.saturating_add(1);
        e.last = Instant::now();
        e.how = how.to_string();
        e.count
    }

    /// The crash error of a call site in quarantine (it crashed `crash_limit` times in a row
    /// less than `quarantine` ago): the call is not made.
    fn quarantined(&self, call: &'static str, corpid: &str, site: &str, at: &str) -> Option<SdkError> {
        let c = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
        let e = c.get(&(corpid.to_string(), site.to_string()))?;
        let limit = self.opts.crash_limit.max(1);
        (e.count >= limit && e.last.elapsed() < self.opts.quarantine).then(|| SdkError::Crashed {
            call,
            how: e.how.clone(),
            at: at.to_string(),
            crashes: e.count,
            limit,
        })
    }

    fn returned(&self, corpid: &str, site: &str) {
        let mut c = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
        if !c.is_empty() {
            c.remove(&(corpid.to_string(), site.to_string()));
        }
    }
}

/// Starts a child and waits for its `Ready`.
fn spawn(shared: &Shared) -> Result<Live, SdkError> {
    let worker = |what: &str, e: io::Error| SdkError::Worker(format!("{what}: {e}"));
    let (ours, theirs) = UnixStream::pair().map_err(|e| worker("socketpair", e))?;
    // fds 0–2 are set up for the child before `pre_exec` runs: the child's end must not be one.
    let theirs = if theirs.as_raw_fd() <= 2 { theirs.try_clone().map_err(|e| worker("dup", e))? } else { theirs };
    let fd = theirs.as_raw_fd();
    let (program, name) = shared.opts.program();
    let mut cmd = Command::new(&program);
    cmd.arg0(&name)
        .arg(SUBCOMMAND)
        .arg("--library")
        .arg(&shared.library)
        .arg("--channel-fd")
        .arg(CHANNEL_FD.to_string())
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .stderr(Stdio::inherit());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with(crate::config::ENV_PREFIX) {
            cmd.env_remove(name);
        }
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (dup2, fcntl, prctl, getppid) on plain integers; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if fd == CHANNEL_FD {
                // dup2 onto itself keeps FD_CLOEXEC: clear it.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, CHANNEL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The daemon died between fork and prctl: no one would kill this child.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let child = shared.spawner.spawn(cmd).map_err(|e| worker(&format!("starting {}", name.display()), e))?;
    drop(theirs);
    shared.started.fetch_add(1, Ordering::SeqCst);
    let mut live = Live { child, sock: ours };
    let pid = live.child.id();
    match exchange(&mut live, None, shared.opts.start_timeout) {
        Ok(Reply::Ready { version }) if version == wire::VERSION => {
            tracing::debug!(pid, program = %name.display(), library = %shared.library.display(), "sdk-worker started");
            Ok(live)
        }
        Ok(Reply::Ready { version }) => Err(SdkError::Worker(format!(
            "protocol version {version}, expected {} (a different binary?)",
            wire::VERSION
        ))),
        Ok(Reply::LoadFailed { reason }) => Err(SdkError::Load { path: shared.library.clone(), reason }),
        Ok(other) => Err(SdkError::Worker(format!("unexpected first frame: {}", reply_kind(&other)))),
        Err(f) => Err(SdkError::Worker(format!("the new process did not start: {}", failure_text(&f)))),
    }
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Died(how) => how.clone(),
        Failure::Hung(after) => format!("no answer within {after:?}"),
        Failure::Broken(why) => why.clone(),
    }
}

/// Sends `request` (if any) and waits for the reply until `deadline` has passed. On a failure
/// the child is killed and reaped (by the caller dropping `live`).
fn exchange(live: &mut Live, request: Option<&Request>, deadline: Duration) -> Result<Reply, Failure> {
    let until = Instant::now() + deadline;
    let timeout = |until: Instant| until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let io_failure = |live: &mut Live, e: WireError| -> Failure {
        match e {
            WireError::Closed => Failure::Died(death(&mut live.child)),
            e if e.is_timeout() => Failure::Hung(deadline),
            e => Failure::Broken(e.to_string()),
        }
    };
    if let Some(request) = request {
        if let Err(e) = live.sock.set_write_timeout(Some(timeout(until))) {
            return Err(Failure::Broken(e.to_string()));
        }
        if let Err(e) = wire::send_request(&mut live.sock, request) {
            return Err(io_failure(live, e));
        }
    }
    if let Err(e) = live.sock.set_read_timeout(Some(timeout(until))) {
        return Err(Failure::Broken(e.to_string()));
    }
    wire::recv_reply(&mut live.sock).map_err(|e| io_failure(live, e))
}

/// How a child whose channel closed ended (it is reaped here).
fn death(child: &mut Child) -> String {
    // The channel closes as the process exits: its status follows within moments.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match (status.signal(), status.code()) {
                    (Some(sig), _) => {
                        let core = if status.core_dumped() { ", core dumped" } else { "" };
                        format!("was killed by signal {sig} ({}{core})", signal_name(sig))
                    }
                    (None, Some(code)) => format!("exited with code {code}"),
                    (None, None) => format!("ended ({status})"),
                };
            }
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return "closed its channel and was killed".into();
            }
            Err(e) => return format!("closed its channel (wait failed: {e})"),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

fn wire_net(net: &NetOptions, call: &'static str) -> Result<Net, SdkError> {
    let proxy = net.proxy.clone().unwrap_or_default();
    let passwd = Zeroizing::new(net.proxy_password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default());
    guard::c_string(call, &proxy, "proxy contains NUL")?;
    if passwd.contains('\0') {
        return Err(SdkError::InvalidInput { call, reason: "proxy password contains NUL" });
    }
    Ok(Net { proxy, passwd, timeout: net.timeout.secs() })
}

impl Slot {
    /// One call on this thread's child: starts the child if needed, (re)opens the session's
    /// handle in it if needed, and classifies a crash or a hang.
    fn call(
        &self,
        session: Option<&mut Handle>,
        call: &'static str,
        site: (&str, String, String),
        deadline: Duration,
        request: impl FnOnce(u64) -> Request,
    ) -> Result<Reply, SdkError> {
        let (corpid, key, at) = site;
        if let Some(e) = self.shared.quarantined(call, corpid, &key, &at) {
            return Err(e);
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.live.is_none() {
            conn.live = Some(spawn(&self.shared)?);
            conn.generation += 1;
        }
        let generation = conn.generation;
        let handle = match session {
            Some(h) => Some(self.handle_in(&mut conn, h, generation)?),
            None => None,
        };
        let req = request(handle.unwrap_or(0));
        let Some(live) = conn.live.as_mut() else {
            return Err(SdkError::Worker("no process".into()));
        };
        match exchange(live, Some(&req), deadline) {
            Ok(reply) => {
                self.shared.returned(corpid, &key);
                Ok(reply)
            }
            Err(failure) => {
                conn.live = None;
                Err(self.classify(failure, call, corpid, &key, at))
            }
        }
    }

    /// The session's handle in the current child, opened (`NewSdk` + `Init`) when the child
    /// is new since the handle was made.
    fn handle_in(&self, conn: &mut Conn, h: &mut Handle, generation: u64) -> Result<u64, SdkError> {
        if let Some((g, id)) = h.id {
            if g == generation {
                return Ok(id);
            }
        }
        let Some(live) = conn.live.as_mut() else {
            return Err(SdkError::Worker("no process".into()));
        };
        let open = Request::Open { corpid: h.corpid.clone(), secret: Zeroizing::new(h.secret.expose().to_string()) };
        match exchange(live, Some(&open), self.shared.opts.start_timeout) {
            Ok(Reply::Handle(id)) => {
                self.shared.returned(&h.corpid, "Init");
                h.id = Some((generation, id));
                Ok(id)
            }
            Ok(Reply::Code(rc)) => Err(SdkError::Code { call: "Init", code: SdkCode::from_raw(rc) }),
            Ok(other) => Err(unexpected("Init", other)),
            Err(failure) => {
                conn.live = None;
                Err(self.classify(failure, "Init", &h.corpid, "Init", "Init".into()))
            }
        }
    }

    fn classify(&self, failure: Failure, call: &'static str, corpid: &str, key: &str, at: String) -> SdkError {
        match failure {
            Failure::Died(how) => {
                let crashes = self.shared.crashed(corpid, key, &how);
                let limit = self.shared.opts.crash_limit.max(1);
                let e = SdkError::Crashed { call, how, at, crashes, limit };
                tracing::error!(corpid, error = %e, "the vendor SDK crashed; its sdk-worker process is restarted for the next call");
                e
            }
            Failure::Hung(after) => {
                let e = SdkError::Hung { call, after, at, what: "its sdk-worker process was killed" };
                tracing::error!(corpid, error = %e, "a vendor SDK call hung");
                e
            }
            Failure::Broken(why) => SdkError::Worker(why),
        }
    }
}

fn unexpected(call: &'static str, reply: Reply) -> SdkError {
    match reply {
        Reply::Refused(why) => SdkError::Worker(format!("{call} refused by the sdk-worker: {why}")),
        other => SdkError::Worker(format!("{call}: unexpected reply {}", reply_kind(&other))),
    }
}

fn reply_kind(r: &Reply) -> &'static str {
    match r {
        Reply::Ready { .. } => "ready",
        Reply::LoadFailed { .. } => "load failed",
        Reply::Handle(_) => "handle",
        Reply::Code(_) => "code",
        Reply::Refused(_) => "refused",
        Reply::Body(_) => "body",
        Reply::Chunk { .. } => "chunk",
    }
}

/// A session's identity and its handle in its child (generation, id).
struct Handle {
    corpid: String,
    secret: Secret,
    id: Option<(u64, u64)>,
}

/// One corp's handle in the calling thread's child.
struct ProcessSession {
    slot: Arc<Slot>,
    handle: Handle,
}

impl FinanceSdk for ProcessSdk {
    fn describe(&self) -> String {
        let (_, program) = self.shared.opts.program();
        format!("vendor:{} (in sdk-worker processes of {})", self.shared.library.display(), program.display())
    }

    fn open(&self, corpid: &str, secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError> {
        guard::check_init(corpid, secret.expose())?;
        guard::c_string("Init", secret.expose(), "secret contains NUL")?;
        let slot = self.shared.slot();
        let mut handle = Handle { corpid: corpid.to_string(), secret: secret.clone(), id: None };
        {
            let mut conn = slot.conn.lock().unwrap_or_else(|p| p.into_inner());
            if conn.live.is_none() {
                conn.live = Some(spawn(&self.shared)?);
                conn.generation += 1;
            }
            let generation = conn.generation;
            slot.handle_in(&mut conn, &mut handle, generation)?;
        }
        Ok(Box::new(ProcessSession { slot, handle }))
    }

    fn decrypt_data(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError> {
        const CALL: &str = "DecryptData";
        guard::check_decrypt_input(encrypt_key, encrypt_msg)?;
        guard::c_string(CALL, encrypt_key, "encrypt_key contains NUL")?;
        guard::c_string(CALL, encrypt_msg, "encrypt_msg contains NUL")?;
        let slot = &self.decrypt;
        let site = ("", format!("{CALL}@{}", &encrypt_msg[..encrypt_msg.len().min(64)]), "a DecryptData input".into());
        let req = Request::Decrypt { key: Zeroizing::new(encrypt_key.to_string()), msg: encrypt_msg.to_string() };
        match slot.call(None, CALL, site, self.shared.opts.start_timeout, |_| req)? {
            Reply::Body(b) => Ok(b),
            Reply::Code(rc) => Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) }),
            other => Err(unexpected(CALL, other)),
        }
    }

    fn bounds_calls(&self) -> bool {
        true
    }
}

impl ProcessSession {
    fn deadline(&self, timeout: SdkTimeout) -> Duration {
        timeout.worst_case() + self.slot.shared.opts.hang_grace
    }
}

impl SdkSession for ProcessSession {
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError> {
        const CALL: &str = "GetChatData";
        let wnet = wire_net(net, CALL)?;
        let deadline = self.deadline(net.timeout);
        let corpid = self.handle.corpid.clone();
        let site = (corpid.as_str(), format!("{CALL}@{seq}"), format!("the page after seq {seq}"));
        let reply = self.slot.call(Some(&mut self.handle), CALL, site, deadline, |handle| Request::Chat {
            handle,
            seq,
            limit,
            net: wnet,
        })?;
        match reply {
            Reply::Body(body) => super::chatdata::parse_chat_page(&body),
            Reply::Code(rc) => Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) }),
            other => Err(unexpected(CALL, other)),
        }
    }

    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        const CALL: &str = "GetMediaData";
        guard::check_media(sdkfileid, index)?;
        let wnet = wire_net(net, CALL)?;
        let deadline = self.deadline(net.timeout);
        let corpid = self.handle.corpid.clone();
        let short: String = sdkfileid.chars().take(24).collect();
        let site = (corpid.as_str(), format!("{CALL}@{sdkfileid}"), format!("sdkfileid {short}…"));
        let reply = self.slot.call(Some(&mut self.handle), CALL, site, deadline, |handle| Request::Media {
            handle,
            sdkfileid: sdkfileid.to_string(),
            index: index.to_string(),
            net: wnet,
        })?;
        match reply {
            Reply::Chunk { data, next_index, finish } => Ok(MediaChunk { data, next_index, is_finish: finish }),
            Reply::Code(rc) => Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) }),
            other => Err(unexpected(CALL, other)),
        }
    }
}

impl Drop for ProcessSession {
    fn drop(&mut self) {
        let Some((generation, handle)) = self.handle.id else { return };
        let mut conn = self.slot.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.generation != generation {
            return;
        }
        if let Some(live) = conn.live.as_mut() {
            // No reply; a failure shows at the next call.
            if wire::send_request(&mut live.sock, &Request::Close { handle }).is_err() {
                conn.live = None;
            }
        }
    }
}
