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

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::actors::{Pipeline, PipelineConfig};
use wework_msgaudit::corps::Sources;
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::store::CorpId;

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");
const SECRET: &str = "sekrit-7f3a9c41d2";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

/// A test database (SQLite temp file or fresh MariaDB database) plus a config file that names
/// an unusable URL: the environment's (as `run` honours it) must win.
struct Db(common::cli_db::CliDb);

impl std::ops::Deref for Db {
    type Target = common::cli_db::CliDb;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Db {
    async fn sqlite() -> Db {
        Db::with(common::cli_db::CliDb::sqlite("corp.db"))
    }

    async fn mysql() -> Option<Db> {
        common::cli_db::CliDb::mysql("wwc", "the MariaDB corp CLI tests").await.map(Db::with)
    }

    fn with(db: common::cli_db::CliDb) -> Db {
        let db = Db(db);
        db.set_config("");
        db.write("secret", &format!("{SECRET}\n"));
        db
    }

    /// Rewrites the config file: the unusable URL (the environment's wins) plus `extra`.
    fn set_config(&self, extra: &str) {
        self.write("config.toml", &format!("[database]\nurl = \"sqlite:///nonexistent-dir/x.db\"\n{extra}"));
    }

    fn config(&self) -> String {
        self.path("config.toml").display().to_string()
    }

    fn secret_file(&self) -> String {
        self.path("secret").display().to_string()
    }

    /// Runs the binary with `args` (plus `--config`).
    fn cli(&self, args: &[&str]) -> Output {
        self.run(args, "")
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
        self.0.finish().await;
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

const SEALED_CORP: &str = "wwsealed0000000001";
const PLAIN_CORP: &str = "wwplainfile0000002";
const SEALED_RECORDS: u64 = 120;
const MASTER_A: &str = "3f1d2c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff001";

/// Writes the emulator scenario of [`SEALED_CORP`] and [`PLAIN_CORP`] (keys 1..=3, no faults).
fn write_sealed_scenario(dir: &Path) {
    let mut toml = String::from("seed = 5\n");
    for (corp, secret) in [(SEALED_CORP, SECRET), (PLAIN_CORP, "plain-file-secret-1")] {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"{secret}\"\nrecords = {SEALED_RECORDS}\n"));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        toml.push_str("[corp.faults]\ncorrupt_rate = 0.0\nchat_rc_rate = 0.0\n");
    }
    std::fs::write(dir.join("scenario.toml"), toml).unwrap();
}

/// Waits until `corp`'s cursor reaches `n` and its message table holds `n` decrypted rows.
async fn wait_rows(db: &Db, daemon: &mut common::daemon::Daemon, corp: &str, n: u64) {
    let cursor =
        format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = '{corp}' AND seq >= {n}");
    let rows = format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_{corp} WHERE decrypt_error IS NULL");
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        daemon.alive();
        if db.int(&cursor).await == 1 {
            assert_eq!(db.int(&rows).await as u64, n, "{corp}: every row decrypted:\n{}", daemon.log());
            return;
        }
        assert!(Instant::now() < until, "{corp}: cursor below {n}:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Secrets and keys at rest: with a master key, `corp add`/`set-key` store only sealed values,
/// the daemon opens them and ingests; `rotate-secret` stores a new sealed secret; another
/// master key (or none) leaves that corp out with a clear error naming it, logged once, while a
/// corp of the corps file keeps ingesting; `corp encrypt-existing` seals plaintext values (on
/// MySQL also in a Java-width `secret varchar(43)` column).
async fn secrets_at_rest(db: Db) {
    let dir = db.dir.path().to_path_buf();
    write_sealed_scenario(&dir);
    std::fs::write(dir.join("master.key"), format!("{MASTER_A}\n")).unwrap();
    let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    std::fs::write(dir.join("other.key"), &other).unwrap();
    let base = "[sdk]\nlibrary = \"emulator\"\n[media]\nenabled = false\n[corps]\nreload_interval = \"1s\"\n\
                [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"100ms\"\n";
    let with_key = |key: &str, corps_file: bool| {
        let file =
            if corps_file { format!("file = \"{}\"\n", dir.join("corps.toml").display()) } else { String::new() };
        let base = base.replace("[corps]\n", &format!("[corps]\n{file}"));
        format!("{base}[security]\nmaster_key_file = \"{}\"\n", dir.join(key).display())
    };
    db.set_config(&with_key("master.key", false));
    let key_file = |ver: u32| {
        let p = dir.join(format!("key{ver}.pem"));
        std::fs::write(&p, emulator::demo_private_key_pem(ver).unwrap()).unwrap();
        p.display().to_string()
    };
    let secret = db.secret_file();
    let k1 = key_file(1);
    let out =
        db.ok(&["corp", "add", "--corpid", SEALED_CORP, "--secret-file", &secret, "--key-file", &k1, "--key-ver", "1"]);
    assert!(out.contains("secret stored encrypted"), "{out}");
    db.ok(&["corp", "set-key", SEALED_CORP, "--ver", "2", "--key-file", &key_file(2)]);
    db.ok(&["corp", "set-key", SEALED_CORP, "--ver", "3", "--key-file", &key_file(3)]);

    // Nothing readable in the database.
    let stored_secret = db.texts(&format!("SELECT secret FROM corplist WHERE corpid = '{SEALED_CORP}'")).await;
    let stored_keys = db.texts(&format!("SELECT prikey FROM corp_keys WHERE corpid = '{SEALED_CORP}'")).await;
    assert_eq!(stored_keys.len(), 3);
    let pem_slice: String = emulator::demo_private_key_pem(1).unwrap().lines().nth(3).unwrap().to_string();
    for v in stored_secret.iter().chain(&stored_keys) {
        assert!(v.starts_with("enc:v1:"), "not sealed: {v:.40}");
        assert!(!v.contains(SECRET) && !v.contains("PRIVATE KEY") && !v.contains(&pem_slice), "plaintext in {v:.40}");
    }
    let list = db.ok(&["corp", "list"]);
    let line = list.lines().find(|l| l.starts_with(SEALED_CORP)).unwrap();
    assert!(line.contains("sealed") && line.contains("v1=sha256:") && line.contains("v3=sha256:"), "{list}");
    assert!(!list.contains("problem"), "{list}");
    db.ok(&["validate"]);

    // The daemon opens the sealed values and ingests every record.
    let env = [("WEWORK_MSGAUDIT__DATABASE__URL", db.url.as_str())];
    let mut daemon = common::daemon::Daemon::start(&dir, Path::new(&db.config()), 0, &env);
    wait_rows(&db, &mut daemon, SEALED_CORP, SEALED_RECORDS).await;
    let (status, _) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", daemon.log());
    assert!(!daemon.log().contains(SECRET) && !daemon.log().contains(MASTER_A), "the log shows a secret");

    // rotate-secret: a new sealed value that opens to the new secret.
    std::fs::write(dir.join("new-secret"), "rotated-secret-0a9b8c7d\n").unwrap();
    let new_secret = dir.join("new-secret").display().to_string();
    let out = db.ok(&["corp", "rotate-secret", SEALED_CORP, "--secret-file", &new_secret]);
    assert!(out.contains("stored encrypted") && !out.contains("rotated-secret"), "{out}");
    let rotated = db.texts(&format!("SELECT secret FROM corplist WHERE corpid = '{SEALED_CORP}'")).await;
    assert_ne!(rotated, stored_secret);
    assert!(rotated[0].starts_with("enc:v1:"));
    let at_rest = wework_msgaudit::security::AtRest::with_key(
        wework_msgaudit::security::MasterKey::parse(MASTER_A, "test").unwrap(),
    );
    let place = wework_msgaudit::security::secret_place(SEALED_CORP);
    let opened = at_rest.reveal(&place, &wework_msgaudit::secret::Secret::new(rotated[0].clone())).unwrap();
    assert_eq!(opened.expose(), "rotated-secret-0a9b8c7d");
    db.ok(&["corp", "rotate-secret", SEALED_CORP, "--secret-file", &secret]);

    // Another master key: the sealed corp is left out by name (once), the corp of the corps file
    // keeps ingesting, and nothing crashes.
    std::fs::write(
        dir.join("corps.toml"),
        format!(
            "[[corp]]\ncorpid = \"{PLAIN_CORP}\"\nsecret = \"plain-file-secret-1\"\n[[corp.key]]\nver = 1\nfile = \"{}\"\n\
             [[corp.key]]\nver = 2\nfile = \"{}\"\n[[corp.key]]\nver = 3\nfile = \"{}\"\n",
            key_file(1),
            key_file(2),
            key_file(3)
        ),
    )
    .unwrap();
    db.set_config(&with_key("other.key", true));
    let list = db.ok(&["corp", "list"]);
    let expected = format!("problem: {SEALED_CORP}: corplist.secret/{SEALED_CORP} is encrypted with master key");
    assert!(list.contains(&expected), "{list}");
    let out = db.expect(&["validate"], 2);
    assert!(out.contains(&format!("FAIL  corp {SEALED_CORP}: left out")), "{out}");
    assert!(out.contains("configured master key"), "{out}");
    let mut daemon = common::daemon::Daemon::start(&dir, Path::new(&db.config()), 1, &env);
    wait_rows(&db, &mut daemon, PLAIN_CORP, SEALED_RECORDS).await;
    // Several reload intervals (1 s) pass: the corp left out is still named only once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.alive();
    let log = daemon.log();
    let left_out: Vec<&str> = log.lines().filter(|l| l.contains("corp left out") && l.contains(SEALED_CORP)).collect();
    assert_eq!(left_out.len(), 1, "named once:\n{log}");
    assert!(left_out[0].contains("encrypted with master key"), "{}", left_out[0]);
    assert!(!log.contains(&other), "the log shows the master key");
    let (status, _) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");

    // No master key at all: the same corp is named with what is missing.
    db.set_config(base);
    let list = db.ok(&["corp", "list"]);
    assert!(list.contains("no master key is configured"), "{list}");

    // Without a key, a new corp is stored as plaintext; encrypt-existing seals it.
    let add = ["corp", "add", "--corpid", "wwplain0000000003", "--secret-file", &secret, "--key-file", &k1];
    db.ok(&[&add[..], &["--key-ver", "1"]].concat());
    let plain = db.texts("SELECT secret FROM corplist WHERE corpid = 'wwplain0000000003'").await;
    assert_eq!(plain, [SECRET]);
    db.expect(&["corp", "encrypt-existing"], 2);
    if !db.url.starts_with("sqlite:") {
        // A Java-era corplist holds the secret in varchar(43): too narrow for a sealed value.
        let p = sqlx::MySqlPool::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE corplist SET secret = 'placeholder' WHERE corpid = ?")
            .bind(SEALED_CORP)
            .execute(&p)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE corplist MODIFY COLUMN secret varchar(43) DEFAULT NULL").execute(&p).await.unwrap();
        p.close().await;
    }
    db.set_config(&with_key("master.key", false));
    let out = db.ok(&["corp", "encrypt-existing"]);
    let sealed_now = if db.url.starts_with("sqlite:") { 2 } else { 3 };
    assert!(out.contains(&format!("sealed {sealed_now} plaintext value(s)")), "{out}");
    let out = db.ok(&["corp", "encrypt-existing"]);
    assert!(out.contains("sealed 0 plaintext value(s)"), "idempotent: {out}");
    let list = db.ok(&["corp", "list"]);
    assert!(!list.contains("problem") && !list.contains(" plain "), "{list}");
    let mut all = db.texts("SELECT secret FROM corplist").await;
    all.extend(db.texts("SELECT prikey FROM corp_keys").await);
    for v in all {
        assert!(v.starts_with("enc:v1:"), "not sealed: {v:.40}");
    }
    db.finish().await;
}

const FILE_CORP: &str = "wwfilecorp00000001";
const OFF_CORP: &str = "wwfileoff000000002";
const TABLE_CORP: &str = "wwtablecorp0000003";

/// Every command works for a corp of the corps file and shows where each corp comes from:
/// `corp list`, `media stats` and `status` list the file's corps (a disabled one marked
/// disabled); `redecrypt` re-decrypts a file corp with the file's keys; `corp set-key` /
/// `enable` refuse a file corp with exit 2 and say what to write in the file (the `[[corp.key]]`
/// entry), after which `redecrypt` recovers its rows; `corp add` without `--timeout` takes
/// `[sdk] timeout`.
async fn file_corps(db: Db) {
    let dir = db.dir.path().to_path_buf();
    let key_file = |ver: u32| {
        let p = dir.join(format!("key{ver}.pem"));
        std::fs::write(&p, emulator::demo_private_key_pem(ver).unwrap()).unwrap();
        p.display().to_string()
    };
    let (k1, k2, k3) = (key_file(1), key_file(2), key_file(3));
    let corps = dir.join("corps.toml");
    // The file corp comes last, so that an appended [[corp.key]] belongs to it.
    std::fs::write(
        &corps,
        format!(
            "[[corp]]\ncorpid = \"{OFF_CORP}\"\nsecret = \"off-secret-1\"\nenabled = false\n[[corp.key]]\nver = 1\n\
             file = \"{k1}\"\n\n[[corp]]\ncorpid = \"{FILE_CORP}\"\nsecret = \"{SECRET}\"\nname = \"From file\"\n\
             limits = 100\n[[corp.key]]\nver = 1\nfile = \"{k1}\"\n[[corp.key]]\nver = 2\nfile = \"{k2}\"\n"
        ),
    )
    .unwrap();
    db.set_config(&format!(
        "[sdk]\nlibrary = \"emulator\"\ntimeout = \"7s\"\n[media]\nenabled = false\n[corps]\nfile = \"{}\"\n",
        corps.display()
    ));
    let secret = db.secret_file();
    let out = db.ok(&["corp", "add", "--corpid", TABLE_CORP, "--secret-file", &secret]);
    assert!(out.contains("timeout 7s"), "[sdk] timeout is the default: {out}");
    assert_eq!(
        db.int(&format!("SELECT CAST(timeout AS SIGNED INTEGER) FROM corplist WHERE corpid = '{TABLE_CORP}'")).await,
        7
    );
    db.expect(&["corp", "add", "--corpid", FILE_CORP, "--secret-file", &secret], 2);

    let list = db.ok(&["corp", "list"]);
    let line = |corp: &str| {
        list.lines().find(|l| l.starts_with(corp)).unwrap_or_else(|| panic!("{corp}:\n{list}")).to_string()
    };
    let (file, off, table) = (line(FILE_CORP), line(OFF_CORP), line(TABLE_CORP));
    assert!(file.contains(" file ") && file.contains("enabled") && file.contains("From file"), "{list}");
    assert!(file.contains("v1=sha256:") && file.contains("v2=sha256:") && !file.contains("v3="), "{list}");
    assert!(off.contains(" file ") && off.contains("disabled"), "{list}");
    assert!(table.contains(" table ") && table.contains(" 7 "), "{list}");
    assert!(!list.contains(SECRET) && !list.contains("off-secret-1"), "{list}");

    // Ingest the file corp in-process, as `run` does: its version-3 rows are undecryptable.
    let mut toml =
        format!("seed = 11\n[[corp]]\ncorpid = \"{FILE_CORP}\"\nsecret = \"{SECRET}\"\nrecords = {RECORDS}\n");
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver).unwrap();
        toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
    }
    toml.push_str("[corp.faults]\ncorrupt_rate = 0.0\nchat_rc_rate = 0.0\n");
    let emu = Arc::new(emulator::Emulator::new(toml::from_str(&toml).unwrap()).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let store = db.store().await;
    let sources = Sources { file: Some(corps.clone()), ..Sources::default() };
    let pipeline = Pipeline::start(store, sdk, sources, &pipeline_config()).unwrap();
    let until = Instant::now() + Duration::from_secs(180);
    let id = CorpId::new(FILE_CORP).unwrap();
    loop {
        let snap = pipeline.stats.snapshot();
        if snap.get(&id).is_some_and(|s| s.cursor >= RECORDS) {
            break;
        }
        assert!(Instant::now() < until, "not ingested: {snap:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.shutdown().await;
    let v3 = emu.truth(FILE_CORP).iter().filter(|t| t.publickey_ver == 3).count() as i64;
    assert!(v3 > 0);
    let table_name = format!("message_{FILE_CORP}");
    let undecryptable =
        format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table_name} WHERE decrypt_error IS NOT NULL");
    assert_eq!(db.int(&undecryptable).await, v3);

    // redecrypt reads the file's keys (before: "no corp … in corplist", exit 2).
    let out = db.ok(&["redecrypt", "--corp", FILE_CORP]);
    assert!(out.contains(&format!("recovered 0, still undecryptable {v3}")), "{out}");
    // set-key and enable refuse a file corp and say what to write in the file.
    let out = db.expect(&["corp", "set-key", FILE_CORP, "--ver", "3", "--key-file", &k3], 2);
    assert!(out.contains("corps file") && out.contains(&corps.display().to_string()), "{out}");
    let snippet = format!("[[corp.key]]\nver = 3\nfile = \"{k3}\"\n");
    assert!(out.contains(&snippet), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    let out = db.expect(&["corp", "disable", FILE_CORP], 2);
    assert!(out.contains("enabled = false"), "{out}");
    db.expect(&["corp", "rotate-secret", FILE_CORP, "--secret-file", &secret], 2);
    // The operator adds the entry; redecrypt recovers every row.
    let mut text = std::fs::read_to_string(&corps).unwrap();
    text.push_str(&snippet);
    std::fs::write(&corps, text).unwrap();
    let out = db.ok(&["redecrypt", "--corp", FILE_CORP]);
    assert!(out.contains(&format!("recovered {v3}, still undecryptable 0")), "{out}");
    assert_eq!(db.int(&undecryptable).await, 0);

    // media stats and status list every configured corp with its source.
    let stats = db.ok(&["media", "stats"]);
    for (corp, source) in [(FILE_CORP, "file"), (OFF_CORP, "file"), (TABLE_CORP, "table")] {
        assert!(stats.lines().any(|l| l.starts_with(corp) && l.contains(source)), "{corp} {source}:\n{stats}");
    }
    let out = db.cli(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = |corp: &str| {
        status.lines().find(|l| l.starts_with(corp)).unwrap_or_else(|| panic!("{corp}:\n{status}")).to_string()
    };
    assert!(row(FILE_CORP).contains(" file "), "{status}");
    assert!(row(OFF_CORP).contains(" file ") && row(OFF_CORP).contains("disabled"), "{status}");
    assert!(row(TABLE_CORP).contains(" table "), "{status}");
    db.finish().await;
}

per_db!(
    add_list_enable_disable,
    redecrypt_recovers_rows_after_set_key => redecrypt_after_set_key,
    secrets_and_keys_sealed_at_rest => secrets_at_rest,
    every_command_works_for_corps_of_the_corps_file => file_corps,
);
