//! Hostile input, end to end with the **real** vendor SDK behind the fake WeCom HTTPS API: a corp
//! whose server sends every kind of `emulator::hostile` record (invalid UTF-8, raw control
//! characters, 200 KB of text, nesting 1,000 deep, 100,000 recipients, numbers beyond u64 and
//! f64, a msgid sent twice with other content, a file named to climb out of the media root, and
//! `encrypt_chat_msg` cut so that the real SDK's DecryptData would abort the process), beside a
//! normal corp, with a third corp in the corps file whose corpid is an SQL injection.
//!
//! Nothing may crash or stall: every record is stored (as read, or undecryptable with its
//! ciphertext, or under a new msgid with the reason), the normal corp ends with its exact ground
//! truth, nothing is written outside the media root, and the injected corpid is refused with a
//! clear error without touching the database. On SQLite and on MariaDB.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{real_sdk_config, write_corps, Daemon};
use common::pipeline::{check_corp, Db};
use common::{files_under, md5_file};
use emulator::api::{ApiOptions, FakeApi};
use wework_msgaudit::message::NOT_UTF8_ERROR;

const HOSTILE: &str = "wwhostile00000001";
const NORMAL: &str = "wwnormal000000001";
const INJECTED: &str = "ww'); DROP TABLE corp_cursor; --";
const NORMAL_RECORDS: u64 = 40;

