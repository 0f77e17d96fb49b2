//! Records larger than the database allows, through the real pipeline: the emulator's
//! `libWeWorkFinanceSdk_C.so` loaded with libloading → SDK pool → decrypt pool → DB writer.
//!
//! A corp of 3,000 normal records plus a ~30 MB `chatrecord` nested 1,000 levels deep (seq 1,500)
//! and a 5 MB text (seq 2,200), on MariaDB at its default `max_allowed_packet` (16 MiB; the test
//! checks it and never raises it) and on SQLite: every record stored once, the cursor at the end,
//! no write ever failing (a page the server refuses would be re-fetched in a loop: the corp
//! stalled at the big record with `Broken pipe` before the store cut batches by bytes and moved
//! oversized values into `message_part`), and both big records read back through
//! [`Store::read_message`] byte-identical to the emulator's ground truth.
//!
//! The emulator library reads its scenario once per process from `WWF_EMULATOR_SCENARIO`, so
//! both tests share one scenario with one corp each.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::pipeline::{config, keyring, open, Db};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::{CorpSpec, Sources};
use wework_msgaudit::sdk::dynlib::VendorSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::CorpId;

const MYSQL_CORP: &str = "wwbigrecmysql00001";
const SQLITE_CORP: &str = "wwbigrecsqlite0001";
const RECORDS: u64 = 3000;
const CHATRECORD_SEQ: u64 = 1500;
const CHATRECORD_BYTES: u64 = 30 << 20;
const TEXT_SEQ: u64 = 2200;
const TEXT_BYTES: u64 = 5 << 20;

fn scenario_toml() -> String {
    let mut toml = String::from("seed = 11\n");
    for (i, corp) in [MYSQL_CORP, SQLITE_CORP].iter().enumerate() {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"s-{i}\"\nrecords = {RECORDS}\n"));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        toml.push_str(&format!(
            "[[corp.big_records]]\nseq = {CHATRECORD_SEQ}\nbytes = {CHATRECORD_BYTES}\nkind = \"chatrecord\"\n\
             depth = 1000\n[[corp.big_records]]\nseq = {TEXT_SEQ}\nbytes = {TEXT_BYTES}\nkind = \"text\"\n"
        ));
    }
    toml
}

/// The emulator library, its scenario written once and named in the environment before the
/// library's first call; and the same scenario in process, for the ground truth.
fn emulator_sdk() -> (Arc<VendorSdk>, Arc<emulator::Emulator>) {
    static SCENARIO: OnceLock<PathBuf> = OnceLock::new();
    let path = SCENARIO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("scenario.toml");
        std::fs::write(&path, scenario_toml()).unwrap();
        std::env::set_var("WWF_EMULATOR_SCENARIO", &path);
        path
    });
    // Loaded once for the process: a test that fails leaves its SDK threads running, and
    // unloading the library under them would crash the next test.
    static SDK: OnceLock<Arc<VendorSdk>> = OnceLock::new();
    let sdk = SDK.get_or_init(|| Arc::new(VendorSdk::load(common::emulator_so()).unwrap()));
    let truth = emulator::Emulator::new(emulator::Scenario::load(path).unwrap()).unwrap();
    (Arc::clone(sdk), Arc::new(truth))
}

fn spec(corp: &str, secret: &str) -> CorpSpec {
    CorpSpec::new(CorpId::new(corp).unwrap(), corp, Secret::new(secret), 1000, SdkTimeout::from_secs(30), keyring())
}

async fn big_records(db: Db, corp: &str, secret: &str) {
    let store = open(&db).await;
    let (sdk, emu) = emulator_sdk();
    let truth = emu.truth(corp);
    assert_eq!(truth.len() as u64, RECORDS);
    let chat_truth = &truth[CHATRECORD_SEQ as usize - 1];
    let text_truth = &truth[TEXT_SEQ as usize - 1];
    assert!(chat_truth.plaintext.len() as u64 >= CHATRECORD_BYTES && chat_truth.msgtype == "chatrecord");
    assert!(text_truth.plaintext.len() as u64 >= TEXT_BYTES && text_truth.msgtype == "text");

    let started = Instant::now();
    let pipeline = Pipeline::start(
        Arc::clone(&store),
        sdk,
        Sources { fixed: vec![spec(corp, secret)], ..Sources::default() },
        &config(),
    )
    .unwrap();
    let id = CorpId::new(corp).unwrap();
    let mut failures = 0;
    loop {
        let snap = pipeline.stats.snapshot();
        let s = snap.get(&id).cloned().unwrap_or_default();
        failures = failures.max(s.consecutive_failures);
        if s.cursor >= RECORDS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{corp}: stalled at cursor {} after {:?} ({} failures in a row): {:?}",
            s.cursor,
            started.elapsed(),
            s.consecutive_failures,
            s.last_error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    pipeline.shutdown().await;
    assert_eq!(failures, 0, "{corp}: no write failed, nothing was retried");

    // Every record once, the cursor at the end; the normal ones exactly as sent (the two big
    // ones are compared below, whole).
    let table = format!("message_{corp}");
    let count = db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table}"), None).await;
    assert_eq!(count as u64, RECORDS, "{corp}: one row per record");
    let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(corp)).await;
    assert_eq!(cursor as u64, RECORDS);
    let small_ok = db
        .int(
            &format!(
                "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table} WHERE seq NOT IN ({CHATRECORD_SEQ}, {TEXT_SEQ}) \
                 AND decrypt_error IS NULL AND LENGTH(msgdata) < 1000000"
            ),
            None,
        )
        .await;
    assert_eq!(small_ok as u64, RECORDS - 2, "{corp}: the normal records decoded and stored as they are");

    // The big ones come back whole, byte for byte.
    for t in [chat_truth, text_truth] {
        let row = store.read_message(&id, t.seq).await.unwrap().unwrap_or_else(|| panic!("seq {} missing", t.seq));
        assert_eq!(row.msgid, t.msgid);
        assert_eq!(row.msgtype, t.msgtype);
        assert_eq!(row.decrypt_error, None, "seq {}", t.seq);
        assert!(
            row.msgdata == t.plaintext,
            "seq {}: msgdata of {} bytes, truth {} bytes",
            t.seq,
            row.msgdata.len(),
            t.plaintext.len()
        );
    }
    let text = store.read_message(&id, TEXT_SEQ).await.unwrap().unwrap().text;
    assert!(text.len() as u64 >= TEXT_BYTES, "the 5 MB text column whole ({} bytes)", text.len());
    // A normal record reads back the same way.
    let normal = store.read_message(&id, 7).await.unwrap().unwrap();
    assert_eq!(normal.msgdata, truth[6].plaintext);

    common::report(&format!(
        "big records ({}): {RECORDS} records with a {} MB chatrecord and a {} MB text stored in {took:.1?}",
        store.dialect(),
        chat_truth.plaintext.len() >> 20,
        text_truth.plaintext.len() >> 20,
    ));
    db.finish().await;
}

#[test]
fn mariadb_at_the_default_packet_size_stores_a_30_mb_record_and_goes_on() {
    common::block_on(async {
        let Some(db) = Db::mysql().await else { return };
        let packet = db.int("SELECT CAST(@@global.max_allowed_packet AS SIGNED INTEGER)", None).await;
        assert!(packet <= 16 << 20, "the test needs the default max_allowed_packet (16 MiB), not {packet}");
        big_records(db, MYSQL_CORP, "s-0").await;
    });
}

#[test]
fn sqlite_stores_a_30_mb_record_and_goes_on() {
    common::block_on(async { big_records(Db::sqlite().await, SQLITE_CORP, "s-1").await });
}
