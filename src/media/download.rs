//! One media download: a claimed [`MediaJob`] → a verified file under the media root.
//!
//! 1. `GetMediaData` chunk by chunk ([`crate::sdk::fetch_next_chunk`], a failed chunk retried in
//!    place up to `chunk_retries` times when the code is transient), streamed into a temp file
//!    `<root>/.tmp/<owner>/<job id>.part` (never the whole file in memory) while its MD5 and
//!    size are computed;
//! 2. `fsync`, then the size and MD5 the record announced are checked (a mismatch is a retryable
//!    failure with a code of ours, [`codes`]);
//! 3. the extension comes from [`sniff`](super::sniff) first, then the record's hint;
//! 4. atomic rename to `<root>/<corpid>/<yyyy>/<mm>/<dd>/<msgid>[-<item>].<ext>` ([`relative_path`],
//!    date from msgtime in UTC) and `fsync` of the directory. [`download_unsynced`] leaves that
//!    last fsync to its caller ([`sync_parent`]), which may then make one for many files of the
//!    same directory, before it records any of them as done (the media scheduler's settler).
//!
//! How long each step took is returned in [`StageTimes`] (the media stage histograms).
//!
//! A failure removes the temp file (a [`TempFile`]); [`clean_temp`] removes what a killed process left behind, at
//! start-up. Every path component is built here from sanitised parts, so a hostile record (a
//! msgid or extension with `/`, `..`, NUL, 10 KB names) can only ever write inside the root.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::sniff::{choose_ext, sniff, Sniffed, SNIFF_BYTES};
use super::tmp_file::TempFile;
use crate::message::sanitize_file_component;
use crate::sdk::{fetch_next_chunk, MediaProgress, NetOptions, SdkError, SdkSession};
use crate::store::{CorpId, MediaJob};

/// `media_code` values of ours (the SDK's own codes are 10000–10011).
pub mod codes {
    /// The downloaded bytes do not have the MD5 the record announced.
    pub const MD5_MISMATCH: i32 = 90_001;
    /// The downloaded size differs from the size the record announced.
    pub const SIZE_MISMATCH: i32 = 90_002;
    /// The attempts ran out while an attempt was in flight (the process died).
    pub const ATTEMPTS_EXHAUSTED: i32 = crate::store::MEDIA_CODE_ATTEMPTS_EXHAUSTED;
    /// Writing the file failed (disk full, permissions).
    pub const LOCAL_IO: i32 = 90_004;
    /// The SDK broke its protocol, answered unparsably, or an input was refused before the call.
    pub const PROTOCOL: i32 = 90_005;
    /// The downloader panicked (caught).
    pub const PANICKED: i32 = 90_006;
    /// Uploading to the object store failed (`[media] backend = "s3"`).
    pub const UPLOAD: i32 = 90_007;
}

