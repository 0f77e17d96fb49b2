//! The completeness report (`wework-msgaudit completeness`, `/status`, `/metrics`):
//!
//! - `planted`: rows written directly with every kind of finding planted (gaps below, across and
//!   above the cursor, `--since`, archived members never seen, people not archived, consent
//!   missing or refused, failed media by code, undecryptable records by key version, a
//!   quarantined record), a clean corp and a corp whose metadata was never fetched: the report
//!   must say exactly what was planted, through the library and through the command (exit codes,
//!   table, JSON);
//! - `scale`: a corp of 300,000 records with planted gaps: found by SQL (the seqs never come into
//!   memory), exact counts, time reported;
//! - `e2e`: the daemon binary with the **real** vendor SDK against the fake WeCom API, a scenario
//!   that withholds seqs, a corp missing a key version, media the server refuses for good, and
//!   metadata tables filled from the ground truth with planted omissions: `/status`, `/metrics`
//!   and the command must report exactly the planted findings, and nothing for the clean corp.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cli_db::CliDb;
use wework_msgaudit::observe::completeness::{self, CompletenessReport, CorpCompleteness, Kind, Options, SeqRange};
use wework_msgaudit::store::{CorpId, Store};

/// The test's database: the binary runs against it, the tests write into it directly.
pub struct Db(CliDb);

impl Db {
    async fn sqlite() -> Db {
        let db = CliDb::sqlite("completeness.db");
        db.store().await;
        Db(db)
    }

    async fn mysql() -> Option<Db> {
        let db = CliDb::mysql("wwcomp", "the completeness tests on MariaDB").await?;
        db.store().await;
        Some(Db(db))
    }

    fn is_sqlite(&self) -> bool {
        self.0.url.starts_with("sqlite:")
    }

    fn name(&self) -> &'static str {
        if self.is_sqlite() {
            "sqlite"
        } else {
            "mariadb"
        }
    }
}

const BASE_MS: u64 = 1_767_225_600_000;

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One message row: seq, from, tolist, room; msgtime from the seq.
fn msg(corp: &str, seq: u64, from: &str, to: &str, room: &str) -> String {
    format!(
        "INSERT INTO message_{corp} (msgid, seq, publickey_ver, action, msgfrom, tolist, msgtype, msgtime, roomid) \
         VALUES ('m{corp}{seq}', {seq}, 1, 'send', {}, {}, 'text', {}, {})",
        q(from),
        q(to),
        BASE_MS + seq * 1000,
        q(room)
    )
}

/// An undecryptable (or quarantined) row.
fn undecrypted(corp: &str, seq: u64, ver: u32, error: &str) -> String {
    format!(
        "INSERT INTO message_{corp} (msgid, seq, publickey_ver, msgtime, decrypt_error, encrypt_chat_msg) \
         VALUES ('m{corp}{seq}', {seq}, {ver}, 0, {}, 'cipher')",
        q(error)
    )
}

