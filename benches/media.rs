//! Media end to end (issue 18): the simplest sequential downloader a user would write against the
//! same SDK, then the daemon with its default settings (transcoding on), in ONE run of this bench,
//! on the same workload and the same machine, so that their ratio means something even on a busy
//! machine.
//!
//! The workload: 2 corps × 2,000 records (`BENCH_RECORDS`) carrying 1,008 media items between
//! them (432 images, 180 voice, 161 emotions, 144 files, 91 videos; one 3.3 MB file per corp),
//! made by the emulator's `[corp.media_mix]`.
//!
//! - With `WWF_REAL_SDK` set (the real vendor library; only inside a loopback-only network
//!   namespace, `unshare -n`), both talk to the fake WeCom HTTPS API (`emulator::api`) in this
//!   process through its CONNECT proxy, as in `tests/e2e_real_sdk.rs`.
//! - Otherwise both load the emulator's drop-in `.so` (built beside this bench), which serves the
//!   scenario in-process (`WWF_EMULATOR_SCENARIO`).
//!
//! 1. The baseline, in this process, through the same libloading path (`VendorSdk`): one corp
//!    after the other, `GetChatData` pages of 1,000, each record's random key RSA-decrypted
//!    (aws-lc-rs) and its message by the SDK's `DecryptData`, then every media file with the
//!    `GetMediaData` chunk loop into a file: no verification, no transcoding, no fsync, no database
//!    (what the Python script of the issue does, in Rust: a stricter baseline than the issue's).
//! 2. The issue's own baseline, when python3 can import `pyweworkfinance` and `pycryptodome`
//!    (`scripts/bench-media.sh` installs them into `.cache/py`; else a SKIPPED line says so):
//!    `benches/support/baseline.py`, the simplest script following pyweworkfinance's README, in a
//!    child process, on the same SDK, proxy and workload; its files checked the same way.
//! 3. The daemon: the binary's `run`, SQLite, only the settings that say where things are (database,
//!    corps file, media root, the SDK library and proxy): every other setting is the default
//!    (transcoding on, `[sdk] isolate`). Timed from the start of the process until every record is
//!    stored and every media item is done (status 3, size and MD5 verified, fsynced, renamed) and
//!    every voice item transcoded; the database is polled every 50 ms.
//!
//! Afterwards (untimed) every file of both is checked against the emulator's truth (MD5), and the
//! daemon's MP3s are counted. Printed: both times, the ratio (goal ≥ 3), files/s, MB/s, the peak
//! RSS of the baseline (this process, VmHWM) and of the daemon (its VmHWM, plus its sdk-worker
//! children's), the per-stage media histograms the daemon exposes on `/metrics`, and the load
//! average before and after.
//!
//! `cargo bench --bench media` (or `scripts/bench-media.sh`, which also runs the real SDK in a
//! private network namespace when it is present). `BENCH_RECORDS=N` for another size (the media
//! mix scales with it), `BENCH_ROUNDS=N` to repeat both (alternating; the best of each),
//! `BENCH_DAEMON=path` to time another build of the daemon (e.g. an older commit's) against the
//! same baseline, `BENCH_DIR` for where the files go (default the temp directory).

#[path = "support/cpu.rs"]
mod cpu;
#[path = "../tests/common/daemon.rs"]
mod daemon;
#[path = "support/knobs.rs"]
mod knobs;
#[path = "../tests/common/rss.rs"]
mod rss;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpu::cpu_secs;
use md5::{Digest, Md5};
use wework_msgaudit::crypto::{parse_private_key, Keyring};
use wework_msgaudit::sdk::dynlib::VendorSdk;
use wework_msgaudit::sdk::{download_media, FinanceSdk, NetOptions, SdkTimeout};
use wework_msgaudit::secret::Secret;

const CORPS: [&str; 2] = ["wwmediabench00001", "wwmediabench00002"];
const DEFAULT_RECORDS: u64 = 2000;
const BIG_FILE: u64 = 3_300_000;
/// The mix over both corps (per corp: the first gets the odd one).
const MIX: [(&str, u64); 5] = [("image", 432), ("voice", 180), ("emotion", 161), ("file", 144), ("video", 91)];

