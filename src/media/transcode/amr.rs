//! AMR-NB input: our parser of the `#!AMR\n` container (TOC byte + payload per 20 ms frame,
//! validated before any codec runs) and decoding of its speech frames with libavcodec `amrnb`;
//! SID and NO_DATA frames become silence.

use ffmpeg_next::codec::{self, Id};
use ffmpeg_next::util::format::sample::Sample;
use ffmpeg_next::{frame, Packet};

use super::{codec_err, escape_head, guarded, Pcm, TranscodeError, VoiceFormat, AMR_MAGIC, MAX_DURATION};

/// AMR-NB payload bytes after the TOC byte, by frame type (FT). FT 9–14 are not used by AMR-NB
/// storage files and are rejected (see [`AmrFrameKind`]).
pub(super) const AMR_PAYLOAD: [usize; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];

/// AMR-NB: 8 kHz, 20 ms frames.
pub(super) const AMR_RATE: u32 = 8000;

pub(super) const AMR_FRAME_SAMPLES: usize = 160;

/// One AMR-NB frame found by [`walk_amr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AmrFrameKind {
    /// A speech frame (FT 0–7): the TOC byte and its payload, as one decoder packet.
    Speech { start: usize, end: usize },
    /// SID (FT 8) or NO_DATA (FT 15): discontinuous transmission, decoded as silence.
    Dtx,
}

/// Walks the AMR-NB storage format: `#!AMR\n`, then per 20 ms frame one TOC byte
/// (`P FT(4) Q P P`) and the payload of that frame type.
pub(super) fn walk_amr(bytes: &[u8]) -> Result<Vec<AmrFrameKind>, TranscodeError> {
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

pub(super) fn decode_amr(bytes: &[u8]) -> Result<Pcm, TranscodeError> {
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
pub(super) fn append_mono_i16(frame: &frame::Audio, out: &mut Vec<i16>) -> Result<(), TranscodeError> {
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
