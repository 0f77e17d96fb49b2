//! Helpers of the pipeline tests (and `benches/pipeline.rs`, which includes this file by path):
//! emulator scenarios of `wwpipe…` corps with the DEMO-ONLY keys 1..=3, their specs, a fast
//! pipeline configuration, a test database (SQLite temp file or a fresh MariaDB database), and the
//! check that a corp was stored completely and exactly.
//!
//! Self-contained on purpose (no `super::`): the bench has no `tests/common/mod.rs`. The
//! skip-or-fail wrapper for MariaDB ([`Db::mysql`]) lives in `tests/common/mod.rs`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::SqlitePool;
use wework_msgaudit::actors::{Pipeline, PipelineConfig, PullSettings};
use wework_msgaudit::corps::CorpSpec;
use wework_msgaudit::crypto::{parse_private_key, Keyring};
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, CorpId, Store};

/// (seq, msgid, msgdata, decrypt_error, encrypt_random_key, encrypt_chat_msg)
pub type StoredRow = (i64, String, Option<String>, Option<String>, Option<String>, Option<String>);

pub fn corpid(i: usize) -> String {
    format!("wwpipe{i:012}")
}

/// A scenario of `n` corps (the DEMO-ONLY keys 1..=3, 1 % corrupt records, 2 % failing calls),
/// `bad` ones with `bad_secret`.
pub fn scenario(n: usize, bad: &[usize], records: u64) -> emulator::Scenario {
    let pems: Vec<String> = (1..=3).map(|ver| emulator::demo_private_key_pem(ver).unwrap().to_string()).collect();
    let mut toml = String::from("seed = 7\n");
    for i in 0..n {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-{i}\"\nrecords = {records}\n", corpid(i)));
        for (ver, pem) in (1..=3).zip(&pems) {
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        toml.push_str(&format!(
            "[corp.faults]\ncorrupt_rate = 0.01\nchat_rc_rate = 0.02\nbad_secret = {}\n",
            bad.contains(&i)
        ));
    }
    toml::from_str(&toml).expect("scenario parses")
}

pub fn keyring() -> Keyring {
    let mut k = Keyring::new();
    for ver in 1..=3 {
        k.insert(ver, parse_private_key(emulator::demo_private_key_pem(ver).unwrap().as_bytes()).unwrap());
    }
    k
}

pub fn specs(n: usize, limit: u32) -> Vec<CorpSpec> {
    let ring = keyring();
    (0..n)
        .map(|i| {
            CorpSpec::new(
                CorpId::new(&corpid(i)).unwrap(),
                format!("corp {i}"),
                Secret::new(format!("secret-{i}")),
                limit,
                SdkTimeout::from_secs(5),
                ring.clone(),
            )
        })
        .collect()
}

/// 2 SDK threads, one decrypt thread per core, fast polling and backoff, no reload.
pub fn config() -> PipelineConfig {
    PipelineConfig {
        sdk_threads: 2,
        decrypt_threads: 0,
        pull: PullSettings {
            poll_interval: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(300),
            ..PullSettings::default()
        },
        reload_interval: Duration::from_secs(3600),
        ..PipelineConfig::default()
    }
}

pub const DEFAULT_MYSQL_BASE: &str = "mysql://root@localhost/?socket=/run/mysqld/mysqld.sock";