fn media(corp: &str, seq: u64, kind: &str, status: u8, code: i64) -> String {
    format!(
        "INSERT INTO media_{corp} (msgid, item, seq, kind, sdkfileid, status, media_code) \
         VALUES ('m{corp}{seq}', 0, {seq}, {}, 'f{seq}', {status}, {code})",
        q(kind)
    )
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn permit(corp: &str, user: &str) -> String {
    format!(
        "INSERT INTO wecom_permit_user (corpid, userid, types, present, first_seen_at, last_seen_at) \
         VALUES ({}, {}, 1, 1, {n}, {n})",
        q(corp),
        q(user),
        n = now_ms()
    )
}

fn consent(corp: &str, room: &str, user: &str, ext: &str, status: &str) -> String {
    format!(
        "INSERT INTO wecom_consent (corpid, roomid, userid, external_id, agree_status, status_change_time, checked_at) \
         VALUES ({}, {}, {}, {}, {}, 1767225600, {})",
        q(corp),
        q(room),
        q(user),
        q(ext),
        q(status),
        now_ms()
    )
}

fn cursor(corp: &str, seq: u64) -> String {
    format!("INSERT INTO corp_cursor (corpid, seq) VALUES ({}, {seq})", q(corp))
}

const PLANTED: &str = "wwplanted";
const CLEAN: &str = "wwclean";
const NOMETA: &str = "wwnometa";

/// Seqs 1..=100 of PLANTED without 10, 20..=22, 88..=92, 95, 96; `corp_cursor` 90, but the daemon
/// resumes after the highest stored seq (`Store::cursor`), so every gap is below the cursor (100):
/// never served, 11 seqs in 4 ranges.
const MISSING: [u64; 11] = [10, 20, 21, 22, 88, 89, 90, 91, 92, 95, 96];

async fn plant(db: &Db) -> Arc<dyn Store> {
    let store = db.0.store().await;
    for c in [PLANTED, CLEAN, NOMETA] {
        store.ensure_corp_tables(&CorpId::new(c).unwrap()).await.unwrap();
    }
    let mut sql = Vec::new();
    for seq in (1..=100u64).filter(|s| !MISSING.contains(s)) {
        sql.push(match seq {
            50 | 51 => undecrypted(PLANTED, seq, 3, "no private key for publickey_ver 3"),
            52 => undecrypted(PLANTED, seq, 2, "RSA decryption failed"),
            60 => undecrypted(PLANTED, seq, 1, "not stored as parsed: msgid too long"),
            s if s % 4 == 0 => msg(PLANTED, s, "zhangsan", "wmA", ""),
            s if s % 4 == 1 => msg(PLANTED, s, "wmA", "lisi", ""),
            s if s % 4 == 2 => msg(PLANTED, s, "lisi", "zhangsan,woB,wbRobot", "wr1"),
            s => msg(PLANTED, s, "wangwu", "zhangsan", ""),
        });
    }
    sql.push(cursor(PLANTED, 90));
    for (seq, kind, status, code) in [
        (4, "image", 4, 10010),
        (8, "image", 4, 10010),
        (12, "voice", 4, 10009),
        (16, "image", 3, 0),
        (24, "file", 1, 0),
    ] {
        sql.push(media(PLANTED, seq, kind, status, code));
    }
    for u in ["zhangsan", "lisi", "ghost"] {
        sql.push(permit(PLANTED, u));
    }
    sql.push(format!(
        "INSERT INTO wecom_permit_user (corpid, userid, types, present, first_seen_at, last_seen_at) \
         VALUES ('{PLANTED}', 'gone', 1, 0, 1, 1)"
    ));
    sql.push(consent(PLANTED, "", "zhangsan", "wmA", "Agree"));
    sql.push(consent(PLANTED, "", "lisi", "wmA", "Disagree"));
    // wr1 / woB: no row; wbRobot is not an external contact.
    for seq in 1..=30u64 {
        sql.push(if seq % 2 == 0 {
            msg(CLEAN, seq, "sunqi", "wmC", "")
        } else {
            msg(CLEAN, seq, "wmC", "sunqi", "wr9")
        });
        sql.push(msg(NOMETA, seq, "zhouba", "woD", ""));
    }
    sql.push(media(CLEAN, 2, "image", 3, 0));
    sql.push(cursor(CLEAN, 30));
    sql.push(cursor(NOMETA, 30));
    sql.push(permit(CLEAN, "sunqi"));
    sql.push(consent(CLEAN, "", "sunqi", "wmC", "Default_Agree"));
    sql.push(consent(CLEAN, "wr9", "", "wmC", "Agree"));
    for s in sql {
        db.0.exec(&s).await;
    }
    store
}

fn counts(c: &CorpCompleteness) -> BTreeMap<&'static str, u64> {
    Kind::ALL.iter().map(|k| (k.name(), c.count(*k))).filter(|(_, n)| *n > 0).collect()
}

fn corp<'a>(r: &'a CompletenessReport, id: &str) -> &'a CorpCompleteness {
    r.corps.iter().find(|c| c.corpid == id).unwrap_or_else(|| panic!("{id} not in the report"))
}

