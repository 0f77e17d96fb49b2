//! SILK v3 input (WeCom's voice): our parser of the container (optional 0x02, `#!SILK_V3`,
//! i16 length + payload frames), normalised into the plain stream the C SILK decoder
//! (`silk-codec`) accepts.

use super::{escape_head, guarded, samples_to_duration, Pcm, TranscodeError, VoiceFormat, MAX_DURATION, SILK_MAGIC};

/// SILK is decoded at this rate (WeCom/WeChat voice is 24 kHz SILK; lower-rate streams are
/// upsampled by the SILK decoder itself).
pub(super) const SILK_RATE: u32 = 24_000;

/// The SILK SDK's limit for one packet (`MAX_ARITHM_BYTES`).
pub(super) const SILK_MAX_PAYLOAD: usize = 1024;

/// One SILK frame is 20 ms; a packet may carry up to 5 of them.
pub(super) const SILK_MAX_FRAMES_PER_PACKET: u64 = 5;

/// Zero bytes after the end marker of the stream handed to the SILK SDK: its range decoder reads
/// the first 4 bytes of a payload whatever its length.
pub(super) const SILK_TAIL_PADDING: usize = 8;

/// The SILK stream as [`walk_silk`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SilkStream {
    /// Runs of frames (payload ranges in the input) between zero-length frames.
    pub(super) segments: Vec<Vec<(usize, usize)>>,
    /// Zero-length frames (DTX/lost: 20 ms of silence each) after each segment.
    pub(super) gaps_after: Vec<usize>,
    /// Number of non-empty frames.
    pub(super) frames: usize,
}

/// Walks a SILK v3 file: optional 0x02 (Tencent), `#!SILK_V3`, then frames of a little-endian
/// i16 length and that many payload bytes, ended by a length of -1 or by the end of the file
/// (Tencent's layout has no end marker).
pub(super) fn walk_silk(bytes: &[u8]) -> Result<SilkStream, TranscodeError> {
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

pub(super) fn decode_silk(bytes: &[u8]) -> Result<Pcm, TranscodeError> {
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
