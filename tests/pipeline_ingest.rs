//! The ingestion pipeline end to end on SQLite and MariaDB: emulator corps → SDK pool → decrypt pool →
//! DB writer → `message_<corpid>`, through the supervisor.
//!
//! (a) 3 corps × 2,000 records with 3 key versions, 1 % corrupt records and 2 % failing calls:
//!     every record stored once, decoded exactly, corrupt ones kept with their ciphertext;
//! (b) stopping the system mid-ingest and starting it again loses and duplicates nothing;
//! (c) a corp that always fails does not stall the others;
//! (d) a record the database refuses (msgid of 300+ characters) is stored quarantined, with the
//!     whole record, and neither stalls its corp nor costs the rest of its batch;
//! (e) `[pull] fetch_ahead`: the next page is fetched before the page before it is written (so
//!     while the test holds SQLite's write lock, the corp still calls from three successive
//!     cursors), and with it off not (two); either way every record is stored exactly once.
//!
//! MariaDB: `mysql://root@localhost/?socket=/run/mysqld/mysqld.sock` (or `WWF_TEST_MYSQL_URL`), a
//! fresh database per test; unreachable → SKIPPED banner, or a failure under `CI=true`.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pipeline::{check_corp, config, corpid, open, scenario, specs, wait_for, Db};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::Sources;
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::{ChatPage, FinanceSdk, MediaChunk, NetOptions, SdkError, SdkSession};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::CorpId;

const RECORDS: u64 = 2000;

