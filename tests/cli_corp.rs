//! `corp add | list | enable | disable | set-key` and `redecrypt`, through the real binary, on
//! SQLite temp files and on a fresh MariaDB database per test.
//!
//! - a corp is added with its key as PKCS#1 PEM and as a bare base64 PKCS#8 body;
//! - a bad key, a bad corpid or a missing file is refused with exit 2 and nothing is saved;
//! - `corp list` never shows a secret or a key (the output is searched for both);
//! - enable/disable toggle `corplist.status`;
//! - redecrypt acceptance: an emulator corp whose records use key versions 1..=3 is ingested while
//!   `corp_keys` has only 1 and 2; the version-3 rows are stored undecryptable with their
//!   ciphertext; after `corp set-key --ver 3` and `redecrypt` every row equals the emulator's
//!   ground truth and no row is undecryptable.
//!
//! MariaDB: `mysql://root@localhost/?socket=/run/mysqld/mysqld.sock` (or `WWF_TEST_MYSQL_URL`);
//! unreachable → SKIPPED banner, or a failure under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::actors::{Pipeline, PipelineConfig};
use wework_msgaudit::corps::Sources;
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::store::{self, CorpId};

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");
const SECRET: &str = "sekrit-7f3a9c41d2";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

/// A test database (SQLite temp file or fresh MariaDB database) plus a config file naming it.
struct Db {
    url: String,
    dir: tempfile::TempDir,
    drop_db: Option<(String, String)>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("corp.db").display());
        Db::with_url(url, dir, None)
    }

    async fn mysql() -> Option<Db> {
        match common::pipeline::fresh_mysql_database("wwc").await {
            Ok((url, admin, db)) => Some(Db::with_url(url, tempfile::tempdir().unwrap(), Some((admin, db)))),
            Err(why) => {
                common::skip_or_fail("the MariaDB corp CLI tests", &why);
                None
            }
        }
    }

    fn with_url(url: String, dir: tempfile::TempDir, drop_db: Option<(String, String)>) -> Db {
        // The URL goes in through the environment override (as `run` honours it); the config
        // file holds a different, unusable URL to prove the override wins.
        std::fs::write(dir.path().join("config.toml"), "[database]\nurl = \"sqlite:///nonexistent-dir/x.db\"\n")
            .unwrap();
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
        Db { url, dir, drop_db }
    }

    fn config(&self) -> String {
        self.dir.path().join("config.toml").display().to_string()
    }

    fn secret_file(&self) -> String {
        self.dir.path().join("secret").display().to_string()
    }

    /// Runs the binary with `args` (plus `--config`).
    fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config();
        all.extend(["--config", &config]);
        std::process::Command::new(BIN)
            .args(&all)
            .env("WEWORK_MSGAUDIT__DATABASE__URL", &self.url)
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs the binary and asserts its exit code; returns stdout + stderr.
    fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.cli(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}:\n{text}");
        text
    }

    async fn store(&self) -> Arc<dyn store::Store> {
        let s = store::connect(&self.url).await.unwrap();
        s.migrate().await.unwrap();
        s
    }

    /// One integer from a query on the test database.
    async fn int(&self, sql: &str) -> i64 {
        let v: Option<i64> = if self.url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&p).await;
            p.close().await;
            v
        } else {
            let p = sqlx::MySqlPool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&p).await;
            p.close().await;
            v
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        v.unwrap_or(0)
    }

    /// (seq, msgdata, decrypt_error, encrypt_chat_msg) of every row of a message table.
    async fn rows(&self, table: &str) -> Vec<(i64, Option<String>, Option<String>, Option<String>)> {
        let sql = format!(
            "SELECT CAST(seq AS SIGNED INTEGER), msgdata, decrypt_error, encrypt_chat_msg FROM {table} ORDER BY seq"
        );
        if self.url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let v = sqlx::query_as(&sql).fetch_all(&p).await.unwrap();
            p.close().await;
            v
        } else {
            let p = sqlx::MySqlPool::connect(&self.url).await.unwrap();
            let v = sqlx::query_as(&sql).fetch_all(&p).await.unwrap();
            p.close().await;
            v
        }
    }

    async fn finish(self) {
        use sqlx::{Connection, Executor};
        if let Some((admin, db)) = &self.drop_db {
            let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
            c.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await.unwrap();
        }
    }
}

fn key_body(file: &str) -> String {
    let text = std::fs::read_to_string(keys_dir().join(file)).unwrap();
    // A long run from the middle of the base64 body: present in any printed copy of the key.
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    body[100..160].to_string()
}

