//! The storage layer against real databases: SQLite (a temp file) and MariaDB/MySQL.
//!
//! Every dialect-neutral test body runs on both (module `sqlite` and module `mysql`). MariaDB is
//! reached at `mysql://root@localhost/?socket=/run/mysqld/mysqld.sock` (override the base with
//! `WWF_TEST_MYSQL_URL`); each test creates its own database `wwt_<random>` and drops it at the
//! end. Unreachable MariaDB: a failure when `CI=true`, else a loud SKIPPED banner.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};
use wework_msgaudit::message::{MediaKind, MediaRef, Row};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{
    connect, BatchOutcome, CorpId, CorpRow, MediaItem, MysqlStore, SqliteStore, Store, StoreError, JAVA_UNDECRYPTABLE,
    MARKER_PREFIX,
};

/// Raw access to the test database, for set-up and checks the Store API does not offer.
enum Raw {
    My(sqlx::MySqlPool),
    Lite(sqlx::SqlitePool),
}

struct TestDb {
    store: Arc<dyn Store>,
    url: String,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database) to drop at the end.
    drop_db: Option<(String, String)>,
}

impl TestDb {
    async fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::My(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Raw::Lite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One integer (use `CAST(… AS SIGNED INTEGER)`, valid in both dialects).
    async fn int(&self, sql: &str) -> Option<i64> {
        match &self.raw {
            Raw::My(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn text(&self, sql: &str) -> Option<String> {
        match &self.raw {
            Raw::My(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn count(&self, table: &str) -> i64 {
        self.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table}")).await.unwrap_or(0)
    }

    fn is_mysql(&self) -> bool {
        matches!(self.raw, Raw::My(_))
    }

    async fn finish(self) {
        match self.raw {
            Raw::My(p) => p.close().await,
            Raw::Lite(p) => p.close().await,
        }
        drop(self.store);
        if let Some((admin, db)) = self.drop_db {
            let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
            c.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await.unwrap();
        }
    }
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::Lite(sqlx::SqlitePool::connect(&url).await.unwrap());
    TestDb { store, url, raw, _dir: Some(dir), drop_db: None }
}

/// A fresh MariaDB database (`common::pipeline::fresh_mysql_database`), or `None` after a loud
/// SKIPPED banner when MariaDB is unreachable (a failure under `CI=true`).
async fn mysql_db() -> Option<TestDb> {
    let (url, admin, db) = match common::pipeline::fresh_mysql_database("wwt").await {
        Ok(created) => created,
        Err(why) => {
            common::skip_or_fail("the MariaDB store tests", &why);
            return None;
        }
    };
    let store = connect(&url, 4).await.unwrap();
    let raw = Raw::My(sqlx::MySqlPool::connect(&url).await.unwrap());
    let t = TestDb { store, url, raw, _dir: None, drop_db: Some((admin, db)) };
    Some(t)
}

fn corp(s: &str) -> CorpId {
    CorpId::new(s).unwrap()
}

fn row(seq: u64) -> Row {
    Row {
        msgid: format!("msgid-{seq}"),
        publickey_ver: 2,
        seq,
        action: "send".into(),
        msgfrom: "zhangsan".into(),
        tolist: "lisi,wangwu".into(),
        msgtype: "text".into(),
        msgtime: 1_700_000_000_000u64.wrapping_add(seq),
        text: format!("hello {seq}"),
        msgdata: format!(
            r#"{{"msgid":"msgid-{seq}","action":"send","msgtype":"text","text":{{"content":"hello {seq}"}}}}"#
        ),
        ..Default::default()
    }
}

fn image(item: u32, id: &str) -> MediaRef {
    MediaRef {
        item,
        kind: MediaKind::Image,
        sdkfileid: format!("SDKFILEID-{id}-{item}"),
        md5sum: Some("0123456789abcdef0123456789abcdef".into()),
        size: Some(12345),
        ext_hint: "jpg".into(),
        filename: None,
        play_length: None,
    }
}

fn media_of(rows: &[Row]) -> Vec<MediaItem> {
    rows.iter().map(|r| MediaItem { msgid: r.msgid.clone(), seq: r.seq, media: image(0, &r.msgid) }).collect()
}

// ---------------------------------------------------------------------------------------------
// Bodies shared by both dialects.

async fn migrate_twice(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    assert!(db.store.list_corps().await.unwrap().is_empty());
    assert_eq!(db.count("corp_cursor").await, 0);
    assert_eq!(db.count("corp_keys").await, 0);
}

async fn ensure_tables_and_reject_bad_corpids(db: &TestDb) {
    for bad in ["ww'; DROP TABLE x;--", "ww`x", "ww\"x", "", "a b", "ww-1"] {
        assert!(matches!(CorpId::new(bad), Err(StoreError::InvalidCorpId(_))), "{bad:?} accepted");
    }
    let bad = CorpRow {
        corpid: "ww'; DROP TABLE corplist;--".into(),
        secret: Secret::new("s"),
        corpname: String::new(),
        prikey: Secret::new(""),
        limits: 100,
        timeout: 5,
        status: 1,
        update: 0,
    };
    let err = db.store.upsert_corp(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidCorpId(_)) && !err.is_retryable());
    let c = corp("wwensure0001");
    db.store.ensure_corp_tables(&c).await.unwrap();
    db.store.ensure_corp_tables(&c).await.unwrap();
    assert_eq!(db.count("message_wwensure0001").await, 0);
    assert_eq!(db.count("media_wwensure0001").await, 0);
    assert_eq!(db.count("corplist").await, 0);
    // Idempotent across store instances too (fresh cache, tables already there).
    let again = connect(&db.url, 4).await.unwrap();
    again.ensure_corp_tables(&c).await.unwrap();
}

async fn write_batch_is_idempotent_and_cursor_only_moves_forward(db: &TestDb) {
    let c = corp("wwbatch0001");
    assert_eq!(db.store.cursor(&c).await.unwrap(), 0);
    let rows: Vec<Row> = (1..=10).map(row).collect();
    let media = media_of(&rows[..2]);
    let out = db.store.write_batch(&c, &rows, &media, 10).await.unwrap();
    assert_eq!(out, BatchOutcome { inserted_rows: 10, inserted_media: 2 });
    assert_eq!(db.store.cursor(&c).await.unwrap(), 10);
    // Replay: nothing new, cursor stays.
    let out = db.store.write_batch(&c, &rows, &media, 10).await.unwrap();
    assert_eq!(out, BatchOutcome::default());
    assert_eq!(db.count("message_wwbatch0001").await, 10);
    assert_eq!(db.count("media_wwbatch0001").await, 2);
    // An older cursor never moves it back.
    db.store.write_batch(&c, &rows[..3], &[], 3).await.unwrap();
    assert_eq!(
        db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = 'wwbatch0001'").await,
        Some(10)
    );
    // Same seq with another msgid: a re-pull, ignored. Same msgid under another seq (a broken or
    // hostile server): kept under a new msgid with the reason, and its media follow it; storing
    // the batch again changes nothing.
    let mut dup = row(11);
    dup.msgid = "msgid-1".into();
    let mut dup2 = row(1);
    dup2.msgid = "msgid-new".into();
    let dup_media = vec![MediaItem { msgid: "msgid-1".into(), seq: 11, media: image(0, "dup") }];
    let batch = [dup, dup2];
    let out = db.store.write_batch(&c, &batch, &dup_media, 11).await.unwrap();
    assert_eq!(out, BatchOutcome { inserted_rows: 1, inserted_media: 1 });
    let out = db.store.write_batch(&c, &batch, &dup_media, 11).await.unwrap();
    assert_eq!(out, BatchOutcome::default());
    assert_eq!(db.store.cursor(&c).await.unwrap(), 11);
    let t = "message_wwbatch0001";
    assert_eq!(db.text(&format!("SELECT msgid FROM {t} WHERE seq = 11")).await.as_deref(), Some("msgid-1~dup11"));
    assert_eq!(
        db.text(&format!("SELECT decrypt_error FROM {t} WHERE seq = 11")).await.as_deref(),
        Some("duplicate msgid msgid-1: first stored at seq 1, this record kept as msgid-1~dup11")
    );
    assert_eq!(db.text(&format!("SELECT msgid FROM {t} WHERE seq = 1")).await.as_deref(), Some("msgid-1"));
    assert_eq!(
        db.text("SELECT sdkfileid FROM media_wwbatch0001 WHERE msgid = 'msgid-1~dup11'").await.as_deref(),
        Some("SDKFILEID-dup-0")
    );
    // Stored values.
    assert_eq!(db.text(&format!("SELECT text FROM {t} WHERE seq = 7")).await.as_deref(), Some("hello 7"));
    assert_eq!(
        db.int(&format!("SELECT CAST(msgtime AS SIGNED INTEGER) FROM {t} WHERE seq = 7")).await,
        Some(1_700_000_000_007)
    );
    assert_eq!(db.int(&format!("SELECT CAST(publickey_ver AS SIGNED INTEGER) FROM {t} WHERE seq = 7")).await, Some(2));
    assert_eq!(
        db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {t} WHERE decrypt_error IS NULL")).await,
        Some(10)
    );
    let m = "media_wwbatch0001";
    assert_eq!(
        db.int(&format!("SELECT CAST(status AS SIGNED INTEGER) FROM {m} WHERE msgid = 'msgid-2'")).await,
        Some(1)
    );
    assert_eq!(db.text(&format!("SELECT kind FROM {m} WHERE msgid = 'msgid-2'")).await.as_deref(), Some("image"));
    assert_eq!(
        db.int(&format!("SELECT CAST(size AS SIGNED INTEGER) FROM {m} WHERE msgid = 'msgid-2'")).await,
        Some(12345)
    );
    assert_eq!(db.int(&format!("SELECT CAST(seq AS SIGNED INTEGER) FROM {m} WHERE msgid = 'msgid-2'")).await, Some(2));
    // An empty batch still moves the cursor (records that were all filtered out).
    db.store.write_batch(&c, &[], &[], 50).await.unwrap();
    assert_eq!(db.store.cursor(&c).await.unwrap(), 50);
}

async fn u64_max_seq_round_trips(db: &TestDb) {
    let c = corp("wwmaxseq");
    let mut r = row(u64::MAX);
    r.msgtime = u64::MAX;
    r.decrypt_error = Some("no key for publickey_ver 9".into());
    r.encrypt_random_key = Some("ERK".into());
    r.encrypt_chat_msg = Some("ECM".into());
    let media = vec![MediaItem { msgid: r.msgid.clone(), seq: u64::MAX, media: image(0, "max") }];
    let mut below = row(u64::MAX / 2 + 7); // above i64::MAX too
    below.msgid = "below".into();
    db.store.write_batch(&c, &[r, below, row(5)], &media, u64::MAX).await.unwrap();
    assert_eq!(db.store.cursor(&c).await.unwrap(), u64::MAX);
    db.store.write_batch(&c, &[], &[], 7).await.unwrap();
    db.store.write_batch(&c, &[], &[], u64::MAX - 1).await.unwrap();
    assert_eq!(db.store.cursor(&c).await.unwrap(), u64::MAX);
    // Without the cursor row, from MAX(seq) of the table (unsigned).
    db.exec("DELETE FROM corp_cursor").await;
    assert_eq!(db.store.cursor(&c).await.unwrap(), u64::MAX);
    let und = db.store.undecrypted(&c, 0, 10).await.unwrap();
    assert_eq!(und.len(), 1);
    assert_eq!(und[0].seq, u64::MAX);
    assert_eq!((und[0].encrypt_random_key.as_str(), und[0].encrypt_chat_msg.as_str()), ("ERK", "ECM"));
    // The cursor also moves forward from a small value past 2^63.
    let c2 = corp("wwmaxseq2");
    db.store.write_batch(&c2, &[], &[], 5).await.unwrap();
    db.store.write_batch(&c2, &[], &[], (1 << 63) + 1).await.unwrap();
    db.store.write_batch(&c2, &[], &[], 6).await.unwrap();
    assert_eq!(db.store.cursor(&c2).await.unwrap(), (1 << 63) + 1);
}

async fn long_text_and_emoji_round_trip(db: &TestDb) {
    let c = corp("wwemoji");
    let mut r = row(1);
    let unit = "中文😀🧧𠮷 mixed ASCII ";
    let mut text = String::new();
    while text.len() < 200 * 1024 {
        text.push_str(unit);
    }
    r.text = text.clone();
    r.msgdata = format!("{{\"text\":{{\"content\":{}}}}}", serde_json::to_string(&text).unwrap());
    r.msgfrom = "用户😀".into();
    r.roomid = "wr🧧room".into();
    let out = db.store.write_batch(&c, &[r.clone()], &[], 1).await.unwrap();
    assert_eq!(out.inserted_rows, 1);
    assert_eq!(db.text("SELECT text FROM message_wwemoji WHERE seq = 1").await.as_deref(), Some(text.as_str()));
    assert_eq!(db.text("SELECT msgdata FROM message_wwemoji WHERE seq = 1").await, Some(r.msgdata));
    assert_eq!(db.text("SELECT msgfrom FROM message_wwemoji WHERE seq = 1").await.as_deref(), Some("用户😀"));
    assert_eq!(db.text("SELECT roomid FROM message_wwemoji WHERE seq = 1").await.as_deref(), Some("wr🧧room"));
}

async fn batch_of_5000_rows(db: &TestDb) {
    let c = corp("wwbig");
    let rows: Vec<Row> = (1..=5000).map(row).collect();
    let media = media_of(&rows);
    let out = db.store.write_batch(&c, &rows, &media, 5000).await.unwrap();
    assert_eq!(out, BatchOutcome { inserted_rows: 5000, inserted_media: 5000 });
    assert_eq!(db.count("message_wwbig").await, 5000);
    assert_eq!(db.count("media_wwbig").await, 5000);
    assert_eq!(db.store.cursor(&c).await.unwrap(), 5000);
    let out = db.store.write_batch(&c, &rows, &media, 5000).await.unwrap();
    assert_eq!(out, BatchOutcome::default());
}

async fn failing_batch_leaves_nothing(db: &TestDb) {
    let c = corp("wwfail");
    let first: Vec<Row> = (1..=3).map(row).collect();
    db.store.write_batch(&c, &first, &[], 3).await.unwrap();
    // The store believes the media table exists (cached): the media insert fails mid-transaction.
    db.exec("DROP TABLE media_wwfail").await;
    let next: Vec<Row> = (4..=6).map(row).collect();
    let err = db.store.write_batch(&c, &next, &media_of(&next), 6).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    assert!(!err.is_retryable(), "a missing table is not transient: {err}");
    assert_eq!(db.count("message_wwfail").await, 3);
    assert_eq!(db.store.cursor(&c).await.unwrap(), 3);
    // Too long a msgid is refused, not truncated.
    let mut long = row(7);
    long.msgid = "x".repeat(129);
    let err = db.store.write_batch(&c, &[long], &[], 7).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidData(_)));
    assert_eq!(db.store.cursor(&c).await.unwrap(), 3);
}

async fn cursor_from_max_seq_when_no_cursor_row(db: &TestDb) {
    let c = corp("wwresume");
    let rows: Vec<Row> = (100..=105).map(row).collect();
    db.store.write_batch(&c, &rows, &[], 0).await.unwrap();
    assert_eq!(db.store.cursor(&c).await.unwrap(), 105);
    db.exec("DELETE FROM corp_cursor").await;
    assert_eq!(db.store.cursor(&c).await.unwrap(), 105);
    assert_eq!(db.store.cursor(&corp("wwnotable")).await.unwrap(), 0);
}

async fn corp_sources(db: &TestDb) {
    let mut a = CorpRow {
        corpid: "wwcorpa".into(),
        secret: Secret::new("SECRET-a-0123456789"),
        corpname: "企业A".into(),
        prikey: Secret::new("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
        limits: 1000,
        timeout: 10,
        status: 1,
        update: 1,
    };
    assert!(!format!("{a:?}").contains("SECRET-a") && !format!("{a:?}").contains("MIIE"));
    db.store.upsert_corp(&a).await.unwrap();
    a.corpname = "企业A2".into();
    db.store.upsert_corp(&a).await.unwrap();
    let b = CorpRow { corpid: "wwcorpb".into(), secret: Secret::new("sb"), update: 0, ..a.clone() };
    db.store.upsert_corp(&b).await.unwrap();
    let corps = db.store.list_corps().await.unwrap();
    assert_eq!(corps, vec![a.clone(), b.clone()]);
    db.store.set_corp_status(&corp("wwcorpa"), 0).await.unwrap();
    db.store.clear_update_flag(&corp("wwcorpa")).await.unwrap();
    let corps = db.store.list_corps().await.unwrap();
    assert_eq!((corps[0].status, corps[0].update), (0, 0));
    assert_eq!(corps[0].secret.expose(), "SECRET-a-0123456789");
    db.store.put_corp_key(&corp("wwcorpa"), 2, &Secret::new("k2")).await.unwrap();
    db.store.put_corp_key(&corp("wwcorpa"), 1, &Secret::new("k1")).await.unwrap();
    db.store.put_corp_key(&corp("wwcorpa"), 2, &Secret::new("k2b")).await.unwrap();
    let keys = db.store.list_corp_keys().await.unwrap();
    let keys: Vec<(String, u32, String)> = keys.into_iter().map(|(c, v, k)| (c, v, k.expose().to_string())).collect();
    assert_eq!(keys, vec![("wwcorpa".into(), 1, "k1".into()), ("wwcorpa".into(), 2, "k2b".into())]);
}

async fn redecrypt_flow(db: &TestDb) {
    let c = corp("wwredec");
    let mut rows: Vec<Row> = (1..=5).map(row).collect();
    for r in rows.iter_mut().filter(|r| r.seq % 2 == 0) {
        *r = Row {
            msgid: r.msgid.clone(),
            seq: r.seq,
            publickey_ver: 9,
            decrypt_error: Some("no private key for publickey_ver 9".into()),
            encrypt_random_key: Some(format!("erk{}", r.seq)),
            encrypt_chat_msg: Some(format!("ecm{}", r.seq)),
            ..Default::default()
        };
    }
    db.store.write_batch(&c, &rows, &[], 5).await.unwrap();
    let all = db.store.undecrypted(&c, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|u| u.seq).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!((all[0].publickey_ver, all[0].encrypt_chat_msg.as_str()), (9, "ecm2"));
    let page = db.store.undecrypted(&c, 0, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    let page2 = db.store.undecrypted(&c, page[0].id, 1).await.unwrap();
    assert_eq!(page2[0].seq, 4);
    // Decrypted now: a text row with an image.
    let mut fixed = row(2);
    fixed.publickey_ver = 9;
    fixed.msgtype = "image".into();
    fixed.sdkfield = "SDKFILEID-x".into();
    fixed.status = 1;
    db.store.replace_decrypted(&c, all[0].id, &fixed, &[image(0, "msgid-2"), image(1, "msgid-2")]).await.unwrap();
    let left = db.store.undecrypted(&c, 0, 100).await.unwrap();
    assert_eq!(left.iter().map(|u| u.seq).collect::<Vec<_>>(), vec![4]);
    let t = "message_wwredec";
    assert_eq!(
        db.int(&format!(
            "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {t} WHERE seq = 2 AND decrypt_error IS NULL \
             AND encrypt_random_key IS NULL AND encrypt_chat_msg IS NULL AND msgtype = 'image' AND status = 1"
        ))
        .await,
        Some(1)
    );
    assert_eq!(db.count("media_wwredec").await, 2);
    assert_eq!(
        db.int("SELECT CAST(MIN(seq) AS SIGNED INTEGER) FROM media_wwredec WHERE msgid = 'msgid-2'").await,
        Some(2)
    );
    let err = db.store.replace_decrypted(&c, 999_999, &fixed, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchRow { .. }));
}

/// `n` bytes of text (mixed ASCII and 3-byte characters, so that parts cut characters).
fn big_text(n: usize, salt: u64) -> String {
    let mut s = String::with_capacity(n + 64);
    let mut i = 0u64;
    while s.len() < n {
        s.push_str(&format!("{salt}:{i} 大记录 "));
        i += 1;
    }
    s
}

/// The parts stored for record `seq` of `c`.
async fn parts_of(db: &TestDb, c: &CorpId, seq: u64) -> i64 {
    db.int(&format!(
        "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_part WHERE corpid = '{}' AND seq = {seq}",
        c.as_str()
    ))
    .await
    .unwrap_or(0)
}

/// Rows larger than the database accepts in one packet (MariaDB: its default 16 MiB) are stored
/// in one batch with normal ones: their big values in `message_part`, a marker in the row, read
/// back whole; a re-pull changes nothing; an undecryptable record with a huge ciphertext is
/// re-decrypted through `undecrypted` / `replace_decrypted`.
async fn oversized_rows_are_stored_in_parts_and_read_back_whole(db: &TestDb) {
    let c = corp("wwbigrows");
    if db.is_mysql() {
        let packet = db.int("SELECT CAST(@@session.max_allowed_packet AS SIGNED INTEGER)").await.unwrap();
        assert_eq!(db.store.limits().packet as i64, packet, "read at connect");
        assert!(packet <= 16 << 20, "the test needs the default max_allowed_packet, not {packet}");
    } else {
        assert_eq!(db.store.limits().packet, 1_000_000_000);
    }
    let mut rows: Vec<Row> = (1..=60).map(row).collect();
    // 1 MiB each: many per batch, cut by bytes.
    for r in rows.iter_mut().take(30) {
        r.msgdata = big_text(1 << 20, r.seq);
    }
    rows[39].msgdata = big_text(20 << 20, 40);
    rows[44].text = big_text(5 << 20, 45);
    rows[44].msgdata = format!("{{\"text\":{{\"content\":\"{}\"}}}}", rows[44].text);
    rows[49] = Row {
        msgid: "msgid-50".into(),
        seq: 50,
        publickey_ver: 9,
        decrypt_error: Some("no private key for publickey_ver 9".into()),
        // Longer than MySQL's TEXT column: spilled rather than cut.
        encrypt_random_key: Some(big_text(70_000, 5000)),
        encrypt_chat_msg: Some(big_text(18 << 20, 50)),
        ..Default::default()
    };
    let out = db.store.write_batch(&c, &rows, &media_of(&rows[..5]), 60).await.unwrap();
    assert_eq!(out, BatchOutcome { inserted_rows: 60, inserted_media: 5 });
    assert_eq!(db.store.cursor(&c).await.unwrap(), 60);
    let t = c.message_table();
    let raw = db.text(&format!("SELECT msgdata FROM {t} WHERE seq = 40")).await.unwrap();
    assert!(raw.starts_with(MARKER_PREFIX) && raw.len() < 200, "a marker in the row: {raw}");
    assert!(parts_of(db, &c, 40).await >= 5, "20 MiB in parts of at most 4 MiB");
    assert_eq!(parts_of(db, &c, 1).await, 0, "1 MiB rows stay whole");
    for r in &rows {
        let back = db.store.read_message(&c, r.seq).await.unwrap().unwrap();
        assert!(back == *r, "seq {}: read back whole ({} bytes of msgdata)", r.seq, back.msgdata.len());
    }
    assert!(db.store.read_message(&c, 61).await.unwrap().is_none());
    // A re-pull: nothing new, nothing doubled.
    let parts_before = db.count("message_part").await;
    let again = db.store.write_batch(&c, &rows, &[], 60).await.unwrap();
    assert_eq!(again.inserted_rows, 0);
    assert_eq!(db.count("message_part").await, parts_before);
    // The huge ciphertext comes back for redecrypt, and the decrypted row replaces it.
    let und = db.store.undecrypted(&c, 0, 10).await.unwrap();
    assert_eq!(und.len(), 1);
    assert!(und[0].encrypt_chat_msg == *rows[49].encrypt_chat_msg.as_ref().unwrap(), "the ciphertext whole");
    assert!(und[0].encrypt_random_key == *rows[49].encrypt_random_key.as_ref().unwrap(), "the random key whole");
    let mut fixed = row(50);
    fixed.msgdata = big_text(10 << 20, 5050);
    db.store.replace_decrypted(&c, und[0].id, &fixed, &[]).await.unwrap();
    assert!(db.store.undecrypted(&c, 0, 10).await.unwrap().is_empty());
    assert!(db.store.read_message(&c, 50).await.unwrap().unwrap() == fixed);
    let kept = db
        .int(&format!(
            "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_part WHERE corpid = '{}' AND seq = 50 \
             AND col = 'encrypt_chat_msg'",
            c.as_str()
        ))
        .await;
    assert_eq!(kept, Some(0), "the old ciphertext's parts are gone");
}

/// The same code path at a small limit (64 KiB: statements of 16 KiB), on both dialects: rows cut
/// by bytes, a 100 KB value in 7 parts of 16 KiB, a marker-like text without parts read as it
/// is, and (MySQL) a value longer than its column type spilled instead of cut.
async fn a_small_packet_limit_cuts_statements_and_values(db: &TestDb) {
    let s: Arc<dyn Store> = if db.is_mysql() {
        Arc::new(MysqlStore::connect(&db.url, 8).await.unwrap().with_packet_limit(64 << 10))
    } else {
        Arc::new(SqliteStore::connect(&db.url, 4).await.unwrap().with_packet_limit(64 << 10))
    };
    assert_eq!(s.limits().packet, 64 << 10);
    assert_eq!(s.limits().statement_bytes(), 16 << 10);
    let c = corp("wwsmallpacket");
    let mut rows: Vec<Row> = (1..=500).map(row).collect();
    for r in &mut rows {
        r.msgdata = big_text(1000, r.seq);
    }
    rows[99].msgdata = big_text(100_000, 100);
    rows[199].msgdata = spill_lookalike();
    rows[299].sdkfield = big_text(70_000, 300);
    let out = s.write_batch(&c, &rows, &media_of(&rows), 500).await.unwrap();
    assert_eq!(out, BatchOutcome { inserted_rows: 500, inserted_media: 500 });
    assert_eq!(parts_of(db, &c, 100).await, 7);
    assert_eq!(parts_of(db, &c, 200).await, 0);
    assert_eq!(parts_of(db, &c, 300).await, 5, "sdkfield in parts: over the row limit");
    for r in &rows {
        assert!(s.read_message(&c, r.seq).await.unwrap().unwrap() == *r, "seq {}", r.seq);
    }
    // The database's own limit: the MySQL TEXT column (64 KiB) cannot take 70 KB, so the full
    // store spills it too; SQLite has no such limit.
    let full = corp("wwcolumncap");
    db.store.write_batch(&full, &rows[299..300], &[], 300).await.unwrap();
    assert_eq!(parts_of(db, &full, 300).await, i64::from(db.is_mysql()));
    assert!(db.store.read_message(&full, 300).await.unwrap().unwrap() == rows[299]);
}

/// A record whose text looks like a marker (no parts): read as it is.
fn spill_lookalike() -> String {
    wework_msgaudit::store::marker("msgdata", 5, 1)
}

async fn connect_schemes(db: &TestDb) {
    let err = connect("postgres://user:hunter2@host/db", 4).await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert!(!format!("{:?}", db.store).contains("hunter2"));
    let mem = connect("sqlite::memory:", 1).await.unwrap();
    mem.migrate().await.unwrap();
    mem.write_batch(&corp("wwmem"), &[row(1)], &[], 1).await.unwrap();
    assert_eq!(mem.cursor(&corp("wwmem")).await.unwrap(), 1);
    assert_eq!(db.store.dialect(), if db.is_mysql() { "mysql" } else { "sqlite" });
}

async fn leases_claim_renew_release_and_fence(db: &TestDb) {
    use wework_msgaudit::store::{Fence, StoreError};
    let s = &db.store;
    let c = corp("wwlease");
    assert_eq!(s.lease_heartbeat("a", 60_000).await.unwrap(), 1);
    assert_eq!(s.lease_heartbeat("b", 60_000).await.unwrap(), 2);
    // A claims; B cannot while A's lease runs.
    let ta = s.lease_claim(&c, "a", 60_000).await.unwrap().expect("free corp");
    assert_eq!(s.lease_claim(&c, "b", 60_000).await.unwrap(), None);
    let fa = Fence { holder: "a".into(), token: ta };
    assert_eq!(s.lease_renew_all("a", &[(c.clone(), ta)], 60_000).await.unwrap(), vec![("wwlease".to_string(), ta)]);
    s.write_batch_fenced(&c, &[row(1)], &[], 1, Some(&fa)).await.unwrap();
    // A's lease expires (ttl 1 ms) and B takes over with a higher token.
    assert_eq!(s.lease_renew_all("a", &[(c.clone(), ta)], 1).await.unwrap(), vec![("wwlease".to_string(), ta)]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let tb = s.lease_claim(&c, "b", 60_000).await.unwrap().expect("expired lease is claimable");
    assert!(tb > ta);
    let fb = Fence { holder: "b".into(), token: tb };
    // A, paused past its lease, cannot renew and cannot write: nothing of its batch lands.
    assert!(s.lease_renew_all("a", &[(c.clone(), ta)], 60_000).await.unwrap().is_empty());
    assert_eq!(s.lease_renew_all("b", &[(c.clone(), tb)], 60_000).await.unwrap(), vec![("wwlease".to_string(), tb)]);
    let err = s.write_batch_fenced(&c, &[row(2), row(3)], &[], 3, Some(&fa)).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(s.cursor(&c).await.unwrap(), 1);
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_wwlease").await, Some(1));
    s.write_batch_fenced(&c, &[row(2), row(3)], &[], 3, Some(&fb)).await.unwrap();
    assert_eq!(s.cursor(&c).await.unwrap(), 3);
    // A stale release is a no-op; B's release frees the corp; the history has every event.
    s.lease_release(&c, &fa).await.unwrap();
    assert_eq!(s.lease_claim(&c, "a", 60_000).await.unwrap(), None);
    s.lease_release(&c, &fb).await.unwrap();
    let tc = s.lease_claim(&c, "a", 60_000).await.unwrap().expect("released corp");
    assert!(tc > tb);
    let list = s.lease_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].holder.as_str(), list[0].token), ("a", tc));
    assert!(list[0].expires_in_ms > 50_000);
    assert_eq!(
        db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_lease_log WHERE corpid = 'wwlease'").await,
        Some(4),
        "claim a, claim b, release b, claim a"
    );
    s.lease_leave("b").await.unwrap();
    assert_eq!(s.lease_heartbeat("a", 60_000).await.unwrap(), 1);
}

/// A holder paused inside a batch transaction (its lease row locked, `FOR UPDATE`) must not
/// hold up the other instances' keepers: a claim of that corp answers "not now" at once instead
/// of waiting for the lock, and renewing other leases never touches the locked row. With a
/// blocking claim, a keeper stalled for the whole lock wait and its own leases expired (seen in
/// CI: the 3-instance test lost every lease after a SIGSTOP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_batch_never_blocks_the_lease_keepers() {
    use sqlx::{Connection, Executor};
    let Some(db) = mysql_db().await else { return };
    db.store.migrate().await.unwrap();
    let s = &db.store;
    let (x, y) = (corp("wwpausedx"), corp("wwpausedy"));
    assert!(s.lease_claim(&x, "a", 300).await.unwrap().is_some());
    let token_y = s.lease_claim(&y, "b", 60_000).await.unwrap().unwrap();
    // "a" is paused in the middle of a batch: the fence row of x stays locked.
    let mut paused = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    paused.execute("BEGIN").await.unwrap();
    paused.execute("SELECT holder FROM corp_lease WHERE corpid = 'wwpausedx' FOR UPDATE").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // a's lease of x has expired
    let t0 = Instant::now();
    assert_eq!(s.lease_claim(&x, "b", 60_000).await.unwrap(), None, "x is locked: not now");
    let renewed = s.lease_renew_all("b", &[(y.clone(), token_y)], 60_000).await.unwrap();
    assert_eq!(renewed, vec![("wwpausedy".to_string(), token_y)]);
    // The lock wait of this daemon's connections is 15 s: far below means nothing waited.
    assert!(t0.elapsed() < Duration::from_secs(5), "the keeper waited {:?}", t0.elapsed());
    // Once the paused transaction ends, x is claimable.
    paused.execute("ROLLBACK").await.unwrap();
    assert!(s.lease_claim(&x, "b", 60_000).await.unwrap().is_some());
    db.finish().await;
}

macro_rules! both_dialects {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite_db().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::mysql_db().await else { return };
                    db.store.migrate().await.unwrap();
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

both_dialects!(
    migrate_twice,
    ensure_tables_and_reject_bad_corpids,
    write_batch_is_idempotent_and_cursor_only_moves_forward,
    u64_max_seq_round_trips,
    long_text_and_emoji_round_trip,
    batch_of_5000_rows,
    failing_batch_leaves_nothing,
    cursor_from_max_seq_when_no_cursor_row,
    corp_sources,
    redecrypt_flow,
    connect_schemes,
    leases_claim_renew_release_and_fence,
    oversized_rows_are_stored_in_parts_and_read_back_whole,
    a_small_packet_limit_cuts_statements_and_values,
);

// ---------------------------------------------------------------------------------------------
// The Java upgrade (MySQL only: the Java version only wrote MySQL).

const JAVA_CORP: &str = "ww0123456789abcdef";

async fn java_db() -> Option<TestDb> {
    let db = mysql_db().await?;
    db.exec(include_str!("fixtures/java_schema.sql")).await;
    db.exec(
        "INSERT INTO corplist (corpid, secret, corpname, prikey) \
         VALUES ('ww0123456789abcdef', 'javasecret', 'Java corp', 'MIIEvQIBADANBg')",
    )
    .await;
    let t = format!("message_{JAVA_CORP}");
    let md = r#"{"md5sum":"0123456789abcdef0123456789abcdef","filesize":100,"sdkfileid":"SDKF1"}"#;
    let voice =
        r#"{"md5sum":"fedcba9876543210fedcba9876543210","voice_size":2000,"play_length":3,"sdkfileid":"SDKF2"}"#;
    db.exec(&format!(
        "INSERT INTO `{t}` (id, msgid, publickey_ver, seq, action, msgfrom, tolist, msgtype, msgtime, text, sdkfield, \
         msgdata, status, media_code, media_path, roomid) VALUES \
         (1, 'm1', 1, 10, 'send', 'a', 'b', 'text', 1700000000001, 'hi', '', '{{}}', 1, 0, '', ''), \
         (2, 'm1', 1, 10, 'send', 'a', 'b', 'text', 1700000000001, 'hi', '', '{{}}', 1, 0, '', ''), \
         (3, 'm3', 1, 11, 'send', 'a', 'b', 'text', 1700000000002, '解密失败', '', '', 1, 0, '', ''), \
         (4, 'm4', 1, 12, 'send', 'a', 'b', 'image', 1700000000003, '', 'SDKF1', '{md}', 1, 1, '/msgfile/{JAVA_CORP}/12.png', 'r1'), \
         (5, 'm5', 1, 13, 'send', 'a', 'b', 'voice', 1700000000004, '', 'SDKF2', '{voice}', 1, 0, '', 'r1'), \
         (6, 'm6', 1, 14, 'send', 'a', 'b', 'text', 1700000000005, 'bye😀', '', '{{}}', 1, NULL, '', '')"
    ))
    .await;
    Some(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_upgrade_from_java_schema() {
    let Some(db) = java_db().await else { return };
    let c = corp(JAVA_CORP);
    let t = format!("message_{JAVA_CORP}");
    let m = format!("media_{JAVA_CORP}");
    // corplist adopted in place: the Java row is read, corpid widened.
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    // Resume point straight from the Java table (signed seq, no cursor row), before any upgrade.
    assert_eq!(db.store.cursor(&c).await.unwrap(), 14);
    let corps = db.store.list_corps().await.unwrap();
    assert_eq!(corps.len(), 1);
    assert_eq!(
        (
            corps[0].corpid.as_str(),
            corps[0].secret.expose(),
            corps[0].limits,
            corps[0].timeout,
            corps[0].status,
            corps[0].update
        ),
        (JAVA_CORP, "javasecret", 100, 5, 1, 0)
    );
    assert_eq!(
        db.int(
            "SELECT CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED INTEGER) FROM information_schema.COLUMNS \
                WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'corplist' AND COLUMN_NAME = 'corpid'"
        )
        .await,
        Some(64)
    );
    let long = CorpRow { corpid: "w".repeat(40), ..corps[0].clone() };
    db.store.upsert_corp(&long).await.unwrap();

    db.store.ensure_corp_tables(&c).await.unwrap();
    let check = |sql: String| {
        let db = &db;
        async move { db.int(&sql).await }
    };
    // Duplicates gone, lowest id kept.
    assert_eq!(db.count(&t).await, 5);
    assert_eq!(check(format!("SELECT CAST(MIN(id) AS SIGNED INTEGER) FROM `{t}` WHERE msgid = 'm1'")).await, Some(1));
    // Statuses.
    for (id, status) in [(1, 0), (3, 0), (4, 3), (5, 1), (6, 0)] {
        assert_eq!(
            check(format!("SELECT CAST(status AS SIGNED INTEGER) FROM `{t}` WHERE id = {id}")).await,
            Some(status),
            "status of row {id}"
        );
    }
    assert_eq!(
        db.text(&format!("SELECT decrypt_error FROM `{t}` WHERE id = 3")).await.as_deref(),
        Some(JAVA_UNDECRYPTABLE)
    );
    assert_eq!(
        check(format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM `{t}` WHERE decrypt_error IS NOT NULL")).await,
        Some(1)
    );
    assert_eq!(
        db.text(&format!("SELECT media_path FROM `{t}` WHERE id = 4")).await.as_deref(),
        Some("/msgfile/ww0123456789abcdef/12.png")
    );
    assert_eq!(db.text(&format!("SELECT text FROM `{t}` WHERE id = 6")).await.as_deref(), Some("bye😀"));
    // Media items for the Java media rows: done one with its path, pending one to download.
    assert_eq!(db.count(&m).await, 2);
    assert_eq!(
        check(format!("SELECT CAST(status AS SIGNED INTEGER) FROM `{m}` WHERE msgid = 'm4' AND item = 0")).await,
        Some(3)
    );
    assert_eq!(
        db.text(&format!("SELECT path FROM `{m}` WHERE msgid = 'm4'")).await.as_deref(),
        Some("/msgfile/ww0123456789abcdef/12.png")
    );
    assert_eq!(check(format!("SELECT CAST(size AS SIGNED INTEGER) FROM `{m}` WHERE msgid = 'm4'")).await, Some(100));
    assert_eq!(
        check(format!("SELECT CAST(status AS SIGNED INTEGER) FROM `{m}` WHERE msgid = 'm5' AND item = 0")).await,
        Some(1)
    );
    assert_eq!(
        db.text(&format!("SELECT CONCAT(kind, '.', ext, '.', sdkfileid, '.', md5) FROM `{m}` WHERE msgid = 'm5'"))
            .await
            .as_deref(),
        Some("voice.amr.SDKF2.fedcba9876543210fedcba9876543210")
    );
    // Types that hold real data.
    let col = |name: &str| {
        format!(
            "SELECT CAST(COLUMN_TYPE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = '{t}' AND COLUMN_NAME = '{name}'"
        )
    };
    assert!(db.text(&col("seq")).await.unwrap().contains("unsigned"));
    assert!(db.text(&col("id")).await.unwrap().starts_with("bigint"));
    assert_eq!(db.text(&col("text")).await.as_deref(), Some("mediumtext"));
    assert_eq!(db.text(&col("msgdata")).await.as_deref(), Some("longtext"));
    assert_eq!(db.text(&col("encrypt_chat_msg")).await.as_deref(), Some("longtext"));
    // Uniqueness now holds, and the daemon resumes where Java stopped.
    assert_eq!(db.store.cursor(&c).await.unwrap(), 14);
    // msgid m1 at another seq: m1 stays unique, the new record is kept as m1~dup99; seq 14 again
    // is a re-pull.
    let mut dup = row(99);
    dup.msgid = "m1".into();
    let out = db.store.write_batch(&c, &[dup, row(14)], &[], 14).await.unwrap();
    assert_eq!(out.inserted_rows, 1);
    assert_eq!(db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED) FROM `{t}` WHERE msgid = 'm1'")).await, Some(1));
    assert_eq!(db.text(&format!("SELECT msgid FROM `{t}` WHERE seq = 99")).await.as_deref(), Some("m1~dup99"));
    let out = db.store.write_batch(&c, &[row(15), row(u64::MAX)], &[], u64::MAX).await.unwrap();
    assert_eq!(out.inserted_rows, 2);
    assert_eq!(db.store.cursor(&c).await.unwrap(), u64::MAX);
    // Again: a no-op, with this store and with a fresh one.
    db.store.migrate_java_corp_table(&c).await.unwrap();
    let fresh = connect(&db.url, 4).await.unwrap();
    fresh.ensure_corp_tables(&c).await.unwrap();
    assert_eq!(db.count(&t).await, 8);
    assert_eq!(db.count(&m).await, 2);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_upgrade_interrupted_before_the_marker_completes_later() {
    let Some(db) = java_db().await else { return };
    let c = corp(JAVA_CORP);
    let t = format!("message_{JAVA_CORP}");
    db.store.migrate().await.unwrap();
    db.store.migrate_java_corp_table(&c).await.unwrap();
    // As if the process died before the last step: the marker column is missing.
    db.exec(&format!("ALTER TABLE `{t}` DROP COLUMN encrypt_chat_msg")).await;
    db.exec(&format!("UPDATE `{t}` SET status = 1")).await;
    let fresh = connect(&db.url, 4).await.unwrap();
    fresh.ensure_corp_tables(&c).await.unwrap();
    assert_eq!(db.count(&t).await, 5);
    assert_eq!(db.int(&format!("SELECT CAST(SUM(status) AS SIGNED INTEGER) FROM `{t}`")).await, Some(4));
    assert_eq!(db.count(&format!("media_{JAVA_CORP}")).await, 2);
    assert_eq!(fresh.cursor(&c).await.unwrap(), 14);
    db.finish().await;
}
