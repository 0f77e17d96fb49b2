//! Voice transcoding: AMR-NB and SILK v3 → MP3, in-process, with libavcodec only.
//!
//! # How the parts connect
//!
//! ```text
//!  bytes ──detect──► VoiceFormat
//!    │
//!    ├─ AmrNb: walk_amr (our parser: `#!AMR\n`, TOC byte + payload per 20 ms frame)
//!    │     speech frames (FT 0–7) ──► libavcodec `amrnb` decoder ──► 160 samples each
//!    │     SID (FT 8) / NO_DATA (FT 15) ──► 160 samples of silence each (FFmpeg rejects them)
//!    │
//!    └─ Silk: walk_silk (our parser: optional 0x02, `#!SILK_V3`, i16 length + payload frames)
//!          ──► normalised plain stream (+ end marker + zero padding) ──► silk-codec (C SILK SDK)
//!
//!  Pcm { sample_rate, samples: mono i16 }
//!    ──► [swresample, only when Mp3Options::sample_rate asks for another rate]
//!    ──► libavcodec `libmp3lame` ──► MP3 frames
//!    ──► an Info/LAME header frame (frame count, bytes, encoder delay and padding, CRCs)
//!        followed by the frames: a plain MP3 file, no container library involved
//! ```
//!
//! [`transcode_file`] reads a file, runs the above and publishes the MP3 atomically (temp file in
//! the same directory, fsync, rename); nothing partial is ever visible under the final name.
//!
//! # Why no libavformat
//!
//! The daemon must never link or load libavformat: Debian's libavformat drags C++ libraries into
//! the process and the vendor SDK then aborts while loading (see README and
//! `tests/sdk_vs_libavformat.rs`). So this module never calls `ffmpeg_next::init()` nor anything in
//! `ffmpeg_next::format`/`device`: both containers are parsed here and the MP3 is written as raw
//! frames. libavcodec needs no registration since FFmpeg 4.
//!
//! # Hostile input
//!
//! Input is capped ([`MAX_INPUT_BYTES`]) and so is the decoded duration ([`MAX_DURATION`]), both
//! checked from the frame walk *before* any codec runs. Both containers are fully validated by our
//! own parsers (frame types, lengths, truncation) before any C code sees a byte, and every codec
//! call runs inside `unwind::catch`, so a panic becomes [`TranscodeError::Panic`]. A crash inside C
//! code cannot be caught here: the media actor persists an attempt counter before transcoding
//! (ARCHITECTURE.md decision 2).
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ffmpeg_next::codec::{self, Id};
use ffmpeg_next::util::format::sample::{Sample, Type as SampleType};

use super::tmp_file::TempFile;

mod amr;
mod mp3;
mod silk;

use amr::decode_amr;
pub use mp3::{check_mp3, encode_mp3, Mp3Check};
use silk::decode_silk;

/// Largest input file accepted (voice messages are at most 60 s: a few hundred KiB).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Longest decoded audio accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 60);

/// The AMR-NB storage-format magic (RFC 4867 §5).
const AMR_MAGIC: &[u8] = b"#!AMR\n";
/// The AMR-WB magic (not supported).
const AMR_WB_MAGIC: &[u8] = b"#!AMR-WB\n";
/// The SILK v3 magic; Tencent's layout puts one 0x02 byte before it.
const SILK_MAGIC: &[u8] = b"#!SILK_V3";

/// A voice format this module decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceFormat {
    /// AMR-NB storage format (`#!AMR\n`).
    AmrNb,
    /// SILK v3, Tencent (`\x02#!SILK_V3`) or plain (`#!SILK_V3`) layout.
    Silk,
}

impl VoiceFormat {
    /// Detects the format from the first bytes of a file (10 are enough).
    pub fn detect(head: &[u8]) -> Option<VoiceFormat> {
        if head.starts_with(AMR_MAGIC) {
            Some(VoiceFormat::AmrNb)
        } else if head.starts_with(SILK_MAGIC) || (head.first() == Some(&0x02) && head[1..].starts_with(SILK_MAGIC)) {
            Some(VoiceFormat::Silk)
        } else {
            None
        }
    }
}

