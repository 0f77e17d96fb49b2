use super::amr::*;
use super::mp3::*;
use super::silk::*;
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
    assert!(matches!(walk_silk(&bytes), Err(TranscodeError::Truncated { offset: 31, needed: 22, available: 21, .. })));

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
fn mp3_quality_reaches_lame_and_keeps_the_size() {
    // Two tones and a little pseudo-random noise: something for the psychoacoustics to weigh.
    let mut x: u32 = 0x1234_5678;
    let samples: Vec<i16> = (0..16_000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let t = f64::from(i) / 8000.0;
            let tones = (t * 440.0 * std::f64::consts::TAU).sin() * 6000.0
                + (t * 1250.0 * std::f64::consts::TAU).sin() * 3000.0;
            (tones + f64::from((x % 2001) as i32 - 1000)) as i16
        })
        .collect();
    let pcm = Pcm { sample_rate: 8000, samples };
    let encode = |quality: u8| {
        let mut out = Vec::new();
        let info = encode_mp3(&pcm, &Mp3Options { quality, ..Default::default() }, &mut out).unwrap();
        check_mp3(&out).unwrap();
        (info, out)
    };
    let (best, slow) = encode(0);
    let (fast, quick) = encode(9);
    assert_eq!((best.bytes, best.frames, best.samples), (fast.bytes, fast.frames, fast.samples), "CBR: the same size");
    assert_ne!(slow, quick, "the quality changes what LAME writes");
    assert_eq!(Mp3Options::default().quality, DEFAULT_MP3_QUALITY);
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
    let info16 =
        encode_mp3(&pcm, &Mp3Options { bitrate_kbps: 32, sample_rate: Some(16000), ..Default::default() }, &mut out16)
            .unwrap();
    assert_eq!(info16.sample_rate, 16000);
    assert!(info16.samples.abs_diff(16000) <= 32, "{info16:?}");
    assert!(encode_mp3(
        &pcm,
        &Mp3Options { bitrate_kbps: 32, sample_rate: Some(12345), ..Default::default() },
        &mut Vec::new()
    )
    .is_err());
    // 8 kHz MP3 (MPEG-2.5) tops out at 64 kbit/s: LAME takes the nearest valid bitrate.
    let info =
        encode_mp3(&pcm, &Mp3Options { bitrate_kbps: 128, sample_rate: None, ..Default::default() }, &mut Vec::new())
            .unwrap();
    assert_eq!(info.bit_rate, 64_000);
}