/// Longest msgid part of a file name, in bytes (the whole name stays far below 255).
const MAX_STEM_BYTES: usize = 120;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The SDK call failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// MD5 mismatch.
    #[error("md5 mismatch: the record says {want}, the download has {got}")]
    Md5Mismatch {
        /// Announced.
        want: String,
        /// Computed.
        got: String,
    },
    /// Size mismatch.
    #[error("size mismatch: the record says {want} bytes, the download has {got}")]
    SizeMismatch {
        /// Announced.
        want: u64,
        /// Downloaded.
        got: u64,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Uploading to the object store failed.
    #[error("upload: {0}")]
    Upload(#[from] crate::media::object_store::ObjectStoreError),
    /// Stopped between two chunks because the daemon is shutting down.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// The download, the upload or the media worker panicked (caught), or the worker thread is
    /// gone: not retried (decision 2), the item fails with [`codes::PANICKED`].
    #[error("{stage} panicked: {message}")]
    Panicked {
        /// What was being done.
        stage: &'static str,
        /// The panic message.
        message: String,
    },
}

impl DownloadError {
    /// True when another attempt may succeed: transient SDK codes, mismatches (a corrupted
    /// transfer), local I/O (disk full may clear).
    pub fn is_retryable(&self) -> bool {
        match self {
            DownloadError::Sdk(e) => e.is_retryable(),
            DownloadError::Upload(e) => e.is_retryable(),
            DownloadError::Md5Mismatch { .. }
            | DownloadError::SizeMismatch { .. }
            | DownloadError::Io { .. }
            | DownloadError::Interrupted => true,
            DownloadError::Panicked { .. } => false,
        }
    }

    /// True when the failure is the local filesystem's (the media root read-only, full, gone),
    /// not the item's nor the server's.
    pub fn is_local(&self) -> bool {
        matches!(self, DownloadError::Io { .. } | DownloadError::Sdk(SdkError::Write(_)))
    }

    /// The `media_code` to store: the SDK's code or one of [`codes`].
    pub fn media_code(&self) -> i32 {
        match self {
            DownloadError::Sdk(SdkError::Code { code, .. }) => code.raw(),
            DownloadError::Sdk(SdkError::Api { errcode, .. }) => i32::try_from(*errcode).unwrap_or(codes::PROTOCOL),
            DownloadError::Sdk(SdkError::Write(_)) => codes::LOCAL_IO,
            DownloadError::Sdk(SdkError::Panicked { .. }) => codes::PANICKED,
            DownloadError::Sdk(_) => codes::PROTOCOL,
            DownloadError::Md5Mismatch { .. } => codes::MD5_MISMATCH,
            DownloadError::SizeMismatch { .. } => codes::SIZE_MISMATCH,
            DownloadError::Io { .. } | DownloadError::Interrupted => codes::LOCAL_IO,
            DownloadError::Upload(_) => codes::UPLOAD,
            DownloadError::Panicked { .. } => codes::PANICKED,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DownloadError + 'a {
    move |source| DownloadError::Io { op, path: path.to_path_buf(), source }
}

/// What one download needs besides the job.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// The media root.
    pub root: PathBuf,
    /// This instance's name (its temp directory).
    pub owner: String,
    /// In-place retries of one failed chunk (transient codes only).
    pub chunk_retries: u32,
}

/// A verified file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Relative to the media root, with `/` separators (what `media_path` stores).
    pub path: String,
    /// Bytes.
    pub bytes: u64,
    /// Lowercase hex MD5.
    pub md5: String,
    /// The sniffed type.
    pub sniffed: Option<Sniffed>,
    /// Chunks fetched.
    pub chunks: u64,
    /// Chunk calls that failed transiently and were retried in place.
    pub retried_chunks: u64,
    /// With an object store: the transcode already made before the upload (the MP3's key, or
    /// why it failed); `None` when not attempted.
    pub transcoded: Option<Result<String, String>>,
    /// How long each step took.
    pub timings: StageTimes,
}

/// How long the steps of one download took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// The first `GetMediaData` call (request to first bytes).
    pub first_byte: Duration,
    /// Every chunk call, written into the temp file (the first included).
    pub download: Duration,
    /// Size and MD5 checked, the type sniffed.
    pub verify: Duration,
    /// `fsync` of the file.
    pub fsync: Duration,
    /// The directory made and the rename (and, with [`download`], the directory's fsync).
    pub rename: Duration,
}

/// `create_dir_all` with owner-only (0700) new directories: media are chat content.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// `<root>/.tmp/<owner>`: where this instance's partial downloads live.
pub fn temp_dir(root: &Path, owner: &str) -> PathBuf {
    root.join(".tmp").join(sanitize_owner(owner))
}

fn sanitize_owner(owner: &str) -> String {
    let s = sanitize_file_component(owner, 64);
    if s.is_empty() {
        "default".into()
    } else {
        s
    }
}