async fn hostile(db: Db) {
    let label = db.name();
    let Some(sdk) = common::real_sdk("the hostile-input end-to-end test") else { return };
    let hostile_records = 2 * emulator::hostile::KINDS.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    write_corps(dir.path(), &[HOSTILE.to_string(), NORMAL.to_string()], 73, NORMAL_RECORDS, "", None);
    let scenario_path = dir.path().join("scenario.toml");
    let scenario = std::fs::read_to_string(&scenario_path).unwrap().replacen(
        &format!("records = {NORMAL_RECORDS}\n"),
        &format!("records = {hostile_records}\nhostile = true\n"),
        1,
    );
    std::fs::write(&scenario_path, scenario).unwrap();
    // The injected corpid, in the corps file only.
    let mut corps = std::fs::read_to_string(dir.path().join("corps.toml")).unwrap();
    corps.push_str(&format!(
        "[[corp]]\ncorpid = \"{}\"\nsecret = \"s-x\"\n[[corp.key]]\nver = 1\nfile = \"keys/v1.pem\"\n",
        INJECTED.replace('"', "\\\"")
    ));
    std::fs::write(dir.path().join("corps.toml"), corps).unwrap();

    let emu = emulator::Emulator::new(emulator::Scenario::load(&scenario_path).unwrap()).unwrap();
    let api = FakeApi::start(emu, ApiOptions::default()).unwrap();
    let (config, root) = real_sdk_config(dir.path(), &db.url, &sdk, &api.proxy_url(), None, 7, 5);

    let truth = api.emulator().truth(HOSTILE);
    let media_items: usize = truth.iter().map(|t| t.media.len()).sum();
    let t0 = Instant::now();
    let mut daemon = Daemon::start(dir.path(), &config, 1, &[]);
    let cursor_sql = "SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?";
    loop {
        daemon.alive();
        let done = db.int(cursor_sql, Some(HOSTILE)).await == hostile_records as i64
            && db.int(cursor_sql, Some(NORMAL)).await == NORMAL_RECORDS as i64
            && db
                .int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{HOSTILE} WHERE status = 3"), None)
                .await
                == media_items as i64;
        if done {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "{label}: not done after 180 s:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = t0.elapsed();
    let (status, _) = daemon.terminate(Duration::from_secs(60));
    let log = daemon.log();
    assert!(status.success(), "{label}: exit {status}:\n{log}");

    // The normal corp is untouched by its neighbour.
    check_corp(&db, api.emulator(), NORMAL).await;

    // Every hostile record is stored once, as the rules say.
    let t = format!("message_{HOSTILE}");
    assert_eq!(
        db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {t}"), None).await,
        hostile_records as i64
    );
    let mut outcomes = std::collections::BTreeMap::<String, String>::new();
    for r in &truth {
        let kind = r.hostile.as_deref().unwrap();
        let row = db
            .rows(&format!(
                "SELECT CAST(seq AS SIGNED INTEGER), msgid, msgdata, decrypt_error, encrypt_random_key, encrypt_chat_msg \
                 FROM {t} WHERE seq = {}",
                r.seq
            ))
            .await;
        let (_, msgid, msgdata, err, erk, ecm) =
            row.first().unwrap_or_else(|| panic!("{label}: seq {} ({kind}) stored", r.seq));
        let outcome = match kind {
            "truncated_short" | "truncated_half" => {
                assert!(err.is_some(), "{label}: {kind} is undecryptable");
                assert!(erk.as_deref().is_some_and(|c| !c.is_empty()) && ecm.as_deref().is_some_and(|c| !c.is_empty()));
                assert_eq!(msgid, &r.msgid);
                "stored undecryptable, ciphertext kept"
            }
            "bad_utf8" => {
                assert_eq!(err.as_deref(), Some(NOT_UTF8_ERROR), "{label}: {kind}");
                assert_eq!(msgdata.as_deref(), Some(r.plaintext.as_str()), "{label}: {kind} stored lossily");
                assert!(ecm.is_some(), "{label}: {kind} keeps the ciphertext");
                "stored lossily, flagged, ciphertext kept"
            }
            "dup_msgid" => {
                assert_eq!(msgid, &format!("{}~dup{}", r.msgid, r.seq), "{label}: {kind}");
                assert!(err.as_deref().is_some_and(|e| e.contains("duplicate msgid")), "{label}: {err:?}");
                assert_eq!(msgdata.as_deref(), Some(r.plaintext.as_str()));
                "stored under a new msgid, with the reason"
            }
            _ => {
                assert_eq!(msgid, &r.msgid, "{label}: {kind}");
                assert_eq!(err.as_deref(), None, "{label}: {kind}");
                assert_eq!(msgdata.as_deref(), Some(r.plaintext.as_str()), "{label}: {kind} stored byte for byte");
                "stored as sent"
            }
        };
        outcomes.insert(kind.to_string(), outcome.to_string());
    }
    assert_eq!(outcomes.len(), emulator::hostile::KINDS.len());
    let msgtype = |kind: &str| {
        let seq = truth.iter().find(|r| r.hostile.as_deref() == Some(kind)).unwrap().seq;
        format!("SELECT msgtype, msgid FROM {t} WHERE seq = {seq}")
    };
    for (kind, want) in [("deep_nesting", "mixed"), ("big_numbers", "meeting"), ("control_chars", "text")] {
        assert_eq!(db.pairs(&msgtype(kind)).await[0].0, want, "{label}: {kind}");
    }

    // The file that climbs: inside the media root, byte-exact; nothing anywhere else.
    let paths = db.pairs(&format!("SELECT path, msgid FROM media_{HOSTILE}")).await;
    assert_eq!(paths.len(), media_items);
    for (path, _) in &paths {
        assert!(!path.contains("..") && path.starts_with(&format!("{HOSTILE}/")), "{label}: stored path {path}");
        assert!(!path.contains("etc") && !path.contains("cron"), "{label}: the hostile name is not used: {path}");
    }
    let files = files_under(&root);
    let canonical_root = root.canonicalize().unwrap();
    for f in &files {
        assert!(f.canonicalize().unwrap().starts_with(&canonical_root), "{label}: {} outside the root", f.display());
    }
    let want: std::collections::BTreeSet<String> = truth.iter().flat_map(|r| &r.media).map(|m| m.md5.clone()).collect();
    let hostile_files = files_under(&root.join(HOSTILE));
    let got: std::collections::BTreeSet<String> = hostile_files.iter().map(|f| md5_file(f)).collect();
    assert_eq!(got, want, "{label}: the hostile corp's files: byte-exact, nothing else");
    for outside in ["/tmp/wwf-pwned.sh", "/etc/cron.d/x"] {
        assert!(!Path::new(outside).exists(), "{label}: {outside} was written");
    }
    let everything = files_under(dir.path());
    assert!(
        everything
            .iter()
            .all(|f| f.starts_with(&root) || f.parent() == Some(dir.path()) || f.starts_with(dir.path().join("keys"))),
        "{label}: files written outside the media root: {everything:?}"
    );

    // The injected corpid: refused by name, no table, the cursor table intact.
    assert!(
        log.lines().any(|l| l.contains("DROP TABLE corp_cursor") && (l.contains("WARN") || l.contains("ERROR"))),
        "{label}: the injected corpid is reported:\n{log}"
    );
    assert_eq!(db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_cursor", None).await, 2);
    common::report(&format!(
        "hostile input ({label}): {hostile_records}/{hostile_records} hostile records stored, {}/{} normal, \
         {} hostile file(s) inside the root, injected corpid refused, daemon exit 0 after {:.1} s; {outcomes:?}",
        NORMAL_RECORDS,
        NORMAL_RECORDS,
        hostile_files.len(),
        took.as_secs_f64()
    ));
    db.finish().await;
}

per_db!(tokio: hostile_input => hostile);