async fn planted(db: Db) {
    let label = db.name();
    let store = plant(&db).await;
    let corps: Vec<CorpId> = [PLANTED, CLEAN, NOMETA].iter().map(|c| CorpId::new(c).unwrap()).collect();
    let opts = Options { limit: 10, ..Options::default() };
    let r = completeness::check(store.as_ref(), &corps, &HashMap::new(), &opts, SystemTime::now()).await;
    let p = corp(&r, PLANTED);
    assert_eq!(p.error, None, "{label}");
    let want: BTreeMap<&str, u64> = [
        ("gap_never_served", 11),
        ("member_unseen", 1),
        ("person_not_archived", 1),
        ("consent_missing", 2),
        ("media_failed", 3),
        ("undecryptable", 3),
        ("quarantined", 1),
    ]
    .into();
    assert_eq!(counts(p), want, "{label}: {p:#?}");
    assert_eq!((p.cursor, p.records, p.min_seq, p.max_seq), (100, 89, 1, 100), "{label}");
    assert_eq!((p.never_served.ranges, p.not_yet_pulled.ranges), (4, 0), "{label}");
    let r_ = |after, before| SeqRange { after, before };
    assert_eq!(p.never_served.first, [r_(9, 11), r_(19, 23), r_(87, 93), r_(94, 97)], "{label}");
    assert!(p.not_yet_pulled.first.is_empty(), "{label}");
    assert_eq!(p.members_unseen.first, ["ghost"], "{label}: 'gone' (present 0) is not an archived member");
    assert_eq!(p.people_not_archived.first, ["wangwu"], "{label}");
    let gaps: Vec<(String, String, String, Option<String>)> = p
        .consent_gaps
        .iter()
        .map(|g| (g.roomid.clone(), g.userid.clone(), g.external_id.clone(), g.status.clone()))
        .collect();
    assert_eq!(
        gaps,
        [
            (String::new(), "lisi".into(), "wmA".into(), Some("Disagree".into())),
            ("wr1".into(), String::new(), "woB".into(), None)
        ],
        "{label}"
    );
    let media: Vec<(&str, i64, u64)> = p.media_failed.iter().map(|m| (m.kind.as_str(), m.code, m.count)).collect();
    assert_eq!(media, [("image", 10010, 2), ("voice", 10009, 1)], "{label}");
    let keys: Vec<(u32, u64, u64, u64)> =
        p.undecryptable.iter().map(|k| (k.publickey_ver, k.count, k.min_seq, k.max_seq)).collect();
    assert_eq!(keys, [(2, 1, 52, 52), (3, 2, 50, 51)], "{label}");
    assert!(p.needs_attention());
    for id in [CLEAN, NOMETA] {
        let c = corp(&r, id);
        assert_eq!(counts(c), BTreeMap::new(), "{label}: {id} is complete: {c:#?}");
        assert!(!c.needs_attention(), "{label}: {id}");
    }
    assert!(corp(&r, CLEAN).members_fetched && corp(&r, CLEAN).consent_fetched);
    let n = corp(&r, NOMETA);
    assert!(!n.members_fetched && !n.consent_fetched && n.external_conversations == 1, "{label}: not fetched: {n:#?}");
    assert!(r.attention);
    assert_eq!(r.totals[&Kind::GapNeverServed], 11);

    // --since: from the first record with msgtime >= that of seq 21 (seq 23) on, the gap that
    // ends there included; the undecryptable and failed items before it are out.
    let since = Options { since_ms: Some(BASE_MS + 21 * 1000), ..opts.clone() };
    let s = completeness::check_corp(store.as_ref(), &corps[0], &since, None, SystemTime::now()).await.unwrap();
    assert_eq!(s.from_seq, Some(23), "{label}");
    assert_eq!((s.never_served.missing, s.never_served.ranges), (10, 3), "{label}");
    assert_eq!(s.not_yet_pulled.missing, 0, "{label}");
    assert_eq!(s.count(Kind::MediaFailed), 0, "{label}: media of seqs 4-12 are before");
    assert_eq!(s.count(Kind::Undecryptable), 3, "{label}");
    // pull_stale: only with a daemon's since-last-pull beyond the threshold.
    let stale = Options { stale_after: Duration::from_secs(60), ..opts.clone() };
    let c = completeness::check_corp(store.as_ref(), &corps[1], &stale, Some(61.0), SystemTime::now()).await.unwrap();
    assert_eq!(counts(&c), BTreeMap::from([("pull_stale", 1)]), "{label}");
    let c = completeness::check_corp(store.as_ref(), &corps[1], &stale, Some(59.0), SystemTime::now()).await.unwrap();
    assert!(!c.needs_attention(), "{label}");

    // The command: exit 4 with the planted corp, 0 without; the JSON is the same report.
    db.0.write("config.toml", "[corps]\ntable = false\n");
    let out = db.0.run(&["completeness", "--json", "--corp", PLANTED, "--corp", CLEAN, "--corp", NOMETA], "");
    assert_eq!(out.status.code(), Some(4), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    let json: CompletenessReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts(corp(&json, PLANTED)), want, "{label}: the command's JSON");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gap_never_served 11 seqs"), "{label}");
    let table = db.0.expect(&["completeness", "--corp", PLANTED, "--limit", "5"], 4);
    for needle in [
        "never served (below cursor 100): 11 seqs in 4 ranges: 10, 20-22, 88-92, 95-96",
        "archived members never seen 1: ghost",
        "lisi↔wmA (Disagree)",
        "room wr1 woB (no consent on record)",
        "media failed for good: 2 image (code 10010)",
        "undecryptable: 2 records of publickey_ver 3 (seq 50..=51",
        "result: NEEDS ATTENTION",
    ] {
        assert!(table.contains(needle), "{label}: {needle:?} in:\n{table}");
    }
    let clean = db.0.ok(&["completeness", "--corp", CLEAN, "--corp", NOMETA]);
    assert!(clean.contains("result: complete") && clean.contains("n/f"), "{label}:\n{clean}");
    db.0.expect(&["completeness", "--corp", "bad-corp!"], 2);
    db.0.expect(&["completeness", "--since", "yesterday"], 2);
    common::report(&format!("completeness planted ({label}): {want:?} found exactly; clean corps: nothing"));
    db.0.finish().await;
}

