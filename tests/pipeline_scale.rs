//! The pipeline at the scale of the acceptance (emulator in-process):
//!
//! (a) 3 corps × 20,000 records (every msgtype, 3 key versions, 1 % corrupt records, 2 % failing
//!     calls) on SQLite and on MariaDB: row count = record count, every msgid once, msgdata = the
//!     truth's plaintext for every decryptable record, corrupt ones with `decrypt_error` and both
//!     ciphertext columns, cursor = max seq; the records/s of each run is printed;
//! (b) 500 corps × 20 records in one process: all ingested completely, and the process's thread
//!     count (`Threads:` of /proc/self/status, sampled while the pipeline runs) stays within the
//!     configured pools plus a stated fixed overhead.
//!
//! The tests of this file run one at a time (a lock), so that neither the records/s nor the thread
//! count of one is disturbed by another. MariaDB as in `pipeline_ingest.rs` (`WWF_TEST_MYSQL_URL`;
//! unreachable → SKIPPED banner, a failure under `CI=true`).

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::pipeline::{check_corp, config, corpid, open, reached, scenario, specs, wait_for, Db};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::Sources;
use wework_msgaudit::sdk::emulated::EmulatedSdk;

/// Records per corp of (a).
const RECORDS: u64 = 20_000;
/// Corps of (a).
const CORPS: usize = 3;

/// Corps and records per corp of (b).
const MANY_CORPS: usize = 500;
const MANY_RECORDS: u64 = 20;

/// The SQLite store's connection pool (`common::pipeline::STORE_CONNECTIONS` for a file), one
/// worker thread per connection (sqlx-sqlite).
const SQLITE_STORE_CONNECTIONS: usize = common::pipeline::STORE_CONNECTIONS as usize;
/// The test's own verification connection to the same SQLite file (`Db::sqlite`).
const VERIFY_CONNECTIONS: usize = 1;
/// Fixed overhead beyond the pools: the test harness's main thread, and 2 spare for short-lived
/// helper threads (a sqlx-sqlite worker of a connection being replaced, a thread of a previous
/// test still exiting).
const FIXED_OVERHEAD: usize = 3;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `Threads:` of /proc/self/status.
fn threads_now() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: in /proc/self/status")
}

/// The test harness's threads: one per concurrently running test (`RUST_TEST_THREADS`, default
/// the available parallelism); the others wait on [`ONE_AT_A_TIME`] while this one runs.
fn harness_test_threads() -> usize {
    std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

async fn three_corps_at_scale(db: Db, name: &str) {
    let store = open(&db).await;
    let emu = Arc::new(emulator::Emulator::new(scenario(CORPS, &[], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let sources = Sources { fixed: specs(CORPS, 1000), ..Sources::default() };
    let started = Instant::now();
    let pipeline = Pipeline::start(store, sdk, sources, &config()).unwrap();
    let targets: Vec<(String, u64)> = (0..CORPS).map(|i| (corpid(i), RECORDS)).collect();
    wait_for(&pipeline, &targets, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    pipeline.shutdown().await;
    let (mut fine_total, mut corrupt_total) = (0, 0);
    for i in 0..CORPS {
        let (fine, corrupt) = check_corp(&db, &emu, &corpid(i)).await;
        assert_eq!(fine + corrupt, RECORDS as usize);
        fine_total += fine;
        corrupt_total += corrupt;
    }
    assert!(corrupt_total > 0, "the scenario must produce corrupt records");
    let total = CORPS as u64 * RECORDS;
    eprintln!(
        "[{name}] {CORPS} × {RECORDS} = {total} records in {elapsed:.2?}: {:.0} records/s \
         ({fine_total} decrypted, {corrupt_total} corrupt kept with ciphertext)",
        total as f64 / elapsed.as_secs_f64()
    );
    db.finish().await;
}

#[test]
fn sqlite_three_corps_of_20000_records_are_stored_completely_and_exactly() {
    let _one = one_at_a_time();
    common::block_on(async { three_corps_at_scale(Db::sqlite().await, "SQLite").await });
}

#[test]
fn mysql_three_corps_of_20000_records_are_stored_completely_and_exactly() {
    let _one = one_at_a_time();
    common::block_on(async {
        if let Some(db) = Db::mysql().await {
            three_corps_at_scale(db, "MariaDB").await;
        }
    });
}

#[test]
fn five_hundred_corps_ingest_completely_within_the_thread_budget() {
    let _one = one_at_a_time();
    common::block_on(async {
        let db = Db::sqlite().await;
        let emu = Arc::new(emulator::Emulator::new(scenario(MANY_CORPS, &[], MANY_RECORDS)).unwrap());
        let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
        let cfg = config();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decrypt_threads = if cfg.decrypt_threads == 0 { cores } else { cfg.decrypt_threads };
        // The actix System (a current-thread tokio runtime) runs on this test's own thread.
        let actix_threads = 0;
        let test_threads = harness_test_threads();
        let budget = cfg.sdk_threads
            + decrypt_threads
            + actix_threads
            + SQLITE_STORE_CONNECTIONS
            + VERIFY_CONNECTIONS
            + test_threads
            + FIXED_OVERHEAD;
        let before = threads_now();
        let started = Instant::now();
        let pipeline = Pipeline::start(
            open(&db).await,
            sdk,
            Sources { fixed: specs(MANY_CORPS, 1000), ..Sources::default() },
            &cfg,
        )
        .unwrap();
        let targets: Vec<(String, u64)> = (0..MANY_CORPS).map(|i| (corpid(i), MANY_RECORDS)).collect();
        let until = started + Duration::from_secs(300);
        let (mut max_threads, mut samples) = (before, 0u64);
        while !reached(&pipeline, &targets) {
            max_threads = max_threads.max(threads_now());
            samples += 1;
            let done = pipeline.stats.snapshot().values().filter(|c| c.cursor >= MANY_RECORDS).count();
            assert!(Instant::now() < until, "{done} of {MANY_CORPS} corps done after 300 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max_threads = max_threads.max(threads_now());
        let elapsed = started.elapsed();
        assert!(pipeline.sdk_pool().live_threads() <= cfg.sdk_threads, "SDK threads stay bounded");
        pipeline.shutdown().await;
        eprintln!(
            "[500 corps] {MANY_CORPS} × {MANY_RECORDS} records in {elapsed:.2?} ({:.0} records/s); threads: \
             {before} before start, max {max_threads} over {samples} samples; budget {budget} = SDK {} + decrypt \
             {decrypt_threads} + actix/tokio {actix_threads} (on the test thread) + SQLite store pool \
             {SQLITE_STORE_CONNECTIONS} + verification connection {VERIFY_CONNECTIONS} + harness test threads \
             {test_threads} + fixed {FIXED_OVERHEAD}",
            (MANY_CORPS as u64 * MANY_RECORDS) as f64 / elapsed.as_secs_f64(),
            cfg.sdk_threads,
        );
        assert!(max_threads <= budget, "{max_threads} threads > budget {budget} (see the line above)");
        for i in 0..MANY_CORPS {
            let (fine, corrupt) = check_corp(&db, &emu, &corpid(i)).await;
            assert_eq!((fine + corrupt) as u64, MANY_RECORDS, "{}", corpid(i));
        }
        db.finish().await;
    });
}