impl fmt::Display for VoiceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VoiceFormat::AmrNb => "AMR-NB",
            VoiceFormat::Silk => "SILK v3",
        })
    }
}

/// Mono 16-bit PCM in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples.
    pub samples: Vec<i16>,
}

impl Pcm {
    /// How long the audio lasts.
    pub fn duration(&self) -> Duration {
        samples_to_duration(self.samples.len() as u64, self.sample_rate)
    }
}

/// MP3 encoding settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Options {
    /// Constant bitrate in kbit/s (libmp3lame rounds to the nearest valid MP3 bitrate for the
    /// sample rate: 8–64 at 8 kHz, 8–160 at 16/24 kHz, 32–320 at 32 kHz and above).
    pub bitrate_kbps: u32,
    /// Output sample rate; `None` keeps the decoded rate (8000 for AMR-NB, 24000 for SILK).
    /// Must be one of 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000.
    pub sample_rate: Option<u32>,
    /// LAME's algorithm quality, 0 (slowest, best) to 9 (fastest): the bitrate, and so the
    /// size, stays the same. [`DEFAULT_MP3_QUALITY`] unless set.
    pub quality: u8,
}

/// LAME's `-q 7` ("fast, ok quality": psychoacoustics for pre-echo, no noise shaping). For speech
/// at 32 kbit/s it encodes in about half the CPU time of the library's own default (3), measured
/// with `cargo bench --bench transcode`: SILK 225 → 125 ms and AMR-NB 93 → 62 ms per minute of
/// audio. The MP3 is the listening copy; the original voice file is always kept.
pub const DEFAULT_MP3_QUALITY: u8 = 7;

impl Default for Mp3Options {
    /// 32 kbit/s, source rate kept, [`DEFAULT_MP3_QUALITY`].
    fn default() -> Self {
        Mp3Options { bitrate_kbps: 32, sample_rate: None, quality: DEFAULT_MP3_QUALITY }
    }
}

/// What [`encode_mp3`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Info {
    /// Sample rate of the MP3.
    pub sample_rate: u32,
    /// Bitrate of the audio frames, bit/s (the requested one, or the nearest that MPEG audio
    /// allows at this sample rate).
    pub bit_rate: u32,
    /// Audio frames (the Info header frame not counted).
    pub frames: u32,
    /// Samples per MP3 frame (1152 for 32 kHz and above, 576 below).
    pub samples_per_frame: u32,
    /// Encoder delay written in the LAME tag (samples a gapless decoder skips at the start).
    pub encoder_delay: u32,
    /// Padding written in the LAME tag (samples a gapless decoder drops at the end).
    pub padding: u32,
    /// Samples of real audio (what a gapless decoder plays).
    pub samples: u64,
    /// Bytes written (Info frame included).
    pub bytes: u64,
}

impl Mp3Info {
    /// Duration of the real audio (without encoder delay and padding).
    pub fn duration(&self) -> Duration {
        samples_to_duration(self.samples, self.sample_rate)
    }
}

/// What [`transcode_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodeReport {
    /// The input's format.
    pub format: VoiceFormat,
    /// Duration of the decoded audio (AMR-NB: frame count × 20 ms).
    pub duration: Duration,
    /// Size of the MP3 written.
    pub output_bytes: u64,
}