async fn add_list_enable_disable(db: Db) {
    let keys = keys_dir();
    let pkcs1 = keys.join("rsa2048.pkcs1.pem").display().to_string();
    let pkcs8_b64 = keys.join("rsa2048.pkcs8.body.b64").display().to_string();
    let secret = db.secret_file();
    let out = db.ok(&[
        "corp",
        "add",
        "--corpid",
        "wwcorp1",
        "--secret-file",
        &secret,
        "--name",
        "One",
        "--key-file",
        &pkcs1,
        "--key-ver",
        "1",
    ]);
    assert!(out.contains("fingerprint sha256:"), "{out}");
    let out = db.cli(&[
        "corp",
        "add",
        "--corpid",
        "wwcorp2",
        "--secret-env",
        "WWF_TEST_CORP_SECRET",
        "--limits",
        "200",
        "--timeout",
        "9",
        "--key-file",
        &pkcs8_b64,
        "--key-ver",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "secret env var not set → usage error");
    let out = std::process::Command::new(BIN)
        .args(["corp", "add", "--corpid", "wwcorp2", "--secret-env", "WWF_TEST_CORP_SECRET", "--limits", "200"])
        .args(["--timeout", "9", "--key-file", &pkcs8_b64, "--key-ver", "2", "--config", &db.config()])
        .env("WEWORK_MSGAUDIT__DATABASE__URL", &db.url)
        .env("WWF_TEST_CORP_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Refused with exit 2, nothing saved.
    // Garbage, a public key, an EC key, a 512-bit key, an encrypted PKCS#8 key.
    for bad in
        ["garbage.txt", "rsa2048.public.pem", "ec-p256.pkcs8.pem", "rsa512.pkcs8.pem", "rsa2048.encrypted.pkcs8.pem"]
    {
        let f = keys.join(bad).display().to_string();
        db.expect(
            &["corp", "add", "--corpid", "wwbad", "--secret-file", &secret, "--key-file", &f, "--key-ver", "1"],
            2,
        );
        db.expect(&["corp", "set-key", "wwcorp1", "--ver", "7", "--key-file", &f], 2);
    }
    db.expect(&["corp", "add", "--corpid", "ww-bad", "--secret-file", &secret], 2);
    db.expect(&["corp", "add", "--corpid", "wwbad", "--secret-file", "/nonexistent/secret"], 2);
    db.expect(
        &[
            "corp",
            "add",
            "--corpid",
            "wwbad",
            "--secret-file",
            &secret,
            "--key-file",
            "/nonexistent.pem",
            "--key-ver",
            "1",
        ],
        2,
    );
    db.expect(&["corp", "add", "--corpid", "wwcorp1", "--secret-file", &secret], 2);
    db.expect(&["corp", "enable", "wwnosuch"], 2);
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corplist").await, 2);
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_keys").await, 2);
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_keys WHERE publickey_ver = 7").await, 0);

    // Both stored keys are what the pipeline can load (same keyring code).
    let s = db.store().await;
    for (c, ver) in [("wwcorp1", 1), ("wwcorp2", 2)] {
        let sources = Sources { table: Some(Arc::clone(&s)), ..Sources::default() };
        let spec = wework_msgaudit::corps::find(&sources, &CorpId::new(c).unwrap()).await.unwrap().unwrap().unwrap();
        assert_eq!(spec.keyring.versions(), [ver], "{c}");
    }

    let list = db.ok(&["corp", "list"]);
    assert!(list.contains("wwcorp1") && list.contains("wwcorp2") && list.contains("One"), "{list}");
    assert!(list.contains("v1=sha256:") && list.contains("v2=sha256:"), "{list}");
    assert!(list.contains("200") && list.contains('9'), "{list}");
    for needle in
        [SECRET.to_string(), key_body("rsa2048.pkcs1.pem"), key_body("rsa2048.pkcs8.body.b64"), "PRIVATE KEY".into()]
    {
        assert!(!list.contains(&needle), "corp list leaks {needle:?}:\n{list}");
    }
    let status = "SELECT CAST(status AS SIGNED INTEGER) FROM corplist WHERE corpid = 'wwcorp1'";
    assert_eq!(db.int(status).await, 1);
    db.ok(&["corp", "disable", "wwcorp1"]);
    assert_eq!(db.int(status).await, 0);
    assert!(db.ok(&["corp", "list"]).contains("disabled"));
    db.ok(&["corp", "enable", "wwcorp1"]);
    assert_eq!(db.int(status).await, 1);
    db.finish().await;
}

const RECORDS: u64 = 300;
const CORP: &str = "wwredecrypt00000001";

fn scenario() -> emulator::Scenario {
    let mut toml = format!("seed = 11\n[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"{SECRET}\"\nrecords = {RECORDS}\n");
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver).unwrap();
        toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
    }
    toml.push_str("[corp.faults]\ncorrupt_rate = 0.0\nchat_rc_rate = 0.0\n");
    toml::from_str(&toml).expect("scenario parses")
}

