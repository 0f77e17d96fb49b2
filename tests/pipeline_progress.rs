//! A long catch-up shows its progress: the daemon binary (emulator, SQLite, JSON logs) pulls two
//! corps of 3,000 records each in pages of 100, every GetChatData call slowed to 60 ms, with
//! `[daemon] progress_interval = "300ms"`. Each corp logs "catching up" lines (records since
//! the previous line, records/s, the cursor, the lag, an ETA) no more often than the interval,
//! then exactly one "caught up" line, which the polls of the now idle corp do not repeat.

use crate::common;

use std::time::{Duration, Instant};

use common::daemon::{write_corps, Daemon};
use common::pipeline::Db;
use serde_json::Value;

const RECORDS: u64 = 3000;
const INTERVAL_MS: u64 = 300;

/// `(corpid, fields)` of the log lines with `message`.
fn lines_of(log: &str, message: &str) -> Vec<(String, Value)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .map(|v| {
            let corp = v["span"]["corpid"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["spans"].as_array()?.iter().find_map(|s| s["corpid"].as_str().map(str::to_string)))
                .unwrap_or_default();
            (corp, v["fields"].clone())
        })
        .collect()
}

#[test]
fn a_long_catch_up_logs_progress_then_caught_up_once() {
    let dir = tempfile::tempdir().unwrap();
    let corps = vec!["wwprogress00000001".to_string(), "wwprogress00000002".to_string()];
    write_corps(dir.path(), &corps, 3, RECORDS, "slow_rate = 1.0\nslow_ms = 60\n", None);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = rt.block_on(Db::sqlite());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
             [pull]\nlimit = 100\npoll_interval = \"200ms\"\n[corps]\ntable = false\nfile = \"{corps}\"\n\
             [log]\nformat = \"json\"\n[media]\nenabled = false\n\
             [daemon]\nprogress_interval = \"{INTERVAL_MS}ms\"\n",
            db = db.url,
            corps = dir.path().join("corps.toml").display(),
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut d = Daemon::start(dir.path(), &config, 1, &[]);
    let until = Instant::now() + Duration::from_secs(120);
    let cursor =
        |c: &str| format!("SELECT CAST(COALESCE(MAX(seq), 0) AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = '{c}'");
    loop {
        d.alive();
        let done = corps.iter().all(|c| rt.block_on(db.int(&cursor(c), None)) as u64 == RECORDS);
        if done && corps.iter().all(|c| lines_of(&d.log(), "caught up").iter().any(|(id, _)| id == c)) {
            break;
        }
        assert!(Instant::now() < until, "no catch-up within 120 s:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t0.elapsed();
    // Idle now: 10 polls each, none of which may log "caught up" again.
    std::thread::sleep(Duration::from_millis(2000));
    let (status, _) = d.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", d.log());
    let log = d.log();
    let progress = lines_of(&log, "catching up");
    let caught_up = lines_of(&log, "caught up");
    let mut summary = Vec::new();
    for c in &corps {
        let mine: Vec<&Value> = progress.iter().filter(|(id, _)| id == c).map(|(_, f)| f).collect();
        assert!(mine.len() >= 2, "{c}: {} progress lines in a catch-up of {took:?}:\n{log}", mine.len());
        // At most one line per interval (the first comes one interval after the catch-up began).
        let most = (took.as_millis() as u64 / INTERVAL_MS) as usize + 1;
        assert!(mine.len() <= most, "{c}: {} lines in {took:?} at most every {INTERVAL_MS} ms", mine.len());
        let mut last_seq = 0;
        let mut sum = 0;
        for f in &mine {
            let seq = f["seq"].as_u64().unwrap();
            assert!(seq >= last_seq && seq <= RECORDS, "{f}");
            last_seq = seq;
            sum += f["records"].as_u64().unwrap();
            assert!(f["records_per_sec"].as_f64().unwrap() >= 0.0, "{f}");
            assert_ne!(f["lag"], "unknown", "records with a msgtime are stored by the first line: {f}");
        }
        assert!(sum > 0 && sum <= RECORDS, "{c}: {sum} records reported");
        assert!(mine.iter().any(|f| f["records_per_sec"].as_f64().unwrap() > 0.0), "{c}: a rate");
        assert!(mine.iter().any(|f| f["eta"] != "unknown"), "{c}: an ETA once the msgtime advances: {mine:?}");
        let ends: Vec<&Value> = caught_up.iter().filter(|(id, _)| id == c).map(|(_, f)| f).collect();
        assert_eq!(ends.len(), 1, "{c}: exactly one caught-up line, not one per idle poll: {ends:?}");
        assert_eq!(ends[0]["seq"].as_u64(), Some(RECORDS), "{}", ends[0]);
        assert_eq!(ends[0]["records"].as_u64(), Some(RECORDS), "every record of the catch-up: {}", ends[0]);
        summary.push(format!(
            "{c}: {} progress lines, the last {} records/s, lag {}, ETA {}; caught up after {}",
            mine.len(),
            mine.last().unwrap()["records_per_sec"],
            mine.last().unwrap()["lag"],
            mine.last().unwrap()["eta"],
            ends[0]["took"]
        ));
    }
    common::report(&format!("pipeline_progress: {} ({took:?})", summary.join("; ")));
    rt.block_on(db.finish());
}
