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
use ffmpeg_next::{frame, ChannelLayout, Packet};

use super::tmp_file::TempFile;

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
/// AMR-NB payload bytes after the TOC byte, by frame type (FT). FT 9–14 are not used by AMR-NB
/// storage files and are rejected (see [`AmrFrameKind`]).
const AMR_PAYLOAD: [usize; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];
/// AMR-NB: 8 kHz, 20 ms frames.
const AMR_RATE: u32 = 8000;
const AMR_FRAME_SAMPLES: usize = 160;
/// SILK is decoded at this rate (WeCom/WeChat voice is 24 kHz SILK; lower-rate streams are
/// upsampled by the SILK decoder itself).
const SILK_RATE: u32 = 24_000;
/// The SILK SDK's limit for one packet (`MAX_ARITHM_BYTES`).
const SILK_MAX_PAYLOAD: usize = 1024;
/// One SILK frame is 20 ms; a packet may carry up to 5 of them.
const SILK_MAX_FRAMES_PER_PACKET: u64 = 5;
/// Zero bytes after the end marker of the stream handed to the SILK SDK: its range decoder reads
/// the first 4 bytes of a payload whatever its length.
const SILK_TAIL_PADDING: usize = 8;
/// Sample rates libmp3lame takes.
const MP3_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

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
}

impl Default for Mp3Options {
    /// 32 kbit/s, source rate kept.
    fn default() -> Self {
        Mp3Options { bitrate_kbps: 32, sample_rate: None }
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

/// One AMR-NB frame found by [`walk_amr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AmrFrameKind {
    /// A speech frame (FT 0–7): the TOC byte and its payload, as one decoder packet.
    Speech { start: usize, end: usize },
    /// SID (FT 8) or NO_DATA (FT 15): discontinuous transmission, decoded as silence.
    Dtx,
}

/// Walks the AMR-NB storage format: `#!AMR\n`, then per 20 ms frame one TOC byte
/// (`P FT(4) Q P P`) and the payload of that frame type.
fn walk_amr(bytes: &[u8]) -> Result<Vec<AmrFrameKind>, TranscodeError> {
    const F: VoiceFormat = VoiceFormat::AmrNb;
    if !bytes.starts_with(AMR_MAGIC) {
        return Err(TranscodeError::UnknownFormat { head: escape_head(bytes) });
    }
    let max_frames = (MAX_DURATION.as_millis() / 20) as usize;
    let mut frames = Vec::with_capacity((bytes.len() / 14).min(max_frames));
    let mut pos = AMR_MAGIC.len();
    while pos < bytes.len() {
        let toc = bytes[pos];
        let ft = usize::from((toc >> 3) & 0x0f);
        if (9..=14).contains(&ft) {
            return Err(TranscodeError::InvalidFrame {
                format: F,
                offset: pos,
                reason: format!("frame type {ft} (TOC byte 0x{toc:02x}) is not an AMR-NB frame type"),
            });
        }
        let len = 1 + AMR_PAYLOAD[ft];
        if bytes.len() - pos < len {
            return Err(TranscodeError::Truncated {
                format: F,
                offset: pos,
                needed: len,
                available: bytes.len() - pos,
            });
        }
        if frames.len() >= max_frames {
            return Err(TranscodeError::TooLong { duration: MAX_DURATION, limit: MAX_DURATION });
        }
        frames.push(if ft <= 7 { AmrFrameKind::Speech { start: pos, end: pos + len } } else { AmrFrameKind::Dtx });
        pos += len;
    }
    Ok(frames)
}

fn decode_amr(bytes: &[u8]) -> Result<Pcm, TranscodeError> {
    let frames = walk_amr(bytes)?;
    if frames.is_empty() {
        return Err(TranscodeError::Empty { format: VoiceFormat::AmrNb });
    }
    if !frames.iter().any(|f| matches!(f, AmrFrameKind::Speech { .. })) {
        return Err(TranscodeError::NoSpeech { frames: frames.len() });
    }
    guarded("AMR-NB decoding", || {
        let codec = codec::decoder::find(Id::AMR_NB).ok_or(TranscodeError::CodecUnavailable("amrnb (decoder)"))?;
        let mut ctx = codec::context::Context::new_with_codec(codec);
        ctx.set_time_base((1, AMR_RATE as i32));
        let mut decoder = ctx.decoder().audio().map_err(codec_err("open the AMR-NB decoder"))?;
        let mut samples = Vec::with_capacity(frames.len() * AMR_FRAME_SAMPLES);
        let mut decoded = frame::Audio::empty();
        for f in &frames {
            match *f {
                AmrFrameKind::Dtx => samples.resize(samples.len() + AMR_FRAME_SAMPLES, 0),
                AmrFrameKind::Speech { start, end } => {
                    let before = samples.len();
                    let packet = Packet::copy(&bytes[start..end]);
                    decoder
                        .send_packet(&packet)
                        .map_err(|source| TranscodeError::Codec { stage: "decode an AMR-NB frame", source })?;
                    loop {
                        match decoder.receive_frame(&mut decoded) {
                            Ok(()) => append_mono_i16(&decoded, &mut samples)?,
                            Err(ffmpeg_next::Error::Other { errno: libc::EAGAIN }) | Err(ffmpeg_next::Error::Eof) => {
                                break
                            }
                            Err(source) => {
                                return Err(TranscodeError::Codec { stage: "decode an AMR-NB frame", source })
                            }
                        }
                    }
                    // One frame in, 160 samples out: keep the timeline exact whatever happened.
                    samples.resize(before + AMR_FRAME_SAMPLES, 0);
                }
            }
        }
        Ok(Pcm { sample_rate: AMR_RATE, samples })
    })
}

/// Appends a decoded mono frame (float, s16, planar or packed) as i16 samples.
fn append_mono_i16(frame: &frame::Audio, out: &mut Vec<i16>) -> Result<(), TranscodeError> {
    let n = frame.samples();
    if frame.channels() != 1 {
        return Err(TranscodeError::Unexpected(format!(
            "decoder produced {} channels, expected mono",
            frame.channels()
        )));
    }
    match frame.format() {
        Sample::F32(_) => out
            .extend(frame.plane::<f32>(0)[..n].iter().map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)),
        Sample::I16(_) => out.extend_from_slice(&frame.plane::<i16>(0)[..n]),
        other => {
            return Err(TranscodeError::Unexpected(format!("decoder sample format {other:?}")));
        }
    }
    Ok(())
}

