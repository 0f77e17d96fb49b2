//! Voice transcoding throughput on one thread: seconds of audio turned into MP3 per second of wall
//! time, in-process (`transcode_file`: read, decode, encode, write + fsync + rename) against the
//! `ffmpeg` CLI doing AMR → MP3 on the same input (process start included).
//!
//! Inputs (~60 s each) are built from the 3 s fixtures: AMR-NB frames repeated after one header;
//! SILK frames (length-prefixed, no end marker in the fixture) repeated after one header. FFmpeg's
//! own AMR-NB decoder rejects the SID/NO_DATA (DTX) frames of the real fixture, so the CLI is also
//! run on a DTX-free AMR (the fixture's speech frames only, repeated to ~60 s).
//!
//! Run: `cargo bench --bench transcode` (plain main; set TRANSCODE_BENCH_ITERS to change the
//! number of timed runs per row, default 10).

#[path = "support/knobs.rs"]
mod knobs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wework_msgaudit::media::transcode::{transcode_file, Mp3Options};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/emulator/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

const AMR_PAYLOAD: [usize; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];

/// The AMR-NB frames (TOC + payload) of a storage-format file.
fn amr_frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut pos = 6;
    let mut frames = Vec::new();
    while pos < bytes.len() {
        let len = 1 + AMR_PAYLOAD[usize::from((bytes[pos] >> 3) & 0x0f)];
        frames.push(&bytes[pos..pos + len]);
        pos += len;
    }
    frames
}

/// Repeats frames after one header until `seconds` of 20 ms frames.
fn build(header: &[u8], frames: &[&[u8]], seconds: u32) -> (Vec<u8>, f64) {
    let want = seconds as usize * 50;
    let mut out = header.to_vec();
    for f in frames.iter().cycle().take(want) {
        out.extend_from_slice(f);
    }
    (out, want as f64 / 50.0)
}

fn silk_frames(bytes: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let start = usize::from(bytes[0] == 2) + 9;
    let mut pos = start;
    let mut frames = Vec::new();
    while pos + 2 <= bytes.len() {
        let len = i16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        if len < 0 {
            break;
        }
        let end = pos + 2 + len as usize;
        frames.push(&bytes[pos..end]);
        pos = end;
    }
    (&bytes[..start], frames)
}

struct Row {
    name: String,
    per_file: Duration,
    audio_secs: f64,
    note: String,
}

fn time_it(iters: u32, mut f: impl FnMut() -> String) -> (Duration, String) {
    let mut note = f(); // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        note = f();
    }
    (start.elapsed() / iters, note)
}

fn ffmpeg_row(name: &str, input: &Path, out: &Path, audio_secs: f64, iters: u32) -> Row {
    let (per_file, note) = time_it(iters, || {
        #[rustfmt::skip]
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-threads", "1", "-i", input.to_str().unwrap(),
                "-t", "120", "-c:a", "libmp3lame", "-b:a", "32k", out.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .expect("run ffmpeg");
        let errors = String::from_utf8_lossy(&o.stderr).lines().count();
        let got = probe_duration(out);
        format!(
            "exit {}, {errors} stderr lines, output {:.2} s{}",
            o.status.code().unwrap_or(-1),
            got,
            if errors > 0 {
                format!(" (first: {})", String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim())
            } else {
                String::new()
            }
        )
    });
    Row { name: name.into(), per_file, audio_secs, note }
}

fn probe_duration(mp3: &Path) -> f64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", mp3.to_str().unwrap()])
        .stdin(Stdio::null())
        .output();
    o.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let iters = u32::try_from(knobs::number("TRANSCODE_BENCH_ITERS", 10)).expect("TRANSCODE_BENCH_ITERS fits in u32");
    let dir = std::env::temp_dir().join(format!("transcode-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| -> PathBuf { dir.join(n) };

    let amr = fixture("voice.amr");
    let frames = amr_frames(&amr);
    let (amr60, amr_secs) = build(b"#!AMR\n", &frames, 60);
    let speech: Vec<&[u8]> = frames.iter().copied().filter(|f| (f[0] >> 3) & 0x0f <= 7).collect();
    let (amr60_nodtx, amr_nodtx_secs) = build(b"#!AMR\n", &speech, 60);
    let silk = fixture("voice_tencent.silk");
    let (silk_header, sframes) = silk_frames(&silk);
    let (silk60, silk_secs) = build(silk_header, &sframes, 60);
    std::fs::write(path("in.amr"), &amr60).unwrap();
    std::fs::write(path("in_nodtx.amr"), &amr60_nodtx).unwrap();
    std::fs::write(path("in.silk"), &silk60).unwrap();

    let opts = Mp3Options::default();
    let mut rows = Vec::new();
    for (name, input, secs) in [
        ("ours AMR(DTX)->MP3", "in.amr", amr_secs),
        ("ours AMR(no DTX)->MP3", "in_nodtx.amr", amr_nodtx_secs),
        ("ours SILK->MP3", "in.silk", silk_secs),
    ] {
        let (per_file, note) = time_it(iters, || {
            let r = transcode_file(&path(input), &path("ours.mp3"), &opts).expect("transcode");
            format!("output {:.2} s ({} bytes)", r.duration.as_secs_f64(), r.output_bytes)
        });
        rows.push(Row { name: name.into(), per_file, audio_secs: secs, note });
    }
    let have_ffmpeg = Command::new("ffmpeg").arg("-version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if have_ffmpeg {
        rows.push(ffmpeg_row("ffmpeg CLI AMR(DTX)->MP3", &path("in.amr"), &path("cli.mp3"), amr_secs, iters));
        rows.push(ffmpeg_row(
            "ffmpeg CLI AMR(no DTX)->MP3",
            &path("in_nodtx.amr"),
            &path("cli_nodtx.mp3"),
            amr_nodtx_secs,
            iters,
        ));
    } else {
        eprintln!("ffmpeg not found: CLI rows skipped");
    }

    println!("\nvoice -> MP3 32 kbit/s, one thread, {iters} timed runs per row (after one warm-up)");
    println!("{:<30} {:>8} {:>10} {:>12}  note", "what", "audio s", "ms/file", "audio s/s");
    for r in &rows {
        let ms = r.per_file.as_secs_f64() * 1000.0;
        println!(
            "{:<30} {:>8.1} {:>10.2} {:>12.1}  {}",
            r.name,
            r.audio_secs,
            ms,
            r.audio_secs / r.per_file.as_secs_f64(),
            r.note
        );
    }
    let speed = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.audio_secs / r.per_file.as_secs_f64());
    for (ours, theirs) in
        [("ours AMR(DTX)->MP3", "ffmpeg CLI AMR(DTX)->MP3"), ("ours AMR(no DTX)->MP3", "ffmpeg CLI AMR(no DTX)->MP3")]
    {
        if let (Some(a), Some(b)) = (speed(ours), speed(theirs)) {
            println!("ratio {ours} / {theirs} (audio s/s): {:.2}", a / b);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
