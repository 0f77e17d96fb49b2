//! The vendor SDK, behind a safe trait.
//!
//! `libWeWorkFinanceSdk_C.so` is the only way to reach the WeCom archive API. This module is the
//! only place in the daemon with `unsafe` code, and the only one that knows the C API:
//!
//! - [`FinanceSdk`] is what the rest of the daemon sees: open a [`SdkSession`] for a corp
//!   (`NewSdk` + `Init`), and call the stateless `DecryptData`.
//! - [`SdkSession`] is one SDK handle for one corp, used by one thread at a time (`&mut self`):
//!   `GetChatData` returning a parsed [`ChatPage`], and `GetMediaData` returning one [`MediaChunk`].
//! - [`dynlib::VendorSdk`] implements the trait over a library loaded at run time with libloading
//!   (the real SDK, or the emulator's drop-in `.so`); [`emulated::EmulatedSdk`] implements it over
//!   the emulator's rlib in-process, for tests and `demo`.
//! - [`guard`] rejects every input known to crash the vendor SDK before it is called
//!   (sdk-facts.md §2), whichever implementation sits behind the trait.
//! - [`download_media`] is the chunk loop (`indexbuf` → `outindexbuf` until `is_finish`) that streams
//!   into any [`std::io::Write`].
//! - [`chatdata`] turns the raw `GetChatData` body into records, surfacing a non-zero JSON `errcode`
//!   as an error even when the SDK returned 0; [`explain`] says what any code means, in words.
//! - [`process::ProcessSdk`] implements it over `sdk-worker` child processes that load the
//!   library (the daemon's default for a vendor library): a crash or a hang inside the SDK ends
//!   a child, never the daemon ([`wire`] is their protocol). [`watchdog`] bounds the calls of an
//!   in-process session instead.
//! - [`os`] holds the other unsafe helpers: capturing what the SDK prints on stdout (`doctor`),
//!   the free space of a file system, and giving freed memory back to the system.

pub mod chatdata;
pub mod dynlib;
pub mod emulated;
mod error;
pub mod guard;
pub mod os;
pub mod process;
pub mod watchdog;
pub mod wire;
pub mod worker;

use std::io::Write;
use std::time::Duration;

pub use chatdata::{ChatPage, EncryptedRecord};
pub use error::{errcode, explain, SdkCode, SdkError};

use crate::secret::Secret;

/// The SDK's own chunk size for media (512 KiB).
pub const MEDIA_CHUNK_BYTES: usize = 512 * 1024;

/// The most records one `GetChatData` may ask for.
pub const MAX_LIMIT: u32 = 1000;

/// The network settings of one SDK call.
#[derive(Debug, Clone, Default)]
pub struct NetOptions {
    /// `http://host:port`, `socks5://…` or `socks5h://…`; `None` connects directly.
    pub proxy: Option<String>,
    /// `user:password` for the proxy.
    pub proxy_password: Option<Secret>,
    /// Per-call timeout handed to the SDK.
    pub timeout: SdkTimeout,
}

/// A timeout the SDK accepts: whole seconds, at least 1 (0 or less blocks forever, sdk-facts §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTimeout(u16);

impl SdkTimeout {
    /// The longest timeout we hand to the SDK.
    pub const MAX_SECS: u16 = 600;

    /// Clamps `secs` into `1..=MAX_SECS`.
    pub fn from_secs(secs: u64) -> Self {
        Self(secs.clamp(1, u64::from(Self::MAX_SECS)) as u16)
    }

    /// The value passed to the C API.
    pub fn secs(self) -> i32 {
        i32::from(self.0)
    }

    /// How long a call may really block: `timeout + 10 s` (DNS alone can take ~10 s).
    pub fn worst_case(self) -> Duration {
        Duration::from_secs(u64::from(self.0) + 10)
    }
}

impl Default for SdkTimeout {
    fn default() -> Self {
        Self(5)
    }
}

/// One chunk of a media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChunk {
    /// The bytes of this chunk (plaintext).
    pub data: Vec<u8>,
    /// The index to pass for the next chunk.
    pub next_index: String,
    /// True on the last chunk.
    pub is_finish: bool,
}

/// The vendor SDK, loaded once per process and shared by every thread.
pub trait FinanceSdk: Send + Sync {
    /// A short name for logs (`vendor:/path/lib.so`, `emulator`).
    fn describe(&self) -> String;

    /// `NewSdk` + `Init`: a handle for one corp. Init makes no network call; a wrong secret only
    /// shows on the first `GetChatData`.
    fn open(&self, corpid: &str, secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError>;

    /// The SDK's `DecryptData`, after [`guard::check_decrypt_input`]. The daemon decrypts natively
    /// (ARCHITECTURE.md decision 4); this exists for the contract tests.
    fn decrypt_data(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError>;

    /// True when the implementation bounds every call itself, cutting off one that hangs
    /// ([`process::ProcessSdk`] kills its child); otherwise callers wrap sessions in a
    /// [`watchdog::Watched`] (or, the pull pool, abandon the thread).
    fn bounds_calls(&self) -> bool {
        false
    }
}

/// One SDK handle for one corp. Not shared between threads: one call at a time.
pub trait SdkSession: Send {
    /// `GetChatData` from `seq` (exclusive) for at most `limit` (1..=1000) records.
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError>;

    /// One `GetMediaData` call: the chunk at `index` (`""` for the first).
    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError>;
}

/// Progress of one media download; lets a caller retry the failed chunk instead of the whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaProgress {
    /// The index of the next chunk to fetch (`""` before the first).
    pub index: String,
    /// Bytes written so far.
    pub bytes: u64,
    /// Chunks fetched so far.
    pub chunks: u64,
    /// True once the last chunk was written.
    pub finished: bool,
}

/// Fetches the next chunk after `progress` and writes it to `out`. On error `progress` is
/// unchanged, so the same call can be retried.
pub fn fetch_next_chunk(
    session: &mut dyn SdkSession,
    sdkfileid: &str,
    net: &NetOptions,
    progress: &mut MediaProgress,
    out: &mut dyn Write,
) -> Result<(), SdkError> {
    if progress.finished {
        return Ok(());
    }
    let chunk = session.get_media_chunk(sdkfileid, &progress.index, net)?;
    if !chunk.is_finish && chunk.next_index.is_empty() {
        return Err(SdkError::Protocol("a chunk that is not the last came without a next index"));
    }
    if !chunk.is_finish && chunk.next_index == progress.index {
        return Err(SdkError::Protocol("the next index equals the current one"));
    }
    out.write_all(&chunk.data).map_err(SdkError::Write)?;
    progress.bytes += chunk.data.len() as u64;
    progress.chunks += 1;
    progress.finished = chunk.is_finish;
    progress.index = chunk.next_index;
    Ok(())
}

/// Downloads a whole media file into `out`, chunk by chunk (never holding the file in memory),
/// retrying a failed chunk up to `retries_per_chunk` times when the error is retryable.
/// Returns the number of bytes written.
pub fn download_media(
    session: &mut dyn SdkSession,
    sdkfileid: &str,
    net: &NetOptions,
    retries_per_chunk: u32,
    out: &mut dyn Write,
) -> Result<u64, SdkError> {
    let mut progress = MediaProgress::default();
    while !progress.finished {
        let mut attempt = 0;
        loop {
            match fetch_next_chunk(session, sdkfileid, net, &mut progress, out) {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt < retries_per_chunk && !matches!(e, SdkError::Write(_)) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50 * u64::from(attempt.min(20))));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(progress.bytes)
}