/// Creates a fresh, empty MariaDB database named `<prefix>_<pid>_<nanos>_<serial>` on
/// `WWF_TEST_MYSQL_URL` (default [`DEFAULT_MYSQL_BASE`]); returns its URL, the admin URL and its
/// name (to drop it at the end), or why MariaDB is unreachable.
pub async fn fresh_mysql_database(prefix: &str) -> Result<(String, String, String), String> {
    let base = std::env::var("WWF_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_BASE.to_string());
    fresh_mysql_database_at(&base, prefix).await
}

/// [`fresh_mysql_database`] on the server of `base` (e.g. a private `mariadbd`'s socket).
pub async fn fresh_mysql_database_at(base: &str, prefix: &str) -> Result<(String, String, String), String> {
    use sqlx::{Connection, Executor};
    let base = base.to_string();
    let (head, query) = base.split_once('?').map_or((base.as_str(), None), |(h, q)| (h, Some(q)));
    let authority = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[authority..].find('/').map_or(head.len(), |i| authority + i);
    let with_db = |db: &str| match query {
        Some(q) => format!("{}/{db}?{q}", &head[..host_end]),
        None => format!("{}/{db}", &head[..host_end]),
    };
    let admin = with_db("");
    let mut conn = match tokio::time::timeout(Duration::from_secs(10), sqlx::MySqlConnection::connect(&admin)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("timed out".into()),
    };
    // The tests of every file share one process (tests/tests.rs): the serial keeps two databases
    // created in the same nanosecond apart.
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let db = format!("{prefix}_{}_{nanos}_{serial}", std::process::id());
    conn.execute(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4").as_str()).await.unwrap();
    conn.close().await.unwrap();
    Ok((with_db(&db), admin, db))
}

/// A test database: a SQLite temp file or a fresh MariaDB database (dropped at the end).
pub struct Db {
    pub url: String,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    drop_db: Option<(String, String)>,
}

enum Raw {
    Lite(SqlitePool),
    My(sqlx::MySqlPool),
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("pipe.db").display());
        open_url(&url).await;
        let raw = Raw::Lite(SqlitePoolOptions::new().max_connections(1).connect(&url).await.unwrap());
        Db { url, raw, _dir: Some(dir), drop_db: None }
    }

    /// A fresh MariaDB database on `WWF_TEST_MYSQL_URL` (default [`DEFAULT_MYSQL_BASE`]), or why
    /// MariaDB is unreachable.
    pub async fn try_mysql() -> Result<Db, String> {
        let (url, admin, db) = fresh_mysql_database("wwp").await?;
        open_url(&url).await;
        let raw = Raw::My(sqlx::MySqlPool::connect(&url).await.unwrap());
        Ok(Db { url, raw, _dir: None, drop_db: Some((admin, db)) })
    }

    /// A fresh MariaDB database on the server of `base` (a URL without a database name, e.g.
    /// `mysql://root@localhost/?socket=/tmp/x/sock`), or why that server is unreachable.
    pub async fn try_mysql_at(base: &str) -> Result<Db, String> {
        let (url, admin, db) = fresh_mysql_database_at(base, "wwp").await?;
        open_url(&url).await;
        let raw = Raw::My(sqlx::MySqlPool::connect(&url).await.unwrap());
        Ok(Db { url, raw, _dir: None, drop_db: Some((admin, db)) })
    }

    /// "sqlite" or "mariadb", for the lines a test prints.
    pub fn name(&self) -> &'static str {
        match self.raw {
            Raw::Lite(_) => "sqlite",
            Raw::My(_) => "mariadb",
        }
    }

    /// One integer, `?` bound to `bind` when given (NULL → 0).
    pub async fn int(&self, sql: &str, bind: Option<&str>) -> i64 {
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

    /// Runs one statement (test-made SQL, no binds).
    pub async fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::Lite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::My(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn rows(&self, sql: &str) -> Vec<StoredRow> {
        match &self.raw {
            Raw::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Raw::My(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Two text columns per row.
    pub async fn pairs(&self, sql: &str) -> Vec<(String, String)> {
        match &self.raw {
            Raw::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Raw::My(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `(msgid, item, status, path)` rows of a media query.
    pub async fn rows_media(&self, sql: &str) -> Vec<(String, i64, i64, Option<String>)> {
        match &self.raw {
            Raw::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Raw::My(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn finish(self) {
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

/// The pool of the stores the tests open (a SQLite file: `tests/pipeline_scale.rs` counts its
/// threads).
pub const STORE_CONNECTIONS: u32 = 4;

pub async fn open_url(url: &str) -> Arc<dyn Store> {
    let s = store::connect(url, STORE_CONNECTIONS).await.unwrap();
    s.migrate().await.unwrap();
    s
}

pub async fn open(db: &Db) -> Arc<dyn Store> {
    open_url(&db.url).await
}

/// True once every corp in `targets` has its cursor at the target.
pub fn reached(pipeline: &Pipeline, targets: &[(String, u64)]) -> bool {
    let snap = pipeline.stats.snapshot();
    targets.iter().all(|(c, want)| snap.get(&CorpId::new(c).unwrap()).is_some_and(|s| s.cursor >= *want))
}

/// Polls the pipeline's stats until every corp in `targets` has its cursor at the target.
pub async fn wait_for(pipeline: &Pipeline, targets: &[(String, u64)], deadline: Duration) {
    let until = Instant::now() + deadline;
    while !reached(pipeline, targets) {
        assert!(Instant::now() < until, "not done after {deadline:?}: {:#?}", pipeline.stats.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `corp` stored once and exactly as the emulator's truth says: returns
/// (decrypted, corrupt) counts.
pub async fn check_corp(db: &Db, emu: &emulator::Emulator, corp: &str) -> (usize, usize) {
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
            "SELECT CAST(seq AS SIGNED INTEGER), msgid, msgdata, decrypt_error, encrypt_random_key, encrypt_chat_msg \
             FROM {table} ORDER BY seq"
        ))
        .await;
    let by_seq: HashMap<u64, _> = rows.into_iter().map(|r| (r.0 as u64, r)).collect();
    let (mut corrupt, mut fine) = (0, 0);
    for t in &truth {
        let (_, msgid, msgdata, err, erk, ecm) =
            by_seq.get(&t.seq).unwrap_or_else(|| panic!("{corp}: seq {} missing", t.seq));
        assert_eq!(msgid, &t.msgid, "{corp} seq {}", t.seq);
        if t.corrupt {
            corrupt += 1;
            assert!(err.is_some(), "{corp} seq {}: corrupt record without decrypt_error", t.seq);
            assert!(erk.as_deref().is_some_and(|c| !c.is_empty()), "{corp} seq {}: random key kept", t.seq);
            assert!(ecm.as_deref().is_some_and(|c| !c.is_empty()), "{corp} seq {}: ciphertext kept", t.seq);
        } else {
            fine += 1;
            assert_eq!(msgdata.as_deref(), Some(t.plaintext.as_str()), "{corp} seq {}: msgdata", t.seq);
        }
    }
    (fine, corrupt)
}

/// Ingests `corps` emulator corps of `records` each (the normal generator, pages of 500) into
/// `store` through the pipeline, and stops it once every corp is stored.
pub async fn ingest_corps(store: &Arc<dyn Store>, corps: usize, records: u64) {
    let emu = Arc::new(emulator::Emulator::new(scenario(corps, &[], records)).unwrap());
    let sdk = Arc::new(wework_msgaudit::sdk::emulated::EmulatedSdk::new(emu));
    let sources = wework_msgaudit::corps::Sources { fixed: specs(corps, 500), ..Default::default() };
    let pipeline = Pipeline::start(Arc::clone(store), sdk, sources, &config()).unwrap();
    let targets: Vec<(String, u64)> = (0..corps).map(|i| (corpid(i), records)).collect();
    wait_for(&pipeline, &targets, Duration::from_secs(240)).await;
    pipeline.shutdown().await;
}

/// Every stored row of `corp`, whole (oversized values reassembled), by seq.
pub async fn all_rows(store: &Arc<dyn Store>, corp: &CorpId) -> Vec<wework_msgaudit::store::Row> {
    let mut out: Vec<wework_msgaudit::store::Row> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.seq);
        let page = store.messages_after(corp, after, 300, true).await.unwrap().unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}
