//! Reply-time checks (src/quality) over rows stored in SQLite and MariaDB:
//!
//! (a) working hours and a time zone: a customer message on Friday 17:55 (Asia/Shanghai, 09:00-18:00
//!     Mon-Fri, N = 10) answered Monday 09:04 is in time, answered Monday 09:20 is a hit;
//! (b) groups and one-to-one chats, internal conversations ignored, consecutive customer messages
//!     one hit, a run decided by a later row of the corp ("no reply within"), a run whose deadline
//!     the newest stored message has not passed yet is not a hit, a reply at exactly N minutes is
//!     in time, a group-only rule ignores one-to-one chats;
//! (c) the daily statistics per employee (conversations, messages, replies, median, late);
//! (d) idempotency: a new evaluator (a restart) over the same rows writes nothing again, new rows
//!     are evaluated from the stored state; a backfill (`reset`) rebuilds identical statistics
//!     without doubling hits; two evaluators running at once count every batch once;
//! (e) the review API route: a reviewer of corp A reads A's rows, 404 for corp B, a reviewer
//!     limited to a userid sees only that employee's rows, admins 403, every read logged.

use crate::common;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{test as atest, web, App};
use common::pipeline::{open, Db};
use common::review::test_sessions;
use serde_json::Value;
use wework_msgaudit::quality::{parse_tables, Evaluator, NewRules, ReplyRule};
use wework_msgaudit::review::api::ReviewState;
use wework_msgaudit::review::media::MediaSource;
use wework_msgaudit::review::server::configure;
use wework_msgaudit::review::MemoryRecorder;
use wework_msgaudit::store::{CorpId, ReplyDaily, Row, Store};

const RULES: &str = r#"
[[reply_time]]
name = "ten"
minutes = 10
hours = "09:00-18:00"
weekdays = "mon-fri"
timezone = "Asia/Shanghai"

[[reply_time]]
name = "group-30"
scope = "group"
minutes = 30
timezone = "Asia/Shanghai"
"#;

fn rules() -> Vec<ReplyRule> {
    let table: toml::Table = RULES.parse().unwrap();
    let tables: Vec<toml::Table> =
        table["reply_time"].as_array().unwrap().iter().map(|v| v.as_table().unwrap().clone()).collect();
    parse_tables(&tables).unwrap()
}

/// ms of a Shanghai local time.
fn at(s: &str) -> u64 {
    let dt: jiff::civil::DateTime = s.parse().unwrap();
    let ms = dt.to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).unwrap().timestamp().as_millisecond();
    u64::try_from(ms).unwrap()
}

fn row(corp: &str, seq: u64, when: &str, from: &str, to: &str, room: &str) -> Row {
    let text = format!("message {seq} from {from}");
    Row {
        msgid: format!("{corp}-{seq}"),
        seq,
        action: "send".into(),
        msgfrom: from.into(),
        tolist: to.into(),
        msgtype: "text".into(),
        msgtime: at(when),
        msgdata: serde_json::json!({ "msgtype": "text", "text": { "content": text } }).to_string(),
        text,
        roomid: room.into(),
        ..Row::default()
    }
}

/// The story of a corp (2026-12-04 is a Friday): see the module doc.
fn story(corp: &str) -> Vec<Row> {
    let r = |seq, when, from, to, room| row(corp, seq, when, from, to, room);
    vec![
        r(1, "2026-12-04T17:55", "wmC1", "zhang", ""), // run: answered in time Monday 09:04
        r(2, "2026-12-04T17:55", "wmC2", "zhang", ""), // run: answered Monday 09:20: hit
        r(3, "2026-12-04T18:30", "li", "wang", ""),    // internal
        r(4, "2026-12-07T09:04", "zhang", "wmC1", ""),
        r(5, "2026-12-07T09:20", "zhang", "wmC2", ""),
        r(6, "2026-12-07T10:00", "wmC3", "zhang,li", "room1"), // group run
        r(7, "2026-12-07T10:02", "wmC3", "zhang,li", "room1"), // same run
        r(8, "2026-12-07T10:05", "li", "zhang,wmC3", "room1"), // in time (5 min)
        r(9, "2026-12-07T10:30", "wmC3", "zhang,li", "room1"), // a new run…
        r(10, "2026-12-07T10:31", "wmC4", "li", ""),           // a one-to-one run…
        r(11, "2026-12-07T10:50", "wang", "li", ""),           // …both decided by this internal row
        r(12, "2026-12-07T11:00", "li", "zhang,wmC3", "room1"), // run 9 answered after 30 min
        r(13, "2026-12-07T11:40", "wmC5", "zhang", ""),        // deadline 11:50…
        r(14, "2026-12-07T11:45", "zhang", "li", ""),          // …not passed by the newest row
        r(15, "2026-12-07T11:45", "wang", "li,zhang", "room9"), // an internal group
    ]
}

