//! Voice → MP3 on the real fixtures (made by independent encoders: SoX/opencore AMR-NB with DTX,
//! pilk SILK v3), checked with FFmpeg's own tools: ffprobe reads the MP3, the ffmpeg CLI decodes it
//! and the audio is correlated against the source signal regenerated with SoX (the commands of
//! lib/emulator/fixtures/README.md). Hostile inputs give errors, never panics nor leftover files.
//!
//! Needs ffmpeg, ffprobe and sox: without them the tests print a loud SKIPPED banner, or fail
//! under CI=true.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wework_msgaudit::media::transcode::{
    decode_voice, transcode_file, Mp3Options, TranscodeError, VoiceFormat, MAX_INPUT_BYTES,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/emulator/fixtures").join(name)
}

/// Runs a command with a deadline; returns (success, stdout, stderr).
fn run(program: &str, args: &[&str], deadline: Duration) -> Result<(bool, Vec<u8>, String), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} {args:?} took longer than {deadline:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok((status.success(), out, err))
}

fn run_ok(program: &str, args: &[&str]) -> Vec<u8> {
    let (ok, out, err) = run(program, args, Duration::from_secs(60)).unwrap();
    assert!(ok, "{program} {args:?} failed: {err}");
    out
}

/// True when ffmpeg, ffprobe and sox can run; otherwise skips loudly (fails under CI).
fn tools_present(test: &str) -> bool {
    for (tool, arg) in [("ffmpeg", "-version"), ("ffprobe", "-version"), ("sox", "--version")] {
        match run(tool, &[arg], Duration::from_secs(30)) {
            Ok((true, _, _)) => {}
            Ok((false, _, err)) => {
                common::skip_or_fail(test, &format!("{tool} {arg} failed: {err}"));
                return false;
            }
            Err(why) => {
                common::skip_or_fail(test, &why);
                return false;
            }
        }
    }
    true
}

/// The fixtures' source signal (README: 3 s at 8 kHz mono), as s16le at `rate`.
fn source_pcm(dir: &Path, rate: u32) -> Vec<i16> {
    let wav = dir.join("src.wav");
    let wav = wav.to_str().unwrap();
    if !Path::new(wav).exists() {
        #[rustfmt::skip]
        run_ok("sox", &["-n", "-r", "8000", "-c", "1", "-b", "16", wav,
            "synth", "0.6", "sine", "440", "pad", "0", "1.2", ":", "synth", "0.6", "sine", "660", "pad", "0", "0.6"]);
    }
    let raw = dir.join(format!("src_{rate}.pcm"));
    let raw = raw.to_str().unwrap();
    let rate_s = rate.to_string();
    run_ok("sox", &[wav, "-r", &rate_s, "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", raw]);
    to_i16(&std::fs::read(raw).unwrap())
}

