//! The daemon binary (`run`, in-process emulator, SQLite) killed with SIGKILL while a 200 MiB file
//! is downloading: after a restart the file completes byte-exact, once, with no temp file left
//! over; the peak RSS of the run that downloads the whole 200 MiB file is measured (VmHWM) and
//! must stay under 64 MiB. `media stats` and `media retry` are checked on the result.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, md5_file};

const CORP: &str = "wwkillcorp00000001";
const RECORDS: u64 = 40;
const BIG: u64 = 200 << 20;

fn scenario() -> String {
    let pem = emulator::demo_private_key_pem(1).unwrap();
    format!(
        "seed = 11\n[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"kill-secret\"\nrecords = {RECORDS}\n\
         big_file_bytes = {BIG}\n[[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n"
    )
}

fn setup(dir: &Path) -> PathBuf {
    let pem = emulator::demo_private_key_pem(1).unwrap();
    std::fs::write(dir.join("scenario.toml"), scenario()).unwrap();
    std::fs::write(dir.join("v1.pem"), pem).unwrap();
    std::fs::write(
        dir.join("corps.toml"),
        format!("[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"kill-secret\"\n[[corp.key]]\nver = 1\nfile = \"v1.pem\"\n"),
    )
    .unwrap();
    let config = format!(
        "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 1\n\
         [pull]\npoll_interval = \"200ms\"\n[corps]\ntable = false\nfile = \"{corps}\"\n\
         [media]\nroot = \"{media}\"\nworkers = 2\ninstance_id = \"kill-test\"\nsweep_interval = \"200ms\"\n\
         backoff_initial = \"100ms\"\n",
        db = dir.join("kill.db").display(),
        corps = dir.join("corps.toml").display(),
        media = dir.join("msgfile").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn daemon(dir: &Path, config: &Path, log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("WWF_EMULATOR_SCENARIO", dir.join("scenario.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join(log)).unwrap()))
        .spawn()
        .unwrap()
}

fn query(db: &Path, sql: &str) -> Vec<(i64, Option<String>)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await else {
            return Vec::new();
        };
        let r = sqlx::query_as(sql).fetch_all(&pool).await.unwrap_or_default();
        pool.close().await;
        r
    })
}

/// (status, path) of the big item.
fn big_item(db: &Path) -> Option<(i64, Option<String>)> {
    query(db, &format!("SELECT status, path FROM media_{CORP} WHERE size = {BIG}")).into_iter().next()
}

fn part_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let tmp = dir.join("msgfile/.tmp/kill-test");
    std::fs::read_dir(tmp)
        .map(|rd| rd.flatten().map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0))).collect())
        .unwrap_or_default()
}

fn sigterm_and_wait(mut child: Child) -> std::process::ExitStatus {
    // Through the `kill` command: the tests stay free of `unsafe`.
    let rc = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(rc.success());
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < until, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_download_killed_midway_completes_after_restart_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let db = dir.path().join("kill.db");
    // 1. Kill -9 while the big file is being written.
    let mut first = daemon(dir.path(), &config, "first.log");
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        if part_files(dir.path()).iter().any(|(_, len)| *len > 8 << 20) {
            break;
        }
        if let Some(s) = first.try_wait().unwrap() {
            panic!("exited early ({s}): {}", std::fs::read_to_string(dir.path().join("first.log")).unwrap());
        }
        assert!(Instant::now() < until, "the big download never started: {:?}", big_item(&db));
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let orphans = part_files(dir.path());
    assert!(!orphans.is_empty(), "a partial file is left by the killed process");
    assert_eq!(big_item(&db).map(|b| b.0), Some(2), "the big item was in flight (status 2)");
    // 2. Restart: the claim is taken back, the orphan removed, the file downloaded again.
    let second = daemon(dir.path(), &config, "second.log");
    let until = Instant::now() + Duration::from_secs(300);
    let path = loop {
        if let Some((3, Some(path))) = big_item(&db) {
            break path;
        }
        assert!(Instant::now() < until, "not completed after restart: {:?}", big_item(&db));
        std::thread::sleep(Duration::from_millis(100));
    };
    // Everything else too.
    let until = Instant::now() + Duration::from_secs(120);
    while query(&db, &format!("SELECT COUNT(*), NULL FROM media_{CORP} WHERE status <> 3"))[0].0 > 0 {
        assert!(Instant::now() < until, "media not all done");
        std::thread::sleep(Duration::from_millis(100));
    }
    let hwm = common::rss::peak_kb(&second.id().to_string()).expect("VmHWM of the daemon");
    let status = sigterm_and_wait(second);
    assert!(status.success(), "{status}");
    let file = dir.path().join("msgfile").join(&path);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), BIG);
    let emu = emulator::Emulator::new(toml::from_str(&scenario()).unwrap()).unwrap();
    let want = emu.truth(CORP).iter().flat_map(|t| t.media.clone()).find(|m| m.size == BIG).unwrap().md5;
    assert_eq!(md5_file(&file), want, "byte-exact after the restart");
    assert!(part_files(dir.path()).is_empty(), "no orphaned temp file: {:?}", part_files(dir.path()));
    let copies =
        files_under(&dir.path().join("msgfile")).into_iter().filter(|p| p.metadata().unwrap().len() == BIG).count();
    assert_eq!(copies, 1, "one file, no duplicate");
    eprintln!("peak RSS (VmHWM) of the run that downloaded the {} MiB file: {} KiB", BIG >> 20, hwm);
    assert!(hwm < 64 * 1024, "peak RSS {hwm} KiB >= 64 MiB");
    // 3. `media stats` and `media retry` on the result.
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["media", "stats", "--corp", CORP, "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Columns: corpid, source, kind, pending, running, done, failed, held.
    let file_line =
        text.lines().find(|l| l.split_whitespace().nth(2) == Some("file")).unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = file_line.split_whitespace().collect();
    assert_eq!(cols[1], "file", "the corp comes from the corps file: {file_line}");
    assert_eq!(cols[3..], ["0", "0", cols[5], "0", "0"], "{file_line}");
    assert!(cols[5].parse::<u64>().unwrap() >= 1);
    let retry = |status: &str| {
        Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(["media", "retry", "--corp", CORP, "--status", status, "--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = retry("9");
    assert_eq!(out.status.code(), Some(2), "status 9 does not exist: a usage error");
    let out = retry("4");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 0 media items in status 4 re-queued"));
}
