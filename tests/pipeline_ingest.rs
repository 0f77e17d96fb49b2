//! The ingestion pipeline end to end on SQLite and MariaDB: emulator corps → SDK pool → decrypt pool →
//! DB writer → `message_<corpid>`, through the supervisor.
//!
//! (a) 3 corps × 2,000 records with 3 key versions, 1 % corrupt records and 2 % failing calls:
//!     every record stored once, decoded exactly, corrupt ones kept with their ciphertext;
//! (b) stopping the system mid-ingest and starting it again loses and duplicates nothing;
//! (c) a corp that always fails does not stall the others.
//!
//! MariaDB: `mysql://root@localhost/?socket=/run/mysqld/mysqld.sock` (or `WWF_TEST_MYSQL_URL`), a
//! fresh database per test; unreachable → SKIPPED banner, or a failure under `CI=true`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::SqlitePool;
use wework_msgaudit::actors::{Pipeline, PipelineConfig, PullSettings};
use wework_msgaudit::corps::{CorpSpec, Sources};
use wework_msgaudit::crypto::{parse_private_key, Keyring};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, CorpId, Store};

const RECORDS: u64 = 2000;

/// (seq, msgid, msgdata, decrypt_error, encrypt_chat_msg)
type StoredRow = (i64, String, Option<String>, Option<String>, Option<String>);

fn corpid(i: usize) -> String {
    format!("wwpipe{i:012}")
}

/// A scenario of `n` corps (the DEMO-ONLY keys 1..=3), `bad` ones with `bad_secret`.
fn scenario(n: usize, bad: &[usize], records: u64) -> emulator::Scenario {
    let mut toml = String::from("seed = 7\n");
    for i in 0..n {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-{i}\"\nrecords = {records}\n", corpid(i)));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        toml.push_str(&format!(
            "[corp.faults]\ncorrupt_rate = 0.01\nchat_rc_rate = 0.02\nbad_secret = {}\n",
            bad.contains(&i)
        ));
    }
    toml::from_str(&toml).expect("scenario parses")
}

fn keyring() -> Keyring {
    let mut k = Keyring::new();
    for ver in 1..=3 {
        k.insert(ver, parse_private_key(emulator::demo_private_key_pem(ver).unwrap().as_bytes()).unwrap());
    }
    k
}

fn specs(n: usize, limit: u32) -> Vec<CorpSpec> {
    (0..n)
        .map(|i| {
            CorpSpec::new(
                CorpId::new(&corpid(i)).unwrap(),
                format!("corp {i}"),
                Secret::new(format!("secret-{i}")),
                limit,
                SdkTimeout::from_secs(5),
                keyring(),
            )
        })
        .collect()
}

fn config() -> PipelineConfig {
    PipelineConfig {
        sdk_threads: 2,
        decrypt_threads: 0,
        pull: PullSettings {
            poll_interval: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(300),
            proxy: None,
            proxy_password: None,
        },
        reload_interval: Duration::from_secs(3600),
        ..PipelineConfig::default()
    }
}

const DEFAULT_MYSQL_BASE: &str = "mysql://root@localhost/?socket=/run/mysqld/mysqld.sock";

/// A test database: a SQLite temp file or a fresh MariaDB database (dropped at the end).
struct Db {
    url: String,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    drop_db: Option<(String, String)>,
}