/// Why a transcode failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The bytes are neither AMR-NB nor SILK v3.
    #[error("not a supported voice format (AMR-NB `#!AMR\\n` or SILK v3 `#!SILK_V3`); file starts with {head}")]
    UnknownFormat {
        /// The first bytes, escaped.
        head: String,
    },
    /// AMR-WB (`#!AMR-WB\n`) is recognised but not decoded.
    #[error("AMR-WB voice is not supported (only AMR-NB)")]
    AmrWbUnsupported,
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("voice file too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Size of the input.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The audio would be longer than [`MAX_DURATION`].
    #[error("voice too long: at least {duration:?} of audio (limit {limit:?})")]
    TooLong {
        /// Duration found so far.
        duration: Duration,
        /// The limit.
        limit: Duration,
    },
    /// The container holds no audio at all.
    #[error("{format} file holds no audio frames")]
    Empty {
        /// The input's format.
        format: VoiceFormat,
    },
    /// An AMR-NB file made only of SID/NO_DATA (DTX) frames: nothing was said.
    #[error("AMR-NB file holds no speech frames ({frames} SID/NO_DATA frames only)")]
    NoSpeech {
        /// Number of DTX frames.
        frames: usize,
    },
    /// A frame runs past the end of the input.
    #[error("{format}: truncated frame at offset {offset}: needs {needed} bytes, {available} left")]
    Truncated {
        /// The input's format.
        format: VoiceFormat,
        /// Offset of the frame (its TOC byte or length field) in the input.
        offset: usize,
        /// Bytes the frame needs from that offset.
        needed: usize,
        /// Bytes left from that offset.
        available: usize,
    },
    /// A frame header that no valid file contains.
    #[error("{format}: invalid frame at offset {offset}: {reason}")]
    InvalidFrame {
        /// The input's format.
        format: VoiceFormat,
        /// Offset of the frame in the input.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The SILK decoder rejected the stream.
    #[error("SILK decoder: {0}")]
    Silk(String),
    /// FFmpeg lacks a codec this needs.
    #[error("codec {0} is not available in this FFmpeg (libavcodec)")]
    CodecUnavailable(&'static str),
    /// A libavcodec/libswresample call failed.
    #[error("{stage}: {source}")]
    Codec {
        /// What was being done.
        stage: &'static str,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The options cannot be honoured.
    #[error("invalid MP3 options: {0}")]
    InvalidOptions(String),
    /// A codec behaved in a way this module does not expect (a bug here or in the codec).
    #[error("unexpected codec behaviour: {0}")]
    Unexpected(String),
    /// A codec panicked (caught).
    #[error("panic in {stage}: {message}")]
    Panic {
        /// What was being done.
        stage: &'static str,
        /// The panic message.
        message: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", "write", "sync", "rename"…).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the MP3 to the caller's writer failed.
    #[error("write MP3: {0}")]
    Write(#[source] io::Error),
    /// An MP3 on disk is not a complete file as [`encode_mp3`] writes it ([`check_mp3`]).
    #[error("the MP3 fails its check: {0}")]
    BadMp3(String),
}

impl TranscodeError {
    /// Whether trying again later may succeed: I/O failures that depend on the machine (disk full,
    /// quota, I/O error, interrupted, out of memory or file descriptors). Bad input, missing codecs
    /// and panics are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            TranscodeError::Io { source, .. } | TranscodeError::Write(source) => io_retryable(source),
            _ => false,
        }
    }
}

fn io_retryable(e: &io::Error) -> bool {
    if let Some(code) = e.raw_os_error() {
        return [
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EIO,
            libc::EAGAIN,
            libc::EINTR,
            libc::ENOMEM,
            libc::EMFILE,
            libc::ENFILE,
            libc::EBUSY,
            libc::ETIMEDOUT,
        ]
        .contains(&code);
    }
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::OutOfMemory
            | io::ErrorKind::StorageFull
    )
}

fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let rate = u64::from(rate);
    Duration::from_secs(samples / rate) + Duration::from_nanos((samples % rate) * 1_000_000_000 / rate)
}

/// Runs `f`, turning a panic into [`TranscodeError::Panic`].
fn guarded<T>(stage: &'static str, f: impl FnOnce() -> Result<T, TranscodeError>) -> Result<T, TranscodeError> {
    crate::unwind::catch(f).unwrap_or_else(|message| Err(TranscodeError::Panic { stage, message }))
}

fn codec_err(stage: &'static str) -> impl FnOnce(ffmpeg_next::Error) -> TranscodeError {
    move |source| TranscodeError::Codec { stage, source }
}

fn escape_head(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(12)];
    format!("\"{}\"", head.escape_ascii())
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes a voice file held in memory to mono PCM (AMR-NB: 8 kHz; SILK: 24 kHz).
pub fn decode_voice(bytes: &[u8]) -> Result<(VoiceFormat, Pcm), TranscodeError> {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(TranscodeError::TooLarge { size: bytes.len() as u64, limit: MAX_INPUT_BYTES });
    }
    match VoiceFormat::detect(bytes) {
        Some(VoiceFormat::AmrNb) => Ok((VoiceFormat::AmrNb, decode_amr(bytes)?)),
        Some(VoiceFormat::Silk) => Ok((VoiceFormat::Silk, decode_silk(bytes)?)),
        None if bytes.starts_with(AMR_WB_MAGIC) => Err(TranscodeError::AmrWbUnsupported),
        None => Err(TranscodeError::UnknownFormat { head: escape_head(bytes) }),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Reads `input` (AMR-NB or SILK v3), writes `output` (MP3). The MP3 appears under its final name
/// only when complete and synced (temp file in the same directory, fsync, rename, directory
/// fsync); on any error nothing is left behind and an existing `output` is untouched.
pub fn transcode_file(input: &Path, output: &Path, opts: &Mp3Options) -> Result<TranscodeReport, TranscodeError> {
    transcode_file_via(input, output, None, opts)
}

/// [`transcode_file`] with the temp file in `temp_dir` (on the same filesystem as `output`)
/// instead of beside `output`: the daemon passes its media temp directory, which it empties at
/// start-up, so that a process killed between the temp file's creation and the rename leaves
/// nothing behind among the media files.
pub fn transcode_file_via(
    input: &Path,
    output: &Path,
    temp_dir: Option<&Path>,
    opts: &Mp3Options,
) -> Result<TranscodeReport, TranscodeError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TranscodeError::Io { op, path, source }
    };
    let file = fs::File::open(input).map_err(io("open", input))?;
    let size = file.metadata().map_err(io("stat", input))?.len();
    if size > MAX_INPUT_BYTES {
        return Err(TranscodeError::TooLarge { size, limit: MAX_INPUT_BYTES });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(io("read", input))?;
    let (format, pcm) = decode_voice(&bytes)?;

    let mut mp3 = Vec::with_capacity(pcm.samples.len() / 4 + 1024);
    encode_mp3(&pcm, opts, &mut mp3)?;

    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = output.file_name().ok_or_else(|| TranscodeError::Io {
        op: "name",
        path: output.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"),
    })?;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = temp_dir.unwrap_or(&dir).join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let (guard, mut f) = TempFile::create(tmp.clone()).map_err(io("create", &tmp))?;
    f.write_all(&mp3).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    guard.persist(output).map_err(io("rename to", output))?;
    // Make the rename durable; a failure here leaves a complete file, so it is not an error.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(TranscodeReport { format, duration: pcm.duration(), output_bytes: mp3.len() as u64 })
}

/// The FFmpeg codecs this module needs that the linked libavcodec lacks, named as
/// [`TranscodeError::CodecUnavailable`] names them; empty when transcoding can work. The MP3
/// encoder must also take 16-bit samples (as [`encode_mp3`] feeds it). SILK needs nothing from
/// FFmpeg (silk-codec). Used by `doctor`.
pub fn missing_codecs() -> Vec<&'static str> {
    let mut missing = Vec::new();
    let sixteen_bit = [Sample::I16(SampleType::Planar), Sample::I16(SampleType::Packed)];
    let mp3 = codec::encoder::find(Id::MP3)
        .and_then(|c| c.audio().ok())
        .and_then(|a| a.formats())
        .is_some_and(|mut formats| formats.any(|f| sixteen_bit.contains(&f)));
    if !mp3 {
        missing.push("libmp3lame (MP3 encoder)");
    }
    if codec::decoder::find(Id::AMR_NB).is_none() {
        missing.push("amrnb (decoder)");
    }
    missing
}

/// The version of the linked libavcodec, `major.minor.micro`.
pub fn libavcodec_version() -> String {
    let v = codec::version();
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

#[cfg(test)]
mod tests;