async fn three_corps_with_faults(db: Db) {
    let store = open(&db).await;
    let emu = Arc::new(emulator::Emulator::new(scenario(3, &[], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let sources = Sources { fixed: specs(3, 500), ..Sources::default() };
    let started = Instant::now();
    let pipeline = Pipeline::start(store, sdk, sources, &config()).unwrap();
    let targets: Vec<(String, u64)> = (0..3).map(|i| (corpid(i), RECORDS)).collect();
    wait_for(&pipeline, &targets, Duration::from_secs(240)).await;
    let elapsed = started.elapsed();
    pipeline.shutdown().await;
    let mut corrupt_total = 0;
    for i in 0..3 {
        let (fine, corrupt) = check_corp(&db, &emu, &corpid(i)).await;
        assert_eq!(fine + corrupt, RECORDS as usize);
        corrupt_total += corrupt;
    }
    assert!(corrupt_total > 0, "the scenario must produce corrupt records");
    eprintln!("3 × {RECORDS} records in {elapsed:.2?}, {corrupt_total} corrupt");
    db.finish().await;
}

async fn restart_mid_ingest(db: Db) {
    let emu = Arc::new(emulator::Emulator::new(scenario(2, &[], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    // Small pages so that the stop lands in the middle.
    let first =
        Pipeline::start(open(&db).await, sdk.clone(), Sources { fixed: specs(2, 20), ..Sources::default() }, &config())
            .unwrap();
    wait_for(&first, &[(corpid(0), 200)], Duration::from_secs(120)).await;
    first.shutdown().await;
    let count_sql = format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_{}", corpid(0));
    let mid = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(&corpid(0))).await;
    assert!(mid >= 200 && (mid as u64) < RECORDS, "stopped mid-ingest (cursor {mid})");
    // The stopped system writes nothing more.
    let before = db.int(&count_sql, None).await;
    assert_eq!(before, mid, "rows = cursor after a graceful stop");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(db.int(&count_sql, None).await, before, "nothing written after shutdown");
    let second =
        Pipeline::start(open(&db).await, sdk, Sources { fixed: specs(2, 500), ..Sources::default() }, &config())
            .unwrap();
    let targets: Vec<(String, u64)> = (0..2).map(|i| (corpid(i), RECORDS)).collect();
    wait_for(&second, &targets, Duration::from_secs(240)).await;
    second.shutdown().await;
    for i in 0..2 {
        check_corp(&db, &emu, &corpid(i)).await;
    }
    db.finish().await;
}

async fn failing_corp_does_not_stall_others(db: Db) {
    let emu = Arc::new(emulator::Emulator::new(scenario(3, &[1], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let pipeline =
        Pipeline::start(open(&db).await, sdk, Sources { fixed: specs(3, 500), ..Sources::default() }, &config())
            .unwrap();
    let targets = vec![(corpid(0), RECORDS), (corpid(2), RECORDS)];
    wait_for(&pipeline, &targets, Duration::from_secs(240)).await;
    let bad = pipeline.stats.snapshot()[&CorpId::new(&corpid(1)).unwrap()].clone();
    assert_eq!(bad.cursor, 0, "{bad:?}");
    assert!(bad.last_error.as_deref().is_some_and(|e| e.contains("10001")), "{bad:?}");
    pipeline.shutdown().await;
    check_corp(&db, &emu, &corpid(0)).await;
    check_corp(&db, &emu, &corpid(2)).await;
    let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(&corpid(1))).await;
    assert_eq!(cursor, 0, "the failing corp's cursor never moved");
    db.finish().await;
}

async fn refused_records_are_quarantined(db: Db) {
    let mut sc = scenario(1, &[], 600);
    sc.corp[0].faults.long_msgid_rate = 0.03;
    sc.corp[0].faults.corrupt_rate = 0.0;
    sc.corp[0].faults.chat_rc_rate = 0.0;
    let emu = Arc::new(emulator::Emulator::new(sc).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let pipeline =
        Pipeline::start(open(&db).await, sdk, Sources { fixed: specs(1, 200), ..Sources::default() }, &config())
            .unwrap();
    wait_for(&pipeline, &[(corpid(0), 600)], Duration::from_secs(120)).await;
    pipeline.shutdown().await;
    let table = format!("message_{}", corpid(0));
    let rows = db
        .rows(&format!(
            "SELECT CAST(seq AS SIGNED INTEGER), msgid, msgdata, decrypt_error, encrypt_random_key, encrypt_chat_msg \
             FROM {table} ORDER BY seq"
        ))
        .await;
    let truth = emu.truth(&corpid(0));
    assert_eq!(rows.len(), truth.len(), "one row per record");
    let mut refused = 0;
    for (t, (seq, msgid, msgdata, err, _, _)) in truth.iter().zip(&rows) {
        assert_eq!(*seq as u64, t.seq);
        assert_eq!(msgdata.as_deref(), Some(t.plaintext.as_str()), "seq {seq}: the whole record is kept");
        if t.msgid.len() > 128 {
            refused += 1;
            assert_eq!(msgid, &format!("seq-{seq}"));
            let err = err.as_deref().unwrap_or_default();
            assert!(err.starts_with("not stored as parsed: invalid data: msgid of"), "seq {seq}: {err}");
        } else {
            assert_eq!(msgid, &t.msgid, "seq {seq}");
            assert_eq!(err, &None, "seq {seq}");
        }
    }
    assert!(refused >= 5, "the scenario must produce refused records ({refused})");
    let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(&corpid(0))).await;
    assert_eq!(cursor, 600);
    eprintln!("{refused} refused records of 600 stored quarantined");
    db.finish().await;
}

per_db!(
    three_corps_with_faults_are_stored_completely_and_exactly => three_corps_with_faults,
    a_restart_mid_ingest_loses_and_duplicates_nothing => restart_mid_ingest,
    a_corp_that_always_fails_does_not_stall_the_others => failing_corp_does_not_stall_others,
    a_record_the_database_refuses_is_quarantined_and_the_corp_moves_on => refused_records_are_quarantined,
);

/// The cursors of every GetChatData call, in order (an [`EmulatedSdk`] that writes them down).
struct Recorded {
    inner: EmulatedSdk,
    calls: Arc<std::sync::Mutex<Vec<u64>>>,
}

struct RecordedSession {
    inner: Box<dyn SdkSession>,
    calls: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl FinanceSdk for Recorded {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn open(&self, corpid: &str, secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError> {
        Ok(Box::new(RecordedSession { inner: self.inner.open(corpid, secret)?, calls: Arc::clone(&self.calls) }))
    }

    fn decrypt_data(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError> {
        self.inner.decrypt_data(encrypt_key, encrypt_msg)
    }
}

impl SdkSession for RecordedSession {
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError> {
        self.calls.lock().unwrap().push(seq);
        self.inner.get_chat_data(seq, limit, net)
    }

    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        self.inner.get_media_chunk(sdkfileid, index, net)
    }
}

/// One corp of 1,000 records in pages of 100 (no faults) into SQLite while the test holds the
/// database's write lock (`BEGIN IMMEDIATE` on a connection of its own; the pipeline's writes
/// wait for it, up to the store's 30 s busy timeout). Returns the cursors called from until the
/// lock is let go, then checks the whole corp.
async fn calls_while_writes_wait(fetch_ahead: bool) -> Vec<u64> {
    use sqlx::Connection;
    const RECORDS: u64 = 1000;
    let db = Db::sqlite().await;
    let store = open(&db).await;
    let corp = CorpId::new(&corpid(0)).unwrap();
    // Made now, so that the pipeline's start needs no write.
    store.prepare_corp_tables(std::slice::from_ref(&corp)).await.unwrap();
    let mut scenario = scenario(1, &[], RECORDS);
    scenario.corp[0].faults = emulator::Faults::default();
    let emu = Arc::new(emulator::Emulator::new(scenario).unwrap());
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sdk = Arc::new(Recorded { inner: EmulatedSdk::new(Arc::clone(&emu)), calls: Arc::clone(&calls) });
    let mut lock = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.unwrap();

    let mut cfg = config();
    cfg.pull.fetch_ahead = fetch_ahead;
    let pipeline = Pipeline::start(store, sdk, Sources { fixed: specs(1, 100), ..Sources::default() }, &cfg).unwrap();
    // Three calls come at once when fetching ahead; without it the third needs a committed write.
    let until = Instant::now() + Duration::from_secs(15);
    let wanted = if fetch_ahead { 3 } else { 2 };
    while calls.lock().unwrap().len() < wanted {
        assert!(Instant::now() < until, "{wanted} calls expected within 15 s: {:?}", calls.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Long enough for a call that should not come to come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = calls.lock().unwrap().clone();
    let stored: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM message_{}", corpid(0))).fetch_one(&mut lock).await.unwrap();
    assert_eq!(stored, 0, "nothing was written while the test held the lock");
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    drop(lock);

    wait_for(&pipeline, &[(corpid(0), RECORDS)], Duration::from_secs(120)).await;
    pipeline.shutdown().await;
    assert_eq!(check_corp(&db, &emu, &corpid(0)).await, (RECORDS as usize, 0), "every record stored exactly once");
    db.finish().await;
    seen
}

#[test]
fn fetch_ahead_calls_for_the_next_page_before_the_one_before_it_is_written() {
    common::block_on(async {
        let seen = calls_while_writes_wait(true).await;
        eprintln!("fetch_ahead on, writes waiting: GetChatData from {seen:?}");
        // Page 1 is being written (waiting), page 2 decoded, page 3 fetched.
        assert_eq!(seen.len(), 3, "three calls while the first write waits: {seen:?}");
        assert!(seen[0] == 0 && seen[0] < seen[1] && seen[1] < seen[2], "three successive cursors: {seen:?}");
    });
}

#[test]
fn without_fetch_ahead_the_next_page_waits_for_the_write_before_it() {
    common::block_on(async {
        let seen = calls_while_writes_wait(false).await;
        eprintln!("fetch_ahead off, writes waiting: GetChatData from {seen:?}");
        // Page 2's fetch overlaps page 1's write; page 3's waits for it.
        assert_eq!(seen.len(), 2, "two calls while the first write waits: {seen:?}");
        assert!(seen[0] == 0 && seen[0] < seen[1], "two successive cursors: {seen:?}");
    });
}