/// The SILK stream as [`walk_silk`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SilkStream {
    /// Runs of frames (payload ranges in the input) between zero-length frames.
    segments: Vec<Vec<(usize, usize)>>,
    /// Zero-length frames (DTX/lost: 20 ms of silence each) after each segment.
    gaps_after: Vec<usize>,
    /// Number of non-empty frames.
    frames: usize,
}

/// Walks a SILK v3 file: optional 0x02 (Tencent), `#!SILK_V3`, then frames of a little-endian
/// i16 length and that many payload bytes, ended by a length of -1 or by the end of the file
/// (Tencent's layout has no end marker).
fn walk_silk(bytes: &[u8]) -> Result<SilkStream, TranscodeError> {
    const F: VoiceFormat = VoiceFormat::Silk;
    let mut pos = usize::from(bytes.first() == Some(&0x02));
    if !bytes[pos..].starts_with(SILK_MAGIC) {
        return Err(TranscodeError::UnknownFormat { head: escape_head(bytes) });
    }
    pos += SILK_MAGIC.len();
    let max_packets = (MAX_DURATION.as_millis() / 20) as usize;
    let mut stream = SilkStream { segments: vec![Vec::new()], gaps_after: vec![0], frames: 0 };
    let mut packets = 0usize;
    while pos < bytes.len() {
        if bytes.len() - pos < 2 {
            return Err(TranscodeError::Truncated { format: F, offset: pos, needed: 2, available: bytes.len() - pos });
        }
        let len = i16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        if len == -1 {
            break; // end marker; anything after it is ignored
        }
        let len = usize::try_from(len).ok().filter(|&l| l <= SILK_MAX_PAYLOAD).ok_or_else(|| {
            TranscodeError::InvalidFrame {
                format: F,
                offset: pos,
                reason: format!("frame length {len} (valid: 0..={SILK_MAX_PAYLOAD}, or -1 to end)"),
            }
        })?;
        if bytes.len() - pos - 2 < len {
            return Err(TranscodeError::Truncated {
                format: F,
                offset: pos,
                needed: 2 + len,
                available: bytes.len() - pos,
            });
        }
        if packets >= max_packets {
            return Err(TranscodeError::TooLong { duration: MAX_DURATION, limit: MAX_DURATION });
        }
        if len == 0 {
            if let Some(gap) = stream.gaps_after.last_mut() {
                *gap += 1;
            }
        } else {
            if stream.gaps_after.last().is_some_and(|&g| g > 0) {
                stream.segments.push(Vec::new());
                stream.gaps_after.push(0);
            }
            if let Some(seg) = stream.segments.last_mut() {
                seg.push((pos + 2, pos + 2 + len));
            }
            stream.frames += 1;
        }
        packets += 1;
        pos += 2 + len;
    }
    Ok(stream)
}