async fn hits(db: &Db, corp: &str, rule: &str) -> Vec<(String, String)> {
    db.pairs(&format!(
        "SELECT msgid, matched FROM rule_hit WHERE corpid = '{corp}' AND rule = '{rule}' AND kind = 'reply_time' \
         ORDER BY msgid"
    ))
    .await
}

fn day(rows: &[ReplyDaily], rule: &str, user: &str) -> ReplyDaily {
    rows.iter().find(|r| r.rule == rule && r.userid == user && r.day == "2026-12-07").cloned().unwrap_or_else(|| {
        panic!("no row of {rule}/{user}: {rows:?}");
    })
}

async fn daily(store: &Arc<dyn Store>, corp: &CorpId) -> Vec<ReplyDaily> {
    store.reply_daily(corp, None, None, None, None, 1000).await.unwrap()
}

const MIN: i64 = 60_000;

async fn checks(db: Db) {
    let store = open(&db).await;
    let rules = rules();
    let a = CorpId::new("wwReplyA").unwrap();
    let all = story(a.as_str());
    store.write_batch(&a, &all, &[], 15).await.unwrap();
    let mut ev = Evaluator::new(Arc::clone(&store), NewRules::FromStart).with_batch(4);
    let p = ev.corp(&a, &rules).await.unwrap();
    assert_eq!(p.rows, 15);

    // (a), (b)
    let ten = hits(&db, a.as_str(), "ten").await;
    let want =
        |v: &[(&str, &str)]| v.iter().map(|(m, w)| (format!("wwReplyA-{m}"), (*w).to_string())).collect::<Vec<_>>();
    assert_eq!(
        ten,
        want(&[("10", "no reply within 10 min"), ("2", "replied after 25 min"), ("9", "no reply within 10 min")]),
        "{}",
        db.name()
    );
    assert!(hits(&db, a.as_str(), "group-30").await.is_empty(), "group-30: 30 min is in time, 1:1 out of scope");
    let ctx = db
        .pairs(&format!(
            "SELECT sender, context FROM rule_hit WHERE corpid = '{a}' AND msgid = 'wwReplyA-2' AND rule = 'ten'"
        ))
        .await;
    assert_eq!(ctx, [("wmC2".to_string(), "message 2 from wmC2".to_string())]);
    assert_eq!(db.int("SELECT COUNT(*) FROM rule_hit WHERE alert_state = 0", None).await, 3, "for the outbox");
    assert_eq!(db.int("SELECT COUNT(*) FROM reply_open WHERE decided = 0", None).await, 1, "wmC5 still waits");

    // (c)
    let rows = daily(&store, &a).await;
    let z = day(&rows, "ten", "zhang");
    assert_eq!((z.conversations, z.messages, z.replies, z.late), (2, 2, 2, 1));
    assert_eq!(z.median_reply_ms, Some(17 * MIN), "median of 9 and 25 min");
    let l = day(&rows, "ten", "li");
    assert_eq!((l.conversations, l.messages, l.replies, l.late), (1, 2, 2, 1));
    assert_eq!(l.median_reply_ms, Some(35 * MIN / 2), "median of 5 and 30 min");
    let g = day(&rows, "group-30", "li");
    assert_eq!((g.conversations, g.messages, g.replies, g.late), (1, 2, 2, 0));
    assert!(rows.iter().all(|r| r.userid != "wang"), "internal messages are not counted: {rows:?}");
    assert!(rows.iter().all(|r| r.rule != "group-30" || r.userid != "zhang"), "zhang wrote in 1:1 chats only");

    // (d) a restart: nothing again.
    let before = daily(&store, &a).await;
    let mut ev2 = Evaluator::new(Arc::clone(&store), NewRules::FromStart).with_batch(4);
    let p = ev2.corp(&a, &rules).await.unwrap();
    assert_eq!((p.rows, p.hits), (0, 0));
    assert_eq!(daily(&store, &a).await, before);
    // New rows, evaluated from the stored state: the late answer to wmC5.
    let more = [row(a.as_str(), 16, "2026-12-07T12:30", "zhang", "wmC5", "")];
    store.write_batch(&a, &more, &[], 16).await.unwrap();
    let mut ev3 = Evaluator::new(Arc::clone(&store), NewRules::FromStart);
    ev3.corp(&a, &rules).await.unwrap();
    assert_eq!(hits(&db, a.as_str(), "ten").await.len(), 4);
    assert!(hits(&db, a.as_str(), "ten").await.contains(&("wwReplyA-13".into(), "replied after 50 min".into())));
    let z = day(&daily(&store, &a).await, "ten", "zhang");
    assert_eq!((z.conversations, z.messages, z.replies, z.late), (3, 3, 3, 2));
    assert_eq!(z.median_reply_ms, Some(25 * MIN));
    // A backfill from Friday rebuilds the same statistics and no second hit.
    let after = daily(&store, &a).await;
    let mut back = Evaluator::new(Arc::clone(&store), NewRules::FromStart).without_alerts();
    for r in &rules {
        back.reset(&a, r, i64::try_from(at("2026-12-04T00:00")).unwrap()).await.unwrap();
    }
    back.corp(&a, &rules).await.unwrap();
    assert_eq!(daily(&store, &a).await, after);
    assert_eq!(db.int("SELECT COUNT(*) FROM rule_hit", None).await, 4);
    // A backfill from Monday: the Friday runs are not seen, so Monday's 09:04 and 09:20 answer
    // nothing; the late answer to wmC5 is zhang's only first reply.
    for r in &rules {
        back.reset(&a, r, i64::try_from(at("2026-12-07T00:00")).unwrap()).await.unwrap();
    }
    back.corp(&a, &rules).await.unwrap();
    let z = day(&daily(&store, &a).await, "ten", "zhang");
    assert_eq!((z.conversations, z.messages, z.replies, z.late), (3, 3, 1, 1));

    // Two evaluators at once over corp B (same story): every batch counted once.
    let b = CorpId::new("wwReplyB").unwrap();
    store.write_batch(&b, &story(b.as_str()), &[], 15).await.unwrap();
    let mut e1 = Evaluator::new(Arc::clone(&store), NewRules::FromStart).with_batch(2);
    let mut e2 = Evaluator::new(Arc::clone(&store), NewRules::FromStart).with_batch(3);
    let (r1, r2) = tokio::join!(e1.corp(&b, &rules), e2.corp(&b, &rules));
    r1.unwrap();
    r2.unwrap();
    e1.corp(&b, &rules).await.unwrap();
    let rb = daily(&store, &b).await;
    let (zb, lb) = (day(&rb, "ten", "zhang"), day(&rb, "ten", "li"));
    assert_eq!((zb.conversations, zb.messages, zb.replies, zb.late, zb.median_reply_ms), (2, 2, 2, 1, Some(17 * MIN)));
    assert_eq!((lb.conversations, lb.messages, lb.replies, lb.late), (1, 2, 2, 1));
    assert_eq!(hits(&db, b.as_str(), "ten").await.len(), 3);

    // (e)
    api(&store, &a, &b).await;
    db.finish().await;
}