/// `[corp.media_mix]` of corp `i` for `records` records per corp (the mix scaled to 2,000).
fn mix_of(i: usize, records: u64) -> String {
    MIX.iter()
        .map(|(kind, total)| {
            let total = total * records / DEFAULT_RECORDS;
            let n = total / 2 + if i == 0 { total % 2 } else { 0 };
            format!("{kind} = {n}\n")
        })
        .collect()
}

/// The scenario and corps files, the keys; returns the scenario.
fn write_files(dir: &Path, records: u64) -> emulator::Scenario {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let (mut scenario, mut corps) = ("seed = 18\n".to_string(), String::new());
    for ver in 1..=3 {
        std::fs::write(dir.join(format!("keys/v{ver}.pem")), emulator::demo_private_key_pem(ver).unwrap()).unwrap();
    }
    for (i, c) in CORPS.iter().enumerate() {
        scenario.push_str(&format!(
            "[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\nrecords = {records}\nbig_file_bytes = {BIG_FILE}\n"
        ));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        scenario.push_str(&format!("[corp.media_mix]\n{}", mix_of(i, records)));
        corps.push_str(&format!("[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\n"));
        for ver in 1..=3 {
            corps.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
        }
    }
    std::fs::write(dir.join("scenario.toml"), &scenario).unwrap();
    std::fs::write(dir.join("corps.toml"), corps).unwrap();
    toml::from_str(&scenario).unwrap()
}

/// The emulator's drop-in `.so`, built beside the bench binary.
fn emulator_so() -> PathBuf {
    const NAME: &str = "libWeWorkFinanceSdk_C.so";
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.join(NAME), deps.parent().map(|p| p.join(NAME)).unwrap_or_default()]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{NAME} was not built next to {}", deps.display()))
}

/// What the SDK is loaded from and how it is reached.
struct Target {
    library: PathBuf,
    /// The fake API's proxy URL (real SDK only).
    proxy: Option<String>,
    real: bool,
}

/// One baseline run: seconds, files, bytes, and how long its media phase took.
struct Baseline {
    secs: f64,
    media_secs: f64,
    files: Vec<(String, PathBuf)>,
    bytes: u64,
}

/// The simplest sequential downloader (see the module docs).
fn baseline(sdk: &VendorSdk, target: &Target, out: &Path) -> Baseline {
    let mut keyring = Keyring::new();
    for ver in 1..=3 {
        keyring.insert(ver, parse_private_key(emulator::demo_private_key_pem(ver).unwrap().as_bytes()).unwrap());
    }
    let net = NetOptions { proxy: target.proxy.clone(), proxy_password: None, timeout: SdkTimeout::from_secs(10) };
    std::fs::create_dir_all(out).unwrap();
    let started = Instant::now();
    let (mut files, mut bytes, mut media_secs) = (Vec::new(), 0, 0.0);
    for (i, corpid) in CORPS.iter().enumerate() {
        let mut session = sdk.open(corpid, &Secret::new(format!("s-{i}"))).unwrap();
        // 1. Every record, decrypted; the media references kept.
        let mut media = Vec::new();
        let mut seq = 0;
        loop {
            let page = session.get_chat_data(seq, 1000, &net).unwrap();
            if page.records.is_empty() {
                break;
            }
            for r in &page.records {
                let key = keyring.decrypt_random_key(r.publickey_ver, &r.encrypt_random_key).unwrap();
                let plain = sdk.decrypt_data(&key, &r.encrypt_chat_msg).unwrap();
                let parsed = wework_msgaudit::message::parse_record(r.seq, r.publickey_ver, &plain);
                media.extend(parsed.media.into_iter().map(|m| (r.msgid.clone(), m)));
                seq = seq.max(r.seq);
            }
        }
        // 2. Every media file, chunk loop into a file.
        let t = Instant::now();
        for (msgid, m) in media {
            let path = out.join(format!("{corpid}-{msgid}-{}.{}", m.item, m.ext_hint));
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            bytes += download_media(&mut *session, &m.sdkfileid, &net, 3, &mut f).unwrap();
            f.flush().unwrap();
            files.push((m.sdkfileid, path));
        }
        media_secs += t.elapsed().as_secs_f64();
    }
    Baseline { secs: started.elapsed().as_secs_f64(), media_secs, files, bytes }
}