fn decode_silk(bytes: &[u8]) -> Result<Pcm, TranscodeError> {
    let stream = walk_silk(bytes)?;
    if stream.frames == 0 {
        return Err(TranscodeError::Empty { format: VoiceFormat::Silk });
    }
    let frame_samples = (SILK_RATE / 50) as usize;
    let max_samples = (MAX_DURATION.as_secs() * u64::from(SILK_RATE)) as usize;
    let mut samples = Vec::with_capacity((stream.frames + stream.gaps_after.iter().sum::<usize>()) * frame_samples);
    for (segment, &gap) in stream.segments.iter().zip(&stream.gaps_after) {
        if !segment.is_empty() {
            // A normalised copy: plain layout, our validated frames, the end marker, then zeros.
            let mut normalised =
                Vec::with_capacity(SILK_MAGIC.len() + segment.iter().map(|(s, e)| e - s + 2).sum::<usize>() + 10);
            normalised.extend_from_slice(SILK_MAGIC);
            for &(start, end) in segment {
                let len = (end - start) as u16; // <= SILK_MAX_PAYLOAD
                normalised.extend_from_slice(&len.to_le_bytes());
                normalised.extend_from_slice(&bytes[start..end]);
            }
            normalised.extend_from_slice(&(-1i16).to_le_bytes());
            normalised.resize(normalised.len() + SILK_TAIL_PADDING, 0);
            let decoded = guarded("SILK decoding", || {
                let mut decoder = silk_codec::SilkCoder::builder()
                    .decoder()
                    .output_sample_rate(SILK_RATE as i32)
                    .build()
                    .map_err(|e| TranscodeError::Silk(format!("create decoder: {e}")))?;
                decoder.decode(&normalised).map_err(|e| TranscodeError::Silk(e.to_string()))
            })?;
            // A packet decodes to 1..=5 frames of 20 ms.
            let bound = segment.len() * frame_samples * SILK_MAX_FRAMES_PER_PACKET as usize;
            if decoded.len() > bound {
                return Err(TranscodeError::Silk(format!(
                    "decoder returned {} samples for {} packets",
                    decoded.len(),
                    segment.len()
                )));
            }
            samples.extend_from_slice(&decoded);
        }
        samples.resize(samples.len() + gap * frame_samples, 0);
        if samples.len() > max_samples {
            return Err(TranscodeError::TooLong {
                duration: samples_to_duration(samples.len() as u64, SILK_RATE),
                limit: MAX_DURATION,
            });
        }
    }
    Ok(Pcm { sample_rate: SILK_RATE, samples })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes mono PCM to MP3 (CBR, libmp3lame) and writes a complete MP3 file to `out`: an
/// Info/LAME header frame (frame count, encoder delay and padding for gapless decoders) followed
/// by the audio frames.
pub fn encode_mp3(pcm: &Pcm, opts: &Mp3Options, out: &mut dyn Write) -> Result<Mp3Info, TranscodeError> {
    if pcm.samples.is_empty() {
        return Err(TranscodeError::InvalidOptions("no samples to encode".into()));
    }
    if !MP3_RATES.contains(&pcm.sample_rate) && opts.sample_rate.is_none() {
        return Err(TranscodeError::InvalidOptions(format!(
            "source rate {} Hz is not an MP3 rate: set sample_rate",
            pcm.sample_rate
        )));
    }
    let rate = opts.sample_rate.unwrap_or(pcm.sample_rate);
    if !MP3_RATES.contains(&rate) {
        return Err(TranscodeError::InvalidOptions(format!("sample rate {rate} Hz (valid: {MP3_RATES:?})")));
    }
    if !(8..=320).contains(&opts.bitrate_kbps) {
        return Err(TranscodeError::InvalidOptions(format!("bitrate {} kbit/s (valid: 8..=320)", opts.bitrate_kbps)));
    }
    if pcm.duration() > MAX_DURATION {
        return Err(TranscodeError::TooLong { duration: pcm.duration(), limit: MAX_DURATION });
    }
    let (frames, mut info) = guarded("MP3 encoding", || {
        let resampled;
        let samples: &[i16] = if rate == pcm.sample_rate {
            &pcm.samples
        } else {
            resampled = resample(pcm, rate)?;
            &resampled
        };
        lame_encode(samples, rate, opts.bitrate_kbps)
    })?;
    let header = info_frame(&frames, &info)?;
    info.bytes = (header.len() + frames.len()) as u64;
    out.write_all(&header).map_err(TranscodeError::Write)?;
    out.write_all(&frames).map_err(TranscodeError::Write)?;
    Ok(info)
}

/// Resamples mono s16 PCM with libswresample.
fn resample(pcm: &Pcm, rate: u32) -> Result<Vec<i16>, TranscodeError> {
    let fmt = Sample::I16(SampleType::Packed);
    let mut swr = ffmpeg_next::software::resampling::Context::get(
        fmt,
        ChannelLayout::MONO,
        pcm.sample_rate,
        fmt,
        ChannelLayout::MONO,
        rate,
    )
    .map_err(codec_err("set up the resampler"))?;
    let mut input = frame::Audio::new(fmt, pcm.samples.len(), ChannelLayout::MONO);
    input.set_rate(pcm.sample_rate);
    input.plane_mut::<i16>(0)[..pcm.samples.len()].copy_from_slice(&pcm.samples);
    let expected = (pcm.samples.len() as u64 * u64::from(rate) / u64::from(pcm.sample_rate)) as usize;
    let mut out = Vec::with_capacity(expected + 64);
    let mut output = frame::Audio::new(fmt, expected + 256, ChannelLayout::MONO);
    output.set_rate(rate);
    swr.run(&input, &mut output).map_err(codec_err("resample"))?;
    out.extend_from_slice(&output.plane::<i16>(0)[..output.samples()]);
    // Drain what the filter holds back.
    for _ in 0..16 {
        let mut tail = frame::Audio::new(fmt, 1024, ChannelLayout::MONO);
        tail.set_rate(rate);
        swr.flush(&mut tail).map_err(codec_err("resample (flush)"))?;
        if tail.samples() == 0 {
            break;
        }
        out.extend_from_slice(&tail.plane::<i16>(0)[..tail.samples()]);
    }
    Ok(out)
}

/// Runs libmp3lame over the samples; returns the concatenated MP3 frames and what the header
/// needs (frame count, delay, padding).
fn lame_encode(samples: &[i16], rate: u32, bitrate_kbps: u32) -> Result<(Vec<u8>, Mp3Info), TranscodeError> {
    let codec = codec::encoder::find(Id::MP3).ok_or(TranscodeError::CodecUnavailable("libmp3lame (MP3 encoder)"))?;
    let planar = Sample::I16(SampleType::Planar);
    let packed = Sample::I16(SampleType::Packed);
    let formats: Vec<Sample> = codec.audio().ok().and_then(|a| a.formats()).map(|f| f.collect()).unwrap_or_default();
    let format = [planar, packed].into_iter().find(|f| formats.contains(f)).ok_or_else(|| {
        TranscodeError::Unexpected(format!("MP3 encoder {} takes no 16-bit format ({formats:?})", codec.name()))
    })?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().audio().map_err(codec_err("MP3 encoder"))?;
    enc.set_rate(rate as i32);
    enc.set_format(format);
    enc.set_channel_layout(ChannelLayout::MONO);
    enc.set_channels(1);
    enc.set_bit_rate(bitrate_kbps as usize * 1000);
    enc.set_time_base((1, rate as i32));
    let mut enc = enc.open_as(codec).map_err(codec_err("open the MP3 encoder"))?;
    let frame_size = match enc.frame_size() {
        0 => 1152,
        n => n as usize,
    };

    let mut mp3 = Vec::with_capacity(samples.len() / 2);
    let mut first_pts = None;
    let mut packet = Packet::empty();
    let mut drain = |enc: &mut codec::encoder::audio::Encoder, mp3: &mut Vec<u8>| -> Result<(), TranscodeError> {
        loop {
            match enc.receive_packet(&mut packet) {
                Ok(()) => {
                    if first_pts.is_none() {
                        first_pts = packet.pts();
                    }
                    if let Some(data) = packet.data() {
                        mp3.extend_from_slice(data);
                    }
                }
                Err(ffmpeg_next::Error::Other { errno: libc::EAGAIN }) | Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(source) => return Err(TranscodeError::Codec { stage: "MP3 encoding", source }),
            }
        }
    };
    for (i, chunk) in samples.chunks(frame_size).enumerate() {
        let mut f = frame::Audio::new(format, chunk.len(), ChannelLayout::MONO);
        f.set_rate(rate);
        f.set_pts(Some((i * frame_size) as i64));
        f.plane_mut::<i16>(0)[..chunk.len()].copy_from_slice(chunk);
        enc.send_frame(&f).map_err(codec_err("MP3 encoding"))?;
        drain(&mut enc, &mut mp3)?;
    }
    enc.send_eof().map_err(codec_err("MP3 encoding (flush)"))?;
    drain(&mut enc, &mut mp3)?;

    let headers = walk_mp3(&mp3)?;
    let (frames, spf) = (headers.frames, headers.samples_per_frame);
    // libavcodec reports the total decoder-side delay (LAME's encoder delay + 528 + 1) as the first
    // packet's negative pts; the LAME tag stores LAME's own delay (576 unless told otherwise).
    let delay = match first_pts {
        Some(p) if p < -529 => (-p - 529) as u64,
        _ => 576,
    };
    let total = u64::from(frames) * u64::from(spf);
    let padding = total.checked_sub(delay + samples.len() as u64).ok_or_else(|| {
        TranscodeError::Unexpected(format!(
            "MP3 encoder returned {frames} frames of {spf} samples for {} samples",
            samples.len()
        ))
    })?;
    let info = Mp3Info {
        sample_rate: rate,
        bit_rate: headers.first.bitrate(),
        frames,
        samples_per_frame: spf,
        encoder_delay: delay.min(4095) as u32,
        padding: padding.min(4095) as u32,
        samples: samples.len() as u64,
        bytes: mp3.len() as u64,
    };
    Ok((mp3, info))
}

/// MPEG audio layer III frame header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mp3Header {
    /// 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5 (the header's 2-bit version id).
    version: u8,
    bitrate_index: u8,
    rate_index: u8,
    padding: bool,
    mono: bool,
}