async fn api(store: &Arc<dyn Store>, a: &CorpId, b: &CorpId) {
    let recorder = Arc::new(MemoryRecorder::default());
    let state = ReviewState {
        store: Arc::clone(store),
        search: None,
        media: MediaSource { root: std::env::temp_dir(), object_store: None },
        export_max_rows: 10,
        recorder: recorder.clone(),
    };
    let data = web::Data::new(state);
    let app = atest::init_service(App::new().wrap(from_fn(test_sessions)).configure(move |c| configure(c, data))).await;
    let get = |who: Option<String>, uri: String| {
        let mut req = atest::TestRequest::get().uri(&uri);
        if let Some(w) = who {
            req = req.insert_header(("X-Test-Principal", w));
        }
        req.to_request()
    };
    let ra = Some(format!("reviewer;{a}=*"));
    let uri_a = format!("/api/corps/{a}/reply-stats?from=2026-12-07&to=2026-12-07&rule=ten");

    let resp = atest::call_service(&app, get(ra.clone(), uri_a.clone())).await;
    assert_eq!(resp.status(), 200);
    let body: Value = atest::read_body_json(resp).await;
    let users: Vec<&str> = body["days"].as_array().unwrap().iter().map(|d| d["userid"].as_str().unwrap()).collect();
    assert_eq!(users, ["li", "zhang"]);
    assert_eq!(body["days"][1]["median_reply_ms"], 50 * MIN);
    assert_eq!(body["truncated"], false);
    assert_eq!(recorder.events().len(), 1, "the read is logged");
    assert_eq!(recorder.events()[0].1.action, "reply_stats");
    assert_eq!(recorder.events()[0].1.corpid.as_deref(), Some(a.as_str()));

    // Corp B is not granted: 404, and not logged as a read.
    let resp = atest::call_service(&app, get(ra.clone(), format!("/api/corps/{b}/reply-stats"))).await;
    assert_eq!(resp.status(), 404);
    // A reviewer limited to li reads li's rows only.
    let resp = atest::call_service(&app, get(Some(format!("reviewer;{a}=li")), uri_a.clone())).await;
    assert_eq!(resp.status(), 200);
    let body: Value = atest::read_body_json(resp).await;
    let users: Vec<&str> = body["days"].as_array().unwrap().iter().map(|d| d["userid"].as_str().unwrap()).collect();
    assert_eq!(users, ["li"]);
    // Admins read no messages; no session, no read; a bad date is refused.
    let resp = atest::call_service(&app, get(Some(format!("admin;{a}=*")), uri_a.clone())).await;
    assert_eq!(resp.status(), 403);
    let resp = atest::call_service(&app, get(None, uri_a.clone())).await;
    assert_eq!(resp.status(), 401);
    let resp = atest::call_service(&app, get(ra, format!("/api/corps/{a}/reply-stats?from=7.12.2026"))).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(recorder.events().len(), 2, "refusals are not logged as reads");
}