per_db!(tokio: planted);

/// 300,000 records with a gap every 10,007 seqs (29 missing) and a run of 500 missing.
async fn scale(db: Db) {
    let label = db.name();
    const N: u64 = 300_000;
    let corp = "wwscale";
    let store = db.0.store().await;
    let id = CorpId::new(corp).unwrap();
    store.ensure_corp_tables(&id).await.unwrap();
    let cols = "(msgid, seq, publickey_ver, action, msgfrom, tolist, msgtype, msgtime, roomid)";
    let keep = "x % 10007 <> 0 AND NOT (x BETWEEN 150201 AND 150700)";
    let t0 = Instant::now();
    if db.is_sqlite() {
        db.0.exec(&format!(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {N}) \
             INSERT INTO message_{corp} {cols} SELECT 'm' || x, x, 1, 'send', 'u' || (x % 50), 'wm' || (x % 7), 'text', \
             {BASE_MS} + x * 1000, '' FROM n WHERE {keep}"
        ))
        .await;
    } else {
        db.0.exec(&format!(
            "INSERT INTO message_{corp} {cols} SELECT CONCAT('m', x), x, 1, 'send', CONCAT('u', x % 50), \
             CONCAT('wm', x % 7), 'text', {BASE_MS} + x * 1000, '' FROM (SELECT seq AS x FROM seq_1_to_{N}) n WHERE {keep}"
        ))
        .await;
    }
    db.0.exec(&cursor(corp, N)).await;
    let filled = t0.elapsed();
    let missing = N / 10007 + 500;
    let t0 = Instant::now();
    let opts = Options { limit: 5, ..Options::default() };
    let c = completeness::check_corp(store.as_ref(), &id, &opts, None, SystemTime::now()).await.unwrap();
    let took = t0.elapsed();
    assert_eq!(c.records, N - missing, "{label}");
    assert_eq!((c.never_served.missing, c.never_served.ranges), (missing, N / 10007 + 1), "{label}");
    assert_eq!(c.never_served.first.len(), 5, "{label}: only the first ranges come back");
    assert_eq!(c.never_served.first[0], SeqRange { after: 10006, before: 10008 }, "{label}");
    assert_eq!(c.not_yet_pulled.missing, 0, "{label}");
    assert_eq!(c.external_conversations, 350, "{label}: 50 senders × 7 contacts");
    common::report(&format!(
        "completeness at scale ({label}): {} records, {missing} missing seqs in {} ranges found in {:.2} s \
         (whole check; filling took {:.1} s)",
        c.records,
        c.never_served.ranges,
        took.as_secs_f64(),
        filled.as_secs_f64()
    ));
    db.0.finish().await;
}