const MP3_BITRATES_V1: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MP3_BITRATES_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

impl Mp3Header {
    fn parse(b: &[u8]) -> Option<Mp3Header> {
        if b.len() < 4 || b[0] != 0xff || b[1] & 0xe0 != 0xe0 {
            return None;
        }
        let version = (b[1] >> 3) & 3;
        let layer = (b[1] >> 1) & 3;
        let bitrate_index = b[2] >> 4;
        let rate_index = (b[2] >> 2) & 3;
        if version == 1 || layer != 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
            return None;
        }
        Some(Mp3Header { version, bitrate_index, rate_index, padding: b[2] & 2 != 0, mono: b[3] >> 6 == 3 })
    }

    fn sample_rate(&self) -> u32 {
        let base = [44100, 48000, 32000][usize::from(self.rate_index)];
        match self.version {
            3 => base,
            2 => base / 2,
            _ => base / 4,
        }
    }

    fn bitrate(&self) -> u32 {
        let table = if self.version == 3 { &MP3_BITRATES_V1 } else { &MP3_BITRATES_V2 };
        table[usize::from(self.bitrate_index)] * 1000
    }

    fn samples_per_frame(&self) -> u32 {
        if self.version == 3 {
            1152
        } else {
            576
        }
    }

    fn frame_len(&self) -> usize {
        let per = if self.version == 3 { 144 } else { 72 };
        (per * self.bitrate() / self.sample_rate()) as usize + usize::from(self.padding)
    }

    /// Bytes of side information after the 4-byte header (no CRC).
    fn side_info_len(&self) -> usize {
        match (self.version == 3, self.mono) {
            (true, true) => 17,
            (true, false) => 32,
            (false, true) => 9,
            (false, false) => 17,
        }
    }
}