fn pipeline_config() -> PipelineConfig {
    PipelineConfig { sdk_threads: 1, ..common::pipeline::config() }
}

async fn redecrypt_after_set_key(db: Db) {
    let key_file = |ver: u32| {
        let p = db.dir.path().join(format!("key{ver}.pem"));
        std::fs::write(&p, emulator::demo_private_key_pem(ver).unwrap()).unwrap();
        p.display().to_string()
    };
    let (k1, k2, k3) = (key_file(1), key_file(2), key_file(3));
    let secret = db.secret_file();
    db.ok(&[
        "corp",
        "add",
        "--corpid",
        CORP,
        "--secret-file",
        &secret,
        "--limits",
        "100",
        "--key-file",
        &k1,
        "--key-ver",
        "1",
    ]);
    db.ok(&["corp", "set-key", CORP, "--ver", "2", "--key-file", &k2]);

    // Ingest in-process from the corplist/corp_keys tables, as `run` does.
    let emu = Arc::new(emulator::Emulator::new(scenario()).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let store = db.store().await;
    let sources = Sources { table: Some(Arc::clone(&store)), ..Sources::default() };
    let pipeline = Pipeline::start(store, sdk, sources, &pipeline_config()).unwrap();
    let until = Instant::now() + Duration::from_secs(180);
    let id = CorpId::new(CORP).unwrap();
    loop {
        let snap = pipeline.stats.snapshot();
        if snap.get(&id).is_some_and(|s| s.cursor >= RECORDS) {
            break;
        }
        assert!(Instant::now() < until, "not ingested: {snap:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.shutdown().await;

    let truth = emu.truth(CORP);
    assert_eq!(truth.len() as u64, RECORDS);
    let v3 = truth.iter().filter(|t| t.publickey_ver == 3).count() as i64;
    assert!(v3 > 0, "the scenario must use key version 3");
    assert!(truth.iter().all(|t| !t.corrupt));
    let table = format!("message_{CORP}");
    let undecryptable = format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table} WHERE decrypt_error IS NOT NULL");
    assert_eq!(db.int(&undecryptable).await, v3, "exactly the version-3 rows are undecryptable");
    assert_eq!(
        db.int(&format!(
            "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table} WHERE publickey_ver = 3 AND decrypt_error IS NOT NULL \
             AND encrypt_chat_msg IS NOT NULL AND encrypt_random_key IS NOT NULL"
        ))
        .await,
        v3,
        "version-3 rows keep their ciphertext"
    );

    // Without the key nothing is recovered.
    let out = db.ok(&["redecrypt", "--corp", CORP]);
    assert!(out.contains(&format!("recovered 0, still undecryptable {v3}")), "{out}");
    assert!(!out.contains(SECRET));

    db.ok(&["corp", "set-key", CORP, "--ver", "3", "--key-file", &k3]);
    let out = db.ok(&["redecrypt", "--corp", CORP]);
    assert!(out.contains(&format!("recovered {v3}, still undecryptable 0")), "{out}");
    assert_eq!(db.int(&undecryptable).await, 0);
    let rows = db.rows(&table).await;
    assert_eq!(rows.len(), truth.len());
    for (t, (seq, msgdata, err, ecm)) in truth.iter().zip(&rows) {
        assert_eq!(*seq as u64, t.seq);
        assert_eq!(msgdata.as_deref(), Some(t.plaintext.as_str()), "seq {}", t.seq);
        assert_eq!(err, &None, "seq {}", t.seq);
        assert_eq!(ecm, &None, "seq {}: ciphertext cleared", t.seq);
    }
    // Idempotent.
    let out = db.ok(&["redecrypt", "--corp", CORP]);
    assert!(out.contains("recovered 0, still undecryptable 0"), "{out}");
    db.expect(&["redecrypt", "--corp", "wwnosuchcorp"], 2);
    db.expect(&["redecrypt", "--corp", "bad-corp"], 2);
    db.finish().await;
}

fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    actix_rt::System::new().block_on(f);
}

mod sqlite {
    use super::*;

    #[test]
    fn add_list_enable_disable() {
        block_on(async { super::add_list_enable_disable(Db::sqlite()).await });
    }

    #[test]
    fn redecrypt_recovers_rows_after_set_key() {
        block_on(async { redecrypt_after_set_key(Db::sqlite()).await });
    }
}

mod mariadb {
    use super::*;

    #[test]
    fn add_list_enable_disable() {
        block_on(async {
            if let Some(db) = Db::mysql().await {
                super::add_list_enable_disable(db).await;
            }
        });
    }

    #[test]
    fn redecrypt_recovers_rows_after_set_key() {
        block_on(async {
            if let Some(db) = Db::mysql().await {
                redecrypt_after_set_key(db).await;
            }
        });
    }
}