/// Removes this instance's partial downloads and transcodes (start-up: a killed process leaves
/// them). Returns how many files were removed.
pub fn clean_temp(root: &Path, owner: &str) -> io::Result<u64> {
    let dir = temp_dir(root, owner);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `(year, month, day)` (UTC) of a unix time in milliseconds.
pub fn utc_date(msgtime_ms: u64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let days = (msgtime_ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The file name stem of a record's item: the msgid made safe for a path (with a short hash of
/// the msgid when it had to be changed, so two msgids never share a file), plus `-<item>` for
/// nested items.
pub fn file_stem(msgid: &str, item: u32) -> String {
    let safe = sanitize_file_component(msgid, MAX_STEM_BYTES);
    let mut stem = if !safe.is_empty() && safe == msgid {
        safe
    } else {
        let digest = Md5::digest(msgid.as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        if safe.is_empty() {
            format!("msg-{hash}")
        } else {
            format!("{safe}-{hash}")
        }
    };
    if item > 0 {
        stem.push_str(&format!("-{item}"));
    }
    stem
}

/// `<corpid>/<yyyy>/<mm>/<dd>/<stem>.<ext>` (relative, `/`-separated). `ext` must already be
/// safe ([`choose_ext`] makes it so).
pub fn relative_path(corpid: &CorpId, job: &MediaJob, ext: &str) -> String {
    let (y, m, d) = utc_date(job.msgtime);
    format!("{}/{y:04}/{m:02}/{d:02}/{}.{ext}", corpid.as_str(), file_stem(&job.msgid, job.item))
}

/// Counts, hashes and keeps the first bytes of what goes through it.
struct Tee<W> {
    inner: W,
    md5: Md5,
    bytes: u64,
    head: Vec<u8>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Asked between two chunks whether the download must stop (graceful shutdown).
pub trait StopSignal {
    /// True once the download must stop.
    fn is_stopped(&self) -> bool;
}

impl StopSignal for AtomicBool {
    fn is_stopped(&self) -> bool {
        self.load(Ordering::Relaxed)
    }
}

impl StopSignal for tokio_util::sync::CancellationToken {
    fn is_stopped(&self) -> bool {
        self.is_cancelled()
    }
}

/// Downloads `job` of `corpid` with `session`; see the module docs. `stop` is checked between
/// chunks (graceful shutdown: [`DownloadError::Interrupted`]). The file is durable when this
/// returns (its directory fsynced).
pub fn download(
    session: &mut dyn SdkSession,
    corpid: &CorpId,
    job: &MediaJob,
    net: &NetOptions,
    settings: &DownloadSettings,
    stop: &(impl StopSignal + ?Sized),
) -> Result<Downloaded, DownloadError> {
    let mut d = download_unsynced(session, corpid, job, net, settings, stop)?;
    let t = Instant::now();
    sync_parent(&settings.root, &d.path)?;
    d.timings.rename += t.elapsed();
    Ok(d)
}

/// `fsync` of the directory of `rel` (relative to `root`): makes a rename into it durable.
pub fn sync_parent(root: &Path, rel: &str) -> Result<(), DownloadError> {
    let dest = root.join(rel);
    let dir = dest.parent().unwrap_or(root);
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync", dir))
}

/// [`download`] without the last step: the file is fsynced and renamed into place, but its
/// directory is NOT fsynced, so the rename may not survive a power loss until the caller has
/// called [`sync_parent`]. The caller must do so before recording the item as done.
pub fn download_unsynced(
    session: &mut dyn SdkSession,
    corpid: &CorpId,
    job: &MediaJob,
    net: &NetOptions,
    settings: &DownloadSettings,
    stop: &(impl StopSignal + ?Sized),
) -> Result<Downloaded, DownloadError> {
    let mut timings = StageTimes::default();
    let started = Instant::now();
    let tmp_dir = temp_dir(&settings.root, &settings.owner);
    private_dir(&tmp_dir).map_err(io_err("create", &tmp_dir))?;
    let tmp_path = tmp_dir.join(format!("{}-{}.part", corpid.as_str(), job.id));
    let (tmp, file) = TempFile::create(tmp_path.clone()).map_err(io_err("create", &tmp_path))?;
    let mut out =
        Tee { inner: io::BufWriter::with_capacity(256 * 1024, file), md5: Md5::new(), bytes: 0, head: Vec::new() };
    let mut progress = MediaProgress::default();
    let mut retried_chunks = 0;
    while !progress.finished {
        if stop.is_stopped() {
            return Err(DownloadError::Interrupted);
        }
        let mut retries = 0;
        loop {
            match fetch_next_chunk(session, &job.sdkfileid, net, &mut progress, &mut out) {
                Ok(()) => {
                    if progress.chunks == 1 {
                        timings.first_byte = started.elapsed();
                    }
                    break;
                }
                // A hung call is not tried again in place: the next attempt of the item comes later.
                Err(e)
                    if e.is_retryable()
                        && retries < settings.chunk_retries
                        && !matches!(e, SdkError::Write(_) | SdkError::Hung { .. }) =>
                {
                    retries += 1;
                    retried_chunks += 1;
                    tracing::debug!(corpid = %corpid, id = job.id, chunk = progress.chunks, error = %e, retries, "chunk failed; retrying it");
                    std::thread::sleep(std::time::Duration::from_millis(100 * u64::from(retries)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let Tee { inner, md5, bytes, head } = out;
    let file = inner.into_inner().map_err(|e| DownloadError::Io {
        op: "write",
        path: tmp.path().to_path_buf(),
        source: e.into_error(),
    })?;
    timings.download = started.elapsed();
    let t = Instant::now();
    file.sync_all().map_err(io_err("fsync", tmp.path()))?;
    drop(file);
    timings.fsync = t.elapsed();
    let t = Instant::now();
    let got: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(want) = job.size.filter(|s| *s > 0) {
        if want != bytes {
            return Err(DownloadError::SizeMismatch { want, got: bytes });
        }
    }
    if let Some(want) = &job.md5 {
        if !want.eq_ignore_ascii_case(&got) {
            return Err(DownloadError::Md5Mismatch { want: want.clone(), got });
        }
    }
    let sniffed = sniff(&head);
    timings.verify = t.elapsed();
    let t = Instant::now();
    let rel = relative_path(corpid, job, &choose_ext(sniffed, &job.ext));
    let dest = settings.root.join(&rel);
    let dir = dest.parent().unwrap_or(&settings.root).to_path_buf();
    private_dir(&dir).map_err(io_err("create", &dir))?;
    tmp.persist(&dest).map_err(io_err("rename into", &dest))?;
    timings.rename = t.elapsed();
    Ok(Downloaded {
        path: rel,
        bytes,
        md5: got,
        sniffed,
        chunks: progress.chunks,
        retried_chunks,
        transcoded: None,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(1_603_875_609_000), (2020, 10, 28));
        assert_eq!(utc_date(951_782_400_000), (2000, 2, 29));
        assert_eq!(utc_date(1_798_761_599_999), (2026, 12, 31));
        assert_eq!(utc_date(1_798_761_600_000), (2027, 1, 1));
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(file_stem("10958372969718811103_1603875609", 0), "10958372969718811103_1603875609");
        assert_eq!(file_stem("abc", 2), "abc-2");
        let a = file_stem("CAQQ/a+b=", 0);
        let b = file_stem("CAQQ_a+b=", 0);
        assert_ne!(a, b, "a changed msgid gets a hash");
        for hostile in ["../../etc/passwd", "a/b\0c", "..", "", &"x".repeat(10_000)] {
            let s = file_stem(hostile, 1);
            assert!(!s.contains('/') && !s.contains('\0') && !s.starts_with('.'), "{s:?}");
            assert!(s.len() <= MAX_STEM_BYTES + 12, "{}", s.len());
        }
    }

    #[test]
    fn owner_names_cannot_escape_the_temp_root() {
        let d = temp_dir(Path::new("/m"), "../../x");
        assert!(d.starts_with("/m/.tmp/"), "{d:?}");
        assert_eq!(d.components().count(), 4, "{d:?}");
        assert_eq!(temp_dir(Path::new("/m"), ""), Path::new("/m/.tmp/default"));
    }
}