struct Mp3Walk {
    first: Mp3Header,
    frames: u32,
    samples_per_frame: u32,
}

/// Checks that the encoder's output is a run of whole MP3 frames of one rate, and counts them.
fn walk_mp3(mp3: &[u8]) -> Result<Mp3Walk, TranscodeError> {
    let bad = |offset: usize, what: &str| TranscodeError::Unexpected(format!("MP3 encoder output: {what} at {offset}"));
    let first = Mp3Header::parse(mp3).ok_or_else(|| bad(0, "no MP3 frame header"))?;
    let (mut pos, mut frames) = (0usize, 0u32);
    while pos < mp3.len() {
        let h = Mp3Header::parse(&mp3[pos..]).ok_or_else(|| bad(pos, "no MP3 frame header"))?;
        if h.sample_rate() != first.sample_rate() {
            return Err(bad(pos, "sample rate change"));
        }
        pos += h.frame_len();
        frames += 1;
    }
    if pos != mp3.len() {
        return Err(bad(mp3.len(), "partial frame"));
    }
    Ok(Mp3Walk { first, frames, samples_per_frame: first.samples_per_frame() })
}

/// What [`check_mp3`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Check {
    /// Audio frames (the Info header frame not counted).
    pub frames: u32,
    /// Sample rate.
    pub sample_rate: u32,
    /// Bytes, Info frame included.
    pub bytes: u64,
}

/// Offsets inside the Info header frame, from its "Info" tag: flags, frame count, byte count,
/// then the 100-byte TOC and the 4-byte quality; the LAME tag follows (music CRC at +32, tag CRC
/// at +34 of it).
const INFO_FRAMES_AT: usize = 8;
const INFO_BYTES_AT: usize = 12;
const INFO_LAME_AT: usize = 120;

/// Checks that `mp3` is a complete MP3 as [`encode_mp3`] writes it: an Info/LAME header frame
/// whose CRC is right and whose frame count, byte count and music CRC match the whole audio
/// frames that follow, up to the last byte. A file cut short (even at a frame boundary), grown,
/// or with any byte of its audio changed fails with [`TranscodeError::BadMp3`].
pub fn check_mp3(mp3: &[u8]) -> Result<Mp3Check, TranscodeError> {
    let bad = |what: String| TranscodeError::BadMp3(what);
    let h = Mp3Header::parse(mp3).ok_or_else(|| bad("no MP3 frame header at the start".into()))?;
    let header_len = h.frame_len();
    let tag = 4 + h.side_info_len();
    let lame = tag + INFO_LAME_AT;
    if header_len < lame + 36 || mp3.len() < header_len {
        return Err(bad(format!("{} bytes: shorter than an Info header frame", mp3.len())));
    }
    if &mp3[tag..tag + 4] != b"Info" {
        return Err(bad("the first frame is not an Info header".into()));
    }
    let be32 = |at: usize| u32::from_be_bytes([mp3[at], mp3[at + 1], mp3[at + 2], mp3[at + 3]]);
    let be16 = |at: usize| u16::from_be_bytes([mp3[at], mp3[at + 1]]);
    if crc16_arc(&mp3[..lame + 34]) != be16(lame + 34) {
        return Err(bad("the LAME tag CRC does not match".into()));
    }
    let want_bytes = u64::from(be32(tag + INFO_BYTES_AT));
    if want_bytes != mp3.len() as u64 {
        return Err(bad(format!("{} bytes, the Info header says {want_bytes}", mp3.len())));
    }
    let audio = &mp3[header_len..];
    let walk = walk_mp3(audio).map_err(|e| bad(e.to_string()))?;
    let want_frames = be32(tag + INFO_FRAMES_AT);
    if walk.frames != want_frames {
        return Err(bad(format!("{} audio frames, the Info header says {want_frames}", walk.frames)));
    }
    if walk.first.sample_rate() != h.sample_rate() {
        return Err(bad("the audio frames' sample rate differs from the Info header's".into()));
    }
    if crc16_arc(audio) != be16(lame + 32) {
        return Err(bad("the audio does not match the music CRC of the LAME tag".into()));
    }
    Ok(Mp3Check { frames: walk.frames, sample_rate: h.sample_rate(), bytes: mp3.len() as u64 })
}

