//! Content rules (src/rules) on SQLite and MariaDB:
//!
//! (a) hits are written in the batch's transaction: a batch that fails after its hits leaves no
//!     hit (and no row); a batch written again adds no hit; the record-by-record isolation path
//!     keeps the hits of a refused record (under its quarantined msgid);
//! (b) revoke rules are decided against the page and the committed messages (within N s only);
//! (c) the pipeline end to end: emulator corps with keyword, behaviour (card, revoke) and
//!     built-in rules; the hits stored at ingest are exactly those a backfill over the stored
//!     history finds, `--write` then stores none again, and `rule_hits_total` counts them;
//! (d) the rule set is swapped live by the reloader (rules.toml edited, a rule_def row added);
//! (e) `rule add | list | test | remove` through the binary (count, samples, `--write` twice).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cli_db::CliDb;
use common::pipeline::{config, corpid, open, scenario, specs, wait_for, Db};
use wework_msgaudit::actors::{Pipeline, PipelineConfig};
use wework_msgaudit::corps::Sources;
use wework_msgaudit::rules::{self, parse_file, Live, RuleSet};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::store::{BatchHits, CorpId, Row, StoreError};

fn corp(s: &str) -> CorpId {
    CorpId::new(s).unwrap()
}

fn set(toml: &str) -> RuleSet {
    RuleSet::compile(&parse_file(std::path::Path::new("rules.toml"), toml).unwrap().rules, 1 << 20).unwrap()
}

fn text_row(seq: u64, msgid: &str, content: &str) -> Row {
    let msgdata = serde_json::json!({"msgid": msgid, "action": "send", "from": "zhangsan", "tolist": ["wmCustomer"],
        "msgtime": seq * 1000, "msgtype": "text", "text": {"content": content}})
    .to_string();
    Row {
        msgid: msgid.into(),
        seq,
        action: "send".into(),
        msgfrom: "zhangsan".into(),
        tolist: "wmCustomer".into(),
        msgtype: "text".into(),
        msgtime: seq * 1000,
        text: content.into(),
        msgdata,
        ..Row::default()
    }
}

fn revoke_row(seq: u64, msgid: &str, pre: &str, at_ms: u64) -> Row {
    let msgdata = serde_json::json!({"msgid": msgid, "action": "recall", "from": "zhangsan", "tolist": ["wmCustomer"],
        "msgtime": at_ms, "msgtype": "revoke", "revoke": {"pre_msgid": pre}})
    .to_string();
    Row {
        msgid: msgid.into(),
        seq,
        action: "recall".into(),
        msgfrom: "zhangsan".into(),
        tolist: "wmCustomer".into(),
        msgtype: "revoke".into(),
        msgtime: at_ms,
        msgdata,
        ..Row::default()
    }
}

fn evaluate(set: &RuleSet, c: &CorpId, rows: &[Row]) -> BatchHits {
    let mut hits = BatchHits::default();
    for r in rows {
        set.evaluate(c.as_str(), r, &mut hits);
    }
    hits
}

async fn hit_count(db: &Db, c: &CorpId) -> i64 {
    db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM rule_hit WHERE corpid = ?", Some(c.as_str())).await
}

async fn exec(db: &Db, sql: &str) {
    if db.name() == "sqlite" {
        let p = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&p).await.unwrap();
    } else {
        let p = sqlx::MySqlPool::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&p).await.unwrap();
    }
}