per_db!(checks);

/// The CLI: a backfill writes hits without alerting and the statistics; `stats --json` prints
/// them; a broken rules file is a configuration error (exit 2).
#[test]
fn cli_backfill_and_stats() {
    use common::cli_db::CliDb;
    let db = CliDb::sqlite("cli.db");
    db.write("config.toml", "");
    db.write("rules.toml", RULES);
    common::block_on(async {
        let store = db.store().await;
        let c = CorpId::new("wwReplyCli").unwrap();
        store.write_batch(&c, &story(c.as_str()), &[], 15).await.unwrap();
    });
    let out = db.ok(&["reply-time", "run", "--corp", "wwReplyCli", "--since", "2026-12-04"]);
    assert!(out.contains("2 rules, 15 rows read, 3 hits"), "{out}");
    let out = db.ok(&["reply-time", "stats", "--corp", "wwReplyCli", "--rule", "ten", "--json"]);
    let rows: Value = serde_json::from_str(&out).unwrap();
    let zhang = rows.as_array().unwrap().iter().find(|r| r["userid"] == "zhang").unwrap();
    assert_eq!(zhang["median_reply_ms"], 17 * MIN);
    common::block_on(async {
        assert_eq!(db.int("SELECT COUNT(*) FROM rule_hit WHERE alert_state = 1").await, 3, "a backfill does not alert");
        assert_eq!(db.int("SELECT COUNT(*) FROM rule_hit WHERE alert_state = 0").await, 0);
    });
    // Again: nothing new.
    let out = db.ok(&["reply-time", "run", "--corp", "wwReplyCli"]);
    assert!(out.contains("0 rows read, 0 hits"), "{out}");
    db.write("rules.toml", "[[reply_time]]\nname = \"x\"\nminutes = 10\ntimezone = \"Nowhere/Town\"\n");
    let out = db.expect(&["reply-time", "run", "--corp", "wwReplyCli"], 2);
    assert!(out.contains("Nowhere/Town"), "{out}");
}
