//! A poison batch: the database refuses every write of one corp (a trigger that rejects every
//! insert into its message table, a stand-in for any persistent write error other than size).
//!
//! The corp must not retry in a loop: after a bounded number of attempts it is marked `failing`
//! with the database's reason (and stays so: status, `/healthz` and the metrics read that state),
//! retrying only every `backoff_max`; the other corp is stored completely meanwhile; once the
//! cause is gone (the trigger dropped) the corp recovers on its own and is stored exactly. On
//! SQLite and MariaDB.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::pipeline::{check_corp, config, corpid, open, scenario, specs, wait_for, Db};
use sqlx::Connection;
use wework_msgaudit::actors::{Pipeline, PullSettings};
use wework_msgaudit::corps::Sources;
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::store::CorpId;

/// `[daemon] failing_after` in this test.
const WRITE_ATTEMPTS: u32 = 2;
const RECORDS: u64 = 1000;
const REASON: &str = "poison: inserts refused";

/// Runs `sql` on the test database.
async fn execute(db: &Db, sql: &str) {
    use sqlx::Executor;
    if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        c.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.unwrap();
    } else {
        let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
        c.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.unwrap();
    }
}

async fn poison_batch(db: Db) {
    let store = open(&db).await;
    let poisoned = CorpId::new(&corpid(0)).unwrap();
    store.ensure_corp_tables(&poisoned).await.unwrap();
    let table = poisoned.message_table();
    let sqlite = db.url.starts_with("sqlite:");
    if sqlite {
        execute(
            &db,
            &format!("CREATE TRIGGER poison BEFORE INSERT ON \"{table}\" BEGIN SELECT RAISE(ABORT, '{REASON}'); END"),
        )
        .await;
    } else {
        execute(
            &db,
            &format!("CREATE TRIGGER poison BEFORE INSERT ON `{table}` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{REASON}'"),
        )
        .await;
    }
    let mut sc = scenario(2, &[], RECORDS);
    for c in &mut sc.corp {
        c.faults.chat_rc_rate = 0.0;
    }
    let emu = Arc::new(emulator::Emulator::new(sc).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let backoff_max = Duration::from_secs(4);
    // `[daemon] failing_after` = 2 (not the default 3): the corp must be failing at exactly the
    // second refused write.
    let cfg = wework_msgaudit::actors::PipelineConfig {
        pull: PullSettings { backoff_max, write_attempts: WRITE_ATTEMPTS, ..config().pull },
        ..config()
    };
    let pipeline = Pipeline::start(store, sdk, Sources { fixed: specs(2, 200), ..Sources::default() }, &cfg).unwrap();

    // The other corp goes on; the poisoned one ends up failing, with the reason.
    wait_for(&pipeline, &[(corpid(1), RECORDS)], Duration::from_secs(120)).await;
    let t0 = Instant::now();
    loop {
        let s = pipeline.stats.snapshot()[&poisoned].clone();
        if s.state == "failing" {
            // Seen within 20 ms of the change; the next attempt is backoff_max (4 s) away.
            assert_eq!(s.consecutive_failures, WRITE_ATTEMPTS, "failing at the configured attempt: {s:?}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never marked failing: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And stays failing, retrying at most once per backoff_max (±25 %) instead of in a loop.
    let first = pipeline.stats.snapshot()[&poisoned].clone();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        let s = pipeline.stats.snapshot()[&poisoned].clone();
        assert_eq!(s.state, "failing", "the corp stays failing: {s:?}");
        // What /healthz, /status and corp_failing are made of.
        let report = wework_msgaudit::observe::corp_report(&poisoned, &s, WRITE_ATTEMPTS, SystemTime::now());
        assert!(report.failing, "{report:?}");
        let err = s.last_error.clone().unwrap_or_default();
        assert!(err.contains(REASON), "the reason is shown: {err}");
        assert_eq!(s.cursor, 0);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let last = pipeline.stats.snapshot()[&poisoned].clone();
    let retries = last.consecutive_failures - first.consecutive_failures;
    assert!(retries <= 1, "{retries} write attempts in 3 s after the corp was marked failing: {last:?}");
    eprintln!(
        "{}: failing after {} attempts, {retries} retries in the next 3 s: {:?}",
        if sqlite { "sqlite" } else { "mariadb" },
        first.consecutive_failures,
        first.last_error
    );

    // The cause goes away: the corp recovers by itself and nothing is lost.
    execute(&db, "DROP TRIGGER poison").await;
    wait_for(&pipeline, &[(corpid(0), RECORDS)], Duration::from_secs(60)).await;
    let s = pipeline.stats.snapshot()[&poisoned].clone();
    pipeline.shutdown().await;
    assert_eq!(s.consecutive_failures, 0, "{s:?}");
    check_corp(&db, &emu, &corpid(0)).await;
    check_corp(&db, &emu, &corpid(1)).await;
    db.finish().await;
}

per_db!(a_poison_batch_marks_the_corp_failing_instead_of_looping => poison_batch);