/// CRC-16/ARC (LAME's tag CRC: polynomial 0x8005 reflected, initial value 0).
fn crc16_arc(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xa001 } else { crc >> 1 };
        }
    }
    crc
}

/// Builds the Info (CBR Xing) frame with a LAME tag, as LAME and FFmpeg's muxer write it: players
/// read the frame count (duration, seeking) and gapless decoders the encoder delay and padding.
fn info_frame(frames: &[u8], info: &Mp3Info) -> Result<Vec<u8>, TranscodeError> {
    let walk = walk_mp3(frames)?;
    let mut h = walk.first;
    h.padding = false;
    let side = h.side_info_len();
    // "Info", flags, frames, bytes, TOC (100), quality, then the 36-byte LAME tag.
    let needed = 4 + side + 4 + 4 + 4 + 4 + 100 + 4 + 36;
    let table = if h.version == 3 { &MP3_BITRATES_V1 } else { &MP3_BITRATES_V2 };
    let index = (usize::from(h.bitrate_index)..table.len())
        .find(|&i| {
            let candidate = Mp3Header { bitrate_index: i as u8, ..h };
            candidate.frame_len() >= needed
        })
        .ok_or_else(|| TranscodeError::Unexpected("no MP3 bitrate leaves room for the Info header".into()))?;
    h.bitrate_index = index as u8;
    let len = h.frame_len();
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[
        0xff,
        0xe0 | (h.version << 3) | (1 << 1) | 1, // layer III, no CRC
        (h.bitrate_index << 4) | (h.rate_index << 2),
        if h.mono { 0xc0 } else { 0x00 },
    ]);
    f.resize(4 + side, 0); // empty side information
    f.extend_from_slice(b"Info");
    f.extend_from_slice(&0x0fu32.to_be_bytes()); // frames, bytes, TOC, quality present
    f.extend_from_slice(&walk.frames.to_be_bytes());
    let total_bytes = (len + frames.len()) as u32;
    f.extend_from_slice(&total_bytes.to_be_bytes());
    f.extend((0..100u32).map(|i| (i * 256 / 100) as u8)); // TOC of a constant bitrate
    f.extend_from_slice(&0u32.to_be_bytes()); // quality
    let lame_start = f.len();
    f.extend_from_slice(b"LAME3.100"); // the encoder really is LAME (through libavcodec)
    f.push(0x00); // tag revision 0, VBR method 0 (unknown/CBR)
    f.push(0x00); // lowpass
    f.extend_from_slice(&[0; 4]); // peak amplitude
    f.extend_from_slice(&[0; 2]); // radio replay gain
    f.extend_from_slice(&[0; 2]); // audiophile replay gain
    f.push(0x00); // encoding flags, ATH type
    f.push((info.bit_rate / 1000).min(255) as u8);
    let (d, pad) = (info.encoder_delay, info.padding);
    f.extend_from_slice(&[(d >> 4) as u8, (((d & 0x0f) << 4) | (pad >> 8)) as u8, (pad & 0xff) as u8]);
    f.push(0x00); // misc
    f.push(0x00); // MP3 gain
    f.extend_from_slice(&[0; 2]); // preset, surround
    f.extend_from_slice(&total_bytes.to_be_bytes()); // music length (this frame included, as LAME does)
    f.extend_from_slice(&crc16_arc(frames).to_be_bytes()); // music CRC
    debug_assert_eq!(f.len() - lame_start, 34);
    let tag_crc = crc16_arc(&f);
    f.extend_from_slice(&tag_crc.to_be_bytes());
    f.resize(len, 0);
    Ok(f)
}

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
mod tests {
    use super::*;

    fn amr(frames: &[(u8, usize)]) -> Vec<u8> {
        let mut v = AMR_MAGIC.to_vec();
        for &(ft, len) in frames {
            v.push((ft << 3) | 0x04);
            v.extend(std::iter::repeat_n(0x55, len));
        }
        v
    }

    #[test]
    fn detects_formats() {
        assert_eq!(VoiceFormat::detect(b"#!AMR\n\x3c"), Some(VoiceFormat::AmrNb));
        assert_eq!(VoiceFormat::detect(b"#!SILK_V3\x10\x00"), Some(VoiceFormat::Silk));
        assert_eq!(VoiceFormat::detect(b"\x02#!SILK_V3"), Some(VoiceFormat::Silk));
        assert_eq!(VoiceFormat::detect(b"\x03#!SILK_V3"), None);
        assert_eq!(VoiceFormat::detect(b"#!AMR-WB\n"), None);
        assert_eq!(VoiceFormat::detect(b""), None);
        assert_eq!(VoiceFormat::detect(b"\x02"), None);
        assert_eq!(VoiceFormat::detect(b"ID3\x04"), None);
    }