enum Raw {
    Lite(SqlitePool),
    My(sqlx::MySqlPool),
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("pipe.db").display());
        open_url(&url).await;
        let raw = Raw::Lite(SqlitePoolOptions::new().max_connections(1).connect(&url).await.unwrap());
        Db { url, raw, _dir: Some(dir), drop_db: None }
    }

    /// `None` (after a loud SKIPPED banner) when MariaDB is unreachable outside CI.
    async fn mysql() -> Option<Db> {
        use sqlx::{Connection, Executor};
        let base = std::env::var("WWF_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_BASE.to_string());
        let (head, query) = base.split_once('?').map_or((base.as_str(), None), |(h, q)| (h, Some(q)));
        let authority = head.find("://").map_or(0, |i| i + 3);
        let host_end = head[authority..].find('/').map_or(head.len(), |i| authority + i);
        let with_db = |db: &str| match query {
            Some(q) => format!("{}/{db}?{q}", &head[..host_end]),
            None => format!("{}/{db}", &head[..host_end]),
        };
        let admin = with_db("");
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), sqlx::MySqlConnection::connect(&admin)).await
        {
            Ok(Ok(c)) => c,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                common::skip_or_fail("the MariaDB pipeline tests", &why);
                return None;
            }
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let db = format!("wwp_{}_{nanos}", std::process::id());
        conn.execute(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4").as_str()).await.unwrap();
        conn.close().await.unwrap();
        let url = with_db(&db);
        open_url(&url).await;
        let raw = Raw::My(sqlx::MySqlPool::connect(&url).await.unwrap());
        Some(Db { url, raw, _dir: None, drop_db: Some((admin, db)) })
    }

    /// One integer, `?` bound to `bind` when given (NULL → 0).
    async fn int(&self, sql: &str, bind: Option<&str>) -> i64 {
        let v: Option<i64> = match &self.raw {
            Raw::Lite(p) => {
                let q = sqlx::query_scalar(sql);
                let q = if let Some(b) = bind { q.bind(b.to_string()) } else { q };
                q.fetch_optional(p).await
            }
            Raw::My(p) => {
                let q = sqlx::query_scalar(sql);
                let q = if let Some(b) = bind { q.bind(b.to_string()) } else { q };
                q.fetch_optional(p).await
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .flatten();
        v.unwrap_or(0)
    }

    async fn rows(&self, sql: &str) -> Vec<StoredRow> {
        match &self.raw {
            Raw::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Raw::My(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn finish(self) {
        use sqlx::{Connection, Executor};
        match self.raw {
            Raw::Lite(p) => p.close().await,
            Raw::My(p) => p.close().await,
        }
        if let Some((admin, db)) = self.drop_db {
            let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
            c.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await.unwrap();
        }
    }
}

async fn open_url(url: &str) -> Arc<dyn Store> {
    let s = store::connect(url).await.unwrap();
    s.migrate().await.unwrap();
    s
}

async fn open(db: &Db) -> Arc<dyn Store> {
    open_url(&db.url).await
}

/// Polls the pipeline's stats until every corp in `targets` has its cursor at the target.
async fn wait_for(pipeline: &Pipeline, targets: &[(String, u64)], deadline: Duration) {
    let until = Instant::now() + deadline;
    loop {
        let snap = pipeline.stats.snapshot();
        let done =
            targets.iter().all(|(c, want)| snap.get(&CorpId::new(c).unwrap()).is_some_and(|s| s.cursor >= *want));
        if done {
            return;
        }
        assert!(Instant::now() < until, "not done after {deadline:?}: {snap:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `corp` stored once and exactly as the emulator's truth says.
async fn check_corp(db: &Db, emu: &emulator::Emulator, corp: &str) -> (usize, usize) {
    let truth = emu.truth(corp);
    let table = format!("message_{corp}");
    let total = db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table}"), None).await;
    let distinct = db.int(&format!("SELECT CAST(COUNT(DISTINCT msgid) AS SIGNED INTEGER) FROM {table}"), None).await;
    let max_seq = db.int(&format!("SELECT CAST(MAX(seq) AS SIGNED INTEGER) FROM {table}"), None).await;
    let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(corp)).await;
    assert_eq!(total as usize, truth.len(), "{corp}: row count = record count");
    assert_eq!(distinct, total, "{corp}: every msgid once");
    assert_eq!(max_seq as u64, truth.len() as u64, "{corp}");
    assert_eq!(cursor, max_seq, "{corp}: cursor = max seq");
    let rows = db
        .rows(&format!(
            "SELECT CAST(seq AS SIGNED INTEGER), msgid, msgdata, decrypt_error, encrypt_chat_msg FROM {table} ORDER BY seq"
        ))
        .await;
    let by_seq: HashMap<u64, _> = rows.into_iter().map(|r| (r.0 as u64, r)).collect();
    let (mut corrupt, mut fine) = (0, 0);
    for t in &truth {
        let (_, msgid, msgdata, err, ecm) =
            by_seq.get(&t.seq).unwrap_or_else(|| panic!("{corp}: seq {} missing", t.seq));
        assert_eq!(msgid, &t.msgid, "{corp} seq {}", t.seq);
        if t.corrupt {
            corrupt += 1;
            assert!(err.is_some(), "{corp} seq {}: corrupt record without decrypt_error", t.seq);
            assert!(ecm.as_deref().is_some_and(|c| !c.is_empty()), "{corp} seq {}: ciphertext kept", t.seq);
        } else {
            fine += 1;
            assert_eq!(msgdata.as_deref(), Some(t.plaintext.as_str()), "{corp} seq {}: msgdata", t.seq);
        }
    }
    (fine, corrupt)
}

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

fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    actix_rt::System::new().block_on(f);
}

mod sqlite {
    use super::*;

    #[test]
    fn three_corps_with_faults_are_stored_completely_and_exactly() {
        block_on(async { three_corps_with_faults(Db::sqlite().await).await });
    }

    #[test]
    fn a_restart_mid_ingest_loses_and_duplicates_nothing() {
        block_on(async { restart_mid_ingest(Db::sqlite().await).await });
    }

    #[test]
    fn a_corp_that_always_fails_does_not_stall_the_others() {
        block_on(async { failing_corp_does_not_stall_others(Db::sqlite().await).await });
    }
}

mod mysql {
    use super::*;

    #[test]
    fn three_corps_with_faults_are_stored_completely_and_exactly() {
        block_on(async {
            if let Some(db) = Db::mysql().await {
                three_corps_with_faults(db).await;
            }
        });
    }

    #[test]
    fn a_restart_mid_ingest_loses_and_duplicates_nothing() {
        block_on(async {
            if let Some(db) = Db::mysql().await {
                restart_mid_ingest(db).await;
            }
        });
    }

    #[test]
    fn a_corp_that_always_fails_does_not_stall_the_others() {
        block_on(async {
            if let Some(db) = Db::mysql().await {
                failing_corp_does_not_stall_others(db).await;
            }
        });
    }
}
