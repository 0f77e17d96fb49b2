//! MP3 output and checks: resampling (swresample, only when asked), `libmp3lame` through
//! libavcodec, the Info/LAME header frame written by hand, and [`check_mp3`], the frame walk that
//! tells a complete MP3 from a damaged one (used to adopt files found after a crash).

use std::io::Write;

use ffmpeg_next::codec::{self, Id};
use ffmpeg_next::util::format::sample::{Sample, Type as SampleType};
use ffmpeg_next::{frame, ChannelLayout, Packet};

use super::{codec_err, guarded, Mp3Info, Mp3Options, Pcm, TranscodeError, MAX_DURATION};

/// Sample rates libmp3lame takes.
pub(super) const MP3_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

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
        lame_encode(samples, rate, opts)
    })?;
    let header = info_frame(&frames, &info)?;
    info.bytes = (header.len() + frames.len()) as u64;
    out.write_all(&header).map_err(TranscodeError::Write)?;
    out.write_all(&frames).map_err(TranscodeError::Write)?;
    Ok(info)
}

/// Resamples mono s16 PCM with libswresample.
pub(super) fn resample(pcm: &Pcm, rate: u32) -> Result<Vec<i16>, TranscodeError> {
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

/// Runs libmp3lame over the samples at `rate` (already resampled to it), with the bitrate and
/// quality of `opts`; returns the concatenated MP3 frames and what the header needs (frame count,
/// delay, padding).
pub(super) fn lame_encode(samples: &[i16], rate: u32, opts: &Mp3Options) -> Result<(Vec<u8>, Mp3Info), TranscodeError> {
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
    enc.set_bit_rate(opts.bitrate_kbps as usize * 1000);
    // libmp3lame reads the compression level as LAME's algorithm quality (lame_set_quality).
    enc.set_compression(Some(usize::from(opts.quality.min(9))));
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
pub(super) struct Mp3Header {
    /// 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5 (the header's 2-bit version id).
    pub(super) version: u8,
    pub(super) bitrate_index: u8,
    pub(super) rate_index: u8,
    pub(super) padding: bool,
    pub(super) mono: bool,
}

impl Mp3Header {
    pub(super) fn parse(b: &[u8]) -> Option<Mp3Header> {
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

    pub(super) fn sample_rate(&self) -> u32 {
        let base = [44100, 48000, 32000][usize::from(self.rate_index)];
        match self.version {
            3 => base,
            2 => base / 2,
            _ => base / 4,
        }
    }

    pub(super) fn bitrate(&self) -> u32 {
        let table = if self.version == 3 { &MP3_BITRATES_V1 } else { &MP3_BITRATES_V2 };
        table[usize::from(self.bitrate_index)] * 1000
    }

    pub(super) fn samples_per_frame(&self) -> u32 {
        if self.version == 3 {
            1152
        } else {
            576
        }
    }

    pub(super) fn frame_len(&self) -> usize {
        let per = if self.version == 3 { 144 } else { 72 };
        (per * self.bitrate() / self.sample_rate()) as usize + usize::from(self.padding)
    }

    /// Bytes of side information after the 4-byte header (no CRC).
    pub(super) fn side_info_len(&self) -> usize {
        match (self.version == 3, self.mono) {
            (true, true) => 17,
            (true, false) => 32,
            (false, true) => 9,
            (false, false) => 17,
        }
    }
}

pub(super) const MP3_BITRATES_V1: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];

pub(super) const MP3_BITRATES_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

pub(super) struct Mp3Walk {
    pub(super) first: Mp3Header,
    pub(super) frames: u32,
    pub(super) samples_per_frame: u32,
}

/// Checks that the encoder's output is a run of whole MP3 frames of one rate, and counts them.
pub(super) fn walk_mp3(mp3: &[u8]) -> Result<Mp3Walk, TranscodeError> {
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
pub(super) const INFO_FRAMES_AT: usize = 8;

pub(super) const INFO_BYTES_AT: usize = 12;

pub(super) const INFO_LAME_AT: usize = 120;

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
pub(super) fn crc16_arc(data: &[u8]) -> u16 {
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
pub(super) fn info_frame(frames: &[u8], info: &Mp3Info) -> Result<Vec<u8>, TranscodeError> {
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