    #[test]
    fn amr_walk_counts_speech_and_dtx() {
        let bytes = amr(&[(7, 31), (8, 5), (15, 0), (0, 12), (7, 31)]);
        let frames = walk_amr(&bytes).unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0], AmrFrameKind::Speech { start: 6, end: 38 });
        assert_eq!(frames[1], AmrFrameKind::Dtx);
        assert_eq!(frames[2], AmrFrameKind::Dtx);
        assert_eq!(frames[3], AmrFrameKind::Speech { start: 45, end: 58 });
    }

    #[test]
    fn amr_truncated_frame_is_reported_with_its_offset() {
        let mut bytes = amr(&[(7, 31), (7, 31)]);
        bytes.truncate(bytes.len() - 3);
        match walk_amr(&bytes) {
            Err(TranscodeError::Truncated { offset: 38, needed: 32, available: 29, .. }) => {}
            other => panic!("expected a truncated frame at 38, got {other:?}"),
        }
        // A lone TOC byte at the end.
        let mut bytes = amr(&[(7, 31)]);
        bytes.push(7 << 3 | 4);
        assert!(matches!(walk_amr(&bytes), Err(TranscodeError::Truncated { offset: 38, .. })));
    }

    #[test]
    fn amr_reserved_frame_types_are_rejected() {
        let bytes = amr(&[(7, 31), (12, 0)]);
        let err = walk_amr(&bytes).unwrap_err();
        assert!(matches!(err, TranscodeError::InvalidFrame { offset: 38, .. }), "{err}");
        assert!(err.to_string().contains("frame type 12"), "{err}");
    }

    #[test]
    fn amr_without_speech_or_frames_is_an_error() {
        assert!(matches!(decode_voice(&amr(&[(8, 5), (15, 0), (15, 0)])), Err(TranscodeError::NoSpeech { frames: 3 })));
        assert!(matches!(decode_voice(AMR_MAGIC), Err(TranscodeError::Empty { format: VoiceFormat::AmrNb })));
    }

    #[test]
    fn amr_dtx_frames_become_silence_of_the_right_length() {
        // Speech frames of zeros are valid bitstreams for the decoder.
        let mut bytes = AMR_MAGIC.to_vec();
        for i in 0..10 {
            if i % 3 == 0 {
                bytes.push(15 << 3 | 4);
            } else {
                bytes.push(7 << 3 | 4);
                bytes.extend([0u8; 31]);
            }
        }
        let (format, pcm) = decode_voice(&bytes).unwrap();
        assert_eq!(format, VoiceFormat::AmrNb);
        assert_eq!(pcm.sample_rate, 8000);
        assert_eq!(pcm.samples.len(), 10 * 160);
        assert_eq!(pcm.duration(), Duration::from_millis(200));
        assert!(pcm.samples[..160].iter().all(|&s| s == 0));
    }

    fn silk(tencent: bool, frames: &[&[u8]], end_marker: bool) -> Vec<u8> {
        let mut v = Vec::new();
        if tencent {
            v.push(2);
        }
        v.extend_from_slice(SILK_MAGIC);
        for f in frames {
            v.extend_from_slice(&(f.len() as u16).to_le_bytes());
            v.extend_from_slice(f);
        }
        if end_marker {
            v.extend_from_slice(&(-1i16).to_le_bytes());
        }
        v
    }

    #[test]
    fn silk_walk_both_layouts() {
        let a = [1u8; 40];
        let b = [2u8; 50];
        for (tencent, marker) in [(true, false), (false, true), (true, true), (false, false)] {
            let bytes = silk(tencent, &[&a, &b], marker);
            let s = walk_silk(&bytes).unwrap();
            let base = usize::from(tencent) + SILK_MAGIC.len();
            assert_eq!(s.frames, 2);
            assert_eq!(s.segments, vec![vec![(base + 2, base + 42), (base + 44, base + 94)]]);
            assert_eq!(s.gaps_after, vec![0]);
        }
        // Bytes after the end marker are ignored.
        let mut bytes = silk(false, &[&a], true);
        bytes.extend_from_slice(b"trailing junk");
        assert_eq!(walk_silk(&bytes).unwrap().frames, 1);
    }

    #[test]
    fn silk_zero_length_frames_split_segments() {
        let a = [1u8; 10];
        let s = walk_silk(&silk(false, &[&a, &[], &[], &a, &[]], true)).unwrap();
        assert_eq!(s.frames, 2);
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.gaps_after, vec![2, 1]);
    }

    #[test]
    fn silk_bad_lengths_and_truncation() {
        let mut bytes = silk(true, &[&[1u8; 20]], false);
        bytes.extend_from_slice(&2000u16.to_le_bytes());
        let err = walk_silk(&bytes).unwrap_err();
        assert!(matches!(err, TranscodeError::InvalidFrame { offset: 32, .. }), "{err}");

        let mut bytes = silk(false, &[&[1u8; 20]], false);
        bytes.extend_from_slice(&(-5i16).to_le_bytes());
        assert!(matches!(walk_silk(&bytes), Err(TranscodeError::InvalidFrame { .. })));

        let mut bytes = silk(false, &[&[1u8; 20], &[1u8; 20]], false);
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(
            walk_silk(&bytes),
            Err(TranscodeError::Truncated { offset: 31, needed: 22, available: 21, .. })
        ));

        let mut bytes = silk(false, &[&[1u8; 20]], false);
        bytes.push(7);
        assert!(matches!(walk_silk(&bytes), Err(TranscodeError::Truncated { needed: 2, available: 1, .. })));
        assert!(matches!(decode_voice(SILK_MAGIC), Err(TranscodeError::Empty { format: VoiceFormat::Silk })));
    }

    #[test]
    fn garbage_and_amr_wb_are_rejected() {
        let err = decode_voice(b"\x00\x01garbage bytes here").unwrap_err();
        assert!(matches!(err, TranscodeError::UnknownFormat { .. }));
        assert!(err.to_string().contains("\\x00\\x01garbage"), "{err}");
        assert!(!err.is_retryable());
        assert!(matches!(decode_voice(b"#!AMR-WB\n\x00"), Err(TranscodeError::AmrWbUnsupported)));
        let big = vec![0u8; MAX_INPUT_BYTES as usize + 1];
        assert!(matches!(decode_voice(&big), Err(TranscodeError::TooLarge { .. })));
    }

    #[test]
    fn retryable_only_for_machine_io_errors() {
        let full =
            TranscodeError::Io { op: "write", path: "/x".into(), source: io::Error::from_raw_os_error(libc::ENOSPC) };
        assert!(full.is_retryable());
        let missing =
            TranscodeError::Io { op: "open", path: "/x".into(), source: io::Error::from_raw_os_error(libc::ENOENT) };
        assert!(!missing.is_retryable());
        assert!(!TranscodeError::Panic { stage: "x", message: "y".into() }.is_retryable());
    }

    #[test]
    fn check_mp3_accepts_the_encoder_output_and_nothing_else() {
        let samples: Vec<i16> = (0..8000).map(|i| ((i as f64 * 0.3).sin() * 6000.0) as i16).collect();
        let mut out = Vec::new();
        let info = encode_mp3(&Pcm { sample_rate: 8000, samples }, &Mp3Options::default(), &mut out).unwrap();
        let c = check_mp3(&out).unwrap();
        assert_eq!((c.frames, c.sample_rate, c.bytes), (info.frames, 8000, out.len() as u64));
        let frame = Mp3Header::parse(&out).unwrap().frame_len();
        // Cut at a frame boundary, cut inside a frame, grown, one audio bit flipped, no header.
        let mut last = frame;
        while let Some(h) = Mp3Header::parse(&out[last..]).filter(|h| last + h.frame_len() < out.len()) {
            last += h.frame_len();
        }
        let cut = &out[..last];
        assert!(cut.len() > frame && cut.len() < out.len());
        for (what, bytes) in [
            ("cut", cut.to_vec()),
            ("cut mid-frame", out[..out.len() - 7].to_vec()),
            ("grown", [out.as_slice(), &[0u8; 10]].concat()),
            ("flipped", {
                let mut v = out.clone();
                let at = v.len() - 20;
                v[at] ^= 0x10;
                v
            }),
            ("headerless", out[frame..].to_vec()),
            ("empty", Vec::new()),
        ] {
            let err = check_mp3(&bytes).unwrap_err();
            assert!(matches!(err, TranscodeError::BadMp3(_)), "{what}: {err}");
            assert!(!err.is_retryable(), "{what}");
        }
    }

    #[test]
    fn crc16_matches_the_arc_check_value() {
        assert_eq!(crc16_arc(b"123456789"), 0xbb3d);
    }

    #[test]
    fn mp3_of_a_tone_has_an_info_header_and_exact_sample_count() {
        let rate = 8000;
        let samples: Vec<i16> =
            (0..rate).map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16).collect();
        let pcm = Pcm { sample_rate: 8000, samples };
        let mut out = Vec::new();
        let info = encode_mp3(&pcm, &Mp3Options::default(), &mut out).unwrap();
        assert_eq!(info.bytes, out.len() as u64);
        assert_eq!(info.samples, 8000);
        assert_eq!(info.samples_per_frame, 576);
        assert_eq!(
            u64::from(info.frames) * 576,
            u64::from(info.encoder_delay) + u64::from(info.padding) + 8000,
            "{info:?}"
        );
        assert_eq!(&out[4 + 9..4 + 13], b"Info");
        let walk = walk_mp3(&out).unwrap();
        assert_eq!(walk.frames, info.frames + 1);
        // Resampled to 16 kHz.
        let mut out16 = Vec::new();
        let info16 = encode_mp3(&pcm, &Mp3Options { bitrate_kbps: 32, sample_rate: Some(16000) }, &mut out16).unwrap();
        assert_eq!(info16.sample_rate, 16000);
        assert!(info16.samples.abs_diff(16000) <= 32, "{info16:?}");
        assert!(encode_mp3(&pcm, &Mp3Options { bitrate_kbps: 32, sample_rate: Some(12345) }, &mut Vec::new()).is_err());
        // 8 kHz MP3 (MPEG-2.5) tops out at 64 kbit/s: LAME takes the nearest valid bitrate.
        let info = encode_mp3(&pcm, &Mp3Options { bitrate_kbps: 128, sample_rate: None }, &mut Vec::new()).unwrap();
        assert_eq!(info.bit_rate, 64_000);
    }
}