/// The issue's own baseline, when Python has what it needs: `benches/support/baseline.py` (the
/// simplest pyweworkfinance script, see its docs) in a child process, on the same SDK and
/// workload. `None` (with a loud line saying why) when `pyweworkfinance` or `pycryptodome` cannot
/// be imported: `scripts/bench-media.sh` installs both into `.cache/py`.
fn python_baseline(dir: &Path, target: &Target, out: &Path) -> Option<(Baseline, f64)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut path = vec![repo.join(".cache/py")];
    path.extend(
        std::env::var_os("PYTHONPATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default(),
    );
    let pythonpath = std::env::join_paths(path).unwrap();
    let python = || {
        let mut c = std::process::Command::new("python3");
        c.env("PYTHONPATH", &pythonpath);
        c
    };
    let probe = python().args(["-c", "import Crypto, pyweworkfinance"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        println!(
            "SKIPPED the Python baseline (the issue's script): python3 cannot import pyweworkfinance and pycryptodome \
             ({}); scripts/bench-media.sh installs them into .cache/py",
            probe
                .map(|o| String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string())
                .unwrap_or_else(|e| e.to_string())
        );
        return None;
    }
    let job = serde_json::json!({
        "library": target.library,
        "proxy": target.proxy.clone().unwrap_or_default(),
        "out": out,
        "corps": CORPS.iter().enumerate().map(|(i, c)| serde_json::json!({"corpid": c, "secret": format!("s-{i}")})).collect::<Vec<_>>(),
        "keys": (1..=3).map(|v| (v.to_string(), dir.join(format!("keys/v{v}.pem")))).collect::<HashMap<_, _>>(),
    });
    let job_file = dir.join("python-job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let output = python()
        .arg(repo.join("benches/support/baseline.py"))
        .arg(&job_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Python baseline failed: {}\n{stderr}", output.status);
    let line = stderr.lines().find_map(|l| l.strip_prefix("BASELINE ")).expect("the Python baseline's result line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let files: Vec<(String, PathBuf)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap().to_string(), PathBuf::from(f[1].as_str().unwrap())))
        .collect();
    let bytes = files.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let b = Baseline { secs: v["secs"].as_f64().unwrap(), media_secs: v["media_secs"].as_f64().unwrap(), files, bytes };
    // Its own CPU (getrusage at its end: the whole process).
    Some((b, v["cpu"].as_f64().unwrap()))
}

/// The daemon's configuration: where things are, nothing else.
fn daemon_config(dir: &Path, target: &Target, run: usize) -> (PathBuf, PathBuf, PathBuf) {
    let db = dir.join(format!("daemon-{run}.db"));
    let root = dir.join(format!("msgfile-{run}"));
    let proxy = target.proxy.as_ref().map(|p| format!("proxy = \"{p}\"\n")).unwrap_or_default();
    let config = dir.join(format!("config-{run}.toml"));
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"{lib}\"\n{proxy}\
             [corps]\ntable = false\nfile = \"{corps}\"\n[media]\nroot = \"{root}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n",
            db = db.display(),
            lib = target.library.display(),
            corps = dir.join("corps.toml").display(),
            root = root.display(),
            port = METRICS_PORT.with(|p| *p),
        ),
    )
    .unwrap();
    (config, db, root)
}

thread_local! {
    static METRICS_PORT: u16 = daemon::free_port();
}

/// CPU seconds of this process's threads: (the main thread, every other thread).
fn own_cpu() -> (f64, f64) {
    let me = std::process::id();
    let main = cpu_secs(&format!("{me}/task/{me}"));
    (main, cpu_secs(&me.to_string()) - main)
}

/// One daemon run.
struct DaemonRun {
    secs: f64,
    /// CPU seconds: the daemon, its sdk-worker children.
    cpu: f64,
    children_cpu: f64,
    records_secs: f64,
    peak_kb: u64,
    children_peak_kb: u64,
    children: usize,
    db: PathBuf,
    root: PathBuf,
    metrics: String,
}

/// `run --config <config>` of the daemon binary (`BENCH_DAEMON`, else this build's), the emulator
/// scenario in its environment, logs to files.
fn start_daemon(dir: &Path, config: &Path, run: usize, env: &[(&str, &str)]) -> daemon::Daemon {
    let bin = std::env::var_os("BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wework-msgaudit")));
    let stderr = dir.join(format!("stderr-{run}.log"));
    let child = std::process::Command::new(bin)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("WWF_EMULATOR_SCENARIO", dir.join("scenario.toml"))
        .env_remove("WEWORK_MSGAUDIT_LOG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::from(std::fs::File::create(dir.join(format!("stdout-{run}.log"))).unwrap()))
        .stderr(std::process::Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    daemon::Daemon { child, stderr }
}

async fn count(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap_or(0)
}

async fn daemon_run(
    dir: &Path,
    target: &Target,
    run: usize,
    records: u64,
    media: u64,
    env: &[(&str, &str)],
) -> DaemonRun {
    let (config, db, root) = daemon_config(dir, target, run);
    let started = Instant::now();
    let mut d = start_daemon(dir, &config, run, env);
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = loop {
        d.alive();
        if db.is_file() {
            if let Ok(p) = sqlx::SqlitePool::connect(&url).await {
                break p;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cursors = "SELECT COALESCE(SUM(seq), 0) FROM corp_cursor".to_string();
    let done: String = CORPS
        .iter()
        .map(|c| {
            format!(
                "(SELECT COUNT(*) FROM media_{c} WHERE status = 3 AND (kind <> 'voice' \
                 OR transcoded_path IS NOT NULL OR (transcode_error IS NOT NULL AND transcode_error NOT LIKE 'transcoding was interrupted%')))"
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let done = format!("SELECT {done}");
    let mut records_secs = None;
    let (mut peak_kb, mut children_peak) = (0, HashMap::<String, u64>::new());
    let mut children_cpu = HashMap::<String, f64>::new();
    let pid = d.child.id();
    loop {
        d.alive();
        peak_kb = peak_kb.max(rss::peak_kb(&pid.to_string()).unwrap_or(0));
        for c in daemon::children(pid) {
            let kb = rss::peak_kb(&c).unwrap_or(0);
            children_cpu.insert(c.clone(), cpu_secs(&c));
            let e = children_peak.entry(c).or_default();
            *e = (*e).max(kb);
        }
        if records_secs.is_none() && count(&pool, &cursors).await == (records * CORPS.len() as u64) as i64 {
            records_secs = Some(started.elapsed().as_secs_f64());
        }
        if records_secs.is_some() && count(&pool, &done).await == media as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the daemon did not finish:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(&pid.to_string());
    for c in daemon::children(pid) {
        children_cpu.insert(c.clone(), cpu_secs(&c));
    }
    let metrics = daemon::get(METRICS_PORT.with(|p| *p), "/metrics").map(|(_, b)| b).unwrap_or_default();
    pool.close().await;
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "the daemon exited {status}:\n{}", d.log());
    DaemonRun {
        secs,
        cpu,
        children_cpu: children_cpu.values().sum(),
        records_secs: records_secs.unwrap_or(secs),
        peak_kb,
        children_peak_kb: children_peak.values().sum(),
        children: children_peak.len(),
        db,
        root,
        metrics,
    }
}

fn md5_file(p: &Path) -> String {
    let mut h = Md5::new();
    let mut f = std::fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every media file of the daemon's run is the truth's (MD5), and the MP3s are there.
async fn check_daemon(run: &DaemonRun, truth: &HashMap<String, String>) -> (u64, u64, u64) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", run.db.display())).await.unwrap();
    let (mut files, mut bytes, mut mp3s) = (0u64, 0u64, 0u64);
    for c in CORPS {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> =
            sqlx::query_as(&format!("SELECT sdkfileid, path, transcoded_path, status FROM media_{c}"))
                .fetch_all(&pool)
                .await
                .unwrap();
        for (sdkfileid, path, mp3, status) in rows {
            assert_eq!(status, 3, "every item done");
            let p = run.root.join(path.unwrap());
            assert_eq!(&md5_file(&p), &truth[&sdkfileid], "{} is byte-exact", p.display());
            files += 1;
            bytes += std::fs::metadata(&p).unwrap().len();
            if let Some(mp3) = mp3 {
                assert!(std::fs::metadata(run.root.join(mp3)).unwrap().len() > 0);
                mp3s += 1;
            }
        }
    }
    pool.close().await;
    (files, bytes, mp3s)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The media stage histograms of `/metrics`: `stage count mean`.
fn stages(metrics: &str) -> Vec<String> {
    let mut sums: Vec<(String, f64, f64)> = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("wework_msgaudit_media_stage_seconds_") else { continue };
        let (kind, rest) = rest.split_once('{').unwrap_or(("", ""));
        let Some(stage) = rest.split("stage=\"").nth(1).and_then(|s| s.split('"').next()) else { continue };
        let v: f64 = rest.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let e = match sums.iter().position(|s| s.0 == stage) {
            Some(i) => &mut sums[i],
            None => {
                sums.push((stage.to_string(), 0.0, 0.0));
                sums.last_mut().unwrap()
            }
        };
        match kind {
            "sum" => e.1 = v,
            "count" => e.2 = v,
            _ => {}
        }
    }
    sums.into_iter()
        .map(|(s, sum, n)| {
            format!("{s:>11}: {n:>6} × {:>8.3} ms = {sum:>7.2} s", if n > 0.0 { sum / n * 1e3 } else { 0.0 })
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let records: u64 = knobs::number("BENCH_RECORDS", DEFAULT_RECORDS);
    let rounds = knobs::number("BENCH_ROUNDS", 1).max(1) as usize;
    let dir =
        tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into())).unwrap();
    let scenario = write_files(dir.path(), records);
    let emu = emulator::Emulator::new(scenario.clone()).unwrap();
    let truth: HashMap<String, String> = CORPS
        .iter()
        .flat_map(|c| emu.truth(c))
        .flat_map(|t| t.media.into_iter().map(|m| (m.sdkfileid, m.md5)))
        .collect();
    let media = truth.len() as u64;
    let load_before = load();

    // The real SDK through the fake API, else the emulator's `.so`.
    let mut api = None;
    let target = match std::env::var_os("WWF_REAL_SDK").map(PathBuf::from) {
        Some(lib) => {
            let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
            assert!(
                dev.lines().skip(2).all(|l| l.split(':').next().is_some_and(|n| n.trim() == "lo")),
                "the real SDK only runs in a loopback-only network namespace (unshare -n)"
            );
            let a = emulator::api::FakeApi::start(emu, emulator::api::ApiOptions::default()).unwrap();
            let proxy = a.proxy_url();
            api = Some(a);
            Target { library: lib, proxy: Some(proxy), real: true }
        }
        None => {
            // The `.so` reads its scenario once, from the environment, in this process and in the
            // daemon's children alike.
            std::env::set_var("WWF_EMULATOR_SCENARIO", dir.path().join("scenario.toml"));
            drop(emu);
            Target { library: emulator_so(), proxy: None, real: false }
        }
    };
    let sdk_name = if target.real { "real vendor SDK through the fake WeCom API" } else { "emulator .so" };
    println!(
        "media bench: {} corps × {records} records, {media} media items ({}), {sdk_name}; load average {load_before}; {} cores",
        CORPS.len(),
        MIX.iter().map(|(k, n)| format!("{} {k}", n * records / DEFAULT_RECORDS)).collect::<Vec<_>>().join(", "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sdk = VendorSdk::load(&target.library).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let (mut best_base, mut best_daemon): (Option<Baseline>, Option<DaemonRun>) = (None, None);
    let mut best_py: Option<Baseline> = None;
    for round in 0..rounds {
        // 1. The baseline.
        let _ = rss::reset_peak();
        let out = dir.path().join(format!("baseline-{round}"));
        let cpu0 = own_cpu();
        let b = baseline(&sdk, &target, &out);
        let cpu1 = own_cpu();
        let base_peak = rss::peak_kb("self").map_or("unavailable".into(), |kb| format!("{kb} kB"));
        assert_eq!(b.files.len() as u64, media, "the baseline downloaded every item");
        for (sdkfileid, p) in &b.files {
            assert_eq!(&md5_file(p), &truth[sdkfileid], "baseline file {} is byte-exact", p.display());
        }
        println!(
            "[round {round}] baseline (sequential, no verify/fsync/transcode): {:.2} s (records {:.2} s, media {:.2} s = {:.0} files/s, {:.1} MB/s); peak RSS {base_peak}",
            b.secs,
            b.secs - b.media_secs,
            b.media_secs,
            media as f64 / b.media_secs,
            b.bytes as f64 / 1e6 / b.media_secs
        );
        println!(
            "[round {round}]   CPU: baseline {:.2} s + the {} {:.2} s",
            cpu1.0 - cpu0.0,
            if target.real { "fake API (this process)" } else { "emulator (in the SDK calls)" },
            cpu1.1 - cpu0.1
        );
        std::fs::remove_dir_all(&out).ok();
        // 2. The Python script, when Python has its packages.
        let out = dir.path().join(format!("python-{round}"));
        let cpu0 = own_cpu();
        let py = python_baseline(dir.path(), &target, &out);
        let cpu1 = own_cpu();
        if let Some((p, cpu)) = &py {
            assert_eq!(p.files.len() as u64, media, "the Python baseline downloaded every item");
            for (sdkfileid, f) in &p.files {
                assert_eq!(&md5_file(f), &truth[sdkfileid], "Python baseline file {} is byte-exact", f.display());
            }
            println!(
                "[round {round}] Python baseline (pyweworkfinance + pycryptodome, sequential): {:.2} s (records {:.2} s, \
                 media {:.2} s = {:.0} files/s); CPU {cpu:.2} s + the {} {:.2} s",
                p.secs,
                p.secs - p.media_secs,
                p.media_secs,
                media as f64 / p.media_secs,
                if target.real { "fake API" } else { "emulator (in the script's SDK calls)" },
                cpu1.1 - cpu0.1
            );
        }
        std::fs::remove_dir_all(&out).ok();
        // 3. The daemon: with the old defaults first when asked, then with the defaults.
        let old = [
            ("WEWORK_MSGAUDIT__MEDIA__WORKERS", "2"),
            ("WEWORK_MSGAUDIT__MEDIA__PER_CORP", "1"),
            ("WEWORK_MSGAUDIT__MEDIA__TRANSCODE_WORKERS", "1"),
        ];
        let legs: Vec<(&str, &[(&str, &str)])> = if std::env::var_os("BENCH_OLD_DEFAULTS").is_some() {
            vec![("old defaults: workers 2, per_corp 1, transcode_workers 1", &old[..]), ("defaults", &[])]
        } else {
            vec![("defaults", &[])]
        };
        let mut last = None;
        for (leg, (name, env)) in legs.into_iter().enumerate() {
            let cpu0 = own_cpu();
            let d = rt.block_on(daemon_run(dir.path(), &target, round * 10 + leg, records, media, env));
            let cpu1 = own_cpu();
            let (files, bytes, mp3s) = rt.block_on(check_daemon(&d, &truth));
            assert_eq!(files, media);
            println!(
            "[round {round}] daemon ({name}, transcoding on): {:.2} s (records stored after {:.2} s); {files} files verified, \
             {mp3s} MP3s; {:.0} files/s, {:.1} MB/s end to end; peak RSS {:.1} MB (+ {} sdk-worker children {:.1} MB)",
            d.secs,
            d.records_secs,
            files as f64 / d.secs,
            bytes as f64 / 1e6 / d.secs,
            d.peak_kb as f64 / 1024.0,
            d.children,
            d.children_peak_kb as f64 / 1024.0
        );
            println!(
            "[round {round}]   CPU: daemon {:.2} s + sdk-worker children {:.2} s + the {} {:.2} s (+ this bench polling)",
            d.cpu,
            d.children_cpu,
            if target.real { "fake API" } else { "emulator (inside the children)" },
            (cpu1.0 - cpu0.0) + (cpu1.1 - cpu0.1)
        );
            for s in stages(&d.metrics) {
                println!("    stage {s}");
            }
            println!("[round {round}] ratio baseline ÷ daemon ({name}): {:.2}× (goal ≥ 3)", b.secs / d.secs);
            if let Some((p, _)) = &py {
                println!("[round {round}] ratio Python script ÷ daemon ({name}): {:.2}×", p.secs / d.secs);
            }
            last = Some(d);
        }
        let d = last.unwrap();
        if let Some((p, _)) = py {
            if best_py.as_ref().is_none_or(|x: &Baseline| p.secs < x.secs) {
                best_py = Some(p);
            }
        }
        if best_base.as_ref().is_none_or(|x| b.secs < x.secs) {
            best_base = Some(b);
        }
        if best_daemon.as_ref().is_none_or(|x| d.secs < x.secs) {
            best_daemon = Some(d);
        }
    }
    let (b, d) = (best_base.unwrap(), best_daemon.unwrap());
    println!(
        "RESULT baseline {:.2} s, daemon {:.2} s, ratio {:.2}× (goal ≥ 3); {sdk_name}; load average before {load_before}, after {}",
        b.secs,
        d.secs,
        b.secs / d.secs,
        load()
    );
    if let Some(p) = best_py {
        println!("RESULT Python script {:.2} s, daemon {:.2} s, ratio {:.2}×", p.secs, d.secs, p.secs / d.secs);
    }
    drop(api);
}