fn to_i16(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// Decodes an MP3 with the ffmpeg CLI to mono s16le at `rate` (bounded to 10 s).
fn ffmpeg_decode(mp3: &Path, rate: u32) -> Vec<i16> {
    let rate_s = rate.to_string();
    #[rustfmt::skip]
    let out = run_ok("ffmpeg", &["-nostdin", "-v", "error", "-t", "10", "-i", mp3.to_str().unwrap(),
        "-f", "s16le", "-ac", "1", "-ar", &rate_s, "-"]);
    to_i16(&out)
}

struct Probe {
    format_name: String,
    duration: f64,
    start_time: f64,
}

fn ffprobe(mp3: &Path) -> Probe {
    #[rustfmt::skip]
    let out = run_ok("ffprobe", &["-v", "error", "-show_entries", "format=format_name,duration,start_time",
        "-of", "json", mp3.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let f = &v["format"];
    let num = |k: &str| f[k].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    Probe {
        format_name: f["format_name"].as_str().unwrap_or("").to_string(),
        duration: num("duration"),
        start_time: num("start_time"),
    }
}

fn pearson(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let mb = b.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Correlation of `decoded` against `source` at lag `lag` (decoded shifted later by `lag`).
fn corr_at(source: &[i16], decoded: &[i16], lag: i64) -> f64 {
    if lag >= 0 {
        let l = lag as usize;
        if l >= decoded.len() {
            return 0.0;
        }
        pearson(source, &decoded[l..])
    } else {
        let l = (-lag) as usize;
        if l >= source.len() {
            return 0.0;
        }
        pearson(&source[l..], decoded)
    }
}

/// Best Pearson correlation over lags within ±`max_lag` samples (coarse search, then refined).
fn best_correlation(source: &[i16], decoded: &[i16], max_lag: i64) -> (f64, i64) {
    let step = 8;
    let mut best = (f64::MIN, 0);
    let mut lag = -max_lag;
    while lag <= max_lag {
        let c = corr_at(source, decoded, lag);
        if c > best.0 {
            best = (c, lag);
        }
        lag += step;
    }
    let centre = best.1;
    for lag in centre - step..=centre + step {
        let c = corr_at(source, decoded, lag);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

fn assert_no_libavformat_mapped() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("libavformat"), "libavformat is mapped into the test process");
    assert!(maps.contains("libavcodec"), "libavcodec should be mapped: the transcoder runs in-process");
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

struct Case {
    file: &'static str,
    format: VoiceFormat,
    rate: u32,
    /// Exact decoded duration expected (AMR: frame count × 20 ms).
    exact_samples: Option<usize>,
}

#[test]
fn fixtures_transcode_to_mp3_that_ffmpeg_reads_and_that_matches_the_source() {
    if !tools_present("media_transcode fixtures") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let cases = [
        // voice.amr: 76 speech + 12 SID + 62 NO_DATA = 150 frames = 3.000 s.
        Case { file: "voice.amr", format: VoiceFormat::AmrNb, rate: 8000, exact_samples: Some(150 * 160) },
        Case { file: "voice_tencent.silk", format: VoiceFormat::Silk, rate: 24000, exact_samples: None },
        Case { file: "voice_plain.silk", format: VoiceFormat::Silk, rate: 24000, exact_samples: None },
    ];
    let source_secs = 3.0;
    for case in &cases {
        let out_dir = work.join(case.file.replace('.', "_"));
        std::fs::create_dir(&out_dir).unwrap();
        let out = out_dir.join("voice.mp3");
        let report = transcode_file(&fixture(case.file), &out, &Mp3Options::default()).unwrap();
        assert_eq!(report.format, case.format);
        assert_eq!(dir_entries(&out_dir), vec!["voice.mp3".to_string()], "only the MP3 is left");
        assert_eq!(report.output_bytes, std::fs::metadata(&out).unwrap().len());
        if let Some(n) = case.exact_samples {
            assert_eq!(report.duration, Duration::from_micros(n as u64 * 1_000_000 / u64::from(case.rate)));
        }

        let probe = ffprobe(&out);
        assert_eq!(probe.format_name, "mp3", "{}", case.file);
        // ffprobe's duration counts whole MP3 frames from t=0, encoder delay and padding included
        // (~0.17 s at 8 kHz); start_time is the encoder delay it read from our LAME tag, so the
        // playable length is duration - start_time.
        let playable = probe.duration - probe.start_time;
        let decoded = ffmpeg_decode(&out, case.rate);
        let decoded_secs = decoded.len() as f64 / f64::from(case.rate);
        let source = source_pcm(work, case.rate);
        let (corr, lag) = best_correlation(&source, &decoded, i64::from(case.rate) / 4);
        eprintln!(
            "{:>20}: report {:.3} s | ffprobe duration {:.3} s, start_time {:.4} s, playable {:.3} s | \
             ffmpeg decodes {} samples = {:.3} s | correlation {corr:.4} at lag {lag} ({} bytes)",
            case.file,
            report.duration.as_secs_f64(),
            probe.duration,
            probe.start_time,
            playable,
            decoded.len(),
            decoded_secs,
            report.output_bytes,
        );
        assert!((report.duration.as_secs_f64() - source_secs).abs() / source_secs <= 0.05, "{}", case.file);
        assert!((playable - source_secs).abs() / source_secs <= 0.05, "{}: playable {playable}", case.file);
        assert!(
            probe.duration >= playable && probe.duration - source_secs <= 0.25,
            "{}: ffprobe duration {}",
            case.file,
            probe.duration
        );
        // A gapless decoder (FFmpeg honours the LAME tag) gives back exactly the samples encoded.
        assert!(
            (decoded_secs - report.duration.as_secs_f64()).abs() <= 0.002,
            "{}: decoded {decoded_secs} s, transcoded {:?}",
            case.file,
            report.duration
        );
        if let Some(n) = case.exact_samples {
            assert_eq!(decoded.len(), n, "{}", case.file);
        }
        assert!(corr >= 0.8, "{}: correlation {corr} < 0.8", case.file);
    }
    assert_no_libavformat_mapped();
}

#[test]
fn resampled_output_rate_is_honoured() {
    if !tools_present("media_transcode resample") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("voice.mp3");
    let opts = Mp3Options { bitrate_kbps: 48, sample_rate: Some(16000), ..Default::default() };
    transcode_file(&fixture("voice.amr"), &out, &opts).unwrap();
    #[rustfmt::skip]
    let rate = run_ok("ffprobe", &["-v", "error", "-show_entries", "stream=sample_rate", "-of", "csv=p=0",
        out.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&rate).trim(), "16000");
    let decoded = ffmpeg_decode(&out, 16000);
    let source = source_pcm(tmp.path(), 16000);
    let (corr, lag) = best_correlation(&source, &decoded, 4000);
    eprintln!("voice.amr -> 16 kHz MP3: {} samples, correlation {corr:.4} at lag {lag}", decoded.len());
    assert!((decoded.len() as i64 - 48000).abs() <= 64, "{}", decoded.len());
    assert!(corr >= 0.8, "{corr}");
    assert_no_libavformat_mapped();
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn expect_error(name: &str, bytes: &[u8], check: impl Fn(&TranscodeError) -> bool) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.bin");
    std::fs::write(&input, bytes).unwrap();
    let out = tmp.path().join("out.mp3");
    let err = transcode_file(&input, &out, &Mp3Options::default()).expect_err(name);
    eprintln!("{name:>28}: {err}");
    assert!(check(&err), "{name}: unexpected error {err:?}");
    assert!(!err.is_retryable(), "{name}: bad input is not retryable");
    assert!(!err.to_string().is_empty());
    assert_eq!(dir_entries(tmp.path()), vec!["in.bin".to_string()], "{name}: nothing left behind");
    // The in-memory API says the same.
    assert!(decode_voice(bytes).is_err());
}

#[test]
fn hostile_inputs_give_clear_errors_and_leave_nothing_behind() {
    // AMR with only DTX frames (SID + NO_DATA): nothing was said.
    let mut dtx = b"#!AMR\n".to_vec();
    for i in 0..100 {
        if i % 8 == 0 {
            dtx.push(8 << 3 | 4);
            dtx.extend_from_slice(&[0x11; 5]);
        } else {
            dtx.push(15 << 3 | 4);
        }
    }
    expect_error("AMR with only DTX frames", &dtx, |e| matches!(e, TranscodeError::NoSpeech { frames: 100 }));

    // The real fixture cut in the middle of a speech frame.
    let amr = std::fs::read(fixture("voice.amr")).unwrap();
    let cut = &amr[..6 + 32 * 3 + 10];
    expect_error("truncated AMR", cut, |e| {
        matches!(e, TranscodeError::Truncated { format: VoiceFormat::AmrNb, .. }) && e.to_string().contains("offset")
    });

    // Random garbage.
    expect_error("random garbage", &noise(4096, 42), |e| matches!(e, TranscodeError::UnknownFormat { .. }));
    // Garbage after an AMR magic.
    let mut amr_garbage = b"#!AMR\n".to_vec();
    amr_garbage.extend(noise(2000, 7));
    expect_error("AMR magic + garbage", &amr_garbage, |e| {
        matches!(e, TranscodeError::InvalidFrame { .. } | TranscodeError::Truncated { .. })
    });
    // AMR-WB.
    expect_error("AMR-WB", b"#!AMR-WB\n\x0c\x00\x00", |e| matches!(e, TranscodeError::AmrWbUnsupported));

    // SILK magic followed by garbage (the length fields are garbage too).
    let mut silk_garbage = b"\x02#!SILK_V3".to_vec();
    silk_garbage.extend(noise(3000, 9));
    expect_error("SILK magic + garbage", &silk_garbage, |e| {
        matches!(e, TranscodeError::InvalidFrame { .. } | TranscodeError::Truncated { .. })
    });
    // SILK with well-formed frame lengths but garbage payloads.
    let mut silk_frames = b"#!SILK_V3".to_vec();
    for i in 0..100u64 {
        let payload = noise(60, 1000 + i);
        silk_frames.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        silk_frames.extend_from_slice(&payload);
    }
    silk_frames.extend_from_slice(&(-1i16).to_le_bytes());
    expect_error("SILK with garbage frames", &silk_frames, |e| matches!(e, TranscodeError::Silk(_)));
    // The real SILK fixture cut in the middle of a frame.
    let silk = std::fs::read(fixture("voice_tencent.silk")).unwrap();
    expect_error("truncated SILK", &silk[..silk.len() / 2], |e| {
        matches!(e, TranscodeError::Truncated { format: VoiceFormat::Silk, .. })
    });
    // Empty and tiny files.
    expect_error("empty file", b"", |e| matches!(e, TranscodeError::UnknownFormat { .. }));
    expect_error("AMR magic only", b"#!AMR\n", |e| matches!(e, TranscodeError::Empty { .. }));
}

#[test]
fn oversized_input_is_refused_before_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.amr");
    let f = std::fs::File::create(&input).unwrap();
    f.set_len(MAX_INPUT_BYTES + 1).unwrap(); // sparse
    let out = tmp.path().join("big.mp3");
    let err = transcode_file(&input, &out, &Mp3Options::default()).unwrap_err();
    assert!(matches!(err, TranscodeError::TooLarge { .. }), "{err}");
    assert!(!out.exists());
}

#[test]
fn io_errors_name_the_path_and_an_existing_output_survives_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.amr");
    let err = transcode_file(&missing, &tmp.path().join("x.mp3"), &Mp3Options::default()).unwrap_err();
    assert!(err.to_string().contains("missing.amr"), "{err}");
    assert!(!err.is_retryable());

    // A failed transcode leaves a previous MP3 under the final name untouched.
    let out = tmp.path().join("keep.mp3");
    std::fs::write(&out, b"previous").unwrap();
    let bad = tmp.path().join("bad.amr");
    std::fs::write(&bad, b"#!AMR\n\x3c\x00").unwrap();
    assert!(transcode_file(&bad, &out, &Mp3Options::default()).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");

    // An output directory that does not exist: an Io error naming the temp file's directory.
    let err = transcode_file(&fixture("voice.amr"), &tmp.path().join("no/such/dir/x.mp3"), &Mp3Options::default())
        .unwrap_err();
    assert!(matches!(err, TranscodeError::Io { op: "create", .. }), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}