per_db!(tokio: scale);

mod e2e {
    use super::*;
    use common::daemon::{free_port, real_sdk_config, write_corps, Daemon};
    use emulator::api::{fileid_of, ApiFaults, ApiOptions, FakeApi};

    const GAPS: &str = "wwgaps0000000000001";
    const CLEAN: &str = "wwclean000000000001";
    const RECORDS: u64 = 80;
    const WITHHELD: [u64; 4] = [7, 8, 9, 41];

    /// What the ground truth says of one corp's decrypted records: internal people, 1:1
    /// (internal, external) pairs, (room, external).
    #[derive(Debug, Default)]
    struct Expected {
        people: BTreeSet<String>,
        pairs: BTreeSet<(String, String)>,
        rooms: BTreeSet<(String, String)>,
    }

    fn expected(truth: &[emulator::TruthRecord], skip_ver: Option<u32>) -> Expected {
        let mut e = Expected::default();
        for t in truth.iter().filter(|t| Some(t.publickey_ver) != skip_ver && t.action != "switch") {
            // The `text_ctl` records hold raw control characters (the daemon reads them leniently).
            let clean = t.plaintext.replace(|c: char| u32::from(c) < 0x20, " ");
            let v: serde_json::Value = serde_json::from_str(&clean).unwrap();
            let from = v["from"].as_str().unwrap_or_default().to_string();
            if from.is_empty() {
                continue;
            }
            let room = v["roomid"].as_str().unwrap_or_default().to_string();
            let mut ids = vec![from];
            ids.extend(v["tolist"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)));
            let internal: Vec<&String> = ids.iter().filter(|i| completeness::is_internal(i)).collect();
            e.people.extend(internal.iter().map(|s| s.to_string()));
            for x in ids.iter().filter(|i| completeness::is_external(i)) {
                if room.is_empty() {
                    e.pairs.extend(internal.iter().map(|i| (i.to_string(), x.clone())));
                } else {
                    e.rooms.insert((room.clone(), x.clone()));
                }
            }
        }
        e
    }

    async fn e2e(db: Db) {
        let label = db.name();
        let Some(sdk) = common::real_sdk("the completeness end-to-end test") else { return };
        let dir = db.0.dir.path();
        write_corps(dir, &[GAPS.to_string(), CLEAN.to_string()], 16, RECORDS, "", None);
        // The gaps corp: seqs withheld by the server, and no key for publickey_ver 3.
        let path = dir.join("scenario.toml");
        let scenario = std::fs::read_to_string(&path).unwrap();
        let withheld = format!("withheld_seqs = {WITHHELD:?}\nrecords = ");
        std::fs::write(&path, scenario.replacen("records = ", &withheld, 1)).unwrap();
        let corps_path = dir.join("corps.toml");
        let corps = std::fs::read_to_string(&corps_path).unwrap();
        std::fs::write(&corps_path, corps.replacen("[[corp.key]]\nver = 3\nfile = \"keys/v3.pem\"\n", "", 1)).unwrap();

        let emu = emulator::Emulator::new(emulator::Scenario::load(&path).unwrap()).unwrap();
        let gaps_truth = emu.truth(GAPS);
        let clean_truth = emu.truth(CLEAN);
        assert_eq!(gaps_truth.len() as u64, RECORDS - WITHHELD.len() as u64, "withheld records are not in the truth");
        let lost: Vec<&emulator::TruthRecord> = gaps_truth.iter().filter(|t| t.publickey_ver == 3).collect();
        assert!(!lost.is_empty(), "the scenario has records of key version 3");
        // Two media items the server refuses for good (301048 → SDK 10010), of decryptable records.
        let refusable: Vec<(&emulator::TruthRecord, &emulator::TruthMedia)> = gaps_truth
            .iter()
            .filter(|t| t.publickey_ver != 3)
            .flat_map(|t| t.media.iter().map(move |m| (t, m)))
            .filter(|(_, m)| m.size < 200_000)
            .collect();
        let refused = [refusable[0], refusable[refusable.len() / 2]];
        let mut want_media: BTreeMap<(String, i64), u64> = BTreeMap::new();
        for (_, m) in refused {
            *want_media.entry((m.kind.clone(), 10010)).or_default() += 1;
        }
        let media_total = gaps_truth.iter().filter(|t| t.publickey_ver != 3).map(|t| t.media.len()).sum::<usize>()
            + clean_truth.iter().map(|t| t.media.len()).sum::<usize>();
        let faults = ApiFaults {
            media_errcodes: refused.iter().map(|(_, m)| (fileid_of(&m.sdkfileid).unwrap(), 301_048)).collect(),
            ..ApiFaults::default()
        };
        let api = FakeApi::start(emu, ApiOptions { faults, ..ApiOptions::default() }).unwrap();

        // The metadata, as the WeCom API part would store it, with planted omissions: for the
        // gaps corp one internal person not archived, one archived member never seen, one pair
        // without consent, one room contact who disagreed.
        let g = expected(&gaps_truth, Some(3));
        let c = expected(&clean_truth, None);
        assert!(g.people.len() >= 2 && g.pairs.len() >= 2 && !g.rooms.is_empty(), "{g:?}");
        let not_archived = g.people.iter().next().unwrap().clone();
        let no_consent = g.pairs.iter().next().unwrap().clone();
        let disagreed = g.rooms.iter().next().unwrap().clone();
        let mut sql = Vec::new();
        for p in g.people.iter().filter(|p| **p != not_archived) {
            sql.push(permit(GAPS, p));
        }
        sql.push(permit(GAPS, "ghost.member"));
        for (u, x) in g.pairs.iter().filter(|p| **p != no_consent) {
            sql.push(consent(GAPS, "", u, x, "Agree"));
        }
        for (r, x) in &g.rooms {
            sql.push(consent(
                GAPS,
                r,
                "",
                x,
                if (r, x) == (&disagreed.0, &disagreed.1) { "Disagree" } else { "Agree" },
            ));
        }
        for p in &c.people {
            sql.push(permit(CLEAN, p));
        }
        for (u, x) in &c.pairs {
            sql.push(consent(CLEAN, "", u, x, "Default_Agree"));
        }
        for (r, x) in &c.rooms {
            sql.push(consent(CLEAN, r, "", x, "Agree"));
        }
        for s in sql {
            db.0.exec(&s).await;
        }

        let (config, _root) = real_sdk_config(dir, &db.0.url, &sdk, &api.proxy_url(), None, 25, 3);
        let port = free_port();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\ncompleteness_interval = \"1s\"\n"));
        std::fs::write(&config, text).unwrap();

        let want_gaps: BTreeMap<&str, u64> = [
            ("gap_never_served", WITHHELD.len() as u64),
            ("member_unseen", 1),
            ("person_not_archived", 1),
            ("consent_missing", 2),
            ("media_failed", 2),
            ("undecryptable", lost.len() as u64),
        ]
        .into();
        let t0 = Instant::now();
        let mut daemon = Daemon::start(dir, &config, 1, &[]);
        let done_sql =
            |corp: &str| format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{corp} WHERE status IN (3, 4)");
        let status;
        loop {
            daemon.alive();
            let cur = |c: &str| {
                format!(
                    "SELECT COALESCE((SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = '{c}'), 0)"
                )
            };
            let pulled = db.0.int(&cur(GAPS)).await == RECORDS as i64 && db.0.int(&cur(CLEAN)).await == RECORDS as i64;
            let media_done =
                pulled && (db.0.int(&done_sql(GAPS)).await + db.0.int(&done_sql(CLEAN)).await) as usize == media_total;
            if media_done {
                if let Some(s) = common::daemon::status_json(port) {
                    let r: Option<CompletenessReport> = serde_json::from_value(s["completeness"].clone()).ok();
                    if let Some(r) = r.filter(|r| r.corps.len() == 2 && counts(corp(r, GAPS)) == want_gaps) {
                        status = r;
                        break;
                    }
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(240),
                "{label}: not done (pulled {pulled}, media {media_done}):\n{}",
                tail(&daemon.log(), 40)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(counts(corp(&status, CLEAN)), BTreeMap::new(), "{label}: /status: the clean corp is complete");
        assert!(status.attention);
        let (code, metrics) = common::daemon::get(port, "/metrics").unwrap();
        assert_eq!(code, 200);
        let gauge = |c: &str, k: &str| {
            let key = format!("wework_msgaudit_completeness_findings{{corpid=\"{c}\",kind=\"{k}\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(key.as_str())).map(|v| v.parse::<f64>().unwrap())
        };
        for k in Kind::ALL {
            let want = want_gaps.get(k.name()).copied().unwrap_or(0) as f64;
            assert_eq!(gauge(GAPS, k.name()), Some(want), "{label}: /metrics {k:?} of the gaps corp");
            assert_eq!(gauge(CLEAN, k.name()), Some(0.0), "{label}: /metrics {k:?} of the clean corp");
        }
        let (st, _) = daemon.terminate(Duration::from_secs(60));
        assert!(st.success(), "{label}: exit {st}:\n{}", tail(&daemon.log(), 40));

        // The command, after the daemon: the same findings, the exact gaps, media codes and key.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(["completeness", "--json", "--config"])
            .arg(&config)
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{label}: {}", String::from_utf8_lossy(&out.stderr));
        let r: CompletenessReport = serde_json::from_slice(&out.stdout).unwrap();
        let gc = corp(&r, GAPS);
        assert_eq!(counts(gc), want_gaps, "{label}: {gc:#?}");
        assert_eq!(
            gc.never_served.first,
            [SeqRange { after: 6, before: 10 }, SeqRange { after: 40, before: 42 }],
            "{label}: the withheld seqs exactly"
        );
        assert_eq!(gc.members_unseen.first, ["ghost.member"], "{label}");
        assert_eq!(gc.people_not_archived.first, std::slice::from_ref(&not_archived), "{label}");
        let consent_gaps: BTreeSet<(String, String, String, Option<String>)> = gc
            .consent_gaps
            .iter()
            .map(|g| (g.roomid.clone(), g.userid.clone(), g.external_id.clone(), g.status.clone()))
            .collect();
        assert_eq!(
            consent_gaps,
            BTreeSet::from([
                (String::new(), no_consent.0.clone(), no_consent.1.clone(), None),
                (disagreed.0.clone(), String::new(), disagreed.1.clone(), Some("Disagree".to_string())),
            ]),
            "{label}"
        );
        let media: BTreeMap<(String, i64), u64> =
            gc.media_failed.iter().map(|m| ((m.kind.clone(), m.code), m.count)).collect();
        assert_eq!(media, want_media, "{label}");
        assert_eq!(gc.undecryptable.len(), 1, "{label}");
        assert_eq!((gc.undecryptable[0].publickey_ver, gc.undecryptable[0].count), (3, lost.len() as u64), "{label}");
        assert_eq!(counts(corp(&r, CLEAN)), BTreeMap::new(), "{label}: the clean corp");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(["completeness", "--corp", CLEAN, "--config"])
            .arg(&config)
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{label}: {}", String::from_utf8_lossy(&out.stdout));
        common::report(&format!(
            "completeness e2e, real SDK ({label}): planted {want_gaps:?} reported exactly by /status, /metrics and \
             the command; clean corp: nothing; {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
        db.0.finish().await;
    }

    fn tail(log: &str, n: usize) -> String {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    per_db!(tokio: real_sdk => e2e);
}