/// (a) The hits live and die with their batch.
async fn hits_are_written_in_the_batch_transaction(db: Db) {
    let store = open(&db).await;
    let c = corp("wwrulesbatch");
    let s = set("[[rule]]\nname = \"transfer\"\nkeywords = [\"私下转账\"]\n\
                 [[rule]]\nname = \"phone\"\nbuiltin = [\"phone\"]\n");
    let rows = vec![
        text_row(1, "m1", "我们私下转账吧"),
        text_row(2, "m2", "电话13812345678"),
        text_row(3, "m3", "你好"),
        text_row(4, "m4", "私下转账，电话13900001111"),
    ];
    let hits = evaluate(&s, &c, &rows);
    assert_eq!(hits.hits.len(), 4, "{hits:?}");

    // A batch whose transaction fails after the hits (the cursor table is gone) leaves none.
    store.write_batch(&c, &[], &[], 0).await.unwrap();
    exec(&db, "ALTER TABLE corp_cursor RENAME TO corp_cursor_away").await;
    let err = store.write_batch_with_hits(&c, &rows, &[], &hits, 4, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    assert_eq!(hit_count(&db, &c).await, 0, "a failed batch leaves no hit");
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_wwrulesbatch", None).await, 0);
    exec(&db, "ALTER TABLE corp_cursor_away RENAME TO corp_cursor").await;

    // Committed: every hit once; the same batch again (a retry, a re-pull) adds none.
    store.write_batch_with_hits(&c, &rows, &[], &hits, 4, None).await.unwrap();
    assert_eq!(hit_count(&db, &c).await, 4);
    store.write_batch_with_hits(&c, &rows, &[], &hits, 4, None).await.unwrap();
    assert_eq!(hit_count(&db, &c).await, 4, "a replayed batch adds no hit");
    let stored = store.rule_hits(Some(&c), Some("transfer"), 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    let m4 = stored.iter().find(|h| h.hit.msgid == "m4").unwrap();
    assert_eq!((m4.hit.kind.as_str(), m4.hit.matched.as_str(), m4.alert_state), ("keyword", "私下转账", 0));
    assert_eq!(m4.hit.conversation, "pair:wmCustomer|zhangsan");
    assert_eq!(m4.hit.msgtime, 4000);

    // The isolation path: a record the database refuses (msgid too long) is stored quarantined
    // and its hit stays, under the quarantined msgid.
    let mut bad = text_row(5, &"x".repeat(200), "私下转账");
    bad.msgdata = bad.msgdata.replace(&"x".repeat(200), "long");
    let good = text_row(6, "m6", "私下转账");
    let batch = vec![bad, good];
    let hits = evaluate(&s, &c, &batch);
    assert_eq!(hits.hits.len(), 2);
    let err = store.write_batch_with_hits(&c, &batch, &[], &hits, 6, None).await.unwrap_err();
    assert!(!err.is_retryable());
    wework_msgaudit::store::write_isolating(store.as_ref(), &c, &batch, &[], &hits, 6, None).await.unwrap();
    let ids: Vec<String> =
        store.rule_hits(Some(&c), Some("transfer"), 10).await.unwrap().into_iter().map(|h| h.hit.msgid).collect();
    assert!(ids.contains(&"seq-5".to_string()) && ids.contains(&"m6".to_string()), "{ids:?}");
    assert_eq!(hit_count(&db, &c).await, 6);
    db.finish().await;
}

/// (b) A revoke within N s of sending hits; a later one does not; the message may be in an
/// earlier (committed) batch or in the same page.
async fn revokes_within_n_seconds(db: Db) {
    let store = open(&db).await;
    let c = corp("wwrulesrevoke");
    let s = set("[[rule]]\nname = \"quick\"\nbehaviour = [\"revoke\"]\nrevoke_within = \"30s\"\n");
    store.write_batch(&c, &[text_row(1, "sent1", "先发的"), text_row(2, "sent2", "后发的")], &[], 2).await.unwrap();
    // sent1 at 1 s: revoked at 20 s (19 s later: hit); sent2 at 2 s revoked at 60 s (no hit).
    let page = vec![
        revoke_row(3, "rv1", "sent1", 20_000),
        revoke_row(4, "rv2", "sent2", 60_000),
        text_row(5, "sent5", "同页"),
        revoke_row(6, "rv5", "sent5", 5_000 + 29_000),
        revoke_row(7, "rvx", "unknown", 8_000),
    ];
    let mut hits = evaluate(&s, &c, &page);
    assert_eq!(hits.revokes.len(), 4);
    rules::resolve_revokes(store.as_ref(), &c, &page, &mut hits).await.unwrap();
    assert!(hits.revokes.is_empty());
    let mut got: Vec<(String, String)> = hits.hits.iter().map(|h| (h.msgid.clone(), h.matched.clone())).collect();
    got.sort();
    assert_eq!(got, [("rv1".to_string(), "sent1".to_string()), ("rv5".to_string(), "sent5".to_string())]);
    let rv1 = hits.hits.iter().find(|h| h.msgid == "rv1").unwrap();
    assert_eq!(rv1.context, "revoked 19 s after sending: 先发的");
    store.write_batch_with_hits(&c, &page, &[], &hits, 7, None).await.unwrap();
    assert_eq!(hit_count(&db, &c).await, 2);
    // The store resolves unresolved checks in its own transaction the same way (backfill).
    let checks = evaluate(&s, &c, &page);
    assert_eq!(store.resolve_revokes(&c, &checks.revokes).await.unwrap().len(), 2);
    assert_eq!(store.insert_rule_hits(&c, &checks).await.unwrap(), 0, "already stored");
    db.finish().await;
}

const PIPELINE_RULES: &str = "[[rule]]\nname = \"price\"\nkeywords = [\"报价\", \"优惠\"]\n\
    [[rule]]\nname = \"contract\"\nkeywords = [\"合同\"]\nmsgtypes = [\"text\"]\n\
    [[rule]]\nname = \"cards\"\nbehaviour = [\"card\"]\n\
    [[rule]]\nname = \"quick_revoke\"\nbehaviour = [\"revoke\"]\nrevoke_within = \"1h\"\n\
    [[rule]]\nname = \"mail\"\nbuiltin = [\"email\"]\n";

/// (c) Ingest with rules = backfill over what was stored.
async fn pipeline_hits_equal_the_backfill(db: Db) {
    const RECORDS: u64 = 1500;
    let store = open(&db).await;
    let emu = Arc::new(emulator::Emulator::new(scenario(2, &[], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let live = Live::new(set(PIPELINE_RULES));
    let cfg = PipelineConfig { rules: live.clone(), ..config() };
    // Small pages: revokes whose message is in an earlier page are common.
    let pipeline =
        Pipeline::start(Arc::clone(&store), sdk, Sources { fixed: specs(2, 37), ..Sources::default() }, &cfg).unwrap();
    let targets: Vec<(String, u64)> = (0..2).map(|i| (corpid(i), RECORDS)).collect();
    wait_for(&pipeline, &targets, Duration::from_secs(300)).await;
    let counted = pipeline.stats.rule_hits.snapshot();
    pipeline.shutdown().await;
    let mut total = 0;
    for i in 0..2 {
        let c = corp(&corpid(i));
        let stored = hit_count(&db, &c).await;
        let b = rules::backfill(store.as_ref(), &live.current(), &c, None, false, 3).await.unwrap();
        assert_eq!(b.scanned, RECORDS);
        assert_eq!(stored as u64, b.hits, "{c}: hits stored at ingest = hits of the backfill");
        let again = rules::backfill(store.as_ref(), &live.current(), &c, None, true, 0).await.unwrap();
        assert_eq!(again.written, 0, "{c}: nothing missing, nothing twice");
        for rule in ["price", "contract", "cards", "quick_revoke"] {
            let sql =
                format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM rule_hit WHERE corpid = ? AND rule = '{rule}'");
            let n = db.int(&sql, Some(c.as_str())).await;
            assert!(n > 0, "{c}: no hit of {rule}");
        }
        total += stored as u64;
    }
    assert_eq!(counted.values().sum::<u64>(), total, "rule_hits_total: {counted:?}");
    eprintln!("[{}] {total} hits in 2 × {RECORDS} records: {counted:?}", db.name());
    db.finish().await;
}

/// (d) The reloader swaps the rule set when rules.toml changes or a rule_def row appears; an
/// invalid edit keeps the rules in force.
async fn the_reloader_swaps_rules_live(db: Db) {
    let store = open(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, "[[rule]]\nname = \"one\"\nkeywords = [\"a\"]\n").unwrap();
    let src = rules::Sources { file: Some(file.clone()), store: Some(Arc::clone(&store)), regex_size_limit: 0 };
    let live = Live::default();
    let (kick, kicks) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = rules::spawn_reloader(src, live.clone(), Duration::from_secs(3600), kicks, stop.clone());
    let names = |live: &Live| {
        let mut v: Vec<String> = live.current().names().map(str::to_string).collect();
        v.sort();
        v
    };
    let wait = |want: Vec<&'static str>| {
        let live = live.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(30);
            while names(&live) != want {
                assert!(Instant::now() < until, "rules {:?}, want {want:?}", names(&live));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait(vec!["one"]).await;
    // An edit of the file (written elsewhere and renamed over it, as editors do).
    let tmp = dir.path().join(".rules.toml.tmp");
    std::fs::write(
        &tmp,
        "[[rule]]\nname = \"one\"\nkeywords = [\"a\"]\n[[rule]]\nname = \"two\"\nbuiltin = [\"phone\"]\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    wait(vec!["one", "two"]).await;
    // An invalid edit: the rules in force stay.
    std::fs::write(&file, "[[rule]]\nname = \"broken\"\nregex = [\"(\"]\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(names(&live), ["one", "two"]);
    // A rule_def row (picked up at the next poll; SIGHUP's kick here).
    std::fs::write(&file, "[[rule]]\nname = \"one\"\nkeywords = [\"a\"]\n").unwrap();
    store.rule_def_put("three", "keywords = [\"c\"]", true).await.unwrap();
    let _ = kick.send(());
    wait(vec!["one", "three"]).await;
    stop.cancel();
    task.await.unwrap();
    db.finish().await;
}

per_db!(
    tokio: hits_are_written_in_the_batch_transaction,
    revokes_within_n_seconds,
    the_reloader_swaps_rules_live,
);
per_db!(pipeline_hits_equal_the_backfill);

/// (e) The CLI.
async fn cli_rule_add_list_test_remove(db: CliDb) {
    let store = wework_msgaudit::store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let c = corp("wwrulescli");
    let rows: Vec<Row> = (1..=20)
        .map(|i| text_row(i, &format!("c{i}"), if i % 4 == 0 { "请私下转账给我" } else { "普通消息" }))
        .collect();
    store.write_batch(&c, &rows, &[], 20).await.unwrap();
    db.write("config.toml", "[corps]\ntable = true\n[rules]\nregex_size_limit = 10000\n");
    db.write("rules.toml", "[[rule]]\nname = \"file_rule\"\nbuiltin = [\"phone\"]\n");
    db.write("bad.toml", "keywords = [\"a\"]\nregex = [\"\\\\w{1000}\"]\n");

    let out = db.expect_in(&["rule", "add", "transfer", "--body", "keywords = [\"私下转账\"]"], "", 0);
    assert!(out.contains("added rule transfer"), "{out}");
    let out = db.expect_in(&["rule", "add", "huge", "--file", db.path("bad.toml").to_str().unwrap()], "", 2);
    assert!(out.contains("regex[1]") && out.contains("size limit"), "{out}");
    let out = db.expect_in(&["rule", "add", "typo", "--body", "keywrds = [\"a\"]"], "", 2);
    assert!(out.contains("unknown field `keywrds`"), "{out}");
    let out = db.expect_in(&["rule", "list"], "", 0);
    assert!(out.contains("file_rule\tfile\tenabled\tphone"), "{out}");
    assert!(out.contains("transfer\ttable\tenabled\t1 keywords"), "{out}");
    assert!(!out.contains("huge"), "{out}");

    let out = db.expect_in(&["rule", "test", "transfer", "--corp", "wwrulescli", "--samples", "2"], "", 0);
    assert!(out.contains("wwrulescli: 5 hits in 20 records"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("  c")).count(), 2, "{out}");
    let out = db.expect_in(&["rule", "test", "transfer", "--corp", "wwrulescli", "--since", "16000"], "", 0);
    assert!(out.contains("wwrulescli: 2 hits in 20 records"), "{out}");
    assert_eq!(store.rule_hits(Some(&c), None, 100).await.unwrap().len(), 0, "no --write: nothing stored");
    let out = db.expect_in(&["rule", "test", "transfer", "--corp", "wwrulescli", "--write"], "", 0);
    assert!(out.contains("stored: 5 new hits"), "{out}");
    let out = db.expect_in(&["rule", "test", "transfer", "--corp", "wwrulescli", "--write"], "", 0);
    assert!(out.contains("stored: 0 new hits"), "{out}");
    assert_eq!(store.rule_hits(Some(&c), Some("transfer"), 100).await.unwrap().len(), 5);

    let out = db.expect_in(&["rule", "remove", "transfer"], "", 0);
    assert!(out.contains("removed rule transfer"), "{out}");
    db.expect_in(&["rule", "remove", "transfer"], "", 2);
    db.expect_in(&["rule", "test", "transfer"], "", 2);
    db.finish().await;
}

#[test]
fn cli_rule_sqlite() {
    common::block_on(cli_rule_add_list_test_remove(CliDb::sqlite("rules.db")));
}

#[test]
fn cli_rule_mysql() {
    common::block_on(async {
        if let Some(db) = CliDb::mysql("wwrulecli", "the rule CLI on MariaDB").await {
            cli_rule_add_list_test_remove(db).await;
        }
    });
}
